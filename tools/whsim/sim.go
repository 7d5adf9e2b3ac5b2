package main

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"runtime"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/whnet/wh/dht"
	"github.com/whnet/wh/key"
	"github.com/whnet/wh/wire"
)

// simNode is one node of a simulated network.
type simNode struct {
	dht.Contact
	srv  *dht.Server
	dead atomic.Bool
}

// nodeAddr returns node i's address: a public IPv4 address in a /24 of its
// own, so that the tables' per-prefix caps never bind.
func nodeAddr(i int) netip.AddrPort {
	v := uint32(20<<24) + uint32(i)<<8 + 1
	return netip.AddrPortFrom(netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)}), 62096)
}

func randKey(r *rand.Rand) key.Public {
	var k key.Public
	for i := 0; i < len(k); i += 8 {
		v := r.Uint64()
		for j := range 8 {
			k[i+j] = byte(v >> (8 * j))
		}
	}
	return k
}

// memNet carries messages between Servers by calling Handle directly.
type memNet struct {
	nodes []*simNode
	loss  float64
	sent  atomic.Uint64
}

// memTransport is one node's view of a memNet.
type memTransport struct {
	net  *memNet
	from *simNode
}

// Send delivers m at once, unless the message is lost or either end is
// dead; then it vanishes silently, as a UDP datagram would.
func (t *memTransport) Send(to key.Public, addr netip.AddrPort, m wire.Message) error {
	t.net.sent.Add(1)
	a := addr.Addr().As4()
	i := int((uint32(a[0])<<24 | uint32(a[1])<<16 | uint32(a[2])<<8 | uint32(a[3]) - 20<<24 - 1) >> 8)
	if i < 0 || i >= len(t.net.nodes) || t.from.dead.Load() {
		return nil
	}
	dst := t.net.nodes[i]
	if dst.Key != to || dst.Addr != addr || dst.dead.Load() || (t.net.loss > 0 && rand.Float64() < t.net.loss) {
		return nil
	}
	dst.srv.Handle(t.from.Key, t.from.Addr, m)
	return nil
}

// runMemory is the in-memory simulation.
func runMemory(o options) (*report, error) {
	r := rand.New(rand.NewPCG(o.seed, 0x5eed))
	ctx := context.Background()
	rep := &report{Nodes: o.nodes, Build: o.build, Dead: o.dead, Loss: o.loss, Seed: o.seed, Find: o.find}
	start := time.Now()

	net := &memNet{loss: o.loss}
	net.nodes = make([]*simNode, o.nodes)
	for i := range net.nodes {
		n := &simNode{Contact: dht.Contact{Key: randKey(r), Addr: nodeAddr(i)}}
		var boot []dht.Contact
		if o.build == "join" && i > 0 {
			boot = []dht.Contact{net.nodes[r.IntN(i)].Contact}
		}
		srv, err := dht.NewServer(dht.Config{
			Key:       n.Key,
			Transport: &memTransport{net: net, from: n},
			Boot:      boot,
			// Answers arrive before Send returns: a query that has no
			// answer after a millisecond was lost.
			QueryTimeout: time.Millisecond,
		})
		if err != nil {
			return nil, err
		}
		n.srv = srv
		net.nodes[i] = n
	}
	defer func() {
		for _, n := range net.nodes {
			n.srv.Close()
		}
	}()
	if err := build(ctx, o, net.nodes, r); err != nil {
		return nil, err
	}
	rep.BuildSec = time.Since(start).Seconds()
	rep.AvgTable = avgTable(net.nodes)
	kill(net.nodes, o.dead, r, func(i int) { net.nodes[i].dead.Store(true) })

	lookupStart := time.Now()
	rep.summarize(measure(ctx, net.nodes, o, r))
	rep.LookupSec = time.Since(lookupStart).Seconds()
	if err := writeHeapProfile(o.memprofile); err != nil {
		return nil, err
	}
	rep.WallSec = time.Since(start).Seconds()
	return rep, nil
}

