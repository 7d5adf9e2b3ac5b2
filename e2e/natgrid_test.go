package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"testing"
	"text/tabwriter"
	"time"

	"github.com/whnet/wh/e2e/lab"
	"github.com/whnet/wh/node"
)

// The NAT grid: one node placement per kind, two nodes of each kind.
//
//	public      a host on the internet
//	full        behind a full-cone NAT (MASQUERADE + DNAT of all inbound UDP)
//	restricted  behind MASQUERADE (endpoint-independent mapping, port-restricted filtering)
//	symmetric   behind MASQUERADE --random (a new port per destination)
//	upnp        behind restricted NAT with miniupnpd (UPnP IGD, NAT-PMP, PCP)
//	samelan     two nodes behind one restricted router
//	cgnat       behind restricted NAT behind restricted NAT
//	firewall    a public address behind a stateful firewall: no NAT, but
//	            only hosts it has sent to reach it (beyond the list)
//
// A boot node and two relay nodes sit on the internet (headless).
var gridKinds = []string{"public", "full", "restricted", "symmetric", "upnp", "samelan", "cgnat", "firewall"}

// mustBeDirect says which pairs must end on a direct path (issue 5).
func mustBeDirect(a, b string) bool {
	easy := func(k string) bool { return k == "public" || k == "full" || k == "upnp" }
	if easy(a) || easy(b) {
		return true
	}
	// A firewall filters as a restricted NAT does, without translating.
	filters := func(k string) bool { return k == "restricted" || k == "firewall" }
	switch {
	case a == "samelan" && b == "samelan":
		return true
	case filters(a) && (filters(b) || b == "cgnat" || b == "samelan"),
		filters(b) && (a == "cgnat" || a == "samelan"):
		return true
	}
	return false
}

type gridResult struct {
	A, B       string  `json:"-"`
	Pair       string  `json:"pair"`
	Path       string  `json:"path"` // direct, relay or fail
	Relay      string  `json:"relay,omitempty"`
	FirstPing  float64 `json:"first_ping_s"`
	ToDirect   float64 `json:"to_direct_s,omitempty"`
	WantDirect bool    `json:"want_direct"`
	Why        string  `json:"why,omitempty"`
}

