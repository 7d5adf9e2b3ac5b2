package lab

import (
	"context"
	"net/netip"
	"strings"
	"testing"
	"time"
)

// TestLabNAT checks the lab itself: public hosts reach each other, a host
// behind a restricted NAT reaches the internet from its router's address,
// and the internet cannot reach into the LAN.
func TestLabNAT(t *testing.T) {
	l := New(t)
	a := l.Public("a")
	b := l.Public("b")
	r := l.NAT("r", Restricted)
	h := r.Add("h")

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if out, err := a.Run(ctx, "ping", "-c1", "-W2", b.Addr.String()); err != nil {
		t.Fatalf("a→b: %v\n%s", err, out)
	}
	if out, err := h.Run(ctx, "ping", "-c1", "-W2", a.Addr.String()); err != nil {
		t.Fatalf("h→a through NAT: %v\n%s", err, out)
	}
	if out, err := a.Run(ctx, "ping", "-c1", "-W1", h.Addr.String()); err == nil {
		t.Fatalf("a reached a LAN address: %s", out)
	}
	// Carrier-grade NAT: a router behind r translates too, so its host
	// reaches the internet (which has no route to either LAN).
	inner := r.NAT("r2", Restricted)
	h2 := inner.Add("h2")
	if out, err := h2.Run(ctx, "ping", "-c1", "-W2", a.Addr.String()); err != nil {
		t.Fatalf("h2→a through two NATs: %v\n%s", err, out)
	}
	// The lab never routes to the root namespace: no default route on public hosts.
	if out := a.Must("ip", "route"); strings.Contains(out, "default") {
		t.Fatalf("public host has a default route:\n%s", out)
	}
}

// TestLabSharePrefix checks that a lab with SharePrefix hands out every
// public address in one /24, and that NAT works the same there.
func TestLabSharePrefix(t *testing.T) {
	l := New(t)
	l.SharePrefix()
	a := l.Public("a")
	r1 := l.NAT("r1", Restricted)
	r2 := l.NAT("r2", Restricted)
	want := netip.MustParsePrefix("11.22.200.0/24")
	for _, x := range []netip.Addr{a.Addr, r1.WAN, r2.WAN} {
		if !want.Contains(x) {
			t.Errorf("public address %v not in %v", x, want)
		}
	}
	if a.Addr == r1.WAN || r1.WAN == r2.WAN {
		t.Fatalf("addresses collide: %v %v %v", a.Addr, r1.WAN, r2.WAN)
	}
	h := r1.Add("h")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if out, err := h.Run(ctx, "ping", "-c1", "-W2", a.Addr.String()); err != nil {
		t.Fatalf("h→a through NAT: %v\n%s", err, out)
	}
	if out, err := a.Run(ctx, "ping", "-c1", "-W1", h.Addr.String()); err == nil {
		t.Fatalf("a reached a LAN address: %s", out)
	}
}
