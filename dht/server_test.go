package dht

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/whnet/wh/key"
	"github.com/whnet/wh/netsim"
	"github.com/whnet/wh/wire"
)

const testPort = 62096

// testNet is a DHT of real Servers speaking the wire protocol over netsim.
// Build and use it inside a synctest bubble.
type testNet struct {
	t       *testing.T
	inet    *netsim.Internet
	ns      string
	workbit int
	boot    []Contact
	nodes   []*testNode
	hosts   int // hosts created, for addresses
}

type testNode struct {
	Contact // the address others reach it at (its public one, if NATed)
	priv    key.Private
	host    *netsim.Host
	codec   *wire.Codec
	conn    *wire.Conn
	srv     *Server
}

func newTestNet(t *testing.T, opt netsim.Options, ns string, workbit int) *testNet {
	t.Helper()
	return &testNet{t: t, inet: netsim.New(opt), ns: ns, workbit: workbit}
}

// nextPublic returns a fresh public address, each in its own /24.
func (n *testNet) nextPublic() netip.Addr {
	n.hosts++
	return publicAddr(n.hosts).Addr()
}

// start runs a Server for priv on host, reading from its conn until the test
// ends. cfg's Key, Transport, Boot and Table admission are filled in.
func (n *testNet) start(host *netsim.Host, priv key.Private, cfg Config) *testNode {
	t := n.t
	t.Helper()
	pc, err := host.ListenUDP(testPort)
	if err != nil {
		t.Fatal(err)
	}
	node := &testNode{priv: priv, host: host}
	node.Key = priv.Public()
	node.Addr = netip.AddrPortFrom(host.Addrs()[0], testPort)
	node.codec = wire.NewCodec(priv, n.ns, n.workbit)
	node.conn = wire.NewConn(pc, node.codec)
	cfg.Key, cfg.Transport, cfg.Boot = node.Key, node.conn, n.boot
	cfg.Table.Namespace = n.ns
	if cfg.Table.Workbit == 0 {
		cfg.Table.Workbit = n.workbit
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelInfo})).With("node", node.Key.Short(6))
	}
	node.srv, err = NewServer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		Serve(node.conn, node.srv)
	}()
	t.Cleanup(func() {
		node.srv.Close()
		node.conn.Close()
		<-done
	})
	n.nodes = append(n.nodes, node)
	return node
}

// explain logs which of the nodes nearest to k know it, and the codecs'
// drops, to tell why a lookup of k failed.
func (n *testNet) explain(k key.Public) {
	var all []Contact
	byKey := map[key.Public]*testNode{}
	var drops wire.Stats
	for _, node := range n.nodes {
		all = append(all, node.Contact)
		byKey[node.Key] = node
		s := node.codec.Stats()
		drops.Replay += s.Replay
		drops.Stale += s.Stale
		drops.Future += s.Future
		drops.Auth += s.Auth
		drops.Busy += s.Busy
	}
	for _, c := range naiveClosest(all, k, DefaultK+1)[1:] {
		_, knows := byKey[c.Key].srv.Table().Get(k)
		n.t.Logf("  near %v (%d bits): knows target %v, table %d", c, commonPrefixLen(c.Key, k), knows, byKey[c.Key].srv.Table().Len())
	}
	n.t.Logf("  network %+v; codec drops %+v", n.inet.Stats(), drops)
}

// newKey returns a key with the network's workbits.
func (n *testNet) newKey() key.Private {
	n.t.Helper()
	if n.workbit == 0 {
		priv, err := key.NewPrivate()
		if err != nil {
			n.t.Fatal(err)
		}
		return priv
	}
	priv, err := key.Search(context.Background(), n.workbit, n.ns, key.SearchOptions{Threads: 1})
	if err != nil {
		n.t.Fatal(err)
	}
	return priv
}

// addPublic starts a node on a host of its own with a public address.
func (n *testNet) addPublic(cfg Config) *testNode {
	return n.start(n.inet.AddHost(n.nextPublic()), n.newKey(), cfg)
}

