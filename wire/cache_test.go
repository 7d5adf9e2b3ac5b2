package wire

import (
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/whnet/wh/key"
)

// cached reports whether c keeps state for k.
func cached(c *Codec, k key.Public) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.peers[k] != nil
}

// cacheLen returns the number of peers c caches, pinned or not, and the
// number of those not pinned.
func cacheLen(c *Codec) (all, evictable int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.peers), len(c.evictable)
}

// checkCache checks the cache's invariants: every evictable peer is cached
// at its slot, every cached peer is pinned or evictable, and pin counts
// match the pin sets.
func checkCache(t *testing.T, c *Codec) {
	t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	pins := map[key.Public]int{}
	for _, ks := range c.pins {
		for _, k := range ks {
			pins[k]++
		}
	}
	for i, e := range c.evictable {
		if e.p.slot != i || c.peers[e.p.key] != e.p || e.p.pins != 0 {
			t.Errorf("evictable %d: slot %d, pins %d, cached %v", i, e.p.slot, e.p.pins, c.peers[e.p.key] == e.p)
		}
	}
	n := 0
	for k, p := range c.peers {
		if p.pins != pins[k] {
			t.Errorf("peer %s: %d pins, pin sets hold it %d times", k.Short(8), p.pins, pins[k])
		}
		if p.pins == 0 {
			n++
		} else if p.slot != -1 {
			t.Errorf("pinned peer %s at slot %d", k.Short(8), p.slot)
		}
	}
	if n != len(c.evictable) || n > c.cacheSize {
		t.Errorf("%d unpinned peers, %d evictable, cache size %d", n, len(c.evictable), c.cacheSize)
	}
}

// TestCacheNewSenderGetsIn fills the cache with senders heard just now:
// a new sender still gets in, in place of one of them.
func TestCacheNewSenderGetsIn(t *testing.T) {
	clock := newFakeClock()
	recv := NewCodec(newPrivate(t), testNamespace, 0, WithClock(clock.Now), WithCacheSize(2))
	var senders [3]*Codec
	for i := range senders {
		senders[i] = NewCodec(newPrivate(t), testNamespace, 0, WithClock(clock.Now))
		if _, _, err := recv.Open(seal(t, senders[i], recv.Public(), Ping{})); err != nil {
			t.Fatalf("sender %d: %v", i, err)
		}
	}
	if !cached(recv, senders[2].Public()) {
		t.Error("new sender not cached")
	}
	if cached(recv, senders[0].Public()) == cached(recv, senders[1].Public()) {
		t.Error("want exactly one of the first two evicted")
	}
	checkCache(t, recv)
}

// TestCacheEvictsQuietFirst checks that a peer unused for 2*MaxSkew goes
// before one heard recently, and that its old packets stay refused.
func TestCacheEvictsQuietFirst(t *testing.T) {
	clock := newFakeClock()
	recv := NewCodec(newPrivate(t), testNamespace, 0, WithClock(clock.Now), WithCacheSize(3))
	var s [4]*Codec
	for i := range s {
		s[i] = NewCodec(newPrivate(t), testNamespace, 0, WithClock(clock.Now))
	}
	old := seal(t, s[0], recv.Public(), Ping{TxID: 1})
	if _, _, err := recv.Open(seal(t, s[0], recv.Public(), Ping{})); err != nil {
		t.Fatal(err)
	}
	clock.Advance(2*MaxSkew + time.Second)
	for _, c := range s[1:] {
		if _, _, err := recv.Open(seal(t, c, recv.Public(), Ping{})); err != nil {
			t.Fatal(err)
		}
	}
	if cached(recv, s[0].Public()) {
		t.Error("the quiet peer was kept")
	}
	for i, c := range s[1:] {
		if !cached(recv, c.Public()) {
			t.Errorf("recent peer %d evicted", i+1)
		}
	}
	if _, _, err := recv.Open(old); !errors.Is(err, ErrStale) {
		t.Errorf("evicted peer's old packet: %v, want ErrStale", err)
	}
	checkCache(t, recv)
}

