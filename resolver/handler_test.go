package resolver

import (
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/miekg/dns"
)

// recorder is a dns.ResponseWriter that keeps what the handler wrote,
// after a trip through the wire format.
type recorder struct {
	tcp bool

	mu    sync.Mutex
	msg   *dns.Msg // last reply, unpacked from its packed bytes
	size  int      // packed size of msg
	count int      // replies written
}

var _ dns.ResponseWriter = (*recorder)(nil)

func (r *recorder) LocalAddr() net.Addr {
	if r.tcp {
		return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 53}
	}
	return &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 53}
}

func (r *recorder) RemoteAddr() net.Addr {
	if r.tcp {
		return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 40000}
	}
	return &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 40000}
}

func (r *recorder) WriteMsg(m *dns.Msg) error {
	b, err := m.Pack()
	if err != nil {
		return err
	}
	return r.write(b)
}

func (r *recorder) Write(b []byte) (int, error) { return len(b), r.write(b) }

func (r *recorder) write(b []byte) error {
	m := new(dns.Msg)
	if err := m.Unpack(b); err != nil {
		return fmt.Errorf("reply does not unpack: %w", err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.msg, r.size = m, len(b)
	r.count++
	return nil
}

func (r *recorder) Close() error        { return nil }
func (r *recorder) TsigStatus() error   { return nil }
func (r *recorder) TsigTimersOnly(bool) {}
func (r *recorder) Hijack()             {}

// The vectors of WIREHUB.md §11 give the hosts real ORCHIDs.
var testZone = Zone{Domain: "Tutorial", Hosts: []Host{
	{Name: "self", IPv4: netip.MustParseAddr("10.0.42.1"), IPv6: netip.MustParseAddr("2001:1243:2dac:bb06:bd81:9846:256b:410b")},
	{Name: "node_a", IPv4: netip.MustParseAddr("10.0.42.2"), IPv6: netip.MustParseAddr("2001:1075:b63:9ef6:5070:2e62:2de:e917")},
	{Name: "Node-B", IPv4: netip.MustParseAddr("10.0.42.3"), IPv6: netip.MustParseAddr("2001:170c:721c:5351:1b6c:ade4:6f19:4366")},
	{Name: "v4only", IPv4: netip.MustParseAddr("10.0.42.4")},
}}

// testLogger sends the handler's logs to the test output.
func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
}

func newTestHandler(t testing.TB, opt Options) *Handler {
	t.Helper()
	if opt.Logger == nil {
		opt.Logger = testLogger(t)
	}
	h, err := NewHandler(opt)
	if err != nil {
		t.Fatal(err)
	}
	h.SetZone(testZone)
	return h
}

// reply is the comparable summary of a response.
type reply struct {
	Rcode  string
	AA, TC bool
	Answer []string
	Ns     []string
}

func summarize(m *dns.Msg) reply {
	r := reply{Rcode: dns.RcodeToString[m.Rcode], AA: m.Authoritative, TC: m.Truncated}
	str := func(rr dns.RR) string {
		if soa, ok := rr.(*dns.SOA); ok {
			c := *soa
			c.Serial = 0 // changes with every SetZone
			return c.String()
		}
		return rr.String()
	}
	for _, rr := range m.Answer {
		r.Answer = append(r.Answer, str(rr))
	}
	for _, rr := range m.Ns {
		r.Ns = append(r.Ns, str(rr))
	}
	return r
}

// ask sends one question through h and returns the reply.
func ask(t *testing.T, h dns.Handler, name string, qtype uint16) *dns.Msg {
	t.Helper()
	req := new(dns.Msg)
	req.SetQuestion(name, qtype)
	return serve(t, h, req, false)
}

func serve(t *testing.T, h dns.Handler, req *dns.Msg, tcp bool) *dns.Msg {
	t.Helper()
	w := &recorder{tcp: tcp}
	h.ServeDNS(w, req)
	if w.count != 1 {
		t.Fatalf("handler wrote %d replies, want 1", w.count)
	}
	if w.msg.Id != req.Id || !w.msg.Response {
		t.Fatalf("reply id %d response %v, want id %d and response", w.msg.Id, w.msg.Response, req.Id)
	}
	return w.msg
}

const soaLine = "tutorial.\t60\tIN\tSOA\tns.tutorial. hostmaster.tutorial. 0 3600 600 86400 60"

func TestHandlerZone(t *testing.T) {
	h := newTestHandler(t, Options{NoForward: true})
	rev := func(a string) string {
		r, err := dns.ReverseAddr(a)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	tests := []struct {
		name  string
		qname string
		qtype uint16
		want  reply
	}{
		{"A", "node_a.tutorial.", dns.TypeA, reply{Rcode: "NOERROR", AA: true,
			Answer: []string{"node_a.tutorial.\t60\tIN\tA\t10.0.42.2"}}},
		{"AAAA", "node_a.tutorial.", dns.TypeAAAA, reply{Rcode: "NOERROR", AA: true,
			Answer: []string{"node_a.tutorial.\t60\tIN\tAAAA\t2001:1075:b63:9ef6:5070:2e62:2de:e917"}}},
		{"ANY", "node_a.tutorial.", dns.TypeANY, reply{Rcode: "NOERROR", AA: true, Answer: []string{
			"node_a.tutorial.\t60\tIN\tA\t10.0.42.2",
			"node_a.tutorial.\t60\tIN\tAAAA\t2001:1075:b63:9ef6:5070:2e62:2de:e917"}}},
		{"bare_A", "node_a.", dns.TypeA, reply{Rcode: "NOERROR", AA: true,
			Answer: []string{"node_a.\t60\tIN\tA\t10.0.42.2"}}},
		{"bare_AAAA", "node_a.", dns.TypeAAAA, reply{Rcode: "NOERROR", AA: true,
			Answer: []string{"node_a.\t60\tIN\tAAAA\t2001:1075:b63:9ef6:5070:2e62:2de:e917"}}},
		{"own_name", "self.tutorial.", dns.TypeA, reply{Rcode: "NOERROR", AA: true,
			Answer: []string{"self.tutorial.\t60\tIN\tA\t10.0.42.1"}}},
		{"upper_case_query", "NODE_A.TuToRiAl.", dns.TypeA, reply{Rcode: "NOERROR", AA: true,
			Answer: []string{"NODE_A.TuToRiAl.\t60\tIN\tA\t10.0.42.2"}}},
		{"upper_case_config", "node-b.tutorial.", dns.TypeA, reply{Rcode: "NOERROR", AA: true,
			Answer: []string{"node-b.tutorial.\t60\tIN\tA\t10.0.42.3"}}},
		{"PTR_v4", "2.42.0.10.in-addr.arpa.", dns.TypePTR, reply{Rcode: "NOERROR", AA: true,
			Answer: []string{"2.42.0.10.in-addr.arpa.\t60\tIN\tPTR\tnode_a.tutorial."}}},
		{"PTR_v6", rev("2001:1075:b63:9ef6:5070:2e62:2de:e917"), dns.TypePTR, reply{Rcode: "NOERROR", AA: true,
			Answer: []string{rev("2001:1075:b63:9ef6:5070:2e62:2de:e917") + "\t60\tIN\tPTR\tnode_a.tutorial."}}},
		{"PTR_v6_upper_case", strings.ToUpper(rev("2001:1075:b63:9ef6:5070:2e62:2de:e917")), dns.TypePTR, reply{Rcode: "NOERROR", AA: true,
			Answer: []string{strings.ToUpper(rev("2001:1075:b63:9ef6:5070:2e62:2de:e917")) + "\t60\tIN\tPTR\tnode_a.tutorial."}}},
		{"PTR_own", "1.42.0.10.in-addr.arpa.", dns.TypePTR, reply{Rcode: "NOERROR", AA: true,
			Answer: []string{"1.42.0.10.in-addr.arpa.\t60\tIN\tPTR\tself.tutorial."}}},
		{"reverse_name_other_type", "2.42.0.10.in-addr.arpa.", dns.TypeA, reply{Rcode: "NOERROR", AA: true}},
		{"NXDOMAIN", "nobody.tutorial.", dns.TypeA, reply{Rcode: "NXDOMAIN", AA: true, Ns: []string{soaLine}}},
		{"NXDOMAIN_below_host", "www.node_a.tutorial.", dns.TypeA, reply{Rcode: "NXDOMAIN", AA: true, Ns: []string{soaLine}}},
		{"NODATA_type", "node_a.tutorial.", dns.TypeMX, reply{Rcode: "NOERROR", AA: true, Ns: []string{soaLine}}},
		{"NODATA_no_IPv6", "v4only.tutorial.", dns.TypeAAAA, reply{Rcode: "NOERROR", AA: true, Ns: []string{soaLine}}},
		{"bare_NODATA_has_no_SOA", "node_a.", dns.TypeMX, reply{Rcode: "NOERROR", AA: true}},
		{"apex_SOA", "tutorial.", dns.TypeSOA, reply{Rcode: "NOERROR", AA: true, Answer: []string{soaLine}}},
		{"apex_A", "tutorial.", dns.TypeA, reply{Rcode: "NOERROR", AA: true, Ns: []string{soaLine}}},
		{"unknown_bare_name_not_ours", "printer.", dns.TypeA, reply{Rcode: "REFUSED"}},
		{"other_domain_not_ours", "example.com.", dns.TypeA, reply{Rcode: "REFUSED"}},
		{"unknown_reverse_not_ours", "9.9.0.10.in-addr.arpa.", dns.TypePTR, reply{Rcode: "REFUSED"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := summarize(ask(t, h, tt.qname, tt.qtype))
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("%s %s (-want +got):\n%s", tt.qname, dns.TypeToString[tt.qtype], diff)
			}
		})
	}
}

func TestHandlerNoDomain(t *testing.T) {
	h := newTestHandler(t, Options{NoForward: true})
	h.SetZone(Zone{Hosts: testZone.Hosts})
	tests := []struct {
		name  string
		qname string
		qtype uint16
		want  reply
	}{
		{"bare_A", "node_a.", dns.TypeA, reply{Rcode: "NOERROR", AA: true,
			Answer: []string{"node_a.\t60\tIN\tA\t10.0.42.2"}}},
		{"PTR_to_bare_name", "2.42.0.10.in-addr.arpa.", dns.TypePTR, reply{Rcode: "NOERROR", AA: true,
			Answer: []string{"2.42.0.10.in-addr.arpa.\t60\tIN\tPTR\tnode_a."}}},
		{"old_domain_gone", "node_a.tutorial.", dns.TypeA, reply{Rcode: "REFUSED"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, summarize(ask(t, h, tt.qname, tt.qtype))); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestHandlerMalformed(t *testing.T) {
	h := newTestHandler(t, Options{NoForward: true})
	tests := []struct {
		name      string
		req       func() *dns.Msg
		wantRcode int
	}{
		{"no_question", func() *dns.Msg { return &dns.Msg{MsgHdr: dns.MsgHdr{Id: 7}} }, dns.RcodeFormatError},
		{"two_questions", func() *dns.Msg {
			m := new(dns.Msg).SetQuestion("node_a.tutorial.", dns.TypeA)
			m.Question = append(m.Question, m.Question[0])
			return m
		}, dns.RcodeFormatError},
		{"notify_opcode", func() *dns.Msg {
			m := new(dns.Msg).SetQuestion("tutorial.", dns.TypeSOA)
			m.Opcode = dns.OpcodeNotify
			return m
		}, dns.RcodeNotImplemented},
		{"update_opcode", func() *dns.Msg {
			m := new(dns.Msg).SetQuestion("tutorial.", dns.TypeSOA)
			m.Opcode = dns.OpcodeUpdate
			return m
		}, dns.RcodeNotImplemented},
		{"EDNS_version_1", func() *dns.Msg {
			m := new(dns.Msg).SetQuestion("node_a.tutorial.", dns.TypeA)
			m.SetEdns0(4096, false)
			m.IsEdns0().SetVersion(1)
			return m
		}, dns.RcodeBadVers},
		{"chaos_class_not_ours", func() *dns.Msg {
			m := new(dns.Msg).SetQuestion("version.bind.", dns.TypeTXT)
			m.Question[0].Qclass = dns.ClassCHAOS
			return m
		}, dns.RcodeRefused},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := serve(t, h, tt.req(), false)
			if got.Rcode != tt.wantRcode {
				t.Errorf("rcode %s, want %s", dns.RcodeToString[got.Rcode], dns.RcodeToString[tt.wantRcode])
			}
		})
	}

	t.Run("response_is_dropped", func(t *testing.T) {
		m := new(dns.Msg).SetQuestion("node_a.tutorial.", dns.TypeA)
		m.Response = true
		w := &recorder{}
		h.ServeDNS(w, m)
		if w.count != 0 {
			t.Errorf("handler answered a response: %v", w.msg)
		}
	})
}

func TestHandlerEDNS(t *testing.T) {
	h := newTestHandler(t, Options{NoForward: true})
	req := new(dns.Msg).SetQuestion("node_a.tutorial.", dns.TypeA)
	req.SetEdns0(4096, true)
	got := serve(t, h, req, false)
	opt := got.IsEdns0()
	if opt == nil {
		t.Fatal("reply to an EDNS0 query has no OPT")
	}
	if opt.UDPSize() != ednsSize || opt.Version() != 0 {
		t.Errorf("OPT size %d version %d, want %d and 0", opt.UDPSize(), opt.Version(), ednsSize)
	}
	if len(got.Answer) != 1 {
		t.Errorf("answers %v, want one A", got.Answer)
	}

	plain := serve(t, h, new(dns.Msg).SetQuestion("node_a.tutorial.", dns.TypeA), false)
	if plain.IsEdns0() != nil {
		t.Error("reply to a query without EDNS0 has an OPT")
	}
}

func TestHandlerTTL(t *testing.T) {
	tests := []struct {
		name string
		ttl  time.Duration
		want uint32
	}{
		{"five_seconds", 5 * time.Second, 5},
		{"zero_is_default", 0, 60},
		{"below_a_second_is_default", time.Millisecond, 60},
		{"negative_is_default", -time.Hour, 60},
		{"capped_at_a_day", 1000 * time.Hour, 86400},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newTestHandler(t, Options{NoForward: true, TTL: tt.ttl})
			got := ask(t, h, "nobody.tutorial.", dns.TypeA)
			soa, ok := got.Ns[0].(*dns.SOA)
			if !ok || soa.Hdr.Ttl != tt.want || soa.Minttl != tt.want {
				t.Errorf("authority %v, want a SOA with TTL and minimum %d", got.Ns, tt.want)
			}
			if a := ask(t, h, "node_a.tutorial.", dns.TypeA).Answer[0]; a.Header().Ttl != tt.want {
				t.Errorf("answer TTL %d, want %d", a.Header().Ttl, tt.want)
			}
		})
	}
}

