package netsim_test

import (
	"net/netip"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/whnet/wh/netsim"
)

// labNet is the lab's setup of NOTES-wireguard-go.md §7: two public
// reflectors and a stranger on the internet, and a router with host H
// (192.168.1.10, conn on port 4000) on its LAN.
type labNet struct {
	n            *netsim.Internet
	r            *netsim.Router
	h            *netsim.Host
	hc           *netsim.Conn // H's conn on port 4000
	r1, r2       *netsim.Conn // reflectors, port 7
	r1b          *netsim.Conn // reflector 1 on another port, 8
	stranger     *netsim.Conn // a public host H never sent to
	r1ap, r2ap   netip.AddrPort
	routerPublic netip.Addr
}

func newLab(t *testing.T, kind netsim.NATKind) *labNet {
	t.Helper()
	l := &labNet{n: newInternet(t, netsim.Options{Seed: 1, Latency: 10 * time.Millisecond})}
	ref1 := l.n.AddHost(ip("203.0.113.1"))
	ref2 := l.n.AddHost(ip("203.0.113.2"))
	l.r1, l.r1b, l.r2 = listen(t, ref1, 7), listen(t, ref1, 8), listen(t, ref2, 7)
	l.stranger = listen(t, l.n.AddHost(ip("203.0.113.3")), 7)
	l.r1ap, l.r2ap = l.r1.LocalAddrPort(), l.r2.LocalAddrPort()
	l.routerPublic = ip("198.51.100.1")
	l.r = l.n.AddNAT(kind, l.routerPublic, prefix("192.168.1.0/24"))
	l.h = l.r.AddHost(ip("192.168.1.10"))
	l.hc = listen(t, l.h, 4000)
	return l
}

// observe sends from H to a reflector and returns the source it sees.
func (l *labNet) observe(t *testing.T, refl *netsim.Conn) netip.AddrPort {
	t.Helper()
	send(t, l.hc, refl.LocalAddrPort(), "probe")
	_, from := recv(t, refl)
	return from
}

// reaches reports whether a packet from c to H's external endpoint ext
// gets to H.
func (l *labNet) reaches(t *testing.T, c *netsim.Conn, ext netip.AddrPort) bool {
	t.Helper()
	send(t, c, ext, "in")
	msg, from, ok := tryRecv(t, l.hc, waitFor)
	if ok && (msg != "in" || from != c.LocalAddrPort()) {
		t.Fatalf("H got %q from %v, want \"in\" from %v", msg, from, c.LocalAddrPort())
	}
	return ok
}

// TestNATKinds mirrors the lab's table (NOTES-wireguard-go.md §7): the
// external endpoints H gets towards two reflectors, and which inbound
// packets reach H after it has sent to both.
func TestNATKinds(t *testing.T) {
	type inbound struct {
		Reply          bool // reflector 1 answers from the port H sent to
		OtherPort      bool // reflector 1 from another port
		OtherReflector bool // reflector 2 to the endpoint reflector 1 saw
		Stranger       bool // a host H never sent to
		Unmapped       bool // a stranger to a port with no mapping (H listens on it)
	}
	tests := []struct {
		kind      netsim.NATKind
		samePort  bool // both reflectors see one endpoint
		preserved bool // ... which keeps H's port 4000
		public    bool // ... on the router's public address
		want      inbound
	}{
		{kind: netsim.None, samePort: true, preserved: true,
			want: inbound{Reply: true, OtherPort: true, OtherReflector: true, Stranger: true, Unmapped: true}},
		{kind: netsim.FullCone, samePort: true, preserved: true, public: true,
			want: inbound{Reply: true, OtherPort: true, OtherReflector: true, Stranger: true, Unmapped: true}},
		{kind: netsim.Restricted, samePort: true, preserved: true, public: true,
			want: inbound{Reply: true, OtherReflector: true}},
		{kind: netsim.Symmetric, public: true,
			want: inbound{Reply: true}},
	}
	for _, tc := range tests {
		t.Run(tc.kind.String(), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				l := newLab(t, tc.kind)
				unmapped := listen(t, l.h, 5000)
				e1, e2 := l.observe(t, l.r1), l.observe(t, l.r2)
				if got := e1 == e2; got != tc.samePort {
					t.Errorf("endpoints towards reflectors %v and %v: same = %v, want %v", e1, e2, got, tc.samePort)
				}
				if got := e1.Port() == 4000; tc.preserved && !got {
					t.Errorf("external port %d, want 4000 kept", e1.Port())
				}
				wantAddr := ip("192.168.1.10")
				if tc.public {
					wantAddr = l.routerPublic
				}
				if e1.Addr() != wantAddr || e2.Addr() != wantAddr {
					t.Errorf("external addresses %v, %v; want %v", e1.Addr(), e2.Addr(), wantAddr)
				}

				filteredBefore := l.n.Stats().Filtered
				var got inbound
				got.Reply = l.reaches(t, l.r1, e1)
				got.OtherPort = l.reaches(t, l.r1b, e1)
				got.OtherReflector = l.reaches(t, l.r2, e1)
				got.Stranger = l.reaches(t, l.stranger, e1)
				send(t, l.stranger, netip.AddrPortFrom(e1.Addr(), 5000), "in")
				_, _, got.Unmapped = tryRecv(t, unmapped, waitFor)
				if diff := cmp.Diff(tc.want, got); diff != "" {
					t.Errorf("inbound (-want +got):\n%s", diff)
				}
				s := checkAccounted(t, l.n)
				blocked := 0
				for _, ok := range []bool{tc.want.Reply, tc.want.OtherPort, tc.want.OtherReflector, tc.want.Stranger, tc.want.Unmapped} {
					if !ok {
						blocked++
					}
				}
				if f := s.Filtered - filteredBefore; f != uint64(blocked) {
					t.Errorf("Stats.Filtered grew by %d, want %d", f, blocked)
				}
			})
		})
	}
}

