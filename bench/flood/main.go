// Command flood measures wh under a flood of control packets from fresh
// keys, in network namespaces (root), with real wh processes (see e2e/lab):
//
//	inet 11.22.0.0/16
//	  b   the node under flood, at an endpoint the config gives, iperf3 server
//	  a   iperf3 client, a trusted peer of b
//	  c1  a trusted peer of b that stays silent until the no-flood timing
//	  c2  a trusted peer of b that stays silent until the flood timing
//	  f   the flooder: 56 source addresses, one in each of 11.22.200-255.0/24
//
// The flooder (this command with -send) first sends one valid packet
// (a Ping sealed to b) from each of -fill keys with the network's workbits,
// enough to fill b's peer cache, then cycles -junk other keys whose
// packets are sealed to someone else, so that each costs b a key
// derivation before it fails, at -pps packets a second in all. Keys are
// searched for before the lab starts.
//
// A second flooder sends the same packets with a bad version byte, which
// Open drops at its cheapest check: the "garbage" baseline, what the
// machine pays for delivering the packets alone (on a small machine the
// kernel's work for 10,000 packets a second is a large share).
//
// It prints:
//   - iperf3 a→b throughput without a flood, with the garbage flood and
//     with the fresh-key flood, in rounds (-pairs), with b's and the
//     flooder's CPU use, and the medians of fresh-key/none (target ≥ 0.8)
//     and fresh-key/garbage (what handling fresh keys costs wh);
//   - how long a trusted peer that b has never heard from (so for longer
//     than any cache protection: c1, c2) takes from `wh up` to its first
//     ping answered through the tunnel, without and with the flood
//     (target: at once);
//   - b's control-protocol drops during the flood.
//
// Run it against another build (-wh) to compare:
//
//	go run ./bench/flood -wh bin/wh
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/net/ipv4"

	"github.com/whnet/wh/e2e/lab"
	"github.com/whnet/wh/key"
	"github.com/whnet/wh/node"
	"github.com/whnet/wh/wire"
)

const (
	workbit   = 8 // the config's default
	port      = 62096
	floodNets = 56 // source /24s of the flooder: 11.22.200.0/24 to 11.22.255.0/24
)

