package wire

import (
	"encoding/hex"
	"errors"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/whnet/wh/key"
)

// fill returns a key whose bytes are all b.
func fill(b byte) key.Public {
	var k key.Public
	for i := range k {
		k[i] = b
	}
	return k
}

// unhex decodes hex written with spaces between groups.
func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		t.Fatalf("bad hex in test: %v", err)
	}
	return b
}

var (
	v4 = netip.MustParseAddrPort("192.0.2.1:51820")
	v6 = netip.MustParseAddrPort("[2001:db8::1]:443")
)

// dualStackNodes returns n nodes with one IPv4 and one IPv6 address each.
func dualStackNodes(n int) []NodeInfo {
	nodes := make([]NodeInfo, n)
	for i := range nodes {
		nodes[i] = NodeInfo{Key: fill(byte(i)), Addrs: []netip.AddrPort{v4, v6}}
	}
	return nodes
}

// worstNodes returns MaxNodes nodes of the largest encoding.
func worstNodes() []NodeInfo {
	nodes := make([]NodeInfo, MaxNodes)
	for i := range nodes {
		nodes[i] = NodeInfo{Key: fill(byte(i)), NAT: true, Via: fill(0xee), Addrs: []netip.AddrPort{v6, v6, v6, v6}}
	}
	return nodes
}

var k0to31 = func() key.Public {
	var k key.Public
	for i := range k {
		k[i] = byte(i)
	}
	return k
}()

// A msgCase is a message with its exact body.
type msgCase struct {
	name string
	m    Message
	want string // hex of the body
}

// allMessages are the messages of every table: validMessages here,
// punchMessages, relayMessages and authMessages.
func allMessages() []msgCase {
	return slices.Concat(validMessages, punchMessages, relayMessages, authMessages)
}

// validMessages are messages with their exact bodies.
var validMessages = []msgCase{
	{"ping", Ping{TxID: 0x0102030405060708, Size: 10}, "01 0102030405060708 00"},
	{"ping_nat", Ping{TxID: 1, NAT: true, Size: 10}, "01 0000000000000001 01"},
	{"ping_padded", Ping{TxID: 1, Size: MaxPongSize}, "01 0000000000000001 00" + strings.Repeat("00", MaxPongSize-10)},
	{"pong_v4", Pong{TxID: 2, Observed: v4}, "02 0000000000000002 04 c0000201 ca6c"},
	{"pong_v6", Pong{TxID: 3, Observed: v6}, "02 0000000000000003 06 20010db8000000000000000000000001 01bb"},
	{"pong_4in6", Pong{TxID: 4, Observed: netip.MustParseAddrPort("[::ffff:192.0.2.1]:1")},
		"02 0000000000000004 06 00000000000000000000ffffc0000201 0001"},
	{"find_node", FindNode{TxID: 0xfffffffffffffffe, Target: k0to31, Size: 41},
		"03 fffffffffffffffe 000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"},
	{"find_node_padded", FindNode{TxID: 1, Target: k0to31, Size: 45},
		"03 0000000000000001 000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f 00000000"},
	{"nodes_empty", Nodes{TxID: 5}, "04 0000000000000005 00"},
	{"nodes", Nodes{TxID: 6, Nodes: []NodeInfo{
		{Key: fill(0x11), Addrs: []netip.AddrPort{v4, v6}},
		{Key: fill(0x22), NAT: true, Via: fill(0x33)},
		{Key: fill(0x44), NAT: true, Addrs: []netip.AddrPort{v4}},
	}}, "04 0000000000000006 03" +
		" 1111111111111111111111111111111111111111111111111111111111111111 02" +
		" 04 c0000201 ca6c 06 20010db8000000000000000000000001 01bb" +
		" 2222222222222222222222222222222222222222222222222222222222222222 c0" +
		" 3333333333333333333333333333333333333333333333333333333333333333" +
		" 4444444444444444444444444444444444444444444444444444444444444444 81" +
		" 04 c0000201 ca6c"},
}

func TestAppendBinary(t *testing.T) {
	for _, tt := range allMessages() {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.m.AppendBinary([]byte("foo"))
			if err != nil {
				t.Fatal(err)
			}
			want := append([]byte("foo"), unhex(t, tt.want)...)
			if diff := cmp.Diff(hex.EncodeToString(want), hex.EncodeToString(got)); diff != "" {
				t.Errorf("bytes (-want +got):\n%s", diff)
			}
			if Type(got[3]) != tt.m.Type() {
				t.Errorf("type byte %#02x, Type() %v", got[3], tt.m.Type())
			}
		})
	}
}

func TestParseMessage(t *testing.T) {
	for _, tt := range allMessages() {
		t.Run(tt.name, func(t *testing.T) {
			body := unhex(t, tt.want)
			got, err := ParseMessage(body)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.m, got, cmp.Comparer(addrPortEqual)); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
			if isFramed(tt.m) {
				return // a relay payload runs to the end of the body
			}
			// Trailing bytes are room for later versions, not an error;
			// in a Ping or FindNode they are padding.
			got, err = ParseMessage(append(body, 0xde, 0xad))
			if err != nil {
				t.Fatalf("with trailing bytes: %v", err)
			}
			want := tt.m
			switch m := want.(type) {
			case Ping:
				m.Size += 2
				want = m
			case FindNode:
				m.Size += 2
				want = m
			}
			if diff := cmp.Diff(want, got, cmp.Comparer(addrPortEqual)); diff != "" {
				t.Errorf("with trailing bytes (-want +got):\n%s", diff)
			}
		})
	}
}

