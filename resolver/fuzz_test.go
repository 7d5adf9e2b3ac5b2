package resolver

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/miekg/dns"
)

// FuzzHandler feeds the handler whatever dns.Msg.Unpack makes of arbitrary
// bytes, over UDP and TCP, as a server would. Threat model: any peer of the
// overlay can send any bytes. Properties: no panic; at most one reply; a
// reply packs, is a response with the query's ID and question, and over
// UDP fits what the client accepts. Forwarding is off: fuzzing stays off
// the network.
func FuzzHandler(f *testing.F) {
	seed := func(name string, qtype uint16, edit func(*dns.Msg)) {
		m := new(dns.Msg).SetQuestion(name, qtype)
		if edit != nil {
			edit(m)
		}
		b, err := m.Pack()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b, false)
		f.Add(b, true)
	}
	seed("node_a.tutorial.", dns.TypeA, nil)
	seed("NODE_A.", dns.TypeAAAA, nil)
	seed("2.42.0.10.in-addr.arpa.", dns.TypePTR, nil)
	seed("tutorial.", dns.TypeSOA, func(m *dns.Msg) { m.SetEdns0(4096, true) })
	seed("nobody.tutorial.", dns.TypeANY, func(m *dns.Msg) { m.SetEdns0(100, false) })
	seed("x.node_a.tutorial.", dns.TypeMX, func(m *dns.Msg) { m.Opcode = dns.OpcodeNotify })
	seed("node_a.tutorial.", dns.TypeA, func(m *dns.Msg) { m.SetEdns0(512, false); m.IsEdns0().SetVersion(3) })
	seed("node_a.tutorial.", dns.TypeA, func(m *dns.Msg) { m.Question = append(m.Question, m.Question[0]) })
	f.Add([]byte{}, false)
	f.Add(make([]byte, 12), false)

	h, err := NewHandler(Options{NoForward: true})
	if err != nil {
		f.Fatal(err)
	}
	h.SetZone(testZone)
	f.Fuzz(func(t *testing.T, data []byte, tcp bool) {
		req := new(dns.Msg)
		if req.Unpack(data) != nil {
			return
		}
		w := &recorder{tcp: tcp}
		h.ServeDNS(w, req) // a reply that does not pack or unpack fails in w
		if w.count > 1 {
			t.Fatalf("%d replies", w.count)
		}
		if w.count == 0 {
			if !req.Response {
				t.Fatal("query left unanswered")
			}
			return
		}
		got := w.msg
		if !got.Response || got.Id != req.Id {
			t.Fatalf("reply response=%v id=%d to query id=%d", got.Response, got.Id, req.Id)
		}
		if len(req.Question) > 0 && (len(got.Question) != 1 || !sameQuestion(got.Question[0], req.Question[0])) {
			t.Fatalf("reply question %v, query question %v", got.Question, req.Question)
		}
		if !tcp && w.size > udpSize(req) {
			t.Fatalf("UDP reply of %d bytes, client accepts %d", w.size, udpSize(req))
		}
	})
}

func sameQuestion(a, b dns.Question) bool {
	return strings.EqualFold(a.Name, b.Name) && a.Qtype == b.Qtype && a.Qclass == b.Qclass
}

// FuzzSpliceBlock edits arbitrary hosts files. Threat model: the file is
// the user's, with anything in it. Properties: removing our block after
// adding it gives back the file without our block, byte for byte; adding is
// idempotent; other interfaces' blocks survive.
func FuzzSpliceBlock(f *testing.F) {
	f.Add([]byte("127.0.0.1 localhost\n"))
	f.Add([]byte("127.0.0.1 localhost"))
	f.Add([]byte(""))
	f.Add([]byte("\n\n"))
	f.Add([]byte("a\r\nb\r\n"))
	f.Add([]byte("x\n# BEGIN wh wh0\n1.2.3.4\tu\n# END wh wh0\ny"))
	f.Add([]byte("# BEGIN wh wh1\n1.2.3.4\tu\n# END wh wh1"))
	f.Add([]byte("# BEGIN wh wh0\n"))
	f.Add([]byte("# END wh wh0\n# BEGIN wh wh0  \n# END wh wh0\t\n"))
	body := []string{"10.0.42.2\tnode_a.tutorial node_a", "10.0.42.3\tnode_b.tutorial node_b"}
	f.Fuzz(func(t *testing.T, content []byte) {
		base, err := spliceBlock(content, "wh0", nil)
		if err != nil {
			if !errors.Is(err, ErrUnterminatedBlock) {
				t.Fatalf("remove: %v", err)
			}
			return
		}
		added, err := spliceBlock(base, "wh0", body)
		if err != nil {
			t.Fatalf("add: %v", err)
		}
		again, err := spliceBlock(added, "wh0", body)
		if err != nil || !bytes.Equal(again, added) {
			t.Fatalf("add twice:\n%q\nthen\n%q (err %v)", added, again, err)
		}
		removed, err := spliceBlock(added, "wh0", nil)
		if err != nil || !bytes.Equal(removed, base) {
			t.Fatalf("add then remove:\n%q\ngave\n%q (err %v)", base, removed, err)
		}
		if !bytes.Contains(added, []byte("\n"+body[1]+"\n# END wh wh0")) {
			t.Fatalf("block missing from %q", added)
		}
		// wh1's lines are untouched by wh0's edits.
		if a, b := otherBlocks(base), otherBlocks(added); a != b {
			t.Fatalf("other blocks changed: %q → %q", a, b)
		}
	})
}

// otherBlocks returns the lines of content mentioning wh1.
func otherBlocks(content []byte) string {
	var out []string
	for _, l := range splitLines(content) {
		if strings.Contains(l, "wh1") {
			out = append(out, strings.TrimSuffix(l, "\n"))
		}
	}
	return strings.Join(out, "|")
}