func main() {
	whBin := flag.String("wh", "bin/wh", "the wh binary")
	secs := flag.Int("t", 10, "iperf3 seconds per throughput run")
	pairs := flag.Int("pairs", 3, "throughput rounds: each without a flood, with the garbage one, with the fresh-key one")
	pps := flag.Int("pps", 10000, "flood packets a second")
	fill := flag.Int("fill", 4200, "keys that each send b one valid packet first (b's cache holds 4096)")
	junk := flag.Int("junk", 256, "keys whose packets, sealed to someone else, each cost b a derivation")
	send := flag.String("send", "", "internal: be the flooder, sending to this ip:port")
	garbage := flag.Bool("garbage", false, "internal: the flooder's packets have a bad version byte (dropped by the cheapest check)")
	keysFile := flag.String("keys", "", "internal: the flooder's keys and b's key")
	flag.Parse()
	if *send != "" {
		if err := flood(*send, *keysFile, *pps, *garbage); err != nil {
			fail(err)
		}
		return
	}
	if err := lab.Check(); err != nil {
		fail(err)
	}
	if _, err := os.Stat(*whBin); err != nil {
		fail(fmt.Errorf("%v (build it: go build -o bin/wh ./cmd/wh)", err))
	}
	bin, _ := filepath.Abs(*whBin)
	self, err := os.Executable()
	if err != nil {
		fail(err)
	}

	start := time.Now()
	floodKeys := searchKeys(*fill + *junk)
	fmt.Printf("searched %d keys of workbit %d in %v\n", len(floodKeys), workbit, time.Since(start).Round(time.Millisecond))

	var r lab.Runner
	err = r.Do(func() {
		n := newNet(&r, bin)
		kf := filepath.Join(n.dir, "flood.keys")
		writeKeys(&r, kf, n.pubs["b"], floodKeys[:*fill], floodKeys[*fill:])
		n.up("b", "a")
		if _, ok := n.firstPing("a", "b", 30*time.Second); !ok {
			r.Fatal("a→b: no ping reply within 30 s")
		}

		// c1 is heard for the first time without the flood.
		t1, ok1 := n.firstPing("c1", "b", 30*time.Second)
		fmt.Printf("silent trusted peer c1, no flood: first ping through the tunnel %s after its wh up\n", show(t1, ok1))

		dst := netip.AddrPortFrom(n.hosts["b"].Addr, port).String()
		g := n.hosts["f"].Start("garbage", nil, self, "-send", dst, "-keys", kf, "-pps", strconv.Itoa(*pps), "-garbage")
		stop(g)
		f := n.hosts["f"].Start("flood", nil, self, "-send", dst, "-keys", kf, "-pps", strconv.Itoa(*pps))
		time.Sleep(time.Duration(float64(*fill)/float64(*pps)*float64(time.Second)) + 2*time.Second) // the fill phase, and some junk
		if f.Exited() {
			r.Fatalf("flooder exited:\n%s", f.Output())
		}
		s0 := n.stats("b")
		t2, ok2 := n.firstPing("c2", "b", 30*time.Second)
		fmt.Printf("silent trusted peer c2, flood: first ping through the tunnel %s after its wh up\n", show(t2, ok2))

		stop(f)
		// run measures iperf3 a→b with flooder p running (none if nil)
		// and prints it with b's and the flooder's CPU use.
		run := func(label string, p *lab.Proc) float64 {
			if p != nil {
				cont(p)
				defer stop(p)
				time.Sleep(500 * time.Millisecond)
			}
			w0, c0, f0 := time.Now(), n.cpu("b"), 0.0
			if p != nil {
				f0 = procCPU(p)
			}
			gbit := n.iperf("a", "b", *secs)
			d := time.Since(w0).Seconds()
			fmt.Printf("  %-26s %.3f Gbit/s, b %3.0f%% CPU", label, gbit, 100*(n.cpu("b")-c0)/d)
			if p != nil {
				fmt.Printf(", flooder %3.0f%%", 100*(procCPU(p)-f0)/d)
			}
			fmt.Println()
			return gbit
		}
		var ratios, vsGarbage, withouts, withs []float64
		for i := range *pairs {
			fmt.Printf("round %d:\n", i+1)
			g0 := run("no flood", nil)
			gg := run("garbage flood (baseline)", g)
			g1 := run("fresh-key flood", f)
			fmt.Printf("  fresh-key flood / no flood %.2f, / garbage flood %.2f\n", g1/g0, g1/gg)
			ratios, vsGarbage, withouts, withs = append(ratios, g1/g0), append(vsGarbage, g1/gg), append(withouts, g0), append(withs, g1)
		}
		s1 := n.stats("b")
		stop(f)
		fmt.Printf("b's control drops in the fresh-key flood's last %d runs: busy (derivation limited) %d, auth %d, opened %d\n",
			*pairs, s1.Busy-s0.Busy, s1.Auth-s0.Auth, s1.Opened-s0.Opened)
		ratio := median(ratios)
		fmt.Printf("throughput a→b: without flood %.3f Gbit/s, with %d pkt/s of fresh-key flood %.3f Gbit/s (medians); with/without %.2f (median of %d rounds; target ≥ 0.8: %s)\n",
			median(withouts), *pps, median(withs), ratio, len(ratios), verdict(ratio >= 0.8))
		fmt.Printf("fresh-key flood against a garbage flood of the same rate and size (what the machine pays for the packets alone): %.2f (median)\n", median(vsGarbage))
		fmt.Printf("silent trusted peer heard: %s without flood, %s with (target: at once under flood: %s)\n",
			show(t1, ok1), show(t2, ok2), verdict(ok1 && ok2 && t2 < t1+2*time.Second))
	})
	if err != nil {
		fail(err)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "bench/flood:", err)
	os.Exit(1)
}

func verdict(ok bool) string {
	if ok {
		return "met"
	}
	return "MISSED"
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[len(s)/2]
}

func stop(p *lab.Proc) { p.Cmd.Process.Signal(syscall.SIGSTOP) }
func cont(p *lab.Proc) { p.Cmd.Process.Signal(syscall.SIGCONT) }

// searchKeys returns n keys with the network's workbits.
func searchKeys(n int) []key.Private {
	ks := make([]key.Private, n)
	for i := range ks {
		k, err := key.Search(context.Background(), workbit, key.DefaultNamespace, key.SearchOptions{})
		if err != nil {
			fail(err)
		}
		ks[i] = k
	}
	return ks
}

