package main

import (
	"bytes"
	"context"
	"fmt"
	"math/bits"
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
	srv  *dht.Server // nil for a Sybil
	dead atomic.Bool
	// sentTo holds the addresses a NATed node has sent to: the only ones
	// its NAT lets in.
	sentTo sync.Map
	sybil  bool
}

// nodeAddr returns node i's address: a public IPv4 address in a /24 of its
// own, so that the tables' per-prefix caps never bind.
func nodeAddr(i int) netip.AddrPort {
	v := uint32(20<<24) + uint32(i)<<8 + 1
	return netip.AddrPortFrom(netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)}), 62096)
}

// addrs returns the address of every node and whether it is behind NAT,
// as the clustering options say: without -prefixes, each node in a /24 of
// its own; with -prefixes P, nodes spread over P /24s (the direct ones and
// NATed ones with a home router of their own, one address each); with
// -cgnat M, the NATed nodes behind M shared addresses in those /24s,
// each with a port of its own.
func addrs(o options) (out []netip.AddrPort, nat []bool) {
	nNAT := int(o.nat * float64(o.nodes))
	out, nat = make([]netip.AddrPort, o.nodes), make([]bool, o.nodes)
	inPrefix := func(p, h int) netip.AddrPort {
		return netip.AddrPortFrom(netip.AddrFrom4([4]byte{20, byte(p >> 8), byte(p), byte(1 + h%240)}), uint16(62096+h/240))
	}
	for i := range out {
		nat[i] = i >= o.nodes-nNAT
		switch {
		case nat[i] && o.cgnat > 0:
			k := i - (o.nodes - nNAT)
			j := k % o.cgnat // the CGNAT address
			p, h := j, 0
			if o.prefixes > 0 {
				p, h = j%o.prefixes, j/o.prefixes
			}
			a := netip.AddrFrom4([4]byte{21, byte(p >> 8), byte(p), byte(241 + h)})
			if o.prefixes > 0 {
				a = netip.AddrFrom4([4]byte{20, byte(p >> 8), byte(p), byte(241 + h)})
			}
			out[i] = netip.AddrPortFrom(a, uint16(1024+k/o.cgnat))
		case o.prefixes > 0:
			out[i] = inPrefix(i%o.prefixes, i/o.prefixes)
		default:
			out[i] = nodeAddr(i)
		}
	}
	return out, nat
}

// sybilAddr is the address of the i-th Sybil key: all in 30.0.0.0/24, or
// all at 30.0.0.1 with -sybil-from addr.
func sybilAddr(o options, i int) netip.AddrPort {
	if o.sybilFrom == "addr" {
		return netip.AddrPortFrom(netip.AddrFrom4([4]byte{30, 0, 0, 1}), uint16(1024+i))
	}
	return netip.AddrPortFrom(netip.AddrFrom4([4]byte{30, 0, 0, byte(1 + i%250)}), uint16(1024+i/250))
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
	nodes  []*simNode
	byAddr map[netip.AddrPort]*simNode // read-only once built
	sybils []*simNode
	victim *simNode // the key the Sybils try to eclipse
	loss   float64
	sent   atomic.Uint64
}

// memTransport is one node's view of a memNet.
type memTransport struct {
	net  *memNet
	from *simNode
}

// Send delivers m at once, unless the message is lost, either end is dead
// or the destination is behind a NAT it has not opened towards the
// sender; then it vanishes silently, as a UDP datagram would.
func (t *memTransport) Send(to key.Public, addr netip.AddrPort, m wire.Message) error {
	t.net.sent.Add(1)
	if t.from.NAT {
		t.from.sentTo.Store(addr, true)
	}
	dst := t.net.byAddr[addr]
	if dst == nil || t.from.dead.Load() {
		return nil
	}
	if dst.Key != to || dst.dead.Load() || (t.net.loss > 0 && rand.Float64() < t.net.loss) {
		return nil
	}
	if _, open := dst.sentTo.Load(t.from.Addr); dst.NAT && !open {
		return nil
	}
	if dst.sybil {
		t.net.sybilAnswer(dst, t.from, m)
		return nil
	}
	dst.srv.Handle(t.from.Key, t.from.Addr, m)
	return nil
}

// sybilAnswer is what the Sybils say: pings are answered, so that they stay
// in tables, and a FindNode gets the Sybils nearest to its target and,
// for the victim, the victim itself as a NAT contact this Sybil keeps, at
// an address of the Sybils' choosing. They never name an honest node.
func (n *memNet) sybilAnswer(s, to *simNode, m wire.Message) {
	var reply wire.Message
	switch m := m.(type) {
	case wire.Ping:
		reply = wire.Pong{TxID: m.TxID, Observed: to.Addr}
	case wire.FindNode:
		near := nearestSybils(n.sybils, m.Target, dht.DefaultK)
		nodes := wire.Nodes{TxID: m.TxID}
		if n.victim != nil && m.Target == n.victim.Key {
			nodes.Nodes = append(nodes.Nodes, wire.NodeInfo{Key: m.Target, Addrs: []netip.AddrPort{s.Addr}, NAT: true, Via: s.Key})
		}
		for _, x := range near {
			if len(nodes.Nodes) == dht.DefaultK {
				break
			}
			if x != s {
				nodes.Nodes = append(nodes.Nodes, wire.NodeInfo{Key: x.Key, Addrs: []netip.AddrPort{x.Addr}})
			}
		}
		reply = nodes
	default:
		return
	}
	if to.NAT {
		s.sentTo.Store(to.Addr, true) // an answer passes the asker's NAT
	}
	to.srv.Handle(s.Key, s.Addr, reply)
}

