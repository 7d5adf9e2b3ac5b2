package tunnel

import (
	"bytes"
	"errors"
	"net"
	"net/netip"
	"runtime"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.zx2c4.com/wireguard/conn"
	"golang.zx2c4.com/wireguard/device"

	"github.com/whnet/wh/key"
)

// isTestControl is the stand-in for wire.IsControl in these tests.
func isTestControl(pkt []byte) bool { return len(pkt) > 0 && pkt[0] == 0xff }

// relayFrame is the stand-in for a relay frame in these tests: 0xff 'R',
// the sender's key, the WireGuard packet.
func relayFrame(from key.Public, pkt []byte) []byte {
	return append(append([]byte{0xff, 'R'}, from[:]...), pkt...)
}

// unwrapTestRelay is the node's part of OnControl in these tests: it finds
// the WireGuard packets in relay frames and passes the other control
// messages, copied, to rest.
func unwrapTestRelay(rest func(pkt []byte, src netip.AddrPort)) func([]Control) {
	return func(msgs []Control) {
		for i := range msgs {
			m := &msgs[i]
			if len(m.Pkt) >= 2+key.Size && m.Pkt[1] == 'R' {
				m.Peer, m.Relayed = key.Public(m.Pkt[2:2+key.Size]), m.Pkt[2+key.Size:]
				continue
			}
			if rest != nil {
				rest(bytes.Clone(m.Pkt), m.Src)
			}
		}
	}
}

// wgPacket returns a WireGuard-shaped message of type typ and the given size whose
// bytes after the 4-byte type are tag.
func wgPacket(typ byte, size int, tag byte) []byte {
	b := bytes.Repeat([]byte{tag}, size)
	b[0], b[1], b[2], b[3] = typ, 0, 0, 0
	return b
}

func dataPacket(tag byte) []byte { return wgPacket(device.MessageTransportType, 100, tag) }

func TestLooksLikeWireGuard(t *testing.T) {
	tests := []struct {
		name string
		pkt  []byte
		want bool
	}{
		{"empty", nil, false},
		{"short", []byte{4, 0, 0}, false},
		{"initiation", wgPacket(1, 148, 0), true},
		{"initiation_wrong_size", wgPacket(1, 149, 0), false},
		{"response", wgPacket(2, 92, 0), true},
		{"response_wrong_size", wgPacket(2, 148, 0), false},
		{"cookie_reply", wgPacket(3, 64, 0), true},
		{"cookie_reply_wrong_size", wgPacket(3, 65, 0), false},
		{"keepalive", wgPacket(4, 32, 0), true},
		{"data", wgPacket(4, 1312, 0), true},
		{"data_too_short", wgPacket(4, 31, 0), false},
		{"type_0", wgPacket(0, 148, 0), false},
		{"type_5", wgPacket(5, 148, 0), false},
		{"type_high_bytes_set", append([]byte{4, 0, 0, 1}, make([]byte, 60)...), false},
		{"type_byte1_set", append([]byte{1, 1, 0, 0}, make([]byte, 144)...), false},
		{"control_magic", append([]byte{0xff, 0, 0, 0}, make([]byte, 100)...), false},
		{"krpc", []byte("d1:ad2:id20:abcdefghij0123456789e1:q4:ping1:t2:aa1:y1:qe"), false},
		{"stun", append([]byte{0x00, 0x01, 0x00, 0x00, 0x21, 0x12, 0xa4, 0x42}, make([]byte, 12)...), false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := looksLikeWireGuard(tc.pkt); got != tc.want {
				t.Errorf("looksLikeWireGuard = %v, want %v", got, tc.want)
			}
		})
	}
}

