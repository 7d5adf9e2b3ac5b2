package portmap

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"syscall"
	"time"
)

// Retransmission of NAT-PMP and PCP requests: RFC 6886 §3.1 starts at
// 250 ms and doubles. We stop after three tries (1.75 s in all): a gateway
// on the LAN answers in milliseconds or not at all, and discovery runs
// again later anyway.
const (
	retransmitFirst = 250 * time.Millisecond
	retransmitTries = 3
	maxUDPResponse  = 1100 // PCP's maximum message size (RFC 6887 §7)
)

// datagramConn is a UDP socket connected to one server, so the kernel
// drops datagrams from anyone else and reports ICMP port unreachable: a
// *net.UDPConn from net.DialUDP, or an in-memory one in tests.
type datagramConn interface {
	Read(b []byte) (int, error)
	Write(b []byte) (int, error)
	SetReadDeadline(t time.Time) error
	Close() error
}

// dialFunc opens a datagramConn to server and returns our address on the
// path to it.
type dialFunc func(server netip.AddrPort) (datagramConn, netip.Addr, error)

// dialUDP is the dialFunc of real sockets.
func dialUDP(server netip.AddrPort) (datagramConn, netip.Addr, error) {
	conn, err := net.DialUDP("udp4", nil, net.UDPAddrFromAddrPort(server))
	if err != nil {
		return nil, netip.Addr{}, err
	}
	return conn, conn.LocalAddr().(*net.UDPAddr).AddrPort().Addr().Unmap(), nil
}

// udpExchanger is a datagramConn closed when the context it was dialled
// with ends, which unblocks any read at once.
type udpExchanger struct {
	conn   datagramConn
	local  netip.Addr  // our address on the path to the server
	detach func() bool // stops the close-on-cancel hook
}

// dialExchanger dials server with dial, or with dialUDP if dial is nil.
func dialExchanger(ctx context.Context, dial dialFunc, server netip.AddrPort) (*udpExchanger, error) {
	if dial == nil {
		dial = dialUDP
	}
	conn, local, err := dial(server)
	if err != nil {
		return nil, fmt.Errorf("dial %v: %w", server, err)
	}
	e := &udpExchanger{conn: conn, local: local}
	e.detach = context.AfterFunc(ctx, func() { conn.Close() })
	return e, nil
}

func (e *udpExchanger) Close() error {
	e.detach()
	return e.conn.Close()
}

// exchange sends req and returns the first datagram that accept takes,
// sending req again when no answer came in time. accept returns ok=false
// to skip a datagram (a stale or unrelated answer), or an error to stop.
func exchange[T any](ctx context.Context, e *udpExchanger, req []byte, accept func([]byte) (v T, ok bool, err error)) (T, error) {
	var zero T
	buf := make([]byte, maxUDPResponse)
	wait := retransmitFirst
	for range retransmitTries {
		if _, err := e.conn.Write(req); err != nil {
			return zero, udpError(ctx, err)
		}
		deadline := time.Now().Add(wait)
		if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
			deadline = d
		}
		if err := e.conn.SetReadDeadline(deadline); err != nil {
			return zero, udpError(ctx, err)
		}
		for {
			n, err := e.conn.Read(buf)
			if err != nil {
				var nerr net.Error
				if !errors.As(err, &nerr) || !nerr.Timeout() || ctx.Err() != nil {
					return zero, udpError(ctx, err)
				}
				if d, ok := ctx.Deadline(); ok && !time.Now().Before(d) {
					return zero, context.DeadlineExceeded // the timer may not have fired yet
				}
				break
			}
			v, ok, err := accept(buf[:n])
			if err != nil {
				return zero, err
			}
			if ok {
				return v, nil
			}
		}
		wait *= 2
	}
	return zero, errNoAnswer
}

// udpError names what went wrong: the context ended, nothing listens on
// the server's port, or some other socket error.
func udpError(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if errors.Is(err, syscall.ECONNREFUSED) {
		return errNoServer
	}
	return err
}
