package relay

import "time"

// A Limit bounds a rate of relayed traffic with two token buckets, one for
// packets and one for bytes; a packet passes only if both have room. Bytes
// are counted as UDP payload: the whole relay frame, envelope included.
type Limit struct {
	Packets float64 // packets per second
	Bytes   float64 // bytes per second
	// Burst is how much traffic may pass at once, as time at the rate: a
	// bucket holds Burst×rate tokens (and at least one largest frame), and
	// a sender idle for Burst has a full bucket again.
	Burst time.Duration
}

// withDefaults returns l with each zero field taken from def.
func (l Limit) withDefaults(def Limit) Limit {
	if l.Packets <= 0 {
		l.Packets = def.Packets
	}
	if l.Bytes <= 0 {
		l.Bytes = def.Bytes
	}
	if l.Burst <= 0 {
		l.Burst = def.Burst
	}
	return l
}

// depth returns the bucket sizes of l.
func (l Limit) depth() (packets, bytes float64) {
	s := l.Burst.Seconds()
	return max(l.Packets*s, 1), max(l.Bytes*s, maxFrame)
}

// A limiter is the pair of token buckets of one Limit. The zero value is
// empty; fill makes it full. Not safe for concurrent use.
type limiter struct {
	packets, bytes float64 // tokens
	last           int64   // ns on the Server's clock of the last refill
}

func (b *limiter) fill(l Limit, now int64) {
	b.packets, b.bytes = l.depth()
	b.last = now
}

// allow refills the buckets for the time since the last call and takes
// one packet of size bytes if both have room; otherwise it takes nothing.
func (b *limiter) allow(l Limit, now int64, size int) bool {
	dp, db := l.depth()
	if dt := float64(now-b.last) / 1e9; dt > 0 {
		b.packets = min(dp, b.packets+dt*l.Packets)
		b.bytes = min(db, b.bytes+dt*l.Bytes)
		b.last = now
	}
	if b.packets < 1 || b.bytes < float64(size) {
		return false
	}
	b.packets--
	b.bytes -= float64(size)
	return true
}

// idle reports whether the buckets are full again at now, whatever they
// held at the last call: forgetting them then loses nothing, since a new
// limiter starts full.
func (b *limiter) idle(l Limit, now int64) bool {
	dp, db := l.depth()
	refill := max(dp/l.Packets, db/l.Bytes) * 1e9
	return float64(now-b.last) >= refill
}
