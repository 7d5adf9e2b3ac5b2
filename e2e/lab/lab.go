// Package lab builds small internets out of Linux network namespaces for
// end-to-end tests: an "internet" namespace holding a bridge, public hosts
// attached to it, and NAT routers (iptables/nft in their own namespace)
// with hosts on their LANs.
//
//	          inet (bridge br0, 11.22.0.0/16, no route anywhere else)
//	     ┌──────────┼───────────────┬─────────────────┐
//	boot 11.22.2.1   a 11.22.3.1   r1 wan 11.22.101.1   r2 wan 11.22.102.1 …
//	                               │ MASQUERADE          │
//	                               lan 192.168.1.0/24    lan 192.168.2.0/24
//	                               h 192.168.1.2         …
//
// Nothing is connected to the root namespace: the lab's addresses route
// only between its own namespaces. 11.22.0.0/16 is a non-reserved range on
// purpose (miniupnpd refuses to map behind a reserved WAN address); no
// packet of the lab ever leaves it. Every namespace, process and file the
// lab makes is removed by t.Cleanup, also when the test fails
// (WH_LAB_LOGS=DIR keeps a copy of the logs in DIR).
package lab

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/whnet/wh/internal/testenv"
)

// Kind is what a router does to packets crossing it.
type Kind string

const (
	Restricted Kind = "restricted" // MASQUERADE: endpoint-independent mapping, address-and-port-dependent filtering
	Symmetric  Kind = "symmetric"  // MASQUERADE --random: a new port per destination
	FullCone   Kind = "full"       // MASQUERADE plus inbound UDP forwarded to the first LAN host
	UPnP       Kind = "upnp"       // Restricted (in nft) plus miniupnpd: UPnP IGD, NAT-PMP and PCP
)

// T is what a lab needs from its user: a *testing.T, or the demo's stand-in.
type T interface {
	Helper()
	Cleanup(func())
	TempDir() string
	Logf(format string, args ...any)
	Fatal(args ...any)
	Fatalf(format string, args ...any)
	Skip(args ...any)
	Failed() bool
}

var _ T = (testing.TB)(nil)

// Lab is one test's internet.
type Lab struct {
	t   T
	id  string // short random id in every name, so labs of parallel tests never collide
	dir string // logs and config files

	mu      sync.Mutex
	ns      []string // namespaces to delete, in creation order
	procs   []*Proc
	nextPub int // last octet of the next public host
	nextRtr int
}

// Check reports why labs cannot be built here, or nil.
func Check() error {
	if os.Geteuid() != 0 {
		return fmt.Errorf("needs root to create network namespaces (run as root, as CI does)")
	}
	if m := testenv.Missing("ip", "iptables", "sysctl"); len(m) > 0 {
		return fmt.Errorf("needs %s (scripts/deps.sh installs it)", strings.Join(m, ", "))
	}
	return nil
}

// New builds an empty internet, or skips t with the reason it can't (in
// CI, fails it: see internal/testenv).
func New(t T) *Lab {
	t.Helper()
	if err := Check(); err != nil {
		testenv.Skip(t, "lab: "+err.Error())
	}
	b := make([]byte, 3)
	rand.Read(b)
	l := &Lab{t: t, id: hex.EncodeToString(b), dir: t.TempDir(), nextPub: 1}
	t.Cleanup(l.close)
	inet := l.addNS("inet")
	l.must(inet, "ip", "link", "add", "br0", "type", "bridge")
	l.must(inet, "ip", "link", "set", "br0", "up")
	return l
}

// ID returns the lab's random id.
func (l *Lab) ID() string { return l.id }

// Dir returns a directory for the test's files, removed at the end.
func (l *Lab) Dir() string { return l.dir }

func (l *Lab) nsName(name string) string { return "whl" + l.id + "-" + name }

