package socks5

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"sync"
	"syscall"
	"time"
)

// Defaults of Server's zero fields.
const (
	DefaultMaxConns         = 256
	DefaultHandshakeTimeout = 10 * time.Second
	DefaultDialTimeout      = 30 * time.Second
)

// Errors a Dial function returns to choose the reply code; anything else
// is a general failure, except connection refused (syscall.ECONNREFUSED),
// network or host unreachable (ENETUNREACH, EHOSTUNREACH) and timeouts.
var (
	ErrNotAllowed      = errors.New("socks5: not allowed")      // 02
	ErrHostUnreachable = errors.New("socks5: host unreachable") // 04
)

// Server serves SOCKS5 CONNECT on a listener. Its fields are read by Serve
// and must not change after.
type Server struct {
	// Dial connects to host:port, host an IP address (Addr) or a name
	// (Host) as the client sent it. Required.
	Dial func(ctx context.Context, r Request) (net.Conn, error)
	// MaxConns bounds the connections served at once; more are closed
	// when accepted. Zero means DefaultMaxConns.
	MaxConns int
	// HandshakeTimeout bounds the greeting and the request. Zero means
	// DefaultHandshakeTimeout.
	HandshakeTimeout time.Duration
	// DialTimeout bounds Dial. Zero means DefaultDialTimeout.
	DialTimeout time.Duration
	// Logger; nil discards.
	Logger *slog.Logger

	mu     sync.Mutex
	ctx    context.Context // cancelled by Close: stops dials
	cancel context.CancelFunc
	lns    map[net.Listener]struct{}
	conns  map[net.Conn]struct{} // client connections being served
	closed bool
	wg     sync.WaitGroup
}

// ErrServerClosed is returned by Serve after Close.
var ErrServerClosed = errors.New("socks5: server closed")

func (s *Server) init() {
	if s.lns == nil {
		s.ctx, s.cancel = context.WithCancel(context.Background())
		s.lns = make(map[net.Listener]struct{})
		s.conns = make(map[net.Conn]struct{})
	}
}

// Serve accepts clients on ln until ln fails or the server is closed,
// which closes ln. It always returns an error.
func (s *Server) Serve(ln net.Listener) error {
	s.mu.Lock()
	s.init()
	if s.closed {
		s.mu.Unlock()
		ln.Close()
		return ErrServerClosed
	}
	s.lns[ln] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.lns, ln)
		s.mu.Unlock()
	}()
	log := s.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	maxConns := s.MaxConns
	if maxConns == 0 {
		maxConns = DefaultMaxConns
	}
	var backoff time.Duration
	for {
		c, err := ln.Accept()
		if err != nil {
			s.mu.Lock()
			closed := s.closed
			s.mu.Unlock()
			if closed {
				return ErrServerClosed
			}
			if errors.Is(err, net.ErrClosed) {
				return err
			}
			// Out of file descriptors, say: wait, and try again.
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			log.Warn("socks5: accept", "err", err, "retry_in", backoff)
			select {
			case <-s.ctx.Done():
				return ErrServerClosed
			case <-time.After(backoff):
			}
			continue
		}
		backoff = 0
		s.mu.Lock()
		if s.closed || len(s.conns) >= maxConns {
			s.mu.Unlock()
			log.Debug("socks5: too many clients, closing one", "client", c.RemoteAddr())
			c.Close()
			continue
		}
		s.conns[c] = struct{}{}
		s.wg.Add(1)
		s.mu.Unlock()
		go func() {
			defer s.wg.Done()
			s.serveConn(c, log)
			s.mu.Lock()
			delete(s.conns, c)
			s.mu.Unlock()
		}()
	}
}

// Close stops every Serve, closes every client connection (and with it
// the connection it was joined to), and waits for them.
func (s *Server) Close() error {
	s.mu.Lock()
	s.init()
	s.closed = true
	s.cancel()
	for ln := range s.lns {
		ln.Close()
	}
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
	return nil
}

func (s *Server) serveConn(c net.Conn, log *slog.Logger) {
	defer c.Close()
	hs := s.HandshakeTimeout
	if hs == 0 {
		hs = DefaultHandshakeTimeout
	}
	c.SetDeadline(time.Now().Add(hs))
	req, err := handshake(c)
	if err != nil {
		log.Debug("socks5: handshake", "client", c.RemoteAddr(), "err", err)
		return
	}
	dt := s.DialTimeout
	if dt == 0 {
		dt = DefaultDialTimeout
	}
	ctx, cancel := context.WithTimeout(s.ctx, dt)
	dst, err := s.Dial(ctx, req)
	cancel()
	if err != nil {
		log.Debug("socks5: dial", "client", c.RemoteAddr(), "dst", req.String(), "err", err)
		c.Write(appendReply(nil, replyCode(err), netip.AddrPort{}))
		return
	}
	defer dst.Close()
	bnd, _ := netip.ParseAddrPort(dst.LocalAddr().String())
	if _, err := c.Write(appendReply(nil, RepSucceeded, bnd)); err != nil {
		return
	}
	c.SetDeadline(time.Time{})
	log.Debug("socks5: connected", "client", c.RemoteAddr(), "dst", req.String())
	Join(c, dst)
}

