package netsim

import (
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// packetConn is the small interface wh's packages take instead of a
// socket; both *Conn and *net.UDPConn satisfy it.
type packetConn interface {
	ReadFromUDPAddrPort(b []byte) (int, netip.AddrPort, error)
	WriteToUDPAddrPort(b []byte, addr netip.AddrPort) (int, error)
	Close() error
}

var (
	_ net.PacketConn = (*Conn)(nil)
	_ packetConn     = (*Conn)(nil)
	_ packetConn     = (*net.UDPConn)(nil)
)

// A Conn is a UDP socket on a Host, bound to all of the host's addresses.
type Conn struct {
	h     *Host          // constant
	local netip.AddrPort // the host's first address and the port; constant
	seed  uint64         // the conn's random stream; constant

	sent   atomic.Uint64             // packets written, indexes the random stream
	queue  chan *packet              // the receive buffer
	closed chan struct{}             // closed by Close
	rd     deadline                  // read deadline
	wd     atomic.Pointer[time.Time] // write deadline; nil for none
}

func newConn(h *Host, port uint16) *Conn {
	c := &Conn{
		h:      h,
		local:  netip.AddrPortFrom(h.addrs[0], port),
		seed:   mix(h.seed ^ uint64(port)),
		queue:  make(chan *packet, h.n.opt.QueueLen),
		closed: make(chan struct{}),
	}
	c.rd.expired = make(chan struct{})
	return c
}

// LocalAddrPort returns the host's first address and the conn's port.
func (c *Conn) LocalAddrPort() netip.AddrPort { return c.local }

// LocalAddr returns LocalAddrPort as a *net.UDPAddr.
func (c *Conn) LocalAddr() net.Addr { return net.UDPAddrFromAddrPort(c.local) }

// ReadFromUDPAddrPort waits for a packet, copies it into b (truncating it
// if b is short, as UDP does) and returns its length and source. It fails
// once the conn is closed (net.ErrClosed) or the read deadline has passed
// (os.ErrDeadlineExceeded).
func (c *Conn) ReadFromUDPAddrPort(b []byte) (int, netip.AddrPort, error) {
	expired := c.rd.wait()
	select {
	case <-c.closed:
		return 0, netip.AddrPort{}, c.opError("read", netip.AddrPort{}, net.ErrClosed)
	case <-expired:
		return 0, netip.AddrPort{}, c.opError("read", netip.AddrPort{}, os.ErrDeadlineExceeded)
	default:
	}
	select {
	case p := <-c.queue:
		n, from := copy(b, p.data), p.src
		c.h.n.free(p)
		return n, from, nil
	case <-c.closed:
		return 0, netip.AddrPort{}, c.opError("read", netip.AddrPort{}, net.ErrClosed)
	case <-expired:
		return 0, netip.AddrPort{}, c.opError("read", netip.AddrPort{}, os.ErrDeadlineExceeded)
	}
}

// ReadFrom is ReadFromUDPAddrPort for net.PacketConn; the address is a
// *net.UDPAddr.
func (c *Conn) ReadFrom(b []byte) (int, net.Addr, error) {
	n, from, err := c.ReadFromUDPAddrPort(b)
	if err != nil {
		return n, nil, err
	}
	return n, net.UDPAddrFromAddrPort(from), nil
}

// WriteToUDPAddrPort sends a copy of b to addr. Like UDP it does not block
// and does not report loss. It fails if the conn is closed, the write
// deadline has passed, addr is not a valid unicast ip:port, the host has no
// address of addr's family (ENETUNREACH), or b is too long for one
// datagram (EMSGSIZE).
func (c *Conn) WriteToUDPAddrPort(b []byte, addr netip.AddrPort) (int, error) {
	select {
	case <-c.closed:
		return 0, c.opError("write", addr, net.ErrClosed)
	default:
	}
	if t := c.wd.Load(); t != nil && !time.Now().Before(*t) {
		return 0, c.opError("write", addr, os.ErrDeadlineExceeded)
	}
	dst := netip.AddrPortFrom(addr.Addr().Unmap(), addr.Port())
	if !dst.IsValid() || dst.Port() == 0 || dst.Addr().IsUnspecified() {
		return 0, c.opError("write", addr, os.NewSyscallError("sendto", syscall.EINVAL))
	}
	if len(b) > maxPayload(dst.Addr()) {
		return 0, c.opError("write", addr, os.NewSyscallError("sendto", syscall.EMSGSIZE))
	}
	src, ok := c.h.source(dst.Addr())
	if !ok {
		return 0, c.opError("write", addr, os.NewSyscallError("sendto", syscall.ENETUNREACH))
	}
	c.h.n.send(c, c.sent.Add(1), netip.AddrPortFrom(src, c.local.Port()), dst, b)
	return len(b), nil
}

// WriteTo is WriteToUDPAddrPort for net.PacketConn; addr must be a
// *net.UDPAddr.
func (c *Conn) WriteTo(b []byte, addr net.Addr) (int, error) {
	ua, ok := addr.(*net.UDPAddr)
	if !ok {
		return 0, &net.OpError{Op: "write", Net: "udp", Source: c.LocalAddr(), Addr: addr,
			Err: os.NewSyscallError("sendto", syscall.EINVAL)}
	}
	return c.WriteToUDPAddrPort(b, ua.AddrPort())
}

// SetReadDeadline sets when pending and future reads fail with
// os.ErrDeadlineExceeded. The zero time means never.
func (c *Conn) SetReadDeadline(t time.Time) error {
	c.rd.set(t)
	return nil
}

// SetWriteDeadline sets when future writes fail with
// os.ErrDeadlineExceeded. Writes never block, so only a deadline that has
// passed matters. The zero time means never.
func (c *Conn) SetWriteDeadline(t time.Time) error {
	if t.IsZero() {
		c.wd.Store(nil)
	} else {
		c.wd.Store(&t)
	}
	return nil
}

// SetDeadline sets both deadlines.
func (c *Conn) SetDeadline(t time.Time) error {
	c.SetReadDeadline(t)
	return c.SetWriteDeadline(t)
}

// Close frees the port and makes pending and future reads and writes fail
// with net.ErrClosed. Packets still queued are dropped (they were counted
// as delivered). A second Close fails with net.ErrClosed, as with a socket.
func (c *Conn) Close() error {
	h := c.h
	h.mu.Lock()
	if h.conns[c.local.Port()] != c {
		h.mu.Unlock()
		return c.opError("close", netip.AddrPort{}, net.ErrClosed)
	}
	delete(h.conns, c.local.Port())
	close(c.closed)
	h.mu.Unlock()
	c.rd.set(time.Time{})
	for {
		select {
		case p := <-c.queue:
			h.n.free(p)
		default:
			return nil
		}
	}
}

func (c *Conn) opError(op string, remote netip.AddrPort, err error) error {
	e := &net.OpError{Op: op, Net: "udp", Source: c.LocalAddr(), Err: err}
	if remote.IsValid() {
		e.Addr = net.UDPAddrFromAddrPort(remote)
	}
	return e
}

// A deadline is a channel that a timer closes when the deadline passes.
// While the deadline has not passed the channel stays the same, so a reader
// waiting on it sees a deadline set after it started to wait.
type deadline struct {
	mu      sync.Mutex
	timer   *time.Timer   // closes expired; guarded by mu
	expired chan struct{} // guarded by mu
}

func (d *deadline) set(t time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.timer != nil && !d.timer.Stop() {
		<-d.expired // the timer fired: wait until it has closed the channel
	}
	d.timer = nil
	select {
	case <-d.expired:
		d.expired = make(chan struct{})
	default:
	}
	if t.IsZero() {
		return
	}
	wait := time.Until(t)
	if wait <= 0 {
		close(d.expired)
		return
	}
	expired := d.expired
	d.timer = time.AfterFunc(wait, func() { close(expired) })
}

func (d *deadline) wait() chan struct{} {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.expired
}
