package relay

import (
	"context"
	"log/slog"
	"net/netip"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/whnet/wh/dht"
	"github.com/whnet/wh/key"
	"github.com/whnet/wh/netsim"
	"github.com/whnet/wh/wire"
)

// simNode is a node as the daemon wires one, on a netsim host: the
// control protocol on a UDP port, the DHT for pings and the table, and a
// relay Server and Client.
type simNode struct {
	key key.Public
	dht *dht.Server
	srv *Server
	cl  *Client

	mu  sync.Mutex
	got []delivery // guarded by mu
}

type delivery struct {
	from key.Public
	seq  uint64
	at   time.Time
}

func newSimNode(t *testing.T, h *netsim.Host, name string) *simNode {
	t.Helper()
	priv := newPrivate(t)
	n := &simNode{key: priv.Public()}
	pc, err := h.ListenUDP(51820)
	if err != nil {
		t.Fatal(err)
	}
	conn := wire.NewConn(pc, wire.NewCodec(priv, "relay-test", 0))
	log := slog.New(slog.NewTextHandler(t.Output(), nil)).With("node", name)
	if n.dht, err = dht.NewServer(dht.Config{Key: n.key, Transport: conn, NAT: func() bool { return true }}); err != nil {
		t.Fatal(err)
	}
	n.srv = newTestServer(t, ServerConfig{
		Send: conn.Send,
		Locate: func(k key.Public) (netip.AddrPort, bool) {
			c, ok := n.dht.Table().Get(k)
			return c.Addr, ok
		},
	})
	if n.cl, err = NewClient(ClientConfig{
		Self: n.key,
		Send: conn.Send,
		Ping: func(ctx context.Context, k key.Public, a netip.AddrPort) (time.Duration, error) {
			start := time.Now()
			_, err := n.dht.Ping(ctx, dht.Contact{Key: k, Addr: a})
			return time.Since(start), err
		},
		Logger: log,
	}); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Go(func() { n.cl.Run(t.Context()) })
	wg.Go(func() {
		buf := make([]byte, 2048)
		for {
			from, src, m, err := conn.Receive(buf)
			if err != nil {
				return
			}
			if r, ok := m.(wire.Relayed); ok {
				n.deliver(r.Src, r.Payload)
				continue
			}
			_ = n.dht.Handle(from, src, m) || n.srv.Handle(from, src, m)
		}
	})
	t.Cleanup(func() {
		conn.Close()
		n.dht.Close()
		wg.Wait()
	})
	return n
}

// deliver is the receiving node's part: what its device would get.
func (n *simNode) deliver(peer key.Public, pkt []byte) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.got = append(n.got, delivery{from: peer, seq: seqOf(pkt), at: time.Now()})
	return nil
}

// received reports whether a packet from peer with sequence number seq
// arrived.
func (n *simNode) received(peer key.Public, seq uint64) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, d := range n.got {
		if d.from == peer && d.seq == seq {
			return true
		}
	}
	return false
}

func (n *simNode) contact(h *netsim.Host) dht.Contact {
	return dht.Contact{Key: n.key, Addr: netip.AddrPortFrom(h.Addrs()[0], 51820)}
}

// TestRelayOverNetsim puts A and B behind symmetric NATs, which no hole
// punching gets through, and two relays on the internet: R1 near, R2 far.
// Traffic goes through R1 both ways; when R1 dies it resumes through R2
// within the failover bound.
//
//	       R1 203.0.113.1 (5 ms)     R2 203.0.113.2 (20 ms)
//	                \                     /
//	                 +---- internet ----+      (10 ms core)
//	                /                     \
//	NAT 198.51.100.1 symmetric     NAT 198.51.100.2 symmetric
//	A 192.168.1.10                 B 192.168.1.10
func TestRelayOverNetsim(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		inet := netsim.New(netsim.Options{Seed: 1, Latency: 10 * time.Millisecond})
		h1 := inet.AddHost(netip.MustParseAddr("203.0.113.1"))
		h1.SetLink(5*time.Millisecond, 0, 0)
		h2 := inet.AddHost(netip.MustParseAddr("203.0.113.2"))
		h2.SetLink(20*time.Millisecond, 0, 0)
		lan := netip.MustParsePrefix("192.168.1.0/24")
		hA := inet.AddNAT(netsim.Symmetric, netip.MustParseAddr("198.51.100.1"), lan).AddHost(netip.MustParseAddr("192.168.1.10"))
		hB := inet.AddNAT(netsim.Symmetric, netip.MustParseAddr("198.51.100.2"), lan).AddHost(netip.MustParseAddr("192.168.1.10"))
		r1, r2 := newSimNode(t, h1, "R1"), newSimNode(t, h2, "R2")
		a, b := newSimNode(t, hA, "A"), newSimNode(t, hB, "B")

		// The far relay first: the client must choose by latency.
		relays := []dht.Contact{r2.contact(h2), r1.contact(h1)}
		a.cl.SetCandidates(b.key, relays)
		b.cl.SetCandidates(a.key, relays)
		time.Sleep(time.Second)
		for _, n := range []*simNode{a, b} {
			if got := currentOf(t, n.cl, peerOf(n, a, b)); got != r1.key {
				t.Fatalf("relay %v, want R1, the nearer", got.Short(8))
			}
		}

		// exchange sends packet seq each way and reports whether both
		// arrived within 200 ms.
		exchange := func(seq uint64) bool {
			if err := a.cl.Send(b.key, [][]byte{wgData(1312, seq)}); err != nil {
				t.Fatalf("A sends: %v", err)
			}
			if err := b.cl.Send(a.key, [][]byte{wgData(200, seq)}); err != nil {
				t.Fatalf("B sends: %v", err)
			}
			time.Sleep(200 * time.Millisecond)
			return b.received(a.key, seq) && a.received(b.key, seq)
		}
		if !exchange(1) {
			t.Fatal("packets did not cross R1")
		}
		if s := r1.srv.Stats(); s.Forwarded != 2 {
			t.Errorf("R1 forwarded %d packets, want 2; stats %+v", s.Forwarded, s)
		}

		h1.Kill()
		killed := time.Now()
		seq := uint64(2)
		for ; !exchange(seq); seq++ {
			if seq > 100 {
				t.Fatal("no traffic 20 s after R1 died")
			}
		}
		took := time.Since(killed)
		bound := DefaultPingInterval + DefaultDeadAfter*DefaultPingTimeout + time.Second
		if took > bound {
			t.Errorf("traffic resumed %v after R1 died, want ≤ %v", took, bound)
		}
		t.Logf("traffic resumed through R2 %v after R1 died, %d exchanges lost", took, seq-2)
		for _, n := range []*simNode{a, b} {
			if got := currentOf(t, n.cl, peerOf(n, a, b)); got != r2.key {
				t.Errorf("relay %v after R1 died, want R2", got.Short(8))
			}
		}
		for name, n := range map[string]*simNode{"R1": r1, "R2": r2} {
			if s := n.srv.Stats(); s.ForwardedBytes > s.ReceivedBytes {
				t.Errorf("%s sent %d bytes for %d received", name, s.ForwardedBytes, s.ReceivedBytes)
			}
		}
	})
}

// peerOf returns the other one of a and b.
func peerOf(n, a, b *simNode) key.Public {
	if n == a {
		return b.key
	}
	return a.key
}
