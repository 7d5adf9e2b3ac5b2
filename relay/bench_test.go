package relay

import (
	"context"
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/whnet/wh/dht"
	"github.com/whnet/wh/key"
	"github.com/whnet/wh/wire"
)

// memNode is one node of memNet: its codec and its control-message
// handler.
type memNode struct {
	net    memNet
	codec  *wire.Codec
	addr   netip.AddrPort
	handle func(from key.Public, src netip.AddrPort, m wire.Message) bool
	buf    []byte // for Seal; the benchmark sends from one goroutine
}

// memNet delivers each packet synchronously: Send seals it, and the
// receiver opens it and handles it before Send returns.
type memNet map[netip.AddrPort]*memNode

func (n *memNode) Send(to key.Public, addr netip.AddrPort, m wire.Message) error {
	pkt, err := n.codec.Seal(n.buf[:0], to, m)
	if err != nil {
		return err
	}
	dst := n.net[addr]
	if dst == nil {
		return fmt.Errorf("no node at %v", addr)
	}
	from, msg, err := dst.codec.Open(pkt)
	if err != nil {
		return err
	}
	dst.handle(from, n.addr, msg)
	return nil
}

// BenchmarkRelay sends WireGuard packets from a Client through a Server to
// a Client, with real codecs at every hop: two seals and two opens per
// packet, as on the wire.
func BenchmarkRelay(b *testing.B) {
	for _, size := range []int{64, 1312} {
		b.Run(fmt.Sprintf("payload=%d", size), func(b *testing.B) {
			net := memNet{}
			add := func(i byte) *memNode {
				n := &memNode{
					net:   net,
					codec: wire.NewCodec(newPrivate(b), "bench", 0),
					addr:  netip.AddrPortFrom(netip.AddrFrom4([4]byte{192, 0, 2, i}), 51820),
					buf:   make([]byte, 0, wire.MaxRelayPacketSize),
				}
				net[n.addr] = n
				return n
			}
			a, r, z := add(1), add(2), add(3)
			srv := newTestServer(b, ServerConfig{
				Send: r.Send,
				Locate: func(k key.Public) (netip.AddrPort, bool) {
					if k == z.codec.Public() {
						return z.addr, true
					}
					return netip.AddrPort{}, false
				},
				PerSource: Limit{Packets: 1e12, Bytes: 1e15},
				Total:     Limit{Packets: 1e12, Bytes: 1e15},
			})
			r.handle = srv.Handle
			delivered := 0
			newClient := func(n *memNode) *Client {
				c, err := NewClient(ClientConfig{
					Send: n.Send,
					Ping: func(context.Context, key.Public, netip.AddrPort) (time.Duration, error) {
						return time.Millisecond, nil
					},
				})
				if err != nil {
					b.Fatal(err)
				}
				n.handle = func(_ key.Public, _ netip.AddrPort, m wire.Message) bool {
					_, ok := m.(wire.Relayed)
					if ok {
						delivered++
					}
					return ok
				}
				return c
			}
			ca := newClient(a)
			newClient(z)
			ca.SetCandidates(z.codec.Public(), []dht.Contact{{Key: r.codec.Public(), Addr: r.addr}})

			bufs := [][]byte{wgData(size, 0)}
			peer := z.codec.Public()
			b.SetBytes(int64(size))
			b.ReportAllocs()
			for b.Loop() {
				if err := ca.Send(peer, bufs); err != nil {
					b.Fatal(err)
				}
			}
			if delivered != b.N {
				b.Fatalf("delivered %d of %d", delivered, b.N)
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "pkt/s")
		})
	}
}
