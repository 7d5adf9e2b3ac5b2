package e2e

import (
	"fmt"
	"testing"
	"time"

	"github.com/whnet/wh/e2e/lab"
)

// TestNATLossy: with every host dropping 3% of the packets it sends and
// 3% of those it receives (about 6% lost end to end, 12% through a
// relay), two nodes behind restricted NATs still reach each other and
// end on a direct path, and two behind symmetric NATs reach each other
// through a relay.
func TestNATLossy(t *testing.T) {
	if testing.Short() {
		t.Skip("a lossy NAT lab takes a while")
	}
	const loss = 0.03
	l := newLab(t)
	net := newNATNet(t, l)
	add := func(name string, h *lab.Host) {
		h.Lossy(loss)
		net.add(name, h)
	}
	add("boot", l.Public("boot"))
	add("relay", l.Public("relay"))
	for _, n := range []string{"res1", "res2"} {
		add(n, l.NAT(n+"r", lab.Restricted).Add(n))
	}
	for _, n := range []string{"sym1", "sym2"} {
		add(n, l.NAT(n+"r", lab.Symmetric).Add(n))
	}
	net.start("lossy", "10.91.0.0/24", 2)
	nodes, ip := net.nodes, net.ip

	for _, tc := range []struct {
		a, b, want string
	}{{"res1", "res2", "direct"}, {"sym1", "sym2", "relay"}} {
		start := time.Now()
		if err := ping(t, nodes[tc.a], ip(tc.b), 30*time.Second); err != nil {
			t.Fatalf("%s→%s with %.0f%% loss per host and direction: %v", tc.a, tc.b, 100*loss, err)
		}
		first := time.Since(start)
		err := lab.Eventually(30*time.Second, 250*time.Millisecond, func() error {
			if p, _ := peerStatus(t, nodes[tc.a], tc.b); string(p.Path) != tc.want {
				return fmt.Errorf("path %s (%s), want %s", p.Path, p.Why, tc.want)
			}
			return nil
		})
		if err != nil {
			t.Errorf("%s→%s: %v", tc.a, tc.b, err)
			continue
		}
		t.Logf("%s→%s: first ping after %v, %s after %v", tc.a, tc.b, first.Round(time.Millisecond), tc.want, time.Since(start).Round(time.Millisecond))
	}
}
