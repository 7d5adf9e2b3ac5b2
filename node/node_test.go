package node

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"golang.zx2c4.com/wireguard/tun/netstack"

	"github.com/whnet/wh/config"
	"github.com/whnet/wh/ipc"
	"github.com/whnet/wh/key"
	"github.com/whnet/wh/orchid"
	"github.com/whnet/wh/resolver"
	"github.com/whnet/wh/wire"
)

// testNet is a network of whole nodes in one process, on loopback UDP
// ports, with userspace (netstack) TUNs: no root needed.
type testNet struct {
	t     *testing.T
	keys  map[string]key.Private
	ports map[string]uint16
	nodes map[string]*Node
	nets  map[string]*netstack.Net
	dir   string
}

func newTestNet(t *testing.T, names ...string) *testNet {
	tn := &testNet{t: t, keys: map[string]key.Private{}, ports: map[string]uint16{}, nodes: map[string]*Node{}, nets: map[string]*netstack.Net{}, dir: t.TempDir()}
	for _, n := range names {
		k, err := key.Search(context.Background(), 4, "test", key.SearchOptions{})
		if err != nil {
			t.Fatal(err)
		}
		tn.keys[n] = k
		tn.ports[n] = freePort(t)
	}
	return tn
}

func freePort(t *testing.T) uint16 {
	c, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return uint16(c.LocalAddr().(*net.UDPAddr).Port)
}

// config writes a network with boot node "boot" and the given trusted nodes.
func (tn *testNet) config(trusted ...string) *config.Network {
	s := fmt.Sprintf("name t\nnamespace test\nworkbit 4\nsubnet 10.9.0.0/24\nboot %s 127.0.0.1:%d\n", tn.keys["boot"].Public(), tn.ports["boot"])
	for _, n := range trusted {
		s += fmt.Sprintf("trust %s %s\n", n, tn.keys[n].Public())
	}
	n, err := config.Parse("t.conf", []byte(s))
	if err != nil {
		tn.t.Fatal(err)
	}
	return n
}

func (tn *testNet) start(name string, n *config.Network) *Node {
	return tn.startWith(name, n, nil)
}

// startWith starts node name with the options mod changes; a node that
// mod makes Userspace gets no test TUN.
func (tn *testNet) startWith(name string, n *config.Network, mod func(*Options)) *Node {
	t := tn.t
	opt := Options{
		Interface:  "wht" + name,
		ListenPort: tn.ports[name],
		Mode:       ModeDirect,
		DNS:        resolver.ModeOff,
		SocketDir:  tn.dir,
		Logger:     slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelInfo})).With("node", name),
	}
	if mod != nil {
		mod(&opt)
	}
	if !Headless(n, tn.keys[name].Public()) && !opt.Userspace {
		self, _ := n.Node(tn.keys[name].Public())
		tdev, tnet, err := netstack.CreateNetTUN([]netip.Addr{self.IP, orchid.Addr(self.Key, n.Namespace)}, nil, 1280)
		if err != nil {
			t.Fatal(err)
		}
		opt.TUN = tdev
		tn.nets[name] = tnet
	}
	nd, err := New(n, tn.keys[name], opt)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { nd.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done; nd.Close() })
	tn.nodes[name] = nd
	return nd
}

// echo serves a TCP echo on name's overlay address, port 7.
func (tn *testNet) echo(name string) {
	ln, err := tn.nets[name].ListenTCP(&net.TCPAddr{Port: 7})
	if err != nil {
		tn.t.Fatal(err)
	}
	tn.t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { io.Copy(c, c); c.Close() }()
		}
	}()
}

// dial connects from name to addr:7 over the overlay, retrying until
// timeout (paths take a moment to form).
func (tn *testNet) dial(name string, addr netip.Addr, timeout time.Duration) net.Conn {
	tn.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		c, err := tn.nets[name].DialContextTCPAddrPort(ctx, netip.AddrPortFrom(addr, 7))
		cancel()
		if err == nil {
			return c
		}
		if time.Now().After(deadline) {
			tn.t.Fatalf("%s → %s: %v", name, addr, err)
		}
	}
}

