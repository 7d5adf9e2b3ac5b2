package wire

import (
	"errors"
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

func TestCacheBusyUntilQuiet(t *testing.T) {
	clock := newFakeClock()
	recv := NewCodec(newPrivate(t), testNamespace, 0, WithClock(clock.Now), WithCacheSize(2))
	var senders [3]*Codec
	for i := range senders {
		senders[i] = NewCodec(newPrivate(t), testNamespace, 0, WithClock(clock.Now))
	}
	old := seal(t, senders[0], recv.Public(), Ping{TxID: 1})
	for _, s := range senders[:2] {
		if _, _, err := recv.Open(seal(t, s, recv.Public(), Ping{})); err != nil {
			t.Fatal(err)
		}
	}
	from, _, err := recv.Open(seal(t, senders[2], recv.Public(), Ping{}))
	if !errors.Is(err, ErrBusy) || from != senders[2].Public() {
		t.Fatalf("third sender with a full cache: from %v, error %v; want ErrBusy", from, err)
	}
	if got := recv.Stats().Busy; got != 1 {
		t.Errorf("Busy = %d, want 1", got)
	}

	// Once the first sender has been quiet for 2*MaxSkew it can go, and
	// its packets from back then are stale.
	clock.Advance(time.Minute)
	if _, _, err := recv.Open(seal(t, senders[1], recv.Public(), Ping{})); err != nil {
		t.Fatal(err)
	}
	clock.Advance(2*MaxSkew - time.Minute + time.Second)
	if _, _, err := recv.Open(seal(t, senders[2], recv.Public(), Ping{})); err != nil {
		t.Fatalf("third sender after the first went quiet: %v", err)
	}
	if cached(recv, senders[0].Public()) || !cached(recv, senders[1].Public()) {
		t.Error("evicted the wrong peer")
	}
	if _, _, err := recv.Open(old); !errors.Is(err, ErrStale) {
		t.Errorf("evicted sender's old packet: %v, want ErrStale", err)
	}
}

func TestCacheEvictsIdleFirst(t *testing.T) {
	clock := newFakeClock()
	recv := NewCodec(newPrivate(t), testNamespace, 0, WithClock(clock.Now), WithCacheSize(2))
	a := NewCodec(newPrivate(t), testNamespace, 0, WithClock(clock.Now))
	b := NewCodec(newPrivate(t), testNamespace, 0, WithClock(clock.Now))
	x := NewCodec(newPrivate(t), testNamespace, 0, WithClock(clock.Now))

	seal(t, recv, x.Public(), Ping{}) // x: keys only
	if _, _, err := recv.Open(seal(t, a, recv.Public(), Ping{})); err != nil {
		t.Fatal(err)
	}
	if _, _, err := recv.Open(seal(t, b, recv.Public(), Ping{})); err != nil {
		t.Fatalf("with an idle peer to evict: %v", err)
	}
	if cached(recv, x.Public()) || !cached(recv, a.Public()) || !cached(recv, b.Public()) {
		t.Error("want x evicted, a and b kept")
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
	recv.mu.Lock()
	n := len(recv.peers)
	recv.mu.Unlock()
	if n != 2 {
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
