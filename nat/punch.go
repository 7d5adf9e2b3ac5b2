package nat

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math/rand/v2"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/whnet/wh/dht"
	"github.com/whnet/wh/key"
	"github.com/whnet/wh/wire"
)

// Defaults of Config, and the limits of a Puncher.
const (
	DefaultProbeInterval = 150 * time.Millisecond
	DefaultPunchTimeout  = 3 * time.Second

	// probeWait is how long one probe waits for its pong. It is below
	// dht.DefaultQueryTimeout, so that the DHT's Ping is cancelled, not
	// timed out, and does not count a failure against the peer; later
	// probes cover a slower answer.
	probeWait = 800 * time.Millisecond
	// punchSends is how many times Punch sends its request through the
	// rendezvous, evenly over the timeout.
	punchSends = 4
	// offerBodyLen is the size an offer is padded to. The peer probes
	// only as many bytes as the PunchFrom that carried the offer: about
	// 15 probes of probeSize for each of the punchSends requests.
	offerBodyLen = 900
	// maxSessionCandidates bounds the addresses one session probes: the
	// peer's candidates from the caller, its PunchFroms and the sources
	// of its messages.
	maxSessionCandidates = 16
	// maxResponders bounds the sessions other nodes' PunchFroms run at
	// once, and responderCooldown is how long after such a session ends
	// before a PunchFrom may start another for the same peer. Together
	// they bound what a lying rendezvous can make this node send.
	maxResponders     = 8
	responderCooldown = time.Second

	// A rendezvous forwards at most sourceRate Punches a second from one
	// key (bursts of sourceBurst), and globalRate from everyone.
	sourceRate, sourceBurst = 4, 16
	globalRate, globalBurst = 256, 512
	maxSources              = 1024 // keys whose rate a rendezvous tracks
	// A rendezvous remembers for recentTTL where a Punch came from, so
	// that it can forward the target's answer to an initiator it does
	// not otherwise keep.
	recentTTL = 10 * time.Second
	maxRecent = 256
)

// Errors of Punch.
var (
	ErrNoAnswer = errors.New("nat: no probe answered")
	ErrClosed   = errors.New("nat: puncher closed")
)

// probeSize is the size of one probe, a sealed wire.Ping: what each
// probe takes from a session's credit.
var probeSize = func() int {
	b, _ := wire.Ping{Size: wire.MaxPongSize}.AppendBinary(nil)
	return wire.Overhead + len(b)
}()

// Config configures a Puncher. Self, Send, Seal, Open and Ping are
// required; every other zero value is written next to its field.
type Config struct {
	// Self is this node's key.
	Self key.Public
	// Send seals m for to and sends it to addr. It must not block.
	Send func(to key.Public, addr netip.AddrPort, m wire.Message) error
	// Seal seals m for to, as an envelope of its own (wire.Codec.Seal):
	// the offer a Punch carries end to end.
	Seal func(to key.Public, m wire.Message) ([]byte, error)
	// Open opens an envelope sealed for this node (wire.Codec.Open),
	// with its replay check: the offer a PunchFrom carries.
	Open func(pkt []byte) (key.Public, wire.Message, error)
	// Ping pings the node to at addr and returns nil when it answers
	// from addr, with a fresh nonce of ours, sealed by to's key. Each
	// probe gives up after 800 ms (probeWait).
	Ping func(ctx context.Context, to key.Public, addr netip.AddrPort) error
	// Candidates returns this node's own addresses for peers to probe,
	// best first: port-mapped, reflexive (Detector.Info), then the LAN
	// addresses with the node's port (LocalAddrs). The first
	// wire.MaxCandidates are sent. Nil means none: peers can then reach
	// the node only at the address its rendezvous sees.
	Candidates func() []netip.AddrPort
	// NAT returns what the node knows of its NAT (Detector.Info), sent
	// along so that each side can say why a punch failed. Nil means
	// unknown.
	NAT func() Info
	// Accept reports whether the node whose key is from may make this
	// node probe its candidates: only trusted peers may. Nil means nobody.
	Accept func(from key.Public) bool
	// Locate returns a verified address of the node whose key is k: one
	// that keeps this node alive, or that this node has a fresh address
	// for. Forwarding goes only there. Nil means this node is no
	// rendezvous.
	Locate func(k key.Public) (netip.AddrPort, bool)
	// Interval is the time between two rounds of probes. Zero means
	// DefaultProbeInterval.
	Interval time.Duration
	// Timeout is how long a session probes. Zero means
	// DefaultPunchTimeout.
	Timeout time.Duration
	// Logger receives debug logs. Nil means no logs.
	Logger *slog.Logger
}

