package wire

import (
	"hash/maphash"
	"net/netip"
	"sync"
	"time"
)

// A Rate is how many events a second are allowed on average, and how many
// may come at once.
type Rate struct {
	PerSecond int
	Burst     int
}

// DeriveLimits bound the key derivations (X25519 and HKDF, about 100 µs of
// CPU each) that packets from senders without cached keys can cause, so
// that a flood of fresh keys takes a bounded share of a core and delays
// the other packets of the receive goroutine (WireGuard's) by at most a
// Burst of derivations. A zero Rate is no limit.
type DeriveLimits struct {
	// Total bounds all derivations for received packets together.
	Total Rate
	// PerPrefix bounds those for packets from one source prefix: a /24 of
	// IPv4 or a /48 of IPv6 (OpenInPlace; Open knows no source).
	PerPrefix Rate
}

// DefaultDeriveLimits are the limits a node runs with: 500 derivations a
// second are about 5% of a core of a current x86 machine (`go test -bench
// OpenNewSender ./wire/`: about 95 µs each), and a burst of 16 holds the
// receive goroutine up for 1.5-3 ms. Honest new senders are far fewer: a
// node hears from a key once, then keeps its keys. `go run ./bench/flood`
// measures a node's throughput under a flood of fresh keys.
var DefaultDeriveLimits = DeriveLimits{
	Total:     Rate{PerSecond: 500, Burst: 16},
	PerPrefix: Rate{PerSecond: 20, Burst: 4},
}

// WithDeriveLimits makes Open and OpenInPlace refuse (as ErrBusy) packets
// from senders without cached keys beyond the limits l. Without it a codec
// derives keys for every sender, as tests and the simulator want.
func WithDeriveLimits(l DeriveLimits) Option {
	return func(c *Codec) { c.limit = newLimiter(l) }
}

// prefixBuckets is the number of buckets of the per-prefix limit. Prefixes
// share them by a keyed hash: a sender cannot choose whose bucket it
// drains, and the state is bounded however many prefixes send.
const prefixBuckets = 4096

// A limiter is a token bucket for all derivations and one for each source
// prefix (by hash), in the GCRA form: a bucket is the time at which it
// would be full again.
type limiter struct {
	total, prefix gcra
	seed          maphash.Seed

	mu      sync.Mutex
	all     int64                // guarded by mu
	buckets [prefixBuckets]int64 // guarded by mu
}

// gcra is a Rate as the generic cell rate algorithm uses it: every event
// moves a bucket's time on by interval, and an event is allowed while the
// bucket's time is at most tolerance ahead of now.
type gcra struct {
	interval, tolerance int64 // ns; interval 0: no limit
}

func newGCRA(r Rate) gcra {
	if r.PerSecond <= 0 {
		return gcra{}
	}
	iv := int64(time.Second) / int64(r.PerSecond)
	return gcra{interval: iv, tolerance: iv * int64(max(r.Burst, 1)-1)}
}

// allows reports whether a bucket at time tat allows an event at now.
func (g gcra) allows(tat, now int64) bool {
	return g.interval == 0 || tat-now <= g.tolerance
}

// take returns the bucket's time after an event at now.
func (g gcra) take(tat, now int64) int64 { return max(tat, now) + g.interval }

func newLimiter(l DeriveLimits) *limiter {
	return &limiter{total: newGCRA(l.Total), prefix: newGCRA(l.PerPrefix), seed: maphash.MakeSeed()}
}

// allow reports whether a packet from src may cost a derivation at now
// (Unix ns), and counts it if so. An invalid src has no prefix: only the
// total applies.
func (l *limiter) allow(src netip.Addr, now int64) bool {
	if l == nil {
		return true
	}
	var b *int64
	if p, ok := sourcePrefix(src); ok {
		b = &l.buckets[maphash.Comparable(l.seed, p)%prefixBuckets]
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.total.allows(l.all, now) || b != nil && !l.prefix.allows(*b, now) {
		return false
	}
	l.all = l.total.take(l.all, now)
	if b != nil {
		*b = l.prefix.take(*b, now)
	}
	return true
}

// sourcePrefix returns the prefix a source address is limited by: its /24
// for IPv4, its /48 for IPv6.
func sourcePrefix(a netip.Addr) (netip.Prefix, bool) {
	a = a.Unmap()
	bits := 48
	if a.Is4() {
		bits = 24
	}
	p, err := a.Prefix(bits)
	return p, err == nil && p.IsValid()
}
