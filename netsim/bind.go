package netsim

import (
	"fmt"
	"net"
	"net/netip"
	"sync"

	"golang.zx2c4.com/wireguard/conn"
)

// Bind is a wireguard-go conn.Bind on a Host: the UDP port of a whole
// WireGuard node (tunnel.BindOptions.UDP), as one Conn bound to all of the
// host's addresses, for both families. Its endpoints are
// *conn.StdNetEndpoint values, as those of wireguard-go's StdNetBind are,
// so code written against StdNetBind sees no difference.
//
// A receive function waits for one datagram and then takes, without
// waiting, those already queued behind it, up to the batch size; Send
// writes a batch datagram by datagram.
type Bind struct {
	h *Host // constant

	mu sync.Mutex
	c  *Conn // nil while closed; guarded by mu
}

// BindBatchSize is Bind's BatchSize.
const BindBatchSize = 16

var _ conn.Bind = (*Bind)(nil)

// NewBind returns a closed Bind on h; Open opens its port.
func NewBind(h *Host) *Bind { return &Bind{h: h} }

// Open implements conn.Bind: it listens on port (0: an ephemeral one) and
// returns the one receive function of that Conn.
func (b *Bind) Open(port uint16) ([]conn.ReceiveFunc, uint16, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.c != nil {
		return nil, 0, conn.ErrBindAlreadyOpen
	}
	c, err := b.h.ListenUDP(port)
	if err != nil {
		return nil, 0, err
	}
	b.c = c
	return []conn.ReceiveFunc{c.receiveBatch}, c.local.Port(), nil
}

// Close implements conn.Bind: the receive functions return net.ErrClosed.
// Closing a closed Bind does nothing.
func (b *Bind) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.c == nil {
		return nil
	}
	err := b.c.Close()
	b.c = nil
	return err
}

// Send implements conn.Bind. It fails with net.ErrClosed while the Bind is
// closed, and with the first error of a write otherwise (the datagrams
// before it were sent).
func (b *Bind) Send(bufs [][]byte, ep conn.Endpoint) error {
	e, ok := ep.(*conn.StdNetEndpoint)
	if !ok {
		return conn.ErrWrongEndpointType
	}
	b.mu.Lock()
	c := b.c
	b.mu.Unlock()
	if c == nil {
		return &net.OpError{Op: "write", Net: "udp", Addr: net.UDPAddrFromAddrPort(e.AddrPort), Err: net.ErrClosed}
	}
	for _, buf := range bufs {
		if _, err := c.WriteToUDPAddrPort(buf, e.AddrPort); err != nil {
			return err
		}
	}
	return nil
}

// ParseEndpoint implements conn.Bind: s is an ip:port.
func (b *Bind) ParseEndpoint(s string) (conn.Endpoint, error) {
	ap, err := netip.ParseAddrPort(s)
	if err != nil {
		return nil, fmt.Errorf("netsim: parse endpoint: %w", err)
	}
	return &conn.StdNetEndpoint{AddrPort: ap}, nil
}

// SetMark implements conn.Bind; marks mean nothing here.
func (b *Bind) SetMark(uint32) error { return nil }

// BatchSize implements conn.Bind.
func (b *Bind) BatchSize() int { return BindBatchSize }

// receiveBatch is a conn.ReceiveFunc: it waits for a datagram, as
// ReadFromUDPAddrPort does, then adds those already queued, without
// waiting, until bufs are full.
func (c *Conn) receiveBatch(bufs [][]byte, sizes []int, eps []conn.Endpoint) (int, error) {
	if len(bufs) == 0 {
		return 0, nil
	}
	n, src, err := c.ReadFromUDPAddrPort(bufs[0])
	if err != nil {
		return 0, err
	}
	sizes[0], eps[0] = n, &conn.StdNetEndpoint{AddrPort: src}
	i := 1
	for ; i < len(bufs); i++ {
		var p *packet
		select {
		case p = <-c.queue:
		default:
		}
		if p == nil {
			break
		}
		sizes[i], eps[i] = copy(bufs[i], p.data), &conn.StdNetEndpoint{AddrPort: p.src}
		c.h.n.free(p)
	}
	return i, nil
}