// addNATed starts a node alone behind a NAT of the given kind.
func (n *testNet) addNATed(kind netsim.NATKind, cfg Config) *testNode {
	r := n.inet.AddNAT(kind, n.nextPublic(), netip.MustParsePrefix("192.168.1.0/24"))
	cfg.NAT = func() bool { return true }
	node := n.start(r.AddHost(netip.MustParseAddr("192.168.1.10")), n.newKey(), cfg)
	node.Addr = netip.AddrPortFrom(r.Addr(), testPort) // endpoint-independent NATs keep the port
	node.NAT = true
	return node
}

// bootstrapAll bootstraps every node but the boot nodes, one after the
// other, as nodes trickle into a network.
func (n *testNet) bootstrapAll(ctx context.Context) {
	n.t.Helper()
	for _, node := range n.nodes {
		if slices.ContainsFunc(n.boot, func(c Contact) bool { return c.Key == node.Key }) {
			continue
		}
		if err := node.srv.Bootstrap(ctx); err != nil {
			n.t.Fatalf("bootstrap %v: %v\nnetwork: %+v\nboot codec: %+v", node.Key, err, n.inet.Stats(), n.nodes[0].codec.Stats())
		}
	}
}

func TestServersBootstrapAndFind(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := t.Context()
		n := newTestNet(t, netsim.Options{Seed: 1, Latency: 20 * time.Millisecond, Jitter: 10 * time.Millisecond}, "test", 0)
		boot := n.addPublic(Config{})
		n.boot = []Contact{boot.Contact}
		size := 200
		if raceEnabled {
			size = 60
		}
		for range size {
			n.addPublic(Config{})
		}
		start := time.Now()
		n.bootstrapAll(ctx)
		t.Logf("%d nodes bootstrapped through one boot node in %v of virtual time", size, time.Since(start))

		r := rand.New(rand.NewPCG(1, 2))
		found, total, hops := 0, 0, []int{}
		for range 100 {
			from, target := n.nodes[r.IntN(len(n.nodes))], n.nodes[r.IntN(len(n.nodes))]
			if from == target {
				continue
			}
			total++
			res := from.srv.Lookup(ctx, target.Key)
			if res.Found && res.Contact == target.Contact {
				found++
				hops = append(hops, res.Hops)
			} else {
				t.Errorf("lookup of %v from %v: found=%v contact=%v hops=%d queries=%d failures=%d err=%v",
					target.Contact, from.Contact, res.Found, res.Contact, res.Hops, res.Queries, res.Failures, res.Err)
				n.explain(target.Key)
			}
		}
		t.Logf("found %d/%d, median hops %d", found, total, median(hops))
		for _, node := range n.nodes {
			checkTable(t, node.srv.Table())
		}
		if boot.srv.Table().Len() < DefaultK {
			t.Errorf("boot node knows %d nodes, want at least K", boot.srv.Table().Len())
		}
	})
}

