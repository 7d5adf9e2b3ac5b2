package nat

import (
	"context"
	"errors"
	"fmt"
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
	privA, privR, privT, privX = fillPrivate(0xaa), fillPrivate(0x77), fillPrivate(0xcc), fillPrivate(0xee)
	keyA, keyR, keyT, keyX     = privA.Public(), privR.Public(), privT.Public(), privX.Public()

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

func fillPrivate(b byte) key.Private {
	return key.Private(fillKey(b))
}

// codecs are the codecs of A, R, T and X in one test: one per key, so that
// what one seals the other opens once (the replay check).
type codecs map[key.Public]*wire.Codec

func newCodecs() codecs {
	c := codecs{}
	for _, k := range []key.Private{privA, privR, privT, privX} {
		c[k.Public()] = wire.NewCodec(k, "test", 0)
	}
	return c
}

// offer seals o from from for to, sent through rendezvous R.
func (c codecs) offer(t *testing.T, from, to key.Public, o wire.PunchOffer) []byte {
	t.Helper()
	if o.Rendezvous.IsZero() {
		o.Rendezvous = keyR
	}
	b, err := c[from].Seal(nil, to, o)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// open opens an offer sealed for to.
func (c codecs) open(t *testing.T, to key.Public, sealed []byte) (key.Public, wire.PunchOffer) {
	t.Helper()
	from, m, err := c[to].Open(sealed)
	if err != nil {
		t.Fatalf("offer does not open: %v", err)
	}
	o, ok := m.(wire.PunchOffer)
	if !ok {
		t.Fatalf("offer is a %T", m)
	}
	return from, o
}

// punchFrom is the PunchFrom R forwards for from's offer o to to.
func (c codecs) punchFrom(t *testing.T, from, to key.Public, observed netip.AddrPort, o wire.PunchOffer) wire.PunchFrom {
	t.Helper()
	return wire.PunchFrom{TxID: o.TxID, From: from, Observed: observed, Offer: c.offer(t, from, to, o)}
}

// newFakePuncher returns a Puncher for self over f, with self's codec of
// c. Locate knows T; Accept trusts A and T.
func newFakePuncher(t *testing.T, c codecs, self key.Public, f *fakeNet) *Puncher {
	t.Helper()
	p, err := New(Config{
		Self:       self,
		Send:       f.send,
		Seal:       func(to key.Public, m wire.Message) ([]byte, error) { return c[self].Seal(nil, to, m) },
		Open:       c[self].Open,
		Ping:       f.ping,
		Candidates: func() []netip.AddrPort { return ownCand },
		NAT:        func() Info { return Info{Mapping: MappingEndpointIndependent, BehindNAT: true} },
		Accept:     func(k key.Public) bool { return k == keyA || k == keyT },
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
	c := newCodecs()
	seal := func(to key.Public, m wire.Message) ([]byte, error) { return c[keyA].Seal(nil, to, m) }
	open := c[keyA].Open
	for name, cfg := range map[string]Config{
		"self": {Send: f.send, Ping: f.ping, Seal: seal, Open: open},
		"send": {Self: keyA, Ping: f.ping, Seal: seal, Open: open},
		"ping": {Self: keyA, Send: f.send, Seal: seal, Open: open},
		"seal": {Self: keyA, Send: f.send, Ping: f.ping, Open: open},
		"open": {Self: keyA, Send: f.send, Ping: f.ping, Seal: seal},
	} {
		if _, err := New(cfg); err == nil {
			t.Errorf("New without %s: no error", name)
		}
	}
}

// TestRendezvousForwards checks what the rendezvous sends for a Punch:
// one PunchFrom to the located target, with the source as Observed and
// the offer unchanged, never more than one address longer than the Punch.
func TestRendezvousForwards(t *testing.T) {
	big := make([]byte, wire.MaxOfferLen)
	tests := []struct {
		name  string
		src   netip.AddrPort
		offer []byte
		want  netip.AddrPort
	}{
		{"no_offer", addrA, nil, addrA},
		{"offer", addrA, []byte{1, 2, 3}, addrA},
		{"src_unmapped", ipport("[::ffff:198.51.100.1]:4000"), []byte{1}, addrA},
		{"largest_from_v6", v6A, big, v6A},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := &fakeNet{}
			r := newFakePuncher(t, newCodecs(), keyR, f)
			in := wire.Punch{TxID: 42, Target: keyT, Offer: tt.offer}
			if !r.Handle(keyA, tt.src, in) {
				t.Fatal("Handle did not take the Punch")
			}
			got := f.messages()
			want := []sentMsg{{keyT, addrT, wire.PunchFrom{TxID: 42, From: keyA, Observed: tt.want, Offer: tt.offer}}}
			if diff := cmp.Diff(want, got, cmp.AllowUnexported(sentMsg{}), cmp.Comparer(addrPortEqual)); diff != "" {
				t.Fatalf("sent (-want +got):\n%s", diff)
			}
			inLen, outLen := encodedLen(t, in), encodedLen(t, got[0].m)
			if outLen > inLen+19 || outLen > wire.MaxBodySize {
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
			r := newFakePuncher(t, newCodecs(), keyR, f)
			if !tt.locate {
				r.cfg.Locate = nil
			}
			r.Handle(tt.from, addrA, wire.Punch{TxID: 1, Target: tt.target, Offer: []byte{1}})
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
		r := newFakePuncher(t, newCodecs(), keyR, f)
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
		r := newFakePuncher(t, newCodecs(), keyR, f)
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
		r := newFakePuncher(t, newCodecs(), keyR, f)
		r.Handle(keyA, addrA, wire.Punch{TxID: 7, Target: keyT})
		r.Handle(keyT, addrT, wire.Punch{TxID: 7, Target: keyA, Offer: []byte{1}})
		got := f.messages()
		if len(got) != 2 || got[1].to != keyA || got[1].addr != addrA {
			t.Fatalf("sent %+v; want the reply to A at %v", got, addrA)
		}
		if pf, ok := got[1].m.(wire.PunchFrom); !ok || pf.From != keyT || pf.Observed != addrT {
			t.Errorf("reply forwarded as %#v", got[1].m)
		}
		time.Sleep(recentTTL)
		r.Handle(keyT, addrT, wire.Punch{TxID: 8, Target: keyA})
		if got := f.messages(); len(got) != 2 {
			t.Errorf("forwarded to a stale address: %+v", got[2:])
		}
	})
}

// TestTargetProbesTrustedOnly checks the target's side: a PunchFrom
// with an offer the trusted initiator sealed makes it probe the offer's
// candidates and answer through the rendezvous; from anyone else, or with
// an offer the initiator did not seal for this rendezvous and this punch,
// it does nothing at all.
func TestTargetProbesTrustedOnly(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := &fakeNet{}
		c := newCodecs()
		p := newFakePuncher(t, c, keyT, f)
		cands := []netip.AddrPort{victim, lanA}
		o := wire.PunchOffer{TxID: 9, Mapping: 2, Candidates: cands, Pad: 500}

		forged := map[string]wire.PunchFrom{
			"untrusted":      c.punchFrom(t, keyX, keyT, addrA, o),
			"no_offer":       {TxID: 9, From: keyA, Observed: addrA},
			"garbage":        {TxID: 9, From: keyA, Observed: addrA, Offer: make([]byte, 200)},
			"sealed_by_x":    {TxID: 9, From: keyA, Observed: addrA, Offer: c.offer(t, keyX, keyT, o)},
			"sealed_for_r":   {TxID: 9, From: keyA, Observed: addrA, Offer: c.offer(t, keyA, keyR, o)},
			"other_txid":     {TxID: 10, From: keyA, Observed: addrA, Offer: c.offer(t, keyA, keyT, o)},
			"other_rdv":      {TxID: 9, From: keyA, Observed: addrA, Offer: c.offer(t, keyA, keyT, wire.PunchOffer{TxID: 9, Rendezvous: keyX, Candidates: cands})},
			"not_an_offer":   {TxID: 9, From: keyA, Observed: addrA, Offer: mustSeal(t, c[keyA], keyT, wire.Ping{TxID: 9})},
			"from_ourselves": {TxID: 9, From: keyT, Observed: addrA, Offer: c.offer(t, keyT, keyT, o)},
		}
		valid := c.punchFrom(t, keyA, keyT, addrA, o)
		for name, pf := range forged {
			p.Handle(keyR, addrR, pf)
			time.Sleep(2 * DefaultPunchTimeout)
			if got, pings := f.messages(), f.pings(); len(got) != 0 || len(pings) != 0 {
				t.Fatalf("%s: sent %+v, probed %v", name, got, pings)
			}
		}
		if s := p.Stats(); s.Untrusted != 1 || s.Forged != uint64(len(forged)-2) {
			t.Errorf("stats %+v, want one Untrusted and %d Forged", s, len(forged)-2)
		}
		// A replayed offer does not open twice.
		p.Handle(keyR, addrR, valid)
		p.Handle(keyR, addrR, valid)
		if s := p.Stats(); s.Forged != uint64(len(forged)-1) {
			t.Errorf("a replayed offer was taken: %+v", s)
		}

		got := f.messages()
		if len(got) != 1 || got[0].to != keyR || got[0].addr != addrR {
			t.Fatalf("answer %+v, want one to R", got)
		}
		reply := got[0].m.(wire.Punch)
		if reply.TxID != 9 || reply.Target != keyA {
			t.Errorf("answer %+v", reply)
		}
		by, ro := c.open(t, keyA, reply.Offer)
		want := wire.PunchOffer{TxID: 9, Rendezvous: keyR, Reply: true, Mapping: 2, Candidates: ownCand}
		if diff := cmp.Diff(want, ro, cmp.Comparer(addrPortEqual)); by != keyT || diff != "" {
			t.Errorf("answer's offer by %v (-want +got):\n%s", by, diff)
		}
		if in, out := packetSize(valid), packetSize(reply); out > in {
			t.Errorf("answered %d bytes to R for %d", out, in)
		}
		time.Sleep(2 * DefaultPunchTimeout)
		pings := f.pings()
		if len(pings) == 0 || len(pings)*probeSize > packetSize(valid) {
			t.Errorf("%d probes (%d bytes) for a PunchFrom of %d bytes", len(pings), len(pings)*probeSize, packetSize(valid))
		}
		for _, a := range pings {
			if !slices.Contains(cands, a) && a != addrA {
				t.Errorf("probed %v, not a candidate", a)
			}
		}
		if s := p.Stats(); s.Failed != 1 {
			t.Errorf("stats %+v, want one failed session", s)
		}
	})
}

func mustSeal(t *testing.T, c *wire.Codec, to key.Public, m wire.Message) []byte {
	t.Helper()
	b, err := c.Seal(nil, to, m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestPunchFromNoAmplifier is the reflector of old: one PunchFrom with
// eight candidates makes the target send no more bytes of probes than the
// PunchFrom had, however the offer is padded.
func TestPunchFromNoAmplifier(t *testing.T) {
	for _, pad := range []int{0, 300, wire.MaxOfferBodyLen} {
		t.Run(fmt.Sprint("pad_", pad), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				f := &fakeNet{}
				c := newCodecs()
				p := newFakePuncher(t, c, keyT, f)
				var eight []netip.AddrPort
				for i := range wire.MaxCandidates {
					eight = append(eight, netip.AddrPortFrom(netip.AddrFrom4([4]byte{192, 0, 2, byte(i + 1)}), 53))
				}
				pad := min(pad, wire.MaxOfferBodyLen-43-8*7)
				pf := c.punchFrom(t, keyA, keyT, victim, wire.PunchOffer{TxID: 1, Candidates: eight, Pad: pad})
				p.Handle(keyR, addrR, pf)
				time.Sleep(2 * DefaultPunchTimeout)
				in, out := packetSize(pf), len(f.pings())*probeSize
				t.Logf("PunchFrom of %d bytes: %d probes, %d bytes", in, len(f.pings()), out)
				if out > in {
					t.Errorf("%d bytes of probes for a PunchFrom of %d", out, in)
				}
			})
		})
	}
}

// TestReplyIsNotAnswered checks that a PunchFrom whose offer is a Reply is
// never answered, and starts nothing when no session waits for it: two
// nodes cannot ping-pong punches through a rendezvous.
func TestReplyIsNotAnswered(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := &fakeNet{}
		c := newCodecs()
		p := newFakePuncher(t, c, keyT, f)
		p.Handle(keyR, addrR, c.punchFrom(t, keyA, keyT, addrA, wire.PunchOffer{TxID: 1, Reply: true, Candidates: []netip.AddrPort{lanA}}))
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
		c := newCodecs()
		p := newFakePuncher(t, c, keyT, f)
		o := wire.PunchOffer{TxID: 1, Candidates: []netip.AddrPort{victim}}
		p.Handle(keyR, addrR, c.punchFrom(t, keyA, keyT, addrA, o))
		time.Sleep(DefaultPunchTimeout + time.Millisecond)
		p.Handle(keyR, addrR, c.punchFrom(t, keyA, keyT, addrA, o))
		if s := p.Stats(); s.Busy != 1 {
			t.Errorf("right after a session: %+v, want one Busy", s)
		}
		time.Sleep(responderCooldown)
		p.Handle(keyR, addrR, c.punchFrom(t, keyA, keyT, addrA, o))
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
		c := newCodecs()
		p := newFakePuncher(t, c, keyA, f)
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
		var txid uint64
		for _, s := range sends {
			m, ok := s.m.(wire.Punch)
			if !ok || s.to != keyR || s.addr != addrR || m.Target != keyT {
				t.Fatalf("sent %+v, want a Punch for T to R", s)
			}
			by, o := c.open(t, keyT, m.Offer)
			want := wire.PunchOffer{TxID: m.TxID, Rendezvous: keyR, Mapping: 2, Candidates: ownCand}
			if diff := cmp.Diff(want, o, cmp.Comparer(addrPortEqual)); by != keyA || diff != "" {
				t.Errorf("offer by %v (-want +got):\n%s", by, diff)
			}
			if n := packetSize(m); n < offerBodyLen {
				t.Errorf("punch of %d bytes: not padded", n)
			}
			txid = m.TxID
		}
		p.Handle(keyR, addrR, c.punchFrom(t, keyT, keyA, addrT, wire.PunchOffer{TxID: txid, Reply: true, Candidates: []netip.AddrPort{lanT}, Pad: 300}))
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
		p := newFakePuncher(t, newCodecs(), keyA, f)
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
		p := newFakePuncher(t, newCodecs(), keyA, f)
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
		p := newFakePuncher(t, newCodecs(), keyA, f)
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
