package wire

import (
	"bytes"
	"crypto/cipher"
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/whnet/wh/key"
)

// wgData returns a WireGuard data message of n bytes (type 4), the kind of
// payload relay frames carry.
func wgData(n int) []byte {
	b := make([]byte, n)
	if n > 0 {
		b[0] = 4
	}
	for i := 4; i < n; i++ {
		b[i] = byte(i)
	}
	return b
}

// relayMessages are relay frames with their exact bodies.
var relayMessages = []msgCase{
	{"relay", Relay{Dst: k0to31, Payload: []byte{4, 0, 0, 0, 0xaa}},
		"06 000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f 04000000aa"},
	{"relayed", Relayed{Src: fill(0xee), Payload: []byte{1}},
		"07 eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee 01"},
	{"relay_control_payload", Relay{Dst: fill(1), Payload: []byte(Magic)},
		"06 0101010101010101010101010101010101010101010101010101010101010101 ff776863"},
}

// TestRelayPayloadAliases checks that a parsed payload is the body's own
// bytes (no copy on the data path) and that appending to it cannot
// overwrite anything after it.
func TestRelayPayloadAliases(t *testing.T) {
	buf, err := Relay{Dst: fill(1), Payload: wgData(40)}.AppendBinary(nil)
	if err != nil {
		t.Fatal(err)
	}
	buf = append(buf, "tail"...)
	body := buf[:len(buf)-4]
	m, err := ParseMessage(body)
	if err != nil {
		t.Fatal(err)
	}
	p := m.(Relay).Payload
	if &p[0] != &body[RelayHeaderLen] {
		t.Error("payload is a copy, want it to alias the body")
	}
	if cap(p) != len(p) {
		t.Errorf("payload capacity %d, want its length %d", cap(p), len(p))
	}
	_ = append(p, 'X')
	if string(buf[len(buf)-4:]) != "tail" {
		t.Error("appending to the payload overwrote the bytes after the body")
	}
}

func TestRelaySizeBounds(t *testing.T) {
	tests := []struct {
		name    string
		payload int
		wantErr error
	}{
		{"empty", 0, ErrMalformed},
		{"one_byte", 1, nil},
		{"wireguard_full_mtu", 1280 + 32, nil},
		{"max", MaxRelayPayload, nil},
		{"max_plus_one", MaxRelayPayload + 1, ErrTooLarge},
	}
	for _, tt := range tests {
		for _, m := range []Message{Relay{Dst: fill(1), Payload: wgData(tt.payload)}, Relayed{Src: fill(2), Payload: wgData(tt.payload)}} {
			t.Run(tt.name+"_"+m.Type().String(), func(t *testing.T) {
				_, err := m.AppendBinary(nil)
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("AppendBinary: %v, want %v", err, tt.wantErr)
				}
				// Build the body by hand so that oversized ones can be parsed.
				k := fill(1)
				raw := append([]byte{byte(m.Type())}, k[:]...)
				raw = append(raw, wgData(tt.payload)...)
				if _, err := ParseMessage(raw); !errors.Is(err, tt.wantErr) {
					t.Fatalf("ParseMessage of %d-byte payload: %v, want %v", tt.payload, err, tt.wantErr)
				}
				if err != nil {
					return
				}
				c := NewCodec(alicePriv, testNamespace, 0, WithClock(newFakeClock().Now))
				pkt := seal(t, c, bobPriv.Public(), m)
				if want := Overhead + RelayHeaderLen + tt.payload; len(pkt) != want {
					t.Errorf("packet %d bytes, want %d", len(pkt), want)
				}
				if len(pkt) > MaxRelayPacketSize {
					t.Errorf("packet %d bytes, over MaxRelayPacketSize %d", len(pkt), MaxRelayPacketSize)
				}
			})
		}
	}
}

