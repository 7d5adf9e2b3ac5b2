package main

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/whnet/wh/node"
)

// TestRenderUserspace: show says a node is userspace, and where its SOCKS5
// server listens.
func TestRenderUserspace(t *testing.T) {
	st := node.Status{Interface: "wh-x", Network: "home", Addresses: []string{"10.0.0.2/24"},
		DNS: "none", Userspace: true, SOCKS5: "127.0.0.1:1080"}
	var b bytes.Buffer
	renderStatus(&b, st, false, time.Now())
	out := b.String()
	for _, want := range []string{"interface wh-x network home <USERSPACE>", ", socks5: 127.0.0.1:1080"} {
		if !strings.Contains(out, want) {
			t.Errorf("show does not say %q:\n%s", want, out)
		}
	}
	st.Userspace, st.SOCKS5 = false, ""
	b.Reset()
	renderStatus(&b, st, false, time.Now())
	if strings.Contains(b.String(), "USERSPACE") || strings.Contains(b.String(), "socks5") {
		t.Errorf("a TUN node shown as userspace:\n%s", b.String())
	}
}

func TestPeerLineAlias(t *testing.T) {
	now := time.Now()
	un := peerLine(node.PeerStatus{Hostname: "laptop", Key: "OgVwBkEoLpIBTSY2CMUbqyD9he19cOD2kpAEjYQQpS0", Role: "alias", Path: node.PathOffline, Alias: "unclaimed"}, false, now)
	if !strings.HasPrefix(un, "◌  laptop: offline") || !strings.Contains(un, "alias, unclaimed") {
		t.Errorf("unclaimed alias: %q", un)
	}
	line := "trust laptop zW-1lBeQ7IkT6NW6hL_NsV4eOPOwJi_rt1vO-omOEmQ"
	cl := peerLine(node.PeerStatus{Hostname: "laptop", Role: "trust", Path: node.PathDirect, Endpoint: "192.0.2.1:62096", Alias: "claimed", TrustLine: line}, false, now)
	if !strings.Contains(cl, "claimed alias; in the config: "+line) {
		t.Errorf("claimed alias: %q", cl)
	}
}
