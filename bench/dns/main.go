// Command dns benchmarks the wh resolver against dnsmasq: both serve the
// same generated network from loopback addresses, dnsperf sends each the
// same queries (A, AAAA and PTR of the network's names) for the same time,
// and the program prints queries per second, latency, and the ratio.
//
//	go run ./bench/dns [-hosts 1000] [-duration 10s] [-clients 4] [-rounds 3]
//
// It needs dnsperf and dnsmasq (apt-get install dnsperf dnsmasq-base), and
// uses only 127.0.77.1 (wh) and 127.0.77.2 (dnsmasq). With -serve it is the
// resolver process itself.
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/miekg/dns"
	"github.com/whnet/wh/resolver"
)

const domain = "bench"

var (
	whAddr      = netip.MustParseAddr("127.0.77.1")
	dnsmasqAddr = netip.MustParseAddr("127.0.77.2")
)

func main() {
	var (
		serve    = flag.String("serve", "", "internal: serve the hosts file `FILE` (as written by the benchmark) on -listen")
		listen   = flag.String("listen", "", "internal: address:port for -serve")
		hosts    = flag.Int("hosts", 1000, "hosts in the generated network")
		duration = flag.Duration("duration", 10*time.Second, "dnsperf run time per server per round")
		clients  = flag.Int("clients", 4, "dnsperf clients (-c)")
		threads  = flag.Int("threads", 1, "dnsperf threads (-T)")
		rounds   = flag.Int("rounds", 3, "rounds, alternating the servers; the ratio is the median of the rounds'")
		rate     = flag.Int("latency-qps", 2000, "fixed rate (dnsperf -Q) of the latency run; 0 skips it")
	)
	flag.Parse()
	var err error
	if *serve != "" {
		err = serveZone(*serve, *listen)
	} else {
		err = bench(*hosts, *duration, *clients, *threads, *rounds, *rate)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "error:", err)
		os.Exit(1)
	}
}

// serveZone runs the resolver on addr with the hosts of hostsFile, prints
// "ready" once it listens, and serves until stdin closes or a signal.
func serveZone(hostsFile, addr string) error {
	ap, err := netip.ParseAddrPort(addr)
	if err != nil {
		return err
	}
	zone, err := readZone(hostsFile)
	if err != nil {
		return err
	}
	h, err := resolver.NewHandler(resolver.Options{NoForward: true, Logger: slog.New(slog.NewTextHandler(os.Stderr, nil))})
	if err != nil {
		return err
	}
	h.SetZone(zone)
	s, err := resolver.Listen(h, []netip.AddrPort{ap})
	if err != nil {
		return err
	}
	defer s.Close()
	fmt.Println("ready")
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	go func() {
		io.Copy(io.Discard, os.Stdin)
		stop()
	}()
	<-ctx.Done()
	return nil
}

// readZone parses the hosts file the benchmark writes: "ip\tname.bench name".
func readZone(path string) (resolver.Zone, error) {
	f, err := os.Open(path)
	if err != nil {
		return resolver.Zone{}, err
	}
	defer f.Close()
	zone := resolver.Zone{Domain: domain}
	index := map[string]int{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) != 3 {
			continue
		}
		a, err := netip.ParseAddr(fields[0])
		if err != nil {
			return zone, err
		}
		i, ok := index[fields[2]]
		if !ok {
			i = len(zone.Hosts)
			index[fields[2]] = i
			zone.Hosts = append(zone.Hosts, resolver.Host{Name: fields[2]})
		}
		if a.Is4() {
			zone.Hosts[i].IPv4 = a
		} else {
			zone.Hosts[i].IPv6 = a
		}
	}
	return zone, sc.Err()
}

