package dht

import (
	"bytes"
	"context"
	"errors"
	"math/rand/v2"
	"net/netip"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/whnet/wh/key"
)

// fakeNet is a network of tables without packets: a query is a call to the
// queried node's Table.Closest.
type fakeNet struct {
	t        testing.TB
	nodes    map[key.Public]*fakeNode
	list     []*fakeNode
	inflight atomic.Int32 // queries running now
	maxIn    atomic.Int32 // most queries ever running at once
}

type fakeNode struct {
	Contact
	table *Table
	dead  bool
}

var errDead = errors.New("dead node")

// newFakeNet builds n direct nodes and nat NATed ones. Every table is
// filled as a network converges to: bucket i of a node holds K random
// direct nodes among those sharing exactly i bits with it. Each NATed node
// is then in the tables of the K direct nodes nearest to it.
func newFakeNet(t testing.TB, r *rand.Rand, n, nat int) *fakeNet {
	return newFakeNetWith(t, r, n, nat, TableConfig{}, nil)
}

// newFakeNetWith is newFakeNet with tables of config cfg, which hear from
// first before anyone else.
func newFakeNetWith(t testing.TB, r *rand.Rand, n, nat int, cfg TableConfig, first []Contact) *fakeNet {
	t.Helper()
	f := &fakeNet{t: t, nodes: make(map[key.Public]*fakeNode)}
	for i := range n + nat {
		c := Contact{Key: randKey(r), Addr: publicAddr(i), NAT: i >= n}
		node := &fakeNode{Contact: c, table: NewTable(c.Key, cfg)}
		for _, x := range first {
			node.table.Add(x, t0)
		}
		f.nodes[c.Key] = node
		f.list = append(f.list, node)
	}
	direct := slices.Clone(f.list[:n])
	sort.Slice(direct, func(i, j int) bool { return bytes.Compare(direct[i].Key[:], direct[j].Key[:]) < 0 })
	for _, node := range f.list {
		fillTable(node.table, direct, r)
	}
	for _, node := range f.list[n:] {
		near := slices.Clone(direct)
		slices.SortFunc(near, func(a, b *fakeNode) int { return xor(a.Key, node.Key).cmp(xor(b.Key, node.Key)) })
		for _, d := range near[:DefaultK] {
			if _, err := d.table.Add(node.Contact, t0); err != nil {
				t.Fatalf("NAT node into its keeper's table: %v", err)
			}
		}
	}
	return f
}

// fillTable adds to tab, for each bucket, up to K random nodes of sorted
// (sorted by key) that belong in it.
func fillTable(tab *Table, sorted []*fakeNode, r *rand.Rand) {
	self := tab.Self()
	count := func(lo, hi key.Public) (from, to int) {
		from = sort.Search(len(sorted), func(i int) bool { return bytes.Compare(sorted[i].Key[:], lo[:]) >= 0 })
		to = sort.Search(len(sorted), func(i int) bool { return bytes.Compare(sorted[i].Key[:], hi[:]) > 0 })
		return from, to
	}
	for i := range 256 {
		from, to := count(PrefixRange(self, i, true))
		for _, j := range sample(r, to-from, tab.K()) {
			tab.Add(sorted[from+j].Contact, t0)
		}
		// Deeper buckets take their keys from those sharing i+1 bits
		// with self: stop when self is the only one.
		if from, to := count(PrefixRange(self, i+1, false)); to-from <= 1 {
			return
		}
	}
}

// sample returns min(k, n) distinct random integers in [0, n).
func sample(r *rand.Rand, n, k int) []int {
	if n <= k {
		return r.Perm(n)
	}
	out := make([]int, 0, k)
	for len(out) < k {
		if j := r.IntN(n); !slices.Contains(out, j) {
			out = append(out, j)
		}
	}
	return out
}

func (f *fakeNet) query(ctx context.Context, to Contact, target key.Public) ([]Contact, error) {
	n := f.nodes[to.Key]
	if n == nil || n.NAT {
		f.t.Errorf("queried %v, which is unknown or behind NAT", to)
		return nil, errDead
	}
	in := f.inflight.Add(1)
	defer f.inflight.Add(-1)
	for {
		m := f.maxIn.Load()
		if in <= m || f.maxIn.CompareAndSwap(m, in) {
			break
		}
	}
	if n.dead {
		return nil, errDead
	}
	return n.table.Closest(target, DefaultK), nil
}

