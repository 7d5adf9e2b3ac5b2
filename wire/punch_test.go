package wire

import (
	"errors"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

var punchMessages = []msgCase{
	{"punch_empty", Punch{TxID: 1, Target: k0to31},
		"05 0000000000000001 000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f 0000"},
	{"punch", Punch{TxID: 0x0102030405060708, Target: fill(0x11), Offer: []byte{0xde, 0xad, 0xbe}},
		"05 0102030405060708 " + strings.Repeat("11", 32) + " 0003 deadbe"},
	{"punch_from", PunchFrom{TxID: 3, From: fill(0x33), Observed: v4, Offer: []byte{0xaa}},
		"0a 0000000000000003 " + strings.Repeat("33", 32) + " 04 c0000201 ca6c 0001 aa"},
	{"punch_from_v6", PunchFrom{TxID: 4, From: fill(0x44), Observed: v6},
		"0a 0000000000000004 " + strings.Repeat("44", 32) + " 06 20010db8000000000000000000000001 01bb 0000"},
	{"offer", PunchOffer{TxID: 0x0102030405060708, Rendezvous: fill(0x55), Mapping: 2, Candidates: []netip.AddrPort{v4, v6}},
		"0c 0102030405060708 " + strings.Repeat("55", 32) + " 04 02" +
			" 04 c0000201 ca6c 06 20010db8000000000000000000000001 01bb"},
	{"offer_reply", PunchOffer{TxID: 2, Rendezvous: fill(0x66), Reply: true, Mapping: 3, Candidates: []netip.AddrPort{v4}},
		"0c 0000000000000002 " + strings.Repeat("66", 32) + " 07 01 04 c0000201 ca6c"},
	{"offer_empty", PunchOffer{TxID: 5, Rendezvous: fill(0x77)},
		"0c 0000000000000005 " + strings.Repeat("77", 32) + " 00 00"},
}

func TestPunchParseErrors(t *testing.T) {
	head := "0c 0000000000000001 " + strings.Repeat("aa", 32)
	from := "0a 0000000000000001 " + strings.Repeat("aa", 32)
	tests := []struct {
		name string
		body string
	}{
		{"offer_no_count", head + " 00"},
		{"offer_count_9", head + " 00 09" + strings.Repeat(" 04 c0000201 ca6c", 9)},
		{"offer_missing_candidate", head + " 00 02 04 c0000201 ca6c"},
		{"offer_bad_family", head + " 00 01 05 c0000201 ca6c"},
		{"offer_short_candidate", head + " 00 01 06 c0000201 ca6c"},
		{"offer_too_long", head + " 00 00" + strings.Repeat("00", MaxOfferBodyLen)},
		{"punch_short_key", "05 0000000000000001 " + strings.Repeat("aa", 31)},
		{"punch_no_length", "05 0000000000000001 " + strings.Repeat("aa", 32) + " 00"},
		{"punch_short_offer", "05 0000000000000001 " + strings.Repeat("aa", 32) + " 0002 aa"},
		{"punch_offer_too_long", "05 0000000000000001 " + strings.Repeat("aa", 32) + " ffff" + strings.Repeat("00", 0xffff)},
		{"from_no_observed", from},
		{"from_bad_observed", from + " 05 c0000201 ca6c 0000"},
		{"from_no_length", from + " 04 c0000201 ca6c"},
		{"from_short_offer", from + " 04 c0000201 ca6c 0001"},
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
		{"nine_candidates", PunchOffer{Candidates: make9(v4)}},
		{"zero_candidate", PunchOffer{Candidates: []netip.AddrPort{v4, {}}}},
		{"zone", PunchOffer{Candidates: []netip.AddrPort{netip.MustParseAddrPort("[fe80::1%eth0]:1")}}},
		{"mapping_4", PunchOffer{Mapping: 4}},
		{"negative_pad", PunchOffer{Pad: -1}},
		{"too_much_pad", PunchOffer{Pad: MaxOfferBodyLen - offerHeaderLen + 1}},
		{"punch_offer_too_long", Punch{Offer: make([]byte, MaxOfferLen+1)}},
		{"from_offer_too_long", PunchFrom{Observed: v4, Offer: make([]byte, MaxOfferLen+1)}},
		{"from_no_observed", PunchFrom{}},
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

// TestPunchSizes checks the bounds a rendezvous relies on: the largest
// offer, sealed, fits a Punch, and the PunchFrom that forwards it with an
// IPv6 Observed fits a packet, 19 bytes longer than the Punch.
func TestPunchSizes(t *testing.T) {
	c := NewCodec(fixedPrivate(1), "test", 0)
	to := fixedPrivate(2).Public()
	pad := MaxOfferBodyLen - offerHeaderLen - MaxCandidates*(1+16+2)
	offer, err := c.Seal(nil, to, PunchOffer{Candidates: make9(v6)[:MaxCandidates], Pad: pad})
	if err != nil {
		t.Fatal(err)
	}
	if len(offer) != MaxOfferLen {
		t.Errorf("largest offer is %d bytes, MaxOfferLen %d", len(offer), MaxOfferLen)
	}
	p, err := Punch{Offer: offer}.AppendBinary(nil)
	if err != nil {
		t.Fatal(err)
	}
	f, err := PunchFrom{Observed: v6, Offer: offer}.AppendBinary(nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(p) != MaxPunchLen || len(f) != MaxPunchFromLen || len(f) > MaxBodySize || len(f)-len(p) != 19 {
		t.Errorf("punch %d bytes (MaxPunchLen %d), punch-from %d (MaxPunchFromLen %d, MaxBodySize %d)",
			len(p), MaxPunchLen, len(f), MaxPunchFromLen, MaxBodySize)
	}
}

// TestPunchOfferSealed: an offer opened from its envelope is the offer
// sealed, from the key that sealed it; a changed byte does not open.
func TestPunchOfferSealed(t *testing.T) {
	a, b := fixedPrivate(1), fixedPrivate(2)
	ca, cb := NewCodec(a, "test", 0), NewCodec(b, "test", 0)
	want := PunchOffer{TxID: 7, Rendezvous: fill(0x99), Mapping: 2, Candidates: []netip.AddrPort{v4}, Pad: 100}
	sealed, err := ca.Seal(nil, b.Public(), want)
	if err != nil {
		t.Fatal(err)
	}
	if n := Overhead + offerHeaderLen + 7 + 100; len(sealed) != n {
		t.Errorf("sealed offer of %d bytes, want %d: the padding pads", len(sealed), n)
	}
	want.Pad = 0 // padding is not read back
	tampered := slices.Clone(sealed)
	tampered[len(tampered)-20] ^= 1
	if _, _, err := cb.Open(tampered); err == nil {
		t.Errorf("a tampered offer opened")
	}
	from, got, err := cb.Open(sealed)
	if err != nil || from != a.Public() {
		t.Fatalf("Open = %v, %v", from, err)
	}
	if diff := cmp.Diff(want, got, cmp.Comparer(addrPortEqual)); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

func make9(a netip.AddrPort) []netip.AddrPort {
	out := make([]netip.AddrPort, MaxCandidates+1)
	for i := range out {
		out[i] = a
	}
	return out
}

// TestPunchOfferPad: padding appends zero bytes after the candidates.
func TestPunchOfferPad(t *testing.T) {
	b, err := PunchOffer{TxID: 1, Candidates: []netip.AddrPort{v4}, Pad: 3}.AppendBinary([]byte("foo"))
	if err != nil {
		t.Fatal(err)
	}
	want := "foo" + string(unhex(t, "0c 0000000000000001 "+strings.Repeat("00", 32)+" 00 01 04 c0000201 ca6c 000000"))
	if string(b) != want {
		t.Errorf("got %x, want %x", b, want)
	}
}

// FuzzParsePunch checks that a Punch, PunchFrom or PunchOffer body parses without
// panicking and that whatever parses encodes and parses back to itself.
func FuzzParsePunch(f *testing.F) {
	for _, m := range punchMessages {
		b, err := m.m.AppendBinary(nil)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	full, err := PunchOffer{TxID: 9, Mapping: 3, Candidates: make9(v6)[:MaxCandidates], Pad: 40}.AppendBinary(nil)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(full)
	f.Add([]byte{byte(TypePunch)})
	f.Add(append(unhex(f, "05 0000000000000001"+strings.Repeat("00", 32)), 0xff, 0xff))
	f.Add([]byte{byte(TypePunchOffer)})
	f.Add([]byte{byte(TypePunchFrom)})

	f.Fuzz(func(t *testing.T, body []byte) {
		m, err := ParseMessage(body)
		if err != nil {
			if m != nil {
				t.Fatalf("message %v with error %v", m, err)
			}
			return
		}
		switch m.(type) {
		case Punch, PunchFrom, PunchOffer:
		default:
			return // FuzzParseMessage covers the others
		}
		b, err := m.AppendBinary([]byte("foo"))
		if err != nil {
			t.Fatalf("parsed %#v, cannot encode it: %v", m, err)
		}
		if len(b)-3 > len(body) || len(b)-3 > MaxPunchFromLen {
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
