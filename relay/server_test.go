package relay

import (
	"math/rand/v2"
	"net/netip"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/whnet/wh/key"
	"github.com/whnet/wh/wire"
)

var (
	keyA, keyB, keyC, keyD = fill(0xa), fill(0xb), fill(0xc), fill(0xd)

	addrA   = netip.MustParseAddrPort("198.51.100.1:40000")
	addrB   = netip.MustParseAddrPort("198.51.100.2:50000")
	addrC   = netip.MustParseAddrPort("[2001:db8::c]:51820")
	srcAddr = netip.MustParseAddrPort("203.0.113.99:1234") // where a request claims to come from
)

func TestServerForwards(t *testing.T) {
	rec := &recorder{}
	srv := newTestServer(t, ServerConfig{Send: rec.Send, Locate: locateIn(map[key.Public]netip.AddrPort{keyB: addrB})})
	pkt := wgData(1312, 7)
	if !srv.Handle(keyA, srcAddr, wire.Relay{Dst: keyB, Payload: pkt}) {
		t.Fatal("Handle(Relay) = false")
	}
	want := []sent{{To: keyB, Addr: addrB, M: wire.Relayed{Src: keyA, Payload: pkt}}}
	if diff := cmp.Diff(want, rec.take(), cmp.Comparer(func(a, b netip.AddrPort) bool { return a == b })); diff != "" {
		t.Errorf("sent (-want +got):\n%s", diff)
	}
	size := uint64(wire.Overhead + wire.RelayHeaderLen + 1312)
	wantStats := ServerStats{Received: 1, ReceivedBytes: size, Forwarded: 1, ForwardedBytes: size}
	if diff := cmp.Diff(wantStats, srv.Stats()); diff != "" {
		t.Errorf("stats (-want +got):\n%s", diff)
	}
}

func TestServerDrops(t *testing.T) {
	data := wgData(100, 1)
	tests := []struct {
		name    string
		m       wire.Message
		sendErr error
		handled bool
		counter func(*ServerStats) *uint64 // nil: nothing counted
	}{
		{"unknown_destination", wire.Relay{Dst: keyD, Payload: data}, nil, true,
			func(s *ServerStats) *uint64 { return &s.DropNoRoute }},
		{"to_the_sender", wire.Relay{Dst: keyA, Payload: data}, nil, true,
			func(s *ServerStats) *uint64 { return &s.DropLoop }},
		{"control_packet", wire.Relay{Dst: keyB, Payload: append([]byte(wire.Magic), data...)}, nil, true,
			func(s *ServerStats) *uint64 { return &s.DropInvalid }},
		{"empty", wire.Relay{Dst: keyB}, nil, true,
			func(s *ServerStats) *uint64 { return &s.DropInvalid }},
		{"too_large", wire.Relay{Dst: keyB, Payload: wgData(wire.MaxRelayPayload+1, 1)}, nil, true,
			func(s *ServerStats) *uint64 { return &s.DropInvalid }},
		{"short_transport", wire.Relay{Dst: keyB, Payload: wgData(31, 1)}, nil, true,
			func(s *ServerStats) *uint64 { return &s.DropInvalid }},
		{"initiation_wrong_size", wire.Relay{Dst: keyB, Payload: append([]byte{1, 0, 0, 0}, make([]byte, 100)...)}, nil, true,
			func(s *ServerStats) *uint64 { return &s.DropInvalid }},
		{"type_5", wire.Relay{Dst: keyB, Payload: append([]byte{5, 0, 0, 0}, make([]byte, 100)...)}, nil, true,
			func(s *ServerStats) *uint64 { return &s.DropInvalid }},
		{"type_4_high_bytes", wire.Relay{Dst: keyB, Payload: append([]byte{4, 0, 0, 1}, make([]byte, 100)...)}, nil, true,
			func(s *ServerStats) *uint64 { return &s.DropInvalid }},
		{"send_fails", wire.Relay{Dst: keyB, Payload: data}, errSend, true,
			func(s *ServerStats) *uint64 { return &s.DropSendError }},
		{"relayed_is_not_relayed_again", wire.Relayed{Src: keyC, Payload: data}, nil, false, nil},
		{"ping_is_not_ours", wire.Ping{TxID: 1}, nil, false, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := &recorder{err: tt.sendErr}
			srv := newTestServer(t, ServerConfig{Send: rec.Send, Locate: locateIn(map[key.Public]netip.AddrPort{
				keyA: addrA, keyB: addrB,
			})})
			if got := srv.Handle(keyA, srcAddr, tt.m); got != tt.handled {
				t.Fatalf("Handle = %v, want %v", got, tt.handled)
			}
			if s := rec.take(); len(s) != 0 {
				t.Errorf("sent %v, want nothing", s)
			}
			var want ServerStats
			if tt.counter != nil {
				want.Received = 1
				want.ReceivedBytes = uint64(frameLen(len(tt.m.(wire.Relay).Payload)))
				*tt.counter(&want) = 1
			}
			if diff := cmp.Diff(want, srv.Stats()); diff != "" {
				t.Errorf("stats (-want +got):\n%s", diff)
			}
		})
	}
}

