package netsim_test

import (
	"errors"
	"fmt"
	"net"
	"syscall"
	"testing"
	"testing/synctest"
	"time"

	"golang.zx2c4.com/wireguard/conn"

	"github.com/whnet/wh/netsim"
)

// receiveAll calls fn once with a full batch of buffers and returns what it
// got, as strings, with the sources.
func receiveAll(t *testing.T, fn conn.ReceiveFunc, batch int) ([]string, []conn.Endpoint, error) {
	t.Helper()
	bufs := make([][]byte, batch)
	for i := range bufs {
		bufs[i] = make([]byte, 1500)
	}
	sizes := make([]int, batch)
	eps := make([]conn.Endpoint, batch)
	n, err := fn(bufs, sizes, eps)
	var msgs []string
	for i := range n {
		msgs = append(msgs, string(bufs[i][:sizes[i]]))
	}
	return msgs, eps[:n], err
}

// TestBind: a Bind opens a port on its host, sends a batch to a
// StdNetEndpoint, and its receive function returns what is queued in one
// batch (never more than the buffers), with StdNetEndpoint sources.
func TestBind(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := newInternet(t, netsim.Options{Latency: 10 * time.Millisecond})
		ha, hb := n.AddHost(ip("203.0.113.1")), n.AddHost(ip("203.0.113.2"))
		a, b := netsim.NewBind(ha), netsim.NewBind(hb)
		_, portA, err := a.Open(0)
		if err != nil {
			t.Fatal(err)
		}
		defer a.Close()
		fns, portB, err := b.Open(51820)
		if err != nil || portB != 51820 || len(fns) != 1 {
			t.Fatalf("Open(51820) = %d fns, port %d, %v", len(fns), portB, err)
		}
		defer b.Close()
		if a.BatchSize() != netsim.BindBatchSize {
			t.Errorf("BatchSize = %d", a.BatchSize())
		}

		ep, err := a.ParseEndpoint("203.0.113.2:51820")
		if err != nil {
			t.Fatal(err)
		}
		var batch [][]byte
		for i := range 5 {
			batch = append(batch, fmt.Appendf(nil, "packet %d", i))
		}
		if err := a.Send(batch, ep); err != nil {
			t.Fatal(err)
		}
		time.Sleep(20 * time.Millisecond) // all five are queued
		msgs, eps, err := receiveAll(t, fns[0], 3)
		if err != nil || len(msgs) != 3 || msgs[0] != "packet 0" || msgs[2] != "packet 2" {
			t.Fatalf("first receive: %q, %v", msgs, err)
		}
		src, ok := eps[0].(*conn.StdNetEndpoint)
		if !ok || src.AddrPort != ipport(fmt.Sprintf("203.0.113.1:%d", portA)) {
			t.Errorf("source %#v, want a StdNetEndpoint at 203.0.113.1:%d", eps[0], portA)
		}
		msgs, _, err = receiveAll(t, fns[0], 16)
		if err != nil || len(msgs) != 2 || msgs[1] != "packet 4" {
			t.Fatalf("second receive: %q, %v", msgs, err)
		}
	})
}

// TestBindLifecycle: Open twice fails, Close makes the receive function
// return net.ErrClosed and Send fail, and the Bind opens again on the same
// port (the device re-opens it when its port changes).
func TestBindLifecycle(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := newInternet(t, netsim.Options{})
		h := n.AddHost(ip("203.0.113.1"))
		b := netsim.NewBind(h)
		fns, port, err := b.Open(4000)
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := b.Open(4000); !errors.Is(err, conn.ErrBindAlreadyOpen) {
			t.Errorf("second Open: %v", err)
		}
		if _, err := h.ListenUDP(port); !errors.Is(err, syscall.EADDRINUSE) {
			t.Errorf("the Bind's port is free to others: %v", err)
		}
		done := make(chan error)
		go func() {
			_, _, err := receiveAll(t, fns[0], 4)
			done <- err
		}()
		synctest.Wait()
		if err := b.Close(); err != nil {
			t.Fatal(err)
		}
		if err := <-done; !errors.Is(err, net.ErrClosed) {
			t.Errorf("receive after Close: %v", err)
		}
		if err := b.Close(); err != nil {
			t.Errorf("second Close: %v", err)
		}
		ep, _ := b.ParseEndpoint("203.0.113.9:1")
		if err := b.Send([][]byte{[]byte("x")}, ep); !errors.Is(err, net.ErrClosed) {
			t.Errorf("Send on a closed Bind: %v", err)
		}
		if _, again, err := b.Open(port); err != nil || again != port {
			t.Errorf("reopen: port %d, %v", again, err)
		}
		b.Close()
	})
}

// TestBindErrors: an endpoint of another Bind is refused, a malformed one
// does not parse, and a write error (no IPv6 on an IPv4 host) is returned.
func TestBindErrors(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := newInternet(t, netsim.Options{})
		b := netsim.NewBind(n.AddHost(ip("203.0.113.1")))
		if _, _, err := b.Open(0); err != nil {
			t.Fatal(err)
		}
		defer b.Close()
		if _, err := b.ParseEndpoint("not an endpoint"); err == nil {
			t.Errorf("a malformed endpoint parsed")
		}
		if err := b.Send([][]byte{[]byte("x")}, &otherEndpoint{}); !errors.Is(err, conn.ErrWrongEndpointType) {
			t.Errorf("Send to a foreign endpoint: %v", err)
		}
		ep, _ := b.ParseEndpoint("[2001:db8::1]:53")
		if err := b.Send([][]byte{[]byte("x")}, ep); !errors.Is(err, syscall.ENETUNREACH) {
			t.Errorf("Send to IPv6 from an IPv4 host: %v", err)
		}
	})
}

// otherEndpoint is a conn.Endpoint that is not a StdNetEndpoint.
type otherEndpoint struct{ conn.StdNetEndpoint }

var _ conn.Endpoint = (*otherEndpoint)(nil)
