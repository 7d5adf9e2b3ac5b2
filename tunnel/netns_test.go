package tunnel

// The netns test runs two devices with real kernel TUNs, one per network namespace, as
// helper processes (this test binary re-executed inside `ip netns exec`):
//
//	netns tna-S                                   netns tnb-S
//	  tva-S 10.231.0.1/24  <------ veth ------>     tvb-S 10.231.0.2/24
//	  helper A: UDP :51820                          helper B: UDP :51820
//	  TUN twa-S 10.232.0.1/24, 2001:20::a/128       TUN twb-S 10.232.0.2/24, 2001:20::b/128
//	        route 2001:20::/28                            route 2001:20::/28
//
// S is a random suffix: other engineers run netns tests on the same host at once, and
// /var/run/wireguard (hence interface names) is shared by all namespaces.

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/whnet/wh/internal/testenv"
	"github.com/whnet/wh/key"
)

const helperEnv = "WH_TUNNEL_NETNS_HELPER"

// helperConfig is a helper node's configuration, passed in helperEnv as JSON.
type helperConfig struct {
	Name      string
	Private   string
	Port      uint16
	Addresses []netip.Prefix
	Routes    []netip.Prefix
	Peers     []Peer
	Paths     map[key.Public]netip.AddrPort // direct path, also learned
}

// helperCmd is one line on a helper's stdin; helperReply one on its stdout, prefixed by
// replyPrefix. Every command is answered with the peer status after it.
type helperCmd struct{ SetPeers []Peer }

type helperReply struct {
	Err   string
	Peers []PeerStatus
}

const replyPrefix = "helper-reply: "

func TestNetnsHelper(t *testing.T) {
	cfgJSON := os.Getenv(helperEnv)
	if cfgJSON == "" {
		t.Skip("helper process of TestNetns")
	}
	var cfg helperConfig
	if err := json.Unmarshal([]byte(cfgJSON), &cfg); err != nil {
		t.Fatal(err)
	}
	priv, err := key.ParsePrivate(cfg.Private)
	if err != nil {
		t.Fatal(err)
	}
	bind := NewBind(BindOptions{Logger: testLogger(t)})
	dev, err := New(Config{
		Name: cfg.Name, Private: priv, ListenPort: cfg.Port,
		Addresses: cfg.Addresses, Routes: cfg.Routes, Bind: bind, Logger: testLogger(t),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer dev.Close()
	if err := dev.SetPeers(cfg.Peers); err != nil {
		t.Fatal(err)
	}
	for k, ap := range cfg.Paths {
		if err := bind.SetPath(k, Path{Direct: ap}); err != nil {
			t.Fatal(err)
		}
		if err := bind.Learn(ap, k); err != nil {
			t.Fatal(err)
		}
	}
	reply := func(err error) {
		var r helperReply
		if err != nil {
			r.Err = err.Error()
		}
		ps, err := dev.Peers()
		if err != nil && r.Err == "" {
			r.Err = err.Error()
		}
		r.Peers = ps
		b, _ := json.Marshal(r)
		fmt.Printf("%s%s\n", replyPrefix, b)
	}
	reply(nil) // ready
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() { // until the test closes stdin
		var cmd helperCmd
		if err := json.Unmarshal(sc.Bytes(), &cmd); err != nil {
			reply(err)
			continue
		}
		if cmd.SetPeers != nil {
			reply(dev.SetPeers(cmd.SetPeers))
			continue
		}
		reply(nil)
	}
}

// helper is a running helper process.
type helper struct {
	t       *testing.T
	stdin   io.WriteCloser
	replies chan helperReply
}

func startHelper(t *testing.T, ns string, cfg helperConfig) *helper {
	t.Helper()
	cfgJSON, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, "ip", "netns", "exec", ns, os.Args[0], "-test.run=^TestNetnsHelper$", "-test.v=false")
	cmd.Env = append(os.Environ(), helperEnv+"="+string(cfgJSON))
	cmd.Stderr = t.Output()
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	h := &helper{t: t, replies: make(chan helperReply, 16)}
	if h.stdin, err = cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	read := make(chan struct{})
	go func() {
		defer close(read)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			line, ok := strings.CutPrefix(sc.Text(), replyPrefix)
			if !ok {
				continue
			}
			var r helperReply
			if err := json.Unmarshal([]byte(line), &r); err != nil {
				r.Err = "bad reply: " + err.Error()
			}
			h.replies <- r
		}
	}()
	t.Cleanup(func() {
		h.stdin.Close() // the helper closes its device and exits
		exited := make(chan error, 1)
		go func() { <-read; exited <- cmd.Wait() }()
		sock := "/var/run/wireguard/" + cfg.Name + ".sock"
		select {
		case err := <-exited:
			if err != nil {
				t.Errorf("helper in %s: %v", ns, err)
			}
			if _, err := os.Stat(sock); err == nil {
				t.Errorf("%s left behind by Close", sock)
			}
		case <-time.After(10 * time.Second):
			t.Errorf("helper in %s did not exit; killing it", ns)
			cancel()
			<-exited
		}
		cancel()
		os.Remove(sock)
	})
	h.reply() // ready
	return h
}