func TestSetZoneLeavesOutBadHosts(t *testing.T) {
	h := newTestHandler(t, Options{NoForward: true})
	v4 := netip.MustParseAddr("10.0.42.9")
	h.SetZone(Zone{Domain: "bad domain", Hosts: []Host{
		{Name: "good", IPv4: v4},
		{Name: "GOOD", IPv4: netip.MustParseAddr("10.0.42.10")}, // duplicate name
		{Name: "dup-addr", IPv4: v4},
		{Name: "has.dot", IPv4: netip.MustParseAddr("10.0.42.11")},
		{Name: "", IPv4: netip.MustParseAddr("10.0.42.12")},
		{Name: "v6-in-v4", IPv4: netip.MustParseAddr("2001:db8::1")},
		{Name: "mapped", IPv4: netip.MustParseAddr("::ffff:10.0.42.13")},
	}})
	tests := []struct {
		qname string
		want  string
	}{
		{"good.", "NOERROR"},
		{"dup-addr.", "REFUSED"},
		{"has.dot.", "REFUSED"},
		{"v6-in-v4.", "REFUSED"},
		{"mapped.", "NOERROR"},
	}
	for _, tt := range tests {
		t.Run(tt.qname, func(t *testing.T) {
			if got := dns.RcodeToString[ask(t, h, tt.qname, dns.TypeA).Rcode]; got != tt.want {
				t.Errorf("rcode %s, want %s", got, tt.want)
			}
		})
	}
	if got := ask(t, h, "good.", dns.TypeA).Answer; len(got) != 1 || !got[0].(*dns.A).A.Equal(v4.AsSlice()) {
		t.Errorf("good. = %v, want the first host's %v", got, v4)
	}
}

