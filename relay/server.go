package relay

import (
	"errors"
	"log/slog"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/whnet/wh/key"
	"github.com/whnet/wh/wire"
)

// Defaults of ServerConfig. A source gets 2 MiB/s (about 17 Mbit/s: a
// video call, or a bulk transfer at a useful rate) and 2000 packets/s,
// which full-size packets at that byte rate (about 1500/s) stay under while
// leaving room for small ones. The relay as a whole gives at most five
// times that, 10 MiB/s (about 84 Mbit/s) and 10000 packets/s: a volunteer's
// uplink is shared, not given away. Bursts of a quarter second at the rate
// let TCP's window opening through without queueing.
const (
	DefaultSourcePackets = 2000
	DefaultSourceBytes   = 2 << 20
	DefaultTotalPackets  = 10000
	DefaultTotalBytes    = 10 << 20
	DefaultBurst         = 250 * time.Millisecond
)

// DefaultMaxSources bounds the senders whose buckets a Server keeps, like
// the codec's peer cache (wire.DefaultCacheSize).
const DefaultMaxSources = 4096

// ServerConfig configures a Server. Send and Locate are required; every
// other zero value means the default written next to the field.
type ServerConfig struct {
	// Send seals m for the node to and sends it to addr: the node's Send
	// (dht.Transport). m may be a pointer the Server reuses once Send
	// returns: Send must not keep it or its Payload. Required.
	Send func(to key.Public, addr netip.AddrPort, m wire.Message) error
	// Locate returns the address at which this node reaches the node k
	// directly and which k has proven by an authenticated message from it:
	// the routing table's address of a contact that answered us or keeps
	// us alive. A Relay to a key Locate does not know is dropped; the
	// sender never chooses the address. Required.
	Locate func(k key.Public) (netip.AddrPort, bool)
	// PerSource limits what one sender may have relayed. Zero fields mean
	// DefaultSourcePackets, DefaultSourceBytes and DefaultBurst.
	PerSource Limit
	// Total limits everything the server relays. Zero fields mean
	// DefaultTotalPackets, DefaultTotalBytes and DefaultBurst.
	Total Limit
	// Members, if set, reports whether src and dst both belong to this
	// node's own network (trusted in its config). Their packets skip the
	// rate limits: a network's members relay for each other at the speed
	// of the machine, strangers within the limits. Nil means no members.
	Members func(src, dst key.Public) bool
	// MaxSources bounds the senders tracked at once. A new sender is
	// refused while this many have sent within their Burst. Zero means
	// DefaultMaxSources.
	MaxSources int
	// Logger receives debug logs. Nil means no logs.
	Logger *slog.Logger
}

// Server relays WireGuard packets for other nodes: it answers each Relay
// with a Relayed to the destination, at the address Locate gives, subject
// to per-source and total rate limits. It is safe for concurrent use and
// starts no goroutine.
type Server struct {
	// Constant after NewServer.
	cfg   ServerConfig
	log   *slog.Logger
	epoch time.Time // the limiters' clock counts ns since epoch
	msgs  sync.Pool // of *wire.Relayed, to send without allocating
	stats serverCounters

	mu        sync.Mutex
	sources   map[key.Public]*limiter // guarded by mu; per sender
	total     limiter                 // guarded by mu
	lastSweep int64                   // guarded by mu; clock of the last sweep of sources
}

// ServerStats counts Relay messages by outcome. Every Relay handled is
// counted in Received and then in exactly one of Forwarded and the drops.
// Bytes are UDP payload, envelope included; a Relayed is exactly as long as
// its Relay, so ForwardedBytes never exceeds ReceivedBytes.
type ServerStats struct {
	Received       uint64 // Relay messages handled
	ReceivedBytes  uint64
	Forwarded      uint64 // Relayed messages sent
	ForwardedBytes uint64

	DropInvalid    uint64 // payload empty, too large, or not a WireGuard message
	DropLoop       uint64 // destination is the sender itself
	DropSourceRate uint64 // over the sender's packet or byte rate
	DropTotalRate  uint64 // over the server's total packet or byte rate
	DropSources    uint64 // a new sender while MaxSources are active
	DropNoRoute    uint64 // destination unknown to Locate
	DropSendError  uint64 // Send failed
}

