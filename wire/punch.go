package wire

import (
	"encoding/binary"
	"fmt"
	"net/netip"

	"github.com/whnet/wh/key"
)

// Hole punching asks a rendezvous node R, which both peers can reach (the
// DHT node that keeps the target alive), to pass one peer's candidate
// addresses to the other, so that both probe each other at the same time:
//
//	A ── Punch{Target: T, A's candidates} ──▶ R ── PunchFrom{From: A, src + A's candidates} ──▶ T
//	A ◀── PunchFrom{From: T, Reply, …} ── R ◀── Punch{Target: A, Reply, T's candidates} ── T
//
// R puts the address it saw the Punch come from first among the
// candidates, and forwards only to an address of T it knows (T keeps R
// alive). R adds at most one candidate: a PunchFrom is at most 19 bytes
// (one IPv6 candidate) longer than the Punch it forwards, so R cannot be
// used to amplify traffic.

// TypePunchFrom is a Punch forwarded by the rendezvous node. TypePunch is
// in msg.go with the other codes.
const TypePunchFrom Type = 0x0a

// MaxCandidates is the number of candidate addresses in one Punch or
// PunchFrom.
const MaxCandidates = 8

var (
	_ Message = Punch{}
	_ Message = PunchFrom{}
)

// Punch asks the receiver, a rendezvous node, to forward the sender's
// candidate addresses to Target as a PunchFrom. The body is
//
//	offset size
//	0      1    type 0x05
//	1      8    txid, big-endian; the PunchFrom keeps it
//	9      32   target key
//	41     1    flags: bit 0 Reply; bits 1-2 Mapping; other bits are ignored
//	42     1    count, at most MaxCandidates
//	43     ...  count packed addresses (see NodeInfo), 7 or 19 bytes each
//
// Reply marks the answer to a PunchFrom: its receiver must not answer it
// with a Punch of its own. Mapping is how the sender's NAT maps (the value
// of nat.Mapping: 0 unknown, 1 none, 2 endpoint-independent, 3
// endpoint-dependent), so that each side can tell why a punch failed.
type Punch struct {
	TxID       uint64
	Target     key.Public
	Reply      bool
	Mapping    uint8 // 0-3
	Candidates []netip.AddrPort
}

// PunchFrom is a Punch forwarded by the rendezvous node (its sender) from
// the node whose key is From. The body is a Punch's with From in place of
// the target key:
//
//	offset size
//	0      1    type 0x0a
//	1      8    txid of the Punch, big-endian
//	9      32   from key: the authenticated sender of the Punch
//	41     1    flags of the Punch: bit 0 Reply; bits 1-2 Mapping
//	42     1    count, at most MaxCandidates
//	43     ...  count packed addresses: first the address the rendezvous
//	            saw the Punch come from, then the Punch's candidates
//
// From is only as true as the rendezvous is honest: a receiver probes only
// peers it trusts, and its probes are sealed to From's key.
type PunchFrom struct {
	TxID       uint64
	From       key.Public
	Reply      bool
	Mapping    uint8 // 0-3
	Candidates []netip.AddrPort
}

const (
	punchHeaderLen = 1 + 8 + key.Size + 1 + 1
	punchReply     = 0x01
	punchMapping   = 0x06 // two bits
	// MaxPunchLen is the largest Punch or PunchFrom body: MaxCandidates
	// IPv6 candidates.
	MaxPunchLen = punchHeaderLen + MaxCandidates*(1+16+2)
)

func (Punch) Type() Type { return TypePunch }

func (m Punch) AppendBinary(b []byte) ([]byte, error) {
	return appendPunch(b, TypePunch, m.TxID, m.Target, m.Reply, m.Mapping, m.Candidates)
}

func (PunchFrom) Type() Type { return TypePunchFrom }

func (m PunchFrom) AppendBinary(b []byte) ([]byte, error) {
	return appendPunch(b, TypePunchFrom, m.TxID, m.From, m.Reply, m.Mapping, m.Candidates)
}

func appendPunch(b []byte, t Type, txid uint64, k key.Public, reply bool, mapping uint8, cands []netip.AddrPort) ([]byte, error) {
	if len(cands) > MaxCandidates {
		return b, fmt.Errorf("%v: %d candidates, limit %d: %w", t, len(cands), MaxCandidates, ErrMalformed)
	}
	if mapping > punchMapping>>1 {
		return b, fmt.Errorf("%v: mapping %d: %w", t, mapping, ErrMalformed)
	}
	orig := b
	b = append(b, byte(t))
	b = binary.BigEndian.AppendUint64(b, txid)
	b = append(b, k[:]...)
	b = append(b, boolByte(reply, punchReply)|mapping<<1, byte(len(cands)))
	for i, a := range cands {
		var err error
		if b, err = appendAddrPort(b, a); err != nil {
			return orig, fmt.Errorf("%v: candidate %d: %w", t, i, err)
		}
	}
	return b, nil
}

// parsePunch parses a Punch or PunchFrom body; body[0] says which.
func parsePunch(body []byte) (Message, error) {
	t := Type(body[0])
	if len(body) < punchHeaderLen {
		return nil, truncated(t)
	}
	txid := binary.BigEndian.Uint64(body[1:])
	k := key.Public(body[9:])
	flags := body[41]
	count := int(body[42])
	if count > MaxCandidates {
		return nil, fmt.Errorf("%v: %d candidates, limit %d: %w", t, count, MaxCandidates, ErrMalformed)
	}
	var cands []netip.AddrPort
	if count > 0 {
		cands = make([]netip.AddrPort, count)
	}
	rest := body[punchHeaderLen:]
	for i := range cands {
		var err error
		if cands[i], rest, err = parseAddrPort(rest); err != nil {
			return nil, fmt.Errorf("%v: candidate %d: %w", t, i, err)
		}
	}
	reply, mapping := flags&punchReply != 0, (flags&punchMapping)>>1
	if t == TypePunch {
		return Punch{TxID: txid, Target: k, Reply: reply, Mapping: mapping, Candidates: cands}, nil
	}
	return PunchFrom{TxID: txid, From: k, Reply: reply, Mapping: mapping, Candidates: cands}, nil
}