// TestMappingTimeout checks that a mapping lives for the timeout after the
// last outbound packet, that outbound traffic refreshes it and inbound does
// not, and what a new mapping looks like after expiry.
func TestMappingTimeout(t *testing.T) {
	const timeout = 30 * time.Second
	tests := []struct {
		kind netsim.NATKind
		// samePortAfter: the mapping made after expiry has the old port.
		samePortAfter bool
	}{
		{kind: netsim.FullCone, samePortAfter: true},
		{kind: netsim.Restricted, samePortAfter: true},
		{kind: netsim.Symmetric, samePortAfter: false},
	}
	for _, tc := range tests {
		t.Run(tc.kind.String(), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				n := newInternet(t, netsim.Options{Seed: 3, MappingTimeout: timeout})
				refl := listen(t, n.AddHost(ip("203.0.113.1")), 7)
				r := n.AddNAT(tc.kind, ip("198.51.100.1"), prefix("192.168.1.0/24"))
				r.AddHost(ip("192.168.1.2")) // the full cone's default host, not H
				hc := listen(t, r.AddHost(ip("192.168.1.10")), 4000)

				send(t, hc, refl.LocalAddrPort(), "out")
				_, ext := recv(t, refl)
				start := time.Now()

				// Inbound replies up to just before the timeout get in and
				// do not refresh the mapping.
				for _, at := range []time.Duration{10 * time.Second, 20 * time.Second, timeout - time.Millisecond} {
					time.Sleep(at - time.Since(start))
					send(t, refl, ext, "reply")
					if _, _, ok := tryRecv(t, hc, time.Millisecond); !ok {
						t.Fatalf("reply %v after the last outbound packet was dropped", at)
					}
				}
				time.Sleep(timeout - time.Since(start))
				send(t, refl, ext, "late")
				if msg, _, ok := tryRecv(t, hc, time.Millisecond); ok {
					t.Fatalf("got %q at the timeout, want the mapping expired", msg)
				}

				// Outbound packets every 20 s keep a new mapping for 100 s.
				send(t, hc, refl.LocalAddrPort(), "out")
				_, ext2 := recv(t, refl)
				if got := ext2 == ext; got != tc.samePortAfter {
					t.Errorf("mapping after expiry %v, before %v: same = %v, want %v", ext2, ext, got, tc.samePortAfter)
				}
				for range 5 {
					time.Sleep(20 * time.Second)
					send(t, hc, refl.LocalAddrPort(), "keepalive")
					recv(t, refl)
				}
				time.Sleep(timeout - time.Millisecond)
				send(t, refl, ext2, "reply")
				if _, _, ok := tryRecv(t, hc, time.Millisecond); !ok {
					t.Fatal("reply dropped although keepalives refreshed the mapping")
				}
			})
		})
	}
}

// TestSetMappingTimeout checks a router's own timeout, like the lab's
// nf_conntrack_udp_timeout.
func TestSetMappingTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := newInternet(t, netsim.Options{})
		refl := listen(t, n.AddHost(ip("203.0.113.1")), 7)
		r := n.AddNAT(netsim.Restricted, ip("198.51.100.1"), prefix("192.168.1.0/24"))
		r.SetMappingTimeout(5 * time.Second)
		hc := listen(t, r.AddHost(ip("192.168.1.10")), 4000)
		send(t, hc, refl.LocalAddrPort(), "out")
		_, ext := recv(t, refl)
		time.Sleep(5 * time.Second)
		send(t, refl, ext, "late")
		quiet(t, hc)
	})
}

