package main

import (
	"strings"
	"testing"

	"github.com/whnet/wh/node"
)

func TestHealth(t *testing.T) {
	peer := func(name string, p node.Path) node.PeerStatus {
		return node.PeerStatus{Hostname: name, Key: name + "KEY", Path: p}
	}
	member := func(contacts int, peers ...node.PeerStatus) node.Status {
		return node.Status{Addresses: []string{"10.0.42.2/24"}, DHT: node.DHTStatus{Contacts: contacts}, Peers: peers}
	}
	headless := node.Status{Addresses: []string{}}
	tests := []struct {
		name  string
		st    node.Status
		level string
		ok    bool
		say   string
	}{
		{"live_alone", member(0), healthLive, true, "live"},
		{"headless_alone_ready", headless, healthReady, true, "headless"},
		{"headless_peers", headless, healthPeers, true, "headless"},
		{"no_dht", member(0, peer("bob", node.PathDirect)), healthReady, false, "no DHT node"},
		{"no_peer_reached", member(3, peer("bob", node.PathConnecting), peer("carol", node.PathOffline)), healthReady, false, "no peer reached"},
		{"one_direct", member(3, peer("bob", node.PathDirect), peer("carol", node.PathOffline)), healthReady, true, "1/2 peers"},
		{"one_relayed", member(3, peer("bob", node.PathRelay)), healthReady, true, "1/1 peers"},
		{"no_trusted_peers", member(1), healthReady, true, "0/0 peers"},
		{"peers_missing", member(3, peer("bob", node.PathDirect), peer("carol", node.PathConnecting)), healthPeers, false, "carol"},
		{"peers_all", member(3, peer("bob", node.PathDirect), peer("carol", node.PathRelay)), healthPeers, true, "2/2 peers"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ok, msg := health(tc.st, tc.level)
			if ok != tc.ok || !strings.Contains(msg, tc.say) {
				t.Errorf("health(%s) = %v %q, want %v and a message with %q", tc.level, ok, msg, tc.ok, tc.say)
			}
		})
	}
}

func TestHealthUsage(t *testing.T) {
	for _, args := range [][]string{{"health", "all", "sideways"}, {"health", "a", "b", "c"}} {
		if _, _, code := wh(t, "", args...); code != exitUsage {
			t.Errorf("wh %v: exit %d, want %d", args, code, exitUsage)
		}
	}
}
