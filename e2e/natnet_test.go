package e2e

import (
	"fmt"
	"path/filepath"
	"slices"
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
	boots int      // the first boots of order are boot nodes
	conf  string
	netw  *config.Network
}

func newNATNet(t *testing.T, l *lab.Lab) *natNet {
	return &natNet{t: t, l: l, nodes: map[string]*member{}}
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
	n.boots = boots
	var ms []*member
	for _, m := range n.order {
		ms = append(ms, n.nodes[m])
	}
	upAll(t, n.conf, ms, n.args)
}

// args are the extra wh up arguments of member m.
func (n *natNet) args(m *member) []string {
	args := []string{"--log-level", "info"}
	if slices.Index(n.order, m.name) < n.boots {
		args = append(args, "listen-port", "62096")
	}
	return args
}

// restart takes member m down and up again (same key, a new port).
func (n *natNet) restart(name string) {
	m := n.nodes[name]
	m.down(n.t)
	m.up(n.t, n.conf, n.args(m)...)
}

// ip returns member m's overlay IPv4 address.
func (n *natNet) ip(m string) string {
	nd, _ := n.netw.Node(n.nodes[m].pub())
	return nd.IP.String()
}
