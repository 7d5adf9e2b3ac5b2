package resolver

import (
	"errors"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/miekg/dns"
)

// fakeUpstream is a DNS server on 127.0.0.1 that answers every A question
// with 192.0.2.1, and "big.example." with 40 TXT records (too big for 512
// bytes). It records the transports and IDs it saw.
type fakeUpstream struct {
	addr netip.AddrPort

	mu   sync.Mutex
	nets []string // "udp" or "tcp", per query
	ids  []uint16
}

func startUpstream(t *testing.T) *fakeUpstream {
	t.Helper()
	u := &fakeUpstream{}
	handler := dns.HandlerFunc(func(w dns.ResponseWriter, req *dns.Msg) {
		u.mu.Lock()
		u.nets = append(u.nets, w.LocalAddr().Network())
		u.ids = append(u.ids, req.Id)
		u.mu.Unlock()
		m := new(dns.Msg).SetReply(req)
		m.RecursionAvailable = true
		q := req.Question[0]
		switch {
		case q.Name == "big.example.":
			for i := range 40 {
				m.Answer = append(m.Answer, &dns.TXT{
					Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeTXT, Class: dns.ClassINET, Ttl: 30},
					Txt: []string{strings.Repeat("x", 20) + string(rune('a'+i%26))},
				})
			}
		case q.Qtype == dns.TypeA:
			m.Answer = []dns.RR{&dns.A{
				Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 30},
				A:   net.IPv4(192, 0, 2, 1),
			}}
		}
		if opt := req.IsEdns0(); opt != nil {
			m.SetEdns0(opt.UDPSize(), false)
		}
		w.WriteMsg(m)
	})
	pc, ln, err := listenBoth(netip.MustParseAddrPort("127.0.0.1:0"))
	if err != nil {
		t.Fatal(err)
	}
	u.addr = pc.LocalAddr().(*net.UDPAddr).AddrPort()
	for _, srv := range []*dns.Server{{PacketConn: pc, Handler: handler}, {Listener: ln, Handler: handler}} {
		started := make(chan struct{})
		srv.NotifyStartedFunc = func() { close(started) }
		done := make(chan struct{})
		go func() {
			defer close(done)
			srv.ActivateAndServe()
		}()
		<-started
		t.Cleanup(func() {
			srv.Shutdown()
			<-done
		})
	}
	return u
}

func (u *fakeUpstream) seen() (nets []string, ids []uint16) {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]string(nil), u.nets...), append([]uint16(nil), u.ids...)
}

// deadUpstream returns a loopback address where nothing listens.
// silentUpstream returns the address of an open UDP socket that never
// answers.
func silentUpstream(t *testing.T) netip.AddrPort {
	t.Helper()
	pc, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	return pc.LocalAddr().(*net.UDPAddr).AddrPort()
}

func deadUpstream(t *testing.T) netip.AddrPort {
	t.Helper()
	pc, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	ap := pc.LocalAddr().(*net.UDPAddr).AddrPort()
	pc.Close()
	return ap
}

func TestForward(t *testing.T) {
	up := startUpstream(t)
	h := newTestHandler(t, Options{Upstreams: []string{up.addr.String()}, ForwardTimeout: time.Second})

	tests := []struct {
		name  string
		qname string
		tcp   bool
		want  reply
	}{
		{"other_domain", "example.com.", false, reply{Rcode: "NOERROR", Answer: []string{"example.com.\t30\tIN\tA\t192.0.2.1"}}},
		{"unknown_bare_name", "printer.", false, reply{Rcode: "NOERROR", Answer: []string{"printer.\t30\tIN\tA\t192.0.2.1"}}},
		{"over_tcp", "example.org.", true, reply{Rcode: "NOERROR", Answer: []string{"example.org.\t30\tIN\tA\t192.0.2.1"}}},
		{"zone_names_stay_local", "nobody.tutorial.", false, reply{Rcode: "NXDOMAIN", AA: true, Ns: []string{soaLine}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := new(dns.Msg).SetQuestion(tt.qname, dns.TypeA)
			got := serve(t, h, req, tt.tcp)
			if diff := cmp.Diff(tt.want, summarize(got)); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
	nets, _ := up.seen()
	if diff := cmp.Diff([]string{"udp", "udp", "tcp"}, nets); diff != "" {
		t.Errorf("upstream transports (-want +got):\n%s", diff)
	}
}

func TestForwardTruncation(t *testing.T) {
	up := startUpstream(t)
	h := newTestHandler(t, Options{Upstreams: []string{up.addr.String()}, ForwardTimeout: time.Second})
	tests := []struct {
		name      string
		tcp       bool
		edns      uint16
		wantTC    bool
		wantCount int
	}{
		{"udp_no_edns", false, 0, true, -1},
		{"udp_edns_4096", false, 4096, false, 40},
		{"tcp", true, 0, false, 40},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := new(dns.Msg).SetQuestion("big.example.", dns.TypeTXT)
			if tt.edns != 0 {
				req.SetEdns0(tt.edns, false)
			}
			w := &recorder{tcp: tt.tcp}
			h.ServeDNS(w, req)
			if w.msg == nil {
				t.Fatal("no reply")
			}
			if w.msg.Truncated != tt.wantTC {
				t.Errorf("TC = %v, want %v", w.msg.Truncated, tt.wantTC)
			}
			if tt.wantCount >= 0 && len(w.msg.Answer) != tt.wantCount {
				t.Errorf("%d answers, want %d", len(w.msg.Answer), tt.wantCount)
			}
			if !tt.tcp && w.size > udpSize(req) {
				t.Errorf("UDP reply of %d bytes, client accepts %d", w.size, udpSize(req))
			}
		})
	}
}

func TestForwardFailover(t *testing.T) {
	up := startUpstream(t)
	tests := []struct {
		name      string
		upstreams []string
		want      string
	}{
		{"dead_then_live", []string{deadUpstream(t).String(), up.addr.String()}, "NOERROR"},
		// Only the forward timeout moves past a silent upstream: without it
		// ServeDNS would never return.
		{"silent_then_live", []string{silentUpstream(t).String(), up.addr.String()}, "NOERROR"},
		{"all_silent", []string{silentUpstream(t).String()}, "SERVFAIL"},
		{"all_dead", []string{deadUpstream(t).String()}, "SERVFAIL"},
		{"none", []string{}, "SERVFAIL"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newTestHandler(t, Options{Upstreams: tt.upstreams, ForwardTimeout: 300 * time.Millisecond})
			got := ask(t, h, "example.com.", dns.TypeA)
			if rc := dns.RcodeToString[got.Rcode]; rc != tt.want {
				t.Errorf("rcode %s, want %s", rc, tt.want)
			}
		})
	}
}

