// Command whsim measures wh's DHT at scale: it builds a network of N nodes,
// runs M lookups of random live keys from random live nodes, and prints the
// success rate, the hops and messages per lookup and, over packets, the
// lookup time.
//
//	go run ./tools/whsim -nodes 10000 -lookups 1000
//	go run ./tools/whsim -nodes 10000 -lookups 1000 -dead 0.1
//	go run ./tools/whsim -nodes 1000 -lookups 500 -packet -loss 0.01 -json
//
// Every node is a real dht.Server with a real dht.Table, and every lookup is
// Server.Lookup: the real algorithm over the real query path (FindNode,
// TxID matching, retries, table updates). Two transports carry the messages:
//
//   - by default, an in-memory transport that hands each message straight
//     to the destination's Server.Handle (no encoding, no delay). -loss drops
//     messages at random and -dead silences nodes; a lost query is noticed by
//     the query timeout, which is short here since answers are immediate.
//   - with -packet, the wire protocol (wire.Codec, real X25519 keys) over
//     netsim with latency and jitter, in synctest's virtual time, so
//     time_ms is what a lookup would take on such a network.
//
// Tables are built one of two ways (-build):
//
//   - fill: each node's bucket i gets K nodes drawn at random from all the
//     nodes that belong in it, through Table.Add: the table a node has once
//     bucket refreshes have run for a while. It is how Kademlia simulators
//     usually build large networks, and it takes seconds at 100,000 nodes.
//   - join: nodes join one at a time through a random node already in,
//     with Server.Bootstrap (ping, self-lookup, announce), then every node
//     refreshes its buckets once with Server.Refresh: the real protocol,
//     slower.
//
// -find measures Server.Find, which stops as soon as the target answers,
// instead of Server.Lookup, which goes on until the K nearest nodes have.
//
// -dead kills a fraction of the nodes after the tables are built, telling
// nobody.
//
// In memory, -prefixes, -nat and -cgnat cluster the addresses (N nodes over
// P /24s, a fraction behind NAT, behind M shared CGNAT addresses); a NATed
// node is reachable only from where it has sent to, and found through the
// nodes it keeps alive. -sybils adds an attacker with that many keys near
// one victim key, from one /24 or one address (-sybil-from), and reports
// the fraction of the victim's lookups it captured:
//
//	go run ./tools/whsim -nodes 10000 -prefixes 50 -nat 0.3 -cgnat 20 -sybils 5000
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/pprof"
	"slices"
	"time"
)

type options struct {
	nodes, lookups int
	loss, dead     float64
	seed           uint64
	packet         bool
	find           bool
	build          string
	parallel       int
	latency        time.Duration
	jitter         time.Duration
	jsonOut        bool
	memprofile     string
	cpuprofile     string
	// Address clustering and the attacker (in memory only).
	prefixes      int
	nat           float64
	cgnat         int
	sybils        int
	sybilFrom     string
	victim        string
	targetLookups int
	perPrefix     int
}

// report is what a run measured. The JSON names are the interface of -json.
type report struct {
	Nodes       int     `json:"nodes"`
	Lookups     int     `json:"lookups"`
	Build       string  `json:"build"`
	Packet      bool    `json:"packet"`
	Find        bool    `json:"find"`
	Dead        float64 `json:"dead"`
	Loss        float64 `json:"loss"`
	Seed        uint64  `json:"seed"`
	SuccessRate float64 `json:"success_rate"`
	HopsP50     int     `json:"hops_p50"`
	HopsP95     int     `json:"hops_p95"`
	HopsMax     int     `json:"hops_max"`
	RoundsP50   int     `json:"rounds_p50"`
	RoundsP95   int     `json:"rounds_p95"`
	MsgsP50     int     `json:"msgs_p50"`
	MsgsP95     int     `json:"msgs_p95"`
	TimeMsP50   *int64  `json:"time_ms_p50,omitempty"`
	TimeMsP95   *int64  `json:"time_ms_p95,omitempty"`
	// BuildSec and LookupSec are wall-clock seconds in memory, virtual
	// seconds with -packet; WallSec is the run's wall-clock time.
	BuildSec  float64 `json:"build_seconds"`
	LookupSec float64 `json:"lookup_seconds"`
	WallSec   float64 `json:"wall_seconds"`
	HeapMB    int     `json:"heap_mb"`
	AvgTable  float64 `json:"avg_table_size"`
	Prefixes  int     `json:"prefixes,omitempty"`
	NAT       float64 `json:"nat,omitempty"`
	CGNAT     int     `json:"cgnat,omitempty"`
	Sybils    int     `json:"sybils,omitempty"`
	SybilFrom string  `json:"sybil_from,omitempty"`
	// TargetLookups lookups of the victim ran; CaptureRate is the fraction
	// that did not reach it through an honest path.
	TargetLookups int     `json:"target_lookups,omitempty"`
	CaptureRate   float64 `json:"capture_rate"`
}

// sample is one lookup's outcome.
type sample struct {
	found          bool
	hops, rounds   int
	queries        int
	virtualElapsed time.Duration
}

