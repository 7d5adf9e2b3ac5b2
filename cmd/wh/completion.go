package main

import (
	"context"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/whnet/wh/node"
)

// daemons is what shell completion asks the running daemons: the
// interfaces that run, and one interface's status (for its peers).
type daemons struct {
	interfaces func() ([]string, error)
	status     func(ctx context.Context, iface string) (node.Status, error)
}

// runningDaemons asks the daemons behind the control sockets.
func runningDaemons() daemons {
	return daemons{
		interfaces: runningInterfaces,
		status: func(ctx context.Context, iface string) (node.Status, error) {
			var st node.Status
			err := call(ctx, iface, "show", []string{"light"}, &st)
			return st, err
		},
	}
}

// completionTimeout bounds what one <TAB> waits for the daemons.
const completionTimeout = 2 * time.Second

// addCompletions completes the arguments of root's commands from the
// running daemons: interfaces, all, and peer names and keys, as WireHub's
// completion did (`wh ping wh-<TAB>`, `wh ping IFACE al<TAB>`).
func addCompletions(root *cobra.Command, d daemons) {
	words := func(ws ...string) func([]string) []string {
		return func([]string) []string { return ws }
	}
	ifaces := func(extra ...string) func([]string) []string {
		return func([]string) []string {
			ifs, _ := d.interfaces()
			return append(ifs, extra...)
		}
	}
	peers := func(args []string) []string { return d.peerWords(args[0]) }
	byPosition := map[string][]func(args []string) []string{
		"show":     {ifaces("all", "interfaces"), words("light", "all", "stats")},
		"health":   {ifaces("all"), words(healthLevels...)},
		"reload":   {ifaces("all")},
		"down":     {ifaces()},
		"netcheck": {ifaces()},
		"ping":     {ifaces(), peers},
		"lookup":   {ifaces(), peers},
		"resolve":  {func([]string) []string { return d.allPeerNames() }},
	}
	for _, c := range root.Commands() {
		if pos, ok := byPosition[c.Name()]; ok {
			c.ValidArgsFunction = func(_ *cobra.Command, args []string, prefix string) ([]cobra.Completion, cobra.ShellCompDirective) {
				if len(args) >= len(pos) {
					return nil, cobra.ShellCompDirectiveNoFileComp
				}
				return withPrefix(pos[len(args)](args), prefix), cobra.ShellCompDirectiveNoFileComp
			}
		}
		if c.Name() == "up" {
			c.ValidArgsFunction = completeUp
		}
	}
}

// peerWords are the hostnames and keys of iface's trusted peers.
func (d daemons) peerWords(iface string) []string {
	ctx, cancel := context.WithTimeout(context.Background(), completionTimeout)
	defer cancel()
	st, err := d.status(ctx, iface)
	if err != nil {
		return nil
	}
	var out []string
	for _, p := range st.Peers {
		if p.Hostname != "" {
			out = append(out, p.Hostname)
		}
		out = append(out, p.Key)
	}
	return out
}

// allPeerNames are the hostnames of every running network's peers.
func (d daemons) allPeerNames() []string {
	ifs, _ := d.interfaces()
	var out []string
	for _, i := range ifs {
		for _, w := range d.peerWords(i) {
			if len(w) < 43 { // a key is 43 characters; hostnames are shorter
				out = append(out, w)
			}
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// upKeywords are `wh up`'s keyword arguments and the values they take
// (nil: a file).
var upKeywords = map[string][]string{
	"private-key": nil,
	"interface":   nil,
	"listen-port": nil,
	"mode":        {"unknown", "direct", "nat"},
	"dns":         {"auto", "resolved", "hosts", "off"},
}

// completeUp completes `wh up CONFIG [keyword value]...`: the config and
// key are files, a keyword's value from its list, and the keywords not
// given yet.
func completeUp(_ *cobra.Command, args []string, prefix string) ([]cobra.Completion, cobra.ShellCompDirective) {
	if len(args) == 0 {
		return nil, cobra.ShellCompDirectiveDefault
	}
	if vals, ok := upKeywords[args[len(args)-1]]; ok {
		if vals == nil && args[len(args)-1] == "private-key" {
			return nil, cobra.ShellCompDirectiveDefault
		}
		return withPrefix(vals, prefix), cobra.ShellCompDirectiveNoFileComp
	}
	var left []string
	for k := range upKeywords {
		if !slices.Contains(args, k) {
			left = append(left, k)
		}
	}
	slices.Sort(left)
	return withPrefix(left, prefix), cobra.ShellCompDirectiveNoFileComp
}

func withPrefix(ws []string, prefix string) []string {
	var out []string
	for _, w := range ws {
		if strings.HasPrefix(w, prefix) {
			out = append(out, w)
		}
	}
	return out
}
