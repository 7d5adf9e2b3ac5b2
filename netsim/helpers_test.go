package netsim_test

import (
	"errors"
	"log/slog"
	"net/netip"
	"os"
	"testing"
	"time"

	"github.com/whnet/wh/netsim"
)

var (
	ip     = netip.MustParseAddr
	ipport = netip.MustParseAddrPort
	prefix = netip.MustParsePrefix
)

// newInternet returns an Internet logging to the test's output.
func newInternet(t *testing.T, opt netsim.Options) *netsim.Internet {
	t.Helper()
	opt.Logger = slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
	return netsim.New(opt)
}

// listen opens a conn on h and closes it when the test ends.
func listen(t *testing.T, h *netsim.Host, port uint16) *netsim.Conn {
	t.Helper()
	c, err := h.ListenUDP(port)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func send(t *testing.T, c *netsim.Conn, to netip.AddrPort, msg string) {
	t.Helper()
	if _, err := c.WriteToUDPAddrPort([]byte(msg), to); err != nil {
		t.Fatalf("send %q to %v: %v", msg, to, err)
	}
}

// waitFor is how long recv and quiet wait, in fake time under synctest.
const waitFor = 5 * time.Second

// recv returns the next packet on c, failing the test if none comes within
// waitFor.
func recv(t *testing.T, c *netsim.Conn) (string, netip.AddrPort) {
	t.Helper()
	msg, from, ok := tryRecv(t, c, waitFor)
	if !ok {
		t.Fatalf("%v: no packet within %v", c.LocalAddrPort(), waitFor)
	}
	return msg, from
}

// tryRecv reads one packet with a deadline of d from now.
func tryRecv(t *testing.T, c *netsim.Conn, d time.Duration) (string, netip.AddrPort, bool) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(d))
	defer c.SetReadDeadline(time.Time{})
	b := make([]byte, 2048)
	n, from, err := c.ReadFromUDPAddrPort(b)
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return "", netip.AddrPort{}, false
	}
	if err != nil {
		t.Fatalf("%v: read: %v", c.LocalAddrPort(), err)
	}
	return string(b[:n]), from, true
}

// quiet fails the test if a packet arrives on c within waitFor.
func quiet(t *testing.T, c *netsim.Conn) {
	t.Helper()
	if msg, from, ok := tryRecv(t, c, waitFor); ok {
		t.Fatalf("%v: unexpected packet %q from %v", c.LocalAddrPort(), msg, from)
	}
}

// checkAccounted fails unless every packet sent is counted once.
func checkAccounted(t *testing.T, n *netsim.Internet) netsim.Stats {
	t.Helper()
	s := n.Stats()
	if sum := s.Delivered + s.Lost + s.Filtered + s.Overflow + s.Unreachable; sum != s.Sent {
		t.Errorf("stats %+v: outcomes add up to %d, want Sent", s, sum)
	}
	return s
}