// nearestSybils returns the n Sybils nearest to target.
func nearestSybils(sybils []*simNode, target key.Public, n int) []*simNode {
	best := make([]*simNode, 0, n+1)
	dist := func(x *simNode) []byte {
		var d [32]byte
		for i := range d {
			d[i] = x.Key[i] ^ target[i]
		}
		return d[:]
	}
	for _, x := range sybils {
		d := dist(x)
		i := sort.Search(len(best), func(j int) bool { return bytes.Compare(dist(best[j]), d) > 0 })
		if i >= n {
			continue
		}
		best = slices.Insert(best, i, x)
		if len(best) > n {
			best = best[:n]
		}
	}
	return best
}

// runMemory is the in-memory simulation.
func runMemory(o options) (*report, error) {
	r := rand.New(rand.NewPCG(o.seed, 0x5eed))
	ctx := context.Background()
	rep := &report{Nodes: o.nodes, Build: o.build, Dead: o.dead, Loss: o.loss, Seed: o.seed, Find: o.find,
		Prefixes: o.prefixes, NAT: o.nat, CGNAT: o.cgnat, Sybils: o.sybils}
	if o.sybils > 0 {
		rep.SybilFrom = o.sybilFrom
	}
	start := time.Now()
	net, err := buildMemory(ctx, o, r)
	if net != nil {
		defer func() {
			for _, n := range net.nodes {
				n.srv.Close()
			}
		}()
	}
	if err != nil {
		return nil, err
	}
	rep.BuildSec = time.Since(start).Seconds()
	rep.AvgTable = avgTable(net.nodes)
	kill(net.nodes, o.dead, r, func(i int) { net.nodes[i].dead.Store(true) })

	lookupStart := time.Now()
	rep.summarize(measure(ctx, net, o, r))
	if net.victim != nil {
		rep.TargetLookups, rep.CaptureRate = eclipse(ctx, net, o, r)
	}
	rep.LookupSec = time.Since(lookupStart).Seconds()
	if err := writeHeapProfile(o.memprofile); err != nil {
		return nil, err
	}
	rep.WallSec = time.Since(start).Seconds()
	return rep, nil
}

// buildMemory makes the in-memory network and builds its tables. The
// caller closes the servers, also when it fails.
func buildMemory(ctx context.Context, o options, r *rand.Rand) (*memNet, error) {
	net := &memNet{loss: o.loss, byAddr: map[netip.AddrPort]*simNode{}}
	net.nodes = make([]*simNode, o.nodes)
	addrs, nat := addrs(o)
	for i := range net.nodes {
		n := &simNode{Contact: dht.Contact{Key: randKey(r), Addr: addrs[i], NAT: nat[i]}}
		var boot []dht.Contact
		if o.build == "join" && i > 0 {
			for b := net.nodes[r.IntN(i)]; len(boot) == 0; b = net.nodes[r.IntN(i)] {
				if !b.NAT {
					boot = []dht.Contact{b.Contact}
				}
			}
		}
		behind := nat[i]
		srv, err := dht.NewServer(dht.Config{
			Key:       n.Key,
			Transport: &memTransport{net: net, from: n},
			Boot:      boot,
			NAT:       func() bool { return behind },
			Table:     dht.TableConfig{PerPrefix: o.perPrefix, PerAddr: o.perPrefix},
			// Answers arrive before Send returns: a query that has no
			// answer after a millisecond was lost.
			QueryTimeout: time.Millisecond,
		})
		if err != nil {
			return nil, err
		}
		n.srv = srv
		net.nodes[i] = n
		if net.byAddr[n.Addr] != nil {
			return net, fmt.Errorf("two nodes at %v", n.Addr)
		}
		net.byAddr[n.Addr] = n
	}
	if o.build == "join" && nat[0] {
		return net, fmt.Errorf("-build join needs a direct first node: lower -nat")
	}
	if o.sybils > 0 {
		net.victim = pickVictim(net.nodes, o, r)
		net.sybils = makeSybils(o, net.victim.Key, r)
		for _, s := range net.sybils {
			net.byAddr[s.Addr] = s
		}
		offerSybils(net.nodes, net.sybils, net.victim.Key, r.Uint64())
	}
	return net, build(ctx, o, net.nodes, r)
}

// pickVictim chooses the key the Sybils try to eclipse: a NATed node if
// there are any (it is found only through the nodes it keeps alive), a
// direct one otherwise, or as -victim says.
func pickVictim(nodes []*simNode, o options, r *rand.Rand) *simNode {
	want := o.victim == "nat" || (o.victim == "" && o.nat > 0)
	for {
		if n := nodes[r.IntN(len(nodes))]; n.NAT == want {
			return n
		}
	}
}

