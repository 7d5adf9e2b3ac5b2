// Package invite reads and writes invitation strings: what an invitee
// needs to claim an alias slot of a network (see `wh invite`).
//
// # WireHub's form
//
// 86 characters of URL-safe base64 without padding, of 64 bytes:
//
//	offset size
//	0      32   the inviter's public key
//	32     32   the alias private key
//
// # Version 1
//
// URL-safe base64 without padding of
//
//	offset size
//	0      1    version, 0x01
//	1      32   the inviter's public key
//	33     32   the alias private key
//	65     1    count of the inviter's addresses, at most MaxAddrs
//	66     ...  that many packed addresses
//	..     1    count of DHT contacts, at most MaxContacts
//	..     ...  that many contacts: key (32) and a packed address
//
// A packed address is a family byte, the address and the port:
//
//	04 | IPv4 (4) | port (2, big-endian)     7 bytes
//	06 | IPv6 (16) | port (2, big-endian)   19 bytes
//
// A version 1 string is at least 90 characters, so its length alone
// tells the two forms apart. Both decode strictly (the unused bits of the
// last character are zero, nothing follows the last contact), so a string
// has one value and a value one string.
package invite

import (
	"encoding/base64"
	"errors"
	"fmt"
	"net/netip"
	"strings"

	"github.com/whnet/wh/key"
	"github.com/whnet/wh/wire"
)

// Limits of a version 1 invitation.
const (
	MaxAddrs    = 4 // addresses of the inviter
	MaxContacts = 4 // DHT contacts

	shortLen = 86 // characters of WireHub's form
	version1 = 1
)

// Errors of Parse; each is wrapped with detail.
var (
	ErrLength    = errors.New("invitation has the wrong length")
	ErrBase64    = errors.New("invitation is not URL-safe base64")
	ErrVersion   = errors.New("unknown invitation version")
	ErrMalformed = errors.New("malformed invitation")
	ErrWorkbits  = errors.New("invitation key has too few workbits")
)

// A Contact is a DHT node the invitee may join through.
type Contact struct {
	Key  key.Public
	Addr netip.AddrPort
}

// Invitation is what an invitee holds.
type Invitation struct {
	Inviter key.Public  // the member to claim at first
	Alias   key.Private // the alias slot's private key: the secret
	// Addrs are where the inviter can be reached, and Contacts a few DHT
	// nodes; both empty in WireHub's form.
	Addrs    []netip.AddrPort
	Contacts []Contact
}

// Long reports whether inv needs version 1: it has addresses or contacts.
func (inv Invitation) Long() bool { return len(inv.Addrs) > 0 || len(inv.Contacts) > 0 }