// TestRestrictedPermissionPerRemote checks that a restricted NAT lets a
// remote in only within the timeout after H last sent to that remote, even
// while traffic to another remote keeps the mapping alive.
func TestRestrictedPermissionPerRemote(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := newInternet(t, netsim.Options{MappingTimeout: 30 * time.Second})
		r1 := listen(t, n.AddHost(ip("203.0.113.1")), 7)
		r2 := listen(t, n.AddHost(ip("203.0.113.2")), 7)
		r := n.AddNAT(netsim.Restricted, ip("198.51.100.1"), prefix("192.168.1.0/24"))
		hc := listen(t, r.AddHost(ip("192.168.1.10")), 4000)
		send(t, hc, r2.LocalAddrPort(), "once")
		_, ext := recv(t, r2)
		for range 4 {
			time.Sleep(10 * time.Second)
			send(t, hc, r1.LocalAddrPort(), "keepalive")
			recv(t, r1)
		}
		send(t, r2, ext, "stale")
		quiet(t, hc)
		send(t, r1, ext, "fresh")
		recv(t, hc)
	})
}

// TestFlush checks that a router reboot drops every mapping.
func TestFlush(t *testing.T) {
	for _, kind := range []netsim.NATKind{netsim.Restricted, netsim.Symmetric} {
		t.Run(kind.String(), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				l := newLab(t, kind)
				ext := l.observe(t, l.r1)
				l.r.Flush()
				send(t, l.r1, ext, "after flush")
				quiet(t, l.hc)
				ext2 := l.observe(t, l.r1)
				if got, want := ext2 == ext, kind != netsim.Symmetric; got != want {
					t.Errorf("mapping after flush %v, before %v: same = %v, want %v", ext2, ext, got, want)
				}
				send(t, l.r1, ext2, "reply")
				recv(t, l.hc)
			})
		})
	}
}

// TestCGNAT is the lab's cgnat row: a restricted router whose WAN is on
// another restricted router's LAN. The mapping stays
// endpoint-independent; only the outer router's address is seen outside.
func TestCGNAT(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLab(t, netsim.Restricted) // H sits on the outer LAN; unused here
		cgn := l.n.AddNAT(netsim.Restricted, ip("198.51.100.2"), prefix("100.64.0.0/10"))
		home := cgn.AddNAT(netsim.Restricted, ip("100.64.0.2"), prefix("192.168.1.0/24"))
		d := listen(t, home.AddHost(ip("192.168.1.10")), 4000) // same LAN address as H, other LAN
		neighbour := listen(t, cgn.AddHost(ip("100.64.0.9")), 9)

		send(t, d, l.r1ap, "probe")
		_, e1 := recv(t, l.r1)
		send(t, d, l.r2ap, "probe")
		_, e2 := recv(t, l.r2)
		if want := ipport("198.51.100.2:4000"); e1 != want || e2 != want {
			t.Errorf("external endpoints %v, %v; want %v for both", e1, e2, want)
		}
		send(t, l.r1, e1, "reply")
		if msg, from := recv(t, d); msg != "reply" || from != l.r1ap {
			t.Errorf("D got %q from %v, want reply from %v", msg, from, l.r1ap)
		}
		send(t, l.stranger, e1, "unsolicited")
		quiet(t, d)

		// On the CGN's LAN, D is seen behind its home router's address.
		send(t, d, neighbour.LocalAddrPort(), "hello")
		if _, from := recv(t, neighbour); from != ipport("100.64.0.2:4000") {
			t.Errorf("CGN neighbour sees D as %v, want 100.64.0.2:4000", from)
		}
		// H, with the same LAN address on another LAN, is not disturbed.
		quiet(t, l.hc)
		checkAccounted(t, l.n)
	})
}