// bench runs the whole comparison.
func bench(hosts int, duration time.Duration, clients, threads, rounds, rate int) error {
	for _, tool := range []string{"dnsperf", "dnsmasq"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("%s not found: apt-get install dnsperf dnsmasq-base", tool)
		}
	}
	dir, err := os.MkdirTemp("", "wh-bench-dns-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	hostsFile, queryFile := filepath.Join(dir, "hosts"), filepath.Join(dir, "queries")
	if err := writeFiles(hosts, hostsFile, queryFile); err != nil {
		return err
	}
	port, err := freePort()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	self, err := os.Executable()
	if err != nil {
		return err
	}
	wh := netip.AddrPortFrom(whAddr, port)
	whCmd := exec.CommandContext(ctx, self, "-serve", hostsFile, "-listen", wh.String())
	whCmd.Stderr = os.Stderr
	stdin, err := whCmd.StdinPipe() // closing it stops the server
	if err != nil {
		return err
	}
	stdout, err := whCmd.StdoutPipe()
	if err != nil {
		return err
	}
	if err := whCmd.Start(); err != nil {
		return err
	}
	defer func() {
		stdin.Close()
		whCmd.Wait()
	}()
	if line, _ := bufio.NewReader(stdout).ReadString('\n'); line != "ready\n" {
		return fmt.Errorf("wh resolver did not start: %q", line)
	}

	dm := netip.AddrPortFrom(dnsmasqAddr, port)
	dmCmd := exec.CommandContext(ctx, "dnsmasq", "--no-daemon", "--no-resolv", "--no-hosts",
		"--addn-hosts="+hostsFile, "--local=/"+domain+"/", "--listen-address="+dnsmasqAddr.String(),
		"--port="+strconv.Itoa(int(port)), "--bind-interfaces", "--pid-file=", "--local-ttl=60")
	dmCmd.Stderr = io.Discard // it logs its start-up there
	if err := dmCmd.Start(); err != nil {
		return err
	}
	defer func() {
		dmCmd.Process.Kill()
		dmCmd.Wait()
	}()

	for _, s := range []netip.AddrPort{wh, dm} {
		if err := waitReady(s); err != nil {
			return err
		}
	}
	if err := sameAnswers(wh, dm); err != nil {
		return err
	}

	fmt.Printf("zone: %d hosts, %d queries (A, AAAA, PTR); dnsperf -c %d -T %d for %v per server and run\n",
		hosts, 3*hosts, clients, threads, duration)
	servers := []server{{"wh", wh, whCmd.Process.Pid}, {"dnsmasq", dm, dmCmd.Process.Pid}}
	best := map[string]perf{}
	var ratios []float64 // wh/dnsmasq per round: each pairs runs made under the same machine load
	for r := range rounds {
		var round [2]perf
		for i, srv := range servers {
			p, err := srv.run(ctx, queryFile, duration, clients, threads, 0)
			if err != nil {
				return err
			}
			fmt.Printf("throughput round %d %-8s %s\n", r+1, srv.name, p)
			if p.qps > best[srv.name].qps {
				best[srv.name] = p
			}
			round[i] = p
		}
		ratios = append(ratios, round[0].qps/round[1].qps)
	}
	slices.Sort(ratios)
	steady := map[string]perf{}
	if rate > 0 {
		for _, srv := range servers {
			p, err := srv.run(ctx, queryFile, duration, clients, threads, rate)
			if err != nil {
				return err
			}
			fmt.Printf("latency at %d qps %-8s %s\n", rate, srv.name, p)
			steady[srv.name] = p
		}
	}

	fmt.Printf("\nthroughput (as fast as dnsperf goes, 100 queries in flight per client; best round):\n")
	fmt.Printf("%-8s %10s %12s %12s %14s %8s\n", "server", "qps", "avg latency", "max latency", "queries/CPU-s", "lost")
	for _, srv := range servers {
		p := best[srv.name]
		fmt.Printf("%-8s %10.0f %12v %12v %14.0f %8d\n", srv.name, p.qps, p.avg, p.max, p.perCPU(), p.lost)
	}
	if rate > 0 {
		fmt.Printf("\nlatency at a steady %d qps:\n", rate)
		fmt.Printf("%-8s %12s %12s %12s %12s\n", "server", "avg", "min", "max", "stddev")
		for _, srv := range servers {
			p := steady[srv.name]
			fmt.Printf("%-8s %12v %12v %12v %12v\n", srv.name, p.avg, p.min, p.max, p.stddev)
		}
	}
	ratio := ratios[len(ratios)/2]
	verdict := "meets"
	if ratio < 1 {
		verdict = "misses"
	}
	fmt.Printf("\nratio wh/dnsmasq: %.2f qps, median of %d rounds %.2f (%s the target: at least dnsmasq's rate);"+
		" %.2f queries per CPU-second\n",
		best["wh"].qps/best["dnsmasq"].qps, rounds, ratio, verdict, best["wh"].perCPU()/best["dnsmasq"].perCPU())
	return nil
}