// lookupFrom runs a lookup from node from, as a Server would: seeds are its
// nearest direct contacts.
func (f *fakeNet) lookupFrom(from *fakeNode, target key.Public) Result {
	seeds := from.table.ClosestDirect(target, DefaultK)
	if c, ok := from.table.Get(target); ok && c.NAT {
		seeds = append(seeds, c)
	}
	return Lookup(context.Background(), target, seeds, LookupConfig{Self: from.Key}, f.query)
}

// nearestLive returns the K live direct nodes nearest to target, by
// looking at every node.
func (f *fakeNet) nearestLive(target key.Public) []Contact {
	var best []Contact // nearest first
	for _, n := range f.list {
		if n.dead || n.NAT {
			continue
		}
		d := xor(n.Key, target)
		if len(best) == DefaultK && d.cmp(xor(best[DefaultK-1].Key, target)) >= 0 {
			continue
		}
		i, _ := slices.BinarySearchFunc(best, d, func(c Contact, d distance) int { return xor(c.Key, target).cmp(d) })
		best = slices.Insert(best, i, n.Contact)
		best = best[:min(len(best), DefaultK)]
	}
	return best
}

func median(xs []int) int {
	xs = slices.Clone(xs)
	slices.Sort(xs)
	return xs[len(xs)/2]
}

func TestLookupOverFakeNetwork(t *testing.T) {
	r := rand.New(rand.NewPCG(21, 22))
	size := 10000
	if raceEnabled {
		size = 2000
	}
	start := time.Now()
	f := newFakeNet(t, r, size, 0)
	t.Logf("built %d tables in %v", size, time.Since(start))

	t.Run("all_alive", func(t *testing.T) {
		start := time.Now()
		var hops, queries []int
		exact := 0
		const lookups = 500
		for range lookups {
			from, target := f.list[r.IntN(len(f.list))], f.list[r.IntN(len(f.list))]
			if from == target {
				continue
			}
			res := f.lookupFrom(from, target.Key)
			if !res.Found || res.Contact != target.Contact || res.Err != nil {
				t.Fatalf("lookup of %v from %v: found=%v contact=%v err=%v", target, from, res.Found, res.Contact, res.Err)
			}
			if slices.Equal(res.Closest, f.nearestLive(target.Key)) {
				exact++
			}
			hops = append(hops, res.Hops)
			queries = append(queries, res.Queries)
		}
		t.Logf("%d lookups in %v: hops p50 %d, queries p50 %d, exact K nearest %d, max in flight %d",
			len(hops), time.Since(start), median(hops), median(queries), exact, f.maxIn.Load())
		if m := median(hops); m > 4 {
			t.Errorf("median hops %d, want ≤ 4", m)
		}
		if exact < len(hops)*99/100 {
			t.Errorf("%d of %d lookups ended with the exact K nearest, want ≥ 99%%", exact, len(hops))
		}
		if m := f.maxIn.Load(); m > DefaultAlpha {
			t.Errorf("%d queries in flight at once, want ≤ α = %d", m, DefaultAlpha)
		}
	})

	t.Run("stop_when_found", func(t *testing.T) {
		var full, quick []int
		for range 200 {
			from, target := f.list[r.IntN(len(f.list))], f.list[r.IntN(len(f.list))]
			if from == target {
				continue
			}
			seeds := from.table.ClosestDirect(target.Key, DefaultK)
			cfg := LookupConfig{Self: from.Key}
			res := Lookup(context.Background(), target.Key, seeds, cfg, f.query)
			cfg.StopWhenFound = true
			fast := Lookup(context.Background(), target.Key, seeds, cfg, f.query)
			if !fast.Found || fast.Contact != target.Contact || fast.Failures != 0 {
				t.Fatalf("quick lookup of %v: found=%v contact=%v failures=%d", target, fast.Found, fast.Contact, fast.Failures)
			}
			full, quick = append(full, res.Queries), append(quick, fast.Queries)
		}
		if median(quick) >= median(full) {
			t.Errorf("median queries: %d stopping when found, %d to the K nearest; want fewer", median(quick), median(full))
		}
	})
	t.Run("ten_percent_dead", func(t *testing.T) {
		for _, n := range f.list {
			n.dead = r.Float64() < 0.1
		}
		t.Cleanup(func() {
			for _, n := range f.list {
				n.dead = false
			}
		})
		found, total := 0, 0
		for total < 300 {
			from, target := f.list[r.IntN(len(f.list))], f.list[r.IntN(len(f.list))]
			if from == target || from.dead || target.dead {
				continue
			}
			total++
			if res := f.lookupFrom(from, target.Key); res.Found {
				found++
			}
		}
		if found < total*99/100 {
			t.Errorf("found %d of %d targets with 10%% of nodes dead, want ≥ 99%%", found, total)
		}
	})
}

