package tunnel

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"sync"
	"syscall"

	"golang.zx2c4.com/wireguard/tun"
	"gvisor.dev/gvisor/pkg/buffer"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/adapters/gonet"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/link/channel"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv4"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv6"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
	"gvisor.dev/gvisor/pkg/tcpip/transport/icmp"
	"gvisor.dev/gvisor/pkg/tcpip/transport/tcp"
	"gvisor.dev/gvisor/pkg/tcpip/transport/udp"
	"gvisor.dev/gvisor/pkg/waiter"
)

// Sizes of a Netstack.
const (
	netstackNIC   = 1
	netstackQueue = 1024 // packets between the stack and the device
	netstackBatch = 64   // packets per Read: the device's TUN batch
	// tcpInFlight bounds the TCP handshakes a Forwarder has under way;
	// further SYNs are dropped (the peer retries).
	tcpInFlight = 64
)

// Netstack is a userspace TUN: gVisor's TCP/IP stack in the process, holding
// the node's overlay addresses. It needs no privilege and creates no
// interface; programs reach the overlay through its Dial and Listen methods,
// and SetForwarder takes connections to ports nobody listens on.
type Netstack struct {
	ep     *channel.Endpoint
	stack  *stack.Stack
	mtu    int
	events chan tun.Event
	ctx    context.Context // cancelled by Close: ends a blocked Read
	cancel context.CancelFunc
	once   sync.Once
}

var _ tun.Device = (*Netstack)(nil)

// NewNetstack makes a stack holding addrs (IPv4 and IPv6), with routes
// for both families to the device. mtu 0 means DefaultMTU.
func NewNetstack(addrs []netip.Addr, mtu int) (*Netstack, error) {
	if mtu == 0 {
		mtu = DefaultMTU
	}
	s := stack.New(stack.Options{
		NetworkProtocols:   []stack.NetworkProtocolFactory{ipv4.NewProtocol, ipv6.NewProtocol},
		TransportProtocols: []stack.TransportProtocolFactory{tcp.NewProtocol, udp.NewProtocol, icmp.NewProtocol4, icmp.NewProtocol6},
		HandleLocal:        true,
	})
	ctx, cancel := context.WithCancel(context.Background())
	ns := &Netstack{
		ep:     channel.New(netstackQueue, uint32(mtu), ""),
		stack:  s,
		mtu:    mtu,
		events: make(chan tun.Event, 1),
		ctx:    ctx,
		cancel: cancel,
	}
	if err := ns.configure(addrs); err != nil {
		ns.Close()
		return nil, err
	}
	ns.events <- tun.EventUp
	return ns, nil
}

func (ns *Netstack) configure(addrs []netip.Addr) error {
	sack := tcpip.TCPSACKEnabled(true)
	if err := ns.stack.SetTransportProtocolOption(tcp.ProtocolNumber, &sack); err != nil {
		return fmt.Errorf("tunnel: netstack SACK: %v", err)
	}
	if err := ns.stack.CreateNIC(netstackNIC, ns.ep); err != nil {
		return fmt.Errorf("tunnel: netstack NIC: %v", err)
	}
	var v4, v6 bool
	for _, a := range addrs {
		pa := tcpip.ProtocolAddress{AddressWithPrefix: tcpip.AddrFromSlice(a.AsSlice()).WithPrefix()}
		switch {
		case a.Is4():
			pa.Protocol, v4 = ipv4.ProtocolNumber, true
		case a.Is6():
			pa.Protocol, v6 = ipv6.ProtocolNumber, true
		default:
			return fmt.Errorf("tunnel: netstack address %v", a)
		}
		if err := ns.stack.AddProtocolAddress(netstackNIC, pa, stack.AddressProperties{}); err != nil {
			return fmt.Errorf("tunnel: netstack address %v: %v", a, err)
		}
	}
	if v4 {
		ns.stack.AddRoute(tcpip.Route{Destination: header.IPv4EmptySubnet, NIC: netstackNIC})
	}
	if v6 {
		ns.stack.AddRoute(tcpip.Route{Destination: header.IPv6EmptySubnet, NIC: netstackNIC})
	}
	return nil
}

