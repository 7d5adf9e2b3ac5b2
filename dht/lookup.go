package dht

import (
	"context"
	"errors"
	"slices"
	"time"

	"github.com/whnet/wh/key"
)

// QueryFunc asks the node to for the contacts it knows nearest to target
// (a FindNode). It must return when ctx is done. NAT contacts in the answer
// are targets that to keeps alive and can relay to.
type QueryFunc func(ctx context.Context, to Contact, target key.Public) ([]Contact, error)

// LookupConfig tunes Lookup.
type LookupConfig struct {
	// Self is the looking node's own key; it is never queried or returned.
	Self key.Public
	// K is how many nearest nodes must answer before the lookup ends. Zero
	// means DefaultK.
	K int
	// Alpha is how many queries are in flight at once. Zero means
	// DefaultAlpha.
	Alpha int
	// Timeout bounds each query. Zero means only ctx bounds it (the
	// QueryFunc may have its own timeout).
	Timeout time.Duration
	// StopWhenFound ends the lookup as soon as the target is found (it
	// answered, or a direct node vouched for it as NAT), rather than when
	// the K nearest have answered: the quick way to reach one peer. Closest
	// then holds only the nodes that answered so far, and Vias may be
	// fewer than a full lookup finds.
	StopWhenFound bool
	// Admit, if set, filters the contacts that replies bring: a contact it
	// rejects (too few workbits, say) is neither queried nor returned.
	Admit func(Contact) bool
	// PerPrefix is how many candidates of one /24 (/64) count among the K
	// nearest before those of other prefixes (as in diverse): Sybil keys
	// from one prefix, however near the target, then take PerPrefix of the
	// K places and the lookup goes on through the others. Zero means
	// DefaultPerPrefix; negative means plain distance order.
	PerPrefix int
}

// Result is the outcome of a Lookup.
type Result struct {
	Target key.Public
	// Closest holds up to K direct nodes nearest to Target that answered,
	// nearest first.
	Closest []Contact
	// Found is set when the target itself was reached: it answered a query
	// (a direct node), or direct nodes that keep it vouched for it (a NAT
	// node; see Vias).
	Found bool
	// Contact is the target's contact when Found. For a NAT node, Addr is
	// its reflexive address as the nearest Via sees it.
	Contact Contact
	// Vias are the direct nodes that returned the NATed target as a
	// contact of their own, nearest to the target first: the candidates to
	// relay to it or to rendezvous a hole punch.
	Vias []Contact
	// Hops is the number of query hops after which the target was first
	// learned (0 if a seed was the target, -1 if never learned).
	Hops int
	// Rounds is the depth of the deepest node that answered: the length
	// of the longest chain of queries, each to a node the previous one
	// returned.
	Rounds int
	// Queries counts the queries sent; Failures those that failed.
	Queries, Failures int
	// Err is ErrNoSeeds, or ctx's error if the lookup was cut short (the
	// other fields then say what was learned until then).
	Err error
}

// ErrNoSeeds is returned in Result.Err when a lookup has nobody to ask.
var ErrNoSeeds = errors.New("dht: lookup without seed contacts")

type candState uint8

const (
	unqueried candState = iota
	inFlight
	answered
	failed
)

type candidate struct {
	Contact
	net   uint64 // netOf(Addr), 0 if uncapped
	dist  distance
	depth int // hops to learn this candidate; 0 for seeds
	state candState
}

type reply struct {
	c        *candidate
	contacts []Contact
	err      error
}