// TestSameLAN is the lab's samelan row, plus direct LAN traffic and
// hairpinning.
func TestSameLAN(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := newInternet(t, netsim.Options{Seed: 5, Latency: 20 * time.Millisecond})
		r1 := listen(t, n.AddHost(ip("203.0.113.1")), 7)
		r2 := listen(t, n.AddHost(ip("203.0.113.2")), 7)
		r := n.AddNAT(netsim.Restricted, ip("198.51.100.1"), prefix("192.168.1.0/24"))
		a := listen(t, r.AddHost(ip("192.168.1.10")), 4000)
		b := listen(t, r.AddHost(ip("192.168.1.11")), 4000)

		send(t, a, r1.LocalAddrPort(), "a")
		_, extA := recv(t, r1)
		send(t, b, r1.LocalAddrPort(), "b")
		_, extB := recv(t, r1)
		send(t, b, r2.LocalAddrPort(), "b")
		_, extB2 := recv(t, r2)
		if extA != ipport("198.51.100.1:4000") {
			t.Errorf("first host's endpoint %v, want 198.51.100.1:4000", extA)
		}
		if extB.Port() == 4000 || extB != extB2 {
			t.Errorf("second host's endpoints %v and %v: want one endpoint, not port 4000", extB, extB2)
		}

		// Direct on the LAN: no NAT, no core latency.
		start := time.Now()
		send(t, a, b.LocalAddrPort(), "lan")
		if msg, from := recv(t, b); msg != "lan" || from != a.LocalAddrPort() {
			t.Errorf("b got %q from %v, want lan from %v", msg, from, a.LocalAddrPort())
		}
		if d := time.Since(start); d != 0 {
			t.Errorf("LAN packet took %v, want 0", d)
		}

		// To the other's public endpoint: hairpinning is off by default.
		before := n.Stats().Filtered
		send(t, a, extB, "hairpin")
		quiet(t, b)
		if got := n.Stats().Filtered - before; got != 1 {
			t.Errorf("hairpin off: Filtered grew by %d, want 1", got)
		}

		// With hairpinning, a restricted router still filters: b must have
		// sent to a's endpoint first, as in a hole punch.
		r.SetHairpin(true)
		send(t, b, extA, "punch") // opens b's mapping to extA; a's filters it
		quiet(t, a)
		send(t, a, extB, "hairpin")
		msg, from := recv(t, b)
		if msg != "hairpin" || from != extA {
			t.Errorf("b got %q from %v, want hairpin from %v", msg, from, extA)
		}
		checkAccounted(t, n)
	})
}

// TestRoutedLAN checks a router of kind None: its LAN prefix is routed, so
// its hosts are reachable by their own addresses.
func TestRoutedLAN(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := newInternet(t, netsim.Options{})
		pub := listen(t, n.AddHost(ip("203.0.113.1")), 7)
		r := n.AddNAT(netsim.None, ip("198.51.100.1"), prefix("198.51.100.128/25"))
		h := listen(t, r.AddHost(ip("198.51.100.130")), 4000)

		send(t, pub, h.LocalAddrPort(), "in")
		if _, from := recv(t, h); from != pub.LocalAddrPort() {
			t.Errorf("from %v, want %v", from, pub.LocalAddrPort())
		}
		send(t, h, pub.LocalAddrPort(), "out")
		if _, from := recv(t, pub); from != h.LocalAddrPort() {
			t.Errorf("from %v, want %v", from, h.LocalAddrPort())
		}
		before := n.Stats().Unreachable
		send(t, pub, ipport("198.51.100.131:4000"), "nobody")   // in the prefix, no host
		send(t, pub, ipport("198.51.100.1:4000"), "the router") // nothing listens there
		if got := n.Stats().Unreachable - before; got != 2 {
			t.Errorf("Unreachable grew by %d, want 2", got)
		}
	})
}

// TestSymmetricPortsRepeat checks that the ports a symmetric NAT picks
// come from the seed.
func TestSymmetricPortsRepeat(t *testing.T) {
	ports := func(seed int64) []uint16 {
		var got []uint16
		synctest.Test(t, func(t *testing.T) {
			n := newInternet(t, netsim.Options{Seed: seed})
			refl := listen(t, n.AddHost(ip("203.0.113.1")), 7)
			r := n.AddNAT(netsim.Symmetric, ip("198.51.100.1"), prefix("192.168.1.0/24"))
			hc := listen(t, r.AddHost(ip("192.168.1.10")), 4000)
			for i := range 5 {
				send(t, hc, netip.AddrPortFrom(refl.LocalAddrPort().Addr(), uint16(7+i%2)), "probe")
				if i%2 == 0 {
					_, from := recv(t, refl)
					got = append(got, from.Port())
				}
				r.Flush()
			}
		})
		return got
	}
	a, b, c := ports(1), ports(1), ports(2)
	if diff := cmp.Diff(a, b); diff != "" {
		t.Errorf("same seed, different ports (-first +second):\n%s", diff)
	}
	if cmp.Equal(a, c) {
		t.Errorf("seeds 1 and 2 gave the same ports %v", a)
	}
}
