// Package orchid derives a node's ORCHID: an IPv6 address computed from its
// public key, by RFC 7343's ORCHIDv2.
//
// # Construction
//
// RFC 7343 defines
//
//	ORCHID := Prefix | OGA ID | Encode_96( Hash( Context ID | Input ) )
//
// and leaves the Context ID, the input and, through the OGA ID, the hash
// to each use. wh chooses:
//
//	Prefix      2001:20::/28, ORCHIDv2's prefix (28 bits)
//	OGA ID      0xF (4 bits), see below
//	Context ID  8bbfde75ff40677c7ba388d5da401eea (128 bits): the first 16
//	            bytes of BLAKE2b-256("wh ORCHID context v1"), drawn once
//	Input       namespace bytes ‖ 32-byte X25519 public key. The key has a
//	            fixed length, so the namespace needs no length prefix.
//	Hash        BLAKE2b-256 (RFC 7693, 32-byte digest, no key)
//	Encode_96   the middle 96 bits of the 256-bit digest, as RFC 7343
//	            defines it: bits 80 to 175, that is digest bytes 10 to 21
//
// so that the address's 16 bytes are
//
//	 0                   1                   2                   3
//	 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|  0x20 |  0x01 |  0x00 |  0x2 : OGA ID  (2001:002 / 28, then 0xF)
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|      BLAKE2b-256(Context ID ‖ namespace ‖ public key)[10:22]   |
//	|                        (96 bits, 3 words)                      |
//	|                                                                |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//
// and every wh ORCHID starts with 2001:2f:.
//
// RFC 7343 lets the OGA ID name the hash function of a context; for HIP it
// is the HIT Suite ID (RFC 7401 assigns 1 to 3, RFC 9374 assigns 5). wh
// uses 0xF, which no HIT suite uses, as an experimental value: a wh ORCHID
// is not a HIP HIT, and no HIP implementation will derive or verify it.
//
// # WireHub
//
// WireHub's `wh orchid` meant to print addresses in 2001:10::/28, the
// prefix of ORCHIDv1 (RFC 4843), which RFC 7343 retired. It hashed
// BLAKE2b-256(namespace ‖ key) with no context ID, kept the digest's first 16
// bytes and overwrote the first 20 bits with 2001:1 (it set byte 2 to 0x1X
// where the prefix needs byte 3 to be 0x1X), so its addresses lie in
// 2001:1000::/20, outside any ORCHID prefix, and hold digest bits 20 to 127
// rather than RFC 4843's middle 100 bits. wh follows ORCHIDv2 instead, with
// a context ID of its own so that its hash inputs cannot collide with
// another context's; so wh's addresses differ from WireHub's. WireHub's
// addresses, namespace "public", for the record:
//
//	P17zMwXJFbBdJEn05RFIMADw9TX5_m2xgf31OgNKX3w  2001:1243:2dac:bb06:bd81:9846:256b:410b
//	zW-1lBeQ7IkT6NW6hL_NsV4eOPOwJi_rt1vO-omOEmQ  2001:1075:b63:9ef6:5070:2e62:2de:e917
//	g878Bf9ZDc4IzFSUhWFTO1VYFVmHD5XfvEsVn83Dsho  2001:170c:721c:5351:1b6c:ade4:6f19:4366
//
// wh's for the same keys:
//
//	P17zMwXJFbBdJEn05RFIMADw9TX5_m2xgf31OgNKX3w  2001:2f:aae3:4788:f887:83cc:6a20:d579
//	zW-1lBeQ7IkT6NW6hL_NsV4eOPOwJi_rt1vO-omOEmQ  2001:2f:bee:770c:4603:d4d0:5aff:6dbc
//	g878Bf9ZDc4IzFSUhWFTO1VYFVmHD5XfvEsVn83Dsho  2001:2f:1ca7:fa3d:4345:da16:3c2b:6e96
//
// An ORCHID has 96 bits of hash: finding a second key with a given node's
// address takes about 2^96 hashes, but among 2^48 keys two probably share
// one. It names a node; it does not authenticate one.
package orchid

import (
	"net/netip"

	"github.com/whnet/wh/key"
	"golang.org/x/crypto/blake2b"
)

// OGAID is the 4-bit ORCHID Generation Algorithm identifier of wh's
// ORCHIDs.
const OGAID = 0xF

// contextID is wh's 128-bit RFC 7343 Context ID: BLAKE2b-256("wh ORCHID
// context v1")[:16].
const contextID = "\x8b\xbf\xde\x75\xff\x40\x67\x7c\x7b\xa3\x88\xd5\xda\x40\x1e\xea"

// Prefix is ORCHIDv2's prefix, RFC 7343 section 6.
var Prefix = netip.MustParsePrefix("2001:20::/28")

// Addr returns the ORCHID of the node with public key pub in namespace.
func Addr(pub key.Public, namespace string) netip.Addr {
	in := make([]byte, 0, len(contextID)+len(namespace)+key.Size)
	in = append(in, contextID...)
	in = append(in, namespace...)
	in = append(in, pub[:]...)
	digest := blake2b.Sum256(in)

	var a [16]byte
	a[0], a[1], a[2], a[3] = 0x20, 0x01, 0x00, 0x20|OGAID
	copy(a[4:], digest[10:22]) // Encode_96: the middle 96 of 256 bits
	return netip.AddrFrom16(a)
}

// Contains reports whether a is a wh ORCHID: inside Prefix with wh's OGA
// ID. It does not tell whose.
func Contains(a netip.Addr) bool {
	return Prefix.Contains(a) && a.As16()[3]&0x0f == OGAID
}
