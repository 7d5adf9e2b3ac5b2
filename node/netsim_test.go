package node

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"reflect"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"golang.zx2c4.com/wireguard/device"
	"golang.zx2c4.com/wireguard/tun/netstack"
	"golang.zx2c4.com/wireguard/tun/tuntest"

	"github.com/whnet/wh/config"
	"github.com/whnet/wh/key"
	"github.com/whnet/wh/netsim"
	"github.com/whnet/wh/orchid"
	"github.com/whnet/wh/resolver"
)

// simPort is every simulated node's UDP port: each has a host of its own.
const simPort = 51820

// simNet is a network of whole nodes (DHT, puncher, relay server and
// client, WireGuard) on a netsim internet, in one process and, under
// synctest, in fake time. Their TUNs are channels (tuntest): the tests send
// numbered IPv4 packets into one node's tunnel and wait for them to come
// out of another's. (A netstack TUN cannot run in a synctest bubble:
// gvisor parks its goroutines in ways that do not count as durably
// blocked, so fake time would never advance.) Public hosts run boot nodes
// (headless, ModeDirect); hosts behind NATs run trusted nodes that detect
// their NAT (ModeUnknown), as a daemon with no mode in its config does.
//
// Set WH_SIM_DEBUG=1 to see the nodes' debug logs of a failed test.
type simNet struct {
	t       *testing.T
	in      *netsim.Internet
	order   []string // names, boot nodes first in the order added
	keys    map[string]key.Private
	hosts   map[string]*netsim.Host
	public  map[string]bool
	nodes   map[string]*Node
	tuns    map[string]*tuntest.ChannelTUN
	rx      map[string]chan []byte // what came out of each node's tunnel
	cfg     *config.Network
	seq     uint16 // of the last packet ping sent
	stopped map[string]func()
	mods    map[string]func(*Options) // changes to a node's options

	// netstack gives trusted nodes a netstack TUN instead of a channel
	// one, for TCP over the overlay: only outside a synctest bubble.
	netstack bool
	nets     map[string]*netstack.Net
}

func newSimNet(t *testing.T, opt netsim.Options) *simNet {
	return &simNet{
		t:       t,
		in:      netsim.New(opt),
		keys:    map[string]key.Private{},
		hosts:   map[string]*netsim.Host{},
		public:  map[string]bool{},
		nodes:   map[string]*Node{},
		tuns:    map[string]*tuntest.ChannelTUN{},
		rx:      map[string]chan []byte{},
		stopped: map[string]func(){},
		mods:    map[string]func(*Options){},
		nets:    map[string]*netstack.Net{},
	}
}

func (sn *simNet) add(name string, h *netsim.Host, public bool) {
	k, err := key.Search(context.Background(), 4, "test", key.SearchOptions{})
	if err != nil {
		sn.t.Fatal(err)
	}
	sn.order = append(sn.order, name)
	sn.keys[name], sn.hosts[name], sn.public[name] = k, h, public
}

// boot adds a boot node on a public host at addr.
func (sn *simNet) boot(name, addr string) {
	sn.add(name, sn.in.AddHost(netip.MustParseAddr(addr)), true)
}

// peer adds a trusted node at addr on r's LAN.
func (sn *simNet) peer(name string, r *netsim.Router, addr string) {
	sn.add(name, r.AddHost(netip.MustParseAddr(addr)), false)
}

// firewalled adds a trusted node with a public address behind a stateful
// firewall, which lets in only the ip:port pairs the node has sent to: the
// host sits behind a restricted NAT that keeps its port, and the node
// takes the NAT's address for its own, as with a 1:1 mapping. It says it
// is direct, so it keeps no mapping open and has no Via.
func (sn *simNet) firewalled(name, wan, lan string) {
	fw := sn.in.AddNAT(netsim.Restricted, netip.MustParseAddr(wan), netip.MustParsePrefix(lan))
	h := fw.AddHost(netip.MustParsePrefix(lan).Addr().Next())
	sn.add(name, h, false)
	sn.mods[name] = func(o *Options) {
		o.Mode = ModeDirect
		o.LocalAddrs = func() []netip.Addr { return []netip.Addr{fw.Addr()} }
	}
}

