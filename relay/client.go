package relay

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/whnet/wh/dht"
	"github.com/whnet/wh/key"
	"github.com/whnet/wh/wire"
)

// Defaults of ClientConfig. With them a relay in use that dies is replaced
// within PingInterval + DeadAfter×PingTimeout = 4 s. Standby candidates
// are pinged every 15 s, under the 30 s UDP mapping timeout common NATs
// use, so that they can reach us the moment we switch to them.
const (
	DefaultPingInterval  = 2 * time.Second
	DefaultPingTimeout   = time.Second
	DefaultDeadAfter     = 2
	DefaultProbeInterval = 15 * time.Second
	DefaultMaxCandidates = 4
	// DefaultDeliverTimeout is how long a handshake initiation sent
	// through a relay may go unanswered before the relay counts as not
	// delivering for that peer: more than WireGuard's 5 s retry, so that
	// two initiations went, and the switch comes within 10 s.
	DefaultDeliverTimeout = 6 * time.Second
	// undeliveredFor is how long a relay that did not deliver for a peer
	// stays behind the others for it.
	undeliveredFor = time.Minute
)

// ErrNoRelay is returned by Client.Send for a peer without a relay.
var ErrNoRelay = errors.New("relay: no relay for peer")

// ClientConfig configures a Client. Send and Ping are required;
// every other zero value means the default written next to the field.
type ClientConfig struct {
	// Send seals m for the node to and sends it to addr: the node's Send
	// (dht.Transport). It runs on the data path, from several goroutines
	// at once. m may be a pointer the Client reuses once Send returns:
	// Send must not keep it or its Payload. Required.
	Send func(to key.Public, addr netip.AddrPort, m wire.Message) error
	// SendBatch, if set, sends several messages to one node at once (the
	// node seals them and sends them in one UDP GSO write). Send is used
	// for batches of one and when SendBatch is nil. The same rules as for
	// Send apply to ms and its elements.
	SendBatch func(to key.Public, addr netip.AddrPort, ms []wire.Message) error
	// Ping pings a relay and returns the round-trip time; it must return
	// when ctx is done. The node's dht.Server.Ping, timed. Required.
	Ping func(ctx context.Context, relay key.Public, addr netip.AddrPort) (time.Duration, error)
	// Self is this node's key, never used as a relay.
	Self key.Public
	// PingInterval is how often a relay in use is pinged. Zero means
	// DefaultPingInterval.
	PingInterval time.Duration
	// PingTimeout bounds a ping; after a missed ping the next follows at
	// once. Zero means DefaultPingTimeout.
	PingTimeout time.Duration
	// DeadAfter is how many consecutive missed pings make a relay dead.
	// Zero means DefaultDeadAfter.
	DeadAfter int
	// ProbeInterval is how often a relay not in use is pinged, to keep its
	// round-trip time current and our NAT mapping towards it open. Zero
	// means DefaultProbeInterval.
	ProbeInterval time.Duration
	// MaxCandidates is how many candidates of one peer are kept, the
	// first ones given. Zero means DefaultMaxCandidates.
	MaxCandidates int
	// DeliverTimeout is how long the peer may leave a handshake
	// initiation sent through its relay unanswered (Delivered) before
	// the client moves it to another: a relay that answers pings may
	// still drop frames. Zero means DefaultDeliverTimeout.
	DeliverTimeout time.Duration
	// Logger receives relay changes at info level. Nil means no logs.
	Logger *slog.Logger
}

// Client sends a node's WireGuard packets through relays and delivers
// those relayed to it. For each peer it keeps the candidates the node
// gives, measures them with pings, and sends through the fastest live one,
// switching when it dies or a faster one appears. A relay is judged by
// what it delivers too: when a WireGuard handshake initiation sent
// through it goes unanswered for DeliverTimeout (the node reports the
// peer's handshake responses with Delivered), the peer moves to another
// candidate. Run does the pinging and the judging. All methods are safe
// for concurrent use.
type Client struct {
	// Constant after NewClient.
	cfg  ClientConfig
	log  *slog.Logger
	kick chan struct{} // buffered 1: wakes Run to look at the schedule
	msgs sync.Pool     // of *wire.Relay, to send without allocating

	// peers is read without locking on the data path. The map is never
	// modified: writers copy it under mu and swap the pointer.
	peers atomic.Pointer[map[key.Public]*peerState]
	stats clientCounters

	mu     sync.Mutex
	relays map[key.Public]*relayState // guarded by mu; every candidate of every peer
}

