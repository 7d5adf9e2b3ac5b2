package e2e

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/whnet/wh/config"
	"github.com/whnet/wh/e2e/lab"
	"github.com/whnet/wh/orchid"
)

// TestNetwork is issue 4's acceptance test: a boot node and three nodes
// on public hosts; every node pings every other over IPv4 and ORCHID IPv6;
// wg show lists the peers; reload with a fourth node makes it reachable
// while a TCP stream between two others keeps flowing; a node that is not
// trusted reaches nobody; down removes the interface and the socket.
func TestNetwork(t *testing.T) {
	l := newLab(t, "wg", "iperf3")
	const wb = 8
	boot := newMember(t, l, "boot", l.Public("boot"), wb)
	a := newMember(t, l, "a", l.Public("a"), wb)
	b := newMember(t, l, "b", l.Public("b"), wb)
	c := newMember(t, l, "c", l.Public("c"), wb)
	d := newMember(t, l, "d", l.Public("d"), wb)
	x := newMember(t, l, "x", l.Public("x"), wb) // valid key, not trusted

	base := fmt.Sprintf("name e2e\nsubnet 10.77.0.0/24\nworkbit %d\nboot %s %s:62096\n", wb, boot.pub(), boot.host.Addr)
	for _, m := range []*member{a, b, c} {
		base += fmt.Sprintf("trust %s %s\n", m.name, m.pub())
	}
	conf := filepath.Join(l.Dir(), "net.conf")
	writeFile(t, conf, base)
	// x believes it belongs; nobody else does.
	xconf := filepath.Join(l.Dir(), "x.conf")
	writeFile(t, xconf, base+fmt.Sprintf("trust x %s\n", x.pub()))

	boot.up(t, conf, "listen-port", "62096")
	upAll(t, conf, []*member{a, b, c}, nil)
	x.up(t, xconf)

	n, err := config.Load(conf)
	if err != nil {
		t.Fatal(err)
	}
	addr4 := func(m *member) string { nd, _ := n.Node(m.pub()); return nd.IP.String() }
	addr6 := func(m *member) string { return orchid.Addr(m.pub(), n.Namespace).String() }

	start := time.Now()
	for _, from := range []*member{a, b, c} {
		for _, to := range []*member{a, b, c} {
			if from == to {
				continue
			}
			if err := ping(t, from, addr4(to), 30*time.Second); err != nil {
				t.Fatalf("IPv4: %v", err)
			}
			if err := ping(t, from, addr6(to), 10*time.Second); err != nil {
				t.Fatalf("ORCHID IPv6: %v", err)
			}
		}
	}
	t.Logf("full mesh over IPv4 and IPv6 after %v", time.Since(start).Round(time.Millisecond))

	// wg show reads the device through its UAPI socket.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := a.host.Run(ctx, "wg", "show", a.iface)
	if err != nil {
		t.Fatalf("wg show: %v: %s", err, out)
	}
	for _, m := range []*member{b, c} {
		if !strings.Contains(out, m.pub().Std()) {
			t.Errorf("wg show %s does not list %s:\n%s", a.iface, m.name, out)
		}
	}

	// wh show --json says the paths are direct, with the peers' addresses.
	st, err := a.status(t)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range st.Peers {
		if p.Path != "direct" {
			t.Errorf("a's peer %s: path %q, want direct (%+v)", p.Hostname, p.Path, p)
		}
	}
	if st.Network != "e2e" || len(st.Peers) != 2 || len(st.Addresses) != 2 {
		t.Errorf("status = %+v", st)
	}

	// The untrusted node reaches no overlay address.
	if err := ping(t, x, addr4(a), 3*time.Second); err == nil {
		t.Errorf("untrusted node x reached a")
	}

	// Reload with d added, while a TCP stream from a to b flows.
	b.host.Start("iperf3", nil, "iperf3", "-s", "-1", "-B", addr4(b))
	time.Sleep(300 * time.Millisecond)
	stream := a.host.Start("iperf3c", nil, "iperf3", "-c", addr4(b), "-t", "6", "-b", "20M")
	time.Sleep(1500 * time.Millisecond)
	withD := base + fmt.Sprintf("trust %s %s\n", d.name, d.pub())
	writeFile(t, conf, withD)
	d.up(t, conf)
	for _, m := range []*member{a, b, c} {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if out, err := m.wh(ctx, "reload", m.iface); err != nil {
			t.Fatalf("%s: wh reload: %v: %s", m.name, err, out)
		}
	}
	if err := ping(t, a, "10.77.0.5", 30*time.Second); err != nil {
		t.Fatalf("after reload, a cannot reach d: %v", err)
	}
	if err := lab.Eventually(20*time.Second, 200*time.Millisecond, func() error {
		if !stream.Exited() {
			return fmt.Errorf("iperf3 still running")
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if out := stream.Output(); stream.Cmd.ProcessState.ExitCode() != 0 || !strings.Contains(out, "receiver") {
		t.Fatalf("the TCP stream across the reload failed:\n%s", out)
	}

	// down removes the interface, the control socket and the daemon (the
	// others go down at the test's end).
	c.down(t)
}