// config is the network of every node added so far.
func (sn *simNet) config() *config.Network {
	s := "name t\nnamespace test\nworkbit 4\nsubnet 10.9.0.0/24\n"
	for _, name := range sn.order {
		if sn.public[name] {
			s += fmt.Sprintf("boot %s %s\n", sn.keys[name].Public(), netip.AddrPortFrom(sn.hosts[name].Addrs()[0], simPort))
		}
	}
	for _, name := range sn.order {
		if !sn.public[name] {
			s += fmt.Sprintf("trust %s %s\n", name, sn.keys[name].Public())
		}
	}
	n, err := config.Parse("t.conf", []byte(s))
	if err != nil {
		sn.t.Fatal(err)
	}
	return n
}

// startAll starts every node added so far.
func (sn *simNet) startAll() {
	sn.cfg = sn.config()
	for _, name := range sn.order {
		sn.start(name)
	}
}

func (sn *simNet) start(name string) {
	t := sn.t
	h := sn.hosts[name]
	level := slog.LevelInfo
	if os.Getenv("WH_SIM_DEBUG") != "" {
		level = slog.LevelDebug
	}
	opt := Options{
		Interface:     "whs" + name,
		ListenPort:    simPort,
		Mode:          ModeUnknown,
		DNS:           resolver.ModeOff,
		NoDNS:         true,
		NoPortMapping: true,
		UDP:           netsim.NewBind(h),
		LocalAddrs:    h.Addrs,
		Logger:        slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: level})).With("node", name),
	}
	if sn.public[name] {
		opt.Mode = ModeDirect
	}
	if mod := sn.mods[name]; mod != nil {
		mod(&opt)
	}
	if !sn.public[name] && sn.netstack {
		self, _ := sn.cfg.Node(sn.keys[name].Public())
		tdev, tnet, err := netstack.CreateNetTUN([]netip.Addr{self.IP, orchid.Addr(self.Key, sn.cfg.Namespace)}, nil, 1280)
		if err != nil {
			t.Fatal(err)
		}
		opt.TUN = tdev
		sn.nets[name] = tnet
	} else if !sn.public[name] {
		ct := tuntest.NewChannelTUN()
		opt.TUN = ct.TUN()
		sn.tuns[name] = ct
		rx := make(chan []byte, 1024)
		sn.rx[name] = rx
		stop := make(chan struct{})
		t.Cleanup(func() { close(stop) })
		go func() {
			for {
				select {
				case pkt := <-ct.Inbound:
					select {
					case rx <- pkt:
					default: // nobody is waiting for it
					}
				case <-stop:
					return
				}
			}
		}()
	}
	nd, err := New(sn.cfg, sn.keys[name], opt)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { nd.Run(ctx); close(done) }()
	stop := func() { cancel(); <-done; keepPeers(t, nd); nd.Close() }
	sn.stopped[name] = stop
	t.Cleanup(stop)
	sn.nodes[name] = nd
}

// keptPeers are the WireGuard peers of every simulated node that stopped.
// wireguard-go drains a removed peer's queues in a finalizer, on the
// runtime's finalizer goroutine; queues made in a synctest bubble would
// then be touched from outside it, which crashes the process. Peers kept
// here are never collected, so their finalizers never run. Each costs a
// few KiB, once per node per test.
var keptPeers struct {
	sync.Mutex
	peers []*device.Peer
}

// keepPeers keeps nd's WireGuard peers (see keptPeers). tunnel.Device
// does not export its wireguard-go device, and should not for this: the
// test reads the field.
func keepPeers(t *testing.T, nd *Node) {
	if nd.dev == nil {
		return
	}
	f := reflect.ValueOf(nd.dev).Elem().FieldByName("dev")
	if f.Kind() != reflect.Pointer || f.Type() != reflect.TypeFor[*device.Device]() {
		t.Fatalf("tunnel.Device has no dev *device.Device field to keep peers of")
	}
	wg := (*device.Device)(f.UnsafePointer())
	keptPeers.Lock()
	defer keptPeers.Unlock()
	for _, c := range nd.net.Trusted() {
		if p := wg.LookupPeer(device.NoisePublicKey(c.Key)); p != nil {
			keptPeers.peers = append(keptPeers.peers, p)
		}
	}
}

