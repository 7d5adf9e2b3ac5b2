package nat

import (
	"context"
	"errors"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/whnet/wh/dht"
	"github.com/whnet/wh/key"
	"github.com/whnet/wh/wire"
)

// fakeNet records what a Puncher sends and answers its pings as told.
type fakeNet struct {
	mu     sync.Mutex
	sent   []sentMsg               // guarded by mu
	pinged []netip.AddrPort        // guarded by mu
	answer map[netip.AddrPort]bool // pings to these are answered; guarded by mu
}

type sentMsg struct {
	to   key.Public
	addr netip.AddrPort
	m    wire.Message
}

func (f *fakeNet) send(to key.Public, addr netip.AddrPort, m wire.Message) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.sent = append(f.sent, sentMsg{to, addr, m})
	return nil
}

func (f *fakeNet) ping(ctx context.Context, to key.Public, addr netip.AddrPort) error {
	f.mu.Lock()
	f.pinged = append(f.pinged, addr)
	ok := f.answer[addr]
	f.mu.Unlock()
	if ok {
		return nil
	}
	<-ctx.Done()
	return ctx.Err()
}

func (f *fakeNet) messages() []sentMsg {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.sent)
}

func (f *fakeNet) pings() []netip.AddrPort {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.pinged)
}

var (
	keyA, keyR, keyT, keyX = fillKey(0xaa), fillKey(0x77), fillKey(0xcc), fillKey(0xee)

	addrA   = ipport("198.51.100.1:4000")
	addrR   = ipport("203.0.113.1:62096")
	addrT   = ipport("192.0.2.7:5000")
	lanA    = ipport("192.168.1.10:62096")
	v6A     = ipport("[2001:db8::a]:62096")
	victim  = ipport("192.0.2.99:53")
	ownCand = []netip.AddrPort{ipport("198.51.100.200:62096"), ipport("10.0.0.7:62096")}
)

func fillKey(b byte) key.Public {
	var k key.Public
	for i := range k {
		k[i] = b
	}
	return k
}