func roundTrip(t *testing.T, c net.Conn, msg string) {
	t.Helper()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Write([]byte(msg)); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, len(msg))
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != msg {
		t.Fatalf("echo: %q, %v", buf, err)
	}
}

// TestNodesInProcess: two nodes find each other through a boot node and
// carry TCP over WireGuard; show, lookup, ping and resolve answer on the
// control socket; a reload that adds a node keeps the open connection and
// makes the new node reachable; a reload that removes a peer cuts it off.
func TestNodesInProcess(t *testing.T) {
	tn := newTestNet(t, "boot", "a", "b", "c")
	n := tn.config("a", "b")
	tn.start("boot", n)
	tn.start("a", n)
	tn.start("b", n)
	tn.echo("b")

	ipB := netip.MustParseAddr("10.9.0.3")
	c := tn.dial("a", ipB, 15*time.Second)
	defer c.Close()
	roundTrip(t, c, "hello over wh")

	// Over the ORCHID too.
	c6 := tn.dial("a", orchid.Addr(tn.keys["b"].Public(), "test"), 5*time.Second)
	roundTrip(t, c6, "hello over ORCHID")
	c6.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	sock := ipc.SocketPath(tn.dir, "wht"+"a")
	var st Status
	if err := ipc.Call(ctx, sock, "show", nil, &st); err != nil {
		t.Fatal(err)
	}
	if len(st.Peers) != 1 || st.Peers[0].Hostname != "b" || st.Peers[0].Path != PathDirect ||
		st.Peers[0].Endpoint != fmt.Sprintf("127.0.0.1:%d", tn.ports["b"]) {
		t.Errorf("show: %+v", st.Peers)
	}
	var lr LookupResult
	if err := ipc.Call(ctx, sock, "lookup", []string{"b"}, &lr); err != nil || !lr.Found || lr.Addr.Port() != tn.ports["b"] {
		t.Errorf("lookup b = %+v, %v", lr, err)
	}
	var pr PingResult
	if err := ipc.Call(ctx, sock, "ping", []string{tn.keys["b"].Public().String()[:12]}, &pr); err != nil || !pr.Answered {
		t.Errorf("ping b = %+v, %v", pr, err)
	}
	var rr ResolveResult
	if err := ipc.Call(ctx, sock, "resolve", []string{"b.t"}, &rr); err != nil || rr.IP != "10.9.0.3" {
		t.Errorf("resolve b.t = %+v, %v", rr, err)
	}
	if err := ipc.Call(ctx, sock, "nonsense", nil, nil); err == nil {
		t.Errorf("an unknown verb succeeded")
	}

	// Reload on every node with c added; the open connection survives.
	n2 := tn.config("a", "b", "c")
	for _, name := range []string{"a", "b"} {
		if err := tn.nodes[name].Reload(n2); err != nil {
			t.Fatalf("reload %s: %v", name, err)
		}
	}
	tn.start("c", n2)
	tn.echo("c")
	roundTrip(t, c, "still here after reload")
	cc := tn.dial("a", netip.MustParseAddr("10.9.0.4"), 15*time.Second)
	roundTrip(t, cc, "hello c")
	cc.Close()

	// Changing the namespace is refused.
	bad := *n2
	bad.Namespace = "other"
	if err := tn.nodes["a"].Reload(&bad); err == nil {
		t.Errorf("reload with another namespace succeeded")
	}

	// Remove b from a's config: a stops talking to b.
	n3 := tn.config("a", "c")
	if err := tn.nodes["a"].Reload(n3); err != nil {
		t.Fatal(err)
	}
	st = tn.nodes["a"].Status(false)
	for _, p := range st.Peers {
		if p.Hostname == "b" {
			t.Errorf("b still a peer after removal: %+v", p)
		}
	}
	c.SetDeadline(time.Now().Add(2 * time.Second))
	c.Write([]byte("x"))
	if _, err := c.Read(make([]byte, 1)); err == nil {
		t.Errorf("a still reaches b after b was removed")
	}
}