func (h *helper) reply() []PeerStatus {
	h.t.Helper()
	select {
	case r := <-h.replies:
		if r.Err != "" {
			h.t.Fatalf("helper: %s", r.Err)
		}
		return r.Peers
	case <-time.After(15 * time.Second):
		h.t.Fatal("helper did not answer within 15s")
		return nil
	}
}

func (h *helper) do(cmd helperCmd) []PeerStatus {
	h.t.Helper()
	b, _ := json.Marshal(cmd)
	if _, err := fmt.Fprintf(h.stdin, "%s\n", b); err != nil {
		h.t.Fatal(err)
	}
	return h.reply()
}

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// inNetns runs f on an OS thread inside network namespace ns. Sockets f creates stay in
// ns when used from other goroutines.
func inNetns(t *testing.T, ns string, f func() error) {
	t.Helper()
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // not unlocked if restoring fails: the thread then exits
		orig, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			errc <- err
			return
		}
		defer orig.Close()
		target, err := os.Open("/var/run/netns/" + ns)
		if err != nil {
			errc <- err
			return
		}
		defer target.Close()
		if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("setns %s: %w", ns, err)
			return
		}
		err = f()
		if unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET) == nil {
			runtime.UnlockOSThread()
		}
		errc <- err
	}()
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
}