// server is one DNS server under test.
type server struct {
	name string
	addr netip.AddrPort
	pid  int
}

// run runs dnsperf against s, at most at rate queries per second if rate >
// 0, and measures the CPU time s used meanwhile.
func (s server) run(ctx context.Context, queryFile string, d time.Duration, clients, threads, rate int) (perf, error) {
	args := []string{"-s", s.addr.Addr().String(), "-p", strconv.Itoa(int(s.addr.Port())),
		"-d", queryFile, "-l", strconv.Itoa(int(d.Seconds())), "-c", strconv.Itoa(clients), "-T", strconv.Itoa(threads)}
	if rate > 0 {
		args = append(args, "-Q", strconv.Itoa(rate))
	}
	cpu0, err := cpuTime(s.pid)
	if err != nil {
		return perf{}, err
	}
	out, err := exec.CommandContext(ctx, "dnsperf", args...).CombinedOutput()
	if err != nil {
		return perf{}, fmt.Errorf("dnsperf against %s: %w\n%s", s.name, err, out)
	}
	cpu1, err := cpuTime(s.pid)
	if err != nil {
		return perf{}, err
	}
	p, err := parseDNSPerf(string(out))
	p.cpu = cpu1 - cpu0
	return p, err
}

// cpuTime returns the user and system time process pid has used, from
// /proc/PID/stat (fields 14 and 15, in clock ticks of 1/100 s on Linux).
func cpuTime(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	_, rest, ok := strings.Cut(string(b), ") ") // the command name may hold spaces
	f := strings.Fields(rest)
	if !ok || len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, err
	}
	return time.Duration(utime+stime) * 10 * time.Millisecond, nil
}

// writeFiles writes the network as a hosts file (the source of both
// servers) and the dnsperf query file, shuffled with a fixed seed.
func writeFiles(n int, hostsFile, queryFile string) error {
	if n < 1 || n > 65000 {
		return fmt.Errorf("-hosts %d: want 1 to 65000", n)
	}
	var hostsText strings.Builder
	var queries []string
	for i := range n {
		name := fmt.Sprintf("host%05d", i)
		v4 := netip.AddrFrom4([4]byte{10, 77, byte((i + 2) >> 8), byte(i + 2)})
		v6 := netip.AddrFrom16([16]byte{0x20, 0x01, 0x00, 0x10, 14: byte(i >> 8), 15: byte(i)}) // 2001:10::/28, ORCHID's
		fmt.Fprintf(&hostsText, "%s\t%s.%s %s\n%s\t%s.%s %s\n", v4, name, domain, name, v6, name, domain, name)
		rev, _ := dns.ReverseAddr(v4.String())
		queries = append(queries, name+"."+domain+" A", name+"."+domain+" AAAA", rev+" PTR")
	}
	rng := rand.New(rand.NewPCG(1, 2))
	rng.Shuffle(len(queries), func(i, j int) { queries[i], queries[j] = queries[j], queries[i] })
	if err := os.WriteFile(hostsFile, []byte(hostsText.String()), 0o644); err != nil {
		return err
	}
	return os.WriteFile(queryFile, []byte(strings.Join(queries, "\n")+"\n"), 0o644)
}

// freePort returns a port free for UDP and TCP on both benchmark addresses.
func freePort() (uint16, error) {
	for range 20 {
		pc, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(whAddr, 0)))
		if err != nil {
			return 0, err
		}
		port := pc.LocalAddr().(*net.UDPAddr).AddrPort().Port()
		pc.Close()
		ok := true
		for _, a := range []netip.Addr{whAddr, dnsmasqAddr} {
			u, err1 := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(a, port)))
			t, err2 := net.ListenTCP("tcp", net.TCPAddrFromAddrPort(netip.AddrPortFrom(a, port)))
			ok = ok && err1 == nil && err2 == nil
			if u != nil {
				u.Close()
			}
			if t != nil {
				t.Close()
			}
		}
		if ok {
			return port, nil
		}
	}
	return 0, errors.New("no free port on the benchmark addresses")
}

