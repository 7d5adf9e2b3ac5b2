package node

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip/adapters/gonet"

	"github.com/whnet/wh/key"
	"github.com/whnet/wh/orchid"
	"github.com/whnet/wh/socks5"
	"github.com/whnet/wh/tunnel"
)

// Bounds of a userspace node's forwarding to localhost.
const (
	maxForwardTCP  = 1024            // connections at once; more are reset
	forwardDial    = 5 * time.Second // to connect to the local service
	maxUDPDatagram = 65535
)

// Bounds of UDP forwarding; variables for the tests.
var (
	maxForwardUDP = int32(256)       // flows at once; datagrams of more are dropped
	udpFlowIdle   = 60 * time.Second // a flow without a datagram either way ends
)

// ErrNotUserspace is returned by Dial and Listen on a node that is not
// userspace (it has a TUN: use the system's sockets) or is headless.
var ErrNotUserspace = errors.New("node: not a userspace node")

// userspace is what a userspace node adds: its stack, the SOCKS5 server,
// and the forwarding of connections to localhost.
type userspace struct {
	ns     *tunnel.Netstack
	socks  *socks5.Server // nil unless Options.SOCKS5
	addr   net.Addr       // the SOCKS5 server's, nil without one
	wg     sync.WaitGroup // Serve, and every forwarded connection
	mu     sync.Mutex     // guards closed, and wg.Add against stop's Wait
	closed bool
	tcp    atomic.Int32 // forwarded TCP connections open
	udp    atomic.Int32 // forwarded UDP flows open
}

// newNetstack makes the stack of a userspace node, holding its overlay
// addresses; it becomes the node's TUN.
func (nd *Node) newNetstack() (*tunnel.Netstack, error) {
	var addrs []netip.Addr
	for _, p := range nd.addrs {
		addrs = append(addrs, p.Addr())
	}
	ns, err := tunnel.NewNetstack(addrs, 0)
	if err != nil {
		return nil, err
	}
	nd.us = &userspace{ns: ns}
	return ns, nil
}

// startUserspace starts what runs on the stack: forwarding and SOCKS5.
func (nd *Node) startUserspace() error {
	us := nd.us
	if nd.opt.ForwardLocal {
		us.ns.SetForwarder(tunnel.Forwarder{TCP: nd.forwardTCP, UDP: nd.forwardUDP})
	}
	if nd.opt.SOCKS5 == "" {
		return nil
	}
	ln, err := net.Listen("tcp", nd.opt.SOCKS5)
	if err != nil {
		return fmt.Errorf("socks5: %w", err)
	}
	us.addr = ln.Addr()
	us.socks = &socks5.Server{
		Dial: func(ctx context.Context, r socks5.Request) (net.Conn, error) {
			host := r.Host
			if host == "" {
				host = r.Addr.String()
			}
			return nd.dialTCP(ctx, host, r.Port)
		},
		Logger: nd.log.With("sub", "socks5"),
	}
	us.wg.Go(func() {
		if err := us.socks.Serve(ln); !errors.Is(err, socks5.ErrServerClosed) {
			nd.log.Error("socks5: stopped", "err", err)
		}
	})
	nd.log.Info("socks5", "listen", us.addr.String())
	return nil
}

// begin counts a forwarded connection in, unless the node is stopping.
func (us *userspace) begin() bool {
	us.mu.Lock()
	defer us.mu.Unlock()
	if us.closed {
		return false
	}
	us.wg.Add(1)
	return true
}

// stopUserspace stops the SOCKS5 server and every forwarded connection
// (nd.ctx is done), and waits for them. The stack goes with the device.
func (nd *Node) stopUserspace() {
	if nd.us == nil {
		return
	}
	nd.us.mu.Lock()
	nd.us.closed = true
	nd.us.mu.Unlock()
	if nd.us.socks != nil {
		nd.us.socks.Close()
	}
	nd.us.wg.Wait()
}

