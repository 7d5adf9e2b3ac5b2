package nat

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/whnet/wh/dht"
	"github.com/whnet/wh/key"
	"github.com/whnet/wh/netsim"
	"github.com/whnet/wh/wire"
)

const testPort = 62096

var (
	ip     = netip.MustParseAddr
	ipport = netip.MustParseAddrPort
	prefix = netip.MustParsePrefix
)

// testNode is a whole node as far as NAT traversal goes: a real DHT server,
// Detector and Puncher speaking the wire protocol over netsim, dispatching
// as the daemon does (Puncher first, then the DHT).
type testNode struct {
	name  string
	pub   key.Public
	local netip.AddrPort // its own address and port
	ext   netip.AddrPort // where the rendezvous sees it, once it has joined
	conn  *wire.Conn
	srv   *dht.Server
	det   *Detector
	punch *Puncher
	pings atomic.Int64 // probes sent by its Puncher

	mu      sync.Mutex
	trusted map[key.Public]bool             // guarded by mu
	seen    map[key.Public][]netip.AddrPort // sources of authenticated messages, by sender; guarded by mu
}

// startNode runs a node on host, reading its conn until the test ends.
// behindNAT says what it tells the DHT in its pings.
func startNode(t *testing.T, name string, host *netsim.Host, behindNAT bool, cfg Config) *testNode {
	t.Helper()
	pc, err := host.ListenUDP(testPort)
	if err != nil {
		t.Fatal(err)
	}
	priv, err := key.NewPrivate()
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug})).With("node", name)
	codec := wire.NewCodec(priv, "test", 0)
	n := &testNode{
		name:    name,
		pub:     priv.Public(),
		local:   netip.AddrPortFrom(host.Addrs()[0], testPort),
		conn:    wire.NewConn(pc, codec),
		trusted: make(map[key.Public]bool),
		seen:    make(map[key.Public][]netip.AddrPort),
	}
	n.det = NewDetector(DetectorConfig{Local: func() []netip.AddrPort { return []netip.AddrPort{n.local} }})
	n.srv, err = dht.NewServer(dht.Config{
		Key:       n.pub,
		Transport: n.conn,
		NAT:       func() bool { return behindNAT },
		Logger:    log.With("sub", "dht"),
	})
	if err != nil {
		t.Fatal(err)
	}
	cfg.Self = n.pub
	cfg.Send = n.conn.Send
	cfg.Seal = func(to key.Public, m wire.Message) ([]byte, error) { return codec.Seal(nil, to, m) }
	cfg.Open = codec.Open
	cfg.Ping = func(ctx context.Context, to key.Public, addr netip.AddrPort) error {
		n.pings.Add(1)
		_, err := n.srv.Ping(ctx, dht.Contact{Key: to, Addr: addr, NAT: true})
		return err
	}
	cfg.Candidates = func() []netip.AddrPort { return append(n.det.Info().Reflexive, n.local) }
	cfg.NAT = n.det.Info
	cfg.Accept = func(k key.Public) bool {
		n.mu.Lock()
		defer n.mu.Unlock()
		return n.trusted[k]
	}
	cfg.Locate = func(k key.Public) (netip.AddrPort, bool) {
		c, ok := n.srv.Table().Get(k)
		return c.Addr, ok
	}
	cfg.Logger = log.With("sub", "nat")
	n.punch, err = New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 2048)
		for {
			from, src, m, err := n.conn.Receive(buf)
			if err != nil {
				return
			}
			n.mu.Lock()
			n.seen[from] = append(n.seen[from], src)
			n.mu.Unlock()
			if !n.punch.Handle(from, src, m) {
				n.srv.Handle(from, src, m)
			}
		}
	}()
	t.Cleanup(func() {
		n.punch.Close()
		n.srv.Close()
		n.conn.Close()
		<-done
	})
	return n
}

func (n *testNode) contact() dht.Contact { return dht.Contact{Key: n.pub, Addr: n.local} }