func TestLookupFindsNATedTargetsThroughVias(t *testing.T) {
	r := rand.New(rand.NewPCG(23, 24))
	f := newFakeNet(t, r, 2000, 50)
	for _, target := range f.list[2000:] {
		from := f.list[r.IntN(2000)]
		res := f.lookupFrom(from, target.Key)
		if !res.Found || res.Contact != target.Contact {
			t.Fatalf("NATed %v: found=%v contact=%v", target, res.Found, res.Contact)
		}
		keepers := f.nearestLive(target.Key)
		if len(res.Vias) < DefaultK/2 {
			t.Errorf("NATed %v: %d vias, want most of its %d keepers", target, len(res.Vias), DefaultK)
		}
		for _, v := range res.Vias {
			if !slices.Contains(keepers, v) {
				t.Errorf("NATed %v: via %v does not keep it", target, v)
			}
		}
	}
	// f.query fails the test if a NAT node is ever queried.
}

func TestLookupHopsAndRounds(t *testing.T) {
	// A chain: seed a knows b, b knows c, c knows the target d.
	r := rand.New(rand.NewPCG(25, 26))
	var cs [4]Contact
	for i := range cs {
		cs[i] = Contact{Key: randKey(r), Addr: publicAddr(i)}
	}
	knows := map[key.Public][]Contact{cs[0].Key: {cs[1]}, cs[1].Key: {cs[2]}, cs[2].Key: {cs[3]}}
	query := func(_ context.Context, to Contact, _ key.Public) ([]Contact, error) { return knows[to.Key], nil }
	res := Lookup(context.Background(), cs[3].Key, cs[:1], LookupConfig{Self: randKey(r)}, query)
	if !res.Found || res.Hops != 3 || res.Rounds != 4 || res.Queries != 4 || res.Failures != 0 {
		t.Fatalf("chain lookup: found=%v hops=%d rounds=%d queries=%d failures=%d; want true 3 4 4 0",
			res.Found, res.Hops, res.Rounds, res.Queries, res.Failures)
	}
	if res := Lookup(context.Background(), cs[3].Key, cs[3:], LookupConfig{}, query); res.Hops != 0 || !res.Found {
		t.Fatalf("target as seed: hops=%d found=%v; want 0 true", res.Hops, res.Found)
	}
}

