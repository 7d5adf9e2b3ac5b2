package wire

import (
	"errors"
	"net/netip"
	"testing"
	"testing/synctest"
	"time"
)

// openFresh opens, at recv, a packet from a key recv has never heard from,
// arriving from src.
func openFresh(t *testing.T, recv *Codec, src string) error {
	t.Helper()
	s := NewCodec(newPrivate(t), testNamespace, 0)
	_, _, err := recv.OpenInPlace(netip.MustParseAddr(src), seal(t, s, recv.Public(), Ping{}))
	return err
}

func TestDeriveLimitPerPrefix(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		recv := NewCodec(newPrivate(t), testNamespace, 0, WithDeriveLimits(DeriveLimits{
			Total:     Rate{PerSecond: 1000, Burst: 100},
			PerPrefix: Rate{PerSecond: 2, Burst: 3},
		}))
		known := NewCodec(newPrivate(t), testNamespace, 0)
		if _, _, err := recv.OpenInPlace(netip.MustParseAddr("203.0.113.9"), seal(t, known, recv.Public(), Ping{})); err != nil {
			t.Fatal(err)
		}
		steps := []struct {
			name, src string
			busy      bool
		}{
			{"burst_1", "192.0.2.1", false},
			{"burst_2", "192.0.2.2", false},
			{"burst_3", "192.0.2.1", false},
			{"same_24", "192.0.2.200", true},
			{"mapped_same_24", "::ffff:192.0.2.7", true},
			{"other_24", "192.0.3.1", false},
			{"v6_burst_1", "2001:db8:1::1", false},
			{"v6_burst_2", "2001:db8:1:ff00::1", false},
			{"v6_burst_3", "2001:db8:1:1::2", false},
			{"same_48", "2001:db8:1:ffff::1", true},
			{"other_48", "2001:db8:2::1", false},
		}
		for _, s := range steps {
			if err := openFresh(t, recv, s.src); errors.Is(err, ErrBusy) != s.busy {
				t.Errorf("%s (%s): %v, want busy %v", s.name, s.src, err, s.busy)
			}
		}
		// A sender with keys costs no derivation: never limited.
		if _, _, err := recv.OpenInPlace(netip.MustParseAddr("192.0.2.9"), seal(t, known, recv.Public(), Ping{})); err != nil {
			t.Errorf("known sender from a drained prefix: %v", err)
		}
		if got := recv.Stats().Busy; got != 3 {
			t.Errorf("Busy = %d, want 3", got)
		}
		// Half a second later the prefix has one more, and only one.
		time.Sleep(500 * time.Millisecond)
		if err := openFresh(t, recv, "192.0.2.3"); err != nil {
			t.Errorf("after 500 ms: %v", err)
		}
		if err := openFresh(t, recv, "192.0.2.3"); !errors.Is(err, ErrBusy) {
			t.Errorf("second after 500 ms: %v, want ErrBusy", err)
		}
	})
}

// TestDeriveLimitTotal sends fresh keys from a new prefix each time, as a
// sender spoofing its sources does, for ten seconds: the total bounds how
// many derivations pass, to within the burst.
func TestDeriveLimitTotal(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const perSecond, burst, seconds = 20, 5, 10
		recv := NewCodec(newPrivate(t), testNamespace, 0, WithDeriveLimits(DeriveLimits{
			Total:     Rate{PerSecond: perSecond, Burst: burst},
			PerPrefix: Rate{PerSecond: 1, Burst: 1},
		}))
		passed := 0
		for i := range seconds * 100 { // every 10 ms
			src := netip.AddrFrom4([4]byte{10, byte(i >> 8), byte(i), 1})
			s := NewCodec(newPrivate(t), testNamespace, 0)
			if _, _, err := recv.OpenInPlace(src, seal(t, s, recv.Public(), Ping{})); err == nil {
				passed++
			} else if !errors.Is(err, ErrBusy) {
				t.Fatal(err)
			}
			time.Sleep(10 * time.Millisecond)
		}
		if want := perSecond*seconds + burst; passed > want || passed < perSecond*seconds {
			t.Errorf("%d derivations in %d s, want %d to %d", passed, seconds, perSecond*seconds, want)
		}
		// Open, without a source, is held to the total too. First a second
		// to refill both buckets: prefixes share buckets by a keyed hash,
		// so 192.0.2.0/24 may share one with a prefix of the loop.
		time.Sleep(time.Second)
		if err := openFresh(t, recv, "192.0.2.1"); err != nil {
			t.Fatal(err)
		}
		for range burst {
			s := NewCodec(newPrivate(t), testNamespace, 0)
			recv.Open(seal(t, s, recv.Public(), Ping{}))
		}
		s := NewCodec(newPrivate(t), testNamespace, 0)
		if _, _, err := recv.Open(seal(t, s, recv.Public(), Ping{})); !errors.Is(err, ErrBusy) {
			t.Errorf("Open past the total: %v, want ErrBusy", err)
		}
	})
}

// TestDeriveLimitPinned checks that a pinned peer is heard while floods
// of fresh keys drain both limits.
func TestDeriveLimitPinned(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		recv := NewCodec(newPrivate(t), testNamespace, 0, WithCacheSize(4), WithDeriveLimits(DefaultDeriveLimits))
		trusted := NewCodec(newPrivate(t), testNamespace, 0)
		recv.Pin("trusted", trusted.Public())
		time.Sleep(15 * time.Minute)
		for i := range 2 * DefaultDeriveLimits.Total.Burst {
			openFresh(t, recv, netip.AddrFrom4([4]byte{10, 0, byte(i), 1}).String())
		}
		if err := openFresh(t, recv, "198.51.100.1"); !errors.Is(err, ErrBusy) {
			t.Fatalf("fresh key after the flood: %v, want ErrBusy", err)
		}
		if _, _, err := recv.OpenInPlace(netip.MustParseAddr("192.0.2.1"), seal(t, trusted, recv.Public(), Ping{})); err != nil {
			t.Errorf("pinned peer, quiet for 15 minutes, during a flood: %v", err)
		}
	})
}