// ip is name's overlay address.
func (sn *simNet) ip(name string) netip.Addr {
	c, _ := sn.cfg.Node(sn.keys[name].Public())
	return c.IP
}

// path is what `wh show` on from says of its path to to, with the key of
// the relay when the path is relayed.
func (sn *simNet) path(from, to string) (PeerStatus, key.Public) {
	nd := sn.nodes[from]
	k := sn.keys[to].Public()
	for _, p := range nd.Status(false).Peers {
		if p.Key == k.String() {
			r, _ := nd.relayClient.Current(k)
			return p, r
		}
	}
	sn.t.Fatalf("%s has no peer %s", from, to)
	return PeerStatus{}, key.Public{}
}

// waitPath waits until from's path to to is want, for at most d of (fake)
// time, and returns it.
func (sn *simNet) waitPath(from, to string, want Path, d time.Duration) PeerStatus {
	sn.t.Helper()
	deadline := time.Now().Add(d)
	for {
		p, _ := sn.path(from, to)
		if p.Path == want {
			return p
		}
		if time.Now().After(deadline) {
			sn.t.Fatalf("%s → %s: path %s (why %q) after %v, want %s", from, to, p.Path, p.Why, d, want)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// ping sends numbered IPv4 packets from one node's overlay address to
// another's into the first node's tunnel, one every 500 ms, until one
// comes out of the other's, for at most d (of fake time).
func (sn *simNet) ping(from, to string, d time.Duration) {
	sn.t.Helper()
	deadline := time.Now().Add(d)
	rx := sn.rx[to]
	for {
		sn.seq++
		pkt := tuntest.Ping(sn.ip(to), sn.ip(from))
		binary.BigEndian.PutUint16(pkt[len(pkt)-2:], sn.seq) // the echo's sequence number
		select {
		case sn.tuns[from].Outbound <- pkt:
		case <-time.After(5 * time.Second):
			sn.t.Fatalf("%s → %s: the device does not read its TUN", from, to)
		}
		wait := time.After(500 * time.Millisecond)
	recv:
		for {
			select {
			case got := <-rx:
				if bytes.Equal(got, pkt) {
					return
				}
			case <-wait:
				break recv
			}
		}
		if !time.Now().Before(deadline) {
			p, _ := sn.path(from, to)
			sn.t.Fatalf("%s → %s: no packet through in %v (path %s, why %q)", from, to, d, p.Path, p.Why)
		}
	}
}

// burst sends n numbered packets from one node into its tunnel at once and
// returns how many distinct ones came out of the other's within d.
func (sn *simNet) burst(from, to string, n int, d time.Duration) int {
	sn.t.Helper()
	rx := sn.rx[to]
	pkts := make([][]byte, n)
	want := make(map[uint16]bool)
	for i := range pkts {
		sn.seq++
		pkts[i] = tuntest.Ping(sn.ip(to), sn.ip(from))
		binary.BigEndian.PutUint16(pkts[i][len(pkts[i])-2:], sn.seq)
		want[sn.seq] = true
	}
	got := make(map[uint16]bool)
	done := make(chan struct{})
	go func() {
		defer close(done)
		timeout := time.After(d)
		for len(got) < n {
			select {
			case pkt := <-rx:
				if seq := binary.BigEndian.Uint16(pkt[len(pkt)-2:]); want[seq] {
					got[seq] = true
				}
			case <-timeout:
				return
			}
		}
	}()
	for _, pkt := range pkts {
		select {
		case sn.tuns[from].Outbound <- pkt:
		case <-time.After(5 * time.Second):
			sn.t.Fatalf("%s → %s: the device does not read its TUN", from, to)
		}
	}
	<-done
	return len(got)
}

// wan returns the address where the internet sees name's port, for a node
// behind an endpoint-independent NAT r that keeps the port.
func wan(r *netsim.Router) netip.AddrPort { return netip.AddrPortFrom(r.Addr(), simPort) }

// TestSimPunchRestricted: two nodes behind restricted-cone NATs (Linux
// MASQUERADE) find each other through a public boot node, punch, and
// carry packets on the direct path, each at the other's NAT's address.
func TestSimPunchRestricted(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sn := newSimNet(t, netsim.Options{Seed: 1, Latency: 10 * time.Millisecond})
		sn.boot("boot", "203.0.113.1")
		ra := sn.in.AddNAT(netsim.Restricted, netip.MustParseAddr("198.51.100.1"), netip.MustParsePrefix("192.168.1.0/24"))
		rb := sn.in.AddNAT(netsim.Restricted, netip.MustParseAddr("198.51.100.2"), netip.MustParsePrefix("192.168.1.0/24"))
		sn.peer("a", ra, "192.168.1.10")
		sn.peer("b", rb, "192.168.1.20")
		sn.startAll()

		sn.ping("a", "b", 30*time.Second)
		pa := sn.waitPath("a", "b", PathDirect, 20*time.Second)
		pb := sn.waitPath("b", "a", PathDirect, 20*time.Second)
		if pa.Endpoint != wan(rb).String() || pb.Endpoint != wan(ra).String() {
			t.Errorf("endpoints: a sees b at %s, b sees a at %s; want %s and %s", pa.Endpoint, pb.Endpoint, wan(rb), wan(ra))
		}
		// Packets flow both ways on the direct path, not through the boot
		// node.
		relayed := sn.nodes["a"].bind.Stats().RelayedOut + sn.nodes["b"].bind.Stats().RelayedOut
		sn.ping("a", "b", 5*time.Second)
		sn.ping("b", "a", 5*time.Second)
		if got := sn.nodes["a"].bind.Stats().RelayedOut + sn.nodes["b"].bind.Stats().RelayedOut; got != relayed {
			t.Errorf("%d packets relayed on a direct path", got-relayed)
		}
		if !sn.nodes["a"].Status(false).NAT {
			t.Errorf("a does not know it is behind NAT")
		}
	})
}

// TestSimRelaySymmetric: two nodes behind symmetric NATs cannot punch
// (each mapping is for one destination), so their packets go through the
// boot node, in both directions, and keep doing so.
func TestSimRelaySymmetric(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sn := newSimNet(t, netsim.Options{Seed: 2, Latency: 10 * time.Millisecond})
		sn.boot("boot", "203.0.113.1")
		ra := sn.in.AddNAT(netsim.Symmetric, netip.MustParseAddr("198.51.100.1"), netip.MustParsePrefix("192.168.1.0/24"))
		rb := sn.in.AddNAT(netsim.Symmetric, netip.MustParseAddr("198.51.100.2"), netip.MustParsePrefix("192.168.1.0/24"))
		sn.peer("a", ra, "192.168.1.10")
		sn.peer("b", rb, "192.168.1.20")
		sn.startAll()

		sn.ping("a", "b", 30*time.Second)
		sn.ping("b", "a", 5*time.Second)
		boot := sn.keys["boot"].Public()
		for _, pair := range [][2]string{{"a", "b"}, {"b", "a"}} {
			p, r := sn.path(pair[0], pair[1])
			if p.Path != PathRelay || r != boot {
				t.Errorf("%s → %s: path %s through %s, want relay through boot", pair[0], pair[1], p.Path, r.Short(8))
			}
		}
		// A burst reaches the relay in batches, which it forwards as
		// batches: every packet arrives.
		if got := sn.burst("a", "b", 200, 5*time.Second); got != 200 {
			t.Errorf("a → b: %d of a burst of 200 packets arrived through the relay", got)
		}
		// Two minutes on, after punches retried and failed, and NAT
		// mappings timed out but for keepalives: still relayed, still
		// carrying packets.
		time.Sleep(2 * time.Minute)
		sn.ping("a", "b", 5*time.Second)
		sn.ping("b", "a", 5*time.Second)
		if p, _ := sn.path("a", "b"); p.Path != PathRelay {
			t.Errorf("a → b after two minutes: %s (why %q)", p.Path, p.Why)
		}
		if sn.nodes["a"].bind.Stats().RelayedOut == 0 || sn.nodes["b"].bind.Stats().RelayedIn == 0 {
			t.Errorf("no relayed packets: a %+v, b %+v", sn.nodes["a"].bind.Stats(), sn.nodes["b"].bind.Stats())
		}
	})
}