// TestReloadDeviceFailure: a reload the WireGuard device refuses fails,
// says why, and leaves the node's peers and config as they were.
func TestReloadDeviceFailure(t *testing.T) {
	tn := newTestNet(t, "boot", "a", "b")
	n := tn.config("a", "b")
	a := tn.start("a", n)
	a.mu.Lock()
	before := a.net // n with the claims applied
	a.mu.Unlock()
	a.dev.Close() // every SetPeers from now on fails

	err := a.Reload(tn.config("a"))
	if err == nil || !strings.Contains(err.Error(), "WireGuard peers") {
		t.Fatalf("reload on a closed device: %v, want an error about the WireGuard peers", err)
	}
	a.mu.Lock()
	_, hasB := a.peers[tn.keys["b"].Public()]
	net := a.net
	a.mu.Unlock()
	if !hasB || net != before {
		t.Errorf("after a failed reload: b still a peer %v, config unchanged %v", hasB, net == before)
	}
}

// stranger is a DHT node of the test network that is no node of it: a key
// with the workbits and a socket of its own, talking to nodes directly.
type stranger struct {
	t     *testing.T
	codec *wire.Codec
	conn  *net.UDPConn
}

func newStranger(t *testing.T) *stranger {
	k, err := key.Search(context.Background(), 4, "test", key.SearchOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return speakAs(t, k)
}

// speakAs returns a socket of its own that speaks with key k.
func speakAs(t *testing.T, k key.Private) *stranger {
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &stranger{t: t, codec: wire.NewCodec(k, "test", 4), conn: c}
}

func (s *stranger) addr() netip.AddrPort { return s.conn.LocalAddr().(*net.UDPAddr).AddrPort() }

func (s *stranger) send(to *Node, m wire.Message) int {
	s.t.Helper()
	pkt, err := s.codec.Seal(nil, to.Public(), m)
	if err != nil {
		s.t.Fatal(err)
	}
	if _, err := s.conn.WriteToUDPAddrPort(pkt, netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), to.Port())); err != nil {
		s.t.Fatal(err)
	}
	return len(pkt)
}

// received is a message the stranger got, with its packet's size.
type received struct {
	m    wire.Message
	size int
}

// sync pings to and waits for its pong: everything sent before has been
// handled (one socket, one receive goroutine, in order). It returns what
// else came meanwhile.
func (s *stranger) sync(to *Node) []received {
	s.t.Helper()
	txid := rand.Uint64()
	s.send(to, wire.Ping{TxID: txid, Size: wire.MaxPongSize})
	var got []received
	buf := make([]byte, 2048)
	for {
		s.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		n, err := s.conn.Read(buf)
		if err != nil {
			s.t.Fatalf("no pong from the node: %v", err)
		}
		if _, m, err := s.codec.Open(buf[:n]); err == nil {
			if p, ok := m.(wire.Pong); ok && p.TxID == txid {
				return got
			}
			got = append(got, received{m, n})
		}
	}
}

// pings returns the Pings among ms.
func pings(ms []received) []received {
	var out []received
	for _, r := range ms {
		if _, ok := r.m.(wire.Ping); ok {
			out = append(out, r)
		}
	}
	return out
}

func (nd *Node) pathOf(k key.Public) path {
	nd.mu.Lock()
	defer nd.mu.Unlock()
	return nd.peers[k].path
}

