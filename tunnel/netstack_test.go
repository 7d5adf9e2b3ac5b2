package tunnel

import (
	"context"
	"errors"
	"io"
	"net/netip"
	"syscall"
	"testing"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip/adapters/gonet"
)

// TestNetstackForwarder: connections to ports of b that no listener holds
// go to b's Forwarder, which accepts or rejects each TCP connection and
// receives each UDP flow with its first datagram; a listener still takes
// its own port.
func TestNetstackForwarder(t *testing.T) {
	checkGoroutines(t)
	a, b := newStackNode(t, "10.9.0.1"), newStackNode(t, "10.9.0.2")
	connect(t, a, b, true)
	type flow struct {
		src, dst netip.AddrPort
		first    string
	}
	flows := make(chan flow, 4)
	b.net.SetForwarder(Forwarder{
		TCP: func(r *TCPRequest) {
			if r.Dst.Port() != 80 {
				r.Reject()
				return
			}
			c, err := r.Accept()
			if err != nil {
				return
			}
			c.Write([]byte(r.Dst.String() + " from " + r.Src.Addr().String()))
			c.Close()
		},
		UDP: func(c *gonet.UDPConn, src, dst netip.AddrPort) {
			go func() {
				defer c.Close()
				buf := make([]byte, 100)
				c.SetReadDeadline(time.Now().Add(5 * time.Second))
				n, err := c.Read(buf)
				if err != nil {
					return
				}
				c.Write([]byte("pong"))
				flows <- flow{src, dst, string(buf[:n])}
			}()
		},
	})

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := a.net.DialTCP(ctx, netip.MustParseAddrPort("10.9.0.2:80"))
	if err != nil {
		t.Fatalf("dial forwarded port: %v", err)
	}
	got, err := io.ReadAll(c)
	c.Close()
	if want := "10.9.0.2:80 from 10.9.0.1"; err != nil || string(got) != want {
		t.Errorf("forwarded TCP read %q, %v; want %q", got, err, want)
	}

	_, err = a.net.DialTCP(ctx, netip.MustParseAddrPort("10.9.0.2:81"))
	if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("dial a rejected port: %v, want connection refused", err)
	}

	// A listener (port 7) takes its port from the forwarder.
	roundTrip(t, dialEcho(t, a, b), 1000, 7)

	u, err := a.net.DialUDP(netip.MustParseAddrPort("10.9.0.2:5353"))
	if err != nil {
		t.Fatal(err)
	}
	defer u.Close()
	u.Write([]byte("ping"))
	u.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 10)
	n, err := u.Read(buf)
	if err != nil || string(buf[:n]) != "pong" {
		t.Fatalf("UDP reply %q, %v", buf[:n], err)
	}
	f := <-flows
	if f.dst != netip.MustParseAddrPort("10.9.0.2:5353") || f.src != netip.AddrPortFrom(a.ip, netip.MustParseAddrPort(u.LocalAddr().String()).Port()) || f.first != "ping" {
		t.Errorf("UDP flow %+v", f)
	}
}
