package node

import (
	"context"
	"errors"
	"io"
	"net"
	"net/netip"
	"strconv"
	"syscall"
	"testing"
	"time"

	"golang.org/x/net/proxy"

	"github.com/whnet/wh/orchid"
	"github.com/whnet/wh/socks5"
)

// userspaceOpts makes a node userspace, with a SOCKS5 server on a free
// loopback port, forwarding to localhost.
func userspaceOpts(o *Options) {
	o.Userspace, o.SOCKS5, o.ForwardLocal = true, "127.0.0.1:0", true
}

// retry calls f until it succeeds or 15 s have passed (paths take a moment
// to form), and returns its last error.
func retry(f func() error) error {
	deadline := time.Now().Add(15 * time.Second)
	for {
		err := f()
		if err == nil || time.Now().After(deadline) {
			return err
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestUserspaceSOCKS5: a program on a userspace node reaches a peer's TCP
// server by hostname through the node's SOCKS5 server, with a SOCKS5
// client that is not ours; names outside the network and addresses
// outside the overlay are refused; the library's Dial reaches it too.
func TestUserspaceSOCKS5(t *testing.T) {
	tn := newTestNet(t, "boot", "a", "b", "c")
	n := tn.config("a", "b")
	tn.start("boot", n)
	a := tn.startWith("a", n, userspaceOpts)
	tn.start("b", n)
	tn.echo("b")

	if st := a.Status(false); !st.Userspace || st.SOCKS5 != a.SOCKS5Addr().String() || st.DNS != "none" {
		t.Errorf("status: userspace %v, socks5 %q, dns %q", st.Userspace, st.SOCKS5, st.DNS)
	}
	d, err := proxy.SOCKS5("tcp", a.SOCKS5Addr().String(), nil, proxy.Direct)
	if err != nil {
		t.Fatal(err)
	}
	for _, host := range []string{"b", "b.t", "10.9.0.3", orchid.Addr(tn.keys["b"].Public(), "test").String()} {
		var c net.Conn
		if err := retry(func() (err error) { c, err = d.Dial("tcp", net.JoinHostPort(host, "7")); return }); err != nil {
			t.Fatalf("socks5 → %s:7: %v", host, err)
		}
		roundTrip(t, c, "hello through socks5 to "+host)
		c.Close()
	}
	// Half-close passes through: the echo ends when our side is done.
	c, err := d.Dial("tcp", "b:7")
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(10 * time.Second))
	c.Write([]byte("and then EOF"))
	c.(interface{ CloseWrite() error }).CloseWrite()
	if got, err := io.ReadAll(c); err != nil || string(got) != "and then EOF" {
		t.Errorf("after half-close: %q, %v", got, err)
	}
	c.Close()
	for _, dst := range []string{"nosuchhost:7", "192.0.2.1:7", "10.9.0.3:9"} {
		if c, err := d.Dial("tcp", dst); err == nil {
			c.Close()
			t.Errorf("socks5 → %s succeeded", dst)
		}
	}

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, host := range []string{"b", tn.keys["b"].Public().String()} {
		c, err := a.Dial(ctx, "tcp", net.JoinHostPort(host, "7"))
		if err != nil {
			t.Fatalf("Dial %s: %v", host, err)
		}
		roundTrip(t, c, "hello from the library")
		c.Close()
	}
	if _, err := a.Dial(ctx, "tcp", net.JoinHostPort(tn.keys["c"].Public().String(), "7")); !errors.Is(err, socks5.ErrHostUnreachable) {
		t.Errorf("Dial of an untrusted key: %v, want ErrHostUnreachable", err)
	}
	if _, err := a.Dial(ctx, "tcp", "10.9.0.3:9"); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("Dial of a closed port: %v, want connection refused", err)
	}
	if _, err := tn.nodes["b"].Dial(ctx, "tcp", "a:7"); !errors.Is(err, ErrNotUserspace) {
		t.Errorf("Dial on a TUN node: %v, want ErrNotUserspace", err)
	}
}

// localEcho serves a TCP and a UDP echo on the same free port of
// 127.0.0.1 and returns the port.
func localEcho(t *testing.T) uint16 {
	for range 20 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := ln.Addr().(*net.TCPAddr).Port
		pc, err := net.ListenPacket("udp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		if err != nil {
			ln.Close()
			continue
		}
		t.Cleanup(func() { ln.Close(); pc.Close() })
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				go func() { io.Copy(c, c); c.Close() }()
			}
		}()
		go func() {
			buf := make([]byte, 2000)
			for {
				n, from, err := pc.ReadFrom(buf)
				if err != nil {
					return
				}
				pc.WriteTo(append([]byte("udp:"), buf[:n]...), from)
			}
		}()
		return uint16(port)
	}
	t.Fatal("no port free for both TCP and UDP")
	return 0
}

