package wire

import (
	"errors"
	"net/netip"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

var punchMessages = []msgCase{
	{"punch_empty", Punch{TxID: 1, Target: k0to31},
		"05 0000000000000001 000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f 00 00"},
	{"punch", Punch{TxID: 0x0102030405060708, Target: fill(0x11), Mapping: 2, Candidates: []netip.AddrPort{v4, v6}},
		"05 0102030405060708 " + strings.Repeat("11", 32) + " 04 02" +
			" 04 c0000201 ca6c 06 20010db8000000000000000000000001 01bb"},
	{"punch_reply", Punch{TxID: 2, Target: fill(0x22), Reply: true, Mapping: 3, Candidates: []netip.AddrPort{v4}},
		"05 0000000000000002 " + strings.Repeat("22", 32) + " 07 01 04 c0000201 ca6c"},
	{"punch_from", PunchFrom{TxID: 3, From: fill(0x33), Mapping: 1, Candidates: []netip.AddrPort{v6, v4}},
		"0a 0000000000000003 " + strings.Repeat("33", 32) + " 02 02" +
			" 06 20010db8000000000000000000000001 01bb 04 c0000201 ca6c"},
	{"punch_from_reply", PunchFrom{TxID: 4, From: fill(0x44), Reply: true},
		"0a 0000000000000004 " + strings.Repeat("44", 32) + " 01 00"},
}

func TestPunchParseErrors(t *testing.T) {
	head := "05 0000000000000001 " + strings.Repeat("aa", 32)
	tests := []struct {
		name string
		body string
	}{
		{"no_count", head + " 00"},
		{"short_key", "0a 0000000000000001 " + strings.Repeat("aa", 31)},
		{"count_9", head + " 00 09" + strings.Repeat(" 04 c0000201 ca6c", 9)},
		{"missing_candidate", head + " 00 02 04 c0000201 ca6c"},
		{"bad_family", head + " 00 01 05 c0000201 ca6c"},
		{"short_candidate", head + " 00 01 06 c0000201 ca6c"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := ParseMessage(unhex(t, tt.body))
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("ParseMessage = %v, %v; want ErrMalformed", m, err)
			}
		})
	}
}

func TestPunchAppendBinaryErrors(t *testing.T) {
	tests := []struct {
		name string
		m    Message
	}{
		{"nine_candidates", Punch{Candidates: make9(v4)}},
		{"zero_candidate", PunchFrom{Candidates: []netip.AddrPort{v4, {}}}},
		{"zone", Punch{Candidates: []netip.AddrPort{netip.MustParseAddrPort("[fe80::1%eth0]:1")}}},
		{"mapping_4", PunchFrom{Mapping: 4}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.m.AppendBinary([]byte("foo"))
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("AppendBinary error = %v, want ErrMalformed", err)
			}
			if string(got) != "foo" {
				t.Errorf("AppendBinary returned %q, want the prefix unchanged", got)
			}
		})
	}
}

// TestPunchSizes checks the bound a rendezvous relies on: a full Punch of
// IPv6 candidates is MaxPunchLen bytes and fits in a packet.
func TestPunchSizes(t *testing.T) {
	b, err := Punch{Candidates: make9(v6)[:MaxCandidates]}.AppendBinary(nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) != MaxPunchLen || MaxPunchLen > MaxBodySize {
		t.Errorf("largest punch is %d bytes, MaxPunchLen %d, MaxBodySize %d", len(b), MaxPunchLen, MaxBodySize)
	}
}

func make9(a netip.AddrPort) []netip.AddrPort {
	out := make([]netip.AddrPort, MaxCandidates+1)
	for i := range out {
		out[i] = a
	}
	return out
}

// FuzzParsePunch checks that a Punch or PunchFrom body parses without
// panicking and that whatever parses encodes and parses back to itself.
func FuzzParsePunch(f *testing.F) {
	for _, m := range punchMessages {
		b, err := m.m.AppendBinary(nil)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	full, err := PunchFrom{TxID: 9, Mapping: 3, Candidates: make9(v6)[:MaxCandidates]}.AppendBinary(nil)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(full)
	f.Add([]byte{byte(TypePunch)})
	f.Add(append(unhex(f, "05 0000000000000001"+strings.Repeat("00", 32)), 0xff, 0xff))

	f.Fuzz(func(t *testing.T, body []byte) {
		m, err := ParseMessage(body)
		if err != nil {
			if m != nil {
				t.Fatalf("message %v with error %v", m, err)
			}
			return
		}
		switch m.(type) {
		case Punch, PunchFrom:
		default:
			return // FuzzParseMessage covers the others
		}
		b, err := m.AppendBinary([]byte("foo"))
		if err != nil {
			t.Fatalf("parsed %#v, cannot encode it: %v", m, err)
		}
		if len(b)-3 > len(body) || len(b)-3 > MaxPunchLen {
			t.Fatalf("re-encoded %d bytes from %d", len(b)-3, len(body))
		}
		again, err := ParseMessage(b[3:])
		if err != nil {
			t.Fatalf("re-encoded %x does not parse: %v", b[3:], err)
		}
		if diff := cmp.Diff(m, again, cmp.Comparer(addrPortEqual)); diff != "" {
			t.Fatalf("round trip (-first +second):\n%s", diff)
		}
	})
}
