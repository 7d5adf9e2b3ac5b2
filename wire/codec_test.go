package wire

import (
	"bytes"
	"context"
	"crypto/hkdf"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/crypto/chacha20poly1305"
	"golang.org/x/crypto/curve25519"

	"github.com/whnet/wh/key"
)

const testNamespace = "wire-test"

// t0 is the fixed time of the tests: counter 0x17979cfe3d85cd15.
var t0 = time.Unix(1700000000, 123456789)

// fakeClock is a clock tests move by hand.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time // guarded by mu
}

func newFakeClock() *fakeClock { return &fakeClock{now: t0} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// fixedPrivate returns a private key whose bytes are all b.
func fixedPrivate(b byte) key.Private {
	var k key.Private
	for i := range k {
		k[i] = b
	}
	return k
}

func newPrivate(t testing.TB) key.Private {
	t.Helper()
	k, err := key.NewPrivate()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// lowOrder is a point of order 8 on Curve25519: X25519 with it yields zero.
var lowOrder = key.Public(mustHex("e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800"))

func mustHex(s string) []byte {
	b, err := hex.DecodeString(s)
	if err != nil {
		panic(err)
	}
	return b
}

func seal(t testing.TB, c *Codec, to key.Public, m Message) []byte {
	t.Helper()
	pkt, err := c.Seal(nil, to, m)
	if err != nil {
		t.Fatalf("Seal: %v", err)
	}
	return pkt
}

// Fixed keys and nonce prefix of the exact-bytes tests.
var (
	alicePriv   = fixedPrivate(0xa1)
	bobPriv     = fixedPrivate(0xb0)
	alicePrefix = [4]byte{0x5e, 0xed, 0xa1, 0x1c}
)

// withNoncePrefix fixes the codec's random nonce prefix, for the
// exact-bytes tests.
func withNoncePrefix(p [4]byte) Option { return func(c *Codec) { c.prefix = p } }

// wantEnvelope is Ping{TxID: 1} from alice to bob at t0, after "foo".
const wantEnvelope = "666f6f" + // prefix
	"ff776863" + // magic
	"02" + // version
	"c306fb0ef2bf8b7f93bad98155fa37daec74db0c4cbeda6c6f1dba9d36558252" + // alice's public key
	"5eeda11c" + // alice's nonce prefix
	"17979cfe3d85cd15" + // counter: t0 in Unix ns
	"6bab11f477e546678427" + // body
	"31620483962e90858404685f3bf1233d" // tag

func TestSealExactBytes(t *testing.T) {
	alice := NewCodec(alicePriv, testNamespace, 0, WithClock(newFakeClock().Now), WithAES(false), withNoncePrefix(alicePrefix)) // the pinned bytes say version 02, no AES flag
	got, err := alice.Seal([]byte("foo"), bobPriv.Public(), Ping{TxID: 1})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(wantEnvelope, hex.EncodeToString(got)); diff != "" {
		t.Errorf("envelope (-want +got):\n%s", diff)
	}
	if n := len(got) - 3 - pingLen; n != Overhead {
		t.Errorf("overhead %d bytes, want Overhead = %d", n, Overhead)
	}
}

// TestKeySchedule opens wantEnvelope with the key schedule written out step
// by step from the package documentation, using the standard library's
// HKDF, so that the pinned bytes are known to follow the documentation.
func TestKeySchedule(t *testing.T) {
	pkt := unhex(t, wantEnvelope)[3:]
	alicePub, bobPub := alicePriv.Public(), bobPriv.Public()
	secret, err := curve25519.X25519(bobPriv[:], alicePub[:])
	if err != nil {
		t.Fatal(err)
	}
	lo, hi := alicePub[:], bobPub[:]
	if bytes.Compare(lo, hi) > 0 {
		lo, hi = hi, lo
	}
	okm, err := hkdf.Key(sha256.New, secret, nil, "wh control v1"+string(lo)+string(hi), 64)
	if err != nil {
		t.Fatal(err)
	}
	k := okm[32:] // hi→lo
	if bytes.Equal(alicePub[:], lo) {
		k = okm[:32] // lo→hi
	}
	aead, err := chacha20poly1305.New(k)
	if err != nil {
		t.Fatal(err)
	}
	nonce := binary.BigEndian.AppendUint64(alicePrefix[:], uint64(t0.UnixNano()))
	body, err := aead.Open(nil, nonce, pkt[49:], pkt[:49])
	if err != nil {
		t.Fatalf("reference open: %v", err)
	}
	if want := unhex(t, "01 0000000000000001 00"); !bytes.Equal(body, want) {
		t.Errorf("body %x, want %x", body, want)
	}
	// The other direction uses the other half.
	bob := NewCodec(bobPriv, testNamespace, 0, WithClock(newFakeClock().Now))
	back := seal(t, bob, alicePub, Ping{TxID: 1})
	if _, err := aead.Open(nil, nonce, back[49:], back[:49]); err == nil {
		t.Error("bob→alice opened with the alice→bob key")
	}
}

func TestRoundTrip(t *testing.T) {
	clock := newFakeClock()
	alice := NewCodec(newPrivate(t), testNamespace, 0, WithClock(clock.Now))
	bob := NewCodec(newPrivate(t), testNamespace, 0, WithClock(clock.Now))
	for _, tt := range validMessages {
		t.Run(tt.name, func(t *testing.T) {
			for _, dir := range []struct{ from, to *Codec }{{alice, bob}, {bob, alice}, {alice, alice}} {
				pkt := seal(t, dir.from, dir.to.Public(), tt.m)
				if !IsControl(pkt) {
					t.Errorf("IsControl(sealed %v) = false", tt.m.Type())
				}
				from, m, err := dir.to.Open(pkt)
				if err != nil {
					t.Fatalf("Open: %v", err)
				}
				if from != dir.from.Public() {
					t.Errorf("from %v, want %v", from, dir.from.Public())
				}
				if diff := cmp.Diff(tt.m, m, cmp.Comparer(addrPortEqual)); diff != "" {
					t.Errorf("message (-want +got):\n%s", diff)
				}
			}
		})
	}
	if got, want := alice.Stats().Sealed, uint64(2*len(validMessages)); got != want {
		t.Errorf("alice sealed %d, want %d", got, want)
	}
	if got, want := bob.Stats().Opened, uint64(len(validMessages)); got != want {
		t.Errorf("bob opened %d, want %d", got, want)
	}
}

// TestOpenInPlace checks that OpenInPlace opens what Open opens, in the
// packet's own buffer: a relay frame's payload points into it.
func TestOpenInPlace(t *testing.T) {
	clock := newFakeClock()
	alice := NewCodec(newPrivate(t), testNamespace, 0, WithClock(clock.Now))
	bob := NewCodec(newPrivate(t), testNamespace, 0, WithClock(clock.Now))
	payloads := 0
	for _, tt := range append(slices.Clone(validMessages), relayMessages...) {
		pkt := seal(t, alice, bob.Public(), tt.m)
		from, m, err := bob.OpenInPlace(src4, pkt)
		if err != nil || from != alice.Public() {
			t.Fatalf("%s: OpenInPlace = %v, %v", tt.name, from, err)
		}
		if diff := cmp.Diff(tt.m, m, cmp.Comparer(addrPortEqual)); diff != "" {
			t.Errorf("%s: message (-want +got):\n%s", tt.name, diff)
		}
		var payload []byte
		switch m := m.(type) {
		case Relay:
			payload = m.Payload
		case Relayed:
			payload = m.Payload
		}
		if len(payload) > 0 {
			payloads++
			if &payload[0] != &pkt[HeaderLen] {
				t.Errorf("%s: payload copied out of the packet", tt.name)
			}
		}
	}
	if payloads != len(relayMessages) {
		t.Errorf("%d payloads checked, want %d", payloads, len(relayMessages))
	}
	if _, _, err := bob.OpenInPlace(src4, []byte{0xff, 0x77}); !errors.Is(err, ErrShort) {
		t.Errorf("OpenInPlace(short) = %v, want ErrShort", err)
	}
	pkt := seal(t, alice, bob.Public(), Ping{})
	pkt[len(pkt)-1] ^= 1
	if _, _, err := bob.OpenInPlace(src4, pkt); !errors.Is(err, ErrAuth) {
		t.Errorf("OpenInPlace(tampered) = %v, want ErrAuth", err)
	}
}

// TestMaxNodesFits checks that MaxNodes dual-stack nodes fit in a packet.
func TestMaxNodesFits(t *testing.T) {
	c := NewCodec(newPrivate(t), testNamespace, 0)
	pkt := seal(t, c, c.Public(), Nodes{TxID: 1, Nodes: dualStackNodes(MaxNodes)})
	if len(pkt) > MaxPacketSize {
		t.Errorf("%d-byte packet for %d nodes, over MaxPacketSize %d", len(pkt), MaxNodes, MaxPacketSize)
	}
	t.Logf("%d dual-stack nodes: %d bytes", MaxNodes, len(pkt))
}

func TestSealErrors(t *testing.T) {
	c := NewCodec(newPrivate(t), testNamespace, 0)
	tests := []struct {
		name string
		to   key.Public
		m    Message
		want error
	}{
		{"low_order_peer", lowOrder, Ping{}, ErrKeyAgreement},
		{"zero_peer", key.Public{}, Ping{}, ErrKeyAgreement},
		{"too_large", c.Public(), Nodes{Nodes: worstNodes()}, ErrTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := c.Seal([]byte("foo"), tt.to, tt.m)
			if !errors.Is(err, tt.want) {
				t.Fatalf("Seal error = %v, want %v", err, tt.want)
			}
			if string(got) != "foo" {
				t.Errorf("Seal returned %q, want dst unchanged", got)
			}
		})
	}
	if s := c.Stats().Sealed; s != 0 {
		t.Errorf("Sealed = %d after failures only", s)
	}
}

// rawMessage is a Message with any body, to send what Open must refuse.
type rawMessage []byte

func (r rawMessage) Type() Type                            { return Type(r[0]) }
func (r rawMessage) AppendBinary(b []byte) ([]byte, error) { return append(b, r...), nil }

// keys is a worked and an unworked key for workbit 8.
type keys struct{ worked, lazy key.Private }

var testKeys = sync.OnceValue(func() keys {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	worked, err := key.Search(ctx, 8, testNamespace, key.SearchOptions{})
	if err != nil {
		panic(err)
	}
	for {
		lazy, err := key.NewPrivate()
		if err != nil {
			panic(err)
		}
		if key.Workbits(lazy.Public(), testNamespace) < 8 {
			return keys{worked, lazy}
		}
	}
})

// TestOpenRejects checks each reason Open drops a packet for, and that a
// packet failing several checks is dropped (and counted) at the first.
func TestOpenRejects(t *testing.T) {
	ks := testKeys()
	if w := key.Workbits(ks.worked.Public(), testNamespace); w < 8 {
		t.Fatalf("key.Search returned a key with %d workbits", w)
	}
	type setup struct {
		clock    *fakeClock
		receiver *Codec // workbit 8
		worked   *Codec // sender with 8 workbits, same clock
		lazy     *Codec // sender with fewer
	}
	flip := func(b []byte, i int) []byte { b[i] ^= 0x01; return b }
	withVersion := func(b []byte, v byte) []byte { b[4] = v; return b }
	tests := []struct {
		name    string
		workbit int // of the receiver
		packet  func(s setup) []byte
		want    error
		counter func(*Stats) *uint64
	}{
		{"empty", 8, func(s setup) []byte { return nil }, ErrShort, func(s *Stats) *uint64 { return &s.Short }},
		{"header_and_tag_only", 8, func(s setup) []byte {
			return seal(t, s.worked, s.receiver.Public(), Ping{})[:Overhead]
		}, ErrShort, func(s *Stats) *uint64 { return &s.Short }},
		{"short_and_bad_magic", 8, func(s setup) []byte { return make([]byte, 10) }, ErrShort,
			func(s *Stats) *uint64 { return &s.Short }},
		{"bad_magic", 8, func(s setup) []byte {
			return flip(seal(t, s.worked, s.receiver.Public(), Ping{}), 3)
		}, ErrMagic, func(s *Stats) *uint64 { return &s.BadMagic }},
		{"wireguard_data", 8, func(s setup) []byte {
			return append([]byte{4, 0, 0, 0}, make([]byte, 100)...)
		}, ErrMagic, func(s *Stats) *uint64 { return &s.BadMagic }},
		{"bad_magic_and_version", 8, func(s setup) []byte {
			return withVersion(flip(seal(t, s.worked, s.receiver.Public(), Ping{}), 0), Version+1)
		}, ErrMagic, func(s *Stats) *uint64 { return &s.BadMagic }},
		{"version_0", 8, func(s setup) []byte {
			return withVersion(seal(t, s.worked, s.receiver.Public(), Ping{}), 0)
		}, ErrVersion, func(s *Stats) *uint64 { return &s.BadVersion }},
		{"version_1", 8, func(s setup) []byte { // 45-byte header, no nonce prefix
			return withVersion(seal(t, s.worked, s.receiver.Public(), Ping{}), 1)
		}, ErrVersion, func(s *Stats) *uint64 { return &s.BadVersion }},
		{"next_version_and_underworked", 8, func(s setup) []byte {
			return withVersion(seal(t, s.lazy, s.receiver.Public(), Ping{}), Version+1)
		}, ErrVersion, func(s *Stats) *uint64 { return &s.BadVersion }},
		{"underworked", 8, func(s setup) []byte {
			return seal(t, s.lazy, s.receiver.Public(), Ping{})
		}, ErrWorkbits, func(s *Stats) *uint64 { return &s.Underworked }},
		{"underworked_and_tampered", 8, func(s setup) []byte {
			return flip(seal(t, s.lazy, s.receiver.Public(), Ping{}), HeaderLen)
		}, ErrWorkbits, func(s *Stats) *uint64 { return &s.Underworked }},
		{"underworked_and_cached", 8, func(s setup) []byte {
			seal(t, s.receiver, s.lazy.Public(), Ping{}) // caches the lazy key
			return seal(t, s.lazy, s.receiver.Public(), Ping{})
		}, ErrWorkbits, func(s *Stats) *uint64 { return &s.Underworked }},
		{"low_order_sender", 0, func(s setup) []byte {
			pkt := seal(t, s.worked, s.receiver.Public(), Ping{})
			copy(pkt[5:], lowOrder[:])
			return pkt
		}, ErrKeyAgreement, func(s *Stats) *uint64 { return &s.KeyAgreement }},
		{"zero_sender", 0, func(s setup) []byte {
			pkt := seal(t, s.worked, s.receiver.Public(), Ping{})
			copy(pkt[5:], make([]byte, 32))
			return pkt
		}, ErrKeyAgreement, func(s *Stats) *uint64 { return &s.KeyAgreement }},
		{"tampered_tag", 8, func(s setup) []byte {
			pkt := seal(t, s.worked, s.receiver.Public(), Ping{})
			return flip(pkt, len(pkt)-1)
		}, ErrAuth, func(s *Stats) *uint64 { return &s.Auth }},
		{"for_someone_else", 8, func(s setup) []byte {
			return seal(t, s.worked, s.lazy.Public(), Ping{})
		}, ErrAuth, func(s *Stats) *uint64 { return &s.Auth }},
		{"tampered_and_stale", 8, func(s setup) []byte {
			s.clock.Advance(-time.Hour)
			defer s.clock.Advance(time.Hour)
			return flip(seal(t, s.worked, s.receiver.Public(), Ping{}), HeaderLen-1)
		}, ErrAuth, func(s *Stats) *uint64 { return &s.Auth }},
		{"stale", 8, func(s setup) []byte {
			s.clock.Advance(-MaxSkew - time.Second)
			defer s.clock.Advance(MaxSkew + time.Second)
			return seal(t, s.worked, s.receiver.Public(), Ping{})
		}, ErrStale, func(s *Stats) *uint64 { return &s.Stale }},
		{"future", 8, func(s setup) []byte {
			s.clock.Advance(MaxSkew + time.Second)
			defer s.clock.Advance(-MaxSkew - time.Second)
			return seal(t, s.worked, s.receiver.Public(), Ping{})
		}, ErrFuture, func(s *Stats) *uint64 { return &s.Future }},
		{"replayed_after_skew", 8, func(s setup) []byte {
			pkt := seal(t, s.worked, s.receiver.Public(), Ping{})
			if _, _, err := s.receiver.Open(pkt); err != nil {
				t.Fatalf("first Open: %v", err)
			}
			s.clock.Advance(MaxSkew + time.Second)
			return pkt
		}, ErrStale, func(s *Stats) *uint64 { return &s.Stale }},
		{"replayed", 8, func(s setup) []byte {
			pkt := seal(t, s.worked, s.receiver.Public(), Ping{})
			if _, _, err := s.receiver.Open(pkt); err != nil {
				t.Fatalf("first Open: %v", err)
			}
			return pkt
		}, ErrReplay, func(s *Stats) *uint64 { return &s.Replay }},
		{"older_than_window", 8, func(s setup) []byte {
			old := seal(t, s.worked, s.receiver.Public(), Ping{})
			for range windowSize {
				if _, _, err := s.receiver.Open(seal(t, s.worked, s.receiver.Public(), Ping{})); err != nil {
					t.Fatalf("Open: %v", err)
				}
			}
			return old
		}, ErrReplay, func(s *Stats) *uint64 { return &s.Replay }},
		{"malformed_body", 8, func(s setup) []byte {
			return seal(t, s.worked, s.receiver.Public(), rawMessage{byte(TypePing), 1, 2})
		}, ErrMalformed, func(s *Stats) *uint64 { return &s.Malformed }},
		{"unknown_type", 8, func(s setup) []byte {
			return seal(t, s.worked, s.receiver.Public(), rawMessage{0x0d, 1, 2})
		}, ErrUnknownType, func(s *Stats) *uint64 { return &s.UnknownType }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clock := newFakeClock()
			s := setup{
				clock:    clock,
				receiver: NewCodec(newPrivate(t), testNamespace, tt.workbit, WithClock(clock.Now)),
				worked:   NewCodec(ks.worked, testNamespace, 8, WithClock(clock.Now)),
				lazy:     NewCodec(ks.lazy, testNamespace, 8, WithClock(clock.Now)),
			}
			pkt := tt.packet(s)
			want := s.receiver.Stats()
			*tt.counter(&want)++
			from, m, err := s.receiver.Open(pkt)
			if !errors.Is(err, tt.want) {
				t.Fatalf("Open = %v, %v, %v; want error %v", from, m, err, tt.want)
			}
			if m != nil {
				t.Errorf("Open returned message %v with error %v", m, err)
			}
			if diff := cmp.Diff(want, s.receiver.Stats()); diff != "" {
				t.Errorf("stats (-want +got):\n%s", diff)
			}
			// Authenticated rejections name the sender, others do not.
			authenticated := errors.Is(err, ErrStale) || errors.Is(err, ErrFuture) || errors.Is(err, ErrReplay) ||
				errors.Is(err, ErrMalformed) || errors.Is(err, ErrUnknownType)
			if authenticated != (from == s.worked.Public()) || !authenticated && !from.IsZero() {
				t.Errorf("Open returned from = %v with error %v", from, err)
			}
		})
	}
}

