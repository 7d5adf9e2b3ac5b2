package tunnel

import (
	"encoding/binary"
	"errors"
	"net/netip"
	"sync/atomic"

	"golang.zx2c4.com/wireguard/conn"

	"github.com/whnet/wh/key"
)

// A Path is how packets reach a peer. Set at most one field; the zero Path means the peer
// has no path, and packets to it are dropped and counted.
type Path struct {
	// Direct is the peer's underlay address; packets go there from the node's UDP port.
	Direct netip.AddrPort

	// Relay sends WireGuard packets through a relay. It is called from several
	// goroutines at once, must not keep bufs after it returns (the device reuses
	// them), and should not block for long: it runs on the device's send path.
	Relay func(bufs [][]byte) error
}

// route is a Path prepared for the hot path. Immutable.
type route struct {
	direct *conn.StdNetEndpoint // non-nil: send here through StdNetBind
	relay  func(bufs [][]byte) error
}

// sameDirect reports whether r and q send directly to the same address.
func (r *route) sameDirect(q *route) bool {
	return r.direct != nil && q.direct != nil && r.direct.AddrPort == q.direct.AddrPort
}

// peerEndpoint is the one conn.Endpoint wireguard-go holds for a trusted peer for as long
// as the peer is known to the Bind. The device never learns where packets actually go.
type peerEndpoint struct {
	// Constant.
	key     key.Public
	id      netip.AddrPort // synthetic stable address, see endpointID
	idBytes []byte         // id in DstToBytes form (mac2 cookies are bound to it)

	route atomic.Pointer[route] // current path; nil means none

	// held is the last handshake message (initiation or response) sent
	// while the peer had no path, sent when one appears (Bind.sendHeld).
	// Without it the first packet to a peer whose path is still being
	// found costs WireGuard's 5 s retry.
	held atomic.Pointer[heldMessage]
	// sent is the last handshake message sent on a path. When the path
	// changes soon after, it is sent again on the new one (Bind.SetPath):
	// a message lost on the old path (in a relay just given up) would cost
	// WireGuard's 5 s retry.
	sent atomic.Pointer[heldMessage]
	// initiationIn is when the last handshake initiation from the peer
	// arrived, directly or through a relay (Unix nanoseconds).
	initiationIn atomic.Int64
	// directIn is when a WireGuard packet last came from an address
	// learned for the peer (Bind.Learn: its direct path), in Unix
	// nanoseconds.
	directIn atomic.Int64
}

var _ conn.Endpoint = (*peerEndpoint)(nil)

// discardPrefix is IPv6's discard-only address block (RFC 6666). Addresses in it never
// name a host, so a peer's synthetic address cannot collide with a real underlay address.
var discardPrefix = netip.MustParsePrefix("100::/64")

// errEndpointNotPeer is returned by ParseEndpoint for an address in the discard prefix that
// belongs to no peer known to the Bind.
var errEndpointNotPeer = errors.New("synthetic peer address of no known peer")

// endpointID is the stable address by which wireguard-go, `wg show` and UAPI's endpoint=
// name a peer: 80 bits of its public key inside the discard prefix.
//
//	[100::k0k1:k2k3:k4k5:k6k7]:k8k9
//
// It must look like ip:port because `wg` aborts parsing a device's state at the first
// endpoint it cannot resolve as one.
func endpointID(k key.Public) netip.AddrPort {
	var a [16]byte
	a[0], a[1] = 0x01, 0x00
	copy(a[8:], k[:8])
	return netip.AddrPortFrom(netip.AddrFrom16(a), binary.BigEndian.Uint16(k[8:10]))
}

func newPeerEndpoint(k key.Public) *peerEndpoint {
	id := endpointID(k)
	b, _ := id.MarshalBinary() // cannot fail for a valid AddrPort
	return &peerEndpoint{key: k, id: id, idBytes: b}
}

func (*peerEndpoint) ClearSrc()             {}
func (*peerEndpoint) SrcToString() string   { return "" }
func (*peerEndpoint) SrcIP() netip.Addr     { return netip.Addr{} }
func (e *peerEndpoint) DstToString() string { return e.id.String() }
func (e *peerEndpoint) DstToBytes() []byte  { return e.idBytes }

// DstIP is what wireguard-go's handshake rate limiter keys on: one bucket per peer.
func (e *peerEndpoint) DstIP() netip.Addr { return e.id.Addr() }
