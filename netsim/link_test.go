package netsim_test

import (
	"encoding/binary"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/whnet/wh/netsim"
)

// TestLatency checks one-way delays in fake time: the core's latency for
// packets that cross the internet, plus the access links of both ends.
func TestLatency(t *testing.T) {
	const core = 30 * time.Millisecond
	tests := []struct {
		name         string
		linkA, linkB time.Duration
		sameLAN      bool
		want         time.Duration
	}{
		{name: "core", want: core},
		{name: "core_and_links", linkA: 5 * time.Millisecond, linkB: 7 * time.Millisecond, want: core + 12*time.Millisecond},
		{name: "through_nat", sameLAN: false, linkB: 100 * time.Millisecond, want: core + 100*time.Millisecond},
		{name: "same_lan_links_only", sameLAN: true, linkA: 5 * time.Millisecond, linkB: 7 * time.Millisecond, want: 12 * time.Millisecond},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				n := newInternet(t, netsim.Options{Latency: core})
				r := n.AddNAT(netsim.FullCone, ip("198.51.100.1"), prefix("192.168.1.0/24"))
				ha := n.AddHost(ip("203.0.113.1"))
				if tc.sameLAN {
					ha = r.AddHost(ip("192.168.1.9"))
				}
				hb := r.AddHost(ip("192.168.1.10"))
				ha.SetLink(tc.linkA, 0, 0)
				hb.SetLink(tc.linkB, 0, 0)
				a, b := listen(t, ha, 7), listen(t, hb, 7)
				to := b.LocalAddrPort()
				if !tc.sameLAN {
					to = ipport("198.51.100.1:7") // the full cone's default host is b
				}
				start := time.Now()
				send(t, a, to, "x")
				recv(t, b)
				if d := time.Since(start); d != tc.want {
					t.Errorf("packet took %v, want %v", d, tc.want)
				}
			})
		})
	}
}

// TestJitter checks that delays spread over [latency, latency+jitter)
// and that packets can overtake each other.
func TestJitter(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const lat, jit = 10 * time.Millisecond, 5 * time.Millisecond
		_, a, b := pair(t, netsim.Options{Seed: 1, Latency: lat, Jitter: jit})
		start := time.Now()
		for i := range 100 {
			a.WriteToUDPAddrPort([]byte{byte(i)}, b.LocalAddrPort())
		}
		delays := map[time.Duration]bool{}
		var order []byte
		buf := make([]byte, 1)
		for range 100 {
			if _, _, err := b.ReadFromUDPAddrPort(buf); err != nil {
				t.Fatal(err)
			}
			d := time.Since(start)
			if d < lat || d >= lat+jit {
				t.Fatalf("delay %v outside [%v, %v)", d, lat, lat+jit)
			}
			delays[d] = true
			order = append(order, buf[0])
		}
		if len(delays) < 50 {
			t.Errorf("only %d distinct delays among 100 packets", len(delays))
		}
		if slices.IsSorted(order) {
			t.Error("no packet overtook another")
		}
	})
}

// received sends count numbered packets from each of senders hosts at
// once, each from its own goroutine, and returns the numbers that got
// through from each, sorted.
func received(t *testing.T, opt netsim.Options, senders, count int) [][]uint32 {
	t.Helper()
	got := make([][]uint32, senders)
	synctest.Test(t, func(t *testing.T) {
		n := newInternet(t, opt)
		dst := n.AddHost(ip("198.51.100.1"))
		dst.SetLink(0, 0, opt.Loss) // a lossy access link as well as the core
		var wg sync.WaitGroup
		for s := range senders {
			rc := listen(t, dst, uint16(1000+s))
			wg.Go(func() {
				c := listen(t, n.AddHost(netip.AddrFrom4([4]byte{203, 0, 113, byte(1 + s)})), 7)
				for i := range uint32(count) {
					c.WriteToUDPAddrPort(binary.BigEndian.AppendUint32(nil, i), rc.LocalAddrPort())
					time.Sleep(time.Millisecond)
				}
			})
			wg.Go(func() {
				buf := make([]byte, 4)
				for {
					rc.SetReadDeadline(time.Now().Add(time.Second))
					if _, _, err := rc.ReadFromUDPAddrPort(buf); err != nil {
						return
					}
					got[s] = append(got[s], binary.BigEndian.Uint32(buf))
				}
			})
		}
		wg.Wait()
		checkAccounted(t, n)
	})
	for _, g := range got {
		slices.Sort(g)
	}
	return got
}

// TestLossRepeats checks that the seed decides which packets are lost,
// whatever the interleaving of concurrent senders.
func TestLossRepeats(t *testing.T) {
	opt := netsim.Options{Seed: 42, Latency: 10 * time.Millisecond, Jitter: 10 * time.Millisecond, Loss: 0.2}
	const senders, count = 8, 500
	first := received(t, opt, senders, count)
	second := received(t, opt, senders, count)
	if diff := cmp.Diff(first, second); diff != "" {
		t.Errorf("same seed, different packets lost (-first +second):\n%s", diff)
	}
	opt.Seed++
	if other := received(t, opt, senders, count); cmp.Equal(first, other) {
		t.Error("seeds 42 and 43 lost the same packets")
	}
	// Two lossy hops of 20%: 64% get through.
	total := 0
	for _, g := range first {
		total += len(g)
	}
	if rate := float64(total) / (senders * count); rate < 0.60 || rate > 0.68 {
		t.Errorf("%.3f of packets got through two hops losing 20%% each, want about 0.64", rate)
	}
}