// peerState is what a Client keeps for one peer.
type peerState struct {
	key     key.Public          // constant
	current atomic.Pointer[hop] // nil when there is no candidate

	// awaiting is when the first handshake initiation sent through the
	// current relay since the peer's last handshake response went, in
	// Unix ns; zero when none waits. Set by Send, cleared by Delivered
	// and by a change of relay.
	awaiting atomic.Int64

	// Guarded by Client.mu.
	cands       []*relayState             // the node's candidates, in its order
	cur         *relayState               // the relay current points to
	undelivered map[*relayState]time.Time // relays that did not deliver for the peer, until when
}

// hop is where a peer's packets go: an immutable pair, swapped whole.
type hop struct {
	relay key.Public
	addr  netip.AddrPort
}

// relayState is what a Client knows about one relay, shared by all the
// peers that list it: it is pinged once, whatever their number. Guarded
// by Client.mu.
type relayState struct {
	key     key.Public
	addr    netip.AddrPort
	users   int           // peers listing it
	active  int           // peers sending through it
	srtt    time.Duration // smoothed round-trip time; zero until it answers
	misses  int           // consecutive missed pings
	pinging bool
	next    time.Time // when to ping next; zero: at once
}

// ClientStats are a Client's counters. Bytes are UDP payload, envelope
// included.
type ClientStats struct {
	Sent       uint64 // Relay frames sent
	SentBytes  uint64
	SendErrors uint64 // Relay frames Send failed on
	NoRelay    uint64 // packets dropped: no relay for their peer
	Switches   uint64 // times a peer moved from one relay to another
	// Undelivered counts the times a relay left a peer's handshake
	// initiation unanswered for DeliverTimeout.
	Undelivered uint64
}

type clientCounters struct {
	sent, sentBytes, sendErrors, noRelay, switches, undelivered atomic.Uint64
}