// Stats counts what a Puncher did since New.
type Stats struct {
	Forwarded uint64 // Punches forwarded as the rendezvous
	Unknown   uint64 // Punches not forwarded: no verified address for the target, or no rendezvous role
	Limited   uint64 // Punches dropped by the rate limits
	Untrusted uint64 // PunchFroms ignored: the initiator is not trusted
	Forged    uint64 // PunchFroms ignored: no offer the initiator sealed, for this rendezvous
	Busy      uint64 // PunchFroms ignored: too many sessions, or the peer's cooldown
	Direct    uint64 // sessions that found a direct path
	Failed    uint64 // sessions that did not
}

// Puncher makes direct paths through NATs: it asks a rendezvous node to
// pass candidates between two peers, probes the peer's candidates, and
// plays the rendezvous and the target for other nodes. Feed it every
// authenticated control message with Handle.
//
// A session probes one peer: every Interval it pings each of the peer's
// candidates, for Timeout, and ends at the first answer. A Punch call, a
// PunchFrom from a trusted peer, or both at once (each side punching the
// other) share the peer's one session.
type Puncher struct {
	cfg Config // constant after New, defaults filled in
	log *slog.Logger

	ctx    context.Context // cancelled by Close; bounds every session
	cancel context.CancelFunc
	wg     sync.WaitGroup // session goroutines

	mu            sync.Mutex
	closed        bool                       // guarded by mu
	sessions      map[key.Public]*session    // at most one per peer; guarded by mu
	responders    int                        // running sessions a PunchFrom started; guarded by mu
	responderDone map[key.Public]time.Time   // when such a session last ended, per peer; guarded by mu
	recent        map[key.Public]recentPunch // rendezvous: where Punches came from; guarded by mu
	limit         limiter                    // rendezvous rate limits; guarded by mu

	stats struct {
		forwarded, unknown, limited, untrusted, forged, busy, direct, failed atomic.Uint64
	}
}

// A session probes one peer's candidates until one answers. Its probes
// go to addresses that have not answered yet, so each is paid for from
// its credit: the bytes of the PunchFroms that brought the peer's offers,
// and, for a Punch this node started, punchSends probes of each candidate
// its caller gave (addresses a lookup returned, which their senders may
// have chosen: as many probes as Punches to the rendezvous).
type session struct {
	peer      key.Public
	responder bool          // started by the peer's PunchFrom
	wake      chan struct{} // buffered 1: candidates were added
	done      chan struct{} // closed when the session ends

	// Guarded by Puncher.mu.
	cands  []netip.AddrPort // at most maxSessionCandidates
	credit int              // bytes the session may still probe with
	heard  bool             // a PunchFrom from the peer arrived
	remote Mapping          // the peer's NAT mapping, from its PunchFrom

	// Set before done is closed.
	addr netip.AddrPort // the candidate that answered
	err  error
}

type recentPunch struct {
	addr netip.AddrPort
	at   time.Time
}