type serverCounters struct {
	received, receivedBytes, forwarded, forwardedBytes              atomic.Uint64
	invalid, loop, sourceRate, totalRate, sources, noRoute, sendErr atomic.Uint64
}

// NewServer returns a server for cfg.
func NewServer(cfg ServerConfig) (*Server, error) {
	if cfg.Send == nil || cfg.Locate == nil {
		return nil, errors.New("relay: ServerConfig.Send and Locate are required")
	}
	cfg.PerSource = cfg.PerSource.withDefaults(Limit{DefaultSourcePackets, DefaultSourceBytes, DefaultBurst})
	cfg.Total = cfg.Total.withDefaults(Limit{DefaultTotalPackets, DefaultTotalBytes, DefaultBurst})
	if cfg.MaxSources <= 0 {
		cfg.MaxSources = DefaultMaxSources
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Server{
		cfg:     cfg,
		log:     log,
		epoch:   time.Now(),
		sources: make(map[key.Public]*limiter),
	}
	s.msgs.New = func() any { return new(wire.Relayed) }
	s.total.fill(cfg.Total, 0)
	return s, nil
}

// Stats returns the server's counters.
func (s *Server) Stats() ServerStats {
	c := &s.stats
	return ServerStats{
		Received: c.received.Load(), ReceivedBytes: c.receivedBytes.Load(),
		Forwarded: c.forwarded.Load(), ForwardedBytes: c.forwardedBytes.Load(),
		DropInvalid: c.invalid.Load(), DropLoop: c.loop.Load(),
		DropSourceRate: c.sourceRate.Load(), DropTotalRate: c.totalRate.Load(),
		DropSources: c.sources.Load(), DropNoRoute: c.noRoute.Load(), DropSendError: c.sendErr.Load(),
	}
}

// Handle processes one authenticated message from the node whose key is
// from, received from src. It reports whether m is a Relay, the one
// message a Server consumes; a Relayed is for the Client, and is never
// relayed again. src plays no part: the reply goes to the destination at
// the address Locate gives, never to an address a packet names.
func (s *Server) Handle(from key.Public, src netip.AddrPort, m wire.Message) bool {
	r, ok := m.(wire.Relay)
	if !ok {
		return false
	}
	s.forward(from, r)
	return true
}

func (s *Server) forward(from key.Public, r wire.Relay) {
	addr, ok := s.Route(from, r)
	if !ok {
		return
	}
	out := s.msgs.Get().(*wire.Relayed)
	out.Src, out.Payload = from, r.Payload
	err := s.cfg.Send(r.Dst, addr, out)
	out.Payload = nil
	s.msgs.Put(out)
	if err != nil {
		s.SendFailed(r)
		s.log.Debug("relay: forward", "src", from, "dst", r.Dst, "endpoint", addr, "err", err)
	}
}

// Route checks a Relay from `from` as Handle does (size, loop, limits,
// destination) and, if it may pass, counts it as forwarded and returns the
// verified address of r.Dst. The caller then sends
// wire.Relayed{Src: from, Payload: r.Payload} to r.Dst there, perhaps in a
// batch with others, and reports failures with SendFailed.
func (s *Server) Route(from key.Public, r wire.Relay) (netip.AddrPort, bool) {
	c := &s.stats
	size := frameLen(len(r.Payload))
	c.received.Add(1)
	c.receivedBytes.Add(uint64(size))
	switch {
	case len(r.Payload) > wire.MaxRelayPayload || !isWireGuard(r.Payload):
		c.invalid.Add(1)
		return netip.AddrPort{}, false
	case r.Dst == from:
		c.loop.Add(1)
		return netip.AddrPort{}, false
	}
	if s.cfg.Members == nil || !s.cfg.Members(from, r.Dst) {
		if drop := s.admit(from, size); drop != nil {
			drop.Add(1)
			return netip.AddrPort{}, false
		}
	}
	addr, ok := s.cfg.Locate(r.Dst)
	if !ok || !addr.IsValid() {
		if n := c.noRoute.Add(1); n&(n-1) == 0 { // the 1st, 2nd, 4th, 8th...
			s.log.Debug("relay: destination unknown", "from", from.Short(8), "dst", r.Dst.Short(8), "count", n)
		}
		return netip.AddrPort{}, false
	}
	c.forwarded.Add(1)
	c.forwardedBytes.Add(uint64(size))
	return addr, true
}

// SendFailed moves a Relay that Route let through but whose Relayed could
// not be sent from the forwarded counters to the send errors.
func (s *Server) SendFailed(r wire.Relay) {
	s.stats.sendErr.Add(1)
	s.stats.forwarded.Add(^uint64(0))
	s.stats.forwardedBytes.Add(^uint64(frameLen(len(r.Payload)) - 1))
}

// admit charges a packet of size bytes to from's buckets and to the total
// ones, and returns nil if it may pass, or the counter of the reason it
// may not.
func (s *Server) admit(from key.Public, size int) *atomic.Uint64 {
	now := int64(time.Since(s.epoch))
	s.mu.Lock()
	defer s.mu.Unlock()
	b := s.sources[from]
	if b == nil {
		if len(s.sources) >= s.cfg.MaxSources && !s.sweepLocked(now) {
			return &s.stats.sources
		}
		b = new(limiter)
		b.fill(s.cfg.PerSource, now)
		s.sources[from] = b
	}
	if !b.allow(s.cfg.PerSource, now, size) {
		return &s.stats.sourceRate
	}
	if !s.total.allow(s.cfg.Total, now, size) {
		return &s.stats.totalRate
	}
	return nil
}

// sweepLocked forgets the senders whose buckets are full again and reports
// whether there is room for a new one. It scans at most once per Burst, so
// a stream of new senders while every slot is busy costs no more than that.
func (s *Server) sweepLocked(now int64) bool {
	if now-s.lastSweep >= int64(s.cfg.PerSource.Burst) {
		s.lastSweep = now
		for k, b := range s.sources {
			if b.idle(s.cfg.PerSource, now) {
				delete(s.sources, k)
			}
		}
	}
	return len(s.sources) < s.cfg.MaxSources
}

// frameLen is the UDP payload size of a Relay or Relayed frame carrying n
// payload bytes.
func frameLen(n int) int { return wire.Overhead + wire.RelayHeaderLen + n }

// maxFrame is the largest relay frame.
const maxFrame = wire.MaxRelayPacketSize

// Sizes of WireGuard's messages by type (the whitepaper, §5.4).
const (
	wgInitiationSize  = 148
	wgResponseSize    = 92
	wgCookieReplySize = 64
	wgMinTransport    = 32 // header 16 + tag 16: a keepalive
)

// isWireGuard reports whether p has the header and size of a WireGuard
// message: a little-endian uint32 type 1 to 4 and the size that type
// requires. Relays carry nothing else; in particular no control packet
// (first byte 0xff), so a relay frame can never be relayed again.
func isWireGuard(p []byte) bool {
	if len(p) < 4 || p[1]|p[2]|p[3] != 0 {
		return false
	}
	switch p[0] {
	case 1:
		return len(p) == wgInitiationSize
	case 2:
		return len(p) == wgResponseSize
	case 3:
		return len(p) == wgCookieReplySize
	case 4:
		return len(p) >= wgMinTransport
	}
	return false
}