// TestPathMovesOnlyAfterOurProbe: a trusted peer's message from a new
// address does not move its path: the node pings the peer there (no
// larger than the message), and only the peer's answer from there, to
// that ping, moves it. A path that WireGuard traffic shows to be working
// is not left, nor even probed away from.
func TestPathMovesOnlyAfterOurProbe(t *testing.T) {
	tn := newTestNet(t, "boot", "a", "b")
	a := tn.start("a", tn.config("a", "b"))
	kb := tn.keys["b"].Public()
	f := speakAs(t, tn.keys["b"]) // b, or whoever forwards b's packets, at f
	g := speakAs(t, tn.keys["b"]) // and at g

	sent := f.send(a, wire.Ping{TxID: 1, Size: wire.MaxPongSize})
	asked := pings(f.sync(a))
	if len(asked) == 0 {
		t.Fatal("a message from a new address: no probe")
	}
	for _, r := range asked {
		if r.size > sent {
			t.Errorf("probe of %d bytes for a message of %d", r.size, sent)
		}
	}
	if p := a.pathOf(kb); p.direct.IsValid() {
		t.Fatalf("path moved to %v before any answer", p.direct)
	}
	probe := asked[0].m.(wire.Ping)

	// Answers that are not ours: another txid, or from another address.
	f.send(a, wire.Pong{TxID: probe.TxID + 1, Observed: f.addr()})
	f.sync(a)
	g.send(a, wire.Pong{TxID: probe.TxID, Observed: g.addr()})
	g.sync(a)
	if p := a.pathOf(kb); p.direct.IsValid() {
		t.Fatalf("path moved to %v on a pong that answers no probe of ours from there", p.direct)
	}
	f.send(a, wire.Pong{TxID: probe.TxID, Observed: f.addr()})
	f.sync(a)
	if p := a.pathOf(kb); p.direct != f.addr() {
		t.Fatalf("path %v after b answered from %v", p.direct, f.addr())
	}

	// WireGuard traffic arrives on the path: g cannot take it, even once
	// the control messages are quiet.
	wg := make([]byte, 100)
	wg[0] = 4 // a transport message, as far as the Bind can tell
	if _, err := f.conn.WriteToUDPAddrPort(wg, netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), a.Port())); err != nil {
		t.Fatal(err)
	}
	a.mu.Lock()
	p := a.peers[kb]
	p.confirmed = time.Now().Add(-time.Minute)
	a.mu.Unlock()
	sent = g.send(a, wire.Ping{TxID: 2, Size: wire.MaxPongSize})
	asked = pings(g.sync(a))
	if len(asked) != 1 || asked[0].size > sent {
		t.Fatalf("b spoke from g: %d probes, want one no larger than %d bytes", len(asked), sent)
	}
	// b answers at g: a pings b on the working path, b answers there,
	// the path stays.
	g.send(a, wire.Pong{TxID: asked[0].m.(wire.Ping).TxID, Observed: g.addr()})
	g.sync(a)
	check := f.expect(t, func(m wire.Message) bool { _, ok := m.(wire.Ping); return ok }).(wire.Ping)
	f.send(a, wire.Pong{TxID: check.TxID, Observed: f.addr()})
	f.sync(a)
	for a.pathOf(kb).checking {
		time.Sleep(time.Millisecond) // the check returns
	}
	if p := a.pathOf(kb); p.direct != f.addr() {
		t.Fatalf("left a working path that answers for %v", p.direct)
	}

	// If b no longer answers on the working path (it restarted on
	// another port), the path moves to where it answers.
	a.mu.Lock()
	p.kept = time.Time{} // checked long ago
	a.mu.Unlock()
	a.pathVerified(kb, g.addr())
	f.expect(t, func(m wire.Message) bool { _, ok := m.(wire.Ping); return ok })
	for deadline := time.Now().Add(20 * time.Second); a.pathOf(kb).direct != g.addr(); {
		if time.Now().After(deadline) {
			t.Fatalf("still on %v, which does not answer", a.pathOf(kb).direct)
		}
		time.Sleep(10 * time.Millisecond)
	}

	// Once the path is quiet (no traffic since it moved to g), f is
	// probed when b speaks from there, and its answer moves the path.
	a.mu.Lock()
	p.confirmed, p.asking = time.Now().Add(-time.Minute), time.Time{}
	a.mu.Unlock()
	f.send(a, wire.Ping{TxID: 3, Size: wire.MaxPongSize})
	asked = pings(f.sync(a))
	if len(asked) != 1 {
		t.Fatalf("%d probes of f on a quiet path, want 1", len(asked))
	}
	f.send(a, wire.Pong{TxID: asked[0].m.(wire.Ping).TxID, Observed: f.addr()})
	f.sync(a)
	if p := a.pathOf(kb); p.direct != f.addr() {
		t.Fatalf("path %v, want f's %v", p.direct, f.addr())
	}
}