// Lookup is Kademlia's iterative node lookup. It starts from seeds (the
// caller's own nearest contacts), keeps up to Alpha queries in flight, each
// to the nearest candidate not yet asked among the K nearest known, and
// ends when the K nearest candidates that did not fail have all answered.
// NAT contacts are never queried; a NATed target is found through the
// nodes that return it.
//
// The lookup's state is owned by the calling goroutine; each query runs in
// its own goroutine and reports back on a channel. Lookup returns only
// after every query goroutine has finished.
func Lookup(ctx context.Context, target key.Public, seeds []Contact, cfg LookupConfig, query QueryFunc) Result {
	if cfg.K <= 0 {
		cfg.K = DefaultK
	}
	if cfg.Alpha <= 0 {
		cfg.Alpha = DefaultAlpha
	}
	if cfg.PerPrefix == 0 {
		cfg.PerPrefix = DefaultPerPrefix
	}
	l := &lookup{
		cfg:    cfg,
		target: target,
		byKey:  make(map[key.Public]*candidate),
		res:    Result{Target: target, Hops: -1},
	}
	for _, s := range seeds {
		l.learn(s, 0, Contact{})
	}
	if len(l.sorted) == 0 && !l.res.Found {
		l.res.Err = ErrNoSeeds
		return l.res
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	replies := make(chan reply, cfg.Alpha)
	inflight := 0
	for {
		for inflight < cfg.Alpha {
			c := l.next()
			if c == nil {
				break
			}
			c.state = inFlight
			inflight++
			l.res.Queries++
			go func() {
				qctx := ctx
				if cfg.Timeout > 0 {
					var cancel context.CancelFunc
					qctx, cancel = context.WithTimeout(ctx, cfg.Timeout)
					defer cancel()
				}
				contacts, err := query(qctx, c.Contact, target)
				replies <- reply{c, contacts, err}
			}()
		}
		if inflight == 0 || l.done() || (cfg.StopWhenFound && l.found()) {
			break
		}
		var r reply
		select {
		case r = <-replies:
		case <-ctx.Done():
			l.res.Err = ctx.Err()
		}
		if l.res.Err != nil {
			break
		}
		inflight--
		l.handle(r)
	}
	// Stragglers outside the K nearest, or a lookup cut short: stop them
	// and wait, so that no goroutine outlives the lookup. A query that
	// fails now was cancelled, and is no failure of its node.
	cancel()
	for ; inflight > 0; inflight-- {
		if r := <-replies; r.err == nil {
			l.handle(r)
		} else {
			r.c.state = failed
		}
	}
	l.finish()
	return l.res
}

// lookup is the state of one Lookup, owned by its goroutine.
type lookup struct {
	cfg    LookupConfig
	target key.Public
	sorted []*candidate // direct candidates, nearest first
	byKey  map[key.Public]*candidate
	vias   []viaReport // nodes that returned the NATed target
	res    Result
}

// viaReport is a direct node's answer that it keeps the NATed target.
type viaReport struct {
	via, target Contact
}

// learn takes in contact c, learned at depth from node from (zero for a
// seed).
func (l *lookup) learn(c Contact, depth int, from Contact) {
	if c.Key == l.cfg.Self || (l.cfg.Admit != nil && !l.cfg.Admit(c)) {
		return
	}
	if c.Key == l.target && l.res.Hops < 0 {
		l.res.Hops = depth
	}
	if c.NAT {
		if c.Key != l.target {
			return
		}
		if from.Key.IsZero() {
			// Our own NAT contact: we keep it, we are its Via.
			l.res.Found, l.res.Contact = true, c
			return
		}
		for _, v := range l.vias {
			if v.via.Key == from.Key {
				return
			}
		}
		l.vias = append(l.vias, viaReport{from, c})
		return
	}
	if _, ok := l.byKey[c.Key]; ok {
		return
	}
	cand := &candidate{Contact: c, net: netOf(c.Addr.Addr()), dist: xor(c.Key, l.target), depth: depth}
	l.byKey[c.Key] = cand
	// Insert in order; candidate lists are a few hundred long at most.
	i := len(l.sorted)
	for i > 0 && l.sorted[i-1].dist.cmp(cand.dist) > 0 {
		i--
	}
	l.sorted = append(l.sorted, nil)
	copy(l.sorted[i+1:], l.sorted[i:])
	l.sorted[i] = cand
}

// found reports whether the target answered or a via vouched for it.
func (l *lookup) found() bool {
	if c := l.byKey[l.target]; c != nil && c.state == answered {
		return true
	}
	return len(l.vias) > 0 || l.res.Found
}

// window returns the K candidates that have not failed that a lookup
// waits for: the nearest, each prefix taking one share of PerPrefix per
// round (see diverse), nearest first.
func (l *lookup) window() []*candidate {
	live := make([]*candidate, 0, len(l.sorted))
	for _, c := range l.sorted {
		if c.state != failed {
			live = append(live, c)
		}
	}
	take := diversePick(len(live), l.cfg.K, l.cfg.PerPrefix, func(i int) uint64 { return live[i].net })
	out := live[:0]
	for i, c := range live {
		if take[i] {
			out = append(out, c)
		}
	}
	return out
}

// next returns the nearest unqueried candidate of the window, or nil.
func (l *lookup) next() *candidate {
	for _, c := range l.window() {
		if c.state == unqueried {
			return c
		}
	}
	return nil
}

// done reports whether the window's candidates have all answered.
func (l *lookup) done() bool {
	for _, c := range l.window() {
		if c.state != answered {
			return false
		}
	}
	return true
}

func (l *lookup) handle(r reply) {
	if r.err != nil {
		r.c.state = failed
		l.res.Failures++
		return
	}
	r.c.state = answered
	l.res.Rounds = max(l.res.Rounds, r.c.depth+1)
	for _, c := range r.contacts {
		l.learn(c, r.c.depth+1, r.c.Contact)
	}
}

func (l *lookup) finish() {
	for _, c := range l.window() {
		if c.state == answered {
			l.res.Closest = append(l.res.Closest, c.Contact)
		}
	}
	if c := l.byKey[l.target]; c != nil && c.state == answered {
		l.res.Found, l.res.Contact = true, c.Contact
	}
	if len(l.vias) > 0 && !l.res.Found {
		l.res.Found, l.res.Contact = true, l.agreed()
	}
	for _, v := range l.vias {
		l.res.Vias = append(l.res.Vias, v.via)
	}
	sortByDistance(l.res.Vias, l.target)
}

// agreed returns the target's contact as the vias report it: the address
// that vias from the most prefixes agree on, so that Sybil vias from one
// prefix count once; among equals, the nearest via's, whose view of the
// target is the freshest Kademlia can offer.
func (l *lookup) agreed() Contact {
	type vote struct {
		c       Contact
		nets    map[uint64]bool
		nearest distance
	}
	var votes []*vote
	for _, v := range l.vias {
		i := slices.IndexFunc(votes, func(x *vote) bool { return x.c.Addr == v.target.Addr })
		if i < 0 {
			votes = append(votes, &vote{c: v.target, nets: map[uint64]bool{}, nearest: xor(v.via.Key, l.target)})
			i = len(votes) - 1
		}
		x := votes[i]
		n := netOf(v.via.Addr.Addr())
		if n == 0 || l.cfg.PerPrefix < 0 {
			n = uint64(len(x.nets)) + 1<<40 // uncapped: every via counts
		}
		x.nets[n] = true
		if d := xor(v.via.Key, l.target); d.cmp(x.nearest) < 0 {
			x.c, x.nearest = v.target, d
		}
	}
	best := votes[0]
	for _, x := range votes[1:] {
		if len(x.nets) > len(best.nets) || (len(x.nets) == len(best.nets) && x.nearest.cmp(best.nearest) < 0) {
			best = x
		}
	}
	return best.c
}