// Name implements tun.Device.
func (ns *Netstack) Name() (string, error) { return "netstack", nil }

// File implements tun.Device: there is none.
func (ns *Netstack) File() *os.File { return nil }

// Events implements tun.Device.
func (ns *Netstack) Events() <-chan tun.Event { return ns.events }

// MTU implements tun.Device.
func (ns *Netstack) MTU() (int, error) { return ns.mtu, nil }

// BatchSize implements tun.Device.
func (ns *Netstack) BatchSize() int { return netstackBatch }

// Read implements tun.Device: it waits for the stack's first outbound
// packet, then takes as many more as are queued and bufs can hold.
func (ns *Netstack) Read(bufs [][]byte, sizes []int, offset int) (int, error) {
	pkt := ns.ep.ReadContext(ns.ctx)
	if pkt == nil {
		return 0, os.ErrClosed
	}
	n := 0
	for pkt != nil {
		v := pkt.ToView()
		pkt.DecRef()
		sizes[n], _ = v.Read(bufs[n][offset:])
		v.Release()
		n++
		if n == len(bufs) {
			break
		}
		pkt = ns.ep.Read()
	}
	return n, nil
}

// Write implements tun.Device: the packets enter the stack.
func (ns *Netstack) Write(bufs [][]byte, offset int) (int, error) {
	for _, b := range bufs {
		p := b[offset:]
		if len(p) == 0 {
			continue
		}
		var proto tcpip.NetworkProtocolNumber
		switch p[0] >> 4 {
		case 4:
			proto = header.IPv4ProtocolNumber
		case 6:
			proto = header.IPv6ProtocolNumber
		default:
			return 0, syscall.EAFNOSUPPORT
		}
		pkb := stack.NewPacketBuffer(stack.PacketBufferOptions{Payload: buffer.MakeWithData(p)})
		ns.ep.InjectInbound(proto, pkb)
		pkb.DecRef()
	}
	return len(bufs), nil
}

// Close implements tun.Device: it closes every connection of the stack.
// Closing twice does nothing.
func (ns *Netstack) Close() error {
	ns.once.Do(func() {
		ns.cancel()
		ns.stack.Close()
		ns.ep.Close()
		ns.stack.Wait()
		close(ns.events)
	})
	return nil
}

func fullAddr(a netip.AddrPort) (tcpip.FullAddress, tcpip.NetworkProtocolNumber) {
	fa := tcpip.FullAddress{NIC: netstackNIC, Port: a.Port()}
	if a.Addr().IsValid() && !a.Addr().IsUnspecified() {
		fa.Addr = tcpip.AddrFromSlice(a.Addr().Unmap().AsSlice())
	}
	if a.Addr().Unmap().Is4() {
		return fa, ipv4.ProtocolNumber
	}
	return fa, ipv6.ProtocolNumber
}

func addrPort(a tcpip.Address, port uint16) netip.AddrPort {
	ip, _ := netip.AddrFromSlice(a.AsSlice())
	return netip.AddrPortFrom(ip, port)
}

// DialTCP connects to dst through the overlay. A refused connection is
// syscall.ECONNREFUSED, an unreachable host EHOSTUNREACH, as for a socket.
func (ns *Netstack) DialTCP(ctx context.Context, dst netip.AddrPort) (*gonet.TCPConn, error) {
	fa, proto := fullAddr(dst)
	c, err := gonet.DialContextTCP(ctx, ns.stack, fa, proto)
	var oe *net.OpError
	if errors.As(err, &oe) && oe.Err != nil {
		// gonet keeps only the text of gVisor's errors.
		for _, e := range []struct {
			tcpip tcpip.Error
			errno syscall.Errno
		}{
			{&tcpip.ErrConnectionRefused{}, syscall.ECONNREFUSED},
			{&tcpip.ErrHostUnreachable{}, syscall.EHOSTUNREACH},
			{&tcpip.ErrNetworkUnreachable{}, syscall.ENETUNREACH},
			{&tcpip.ErrTimeout{}, syscall.ETIMEDOUT},
		} {
			if oe.Err.Error() == e.tcpip.String() {
				oe.Err = e.errno
			}
		}
	}
	return c, err
}

