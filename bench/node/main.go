// Command node measures a wh node as a user meets it, in network
// namespaces (root):
//
//   - time from starting a boot node and two nodes to the first ping reply
//     across the overlay, median of -runs (target ≤ 1 s);
//
//   - RSS of an idle node, and 60 s after a 10 s iperf3 run through it
//     ends (targets ≤ 20 MB and ≤ 40 MB).
//
//     go run ./bench/node -wh bin/wh
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/whnet/wh/e2e/lab"
	"github.com/whnet/wh/key"
)

func main() {
	whBin := flag.String("wh", "bin/wh", "the wh binary")
	runs := flag.Int("runs", 5, "runs of the first-ping measurement")
	settle := flag.Duration("settle", 60*time.Second, "how long after the load to read RSS")
	load := flag.Duration("load", 10*time.Second, "iperf3 run length")
	flag.Parse()
	if err := lab.Check(); err != nil {
		fmt.Fprintln(os.Stderr, "bench/node:", err)
		os.Exit(1)
	}
	bin, _ := filepath.Abs(*whBin)

	var firsts []time.Duration
	for i := range *runs {
		d, err := firstPing(bin)
		if err != nil {
			fmt.Fprintf(os.Stderr, "run %d: %v\n", i+1, err)
			os.Exit(1)
		}
		fmt.Printf("first ping, run %d: %v\n", i+1, d.Round(time.Millisecond))
		firsts = append(firsts, d)
	}
	slices.Sort(firsts)
	med := firsts[len(firsts)/2]
	fmt.Printf("time to first ping: median %v of %d runs (target ≤ 1s: %s)\n", med.Round(time.Millisecond), len(firsts), verdict(med <= time.Second))

	idle, after, gbps, err := memory(bin, *load, *settle)
	if err != nil {
		fmt.Fprintln(os.Stderr, "memory:", err)
		os.Exit(1)
	}
	fmt.Printf("RSS idle: %.1f MB (target ≤ 20 MB: %s)\n", idle, verdict(idle <= 20))
	fmt.Printf("RSS %v after a %v iperf3 run at %.2f Gbit/s: %.1f MB (target ≤ 40 MB: %s)\n", *settle, *load, gbps, after, verdict(after <= 40))
}

func verdict(ok bool) string {
	if ok {
		return "met"
	}
	return "MISSED"
}

// network is a boot node and two nodes on public hosts.
type network struct {
	lab    *lab.Lab
	hosts  [3]*lab.Host
	procs  [3]*lab.Proc
	conf   string
	keys   [3]string
	ifaces [3]string
	addrB  string
}

func newNetwork(t *lab.Runner) *network {
	l := lab.New(t)
	n := &network{lab: l, addrB: "10.0.42.3"}
	names := []string{"boot", "a", "b"}
	var pubs [3]key.Public
	for i, name := range names {
		n.hosts[i] = l.Public(name)
		k, err := key.Search(context.Background(), 8, key.DefaultNamespace, key.SearchOptions{})
		if err != nil {
			t.Fatal(err)
		}
		pubs[i] = k.Public()
		n.keys[i] = filepath.Join(l.Dir(), name+".sk")
		os.WriteFile(n.keys[i], []byte(k.String()), 0o600)
		n.ifaces[i] = "wh" + l.ID() + name
	}
	n.conf = filepath.Join(l.Dir(), "net.conf")
	os.WriteFile(n.conf, []byte(fmt.Sprintf("name bench\nsubnet 10.0.42.0/24\nboot %s %s:62096\ntrust a %s\ntrust b %s\n",
		pubs[0], n.hosts[0].Addr, pubs[1], pubs[2])), 0o644)
	return n
}

func (n *network) start(bin string) {
	for i := range n.hosts {
		args := []string{"up", n.conf, "private-key", n.keys[i], "interface", n.ifaces[i], "dns", "off", "--foreground", "--log-level", "warn"}
		if i == 0 {
			args = append(args, "listen-port", "62096")
		}
		n.procs[i] = n.hosts[i].Start("wh", nil, bin, args...)
	}
}

// firstPing starts a network and measures the time to the first ping
// reply from a to b over the overlay.
func firstPing(bin string) (d time.Duration, err error) {
	var t lab.Runner
	err = t.Do(func() { d, err = firstPingIn(&t, bin) })
	return d, err
}

func firstPingIn(t *lab.Runner, bin string) (time.Duration, error) {
	n := newNetwork(t)
	start := time.Now()
	n.start(bin)
	a := n.hosts[1]
	for time.Since(start) < 30*time.Second {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		// Until a's interface exists ping fails at once; after that it
		// sends every 10 ms until the first reply.
		_, err := a.Run(ctx, "ping", "-n", "-q", "-c1", "-w3", "-i0.01", n.addrB)
		cancel()
		if err == nil {
			return time.Since(start), nil
		}
		time.Sleep(5 * time.Millisecond)
	}
	return 0, fmt.Errorf("no reply within 30 s")
}

// memory measures node a's RSS idle, then after an iperf3 run from a to b.
func memory(bin string, load, settle time.Duration) (idle, after, gbps float64, err error) {
	var t lab.Runner
	err = t.Do(func() { idle, after, gbps, err = memoryIn(&t, bin, load, settle) })
	return
}

func memoryIn(t *lab.Runner, bin string, load, settle time.Duration) (idle, after, gbps float64, err error) {
	n := newNetwork(t)
	n.start(bin)
	a, b := n.hosts[1], n.hosts[2]
	if err := lab.Eventually(30*time.Second, 100*time.Millisecond, func() error {
		_, err := a.Run(context.Background(), "ping", "-c1", "-W1", n.addrB)
		return err
	}); err != nil {
		return 0, 0, 0, err
	}
	time.Sleep(5 * time.Second)
	pid := n.procs[1].Cmd.Process.Pid
	idle = rssMB(pid)
	b.Start("iperf3s", nil, "iperf3", "-s", "-1")
	time.Sleep(300 * time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), load+30*time.Second)
	defer cancel()
	out, err := a.Run(ctx, "iperf3", "-c", n.addrB, "-t", strconv.Itoa(int(load.Seconds())), "-P", "4", "-f", "g")
	if err != nil {
		return 0, 0, 0, fmt.Errorf("iperf3: %v\n%s", err, out)
	}
	for _, line := range strings.Split(out, "\n") {
		if strings.Contains(line, "receiver") {
			f := strings.Fields(line)
			for i, w := range f {
				if w == "Gbits/sec" && i > 0 {
					gbps, _ = strconv.ParseFloat(f[i-1], 64)
				}
			}
		}
	}
	peak := rssMB(pid)
	fmt.Printf("RSS right after the load: %.1f MB\n", peak)
	time.Sleep(settle)
	return idle, rssMB(pid), gbps, nil
}

func rssMB(pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return -1
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
			return kb / 1024
		}
	}
	return -1
}