func TestNATedNodesAreFound(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := t.Context()
		n := newTestNet(t, netsim.Options{Seed: 2, Latency: 15 * time.Millisecond, Jitter: 5 * time.Millisecond}, "test", 0)
		boot := n.addPublic(Config{})
		n.boot = []Contact{boot.Contact}
		for range 60 {
			n.addPublic(Config{})
		}
		var nated []*testNode
		for i := range 10 {
			kind := netsim.Restricted
			if i%2 == 1 {
				kind = netsim.Symmetric
			}
			nated = append(nated, n.addNATed(kind, Config{}))
		}
		n.bootstrapAll(ctx)
		for _, node := range n.nodes {
			runCtx, cancel := context.WithCancel(ctx)
			defer cancel()
			go node.srv.Run(runCtx)
		}
		// Long enough for several keepalives and NAT expiries.
		time.Sleep(3 * DefaultNATExpiry)

		r := rand.New(rand.NewPCG(3, 4))
		for _, target := range nated {
			for _, from := range []*testNode{n.nodes[1+r.IntN(60)], nated[r.IntN(len(nated))]} {
				if from == target {
					continue
				}
				res := from.srv.Lookup(ctx, target.Key)
				if !res.Found || !res.Contact.NAT || len(res.Vias) == 0 {
					t.Errorf("lookup of NATed %v from %v: found=%v contact=%v vias=%d", target.Contact, from.Contact, res.Found, res.Contact, len(res.Vias))
					continue
				}
				if res.Contact.Addr.Addr() != target.Addr.Addr() {
					t.Errorf("NATed %v found at %v, want its NAT's address", target.Contact, res.Contact.Addr)
				}
				for _, v := range res.Vias {
					if v.NAT || slices.ContainsFunc(nated, func(x *testNode) bool { return x.Key == v.Key }) {
						t.Errorf("via %v of %v is NATed", v, target.Contact)
					}
				}
			}
		}
		// NATed nodes never serve as hops: no table holds one as direct.
		for _, node := range n.nodes {
			checkTable(t, node.srv.Table())
			for _, c := range node.srv.Table().Contacts() {
				if !c.NAT && slices.ContainsFunc(nated, func(x *testNode) bool { return x.Key == c.Key }) {
					t.Errorf("%v holds NATed %v as a direct contact", node.Contact, c)
				}
			}
		}
	})
}

func TestTooFewWorkbitsNeverAdmitted(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := t.Context()
		const ns, workbit = "test", 6
		n := newTestNet(t, netsim.Options{Seed: 3, Latency: 10 * time.Millisecond}, ns, workbit)
		boot := n.addPublic(Config{})
		n.boot = []Contact{boot.Contact}
		for range 30 {
			n.addPublic(Config{})
		}
		// A lax node accepts any key, and knows a poor one. The poor node's
		// packets are dropped by everyone else's codec; the lax node's
		// Nodes replies are the only way others hear of it.
		var poorPriv key.Private
		for {
			poorPriv = n.newKeyAnyWork()
			if key.Workbits(poorPriv.Public(), ns) < workbit {
				break
			}
		}
		lax := n.startLax(n.inet.AddHost(n.nextPublic()), n.newKey())
		n.bootstrapAll(ctx)
		poor := n.startLax(n.inet.AddHost(n.nextPublic()), poorPriv)
		if _, err := poor.srv.Ping(ctx, lax.Contact); err != nil {
			t.Fatalf("poor node pinging the lax one: %v", err)
		}
		if _, ok := lax.srv.Table().Get(poor.Key); !ok {
			t.Fatal("the lax node did not admit the poor key; the test proves nothing")
		}
		// It tries to join through the boot node too; the boot node's
		// codec drops its packets.
		if err := poor.srv.Bootstrap(ctx); err != nil {
			t.Logf("poor node's bootstrap: %v", err)
		}
		for _, from := range n.nodes {
			if from == poor || from == lax {
				continue
			}
			if res := from.srv.Lookup(ctx, poor.Key); res.Found {
				t.Errorf("%v found the poor key", from.Contact)
			}
		}
		for _, node := range n.nodes {
			if node == lax || node == poor {
				continue
			}
			if _, ok := node.srv.Table().Get(poor.Key); ok {
				t.Errorf("%v admitted a key with %d workbits", node.Contact, key.Workbits(poor.Key, ns))
			}
		}
	})
}

func (n *testNet) newKeyAnyWork() key.Private {
	priv, err := key.NewPrivate()
	if err != nil {
		n.t.Fatal(err)
	}
	return priv
}

// startLax starts a node that admits any key, whatever the network's
// workbit: a misconfigured or malicious node.
func (n *testNet) startLax(host *netsim.Host, priv key.Private) *testNode {
	workbit := n.workbit
	n.workbit = 0
	defer func() { n.workbit = workbit }()
	return n.start(host, priv, Config{})
}

func TestReplayedFindNodeAnsweredOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := newTestNet(t, netsim.Options{Seed: 4, Latency: 5 * time.Millisecond}, "test", 0)
		server := n.addPublic(Config{})
		for range 5 {
			other := n.addPublic(Config{})
			server.srv.Table().Add(other.Contact, time.Now())
		}
		clientPriv := n.newKey()
		codec := wire.NewCodec(clientPriv, "test", 0)
		pc, err := n.inet.AddHost(n.nextPublic()).ListenUDP(testPort)
		if err != nil {
			t.Fatal(err)
		}
		defer pc.Close()
		pkt, err := codec.Seal(nil, server.Key, wire.FindNode{TxID: 7, Target: server.Key, Size: wire.MaxBodySize})
		if err != nil {
			t.Fatal(err)
		}
		for range 3 {
			if _, err := pc.WriteToUDPAddrPort(pkt, server.Addr); err != nil {
				t.Fatal(err)
			}
		}
		answers := 0
		buf := make([]byte, 2048)
		for {
			pc.SetReadDeadline(time.Now().Add(time.Second))
			nr, _, err := pc.ReadFromUDPAddrPort(buf)
			if err != nil {
				break
			}
			if _, m, err := codec.Open(buf[:nr]); err == nil {
				if nodes, ok := m.(wire.Nodes); ok && nodes.TxID == 7 {
					answers++
				}
			}
		}
		if answers != 1 {
			t.Fatalf("a FindNode sent 3 times was answered %d times, want 1", answers)
		}
	})
}

// recorder is a Transport that keeps what it is asked to send.
type recorder struct {
	mu   sync.Mutex
	sent []sent
}

type sent struct {
	to   key.Public
	addr netip.AddrPort
	m    wire.Message
}

func (r *recorder) Send(to key.Public, addr netip.AddrPort, m wire.Message) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.sent = append(r.sent, sent{to, addr, m})
	return nil
}

func (r *recorder) take() []sent {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := r.sent
	r.sent = nil
	return s
}

