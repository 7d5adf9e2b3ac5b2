package key

import (
	"testing"
	"time"

	"golang.org/x/crypto/blake2b"
)

// The proof-of-work benchmarks run on one goroutine, so their rates are per
// core. Compare BenchmarkPoW's attempts/s with BenchmarkBLAKE2b's hashes/s,
// or run BenchmarkPoWRatio, which measures both in turns and reports
// their ratio: the share of a bare hash's speed that Search keeps.

// BenchmarkPoW measures Search's walk: attempts per second on one core.
func BenchmarkPoW(b *testing.B) {
	w := newWalker(newWalkTable(), DefaultNamespace, MaxWorkbit+1)
	for b.Loop() {
		if _, err := w.step(); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(w.attempts)/b.Elapsed().Seconds(), "attempts/s")
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(w.attempts), "ns/attempt")
}

// BenchmarkBLAKE2b is the baseline: blake2b.Sum256 over a 32-byte key and
// the namespace "public".
func BenchmarkBLAKE2b(b *testing.B) {
	in := append(make([]byte, Size), DefaultNamespace...)
	for b.Loop() {
		h := blake2b.Sum256(in)
		copy(in, h[:]) // a new key each time, as in the walk
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "hashes/s")
}

// BenchmarkPoWRatio takes turns: one group of the walk, then blake2b.Sum256
// over the same group's keys, timing each with the thread's CPU clock, and
// reports attempts/s ÷ hashes/s as "ratio". Taking turns, and counting CPU
// time rather than wall time, makes both see the same machine even when
// other processes share it. It runs the walk with each way of hashing this
// CPU has; Search uses the widest.
func BenchmarkPoWRatio(b *testing.B) {
	tab := newWalkTable()
	for _, mode := range hashModes {
		b.Run(mode.name, func(b *testing.B) {
			skipLanes(b, mode.lanes)
			w := newWalker(tab, DefaultNamespace, MaxWorkbit+1)
			w.hash = newWorkHasher(DefaultNamespace, MaxWorkbit+1, mode.lanes)
			in := append(make([]byte, Size), DefaultNamespace...)
			now, release := threadClock()
			defer release()
			var walkTime, hashTime time.Duration
			var hashes uint64
			var sink byte
			for b.Loop() {
				t0 := now()
				if _, err := w.step(); err != nil {
					b.Fatal(err)
				}
				t1 := now()
				for i := range w.pubs {
					copy(in, w.pubs[i][:])
					h := blake2b.Sum256(in)
					sink ^= h[0]
				}
				t2 := now()
				walkTime += t1 - t0
				hashTime += t2 - t1
				hashes += groupSize
			}
			attemptRate := float64(w.attempts) / walkTime.Seconds()
			hashRate := float64(hashes) / hashTime.Seconds()
			b.ReportMetric(attemptRate, "attempts/s")
			b.ReportMetric(hashRate, "hashes/s")
			b.ReportMetric(attemptRate/hashRate, "ratio")
			_ = sink
		})
	}
}

// BenchmarkHashKeys compares the ways workHasher hashes: eight lanes at
// once with AVX-512, four with AVX2, and blake2b.Sum256 per key.
func BenchmarkHashKeys(b *testing.B) {
	keys := make([]Public, groupSize)
	for i := range keys {
		keys[i][0], keys[i][1] = byte(i), byte(i>>8)
	}
	for _, mode := range hashModes {
		b.Run(mode.name, func(b *testing.B) {
			skipLanes(b, mode.lanes)
			h := newWorkHasher(DefaultNamespace, MaxWorkbit+1, mode.lanes)
			for b.Loop() {
				h.first(keys)
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(keys)), "ns/key")
		})
	}
}