// TestOpenTamperedByte flips each bit of a packet, and of a relay frame,
// and checks that none of the results opens, and that the originals still
// open afterwards.
func TestOpenTamperedByte(t *testing.T) {
	clock := newFakeClock()
	alice := NewCodec(newPrivate(t), testNamespace, 0, WithClock(clock.Now))
	bob := NewCodec(newPrivate(t), testNamespace, 0, WithClock(clock.Now))
	for _, m := range []Message{Nodes{TxID: 9, Nodes: dualStackNodes(1)}, Relay{Dst: fill(7), Payload: wgData(100)}} {
		testTamper(t, bob, seal(t, alice, bob.Public(), m))
	}
}

func testTamper(t *testing.T, bob *Codec, pkt []byte) {
	for i := range pkt {
		for bit := range 8 {
			bad := bytes.Clone(pkt)
			bad[i] ^= 1 << bit
			_, m, err := bob.Open(bad)
			if err == nil {
				t.Fatalf("byte %d bit %d flipped: opened as %v", i, bit, m)
			}
			var ok bool
			switch {
			case i < len(Magic):
				ok = err == ErrMagic
			case i == len(Magic):
				v := bad[i]
				switch {
				case v&versionMask != Version || v&FlagAESFrame != 0 && v&FlagFrame == 0:
					ok = err == ErrVersion
				case v&FlagFrame != 0 && len(bad) < minFrameLen:
					ok = err == ErrShort
				default: // another valid form, which the tag does not match
					ok = err == ErrAuth
				}
			case i < HeaderLen-8: // sender
				ok = err == ErrAuth || err == ErrKeyAgreement
			default:
				ok = err == ErrAuth
			}
			if !ok {
				t.Errorf("byte %d bit %d flipped: error %v", i, bit, err)
			}
		}
	}
	if _, _, err := bob.Open(pkt); err != nil {
		t.Fatalf("untampered packet after the tampered ones: %v", err)
	}
}

