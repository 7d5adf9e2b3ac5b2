package wire

import (
	"encoding/binary"
	"fmt"
	"net/netip"

	"github.com/whnet/wh/key"
)

// Hole punching asks a rendezvous node R, which both peers can reach (the
// DHT node that keeps the target alive), to carry one peer's offer to the
// other, so that both probe each other at the same time:
//
//	A ── Punch{T, sealed offer A→T} ──▶ R ── PunchFrom{A, src, offer} ──▶ T
//	A ◀── PunchFrom{T, src, offer T→A} ── R ◀── Punch{A, sealed offer T→A} ── T
//
// The offer (PunchOffer: candidates, NAT mapping, the rendezvous's key) is
// an envelope of its own, sealed by the offering peer to the other one
// with Codec.Seal: R carries it and cannot read, change or forge it, and
// the receiver acts only on an offer it opens from the key the PunchFrom
// names. R adds the address it saw the Punch come from (the offer says
// which R may do so) and forwards only to an address of T it knows. A
// PunchFrom is at most 19 bytes (one IPv6 address) longer than the Punch
// it forwards, so R cannot be used to amplify traffic; an offer may be
// padded so that the probes it causes stay within its size.

// TypePunchFrom is a Punch forwarded by the rendezvous node, and
// TypePunchOffer the sealed offer inside both. TypePunch is in msg.go with
// the other codes.
const (
	TypePunchFrom  Type = 0x0a
	TypePunchOffer Type = 0x0c
)

// MaxCandidates is the number of candidate addresses in one PunchOffer.
const MaxCandidates = 8

var (
	_ Message = Punch{}
	_ Message = PunchFrom{}
	_ Message = PunchOffer{}
)

// Punch asks the receiver, a rendezvous node, to forward Offer to Target as
// a PunchFrom. The body is
//
//	offset size
//	0      1    type 0x05
//	1      8    txid, big-endian; the PunchFrom keeps it
//	9      32   target key
//	41     2    offer length n, big-endian, at most MaxOfferLen
//	43     n    offer: a PunchOffer envelope sealed by the sender to Target
type Punch struct {
	TxID   uint64
	Target key.Public
	Offer  []byte
}

// PunchFrom is a Punch forwarded by the rendezvous node (its sender) from
// the node whose key is From. The body is
//
//	offset size
//	0      1    type 0x0a
//	1      8    txid of the Punch, big-endian
//	9      32   from key: the authenticated sender of the Punch
//	41     7|19 observed: the address the rendezvous saw the Punch come
//	            from, packed (see NodeInfo)
//	...    2    offer length n, big-endian, at most MaxOfferLen
//	...    n    the Punch's offer, unchanged
//
// From and Observed are only as true as the rendezvous is honest; the
// offer is From's own word, once the receiver opened it from From's key.
type PunchFrom struct {
	TxID     uint64
	From     key.Public
	Observed netip.AddrPort
	Offer    []byte
}

// PunchOffer is what a peer tells the other through the rendezvous, sealed
// end to end. The body is
//
//	offset size
//	0      1    type 0x0c
//	1      8    txid of the Punch that carries it, big-endian
//	9      32   rendezvous key: the node the offer is sent through, the
//	            only one whose Observed the receiver may add
//	41     1    flags: bit 0 Reply; bits 1-2 Mapping; other bits are ignored
//	42     1    count, at most MaxCandidates
//	43     ...  count packed addresses (see NodeInfo), 7 or 19 bytes each
//	...    ...  padding: Pad zero bytes, ignored as any trailing bytes
//
// Reply marks the answer to a PunchFrom: its receiver must not answer it
// with a Punch of its own. Mapping is how the sender's NAT maps (the value
// of nat.Mapping: 0 unknown, 1 none, 2 endpoint-independent, 3
// endpoint-dependent), so that each side can tell why a punch failed.
// The receiver probes no more bytes than it received, so the sender pads
// the offer to pay for the probes it wants.
type PunchOffer struct {
	TxID       uint64
	Rendezvous key.Public
	Reply      bool
	Mapping    uint8 // 0-3
	Candidates []netip.AddrPort
	Pad        int // zero bytes AppendBinary adds; ParseMessage reads 0
}

const (
	punchHeaderLen = 1 + 8 + key.Size + 2
	offerHeaderLen = 1 + 8 + key.Size + 1 + 1
	punchReply     = 0x01
	punchMapping   = 0x06 // two bits
	// MaxPunchFromLen is the largest PunchFrom body: the most a Punch can
	// make a rendezvous send. It fits a packet.
	MaxPunchFromLen = MaxBodySize
	// MaxOfferLen is the largest offer envelope a Punch or PunchFrom
	// carries: what fits in a PunchFrom with an IPv6 Observed.
	MaxOfferLen = MaxPunchFromLen - punchHeaderLen - (1 + 16 + 2)
	// MaxPunchLen is the largest Punch body.
	MaxPunchLen = punchHeaderLen + MaxOfferLen
	// MaxOfferBodyLen is the largest PunchOffer body, padding included.
	MaxOfferBodyLen = MaxOfferLen - Overhead
)

func (Punch) Type() Type { return TypePunch }