// New returns a Puncher. It starts no goroutine until a session starts.
func New(cfg Config) (*Puncher, error) {
	switch {
	case cfg.Self.IsZero():
		return nil, errors.New("nat: Config.Self is required")
	case cfg.Send == nil:
		return nil, errors.New("nat: Config.Send is required")
	case cfg.Ping == nil:
		return nil, errors.New("nat: Config.Ping is required")
	case cfg.Seal == nil || cfg.Open == nil:
		return nil, errors.New("nat: Config.Seal and Config.Open are required")
	}
	if cfg.Interval <= 0 {
		cfg.Interval = DefaultProbeInterval
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultPunchTimeout
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Puncher{
		cfg:           cfg,
		log:           log,
		ctx:           ctx,
		cancel:        cancel,
		sessions:      make(map[key.Public]*session),
		responderDone: make(map[key.Public]time.Time),
		recent:        make(map[key.Public]recentPunch),
		limit:         limiter{sources: make(map[key.Public]*bucket)},
	}, nil
}

// Close ends every session and waits for them. It is idempotent.
func (p *Puncher) Close() error {
	p.mu.Lock()
	p.closed = true
	p.mu.Unlock()
	p.cancel()
	p.wg.Wait()
	return nil
}

// Stats returns the counters.
func (p *Puncher) Stats() Stats {
	s := &p.stats
	return Stats{
		Forwarded: s.forwarded.Load(), Unknown: s.unknown.Load(), Limited: s.limited.Load(),
		Untrusted: s.untrusted.Load(), Forged: s.forged.Load(), Busy: s.busy.Load(), Direct: s.direct.Load(), Failed: s.failed.Load(),
	}
}

// Punch looks for a direct path to target: it asks rendezvous (a Via of
// the target's lookup, which keeps the target alive) to pass this node's
// offer, sealed for the target, a few times, and meanwhile probes
// targetCands (the reflexive address the lookup returned, the configured
// endpoint) and whatever candidates the target sends back. It returns the
// first address that answered, or an error wrapping ErrNoAnswer after
// Timeout. With a zero rendezvous it only probes.
//
// When Punch returns an address, the target has answered an
// authenticated ping there: the path is direct. The target, probing back,
// learns this node's address the same way.
func (p *Puncher) Punch(ctx context.Context, target key.Public, rendezvous dht.Contact, targetCands []netip.AddrPort) (netip.AddrPort, error) {
	own := p.own()
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return netip.AddrPort{}, ErrClosed
	}
	s := p.sessions[target]
	if s == nil {
		s = p.startLocked(target, false)
	}
	p.addLocked(s, own, targetCands...)
	p.creditLocked(s, len(targetCands)*punchSends*probeSize)
	p.mu.Unlock()

	txid := rand.Uint64()
	mapping := uint8(p.info().Mapping)
	resend := time.NewTimer(0)
	defer resend.Stop()
	for sent := 0; ; {
		select {
		case <-s.done:
			if s.err != nil {
				return netip.AddrPort{}, fmt.Errorf("punch %s: %w", target.Short(8), s.err)
			}
			return s.addr, nil
		case <-ctx.Done():
			return netip.AddrPort{}, ctx.Err()
		case <-resend.C:
			if rendezvous.Key.IsZero() || sent == punchSends {
				continue
			}
			// A fresh seal each time: the target opens each offer once.
			req, err := p.offer(target, rendezvous.Key, wire.PunchOffer{TxID: txid, Mapping: mapping, Candidates: own}, offerBodyLen)
			if err == nil {
				err = p.cfg.Send(rendezvous.Key, rendezvous.Addr, req)
			}
			if err != nil {
				p.log.Debug("nat: send punch", "peer", target, "rendezvous", rendezvous, "err", err)
			}
			sent++
			resend.Reset(p.cfg.Timeout / punchSends)
		}
	}
}

// Handle processes one authenticated message from the node whose key is
// from, received from src. It reports whether m was a Punch or PunchFrom,
// which it consumes; other messages are the caller's, but Handle must see
// them too: a message from a peer being probed adds its source to the
// peer's candidates (a peer behind a symmetric NAT reaches us from a port
// nobody could predict). Handle does not block.
func (p *Puncher) Handle(from key.Public, src netip.AddrPort, m wire.Message) bool {
	switch m := m.(type) {
	case wire.Punch:
		p.handlePunch(from, src, m)
		return true
	case wire.PunchFrom:
		p.handlePunchFrom(from, src, m)
		return true
	}
	p.mu.Lock()
	if s := p.sessions[from]; s != nil {
		p.addLocked(s, nil, src)
	}
	p.mu.Unlock()
	return false
}

