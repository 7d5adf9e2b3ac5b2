package resolver

import (
	"errors"
	"fmt"
	"hash/fnv"
	"net"
	"net/netip"
	"sync"
	"syscall"
	"time"

	"github.com/miekg/dns"

	"github.com/whnet/wh/orchid"
)

// Server is a set of running UDP and TCP DNS listeners sharing one Handler.
type Server struct {
	addrs   []netip.AddrPort
	servers []*dns.Server // each started: NotifyStartedFunc has fired
	wg      sync.WaitGroup

	closeOnce sync.Once
	closeErr  error
}

// Listen serves h over UDP and TCP on each of addrs and returns once every
// listener is running. A port of 0 picks one port for both transports of
// that address. The handler stops forwarding to the addresses listened on.
//
// Each listener answers only clients on this machine or on the overlay:
// sources that are loopback addresses, ORCHIDs, or inside a prefix of the
// interface that holds the listen address (the overlay subnet, for a node's
// overlay address). Queries from anyone else are dropped unread, so a LAN
// neighbour that routes to the overlay address (Linux accepts a packet for
// any local address on any interface) gets no answer and no forwarding.
func Listen(h *Handler, addrs []netip.AddrPort) (*Server, error) {
	mux := dns.NewServeMux()
	mux.Handle(".", h)
	s := &Server{}
	for _, ap := range addrs {
		allowed, err := allowedSources(ap.Addr())
		if err != nil {
			s.Close()
			return nil, err
		}
		pc, ln, err := listenBoth(ap)
		if err != nil {
			s.Close()
			return nil, err
		}
		s.addrs = append(s.addrs, pc.LocalAddr().(*net.UDPAddr).AddrPort())
		filter := func(r dns.Reader) dns.Reader { return sourceFilter{r.(dns.PacketConnReader), allowed} }
		udp := &dns.Server{PacketConn: packetConn(pc, ap), Handler: mux, UDPSize: dns.DefaultMsgSize, DecorateReader: filter}
		tcp := &dns.Server{Listener: ln, Handler: mux, DecorateReader: filter}
		for _, srv := range []*dns.Server{udp, tcp} {
			if err := s.start(srv); err != nil {
				pc.Close() // no-ops if serving already closed them
				ln.Close()
				s.Close()
				return nil, fmt.Errorf("serving DNS on %v: %w", ap, err)
			}
		}
	}
	for i, ap := range s.addrs {
		s.addrs[i] = netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	}
	h.exclude(s.addrs)
	return s, nil
}

// start runs srv in a goroutine and waits until it serves or fails.
func (s *Server) start(srv *dns.Server) error {
	started := make(chan struct{})
	failed := make(chan error, 1)
	srv.NotifyStartedFunc = func() { close(started) }
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		failed <- srv.ActivateAndServe()
	}()
	select {
	case <-started:
		s.servers = append(s.servers, srv)
		return nil
	case err := <-failed:
		return err
	}
}

// clientPrefixes are the sources a listener takes queries from.
type clientPrefixes []netip.Prefix

// allows reports whether a query from src is answered.
func (ps clientPrefixes) allows(src netip.Addr) bool {
	src = src.Unmap()
	if src.IsLoopback() {
		return true
	}
	for _, p := range ps {
		if p.Contains(src) {
			return true
		}
	}
	return false
}

// allowedSources returns the sources a listener on local answers: ORCHIDs,
// and the prefixes of the interface holding local (none for loopback or
// unspecified addresses: loopback sources are always allowed).
func allowedSources(local netip.Addr) (clientPrefixes, error) {
	ps := clientPrefixes{orchid.Prefix}
	local = local.Unmap()
	if local.IsLoopback() || local.IsUnspecified() {
		return ps, nil
	}
	ifaces, err := net.Interfaces()
	if err != nil {
		return nil, fmt.Errorf("listening for DNS on %v: %w", local, err)
	}
	for _, ifc := range ifaces {
		addrs, err := ifc.Addrs()
		if err != nil {
			continue
		}
		var own []netip.Prefix
		holds := false
		for _, a := range addrs {
			ipn, ok := a.(*net.IPNet)
			if !ok {
				continue
			}
			ip, _ := netip.AddrFromSlice(ipn.IP)
			bits, _ := ipn.Mask.Size()
			ip = ip.Unmap()
			holds = holds || ip == local
			own = append(own, netip.PrefixFrom(ip, bits).Masked())
		}
		if holds {
			return append(ps, own...), nil
		}
	}
	return ps, nil
}

