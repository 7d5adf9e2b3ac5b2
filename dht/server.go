package dht

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/netip"
	"sync"
	"time"

	"github.com/whnet/wh/key"
	"github.com/whnet/wh/wire"
)

// Transport sends control messages. *wire.Conn implements it; a node
// implements it over its shared UDP port.
type Transport interface {
	Send(to key.Public, addr netip.AddrPort, m wire.Message) error
}

var _ Transport = (*wire.Conn)(nil)

// Defaults of Config.
const (
	DefaultQueryTimeout      = 500 * time.Millisecond // WireHub's PING_BACKOFF
	DefaultRetries           = 2
	DefaultKeepaliveInterval = 25 * time.Second // WireHub's NAT_TIMEOUT
	DefaultRefreshInterval   = 15 * time.Minute
	// DefaultNATExpiry is how long a NAT contact stays without a
	// keepalive: two missed keepalives and some slack.
	DefaultNATExpiry = 60 * time.Second
)

// Errors of Server.
var (
	ErrTimeout  = errors.New("dht: no answer")
	ErrClosed   = errors.New("dht: server closed")
	ErrNoAnswer = errors.New("dht: bootstrap: no contact answered")
)

// Config configures a Server. Key and Transport are required; every other
// zero value means the default written next to the field.
type Config struct {
	// Key is this node's public key, its DHT ID. Required.
	Key key.Public
	// Transport carries the server's messages. Required.
	Transport Transport
	// Table sizes the routing table and sets proof-of-work admission
	// (Namespace, Workbit). Its zero value is K=20 without proof-of-work.
	Table TableConfig
	// Alpha is the number of queries a lookup keeps in flight. Zero means
	// DefaultAlpha.
	Alpha int
	// QueryTimeout is how long a query waits for an answer before it is
	// sent again, Retries times, and then fails. Zero means
	// DefaultQueryTimeout; Retries zero means DefaultRetries and negative
	// means no retries.
	QueryTimeout time.Duration
	Retries      int
	// Boot are the contacts a bootstrap starts from (the config's `boot`
	// lines). Each needs a key and an address.
	Boot []Contact
	// NAT reports whether this node is behind a NAT, and so must keep its
	// nearest nodes alive and is never a hop for others. Nil means never.
	NAT func() bool
	// KeepaliveInterval is how often a NATed node pings its K nearest
	// direct nodes. Zero means DefaultKeepaliveInterval.
	KeepaliveInterval time.Duration
	// RefreshInterval is how long a bucket may go without a lookup before
	// Run refreshes it. Zero means DefaultRefreshInterval.
	RefreshInterval time.Duration
	// NATExpiry is how long a NAT contact stays in the table without a
	// keepalive. Zero means DefaultNATExpiry.
	NATExpiry time.Duration
	// OnPong, if set, is called with every pong's sender and the address it
	// saw our ping come from (our reflexive address), on the goroutine that
	// called Handle. It must not block.
	OnPong func(from key.Public, observed netip.AddrPort)
	// Logger receives debug logs. Nil means no logs.
	Logger *slog.Logger
}

// Server is a DHT node: it keeps a routing table, answers Ping and FindNode,
// and looks keys up. Feed it every DHT message the node receives with
// Handle; run its timers with Run.
type Server struct {
	cfg   Config // immutable after NewServer
	self  key.Public
	table *Table
	log   *slog.Logger

	ctx    context.Context // cancelled by Close; bounds internal goroutines
	cancel context.CancelFunc
	wg     sync.WaitGroup // internal goroutines: liveness checks, Run's loops

	mu        sync.Mutex
	pending   map[uint64]*call // guarded by mu; outstanding queries by TxID
	closed    bool             // guarded by mu
	announced time.Time        // guarded by mu; last self-lookup and announce
}

// call is an outstanding Ping or FindNode.
type call struct {
	to    Contact
	ping  bool              // a Ping, else a FindNode
	reply chan wire.Message // buffered 1; the first matching answer
}