// TestRelayFitsPath pins the arithmetic of the package's Sizes section.
func TestRelayFitsPath(t *testing.T) {
	const (
		pathMTU   = 1500
		ipv6UDP   = 40 + 8
		tunnelMTU = 1280
		wgData    = 32
	)
	if MaxRelayPacketSize != pathMTU-ipv6UDP {
		t.Errorf("MaxRelayPacketSize = %d, want %d", MaxRelayPacketSize, pathMTU-ipv6UDP)
	}
	if MaxRelayPayload != 1354 {
		t.Errorf("MaxRelayPayload = %d, want 1452 - 65 - 33 = 1354", MaxRelayPayload)
	}
	if frame := Overhead + RelayHeaderLen + tunnelMTU + wgData; frame != 1410 || frame > MaxRelayPacketSize {
		t.Errorf("full-MTU frame %d bytes, want 1410 ≤ %d", frame, MaxRelayPacketSize)
	}
}

func TestRelayParseErrors(t *testing.T) {
	tests := []struct {
		name    string
		body    string
		wantErr error
	}{
		{"relay_type_only", "06", ErrMalformed},
		{"relay_short_key", "06 0102", ErrMalformed},
		{"relay_no_payload", "06 0000000000000000000000000000000000000000000000000000000000000000", ErrMalformed},
		{"relayed_no_payload", "07 0000000000000000000000000000000000000000000000000000000000000000", ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := ParseMessage(unhex(t, tt.body))
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("ParseMessage = %v, %v; want error %v", m, err, tt.wantErr)
			}
		})
	}
}

