package netsim_test

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/whnet/wh/netsim"
)

func TestNATKindString(t *testing.T) {
	for kind, want := range map[netsim.NATKind]string{
		netsim.None: "none", netsim.FullCone: "full", netsim.Restricted: "restricted",
		netsim.Symmetric: "symmetric", 7: "NATKind(7)",
	} {
		if got := kind.String(); got != want {
			t.Errorf("NATKind(%d).String() = %q, want %q", int(kind), got, want)
		}
	}
}

// TestSetupPanics checks that topology mistakes panic with a message that
// says what is wrong.
func TestSetupPanics(t *testing.T) {
	tests := []struct {
		name  string
		setup func(n *netsim.Internet)
		want  string
	}{
		{name: "no_address", setup: func(n *netsim.Internet) { n.AddHost() }, want: "without an address"},
		{name: "duplicate_public", setup: func(n *netsim.Internet) {
			n.AddHost(ip("203.0.113.1"))
			n.AddNAT(netsim.Restricted, ip("203.0.113.1"), prefix("10.0.0.0/8"))
		}, want: "taken"},
		{name: "duplicate_ipv6", setup: func(n *netsim.Internet) {
			n.AddHost(ip("2001:db8::1"))
			r := n.AddNAT(netsim.Restricted, ip("203.0.113.1"), prefix("10.0.0.0/8"))
			r.AddHost(ip("10.0.0.1"), ip("2001:db8::1"))
		}, want: "taken"},
		{name: "outside_lan", setup: func(n *netsim.Internet) {
			n.AddNAT(netsim.Restricted, ip("203.0.113.1"), prefix("10.0.0.0/8")).AddHost(ip("192.168.1.1"))
		}, want: "outside the LAN"},
		{name: "ipv6_lan", setup: func(n *netsim.Internet) {
			n.AddNAT(netsim.Restricted, ip("203.0.113.1"), prefix("fd00::/64"))
		}, want: "not an IPv4 prefix"},
		{name: "ipv6_wan", setup: func(n *netsim.Internet) {
			n.AddNAT(netsim.Restricted, ip("2001:db8::1"), prefix("10.0.0.0/8"))
		}, want: "not IPv4"},
		{name: "overlapping_routed_lans", setup: func(n *netsim.Internet) {
			n.AddNAT(netsim.None, ip("203.0.113.1"), prefix("198.51.100.0/24"))
			n.AddNAT(netsim.None, ip("203.0.113.2"), prefix("198.51.100.128/25"))
		}, want: "overlaps"},
		{name: "bad_loss", setup: func(n *netsim.Internet) { n.AddHost(ip("203.0.113.1")).SetLink(0, 0, 1.5) }, want: "invalid link"},
		{name: "unknown_kind", setup: func(n *netsim.Internet) {
			n.AddNAT(netsim.NATKind(9), ip("203.0.113.1"), prefix("10.0.0.0/8"))
		}, want: "unknown"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			defer func() {
				r := recover()
				if msg := fmt.Sprint(r); r == nil || !strings.Contains(msg, tc.want) {
					t.Errorf("panic %v, want one containing %q", r, tc.want)
				}
			}()
			tc.setup(netsim.New(netsim.Options{}))
		})
	}
}

// mesh builds hosts public and behind NATs of every kind (ten per NAT,
// some behind a CGN), each with one conn on port 7.
func mesh(n *netsim.Internet, hosts int) []*netsim.Conn {
	var conns []*netsim.Conn
	var r *netsim.Router
	for i := range hosts {
		var h *netsim.Host
		switch kind := netsim.NATKind(i / 10 % 5); {
		case kind == netsim.None:
			h = n.AddHost(netip.AddrFrom4([4]byte{203, byte(i >> 16), byte(i >> 8), byte(i)}))
		case i%10 == 0 && kind == 4: // a CGN with a home router behind it
			cgn := n.AddNAT(netsim.Restricted, netip.AddrFrom4([4]byte{198, byte(i >> 16), byte(i >> 8), byte(i)}), prefix("100.64.0.0/10"))
			r = cgn.AddNAT(netsim.Restricted, ip("100.64.0.2"), prefix("192.168.0.0/16"))
		case i%10 == 0:
			r = n.AddNAT(kind, netip.AddrFrom4([4]byte{198, byte(i >> 16), byte(i >> 8), byte(i)}), prefix("192.168.0.0/16"))
		}
		if h == nil {
			if r == nil {
				panic("mesh: no router")
			}
			h = r.AddHost(netip.AddrFrom4([4]byte{192, 168, 0, byte(10 + i%10)}))
		}
		c, err := h.ListenUDP(7)
		if err != nil {
			panic(err)
		}
		conns = append(conns, c)
	}
	return conns
}

