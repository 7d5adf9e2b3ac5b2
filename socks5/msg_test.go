package socks5

import (
	"bytes"
	"encoding/hex"
	"errors"
	"io"
	"net"
	"net/netip"
	"strings"
	"testing"
)

func unhex(t testing.TB, s string) []byte {
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

var requestTests = []struct {
	name string
	req  Request
	wire string
}{
	{"ipv4", Request{Cmd: CmdConnect, Addr: netip.MustParseAddr("10.9.0.3"), Port: 80}, "05 01 00 01 0a090003 0050"},
	{"ipv6", Request{Cmd: CmdConnect, Addr: netip.MustParseAddr("2001:20::1"), Port: 443}, "05 01 00 04 20010020000000000000000000000001 01bb"},
	{"domain", Request{Cmd: CmdConnect, Host: "web.home", Port: 8080}, "05 01 00 03 08 7765622e686f6d65 1f90"},
	{"bind", Request{Cmd: CmdBind, Addr: netip.MustParseAddr("1.2.3.4"), Port: 1}, "05 02 00 01 01020304 0001"},
}

func TestRequestBytes(t *testing.T) {
	for _, tc := range requestTests {
		t.Run(tc.name, func(t *testing.T) {
			want := unhex(t, tc.wire)
			got, err := tc.req.AppendBinary([]byte("foo"))
			if err != nil || !bytes.Equal(got, append([]byte("foo"), want...)) {
				t.Fatalf("AppendBinary = % x, %v; want foo + % x", got, err, want)
			}
			r, n, err := ParseRequest(append(want, 0xAA)) // trailing data is not the request's
			if err != nil || n != len(want) || r != tc.req {
				t.Fatalf("ParseRequest = %+v, %d, %v", r, n, err)
			}
			for i := range want {
				if _, _, err := ParseRequest(want[:i]); !errors.Is(err, ErrShort) {
					t.Errorf("ParseRequest of %d of %d bytes: %v, want ErrShort", i, len(want), err)
				}
			}
		})
	}
}

func TestParseRequestErrors(t *testing.T) {
	for _, tc := range []struct {
		name, wire string
		want       error
	}{
		{"socks4", "04 01 0050 01020304 00", ErrVersion},
		{"reserved", "05 01 01 01 01020304 0050", ErrMessage},
		{"atyp", "05 01 00 02 01020304 0050", ErrAddrType},
		{"empty_domain", "05 01 00 03 00 0050", ErrMessage},
		{"nul_in_domain", "05 01 00 03 03 610062 0050", ErrMessage},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, _, err := ParseRequest(unhex(t, tc.wire)); !errors.Is(err, tc.want) {
				t.Errorf("err = %v, want %v", err, tc.want)
			}
		})
	}
}

func TestParseGreeting(t *testing.T) {
	m, n, err := ParseGreeting(unhex(t, "05 02 00 02 ff"))
	if err != nil || n != 4 || !bytes.Equal(m, []byte{0, 2}) {
		t.Errorf("ParseGreeting = % x, %d, %v", m, n, err)
	}
	for _, tc := range []struct {
		wire string
		want error
	}{{"05", ErrShort}, {"05 02 00", ErrShort}, {"05 00", ErrMessage}, {"04 01 00", ErrVersion}} {
		if _, _, err := ParseGreeting(unhex(t, tc.wire)); !errors.Is(err, tc.want) {
			t.Errorf("ParseGreeting(%s) = %v, want %v", tc.wire, err, tc.want)
		}
	}
}

func TestReplyBytes(t *testing.T) {
	for _, tc := range []struct {
		rep  byte
		bnd  netip.AddrPort
		wire string
	}{
		{RepSucceeded, netip.MustParseAddrPort("10.9.0.2:40000"), "05 00 00 01 0a090002 9c40"},
		{RepSucceeded, netip.MustParseAddrPort("[2001:20::2]:1"), "05 00 00 04 20010020000000000000000000000002 0001"},
		{RepConnectionRefused, netip.AddrPort{}, "05 05 00 01 00000000 0000"},
	} {
		if got, want := appendReply([]byte("x"), tc.rep, tc.bnd), append([]byte("x"), unhex(t, tc.wire)...); !bytes.Equal(got, want) {
			t.Errorf("reply %d %v = % x, want % x", tc.rep, tc.bnd, got, want)
		}
	}
}