// writeKeys writes the flooder's key file: b's public key, then a line
// per key, "fill" or "junk" and the private key.
func writeKeys(r *lab.Runner, path string, b key.Public, fill, junk []key.Private) {
	var s strings.Builder
	fmt.Fprintf(&s, "to %s\n", b)
	for _, k := range fill {
		fmt.Fprintf(&s, "fill %s\n", k)
	}
	for _, k := range junk {
		fmt.Fprintf(&s, "junk %s\n", k)
	}
	if err := os.WriteFile(path, []byte(s.String()), 0o600); err != nil {
		r.Fatal(err)
	}
}

// flood is the flooder: it reads its keys, then sends from its floodNets
// source addresses in turn, at pps packets a second, until killed.
func flood(dst, keysFile string, pps int, garbage bool) error {
	to, err := netip.ParseAddrPort(dst)
	if err != nil {
		return err
	}
	b, err := os.ReadFile(keysFile)
	if err != nil {
		return err
	}
	var target key.Public
	var fill, junk []*wire.Codec
	for line := range strings.Lines(string(b)) {
		kind, val, _ := strings.Cut(strings.TrimSpace(line), " ")
		switch kind {
		case "to":
			if target, err = key.ParsePublic(val); err != nil {
				return err
			}
		case "fill", "junk":
			k, err := key.ParsePrivate(val)
			if err != nil {
				return err
			}
			c := wire.NewCodec(k, key.DefaultNamespace, 0)
			if kind == "fill" {
				fill = append(fill, c)
			} else {
				junk = append(junk, c)
			}
		}
	}
	if len(junk) == 0 {
		return fmt.Errorf("%s: no junk keys", keysFile)
	}
	// Junk is sealed to a key nobody has: b derives, then fails the tag.
	nobody, err := key.NewPrivate()
	if err != nil {
		return err
	}
	var conns []*ipv4.PacketConn
	for i := range floodNets {
		src := netip.AddrFrom4([4]byte{11, 22, byte(200 + i), 1})
		c, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(src, 0)))
		if err != nil {
			return fmt.Errorf("source %v (is the address on wan0?): %w", src, err)
		}
		conns = append(conns, ipv4.NewPacketConn(c))
	}
	// Warm the junk keys' derivations, so that sealing costs the
	// flooder nothing per packet.
	for _, c := range junk {
		c.Seal(nil, nobody.Public(), wire.Ping{})
	}
	// Batches of packets, each batch from one source in one sendmmsg, so
	// that the flooder's own CPU, which the machine shares with the nodes
	// under test, goes into packets, not system calls.
	const batch = 32
	dstAddr := net.UDPAddrFromAddrPort(to)
	msgs := make([]ipv4.Message, batch)
	bufs := make([][]byte, batch)
	for i := range msgs {
		bufs[i] = make([]byte, 0, 256)
		msgs[i].Buffers, msgs[i].Addr = [][]byte{nil}, dstAddr
	}
	interval := time.Duration(batch) * time.Second / time.Duration(pps)
	next := time.Now()
	for i, n := 0, 0; ; n++ {
		for j := range msgs {
			var pkt []byte
			if i < len(fill) {
				pkt, err = fill[i].Seal(bufs[j][:0], target, wire.Ping{TxID: uint64(i)})
			} else {
				pkt, err = junk[i%len(junk)].Seal(bufs[j][:0], nobody.Public(), wire.Ping{TxID: uint64(i)})
			}
			if err != nil {
				return err
			}
			if garbage {
				pkt[len(wire.Magic)] = 0x1f // an unknown version
			}
			msgs[j].Buffers[0] = pkt
			i++
		}
		conns[n%len(conns)].WriteBatch(msgs, 0)
		next = next.Add(interval)
		if d := time.Until(next); d > 0 {
			time.Sleep(d)
		} else if d < -time.Second {
			next = time.Now() // far behind: do not burst to catch up
		}
	}
}

// benchNet is the lab: every host public, b's endpoint in the config.
type benchNet struct {
	t     *lab.Runner
	bin   string
	dir   string
	conf  string
	hosts map[string]*lab.Host
	pubs  map[string]key.Public
	keys  map[string]string
	ips   map[string]string
	ifs   map[string]string
	procs map[string]*lab.Proc
}