func TestServerHandle(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	newServer := func(t *testing.T) (*Server, *recorder) {
		rec := &recorder{}
		s, err := NewServer(Config{Key: randKey(r), Transport: rec})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s, rec
	}
	peer, src := randKey(r), netip.MustParseAddrPort("20.1.1.1:4000")

	t.Run("ping_answered_with_observed_address_and_sender_admitted", func(t *testing.T) {
		s, rec := newServer(t)
		s.Handle(peer, src, wire.Ping{TxID: 9, NAT: true, Size: wire.MaxPongSize})
		out := rec.take()
		if len(out) != 1 || out[0].to != peer || out[0].addr != src || out[0].m != (wire.Pong{TxID: 9, Observed: src}) {
			t.Fatalf("sent %+v, want one pong to %v", out, src)
		}
		if c, ok := s.Table().Get(peer); !ok || !c.NAT || c.Addr != src {
			t.Fatalf("table entry %v, %v; want NAT contact at %v", c, ok, src)
		}
	})
	t.Run("find_node_lists_nat_contacts_via_self_and_does_not_admit", func(t *testing.T) {
		s, rec := newServer(t)
		nat := Contact{Key: randKey(r), Addr: netip.MustParseAddrPort("20.2.2.2:5000"), NAT: true}
		s.Table().Add(nat, time.Now())
		for i := range 40 {
			s.Table().Add(Contact{Key: randKey(r), Addr: netip.AddrPortFrom(netip.MustParseAddr(fmt.Sprintf("2001:db8:%x::1", i+1)), 1)}, time.Now())
		}
		s.Handle(peer, src, wire.FindNode{TxID: 3, Target: nat.Key, Size: wire.MaxBodySize})
		out := rec.take()
		if len(out) != 1 {
			t.Fatalf("sent %d messages, want 1", len(out))
		}
		nodes := out[0].m.(wire.Nodes)
		if nodes.TxID != 3 || len(nodes.Nodes) == 0 {
			t.Fatalf("reply %+v", nodes)
		}
		first := nodes.Nodes[0]
		if first.Key != nat.Key || !first.NAT || first.Via != s.self {
			t.Fatalf("first node %+v, want the NAT contact via %v", first, s.self)
		}
		if body, err := nodes.AppendBinary(nil); err != nil || len(body) > wire.MaxBodySize {
			t.Fatalf("reply body: %d bytes, %v", len(body), err)
		}
		if _, ok := s.Table().Get(peer); ok {
			t.Fatal("FindNode sender admitted")
		}
	})
	t.Run("unsolicited_and_misaddressed_answers_ignored", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			s, rec := newServer(t)
			s.Handle(peer, src, wire.Pong{TxID: 1, Observed: src})
			s.Handle(peer, src, wire.Nodes{TxID: 1})
			if len(rec.take()) != 0 || s.Table().Len() != 0 {
				t.Fatal("an unsolicited answer changed something")
			}
			done := make(chan error)
			go func() {
				_, err := s.Ping(t.Context(), Contact{Key: peer, Addr: src})
				done <- err
			}()
			synctest.Wait()
			ping := rec.take()[0].m.(wire.Ping)
			s.Handle(randKey(r), src, wire.Pong{TxID: ping.TxID}) // wrong sender
			s.Handle(peer, src, wire.Nodes{TxID: ping.TxID})      // wrong type
			synctest.Wait()
			select {
			case err := <-done:
				t.Fatalf("Ping returned %v before its answer", err)
			default:
			}
			s.Handle(peer, src, wire.Pong{TxID: ping.TxID, Observed: src}) // the answer
			if err := <-done; err != nil {
				t.Fatalf("Ping: %v", err)
			}
			if c, ok := s.Table().Get(peer); !ok || c.NAT {
				t.Fatalf("answering peer: %v, %v; want a direct entry", c, ok)
			}
		})
	})
	t.Run("silent_oldest_entry_evicted_after_check", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			rec := &recorder{}
			s, err := NewServer(Config{Key: randKey(r), Transport: rec, Table: TableConfig{K: 2}})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			a := Contact{Key: keyInBucket(s.self, 0, r), Addr: netip.MustParseAddrPort("20.3.0.1:1")}
			b := Contact{Key: keyInBucket(s.self, 0, r), Addr: netip.MustParseAddrPort("20.3.1.1:1")}
			c := Contact{Key: keyInBucket(s.self, 0, r), Addr: netip.MustParseAddrPort("20.3.2.1:1")}
			s.Handle(a.Key, a.Addr, wire.Ping{TxID: 1, Size: wire.MaxPongSize})
			time.Sleep(time.Second)
			s.Handle(b.Key, b.Addr, wire.Ping{TxID: 2, Size: wire.MaxPongSize})
			time.Sleep(DefaultCheckAfter)
			s.Handle(c.Key, c.Addr, wire.Ping{TxID: 3, Size: wire.MaxPongSize}) // bucket full: check a
			synctest.Wait()
			var pinged []key.Public
			for _, m := range rec.take() {
				if _, ok := m.m.(wire.Ping); ok {
					pinged = append(pinged, m.to)
				}
			}
			if !slices.Equal(pinged, []key.Public{a.Key}) {
				t.Fatalf("pinged %v, want the oldest entry only", pinged)
			}
			time.Sleep(time.Duration(DefaultRetries+1)*DefaultQueryTimeout + time.Millisecond)
			synctest.Wait()
			if _, ok := s.Table().Get(a.Key); ok {
				t.Error("silent oldest entry still in the table")
			}
			if _, ok := s.Table().Get(c.Key); !ok {
				t.Error("newcomer not promoted from the replacement cache")
			}
		})
	})
}