// newFakePuncher returns a Puncher for self over f. Locate knows T;
// Accept trusts A.
func newFakePuncher(t *testing.T, self key.Public, f *fakeNet) *Puncher {
	t.Helper()
	p, err := New(Config{
		Self:       self,
		Send:       f.send,
		Ping:       f.ping,
		Candidates: func() []netip.AddrPort { return ownCand },
		NAT:        func() Info { return Info{Mapping: MappingEndpointIndependent, BehindNAT: true} },
		Accept:     func(k key.Public) bool { return k == keyA },
		Locate: func(k key.Public) (netip.AddrPort, bool) {
			return addrT, k == keyT
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

func TestNewRequires(t *testing.T) {
	f := &fakeNet{}
	for name, cfg := range map[string]Config{
		"self": {Send: f.send, Ping: f.ping},
		"send": {Self: keyA, Ping: f.ping},
		"ping": {Self: keyA, Send: f.send},
	} {
		if _, err := New(cfg); err == nil {
			t.Errorf("New without %s: no error", name)
		}
	}
}

// TestRendezvousForwards checks what the rendezvous sends for a Punch:
// one PunchFrom to the located target, with the source first among the
// candidates, never more than one candidate longer than the Punch.
func TestRendezvousForwards(t *testing.T) {
	eightV4 := []netip.AddrPort{lanA, ipport("1.1.1.1:1"), ipport("1.1.1.2:1"), ipport("1.1.1.3:1"),
		ipport("1.1.1.4:1"), ipport("1.1.1.5:1"), ipport("1.1.1.6:1"), ipport("1.1.1.7:1")}
	tests := []struct {
		name  string
		src   netip.AddrPort
		cands []netip.AddrPort
		want  []netip.AddrPort
	}{
		{"no_candidates", addrA, nil, []netip.AddrPort{addrA}},
		{"src_first", addrA, []netip.AddrPort{lanA, v6A}, []netip.AddrPort{addrA, lanA, v6A}},
		{"src_not_twice", addrA, []netip.AddrPort{lanA, addrA}, []netip.AddrPort{addrA, lanA}},
		{"src_unmapped", ipport("[::ffff:198.51.100.1]:4000"), nil, []netip.AddrPort{addrA}},
		{"full_v4_from_v6", v6A, eightV4, append([]netip.AddrPort{v6A}, eightV4[:7]...)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := &fakeNet{}
			r := newFakePuncher(t, keyR, f)
			in := wire.Punch{TxID: 42, Target: keyT, Mapping: 3, Candidates: tt.cands}
			if !r.Handle(keyA, tt.src, in) {
				t.Fatal("Handle did not take the Punch")
			}
			got := f.messages()
			want := []sentMsg{{keyT, addrT, wire.PunchFrom{TxID: 42, From: keyA, Mapping: 3, Candidates: tt.want}}}
			if diff := cmp.Diff(want, got, cmp.AllowUnexported(sentMsg{}), cmp.Comparer(addrPortEqual)); diff != "" {
				t.Fatalf("sent (-want +got):\n%s", diff)
			}
			inLen, outLen := encodedLen(t, in), encodedLen(t, got[0].m)
			if outLen > inLen+19 {
				t.Errorf("forwarded %d bytes for %d", outLen, inLen)
			}
		})
	}
}

func addrPortEqual(a, b netip.AddrPort) bool { return a == b }

func encodedLen(t *testing.T, m wire.Message) int {
	t.Helper()
	b, err := m.AppendBinary(nil)
	if err != nil {
		t.Fatal(err)
	}
	return len(b)
}

// TestRendezvousRefuses checks that a rendezvous sends nothing for a
// Punch to a target it has no verified address for, to the sender itself,
// or when it plays no rendezvous.
func TestRendezvousRefuses(t *testing.T) {
	tests := []struct {
		name   string
		from   key.Public
		target key.Public
		locate bool
	}{
		{"unknown_target", keyA, keyX, true},
		{"to_itself", keyT, keyT, true},
		{"to_the_rendezvous", keyA, keyR, true},
		{"not_a_rendezvous", keyA, keyT, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := &fakeNet{}
			r := newFakePuncher(t, keyR, f)
			if !tt.locate {
				r.cfg.Locate = nil
			}
			r.Handle(tt.from, addrA, wire.Punch{TxID: 1, Target: tt.target, Candidates: []netip.AddrPort{victim}})
			if got := f.messages(); len(got) != 0 {
				t.Errorf("sent %+v", got)
			}
			if s := r.Stats(); s.Unknown != 1 || s.Forwarded != 0 {
				t.Errorf("stats %+v, want one Unknown", s)
			}
		})
	}
}

// TestRendezvousRateLimit checks the per-source limit: a burst, then
// sourceRate a second; another source has its own bucket.
func TestRendezvousRateLimit(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := &fakeNet{}
		r := newFakePuncher(t, keyR, f)
		punch := wire.Punch{TxID: 1, Target: keyT}
		for range sourceBurst + 10 {
			r.Handle(keyA, addrA, punch)
		}
		if s := r.Stats(); s.Forwarded != sourceBurst || s.Limited != 10 {
			t.Fatalf("after a burst: %+v, want %d forwarded, 10 limited", s, sourceBurst)
		}
		r.Handle(keyX, addrA, punch)
		if s := r.Stats(); s.Forwarded != sourceBurst+1 {
			t.Fatalf("another source was limited: %+v", s)
		}
		time.Sleep(time.Second)
		for range 2 * sourceRate {
			r.Handle(keyA, addrA, punch)
		}
		if s := r.Stats(); s.Forwarded != sourceBurst+1+sourceRate {
			t.Errorf("a second later: %+v, want %d more forwarded", s, sourceRate)
		}
		if got := len(f.messages()); uint64(got) != r.Stats().Forwarded {
			t.Errorf("sent %d messages, forwarded %d", got, r.Stats().Forwarded)
		}
	})
}

// TestRendezvousGlobalLimit checks that many sources together get no more
// than the global burst.
func TestRendezvousGlobalLimit(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := &fakeNet{}
		r := newFakePuncher(t, keyR, f)
		for i := range globalBurst + 100 {
			var from key.Public
			from[0], from[1], from[2] = 1, byte(i), byte(i>>8)
			r.Handle(from, addrA, wire.Punch{TxID: 1, Target: keyT})
		}
		if s := r.Stats(); s.Forwarded != globalBurst || s.Limited != 100 {
			t.Errorf("stats %+v, want %d forwarded", s, globalBurst)
		}
	})
}

// TestLimiterBounded checks that the limiter tracks at most maxSources
// keys however many come, and that forgetting one does not refuse it.
func TestLimiterBounded(t *testing.T) {
	l := limiter{sources: make(map[key.Public]*bucket)}
	now := time.Unix(1e9, 0)
	for i := range 3 * maxSources {
		var from key.Public
		from[0], from[1] = byte(i), byte(i>>8)
		now = now.Add(10 * time.Millisecond) // below the global rate
		if !l.allow(from, now) {
			t.Fatalf("source %d refused", i)
		}
		if n := len(l.sources); n > maxSources {
			t.Fatalf("%d sources tracked, limit %d", n, maxSources)
		}
	}
}

