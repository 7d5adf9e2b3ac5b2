package wire

import (
	"errors"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"
)

// memConn is one end of an in-memory packet pipe.
type memConn struct {
	addr netip.AddrPort
	in   chan memPacket
	peer *memConn

	closeOnce sync.Once
	closed    chan struct{}
}

type memPacket struct {
	b    []byte
	from netip.AddrPort
}

var _ PacketConn = (*memConn)(nil)

// memPipe returns two connected ends with the given addresses.
func memPipe(a, b netip.AddrPort) (*memConn, *memConn) {
	ca := &memConn{addr: a, in: make(chan memPacket, 16), closed: make(chan struct{})}
	cb := &memConn{addr: b, in: make(chan memPacket, 16), closed: make(chan struct{})}
	ca.peer, cb.peer = cb, ca
	return ca, cb
}

func (c *memConn) ReadFromUDPAddrPort(b []byte) (int, netip.AddrPort, error) {
	select {
	case p := <-c.in:
		return copy(b, p.b), p.from, nil
	case <-c.closed:
		return 0, netip.AddrPort{}, net.ErrClosed
	case <-time.After(10 * time.Second):
		return 0, netip.AddrPort{}, errors.New("memConn: read timed out")
	}
}

// WriteToUDPAddrPort delivers to the peer if addr is the peer's address,
// and drops the packet otherwise or when the peer's queue is full.
func (c *memConn) WriteToUDPAddrPort(b []byte, addr netip.AddrPort) (int, error) {
	if addr == c.peer.addr {
		select {
		case c.peer.in <- memPacket{b: append([]byte(nil), b...), from: c.addr}:
		default:
		}
	}
	return len(b), nil
}

func (c *memConn) Close() error {
	c.closeOnce.Do(func() { close(c.closed) })
	return nil
}

func TestConn(t *testing.T) {
	addrA := netip.MustParseAddrPort("192.0.2.1:1000")
	addrB := netip.MustParseAddrPort("[2001:db8::2]:2000")
	pa, pb := memPipe(addrA, addrB)
	ca := NewCodec(newPrivate(t), testNamespace, 0)
	cb := NewCodec(newPrivate(t), testNamespace, 0)
	a, b := NewConn(pa, ca), NewConn(pb, cb)
	t.Cleanup(func() { a.Close(); b.Close() })

	// Junk first: a WireGuard packet and a control packet for someone else.
	pa.WriteToUDPAddrPort(append([]byte{4, 0, 0, 0}, make([]byte, 96)...), addrB)
	if err := a.Send(ca.Public(), addrB, Ping{TxID: 1}); err != nil {
		t.Fatal(err)
	}
	if err := a.Send(cb.Public(), addrB, Ping{TxID: 2, NAT: true}); err != nil {
		t.Fatal(err)
	}

	buf := make([]byte, MaxPacketSize)
	from, src, m, err := b.Receive(buf)
	if err != nil {
		t.Fatal(err)
	}
	if from != ca.Public() || src != addrA || m != (Ping{TxID: 2, NAT: true, Size: 10}) {
		t.Errorf("Receive = %v, %v, %v; want %v, %v, ping 2", from, src, m, ca.Public(), addrA)
	}
	if s := cb.Stats(); s.BadMagic != 1 || s.Auth != 1 || s.Opened != 1 {
		t.Errorf("receiver stats %+v, want one bad magic, one auth failure, one opened", s)
	}

	if err := b.Send(from, src, Pong{TxID: 2, Observed: src}); err != nil {
		t.Fatal(err)
	}
	if _, _, m, err := a.Receive(buf); err != nil || m != (Pong{TxID: 2, Observed: addrA}) {
		t.Errorf("pong: %v, %v", m, err)
	}

	if err := b.Send(ca.Public(), addrA, Nodes{Nodes: worstNodes()}); !errors.Is(err, ErrTooLarge) {
		t.Errorf("Send of an oversized Nodes: %v, want ErrTooLarge", err)
	}

	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if _, _, _, err := b.Receive(buf); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Receive after Close: %v, want net.ErrClosed", err)
	}
}