// DialUDP returns a UDP socket connected to dst through the overlay, from a
// free port.
func (ns *Netstack) DialUDP(dst netip.AddrPort) (*gonet.UDPConn, error) {
	fa, proto := fullAddr(dst)
	return gonet.DialUDP(ns.stack, nil, &fa, proto)
}

// ListenTCP listens on local, one of the stack's addresses (or the
// unspecified address of its family) and a port.
func (ns *Netstack) ListenTCP(local netip.AddrPort) (*gonet.TCPListener, error) {
	fa, proto := fullAddr(local)
	return gonet.ListenTCP(ns.stack, fa, proto)
}

// ListenUDP opens an unconnected UDP socket on local.
func (ns *Netstack) ListenUDP(local netip.AddrPort) (*gonet.UDPConn, error) {
	fa, proto := fullAddr(local)
	return gonet.DialUDP(ns.stack, &fa, nil, proto)
}

// Forwarder takes the connections to the stack's addresses that no
// listener holds. Each function is called on a goroutine of its own.
type Forwarder struct {
	// TCP decides on a connection being opened from src to dst: it must
	// call exactly one of r's Accept and Reject. Nil: refused (RST).
	TCP func(r *TCPRequest)
	// UDP receives each new flow, a socket bound to dst and connected to
	// src that already holds the flow's first datagram. The function owns
	// it. Nil: dropped.
	UDP func(c *gonet.UDPConn, src, dst netip.AddrPort)
}

// TCPRequest is a TCP connection half open: a SYN has arrived.
type TCPRequest struct {
	Src, Dst netip.AddrPort
	r        *tcp.ForwarderRequest
}

// Accept completes the handshake.
func (r *TCPRequest) Accept() (*gonet.TCPConn, error) {
	var wq waiter.Queue
	ep, err := r.r.CreateEndpoint(&wq)
	r.r.Complete(err != nil)
	if err != nil {
		return nil, fmt.Errorf("tunnel: accept %v: %v", r.Dst, err)
	}
	return gonet.NewTCPConn(&wq, ep), nil
}

// Reject answers with a reset, as a closed port does.
func (r *TCPRequest) Reject() { r.r.Complete(true) }

// SetForwarder installs f. At most tcpInFlight TCP requests wait for
// their decision at a time; SYNs beyond that are dropped. The UDP function
// is called synchronously with the stack's receive path, so it must hand
// the flow to a goroutine and return.
func (ns *Netstack) SetForwarder(f Forwarder) {
	tf := tcp.NewForwarder(ns.stack, 0, tcpInFlight, func(r *tcp.ForwarderRequest) {
		id := r.ID()
		req := &TCPRequest{Src: addrPort(id.RemoteAddress, id.RemotePort), Dst: addrPort(id.LocalAddress, id.LocalPort), r: r}
		if f.TCP == nil {
			req.Reject()
			return
		}
		f.TCP(req)
	})
	ns.stack.SetTransportProtocolHandler(tcp.ProtocolNumber, tf.HandlePacket)
	uf := udp.NewForwarder(ns.stack, func(r *udp.ForwarderRequest) {
		if f.UDP == nil {
			return
		}
		id := r.ID()
		var wq waiter.Queue
		ep, err := r.CreateEndpoint(&wq)
		if err != nil {
			return
		}
		f.UDP(gonet.NewUDPConn(&wq, ep), addrPort(id.RemoteAddress, id.RemotePort), addrPort(id.LocalAddress, id.LocalPort))
	})
	ns.stack.SetTransportProtocolHandler(udp.ProtocolNumber, uf.HandlePacket)
}

var _ net.Conn = (*gonet.TCPConn)(nil)