func TestNetns(t *testing.T) {
	testenv.NeedRoot(t, "creates network namespaces and kernel TUNs")
	testenv.NeedTools(t, "ip", "ping", "wg")
	sfx := make([]byte, 3)
	rand.Read(sfx)
	s := hex.EncodeToString(sfx)
	nsA, nsB := "tna-"+s, "tnb-"+s
	for _, ns := range []string{nsA, nsB} {
		run(t, "ip", "netns", "add", ns)
		t.Cleanup(func() { exec.Command("ip", "netns", "del", ns).Run() })
		run(t, "ip", "-n", ns, "link", "set", "lo", "up")
	}
	run(t, "ip", "link", "add", "tva-"+s, "netns", nsA, "type", "veth", "peer", "name", "tvb-"+s, "netns", nsB)
	run(t, "ip", "-n", nsA, "addr", "add", "10.231.0.1/24", "dev", "tva-"+s)
	run(t, "ip", "-n", nsB, "addr", "add", "10.231.0.2/24", "dev", "tvb-"+s)
	run(t, "ip", "-n", nsA, "link", "set", "tva-"+s, "up")
	run(t, "ip", "-n", nsB, "link", "set", "tvb-"+s, "up")

	privA, privB := testKey(t), testKey(t)
	pubA, pubB := privA.Public(), privB.Public()
	pfx := netip.MustParsePrefix
	orchids := []netip.Prefix{pfx("2001:20::/28")}
	peerB := Peer{Key: pubB, AllowedIPs: []netip.Prefix{pfx("10.232.0.2/32"), pfx("2001:20::b/128")}}
	ifA := "twa-" + s
	a := startHelper(t, nsA, helperConfig{
		Name: ifA, Private: privA.String(), Port: 51820,
		Addresses: []netip.Prefix{pfx("10.232.0.1/24"), pfx("2001:20::a/128")}, Routes: orchids,
		Peers: []Peer{peerB},
		Paths: map[key.Public]netip.AddrPort{pubB: netip.MustParseAddrPort("10.231.0.2:51820")},
	})
	startHelper(t, nsB, helperConfig{
		Name: "twb-" + s, Private: privB.String(), Port: 51820,
		Addresses: []netip.Prefix{pfx("10.232.0.2/24"), pfx("2001:20::b/128")}, Routes: orchids,
		Peers: []Peer{{Key: pubA, AllowedIPs: []netip.Prefix{pfx("10.232.0.1/32"), pfx("2001:20::a/128")}}},
		Paths: map[key.Public]netip.AddrPort{pubA: netip.MustParseAddrPort("10.231.0.1:51820")},
	})

	t.Run("ping", func(t *testing.T) {
		for _, dst := range []string{"10.232.0.2", "2001:20::b"} {
			out := run(t, "ip", "netns", "exec", nsA, "ping", "-c", "3", "-i", "0.2", "-W", "2", dst)
			if !strings.Contains(out, " 0% packet loss") {
				t.Errorf("ping %s:\n%s", dst, out)
			}
		}
	})
	t.Run("wg_show", func(t *testing.T) {
		out := run(t, "wg", "show", ifA)
		t.Logf("wg show %s:\n%s", ifA, out)
		for _, want := range []string{"listening port: 51820", "peer: " + pubB.Std(), "endpoint: [100::", "latest handshake:", "allowed ips: "} {
			if !strings.Contains(out, want) {
				t.Errorf("wg show %s lacks %q:\n%s", ifA, want, out)
			}
		}
	})
	t.Run("set_peers_keeps_stream", func(t *testing.T) {
		var ln net.Listener
		inNetns(t, nsB, func() (err error) { ln, err = net.Listen("tcp", "10.232.0.2:0"); return err })
		defer ln.Close()
		var received atomic.Int64
		go func() {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close()
			io.Copy(io.Discard, &countingReader{c, &received})
		}()
		var c net.Conn
		inNetns(t, nsA, func() (err error) { c, err = net.DialTimeout("tcp", ln.Addr().String(), 5*time.Second); return err })
		defer c.Close()
		var writeErr error
		stop, written := make(chan struct{}), make(chan struct{})
		go func() {
			defer close(written)
			chunk := make([]byte, 32<<10)
			for {
				select {
				case <-stop:
					return
				default:
				}
				c.SetWriteDeadline(time.Now().Add(5 * time.Second))
				if _, err := c.Write(chunk); err != nil {
					writeErr = err
					return
				}
			}
		}()
		defer func() { close(stop); <-written }()
		flowing := func(t *testing.T) {
			t.Helper()
			start := received.Load()
			for deadline := time.Now().Add(5 * time.Second); received.Load() < start+(4<<20); {
				if time.Now().After(deadline) {
					t.Fatalf("stream stalled: %d bytes in 5s", received.Load()-start)
				}
				time.Sleep(20 * time.Millisecond)
			}
		}
		flowing(t)
		handshake := func() time.Time {
			for _, p := range a.do(helperCmd{}) {
				if p.Key == pubB {
					return p.LastHandshake
				}
			}
			t.Fatal("A lost peer B")
			return time.Time{}
		}
		before := handshake()
		extra := Peer{Key: testKey(t).Public(), AllowedIPs: []netip.Prefix{pfx("10.232.0.99/32")}}
		widerB := peerB
		widerB.AllowedIPs = append(widerB.AllowedIPs, pfx("10.232.5.0/24"))
		steps := []struct {
			name  string
			peers []Peer
		}{
			{"add_peer", []Peer{peerB, extra}},
			{"widen_allowed_ips_and_remove_peer", []Peer{widerB}},
			{"unchanged", []Peer{widerB}},
		}
		for _, st := range steps {
			t.Run(st.name, func(t *testing.T) {
				after := a.do(helperCmd{SetPeers: st.peers})
				if len(after) != len(st.peers) {
					t.Fatalf("%d peers after SetPeers, want %d", len(after), len(st.peers))
				}
				flowing(t)
				if h := handshake(); !h.Equal(before) {
					t.Errorf("new handshake with B at %v (was %v)", h, before)
				}
			})
		}
		close(stop)
		<-written
		if writeErr != nil {
			t.Errorf("stream broke: %v", writeErr)
		}
		stop = make(chan struct{}) // for the deferred close
	})
}

type countingReader struct {
	r io.Reader
	n *atomic.Int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n.Add(int64(n))
	return n, err
}