// TestServerSourceLimit floods from one source and checks that its bucket
// cuts it at the burst and then at the rate, while another source passes.
func TestServerSourceLimit(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := &recorder{}
		srv := newTestServer(t, ServerConfig{Send: rec.Send, Locate: locateIn(map[key.Public]netip.AddrPort{keyB: addrB})})
		pkt := wgData(1312, 0)
		frame := float64(frameLen(len(pkt)))
		forwardedFrom := func(src key.Public) int {
			n := 0
			for _, s := range rec.take() {
				if s.M.(wire.Relayed).Src == src {
					n++
				}
			}
			return n
		}

		// An instant flood: the byte bucket (2 MiB/s × 250 ms) binds before
		// the packet bucket (2000/s × 250 ms = 500).
		const flood = 5000
		for range flood {
			srv.Handle(keyA, srcAddr, wire.Relay{Dst: keyB, Payload: pkt})
		}
		burst := int(DefaultSourceBytes * DefaultBurst.Seconds() / frame)
		if got := forwardedFrom(keyA); got != burst {
			t.Errorf("flood: %d forwarded, want the burst %d", got, burst)
		}
		if got, want := srv.Stats().DropSourceRate, uint64(flood-burst); got != want {
			t.Errorf("DropSourceRate = %d, want %d", got, want)
		}

		// Another source is not affected.
		for range 100 {
			srv.Handle(keyC, srcAddr, wire.Relay{Dst: keyB, Payload: pkt})
		}
		if got := forwardedFrom(keyC); got != 100 {
			t.Errorf("second source: %d of 100 forwarded", got)
		}

		// Offered at twice its byte rate for 2 s, the source gets its rate.
		const step = time.Millisecond
		perStep := int(2*DefaultSourceBytes*step.Seconds()/frame) + 1
		for range 2000 {
			for range perStep {
				srv.Handle(keyA, srcAddr, wire.Relay{Dst: keyB, Payload: pkt})
			}
			time.Sleep(step)
		}
		want := DefaultSourceBytes * 2 / frame
		if got := float64(forwardedFrom(keyA)); got < want*0.99 || got > want*1.01 {
			t.Errorf("over 2 s: %.0f forwarded, want %.0f ± 1%%", got, want)
		}
	})
}

// TestServerTotalLimit has many sources, each within its own limit, exceed
// the server's total.
func TestServerTotalLimit(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := &recorder{}
		srv := newTestServer(t, ServerConfig{
			Send:   rec.Send,
			Locate: locateIn(map[key.Public]netip.AddrPort{keyB: addrB}),
			Total:  Limit{Packets: 1000, Burst: 100 * time.Millisecond},
		})
		for i := range 10 {
			for range 50 {
				srv.Handle(fill(byte(0x10+i)), srcAddr, wire.Relay{Dst: keyB, Payload: wgData(64, 0)})
			}
		}
		s := srv.Stats()
		if s.Forwarded != 100 || s.DropTotalRate != 400 || s.DropSourceRate != 0 {
			t.Errorf("forwarded %d, total-rate drops %d, source-rate drops %d; want 100, 400, 0",
				s.Forwarded, s.DropTotalRate, s.DropSourceRate)
		}
		time.Sleep(50 * time.Millisecond) // half the burst refills
		for range 100 {
			srv.Handle(keyA, srcAddr, wire.Relay{Dst: keyB, Payload: wgData(64, 0)})
		}
		if got := srv.Stats().Forwarded; got != 150 {
			t.Errorf("after 50 ms: %d forwarded in all, want 150", got)
		}
	})
}

// TestServerMaxSources checks that the source table is bounded and that a
// sender is forgotten once its buckets are full again.
func TestServerMaxSources(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := &recorder{}
		srv := newTestServer(t, ServerConfig{
			Send:       rec.Send,
			Locate:     locateIn(map[key.Public]netip.AddrPort{keyB: addrB}),
			MaxSources: 2,
		})
		relay := func(from key.Public) { srv.Handle(from, srcAddr, wire.Relay{Dst: keyB, Payload: wgData(64, 0)}) }
		relay(keyA)
		relay(keyC)
		relay(keyD)
		if s := srv.Stats(); s.Forwarded != 2 || s.DropSources != 1 {
			t.Fatalf("forwarded %d, source drops %d; want 2, 1", s.Forwarded, s.DropSources)
		}
		time.Sleep(DefaultBurst / 2)
		relay(keyC) // C stays active
		time.Sleep(DefaultBurst / 2)
		relay(keyD) // A's buckets are full again: A is forgotten, D takes its place
		relay(keyA) // C and D are active
		if s := srv.Stats(); s.Forwarded != 4 || s.DropSources != 2 {
			t.Errorf("after the burst time: forwarded %d, source drops %d; want 4 (C, D in), 2 (A out)", s.Forwarded, s.DropSources)
		}
	})
}