// SOCKS5Addr returns the address the SOCKS5 server listens on, nil without one.
func (nd *Node) SOCKS5Addr() net.Addr {
	if nd.us == nil {
		return nil
	}
	return nd.us.addr
}

// LookupHost returns the overlay address of host: an overlay address
// itself, a trusted hostname of the network, bare or under the network's
// name, or a trusted node's public key; its IPv4 address if it has one,
// else its ORCHID.
func (nd *Node) LookupHost(host string) (netip.Addr, error) {
	if a, err := netip.ParseAddr(host); err == nil {
		a = a.Unmap()
		if !nd.subnet.Contains(a) && !orchid.Prefix.Contains(a) {
			return netip.Addr{}, fmt.Errorf("%s: %w: not an overlay address", host, socks5.ErrNotAllowed)
		}
		return a, nil
	}
	if k, err := key.ParsePublic(host); err == nil {
		nd.mu.Lock()
		n := nd.net
		nd.mu.Unlock()
		c, ok := n.Node(k)
		switch {
		case !ok || !c.Trusted():
			return netip.Addr{}, fmt.Errorf("%w: %s is not a trusted node of network %q", socks5.ErrHostUnreachable, k, n.Name)
		case c.IP.IsValid():
			return c.IP, nil
		}
		return orchid.Addr(k, n.Namespace), nil
	}
	r, err := nd.Resolve(host)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("%w: %v", socks5.ErrHostUnreachable, err)
	}
	if r.IP != "" {
		return netip.ParseAddr(r.IP)
	}
	return netip.ParseAddr(r.IPv6)
}

// Dial connects over the overlay of a userspace node to address,
// "host:port" with host as LookupHost takes it. network is tcp or udp
// (tcp4, tcp6, udp4 and udp6 are the same: the address decides).
func (nd *Node) Dial(ctx context.Context, network, address string) (net.Conn, error) {
	host, p, err := net.SplitHostPort(address)
	if err != nil {
		return nil, err
	}
	port, err := strconv.ParseUint(p, 10, 16)
	if err != nil {
		return nil, fmt.Errorf("port %q: %w", p, err)
	}
	switch network {
	case "tcp", "tcp4", "tcp6":
		return nd.dialTCP(ctx, host, uint16(port))
	case "udp", "udp4", "udp6":
		if nd.us == nil {
			return nil, ErrNotUserspace
		}
		a, err := nd.LookupHost(host)
		if err != nil {
			return nil, err
		}
		return nd.us.ns.DialUDP(netip.AddrPortFrom(a, uint16(port)))
	}
	return nil, fmt.Errorf("dial %s: network not tcp or udp", network)
}

func (nd *Node) dialTCP(ctx context.Context, host string, port uint16) (net.Conn, error) {
	if nd.us == nil {
		return nil, ErrNotUserspace
	}
	a, err := nd.LookupHost(host)
	if err != nil {
		return nil, err
	}
	return nd.us.ns.DialTCP(ctx, netip.AddrPortFrom(a, port))
}

// Listen listens for TCP on a userspace node's overlay addresses: address
// is ":port" (both of them for tcp; the IPv4 address for tcp4, the ORCHID
// for tcp6) or "ip:port" with one of the node's addresses. Connections to
// that port then go to the listener, not to localhost.
func (nd *Node) Listen(network, address string) (net.Listener, error) {
	a, err := nd.listenAddr(network, address, "tcp")
	if err != nil {
		return nil, err
	}
	return nd.us.ns.ListenTCP(a)
}

// ListenPacket opens a UDP socket on a userspace node's overlay address,
// as Listen does for TCP.
func (nd *Node) ListenPacket(network, address string) (net.PacketConn, error) {
	a, err := nd.listenAddr(network, address, "udp")
	if err != nil {
		return nil, err
	}
	return nd.us.ns.ListenUDP(a)
}