// TestSetZoneSwap queries while SetZone flips between two zones: every
// answer comes whole from one of them. Run with -race.
func TestSetZoneSwap(t *testing.T) {
	h := newTestHandler(t, Options{NoForward: true})
	zones := [2]Zone{
		{Domain: "net", Hosts: []Host{{Name: "a", IPv4: netip.MustParseAddr("10.0.0.1")}}},
		{Domain: "net", Hosts: []Host{{Name: "a", IPv4: netip.MustParseAddr("10.0.0.2")}, {Name: "b", IPv4: netip.MustParseAddr("10.0.0.3")}}},
	}
	h.SetZone(zones[0])
	const queriers, queries = 4, 2000
	var wg sync.WaitGroup
	done := make(chan struct{})
	errs := make(chan error, queriers)
	for range queriers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range queries {
				w := &recorder{}
				h.ServeDNS(w, new(dns.Msg).SetQuestion("a.net.", dns.TypeA))
				if w.msg == nil || len(w.msg.Answer) != 1 {
					errs <- fmt.Errorf("reply %v, want one A", w.msg)
					return
				}
				got := w.msg.Answer[0].(*dns.A).A.String()
				if got != "10.0.0.1" && got != "10.0.0.2" {
					errs <- fmt.Errorf("a.net. = %s, from neither zone", got)
					return
				}
			}
		}()
	}
	go func() {
		defer close(done)
		for i := 0; i < 500; i++ {
			h.SetZone(zones[i%2])
		}
	}()
	wg.Wait()
	<-done
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	h.SetZone(zones[1])
	if got := ask(t, h, "b.net.", dns.TypeA); len(got.Answer) != 1 {
		t.Errorf("after the last SetZone, b.net. = %v, want an A", got)
	}
}

// packWriter packs replies, as the server does, and drops them.
type packWriter struct{ recorder }

func (w *packWriter) WriteMsg(m *dns.Msg) error {
	_, err := m.Pack()
	return err
}

func BenchmarkServeDNS(b *testing.B) {
	h, err := NewHandler(Options{NoForward: true})
	if err != nil {
		b.Fatal(err)
	}
	h.SetZone(testZone)
	for _, q := range []struct {
		name  string
		qname string
		qtype uint16
	}{
		{"A", "node_a.tutorial.", dns.TypeA},
		{"PTR_v6", "7.1.9.e.e.d.2.0.2.6.e.2.0.7.0.5.6.f.e.9.3.6.b.0.5.7.0.1.1.0.0.2.ip6.arpa.", dns.TypePTR},
		{"NXDOMAIN", "nobody.tutorial.", dns.TypeA},
	} {
		b.Run(q.name, func(b *testing.B) {
			req := new(dns.Msg).SetQuestion(q.qname, q.qtype)
			w := &packWriter{}
			b.ReportAllocs()
			for b.Loop() {
				h.ServeDNS(w, req)
			}
		})
	}
}