// TestServerNoAmplification runs random traffic through real codecs and
// checks, per source, that the relay sent no more bytes than the source
// sent it, and only to addresses Locate gave.
func TestServerNoAmplification(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const namespace = "relay-test"
		relayPriv := newPrivate(t)
		relayCodec := wire.NewCodec(relayPriv, namespace, 0)
		dsts := map[key.Public]netip.AddrPort{}
		for i := range 3 {
			dsts[newPrivate(t).Public()] = netip.AddrPortFrom(netip.AddrFrom4([4]byte{192, 0, 2, byte(i + 1)}), 51820)
		}
		var dstKeys []key.Public
		for k := range dsts {
			dstKeys = append(dstKeys, k)
		}
		dstKeys = append(dstKeys, fill(0x77)) // unknown

		out := map[key.Public]int{} // bytes sent on behalf of each source
		srv := newTestServer(t, ServerConfig{
			Send: func(to key.Public, addr netip.AddrPort, m wire.Message) error {
				if want, ok := dsts[to]; !ok || addr != want {
					t.Errorf("sent to %v at %v, not an address Locate gave", to, addr)
				}
				pkt, err := relayCodec.Seal(nil, to, m)
				if err != nil {
					return err
				}
				out[m.(*wire.Relayed).Src] += len(pkt)
				return nil
			},
			Locate:    locateIn(dsts),
			PerSource: Limit{Bytes: 20 << 10}, // low, so that the traffic hits it
		})

		in := map[key.Public]int{}
		var sources []*wire.Codec
		for range 4 {
			sources = append(sources, wire.NewCodec(newPrivate(t), namespace, 0))
		}
		r := rand.New(rand.NewPCG(1, 2))
		sizes := []int{32, 148, 92, 64, 100, 1312, wire.MaxRelayPayload}
		for i := range 3000 {
			src := sources[r.IntN(len(sources))]
			payload := wgData(sizes[r.IntN(len(sizes))], uint64(i))
			if r.IntN(10) == 0 {
				payload[0] = byte(1 + r.IntN(3)) // a handshake type, mostly of the wrong size
			}
			pkt, err := src.Seal(nil, relayPriv.Public(), wire.Relay{Dst: dstKeys[r.IntN(len(dstKeys))], Payload: payload})
			if err != nil {
				t.Fatal(err)
			}
			from, m, err := relayCodec.Open(pkt)
			if err != nil {
				t.Fatal(err)
			}
			in[from] += len(pkt)
			srv.Handle(from, srcAddr, m)
			if r.IntN(20) == 0 {
				time.Sleep(time.Duration(r.IntN(100)) * time.Millisecond)
			}
		}
		for _, src := range sources {
			k := src.Public()
			if out[k] > in[k] {
				t.Errorf("source %v: relay sent %d bytes for %d received", k, out[k], in[k])
			}
			t.Logf("source %v: %d bytes in, %d out", k.Short(8), in[k], out[k])
		}
		s := srv.Stats()
		if s.ForwardedBytes > s.ReceivedBytes || s.DropSourceRate == 0 || s.DropNoRoute == 0 || s.DropInvalid == 0 || s.Forwarded == 0 {
			t.Errorf("stats %+v: want forwarded bytes ≤ received, and some of each outcome", s)
		}
	})
}

func newPrivate(t testing.TB) key.Private {
	t.Helper()
	k, err := key.NewPrivate()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// TestServerMembersSkipLimits: packets between two members of the relay's
// own network are not rate limited; a stranger's still are.
func TestServerMembersSkipLimits(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := &recorder{}
		members := map[key.Public]bool{keyA: true, keyB: true}
		srv := newTestServer(t, ServerConfig{
			Send:    rec.Send,
			Locate:  locateIn(map[key.Public]netip.AddrPort{keyB: addrB}),
			Members: func(src, dst key.Public) bool { return members[src] && members[dst] },
		})
		pkt := wgData(1312, 0)
		const flood = 5000
		for range flood {
			srv.Handle(keyA, srcAddr, wire.Relay{Dst: keyB, Payload: pkt})
			srv.Handle(keyC, srcAddr, wire.Relay{Dst: keyB, Payload: pkt})
		}
		st := srv.Stats()
		burst := int(DefaultSourceBytes * DefaultBurst.Seconds() / float64(frameLen(len(pkt))))
		if got, want := st.Forwarded, uint64(flood+burst); got != want {
			t.Errorf("Forwarded = %d, want the member's %d and the stranger's burst %d", got, flood, burst)
		}
		if got, want := st.DropSourceRate, uint64(flood-burst); got != want {
			t.Errorf("DropSourceRate = %d, want %d (the stranger only)", got, want)
		}
	})
}