// handlePunch plays the rendezvous: it forwards the Punch's offer to a
// verified address of its target, with the address the Punch came from.
// The forward is at most one address longer than the Punch.
func (p *Puncher) handlePunch(from key.Public, src netip.AddrPort, m wire.Punch) {
	if p.cfg.Locate == nil || m.Target == from || m.Target == p.cfg.Self {
		p.stats.unknown.Add(1)
		return
	}
	now := time.Now()
	p.mu.Lock()
	allowed := p.limit.allow(from, now)
	if allowed {
		p.rememberLocked(from, src, now)
	}
	recent, ok := p.recent[m.Target]
	p.mu.Unlock()
	if !allowed {
		p.stats.limited.Add(1)
		p.log.Debug("nat: punch rate-limited", "peer", from, "endpoint", src)
		return
	}
	addr, found := p.cfg.Locate(m.Target)
	if !found && ok && now.Sub(recent.at) < recentTTL {
		addr, found = recent.addr, true
	}
	if !found {
		p.stats.unknown.Add(1)
		p.log.Debug("nat: punch for an unknown target", "peer", from, "target", m.Target)
		return
	}
	fwd := wire.PunchFrom{TxID: m.TxID, From: from, Observed: unmap(src), Offer: m.Offer}
	if err := p.cfg.Send(m.Target, addr, fwd); err != nil {
		p.log.Debug("nat: forward punch", "peer", from, "target", m.Target, "endpoint", addr, "err", err)
		return
	}
	p.stats.forwarded.Add(1)
}

// rememberLocked records that from's Punch came from src, so that the
// target's answer can find its way back. p.mu must be held.
func (p *Puncher) rememberLocked(from key.Public, src netip.AddrPort, now time.Time) {
	if _, ok := p.recent[from]; !ok && len(p.recent) >= maxRecent {
		maps.DeleteFunc(p.recent, func(_ key.Public, r recentPunch) bool { return now.Sub(r.at) >= recentTTL })
		if len(p.recent) >= maxRecent {
			return
		}
	}
	p.recent[from] = recentPunch{addr: unmap(src), at: now}
}

// handlePunchFrom plays the target: the offer of a trusted initiator,
// once opened from the initiator's own key, is probed (in the peer's
// session, or a new one) with as many bytes as the PunchFrom had, and,
// unless it is itself a reply, answered with this node's own offer
// through the same rendezvous, no larger than the PunchFrom. The
// rendezvous's Observed is a candidate only if the offer names that
// rendezvous: it is the initiator's choice to trust what R sees.
func (p *Puncher) handlePunchFrom(from key.Public, src netip.AddrPort, m wire.PunchFrom) {
	if m.From == p.cfg.Self {
		return
	}
	if p.cfg.Accept == nil || !p.cfg.Accept(m.From) {
		p.stats.untrusted.Add(1)
		p.log.Debug("nat: punch from an untrusted peer", "peer", m.From, "rendezvous", from)
		return
	}
	offer, ok := p.openOffer(from, m)
	if !ok {
		p.stats.forged.Add(1)
		p.log.Debug("nat: punch without the peer's offer", "peer", m.From, "rendezvous", from)
		return
	}
	size := packetSize(m)
	own := p.own()
	p.mu.Lock()
	s := p.sessions[m.From]
	switch {
	case p.closed:
		p.mu.Unlock()
		return
	case s != nil:
	case offer.Reply:
		p.mu.Unlock() // the answer to a session that has ended
		return
	case p.responders >= maxResponders || time.Since(p.responderDone[m.From]) < responderCooldown:
		p.mu.Unlock()
		p.stats.busy.Add(1)
		return
	default:
		s = p.startLocked(m.From, true)
	}
	p.addLocked(s, own, append(offer.Candidates, m.Observed)...)
	p.creditLocked(s, size)
	s.heard, s.remote = true, Mapping(offer.Mapping)
	p.mu.Unlock()

	if offer.Reply {
		return
	}
	// The reply, like any packet to R's address, is no larger than what
	// came from it.
	ro := wire.PunchOffer{TxID: m.TxID, Reply: true, Mapping: uint8(p.info().Mapping), Candidates: own}
	bodyLen := min(offerBodyLen, size-2*wire.Overhead-punchLen(nil))
	for {
		reply, err := p.offer(m.From, from, ro, bodyLen)
		if err == nil && packetSize(reply) > size {
			if len(ro.Candidates) > 0 {
				ro.Candidates = ro.Candidates[:len(ro.Candidates)-1]
				continue
			}
			err = errors.New("no room for an answer")
		}
		if err == nil {
			err = p.cfg.Send(from, src, reply)
		}
		if err != nil {
			p.log.Debug("nat: answer punch", "peer", m.From, "rendezvous", from, "err", err)
		}
		return
	}
}

