package socks5

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"syscall"
	"testing"
	"time"
)

// startServer serves s on a loopback port until the test ends.
func startServer(t *testing.T, s *Server) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s.Logger = slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
	done := make(chan error, 1)
	go func() { done <- s.Serve(ln) }()
	t.Cleanup(func() {
		s.Close()
		if err := <-done; err != ErrServerClosed {
			t.Errorf("Serve = %v, want ErrServerClosed", err)
		}
	})
	return ln.Addr().String()
}

// upperServer answers each connection with what it reads, upper-cased,
// once the client has half-closed.
func upperServer(t *testing.T) netip.AddrPort {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				b, _ := io.ReadAll(c)
				c.Write(bytes.ToUpper(b))
			}()
		}
	}()
	return netip.MustParseAddrPort(ln.Addr().String())
}

func TestServer(t *testing.T) {
	up := upperServer(t)
	var dialed []Request
	s := &Server{Dial: func(ctx context.Context, r Request) (net.Conn, error) {
		dialed = append(dialed, r)
		switch r.Host {
		case "upper.test":
			var d net.Dialer
			return d.DialContext(ctx, "tcp", up.String())
		case "closed.test":
			return nil, fmt.Errorf("dial: %w", syscall.ECONNREFUSED)
		case "nowhere.test":
			return nil, ErrHostUnreachable
		case "slow.test":
			<-ctx.Done()
			return nil, ctx.Err()
		}
		return nil, ErrNotAllowed
	}, DialTimeout: 100 * time.Millisecond}
	addr := startServer(t, s)

	exchange := func(t *testing.T, greeting, wantChoice, req string) (net.Conn, []byte) {
		t.Helper()
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		c.SetDeadline(time.Now().Add(5 * time.Second))
		c.Write(unhex(t, greeting))
		choice := make([]byte, 2)
		if _, err := io.ReadFull(c, choice); err != nil || !bytes.Equal(choice, unhex(t, wantChoice)) {
			t.Fatalf("choice % x, %v; want %s", choice, err, wantChoice)
		}
		if req == "" {
			return c, nil
		}
		c.Write(unhex(t, req))
		reply := make([]byte, 10)
		if _, err := io.ReadFull(c, reply); err != nil {
			t.Fatalf("reply: %v", err)
		}
		return c, reply
	}

	t.Run("connect_by_name_with_half_close", func(t *testing.T) {
		req, _ := Request{Cmd: CmdConnect, Host: "upper.test", Port: 80}.AppendBinary(nil)
		// The greeting, the request and the data in one write: nothing
		// the client sends early is lost.
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(5 * time.Second))
		c.Write(append(append(unhex(t, "05 02 02 00"), req...), "hello"...))
		c.(*net.TCPConn).CloseWrite()
		got, err := io.ReadAll(c)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) < 12 || !bytes.Equal(got[:2], []byte{5, 0}) || !bytes.Equal(got[2:5], []byte{5, RepSucceeded, 0}) {
			t.Fatalf("answer % x", got)
		}
		if string(got[12:]) != "HELLO" {
			t.Errorf("data %q, want HELLO", got[12:])
		}
	})
	for _, tc := range []struct {
		name string
		req  Request
		rep  byte
	}{
		{"refused", Request{Cmd: CmdConnect, Host: "closed.test", Port: 1}, RepConnectionRefused},
		{"unreachable", Request{Cmd: CmdConnect, Host: "nowhere.test", Port: 1}, RepHostUnreachable},
		{"not_allowed", Request{Cmd: CmdConnect, Addr: netip.MustParseAddr("192.0.2.1"), Port: 1}, RepNotAllowed},
		{"timeout", Request{Cmd: CmdConnect, Host: "slow.test", Port: 1}, RepTTLExpired},
		{"bind", Request{Cmd: CmdBind, Host: "upper.test", Port: 1}, RepCommandNotSupported},
		{"udp_associate", Request{Cmd: CmdUDPAssociate, Host: "upper.test", Port: 1}, RepCommandNotSupported},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, _ := tc.req.AppendBinary(nil)
			c, reply := exchange(t, "05 01 00", "05 00", fmt.Sprintf("%x", b))
			if reply[1] != tc.rep {
				t.Errorf("reply % x, want code %d", reply, tc.rep)
			}
			if n, err := c.Read(make([]byte, 1)); err != io.EOF {
				t.Errorf("after the reply: %d, %v; want EOF", n, err)
			}
		})
	}
	t.Run("address_type", func(t *testing.T) {
		_, reply := exchange(t, "05 01 00", "05 00", "05 01 00 09")
		if reply[1] != RepAddrNotSupported {
			t.Errorf("reply % x", reply)
		}
	})
	t.Run("auth_only", func(t *testing.T) {
		c, _ := exchange(t, "05 01 02", "05 ff", "")
		if _, err := c.Read(make([]byte, 1)); err != io.EOF {
			t.Errorf("after refusing: %v; want EOF", err)
		}
	})
	for _, r := range dialed {
		if r.Cmd != CmdConnect {
			t.Errorf("dialed for command %d", r.Cmd)
		}
	}
}

// TestServerMaxConns: a client beyond MaxConns is closed at once; when one
// leaves, the next is served.
func TestServerMaxConns(t *testing.T) {
	s := &Server{MaxConns: 1, Dial: func(context.Context, Request) (net.Conn, error) { return nil, ErrNotAllowed }}
	addr := startServer(t, s)
	first, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	first.Write([]byte{5, 1, 0})
	first.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadFull(first, make([]byte, 2)); err != nil {
		t.Fatal(err)
	}
	second, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer second.Close()
	second.SetDeadline(time.Now().Add(5 * time.Second))
	second.Write([]byte{5, 1, 0})
	if _, err := second.Read(make([]byte, 2)); err == nil {
		t.Error("a second client was served beyond MaxConns 1")
	}
	first.Close()
	for range 50 {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(5 * time.Second))
		c.Write([]byte{5, 1, 0})
		_, err = io.ReadFull(c, make([]byte, 2))
		c.Close()
		if err == nil {
			return
		}
		time.Sleep(20 * time.Millisecond) // the first client's slot is freed asynchronously
	}
	t.Error("no client served after the first left")
}