// TestCacheEvictionIsFair fills the cache with keys that keep sending,
// one new key a round, beside an honest sender that sends every fourth
// round: it must often still be cached when it sends again. Under LRU it
// never would be: it is the least recently heard whenever a new key comes.
func TestCacheEvictionIsFair(t *testing.T) {
	const size, rounds, every = 8, 400, 4
	clock := newFakeClock()
	recv := NewCodec(newPrivate(t), testNamespace, 0, WithClock(clock.Now), WithCacheSize(size))
	newSender := func() *Codec { return NewCodec(newPrivate(t), testNamespace, 0, WithClock(clock.Now)) }
	send := func(c *Codec) {
		t.Helper()
		if _, _, err := recv.Open(seal(t, c, recv.Public(), Ping{})); err != nil {
			t.Fatal(err)
		}
	}
	honest := newSender()
	var loud []*Codec
	sends, hits := 0, 0
	for r := range rounds {
		// The loud keys that are still cached send again.
		loud = slices.DeleteFunc(loud, func(c *Codec) bool { return !cached(recv, c.Public()) })
		for _, c := range loud {
			send(c)
		}
		clock.Advance(time.Millisecond)
		if r%every == 0 {
			sends++
			if cached(recv, honest.Public()) {
				hits++
			}
			send(honest)
		}
		clock.Advance(time.Millisecond)
		n := newSender()
		send(n)
		loud = append(loud, n)
		clock.Advance(time.Millisecond)
	}
	// At random the honest sender survives the five or so evictions
	// between its packets about half the time (7/8 each); a quarter is
	// five standard deviations below.
	t.Logf("honest sender still cached at %d of its %d sends", hits, sends)
	if hits*4 < sends {
		t.Errorf("honest sender still cached at %d of its %d sends, want about half", hits, sends)
	}
	checkCache(t, recv)
}

// TestPinnedStays pins a peer that then stays quiet for 15 minutes while
// a stream of new senders passes through a small cache: it is still
// cached, with its replay window, and heard at once.
func TestPinnedStays(t *testing.T) {
	clock := newFakeClock()
	recv := NewCodec(newPrivate(t), testNamespace, 0, WithClock(clock.Now), WithCacheSize(2))
	trusted := NewCodec(newPrivate(t), testNamespace, 0, WithClock(clock.Now))
	recv.Pin("trusted", trusted.Public())
	first := seal(t, trusted, recv.Public(), Ping{TxID: 1})
	if _, _, err := recv.Open(first); err != nil {
		t.Fatal(err)
	}
	for range 15 {
		clock.Advance(time.Minute)
		for range 3 {
			s := NewCodec(newPrivate(t), testNamespace, 0, WithClock(clock.Now))
			if _, _, err := recv.Open(seal(t, s, recv.Public(), Ping{})); err != nil {
				t.Fatal(err)
			}
		}
	}
	if !cached(recv, trusted.Public()) {
		t.Fatal("pinned peer evicted")
	}
	if all, ev := cacheLen(recv); all != 3 || ev != 2 {
		t.Errorf("%d cached, %d evictable; want the pinned peer beside a full cache of 2", all, ev)
	}
	if _, _, err := recv.Open(seal(t, trusted, recv.Public(), Ping{TxID: 2})); err != nil {
		t.Errorf("pinned peer after 15 quiet minutes: %v", err)
	}
	checkCache(t, recv)
}

// TestPinSets checks that a key stays pinned while any set holds it, and
// goes back to the evictable peers when none does.
func TestPinSets(t *testing.T) {
	recv := NewCodec(newPrivate(t), testNamespace, 0, WithCacheSize(1))
	x, y, z := newPrivate(t).Public(), newPrivate(t).Public(), newPrivate(t).Public()
	pinned := recv.Pinned
	recv.Pin("trusted", x, y, x)
	recv.Pin("relays", y, lowOrder)
	checkCache(t, recv)
	if !pinned(x) || !pinned(y) || cached(recv, lowOrder) {
		t.Fatal("want x and y pinned, the low-order key skipped")
	}
	recv.Pin("trusted", z)
	checkCache(t, recv)
	if !pinned(y) || !pinned(z) || pinned(x) {
		t.Error("after replacing the trusted set: want y (a relay) and z pinned, x not")
	}
	recv.Pin("relays")
	recv.Pin("trusted")
	checkCache(t, recv)
	if all, ev := cacheLen(recv); all != 1 || ev != 1 {
		t.Errorf("all unpinned: %d cached, %d evictable; want the cache size, 1", all, ev)
	}
}

// TestCacheKeepsWindowsUnderFlood sends packets under many unknown keys
// and checks they neither evict a sender's replay window nor create state.
func TestCacheKeepsWindowsUnderFlood(t *testing.T) {
	clock := newFakeClock()
	recv := NewCodec(newPrivate(t), testNamespace, 0, WithClock(clock.Now), WithCacheSize(2))
	a := NewCodec(newPrivate(t), testNamespace, 0, WithClock(clock.Now))
	b := NewCodec(newPrivate(t), testNamespace, 0, WithClock(clock.Now))
	pkt := seal(t, a, recv.Public(), Ping{})
	for _, p := range [][]byte{pkt, seal(t, b, recv.Public(), Ping{})} {
		if _, _, err := recv.Open(p); err != nil {
			t.Fatal(err)
		}
	}
	for range 20 {
		// A valid packet from a fresh key, meant for someone else.
		m := NewCodec(newPrivate(t), testNamespace, 0, WithClock(clock.Now))
		if _, _, err := recv.Open(seal(t, m, a.Public(), Ping{})); !errors.Is(err, ErrAuth) {
			t.Fatalf("packet for someone else: %v", err)
		}
	}
	if _, _, err := recv.Open(pkt); !errors.Is(err, ErrReplay) {
		t.Errorf("replay after the flood: %v, want ErrReplay", err)
	}
	if n, _ := cacheLen(recv); n != 2 {
		t.Errorf("%d peers cached, want 2", n)
	}
}

