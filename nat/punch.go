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

// Config configures a Puncher. Self, Send and Ping are required; every
// other zero value is written next to its field.
type Config struct {
	// Self is this node's key.
	Self key.Public
	// Send seals m for to and sends it to addr. It must not block.
	Send func(to key.Public, addr netip.AddrPort, m wire.Message) error
	// Ping pings the node to at addr and returns nil when it answers
	// (the node passes its DHT's Ping). Each probe gives up after 800 ms
	// (probeWait), before the DHT would count a failure.
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
		forwarded, unknown, limited, untrusted, busy, direct, failed atomic.Uint64
	}
}

// A session probes one peer's candidates until one answers.
type session struct {
	peer      key.Public
	responder bool          // started by the peer's PunchFrom
	wake      chan struct{} // buffered 1: candidates were added
	done      chan struct{} // closed when the session ends

	// Guarded by Puncher.mu.
	cands  []netip.AddrPort // at most maxSessionCandidates
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
		Untrusted: s.untrusted.Load(), Busy: s.busy.Load(), Direct: s.direct.Load(), Failed: s.failed.Load(),
	}
}

// Punch looks for a direct path to target: it asks rendezvous (a Via of
// the target's lookup, which keeps the target alive) to pass this node's
// candidates to the target, a few times, and meanwhile probes
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
	p.mu.Unlock()

	req := wire.Punch{TxID: rand.Uint64(), Target: target, Mapping: uint8(p.info().Mapping), Candidates: own}
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
			if err := p.cfg.Send(rendezvous.Key, rendezvous.Addr, req); err != nil {
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

// handlePunch plays the rendezvous: it forwards the Punch to a verified
// address of its target, with the address the Punch came from first
// among the candidates. The forward is at most one candidate longer than
// the Punch.
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
	src = unmap(src)
	cands := make([]netip.AddrPort, 0, wire.MaxCandidates)
	cands = append(cands, src)
	for _, c := range m.Candidates {
		if len(cands) < wire.MaxCandidates && c != src {
			cands = append(cands, c)
		}
	}
	fwd := wire.PunchFrom{TxID: m.TxID, From: from, Reply: m.Reply, Mapping: m.Mapping, Candidates: cands}
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

// handlePunchFrom plays the target: a trusted initiator's candidates are
// probed (in the peer's session, or a new one), and, unless the PunchFrom
// is itself a reply, answered with this node's own candidates through
// the same rendezvous.
func (p *Puncher) handlePunchFrom(from key.Public, src netip.AddrPort, m wire.PunchFrom) {
	if m.From == p.cfg.Self {
		return
	}
	trusted := p.cfg.Accept != nil && p.cfg.Accept(m.From)
	own := p.own()
	p.mu.Lock()
	s := p.sessions[m.From]
	switch {
	case p.closed:
		p.mu.Unlock()
		return
	case s != nil:
	case m.Reply:
		p.mu.Unlock() // the answer to a session that has ended
		return
	case !trusted:
		p.mu.Unlock()
		p.stats.untrusted.Add(1)
		p.log.Debug("nat: punch from an untrusted peer", "peer", m.From, "rendezvous", from)
		return
	case p.responders >= maxResponders || time.Since(p.responderDone[m.From]) < responderCooldown:
		p.mu.Unlock()
		p.stats.busy.Add(1)
		return
	default:
		s = p.startLocked(m.From, true)
	}
	p.addLocked(s, own, m.Candidates...)
	s.heard, s.remote = true, Mapping(m.Mapping)
	p.mu.Unlock()

	if m.Reply {
		return
	}
	reply := wire.Punch{TxID: m.TxID, Target: m.From, Reply: true, Mapping: uint8(p.info().Mapping), Candidates: own}
	if err := p.cfg.Send(from, src, reply); err != nil {
		p.log.Debug("nat: answer punch", "peer", m.From, "rendezvous", from, "err", err)
	}
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
// soon as they come, until one answers or ctx ends.
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