// TestMesh runs a DHT-like load in fake time: every host sends to public
// hosts, which answer to the source they see, so NATs map and filter in
// both directions. Every packet must be accounted for and every NATed
// host must hear back.
func TestMesh(t *testing.T) {
	hosts, perHost := 500, 20
	if testing.Short() {
		hosts, perHost = 100, 10
	}
	synctest.Test(t, func(t *testing.T) {
		n := netsim.New(netsim.Options{Seed: 7, Latency: 40 * time.Millisecond, Jitter: 20 * time.Millisecond, Loss: 0.01})
		conns := mesh(n, hosts)
		var public []netip.AddrPort
		for i, c := range conns {
			if i/10%5 == 0 {
				public = append(public, c.LocalAddrPort())
			}
		}
		answered := make([]int, len(conns))
		var wg sync.WaitGroup
		for i, c := range conns {
			wg.Go(func() { // reader: answer requests, count answers
				buf := make([]byte, 64)
				for {
					c.SetReadDeadline(time.Now().Add(2 * time.Second))
					nr, from, err := c.ReadFromUDPAddrPort(buf)
					if err != nil {
						return
					}
					if buf[0] == 'q' {
						c.WriteToUDPAddrPort([]byte("a"), from)
					} else {
						answered[i]++
					}
					_ = nr
				}
			})
			wg.Go(func() { // sender
				rng := rand.New(rand.NewPCG(uint64(i), 0))
				for range perHost {
					c.WriteToUDPAddrPort([]byte("q"), public[rng.IntN(len(public))])
					time.Sleep(time.Duration(rng.IntN(100)) * time.Millisecond)
				}
			})
		}
		wg.Wait()
		for _, c := range conns {
			c.Close()
		}
		s := checkAccounted(t, n)
		t.Logf("%d hosts: %+v", hosts, s)
		for i, a := range answered {
			if a == 0 {
				t.Errorf("host %d (%v) got no answer", i, conns[i].LocalAddrPort())
			}
		}
		if s.Filtered != 0 || s.Overflow != 0 || s.Unreachable != 0 {
			t.Errorf("stats %+v: want only losses", s)
		}
	})
}

// TestRace hammers one Internet from many goroutines in real time, with
// topology changes, flushes, kills and deadlines, for the race detector.
func TestRace(t *testing.T) {
	n := netsim.New(netsim.Options{Seed: 1, Latency: time.Millisecond, Jitter: time.Millisecond, Loss: 0.05, QueueLen: 16})
	conns := mesh(n, 60)
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for i, c := range conns {
		wg.Go(func() {
			buf := make([]byte, 64)
			for {
				c.SetReadDeadline(time.Now().Add(5 * time.Millisecond))
				_, from, err := c.ReadFromUDPAddrPort(buf)
				select {
				case <-stop:
					return
				default:
				}
				if err == nil && buf[0] == 'q' {
					c.WriteToUDPAddrPort([]byte("a"), from)
				}
			}
		})
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(i), 1))
			for range 100 {
				c.WriteToUDPAddrPort([]byte("q"), conns[rng.IntN(len(conns))].LocalAddrPort())
				c.WriteTo([]byte("q"), conns[rng.IntN(10)].LocalAddr())
			}
		})
	}
	wg.Go(func() { // topology and state changes while traffic flows
		r := n.AddNAT(netsim.Symmetric, ip("198.18.0.1"), prefix("10.0.0.0/8"))
		for i := range 50 {
			h := r.AddHost(netip.AddrFrom4([4]byte{10, 0, 0, byte(i + 1)}))
			c, err := h.ListenUDP(0)
			if err != nil {
				t.Error(err)
				return
			}
			c.WriteToUDPAddrPort([]byte("q"), conns[i].LocalAddrPort())
			r.Flush()
			r.SetHairpin(i%2 == 0)
			r.SetMappingTimeout(time.Duration(i+1) * time.Millisecond)
			h.SetLink(time.Millisecond, 0, 0.1)
			h.Kill()
			h.Revive()
			n.Stats()
			c.Close()
			time.Sleep(time.Millisecond)
		}
	})
	time.Sleep(200 * time.Millisecond)
	close(stop)
	for _, c := range conns {
		c.SetDeadline(time.Now()) // wake the readers
	}
	wg.Wait()
	for _, c := range conns {
		c.Close()
	}
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(time.Millisecond) { // let packets in flight land
		s := n.Stats()
		if s.Delivered+s.Lost+s.Filtered+s.Overflow+s.Unreachable == s.Sent || time.Now().After(deadline) {
			break
		}
	}
	checkAccounted(t, n)
}