// sourceFilter is a miekg/dns Reader that drops queries from sources its
// listener does not serve: UDP datagrams unread, TCP connections before
// their first message.
type sourceFilter struct {
	dns.PacketConnReader
	allowed clientPrefixes
}

var errSource = errors.New("query from outside the overlay and this machine")

func (f sourceFilter) ReadTCP(conn net.Conn, timeout time.Duration) ([]byte, error) {
	if !f.allowed.allows(addrOf(conn.RemoteAddr())) {
		return nil, errSource
	}
	return f.PacketConnReader.ReadTCP(conn, timeout)
}

func (f sourceFilter) ReadUDP(conn *net.UDPConn, timeout time.Duration) ([]byte, *dns.SessionUDP, error) {
	for {
		m, s, err := f.PacketConnReader.ReadUDP(conn, timeout)
		if err != nil || f.allowed.allows(addrOf(s.RemoteAddr())) {
			return m, s, err
		}
	}
}

func (f sourceFilter) ReadPacketConn(conn net.PacketConn, timeout time.Duration) ([]byte, net.Addr, error) {
	for {
		m, from, err := f.PacketConnReader.ReadPacketConn(conn, timeout)
		if err != nil || f.allowed.allows(addrOf(from)) {
			return m, from, err
		}
	}
}

// addrOf returns the IP of a UDP or TCP address, or the zero Addr.
func addrOf(a net.Addr) netip.Addr {
	switch a := a.(type) {
	case *net.UDPAddr:
		return a.AddrPort().Addr()
	case *net.TCPAddr:
		return a.AddrPort().Addr()
	}
	return netip.Addr{}
}

// plainPacketConn hides the *net.UDPConn type from miekg/dns, which then
// reads with ReadFrom instead of ReadMsgUDP with control messages. The
// control messages only serve to answer from the address a query came to,
// which is the bound address unless it is unspecified; skipping them saves
// allocations and parsing on every query.
type plainPacketConn struct{ *net.UDPConn }

// packetConn returns pc as miekg/dns should see it for bound address ap.
func packetConn(pc *net.UDPConn, ap netip.AddrPort) net.PacketConn {
	if ap.Addr().IsUnspecified() {
		return pc
	}
	return plainPacketConn{pc}
}

// listenBoth opens the UDP socket and the TCP listener of ap. With port 0
// the kernel picks the UDP port and TCP takes the same one, retrying a few
// times should another socket hold it for TCP.
func listenBoth(ap netip.AddrPort) (*net.UDPConn, *net.TCPListener, error) {
	for try := 0; ; try++ {
		pc, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(ap))
		if err != nil {
			return nil, nil, fmt.Errorf("listening for DNS on udp %v: %w", ap, err)
		}
		bound := pc.LocalAddr().(*net.UDPAddr).AddrPort()
		ln, err := net.ListenTCP("tcp", net.TCPAddrFromAddrPort(netip.AddrPortFrom(ap.Addr(), bound.Port())))
		if err == nil {
			return pc, ln, nil
		}
		pc.Close()
		if ap.Port() != 0 || try == 10 || !errors.Is(err, syscall.EADDRINUSE) {
			return nil, nil, fmt.Errorf("listening for DNS on tcp %v: %w", bound, err)
		}
	}
}

// Addrs returns the addresses served, with the ports actually bound.
func (s *Server) Addrs() []netip.AddrPort { return append([]netip.AddrPort(nil), s.addrs...) }

// Close stops every listener and waits for the queries in flight, which a
// forward can hold for a few upstream timeouts. It is idempotent.
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		var errs []error
		for _, srv := range s.servers {
			errs = append(errs, srv.Shutdown())
		}
		s.wg.Wait()
		s.closeErr = errors.Join(errs...)
	})
	return s.closeErr
}

// LoopbackAddr returns the loopback address on which the resolver of
// interface iface serves the local system: 127.119.X.Y, with X.Y the low 16
// bits of the FNV-1a hash of the name, Y never 0 or 255. 119 is 'w'. It
// keeps clear of 127.0.0.1, of systemd-resolved's 127.0.0.53 and 127.0.0.54
// and of Debian's 127.0.1.1; two interfaces collide with odds of about one
// in 64,000, which Listen reports as an address in use.
func LoopbackAddr(iface string) netip.Addr {
	f := fnv.New32a()
	f.Write([]byte(iface))
	h := f.Sum32()
	x, y := byte(h>>8), byte(h)
	if y == 0 || y == 255 {
		y ^= 1
	}
	return netip.AddrFrom4([4]byte{127, 119, x, y})
}
