package wire

import (
	"bytes"
	"errors"
	"net/netip"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// FuzzParseMessage checks that ParseMessage never panics and that whatever
// it accepts encodes and parses back to the same value.
func FuzzParseMessage(f *testing.F) {
	for _, m := range slices.Concat(validMessages, authMessages) {
		b, err := m.m.AppendBinary(nil)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	big, err := Nodes{TxID: 1, Nodes: dualStackNodes(MaxNodes)}.AppendBinary(nil)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(big)
	f.Add([]byte{})
	f.Add([]byte{0xff})
	f.Add([]byte{byte(TypeNodes), 0, 0, 0, 0, 0, 0, 0, 1, MaxNodes + 1})

	f.Fuzz(func(t *testing.T, body []byte) {
		m, err := ParseMessage(body)
		if err != nil {
			return
		}
		b, err := m.AppendBinary([]byte("foo"))
		if err != nil {
			t.Fatalf("parsed %#v, cannot encode it: %v", m, err)
		}
		if len(b)-3 > len(body) {
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

// FuzzOpen checks that Open never panics and that nothing opens except the
// packets sealed for the receiver, unmodified.
func FuzzOpen(f *testing.F) {
	clock := newFakeClock()
	// Fixed prefixes: every fuzzing process must seal the same seeds.
	alice := NewCodec(alicePriv, testNamespace, 0, WithClock(clock.Now), withNoncePrefix(alicePrefix))
	bob := bobPriv.Public()
	valid := map[string]Message{}
	for _, m := range slices.Concat(validMessages, relayMessages, authMessages) {
		pkt := seal(f, alice, bob, m.m)
		valid[string(pkt)] = m.m
		f.Add(pkt)
	}
	// Relay frames in AES-256-GCM: alice seals them once bob said he has
	// AES in hardware.
	alice = NewCodec(alicePriv, testNamespace, 0, WithClock(clock.Now), WithAES(true), withNoncePrefix([4]byte{0xae, 0x5a, 0x1c, 0xe2}))
	if _, _, err := alice.Open(seal(f, NewCodec(bobPriv, testNamespace, 0, WithClock(clock.Now), WithAES(true)), alice.Public(), Ping{})); err != nil {
		f.Fatal(err)
	}
	for _, m := range relayMessages {
		pkt := seal(f, alice, bob, m.m)
		if pkt[len(Magic)]&FlagAESFrame == 0 {
			f.Fatal("no AES frame")
		}
		valid[string(pkt)] = m.m
		f.Add(pkt)
	}
	f.Add([]byte{})
	f.Add([]byte(Magic))
	f.Add(append([]byte(Magic), make([]byte, Overhead)...))
	f.Add([]byte{4, 0, 0, 0, 0, 0, 0, 0})

	f.Fuzz(func(t *testing.T, pkt []byte) {
		// A new receiver each time, so that no input is refused as a replay
		// of an earlier one.
		recv := NewCodec(bobPriv, testNamespace, 0, WithClock(clock.Now))
		orig := bytes.Clone(pkt)
		from, m, err := recv.Open(pkt)
		if !bytes.Equal(pkt, orig) {
			t.Fatal("Open modified its input")
		}
		// OpenInPlace, on its own copy, must agree.
		from2, m2, err2 := NewCodec(bobPriv, testNamespace, 0, WithClock(clock.Now)).OpenInPlace(src4, bytes.Clone(pkt))
		if err2 != err || from2 != from {
			t.Fatalf("OpenInPlace = %v, %v; Open = %v, %v", from2, err2, from, err)
		}
		if diff := cmp.Diff(m, m2, cmp.Comparer(addrPortEqual)); diff != "" {
			t.Fatalf("OpenInPlace's message differs from Open's (-Open +OpenInPlace):\n%s", diff)
		}
		if err != nil {
			if m != nil {
				t.Fatalf("message %v with error %v", m, err)
			}
			return
		}
		want, ok := valid[string(pkt)]
		if !ok {
			t.Fatalf("opened a packet that was never sealed: %x -> %v", pkt, m)
		}
		if from != alice.Public() {
			t.Errorf("from %v, want alice", from)
		}
		if diff := cmp.Diff(want, m, cmp.Comparer(addrPortEqual)); diff != "" {
			t.Errorf("message (-want +got):\n%s", diff)
		}
	})
}

// BenchmarkSealOpen seals and opens a 64-byte body: a Nodes with one node
// and three IPv4 addresses.
func BenchmarkSealOpen(b *testing.B) {
	alice := NewCodec(newPrivate(b), testNamespace, 0)
	bob := NewCodec(newPrivate(b), testNamespace, 0)
	a4 := netip.MustParseAddrPort("192.0.2.1:1")
	m := Nodes{TxID: 1, Nodes: []NodeInfo{{Key: fill(1), Addrs: []netip.AddrPort{a4, a4, a4}}}}
	if body, _ := m.AppendBinary(nil); len(body) != 64 {
		b.Fatalf("body is %d bytes, want 64", len(body))
	}
	buf := make([]byte, 0, MaxPacketSize)
	b.ReportAllocs()
	for b.Loop() {
		pkt, err := alice.Seal(buf[:0], bob.Public(), m)
		if err != nil {
			b.Fatal(err)
		}
		if _, _, err := bob.Open(pkt); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkOpenNewSender opens packets from senders whose keys are not
// cached: the key derivation that DeriveLimits bound (compare
// BenchmarkSealOpen for a known sender). The packets are sealed for
// someone else, so that each costs a derivation and none is cached.
func BenchmarkOpenNewSender(b *testing.B) {
	bob := NewCodec(newPrivate(b), testNamespace, 0)
	other := newPrivate(b).Public()
	const senders = 64
	var pkts [senders][]byte
	for i := range pkts {
		pkts[i] = seal(b, NewCodec(newPrivate(b), testNamespace, 0), other, Ping{})
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if _, _, err := bob.Open(pkts[i%senders]); !errors.Is(err, ErrAuth) {
			b.Fatal(err)
		}
		i++
	}
}
