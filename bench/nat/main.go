// Command nat measures wh through NATs, in network namespaces (root), with
// real wh processes behind iptables NAT routers (see e2e/lab):
//
//   - time to a direct path for two nodes behind restricted NATs (port-
//     restricted MASQUERADE), from both `wh up`, p50 of -runs (target ≤ 2 s);
//
//   - time to the first ping for a relayed pair (both behind symmetric NATs),
//     median of -runs (target ≤ 5 s);
//
//   - relayed throughput against direct, in the same run: iperf3 between the
//     restricted pair (direct) then the symmetric pair (through a relay),
//     -pairs times, median of the pairs' ratios relayed/direct (target
//     ≥ 0.5), with each wh process's CPU seconds per GB moved.
//
//     go run ./bench/nat -wh bin/wh
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/whnet/wh/e2e/lab"
	"github.com/whnet/wh/key"
	"github.com/whnet/wh/node"
)

func main() {
	whBin := flag.String("wh", "bin/wh", "the wh binary")
	runs := flag.Int("runs", 5, "runs of the timing measurements")
	secs := flag.Int("t", 10, "iperf3 seconds per throughput run")
	pairs := flag.Int("pairs", 3, "throughput runs: each a direct then a relayed iperf3")
	profile := flag.String("profile", "", "write each wh process's CPU profile to this directory (as NAME.pprof)")
	flag.Parse()
	if err := lab.Check(); err != nil {
		fail(err)
	}
	bin, _ := filepath.Abs(*whBin)
	if *profile != "" {
		profileDir, _ = filepath.Abs(*profile)
		os.MkdirAll(profileDir, 0o755)
	}

	var direct, relayed []time.Duration
	for i := range *runs {
		var r lab.Runner
		err := r.Do(func() {
			n := newNet(&r, bin)
			d := n.toDirect("res1", "res2")
			f := n.firstPing("sym1", "sym2")
			fmt.Printf("run %d: restricted↔restricted direct after %v; symmetric↔symmetric first ping (relayed) after %v\n",
				i+1, d.Round(time.Millisecond), f.Round(time.Millisecond))
			direct, relayed = append(direct, d), append(relayed, f)
		})
		if err != nil {
			fail(err)
		}
	}
	pd, pr := median(direct), median(relayed)
	fmt.Printf("time to direct, restricted↔restricted: p50 %v of %d runs (target ≤ 2s: %s)\n", pd.Round(time.Millisecond), len(direct), verdict(pd <= 2*time.Second))
	fmt.Printf("time to first ping, relayed pair:      p50 %v of %d runs (target ≤ 5s: %s)\n", pr.Round(time.Millisecond), len(relayed), verdict(pr <= 5*time.Second))

	var r lab.Runner
	err := r.Do(func() {
		n := newNet(&r, bin)
		n.toDirect("res1", "res2")
		n.firstPing("sym1", "sym2")
		if p := n.path("sym1", "sym2"); p.Path != node.PathRelay {
			r.Fatalf("symmetric pair is %s, not relayed", p.Path)
		}
		// Direct and relayed alternate, so that both see the machine's
		// load as it drifts; each pair gives a ratio.
		var gds, grs, ratios []float64
		cpuD, cpuR := map[string]float64{}, map[string]float64{}
		for i := range *pairs {
			c0 := n.cpu()
			gd := n.iperf("res1", "res2", *secs)
			c1 := n.cpu()
			gr := n.iperf("sym1", "sym2", *secs)
			c2 := n.cpu()
			for k := range c0 {
				cpuD[k] += (c1[k] - c0[k]) / (gd / 8 * float64(*secs))
				cpuR[k] += (c2[k] - c1[k]) / (gr / 8 * float64(*secs))
			}
			fmt.Printf("pair %d: direct %.2f Gbit/s, relayed %.2f Gbit/s, ratio %.2f\n", i+1, gd, gr, gr/gd)
			gds, grs, ratios = append(gds, gd), append(grs, gr), append(ratios, gr/gd)
		}
		fmt.Printf("CPU seconds per GB moved, mean of %d pairs (machine: every process, and the routers' kernel work):\n", *pairs)
		for _, k := range slices.Sorted(maps.Keys(cpuD)) {
			fmt.Printf("  %-8s direct %6.2f  relayed %6.2f\n", k, cpuD[k]/float64(*pairs), cpuR[k]/float64(*pairs))
		}
		r := medianF(ratios)
		fmt.Printf("throughput: direct %.2f Gbit/s, relayed %.2f Gbit/s (medians), relayed/direct %.2f (median of %d pairs; target ≥ 0.5: %s)\n",
			medianF(gds), medianF(grs), r, len(ratios), verdict(r >= 0.5))
	})
	if err != nil {
		fail(err)
	}
}