// TestUserspaceForwardLocal: a peer reaches the TCP and UDP services on
// localhost of a userspace node at the node's overlay address; a port with
// nothing on localhost is refused; a port the node Listens on goes to the
// listener instead.
func TestUserspaceForwardLocal(t *testing.T) {
	tn := newTestNet(t, "boot", "a", "b")
	n := tn.config("a", "b")
	tn.start("boot", n)
	a := tn.startWith("a", n, userspaceOpts)
	tn.start("b", n)
	port := localEcho(t)
	ipA := netip.MustParseAddr("10.9.0.2")
	nb := tn.nets["b"]

	var c net.Conn
	err := retry(func() (err error) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		c, err = nb.DialContextTCPAddrPort(ctx, netip.AddrPortFrom(ipA, port))
		return
	})
	if err != nil {
		t.Fatalf("b → a's localhost TCP: %v", err)
	}
	roundTrip(t, c, "hello localhost over the overlay")
	c.(interface{ CloseWrite() error }).CloseWrite()
	if rest, err := io.ReadAll(c); err != nil || len(rest) != 0 {
		t.Errorf("after half-close: %q, %v; want EOF", rest, err)
	}
	c.Close()

	u, err := nb.DialUDPAddrPort(netip.AddrPort{}, netip.AddrPortFrom(ipA, port))
	if err != nil {
		t.Fatal(err)
	}
	defer u.Close()
	for i := range 3 {
		msg := "datagram " + strconv.Itoa(i)
		u.Write([]byte(msg))
		u.SetReadDeadline(time.Now().Add(5 * time.Second))
		buf := make([]byte, 100)
		k, err := u.Read(buf)
		if err != nil || string(buf[:k]) != "udp:"+msg {
			t.Fatalf("b → a's localhost UDP: %q, %v", buf[:k], err)
		}
	}

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// The node's own SOCKS5 port is not forwarded: a peer would reach, in
	// a's name, nodes that trust a and not it.
	socksPort := uint16(a.SOCKS5Addr().(*net.TCPAddr).Port)
	if c, err := nb.DialContextTCPAddrPort(ctx, netip.AddrPortFrom(ipA, socksPort)); err == nil {
		c.Close()
		t.Errorf("b reached a's SOCKS5 server through the overlay")
	}
	closed := freeTCPPort(t)
	if _, err := nb.DialContextTCPAddrPort(ctx, netip.AddrPortFrom(ipA, closed)); err == nil {
		t.Errorf("b → a:%d, closed on localhost, succeeded", closed)
	}

	ln, err := a.Listen("tcp", ":"+strconv.Itoa(int(port)))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Write([]byte("listener"))
			c.Close()
		}
	}()
	// On both of a's addresses.
	for _, ip := range []netip.Addr{ipA, orchid.Addr(tn.keys["a"].Public(), "test")} {
		c, err = nb.DialContextTCPAddrPort(ctx, netip.AddrPortFrom(ip, port))
		if err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(c)
		c.Close()
		if string(got) != "listener" {
			t.Errorf("%v with a Listen on the port: %q, want the listener's answer", ip, got)
		}
	}

	// ListenPacket: a datagram to the IPv4 address, answered.
	pc, err := a.ListenPacket("udp4", ":7000")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	go func() {
		buf := make([]byte, 100)
		n, from, err := pc.ReadFrom(buf)
		if err == nil {
			pc.WriteTo(append([]byte("re:"), buf[:n]...), from)
		}
	}()
	u2, err := nb.DialUDPAddrPort(netip.AddrPort{}, netip.AddrPortFrom(ipA, 7000))
	if err != nil {
		t.Fatal(err)
	}
	defer u2.Close()
	u2.Write([]byte("hi"))
	u2.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 100)
	if n, err := u2.Read(buf); err != nil || string(buf[:n]) != "re:hi" {
		t.Errorf("ListenPacket answer %q, %v", buf[:n], err)
	}
}

func freeTCPPort(t *testing.T) uint16 {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return uint16(ln.Addr().(*net.TCPAddr).Port)
}

// TestUserspaceUDPBounds: a userspace node forwards at most maxForwardUDP
// flows at once, and a flow that has been idle for udpFlowIdle ends,
// making room for the next.
func TestUserspaceUDPBounds(t *testing.T) {
	oldMax, oldIdle := maxForwardUDP, udpFlowIdle
	maxForwardUDP, udpFlowIdle = 1, 300*time.Millisecond
	t.Cleanup(func() { maxForwardUDP, udpFlowIdle = oldMax, oldIdle })

	tn := newTestNet(t, "boot", "a", "b")
	n := tn.config("a", "b")
	tn.start("boot", n)
	a := tn.startWith("a", n, userspaceOpts)
	tn.start("b", n)
	port := localEcho(t)
	dst := netip.AddrPortFrom(netip.MustParseAddr("10.9.0.2"), port)
	nb := tn.nets["b"]
	// ask sends msg and waits a second for its answer, skipping late
	// answers to earlier tries.
	ask := func(u net.Conn, msg string) error {
		u.Write([]byte(msg))
		u.SetReadDeadline(time.Now().Add(time.Second))
		buf := make([]byte, 100)
		for {
			k, err := u.Read(buf)
			if err != nil || string(buf[:k]) == "udp:"+msg {
				return err
			}
		}
	}
	first, err := nb.DialUDPAddrPort(netip.AddrPort{}, dst)
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close()
	if err := retry(func() error { return ask(first, "first") }); err != nil {
		t.Fatalf("first flow: %v", err)
	}
	// While the first flow is busy, a second one is dropped.
	second, err := nb.DialUDPAddrPort(netip.AddrPort{}, dst)
	if err != nil {
		t.Fatal(err)
	}
	defer second.Close()
	for range 3 {
		if err := ask(first, "busy"); err != nil {
			t.Fatalf("first flow: %v", err)
		}
		if err := ask(second, "second"); err == nil {
			t.Fatal("a second flow was forwarded beyond maxForwardUDP 1")
		}
	}
	// Once the first has been idle, the second gets through.
	if err := retry(func() error { return ask(second, "second") }); err != nil {
		t.Errorf("second flow after the first went idle: %v", err)
	}
	if got := a.us.udp.Load(); got != 1 {
		t.Errorf("%d flows open, want 1", got)
	}
}