// TestDemux drives the receive wrapper with a fake StdNetBind receive function.
func TestDemux(t *testing.T) {
	var gotCtl [][]byte
	var gotSrc []netip.AddrPort
	b := NewBind(BindOptions{
		IsControl: isTestControl,
		OnControl: unwrapTestRelay(func(p []byte, src netip.AddrPort) {
			gotCtl, gotSrc = append(gotCtl, p), append(gotSrc, src)
		}),
	})
	peer, stranger := testKey(t).Public(), testKey(t).Public()
	learned := netip.MustParseAddrPort("192.0.2.1:1000")
	if err := b.Learn(learned, peer); err != nil {
		t.Fatal(err)
	}
	pe, _ := b.endpoint(peer)
	other := netip.MustParseAddrPort("192.0.2.2:2000")
	mapped := netip.MustParseAddrPort("[::ffff:192.0.2.1]:1000")

	type in struct {
		pkt []byte
		src netip.AddrPort
	}
	batch := []in{
		{dataPacket(1), learned},
		{[]byte{0xff, 'h', 'i'}, other},
		{dataPacket(2), other},
		{[]byte("garbage"), learned},
		{wgPacket(1, 148, 3), mapped},
		{relayFrame(peer, dataPacket(4)), other},                      // relayed from a peer
		{relayFrame(stranger, dataPacket(5)), other},                  // from an unknown key
		{relayFrame(peer, []byte("not wireguard at all, no")), other}, // not WireGuard
	}
	bufs := make([][]byte, len(batch))
	sizes := make([]int, len(batch))
	eps := make([]conn.Endpoint, len(batch))
	recv := b.demux(func(bufs [][]byte, sizes []int, eps []conn.Endpoint) (int, error) {
		for i, p := range batch {
			bufs[i] = append(bufs[i][:0], p.pkt...)
			sizes[i] = len(p.pkt)
			eps[i] = &conn.StdNetEndpoint{AddrPort: p.src}
		}
		return len(batch), nil
	})
	for i := range bufs {
		bufs[i] = make([]byte, 2048)
	}
	n, err := recv(bufs, sizes, eps)
	if err != nil || n != len(batch) {
		t.Fatalf("recv = %d, %v", n, err)
	}
	if diff := cmp.Diff([]int{100, 0, 100, 0, 148, 100, 0, 0}, sizes); diff != "" {
		t.Errorf("sizes (-want +got):\n%s", diff)
	}
	if !bytes.Equal(bufs[5][:sizes[5]], dataPacket(4)) {
		t.Errorf("relayed packet in the batch: %x, want the frame's payload", bufs[5][:sizes[5]])
	}
	for i, want := range []conn.Endpoint{pe, nil, nil, nil, pe, pe} {
		if want != nil && eps[i] != want {
			t.Errorf("eps[%d] = %v, want the peer's endpoint", i, eps[i].DstToString())
		}
	}
	if _, ok := eps[2].(*conn.StdNetEndpoint); !ok {
		t.Errorf("eps[2] = %T, want a plain endpoint for an unknown source", eps[2])
	}
	if diff := cmp.Diff([][]byte{{0xff, 'h', 'i'}}, gotCtl); diff != "" {
		t.Errorf("control messages (-want +got):\n%s", diff)
	}
	if len(gotSrc) != 1 || gotSrc[0] != other {
		t.Errorf("control sources = %v, want [%v]", gotSrc, other)
	}
	want := Stats{ControlIn: 4, WireGuardIn: 3, RelayedIn: 1, DropUnknown: 1, DropRelayedInvalid: 2}
	if diff := cmp.Diff(want, b.Stats()); diff != "" {
		t.Errorf("stats (-want +got):\n%s", diff)
	}

	t.Run("no_allocations_for_wireguard", func(t *testing.T) {
		if raceEnabled {
			t.Skip("the race detector allocates")
		}
		batch = batch[:1]
		batch[0] = in{dataPacket(1), learned}
		allocs := testing.AllocsPerRun(100, func() {
			if _, err := recv(bufs[:1], sizes[:1], eps[:1]); err != nil {
				t.Fatal(err)
			}
		})
		// The fake itself allocates the StdNetEndpoint, as StdNetBind does.
		if allocs > 1 {
			t.Errorf("%v allocations per receive, want at most the fake's 1", allocs)
		}
	})
}

func testKey(t testing.TB) key.Private {
	t.Helper()
	k, err := key.NewPrivate()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

type received struct {
	pkt []byte
	ep  conn.Endpoint
}

type control struct {
	pkt []byte
	src netip.AddrPort
}

// testBind is an open Bind whose receive functions run until it is closed, delivering
// what the device would see to wg and control messages to ctl.
type testBind struct {
	*Bind
	wg   chan received
	ctl  chan control
	errs chan error // one per receive function, when it returns
	nfns int
}

func openBind(t *testing.T) *testBind {
	t.Helper()
	tb := &testBind{wg: make(chan received, 4096), ctl: make(chan control, 64)}
	tb.Bind = NewBind(BindOptions{
		IsControl: isTestControl,
		OnControl: unwrapTestRelay(func(p []byte, src netip.AddrPort) { tb.ctl <- control{p, src} }),
		Logger:    testLogger(t),
	})
	fns, port, err := tb.Open(0)
	if err != nil {
		t.Fatal(err)
	}
	if port == 0 || tb.Port() != port {
		t.Fatalf("Open port %d, Port() %d", port, tb.Port())
	}
	tb.nfns = len(fns)
	tb.errs = make(chan error, len(fns))
	var wg sync.WaitGroup
	for _, fn := range fns {
		wg.Go(func() { tb.errs <- receiveLoop(tb.BatchSize(), fn, tb.wg) })
	}
	t.Cleanup(func() {
		tb.Close()
		wg.Wait()
	})
	return tb
}

// receiveLoop calls fn as the device does until it fails, and returns the error.
func receiveLoop(batch int, fn conn.ReceiveFunc, out chan<- received) error {
	bufs := make([][]byte, batch)
	for i := range bufs {
		bufs[i] = make([]byte, device.MaxMessageSize)
	}
	sizes := make([]int, batch)
	eps := make([]conn.Endpoint, batch)
	for {
		n, err := fn(bufs, sizes, eps)
		if err != nil {
			return err
		}
		for i := range n {
			if sizes[i] > 0 {
				out <- received{bytes.Clone(bufs[i][:sizes[i]]), eps[i]}
			}
		}
	}
}

func (tb *testBind) addr() netip.AddrPort {
	return netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), tb.Port())
}

