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

// udpExchanger is a UDP socket connected to one server, so the kernel
// drops datagrams from anyone else and reports ICMP port unreachable.
// It is closed when the context it was dialled with ends, which unblocks
// any read at once.
type udpExchanger struct {
	conn   *net.UDPConn
	local  netip.Addr  // our address on the path to the server
	detach func() bool // stops the close-on-cancel hook
}

func dialExchanger(ctx context.Context, server netip.AddrPort) (*udpExchanger, error) {
	conn, err := net.DialUDP("udp4", nil, net.UDPAddrFromAddrPort(server))
	if err != nil {
		return nil, fmt.Errorf("dial %v: %w", server, err)
	}
	local := conn.LocalAddr().(*net.UDPAddr).AddrPort().Addr().Unmap()
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