// NewClient returns a client for cfg. It starts no goroutine: call Run.
func NewClient(cfg ClientConfig) (*Client, error) {
	if cfg.Send == nil || cfg.Ping == nil {
		return nil, errors.New("relay: ClientConfig.Send and Ping are required")
	}
	if cfg.PingInterval <= 0 {
		cfg.PingInterval = DefaultPingInterval
	}
	if cfg.PingTimeout <= 0 {
		cfg.PingTimeout = DefaultPingTimeout
	}
	if cfg.DeadAfter <= 0 {
		cfg.DeadAfter = DefaultDeadAfter
	}
	if cfg.ProbeInterval <= 0 {
		cfg.ProbeInterval = DefaultProbeInterval
	}
	if cfg.MaxCandidates <= 0 {
		cfg.MaxCandidates = DefaultMaxCandidates
	}
	if cfg.DeliverTimeout <= 0 {
		cfg.DeliverTimeout = DefaultDeliverTimeout
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	c := &Client{
		cfg:    cfg,
		log:    log,
		kick:   make(chan struct{}, 1),
		relays: make(map[key.Public]*relayState),
	}
	c.msgs.New = func() any { return new(wire.Relay) }
	c.peers.Store(&map[key.Public]*peerState{})
	return c, nil
}

// Stats returns the client's counters.
func (c *Client) Stats() ClientStats {
	s := &c.stats
	return ClientStats{
		Sent: s.sent.Load(), SentBytes: s.sentBytes.Load(), SendErrors: s.sendErrors.Load(),
		NoRelay: s.noRelay.Load(), Switches: s.switches.Load(), Undelivered: s.undelivered.Load(),
	}
}

// Send sends each of bufs, WireGuard packets for peer, in a Relay through
// the peer's current relay. It is a tunnel.Path's Relay function for the
// peer. It sends every packet it can and returns the first error:
// ErrNoRelay (wrapped) if the peer has no relay, or Send's.
func (c *Client) Send(peer key.Public, bufs [][]byte) error {
	var h *hop
	ps := (*c.peers.Load())[peer]
	if ps != nil {
		h = ps.current.Load()
	}
	if h == nil {
		c.stats.noRelay.Add(uint64(len(bufs)))
		return fmt.Errorf("relay: send to %s: %w", peer.Short(8), ErrNoRelay)
	}
	for _, b := range bufs {
		if isInitiation(b) && ps.awaiting.CompareAndSwap(0, time.Now().UnixNano()) {
			c.wake() // Run judges the relay when the answer is late
			break
		}
	}
	if len(bufs) > 1 && c.cfg.SendBatch != nil {
		return c.sendBatch(peer, h, bufs)
	}
	m := c.msgs.Get().(*wire.Relay)
	m.Dst = peer
	var first error
	var sent, size uint64
	for _, b := range bufs {
		m.Payload = b
		if err := c.cfg.Send(h.relay, h.addr, m); err != nil {
			if first == nil {
				first = fmt.Errorf("relay: send to %s via %s: %w", peer.Short(8), h.relay.Short(8), err)
			}
			continue
		}
		sent++
		size += uint64(frameLen(len(b)))
	}
	m.Payload = nil
	c.msgs.Put(m)
	c.stats.sent.Add(sent)
	c.stats.sentBytes.Add(size)
	if failed := uint64(len(bufs)) - sent; failed > 0 {
		c.stats.sendErrors.Add(failed)
	}
	return first
}

// sendBatch sends bufs through hop h in one SendBatch.
func (c *Client) sendBatch(peer key.Public, h *hop, bufs [][]byte) error {
	rs := make([]wire.Relay, len(bufs))
	ms := make([]wire.Message, len(bufs))
	var size uint64
	for i, b := range bufs {
		rs[i] = wire.Relay{Dst: peer, Payload: b}
		ms[i] = &rs[i]
		size += uint64(frameLen(len(b)))
	}
	if err := c.cfg.SendBatch(h.relay, h.addr, ms); err != nil {
		c.stats.sendErrors.Add(uint64(len(bufs)))
		return fmt.Errorf("relay: send to %s via %s: %w", peer.Short(8), h.relay.Short(8), err)
	}
	c.stats.sent.Add(uint64(len(bufs)))
	c.stats.sentBytes.Add(size)
	return nil
}

// WireGuard's handshake messages, by type and size.
func isInitiation(b []byte) bool { return len(b) == 148 && b[0] == 1 && b[1]|b[2]|b[3] == 0 }
func isResponse(b []byte) bool   { return len(b) == 92 && b[0] == 2 && b[1]|b[2]|b[3] == 0 }

// Delivered is told of a WireGuard packet from peer that a relay
// delivered: a handshake response answers the initiations sent through
// the peer's relay, which so delivers. It is cheap on other packets.
func (c *Client) Delivered(peer key.Public, pkt []byte) {
	if !isResponse(pkt) {
		return
	}
	if ps := (*c.peers.Load())[peer]; ps != nil {
		ps.awaiting.Store(0)
	}
}

// Current returns the relay through which packets to peer go now.
func (c *Client) Current(peer key.Public) (relay key.Public, ok bool) {
	if ps := (*c.peers.Load())[peer]; ps != nil {
		if h := ps.current.Load(); h != nil {
			return h.relay, true
		}
	}
	return key.Public{}, false
}

// SetCandidates makes relays the candidates through which packets to peer
// may go, most preferred first: nodes that can reach peer directly (those
// that keep it alive). Candidates that are this node or the peer, repeat
// a key, or have no address are skipped, and only the first MaxCandidates
// kept. The current relay stays if it is still a candidate. No candidates
// forgets the peer.
func (c *Client) SetCandidates(peer key.Public, relays []dht.Contact) {
	c.mu.Lock()
	defer c.mu.Unlock()
	peers := *c.peers.Load()
	ps := peers[peer]
	var cands []*relayState
	for _, r := range relays {
		if len(cands) == c.cfg.MaxCandidates {
			break
		}
		if r.Key == peer || r.Key == c.cfg.Self || r.Key.IsZero() || !r.Addr.IsValid() || has(cands, r.Key) {
			continue
		}
		cands = append(cands, c.useLocked(r))
	}
	if ps == nil {
		if len(cands) == 0 {
			return
		}
		ps = &peerState{key: peer}
		c.storePeersLocked(peers, peer, ps)
	}
	for _, r := range ps.cands {
		c.releaseLocked(r)
	}
	ps.cands = cands
	c.chooseLocked(ps)
	if len(cands) == 0 {
		c.storePeersLocked(peers, peer, nil)
	}
	c.wake()
}

func has(rs []*relayState, k key.Public) bool {
	for _, r := range rs {
		if r.key == k {
			return true
		}
	}
	return false
}

// useLocked returns the state of the relay r, made if new, with one more
// user. A new address replaces the old one for every peer.
func (c *Client) useLocked(r dht.Contact) *relayState {
	rs := c.relays[r.Key]
	if rs == nil {
		rs = &relayState{key: r.Key, addr: r.Addr}
		c.relays[r.Key] = rs
	}
	rs.users++
	if rs.addr != r.Addr {
		rs.addr = r.Addr
		rs.srtt, rs.misses, rs.next = 0, 0, time.Time{} // a new path: measure it afresh
		for _, ps := range *c.peers.Load() {
			if ps.cur == rs {
				ps.current.Store(&hop{relay: rs.key, addr: rs.addr})
			}
		}
	}
	return rs
}

// releaseLocked drops one user of r, and r itself with its last user.
func (c *Client) releaseLocked(r *relayState) {
	if r.users--; r.users == 0 && c.relays[r.key] == r {
		delete(c.relays, r.key)
	}
}

// storePeersLocked publishes a copy of peers with k set to ps, or removed
// if ps is nil.
func (c *Client) storePeersLocked(peers map[key.Public]*peerState, k key.Public, ps *peerState) {
	next := make(map[key.Public]*peerState, len(peers)+1)
	for pk, p := range peers {
		next[pk] = p
	}
	if ps == nil {
		delete(next, k)
	} else {
		next[k] = ps
	}
	c.peers.Store(&next)
}

// Ranks of a relay for a peer, best first.
const (
	rankLive        = iota // answers pings, by round-trip time
	rankUnmeasured         // not answered yet
	rankUndelivered        // answers pings, but left the peer's handshake unanswered
	rankDead               // missed DeadAfter pings
)

// rank orders relays for choosing for ps: live ones by round-trip time,
// then those not measured yet, then those that did not deliver for ps,
// then dead ones.
func (c *Client) rank(ps *peerState, r *relayState) int {
	switch {
	case r.misses >= c.cfg.DeadAfter:
		return rankDead
	case time.Now().Before(ps.undelivered[r]):
		return rankUndelivered
	case r.srtt == 0:
		return rankUnmeasured
	}
	return rankLive
}

// chooseLocked sets the peer's relay to its best candidate. It moves off
// a live relay only for one at least a fifth faster (and 1 ms), so that
// jitter does not make it flap.
func (c *Client) chooseLocked(ps *peerState) {
	var best *relayState
	for _, r := range ps.cands {
		rr, rb := c.rank(ps, r), 0
		if best != nil {
			rb = c.rank(ps, best)
		}
		if best == nil || rr < rb || rr == rankLive && rb == rankLive && r.srtt < best.srtt {
			best = r
		}
	}
	if cur := ps.cur; cur != nil && has(ps.cands, cur.key) && !c.better(ps, best, cur) {
		return
	}
	c.setLocked(ps, best)
}

// better reports whether b is worth moving ps to from cur.
func (c *Client) better(ps *peerState, b, cur *relayState) bool {
	rb, rc := c.rank(ps, b), c.rank(ps, cur)
	return rb < rc || rb == rankLive && rc == rankLive && b.srtt < cur.srtt-max(cur.srtt/5, time.Millisecond)
}

// judgeLocked moves ps off a relay that left a handshake initiation
// unanswered for DeliverTimeout, and returns when to judge again (zero:
// nothing waits).
func (c *Client) judgeLocked(ps *peerState, now time.Time) time.Time {
	at := ps.awaiting.Load()
	if at == 0 || ps.cur == nil {
		return time.Time{}
	}
	due := time.Unix(0, at).Add(c.cfg.DeliverTimeout)
	if now.Before(due) {
		return due
	}
	r := ps.cur
	if ps.undelivered == nil {
		ps.undelivered = make(map[*relayState]time.Time)
	}
	for k, until := range ps.undelivered {
		if !now.Before(until) || !has(ps.cands, k.key) {
			delete(ps.undelivered, k)
		}
	}
	ps.undelivered[r] = now.Add(undeliveredFor)
	ps.awaiting.Store(0)
	c.stats.undelivered.Add(1)
	c.log.Info("relay: handshake unanswered", "peer", ps.key.Short(8), "relay", r.key.Short(8), "after", c.cfg.DeliverTimeout)
	c.chooseLocked(ps)
	return time.Time{}
}

// setLocked makes r, possibly nil, the peer's relay. A relay that comes
// into use is pinged at once and then every PingInterval.
func (c *Client) setLocked(ps *peerState, r *relayState) {
	old := ps.cur
	if old == r {
		return
	}
	if old != nil {
		old.active--
	}
	ps.cur = r
	if r == nil {
		ps.current.Store(nil)
		c.log.Info("relay: none left", "peer", ps.key.Short(8))
		return
	}
	if r.active++; r.active == 1 {
		r.next = time.Time{}
	}
	ps.current.Store(&hop{relay: r.key, addr: r.addr})
	ps.awaiting.Store(0) // the new relay is judged afresh
	attrs := []any{"peer", ps.key.Short(8), "relay", r.key.Short(8), "endpoint", r.addr, "rtt", r.srtt}
	if old != nil {
		c.stats.switches.Add(1)
		attrs = append(attrs, "from", old.key.Short(8), "from_dead", old.misses >= c.cfg.DeadAfter)
	}
	c.log.Info("relay", attrs...)
}

// Run pings the candidates as the configuration says and moves peers
// between relays on the outcomes, until ctx is done. It waits for its
// pings before it returns. Run it once.
func (c *Client) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	defer wg.Wait()
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		timer.Reset(time.Until(c.startDue(ctx, &wg)))
		select {
		case <-ctx.Done():
			return nil
		case <-timer.C:
		case <-c.kick:
		}
	}
}

