package tunnel

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/whnet/wh/key"
)

// stackNode is a whole device over a netstack TUN on a loopback port: no root needed.
type stackNode struct {
	priv key.Private
	pub  key.Public
	ip   netip.Addr // overlay address
	bind *Bind
	dev  *Device
	net  *Netstack
}

func newStackNode(t *testing.T, ip string) *stackNode {
	t.Helper()
	n := &stackNode{priv: testKey(t), ip: netip.MustParseAddr(ip)}
	n.pub = n.priv.Public()
	tdev, err := NewNetstack([]netip.Addr{n.ip}, 0)
	if err != nil {
		t.Fatal(err)
	}
	n.net = tdev
	log := testLogger(t).With("node", ip)
	n.bind = NewBind(BindOptions{IsControl: isTestControl, OnControl: unwrapTestRelay(nil), Logger: log})
	n.dev, err = New(Config{Private: n.priv, TUN: tdev, Bind: n.bind, Logger: log})
	if err != nil {
		tdev.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { n.dev.Close() })
	return n
}

func (n *stackNode) addr() netip.AddrPort {
	return netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), n.bind.Port())
}

// connect makes a and b peers with direct paths to each other. learn says whether each
// side learns the other's address, as the node does after a control message.
func connect(t *testing.T, a, b *stackNode, learn bool) {
	t.Helper()
	for _, p := range [][2]*stackNode{{a, b}, {b, a}} {
		self, other := p[0], p[1]
		err := self.dev.SetPeers([]Peer{{Key: other.pub, AllowedIPs: []netip.Prefix{netip.PrefixFrom(other.ip, 32)}}})
		if err != nil {
			t.Fatal(err)
		}
		if err := self.bind.SetPath(other.pub, Path{Direct: other.addr()}); err != nil {
			t.Fatal(err)
		}
		if learn {
			if err := self.bind.Learn(other.addr(), other.pub); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// relayTo returns a Relay func of src that sends to dst in relay frames, as
// if through a relay.
func relayTo(dst, src *stackNode) func([][]byte) error {
	return func(bufs [][]byte) error {
		frames := make([][]byte, len(bufs))
		for i, p := range bufs {
			frames[i] = relayFrame(src.pub, p)
		}
		return src.bind.SendControls(frames, dst.addr())
	}
}

func onlyPeer(t *testing.T, n *stackNode) PeerStatus {
	t.Helper()
	ps, err := n.dev.Peers()
	if err != nil {
		t.Fatal(err)
	}
	if len(ps) != 1 {
		t.Fatalf("%d peers, want 1: %+v", len(ps), ps)
	}
	return ps[0]
}

// echoServer echoes every TCP connection on port 7 of n until the test ends.
func echoServer(t *testing.T, n *stackNode) {
	t.Helper()
	ln, err := n.net.ListenTCP(netip.AddrPortFrom(n.ip, 7))
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	t.Cleanup(func() { ln.Close(); <-done })
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { io.Copy(c, c); c.Close() }()
		}
	}()
}

// dialEcho starts an echo server on b and dials it from a over the tunnel;
// the connection is closed when the test ends.
func dialEcho(t *testing.T, a, b *stackNode) net.Conn {
	t.Helper()
	echoServer(t, b)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := a.net.DialTCP(ctx, netip.AddrPortFrom(b.ip, 7))
	if err != nil {
		t.Fatalf("dial over the tunnel: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// roundTrip sends size bytes over c and reads them back.
func roundTrip(t *testing.T, c net.Conn, size int, tag byte) {
	t.Helper()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	msg := bytes.Repeat([]byte{tag}, size)
	errc := make(chan error, 1)
	go func() { _, err := c.Write(msg); errc <- err }()
	got := make([]byte, size)
	if _, err := io.ReadFull(c, got); err != nil {
		t.Fatalf("read echo: %v", err)
	}
	if err := <-errc; err != nil {
		t.Fatalf("write: %v", err)
	}
	if !bytes.Equal(got, msg) {
		t.Fatal("echo differs")
	}
}

func TestDevicesOverNetstack(t *testing.T) {
	checkGoroutines(t)
	a, b := newStackNode(t, "10.9.0.1"), newStackNode(t, "10.9.0.2")
	connect(t, a, b, true)
	c := dialEcho(t, a, b)
	roundTrip(t, c, 256<<10, 1)

	handshakeA, handshakeB := onlyPeer(t, a).LastHandshake, onlyPeer(t, b).LastHandshake
	if handshakeA.IsZero() && handshakeB.IsZero() {
		t.Fatal("no handshake recorded")
	}
	// Sends only: a packet sent directly just before the switch may still
	// arrive after it.
	direct := func(n *stackNode) uint64 { return n.bind.Stats().WireGuardOut }
	relayed := func(n *stackNode) uint64 { return n.bind.Stats().RelayedOut }

	t.Run("switch_to_relay", func(t *testing.T) {
		if err := a.bind.SetPath(b.pub, Path{Relay: relayTo(b, a)}); err != nil {
			t.Fatal(err)
		}
		if err := b.bind.SetPath(a.pub, Path{Relay: relayTo(a, b)}); err != nil {
			t.Fatal(err)
		}
		// A Send that read the old path just before SetPath may finish
		// just after it: a first round trip on the new path gives such a
		// straggler a whole exchange to land in, not a fixed 50 ms that
		// a busy machine can overrun.
		roundTrip(t, c, 16<<10, 'r')
		directA, directB, relayedA := direct(a), direct(b), relayed(a)
		roundTrip(t, c, 256<<10, 2)
		if direct(a) != directA || direct(b) != directB {
			t.Errorf("%d/%d packets went directly while relayed", direct(a)-directA, direct(b)-directB)
		}
		if relayed(a) == relayedA {
			t.Error("nothing went through the relay")
		}
	})
	t.Run("switch_back_to_direct", func(t *testing.T) {
		a.bind.SetPath(b.pub, Path{Direct: b.addr()})
		b.bind.SetPath(a.pub, Path{Direct: a.addr()})
		roundTrip(t, c, 16<<10, 'd') // as above
		relayedA, directA := relayed(a), direct(a)
		roundTrip(t, c, 256<<10, 3)
		if relayed(a) != relayedA {
			t.Errorf("%d packets relayed after switching back", relayed(a)-relayedA)
		}
		if direct(a) == directA {
			t.Error("nothing went directly")
		}
	})
	for _, n := range []*stackNode{a, b} {
		p := onlyPeer(t, n)
		if want := map[*stackNode]time.Time{a: handshakeA, b: handshakeB}[n]; !p.LastHandshake.Equal(want) {
			t.Errorf("node %v: handshake at %v, want none since %v", n.ip, p.LastHandshake, want)
		}
		if !strings.HasPrefix(p.Endpoint, "[100::") {
			t.Errorf("node %v: device endpoint %q, want the stable peer endpoint", n.ip, p.Endpoint)
		}
	}
}

// TestDeviceRoaming shows what Learn is for: without it the device adopts the source
// address of the peer's packets and bypasses the peer's path, until the node learns that
// address.
func TestDeviceRoaming(t *testing.T) {
	checkGoroutines(t)
	a, b := newStackNode(t, "10.9.1.1"), newStackNode(t, "10.9.1.2")
	connect(t, a, b, false)
	c := dialEcho(t, a, b)
	roundTrip(t, c, 1000, 1)
	if got, want := onlyPeer(t, b).Endpoint, a.addr().String(); got != want {
		t.Fatalf("unlearned: device endpoint %q, want it roamed to %q", got, want)
	}
	if err := b.bind.Learn(a.addr(), a.pub); err != nil {
		t.Fatal(err)
	}
	if err := b.bind.SetPath(a.pub, Path{Relay: relayTo(a, b)}); err != nil {
		t.Fatal(err)
	}
	before := b.bind.Stats().RelayedOut
	roundTrip(t, c, 1000, 2)
	if b.bind.Stats().RelayedOut == before {
		t.Error("b's device held a roamed endpoint and bypassed the relay path")
	}
	if got := onlyPeer(t, b).Endpoint; !strings.HasPrefix(got, "[100::") {
		t.Errorf("learned: device endpoint %q, want the stable peer endpoint back", got)
	}
}

func TestSetPeers(t *testing.T) {
	checkGoroutines(t)
	n := newStackNode(t, "10.9.2.1")
	k1, k2, k3 := testKey(t).Public(), testKey(t).Public(), testKey(t).Public()
	pfx := netip.MustParsePrefix
	steps := []struct {
		name  string
		peers []Peer
	}{
		{"add", []Peer{
			{Key: k1, AllowedIPs: []netip.Prefix{pfx("10.9.2.2/32")}},
			{Key: k2, AllowedIPs: []netip.Prefix{pfx("10.9.2.3/32"), pfx("2001:20::3/128")}, Keepalive: 25 * time.Second},
		}},
		{"change_allowed_ips_and_add", []Peer{
			{Key: k1, AllowedIPs: []netip.Prefix{pfx("10.9.2.2/32"), pfx("10.9.3.0/24")}},
			{Key: k2, AllowedIPs: []netip.Prefix{pfx("2001:20::3/128"), pfx("10.9.2.3/32")}, Keepalive: 25 * time.Second},
			{Key: k3, AllowedIPs: []netip.Prefix{pfx("10.9.2.4/32")}},
		}},
		{"remove_and_change_keepalive", []Peer{
			{Key: k2, AllowedIPs: []netip.Prefix{pfx("10.9.2.3/32"), pfx("2001:20::3/128")}, Keepalive: 10 * time.Second},
			{Key: k3, AllowedIPs: []netip.Prefix{pfx("10.9.2.4/32")}},
		}},
		{"unchanged", []Peer{
			{Key: k3, AllowedIPs: []netip.Prefix{pfx("10.9.2.4/32")}},
			{Key: k2, AllowedIPs: []netip.Prefix{pfx("2001:20::3/128"), pfx("10.9.2.3/32")}, Keepalive: 10 * time.Second},
		}},
		{"none", nil},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			if err := n.dev.SetPeers(st.peers); err != nil {
				t.Fatal(err)
			}
			got, err := n.dev.Peers()
			if err != nil {
				t.Fatal(err)
			}
			want := make(map[key.Public]PeerStatus)
			for _, p := range st.peers {
				pe, _ := n.bind.endpoint(p.Key)
				want[p.Key] = PeerStatus{Key: p.Key, Endpoint: pe.DstToString(), AllowedIPs: canonPrefixes(p.AllowedIPs), Keepalive: p.Keepalive}
			}
			if len(got) != len(want) {
				t.Fatalf("%d peers, want %d", len(got), len(want))
			}
			for _, g := range got {
				g.AllowedIPs = canonPrefixes(g.AllowedIPs)
				// A peer with a keepalive starts a handshake at once; its
				// initiation is held (no path here) and counts as sent.
				g.TxBytes = 0
				if diff := cmpDiff(want[g.Key], g); diff != "" {
					t.Errorf("peer %s (-want +got):\n%s", g.Key.Short(8), diff)
				}
			}
		})
	}

	t.Run("invalid", func(t *testing.T) {
		for _, peers := range [][]Peer{
			{{Key: k1}, {Key: k1}},
			{{Key: k1, Keepalive: 1500 * time.Millisecond}},
			{{Key: k1, Keepalive: 70000 * time.Second}},
			{{Key: k1, AllowedIPs: []netip.Prefix{{}}}},
		} {
			if err := n.dev.SetPeers(peers); err == nil {
				t.Errorf("SetPeers(%+v) succeeded", peers)
			}
		}
	})
	t.Run("closed", func(t *testing.T) {
		n.dev.Close()
		if err := n.dev.Close(); err != nil {
			t.Errorf("second Close = %v", err)
		}
		if err := n.dev.SetPeers(nil); !errors.Is(err, ErrClosed) {
			t.Errorf("SetPeers after Close = %v, want ErrClosed", err)
		}
	})
}

func TestNewRejectsConfig(t *testing.T) {
	tests := []struct {
		name string
		cfg  func(t *testing.T) Config
	}{
		{"no_key", func(t *testing.T) Config { return Config{Name: "x"} }},
		{"kernel_tun_without_name", func(t *testing.T) Config { return Config{Private: testKey(t)} }},
		{"addresses_with_netstack", func(t *testing.T) Config {
			tdev, err := NewNetstack([]netip.Addr{netip.MustParseAddr("10.0.0.1")}, 1280)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { tdev.Close() })
			return Config{Private: testKey(t), TUN: tdev, Addresses: []netip.Prefix{netip.MustParsePrefix("10.0.0.1/24")}}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if d, err := New(tc.cfg(t)); err == nil {
				d.Close()
				t.Fatal("New succeeded")
			}
		})
	}
}

func TestIdleFreer(t *testing.T) {
	t0 := time.Unix(1000, 0)
	tests := []struct {
		name    string
		samples []uint64 // cumulative packets, one per second from t0
		want    []int    // seconds at which memory is freed
	}{
		{"never_busy", []uint64{10, 20, 30}, nil},
		{"busy_then_quiet", append([]uint64{0, 5000, 10000}, repeat(10000, 40)...), []int{32}},
		{"keepalives_do_not_delay", append([]uint64{0, 5000}, ramp(5000, 1, 40)...), []int{31}},
		{"busy_again_frees_again", append(append(append([]uint64{0, 5000}, repeat(5000, 31)...), 9000), repeat(9000, 31)...), []int{31, 63}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var f idleFreer
			var got []int
			for i, s := range tc.samples {
				if f.sample(t0.Add(time.Duration(i)*time.Second), s) {
					got = append(got, i)
				}
			}
			if diff := cmpDiff(tc.want, got); diff != "" {
				t.Errorf("freed at (-want +got):\n%s", diff)
			}
		})
	}
}

func repeat(v uint64, n int) []uint64 {
	s := make([]uint64, n)
	for i := range s {
		s[i] = v
	}
	return s
}

func ramp(from, step uint64, n int) []uint64 {
	s := make([]uint64, n)
	for i := range s {
		s[i] = from + uint64(i+1)*step
	}
	return s
}
