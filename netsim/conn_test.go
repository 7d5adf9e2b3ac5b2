package netsim_test

import (
	"errors"
	"net"
	"net/netip"
	"os"
	"syscall"
	"testing"
	"testing/synctest"
	"time"

	"github.com/whnet/wh/netsim"
)

// pair returns two public hosts' conns on port 7.
func pair(t *testing.T, opt netsim.Options) (n *netsim.Internet, a, b *netsim.Conn) {
	t.Helper()
	n = newInternet(t, opt)
	a = listen(t, n.AddHost(ip("203.0.113.1")), 7)
	b = listen(t, n.AddHost(ip("203.0.113.2")), 7)
	return n, a, b
}

func checkTimeout(t *testing.T, err error) {
	t.Helper()
	var ne net.Error
	if !errors.Is(err, os.ErrDeadlineExceeded) || !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("got %v, want a net.Error timeout wrapping os.ErrDeadlineExceeded", err)
	}
}

func TestReadDeadline(t *testing.T) {
	buf := make([]byte, 100)
	t.Run("times_out", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			_, a, _ := pair(t, netsim.Options{})
			start := time.Now()
			a.SetReadDeadline(start.Add(2 * time.Second))
			_, _, err := a.ReadFromUDPAddrPort(buf)
			checkTimeout(t, err)
			if d := time.Since(start); d != 2*time.Second {
				t.Errorf("read returned after %v, want 2s", d)
			}
			_, _, err = a.ReadFromUDPAddrPort(buf) // stays expired
			checkTimeout(t, err)
		})
	})
	t.Run("in_the_past", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			_, a, b := pair(t, netsim.Options{})
			send(t, b, a.LocalAddrPort(), "queued")
			a.SetReadDeadline(time.Now().Add(-time.Second))
			_, _, err := a.ReadFromUDPAddrPort(buf) // fails although a packet waits, as a socket does
			checkTimeout(t, err)
			a.SetReadDeadline(time.Time{})
			if msg, _ := recv(t, a); msg != "queued" {
				t.Errorf("after clearing the deadline got %q, want queued", msg)
			}
		})
	})
	t.Run("packet_before_deadline", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			_, a, b := pair(t, netsim.Options{Latency: 100 * time.Millisecond})
			start := time.Now()
			send(t, b, a.LocalAddrPort(), "x")
			a.SetReadDeadline(start.Add(time.Second))
			if _, _, err := a.ReadFromUDPAddrPort(buf); err != nil {
				t.Fatal(err)
			}
			if d := time.Since(start); d != 100*time.Millisecond {
				t.Errorf("read returned after %v, want 100ms", d)
			}
		})
	})
	for _, tc := range []struct {
		name   string
		change time.Duration // new deadline, from the start
	}{
		{name: "extended_while_blocked", change: 3 * time.Second},
		{name: "shortened_while_blocked", change: 1500 * time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				_, a, _ := pair(t, netsim.Options{})
				start := time.Now()
				a.SetReadDeadline(start.Add(2 * time.Second))
				done := make(chan error)
				go func() {
					_, _, err := a.ReadFromUDPAddrPort(make([]byte, 10))
					done <- err
				}()
				time.Sleep(time.Second)
				a.SetReadDeadline(start.Add(tc.change))
				checkTimeout(t, <-done)
				if d := time.Since(start); d != tc.change {
					t.Errorf("read returned after %v, want %v", d, tc.change)
				}
			})
		})
	}
}

func TestWriteDeadline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		_, a, b := pair(t, netsim.Options{})
		a.SetWriteDeadline(time.Now().Add(time.Second))
		send(t, a, b.LocalAddrPort(), "before")
		time.Sleep(time.Second)
		_, err := a.WriteToUDPAddrPort([]byte("after"), b.LocalAddrPort())
		checkTimeout(t, err)
		a.SetDeadline(time.Time{})
		send(t, a, b.LocalAddrPort(), "cleared")
	})
}

