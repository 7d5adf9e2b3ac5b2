package main

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/whnet/wh/node"
)

// A health level: how far a node must have come for `wh health` to pass.
const (
	healthLive  = "live"  // the daemon answers on its control socket
	healthReady = "ready" // live, in the DHT, and it has reached a peer
	healthPeers = "peers" // ready, with a path to every trusted peer
)

var healthLevels = []string{healthLive, healthReady, healthPeers}

func newHealthCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "health [IFACE|all] [live|ready|peers]",
		Short: "Exit 0 when a network is up and has reached its peers (for health checks)",
		Long: `Check a running network for container health checks and supervisors, and
say in one line per interface how far it has come. The exit status is 0
when every interface named (all, the default: every running one, and at
least one) has reached the level, 1 when not, 2 on a usage error.

  live   the daemon answers on its control socket
  ready  (the default) live, and joined: a node with an interface knows at
         least one DHT node and, if it trusts any peer, has a path (direct
         or relayed) to at least one of them; a headless node (a boot node
         or relay, with no address in the config) is ready when live
  peers  ready, and it has a path to every trusted peer`,
		Example: "  wh health\n  wh health wh-zW-1lBeQ peers\n  HEALTHCHECK CMD [\"wh\", \"health\"]",
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) > 2 {
				return usagef("health: too many arguments")
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			target, level := "all", healthReady
			if len(args) > 0 {
				target = args[0]
			}
			if len(args) > 1 {
				level = args[1]
			}
			if !slices.Contains(healthLevels, level) {
				return usagef("health: %q: want live, ready or peers", level)
			}
			ifs := []string{target}
			if target == "all" {
				var err error
				if ifs, err = runningInterfaces(); err != nil {
					return err
				}
				if len(ifs) == 0 {
					fmt.Fprintln(cmd.OutOrStdout(), "no network is running (see `wh up --help`)")
					return errSilent
				}
			}
			failed := false
			for _, i := range ifs {
				var st node.Status
				ctx, cancel := context.WithTimeout(cmd.Context(), 5*time.Second)
				err := call(ctx, i, "show", []string{"light"}, &st)
				cancel()
				var ok bool
				var msg string
				if err != nil {
					ok, msg = false, "not live: "+err.Error()
					if errors.Is(err, errNotRunning) {
						msg = "not live: wh is not running there"
					}
				} else {
					ok, msg = health(st, level)
				}
				fmt.Fprintf(cmd.OutOrStdout(), "%s: %s\n", i, msg)
				failed = failed || !ok
			}
			if failed {
				return errSilent
			}
			return nil
		},
	}
}

// health judges a daemon's status against level, and says why in a few
// words.
func health(st node.Status, level string) (bool, string) {
	reached, total := 0, len(st.Peers)
	var missing []string
	for _, p := range st.Peers {
		if p.Path == node.PathDirect || p.Path == node.PathRelay {
			reached++
			continue
		}
		name := p.Hostname
		if name == "" {
			name = p.Key[:min(10, len(p.Key))]
		}
		missing = append(missing, name)
	}
	headless := len(st.Addresses) == 0
	summary := fmt.Sprintf("%d/%d peers reached, %d DHT contacts", reached, total, st.DHT.Contacts)
	if headless {
		summary = fmt.Sprintf("headless, %d DHT contacts", st.DHT.Contacts)
	}
	switch {
	case level == healthLive:
	case headless:
	case st.DHT.Contacts == 0:
		return false, "not ready: no DHT node reached yet (" + summary + ")"
	case total > 0 && reached == 0:
		return false, "not ready: no peer reached yet (" + summary + ")"
	case level == healthPeers && reached < total:
		return false, fmt.Sprintf("not every peer reached: %s (%s)", strings.Join(missing, ", "), summary)
	}
	return true, level + " (" + summary + ")"
}