func recvWithin[T any](t *testing.T, c <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-c:
		return v
	case <-time.After(5 * time.Second):
		t.Fatalf("no %s within 5s", what)
		panic("unreachable")
	}
}

func expectNone[T any](t *testing.T, c <-chan T, what string) {
	t.Helper()
	select {
	case v := <-c:
		t.Fatalf("unexpected %s: %+v", what, v)
	case <-time.After(100 * time.Millisecond):
	}
}

func TestBindControl(t *testing.T) {
	checkGoroutines(t)
	a, b := openBind(t), openBind(t)
	tests := []struct {
		name     string
		from, to *testBind
		ip       string
	}{
		{"a_to_b_ipv4", a, b, "127.0.0.1"},
		{"b_to_a_ipv4", b, a, "127.0.0.1"},
		{"a_to_b_ipv6", a, b, "::1"},
		{"b_to_a_ipv4_mapped", b, a, "::ffff:127.0.0.1"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			msg := []byte("\xff" + tc.name)
			dst := netip.AddrPortFrom(netip.MustParseAddr(tc.ip), tc.to.Port())
			if err := tc.from.SendControl(msg, dst); err != nil {
				t.Fatal(err)
			}
			got := recvWithin(t, tc.to.ctl, "control message")
			wantSrc := netip.AddrPortFrom(dst.Addr().Unmap(), tc.from.Port())
			if !bytes.Equal(got.pkt, msg) || got.src != wantSrc {
				t.Errorf("got %q from %v, want %q from %v", got.pkt, got.src, msg, wantSrc)
			}
			expectNone(t, tc.to.wg, "packet for the device")
		})
	}
	if s := a.Stats(); s.ControlOut != 2 || s.ControlIn != 2 {
		t.Errorf("a: %+v, want 2 control messages each way", s)
	}
}

func TestBindDropsUnknown(t *testing.T) {
	b := openBind(t)
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for _, p := range [][]byte{[]byte("hello"), wgPacket(1, 100, 0), dataPacket(7)} {
		if _, err := c.WriteToUDPAddrPort(p, b.addr()); err != nil {
			t.Fatal(err)
		}
	}
	got := recvWithin(t, b.wg, "WireGuard packet")
	if !bytes.Equal(got.pkt, dataPacket(7)) {
		t.Errorf("device got %x, want the data packet only", got.pkt)
	}
	if s := b.Stats(); s.DropUnknown != 2 || s.WireGuardIn != 1 {
		t.Errorf("stats %+v, want 2 dropped and 1 WireGuard in", s)
	}
}