func TestNATGrid(t *testing.T) {
	if testing.Short() {
		t.Skip("the NAT grid takes a few minutes")
	}
	l := newLab(t, "conntrack")
	net := newNATNet(t, l)
	add, nodes, ip := net.add, net.nodes, net.ip
	infra := []string{"boot", "relay1", "relay2"}
	for _, n := range infra {
		add(n, l.Public(n))
	}
	routers := map[string]*lab.Router{}
	for _, k := range gridKinds {
		for i := 1; i <= 2; i++ {
			name := fmt.Sprintf("%s%d", k[:3], i)
			kinds := map[string]lab.Kind{"full": lab.FullCone, "restricted": lab.Restricted, "symmetric": lab.Symmetric, "upnp": lab.UPnP}
			switch k {
			case "public":
				add(name, l.Public(name))
			case "firewall":
				add(name, l.Firewalled(name))
			case "full", "restricted", "symmetric", "upnp":
				r := l.NAT(name+"r", kinds[k])
				routers[name] = r
				add(name, r.Add(name))
			case "samelan":
				r, ok := routers["sam1"]
				if !ok {
					r = l.NAT("samr", lab.Restricted)
				}
				routers[name] = r
				add(name, r.Add(name))
			case "cgnat":
				r := l.NAT(name+"o", lab.Restricted).NAT(name+"i", lab.Restricted)
				routers[name] = r
				add(name, r.Add(name))
			}
		}
	}

	// One config for all: the infrastructure as boot nodes, every node trusted.
	net.start("grid", "10.90.0.0/24", len(infra))

	var results []*gridResult
	for i, ka := range gridKinds {
		for _, kb := range gridKinds[i:] {
			a, bn := ka[:3]+"1", kb[:3]+"2"
			r := &gridResult{A: a, B: bn, Pair: ka + "↔" + kb, WantDirect: mustBeDirect(ka, kb), Path: "fail"}
			results = append(results, r)
			start := time.Now()
			if err := ping(t, nodes[a], ip(bn), 30*time.Second); err != nil {
				r.Why = err.Error()
				continue
			}
			r.FirstPing = time.Since(start).Seconds()
			deadline := time.Now().Add(20 * time.Second)
			for {
				p, ok := peerStatus(t, nodes[a], bn)
				if ok {
					r.Path, r.Relay, r.Why = string(p.Path), p.Relay, p.Why
				}
				if r.Path == "direct" || !r.WantDirect || time.Now().After(deadline) {
					break
				}
				time.Sleep(250 * time.Millisecond)
			}
			if r.Path == "direct" {
				r.ToDirect = time.Since(start).Seconds()
			}
			if r.Path == "connecting" || r.Path == "offline" {
				r.Path = "fail"
			}
		}
	}

	var tab strings.Builder
	tw := tabwriter.NewWriter(&tab, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "PAIR\tPATH\tFIRST PING\tTO DIRECT\tMUST BE DIRECT\tRELAY / WHY")
	for _, r := range results {
		fmt.Fprintf(tw, "%s\t%s\t%.2fs\t%s\t%v\t%s\n", r.Pair, r.Path, r.FirstPing, secs(r.ToDirect), r.WantDirect, strings.TrimSpace(r.Relay+" "+r.Why))
	}
	tw.Flush()
	js, _ := json.MarshalIndent(results, "", "  ")
	t.Logf("NAT grid:\n%s\n%s", tab.String(), js)
	if out := os.Getenv("WH_GRID_JSON"); out != "" {
		os.WriteFile(out, js, 0o644)
	}
	for _, r := range results {
		switch {
		case r.Path == "fail":
			t.Errorf("%s: no path: %s", r.Pair, r.Why)
		case r.WantDirect && r.Path != "direct":
			t.Errorf("%s: path %s, must be direct (%s)", r.Pair, r.Path, r.Why)
			for _, n := range []string{r.A, r.B} {
				out, _ := nodes[n].wh(context.Background(), "netcheck", nodes[n].iface)
				t.Logf("wh netcheck on %s:\n%s", n, out)
			}
		}
	}
	if t.Failed() {
		return
	}

	// Fault: kill the relay a relayed pair uses; traffic resumes through
	// another within 10 s.
	t.Run("relay_failover", func(t *testing.T) {
		a, bn := "sym1", "sym2"
		p, ok := peerStatus(t, nodes[a], bn)
		if !ok || p.Path != "relay" {
			t.Skipf("%s↔%s is not relayed (%+v): nothing to fail over", a, bn, p)
		}
		victim := p.Relay
		relay, known := nodes[victim]
		if !known || victim == a || victim == bn {
			t.Skipf("relay %q is not a process of this test", victim)
		}
		relay.kill(t)
		start := time.Now()
		if err := ping(t, nodes[a], ip(bn), 10*time.Second); err != nil {
			t.Fatalf("after killing relay %s: %v", victim, err)
		}
		p2, _ := peerStatus(t, nodes[a], bn)
		t.Logf("killed relay %s; traffic back after %v, now %s via %s", victim, time.Since(start).Round(time.Millisecond), p2.Path, p2.Relay)
	})

	// Fault: flush the router's conntrack table under a direct pair; the
	// direct path comes back within 30 s.
	t.Run("conntrack_flush", func(t *testing.T) {
		a, bn := "res1", "res2"
		if out, err := routers[a].Run(context.Background(), "conntrack", "-F"); err != nil {
			t.Fatalf("conntrack -F: %v\n%s", err, out)
		}
		start := time.Now()
		err := lab.Eventually(30*time.Second, 250*time.Millisecond, func() error {
			if err := ping(t, nodes[a], ip(bn), time.Second); err != nil {
				return err
			}
			if p, _ := peerStatus(t, nodes[a], bn); p.Path != "direct" {
				return fmt.Errorf("path %s", p.Path)
			}
			return nil
		})
		if err != nil {
			t.Fatalf("after conntrack -F: %v", err)
		}
		t.Logf("direct again %v after the flush", time.Since(start).Round(time.Millisecond))
	})

	// Fault: a peer restarts (same key, a new port); traffic resumes, on
	// the path its kinds allow, within 30 s.
	t.Run("peer_restart", func(t *testing.T) {
		for _, pair := range [][2]string{{"res1", "res2"}, {"sym1", "sym2"}} {
			a, bn := pair[0], pair[1]
			start := time.Now()
			net.restart(bn)
			if err := ping(t, nodes[a], ip(bn), 30*time.Second); err != nil {
				t.Fatalf("%s restarted: %v", bn, err)
			}
			p, _ := peerStatus(t, nodes[a], bn)
			t.Logf("%s restarted: %s reaches it again after %v, %s %s%s", bn, a, time.Since(start).Round(time.Millisecond), p.Path, p.Endpoint, p.Relay)
			if want := mustBeDirect(kindOf(a), kindOf(bn)); want && p.Path != "direct" {
				t.Errorf("%s↔%s: path %s after the restart, must be direct", a, bn, p.Path)
			}
		}
	})
}

// kindOf returns the grid kind of a node name (its first three letters).
func kindOf(name string) string {
	for _, k := range gridKinds {
		if strings.HasPrefix(name, k[:3]) {
			return k
		}
	}
	return ""
}

func secs(s float64) string {
	if s == 0 {
		return "-"
	}
	return fmt.Sprintf("%.2fs", s)
}

// peerStatus reads m's view of peer name from wh show --json.
func peerStatus(t *testing.T, m *member, name string) (node.PeerStatus, bool) {
	st, err := m.status(t)
	if err != nil {
		return node.PeerStatus{}, false
	}
	for _, p := range st.Peers {
		if p.Hostname == name {
			return p, true
		}
	}
	return node.PeerStatus{}, false
}
