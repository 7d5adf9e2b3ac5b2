package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/whnet/wh/ipc"
	"github.com/whnet/wh/node"
)

// call asks the daemon on iface, with a friendly error when none runs.
func call(ctx context.Context, iface, verb string, args []string, out any) error {
	err := ipc.Call(ctx, ipc.SocketPath(ipc.Dir, iface), verb, args, out)
	if errors.Is(err, ipc.ErrNotRunning) {
		return fmt.Errorf("interface %s: %w", iface, errNotRunning)
	}
	if errors.Is(err, fs.ErrPermission) {
		return fmt.Errorf("interface %s: the control socket is its owner's only: run as root (sudo)", iface)
	}
	if err != nil {
		return fmt.Errorf("%s: %w", iface, err)
	}
	return nil
}

// errNotRunning is what call says when no daemon answers on a socket.
var errNotRunning = errors.New("wh is not running there (see `wh show interfaces`)")

func runningInterfaces() ([]string, error) {
	ifs, err := ipc.Interfaces(ipc.Dir)
	if errors.Is(err, fs.ErrPermission) {
		return nil, fmt.Errorf("%s is root's only: run as root (sudo)", ipc.Dir)
	}
	if err != nil {
		return nil, fmt.Errorf("listing %s: %w", ipc.Dir, err)
	}
	return ifs, nil
}

func exactArgs(n int, what string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) != n {
			return usagef("%s: want %s", cmd.Name(), what)
		}
		return nil
	}
}

func newDownCmd() *cobra.Command {
	return &cobra.Command{
		Use:     "down IFACE",
		Short:   "Leave a network: stop its daemon and remove its interface",
		Example: "  wh down wh-zW-1lBeQ",
		Args:    exactArgs(1, "one interface"),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, cancel := context.WithTimeout(cmd.Context(), 15*time.Second)
			defer cancel()
			if err := call(ctx, args[0], "down", nil, nil); err != nil {
				return err
			}
			// The daemon answers, then stops: wait until its socket is
			// gone, then its interface (removed last, after its DNS
			// entries), so that nothing of it is left when down returns.
			path := ipc.SocketPath(ipc.Dir, args[0])
			for ctx.Err() == nil {
				_, err := os.Stat(path)
				_, ierr := net.InterfaceByName(args[0])
				if errors.Is(err, os.ErrNotExist) && ierr != nil {
					return nil
				}
				time.Sleep(50 * time.Millisecond)
			}
			return fmt.Errorf("%s: the daemon did not stop within 15 s", args[0])
		},
	}
}

func newReloadCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "reload IFACE|all",
		Short: "Apply a changed config without dropping tunnels",
		Long: `Re-read the config a daemon was started with and apply the difference:
new peers are added, removed peers dropped, and unchanged peers keep their
tunnels (and the connections inside them). The namespace and workbit
cannot change on reload.`,
		Example: "  wh reload wh-zW-1lBeQ\n  wh reload all",
		Args:    exactArgs(1, "one interface, or all"),
		RunE: func(cmd *cobra.Command, args []string) error {
			ifs := args
			if args[0] == "all" {
				var err error
				if ifs, err = runningInterfaces(); err != nil {
					return err
				}
			}
			var failed error
			for _, i := range ifs {
				ctx, cancel := context.WithTimeout(cmd.Context(), 15*time.Second)
				if err := call(ctx, i, "reload", nil, nil); err != nil {
					fmt.Fprintf(cmd.ErrOrStderr(), "interface %s: ERROR: %v\n", i, err)
					failed = errors.New("reload failed")
				}
				cancel()
			}
			return failed
		},
	}
}

func newShowCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "show [IFACE|all|interfaces] [light|all|stats]",
		Short: "Show running networks and their peers",
		Long: `Show running networks: the interface, network and node, and each peer with
its state and path:
  ●  direct, with the peer's address
  ○  relayed, with the relay's name
  ◒  connecting (found, no handshake yet)
  ◌  an alias not yet claimed
     offline
light (the default) lists trusted peers; all adds every DHT contact;
stats prints the packet counters (port, control protocol, relaying).
interfaces lists the running interfaces.

--json prints the state of one interface as an object; with several
interfaces running and none named, an array of them.`,
		Example: "  wh show\n  wh show wh-zW-1lBeQ all\n  wh show wh-zW-1lBeQ --json | jq '.peers[] | {hostname, path, endpoint}'",
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) > 2 {
				return usagef("show: too many arguments")
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			target, detail := "all", "light"
			if len(args) > 0 {
				target = args[0]
			}
			if len(args) > 1 {
				detail = args[1]
			}
			switch detail {
			case "light", "all":
			case "stats":
				return showStats(cmd, target)
			default:
				return usagef("show: %q: want light, all or stats", detail)
			}
			ifs, err := runningInterfaces()
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			if target == "interfaces" {
				for _, i := range ifs {
					fmt.Fprintln(w, i)
				}
				return nil
			}
			single := target != "all"
			if single {
				ifs = []string{target}
			}
			var sts []node.Status
			for _, i := range ifs {
				var st node.Status
				ctx, cancel := context.WithTimeout(cmd.Context(), 5*time.Second)
				err := call(ctx, i, "show", []string{detail}, &st)
				cancel()
				if err != nil {
					if single {
						return err
					}
					if !errors.Is(err, errNotRunning) {
						fmt.Fprintf(cmd.ErrOrStderr(), "wh: %v\n", err)
					}
					continue // a socket left by a daemon that was killed
				}
				sts = append(sts, st)
			}
			if asJSON {
				e := json.NewEncoder(w)
				e.SetIndent("", "  ")
				if len(sts) == 1 && (single || len(ifs) == 1) {
					return e.Encode(sts[0])
				}
				if sts == nil {
					sts = []node.Status{}
				}
				return e.Encode(sts)
			}
			color := colorMode(w)
			for i, st := range sts {
				if i > 0 {
					fmt.Fprintln(w)
				}
				renderStatus(w, st, color, time.Now())
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print as JSON")
	return cmd
}

// showStats prints the packet counters of one interface as JSON.
func showStats(cmd *cobra.Command, iface string) error {
	if iface == "all" || iface == "interfaces" {
		return usagef("show: stats needs an interface")
	}
	ctx, cancel := context.WithTimeout(cmd.Context(), 5*time.Second)
	defer cancel()
	var c node.Counters
	if err := call(ctx, iface, "stats", nil, &c); err != nil {
		return err
	}
	e := json.NewEncoder(cmd.OutOrStdout())
	e.SetIndent("", "  ")
	return e.Encode(c)
}

// colorMode follows WireHub: WH_COLOR_MODE=always|never, else colour on a terminal.
func colorMode(w io.Writer) bool {
	switch os.Getenv("WH_COLOR_MODE") {
	case "always":
		return true
	case "never":
		return false
	}
	f, ok := w.(*os.File)
	return ok && isTerminal(f)
}

func newLookupCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "lookup IFACE KEY|HOSTNAME",
		Short: "Find a node in the DHT and print how to reach it",
		Long: `Look a node up in the DHT and print one of: direct IP:PORT, nat IP:PORT
via NAME (reached through the node that keeps it alive), or not found.
Exit status 0 when found, 1 when not.`,
		Example: "  wh lookup wh-zW-1lBeQ node_b",
		Args:    exactArgs(2, "an interface and a key or hostname"),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, cancel := context.WithTimeout(cmd.Context(), 30*time.Second)
			defer cancel()
			var res node.LookupResult
			if err := call(ctx, args[0], "lookup", args[1:], &res); err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), res.String())
			if !res.Found {
				return errSilent
			}
			return nil
		},
	}
}

func newPingCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "ping IFACE KEY|HOSTNAME",
		Short: "Ping a node over the DHT's control protocol",
		Long: `Find a node and ping it over wh's control protocol (not through the
tunnel). Prints the round-trip time, or offline. Exit status 0 when it
answered, 1 when not.`,
		Example: "  wh ping wh-zW-1lBeQ node_b",
		Args:    exactArgs(2, "an interface and a key or hostname"),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, cancel := context.WithTimeout(cmd.Context(), 30*time.Second)
			defer cancel()
			var res node.PingResult
			if err := call(ctx, args[0], "ping", args[1:], &res); err != nil {
				return err
			}
			if !res.Answered {
				fmt.Fprintln(cmd.OutOrStdout(), "offline")
				return errSilent
			}
			fmt.Fprintf(cmd.OutOrStdout(), "ping %s: time=%.3fms (%s)\n", args[1], float64(res.RTT)/float64(time.Millisecond), res.Addr)
			return nil
		},
	}
}

// errSilent is an error whose message has already been printed: the
// exit status is 1, nothing more is said.
var errSilent = errors.New("")