func TestBindPaths(t *testing.T) {
	checkGoroutines(t)
	a, b := openBind(t), openBind(t)
	ka, kb := testKey(t).Public(), testKey(t).Public()
	epB, err := a.endpoint(kb) // what a's device holds for b
	if err != nil {
		t.Fatal(err)
	}
	send := func(t *testing.T, tag byte) {
		t.Helper()
		if err := a.Send([][]byte{dataPacket(tag), dataPacket(tag + 1)}, epB); err != nil {
			t.Fatal(err)
		}
	}
	expect := func(t *testing.T, tag byte, wantEP conn.Endpoint) {
		t.Helper()
		for i := range byte(2) {
			got := recvWithin(t, b.wg, "packet")
			if !bytes.Equal(got.pkt, dataPacket(tag+i)) {
				t.Fatalf("got packet %x, want tag %d", got.pkt[4], tag+i)
			}
			if wantEP != nil && got.ep != wantEP {
				t.Fatalf("endpoint %s, want %s", got.ep.DstToString(), wantEP.DstToString())
			}
			if wantEP == nil {
				if std, ok := got.ep.(*conn.StdNetEndpoint); !ok || std.AddrPort != a.addr() {
					t.Fatalf("endpoint %T %s, want plain %s", got.ep, got.ep.DstToString(), a.addr())
				}
			}
		}
	}

	initiation := wgPacket(device.MessageInitiationType, device.MessageInitiationSize, 9)
	t.Run("no_path", func(t *testing.T) {
		if err := a.Send([][]byte{dataPacket(1)}, epB); !errors.Is(err, ErrNoPath) {
			t.Fatalf("Send = %v, want ErrNoPath", err)
		}
		if got := a.Stats().DropNoPath; got != 1 {
			t.Errorf("DropNoPath = %d, want 1", got)
		}
		// A handshake initiation is held until a path appears.
		if err := a.Send([][]byte{dataPacket(2), initiation}, epB); err != nil {
			t.Fatalf("Send of an initiation without a path = %v, want it held", err)
		}
		if got := a.Stats().Held; got != 1 {
			t.Errorf("Held = %d, want 1", got)
		}
	})
	t.Run("direct_from_unknown_address", func(t *testing.T) {
		if err := a.SetPath(kb, Path{Direct: b.addr()}); err != nil {
			t.Fatal(err)
		}
		if got := recvWithin(t, b.wg, "held initiation"); !bytes.Equal(got.pkt, initiation) {
			t.Fatalf("first packet on the new path: %x, want the held initiation", got.pkt[:4])
		}
		send(t, 10)
		expect(t, 10, nil)
	})
	epA, err := b.endpoint(ka)
	if err != nil {
		t.Fatal(err)
	}
	t.Run("direct_from_learned_address", func(t *testing.T) {
		if err := b.Learn(a.addr(), ka); err != nil {
			t.Fatal(err)
		}
		send(t, 20)
		expect(t, 20, epA)
	})
	t.Run("relay", func(t *testing.T) {
		var calls int
		relay := func(bufs [][]byte) error {
			calls++
			var frames [][]byte
			for _, p := range bufs {
				frames = append(frames, relayFrame(ka, p))
			}
			return a.SendControls(frames, b.addr())
		}
		if err := a.SetPath(kb, Path{Relay: relay}); err != nil {
			t.Fatal(err)
		}
		// The initiation sent just before goes again on the new path.
		if got := recvWithin(t, b.wg, "initiation sent again"); !bytes.Equal(got.pkt, initiation) || got.ep != epA {
			t.Fatalf("first packet on the relay: %x from %v, want the initiation again", got.pkt[:4], got.ep)
		}
		calls = 0
		before := b.Stats().WireGuardIn
		send(t, 30)
		expect(t, 30, epA)
		if calls != 1 {
			t.Errorf("relay called %d times, want 1", calls)
		}
		if got := b.Stats().WireGuardIn; got != before {
			t.Errorf("%d packets came through the socket while relayed", got-before)
		}
		// A device that roamed to a plain endpoint at a learned address follows the path too.
		if err := a.Learn(b.addr(), kb); err != nil {
			t.Fatal(err)
		}
		if err := a.Send([][]byte{dataPacket(40), dataPacket(41)}, &conn.StdNetEndpoint{AddrPort: b.addr()}); err != nil {
			t.Fatal(err)
		}
		expect(t, 40, epA)
		if calls != 2 {
			t.Errorf("relay called %d times, want 2", calls)
		}
	})
	t.Run("back_to_direct", func(t *testing.T) {
		if err := a.SetPath(kb, Path{Direct: b.addr()}); err != nil {
			t.Fatal(err)
		}
		if got := recvWithin(t, b.wg, "initiation sent again"); !bytes.Equal(got.pkt, initiation) {
			t.Fatalf("first packet on the direct path: %x, want the initiation again", got.pkt[:4])
		}
		send(t, 50)
		expect(t, 50, epA)
	})
	t.Run("forget", func(t *testing.T) {
		b.Forget(a.addr())
		send(t, 60)
		expect(t, 60, nil)
	})
	t.Run("ambiguous_path", func(t *testing.T) {
		err := a.SetPath(kb, Path{Direct: b.addr(), Relay: func([][]byte) error { return nil }})
		if !errors.Is(err, ErrBadPath) {
			t.Fatalf("SetPath = %v, want ErrBadPath", err)
		}
	})
	t.Run("remove_peer", func(t *testing.T) {
		a.RemovePeer(kb)
		if err := a.Send([][]byte{dataPacket(1)}, epB); !errors.Is(err, ErrNoPath) {
			t.Fatalf("Send to a removed peer = %v, want ErrNoPath", err)
		}
		if _, err := a.ParseEndpoint(epB.DstToString()); err == nil {
			t.Error("ParseEndpoint still knows the removed peer")
		}
	})

	want := Stats{WireGuardOut: 10, RelayedOut: 5, ControlOut: 5, DropNoPath: 2, Held: 1}
	if diff := cmp.Diff(want, a.Stats()); diff != "" {
		t.Errorf("a stats (-want +got):\n%s", diff)
	}
	want = Stats{WireGuardIn: 10, ControlIn: 5, RelayedIn: 5}
	if diff := cmp.Diff(want, b.Stats()); diff != "" {
		t.Errorf("b stats (-want +got):\n%s", diff)
	}
}

func TestBindSendNoAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates")
	}
	a := openBind(t)
	// A socket nobody reads: a receiver would allocate, and AllocsPerRun counts globally.
	sink, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer sink.Close()
	kb := testKey(t).Public()
	if err := a.SetPath(kb, Path{Direct: sink.LocalAddr().(*net.UDPAddr).AddrPort()}); err != nil {
		t.Fatal(err)
	}
	ep, _ := a.endpoint(kb)
	bufs := [][]byte{dataPacket(1), dataPacket(2)}
	allocs := testing.AllocsPerRun(100, func() {
		if err := a.Send(bufs, ep); err != nil {
			t.Fatal(err)
		}
	})
	if allocs > 0 {
		t.Errorf("%v allocations per direct Send, want 0", allocs)
	}
}

func TestBindCloseUnblocksReceive(t *testing.T) {
	checkGoroutines(t)
	b := openBind(t)
	port := b.Port()
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	for range b.nfns {
		if err := recvWithin(t, b.errs, "receive function return"); !errors.Is(err, net.ErrClosed) {
			t.Errorf("receive function returned %v, want net.ErrClosed", err)
		}
	}
	if err := b.Close(); err != nil {
		t.Errorf("second Close = %v", err)
	}
	if err := b.SendControl([]byte{0xff}, netip.MustParseAddrPort("127.0.0.1:9")); !errors.Is(err, net.ErrClosed) {
		t.Errorf("SendControl on a closed Bind = %v, want net.ErrClosed", err)
	}
	// The device re-opens on the same port (BindUpdate); Port follows.
	fns, got, err := b.Open(port)
	if err != nil || got != port || b.Port() != port {
		t.Fatalf("re-Open(%d) = %d, %v; Port() = %d", port, got, err, b.Port())
	}
	if _, _, err := b.Open(0); !errors.Is(err, conn.ErrBindAlreadyOpen) {
		t.Errorf("Open while open = %v, want ErrBindAlreadyOpen", err)
	}
	errs := make(chan error, len(fns))
	for _, fn := range fns {
		go func() { errs <- receiveLoop(b.BatchSize(), fn, b.wg) }()
	}
	b.Close()
	for range fns {
		if err := recvWithin(t, errs, "receive function return"); !errors.Is(err, net.ErrClosed) {
			t.Errorf("receive function returned %v, want net.ErrClosed", err)
		}
	}
}

func TestParseEndpoint(t *testing.T) {
	b := NewBind(BindOptions{})
	peer := testKey(t).Public()
	pe, err := b.endpoint(peer)
	if err != nil {
		t.Fatal(err)
	}
	stranger := endpointID(testKey(t).Public()).String()
	tests := []struct {
		name    string
		in      string
		want    string // DstToString of the result
		peer    bool
		wantErr bool
	}{
		{name: "peer", in: pe.DstToString(), want: pe.DstToString(), peer: true},
		{name: "unknown_peer", in: stranger, wantErr: true},
		{name: "ipv4", in: "192.0.2.1:51820", want: "192.0.2.1:51820"},
		{name: "ipv6", in: "[2001:db8::1]:51820", want: "[2001:db8::1]:51820"},
		{name: "ipv4_mapped", in: "[::ffff:192.0.2.1]:51820", want: "192.0.2.1:51820"},
		{name: "key_text", in: peer.String(), wantErr: true},
		{name: "garbage", in: "not an endpoint", wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ep, err := b.ParseEndpoint(tc.in)
			if tc.wantErr {
				if err == nil {
					t.Fatalf("ParseEndpoint(%q) = %v, want an error", tc.in, ep.DstToString())
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if ep.DstToString() != tc.want {
				t.Errorf("DstToString = %q, want %q", ep.DstToString(), tc.want)
			}
			if _, isPeer := ep.(*peerEndpoint); isPeer != tc.peer || (tc.peer && ep != pe) {
				t.Errorf("got %T, want the peer's own endpoint: %v", ep, tc.peer)
			}
		})
	}
	if !discardPrefix.Contains(pe.DstIP()) {
		t.Errorf("peer address %v outside %v", pe.DstIP(), discardPrefix)
	}
}

func FuzzLooksLikeWireGuard(f *testing.F) {
	for _, s := range [][]byte{nil, {0xff}, wgPacket(1, 148, 0), wgPacket(2, 92, 9), wgPacket(3, 64, 0), wgPacket(4, 32, 0), []byte("d1:ad")} {
		f.Add(s)
	}
	sizes := map[byte]int{1: 148, 2: 92, 3: 64}
	f.Fuzz(func(t *testing.T, b []byte) {
		got := looksLikeWireGuard(b)
		// Reference: the device's own reading of the type, and its size rules.
		want := false
		if len(b) >= 4 {
			typ := uint32(b[0]) | uint32(b[1])<<8 | uint32(b[2])<<16 | uint32(b[3])<<24
			switch {
			case typ >= 1 && typ <= 3:
				want = len(b) == sizes[byte(typ)]
			case typ == 4:
				want = len(b) >= 32
			}
		}
		if got != want {
			t.Fatalf("looksLikeWireGuard(%x) = %v, want %v", b, got, want)
		}
		if got && isTestControl(b) {
			t.Fatalf("%x is both WireGuard and control", b)
		}
	})
}

func FuzzParseEndpoint(f *testing.F) {
	b := NewBind(BindOptions{})
	var peer key.Public
	for i := range peer {
		peer[i] = byte(i)
	}
	pe, err := b.endpoint(peer)
	if err != nil {
		f.Fatal(err)
	}
	for _, s := range []string{pe.DstToString(), "1.2.3.4:5", "[::1]:0", "[::ffff:1.2.3.4]:9", "[100::1]:1", "x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		ep, err := b.ParseEndpoint(s)
		if err != nil {
			return
		}
		again, err := b.ParseEndpoint(ep.DstToString())
		if err != nil {
			t.Fatalf("ParseEndpoint(%q) ok, but not its DstToString %q: %v", s, ep.DstToString(), err)
		}
		if again.DstToString() != ep.DstToString() {
			t.Fatalf("round trip %q → %q → %q", s, ep.DstToString(), again.DstToString())
		}
		if _, ok := ep.(*peerEndpoint); ok && ep != pe {
			t.Fatalf("ParseEndpoint(%q) made a new peer endpoint", s)
		}
	})
}

