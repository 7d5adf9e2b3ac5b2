package relay

import (
	"context"
	"errors"
	"log/slog"
	"net/netip"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/whnet/wh/dht"
	"github.com/whnet/wh/key"
	"github.com/whnet/wh/wire"
)

var (
	peerP          = fill(0x50)
	peerQ          = fill(0x51)
	self           = fill(0x5e)
	relay1, relay2 = fill(0x01), fill(0x02)
	relay3         = fill(0x03)
)

func relayAddr(k key.Public) netip.AddrPort {
	return netip.AddrPortFrom(netip.AddrFrom4([4]byte{203, 0, 113, k[0]}), 51820)
}

func contacts(ks ...key.Public) []dht.Contact {
	cs := make([]dht.Contact, len(ks))
	for i, k := range ks {
		cs[i] = dht.Contact{Key: k, Addr: relayAddr(k)}
	}
	return cs
}

// fakeRelays answers pings after each relay's round-trip time, or never
// for a relay that is down.
type fakeRelays struct {
	mu    sync.Mutex
	rtt   map[key.Public]time.Duration // guarded by mu; absent: down
	pings map[key.Public]int           // guarded by mu
}

func newFakeRelays(rtt map[key.Public]time.Duration) *fakeRelays {
	return &fakeRelays{rtt: rtt, pings: map[key.Public]int{}}
}

func (f *fakeRelays) Ping(ctx context.Context, k key.Public, addr netip.AddrPort) (time.Duration, error) {
	f.mu.Lock()
	rtt, up := f.rtt[k]
	f.pings[k]++
	f.mu.Unlock()
	if addr != relayAddr(k) {
		return 0, errors.New("test: pinged at the wrong address")
	}
	if !up {
		<-ctx.Done()
		return 0, ctx.Err()
	}
	select {
	case <-time.After(rtt):
		return rtt, nil
	case <-ctx.Done():
		return 0, ctx.Err()
	}
}

func (f *fakeRelays) set(k key.Public, rtt time.Duration, up bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if up {
		f.rtt[k] = rtt
	} else {
		delete(f.rtt, k)
	}
}

func (f *fakeRelays) pingCount(k key.Public) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.pings[k]
}

// startClient returns a running client that sends to rec and pings f; it
// stops with the test's context. For use inside a synctest bubble.
func startClient(t *testing.T, rec *recorder, f *fakeRelays) *Client {
	t.Helper()
	c, err := NewClient(ClientConfig{
		Self:   self,
		Send:   rec.Send,
		Ping:   f.Ping,
		Logger: slog.New(slog.NewTextHandler(t.Output(), nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	go c.Run(t.Context())
	return c
}

func currentOf(t *testing.T, c *Client, peer key.Public) key.Public {
	t.Helper()
	k, ok := c.Current(peer)
	if !ok {
		t.Fatalf("no relay for %v", peer.Short(8))
	}
	return k
}

func TestClientPicksFastest(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFakeRelays(map[key.Public]time.Duration{relay1: 30 * time.Millisecond, relay2: 10 * time.Millisecond})
		rec := &recorder{}
		c := startClient(t, rec, f)
		c.SetCandidates(peerP, contacts(relay3, relay1, relay2)) // relay3 is down
		if got := currentOf(t, c, peerP); got != relay3 {
			t.Errorf("before any answer: relay %v, want the first candidate", got.Short(8))
		}
		time.Sleep(time.Second)
		if got := currentOf(t, c, peerP); got != relay2 {
			t.Errorf("relay %v, want the fastest, relay2", got.Short(8))
		}

		p1, p2 := wgData(100, 1), wgData(1312, 2)
		if err := c.Send(peerP, [][]byte{p1, p2}); err != nil {
			t.Fatal(err)
		}
		want := []sent{
			{To: relay2, Addr: relayAddr(relay2), M: wire.Relay{Dst: peerP, Payload: p1}},
			{To: relay2, Addr: relayAddr(relay2), M: wire.Relay{Dst: peerP, Payload: p2}},
		}
		if diff := cmp.Diff(want, rec.take(), cmp.Comparer(func(a, b netip.AddrPort) bool { return a == b })); diff != "" {
			t.Errorf("sent (-want +got):\n%s", diff)
		}
		s := c.Stats()
		if s.Sent != 2 || s.SentBytes != uint64(frameLen(100)+frameLen(1312)) {
			t.Errorf("stats %+v: want 2 sent, %d bytes", s, frameLen(100)+frameLen(1312))
		}
	})
}

// TestClientFailover kills the relay in use and checks the next takes over
// within the documented bound, and that the first takes over again once it
// is back and faster.
func TestClientFailover(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFakeRelays(map[key.Public]time.Duration{relay1: 10 * time.Millisecond, relay2: 40 * time.Millisecond})
		c := startClient(t, &recorder{}, f)
		c.SetCandidates(peerP, contacts(relay1, relay2))
		time.Sleep(5 * time.Second)
		if got := currentOf(t, c, peerP); got != relay1 {
			t.Fatalf("relay %v, want relay1", got.Short(8))
		}

		f.set(relay1, 0, false)
		killed := time.Now()
		for currentOf(t, c, peerP) != relay2 {
			if time.Since(killed) > time.Minute {
				t.Fatal("no failover within a minute")
			}
			time.Sleep(10 * time.Millisecond)
		}
		bound := DefaultPingInterval + DefaultDeadAfter*DefaultPingTimeout
		if took := time.Since(killed); took > bound {
			t.Errorf("failover took %v, want ≤ %v", took, bound)
		} else {
			t.Logf("failover after %v", took)
		}

		f.set(relay1, 10*time.Millisecond, true)
		time.Sleep(DefaultProbeInterval + time.Second)
		if got := currentOf(t, c, peerP); got != relay1 {
			t.Errorf("after relay1 came back: relay %v, want relay1 again", got.Short(8))
		}
		if got := c.Stats().Switches; got != 2 {
			t.Errorf("%d switches, want 2", got)
		}
	})
}