// join pings each public node, as a bootstrap does, and feeds the pongs
// to the Detector, as the daemon's OnPong hook does. The first pong says
// where the rendezvous, boot[0], sees the node.
func (n *testNode) join(t *testing.T, boot ...*testNode) {
	t.Helper()
	for i, b := range boot {
		observed, err := n.srv.Ping(t.Context(), b.contact())
		if err != nil {
			t.Fatalf("%s: ping %s: %v", n.name, b.name, err)
		}
		n.det.Observe(b.pub, b.local, observed)
		if i == 0 {
			n.ext = observed
		}
	}
}

func (n *testNode) trust(peers ...*testNode) {
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, p := range peers {
		n.trusted[p.pub] = true
	}
}

// sawFrom returns the addresses authenticated messages from peer came
// from.
func (n *testNode) sawFrom(peer *testNode) []netip.AddrPort {
	n.mu.Lock()
	defer n.mu.Unlock()
	return slices.Clone(n.seen[peer.pub])
}

// lab is an internet with three public nodes: rdv, the rendezvous every
// node joins first, and stun and stun2, more opinions for the Detectors.
type lab struct {
	t         *testing.T
	inet      *netsim.Internet
	rdv, stun *testNode
	stun2     *testNode // a third opinion: two ports may be one liar
	nats      int
}

func newLab(t *testing.T, seed int64) *lab {
	t.Helper()
	inet := netsim.New(netsim.Options{Seed: seed, Latency: 20 * time.Millisecond, Jitter: 5 * time.Millisecond})
	l := &lab{t: t, inet: inet}
	l.rdv = startNode(t, "rdv", inet.AddHost(ip("203.0.113.1")), false, Config{})
	l.stun = startNode(t, "stun", inet.AddHost(ip("203.0.114.1")), false, Config{})
	l.stun2 = startNode(t, "stun2", inet.AddHost(ip("203.0.115.1")), false, Config{})
	return l
}

// behind returns a new host on a fresh LAN behind a NAT of the named
// kind: "public" (no NAT), "none", "full", "restricted", "symmetric", or
// "cgnat" (restricted behind restricted). Each WAN address has its /16.
func (l *lab) behind(kind string) (*netsim.Host, *netsim.Router) {
	l.nats++
	wan := netip.AddrFrom4([4]byte{198, byte(l.nats), 0, 1})
	lan := prefix("192.168.1.0/24")
	var r *netsim.Router
	switch kind {
	case "public":
		return l.inet.AddHost(wan), nil
	case "none":
		lan = netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(l.nats), 0, 0}), 24)
		r = l.inet.AddNAT(netsim.None, wan, lan)
	case "full":
		r = l.inet.AddNAT(netsim.FullCone, wan, lan)
	case "restricted":
		r = l.inet.AddNAT(netsim.Restricted, wan, lan)
	case "symmetric":
		r = l.inet.AddNAT(netsim.Symmetric, wan, lan)
	case "cgnat":
		cgn := l.inet.AddNAT(netsim.Restricted, wan, prefix("100.64.0.0/10"))
		inner := cgn.AddNAT(netsim.Restricted, ip("100.64.0.2"), lan)
		return inner.AddHost(ip("192.168.1.10")), cgn
	default:
		l.t.Fatalf("unknown kind %q", kind)
	}
	host := lan.Addr().As4()
	host[3] = 10
	return r.AddHost(netip.AddrFrom4(host)), r
}

// node starts a node behind a NAT of the named kind and joins it.
func (l *lab) node(name, kind string) *testNode {
	host, _ := l.behind(kind)
	return l.add(name, host, kind != "public" && kind != "none")
}

func (l *lab) add(name string, host *netsim.Host, behindNAT bool) *testNode {
	n := startNode(l.t, name, host, behindNAT, Config{})
	n.join(l.t, l.rdv, l.stun, l.stun2)
	return n
}