func newNet(t *lab.Runner, bin string) *benchNet {
	l := lab.New(t)
	n := &benchNet{t: t, bin: bin, dir: l.Dir(), hosts: map[string]*lab.Host{}, pubs: map[string]key.Public{},
		keys: map[string]string{}, ips: map[string]string{}, ifs: map[string]string{}, procs: map[string]*lab.Proc{}}
	nodes := []string{"b", "a", "c1", "c2"}
	for _, name := range append(nodes, "f") {
		n.hosts[name] = l.Public(name)
	}
	for i := range floodNets {
		n.hosts["f"].Must("ip", "addr", "add", fmt.Sprintf("11.22.%d.1/32", 200+i), "dev", "wan0")
	}
	var b strings.Builder
	fmt.Fprintf(&b, "name bflood\nsubnet 10.0.44.0/24\n")
	for i, name := range nodes {
		k, err := key.Search(context.Background(), workbit, key.DefaultNamespace, key.SearchOptions{})
		if err != nil {
			t.Fatal(err)
		}
		n.pubs[name] = k.Public()
		n.keys[name] = filepath.Join(l.Dir(), name+".sk")
		os.WriteFile(n.keys[name], []byte(k.String()), 0o600)
		n.ifs[name] = "wh" + l.ID() + name
		n.ips[name] = fmt.Sprintf("10.0.44.%d", i+2)
		fmt.Fprintf(&b, "trust %s %s %s", name, n.ips[name], k.Public())
		if name == "b" {
			fmt.Fprintf(&b, " %s:%d", n.hosts["b"].Addr, port)
		}
		b.WriteString("\n")
	}
	n.conf = filepath.Join(l.Dir(), "net.conf")
	os.WriteFile(n.conf, []byte(b.String()), 0o644)
	return n
}

// up starts wh on each of names.
func (n *benchNet) up(names ...string) {
	for _, name := range names {
		args := []string{"up", n.conf, "private-key", n.keys[name], "interface", n.ifs[name], "--foreground", "dns", "off", "--log-level", "warn"}
		if name == "b" {
			args = append(args, "listen-port", strconv.Itoa(port))
		}
		n.procs[name] = n.hosts[name].Start("wh", nil, n.bin, args...)
	}
}

// firstPing starts a and returns how long until its first ping to b's
// overlay address is answered, and false if none was within limit.
func (n *benchNet) firstPing(a, b string, limit time.Duration) (time.Duration, bool) {
	start := time.Now()
	if n.procs[a] == nil {
		n.up(a)
	}
	for time.Since(start) < limit {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		_, err := n.hosts[a].Run(ctx, "ping", "-n", "-q", "-c1", "-W1", n.ips[b])
		cancel()
		if err == nil {
			return time.Since(start), true
		}
		time.Sleep(10 * time.Millisecond)
	}
	return limit, false
}

// show says a firstPing's result.
func show(d time.Duration, ok bool) string {
	if !ok {
		return fmt.Sprintf("never (none within %v)", d)
	}
	return d.Round(time.Millisecond).String()
}

// stats returns the control-protocol counters of name's node.
func (n *benchNet) stats(name string) wire.Stats {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	out, err := n.hosts[name].Run(ctx, n.bin, "show", n.ifs[name], "stats", "--json")
	if err != nil {
		n.t.Fatalf("wh show %s stats: %v\n%s", name, err, out)
	}
	var c node.Counters
	if err := json.Unmarshal([]byte(out), &c); err != nil {
		n.t.Fatalf("wh show stats: %v\n%s", err, out)
	}
	return c.Control
}

// cpu returns the CPU seconds name's wh process has used so far.
func (n *benchNet) cpu(name string) float64 { return procCPU(n.procs[name]) }

// procCPU returns the CPU seconds p has used so far.
func procCPU(p *lab.Proc) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p.Cmd.Process.Pid))
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
	ut, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	return (ut + st) / 100 // USER_HZ
}

// iperf runs iperf3 from a to b over the overlay and returns Gbit/s, 0
// if it fails (as it does when the tunnel stalls).
func (n *benchNet) iperf(a, b string, secs int) float64 {
	srv := n.hosts[b].Start("iperf3-s", nil, "iperf3", "-s", "-1", "-B", n.ips[b])
	defer srv.Stop()
	time.Sleep(300 * time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(secs+30)*time.Second)
	defer cancel()
	out, err := n.hosts[a].Run(ctx, "iperf3", "-c", n.ips[b], "-t", strconv.Itoa(secs), "-J", "--connect-timeout", "5000")
	if err != nil {
		fmt.Printf("iperf3 %s→%s failed, counted as 0: %v\n", a, b, err)
		return 0
	}
	var res struct {
		End struct {
			SumReceived struct {
				BitsPerSecond float64 `json:"bits_per_second"`
			} `json:"sum_received"`
		} `json:"end"`
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		n.t.Fatalf("iperf3 output: %v", err)
	}
	return res.End.SumReceived.BitsPerSecond / 1e9
}