// TestClientKeepsLastRelay checks that a peer whose every relay is dead
// keeps sending through the one it had, and moves at once to a relay that
// comes back.
func TestClientKeepsLastRelay(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFakeRelays(map[key.Public]time.Duration{relay1: 10 * time.Millisecond})
		c := startClient(t, &recorder{}, f)
		c.SetCandidates(peerP, contacts(relay1, relay2)) // relay2 is down
		time.Sleep(5 * time.Second)
		f.set(relay1, 0, false)
		time.Sleep(10 * time.Second)
		if got := currentOf(t, c, peerP); got != relay1 {
			t.Errorf("all dead: relay %v, want relay1 kept", got.Short(8))
		}
		if err := c.Send(peerP, [][]byte{wgData(64, 0)}); err != nil {
			t.Errorf("Send with only dead relays: %v", err)
		}
		f.set(relay2, 50*time.Millisecond, true)
		time.Sleep(DefaultProbeInterval + time.Second)
		if got := currentOf(t, c, peerP); got != relay2 {
			t.Errorf("relay2 back: relay %v, want relay2", got.Short(8))
		}
	})
}

// TestClientHysteresis checks that a slightly faster relay does not take
// over and a much faster one does.
func TestClientHysteresis(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFakeRelays(map[key.Public]time.Duration{relay1: 50 * time.Millisecond})
		c := startClient(t, &recorder{}, f)
		c.SetCandidates(peerP, contacts(relay1))
		time.Sleep(time.Second)
		f.set(relay2, 45*time.Millisecond, true) // 10% faster: not worth it
		c.SetCandidates(peerP, contacts(relay1, relay2))
		time.Sleep(time.Second)
		if got := currentOf(t, c, peerP); got != relay1 {
			t.Errorf("relay %v, want relay1 kept for a 10%% gain", got.Short(8))
		}
		f.set(relay3, 20*time.Millisecond, true)
		c.SetCandidates(peerP, contacts(relay1, relay3))
		time.Sleep(time.Second)
		if got := currentOf(t, c, peerP); got != relay3 {
			t.Errorf("relay %v, want relay3, 60%% faster", got.Short(8))
		}
	})
}

// TestClientSharesPings checks that a relay listed for several peers is
// pinged once, at the in-use rate, and that standby relays are pinged at
// the probe rate.
func TestClientSharesPings(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFakeRelays(map[key.Public]time.Duration{relay1: 10 * time.Millisecond, relay2: 30 * time.Millisecond})
		c := startClient(t, &recorder{}, f)
		c.SetCandidates(peerP, contacts(relay1, relay2))
		c.SetCandidates(peerQ, contacts(relay2, relay1))
		time.Sleep(60 * time.Second)
		if n := f.pingCount(relay1); n < 29 || n > 32 {
			t.Errorf("relay1, in use: %d pings in 60 s, want one per PingInterval (30)", n)
		}
		if n := f.pingCount(relay2); n < 4 || n > 6 {
			t.Errorf("relay2, standby: %d pings in 60 s, want one per ProbeInterval (4-5)", n)
		}
	})
}

