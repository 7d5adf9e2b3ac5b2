package resolver

import (
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/miekg/dns"

	"github.com/whnet/wh/orchid"
)

// listenLoopback serves h on 127.0.0.1, port chosen by the kernel.
func listenLoopback(t *testing.T, h *Handler) *Server {
	t.Helper()
	s, err := Listen(h, []netip.AddrPort{netip.MustParseAddrPort("127.0.0.1:0")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

func TestListen(t *testing.T) {
	h := newTestHandler(t, Options{NoForward: true})
	s := listenLoopback(t, h)
	addrs := s.Addrs()
	if len(addrs) != 1 || addrs[0].Port() == 0 || addrs[0].Addr() != netip.MustParseAddr("127.0.0.1") {
		t.Fatalf("Addrs() = %v, want one 127.0.0.1 address with a port", addrs)
	}
	tests := []struct {
		name  string
		net   string
		qname string
		qtype uint16
		want  reply
	}{
		{"udp_A", "udp", "node_a.tutorial.", dns.TypeA, reply{Rcode: "NOERROR", AA: true,
			Answer: []string{"node_a.tutorial.\t60\tIN\tA\t10.0.42.2"}}},
		{"tcp_AAAA", "tcp", "node_a.tutorial.", dns.TypeAAAA, reply{Rcode: "NOERROR", AA: true,
			Answer: []string{"node_a.tutorial.\t60\tIN\tAAAA\t2001:1075:b63:9ef6:5070:2e62:2de:e917"}}},
		{"udp_PTR", "udp", "3.42.0.10.in-addr.arpa.", dns.TypePTR, reply{Rcode: "NOERROR", AA: true,
			Answer: []string{"3.42.0.10.in-addr.arpa.\t60\tIN\tPTR\tnode-b.tutorial."}}},
		{"tcp_NXDOMAIN", "tcp", "nobody.tutorial.", dns.TypeA, reply{Rcode: "NXDOMAIN", AA: true, Ns: []string{soaLine}}},
		{"udp_REFUSED", "udp", "example.com.", dns.TypeA, reply{Rcode: "REFUSED"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := &dns.Client{Net: tt.net, Timeout: 2 * time.Second}
			got, _, err := c.Exchange(new(dns.Msg).SetQuestion(tt.qname, tt.qtype), addrs[0].String())
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, summarize(got)); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

// TestListenSurvivesGarbage sends bytes that are not DNS, then a query.
func TestListenSurvivesGarbage(t *testing.T) {
	h := newTestHandler(t, Options{NoForward: true})
	addr := listenLoopback(t, h).Addrs()[0]
	garbage := [][]byte{
		{},
		{0x00},
		make([]byte, 11), // shorter than a header
		make([]byte, 12), // header, no question
		{0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0xc0, 0x0c, 0, 1, 0, 1}, // self-pointing name
		{0, 1, 0, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, // huge counts
	}
	for _, proto := range []string{"udp", "tcp"} {
		conn, err := net.DialTimeout(proto, addr.String(), 2*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		for _, g := range garbage {
			b := g
			if proto == "tcp" {
				b = append([]byte{byte(len(g) >> 8), byte(len(g))}, g...)
			}
			conn.Write(b)
		}
		conn.Close()
	}
	for _, proto := range []string{"udp", "tcp"} {
		c := &dns.Client{Net: proto, Timeout: 2 * time.Second}
		got, _, err := c.Exchange(new(dns.Msg).SetQuestion("self.tutorial.", dns.TypeA), addr.String())
		if err != nil || len(got.Answer) != 1 {
			t.Errorf("%s query after garbage: %v, %v", proto, got, err)
		}
	}
}

func TestListenErrors(t *testing.T) {
	h := newTestHandler(t, Options{NoForward: true})
	s := listenLoopback(t, h)
	busy := s.Addrs()[0]
	tests := []struct {
		name  string
		addrs []netip.AddrPort
	}{
		{"port_in_use", []netip.AddrPort{busy}},
		{"second_address_in_use", []netip.AddrPort{netip.MustParseAddrPort("127.0.0.1:0"), busy}},
		{"not_a_local_address", []netip.AddrPort{netip.MustParseAddrPort("192.0.2.1:0")}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if s, err := Listen(h, tt.addrs); err == nil {
				s.Close()
				t.Fatalf("Listen(%v) succeeded", tt.addrs)
			}
		})
	}
	// The failed attempts released what they opened: the first address
	// of second_address_in_use is free again, as any other.
	s2 := listenLoopback(t, h)
	if err := s2.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s2.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

func TestListenCloseStopsServing(t *testing.T) {
	h := newTestHandler(t, Options{NoForward: true})
	s, err := Listen(h, []netip.AddrPort{netip.MustParseAddrPort("127.0.0.1:0")})
	if err != nil {
		t.Fatal(err)
	}
	addr := s.Addrs()[0]
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	c := &dns.Client{Net: "tcp", Timeout: time.Second}
	if _, _, err := c.Exchange(new(dns.Msg).SetQuestion("self.tutorial.", dns.TypeA), addr.String()); err == nil {
		t.Error("server still answers over TCP after Close")
	}
	// The ports are free again.
	s, err = Listen(h, []netip.AddrPort{addr})
	if err != nil {
		t.Fatalf("Listen again on %v: %v", addr, err)
	}
	s.Close()
}

func TestLoopbackAddr(t *testing.T) {
	seen := map[netip.Addr]string{}
	for _, iface := range []string{"wh0", "wh1", "wh-tutorial", "a", "wg0"} {
		a := LoopbackAddr(iface)
		b := a.As4()
		if b[0] != 127 || b[1] != 119 || b[3] == 0 || b[3] == 255 {
			t.Errorf("LoopbackAddr(%q) = %v, want 127.119.x.y, y not 0 or 255", iface, a)
		}
		if a != LoopbackAddr(iface) {
			t.Errorf("LoopbackAddr(%q) is not stable", iface)
		}
		if other, dup := seen[a]; dup {
			t.Errorf("LoopbackAddr(%q) = LoopbackAddr(%q) = %v", iface, other, a)
		}
		seen[a] = iface
	}
}

func TestPacketConnHidesUDPConnOnlyForBoundAddresses(t *testing.T) {
	pc, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	tests := []struct {
		addr      string
		wantPlain bool
	}{
		{"127.0.0.1:53", true},
		{"[2001:db8::1]:53", true},
		{"0.0.0.0:53", false}, // answers need the query's destination address
		{"[::]:53", false},
	}
	for _, tt := range tests {
		t.Run(tt.addr, func(t *testing.T) {
			_, plain := packetConn(pc, netip.MustParseAddrPort(tt.addr)).(plainPacketConn)
			if plain != tt.wantPlain {
				t.Errorf("plain = %v, want %v", plain, tt.wantPlain)
			}
		})
	}
}

// TestClientPrefixes: a listener serves loopback, ORCHID and on-link
// sources of its interface, and nobody else.
func TestClientPrefixes(t *testing.T) {
	ps := clientPrefixes{orchid.Prefix, netip.MustParsePrefix("10.0.42.0/24")}
	for _, tc := range []struct {
		src  string
		want bool
	}{
		{"127.0.0.1", true}, {"127.119.3.4", true}, {"::1", true}, {"::ffff:127.0.0.1", true},
		{"10.0.42.7", true}, {"::ffff:10.0.42.7", true}, {"2001:20::1", true},
		{"10.0.43.7", false}, {"192.168.1.5", false}, {"fd00::1", false}, {"2001:db8::1", false},
		{"invalid", false},
	} {
		src, _ := netip.ParseAddr(tc.src)
		if got := ps.allows(src); got != tc.want {
			t.Errorf("allows(%s) = %v, want %v", tc.src, got, tc.want)
		}
	}
	// A loopback listener needs no interface lookup: loopback sources only,
	// and ORCHIDs.
	lo, err := allowedSources(netip.MustParseAddr("127.0.0.1"))
	if err != nil || len(lo) != 1 || lo[0] != orchid.Prefix {
		t.Errorf("allowedSources(127.0.0.1) = %v, %v", lo, err)
	}
}