// TestSimRelayFailover: two nodes behind symmetric NATs relay through one
// of two boot nodes; when that one dies, their packets go through the
// other.
func TestSimRelayFailover(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sn := newSimNet(t, netsim.Options{Seed: 3, Latency: 10 * time.Millisecond})
		sn.boot("boot1", "203.0.113.1")
		sn.boot("boot2", "203.0.113.2")
		ra := sn.in.AddNAT(netsim.Symmetric, netip.MustParseAddr("198.51.100.1"), netip.MustParsePrefix("192.168.1.0/24"))
		rb := sn.in.AddNAT(netsim.Symmetric, netip.MustParseAddr("198.51.100.2"), netip.MustParsePrefix("192.168.1.0/24"))
		sn.peer("a", ra, "192.168.1.10")
		sn.peer("b", rb, "192.168.1.20")
		sn.startAll()

		sn.ping("a", "b", 30*time.Second)
		_, r := sn.path("a", "b")
		var dead, alive string
		switch r {
		case sn.keys["boot1"].Public():
			dead, alive = "boot1", "boot2"
		case sn.keys["boot2"].Public():
			dead, alive = "boot2", "boot1"
		default:
			t.Fatalf("a → b relayed through %s, not a boot node", r.Short(8))
		}
		t.Logf("relay %s dies", dead)
		sn.hosts[dead].Kill()

		// Each side moves when its own relay client finds the relay dead,
		// or, with no standby candidate yet, once its next path search
		// offers the other boot node.
		sn.ping("a", "b", 30*time.Second)
		sn.ping("b", "a", 30*time.Second)
		for _, pair := range [][2]string{{"a", "b"}, {"b", "a"}} {
			p, r := sn.path(pair[0], pair[1])
			if p.Path != PathRelay || r != sn.keys[alive].Public() {
				t.Errorf("%s → %s: path %s through %s, want relay through %s", pair[0], pair[1], p.Path, r.Short(8), alive)
			}
		}
	})
}

