package wire

import (
	"bytes"
	"fmt"

	"github.com/whnet/wh/key"
)

// Relay frames carry WireGuard packets through a third node when two peers
// have no direct path. The packet is already encrypted end to end by
// WireGuard, so it travels unchanged; the envelope around it authenticates
// each hop: the relay knows which key asked it to forward (the sender of
// the Relay), and the receiver knows which relay delivered (the sender of
// the Relayed) and which key the relay vouches for (Src).
//
//	S ── Relay{Dst: D, Payload} ──▶ R ── Relayed{Src: S, Payload} ──▶ D
//
// A Relayed is exactly as long as the Relay it forwards: a relay never
// sends more bytes than it received.
//
// # Frames
//
// A relay frame is sealed in its own form of the envelope, FlagFrame set
// in the version byte: the payload, already encrypted end to end, is only
// authenticated, not encrypted again; the frame's type and key, which say
// who talks to whom, are encrypted:
//
//	offset  size  field
//	0       49    header, as for every control message, version byte 0x82 (| FlagAES, FlagAESFrame)
//	49      n     payload, in clear
//	49+n    33    type and key (Relay's Dst, Relayed's Src), encrypted
//	82+n    16    tag over bytes [0, 49+n) as associated data and the 33 bytes
//
// The AEAD is ChaCha20-Poly1305 under the pair's envelope keys, or, with
// FlagAESFrame, AES-256-GCM under the pair's frame keys (see the key
// schedule): a node seals frames in AES when it has AES in hardware and
// the receiver's last envelope said so too (FlagAES). The sizes are those
// of the plain envelope of the same message. A relayed packet is
// sealed and opened twice; `go test -bench Frame ./wire/` (full-size
// payload, seal and open): ChaCha20 frame 0.55–0.65 of the cost of
// encrypting the payload too, AES frame 0.35–0.45. A relay message in a
// plain envelope's body is refused.
//
// # Sizes
//
// A frame carrying the largest packet of a tunnel with the default MTU
// fits in one datagram on a 1500-byte path over IPv6, so relayed traffic is
// never fragmented:
//
//	  1500  path MTU
//	−   40  IPv6 header (IPv4's is 20)
//	−    8  UDP header
//	= 1452  MaxRelayPacketSize, the UDP payload of a relay frame
//	−   65  envelope: HeaderLen 49 + TagLen 16
//	−   33  RelayHeaderLen: type 1 + key 32
//	= 1354  MaxRelayPayload
//
// The tunnel's MTU is 1280 and WireGuard adds 32 bytes to a data packet
// (type 4, receiver 4, counter 8, tag 16), so the largest payload is 1312
// bytes and its frame 65 + 33 + 1312 = 1410 bytes: 42 to spare on IPv6, 62
// on IPv4. Relay frames are the only control messages allowed over
// MaxPacketSize.
const (
	MaxRelayPacketSize = 1500 - 40 - 8                                  // 1452
	RelayHeaderLen     = 1 + key.Size                                   // 33
	MaxRelayPayload    = MaxRelayPacketSize - Overhead - RelayHeaderLen // 1354
)

var (
	_ Message = Relay{}
	_ Message = Relayed{}
)

// Relay asks the receiver to forward Payload to the node whose key is Dst.
// The body is
//
//	offset size
//	0      1    type 0x06
//	1      32   destination key
//	33     n    payload, 1 ≤ n ≤ MaxRelayPayload, to the end of the body
//
// The payload runs to the end of the body, so unlike other messages a
// Relay cannot be extended at its end; a later version would take a new
// type. A parsed Payload aliases the parsed body.
type Relay struct {
	Dst     key.Public
	Payload []byte
}

func (Relay) Type() Type { return TypeRelay }

func (m Relay) AppendBinary(b []byte) ([]byte, error) {
	return appendRelayFrame(b, TypeRelay, m.Dst, m.Payload)
}