// profileDir, when set, receives the wh processes' CPU profiles.
var profileDir string

func fail(err error) {
	fmt.Fprintln(os.Stderr, "bench/nat:", err)
	os.Exit(1)
}

func verdict(ok bool) string {
	if ok {
		return "met"
	}
	return "MISSED"
}

func medianF(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[len(s)/2]
}

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}

// benchNet: a boot node and a relay node on the internet, two nodes behind
// restricted NATs and two behind symmetric NATs. The boot and relay run
// from the start; the others start in pairs, when measured.
type benchNet struct {
	t     *lab.Runner
	bin   string
	conf  string
	hosts map[string]*lab.Host
	keys  map[string]string
	ips   map[string]string
	ifs   map[string]string
	procs map[string]*lab.Proc
}

func newNet(t *lab.Runner, bin string) *benchNet {
	l := lab.New(t)
	n := &benchNet{t: t, bin: bin, hosts: map[string]*lab.Host{}, keys: map[string]string{}, ips: map[string]string{}, ifs: map[string]string{}, procs: map[string]*lab.Proc{}}
	n.hosts["boot"] = l.Public("boot")
	n.hosts["relay"] = l.Public("relay")
	n.hosts["res1"] = l.NAT("r1", lab.Restricted).Add("res1")
	n.hosts["res2"] = l.NAT("r2", lab.Restricted).Add("res2")
	n.hosts["sym1"] = l.NAT("s1", lab.Symmetric).Add("sym1")
	n.hosts["sym2"] = l.NAT("s2", lab.Symmetric).Add("sym2")
	pubs := map[string]key.Public{}
	for _, name := range []string{"boot", "relay", "res1", "res2", "sym1", "sym2"} {
		k, err := key.Search(context.Background(), 8, key.DefaultNamespace, key.SearchOptions{})
		if err != nil {
			t.Fatal(err)
		}
		pubs[name] = k.Public()
		n.keys[name] = filepath.Join(l.Dir(), name+".sk")
		os.WriteFile(n.keys[name], []byte(k.String()), 0o600)
		n.ifs[name] = "wh" + l.ID() + name
	}
	var b strings.Builder
	fmt.Fprintf(&b, "name bnat\nsubnet 10.0.43.0/24\n")
	fmt.Fprintf(&b, "boot boot %s %s:62096\nboot relay %s %s:62096\n", pubs["boot"], n.hosts["boot"].Addr, pubs["relay"], n.hosts["relay"].Addr)
	for i, name := range []string{"res1", "res2", "sym1", "sym2"} {
		fmt.Fprintf(&b, "trust %s %s\n", name, pubs[name])
		n.ips[name] = fmt.Sprintf("10.0.43.%d", i+2)
	}
	n.conf = filepath.Join(l.Dir(), "net.conf")
	os.WriteFile(n.conf, []byte(b.String()), 0o644)
	n.up("boot", "relay")
	for _, name := range []string{"boot", "relay"} {
		if err := lab.Eventually(20*time.Second, 50*time.Millisecond, func() error {
			_, err := n.hosts[name].Run(context.Background(), bin, "show", n.ifs[name])
			return err
		}); err != nil {
			t.Fatalf("%s did not come up: %v", name, err)
		}
	}
	return n
}