// TestSimRelayedThenDirect: two nodes behind restricted NATs that are
// themselves behind one carrier-grade NAT see each other at the carrier's
// address, where they meet only if it hairpins. It does not at first: they
// relay through the boot node. Once it does, a later punch succeeds and
// the path moves to direct, without the tunnel noticing.
//
//	        boot 203.0.113.1
//	             |
//	carrier NAT 198.51.100.1 (restricted, hairpin off, then on)
//	      LAN 100.64.0.0/24
//	     |                  |
//	NAT 100.64.0.2     NAT 100.64.0.3   (restricted)
//	192.168.1.10 a     192.168.1.20 b
func TestSimRelayedThenDirect(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sn := newSimNet(t, netsim.Options{Seed: 4, Latency: 10 * time.Millisecond})
		sn.boot("boot", "203.0.113.1")
		cgn := sn.in.AddNAT(netsim.Restricted, netip.MustParseAddr("198.51.100.1"), netip.MustParsePrefix("100.64.0.0/24"))
		ra := cgn.AddNAT(netsim.Restricted, netip.MustParseAddr("100.64.0.2"), netip.MustParsePrefix("192.168.1.0/24"))
		rb := cgn.AddNAT(netsim.Restricted, netip.MustParseAddr("100.64.0.3"), netip.MustParsePrefix("192.168.1.0/24"))
		sn.peer("a", ra, "192.168.1.10")
		sn.peer("b", rb, "192.168.1.20")
		sn.startAll()

		sn.ping("a", "b", 30*time.Second)
		time.Sleep(10 * time.Second) // the first punches fail
		if p, r := sn.path("a", "b"); p.Path != PathRelay || r != sn.keys["boot"].Public() {
			t.Fatalf("a → b without hairpinning: %s through %s (why %q), want relay through boot", p.Path, r.Short(8), p.Why)
		}
		handshake := sn.nodes["a"].handshakes()[sn.keys["b"].Public()]

		cgn.SetHairpin(true)
		pa := sn.waitPath("a", "b", PathDirect, 2*time.Minute)
		sn.waitPath("b", "a", PathDirect, 30*time.Second)
		if ap, err := netip.ParseAddrPort(pa.Endpoint); err != nil || ap.Addr() != cgn.Addr() {
			t.Errorf("a → b direct at %s, want the carrier's address %s", pa.Endpoint, cgn.Addr())
		}
		relayed := sn.nodes["a"].bind.Stats().RelayedOut
		sn.ping("a", "b", 5*time.Second)
		if got := sn.nodes["a"].bind.Stats().RelayedOut; got != relayed {
			t.Errorf("a relayed %d packets on a direct path", got-relayed)
		}
		if hs := sn.nodes["a"].handshakes()[sn.keys["b"].Public()]; hs.Before(handshake) {
			t.Errorf("handshake went back in time: %v, then %v", handshake, hs)
		}
	})
}