// Relayed delivers Payload, which the node whose key is Src asked the
// sender (the relay) to forward with a Relay. The body is
//
//	offset size
//	0      1    type 0x07
//	1      32   source key: the authenticated sender of the Relay
//	33     n    payload, unchanged, 1 ≤ n ≤ MaxRelayPayload, to the end
//
// Src is only as true as the relay is honest: the receiver must trust the
// payload for its own end-to-end authentication (WireGuard's), not for
// Src. A parsed Payload aliases the parsed body.
type Relayed struct {
	Src     key.Public
	Payload []byte
}

func (Relayed) Type() Type { return TypeRelayed }

func (m Relayed) AppendBinary(b []byte) ([]byte, error) {
	return appendRelayFrame(b, TypeRelayed, m.Src, m.Payload)
}

func appendRelayFrame(b []byte, t Type, k key.Public, payload []byte) ([]byte, error) {
	if err := checkPayload(t, len(payload)); err != nil {
		return b, err
	}
	b = append(b, byte(t))
	b = append(b, k[:]...)
	return append(b, payload...), nil
}

func checkPayload(t Type, n int) error {
	switch {
	case n == 0:
		return fmt.Errorf("%v: empty payload: %w", t, ErrMalformed)
	case n > MaxRelayPayload:
		return fmt.Errorf("%v: %d-byte payload, limit %d: %w", t, n, MaxRelayPayload, ErrTooLarge)
	}
	return nil
}

// frameTrailerLen is what follows a frame's payload; minFrameLen is the
// shortest frame.
const (
	frameTrailerLen = RelayHeaderLen + TagLen
	minFrameLen     = HeaderLen + 1 + frameTrailerLen
)

// framed is implemented by the messages sealed as relay frames.
type framed interface {
	frame() (t Type, k key.Public, payload []byte)
}

func (m Relay) frame() (Type, key.Public, []byte)   { return TypeRelay, m.Dst, m.Payload }
func (m Relayed) frame() (Type, key.Public, []byte) { return TypeRelayed, m.Src, m.Payload }

func isFramed(m Message) bool {
	_, ok := m.(framed)
	return ok
}

// parseFrame returns the message of an opened relay frame: trailer is the
// decrypted type and key, payload the frame's payload, copied if clone.
func parseFrame(trailer, payload []byte, clone bool) (Message, error) {
	t := Type(trailer[0])
	if err := checkPayload(t, len(payload)); err != nil {
		return nil, err
	}
	if clone {
		payload = bytes.Clone(payload)
	}
	payload = payload[:len(payload):len(payload)]
	k := key.Public(trailer[1:])
	switch t {
	case TypeRelay:
		return Relay{Dst: k, Payload: payload}, nil
	case TypeRelayed:
		return Relayed{Src: k, Payload: payload}, nil
	}
	return nil, fmt.Errorf("type %v in a relay frame: %w", t, ErrMalformed)
}

// parseRelayFrame returns the key and the payload of a Relay or Relayed
// body. The payload aliases body, with its capacity cut to its length so
// that appending to it cannot overwrite anything.
func parseRelayFrame(body []byte) (key.Public, []byte, error) {
	t := Type(body[0])
	switch n := len(body) - RelayHeaderLen; {
	case n < 1:
		return key.Public{}, nil, truncated(t)
	case n > MaxRelayPayload:
		return key.Public{}, nil, fmt.Errorf("%v: %d-byte payload, limit %d: %w", t, n, MaxRelayPayload, ErrTooLarge)
	}
	return key.Public(body[1:]), body[RelayHeaderLen:len(body):len(body)], nil
}

func parseRelay(body []byte) (Message, error) {
	dst, payload, err := parseRelayFrame(body)
	if err != nil {
		return nil, err
	}
	return Relay{Dst: dst, Payload: payload}, nil
}

func parseRelayed(body []byte) (Message, error) {
	src, payload, err := parseRelayFrame(body)
	if err != nil {
		return nil, err
	}
	return Relayed{Src: src, Payload: payload}, nil
}