func main() {
	var o options
	flag.IntVar(&o.nodes, "nodes", 1000, "number of nodes")
	flag.IntVar(&o.lookups, "lookups", 1000, "number of lookups to measure")
	flag.Float64Var(&o.loss, "loss", 0, "fraction of messages lost")
	flag.Float64Var(&o.dead, "dead", 0, "fraction of nodes killed after the tables are built")
	flag.Uint64Var(&o.seed, "seed", 1, "random seed (keys, topology, choices)")
	flag.BoolVar(&o.packet, "packet", false, "speak the wire protocol over netsim, in virtual time")
	flag.BoolVar(&o.find, "find", false, "measure Server.Find (stop once the target answers) instead of Server.Lookup")
	flag.StringVar(&o.build, "build", "", "how tables are built: fill or join (default fill, join with -packet)")
	flag.IntVar(&o.parallel, "parallel", 0, "lookups run at once (default: GOMAXPROCS; 16 with -packet)")
	flag.DurationVar(&o.latency, "latency", 20*time.Millisecond, "one-way core latency with -packet")
	flag.DurationVar(&o.jitter, "jitter", 10*time.Millisecond, "one-way core jitter with -packet")
	flag.BoolVar(&o.jsonOut, "json", false, "print one JSON object")
	flag.StringVar(&o.cpuprofile, "cpuprofile", "", "write a CPU profile of the run to this file")
	flag.StringVar(&o.memprofile, "memprofile", "", "write a heap profile, taken after the lookups, to this file")
	flag.IntVar(&o.prefixes, "prefixes", 0, "spread the nodes over this many /24s (0: each in a /24 of its own)")
	flag.Float64Var(&o.nat, "nat", 0, "fraction of the nodes behind NAT, reachable only through the nodes they keep alive")
	flag.IntVar(&o.cgnat, "cgnat", 0, "put the NATed nodes behind this many shared addresses, a port each (0: an address each)")
	flag.IntVar(&o.sybils, "sybils", 0, "Sybil keys that try to eclipse one key, all near it and in one /24")
	flag.StringVar(&o.sybilFrom, "sybil-from", "prefix", "where the Sybil keys are: prefix (one /24) or addr (one address)")
	flag.StringVar(&o.victim, "victim", "", "the key the Sybils aim at: nat or direct (default nat if -nat > 0)")
	flag.IntVar(&o.targetLookups, "target-lookups", 0, "lookups of the victim to measure (default -lookups)")
	flag.IntVar(&o.perPrefix, "per-prefix", 0, "the tables' and lookups' share of one /24 (0: dht.DefaultPerPrefix, -1: none, the baseline without the Sybil defence)")
	flag.Parse()
	if o.build == "" {
		o.build = "fill"
		if o.packet {
			o.build = "join"
		}
	}
	if o.build != "fill" && o.build != "join" {
		fail(fmt.Errorf("-build %q: want fill or join", o.build))
	}
	if o.nodes < 2 || o.lookups < 1 || o.loss < 0 || o.loss >= 1 || o.dead < 0 || o.dead >= 1 {
		fail(fmt.Errorf("want -nodes ≥ 2, -lookups ≥ 1, 0 ≤ -loss < 1, 0 ≤ -dead < 1"))
	}
	if err := o.checkClustering(); err != nil {
		fail(err)
	}
	if o.parallel <= 0 {
		o.parallel = runtime.GOMAXPROCS(0)
		if o.packet {
			o.parallel = 16
		}
	}
	if o.cpuprofile != "" {
		f, err := os.Create(o.cpuprofile)
		if err != nil {
			fail(err)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			fail(err)
		}
		defer pprof.StopCPUProfile()
	}
	if o.packet {
		runPacket(o) // exits
		return
	}
	r, err := runMemory(o)
	if err != nil {
		fail(err)
	}
	r.print(os.Stdout, o.jsonOut)
}

// checkClustering checks the clustering and attacker options.
func (o options) checkClustering() error {
	clustered := o.prefixes > 0 || o.nat > 0 || o.cgnat > 0 || o.sybils > 0
	switch {
	case clustered && o.packet:
		return fmt.Errorf("-prefixes, -nat, -cgnat and -sybils run in memory only")
	case o.sybils > 0 && o.build != "fill":
		return fmt.Errorf("-sybils needs -build fill")
	case o.nat < 0 || o.nat >= 1:
		return fmt.Errorf("want 0 ≤ -nat < 1")
	case o.prefixes < 0 || o.prefixes > 65536 || o.cgnat < 0 || o.sybils < 0:
		return fmt.Errorf("want 0 ≤ -prefixes ≤ 65536, -cgnat ≥ 0, -sybils ≥ 0")
	case o.prefixes > 0 && o.nodes > o.prefixes*240*50:
		return fmt.Errorf("-nodes %d over %d /24s: at most 12,000 nodes per /24", o.nodes, o.prefixes)
	case o.cgnat > 0 && o.prefixes > 0 && o.cgnat > 15*o.prefixes, o.cgnat > 256*15:
		return fmt.Errorf("-cgnat %d: at most 15 CGNAT addresses per /24", o.cgnat)
	case o.cgnat > 0 && int(o.nat*float64(o.nodes))/o.cgnat > 60000:
		return fmt.Errorf("-cgnat %d: more than 60,000 NATed nodes per address", o.cgnat)
	case o.sybilFrom != "prefix" && o.sybilFrom != "addr":
		return fmt.Errorf("-sybil-from %q: want prefix or addr", o.sybilFrom)
	case o.sybils > 60000:
		return fmt.Errorf("-sybils: at most 60,000")
	case o.victim != "" && o.victim != "nat" && o.victim != "direct", o.victim == "nat" && o.nat == 0:
		return fmt.Errorf("-victim %q: want nat (with -nat > 0) or direct", o.victim)
	}
	return nil
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "whsim:", err)
	os.Exit(2)
}

