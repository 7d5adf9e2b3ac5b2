package key

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"

	"golang.org/x/crypto/curve25519"
)

// Size is the length of a key in bytes.
const Size = 32

// Public is an X25519 public key. The zero value is not a valid key.
type Public [Size]byte

// Private is an X25519 private key, clamped as RFC 7748 asks.
type Private [Size]byte

// Errors returned by the parsers. Both are wrapped with detail; test with
// errors.Is.
var (
	// ErrFormat is returned for text that is not a key in either base64 form.
	ErrFormat = errors.New("not a key: want 43 or 44 characters of base64")
	// ErrZero is returned by ParsePrivate for an all-zero private key.
	ErrZero = errors.New("not a key: all zeros")
)

// NewPrivate returns a fresh random private key.
func NewPrivate() (Private, error) {
	var k Private
	if _, err := rand.Read(k[:]); err != nil {
		return Private{}, err
	}
	k.clamp()
	return k, nil
}

func (k *Private) clamp() {
	k[0] &= 248
	k[31] = (k[31] & 127) | 64
}

// Public returns the public key of k.
func (k Private) Public() Public {
	var p Public
	curve25519.ScalarBaseMult((*[32]byte)(&p), (*[32]byte)(&k))
	return p
}

// IsZero reports whether k is all zeros.
func (k Private) IsZero() bool { return k == Private{} }

// IsZero reports whether p is all zeros.
func (p Public) IsZero() bool { return p == Public{} }

// String returns the key as standard base64 with padding (as `wg genkey`).
func (k Private) String() string { return base64.StdEncoding.EncodeToString(k[:]) }

// String returns the key as URL-safe base64 without padding (WireHub's form).
func (p Public) String() string { return base64.RawURLEncoding.EncodeToString(p[:]) }

// Short returns the first n characters of the key's text form (as in
// interface names: wh-XXXXXXXX).
func (p Public) Short(n int) string { s := p.String(); return s[:max(0, min(n, len(s)))] }

// Std returns the key as standard base64 with padding, the form wg(8) prints.
func (p Public) Std() string { return base64.StdEncoding.EncodeToString(p[:]) }

// MarshalText implements encoding.TextMarshaler (URL-safe form).
func (p Public) MarshalText() ([]byte, error) { return []byte(p.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler (either form).
func (p *Public) UnmarshalText(b []byte) error {
	k, err := ParsePublic(string(b))
	if err != nil {
		return err
	}
	*p = k
	return nil
}

// decode accepts standard base64 with or without padding and URL-safe
// base64 with or without padding, surrounded by optional white space (a
// trailing newline, as in a key file), and requires exactly 32 bytes. The
// two alphabets may not be mixed, and the two bits that the 43rd character
// carries beyond the 256 must be zero, so that each key has one text per
// form.
func decode(s string) ([Size]byte, error) {
	var out [Size]byte
	s = strings.TrimSpace(s)
	if len(s) != 43 && len(s) != 44 {
		return out, fmt.Errorf("%w: got %d characters", ErrFormat, len(s))
	}
	if len(s) == 44 {
		if s[43] != '=' {
			return out, fmt.Errorf("%w: 44 characters must end with '='", ErrFormat)
		}
		s = s[:43]
	}
	enc := base64.RawStdEncoding
	if strings.ContainsAny(s, "-_") {
		enc = base64.RawURLEncoding
	}
	if _, err := enc.Strict().Decode(out[:], []byte(s)); err != nil {
		return out, fmt.Errorf("%w: %v", ErrFormat, err)
	}
	return out, nil
}

// ParsePublic parses a public key in either base64 form.
func ParsePublic(s string) (Public, error) {
	b, err := decode(s)
	if err != nil {
		return Public{}, err
	}
	return Public(b), nil
}

// ParsePrivate parses a private key in either base64 form. A key that is not
// clamped is clamped, which X25519 does to every scalar anyway: the public
// key and shared secrets stay the same, and String then prints the clamped
// form.
func ParsePrivate(s string) (Private, error) {
	b, err := decode(s)
	if err != nil {
		return Private{}, err
	}
	k := Private(b)
	if k.IsZero() {
		return Private{}, ErrZero
	}
	k.clamp()
	return k, nil
}

// SharedSecret returns X25519(k, peer). It fails for low-order points, whose
// result is all zeros.
func (k Private) SharedSecret(peer Public) ([Size]byte, error) {
	var out [Size]byte
	b, err := curve25519.X25519(k[:], peer[:])
	if err != nil {
		return out, err
	}
	copy(out[:], b)
	return out, nil
}
