package wire

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"unicode/utf8"

	"github.com/whnet/wh/key"
)

// Invitations: a claimant C proves to a member M that it holds the private
// key of an alias A that M's config lists, and so takes A's slot:
//
//	C ── Auth, sealed A → M { Inner: envelope C → M { Claim{A, C} } } ──▶ M
//	C ◀── Authed, sealed M → C { A, accepted | refused, reason } ──────── M
//
// The outer envelope proves A's private key, the inner C's: M learns a key
// that holds both secrets. The Claim names A and the Auth's txid, so an
// inner envelope cannot be lifted into an Auth from another alias. The
// Authed is sealed to C, which accepts it only from a member it sent an
// Auth to, for that txid and alias.
//
// An Auth is 213 bytes on the wire, an Authed at most 208 (MaxReason), so
// a member never answers an address with more than came from it.

// TypeClaim is the body of an Auth's inner envelope.
const TypeClaim Type = 0x0b

// MaxReason is the longest refusal reason of an Authed, in bytes.
const MaxReason = 100

// Authed statuses.
const (
	AuthAccepted uint8 = 0
	AuthRefused  uint8 = 1
)

// ErrClaim is returned by OpenClaim for an inner envelope that does not
// belong to its Auth: not a Claim, or one naming another alias, txid or
// key than its envelopes carry.
var ErrClaim = errors.New("claim does not match its auth")

var (
	_ Message = Auth{}
	_ Message = Authed{}
	_ Message = Claim{}
)

// Auth claims the alias slot of its sender's key (the alias key) for the
// key that sealed Inner. The body is
//
//	offset size
//	0      1    type 0x08
//	1      8    txid, big-endian
//	9      1    n, the length of Inner, Overhead+1 ≤ n ≤ 255
//	10     n    Inner: an envelope from the claimant's key to the receiver
//	            whose body is a Claim (ClaimLen: the inner envelope is 134
//	            bytes)
//
// A parsed Inner is a copy.
type Auth struct {
	TxID  uint64
	Inner []byte
}

const authHeaderLen = 1 + 8 + 1

func (Auth) Type() Type { return TypeAuth }

func (m Auth) AppendBinary(b []byte) ([]byte, error) {
	if n := len(m.Inner); n < Overhead+1 || n > 255 {
		return b, fmt.Errorf("auth: %d-byte inner envelope: %w", n, ErrMalformed)
	}
	b = append(b, byte(TypeAuth))
	b = binary.BigEndian.AppendUint64(b, m.TxID)
	b = append(b, byte(len(m.Inner)))
	return append(b, m.Inner...), nil
}

func parseAuth(body []byte) (Message, error) {
	if len(body) < authHeaderLen {
		return nil, truncated(TypeAuth)
	}
	n := int(body[9])
	switch {
	case n < Overhead+1:
		return nil, fmt.Errorf("auth: %d-byte inner envelope: %w", n, ErrMalformed)
	case len(body) < authHeaderLen+n:
		return nil, truncated(TypeAuth)
	}
	return Auth{TxID: binary.BigEndian.Uint64(body[1:]), Inner: bytes.Clone(body[authHeaderLen : authHeaderLen+n])}, nil
}

// Claim is the body of an Auth's inner envelope. The body is
//
//	offset size
//	0      1    type 0x0b
//	1      8    txid of the Auth, big-endian
//	9      32   alias key: the sender of the Auth
//	41     32   claimant key: the sender of the inner envelope
//
// Alone, outside an Auth, it means nothing and is ignored.
type Claim struct {
	TxID     uint64
	Alias    key.Public
	Claimant key.Public
}

// ClaimLen is the length of a Claim body.
const ClaimLen = 1 + 8 + 2*key.Size

func (Claim) Type() Type { return TypeClaim }

func (m Claim) AppendBinary(b []byte) ([]byte, error) {
	b = append(b, byte(TypeClaim))
	b = binary.BigEndian.AppendUint64(b, m.TxID)
	b = append(b, m.Alias[:]...)
	return append(b, m.Claimant[:]...), nil
}

func parseClaim(body []byte) (Message, error) {
	if len(body) < ClaimLen {
		return nil, truncated(TypeClaim)
	}
	return Claim{TxID: binary.BigEndian.Uint64(body[1:]), Alias: key.Public(body[9:]), Claimant: key.Public(body[41:])}, nil
}

