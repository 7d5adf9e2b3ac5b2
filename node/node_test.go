package node

import (
	"context"
	"fmt"
	"io"
	"log/slog"
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
	t := tn.t
	opt := Options{
		Interface:  "wht" + name,
		ListenPort: tn.ports[name],
		Mode:       ModeDirect,
		DNS:        resolver.ModeOff,
		SocketDir:  tn.dir,
		Logger:     slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelInfo})).With("node", name),
	}
	if !Headless(n, tn.keys[name].Public()) {
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
	a.dev.Close() // every SetPeers from now on fails

	err := a.Reload(tn.config("a"))
	if err == nil || !strings.Contains(err.Error(), "WireGuard peers") {
		t.Fatalf("reload on a closed device: %v, want an error about the WireGuard peers", err)
	}
	a.mu.Lock()
	_, hasB := a.peers[tn.keys["b"].Public()]
	net := a.net
	a.mu.Unlock()
	if !hasB || net != n {
		t.Errorf("after a failed reload: b still a peer %v, config unchanged %v", hasB, net == n)
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
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &stranger{t: t, codec: wire.NewCodec(k, "test", 4), conn: c}
}

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

// sync pings to and waits for its pong: everything sent before has been
// handled (one socket, one receive goroutine, in order).
func (s *stranger) sync(to *Node) {
	s.t.Helper()
	txid := uint64(0x5eed)
	s.send(to, wire.Ping{TxID: txid})
	buf := make([]byte, 2048)
	for {
		s.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		n, err := s.conn.Read(buf)
		if err != nil {
			s.t.Fatalf("no pong from the node: %v", err)
		}
		if _, m, err := s.codec.Open(buf[:n]); err == nil {
			if p, ok := m.(wire.Pong); ok && p.TxID == txid {
				return
			}
		}
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
