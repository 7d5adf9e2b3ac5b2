package main

import (
	"strings"
	"testing"
	"time"

	"github.com/whnet/wh/node"
)

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