// String returns inv in WireHub's form if it has no addresses or
// contacts, else in version 1. It panics on more than MaxAddrs addresses
// or MaxContacts contacts, or an invalid address: see Check.
func (inv Invitation) String() string {
	if err := inv.checkLimits(); err != nil {
		panic("invite: " + err.Error())
	}
	var b []byte
	if inv.Long() {
		b = append(b, version1)
	}
	b = append(b, inv.Inviter[:]...)
	b = append(b, inv.Alias[:]...)
	if inv.Long() {
		b = append(b, byte(len(inv.Addrs)))
		for _, a := range inv.Addrs {
			b = appendAddrPort(b, a)
		}
		b = append(b, byte(len(inv.Contacts)))
		for _, c := range inv.Contacts {
			b = append(b, c.Key[:]...)
			b = appendAddrPort(b, c.Addr)
		}
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// checkLimits reports what String cannot encode.
func (inv Invitation) checkLimits() error {
	if len(inv.Addrs) > MaxAddrs {
		return fmt.Errorf("%d addresses, limit %d: %w", len(inv.Addrs), MaxAddrs, ErrMalformed)
	}
	if len(inv.Contacts) > MaxContacts {
		return fmt.Errorf("%d contacts, limit %d: %w", len(inv.Contacts), MaxContacts, ErrMalformed)
	}
	for _, a := range inv.Addrs {
		if err := checkAddr(a); err != nil {
			return err
		}
	}
	for _, c := range inv.Contacts {
		if err := checkAddr(c.Addr); err != nil {
			return err
		}
	}
	return nil
}

func checkAddr(a netip.AddrPort) error {
	switch {
	case !a.Addr().IsValid():
		return fmt.Errorf("invalid address: %w", ErrMalformed)
	case a.Addr().Zone() != "":
		return fmt.Errorf("address %v has a zone: %w", a, ErrMalformed)
	case a.Addr().Is4In6():
		return fmt.Errorf("address %v is IPv4-mapped: %w", a, ErrMalformed)
	case a.Port() == 0:
		return fmt.Errorf("address %v has port 0: %w", a, ErrMalformed)
	}
	return nil
}

// Parse reads an invitation in either form (white space around it is
// ignored) and checks that its keys have workbit workbits in namespace:
// the inviter, the alias and every contact. Workbit 0 checks nothing.
func Parse(s, namespace string, workbit int) (Invitation, error) {
	s = strings.TrimSpace(s)
	if len(s) != shortLen && len(s) < 90 {
		return Invitation{}, fmt.Errorf("%w: %d characters, want %d (or at least 90 for version %d)", ErrLength, len(s), shortLen, version1)
	}
	if strings.ContainsAny(s, "\r\n") { // which the decoder would skip
		return Invitation{}, fmt.Errorf("%w: a line break inside", ErrBase64)
	}
	b, err := base64.RawURLEncoding.Strict().DecodeString(s)
	if err != nil {
		return Invitation{}, fmt.Errorf("%w: %v", ErrBase64, err)
	}
	var inv Invitation
	if len(s) == shortLen {
		inv.Inviter = key.Public(b[:key.Size])
		inv.Alias = key.Private(b[key.Size:])
	} else if inv, err = parseLong(b); err != nil {
		return Invitation{}, err
	}
	if inv.Alias.IsZero() {
		return Invitation{}, fmt.Errorf("alias key is all zeros: %w", ErrMalformed)
	}
	if err := checkWork("inviter", inv.Inviter, namespace, workbit); err != nil {
		return Invitation{}, err
	}
	if err := checkWork("alias", inv.Alias.Public(), namespace, workbit); err != nil {
		return Invitation{}, err
	}
	for _, c := range inv.Contacts {
		if err := checkWork("contact", c.Key, namespace, workbit); err != nil {
			return Invitation{}, err
		}
	}
	return inv, nil
}

func checkWork(what string, k key.Public, namespace string, workbit int) error {
	if workbit <= 0 {
		return nil
	}
	if wb := key.Workbits(k, namespace); wb < workbit {
		return fmt.Errorf("%w: %s key %s has %d in namespace %q, the network needs %d", ErrWorkbits, what, k, wb, namespace, workbit)
	}
	return nil
}

func parseLong(b []byte) (Invitation, error) {
	if b[0] != version1 {
		return Invitation{}, fmt.Errorf("%w %d", ErrVersion, b[0])
	}
	b = b[1:]
	if len(b) < 2*key.Size+2 {
		return Invitation{}, fmt.Errorf("truncated: %w", ErrMalformed)
	}
	inv := Invitation{Inviter: key.Public(b[:key.Size]), Alias: key.Private(b[key.Size:])}
	b = b[2*key.Size:]
	n := int(b[0])
	if n > MaxAddrs {
		return Invitation{}, fmt.Errorf("%d addresses, limit %d: %w", n, MaxAddrs, ErrMalformed)
	}
	b = b[1:]
	for range n {
		a, rest, err := parseAddrPort(b)
		if err != nil {
			return Invitation{}, err
		}
		inv.Addrs, b = append(inv.Addrs, a), rest
	}
	if len(b) == 0 {
		return Invitation{}, fmt.Errorf("truncated contacts: %w", ErrMalformed)
	}
	n = int(b[0])
	if n > MaxContacts {
		return Invitation{}, fmt.Errorf("%d contacts, limit %d: %w", n, MaxContacts, ErrMalformed)
	}
	b = b[1:]
	for range n {
		if len(b) < key.Size {
			return Invitation{}, fmt.Errorf("truncated contact: %w", ErrMalformed)
		}
		c := Contact{Key: key.Public(b[:key.Size])}
		var err error
		if c.Addr, b, err = parseAddrPort(b[key.Size:]); err != nil {
			return Invitation{}, err
		}
		inv.Contacts = append(inv.Contacts, c)
	}
	if len(b) != 0 {
		return Invitation{}, fmt.Errorf("%d bytes after the last contact: %w", len(b), ErrMalformed)
	}
	if !inv.Long() {
		// It would print in WireHub's form: one value, one string.
		return Invitation{}, fmt.Errorf("version %d without addresses or contacts: %w", version1, ErrMalformed)
	}
	return inv, nil
}

// appendAddrPort packs ap as wire does; ap is valid (Parse checked it, or
// the caller made it).
func appendAddrPort(b []byte, ap netip.AddrPort) []byte {
	b, _ = wire.AppendAddrPort(b, ap)
	return b
}

// parseAddrPort reads an address packed as wire does, and checks it.
func parseAddrPort(b []byte) (netip.AddrPort, []byte, error) {
	ap, rest, err := wire.ParseAddrPort(b)
	if err != nil {
		return netip.AddrPort{}, nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	if err := checkAddr(ap); err != nil {
		return netip.AddrPort{}, nil, err
	}
	return ap, rest, nil
}
