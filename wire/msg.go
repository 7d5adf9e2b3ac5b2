package wire

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"

	"github.com/whnet/wh/key"
)

// Type is the first byte of a message body and says which message follows.
// Zero is never a valid type.
type Type uint8

// Message types.
const (
	TypePing     Type = 0x01 // Ping
	TypePong     Type = 0x02 // Pong
	TypeFindNode Type = 0x03 // FindNode
	TypeNodes    Type = 0x04 // Nodes

	TypePunch   Type = 0x05 // Punch; its forward PunchFrom is 0x0a
	TypeRelay   Type = 0x06 // Relay: a WireGuard packet to forward to a key
	TypeRelayed Type = 0x07 // Relayed: a WireGuard packet a relay delivers
	TypeAuth    Type = 0x08 // Auth: claim an alias (invitation) slot; its inner Claim is 0x0b
	TypeAuthed  Type = 0x09 // Authed: a member's answer to an Auth
)

var typeNames = [...]string{
	TypePing: "ping", TypePong: "pong", TypeFindNode: "find-node", TypeNodes: "nodes",
	TypePunch: "punch", TypeRelay: "relay", TypeRelayed: "relayed", TypeAuth: "auth", TypeAuthed: "authed",
	TypePunchFrom: "punch-from", TypeClaim: "claim", TypePunchOffer: "punch-offer",
}

func (t Type) String() string {
	if int(t) < len(typeNames) && typeNames[t] != "" {
		return typeNames[t]
	}
	return fmt.Sprintf("type(%#02x)", uint8(t))
}

// Limits of the messages. A Nodes body must also fit in MaxBodySize.
const (
	MaxNodes = 20 // nodes in one Nodes message: Kademlia's K
	MaxAddrs = 4  // addresses of one NodeInfo
)

// Errors of ParseMessage and AppendBinary.
var (
	// ErrMalformed means a body or a value breaks the layout: truncated,
	// an unknown address family, a count over its limit, an invalid address.
	ErrMalformed = errors.New("malformed message")
	// ErrUnknownType is returned for a type byte that has no layout (yet).
	ErrUnknownType = errors.New("unknown message type")
	// ErrTooLarge is returned for a Nodes message over MaxBodySize.
	ErrTooLarge = errors.New("message too large")
)

// A Message is the plaintext body of an envelope. ParseMessage returns the
// value types Ping, Pong, FindNode and Nodes (not pointers).
type Message interface {
	Type() Type
	// AppendBinary appends the body, type byte first, to b.
	AppendBinary(b []byte) ([]byte, error)
}

var (
	_ Message = Ping{}
	_ Message = Pong{}
	_ Message = FindNode{}
	_ Message = Nodes{}
)

// Ping asks the receiver for a Pong. The body is
//
//	offset size
//	0      1    type 0x01
//	1      8    txid, big-endian
//	9      1    flags: bit 0 NAT; other bits are ignored
//	10     ...  padding: zeros up to Size
//
// A Pong is sent only in answer to a Ping at least as long, so that nobody
// can make a node send more to an address than came from it: senders pad
// their Pings to MaxPongSize.
type Ping struct {
	TxID uint64
	NAT  bool // the sender believes it is behind a NAT
	// Size is the length of the body, padding included. AppendBinary pads
	// to it (a Size below the unpadded length means no padding);
	// ParseMessage sets it to the length of the body it parsed.
	Size int
}

const pingLen = 1 + 8 + 1

// MaxPongSize is the longest Pong body (an IPv6 observed address): the
// size senders pad their Pings to.
const MaxPongSize = 1 + 8 + 19

func (Ping) Type() Type { return TypePing }

func (m Ping) AppendBinary(b []byte) ([]byte, error) {
	start := len(b)
	b = append(b, byte(TypePing))
	b = binary.BigEndian.AppendUint64(b, m.TxID)
	b = append(b, boolByte(m.NAT, 1))
	return pad(b, start, m.Size), nil
}