// makeSybils returns the attacker's keys: all nearer to the victim than any
// honest node is likely to be (they share 8 more bits with it than log2 of
// the network's size), the position an attacker who pays the network's
// proof-of-work for every key it tries would aim for.
func makeSybils(o options, victim key.Public, r *rand.Rand) []*simNode {
	shared := bits.Len(uint(o.nodes)) + 8
	out := make([]*simNode, o.sybils)
	for i := range out {
		k := randKey(r)
		for b := range shared {
			mask := byte(0x80) >> (b % 8)
			k[b/8] = k[b/8]&^mask | victim[b/8]&mask
		}
		out[i] = &simNode{Contact: dht.Contact{Key: k, Addr: sybilAddr(o, i)}, sybil: true}
	}
	return out
}

// offerSybils has every honest node hear from Sybils before it hears from
// anyone else, the attacker's best case: nodes near the victim from all of
// them, the others from 2K (they would all fall in one bucket).
func offerSybils(nodes, sybils []*simNode, victim key.Public, seed uint64) {
	shared := 0
	for b := 0; b < 256 && sybils[0].Key[b/8]&(0x80>>(b%8)) == victim[b/8]&(0x80>>(b%8)); b++ {
		shared++
	}
	now := time.Now()
	parallel(len(nodes), runtime.GOMAXPROCS(0), func(i int, r *rand.Rand) {
		tab := nodes[i].srv.Table()
		offer := sybils
		if commonPrefix(nodes[i].Key, victim) < shared-4 {
			offer = make([]*simNode, 0, 2*tab.K())
			for _, j := range pick(r, len(sybils), 2*tab.K()) {
				offer = append(offer, sybils[j])
			}
		}
		for _, s := range offer {
			tab.Add(s.Contact, now)
		}
	}, seed)
}

func commonPrefix(a, b key.Public) int {
	for i := range a {
		if x := a[i] ^ b[i]; x != 0 {
			return 8*i + bits.LeadingZeros8(x)
		}
	}
	return 256
}

// eclipse looks the victim up o.targetLookups times from random honest
// nodes and returns how many lookups ran and the fraction the Sybils
// captured: the victim was not found, or was found only through Sybils or
// at an address of theirs.
func eclipse(ctx context.Context, net *memNet, o options, r *rand.Rand) (int, float64) {
	var from []*simNode
	for _, n := range net.nodes {
		if n != net.victim && !n.dead.Load() {
			from = append(from, n)
		}
	}
	n := o.targetLookups
	if n <= 0 {
		n = o.lookups
	}
	picks := make([]*simNode, n)
	for i := range picks {
		picks[i] = from[r.IntN(len(from))]
	}
	var captured atomic.Int64
	parallel(n, o.parallel, func(i int, _ *rand.Rand) {
		if !reached(net, net.victim, picks[i].srv.Lookup(ctx, net.victim.Key)) {
			captured.Add(1)
		}
	}, 0)
	return n, float64(captured.Load()) / float64(n)
}

// reached reports whether a lookup found target through an honest path: it
// answered itself, or it is NATed and at least one via is an honest node
// that keeps it, and the address given is its own.
func reached(net *memNet, target *simNode, res dht.Result) bool {
	if !res.Found || res.Contact.Key != target.Key || res.Contact.Addr != target.Addr {
		return false
	}
	if !target.NAT {
		return true
	}
	for _, v := range res.Vias {
		if x := net.byAddr[v.Addr]; x != nil && !x.sybil && x.Key == v.Key {
			if _, keeps := target.sentTo.Load(x.Addr); keeps {
				return true
			}
		}
	}
	return false
}

// build fills the nodes' tables as o.build says.
func build(ctx context.Context, o options, nodes []*simNode, r *rand.Rand) error {
	if o.build == "fill" {
		fill(nodes, r.Uint64())
		keepNATed(nodes)
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
	sorted := slices.DeleteFunc(slices.Clone(nodes), func(n *simNode) bool { return n.NAT })
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

// keepNATed has every NATed node ping the K direct nodes nearest to it in
// its table, as its keepalives do: they keep it as a NAT contact, and its
// NAT lets them in.
func keepNATed(nodes []*simNode) {
	parallel(len(nodes), runtime.GOMAXPROCS(0), func(i int, _ *rand.Rand) {
		if n := nodes[i]; n.NAT {
			for _, c := range n.srv.Table().ClosestDirect(n.Key, n.srv.Table().K()) {
				n.srv.Ping(context.Background(), c)
			}
		}
	}, 0)
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
func measure(ctx context.Context, net *memNet, o options, r *rand.Rand) []sample {
	nodes := net.nodes
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
			found:          reached(net, p.to, res),
			hops:           res.Hops,
			rounds:         res.Rounds,
			queries:        res.Queries,
			virtualElapsed: time.Since(start),
		}
	}, 0)
	return samples
}