func addrPortEqual(a, b netip.AddrPort) bool { return a == b }

func TestParseMessageErrors(t *testing.T) {
	node := func(flags string) string { return "04 0000000000000001 01 " + strings.Repeat("aa", 32) + " " + flags }
	tests := []struct {
		name string
		body string
		want error
	}{
		{"empty", "", ErrMalformed},
		{"type_zero", "00 0000000000000001 00", ErrUnknownType},
		{"type_ff", "ff", ErrUnknownType},
		{"punch_short", "05 0000000000000001", ErrMalformed},
		{"type_0d", "0d", ErrUnknownType},
		{"ping_short", "01 0000000000000001", ErrMalformed},
		{"pong_no_addr", "02 0000000000000001", ErrMalformed},
		{"pong_family_5", "02 0000000000000001 05 c0000201 ca6c", ErrMalformed},
		{"pong_short_v4", "02 0000000000000001 04 c0000201 ca", ErrMalformed},
		{"pong_short_v6", "02 0000000000000001 06 c0000201 ca6c", ErrMalformed},
		{"find_node_short", "03 0000000000000001 " + strings.Repeat("aa", 31), ErrMalformed},
		{"find_node_over_max_body", "03 0000000000000001 " + strings.Repeat("00", MaxBodySize-8), ErrTooLarge},
		{"nodes_short", "04 0000000000000001", ErrMalformed},
		{"nodes_count_21", "04 0000000000000001 15", ErrMalformed},
		{"nodes_missing_node", "04 0000000000000001 01", ErrMalformed},
		{"nodes_reserved_flag", node("08"), ErrMalformed},
		{"nodes_5_addrs", node("05"), ErrMalformed},
		{"nodes_missing_addr", node("01"), ErrMalformed},
		{"nodes_missing_via", node("40 aaaa"), ErrMalformed},
		{"nodes_bad_family", node("01 00 c0000201 ca6c"), ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := ParseMessage(unhex(t, tt.body))
			if !errors.Is(err, tt.want) {
				t.Fatalf("ParseMessage = %v, %v; want error %v", m, err, tt.want)
			}
		})
	}
}

// TestParseNodesTooLarge checks that the parser refuses what the encoder
// refuses: a Nodes body over MaxBodySize.
func TestParseNodesTooLarge(t *testing.T) {
	// Build the oversized body by hand, since AppendBinary refuses it.
	b := unhex(t, "04 0000000000000001")
	b = append(b, MaxNodes)
	for _, n := range worstNodes() {
		var err error
		if b, err = n.appendBinary(b); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := ParseMessage(b); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("ParseMessage(%d bytes) = %v, want ErrTooLarge", len(b), err)
	}
}

func TestAppendBinaryErrors(t *testing.T) {
	tests := []struct {
		name string
		m    Message
		want error
	}{
		{"pong_zero_addr", Pong{TxID: 1}, ErrMalformed},
		{"pong_zone", Pong{Observed: netip.MustParseAddrPort("[fe80::1%eth0]:1")}, ErrMalformed},
		{"nodes_21", Nodes{Nodes: dualStackNodes(MaxNodes + 1)}, ErrMalformed},
		{"nodes_5_addrs", Nodes{Nodes: []NodeInfo{{Addrs: []netip.AddrPort{v4, v4, v4, v4, v4}}}}, ErrMalformed},
		{"nodes_zero_addr", Nodes{Nodes: []NodeInfo{{Addrs: []netip.AddrPort{{}}}}}, ErrMalformed},
		{"nodes_worst_case", Nodes{Nodes: worstNodes()}, ErrTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			prefix := []byte("foo")
			got, err := tt.m.AppendBinary(prefix)
			if !errors.Is(err, tt.want) {
				t.Fatalf("AppendBinary error = %v, want %v", err, tt.want)
			}
			if tt.want == ErrTooLarge && string(got) != "foo" {
				t.Errorf("AppendBinary returned %q, want the prefix unchanged", got)
			}
		})
	}
}

func TestNodeInfoEncodedLen(t *testing.T) {
	i := slices.IndexFunc(validMessages, func(c msgCase) bool { return c.name == "nodes" })
	for _, n := range append(dualStackNodes(1), worstNodes()[0], NodeInfo{}, validMessages[i].m.(Nodes).Nodes[1]) {
		b, err := n.appendBinary(nil)
		if err != nil {
			t.Fatal(err)
		}
		if n.EncodedLen() != len(b) {
			t.Errorf("EncodedLen() = %d, encoded %d bytes: %+v", n.EncodedLen(), len(b), n)
		}
	}
}

func TestTypeString(t *testing.T) {
	for typ, want := range map[Type]string{TypePing: "ping", TypeNodes: "nodes", TypeAuthed: "authed", 0: "type(0x00)", 0xff: "type(0xff)"} {
		if got := typ.String(); got != want {
			t.Errorf("Type(%d).String() = %q, want %q", uint8(typ), got, want)
		}
	}
}