// expect reads until a message that match accepts, and returns it.
func (s *stranger) expect(t *testing.T, match func(wire.Message) bool) wire.Message {
	t.Helper()
	buf := make([]byte, 2048)
	for {
		s.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		n, err := s.conn.Read(buf)
		if err != nil {
			t.Fatalf("nothing expected came: %v", err)
		}
		if _, m, err := s.codec.Open(buf[:n]); err == nil && match(m) {
			return m
		}
	}
}

// TestPathWorking: WireGuard traffic on the path keeps it working for
// wgQuiet, control messages for ctlQuiet; traffic from before the path
// (on the one it replaced) does not count.
func TestPathWorking(t *testing.T) {
	now := time.Unix(1e9, 0)
	d, e := netip.MustParseAddrPort("192.0.2.1:1"), netip.MustParseAddrPort("192.0.2.2:1")
	p := path{wgAt: now}
	if p.working(now) || !p.mayMove(d, now) {
		t.Fatalf("no path: working")
	}
	p.direct, p.since = d, now
	if p.working(now) || !p.mayMove(e, now) {
		t.Errorf("traffic from before the path counted")
	}
	p.wgAt = now.Add(time.Second)
	if at := now.Add(time.Second); !p.working(at) || p.mayMove(e, at) || !p.mayMove(d, at) {
		t.Errorf("traffic just came: working %v, may move %v", p.working(at), p.mayMove(e, at))
	}
	if later := p.wgAt.Add(wgQuiet); p.working(later) || !p.mayMove(e, later) {
		t.Errorf("quiet for %v: still working", wgQuiet)
	}
	p.wgAt, p.confirmed = time.Time{}, now
	if !p.working(now.Add(ctlQuiet-1)) || p.working(now.Add(ctlQuiet)) {
		t.Errorf("a control message keeps the path working for %v only", ctlQuiet)
	}
}

// endpointOf is the direct endpoint `wh show` gives for peer k.
func endpointOf(nd *Node, k key.Public) string {
	for _, p := range nd.Status(false).Peers {
		if p.Key == k.String() {
			return p.Endpoint
		}
	}
	return ""
}

// TestNewAddressIsNoPath: one authenticated message from a trusted peer's
// key at an address (the peer's, or a forwarder's who replays it there)
// does not make that address the peer's path, before or after the path
// has one.
func TestNewAddressIsNoPath(t *testing.T) {
	tn := newTestNet(t, "boot", "a", "b")
	a := tn.start("a", tn.config("a", "b"))
	kb := tn.keys["b"].Public()
	f := speakAs(t, tn.keys["b"])
	f.send(a, wire.Ping{TxID: 1, Size: wire.MaxPongSize})
	f.sync(a)
	if ep := endpointOf(a, kb); ep != "" {
		t.Errorf("b's path is %s after one message from there, unanswered", ep)
	}
}

// TestUnsolicitedPong: a pong that answers no ping of the node's is no
// observation of its NAT: anyone can send one.
func TestUnsolicitedPong(t *testing.T) {
	tn := newTestNet(t, "boot", "a")
	a := tn.start("a", tn.config("a"))
	s := newStranger(t)
	s.send(a, wire.Pong{TxID: 42, Observed: netip.MustParseAddrPort("192.0.2.66:1")})
	s.sync(a)
	if obs := a.det.Observations(); len(obs) != 0 {
		t.Errorf("an unsolicited pong was observed: %+v", obs)
	}
}