// FuzzParseRequest: any bytes parse or fail without panic; a parsed
// request re-encodes to exactly the bytes it was parsed from, and parses
// back to itself.
func FuzzParseRequest(f *testing.F) {
	for _, tc := range requestTests {
		f.Add(unhex(f, tc.wire))
	}
	f.Add([]byte{})
	f.Add([]byte{0xff})
	f.Add([]byte{5, 1, 0, 3, 255})
	f.Fuzz(func(t *testing.T, b []byte) {
		r, n, err := ParseRequest(b)
		if err != nil {
			if n != 0 {
				t.Fatalf("error %v with length %d", err, n)
			}
			return
		}
		if n > len(b) || n > maxRequest {
			t.Fatalf("length %d of %d bytes", n, len(b))
		}
		enc, err := r.AppendBinary(nil)
		if err != nil {
			t.Fatalf("AppendBinary(%+v): %v", r, err)
		}
		if !bytes.Equal(enc, b[:n]) {
			t.Fatalf("re-encoded % x, parsed from % x", enc, b[:n])
		}
		r2, n2, err := ParseRequest(enc)
		if err != nil || n2 != n || r2 != r {
			t.Fatalf("round trip: %+v %d %v, want %+v", r2, n2, err, r)
		}
	})
}

// FuzzParseGreeting: no panic, and the methods lie within the greeting.
func FuzzParseGreeting(f *testing.F) {
	f.Add([]byte{5, 1, 0})
	f.Add([]byte{5, 2, 0, 2})
	f.Add([]byte{})
	f.Add([]byte{0xff})
	f.Fuzz(func(t *testing.T, b []byte) {
		m, n, err := ParseGreeting(b)
		if err != nil {
			return
		}
		if n > len(b) || n != 2+len(m) || int(b[1]) != len(m) || !bytes.Equal(m, b[2:n]) {
			t.Fatalf("greeting % x: methods % x, length %d", b, m, n)
		}
	})
}

// fakeConn reads from r and records what is written.
type fakeConn struct {
	net.Conn
	r io.Reader
	w bytes.Buffer
}

func (c *fakeConn) Read(b []byte) (int, error)  { return c.r.Read(b) }
func (c *fakeConn) Write(b []byte) (int, error) { return c.w.Write(b) }

// FuzzHandshake: the server's reading of a greeting and a request from
// any bytes never panics and never reads past the request: a CONNECT it
// accepts is the one ParseRequest finds after the greeting, and whatever
// follows is left for the connection. Every answer is a method choice
// (2 bytes), then at most one reply.
func FuzzHandshake(f *testing.F) {
	for _, tc := range requestTests {
		f.Add(append([]byte{5, 1, 0}, unhex(f, tc.wire)...))
	}
	f.Add([]byte{5, 2, 2, 0, 5, 1, 0, 3, 1, 'x', 0, 80, 'd', 'a', 't', 'a'})
	f.Add([]byte{5, 1, 2})
	f.Add([]byte{4, 1})
	f.Fuzz(func(t *testing.T, b []byte) {
		c := &fakeConn{r: bytes.NewReader(b)}
		req, err := handshake(c)
		out := c.w.Bytes()
		if len(out) > 2+22 {
			t.Fatalf("answered % x", out)
		}
		if err != nil {
			return
		}
		_, g, _ := ParseGreeting(b)
		want, n, perr := ParseRequest(b[g:])
		if perr != nil || want != req || req.Cmd != CmdConnect {
			t.Fatalf("accepted %+v, ParseRequest after the greeting: %+v, %v", req, want, perr)
		}
		if rest, _ := io.ReadAll(c.r); !bytes.Equal(rest, b[g+n:]) {
			t.Fatalf("left % x, want % x", rest, b[g+n:])
		}
		if !bytes.Equal(out, []byte{Version, MethodNoAuth}) {
			t.Fatalf("answered % x before the reply", out)
		}
	})
}