// TestAnswersNoLargerThanQueries checks the reflection defence: the source
// address of a query may be forged, so no answer is larger than its query.
// Queries padded to a full packet get full answers.
func TestAnswersNoLargerThanQueries(t *testing.T) {
	r := rand.New(rand.NewPCG(15, 16))
	rec := &recorder{}
	s, err := NewServer(Config{Key: randKey(r), Transport: rec})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for i := range 60 {
		s.Table().Add(Contact{Key: randKey(r), Addr: publicAddr(i)}, time.Now())
	}
	target := randKey(r)
	// Bodies as a sender without padding writes them: built by hand, so
	// that this test means the same before and after padding existed.
	findNode := append(append([]byte{byte(wire.TypeFindNode)}, make([]byte, 8)...), target[:]...)
	ping := append([]byte{byte(wire.TypePing)}, make([]byte, 9)...)
	padded := append(slices.Clone(findNode), make([]byte, wire.MaxBodySize-len(findNode))...)
	for _, src := range []netip.AddrPort{netip.MustParseAddrPort("20.1.1.1:4000"), netip.MustParseAddrPort("[2001:db8::1]:4000")} {
		for _, body := range [][]byte{findNode, ping, padded} {
			m, err := wire.ParseMessage(body)
			if err != nil {
				t.Fatal(err)
			}
			s.Handle(randKey(r), src, m)
			for _, out := range rec.take() {
				b, err := out.m.AppendBinary(nil)
				if err != nil {
					t.Fatal(err)
				}
				if len(b) > len(body) {
					t.Errorf("%v from %v: %d-byte query answered with a %d-byte %v", m.Type(), src, len(body), len(b), out.m.Type())
				}
				if nodes, ok := out.m.(wire.Nodes); ok && len(body) == wire.MaxBodySize && len(nodes.Nodes) != DefaultK {
					t.Errorf("padded FindNode from %v answered with %d nodes, want %d", src, len(nodes.Nodes), DefaultK)
				}
			}
		}
	}
}

// TestDenseAddressesAreFound is a small network at real-world density: a
// boot node and five public members in one cloud /24, eight members each
// behind a home router of one ISP's /24, and six behind one CGNAT address.
// Every member finds every other, NATed ones through the nodes they keep
// alive.
func TestDenseAddressesAreFound(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := t.Context()
		n := newTestNet(t, netsim.Options{Seed: 5, Latency: 10 * time.Millisecond, Jitter: 5 * time.Millisecond}, "test", 0)
		cloud := func(i int) netip.Addr { return netip.AddrFrom4([4]byte{20, 9, 9, byte(10 + i)}) }
		boot := n.start(n.inet.AddHost(cloud(0)), n.newKey(), Config{})
		n.boot = []Contact{boot.Contact}
		for i := range 5 {
			n.start(n.inet.AddHost(cloud(1+i)), n.newKey(), Config{})
		}
		natted := func(h *netsim.Host, r *netsim.Router) {
			node := n.start(h, n.newKey(), Config{NAT: func() bool { return true }})
			node.Addr, node.NAT = netip.AddrPortFrom(r.Addr(), testPort), true
		}
		for i := range 8 {
			r := n.inet.AddNAT(netsim.Restricted, netip.AddrFrom4([4]byte{20, 8, 8, byte(10 + i)}), netip.MustParsePrefix("192.168.1.0/24"))
			natted(r.AddHost(netip.MustParseAddr("192.168.1.10")), r)
		}
		cgnat := n.inet.AddNAT(netsim.Restricted, netip.MustParseAddr("20.7.7.7"), netip.MustParsePrefix("100.64.0.0/16"))
		for i := range 6 {
			natted(cgnat.AddHost(netip.AddrFrom4([4]byte{100, 64, 0, byte(10 + i)})), cgnat)
		}
		n.bootstrapAll(ctx)
		for _, node := range n.nodes {
			runCtx, cancel := context.WithCancel(ctx)
			defer cancel()
			go node.srv.Run(runCtx)
		}
		time.Sleep(2 * DefaultKeepaliveInterval)
		for _, from := range n.nodes {
			for _, target := range n.nodes {
				if from == target {
					continue
				}
				res := from.srv.Lookup(ctx, target.Key)
				switch {
				case !res.Found:
					t.Errorf("%v does not find %v", from.Contact, target.Contact)
				case res.Contact.NAT != target.NAT || res.Contact.Addr.Addr() != target.Addr.Addr():
					t.Errorf("%v finds %v at %v", from.Contact, target.Contact, res.Contact)
				case target.NAT && len(res.Vias) == 0:
					t.Errorf("%v finds NATed %v without a via", from.Contact, target.Contact)
				}
			}
		}
	})
}