// openOffer opens m's offer: a PunchOffer sealed by m.From itself for this
// node, for m's txid, sent through rendezvous (m's sender). Only the
// offer's candidates, and m.Observed if the offer says so, are acted on.
func (p *Puncher) openOffer(rendezvous key.Public, m wire.PunchFrom) (wire.PunchOffer, bool) {
	if len(m.Offer) == 0 {
		return wire.PunchOffer{}, false
	}
	by, msg, err := p.cfg.Open(m.Offer)
	if err != nil || by != m.From {
		return wire.PunchOffer{}, false
	}
	o, ok := msg.(wire.PunchOffer)
	if !ok || o.TxID != m.TxID || o.Rendezvous != rendezvous {
		return wire.PunchOffer{}, false
	}
	return o, true
}

// offer returns the Punch that carries o, sealed for peer, through
// rendezvous, its body padded to about bodyLen bytes.
func (p *Puncher) offer(peer, rendezvous key.Public, o wire.PunchOffer, bodyLen int) (wire.Punch, error) {
	o.Rendezvous = rendezvous
	b, err := o.AppendBinary(nil)
	if err != nil {
		return wire.Punch{}, err
	}
	o.Pad = max(0, min(bodyLen, wire.MaxOfferBodyLen)-len(b))
	sealed, err := p.cfg.Seal(peer, o)
	if err != nil {
		return wire.Punch{}, err
	}
	return wire.Punch{TxID: o.TxID, Target: peer, Offer: sealed}, nil
}

// punchLen is the length of a Punch body carrying offer.
func punchLen(offer []byte) int {
	b, _ := wire.Punch{Offer: offer}.AppendBinary(nil)
	return len(b)
}

// packetSize is the size of m's packet, sealed.
func packetSize(m wire.Message) int {
	b, _ := m.AppendBinary(nil)
	return wire.Overhead + len(b)
}

// creditLocked adds n bytes to what s may probe with, and wakes it.
// p.mu must be held.
func (p *Puncher) creditLocked(s *session, n int) {
	s.credit += n
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// spend takes one probe from s's credit, if it has one.
func (p *Puncher) spend(s *session) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if s.credit < probeSize {
		return false
	}
	s.credit -= probeSize
	return true
}

// startLocked starts a session with peer. p.mu must be held and p not
// closed.
func (p *Puncher) startLocked(peer key.Public, responder bool) *session {
	s := &session{peer: peer, responder: responder, wake: make(chan struct{}, 1), done: make(chan struct{})}
	p.sessions[peer] = s
	if responder {
		p.responders++
	}
	p.wg.Go(func() { p.run(s) })
	return s
}

// run probes for the session's lifetime and publishes its outcome.
func (p *Puncher) run(s *session) {
	ctx, cancel := context.WithTimeout(p.ctx, p.cfg.Timeout)
	addr, err := p.probe(ctx, s)
	cancel()

	now := time.Now()
	p.mu.Lock()
	delete(p.sessions, s.peer)
	if s.responder {
		p.responders--
		if len(p.responderDone) >= maxResponders*8 {
			maps.DeleteFunc(p.responderDone, func(_ key.Public, t time.Time) bool { return now.Sub(t) >= responderCooldown })
		}
		p.responderDone[s.peer] = now
	}
	switch {
	case err == nil:
	case p.ctx.Err() != nil:
		err = ErrClosed
	case !s.heard:
		err = fmt.Errorf("%w: the peer did not answer through the rendezvous", ErrNoAnswer)
	default:
		local := p.info()
		remote := Info{Mapping: s.remote, BehindNAT: s.remote == MappingEndpointIndependent || s.remote == MappingEndpointDependent}
		err = fmt.Errorf("%w: %s", ErrNoAnswer, Why(local, remote))
	}
	s.addr, s.err = addr, err
	p.mu.Unlock()
	close(s.done)

	if err != nil {
		p.stats.failed.Add(1)
		p.log.Debug("nat: no direct path", "peer", s.peer, "err", err)
		return
	}
	p.stats.direct.Add(1)
	p.log.Debug("nat: direct path", "peer", s.peer, "endpoint", addr)
}