// pad appends zeros to b until the body that starts at start is size bytes
// long.
func pad(b []byte, start, size int) []byte {
	if n := size - (len(b) - start); n > 0 {
		b = append(b, make([]byte, n)...)
	}
	return b
}

// Pong answers a Ping with the address the Ping came from, as the responder
// saw it (the pinger's reflexive address). The body is
//
//	offset size
//	0      1    type 0x02
//	1      8    txid of the Ping, big-endian
//	9      7|19 observed address, packed (see NodeInfo)
type Pong struct {
	TxID     uint64
	Observed netip.AddrPort
}

func (Pong) Type() Type { return TypePong }

func (m Pong) AppendBinary(b []byte) ([]byte, error) {
	b = append(b, byte(TypePong))
	b = binary.BigEndian.AppendUint64(b, m.TxID)
	return AppendAddrPort(b, m.Observed)
}

// FindNode asks for the nodes the receiver knows closest to Target. The
// body is
//
//	offset size
//	0      1    type 0x03
//	1      8    txid, big-endian
//	9      32   target key
//	41     ...  padding: zeros up to Size
//
// The answer (Nodes) is no longer than the FindNode, so that a FindNode
// from a forged source address reflects no more bytes than it carried:
// senders pad their FindNodes to MaxBodySize for a full answer.
type FindNode struct {
	TxID   uint64
	Target key.Public
	// Size is the length of the body, padding included, as for Ping.
	Size int
}

const findNodeLen = 1 + 8 + key.Size

func (FindNode) Type() Type { return TypeFindNode }

func (m FindNode) AppendBinary(b []byte) ([]byte, error) {
	if m.Size > MaxBodySize {
		return b, fmt.Errorf("find-node: %d bytes, limit %d: %w", m.Size, MaxBodySize, ErrTooLarge)
	}
	start := len(b)
	b = append(b, byte(TypeFindNode))
	b = binary.BigEndian.AppendUint64(b, m.TxID)
	b = append(b, m.Target[:]...)
	return pad(b, start, m.Size), nil
}

// Nodes answers a FindNode. The body is
//
//	offset size
//	0      1    type 0x04
//	1      8    txid of the FindNode, big-endian
//	9      1    count, at most MaxNodes
//	10     ...  count NodeInfos, back to back
//
// The whole body must fit in MaxBodySize, so that the packet fits in
// MaxPacketSize: 20 nodes with one IPv4 and one IPv6 address each fit (a
// 1251-byte packet), 20 nodes with a Via key and four IPv6 addresses each do
// not. The sender picks nodes while NodeInfo.EncodedLen fits the budget.
type Nodes struct {
	TxID  uint64
	Nodes []NodeInfo
}

const nodesHeaderLen = 1 + 8 + 1

func (Nodes) Type() Type { return TypeNodes }

func (m Nodes) AppendBinary(b []byte) ([]byte, error) {
	if len(m.Nodes) > MaxNodes {
		return b, fmt.Errorf("nodes: %d nodes, limit %d: %w", len(m.Nodes), MaxNodes, ErrMalformed)
	}
	size := nodesHeaderLen
	for _, n := range m.Nodes {
		size += n.EncodedLen()
	}
	if size > MaxBodySize {
		return b, fmt.Errorf("nodes: %d bytes, limit %d: %w", size, MaxBodySize, ErrTooLarge)
	}
	b = append(b, byte(TypeNodes))
	b = binary.BigEndian.AppendUint64(b, m.TxID)
	b = append(b, byte(len(m.Nodes)))
	for i, n := range m.Nodes {
		var err error
		if b, err = n.appendBinary(b); err != nil {
			return b, fmt.Errorf("nodes: node %d: %w", i, err)
		}
	}
	return b, nil
}