// handshake reads the greeting, chooses no authentication, and reads the
// request. It answers every request it will not serve, and returns a
// CONNECT request for the caller to answer.
func handshake(c net.Conn) (Request, error) {
	var buf [maxRequest]byte
	// The greeting: VER NMETHODS first, then the methods.
	if _, err := io.ReadFull(c, buf[:2]); err != nil {
		return Request{}, err
	}
	methods, _, err := ParseGreeting(buf[:2])
	if errors.Is(err, ErrShort) {
		if _, err := io.ReadFull(c, buf[2:2+int(buf[1])]); err != nil {
			return Request{}, err
		}
		methods, _, err = ParseGreeting(buf[:2+int(buf[1])])
	}
	if err != nil {
		return Request{}, err
	}
	noAuth := false
	for _, m := range methods {
		noAuth = noAuth || m == MethodNoAuth
	}
	if !noAuth {
		c.Write([]byte{Version, MethodNoAcceptable})
		return Request{}, errors.New("socks5: client offers no method without authentication")
	}
	if _, err := c.Write([]byte{Version, MethodNoAuth}); err != nil {
		return Request{}, err
	}

	// The request: read exactly as much as ParseRequest asks for, so that
	// nothing the client sends after it is lost.
	have, n := 0, requestHeader
	for {
		if _, err := io.ReadFull(c, buf[have:n]); err != nil {
			return Request{}, err
		}
		have = n
		req, _, err := ParseRequest(buf[:n])
		switch {
		case errors.Is(err, ErrShort):
			n = requestLen(buf[:n])
			continue
		case errors.Is(err, ErrAddrType):
			c.Write(appendReply(nil, RepAddrNotSupported, netip.AddrPort{}))
			return req, err
		case err != nil:
			c.Write(appendReply(nil, RepGeneralFailure, netip.AddrPort{}))
			return req, err
		case req.Cmd != CmdConnect:
			c.Write(appendReply(nil, RepCommandNotSupported, netip.AddrPort{}))
			return req, errors.New("socks5: only CONNECT is served")
		}
		return req, nil
	}
}

// requestLen is the length of the request whose first bytes (at least
// the header) are b, as far as they tell.
func requestLen(b []byte) int {
	switch b[3] {
	case AtypIPv4:
		return requestHeader + 4 + 2
	case AtypIPv6:
		return requestHeader + 16 + 2
	}
	if len(b) == requestHeader {
		return requestHeader + 1
	}
	return requestHeader + 1 + int(b[4]) + 2
}

// replyCode is the reply for a Dial error.
func replyCode(err error) byte {
	var ne net.Error
	switch {
	case errors.Is(err, ErrNotAllowed):
		return RepNotAllowed
	case errors.Is(err, ErrHostUnreachable), errors.Is(err, syscall.EHOSTUNREACH):
		return RepHostUnreachable
	case errors.Is(err, syscall.ENETUNREACH):
		return RepNetworkUnreachable
	case errors.Is(err, syscall.ECONNREFUSED):
		return RepConnectionRefused
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, os.ErrDeadlineExceeded),
		errors.As(err, &ne) && ne.Timeout():
		return RepTTLExpired
	}
	return RepGeneralFailure
}

// Join copies between a and b both ways until both directions have ended:
// an EOF from one side is passed on to the other as a half-close, so that
// a client that shuts down its sending side still gets the whole answer.
// An error in either direction closes both connections. Join closes
// neither otherwise: the caller does.
func Join(a, b net.Conn) {
	done := make(chan struct{}, 2)
	pipe := func(dst, src net.Conn) {
		_, err := io.Copy(dst, src)
		if cw, ok := dst.(interface{ CloseWrite() error }); ok && err == nil {
			cw.CloseWrite()
		} else {
			// An error, or no half-close: end both directions.
			a.Close()
			b.Close()
		}
		done <- struct{}{}
	}
	go pipe(b, a)
	go pipe(a, b)
	<-done
	<-done
}
