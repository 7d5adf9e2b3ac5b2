package tunnel

import (
	"bytes"
	"net/netip"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/whnet/wh/netsim"
)

// TestBindOnNetsim: a Bind whose sockets are a netsim host's
// (BindOptions.UDP) demultiplexes as on real UDP: a control message from
// behind a NAT arrives from the NAT's address, the answer to that address
// gets back in, and WireGuard from a learned address carries the peer's
// endpoint.
func TestBindOnNetsim(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		in := netsim.New(netsim.Options{Seed: 1, Latency: 10 * time.Millisecond})
		nat := in.AddNAT(netsim.Restricted, netip.MustParseAddr("198.51.100.1"), netip.MustParsePrefix("192.168.1.0/24"))
		ha := nat.AddHost(netip.MustParseAddr("192.168.1.10"))
		hb := in.AddHost(netip.MustParseAddr("203.0.113.1"))
		open := func(h *netsim.Host) *testBind {
			tb := &testBind{wg: make(chan received, 16), ctl: make(chan control, 16)}
			tb.Bind = NewBind(BindOptions{
				IsControl: isTestControl,
				OnControl: unwrapTestRelay(func(p []byte, src netip.AddrPort) { tb.ctl <- control{bytes.Clone(p), src} }),
				Logger:    testLogger(t),
				UDP:       netsim.NewBind(h),
			})
			fns, _, err := tb.Open(51820)
			if err != nil {
				t.Fatal(err)
			}
			var wg sync.WaitGroup
			for _, fn := range fns {
				wg.Go(func() { receiveLoop(tb.BatchSize(), fn, tb.wg) })
			}
			t.Cleanup(func() { tb.Close(); wg.Wait() })
			return tb
		}
		a, b := open(ha), open(hb)
		bAddr := netip.MustParseAddrPort("203.0.113.1:51820")

		if err := a.SendControl([]byte("\xffhello"), bAddr); err != nil {
			t.Fatal(err)
		}
		got := recvWithin(t, b.ctl, "control message at b")
		if want := netip.MustParseAddrPort("198.51.100.1:51820"); got.src != want {
			t.Fatalf("control from %v, want the NAT's %v", got.src, want)
		}
		if err := b.SendControl([]byte("\xffback"), got.src); err != nil {
			t.Fatal(err)
		}
		if back := recvWithin(t, a.ctl, "answer at a"); string(back.pkt) != "\xffback" || back.src != bAddr {
			t.Errorf("a got %q from %v", back.pkt, back.src)
		}

		peer := testKey(t).Public()
		if err := b.Learn(got.src, peer); err != nil {
			t.Fatal(err)
		}
		ep, err := a.ParseEndpoint(bAddr.String())
		if err != nil {
			t.Fatal(err)
		}
		if err := a.Send([][]byte{dataPacket(7)}, ep); err != nil {
			t.Fatal(err)
		}
		wg := recvWithin(t, b.wg, "WireGuard packet at b")
		pe, ok := wg.ep.(*peerEndpoint)
		if !ok || pe.key != peer || !bytes.Equal(wg.pkt, dataPacket(7)) {
			t.Errorf("b's device got %x from %#v, want the packet from peer %s's endpoint", wg.pkt, wg.ep, peer.Short(8))
		}
	})
}