// probe pings every candidate of s each Interval, and new candidates as
// soon as they come, while its credit lasts, until one answers or ctx
// ends.
func (p *Puncher) probe(ctx context.Context, s *session) (netip.AddrPort, error) {
	var wg sync.WaitGroup
	defer wg.Wait()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel() // before wg.Wait: stops the probes still waiting
	answered := make(chan netip.AddrPort, 1)
	tick := time.NewTicker(p.cfg.Interval)
	defer tick.Stop()
	from := 0 // the first candidate to probe in this round
	for {
		p.mu.Lock()
		cands := slices.Clone(s.cands[from:])
		from = len(s.cands)
		p.mu.Unlock()
		for _, a := range cands {
			if !p.spend(s) {
				break
			}
			wg.Go(func() {
				pctx, cancel := context.WithTimeout(ctx, probeWait)
				defer cancel()
				if p.cfg.Ping(pctx, s.peer, a) == nil {
					select {
					case answered <- a:
					default:
					}
				}
			})
		}
		select {
		case a := <-answered:
			return a, nil
		case <-ctx.Done():
			return netip.AddrPort{}, ctx.Err()
		case <-tick.C:
			from = 0
		case <-s.wake:
		}
	}
}

// addLocked adds candidates to s: valid unicast addresses that are not
// this node's own and not there yet, up to maxSessionCandidates. It
// wakes the session if any was added. p.mu must be held.
func (p *Puncher) addLocked(s *session, own []netip.AddrPort, cands ...netip.AddrPort) {
	added := false
	for _, c := range cands {
		if len(s.cands) >= maxSessionCandidates {
			break
		}
		c = unmap(c)
		a := c.Addr()
		switch {
		case !c.IsValid() || c.Port() == 0 || a.IsUnspecified() || a.IsMulticast() || a.IsLoopback():
			continue
		case slices.Contains(own, c) || slices.Contains(s.cands, c):
			continue
		}
		s.cands = append(s.cands, c)
		added = true
	}
	if added {
		select {
		case s.wake <- struct{}{}:
		default:
		}
	}
}

// own returns this node's candidates as sent: unmapped, valid, without
// duplicates, at most wire.MaxCandidates.
func (p *Puncher) own() []netip.AddrPort {
	if p.cfg.Candidates == nil {
		return nil
	}
	var out []netip.AddrPort
	for _, c := range p.cfg.Candidates() {
		c = unmap(c)
		if c.IsValid() && c.Addr().Zone() == "" && !slices.Contains(out, c) && len(out) < wire.MaxCandidates {
			out = append(out, c)
		}
	}
	return out
}

func (p *Puncher) info() Info {
	if p.cfg.NAT == nil {
		return Info{}
	}
	return p.cfg.NAT()
}

// limiter is a rendezvous's token buckets: one per source key and one for
// everyone.
type limiter struct {
	global  bucket
	sources map[key.Public]*bucket // at most maxSources
}

type bucket struct {
	tokens float64
	at     time.Time
}

// allow takes a token from from's bucket and the global one.
func (l *limiter) allow(from key.Public, now time.Time) bool {
	b := l.sources[from]
	if b == nil {
		if len(l.sources) >= maxSources {
			maps.DeleteFunc(l.sources, func(_ key.Public, b *bucket) bool { return b.refill(now, sourceRate, sourceBurst) == sourceBurst })
			for k := range l.sources { // still full: forget any one
				if len(l.sources) < maxSources {
					break
				}
				delete(l.sources, k)
			}
		}
		b = &bucket{tokens: sourceBurst, at: now}
		l.sources[from] = b
	}
	if b.refill(now, sourceRate, sourceBurst) < 1 {
		return false
	}
	if l.global.at.IsZero() {
		l.global = bucket{tokens: globalBurst, at: now}
	}
	if l.global.refill(now, globalRate, globalBurst) < 1 {
		return false
	}
	b.tokens--
	l.global.tokens--
	return true
}

// refill adds the tokens earned since the last call and returns how many
// there are.
func (b *bucket) refill(now time.Time, rate, burst float64) float64 {
	b.tokens = min(burst, b.tokens+rate*now.Sub(b.at).Seconds())
	b.at = now
	return b.tokens
}