func TestForwardKeepsClientIDPrivate(t *testing.T) {
	up := startUpstream(t)
	h := newTestHandler(t, Options{Upstreams: []string{up.addr.String()}})
	const queries = 8
	for range queries {
		req := new(dns.Msg).SetQuestion("example.com.", dns.TypeA)
		req.Id = 4242
		serve(t, h, req, false) // checks the reply carries 4242
	}
	_, ids := up.seen()
	for _, id := range ids {
		if id != 4242 {
			return // fresh IDs upstream
		}
	}
	t.Errorf("upstream saw the client's ID in all %d queries: %v", queries, ids)
}

func TestForwardNotToSelf(t *testing.T) {
	self := deadUpstream(t) // a free port we then listen on
	h := newTestHandler(t, Options{Upstreams: []string{self.String()}, ForwardTimeout: 5 * time.Second})
	s, err := Listen(h, []netip.AddrPort{self})
	if err != nil {
		t.Skipf("port %v taken meanwhile: %v", self, err)
	}
	defer s.Close()
	if ups := *h.upstreams.Load(); len(ups) != 0 {
		t.Errorf("upstreams %v, want none: the only one is this resolver", ups)
	}
	if got := ask(t, h, "example.com.", dns.TypeA); got.Rcode != dns.RcodeServerFailure {
		t.Errorf("rcode %s, want SERVFAIL (no upstream but itself)", dns.RcodeToString[got.Rcode])
	}
}

func TestUpstreamsFromResolvConf(t *testing.T) {
	tests := []struct {
		name    string
		content string
		want    []netip.AddrPort
		wantErr bool
	}{
		{"two_servers", "# comment\nsearch corp.example\nnameserver 10.255.255.53\nnameserver 2001:db8::53\noptions ndots:2\n",
			[]netip.AddrPort{netip.MustParseAddrPort("10.255.255.53:53"), netip.MustParseAddrPort("[2001:db8::53]:53")}, false},
		{"link_local_zone", "nameserver fe80::1%eth0\n", []netip.AddrPort{netip.MustParseAddrPort("[fe80::1%eth0]:53")}, false},
		{"no_nameserver", "search x\n", nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "resolv.conf")
			if err := os.WriteFile(path, []byte(tt.content), 0o644); err != nil {
				t.Fatal(err)
			}
			got, err := readResolvConf(path)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, want error %v", err, tt.wantErr)
			}
			if diff := cmp.Diff(tt.want, got, cmp.Comparer(func(a, b netip.AddrPort) bool { return a == b })); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
			h, err := NewHandler(Options{resolvConf: path, Logger: testLogger(t)})
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(len(tt.want), len(*h.upstreams.Load())); diff != "" {
				t.Errorf("handler upstream count (-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseUpstream(t *testing.T) {
	tests := []struct {
		in      string
		want    netip.AddrPort
		wantErr error
	}{
		{"192.0.2.53:5353", netip.MustParseAddrPort("192.0.2.53:5353"), nil},
		{"192.0.2.53", netip.MustParseAddrPort("192.0.2.53:53"), nil},
		{"[2001:db8::1]:53", netip.MustParseAddrPort("[2001:db8::1]:53"), nil},
		{"2001:db8::1", netip.MustParseAddrPort("[2001:db8::1]:53"), nil},
		{"[::ffff:192.0.2.1]:53", netip.MustParseAddrPort("192.0.2.1:53"), nil},
		{"dns.example:53", netip.AddrPort{}, ErrBadUpstream},
		{"", netip.AddrPort{}, ErrBadUpstream},
	}
	for _, tt := range tests {
		name := tt.in
		if name == "" {
			name = "empty"
		}
		t.Run(name, func(t *testing.T) {
			got, err := parseUpstream(tt.in)
			if !errors.Is(err, tt.wantErr) || got != tt.want {
				t.Errorf("parseUpstream(%q) = %v, %v; want %v, %v", tt.in, got, err, tt.want, tt.wantErr)
			}
		})
	}
	if _, err := NewHandler(Options{Upstreams: []string{"nope"}}); !errors.Is(err, ErrBadUpstream) {
		t.Errorf("NewHandler with a bad upstream: err = %v, want ErrBadUpstream", err)
	}
}
