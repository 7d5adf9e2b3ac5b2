package resolver

import (
	"errors"
	"fmt"
	"hash/fnv"
	"net"
	"net/netip"
	"sync"
	"syscall"

	"github.com/miekg/dns"
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
func Listen(h *Handler, addrs []netip.AddrPort) (*Server, error) {
	mux := dns.NewServeMux()
	mux.Handle(".", h)
	s := &Server{}
	for _, ap := range addrs {
		pc, ln, err := listenBoth(ap)
		if err != nil {
			s.Close()
			return nil, err
		}
		s.addrs = append(s.addrs, pc.LocalAddr().(*net.UDPAddr).AddrPort())
		udp := &dns.Server{PacketConn: packetConn(pc, ap), Handler: mux, UDPSize: dns.DefaultMsgSize}
		tcp := &dns.Server{Listener: ln, Handler: mux}
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