// checkGoroutines fails the test if it leaves goroutines behind. Register it first so
// that it runs after the test's other cleanups.
func checkGoroutines(t *testing.T) {
	t.Helper()
	before := runtime.NumGoroutine()
	t.Cleanup(func() {
		deadline := time.Now().Add(5 * time.Second)
		for {
			n := runtime.NumGoroutine()
			if n <= before {
				return
			}
			if time.Now().After(deadline) {
				buf := make([]byte, 1<<20)
				buf = buf[:runtime.Stack(buf, true)]
				t.Errorf("%d goroutines before, %d after:\n%s", before, n, buf)
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
	})
}

// BenchmarkDemux measures the receive wrapper's cost per datagram on a full batch of
// WireGuard data packets from a learned address (the fake inner receive costs nothing).
func BenchmarkDemux(b *testing.B) {
	bind := NewBind(BindOptions{IsControl: isTestControl, OnControl: func([]Control) {}})
	src := netip.MustParseAddrPort("192.0.2.1:51820")
	for i := range 100 { // a node with a hundred peers
		var k key.Public
		k[0], k[1] = byte(i), 1
		bind.Learn(netip.AddrPortFrom(src.Addr(), uint16(1000+i)), k)
	}
	var k key.Public
	bind.Learn(src, k)
	const batch = conn.IdealBatchSize
	bufs := make([][]byte, batch)
	sizes := make([]int, batch)
	eps := make([]conn.Endpoint, batch)
	std := &conn.StdNetEndpoint{AddrPort: src}
	for i := range bufs {
		bufs[i] = wgPacket(device.MessageTransportType, 1312, 0)
	}
	recv := bind.demux(func(bufs [][]byte, sizes []int, eps []conn.Endpoint) (int, error) {
		for i := range bufs {
			sizes[i] = len(bufs[i])
			eps[i] = std
		}
		return len(bufs), nil
	})
	b.ReportAllocs()
	for b.Loop() {
		recv(bufs, sizes, eps)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*batch), "ns/packet")
}

// TestDemuxBatch: the control messages of one receive
// call arrive together, in order, with their sources.
func TestDemuxBatch(t *testing.T) {
	var calls int
	var gotCtl [][]byte
	var gotSrc []netip.AddrPort
	b := NewBind(BindOptions{
		IsControl: isTestControl,
		OnControl: func(msgs []Control) {
			calls++
			for _, m := range msgs {
				gotCtl, gotSrc = append(gotCtl, bytes.Clone(m.Pkt)), append(gotSrc, m.Src)
			}
		},
	})
	s1, s2 := netip.MustParseAddrPort("192.0.2.1:1"), netip.MustParseAddrPort("[::ffff:192.0.2.2]:2")
	in := [][]byte{{0xff, 1}, dataPacket(1), {0xff, 2}}
	srcs := []netip.AddrPort{s1, s1, s2}
	recv := b.demux(func(bufs [][]byte, sizes []int, eps []conn.Endpoint) (int, error) {
		for i, p := range in {
			bufs[i] = append(bufs[i][:0], p...)
			sizes[i] = len(p)
			eps[i] = &conn.StdNetEndpoint{AddrPort: srcs[i]}
		}
		return len(in), nil
	})
	bufs := [][]byte{make([]byte, 2048), make([]byte, 2048), make([]byte, 2048)}
	if _, err := recv(bufs, make([]int, 3), make([]conn.Endpoint, 3)); err != nil {
		t.Fatal(err)
	}
	if calls != 1 {
		t.Errorf("%d calls, want one for the batch", calls)
	}
	if diff := cmp.Diff([][]byte{{0xff, 1}, {0xff, 2}}, gotCtl); diff != "" {
		t.Errorf("control messages (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]netip.AddrPort{s1, netip.MustParseAddrPort("192.0.2.2:2")}, gotSrc, cmp.Comparer(func(a, b netip.AddrPort) bool { return a == b })); diff != "" {
		t.Errorf("sources (-want +got):\n%s", diff)
	}
}

// TestHeldHandshakes: without a path, handshake messages are held and
// sent when one appears; a held initiation the peer's own initiation has
// overtaken is dropped (answering it replaced our handshake state).
func TestHeldHandshakes(t *testing.T) {
	peer := testKey(t).Public()
	response := wgPacket(device.MessageResponseType, device.MessageResponseSize, 5)
	initiation := wgPacket(device.MessageInitiationType, device.MessageInitiationSize, 6)
	tests := []struct {
		name      string
		held      []byte
		peerFirst bool // the peer's initiation arrives after ours was held
		want      []byte
	}{
		{"response_sent", response, false, response},
		{"response_sent_anyway", response, true, response},
		{"initiation_sent", initiation, false, initiation},
		{"stale_initiation_dropped", initiation, true, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			// No Self: no tie-break delay.
			b := NewBind(BindOptions{IsControl: isTestControl, OnControl: unwrapTestRelay(nil)})
			ep, err := b.endpoint(peer)
			if err != nil {
				t.Fatal(err)
			}
			b.open.Store(true)
			if err := b.Send([][]byte{dataPacket(1), tc.held}, ep); err != nil {
				t.Fatalf("Send without a path = %v, want the handshake held", err)
			}
			if tc.peerFirst {
				time.Sleep(time.Millisecond)
				receiveOne(t, b, relayFrame(peer, initiation))
			}
			var sent [][]byte
			if err := b.SetPath(peer, Path{Relay: recordTo(&sent)}); err != nil {
				t.Fatal(err)
			}
			var want [][]byte
			if tc.want != nil {
				want = [][]byte{tc.want}
			}
			if diff := cmp.Diff(want, sent); diff != "" {
				t.Errorf("sent when the path appeared (-want +got):\n%s", diff)
			}
		})
	}
}

// recordTo returns a Relay func that appends copies of what it sends to *to.
func recordTo(to *[][]byte) func([][]byte) error {
	return func(bufs [][]byte) error {
		for _, p := range bufs {
			*to = append(*to, bytes.Clone(p))
		}
		return nil
	}
}

// receiveOne has b's demultiplexer receive pkt, as if from the socket.
func receiveOne(t *testing.T, b *Bind, pkt []byte) {
	t.Helper()
	recv := b.demux(func(bufs [][]byte, sizes []int, eps []conn.Endpoint) (int, error) {
		sizes[0] = copy(bufs[0], pkt)
		eps[0] = &conn.StdNetEndpoint{AddrPort: netip.MustParseAddrPort("192.0.2.9:9")}
		return 1, nil
	})
	bufs := [][]byte{make([]byte, device.MaxMessageSize)}
	if _, err := recv(bufs, make([]int, 1), make([]conn.Endpoint, 1)); err != nil {
		t.Fatal(err)
	}
}

// TestHeldInitiationCrossedByRelayedOne: the peer's relayed initiation is
// what gives the node a path to it (OnControl sets one). Our held
// initiation then crosses the peer's and must be dropped, though the path
// was set before the Bind saw the peer's initiation.
func TestHeldInitiationCrossedByRelayedOne(t *testing.T) {
	peer := testKey(t).Public()
	var sent [][]byte
	relay := recordTo(&sent)
	var b *Bind
	unwrap := unwrapTestRelay(nil)
	b = NewBind(BindOptions{ // no Self: no tie-break delay
		IsControl: isTestControl,
		OnControl: func(msgs []Control) {
			unwrap(msgs)
			if err := b.SetPath(peer, Path{Relay: relay}); err != nil {
				t.Error(err)
			}
		},
	})
	ep, err := b.endpoint(peer)
	if err != nil {
		t.Fatal(err)
	}
	b.open.Store(true)
	initiation := wgPacket(device.MessageInitiationType, device.MessageInitiationSize, 6)
	if err := b.Send([][]byte{initiation}, ep); err != nil {
		t.Fatalf("Send without a path = %v, want the initiation held", err)
	}
	time.Sleep(time.Millisecond)
	receiveOne(t, b, relayFrame(peer, wgPacket(device.MessageInitiationType, device.MessageInitiationSize, 7)))
	if len(sent) != 0 {
		t.Errorf("sent %d held messages after the peer's initiation came in, want the stale one dropped", len(sent))
	}
	// A held response still goes when the path appears.
	b.SetPath(peer, Path{})
	response := wgPacket(device.MessageResponseType, device.MessageResponseSize, 8)
	if err := b.Send([][]byte{response}, ep); err != nil {
		t.Fatal(err)
	}
	receiveOne(t, b, relayFrame(peer, dataPacket(9)))
	if len(sent) != 1 || !bytes.Equal(sent[0], response) {
		t.Errorf("sent %x, want the held response", sent)
	}
}

// TestResendOnPathChange: a handshake message sent just before the path
// changes goes again on the new path, unless it is old, or an initiation
// the peer's own initiation has crossed.
func TestResendOnPathChange(t *testing.T) {
	peer := testKey(t).Public()
	response := wgPacket(device.MessageResponseType, device.MessageResponseSize, 5)
	initiation := wgPacket(device.MessageInitiationType, device.MessageInitiationSize, 6)
	tests := []struct {
		name    string
		pkt     []byte
		age     time.Duration
		crossed bool // the peer's initiation arrived after ours
		want    bool
	}{
		{"response", response, 0, false, true},
		{"initiation", initiation, 0, false, true},
		{"old_response", response, resendWindow + time.Second, false, false},
		{"crossed_initiation", initiation, 0, true, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := NewBind(BindOptions{IsControl: isTestControl, OnControl: unwrapTestRelay(nil)})
			ep, _ := b.endpoint(peer)
			b.open.Store(true)
			var first, second [][]byte
			b.SetPath(peer, Path{Relay: recordTo(&first)})
			if err := b.Send([][]byte{tc.pkt}, ep); err != nil {
				t.Fatal(err)
			}
			if s := ep.sent.Load(); s != nil {
				s.at -= int64(tc.age)
			}
			if tc.crossed {
				time.Sleep(time.Millisecond)
				receiveOne(t, b, relayFrame(peer, wgPacket(device.MessageInitiationType, device.MessageInitiationSize, 7)))
			}
			b.SetPath(peer, Path{Relay: recordTo(&second)})
			if got := len(second) == 1 && bytes.Equal(second[0], tc.pkt); got != tc.want || len(second) > 1 {
				t.Errorf("sent on the new path: %x, want it again: %v", second, tc.want)
			}
		})
	}
}