func TestWindow(t *testing.T) {
	var w window
	accept := func(counters []uint64, want bool) {
		t.Helper()
		for _, c := range counters {
			if got := w.accept(c); got != want {
				t.Fatalf("accept(%d) = %v, want %v", c, got, want)
			}
		}
	}
	accept([]uint64{100, 99, 1}, true) // reordered, not full
	accept([]uint64{100, 99, 1}, false)
	for i := range uint64(windowSize - 3) {
		accept([]uint64{200 + i}, true)
	}
	// Full: 1, 99, 100, 200, ...
	accept([]uint64{0, 1, 99, 200}, false)
	accept([]uint64{50}, true) // 1 leaves
	accept([]uint64{1, 2, 49, 50}, false)
	accept([]uint64{98}, true) // never seen, above the smallest (50)
	accept([]uint64{50, 60}, false)
}

// TestWindowReference compares window with the rule it implements, written
// naively over the whole history: a counter is new if it was never accepted
// and, once windowSize were, is above the windowSize-th largest of them.
func TestWindowReference(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for run := range 5 {
		var w window
		var history []uint64 // accepted, sorted
		next := uint64(1000)
		for step := range 1000 {
			next += rng.Uint64N(3)
			c := next - rng.Uint64N(60) // mostly reordered a little
			want := !slices.Contains(history, c) && (len(history) < windowSize || c > history[len(history)-windowSize])
			if got := w.accept(c); got != want {
				t.Fatalf("run %d step %d: accept(%d) = %v, reference %v", run, step, c, got, want)
			}
			if want {
				i, _ := slices.BinarySearch(history, c)
				history = slices.Insert(history, i, c)
			}
		}
	}
}