// NodeInfo is one node of a Nodes message. It is laid out as
//
//	offset size
//	0      32   key
//	32     1    flags: bit 7 NAT, bit 6 Via present, bits 0-2 address count
//	            (at most MaxAddrs); bits 3-5 must be zero
//	33     32   via key, only if bit 6 is set
//	..     ...  count packed addresses
//
// A packed address is a family byte, the address and the port:
//
//	04 | IPv4 (4) | port (2, big-endian)     7 bytes
//	06 | IPv6 (16) | port (2, big-endian)   19 bytes
//
// IPv4-mapped IPv6 addresses are sent as IPv6; senders should unmap them.
// Zones cannot be sent.
type NodeInfo struct {
	Key   key.Public
	Addrs []netip.AddrPort // IPv4 and IPv6, at most MaxAddrs
	NAT   bool             // the node is behind a NAT
	// Via is the zero key when the node is reached directly at Addrs;
	// otherwise the node is reached through Via, which keeps it alive.
	Via key.Public
}

const (
	flagNAT       = 0x80
	flagVia       = 0x40
	flagAddrCount = 0x07
	flagReserved  = 0x38
)

// EncodedLen returns the number of bytes n takes in a Nodes body.
func (n NodeInfo) EncodedLen() int {
	size := key.Size + 1
	if !n.Via.IsZero() {
		size += key.Size
	}
	for _, a := range n.Addrs {
		size += addrPortLen(a.Addr())
	}
	return size
}

func (n NodeInfo) appendBinary(b []byte) ([]byte, error) {
	if len(n.Addrs) > MaxAddrs {
		return b, fmt.Errorf("%d addresses, limit %d: %w", len(n.Addrs), MaxAddrs, ErrMalformed)
	}
	b = append(b, n.Key[:]...)
	flags := boolByte(n.NAT, flagNAT) | boolByte(!n.Via.IsZero(), flagVia) | byte(len(n.Addrs))
	b = append(b, flags)
	if !n.Via.IsZero() {
		b = append(b, n.Via[:]...)
	}
	for _, a := range n.Addrs {
		var err error
		if b, err = AppendAddrPort(b, a); err != nil {
			return b, err
		}
	}
	return b, nil
}

// ParseMessage parses a plaintext body. Bytes after the message are ignored,
// so that a later version can extend a message at its end; for Ping and
// FindNode they count in Size, as padding.
func ParseMessage(body []byte) (Message, error) {
	if len(body) == 0 {
		return nil, fmt.Errorf("empty body: %w", ErrMalformed)
	}
	t := Type(body[0])
	switch t {
	case TypePing:
		if len(body) < pingLen {
			return nil, truncated(t)
		}
		return Ping{TxID: binary.BigEndian.Uint64(body[1:]), NAT: body[9]&1 != 0, Size: len(body)}, nil
	case TypePong:
		if len(body) < 1+8 {
			return nil, truncated(t)
		}
		a, _, err := ParseAddrPort(body[9:])
		if err != nil {
			return nil, fmt.Errorf("pong: %w", err)
		}
		return Pong{TxID: binary.BigEndian.Uint64(body[1:]), Observed: a}, nil
	case TypeFindNode:
		if len(body) < findNodeLen {
			return nil, truncated(t)
		}
		if len(body) > MaxBodySize {
			return nil, fmt.Errorf("find-node: %d bytes, limit %d: %w", len(body), MaxBodySize, ErrTooLarge)
		}
		return FindNode{TxID: binary.BigEndian.Uint64(body[1:]), Target: key.Public(body[9:]), Size: len(body)}, nil
	case TypeNodes:
		return parseNodes(body)
	case TypePunch, TypePunchFrom, TypePunchOffer:
		return parsePunch(body)
	case TypeRelay:
		return parseRelay(body)
	case TypeRelayed:
		return parseRelayed(body)
	case TypeAuth:
		return parseAuth(body)
	case TypeAuthed:
		return parseAuthed(body)
	case TypeClaim:
		return parseClaim(body)
	}
	return nil, fmt.Errorf("%v: %w", t, ErrUnknownType)
}