// build fills the nodes' tables as o.build says.
func build(ctx context.Context, o options, nodes []*simNode, r *rand.Rand) error {
	if o.build == "fill" {
		fill(nodes, r.Uint64())
		return nil
	}
	for i, n := range nodes[1:] {
		if err := n.srv.Bootstrap(ctx); err != nil {
			return fmt.Errorf("node %d joining: %w", i+1, err)
		}
	}
	// Early joiners know little of the later ones until their buckets
	// are refreshed, as Run would after RefreshInterval.
	parallel(len(nodes), o.parallel, func(i int, r *rand.Rand) {
		nodes[i].srv.Refresh(ctx, r)
	}, r.Uint64())
	return nil
}

// fill gives each node's bucket i up to K nodes drawn at random among all
// the nodes that share exactly i leading bits with it.
func fill(nodes []*simNode, seed uint64) {
	sorted := slices.Clone(nodes)
	sort.Slice(sorted, func(i, j int) bool { return bytes.Compare(sorted[i].Key[:], sorted[j].Key[:]) < 0 })
	// count returns the range of sorted whose keys lie in [lo, hi].
	count := func(lo, hi key.Public) (from, to int) {
		from = sort.Search(len(sorted), func(i int) bool { return bytes.Compare(sorted[i].Key[:], lo[:]) >= 0 })
		to = sort.Search(len(sorted), func(i int) bool { return bytes.Compare(sorted[i].Key[:], hi[:]) > 0 })
		return from, to
	}
	now := time.Now()
	parallel(len(nodes), runtime.GOMAXPROCS(0), func(ni int, r *rand.Rand) {
		tab := nodes[ni].srv.Table()
		self := tab.Self()
		for i := range 256 {
			from, to := count(dht.PrefixRange(self, i, true))
			for _, j := range pick(r, to-from, tab.K()) {
				tab.Add(sorted[from+j].Contact, now)
			}
			// Deeper buckets draw from the keys sharing i+1 bits with
			// self: stop when self is the only one left.
			if from, to := count(dht.PrefixRange(self, i+1, false)); to-from <= 1 {
				return
			}
		}
	}, seed)
}

// pick returns min(k, n) distinct random integers in [0, n).
func pick(r *rand.Rand, n, k int) []int {
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

// parallel calls f(i, r) for i in [0, n) on workers goroutines, each with a
// random source of its own derived from seed.
func parallel(n, workers int, f func(i int, r *rand.Rand), seed uint64) {
	var next atomic.Int64
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			r := rand.New(rand.NewPCG(seed, uint64(w)))
			for i := int(next.Add(1) - 1); i < n; i = int(next.Add(1) - 1) {
				f(i, r)
			}
		})
	}
	wg.Wait()
}

// kill calls die for a random fraction of the nodes' indexes.
func kill(nodes []*simNode, frac float64, r *rand.Rand, die func(i int)) {
	for _, i := range r.Perm(len(nodes))[:int(frac*float64(len(nodes)))] {
		die(i)
	}
}

func avgTable(nodes []*simNode) float64 {
	total := 0
	for _, n := range nodes {
		total += n.srv.Table().Len()
	}
	return float64(total) / float64(len(nodes))
}

// measure runs o.lookups lookups, o.parallel at a time, each of a random
// live key from a random other live node.
func measure(ctx context.Context, nodes []*simNode, o options, r *rand.Rand) []sample {
	type pair struct{ from, to *simNode }
	var live []*simNode
	for _, n := range nodes {
		if !n.dead.Load() {
			live = append(live, n)
		}
	}
	pairs := make([]pair, o.lookups)
	for i := range pairs {
		from, to := live[r.IntN(len(live))], live[r.IntN(len(live))]
		for to == from {
			to = live[r.IntN(len(live))]
		}
		pairs[i] = pair{from, to}
	}
	samples := make([]sample, len(pairs))
	parallel(len(pairs), o.parallel, func(i int, _ *rand.Rand) {
		p := pairs[i]
		start := time.Now()
		lookup := p.from.srv.Lookup
		if o.find {
			lookup = p.from.srv.Find
		}
		res := lookup(ctx, p.to.Key)
		samples[i] = sample{
			found:          res.Found && res.Contact.Key == p.to.Key,
			hops:           res.Hops,
			rounds:         res.Rounds,
			queries:        res.Queries,
			virtualElapsed: time.Since(start),
		}
	}, 0)
	return samples
}
