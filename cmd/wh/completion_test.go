package main

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/whnet/wh/node"
)

// complete runs `wh __complete args...` against fake daemons and returns
// the candidates.
func complete(t *testing.T, d daemons, args ...string) []string {
	t.Helper()
	var out, errb bytes.Buffer
	root := newRootCmd(stdio{In: strings.NewReader(""), Out: &out, Err: &errb})
	addCompletions(root, d)
	root.SetArgs(append([]string{"__complete"}, args...))
	if err := root.Execute(); err != nil {
		t.Fatalf("wh __complete %q: %v (%s)", args, err, errb.String())
	}
	var got []string
	for _, l := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		if l != "" && !strings.HasPrefix(l, ":") {
			got = append(got, strings.SplitN(l, "\t", 2)[0])
		}
	}
	return got
}

func TestCompletionFromDaemons(t *testing.T) {
	const aliceKey = "zW-1lBeQ7IkT6NW6hL_NsV4eOPOwJi_rt1vO-omOEmQ"
	const bobKey = "g878Bf9ZDc4IzFSUhWFTO1VYFVmHD5XfvEsVn83Dsho"
	d := daemons{
		interfaces: func() ([]string, error) { return []string{"wh-home", "wh-work"}, nil },
		status: func(_ context.Context, iface string) (node.Status, error) {
			switch iface {
			case "wh-home":
				return node.Status{Peers: []node.PeerStatus{{Hostname: "alice", Key: aliceKey}, {Hostname: "bob", Key: bobKey}}}, nil
			case "wh-work":
				return node.Status{Peers: []node.PeerStatus{{Hostname: "alfred", Key: bobKey}}}, nil
			}
			return node.Status{}, errors.New("not running")
		},
	}
	tests := []struct {
		args []string
		want []string
	}{
		{[]string{"ping", "wh-"}, []string{"wh-home", "wh-work"}},
		{[]string{"ping", "wh-home", "al"}, []string{"alice"}},
		{[]string{"ping", "wh-work", "al"}, []string{"alfred"}},
		{[]string{"ping", "wh-home", "g8"}, []string{bobKey}},
		{[]string{"ping", "wh-home", ""}, []string{"alice", aliceKey, "bob", bobKey}},
		{[]string{"ping", "wh-gone", ""}, nil},
		{[]string{"ping", "wh-home", "bob", ""}, nil},
		{[]string{"lookup", "wh-home", "b"}, []string{"bob"}},
		{[]string{"show", "a"}, []string{"all"}},
		{[]string{"show", "wh-home", ""}, []string{"light", "all", "stats"}},
		{[]string{"reload", ""}, []string{"wh-home", "wh-work", "all"}},
		{[]string{"down", ""}, []string{"wh-home", "wh-work"}},
		{[]string{"health", "all", "p"}, []string{"peers"}},
		{[]string{"resolve", "al"}, []string{"alfred", "alice"}},
		{[]string{"up", "net.conf", "m"}, []string{"mode"}},
		{[]string{"up", "net.conf", "mode", ""}, []string{"unknown", "direct", "nat"}},
		{[]string{"up", "net.conf", "mode", "nat", "d"}, []string{"dns"}},
		{[]string{"up", "net.conf", "dns", "off", ""}, []string{"interface", "listen-port", "mode", "private-key"}},
	}
	for _, tc := range tests {
		if got := complete(t, d, tc.args...); !slices.Equal(got, tc.want) {
			t.Errorf("wh %s<TAB> = %q, want %q", strings.Join(tc.args, " "), got, tc.want)
		}
	}
}