func (l *Lab) addNS(name string) string {
	ns := l.nsName(name)
	if out, err := exec.Command("ip", "netns", "add", ns).CombinedOutput(); err != nil {
		l.t.Fatalf("lab: ip netns add %s: %v: %s", ns, err, out)
	}
	l.mu.Lock()
	l.ns = append(l.ns, ns)
	l.mu.Unlock()
	l.must(ns, "ip", "link", "set", "lo", "up")
	return ns
}

// must runs a command in namespace ns and fails the test if it fails.
func (l *Lab) must(ns string, name string, args ...string) string {
	l.t.Helper()
	out, err := nsCommand(context.Background(), ns, name, args...).CombinedOutput()
	if err != nil {
		l.t.Fatalf("lab: [%s] %s %s: %v\n%s", ns, name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

func nsCommand(ctx context.Context, ns, name string, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", ns, name}, args...)...)
}

// link joins namespace a (interface an, address aAddr) to b (bn) with a veth.
func (l *Lab) veth(a, an, b, bn string) {
	tmpA, tmpB := "t"+l.id+an, "t"+l.id+bn // unique in the root namespace while moving
	tmpA, tmpB = tmpA[:min(len(tmpA), 15)], tmpB[:min(len(tmpB), 15)]
	if out, err := exec.Command("ip", "link", "add", tmpA, "netns", a, "type", "veth", "peer", "name", tmpB, "netns", b).CombinedOutput(); err != nil {
		l.t.Fatalf("lab: veth %s/%s: %v: %s", a, b, err, out)
	}
	l.must(a, "ip", "link", "set", tmpA, "name", an)
	l.must(b, "ip", "link", "set", tmpB, "name", bn)
	l.must(a, "ip", "link", "set", an, "up")
	l.must(b, "ip", "link", "set", bn, "up")
}

// attach plugs namespace ns into the internet's bridge through interface
// wan0 with address addr/16.
func (l *Lab) attach(ns, port string, addr netip.Addr) {
	l.veth(ns, "wan0", l.nsName("inet"), port)
	l.must(l.nsName("inet"), "ip", "link", "set", port, "master", "br0")
	l.must(ns, "ip", "addr", "add", addr.String()+"/16", "dev", "wan0")
}

// Host is a machine: one network namespace.
type Host struct {
	lab  *Lab
	Name string
	NS   string
	Addr netip.Addr // its own address (public, or on its router's LAN)
}

// Public adds a host on the internet.
func (l *Lab) Public(name string) *Host {
	l.mu.Lock()
	l.nextPub++
	n := l.nextPub
	l.mu.Unlock()
	// Each host in its own /24, as on the real internet (the DHT caps
	// entries per /24).
	addr := netip.AddrFrom4([4]byte{11, 22, byte(n), 1})
	ns := l.addNS(name)
	l.attach(ns, fmt.Sprintf("p%d", n), addr)
	return &Host{lab: l, Name: name, NS: ns, Addr: addr}
}

// Lossy makes h drop each packet it sends or receives with probability p
// (iptables' statistic match: this kernel may lack netem).
func (h *Host) Lossy(p float64) {
	for _, rule := range [][]string{{"INPUT", "!", "-i", "lo"}, {"OUTPUT", "!", "-o", "lo"}} {
		h.lab.must(h.NS, "iptables", append(append([]string{"-I"}, rule...), "-m", "statistic", "--mode", "random", "--probability", fmt.Sprint(p), "-j", "DROP")...)
	}
}

// Firewalled adds a host on the internet behind a stateful firewall and
// no NAT, as servers with a host firewall and IPv6 homes are: it reaches
// anyone, and only hosts it has sent to reach it.
func (l *Lab) Firewalled(name string) *Host {
	h := l.Public(name)
	l.must(h.NS, "iptables", "-A", "INPUT", "-i", "wan0", "-m", "conntrack", "--ctstate", "NEW,INVALID", "-j", "DROP")
	return h
}

// Router is a NAT router: a namespace with wan0 on the internet (or on
// another router's LAN) and a bridge lan0 for its hosts.
type Router struct {
	Host
	Kind  Kind
	WAN   netip.Addr
	LAN   netip.Prefix
	up    string // the uplink interface: wan0, or eth0 behind another router
	hosts int
}

// NAT adds a router of the given kind on the internet.
func (l *Lab) NAT(name string, kind Kind) *Router {
	l.mu.Lock()
	l.nextRtr++
	n := l.nextRtr
	l.mu.Unlock()
	wan := netip.AddrFrom4([4]byte{11, 22, byte(100 + n), 1})
	ns := l.addNS(name)
	l.attach(ns, fmt.Sprintf("r%d", n), wan)
	return l.router(name, ns, "wan0", kind, wan, n)
}

// NAT adds a router behind r (carrier-grade NAT: two layers of translation).
func (r *Router) NAT(name string, kind Kind) *Router {
	l := r.lab
	l.mu.Lock()
	l.nextRtr++
	n := l.nextRtr
	l.mu.Unlock()
	h := r.Add(name)
	// The host r.Add made is the inner router itself.
	return l.router(name, h.NS, "eth0", kind, h.Addr, n)
}

// router makes namespace ns a NAT router whose uplink is interface up.
func (l *Lab) router(name, ns, up string, kind Kind, wan netip.Addr, n int) *Router {
	lan := netip.PrefixFrom(netip.AddrFrom4([4]byte{192, 168, byte(n), 1}), 24)
	l.must(ns, "ip", "link", "add", "lan0", "type", "bridge")
	l.must(ns, "ip", "link", "set", "lan0", "up")
	l.must(ns, "ip", "addr", "add", lan.String(), "dev", "lan0")
	l.must(ns, "sysctl", "-qw", "net.ipv4.ip_forward=1")
	// Short UDP timeouts make mapping expiry testable in seconds.
	nsCommand(context.Background(), ns, "sysctl", "-qw", "net.netfilter.nf_conntrack_udp_timeout=30").Run()
	masq := []string{"-t", "nat", "-A", "POSTROUTING", "-o", up, "-j", "MASQUERADE"}
	if kind == Symmetric {
		masq = append(masq, "--random")
	}
	r := &Router{Host: Host{lab: l, Name: name, NS: ns, Addr: wan}, Kind: kind, WAN: wan, LAN: lan.Masked(), up: up}
	if kind == UPnP {
		l.miniupnpd(r)
	} else {
		l.must(ns, "iptables", masq...)
		// A stateful firewall, as on every home router: unsolicited
		// packets to the router die before conntrack keeps them. Without
		// it, Linux keeps an entry for such a packet, and the next
		// outbound flow to its sender finds the reply tuple taken and is
		// mapped to a random port: a restricted NAT would turn symmetric
		// towards exactly the peer that is punching a hole.
		l.must(ns, "iptables", "-A", "INPUT", "-i", up, "-m", "conntrack", "--ctstate", "NEW,INVALID", "-j", "DROP")
	}
	return r
}

// miniupnpdRuleset is the nft table and chains miniupnpd-nftables expects
// (its default names), plus the router's own NAT and stateful firewall on
// its uplink %[1]s.
const miniupnpdRuleset = `table inet filter {
  chain forward { type filter hook forward priority 0; policy accept; jump miniupnpd; }
  chain miniupnpd { }
  chain prerouting { type nat hook prerouting priority -100; policy accept; jump prerouting_miniupnpd; }
  chain postrouting { type nat hook postrouting priority 100; policy accept; jump postrouting_miniupnpd; oifname "%[1]s" masquerade; }
  chain prerouting_miniupnpd { }
  chain postrouting_miniupnpd { }
  chain input { type filter hook input priority 0; policy accept; iifname "%[1]s" ct state new,invalid drop; }
}
`

const miniupnpdConf = `ext_ifname=%s
listening_ip=lan0
http_port=0
enable_natpmp=yes
enable_upnp=yes
secure_mode=yes
system_uptime=yes
uuid=%s
friendly_name=wh-lab
lease_file=%s
allow 1024-65535 192.168.0.0/16 1024-65535
deny 0-65535 0.0.0.0/0 0-65535
`

// miniupnpd gives router r restricted NAT in nft and a miniupnpd (UPnP IGD,
// NAT-PMP and PCP) on its LAN, and waits until it listens.
func (l *Lab) miniupnpd(r *Router) {
	l.t.Helper()
	testenv.NeedTools(l.t, "miniupnpd", "nft")
	base := filepath.Join(l.dir, r.Name+"-miniupnpd")
	b := make([]byte, 16)
	rand.Read(b)
	uuid := fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
	if err := os.WriteFile(base+".nft", []byte(fmt.Sprintf(miniupnpdRuleset, r.up)), 0o644); err != nil {
		l.t.Fatal(err)
	}
	if err := os.WriteFile(base+".conf", []byte(fmt.Sprintf(miniupnpdConf, r.up, uuid, base+".leases")), 0o644); err != nil {
		l.t.Fatal(err)
	}
	l.must(r.NS, "nft", "-f", base+".nft")
	d := r.Start("miniupnpd", nil, "miniupnpd", "-f", base+".conf", "-d", "-P", base+".pid")
	if err := Eventually(10*time.Second, 20*time.Millisecond, func() error {
		if o := d.Output(); !strings.Contains(o, "HTTP listening on port") || !strings.Contains(o, "Listening for NAT-PMP/PCP") {
			return fmt.Errorf("miniupnpd on %s not ready:\n%s", r.Name, o)
		}
		return nil
	}); err != nil {
		l.t.Fatal(err)
	}
}

// Host adds a host on r's LAN, with r as its default route.
func (r *Router) Add(name string) *Host {
	l := r.lab
	r.hosts++
	addr := netip.AddrFrom4(r.LAN.Addr().As4())
	a4 := addr.As4()
	a4[3] = byte(1 + r.hosts)
	addr = netip.AddrFrom4(a4)
	ns := l.addNS(name)
	port := fmt.Sprintf("h%d", r.hosts)
	l.veth(ns, "eth0", r.NS, port)
	l.must(r.NS, "ip", "link", "set", port, "master", "lan0")
	l.must(ns, "ip", "addr", "add", netip.PrefixFrom(addr, 24).String(), "dev", "eth0")
	gw := netip.AddrFrom4(r.LAN.Addr().As4())
	g4 := gw.As4()
	g4[3] = 1
	l.must(ns, "ip", "route", "add", "default", "via", netip.AddrFrom4(g4).String())
	if r.Kind == FullCone && r.hosts == 1 {
		l.must(r.NS, "iptables", "-t", "nat", "-A", "PREROUTING", "-i", r.up, "-p", "udp", "-j", "DNAT", "--to-destination", addr.String())
	}
	return &Host{lab: l, Name: name, NS: ns, Addr: addr}
}

// Command returns a command that runs on h.
func (h *Host) Command(ctx context.Context, name string, args ...string) *exec.Cmd {
	return nsCommand(ctx, h.NS, name, args...)
}

// Run runs a command on h and returns its combined output.
func (h *Host) Run(ctx context.Context, name string, args ...string) (string, error) {
	out, err := h.Command(ctx, name, args...).CombinedOutput()
	return string(out), err
}

// Pids returns the processes running on h: those it started, and those
// that detached from them (a wh daemon).
func (h *Host) Pids() []int { return nsPids(h.NS) }

// nsPids returns the processes in network namespace ns.
func nsPids(ns string) []int {
	out, err := exec.Command("ip", "netns", "pids", ns).Output()
	if err != nil {
		return nil
	}
	var ps []int
	for _, f := range strings.Fields(string(out)) {
		var p int
		if _, err := fmt.Sscan(f, &p); err == nil && p > 1 {
			ps = append(ps, p)
		}
	}
	return ps
}

// Must runs a command on h and fails the test if it fails.
func (h *Host) Must(name string, args ...string) string {
	h.lab.t.Helper()
	return h.lab.must(h.NS, name, args...)
}

// Proc is a process started in the lab.
type Proc struct {
	Name string
	Cmd  *exec.Cmd
	Log  string // path of its combined output
	done chan struct{}
	err  error
}

// Start starts a long-running command on h, its output to a log file. It
// is killed (with its process group) at the end of the test.
func (h *Host) Start(label string, env []string, name string, args ...string) *Proc {
	l := h.lab
	l.t.Helper()
	logPath := filepath.Join(l.dir, h.Name+"-"+label+".log")
	f, err := os.Create(logPath)
	if err != nil {
		l.t.Fatal(err)
	}
	cmd := nsCommand(context.Background(), h.NS, name, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		f.Close()
		l.t.Fatalf("lab: start %s on %s: %v", name, h.Name, err)
	}
	p := &Proc{Name: h.Name + "/" + label, Cmd: cmd, Log: logPath, done: make(chan struct{})}
	go func() { p.err = cmd.Wait(); f.Close(); close(p.done) }()
	l.mu.Lock()
	l.procs = append(l.procs, p)
	l.mu.Unlock()
	return p
}

// Stop kills p's process group and waits for it.
func (p *Proc) Stop() {
	if p.Cmd.Process != nil {
		syscall.Kill(-p.Cmd.Process.Pid, syscall.SIGTERM)
	}
	select {
	case <-p.done:
		return
	case <-time.After(5 * time.Second):
	}
	syscall.Kill(-p.Cmd.Process.Pid, syscall.SIGKILL)
	<-p.done
}

// Output returns what p has printed so far.
func (p *Proc) Output() string {
	b, _ := os.ReadFile(p.Log)
	return string(b)
}

// Exited reports whether p has exited.
func (p *Proc) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Eventually runs f every interval until it returns nil or timeout passes,
// and returns f's last error.
func Eventually(timeout, interval time.Duration, f func() error) error {
	deadline := time.Now().Add(timeout)
	for {
		err := f()
		if err == nil || time.Now().After(deadline) {
			return err
		}
		time.Sleep(interval)
	}
}

func (l *Lab) close() {
	l.mu.Lock()
	procs, nss := l.procs, l.ns
	l.procs, l.ns = nil, nil
	l.mu.Unlock()
	for i := len(procs) - 1; i >= 0; i-- {
		procs[i].Stop()
		if l.t.Failed() {
			l.t.Logf("--- log of %s:\n%s", procs[i].Name, tail(procs[i].Output(), 60))
		}
	}
	if keep := os.Getenv("WH_LAB_LOGS"); keep != "" {
		// For a look at the logs of a run that passed, slowly.
		dst := filepath.Join(keep, l.id)
		if out, err := exec.Command("cp", "-r", l.dir, dst).CombinedOutput(); err != nil {
			l.t.Logf("lab: keeping logs: %v: %s", err, out)
		} else {
			l.t.Logf("lab: logs kept in %s", dst)
		}
	}
	// Stop anything else still running in our namespaces (a daemon that
	// detached, say) before deleting them: politely first, so that a wh
	// daemon removes its sockets and hosts-file block, then for good.
	pids := func() []int {
		var ps []int
		for _, ns := range nss {
			ps = append(ps, nsPids(ns)...)
		}
		return ps
	}
	if ps := pids(); len(ps) > 0 {
		for _, p := range ps {
			syscall.Kill(p, syscall.SIGTERM)
		}
		Eventually(3*time.Second, 50*time.Millisecond, func() error {
			if len(pids()) > 0 {
				return fmt.Errorf("still running")
			}
			return nil
		})
		for _, p := range pids() {
			syscall.Kill(p, syscall.SIGKILL)
		}
	}
	for i := len(nss) - 1; i >= 0; i-- {
		if out, err := exec.Command("ip", "netns", "del", nss[i]).CombinedOutput(); err != nil {
			l.t.Logf("lab: ip netns del %s: %v: %s", nss[i], err, bytes.TrimSpace(out))
		}
	}
}

func tail(s string, lines int) string {
	ls := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(ls) > lines {
		ls = ls[len(ls)-lines:]
	}
	return strings.Join(ls, "\n")
}