// TestBindLastDirect: WireGuard packets from an address learned for a
// peer, and only those, say when its direct path last carried traffic.
func TestBindLastDirect(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := NewBind(BindOptions{IsControl: isTestControl, OnControl: unwrapTestRelay(func([]byte, netip.AddrPort) {})})
		peer := testKey(t).Public()
		learned := netip.MustParseAddrPort("192.0.2.1:1000")
		other := netip.MustParseAddrPort("192.0.2.2:2000")
		if err := b.Learn(learned, peer); err != nil {
			t.Fatal(err)
		}
		receive := func(pkt []byte, src netip.AddrPort) {
			recv := b.demux(func(bufs [][]byte, sizes []int, eps []conn.Endpoint) (int, error) {
				sizes[0] = copy(bufs[0], pkt)
				eps[0] = &conn.StdNetEndpoint{AddrPort: src}
				return 1, nil
			})
			if _, err := recv([][]byte{make([]byte, 2048)}, make([]int, 1), make([]conn.Endpoint, 1)); err != nil {
				t.Fatal(err)
			}
		}
		receive(dataPacket(1), other)
		receive(relayFrame(peer, dataPacket(2)), other)
		receive([]byte{0xff, 'h', 'i'}, learned)
		if got := b.LastDirect(peer); !got.IsZero() {
			t.Fatalf("LastDirect = %v after no WireGuard packet from the learned address", got)
		}
		time.Sleep(time.Minute)
		receive(dataPacket(3), learned)
		if got := b.LastDirect(peer); !got.Equal(time.Now()) {
			t.Errorf("LastDirect = %v, want now (%v)", got, time.Now())
		}
	})
}