func TestDetectorOnNetsim(t *testing.T) {
	tests := []struct {
		kind      string
		mapping   Mapping
		behindNAT bool
		keepsPort bool // the reflexive address is the NAT's WAN address with the node's port
	}{
		{"public", MappingNone, false, false},
		{"none", MappingNone, false, false},
		{"full", MappingEndpointIndependent, true, true},
		{"restricted", MappingEndpointIndependent, true, true},
		{"cgnat", MappingEndpointIndependent, true, true},
		{"symmetric", MappingEndpointDependent, true, false},
	}
	for _, tt := range tests {
		t.Run(tt.kind, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				l := newLab(t, 1)
				host, r := l.behind(tt.kind)
				n := startNode(t, tt.kind, host, tt.behindNAT, Config{})

				n.join(t, l.rdv)
				info := n.det.Info()
				if info.Mapping != MappingUnknown || info.BehindNAT || len(info.Reflexive) != 0 {
					t.Errorf("after one pong: %+v, want nothing known: one peer decides nothing", info)
				}

				n.join(t, l.stun)
				if tt.mapping == MappingEndpointDependent {
					// Two ports may be one liar: it takes a third peer.
					n.join(t, l.stun2)
				}
				info = n.det.Info()
				if info.Mapping != tt.mapping || info.BehindNAT != tt.behindNAT {
					t.Errorf("Info() = %+v, want mapping %v, BehindNAT %v", info, tt.mapping, tt.behindNAT)
				}
				switch {
				case !tt.behindNAT:
					if !slices.Equal(info.Reflexive, []netip.AddrPort{n.local}) {
						t.Errorf("Reflexive = %v, want [%v]", info.Reflexive, n.local)
					}
				case tt.keepsPort:
					want := netip.AddrPortFrom(r.Addr(), testPort)
					if !slices.Equal(info.Reflexive, []netip.AddrPort{want}) {
						t.Errorf("Reflexive = %v, want [%v]", info.Reflexive, want)
					}
				default:
					if len(info.Reflexive) != 3 || info.Reflexive[0].Addr() != r.Addr() || info.Reflexive[2].Addr() != r.Addr() {
						t.Errorf("Reflexive = %v, want three ports of %v", info.Reflexive, r.Addr())
					}
				}
			})
		})
	}
}

// TestPunch punches from a node behind one kind of NAT to a node behind
// another, through a public rendezvous that keeps both, and checks that
// the path is direct: the initiator got an answer at the returned
// address, and each side heard the other without the rendezvous.
func TestPunch(t *testing.T) {
	tests := []struct {
		name      string
		initiator string
		target    string // "samelan": the initiator's LAN, hairpin off
		direct    bool
		why       string // the failure's reason, if not direct
	}{
		{"restricted-restricted", "restricted", "restricted", true, ""},
		{"full-restricted", "full", "restricted", true, ""},
		{"restricted-full", "restricted", "full", true, ""},
		{"restricted-cgnat", "restricted", "cgnat", true, ""},
		{"cgnat-restricted", "cgnat", "restricted", true, ""},
		{"samelan", "restricted", "samelan", true, ""},
		{"symmetric-public", "symmetric", "public", true, ""},
		{"public-symmetric", "public", "symmetric", true, ""},
		{"symmetric-full", "symmetric", "full", true, ""},
		{"restricted-symmetric", "restricted", "symmetric", false, "the peer maps per destination and this side's NAT filters"},
		{"symmetric-symmetric", "symmetric", "symmetric", false, "both sides map per destination"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				l := newLab(t, 2)
				var a, b *testNode
				if tt.target == "samelan" {
					host, r := l.behind(tt.initiator)
					a = l.add("a", host, true)
					b = l.add("b", r.AddHost(ip("192.168.1.11")), true)
				} else {
					a = l.node("a", tt.initiator)
					b = l.node("b", tt.target)
				}
				a.trust(b)
				b.trust(a)

				res := a.srv.Lookup(t.Context(), b.pub)
				if !res.Found {
					t.Fatalf("lookup of b: not found: %+v", res)
				}
				start := time.Now()
				addr, err := a.punch.Punch(t.Context(), b.pub, l.rdv.contact(), []netip.AddrPort{res.Contact.Addr})
				took := time.Since(start)
				t.Logf("punch: %v, %v after %v; a probed %d times, b %d", addr, err, took, a.pings.Load(), b.pings.Load())

				if !tt.direct {
					if !errors.Is(err, ErrNoAnswer) {
						t.Fatalf("Punch = %v, %v; want ErrNoAnswer", addr, err)
					}
					if max := DefaultPunchTimeout + DefaultProbeInterval; took > max {
						t.Errorf("failed after %v, want within %v", took, max)
					}
					if got := err.Error(); !strings.Contains(got, tt.why) {
						t.Errorf("error %q does not say %q", got, tt.why)
					}
					if got := a.sawFrom(b); len(got) != 0 {
						t.Errorf("a heard b at %v; want nothing", got)
					}
					return
				}
				if err != nil {
					t.Fatalf("Punch: %v", err)
				}
				if took > DefaultPunchTimeout/2 {
					t.Errorf("punch took %v", took)
				}
				if !slices.Contains(a.sawFrom(b), addr) {
					t.Errorf("a never heard b at %v, only at %v", addr, a.sawFrom(b))
				}
				if tt.target == "samelan" && addr != b.local {
					t.Errorf("samelan: path %v, want b's LAN address %v", addr, b.local)
				}
				// b's probes (or a's) reach b straight from a, so b's
				// node sets its path too.
				synctest.Wait()
				if len(b.sawFrom(a)) == 0 {
					t.Errorf("b never heard a")
				}
				if s := a.punch.Stats(); s.Direct != 1 {
					t.Errorf("a's stats: %+v, want one direct session", s)
				}
			})
		})
	}
}