// NewServer returns a server with an empty table. It starts no goroutine.
func NewServer(cfg Config) (*Server, error) {
	if cfg.Key.IsZero() {
		return nil, errors.New("dht: Config.Key is required")
	}
	if cfg.Transport == nil {
		return nil, errors.New("dht: Config.Transport is required")
	}
	cfg.Table = cfg.Table.withDefaults()
	if cfg.Alpha <= 0 {
		cfg.Alpha = DefaultAlpha
	}
	if cfg.QueryTimeout <= 0 {
		cfg.QueryTimeout = DefaultQueryTimeout
	}
	if cfg.Retries == 0 {
		cfg.Retries = DefaultRetries
	}
	cfg.Retries = max(cfg.Retries, 0)
	if cfg.KeepaliveInterval <= 0 {
		cfg.KeepaliveInterval = DefaultKeepaliveInterval
	}
	if cfg.RefreshInterval <= 0 {
		cfg.RefreshInterval = DefaultRefreshInterval
	}
	if cfg.NATExpiry <= 0 {
		cfg.NATExpiry = DefaultNATExpiry
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Server{
		cfg:     cfg,
		self:    cfg.Key,
		table:   NewTable(cfg.Key, cfg.Table),
		log:     log,
		ctx:     ctx,
		cancel:  cancel,
		pending: make(map[uint64]*call),
	}, nil
}

// Table returns the server's routing table.
func (s *Server) Table() *Table { return s.table }

func (s *Server) nat() bool { return s.cfg.NAT != nil && s.cfg.NAT() }

// Close stops Run and every query and liveness check, and waits for the
// server's goroutines. It is idempotent. Handle ignores messages after it.
func (s *Server) Close() error {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	s.cancel()
	s.wg.Wait()
	return nil
}

// Handle processes one authenticated message from the node whose key is
// from, received from src. It reports whether m is a DHT message (Ping,
// Pong, FindNode, Nodes); other messages are left to the caller. Handle
// does not block: replies are sent through the Transport, which must not
// block either.
func (s *Server) Handle(from key.Public, src netip.AddrPort, m wire.Message) bool {
	if s.ctx.Err() != nil { // closed
		return isDHT(m)
	}
	switch m := m.(type) {
	case wire.Ping:
		s.handlePing(from, src, m)
	case wire.FindNode:
		s.handleFindNode(from, src, m)
	case wire.Pong:
		if c := s.answered(m.TxID, from, src, m); c != nil && s.cfg.OnPong != nil {
			s.cfg.OnPong(from, m.Observed)
		}
	case wire.Nodes:
		s.answered(m.TxID, from, src, m)
	default:
		return false
	}
	return true
}

func isDHT(m wire.Message) bool {
	switch m.(type) {
	case wire.Ping, wire.Pong, wire.FindNode, wire.Nodes:
		return true
	}
	return false
}

// handlePing answers with the address the ping came from and admits the
// sender, as NAT if it says so: a NATed node's pings are what keeps it in
// the tables of the nodes it relies on. A ping shorter than its pong is
// not answered: src may be forged, and nothing goes to an address that has
// not proven itself larger than what came from it.
func (s *Server) handlePing(from key.Public, src netip.AddrPort, m wire.Ping) {
	pong := wire.Pong{TxID: m.TxID, Observed: src}
	if n := pongSize(src); n > m.Size {
		s.log.Debug("dht: ping too short to answer", "peer", from, "endpoint", src, "size", m.Size, "pong", n)
	} else if err := s.cfg.Transport.Send(from, src, pong); err != nil {
		s.log.Debug("dht: send pong", "peer", from, "endpoint", src, "err", err)
	}
	s.admit(Contact{Key: from, Addr: src, NAT: m.NAT})
}

// pongSize is the length of the body of a Pong that observed a.
func pongSize(a netip.AddrPort) int {
	if a.Addr().Is4() {
		return wire.MaxPongSize - 12 // 4 address bytes, not 16
	}
	return wire.MaxPongSize
}

// handleFindNode answers with the nearest contacts that fit in the
// FindNode's size: src may be forged, so the answer must not be larger than
// the query (queriers pad theirs to a full packet). NAT contacts go with
// Via = this node, which keeps them alive. The sender is not admitted,
// since a FindNode does not say whether it can be reached, but if it is
// known at this address, it is alive.
func (s *Server) handleFindNode(from key.Public, src netip.AddrPort, m wire.FindNode) {
	s.table.Heard(from, src, time.Now())
	contacts := s.table.Closest(m.Target, min(s.cfg.Table.K, wire.MaxNodes))
	reply := wire.Nodes{TxID: m.TxID, Nodes: make([]wire.NodeInfo, 0, len(contacts))}
	budget := min(m.Size, wire.MaxBodySize)
	size := 10 // type, txid, count
	for _, c := range contacts {
		if c.Key == from {
			continue
		}
		n := wire.NodeInfo{Key: c.Key, Addrs: []netip.AddrPort{c.Addr}, NAT: c.NAT}
		if c.NAT {
			n.Via = s.self
		}
		if size += n.EncodedLen(); size > budget {
			break
		}
		reply.Nodes = append(reply.Nodes, n)
	}
	if err := s.cfg.Transport.Send(from, src, reply); err != nil {
		s.log.Debug("dht: send nodes", "peer", from, "endpoint", src, "err", err)
	}
}

// answered delivers a Pong or Nodes to the call waiting for it, and admits
// the sender: it answered at the address we chose, so it is reachable. It
// returns the call, or nil for an answer nobody waits for.
func (s *Server) answered(txid uint64, from key.Public, src netip.AddrPort, m wire.Message) *call {
	s.mu.Lock()
	c := s.pending[txid]
	s.mu.Unlock()
	if c == nil || c.to.Key != from || !isAnswer(c, m) {
		return nil
	}
	// Admit first: whoever waits for the answer may look at the table.
	s.admit(Contact{Key: from, Addr: src, NAT: c.to.NAT})
	select {
	case c.reply <- m:
	default: // a duplicate answer
	}
	return c
}

// isAnswer reports whether m answers c: a Pong a Ping, Nodes a FindNode.
func isAnswer(c *call, m wire.Message) bool {
	_, isPong := m.(wire.Pong)
	return isPong == c.ping
}

// admit adds c to the table and, when its bucket is full, checks the
// liveness of the bucket's least recently seen entry in the background.
func (s *Server) admit(c Contact) {
	check, err := s.table.Add(c, time.Now())
	switch {
	case err == nil:
	case errors.Is(err, ErrBucketFull):
		if !check.Key.IsZero() {
			s.goCheck(check)
		}
	default:
		s.log.Debug("dht: contact not admitted", "peer", c.Key, "endpoint", c.Addr, "err", err)
	}
}

// goCheck pings c, the oldest entry of a full bucket: an answer keeps it
// (answered re-adds it as most recently seen), silence replaces it with
// the newest contact of the replacement cache.
func (s *Server) goCheck(c Contact) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	s.wg.Go(func() {
		if _, err := s.Ping(s.ctx, c); err != nil && !errors.Is(err, context.Canceled) {
			s.log.Debug("dht: evicting silent contact", "peer", c.Key, "endpoint", c.Addr)
		}
	})
}

