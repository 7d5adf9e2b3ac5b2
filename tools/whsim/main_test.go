package main

import (
	"testing"
	"testing/synctest"
	"time"
)

func TestPercentile(t *testing.T) {
	xs := []int{5, 1, 4, 2, 3, 6, 7, 8, 9, 10}
	tests := []struct {
		name string
		p    int
		want int
	}{
		{"p50", 50, 5},
		{"p95", 95, 10},
		{"max", 100, 10},
		{"p1", 1, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := percentile(xs, tc.p); got != tc.want {
				t.Fatalf("percentile(%d) = %d, want %d", tc.p, got, tc.want)
			}
		})
	}
	if got := percentile([]time.Duration(nil), 50); got != 0 {
		t.Fatalf("percentile of nothing = %v", got)
	}
}

// TestSmallNetworks runs the in-memory simulator both ways of building
// tables, with dead nodes and loss, and holds it to the targets it reports
// on at scale.
func TestSmallNetworks(t *testing.T) {
	tests := []struct {
		name string
		o    options
		min  float64 // success rate
	}{
		{"fill", options{nodes: 1000, lookups: 200, build: "fill"}, 1},
		{"join", options{nodes: 200, lookups: 200, build: "join"}, 1},
		{"dead_and_loss", options{nodes: 1000, lookups: 200, build: "fill", dead: 0.1, loss: 0.01}, 0.99},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.o.seed, tc.o.parallel = 1, 2
			r, err := runMemory(tc.o)
			if err != nil {
				t.Fatal(err)
			}
			if r.SuccessRate < tc.min || r.RoundsP50 > 4 || r.Lookups != tc.o.lookups {
				t.Fatalf("success %.3f (want ≥ %.3f), rounds p50 %d (want ≤ 4), %d lookups", r.SuccessRate, tc.min, r.RoundsP50, r.Lookups)
			}
		})
	}
}

func TestPacketNetwork(t *testing.T) {
	o := options{nodes: 60, lookups: 60, build: "join", seed: 2, parallel: 8, loss: 0.01,
		latency: 20 * time.Millisecond, jitter: 10 * time.Millisecond}
	var r *report
	synctest.Test(t, func(t *testing.T) {
		var err error
		if r, err = packetSim(t, o); err != nil {
			t.Fatal(err)
		}
	})
	if r.SuccessRate < 0.99 || r.TimeMsP50 == nil || *r.TimeMsP50 < 2*20 {
		t.Fatalf("success %.3f, time p50 %v ms; want ≥ 0.99 and at least one round trip", r.SuccessRate, r.TimeMsP50)
	}
}

// TestClusteredNetworkWithSybils holds the simulator to the targets of
// dense addressing: NATed nodes behind a few CGNAT addresses, everyone in
// five /24s, and Sybil keys from one /24 or one address aiming at one key.
// Without the shares per prefix, the same Sybils capture the key.
func TestClusteredNetworkWithSybils(t *testing.T) {
	base := options{nodes: 1000, lookups: 300, build: "fill", seed: 3, parallel: 2,
		prefixes: 5, nat: 0.5, cgnat: 2, sybils: 500, sybilFrom: "prefix"}
	for _, tc := range []struct {
		name       string
		edit       func(*options)
		minSuccess float64
		maxCapture float64
		minCapture float64
	}{
		{"sybil_prefix", func(*options) {}, 0.999, 0.01, 0},
		{"sybil_address", func(o *options) { o.sybilFrom = "addr" }, 0.999, 0.01, 0},
		{"direct_victim", func(o *options) { o.victim = "direct" }, 0.999, 0.01, 0},
		{"one_prefix_for_all", func(o *options) { o.prefixes, o.cgnat, o.sybils = 1, 1, 0 }, 0.999, 0, 0},
		{"no_shares", func(o *options) { o.perPrefix = -1 }, 0, 1, 0.5},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := base
			tc.edit(&o)
			if err := o.checkClustering(); err != nil {
				t.Fatal(err)
			}
			r, err := runMemory(o)
			if err != nil {
				t.Fatal(err)
			}
			if r.SuccessRate < tc.minSuccess || r.CaptureRate > tc.maxCapture || r.CaptureRate < tc.minCapture {
				t.Fatalf("success %.3f (want ≥ %.3f), captured %.3f (want %.2f to %.2f)", r.SuccessRate, tc.minSuccess, r.CaptureRate, tc.minCapture, tc.maxCapture)
			}
			t.Logf("success %.3f, hops p50 %d, captured %.3f", r.SuccessRate, r.HopsP50, r.CaptureRate)
		})
	}
}