// TestPunchLossy punches between two restricted NATs while a third of the
// packets to and from the initiator are lost: the retried Punch and the
// repeated probes get through.
func TestPunchLossy(t *testing.T) {
	for seed := range int64(5) {
		t.Run(fmt.Sprint("seed_", seed), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				l := newLab(t, seed)
				hostA, _ := l.behind("restricted")
				a := l.add("a", hostA, true)
				b := l.node("b", "restricted")
				a.trust(b)
				b.trust(a)
				hostA.SetLink(10*time.Millisecond, 0, 0.33)
				addr, err := a.punch.Punch(t.Context(), b.pub, l.rdv.contact(), []netip.AddrPort{b.ext})
				if err != nil {
					t.Fatalf("Punch: %v", err)
				}
				if addr != b.ext {
					t.Errorf("path %v, want b's reflexive address %v", addr, b.ext)
				}
			})
		})
	}
}

// TestForgedPunchFrom: a DHT node that can reach a NATed node (it was
// pinged by it) sends it PunchFroms naming the node's trusted peer, with
// a victim's address: not one probe goes anywhere, to the victim least.
func TestForgedPunchFrom(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLab(t, 3)
		a := l.node("a", "restricted")
		b := l.node("b", "restricted")
		a.trust(b)
		b.trust(a)
		victim := l.inet.AddHost(ip("192.0.2.99"))
		vc, err := victim.ListenUDP(53)
		if err != nil {
			t.Fatal(err)
		}
		var hits atomic.Int64
		go func() {
			buf := make([]byte, 2048)
			for {
				if _, _, err := vc.ReadFromUDPAddrPort(buf); err != nil {
					return
				}
				hits.Add(1)
			}
		}()
		t.Cleanup(func() { vc.Close() })

		evil := l.stun // b pinged it when it joined: it reaches b
		at := netip.AddrPortFrom(victim.Addrs()[0], 53)
		own, err := evil.punch.offer(b.pub, evil.pub, wire.PunchOffer{TxID: 1, Candidates: []netip.AddrPort{at}}, 900)
		if err != nil {
			t.Fatal(err)
		}
		for i, m := range []wire.PunchFrom{
			{TxID: 1, From: a.pub, Observed: at},                           // no offer
			{TxID: 1, From: a.pub, Observed: at, Offer: make([]byte, 600)}, // junk
			{TxID: 1, From: a.pub, Observed: at, Offer: own.Offer},         // evil's own offer
			{TxID: 1, From: evil.pub, Observed: at, Offer: own.Offer},      // evil is not trusted
		} {
			if err := evil.conn.Send(b.pub, b.ext, m); err != nil {
				t.Fatalf("send %d: %v", i, err)
			}
			time.Sleep(2 * DefaultPunchTimeout)
		}
		if n := hits.Load(); n != 0 {
			t.Errorf("the victim got %d packets", n)
		}
		if n := b.pings.Load(); n != 0 {
			t.Errorf("b probed %d times", n)
		}
		if s := b.punch.Stats(); s.Forged != 3 || s.Untrusted != 1 {
			t.Errorf("b's stats %+v, want 3 forged and 1 untrusted", s)
		}
	})
}
