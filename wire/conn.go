package wire

import (
	"fmt"
	"net"
	"net/netip"
	"sync"

	"github.com/whnet/wh/key"
)

// PacketConn is the part of a UDP socket a Conn uses. *net.UDPConn
// satisfies it, and so can an in-memory network.
type PacketConn interface {
	ReadFromUDPAddrPort(b []byte) (int, netip.AddrPort, error)
	WriteToUDPAddrPort(b []byte, addr netip.AddrPort) (int, error)
	Close() error
}

var _ PacketConn = (*net.UDPConn)(nil)

// A Conn sends and receives control messages over a PacketConn that carries
// nothing else. It is for tests and the simulator; a node shares its socket
// with WireGuard and calls the Codec from its demultiplexer instead.
// Send and Receive may be called concurrently.
type Conn struct {
	pc    PacketConn
	codec *Codec

	closeOnce sync.Once
	closeErr  error // set once by Close
}

// NewConn returns a Conn that seals and opens with codec. The Conn owns pc
// and closes it on Close.
func NewConn(pc PacketConn, codec *Codec) *Conn {
	return &Conn{pc: pc, codec: codec}
}

// Send seals m for the key to and writes it to addr.
func (c *Conn) Send(to key.Public, addr netip.AddrPort, m Message) error {
	pkt, err := c.codec.Seal(make([]byte, 0, 256), to, m)
	if err != nil {
		return err
	}
	if _, err := c.pc.WriteToUDPAddrPort(pkt, addr); err != nil {
		return fmt.Errorf("send %v to %v: %w", m.Type(), addr, err)
	}
	return nil
}

// Receive reads packets into buf until one opens, and returns its sender,
// source address and message. Packets that fail to open are skipped; the
// Codec counts them. buf should hold MaxPacketSize bytes or more, since a
// truncated packet does not open. It returns the first read error.
func (c *Conn) Receive(buf []byte) (from key.Public, src netip.AddrPort, m Message, err error) {
	for {
		n, src, err := c.pc.ReadFromUDPAddrPort(buf)
		if err != nil {
			return key.Public{}, netip.AddrPort{}, nil, err
		}
		from, m, err := c.codec.Open(buf[:n])
		if err == nil {
			return from, src, m, nil
		}
	}
}

// Close closes the PacketConn, once; later calls return the same error.
func (c *Conn) Close() error {
	c.closeOnce.Do(func() { c.closeErr = c.pc.Close() })
	return c.closeErr
}