func (c *Client) wake() {
	select {
	case c.kick <- struct{}{}:
	default:
	}
}

// startDue judges the relays whose answers are late, starts the pings
// that are due, and returns when the next of either is.
func (c *Client) startDue(ctx context.Context, wg *sync.WaitGroup) time.Time {
	now := time.Now()
	next := now.Add(c.cfg.ProbeInterval)
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, ps := range *c.peers.Load() {
		if due := c.judgeLocked(ps, now); !due.IsZero() && due.Before(next) {
			next = due
		}
	}
	for _, r := range c.relays {
		if r.pinging {
			continue
		}
		if r.next.After(now) {
			if r.next.Before(next) {
				next = r.next
			}
			continue
		}
		r.pinging = true
		k, addr := r.key, r.addr
		wg.Go(func() { c.ping(ctx, r, k, addr) })
	}
	return next
}

// ping pings relay r at addr, records the outcome and moves the peers
// that list r if it changes their best choice.
func (c *Client) ping(ctx context.Context, r *relayState, k key.Public, addr netip.AddrPort) {
	start := time.Now()
	pctx, cancel := context.WithTimeout(ctx, c.cfg.PingTimeout)
	rtt, err := c.cfg.Ping(pctx, k, addr)
	cancel()
	defer c.wake()
	c.mu.Lock()
	defer c.mu.Unlock()
	r.pinging = false
	if ctx.Err() != nil || r.addr != addr {
		return // shutting down, or moved: this says nothing about now
	}
	if err == nil {
		rtt = max(rtt, time.Microsecond) // zero means unmeasured
		if r.srtt == 0 || r.misses >= c.cfg.DeadAfter {
			r.srtt = rtt
		} else {
			r.srtt += (rtt - r.srtt) / 4 // TCP's SRTT gain, RFC 6298
		}
		r.misses = 0
	} else {
		r.misses++
	}
	for _, ps := range *c.peers.Load() {
		if has(ps.cands, r.key) {
			c.chooseLocked(ps)
		}
	}
	switch {
	case r.misses > 0 && r.misses < c.cfg.DeadAfter:
		r.next = start.Add(c.cfg.PingTimeout) // confirm quickly
	case r.active > 0:
		r.next = start.Add(c.cfg.PingInterval)
	default:
		r.next = start.Add(c.cfg.ProbeInterval)
	}
}
