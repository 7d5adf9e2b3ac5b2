package main

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/whnet/wh/config"
	"github.com/whnet/wh/invite"
	"github.com/whnet/wh/key"
	"github.com/whnet/wh/node"
)

func newInviteCmd(io stdio) *cobra.Command {
	var expires, inviter string
	cmd := &cobra.Command{
		Use:   "invite CONFIG NAME [expires DURATION] [inviter HOST|KEY]",
		Short: "Admit a new machine: add an alias slot to the config and print its invitation",
		Long: `Make an alias key with the network's proof-of-work, append the line
"alias NAME KEY" to CONFIG (the rest of the file stays as it is), reload
the node running this network on this machine, if any, and print the
invitation and the command the new machine runs.

The invitation names the inviter: the running node, or inviter (a hostname
of the config or a key) when none runs here. With a running node it also
carries the node's addresses and a few DHT contacts, so that the new
machine gets in without a boot node of its own.

Send the updated config to the other members and reload them there too:
they then accept the claim as well. DURATION (72h, 7d) makes the slot
expire: after it, nobody can claim it. The invitation holds a secret:
send it the way you would send a password.`,
		Example: `  wh invite ./net.conf laptop
  wh invite ./net.conf phone expires 7d`,
		Args: cobra.MinimumNArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			rest, err := keywords(cmd, args, map[string]*string{"expires": &expires, "inviter": &inviter})
			if err != nil {
				return err
			}
			if len(rest) != 2 {
				return usagef("invite: want a config file and a name, got %q", rest)
			}
			return runInvite(cmd, io, rest[0], rest[1], expires, inviter)
		},
	}
	cmd.Flags().StringVar(&expires, "expires", "", "the slot expires after DURATION (72h, 7d)")
	cmd.Flags().StringVar(&inviter, "inviter", "", "the member named as inviter when no node runs here")
	return cmd
}

func runInvite(cmd *cobra.Command, io stdio, cfgPath, name, expires, inviterArg string) error {
	n, err := config.Load(cfgPath)
	if err != nil {
		return err
	}
	if c, ok := n.Host(name); ok {
		return fmt.Errorf("%s: host name %q is already used on line %d", cfgPath, name, c.Line)
	}
	var until time.Time
	if expires != "" {
		d, err := parseDays(expires)
		if err != nil || d <= 0 {
			return usagef("invite: expires %q: want a duration like 72h or 7d", expires)
		}
		until = time.Now().Add(d).UTC().Truncate(time.Second)
	}
	iface, st, err := runningFor(cmd.Context(), cfgPath)
	if err != nil {
		return err
	}
	inv := invite.Invitation{}
	switch {
	case inviterArg != "":
		c, ok := n.Host(inviterArg)
		if ok {
			inv.Inviter = c.Key
		} else if inv.Inviter, err = key.ParsePublic(inviterArg); err != nil {
			return usagef("invite: inviter %q is neither a hostname of the config nor a key", inviterArg)
		}
	case iface != "":
		if inv.Inviter, err = key.ParsePublic(st.PublicKey); err != nil {
			return err
		}
		inv.Addrs, inv.Contacts = reachAt(cmd.Context(), iface, st)
	default:
		return errors.New("invite: no node of this network runs here: name the inviter with `inviter HOST|KEY`")
	}

	opt := key.SearchOptions{}
	if io.IsTerminal != nil && io.IsTerminal() && n.Workbit >= 12 {
		pr := newProgress(cmd.ErrOrStderr(), n.Workbit)
		opt.Progress = pr.update
		defer pr.done()
	}
	inv.Alias, err = key.Search(cmd.Context(), n.Workbit, n.Namespace, opt)
	if err != nil {
		return err
	}
	n2, err := config.AppendAlias(cfgPath, name, inv.Alias.Public(), until)
	if err != nil {
		return err
	}
	slot, _ := n2.Host(name)
	w := cmd.OutOrStdout()
	fmt.Fprintf(w, "added to %s: %s\n", cfgPath, config.AliasLine(name, slot.Key, until))
	if iface != "" {
		ctx, cancel := context.WithTimeout(cmd.Context(), 15*time.Second)
		err := call(ctx, iface, "reload", nil, nil)
		cancel()
		if err != nil {
			return fmt.Errorf("the alias is in %s, but reloading %s failed: %w", cfgPath, iface, err)
		}
		fmt.Fprintf(w, "reloaded %s\n", iface)
	}
	fmt.Fprintf(w, "\ninvitation for %s (%s):\n  %s\n", name, slot.IP, inv)
	fmt.Fprintf(w, "\ncopy the updated %s to the other members and run `wh reload IFACE` there;\n", cfgPath)
	fmt.Fprintf(w, "on the new machine, with the same config:\n  wh up %s invitation %s\n", cfgPath, inv)
	return nil
}

// parseDays is time.ParseDuration that also takes whole days, "7d".
func parseDays(s string) (time.Duration, error) {
	if d, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.Atoi(d)
		if err != nil || n > 100000 {
			return 0, fmt.Errorf("bad days %q", s)
		}
		return time.Duration(n) * 24 * time.Hour, nil
	}
	return time.ParseDuration(s)
}

// runningFor returns the interface and state of the node running the
// config at path, or "" if none does.
func runningFor(ctx context.Context, path string) (string, node.Status, error) {
	want, err := os.Stat(path)
	if err != nil {
		return "", node.Status{}, err
	}
	ifs, err := runningInterfaces()
	if err != nil {
		return "", node.Status{}, nil // none can be asked: as if none ran
	}
	for _, i := range ifs {
		var st node.Status
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		err := call(cctx, i, "show", []string{"all"}, &st)
		cancel()
		if err != nil || st.Config == "" {
			continue
		}
		if fi, err := os.Stat(st.Config); err == nil && os.SameFile(fi, want) {
			return i, st, nil
		}
	}
	return "", node.Status{}, nil
}

// reachAt returns where the node on iface can be reached, and a few of
// its DHT contacts, for a version 1 invitation.
func reachAt(ctx context.Context, iface string, st node.Status) ([]netip.AddrPort, []invite.Contact) {
	var addrs []netip.AddrPort
	var nc node.Netcheck
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	err := call(cctx, iface, "netcheck", nil, &nc)
	cancel()
	if err == nil {
		for _, s := range append([]string{nc.External}, nc.Reflexive...) {
			if a, err := netip.ParseAddrPort(s); err == nil && len(addrs) < invite.MaxAddrs && !contains(addrs, a) {
				addrs = append(addrs, netip.AddrPortFrom(a.Addr().Unmap(), a.Port()))
			}
		}
	}
	var contacts []invite.Contact
	for _, p := range st.Peers {
		if p.Trusted || len(contacts) == invite.MaxContacts {
			continue
		}
		k, err1 := key.ParsePublic(p.Key)
		a, err2 := netip.ParseAddrPort(p.Endpoint)
		if err1 == nil && err2 == nil && a.Port() != 0 && a.Addr().Zone() == "" {
			contacts = append(contacts, invite.Contact{Key: k, Addr: netip.AddrPortFrom(a.Addr().Unmap(), a.Port())})
		}
	}
	return addrs, contacts
}

func contains(as []netip.AddrPort, a netip.AddrPort) bool {
	for _, x := range as {
		if x == a {
			return true
		}
	}
	return false
}