func TestClientCandidates(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFakeRelays(map[key.Public]time.Duration{})
		c := startClient(t, &recorder{}, f)
		err := c.Send(peerP, [][]byte{wgData(64, 0), wgData(64, 1)})
		if !errors.Is(err, ErrNoRelay) {
			t.Errorf("Send without candidates: %v, want ErrNoRelay", err)
		}
		if got := c.Stats().NoRelay; got != 2 {
			t.Errorf("NoRelay = %d, want 2", got)
		}

		// Self, the peer itself, duplicates and address-less contacts are
		// skipped; at most MaxCandidates are kept.
		cands := append(contacts(self, peerP), dht.Contact{Key: relay1})
		cands = append(cands, contacts(relay2, relay2)...)
		for i := range 10 {
			cands = append(cands, contacts(fill(byte(0x20+i)))...)
		}
		c.SetCandidates(peerP, cands)
		synctest.Wait()
		c.mu.Lock()
		var got []key.Public
		for _, r := range (*c.peers.Load())[peerP].cands {
			got = append(got, r.key)
		}
		c.mu.Unlock()
		want := []key.Public{relay2, fill(0x20), fill(0x21), fill(0x22)}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("candidates (-want +got):\n%s", diff)
		}

		// No candidates forgets the peer and every relay no one lists.
		c.SetCandidates(peerP, nil)
		if _, ok := c.Current(peerP); ok {
			t.Error("Current after SetCandidates(nil) reports a relay")
		}
		c.mu.Lock()
		if n := len(c.relays); n != 0 {
			t.Errorf("%d relays kept after the last peer went", n)
		}
		c.mu.Unlock()
	})
}

func TestClientSendErrors(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := &recorder{}
		c := startClient(t, rec, newFakeRelays(map[key.Public]time.Duration{relay1: time.Millisecond}))
		c.SetCandidates(peerP, contacts(relay1))
		rec.fail(errSend)
		err := c.Send(peerP, [][]byte{wgData(64, 0), wgData(64, 1), wgData(64, 2)})
		if !errors.Is(err, errSend) {
			t.Errorf("Send: %v, want errSend", err)
		}
		if s := c.Stats(); s.SendErrors != 3 || s.Sent != 0 {
			t.Errorf("stats %+v: want 3 send errors, 0 sent", s)
		}
	})
}

func TestClientAddressChange(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := &recorder{}
		f := newFakeRelays(map[key.Public]time.Duration{relay1: time.Millisecond})
		c := startClient(t, rec, f)
		c.SetCandidates(peerP, contacts(relay1))
		time.Sleep(time.Second)
		moved := netip.MustParseAddrPort("192.0.2.99:1")
		c.SetCandidates(peerQ, []dht.Contact{{Key: relay1, Addr: moved}})
		if err := c.Send(peerP, [][]byte{wgData(64, 0)}); err != nil {
			t.Fatal(err)
		}
		if s := rec.take(); len(s) != 1 || s[0].Addr != moved {
			t.Errorf("sent %v, want one packet to the relay's new address %v", s, moved)
		}
	})
}

// handshake returns a WireGuard handshake message of type t (1 initiation,
// 2 response) with its size.
func handshake(t byte) []byte {
	b := make([]byte, map[byte]int{1: 148, 2: 92}[t])
	b[0] = t
	return b
}

// TestClientJudgesByDelivery: a relay that answers pings but drops the
// peer's frames (its handshake initiations go unanswered) is left for
// another within 10 s; one whose initiations are answered is kept.
func TestClientJudgesByDelivery(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFakeRelays(map[key.Public]time.Duration{relay1: 10 * time.Millisecond, relay2: 40 * time.Millisecond})
		c := startClient(t, &recorder{}, f)
		c.SetCandidates(peerP, contacts(relay1, relay2))
		c.SetCandidates(peerQ, contacts(relay1, relay2))
		time.Sleep(5 * time.Second)
		if currentOf(t, c, peerP) != relay1 || currentOf(t, c, peerQ) != relay1 {
			t.Fatal("relay1, the faster, not chosen")
		}

		// WireGuard retries an unanswered initiation every 5 s. P's are
		// never answered through relay1; Q's are, at once.
		start := time.Now()
		moved := time.Duration(0)
		for range 4 {
			if err := c.Send(peerP, [][]byte{handshake(1)}); err != nil {
				t.Fatal(err)
			}
			if err := c.Send(peerQ, [][]byte{handshake(1)}); err != nil {
				t.Fatal(err)
			}
			c.Delivered(peerQ, handshake(2))
			c.Delivered(peerP, wgData(100, 1)) // data says nothing of our frames
			if currentOf(t, c, peerP) == relay2 {
				c.Delivered(peerP, handshake(2)) // relay2 delivers
			}
			for range 50 {
				time.Sleep(100 * time.Millisecond)
				if moved == 0 && currentOf(t, c, peerP) == relay2 {
					moved = time.Since(start)
				}
			}
		}
		if moved == 0 || moved > 10*time.Second {
			t.Errorf("P moved off the relay that drops its frames after %v, want within 10 s", moved)
		}
		if got := currentOf(t, c, peerQ); got != relay1 {
			t.Errorf("Q, answered through relay1, moved to %v", got.Short(8))
		}
		// Through relay2, P's handshakes are answered: it stays there.
		time.Sleep(DefaultProbeInterval)
		if got := currentOf(t, c, peerP); got != relay2 {
			t.Errorf("P went back to %v while relay1 is marked", got.Short(8))
		}
		if s := c.Stats(); s.Undelivered != 1 {
			t.Errorf("stats %+v, want one undelivered", s)
		}
	})
}
