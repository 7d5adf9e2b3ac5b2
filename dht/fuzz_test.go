package dht

import (
	"maps"
	"math/rand/v2"
	"net/netip"
	"testing"

	"github.com/whnet/wh/key"
	"github.com/whnet/wh/wire"
)

// FuzzHandle feeds a Server whatever authenticated messages a peer could
// send: Handle must never panic, and the table must keep its bounds and
// counts (checkTable) whatever arrives. The messages come from wire.ParseMessage, the parser the node
// runs on received bytes.
func FuzzHandle(f *testing.F) {
	r := rand.New(rand.NewPCG(1, 2))
	for _, m := range []wire.Message{
		wire.Ping{TxID: 1, NAT: true},
		wire.Ping{TxID: 1, Size: wire.MaxPongSize},
		wire.FindNode{TxID: 2, Target: randKey(r), Size: wire.MaxBodySize},
		wire.Pong{TxID: 1, Observed: netip.MustParseAddrPort("20.1.2.3:4")},
		wire.FindNode{TxID: 2, Target: randKey(r)},
		wire.Nodes{TxID: 3, Nodes: []wire.NodeInfo{{Key: randKey(r), Addrs: []netip.AddrPort{netip.MustParseAddrPort("[2001:db8::1]:5")}, NAT: true, Via: randKey(r)}}},
	} {
		body, err := m.AppendBinary(nil)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(body, byte(0), uint16(1))
	}
	f.Add([]byte{}, byte(0), uint16(0))
	f.Add([]byte{0xff}, byte(1), uint16(2))
	self := randKey(r)
	senders := make([]key.Public, 256)
	for i := range senders {
		senders[i] = randKey(r)
	}

	f.Fuzz(func(t *testing.T, body []byte, sender byte, port uint16) {
		m, err := wire.ParseMessage(body)
		if err != nil {
			return
		}
		rec := &recorder{}
		s, err := NewServer(Config{Key: self, Transport: rec, Table: TableConfig{K: 4, MaxNAT: 8}})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		// Many senders from few addresses, so that the shares bind, and
		// MaxNAT small, so that NAT pings make room too.
		for i := range 64 {
			from := senders[(int(sender)+i)%len(senders)]
			src := netip.AddrPortFrom(netip.AddrFrom4([4]byte{20, 1, byte(i % 3), byte(i % 5)}), port)
			s.Handle(from, src, m)
		}
		if n := len(rec.take()); n > 64 {
			t.Fatalf("%d replies to 64 messages", n)
		}
		checkTable(t, s.Table())
	})
}

// checkTable fails t if tab breaks one of its bounds or its counts: at most
// K entries per bucket, each in its own bucket, at most MaxNAT NAT
// contacts, and the counts of entries, of entries per address and of NAT
// contacts per prefix matching what it holds. (Entries beyond their
// prefix's share are allowed: they give way only when a newcomer within
// its share comes.)
func checkTable(t *testing.T, tab *Table) {
	t.Helper()
	tab.mu.Lock()
	defer tab.mu.Unlock()
	perAddr := map[uint64]int32{}
	size := 0
	for i, b := range tab.buckets {
		if len(b.entries) > tab.cfg.K {
			t.Fatalf("bucket %d holds %d entries, K = %d", i, len(b.entries), tab.cfg.K)
		}
		for _, e := range b.entries {
			if commonPrefixLen(tab.self, e.key) != i {
				t.Fatalf("entry %v in bucket %d", e.contact(), i)
			}
			if e.nat {
				t.Fatalf("NAT contact %v in bucket %d", e.contact(), i)
			}
			if e.net != 0 && tab.cfg.PerAddr > 0 {
				perAddr[tab.addrHash(&e)]++
			}
			size++
		}
	}
	if size != tab.size {
		t.Fatalf("table counts %d entries, holds %d", tab.size, size)
	}
	if !maps.Equal(perAddr, tab.perAddr) {
		t.Fatalf("entries per address: counted %v, hold %v", tab.perAddr, perAddr)
	}
	if len(tab.nat) > tab.cfg.MaxNAT {
		t.Fatalf("%d NAT contacts, MaxNAT = %d", len(tab.nat), tab.cfg.MaxNAT)
	}
	natPer := map[uint64]int32{}
	for _, e := range tab.nat {
		natPer[natGroup(e.addr())]++
	}
	if !maps.Equal(natPer, tab.natPer) {
		t.Fatalf("NAT contacts per prefix: counted %v, hold %v", tab.natPer, natPer)
	}
}