func (nd *Node) listenAddr(network, address, proto string) (netip.AddrPort, error) {
	if nd.us == nil {
		return netip.AddrPort{}, ErrNotUserspace
	}
	host, p, err := net.SplitHostPort(address)
	if err != nil {
		return netip.AddrPort{}, err
	}
	port, err := strconv.ParseUint(p, 10, 16)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("port %q: %w", p, err)
	}
	var a netip.Addr
	switch {
	case network != proto && network != proto+"4" && network != proto+"6":
		return netip.AddrPort{}, fmt.Errorf("listen %s: network not %s", network, proto)
	case host != "":
		if a, err = netip.ParseAddr(host); err != nil {
			return netip.AddrPort{}, err
		}
	case network == proto+"4":
		a = nd.addrs[0].Addr()
	case network == proto+"6":
		a = nd.addrs[1].Addr()
	default:
		a = netip.IPv6Unspecified() // dual stack: both addresses
	}
	return netip.AddrPortFrom(a, uint16(port)), nil
}

// localhost is where connections to the node's addresses are delivered.
var localhost = netip.MustParseAddr("127.0.0.1")

// forwardTCP connects a connection to the node's overlay address to the
// same port on localhost; a port nothing listens on there is reset, as it
// would be on a TUN node.
func (nd *Node) forwardTCP(r *tunnel.TCPRequest) {
	us := nd.us
	if us.addr != nil && int(r.Dst.Port()) == us.addr.(*net.TCPAddr).Port {
		// Our own SOCKS5 server: a peer would use it to reach, in our
		// name, nodes that trust us and not it.
		r.Reject()
		return
	}
	if us.tcp.Add(1) > maxForwardTCP || !us.begin() {
		us.tcp.Add(-1)
		r.Reject()
		return
	}
	defer us.tcp.Add(-1)
	defer us.wg.Done()
	var d net.Dialer
	ctx, cancel := context.WithTimeout(nd.ctx, forwardDial)
	local, err := d.DialContext(ctx, "tcp", netip.AddrPortFrom(localhost, r.Dst.Port()).String())
	cancel()
	if err != nil {
		nd.log.Debug("forward: local port", "port", r.Dst.Port(), "from", r.Src, "err", err)
		r.Reject()
		return
	}
	c, err := r.Accept()
	if err != nil {
		local.Close()
		return
	}
	stop := context.AfterFunc(nd.ctx, func() { c.Close(); local.Close() })
	defer stop()
	socks5.Join(c, local)
}

// forwardUDP relays a UDP flow to the node's overlay address to and from
// the same port on localhost, until it has been idle for udpFlowIdle.
func (nd *Node) forwardUDP(c *gonet.UDPConn, src, dst netip.AddrPort) {
	us := nd.us
	if us.udp.Add(1) > maxForwardUDP || !us.begin() {
		us.udp.Add(-1)
		c.Close()
		return
	}
	go func() {
		defer us.wg.Done()
		defer us.udp.Add(-1)
		defer c.Close()
		local, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(netip.AddrPortFrom(localhost, dst.Port())))
		if err != nil {
			nd.log.Debug("forward: local UDP port", "port", dst.Port(), "err", err)
			return
		}
		defer local.Close()
		stop := context.AfterFunc(nd.ctx, func() { c.Close(); local.Close() })
		defer stop()
		var last atomic.Int64 // unix nanoseconds of the last datagram either way
		last.Store(time.Now().UnixNano())
		done := make(chan struct{}, 2)
		pipe := func(dst, src net.Conn) {
			defer func() { done <- struct{}{} }()
			buf := make([]byte, maxUDPDatagram)
			for {
				src.SetReadDeadline(time.Now().Add(udpFlowIdle))
				n, err := src.Read(buf)
				if err != nil {
					var ne net.Error
					if errors.As(err, &ne) && ne.Timeout() && time.Since(time.Unix(0, last.Load())) < udpFlowIdle {
						continue // the other direction is busy
					}
					return
				}
				last.Store(time.Now().UnixNano())
				dst.Write(buf[:n])
			}
		}
		go pipe(local, c)
		go pipe(c, local)
		<-done
		c.Close()
		local.Close()
		<-done
	}()
}