// src4 is the source address of the tests' packets.
var src4 = v4.Addr()

// wantFrame is Relay{Dst: fill(1), Payload: wgData(8)} from alice to bob
// at t0, in a ChaCha20-Poly1305 frame, after "foo".
const wantFrame = "666f6f" + // prefix
	"ff776863" + // magic
	"82" + // version 02 | FlagFrame
	"c306fb0ef2bf8b7f93bad98155fa37daec74db0c4cbeda6c6f1dba9d36558252" + // alice's public key
	"5eeda11c" + // alice's nonce prefix
	"17979cfe3d85cd15" + // counter: t0 in Unix ns
	"0400000004050607" + // payload, in clear
	"6caa10f576e44766842670b3a5814faca0b9e5f696c6c41e3e12cab36e98496216" + // type and key, encrypted
	"276a0f157b09c7903543a16e74b82862" // tag

func TestFrameExactBytes(t *testing.T) {
	alice := NewCodec(alicePriv, testNamespace, 0, WithClock(newFakeClock().Now), WithAES(false), withNoncePrefix(alicePrefix))
	got, err := alice.Seal([]byte("foo"), bobPriv.Public(), Relay{Dst: fill(1), Payload: wgData(8)})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(wantFrame, hex.EncodeToString(got)); diff != "" {
		t.Errorf("frame (-want +got):\n%s", diff)
	}
	// Open it as the package comment and relay.go say, step by step.
	pkt := unhex(t, wantFrame)[3:]
	alicePub, bobPub := alicePriv.Public(), bobPriv.Public()
	secret, err := curve25519.X25519(bobPriv[:], alicePub[:])
	if err != nil {
		t.Fatal(err)
	}
	lo, hi := alicePub[:], bobPub[:]
	if bytes.Compare(lo, hi) > 0 {
		lo, hi = hi, lo
	}
	okm, err := hkdf.Key(sha256.New, secret, nil, "wh control v1"+string(lo)+string(hi), 64)
	if err != nil {
		t.Fatal(err)
	}
	k := okm[32:]
	if bytes.Equal(alicePub[:], lo) {
		k = okm[:32]
	}
	aead, err := chacha20poly1305.New(k)
	if err != nil {
		t.Fatal(err)
	}
	nonce := pkt[37:49] // prefix ‖ counter
	n := len(pkt) - 33 - 16
	trailer, err := aead.Open(nil, nonce, pkt[n:], pkt[:n])
	if err != nil {
		t.Fatalf("reference open: %v", err)
	}
	want := append([]byte{byte(TypeRelay)}, bytes.Repeat([]byte{1}, 32)...)
	if !bytes.Equal(trailer, want) {
		t.Errorf("trailer %x, want %x", trailer, want)
	}
}

