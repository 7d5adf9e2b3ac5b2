// Package socks5 is a SOCKS5 server (RFC 1928) that does one thing: CONNECT,
// without authentication. A userspace wh node runs it so that programs
// (curl --socks5-hostname, ssh -o ProxyCommand='nc -X 5 …') reach the
// overlay without a TUN.
//
// # Messages
//
// All from the client are parsed from untrusted bytes; the parsers check
// every length before reading and never read past the message.
//
//	greeting  VER=5 NMETHODS METHODS[NMETHODS]
//	choice    VER=5 METHOD                          00 no auth, FF none acceptable
//	request   VER=5 CMD RSV=0 ATYP DST.ADDR DST.PORT(2, big endian)
//	          CMD  1 CONNECT, 2 BIND, 3 UDP ASSOCIATE
//	          ATYP 1 IPv4 (4 bytes), 3 domain (LEN, LEN bytes), 4 IPv6 (16 bytes)
//	reply     VER=5 REP RSV=0 ATYP BND.ADDR BND.PORT
//
// Only method 00 is accepted, only CMD 1 served; the others get the reply
// codes RFC 1928 §6 gives them (07 command not supported, 08 address type
// not supported).
package socks5

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
)

// Version is the protocol version, the first byte of every message.
const Version = 5

// Authentication methods.
const (
	MethodNoAuth       = 0x00
	MethodNoAcceptable = 0xFF
)

// Commands.
const (
	CmdConnect      = 1
	CmdBind         = 2
	CmdUDPAssociate = 3
)

// Address types.
const (
	AtypIPv4   = 1
	AtypDomain = 3
	AtypIPv6   = 4
)

// Reply codes (RFC 1928 §6).
const (
	RepSucceeded           = 0x00
	RepGeneralFailure      = 0x01
	RepNotAllowed          = 0x02
	RepNetworkUnreachable  = 0x03
	RepHostUnreachable     = 0x04
	RepConnectionRefused   = 0x05
	RepTTLExpired          = 0x06
	RepCommandNotSupported = 0x07
	RepAddrNotSupported    = 0x08
)

// Sizes.
const (
	greetingMin   = 3               // VER NMETHODS METHOD
	requestHeader = 4               // VER CMD RSV ATYP
	maxRequest    = 4 + 1 + 255 + 2 // the longest request: a 255-byte domain
)

// Parse errors. ErrShort means the bytes so far are a valid prefix: read more.
var (
	ErrShort   = errors.New("socks5: message incomplete")
	ErrVersion = errors.New("socks5: not SOCKS version 5")
	// ErrAddrType is an unknown ATYP; the request's Cmd is still set.
	ErrAddrType = errors.New("socks5: address type not supported")
	ErrMessage  = errors.New("socks5: malformed message")
)

// ParseGreeting parses a client greeting from the start of b. It returns
// the offered methods (a sub-slice of b) and the greeting's length.
func ParseGreeting(b []byte) (methods []byte, n int, err error) {
	if len(b) < 2 {
		return nil, 0, ErrShort
	}
	if b[0] != Version {
		return nil, 0, ErrVersion
	}
	m := int(b[1])
	if m == 0 {
		return nil, 0, fmt.Errorf("%w: no methods offered", ErrMessage)
	}
	if len(b) < 2+m {
		return nil, 0, ErrShort
	}
	return b[2 : 2+m], 2 + m, nil
}

// Request is a client's request: a command and a destination, either an
// address (Addr valid) or a domain name (Host non-empty).
type Request struct {
	Cmd  byte
	Addr netip.Addr
	Host string
	Port uint16
}

// String is the destination, host:port.
func (r Request) String() string {
	if r.Host != "" {
		return fmt.Sprintf("%s:%d", r.Host, r.Port)
	}
	return netip.AddrPortFrom(r.Addr, r.Port).String()
}

// ParseRequest parses a request from the start of b, returning its length.
// A domain must be 1 to 255 bytes without NUL (a name, not an address);
// an IPv4-mapped IPv6 address stays IPv6.
func ParseRequest(b []byte) (Request, int, error) {
	var r Request
	if len(b) < 1 {
		return r, 0, ErrShort
	}
	if b[0] != Version {
		return r, 0, ErrVersion
	}
	if len(b) < requestHeader {
		return r, 0, ErrShort
	}
	if b[2] != 0 {
		return r, 0, fmt.Errorf("%w: reserved byte %#x", ErrMessage, b[2])
	}
	r.Cmd = b[1]
	var alen, off int
	switch b[3] {
	case AtypIPv4:
		alen, off = 4, requestHeader
	case AtypIPv6:
		alen, off = 16, requestHeader
	case AtypDomain:
		if len(b) < requestHeader+1 {
			return r, 0, ErrShort
		}
		alen, off = int(b[4]), requestHeader+1
		if alen == 0 {
			return r, 0, fmt.Errorf("%w: empty domain", ErrMessage)
		}
	default:
		return r, 0, ErrAddrType
	}
	n := off + alen + 2
	if len(b) < n {
		return r, 0, ErrShort
	}
	a := b[off : off+alen]
	switch b[3] {
	case AtypIPv4:
		r.Addr = netip.AddrFrom4([4]byte(a))
	case AtypIPv6:
		r.Addr = netip.AddrFrom16([16]byte(a))
	case AtypDomain:
		for _, c := range a {
			if c == 0 {
				return r, 0, fmt.Errorf("%w: NUL in domain", ErrMessage)
			}
		}
		r.Host = string(a)
	}
	r.Port = binary.BigEndian.Uint16(b[off+alen:])
	return r, n, nil
}

// AppendBinary appends r as a request (client side, and for tests).
func (r Request) AppendBinary(b []byte) ([]byte, error) {
	b = append(b, Version, r.Cmd, 0)
	switch {
	case r.Host != "":
		if len(r.Host) > 255 {
			return nil, fmt.Errorf("%w: domain longer than 255 bytes", ErrMessage)
		}
		b = append(b, AtypDomain, byte(len(r.Host)))
		b = append(b, r.Host...)
	case r.Addr.Is4():
		b = append(b, AtypIPv4)
		b = append(b, r.Addr.AsSlice()...)
	case r.Addr.Is6():
		b = append(b, AtypIPv6)
		b = append(b, r.Addr.AsSlice()...)
	default:
		return nil, fmt.Errorf("%w: no destination", ErrMessage)
	}
	return binary.BigEndian.AppendUint16(b, r.Port), nil
}

// appendReply appends a reply with code rep and bound address bnd (the
// zero IPv4 address when bnd is invalid).
func appendReply(b []byte, rep byte, bnd netip.AddrPort) []byte {
	b = append(b, Version, rep, 0)
	a := bnd.Addr().Unmap()
	switch {
	case a.Is4():
		b = append(b, AtypIPv4)
		b = append(b, a.AsSlice()...)
	case a.Is6():
		b = append(b, AtypIPv6)
		b = append(b, a.AsSlice()...)
	default:
		b = append(b, AtypIPv4, 0, 0, 0, 0)
	}
	return binary.BigEndian.AppendUint16(b, bnd.Port())
}