// waitReady polls addr with a query until it answers, for up to 5s.
func waitReady(addr netip.AddrPort) error {
	c := &dns.Client{Timeout: 200 * time.Millisecond}
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, _, err := c.Exchange(new(dns.Msg).SetQuestion("host00000."+domain+".", dns.TypeA), addr.String())
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no DNS server answering on %v: %w", addr, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// sameAnswers checks that both servers give the same records, so the
// benchmark compares equal work.
func sameAnswers(a, b netip.AddrPort) error {
	rev, _ := dns.ReverseAddr("10.77.0.2")
	c := &dns.Client{Timeout: time.Second}
	for _, q := range []dns.Question{
		{Name: "host00000." + domain + ".", Qtype: dns.TypeA, Qclass: dns.ClassINET},
		{Name: "host00000." + domain + ".", Qtype: dns.TypeAAAA, Qclass: dns.ClassINET},
		{Name: rev, Qtype: dns.TypePTR, Qclass: dns.ClassINET},
	} {
		var got [2]string
		for i, s := range []netip.AddrPort{a, b} {
			m := new(dns.Msg)
			m.Question = []dns.Question{q}
			m.RecursionDesired = true
			r, _, err := c.Exchange(m, s.String())
			if err != nil {
				return fmt.Errorf("%v %s: %w", s, dns.TypeToString[q.Qtype], err)
			}
			for _, rr := range r.Answer {
				rr.Header().Ttl = 0
				got[i] += rr.String() + ";"
			}
		}
		if got[0] != got[1] || got[0] == "" {
			return fmt.Errorf("servers disagree on %s %s: %q vs %q", q.Name, dns.TypeToString[q.Qtype], got[0], got[1])
		}
	}
	return nil
}

// perf is one dnsperf run's figures.
type perf struct {
	qps                   float64
	avg, min, max, stddev time.Duration
	lost                  int
	completed             int
	cpu                   time.Duration // server CPU time during the run
}

func (p perf) String() string {
	return fmt.Sprintf("%8.0f qps, latency avg %v max %v stddev %v, lost %d, server CPU %v",
		p.qps, p.avg, p.max, p.stddev, p.lost, p.cpu)
}

// perCPU returns the queries answered per second of server CPU time.
func (p perf) perCPU() float64 {
	if p.cpu <= 0 {
		return 0
	}
	return float64(p.completed) / p.cpu.Seconds()
}

var (
	reQPS       = regexp.MustCompile(`Queries per second:\s+([0-9.]+)`)
	reLat       = regexp.MustCompile(`Average Latency \(s\):\s+([0-9.]+) \(min ([0-9.]+), max ([0-9.]+)\)`)
	reStddev    = regexp.MustCompile(`Latency StdDev \(s\):\s+([0-9.]+)`)
	reLost      = regexp.MustCompile(`Queries lost:\s+([0-9]+)`)
	reCompleted = regexp.MustCompile(`Queries completed:\s+([0-9]+)`)
)

func parseDNSPerf(text string) (perf, error) {
	qps, lat, sd := reQPS.FindStringSubmatch(text), reLat.FindStringSubmatch(text), reStddev.FindStringSubmatch(text)
	lost, done := reLost.FindStringSubmatch(text), reCompleted.FindStringSubmatch(text)
	if qps == nil || lat == nil || sd == nil || lost == nil || done == nil {
		return perf{}, fmt.Errorf("unexpected dnsperf output:\n%s", text)
	}
	sec := func(s string) time.Duration {
		f, _ := strconv.ParseFloat(s, 64)
		return time.Duration(f * float64(time.Second)).Round(time.Microsecond)
	}
	var p perf
	p.qps, _ = strconv.ParseFloat(qps[1], 64)
	p.avg, p.min, p.max, p.stddev = sec(lat[1]), sec(lat[2]), sec(lat[3]), sec(sd[1])
	p.lost, _ = strconv.Atoi(lost[1])
	p.completed, _ = strconv.Atoi(done[1])
	return p, nil
}