// TestConcurrent seals and opens from many goroutines; run it with -race.
func TestConcurrent(t *testing.T) {
	const (
		senders = 8
		rounds  = 100
	)
	// Room for every sender and a few junk keys, so that the junk is
	// evicted all along while the senders' windows stay.
	server := NewCodec(newPrivate(t), testNamespace, 0, WithCacheSize(senders+4))
	var wg sync.WaitGroup
	errs := make(chan error, senders+1)
	stop := make(chan struct{})
	wg.Go(func() { // noise: garbage under fresh keys, for the cache
		for n := 1; ; n++ {
			select {
			case <-stop:
				return
			default:
			}
			junk := NewCodec(key.Private{byte(n), byte(n >> 8)}, testNamespace, 0)
			pkt, _ := junk.Seal(nil, junk.Public(), Ping{})
			if _, _, err := server.Open(pkt); err == nil {
				errs <- errors.New("junk opened")
				return
			}
		}
	})
	var clients sync.WaitGroup
	for range senders {
		clients.Go(func() {
			priv, err := key.NewPrivate()
			if err != nil {
				errs <- err
				return
			}
			c := NewCodec(priv, testNamespace, 0)
			for i := range uint64(rounds) {
				ping, err := c.Seal(nil, server.Public(), Ping{TxID: i})
				if err != nil {
					errs <- err
					return
				}
				from, m, err := server.Open(ping)
				if err != nil || from != c.Public() || m != (Ping{TxID: i, Size: 10}) {
					errs <- errors.Join(errors.New("server open"), err)
					return
				}
				pong, err := server.Seal(nil, from, Pong{TxID: i, Observed: v4})
				if err != nil {
					errs <- err
					return
				}
				if _, m, err := c.Open(pong); err != nil || m.(Pong).TxID != i {
					errs <- errors.Join(errors.New("client open"), err)
					return
				}
			}
		})
	}
	clients.Wait()
	close(stop)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if s := server.Stats(); s.Opened != senders*rounds || s.Sealed != senders*rounds {
		t.Errorf("server stats %+v, want %d opened and sealed", s, senders*rounds)
	}
}

// TestCacheEvictedWhileOpening replays, step by step, two receive
// goroutines racing: one has looked a sender up and is checking its
// packet's tag when the other evicts that sender. Accepting the packet
// must put the sender back as a whole peer, and the cache must stay
// bounded afterwards.
func TestCacheEvictedWhileOpening(t *testing.T) {
	clock := newFakeClock()
	recv := NewCodec(newPrivate(t), testNamespace, 0, WithClock(clock.Now), WithCacheSize(1))
	a := NewCodec(newPrivate(t), testNamespace, 0, WithClock(clock.Now))
	b := NewCodec(newPrivate(t), testNamespace, 0, WithClock(clock.Now))
	if _, _, err := recv.Open(seal(t, a, recv.Public(), Ping{})); err != nil {
		t.Fatal(err)
	}
	clock.Advance(2*MaxSkew + time.Second)

	// Goroutine 1 finds a's peer and authenticates a's packet...
	pa := recv.cached(a.Public())
	if pa == nil {
		t.Fatal("a not cached")
	}
	counter := uint64(clock.Now().UnixNano())
	// ...while goroutine 2 takes a's place for b.
	if _, _, err := recv.Open(seal(t, b, recv.Public(), Ping{})); err != nil {
		t.Fatal(err)
	}
	clock.Advance(2*MaxSkew + time.Second)
	// Goroutine 1 accepts a's packet.
	if _, err := recv.accept(pa, counter, clock.Now().UnixNano()); err != nil {
		t.Fatal(err)
	}
	for range 10 {
		s := NewCodec(newPrivate(t), testNamespace, 0, WithClock(clock.Now))
		recv.Open(seal(t, s, recv.Public(), Ping{}))
		clock.Advance(2*MaxSkew + time.Second)
	}
	if n, _ := cacheLen(recv); n > 1 {
		t.Errorf("%d peers cached, want at most the cache size, 1", n)
	}
	checkCache(t, recv)
}