// Authed answers an Auth: the receiver, a member, accepted the claim of
// the alias slot or refused it, and why. The body is
//
//	offset size
//	0      1    type 0x09
//	1      8    txid of the Auth, big-endian
//	9      32   alias key
//	41     1    status: 0 accepted, 1 refused; others are malformed
//	42     1    n, the length of Reason, at most MaxReason
//	43     n    Reason, UTF-8 without control characters; for a refusal
type Authed struct {
	TxID   uint64
	Alias  key.Public
	Status uint8
	Reason string
}

const authedHeaderLen = 1 + 8 + key.Size + 1 + 1

func (Authed) Type() Type { return TypeAuthed }

func (m Authed) AppendBinary(b []byte) ([]byte, error) {
	if err := checkAuthed(m.Status, m.Reason); err != nil {
		return b, err
	}
	b = append(b, byte(TypeAuthed))
	b = binary.BigEndian.AppendUint64(b, m.TxID)
	b = append(b, m.Alias[:]...)
	b = append(b, m.Status, byte(len(m.Reason)))
	return append(b, m.Reason...), nil
}

func checkAuthed(status uint8, reason string) error {
	switch {
	case status > AuthRefused:
		return fmt.Errorf("authed: status %d: %w", status, ErrMalformed)
	case len(reason) > MaxReason:
		return fmt.Errorf("authed: %d-byte reason, limit %d: %w", len(reason), MaxReason, ErrMalformed)
	case !utf8.ValidString(reason):
		return fmt.Errorf("authed: reason is not UTF-8: %w", ErrMalformed)
	}
	for _, c := range reason {
		if c < ' ' || c == 0x7f {
			return fmt.Errorf("authed: control character %U in the reason: %w", c, ErrMalformed)
		}
	}
	return nil
}

func parseAuthed(body []byte) (Message, error) {
	if len(body) < authedHeaderLen {
		return nil, truncated(TypeAuthed)
	}
	n := int(body[42])
	if len(body) < authedHeaderLen+n {
		return nil, truncated(TypeAuthed)
	}
	m := Authed{
		TxID:   binary.BigEndian.Uint64(body[1:]),
		Alias:  key.Public(body[9:]),
		Status: body[41],
		Reason: string(body[authedHeaderLen : authedHeaderLen+n]),
	}
	if err := checkAuthed(m.Status, m.Reason); err != nil {
		return nil, err
	}
	return m, nil
}

// Reason cuts s to at most MaxReason bytes, at a rune boundary, and
// replaces control characters, so that it fits an Authed.
func Reason(s string) string {
	var b []byte
	for _, c := range s {
		if c < ' ' || c == 0x7f || c == utf8.RuneError {
			c = '?'
		}
		if len(b)+utf8.RuneLen(c) > MaxReason {
			break
		}
		b = utf8.AppendRune(b, c)
	}
	return string(b)
}

// Claim returns the Auth that claims alias's slot at member to for c's
// key: its inner envelope is sealed by c. The caller seals the Auth with a
// codec of the alias's private key.
func (c *Codec) Claim(to, alias key.Public, txid uint64) (Auth, error) {
	inner, err := c.Seal(nil, to, Claim{TxID: txid, Alias: alias, Claimant: c.pub})
	if err != nil {
		return Auth{}, err
	}
	return Auth{TxID: txid, Inner: inner}, nil
}

// OpenClaim opens the inner envelope of an Auth that came from alias and
// returns the claimant: the key that sealed it, which the Claim names,
// with the Auth's alias and txid. Its errors are those of Open, or
// ErrClaim.
func (c *Codec) OpenClaim(alias key.Public, m Auth) (key.Public, error) {
	from, inner, err := c.Open(m.Inner)
	if err != nil {
		return key.Public{}, err
	}
	cl, ok := inner.(Claim)
	switch {
	case !ok:
		return key.Public{}, fmt.Errorf("%w: inner %v", ErrClaim, inner.Type())
	case cl.Alias != alias || cl.TxID != m.TxID || cl.Claimant != from:
		return key.Public{}, ErrClaim
	case from == alias:
		return key.Public{}, fmt.Errorf("%w: the alias key claims itself", ErrClaim)
	}
	return from, nil
}