// summarize fills r's figures from the samples.
func (r *report) summarize(samples []sample) {
	var hops, rounds, msgs []int
	var times []time.Duration
	found := 0
	for _, s := range samples {
		msgs = append(msgs, s.queries)
		if !s.found {
			continue
		}
		found++
		hops = append(hops, s.hops)
		rounds = append(rounds, s.rounds)
		times = append(times, s.virtualElapsed)
	}
	r.Lookups = len(samples)
	r.SuccessRate = float64(found) / float64(len(samples))
	r.HopsP50, r.HopsP95, r.HopsMax = percentile(hops, 50), percentile(hops, 95), percentile(hops, 100)
	r.RoundsP50, r.RoundsP95 = percentile(rounds, 50), percentile(rounds, 95)
	r.MsgsP50, r.MsgsP95 = percentile(msgs, 50), percentile(msgs, 95)
	if r.Packet {
		p50, p95 := percentile(times, 50).Milliseconds(), percentile(times, 95).Milliseconds()
		r.TimeMsP50, r.TimeMsP95 = &p50, &p95
	}
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	r.HeapMB = int(m.HeapAlloc >> 20)
}

// writeHeapProfile writes a heap profile to path, if it is set.
func writeHeapProfile(path string) error {
	if path == "" {
		return nil
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	return pprof.WriteHeapProfile(f)
}

// percentile returns the p-th percentile of xs (nearest rank), or zero.
func percentile[T int | time.Duration](xs []T, p int) T {
	if len(xs) == 0 {
		return 0
	}
	xs = slices.Clone(xs)
	slices.Sort(xs)
	i := (p*len(xs) + 99) / 100
	return xs[max(i, 1)-1]
}

func (r *report) print(w io.Writer, asJSON bool) {
	if asJSON {
		b, _ := json.Marshal(r)
		fmt.Fprintf(w, "%s\n", b)
		return
	}
	mode := "in-memory"
	if r.Packet {
		mode = "wire protocol over netsim"
	}
	op := "Lookup (until the K nearest answered)"
	if r.Find {
		op = "Find (until the target answered)"
	}
	fmt.Fprintf(w, "nodes %d, %s, tables by %s, dead %.1f%%, loss %.1f%%, seed %d, %s\n",
		r.Nodes, mode, r.Build, 100*r.Dead, 100*r.Loss, r.Seed, op)
	clock := "s"
	if r.Packet {
		clock = "s virtual"
	}
	if r.Prefixes > 0 || r.NAT > 0 || r.CGNAT > 0 {
		fmt.Fprintf(w, "addresses: %d /24s (0: one each), %.0f%% behind NAT, %d CGNAT addresses (0: one each)\n", r.Prefixes, 100*r.NAT, r.CGNAT)
	}
	fmt.Fprintf(w, "built in %.1f%s (avg table %.0f contacts, heap %d MiB); %d lookups in %.1f%s; %.1fs in all\n",
		r.BuildSec, clock, r.AvgTable, r.HeapMB, r.Lookups, r.LookupSec, clock, r.WallSec)
	fmt.Fprintf(w, "success   %.2f%%\n", 100*r.SuccessRate)
	fmt.Fprintf(w, "hops      p50 %d  p95 %d  max %d\n", r.HopsP50, r.HopsP95, r.HopsMax)
	fmt.Fprintf(w, "rounds    p50 %d  p95 %d\n", r.RoundsP50, r.RoundsP95)
	fmt.Fprintf(w, "messages  p50 %d  p95 %d  (queries per lookup)\n", r.MsgsP50, r.MsgsP95)
	if r.TimeMsP50 != nil {
		fmt.Fprintf(w, "time      p50 %d ms  p95 %d ms  (virtual)\n", *r.TimeMsP50, *r.TimeMsP95)
	}
	if r.Sybils > 0 {
		fmt.Fprintf(w, "eclipse   %d Sybil keys from one %s captured %.2f%% of %d lookups of their target\n", r.Sybils, map[string]string{"prefix": "/24", "addr": "address"}[r.SybilFrom], 100*r.CaptureRate, r.TargetLookups)
	}
}