func (m Punch) AppendBinary(b []byte) ([]byte, error) {
	if len(m.Offer) > MaxOfferLen {
		return b, fmt.Errorf("punch: offer of %d bytes, limit %d: %w", len(m.Offer), MaxOfferLen, ErrMalformed)
	}
	b = append(b, byte(TypePunch))
	b = binary.BigEndian.AppendUint64(b, m.TxID)
	b = append(b, m.Target[:]...)
	b = binary.BigEndian.AppendUint16(b, uint16(len(m.Offer)))
	return append(b, m.Offer...), nil
}

func (PunchFrom) Type() Type { return TypePunchFrom }

func (m PunchFrom) AppendBinary(b []byte) ([]byte, error) {
	if len(m.Offer) > MaxOfferLen {
		return b, fmt.Errorf("punch-from: offer of %d bytes, limit %d: %w", len(m.Offer), MaxOfferLen, ErrMalformed)
	}
	orig := b
	b = append(b, byte(TypePunchFrom))
	b = binary.BigEndian.AppendUint64(b, m.TxID)
	b = append(b, m.From[:]...)
	b, err := AppendAddrPort(b, m.Observed)
	if err != nil {
		return orig, fmt.Errorf("punch-from: observed: %w", err)
	}
	b = binary.BigEndian.AppendUint16(b, uint16(len(m.Offer)))
	return append(b, m.Offer...), nil
}

func (PunchOffer) Type() Type { return TypePunchOffer }

func (m PunchOffer) AppendBinary(b []byte) ([]byte, error) {
	t := TypePunchOffer
	switch {
	case len(m.Candidates) > MaxCandidates:
		return b, fmt.Errorf("%v: %d candidates, limit %d: %w", t, len(m.Candidates), MaxCandidates, ErrMalformed)
	case m.Mapping > punchMapping>>1:
		return b, fmt.Errorf("%v: mapping %d: %w", t, m.Mapping, ErrMalformed)
	case m.Pad < 0 || m.Pad > MaxOfferBodyLen:
		return b, fmt.Errorf("%v: padding %d: %w", t, m.Pad, ErrMalformed)
	}
	orig := b
	b = append(b, byte(t))
	b = binary.BigEndian.AppendUint64(b, m.TxID)
	b = append(b, m.Rendezvous[:]...)
	b = append(b, boolByte(m.Reply, punchReply)|m.Mapping<<1, byte(len(m.Candidates)))
	for i, a := range m.Candidates {
		var err error
		if b, err = AppendAddrPort(b, a); err != nil {
			return orig, fmt.Errorf("%v: candidate %d: %w", t, i, err)
		}
	}
	if len(b)-len(orig)+m.Pad > MaxOfferBodyLen {
		return orig, fmt.Errorf("%v: %d bytes with padding, limit %d: %w", t, len(b)-len(orig)+m.Pad, MaxOfferBodyLen, ErrMalformed)
	}
	return append(b, make([]byte, m.Pad)...), nil
}

// parsePunch parses a Punch, PunchFrom or PunchOffer body; body[0] says
// which.
func parsePunch(body []byte) (Message, error) {
	t := Type(body[0])
	if t == TypePunchOffer {
		return parseOffer(body)
	}
	if len(body) < punchHeaderLen {
		return nil, truncated(t)
	}
	txid := binary.BigEndian.Uint64(body[1:])
	k := key.Public(body[9:])
	rest := body[9+key.Size:]
	var observed netip.AddrPort
	if t == TypePunchFrom {
		var err error
		if observed, rest, err = ParseAddrPort(rest); err != nil {
			return nil, fmt.Errorf("%v: observed: %w", t, err)
		}
	}
	if len(rest) < 2 {
		return nil, truncated(t)
	}
	n := int(binary.BigEndian.Uint16(rest))
	rest = rest[2:]
	switch {
	case n > MaxOfferLen:
		return nil, fmt.Errorf("%v: offer of %d bytes, limit %d: %w", t, n, MaxOfferLen, ErrMalformed)
	case n > len(rest):
		return nil, truncated(t)
	}
	var offer []byte
	if n > 0 {
		offer = rest[:n:n]
	}
	if t == TypePunch {
		return Punch{TxID: txid, Target: k, Offer: offer}, nil
	}
	return PunchFrom{TxID: txid, From: k, Observed: observed, Offer: offer}, nil
}

func parseOffer(body []byte) (Message, error) {
	t := TypePunchOffer
	if len(body) < offerHeaderLen {
		return nil, truncated(t)
	}
	if len(body) > MaxOfferBodyLen {
		return nil, fmt.Errorf("%v: %d bytes, limit %d: %w", t, len(body), MaxOfferBodyLen, ErrMalformed)
	}
	m := PunchOffer{TxID: binary.BigEndian.Uint64(body[1:]), Rendezvous: key.Public(body[9:])}
	flags, count := body[41], int(body[42])
	if count > MaxCandidates {
		return nil, fmt.Errorf("%v: %d candidates, limit %d: %w", t, count, MaxCandidates, ErrMalformed)
	}
	m.Reply, m.Mapping = flags&punchReply != 0, (flags&punchMapping)>>1
	if count > 0 {
		m.Candidates = make([]netip.AddrPort, count)
	}
	rest := body[offerHeaderLen:]
	for i := range m.Candidates {
		var err error
		if m.Candidates[i], rest, err = ParseAddrPort(rest); err != nil {
			return nil, fmt.Errorf("%v: candidate %d: %w", t, i, err)
		}
	}
	return m, nil
}