// TestRelaySealOpen sends both frames through a pair of codecs: Open must
// accept a frame over MaxPacketSize.
func TestRelaySealOpen(t *testing.T) {
	clock := newFakeClock()
	alice := NewCodec(alicePriv, testNamespace, 0, WithClock(clock.Now))
	bob := NewCodec(bobPriv, testNamespace, 0, WithClock(clock.Now))
	for _, m := range []Message{
		Relay{Dst: fill(3), Payload: wgData(MaxRelayPayload)},
		Relayed{Src: fill(4), Payload: wgData(1312)},
	} {
		t.Run(m.Type().String(), func(t *testing.T) {
			from, got, err := bob.Open(seal(t, alice, bob.Public(), m))
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			if from != alice.Public() {
				t.Errorf("from %v, want alice", from)
			}
			if diff := cmp.Diff(m, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

// FuzzParseRelay checks that relay frames never panic the parser and that
// every accepted frame re-encodes to exactly its input: the layout has no
// slack, so there is one encoding per value.
func FuzzParseRelay(f *testing.F) {
	for _, m := range relayMessages {
		b, err := m.m.AppendBinary(nil)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	for _, n := range []int{1312, MaxRelayPayload, MaxRelayPayload + 1} {
		k := fill(9)
		f.Add(append(append([]byte{byte(TypeRelayed)}, k[:]...), wgData(n)...))
	}
	f.Add([]byte{})
	f.Add([]byte{0xff})
	f.Add([]byte{byte(TypeRelay)})

	f.Fuzz(func(t *testing.T, body []byte) {
		orig := bytes.Clone(body)
		m, err := ParseMessage(body)
		if err != nil {
			if len(body) > 0 && (body[0] == byte(TypeRelay) || body[0] == byte(TypeRelayed)) {
				n := len(body) - RelayHeaderLen
				if n >= 1 && n <= MaxRelayPayload {
					t.Fatalf("rejected a well-sized %v frame: %v", Type(body[0]), err)
				}
			}
			return
		}
		if !bytes.Equal(body, orig) {
			t.Fatal("ParseMessage modified its input")
		}
		switch m.(type) {
		case Relay, Relayed:
		default:
			return // other types: FuzzParseMessage
		}
		b, err := m.AppendBinary([]byte("foo"))
		if err != nil {
			t.Fatalf("parsed %#v, cannot encode it: %v", m, err)
		}
		if !bytes.Equal(b[3:], body) {
			t.Fatalf("re-encoded %x, input %x", b[3:], body)
		}
		again, err := ParseMessage(b[3:])
		if err != nil {
			t.Fatalf("re-encoded %x does not parse: %v", b[3:], err)
		}
		if diff := cmp.Diff(m, again); diff != "" {
			t.Fatalf("round trip (-first +second):\n%s", diff)
		}
	})
}

// TestFrameLayout opens sealed relay frames by hand, as the package
// documentation draws them: the payload in clear after the header, the
// type and key encrypted after it, the tag over everything; with
// ChaCha20-Poly1305 until the receiver has said it has AES in hardware,
// with AES-256-GCM after.
func TestFrameLayout(t *testing.T) {
	clock := newFakeClock()
	alice := NewCodec(alicePriv, testNamespace, 0, WithClock(clock.Now), WithAES(true))
	bob := NewCodec(bobPriv, testNamespace, 0, WithClock(clock.Now), WithAES(true))
	payload := wgData(100)
	dst := fill(0x5a)
	p, err := bob.lookup(alice.Public())
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		version byte
		aead    cipher.AEAD
	}{
		{"chacha", Version | FlagAES | FlagFrame, p.recv},
		{"aes", Version | FlagAES | FlagFrame | FlagAESFrame, p.recvAES},
	} {
		pkt, err := alice.Seal(nil, bob.Public(), Relay{Dst: dst, Payload: payload})
		if err != nil {
			t.Fatal(err)
		}
		if len(pkt) != Overhead+RelayHeaderLen+len(payload) {
			t.Errorf("%s: frame of %d bytes, want %d, as a version 1 envelope", tc.name, len(pkt), Overhead+RelayHeaderLen+len(payload))
		}
		if pkt[len(Magic)] != tc.version || !bytes.Equal(pkt[HeaderLen:HeaderLen+len(payload)], payload) {
			t.Fatalf("%s: version %#x (want %#x), payload at 45 %x", tc.name, pkt[len(Magic)], tc.version, pkt[HeaderLen:HeaderLen+len(payload)])
		}
		if bytes.Contains(pkt, dst[:8]) {
			t.Errorf("%s: the destination key is in clear", tc.name)
		}
		n := HeaderLen + len(payload)
		trailer, err := tc.aead.Open(nil, nonce(pkt[:HeaderLen]), pkt[n:], pkt[:n])
		if err != nil {
			t.Fatalf("%s: by hand: %v", tc.name, err)
		}
		if want := append([]byte{byte(TypeRelay)}, dst[:]...); !bytes.Equal(trailer, want) {
			t.Errorf("%s: trailer %x, want %x", tc.name, trailer, want)
		}
		if _, m, err := bob.Open(pkt); err != nil || m.(Relay).Dst != dst {
			t.Fatalf("%s: Open = %v, %v", tc.name, m, err)
		}
		// Bob's next message tells Alice he has AES.
		if _, _, err := alice.Open(seal(t, bob, alice.Public(), Ping{TxID: 1})); err != nil {
			t.Fatal(err)
		}
	}
}

// TestFrameCipherChoice: AES frames go only where both sides have AES in
// hardware, and a peer that stops saying so gets ChaCha20 frames again.
func TestFrameCipherChoice(t *testing.T) {
	for _, tc := range []struct {
		alice, bob bool // AES in hardware
		want       byte // FlagAESFrame or 0, for frames from alice once bob spoke
	}{{true, true, FlagAESFrame}, {true, false, 0}, {false, true, 0}, {false, false, 0}} {
		clock := newFakeClock()
		alice := NewCodec(alicePriv, testNamespace, 0, WithClock(clock.Now), WithAES(tc.alice))
		bob := NewCodec(bobPriv, testNamespace, 0, WithClock(clock.Now), WithAES(tc.bob))
		if _, _, err := alice.Open(seal(t, bob, alice.Public(), Ping{TxID: 1})); err != nil {
			t.Fatal(err)
		}
		pkt := seal(t, alice, bob.Public(), Relayed{Src: fill(3), Payload: wgData(64)})
		if got := pkt[len(Magic)] & FlagAESFrame; got != tc.want {
			t.Errorf("alice AES %v, bob AES %v: frame flag %#x, want %#x", tc.alice, tc.bob, got, tc.want)
		}
		if _, _, err := bob.Open(pkt); err != nil {
			t.Errorf("alice AES %v, bob AES %v: bob cannot open: %v", tc.alice, tc.bob, err)
		}
	}
	// A peer that says it no longer has AES gets ChaCha20 frames.
	clock := newFakeClock()
	alice := NewCodec(alicePriv, testNamespace, 0, WithClock(clock.Now), WithAES(true))
	bob := NewCodec(bobPriv, testNamespace, 0, WithClock(clock.Now), WithAES(true))
	alice.Open(seal(t, bob, alice.Public(), Ping{TxID: 1}))
	bobNow := NewCodec(bobPriv, testNamespace, 0, WithClock(clock.Now), WithAES(false))
	clock.Advance(time.Millisecond)
	alice.Open(seal(t, bobNow, alice.Public(), Ping{TxID: 2}))
	if pkt := seal(t, alice, bob.Public(), Relay{Dst: fill(4), Payload: wgData(64)}); pkt[len(Magic)]&FlagAESFrame != 0 {
		t.Error("AES frame to a peer whose last message said it has no AES")
	}
}

// badFrame is sealed as a relay frame with another type in its trailer.
type badFrame struct{ Ping }

func (badFrame) frame() (Type, key.Public, []byte) { return TypePing, key.Public{}, []byte{4, 0, 0, 0} }

// TestFrameRejects: frames that authenticate but are not relay frames, and
// relay messages outside a frame, are malformed; short frames are short.
func TestFrameRejects(t *testing.T) {
	clock := newFakeClock()
	alice := NewCodec(alicePriv, testNamespace, 0, WithClock(clock.Now))
	bob := NewCodec(bobPriv, testNamespace, 0, WithClock(clock.Now))
	body, err := Relay{Dst: fill(1), Payload: wgData(40)}.AppendBinary(nil)
	if err != nil {
		t.Fatal(err)
	}
	short := seal(t, alice, bob.Public(), rawMessage(body))
	short[len(Magic)] |= FlagFrame
	for _, tc := range []struct {
		name string
		pkt  []byte
		want error
	}{
		{"ping_in_a_frame", seal(t, alice, bob.Public(), badFrame{}), ErrMalformed},
		{"relay_in_a_plain_envelope", seal(t, alice, bob.Public(), rawMessage(body)), ErrMalformed},
		{"short_frame", short[:minFrameLen-1], ErrShort},
	} {
		if _, m, err := bob.Open(tc.pkt); !errors.Is(err, tc.want) {
			t.Errorf("%s: Open = %v, %v; want %v", tc.name, m, err, tc.want)
		}
	}
	if s := bob.Stats(); s.Malformed != 2 || s.Short != 1 {
		t.Errorf("stats %+v: want 2 malformed, 1 short", s)
	}
}

// BenchmarkFrame: sealing and opening a relay frame with a full-size
// payload, in ChaCha20-Poly1305 and in AES-256-GCM, against the same with
// the payload encrypted too (a raw body of the same size).
func BenchmarkFrame(b *testing.B) {
	payload := wgData(1312)
	body, _ := Relay{Dst: fill(1), Payload: payload}.AppendBinary(nil)
	for _, bc := range []struct {
		name string
		aes  bool
		m    Message
	}{
		{"frame", false, Relay{Dst: fill(1), Payload: payload}},
		{"frame_aes", true, Relay{Dst: fill(1), Payload: payload}},
		{"encrypted", false, rawMessage(body)},
	} {
		alice := NewCodec(newPrivate(b), testNamespace, 0, WithAES(bc.aes))
		bob := NewCodec(newPrivate(b), testNamespace, 0, WithAES(bc.aes))
		if bc.aes && !hasAESHardware {
			b.Log("no AES in hardware here: frame_aes runs Go's software AES")
		}
		alice.Open(seal(b, bob, alice.Public(), Ping{}))
		b.Run(bc.name, func(b *testing.B) {
			buf := make([]byte, 0, MaxRelayPacketSize)
			b.SetBytes(int64(len(payload)))
			b.ReportAllocs()
			for b.Loop() {
				pkt, err := alice.Seal(buf[:0], bob.Public(), bc.m)
				if err != nil {
					b.Fatal(err)
				}
				bob.OpenInPlace(src4, pkt) // the encrypted one fails parsing, after the AEAD
			}
		})
	}
}
