package e2e

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/whnet/wh/config"
	"github.com/whnet/wh/e2e/lab"
)

// natNet is a network of real wh processes for the NAT tests: the first
// nodes added are boot nodes on port 62096, the others trusted members.
type natNet struct {
	t     *testing.T
	l     *lab.Lab
	nodes map[string]*member
	order []string // in the order added
	procs map[string]*lab.Proc
	conf  string
	netw  *config.Network
}

func newNATNet(t *testing.T, l *lab.Lab) *natNet {
	return &natNet{t: t, l: l, nodes: map[string]*member{}, procs: map[string]*lab.Proc{}}
}

// add makes a member on h.
func (n *natNet) add(name string, h *lab.Host) {
	n.nodes[name] = newMember(n.t, n.l, name, h, 8)
	n.order = append(n.order, name)
}

// start writes the config (the first boots members as boot nodes, every
// other one trusted), starts every member and waits until each is up.
func (n *natNet) start(name, subnet string, boots int) {
	t := n.t
	var b strings.Builder
	fmt.Fprintf(&b, "name %s\nsubnet %s\n", name, subnet)
	for _, m := range n.order[:boots] {
		fmt.Fprintf(&b, "boot %s %s %s:62096\n", m, n.nodes[m].pub(), n.nodes[m].host.Addr)
	}
	for _, m := range n.order[boots:] {
		fmt.Fprintf(&b, "trust %s %s\n", m, n.nodes[m].pub())
	}
	n.conf = filepath.Join(n.l.Dir(), name+".conf")
	writeFile(t, n.conf, b.String())
	netw, err := config.Load(n.conf)
	if err != nil {
		t.Fatal(err)
	}
	n.netw = netw
	for i, m := range n.order {
		args := []string{"--log-level", "info"}
		if i < boots {
			args = append(args, "listen-port", "62096")
		}
		n.procs[m] = n.nodes[m].up(t, n.conf, args...)
	}
	for _, m := range n.order {
		n.nodes[m].waitUp(t, n.procs[m])
	}
}

// restart stops member m and starts it again (same key, a new port).
func (n *natNet) restart(m string) {
	n.procs[m].Stop()
	n.procs[m] = n.nodes[m].up(n.t, n.conf, "--log-level", "info")
	n.nodes[m].waitUp(n.t, n.procs[m])
}

// ip returns member m's overlay IPv4 address.
func (n *natNet) ip(m string) string {
	nd, _ := n.netw.Node(n.nodes[m].pub())
	return nd.IP.String()
}
