package netsim_test

import (
	"testing"
	"time"

	"github.com/whnet/wh/netsim"
)

// BenchmarkThroughput measures packets per second from one conn to
// another, 64 in flight at a time, on the paths the DHT uses.
//
//	go test -run '^$' -bench Throughput ./netsim/
func BenchmarkThroughput(b *testing.B) {
	tests := []struct {
		name    string
		kind    netsim.NATKind // of the sender's router; None: a public sender
		cgnat   bool           // a second router of the same kind behind the first
		latency time.Duration  // real time: exercises the delivery timers
	}{
		{name: "public", kind: netsim.None},
		{name: "restricted_nat", kind: netsim.Restricted},
		{name: "symmetric_nat", kind: netsim.Symmetric},
		{name: "cgnat", kind: netsim.Restricted, cgnat: true},
		{name: "restricted_nat_latency_1us", kind: netsim.Restricted, latency: time.Microsecond},
	}
	for _, tc := range tests {
		b.Run(tc.name, func(b *testing.B) {
			n := netsim.New(netsim.Options{Latency: tc.latency, QueueLen: 64})
			dst, err := n.AddHost(ip("203.0.113.1")).ListenUDP(7)
			if err != nil {
				b.Fatal(err)
			}
			var srcHost *netsim.Host
			switch {
			case tc.kind == netsim.None:
				srcHost = n.AddHost(ip("203.0.113.2"))
			case tc.cgnat:
				cgn := n.AddNAT(tc.kind, ip("198.51.100.1"), prefix("100.64.0.0/10"))
				srcHost = cgn.AddNAT(tc.kind, ip("100.64.0.2"), prefix("192.168.1.0/24")).AddHost(ip("192.168.1.10"))
			default:
				srcHost = n.AddNAT(tc.kind, ip("198.51.100.1"), prefix("192.168.1.0/24")).AddHost(ip("192.168.1.10"))
			}
			src, err := srcHost.ListenUDP(4000)
			if err != nil {
				b.Fatal(err)
			}
			payload := make([]byte, 1200)
			buf := make([]byte, 1500)
			to := dst.LocalAddrPort()
			const window = 64
			b.SetBytes(int64(len(payload)))
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				if _, err := src.WriteToUDPAddrPort(payload, to); err != nil {
					b.Fatal(err)
				}
				if i%window == window-1 {
					for range window {
						if _, _, err := dst.ReadFromUDPAddrPort(buf); err != nil {
							b.Fatal(err)
						}
					}
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "pkts/s")
			if s := n.Stats(); s.Delivered+s.Lost+s.Filtered+s.Overflow+s.Unreachable != s.Sent || s.Delivered != s.Sent {
				b.Errorf("stats %+v: want every packet delivered", s)
			}
		})
	}
}