// TestSimFirewalledAnswersThroughRelay: b has a public address behind a
// firewall and says it is direct, so no lookup of b shows a way to it but
// its own address, which lets nothing in. a is behind a symmetric NAT. b
// finds a through a's Via and greets it through that relay; a then answers
// through the relay its packets came from, and both ways work.
func TestSimFirewalledAnswersThroughRelay(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sn := newSimNet(t, netsim.Options{Seed: 5, Latency: 10 * time.Millisecond})
		sn.boot("boot", "203.0.113.1")
		ra := sn.in.AddNAT(netsim.Symmetric, netip.MustParseAddr("198.51.100.1"), netip.MustParsePrefix("192.168.1.0/24"))
		sn.peer("a", ra, "192.168.1.10")
		sn.firewalled("b", "198.51.100.2", "192.168.5.0/24")
		sn.startAll()

		sn.ping("a", "b", 30*time.Second)
		sn.ping("b", "a", 5*time.Second)
		boot := sn.keys["boot"].Public()
		for _, pair := range [][2]string{{"a", "b"}, {"b", "a"}} {
			p, r := sn.path(pair[0], pair[1])
			if p.Path != PathRelay || r != boot {
				t.Errorf("%s → %s: path %s through %s (why %q), want relay through boot", pair[0], pair[1], p.Path, r.Short(8), p.Why)
			}
		}
	})
}

// TestSimTCPRelayed: a TCP stream over netstack between two nodes behind
// symmetric NATs, through the relay, in real time (netstack cannot run in
// a synctest bubble). Every byte of a few hundred KiB comes back in
// order.
func TestSimTCPRelayed(t *testing.T) {
	sn := newSimNet(t, netsim.Options{Seed: 6, Latency: 2 * time.Millisecond})
	sn.netstack = true
	sn.boot("boot", "203.0.113.1")
	ra := sn.in.AddNAT(netsim.Symmetric, netip.MustParseAddr("198.51.100.1"), netip.MustParsePrefix("192.168.1.0/24"))
	rb := sn.in.AddNAT(netsim.Symmetric, netip.MustParseAddr("198.51.100.2"), netip.MustParsePrefix("192.168.1.0/24"))
	sn.peer("a", ra, "192.168.1.10")
	sn.peer("b", rb, "192.168.1.20")
	sn.startAll()

	ln, err := sn.nets["b"].ListenTCP(&net.TCPAddr{Port: 7})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		io.Copy(c, c)
		c.Close()
	}()
	var c net.Conn
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		c, err = sn.nets["a"].DialContextTCPAddrPort(ctx, netip.AddrPortFrom(sn.ip("b"), 7))
		cancel()
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("a → b: %v", err)
		}
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	msg := make([]byte, 256<<10)
	for i := range msg {
		msg[i] = byte(i * 7)
	}
	go c.Write(msg)
	back := make([]byte, len(msg))
	if _, err := io.ReadFull(c, back); err != nil || !bytes.Equal(back, msg) {
		t.Fatalf("echo of %d bytes: %v (equal: %v)", len(msg), err, bytes.Equal(back, msg))
	}
	if p, r := sn.path("a", "b"); p.Path != PathRelay || r != sn.keys["boot"].Public() {
		t.Errorf("a → b: %s through %s, want relay through boot", p.Path, r.Short(8))
	}
}