func TestLookupFiltersAndBounds(t *testing.T) {
	r := rand.New(rand.NewPCG(27, 28))
	seed := Contact{Key: randKey(r), Addr: publicAddr(0)}
	bad := Contact{Key: randKey(r), Addr: publicAddr(1)}
	self := Contact{Key: randKey(r), Addr: publicAddr(2)}
	natOther := Contact{Key: randKey(r), Addr: publicAddr(3), NAT: true}
	target := randKey(r)

	t.Run("admit_self_and_nat_are_never_queried", func(t *testing.T) {
		var queried []Contact
		query := func(_ context.Context, to Contact, _ key.Public) ([]Contact, error) {
			queried = append(queried, to)
			return []Contact{bad, self, natOther}, nil
		}
		cfg := LookupConfig{Self: self.Key, Admit: func(c Contact) bool { return c.Key != bad.Key }}
		res := Lookup(context.Background(), target, []Contact{seed}, cfg, query)
		if len(queried) != 1 || queried[0] != seed || res.Found {
			t.Fatalf("queried %v, found %v; want only the seed, not found", queried, res.Found)
		}
	})
	t.Run("no_seeds", func(t *testing.T) {
		res := Lookup(context.Background(), target, nil, LookupConfig{}, nil)
		if !errors.Is(res.Err, ErrNoSeeds) {
			t.Fatalf("Err = %v, want ErrNoSeeds", res.Err)
		}
	})
	t.Run("cancel_waits_for_queries", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		var running sync.WaitGroup
		var seeds []Contact
		for i := range 10 {
			seeds = append(seeds, Contact{Key: randKey(r), Addr: publicAddr(10 + i)})
		}
		var returned atomic.Int32
		query := func(ctx context.Context, _ Contact, _ key.Public) ([]Contact, error) {
			running.Done()
			<-ctx.Done()
			time.Sleep(time.Millisecond)
			returned.Add(1)
			return nil, ctx.Err()
		}
		running.Add(DefaultAlpha)
		go func() { running.Wait(); cancel() }()
		res := Lookup(ctx, target, seeds, LookupConfig{}, query)
		if !errors.Is(res.Err, context.Canceled) || returned.Load() != DefaultAlpha {
			t.Fatalf("Err = %v, %d of %d queries returned; want Canceled and all", res.Err, returned.Load(), DefaultAlpha)
		}
	})
	t.Run("per_query_timeout", func(t *testing.T) {
		query := func(ctx context.Context, _ Contact, _ key.Public) ([]Contact, error) {
			<-ctx.Done()
			return nil, ctx.Err()
		}
		res := Lookup(context.Background(), target, []Contact{seed}, LookupConfig{Timeout: time.Millisecond}, query)
		if res.Failures != 1 || res.Err != nil {
			t.Fatalf("failures=%d err=%v; want 1 nil", res.Failures, res.Err)
		}
	})
}

// TestLookupSybilPrefixCannotEclipse puts 300 Sybil keys in one /24, all
// nearer to a target than any honest node, answering lookups with each
// other only; every honest node heard from them before anyone else.
// Lookups still reach the target, because one prefix gets only its share
// of the buckets and of the K places a lookup waits for; without those
// shares, the Sybils capture lookups.
func TestLookupSybilPrefixCannotEclipse(t *testing.T) {
	for _, tc := range []struct {
		name      string
		perPrefix int
	}{{"shares", 0}, {"no_shares", -1}} {
		t.Run(tc.name, func(t *testing.T) {
			r := rand.New(rand.NewPCG(29, 30))
			target := randKey(r)
			var sybils []Contact
			for i := range 300 {
				k := randKey(r)
				copy(k[:3], target[:3]) // 24 bits shared: nearer than any honest node
				sybils = append(sybils, Contact{Key: k, Addr: netip.AddrPortFrom(netip.MustParseAddr("30.0.0.1"), uint16(1024+i))})
			}
			cfg := TableConfig{PerPrefix: tc.perPrefix, PerAddr: tc.perPrefix}
			f := newFakeNetWith(t, r, 1000, 0, cfg, sybils)
			victim := f.list[0]
			// Give the victim the target's key: rebuild its entry in
			// every table that holds it.
			old := victim.Contact
			victim.Key = target
			delete(f.nodes, old.Key)
			f.nodes[target] = victim
			for _, n := range f.list {
				if n.table.Remove(old.Key) {
					n.table.Add(victim.Contact, t0)
				}
			}
			isSybil := map[key.Public]bool{}
			for _, s := range sybils {
				isSybil[s.Key] = true
			}
			query := func(ctx context.Context, to Contact, q key.Public) ([]Contact, error) {
				if isSybil[to.Key] {
					near := slices.Clone(sybils)
					sortByDistance(near, q)
					return near[:DefaultK], nil
				}
				return f.query(ctx, to, q)
			}
			captured := 0
			for range 100 {
				from := f.list[1+r.IntN(999)]
				cfg := LookupConfig{Self: from.Key, PerPrefix: tc.perPrefix}
				res := Lookup(context.Background(), target, from.table.ClosestDirect(target, DefaultK), cfg, query)
				if !res.Found || res.Contact != victim.Contact {
					captured++
				}
			}
			switch {
			case tc.perPrefix == 0 && captured > 0:
				t.Errorf("the Sybils captured %d of 100 lookups", captured)
			case tc.perPrefix < 0 && captured == 0:
				t.Errorf("without shares the Sybils captured nothing: the test does not attack")
			}
			t.Logf("the Sybils captured %d of 100 lookups", captured)
		})
	}
}