// TestNoncePrefix: two codecs with one key and one clock, as a process
// and its restart after the clock stepped back, seal under different
// nonces.
func TestNoncePrefix(t *testing.T) {
	clock := newFakeClock()
	a := NewCodec(alicePriv, testNamespace, 0, WithClock(clock.Now))
	b := NewCodec(alicePriv, testNamespace, 0, WithClock(clock.Now))
	pa, pb := seal(t, a, bobPriv.Public(), Ping{TxID: 1}), seal(t, b, bobPriv.Public(), Ping{TxID: 1})
	na, nb := pa[HeaderLen-NonceLen:HeaderLen], pb[HeaderLen-NonceLen:HeaderLen]
	if !bytes.Equal(na[4:], nb[4:]) {
		t.Fatalf("counters %x and %x differ: the test's clock is not shared", na[4:], nb[4:])
	}
	if bytes.Equal(na, nb) {
		t.Errorf("two codecs sealed under the same nonce %x", na)
	}
	// The receiver's replay window still refuses the second counter.
	bob := NewCodec(bobPriv, testNamespace, 0, WithClock(clock.Now))
	if _, _, err := bob.Open(pa); err != nil {
		t.Fatal(err)
	}
	if _, _, err := bob.Open(pb); !errors.Is(err, ErrReplay) {
		t.Errorf("same counter under another prefix: %v, want ErrReplay", err)
	}
}