func parseNodes(body []byte) (Message, error) {
	if len(body) < nodesHeaderLen {
		return nil, truncated(TypeNodes)
	}
	m := Nodes{TxID: binary.BigEndian.Uint64(body[1:])}
	count := int(body[9])
	if count > MaxNodes {
		return nil, fmt.Errorf("nodes: %d nodes, limit %d: %w", count, MaxNodes, ErrMalformed)
	}
	rest := body[nodesHeaderLen:]
	if count > 0 {
		m.Nodes = make([]NodeInfo, count)
	}
	for i := range m.Nodes {
		var err error
		if rest, err = m.Nodes[i].parse(rest); err != nil {
			return nil, fmt.Errorf("nodes: node %d: %w", i, err)
		}
	}
	if used := len(body) - len(rest); used > MaxBodySize {
		return nil, fmt.Errorf("nodes: %d bytes, limit %d: %w", used, MaxBodySize, ErrTooLarge)
	}
	return m, nil
}

// parse fills n from the front of b and returns the rest.
func (n *NodeInfo) parse(b []byte) ([]byte, error) {
	if len(b) < key.Size+1 {
		return nil, fmt.Errorf("truncated: %w", ErrMalformed)
	}
	n.Key = key.Public(b)
	flags := b[key.Size]
	b = b[key.Size+1:]
	if flags&flagReserved != 0 {
		return nil, fmt.Errorf("reserved flags %#02x: %w", flags&flagReserved, ErrMalformed)
	}
	n.NAT = flags&flagNAT != 0
	if flags&flagVia != 0 {
		if len(b) < key.Size {
			return nil, fmt.Errorf("truncated via: %w", ErrMalformed)
		}
		n.Via = key.Public(b)
		b = b[key.Size:]
	}
	count := int(flags & flagAddrCount)
	if count > MaxAddrs {
		return nil, fmt.Errorf("%d addresses, limit %d: %w", count, MaxAddrs, ErrMalformed)
	}
	if count > 0 {
		n.Addrs = make([]netip.AddrPort, count)
	}
	for i := range n.Addrs {
		var err error
		if n.Addrs[i], b, err = ParseAddrPort(b); err != nil {
			return nil, fmt.Errorf("address %d: %w", i, err)
		}
	}
	return b, nil
}

func addrPortLen(a netip.Addr) int {
	if a.Is4() {
		return 1 + 4 + 2
	}
	return 1 + 16 + 2
}

// AppendAddrPort appends ap packed: family (4 or 6), address, port
// (big-endian). The form of every address on the wire and in invitations.
func AppendAddrPort(b []byte, ap netip.AddrPort) ([]byte, error) {
	a := ap.Addr()
	switch {
	case !a.IsValid():
		return b, fmt.Errorf("invalid address: %w", ErrMalformed)
	case a.Zone() != "":
		return b, fmt.Errorf("address %v has a zone: %w", a, ErrMalformed)
	case a.Is4():
		b = append(b, 4)
	default:
		b = append(b, 6)
	}
	b = append(b, a.AsSlice()...)
	return binary.BigEndian.AppendUint16(b, ap.Port()), nil
}

// ParseAddrPort reads a packed address from the front of b and returns the
// rest.
func ParseAddrPort(b []byte) (netip.AddrPort, []byte, error) {
	if len(b) == 0 {
		return netip.AddrPort{}, nil, fmt.Errorf("truncated address: %w", ErrMalformed)
	}
	var size int
	switch b[0] {
	case 4:
		size = 4
	case 6:
		size = 16
	default:
		return netip.AddrPort{}, nil, fmt.Errorf("address family %d: %w", b[0], ErrMalformed)
	}
	if len(b) < 1+size+2 {
		return netip.AddrPort{}, nil, fmt.Errorf("truncated address: %w", ErrMalformed)
	}
	a, _ := netip.AddrFromSlice(b[1 : 1+size])
	port := binary.BigEndian.Uint16(b[1+size:])
	return netip.AddrPortFrom(a, port), b[1+size+2:], nil
}

func truncated(t Type) error {
	return fmt.Errorf("%v: truncated: %w", t, ErrMalformed)
}

func boolByte(v bool, bit byte) byte {
	if v {
		return bit
	}
	return 0
}