func TestClose(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n, a, b := pair(t, netsim.Options{})
		done := make(chan error)
		go func() {
			_, _, err := a.ReadFromUDPAddrPort(make([]byte, 10))
			done <- err
		}()
		synctest.Wait() // the reader is blocked
		if err := a.Close(); err != nil {
			t.Fatal(err)
		}
		if err := <-done; !errors.Is(err, net.ErrClosed) {
			t.Errorf("blocked read after Close: %v, want net.ErrClosed", err)
		}
		if _, _, err := a.ReadFromUDPAddrPort(make([]byte, 10)); !errors.Is(err, net.ErrClosed) {
			t.Errorf("read after Close: %v, want net.ErrClosed", err)
		}
		if _, err := a.WriteToUDPAddrPort([]byte("x"), b.LocalAddrPort()); !errors.Is(err, net.ErrClosed) {
			t.Errorf("write after Close: %v, want net.ErrClosed", err)
		}
		if err := a.Close(); !errors.Is(err, net.ErrClosed) {
			t.Errorf("second Close: %v, want net.ErrClosed", err)
		}
		before := n.Stats().Unreachable
		send(t, b, a.LocalAddrPort(), "to a closed port")
		if got := n.Stats().Unreachable - before; got != 1 {
			t.Errorf("Unreachable grew by %d, want 1", got)
		}
	})
}

// TestCloseInFlight checks that a packet in flight is delivered to the
// conn open on its port when it arrives, not when it was sent.
func TestCloseInFlight(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := newInternet(t, netsim.Options{Latency: time.Second})
		ha := n.AddHost(ip("203.0.113.1"))
		a := listen(t, ha, 7)
		b := listen(t, n.AddHost(ip("203.0.113.2")), 7)
		send(t, b, a.LocalAddrPort(), "one")
		a.Close()
		time.Sleep(2 * time.Second)
		if s := n.Stats(); s.Unreachable != 1 {
			t.Errorf("stats %+v, want the packet to the closed port unreachable", s)
		}
		send(t, b, a.LocalAddrPort(), "two")
		time.Sleep(500 * time.Millisecond)
		a2 := listen(t, ha, 7)
		if msg, _ := recv(t, a2); msg != "two" {
			t.Errorf("reopened conn got %q, want two", msg)
		}
	})
}

func TestListenUDP(t *testing.T) {
	n := netsim.New(netsim.Options{Seed: 9})
	h := n.AddHost(ip("203.0.113.1"), ip("2001:db8::1"))
	c := listen(t, h, 4000)
	if got, want := c.LocalAddrPort(), ipport("203.0.113.1:4000"); got != want {
		t.Errorf("LocalAddrPort %v, want %v", got, want)
	}
	if got, want := c.LocalAddr().String(), "203.0.113.1:4000"; got != want {
		t.Errorf("LocalAddr %v, want %v", got, want)
	}
	_, err := h.ListenUDP(4000)
	if !errors.Is(err, syscall.EADDRINUSE) {
		t.Errorf("second listen on 4000: %v, want EADDRINUSE", err)
	}
	c.Close()
	listen(t, h, 4000) // free again

	seen := map[uint16]bool{4000: true}
	for range 200 {
		p := listen(t, h, 0).LocalAddrPort().Port()
		if p < 32768 || p > 60999 || seen[p] {
			t.Fatalf("ephemeral port %d: out of range or reused", p)
		}
		seen[p] = true
	}
}

func TestWriteErrors(t *testing.T) {
	n := netsim.New(netsim.Options{})
	v4 := listen(t, n.AddHost(ip("203.0.113.1")), 7)
	tests := []struct {
		name string
		to   netip.AddrPort
		size int
		want error
	}{
		{name: "no_ipv6_address", to: ipport("[2001:db8::2]:7"), size: 1, want: syscall.ENETUNREACH},
		{name: "port_zero", to: ipport("203.0.113.2:0"), size: 1, want: syscall.EINVAL},
		{name: "unspecified", to: ipport("0.0.0.0:7"), size: 1, want: syscall.EINVAL},
		{name: "invalid", to: netip.AddrPort{}, size: 1, want: syscall.EINVAL},
		{name: "too_long", to: ipport("203.0.113.2:7"), size: 65508, want: syscall.EMSGSIZE},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := v4.WriteToUDPAddrPort(make([]byte, tc.size), tc.to); !errors.Is(err, tc.want) {
				t.Errorf("got %v, want %v", err, tc.want)
			}
		})
	}
	if s := n.Stats(); s.Sent != 0 {
		t.Errorf("failed writes counted as sent: %+v", s)
	}
}

