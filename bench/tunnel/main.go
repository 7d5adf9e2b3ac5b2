// Command tunnel benchmarks wh's tunnel against the raw link and stock wireguard-go.
// It needs root, ip(8) and iperf3:
//
//	go run ./bench/tunnel [-t 10] [-P 1] [-mtu 1280] [-idle 60s]
//
// Topology, with S a random suffix so that runs never collide:
//
//	netns bta-S                                   netns btb-S
//	  bva-S 10.241.0.1/24  <------ veth ------>     bvb-S 10.241.0.2/24
//	  TUN bwa-S 10.242.0.1/24  (b, c)               TUN bwb-S 10.242.0.2/24
//	  iperf3 client                                 iperf3 server
//
// It measures iperf3 TCP throughput over (a) the raw veth, (b) stock wireguard-go with
// conn.StdNetBind and (c) wh, each tunnel end a wgpeer process (./bench/tunnel/wgpeer)
// with the same keys and MTU, and prints Gbit/s, c/b (target ≥ 0.95: the demux must cost
// nothing) and c/a. For the tunnels it also prints each end's RSS: idle after start-up,
// right after the iperf3 run, and -idle later (targets for wh: ≤ 20 MB idle, ≤ 40 MB 60 s
// after load).
//
// (b) is wgpeer -mode std, a tiny harness around stock wireguard-go; (c) is the real wh
// daemon, `wh up` in each namespace with a config of the two nodes (startWH).
package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/whnet/wh/key"
)

// side is one end of the tunnel under test, with everything a starter needs.
type side struct {
	NS       string      // network namespace
	Iface    string      // TUN name (unique on the host)
	Underlay string      // veth address, no prefix length
	Overlay  string      // TUN address, no prefix length
	Private  key.Private // this end's key
	Peer     key.Public  // the other end's key
	PeerAddr string      // the other end's underlay ip:port
	PeerIP   string      // the other end's overlay address
	Port     uint16      // UDP port
}

// A starter starts one tunnel end and returns its process once it is up.
type starter func(ctx context.Context, s side) (*exec.Cmd, error)

type bench struct {
	seconds  int
	streams  int
	runs     int
	mtu      int
	idleWait time.Duration
	wgpeer   string // built binary of (b)
	wh       string // built binary of (c)
	dir      string // scratch files
	suffix   string
}

func main() {
	var b bench
	flag.IntVar(&b.seconds, "t", 10, "iperf3 seconds per run")
	flag.IntVar(&b.streams, "P", 1, "iperf3 parallel streams")
	flag.IntVar(&b.mtu, "mtu", 1280, "TUN MTU of both tunnels")
	flag.IntVar(&b.runs, "runs", 5, "throughput runs of each kind, alternating (b) and (c)")
	flag.DurationVar(&b.idleWait, "idle", 60*time.Second, "wait after the load before the last RSS reading")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	err := b.run(ctx)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench/tunnel:", err)
		os.Exit(1)
	}
}