// TestRendezvousForwardsReplyToRecentInitiator checks that the target's
// answer reaches an initiator the rendezvous does not keep, at the address
// its Punch came from, and only for a while.
func TestRendezvousForwardsReplyToRecentInitiator(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := &fakeNet{}
		r := newFakePuncher(t, keyR, f)
		r.Handle(keyA, addrA, wire.Punch{TxID: 7, Target: keyT})
		r.Handle(keyT, addrT, wire.Punch{TxID: 7, Target: keyA, Reply: true, Candidates: []netip.AddrPort{lanA}})
		got := f.messages()
		if len(got) != 2 || got[1].to != keyA || got[1].addr != addrA {
			t.Fatalf("sent %+v; want the reply to A at %v", got, addrA)
		}
		if pf, ok := got[1].m.(wire.PunchFrom); !ok || pf.From != keyT || !pf.Reply {
			t.Errorf("reply forwarded as %#v", got[1].m)
		}
		time.Sleep(recentTTL)
		r.Handle(keyT, addrT, wire.Punch{TxID: 8, Target: keyA, Reply: true})
		if got := f.messages(); len(got) != 2 {
			t.Errorf("forwarded to a stale address: %+v", got[2:])
		}
	})
}

// TestTargetProbesTrustedOnly checks the target's side: a PunchFrom from a
// trusted initiator makes it probe the candidates and answer through the
// rendezvous; from anyone else it does nothing at all.
func TestTargetProbesTrustedOnly(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := &fakeNet{}
		p := newFakePuncher(t, keyT, f)
		cands := []netip.AddrPort{victim, lanA}
		p.Handle(keyR, addrR, wire.PunchFrom{TxID: 9, From: keyX, Candidates: cands})
		time.Sleep(2 * DefaultPunchTimeout)
		if got, pings := f.messages(), f.pings(); len(got) != 0 || len(pings) != 0 {
			t.Fatalf("untrusted initiator: sent %+v, probed %v", got, pings)
		}
		if s := p.Stats(); s.Untrusted != 1 {
			t.Errorf("stats %+v, want one Untrusted", s)
		}

		// A trusted initiator is probed, every Interval, until Timeout.
		p.Handle(keyR, addrR, wire.PunchFrom{TxID: 9, From: keyA, Mapping: 2, Candidates: cands})
		got := f.messages()
		want := []sentMsg{{keyR, addrR, wire.Punch{TxID: 9, Target: keyA, Reply: true, Mapping: 2, Candidates: ownCand}}}
		if diff := cmp.Diff(want, got, cmp.AllowUnexported(sentMsg{}), cmp.Comparer(addrPortEqual)); diff != "" {
			t.Errorf("answer (-want +got):\n%s", diff)
		}
		time.Sleep(2 * DefaultPunchTimeout)
		rounds := int(DefaultPunchTimeout / DefaultProbeInterval)
		pings := f.pings()
		if n := len(pings); n < 2*rounds || n > 2*(rounds+1) {
			t.Errorf("%d probes, want about %d rounds of 2", n, rounds)
		}
		for _, a := range pings {
			if !slices.Contains(cands, a) {
				t.Errorf("probed %v, not a candidate", a)
			}
		}
		if s := p.Stats(); s.Failed != 1 {
			t.Errorf("stats %+v, want one failed session", s)
		}
	})
}

// TestReplyIsNotAnswered checks that a PunchFrom marked Reply is never
// answered, and starts nothing when no session waits for it: two nodes
// cannot ping-pong punches through a rendezvous.
func TestReplyIsNotAnswered(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := &fakeNet{}
		p := newFakePuncher(t, keyT, f)
		p.Handle(keyR, addrR, wire.PunchFrom{TxID: 1, From: keyA, Reply: true, Candidates: []netip.AddrPort{lanA}})
		time.Sleep(2 * DefaultPunchTimeout)
		if got, pings := f.messages(), f.pings(); len(got) != 0 || len(pings) != 0 {
			t.Fatalf("sent %+v, probed %v", got, pings)
		}
	})
}

// TestResponderCooldown checks that a PunchFrom right after a session the
// same peer's PunchFrom started is ignored, and one after the cooldown is
// not.
func TestResponderCooldown(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := &fakeNet{}
		p := newFakePuncher(t, keyT, f)
		pf := wire.PunchFrom{TxID: 1, From: keyA, Candidates: []netip.AddrPort{victim}}
		p.Handle(keyR, addrR, pf)
		time.Sleep(DefaultPunchTimeout + time.Millisecond)
		p.Handle(keyR, addrR, pf)
		if s := p.Stats(); s.Busy != 1 {
			t.Errorf("right after a session: %+v, want one Busy", s)
		}
		time.Sleep(responderCooldown)
		p.Handle(keyR, addrR, pf)
		if s := p.Stats(); s.Busy != 1 || len(f.messages()) != 2 {
			t.Errorf("after the cooldown: %+v, %d answers; want a second session", s, len(f.messages()))
		}
	})
}