// Ping pings c and returns the address c saw the ping come from. The
// table learns the outcome: an answer refreshes c, silence counts as a
// failure.
func (s *Server) Ping(ctx context.Context, c Contact) (observed netip.AddrPort, err error) {
	m, err := s.query(ctx, c, func(txid uint64) wire.Message { return wire.Ping{TxID: txid, NAT: s.nat(), Size: wire.MaxPongSize} }, true)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("dht: ping %v: %w", c, err)
	}
	return m.(wire.Pong).Observed, nil
}

// FindNode asks c for the contacts it knows nearest to target. It is the
// Server's QueryFunc. Contacts whose address family differs from c's keep
// their first address; NAT contacts are kept only with Via = c, the one
// node whose word about them is worth something.
func (s *Server) FindNode(ctx context.Context, c Contact, target key.Public) ([]Contact, error) {
	m, err := s.query(ctx, c, func(txid uint64) wire.Message {
		return wire.FindNode{TxID: txid, Target: target, Size: wire.MaxBodySize}
	}, false)
	if err != nil {
		return nil, fmt.Errorf("dht: find-node %v: %w", c, err)
	}
	nodes := m.(wire.Nodes).Nodes
	out := make([]Contact, 0, len(nodes))
	for _, n := range nodes {
		if len(n.Addrs) == 0 || n.NAT != (n.Via == c.Key) || (!n.NAT && !n.Via.IsZero()) {
			continue
		}
		addr := n.Addrs[0]
		for _, a := range n.Addrs {
			if a.Addr().Is4() == c.Addr.Addr().Is4() {
				addr = a
				break
			}
		}
		out = append(out, Contact{Key: n.Key, Addr: addr, NAT: n.NAT})
	}
	return out, nil
}

// query sends the message build makes for a fresh TxID to c, again after
// each QueryTimeout up to Retries times, and returns the answer. When it
// times out the table counts a failure for c; when ctx ends or the server
// closes it does not.
func (s *Server) query(ctx context.Context, c Contact, build func(txid uint64) wire.Message, ping bool) (wire.Message, error) {
	if !c.Addr.IsValid() {
		return nil, ErrNoAddr
	}
	cl := &call{to: c, reply: make(chan wire.Message, 1), ping: ping}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil, ErrClosed
	}
	txid := rand.Uint64()
	for s.pending[txid] != nil {
		txid = rand.Uint64()
	}
	s.pending[txid] = cl
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.pending, txid)
		s.mu.Unlock()
	}()

	m := build(txid)
	timer := time.NewTimer(s.cfg.QueryTimeout)
	defer timer.Stop()
	for attempt := 0; ; attempt++ {
		if err := s.cfg.Transport.Send(c.Key, c.Addr, m); err != nil {
			s.table.Failed(c.Key)
			return nil, err
		}
		select {
		case r := <-cl.reply:
			return r, nil
		case <-timer.C:
			if attempt == s.cfg.Retries {
				s.table.Failed(c.Key)
				return nil, ErrTimeout
			}
			timer.Reset(s.cfg.QueryTimeout)
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-s.ctx.Done():
			return nil, ErrClosed
		}
	}
}