func (b *bench) run(ctx context.Context) error {
	if os.Geteuid() != 0 {
		return errors.New("needs root (network namespaces, TUN)")
	}
	for _, tool := range []string{"ip", "iperf3", "ping"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("needs %s (apt-get install iproute2 iperf3 iputils-ping)", tool)
		}
	}
	dir, err := os.MkdirTemp("", "bench-tunnel-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	b.dir = dir
	b.wgpeer = filepath.Join(dir, "wgpeer")
	if out, err := exec.CommandContext(ctx, "go", "build", "-o", b.wgpeer, "github.com/whnet/wh/bench/tunnel/wgpeer").CombinedOutput(); err != nil {
		return fmt.Errorf("build wgpeer: %v\n%s", err, out)
	}
	b.wh = filepath.Join(dir, "wh")
	if out, err := exec.CommandContext(ctx, "go", "build", "-o", b.wh, "github.com/whnet/wh/cmd/wh").CombinedOutput(); err != nil {
		return fmt.Errorf("build wh: %v\n%s", err, out)
	}
	sfx := make([]byte, 3)
	rand.Read(sfx)
	b.suffix = hex.EncodeToString(sfx)
	a, z, cleanup, err := b.topology(ctx)
	defer cleanup()
	if err != nil {
		return err
	}

	fmt.Printf("iperf3 TCP, %d s, -P %d, %d runs; tunnels with MTU %d; %d CPUs shared by both ends and iperf3\n",
		b.seconds, b.streams, b.runs, b.mtu, runtime.NumCPU())
	fmt.Printf("CPU: user+system seconds of both tunnel processes per Gbit transferred (less sensitive to other load)\n\n")
	var raw, std, wh []float64
	var cpuStd, cpuWH []float64
	for i := range b.runs {
		r, err := b.iperf(ctx, a, z, z.Underlay)
		if err != nil {
			return fmt.Errorf("(a) raw link: %w", err)
		}
		var s, cs, w, cw float64
		for j := range 2 { // (b) first in odd runs, (c) first in even ones: no order bias
			if (i+j)%2 == 0 {
				if s, cs, err = b.throughput(ctx, a, z, b.startStd); err != nil {
					return fmt.Errorf("(b) wireguard-go: %w", err)
				}
			} else if w, cw, err = b.throughput(ctx, a, z, b.startWH); err != nil {
				return fmt.Errorf("(c) wh: %w", err)
			}
		}
		fmt.Printf("run %d: (a) %6.2f  (b) %5.2f Gbit/s %5.3f CPU s/Gbit  (c) %5.2f Gbit/s %5.3f CPU s/Gbit\n", i+1, r, s, cs, w, cw)
		raw, std, wh = append(raw, r), append(std, s), append(wh, w)
		cpuStd, cpuWH = append(cpuStd, cs), append(cpuWH, cw)
	}
	mr, ms, mw := median(raw), median(std), median(wh)
	fmt.Printf("\nmedians\n")
	fmt.Printf("(a) raw veth                    %6.2f Gbit/s\n", mr)
	fmt.Printf("(b) wireguard-go, StdNetBind    %6.2f Gbit/s   %5.3f CPU s/Gbit\n", ms, median(cpuStd))
	fmt.Printf("(c) wh                          %6.2f Gbit/s   %5.3f CPU s/Gbit\n", mw, median(cpuWH))
	fmt.Printf("c/b = %.3f (target ≥ 0.95)    c/a = %.3f    CPU per Gbit c/b = %.3f\n\n", mw/ms, mw/mr, median(cpuWH)/median(cpuStd))

	memStd, err := b.memory(ctx, a, z, b.startStd)
	if err != nil {
		return fmt.Errorf("(b) wireguard-go memory: %w", err)
	}
	memWH, err := b.memory(ctx, a, z, b.startWH)
	if err != nil {
		return fmt.Errorf("(c) wh memory: %w", err)
	}
	fmt.Printf("RSS MB (end A / end B)    idle           after %ds load  %v later       peak\n", b.seconds, b.idleWait)
	fmt.Printf("(b) wireguard-go          %s\n", memStd)
	fmt.Printf("(c) wh                    %s   targets: idle ≤ 20, %v later ≤ 40\n", memWH, b.idleWait)
	return nil
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// topology creates the two namespaces and the veth between them.
func (b *bench) topology(ctx context.Context) (a, z side, cleanup func(), err error) {
	s := b.suffix
	a = side{NS: "bta-" + s, Iface: "bwa-" + s, Underlay: "10.241.0.1", Overlay: "10.242.0.1", Port: 51820}
	z = side{NS: "btb-" + s, Iface: "bwb-" + s, Underlay: "10.241.0.2", Overlay: "10.242.0.2", Port: 51820}
	var created []string
	cleanup = func() {
		for _, ns := range created {
			exec.Command("ip", "netns", "del", ns).Run() // removes the veth and TUNs too
		}
	}
	for _, sd := range []side{a, z} {
		if err := ipCmd(ctx, "netns", "add", sd.NS); err != nil {
			return a, z, cleanup, err
		}
		created = append(created, sd.NS)
		if err := ipCmd(ctx, "-n", sd.NS, "link", "set", "lo", "up"); err != nil {
			return a, z, cleanup, err
		}
	}
	steps := [][]string{
		{"link", "add", "bva-" + s, "netns", a.NS, "type", "veth", "peer", "name", "bvb-" + s, "netns", z.NS},
		{"-n", a.NS, "addr", "add", a.Underlay + "/24", "dev", "bva-" + s},
		{"-n", z.NS, "addr", "add", z.Underlay + "/24", "dev", "bvb-" + s},
		{"-n", a.NS, "link", "set", "bva-" + s, "up"},
		{"-n", z.NS, "link", "set", "bvb-" + s, "up"},
	}
	for _, st := range steps {
		if err := ipCmd(ctx, st...); err != nil {
			return a, z, cleanup, err
		}
	}
	ka, err := key.NewPrivate()
	if err != nil {
		return a, z, cleanup, err
	}
	kz, err := key.NewPrivate()
	if err != nil {
		return a, z, cleanup, err
	}
	a.Private, a.Peer, a.PeerAddr, a.PeerIP = ka, kz.Public(), fmt.Sprintf("%s:%d", z.Underlay, z.Port), z.Overlay
	z.Private, z.Peer, z.PeerAddr, z.PeerIP = kz, ka.Public(), fmt.Sprintf("%s:%d", a.Underlay, a.Port), a.Overlay
	return a, z, cleanup, nil
}

// mem is one tunnel run's RSS readings, in MB, for end A and end B.
type mem struct{ idle, loaded, later, peak [2]float64 }

func (m mem) String() string {
	f := func(v [2]float64) string { return fmt.Sprintf("%5.1f / %-5.1f ", v[0], v[1]) }
	return f(m.idle) + f(m.loaded) + f(m.later) + f(m.peak)
}

// pair is both tunnel ends, running.
type pair struct{ a, z *exec.Cmd }

// startPair starts both ends with start and waits until a ping crosses the tunnel.
func startPair(ctx context.Context, a, z side, start starter) (*pair, error) {
	var p pair
	var err error
	if p.z, err = start(ctx, z); err != nil {
		return nil, fmt.Errorf("start %s: %w", z.NS, err)
	}
	if p.a, err = start(ctx, a); err != nil {
		p.stop()
		return nil, fmt.Errorf("start %s: %w", a.NS, err)
	}
	if err := waitPing(ctx, a, z.Overlay); err != nil {
		p.stop()
		return nil, err
	}
	return &p, nil
}

func (p *pair) stop() {
	for _, c := range []*exec.Cmd{p.a, p.z} {
		if c == nil {
			continue
		}
		c.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { c.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			c.Process.Kill()
			<-done
		}
	}
}

// status reads a kB field of /proc/PID/status of both ends, in MB.
func (p *pair) status(field string) ([2]float64, error) {
	va, err := procStatusMB(p.a.Process.Pid, field)
	if err != nil {
		return [2]float64{}, err
	}
	vz, err := procStatusMB(p.z.Process.Pid, field)
	return [2]float64{va, vz}, err
}

// cpu is the user+system CPU time both ends have used.
func (p *pair) cpu() (time.Duration, error) {
	var sum time.Duration
	for _, c := range []*exec.Cmd{p.a, p.z} {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", c.Process.Pid))
		if err != nil {
			return 0, err
		}
		// Fields after the parenthesized command name; utime and stime are the 14th and 15th.
		f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
		for _, s := range f[11:13] {
			ticks, err := strconv.ParseInt(s, 10, 64)
			if err != nil {
				return 0, err
			}
			sum += time.Duration(ticks) * time.Second / 100 // USER_HZ
		}
	}
	return sum, nil
}

// throughput starts a fresh pair, runs iperf3 over it and returns Gbit/s and the CPU
// seconds both ends spent per Gbit.
func (b *bench) throughput(ctx context.Context, a, z side, start starter) (float64, float64, error) {
	p, err := startPair(ctx, a, z, start)
	if err != nil {
		return 0, 0, err
	}
	defer p.stop()
	c0, err := p.cpu()
	if err != nil {
		return 0, 0, err
	}
	gbps, err := b.iperf(ctx, a, z, z.Overlay)
	if err != nil {
		return 0, 0, err
	}
	c1, err := p.cpu()
	return gbps, (c1 - c0).Seconds() / (gbps * float64(b.seconds)), err
}

// memory is one tunnel run's RSS readings, in MB, for end A and end B.
type memory struct{ idle, loaded, later, peak [2]float64 }

func (m memory) String() string {
	f := func(v [2]float64) string { return fmt.Sprintf("%5.1f / %-5.1f   ", v[0], v[1]) }
	return f(m.idle) + f(m.loaded) + f(m.later) + f(m.peak)
}

// memory starts a fresh pair and reads its RSS idle, right after an iperf3 run, and
// b.idleWait later.
func (b *bench) memory(ctx context.Context, a, z side, start starter) (memory, error) {
	var m memory
	p, err := startPair(ctx, a, z, start)
	if err != nil {
		return m, err
	}
	defer p.stop()
	time.Sleep(2 * time.Second)
	if m.idle, err = p.status("VmRSS"); err != nil {
		return m, err
	}
	if _, err := b.iperf(ctx, a, z, z.Overlay); err != nil {
		return m, err
	}
	if m.loaded, err = p.status("VmRSS"); err != nil {
		return m, err
	}
	select {
	case <-time.After(b.idleWait):
	case <-ctx.Done():
		return m, ctx.Err()
	}
	if m.later, err = p.status("VmRSS"); err != nil {
		return m, err
	}
	m.peak, err = p.status("VmHWM")
	return m, err
}

// startStd starts stock wireguard-go with conn.StdNetBind: (b).
func (b *bench) startStd(ctx context.Context, s side) (*exec.Cmd, error) {
	return b.startWGPeer(ctx, "std", s)
}

// startWH starts wh: (c), the real daemon: `wh up` in s.NS with a config in
// which both ends trust each other at their underlay addresses (no boot
// node), in the foreground so that its pid is the daemon's.
func (b *bench) startWH(ctx context.Context, s side) (*exec.Cmd, error) {
	dir := filepath.Join(b.dir, s.Iface)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	self, peer := s.Private.Public(), s.Peer
	// Both ends write the same file: the lower key first, as in any shared config.
	ends := []string{
		fmt.Sprintf("trust %s %s %s:%d", s.Overlay, self, s.Underlay, s.Port),
		fmt.Sprintf("trust %s %s %s", s.PeerIP, peer, s.PeerAddr),
	}
	if bytes.Compare(self[:], peer[:]) > 0 {
		ends[0], ends[1] = ends[1], ends[0]
	}
	conf := filepath.Join(dir, "net.conf")
	if err := os.WriteFile(conf, []byte("name bench\nworkbit 0\nsubnet 10.242.0.0/24\n"+strings.Join(ends, "\n")+"\n"), 0o644); err != nil {
		return nil, err
	}
	keyf := filepath.Join(dir, "node.sk")
	if err := os.WriteFile(keyf, []byte(s.Private.String()), 0o600); err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(ctx, "ip", "netns", "exec", s.NS, b.wh, "up", conf, "private-key", keyf,
		"interface", s.Iface, "listen-port", strconv.Itoa(int(s.Port)), "mode", "direct", "dns", "off",
		"--foreground", "--log-level", "warn")
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	for deadline := time.Now().Add(10 * time.Second); ; {
		if exec.CommandContext(ctx, "ip", "netns", "exec", s.NS, b.wh, "show", s.Iface).Run() == nil {
			return cmd, nil
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			cmd.Wait()
			return nil, fmt.Errorf("wh in %s: not up within 10s", s.NS)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (b *bench) startWGPeer(ctx context.Context, mode string, s side) (*exec.Cmd, error) {
	// `ip netns exec` execs in place: the process's pid is wgpeer's, for /proc readings.
	cmd := exec.CommandContext(ctx, "ip", "netns", "exec", s.NS, b.wgpeer, "-mode", mode,
		"-iface", s.Iface, "-priv", s.Private.String(), "-peer", s.Peer.String(),
		"-endpoint", s.PeerAddr, "-port", strconv.Itoa(int(s.Port)), "-mtu", strconv.Itoa(b.mtu),
		"-addr", s.Overlay+"/24", "-allowed", s.PeerIP+"/32")
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	ready := make(chan error, 1)
	go func() {
		line, err := bufio.NewReader(out).ReadString('\n')
		if err == nil && line != "ready\n" {
			err = fmt.Errorf("unexpected output %q", line)
		}
		ready <- err
		io.Copy(io.Discard, out)
	}()
	select {
	case err = <-ready:
	case <-time.After(10 * time.Second):
		err = errors.New("not ready within 10s")
	}
	if err != nil {
		cmd.Process.Kill()
		cmd.Wait()
		return nil, fmt.Errorf("wgpeer in %s: %w", s.NS, err)
	}
	return cmd, nil
}

// iperf runs an iperf3 server in z on addr and the client in a; it returns Gbit/s received.
func (b *bench) iperf(ctx context.Context, a, z side, addr string) (float64, error) {
	srv := exec.CommandContext(ctx, "ip", "netns", "exec", z.NS, "iperf3", "-s", "-1", "-B", addr)
	if err := srv.Start(); err != nil {
		return 0, err
	}
	defer func() { srv.Process.Kill(); srv.Wait() }()
	var out []byte
	var err error
	for range 20 { // the server needs a moment to listen
		time.Sleep(100 * time.Millisecond)
		out, err = exec.CommandContext(ctx, "ip", "netns", "exec", a.NS, "iperf3", "-c", addr,
			"-t", strconv.Itoa(b.seconds), "-P", strconv.Itoa(b.streams), "-J").Output()
		if err == nil {
			break
		}
	}
	if err != nil {
		return 0, fmt.Errorf("iperf3 -c %s: %v\n%s", addr, err, out)
	}
	var r struct {
		End struct {
			SumReceived struct {
				BitsPerSecond float64 `json:"bits_per_second"`
			} `json:"sum_received"`
		} `json:"end"`
	}
	if err := json.Unmarshal(out, &r); err != nil {
		return 0, fmt.Errorf("iperf3 output: %w", err)
	}
	return r.End.SumReceived.BitsPerSecond / 1e9, nil
}

// waitPing pings dst from a until it answers (the first ping carries the handshake).
func waitPing(ctx context.Context, a side, dst string) error {
	var out []byte
	var err error
	for range 10 {
		out, err = exec.CommandContext(ctx, "ip", "netns", "exec", a.NS, "ping", "-c", "1", "-W", "1", dst).CombinedOutput()
		if err == nil {
			return nil
		}
	}
	return fmt.Errorf("no ping reply from %s over the tunnel: %v\n%s", dst, err, out)
}

func ipCmd(ctx context.Context, args ...string) error {
	if out, err := exec.CommandContext(ctx, "ip", args...).CombinedOutput(); err != nil {
		return fmt.Errorf("ip %s: %v: %s", strings.Join(args, " "), err, out)
	}
	return nil
}

// procStatusMB reads a kB field of /proc/PID/status, in MB.
func procStatusMB(pid int, field string) (float64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			kb, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
			return kb / 1024, err
		}
	}
	return 0, fmt.Errorf("/proc/%d/status: no %s", pid, field)
}