// TestPunchInitiator checks the initiator's side against fakes: the Punch
// goes to the rendezvous a few times, the given candidates are probed,
// candidates from the target's answer too, and the first answer wins.
func TestPunchInitiator(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		lanT := ipport("192.168.1.11:62096")
		f := &fakeNet{answer: map[netip.AddrPort]bool{lanT: true}}
		p := newFakePuncher(t, keyA, f)
		type result struct {
			addr netip.AddrPort
			err  error
		}
		done := make(chan result)
		go func() {
			addr, err := p.Punch(t.Context(), keyT, dht.Contact{Key: keyR, Addr: addrR}, []netip.AddrPort{addrT, ownCand[1]})
			done <- result{addr, err}
		}()
		time.Sleep(time.Second)
		synctest.Wait()
		if got := f.pings(); len(got) == 0 || slices.ContainsFunc(got, func(a netip.AddrPort) bool { return a != addrT }) {
			t.Fatalf("probed %v, want only %v (the other candidate is our own)", got, addrT)
		}
		sends := f.messages()
		if len(sends) != 2 {
			t.Errorf("sent %d punches in a second, want 2", len(sends))
		}
		for _, s := range sends {
			if m, ok := s.m.(wire.Punch); !ok || s.to != keyR || s.addr != addrR || m.Target != keyT || m.Reply {
				t.Errorf("sent %+v, want a Punch for T to R", s)
			}
		}
		p.Handle(keyR, addrR, wire.PunchFrom{TxID: 3, From: keyT, Reply: true, Candidates: []netip.AddrPort{addrT, lanT}})
		r := <-done
		if r.err != nil || r.addr != lanT {
			t.Fatalf("Punch = %v, %v; want %v", r.addr, r.err, lanT)
		}
		if got := len(f.messages()); got != 2 {
			t.Errorf("answered a Reply: %d messages", got)
		}
	})
}

// TestPunchLearnsPeerReflexive checks that a message from the target at
// an unknown address (its symmetric NAT's new port) is probed at once.
func TestPunchLearnsPeerReflexive(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fresh := ipport("192.0.2.7:31337")
		f := &fakeNet{answer: map[netip.AddrPort]bool{fresh: true}}
		p := newFakePuncher(t, keyA, f)
		done := make(chan error)
		go func() {
			_, err := p.Punch(t.Context(), keyT, dht.Contact{}, []netip.AddrPort{addrT})
			done <- err
		}()
		time.Sleep(time.Millisecond)
		start := time.Now()
		if p.Handle(keyT, fresh, wire.Ping{TxID: 1}) {
			t.Error("Handle took a Ping")
		}
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		if took := time.Since(start); took != 0 {
			t.Errorf("answered after %v, want at once", took)
		}
		if got := f.messages(); len(got) != 0 {
			t.Errorf("sent %+v without a rendezvous", got)
		}
	})
}

func TestPunchTimesOut(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := &fakeNet{}
		p := newFakePuncher(t, keyA, f)
		start := time.Now()
		_, err := p.Punch(t.Context(), keyT, dht.Contact{Key: keyR, Addr: addrR}, []netip.AddrPort{addrT})
		if !errors.Is(err, ErrNoAnswer) {
			t.Fatalf("Punch error %v, want ErrNoAnswer", err)
		}
		if took := time.Since(start); took != DefaultPunchTimeout {
			t.Errorf("gave up after %v, want %v", took, DefaultPunchTimeout)
		}
		if n := len(f.messages()); n != punchSends {
			t.Errorf("sent %d punches, want %d", n, punchSends)
		}
	})
}

func TestCloseEndsSessions(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := &fakeNet{}
		p := newFakePuncher(t, keyA, f)
		done := make(chan error)
		go func() {
			_, err := p.Punch(t.Context(), keyT, dht.Contact{}, []netip.AddrPort{addrT})
			done <- err
		}()
		time.Sleep(time.Millisecond)
		p.Close()
		p.Close()
		if err := <-done; !errors.Is(err, ErrClosed) {
			t.Errorf("Punch after Close: %v, want ErrClosed", err)
		}
		if _, err := p.Punch(t.Context(), keyT, dht.Contact{}, nil); !errors.Is(err, ErrClosed) {
			t.Errorf("Punch on a closed Puncher: %v", err)
		}
	})
}