func (n *benchNet) up(names ...string) {
	for _, name := range names {
		args := []string{"up", n.conf, "private-key", n.keys[name], "interface", n.ifs[name], "--foreground", "dns", "off", "--log-level", "warn"}
		if name == "boot" || name == "relay" {
			args = append(args, "listen-port", "62096")
		}
		var env []string
		if profileDir != "" {
			env = append(env, "WH_CPUPROFILE="+filepath.Join(profileDir, name+".pprof"))
		}
		n.procs[name] = n.hosts[name].Start("wh", env, n.bin, args...)
	}
}

// path reads a's view of peer b.
func (n *benchNet) path(a, b string) node.PeerStatus {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	out, err := n.hosts[a].Run(ctx, n.bin, "show", n.ifs[a], "--json")
	if err != nil {
		return node.PeerStatus{}
	}
	var st node.Status
	json.Unmarshal([]byte(out), &st)
	for _, p := range st.Peers {
		if p.Hostname == b {
			return p
		}
	}
	return node.PeerStatus{}
}

// toDirect starts a and b and returns how long until a has a direct path
// to b with a handshake (path "direct" in wh show).
func (n *benchNet) toDirect(a, b string) time.Duration {
	start := time.Now()
	n.up(a, b)
	for time.Since(start) < 30*time.Second {
		if n.path(a, b).Path == node.PathDirect {
			return time.Since(start)
		}
		// A handshake needs a packet: ping once in a while, as a user would.
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		n.hosts[a].Run(ctx, "ping", "-n", "-q", "-c1", "-W1", n.ips[b])
		cancel()
	}
	n.t.Fatalf("%s↔%s: no direct path within 30 s", a, b)
	return 0
}

// firstPing starts a and b and returns how long until a's first ping to
// b's overlay address is answered.
func (n *benchNet) firstPing(a, b string) time.Duration {
	start := time.Now()
	n.up(a, b)
	for time.Since(start) < 30*time.Second {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_, err := n.hosts[a].Run(ctx, "ping", "-n", "-q", "-c1", "-w3", "-i0.01", n.ips[b])
		cancel()
		if err == nil {
			return time.Since(start)
		}
		time.Sleep(5 * time.Millisecond)
	}
	n.t.Fatalf("%s→%s: no ping reply within 30 s", a, b)
	return 0
}

// cpu returns the CPU seconds used so far by each wh process, and by the
// whole machine ("machine"), from /proc.
func (n *benchNet) cpu() map[string]float64 {
	const tick = 100 // USER_HZ
	m := map[string]float64{}
	for name, p := range n.procs {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p.Cmd.Process.Pid))
		if err != nil {
			continue
		}
		// Fields after the command name, which is in parentheses.
		f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
		ut, _ := strconv.ParseFloat(f[11], 64)
		st, _ := strconv.ParseFloat(f[12], 64)
		m[name] = (ut + st) / tick
	}
	b, _ := os.ReadFile("/proc/stat")
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)[1:]
	var busy float64
	for i, v := range f {
		x, _ := strconv.ParseFloat(v, 64)
		if i != 3 && i != 4 { // idle, iowait
			busy += x
		}
	}
	m["machine"] = busy / tick
	return m
}

// iperf runs iperf3 from a to b over the overlay and returns Gbit/s.
func (n *benchNet) iperf(a, b string, secs int) float64 {
	srv := n.hosts[b].Start("iperf3-s", nil, "iperf3", "-s", "-1", "-B", n.ips[b])
	defer srv.Stop()
	time.Sleep(300 * time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(secs+30)*time.Second)
	defer cancel()
	out, err := n.hosts[a].Run(ctx, "iperf3", "-c", n.ips[b], "-t", strconv.Itoa(secs), "-J")
	if err != nil {
		n.t.Fatalf("iperf3 %s→%s: %v\n%s", a, b, err, out)
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