// TestPacketConn uses a Conn only through net.PacketConn.
func TestPacketConn(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		_, a, b := pair(t, netsim.Options{})
		var pa, pb net.PacketConn = a, b
		if _, err := pa.WriteTo([]byte("hello"), pb.LocalAddr()); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 3) // short: the datagram is truncated
		nr, from, err := pb.ReadFrom(buf)
		if err != nil {
			t.Fatal(err)
		}
		if string(buf[:nr]) != "hel" || from.String() != "203.0.113.1:7" {
			t.Errorf("got %q from %v, want hel from 203.0.113.1:7", buf[:nr], from)
		}
		if _, err := pa.WriteTo([]byte("x"), &net.TCPAddr{}); !errors.Is(err, syscall.EINVAL) {
			t.Errorf("WriteTo a TCP address: %v, want EINVAL", err)
		}
	})
}

// TestCopyOnSend checks that the sender may reuse its buffer at once.
func TestCopyOnSend(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		_, a, b := pair(t, netsim.Options{Latency: time.Millisecond})
		buf := []byte("first")
		a.WriteToUDPAddrPort(buf, b.LocalAddrPort())
		copy(buf, "XXXXX")
		if msg, _ := recv(t, b); msg != "first" {
			t.Errorf("got %q, want first", msg)
		}
	})
}

func TestQueueOverflow(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n, a, b := pair(t, netsim.Options{QueueLen: 8})
		for range 10 {
			send(t, a, b.LocalAddrPort(), "x")
		}
		if s := n.Stats(); s.Delivered != 8 || s.Overflow != 2 {
			t.Errorf("stats %+v, want 8 delivered and 2 overflowed", s)
		}
		for range 8 {
			recv(t, b)
		}
		quiet(t, b)
	})
}

func TestKill(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := newInternet(t, netsim.Options{Latency: time.Second})
		ha := n.AddHost(ip("203.0.113.1"))
		a := listen(t, ha, 7)
		b := listen(t, n.AddHost(ip("203.0.113.2")), 7)

		send(t, b, a.LocalAddrPort(), "in flight")
		time.Sleep(500 * time.Millisecond)
		ha.Kill()
		quiet(t, a)
		send(t, a, b.LocalAddrPort(), "from the dead")
		quiet(t, b)
		if s := checkAccounted(t, n); s.Unreachable != 2 {
			t.Errorf("stats %+v, want 2 unreachable", s)
		}

		ha.Revive()
		send(t, b, a.LocalAddrPort(), "back")
		if msg, _ := recv(t, a); msg != "back" {
			t.Errorf("got %q, want back", msg)
		}
	})
}

// TestIPv6 checks that IPv6 reaches a host behind a NAT without
// translation, and that IPv4-mapped destinations are IPv4.
func TestIPv6(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := newInternet(t, netsim.Options{})
		pub := listen(t, n.AddHost(ip("203.0.113.1"), ip("2001:db8::1")), 7)
		r := n.AddNAT(netsim.Symmetric, ip("198.51.100.1"), prefix("192.168.1.0/24"))
		h := listen(t, r.AddHost(ip("192.168.1.10"), ip("2001:db8:1::10")), 4000)

		send(t, pub, ipport("[2001:db8:1::10]:4000"), "unsolicited v6")
		if msg, from := recv(t, h); from != ipport("[2001:db8::1]:7") {
			t.Errorf("got %q from %v, want it from [2001:db8::1]:7", msg, from)
		}
		send(t, h, ipport("[2001:db8::1]:7"), "v6 out")
		if _, from := recv(t, pub); from != ipport("[2001:db8:1::10]:4000") {
			t.Errorf("v6 source %v, want [2001:db8:1::10]:4000", from)
		}
		send(t, h, ipport("[::ffff:203.0.113.1]:7"), "mapped")
		if _, from := recv(t, pub); from.Addr() != ip("198.51.100.1") {
			t.Errorf("v4-mapped destination: source %v, want the NAT's address", from)
		}
	})
}
