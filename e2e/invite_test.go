package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/whnet/wh/config"
	"github.com/whnet/wh/e2e/lab"
	"github.com/whnet/wh/invite"
	"github.com/whnet/wh/key"
	"github.com/whnet/wh/orchid"
)

// invNode is a member of the invitation test with its own copy of the
// config and its own state directory.
type invNode struct {
	*member
	conf string
}

func newInvNode(t *testing.T, l *lab.Lab, name string, h *lab.Host) *invNode {
	m := newMember(t, l, name, h, 8)
	m.env = []string{"WH_STATE_DIR=" + filepath.Join(l.Dir(), name+"-state")}
	return &invNode{member: m, conf: filepath.Join(l.Dir(), name+".conf")}
}

// start runs wh up on n's config as the README says, detached, with its
// key, or without one and with the invitation in WH_INVITATION.
func (n *invNode) start(t *testing.T, invitation string) {
	t.Helper()
	if invitation != "" {
		n.keyf = ""
		n.env = append(n.env, "WH_INVITATION="+invitation)
	}
	n.up(t, n.conf)
}

// restart takes n down and up again.
func (n *invNode) restart(t *testing.T) {
	t.Helper()
	n.down(t)
	n.up(t, n.conf)
}

// TestInvitation is the invitation flow as a new user runs it, with every
// machine behind its own NAT: wh invite on member a, the updated config
// copied to member b and reloaded there, then wh up with the invitation
// on a new machine, which reaches both members over IPv4 and ORCHID. A
// second machine with the same invitation is refused and reaches nobody;
// a restart and a reload of a keep the claim; an expired alias refuses;
// wh auth claims a slot from a running node.
func TestInvitation(t *testing.T) {
	l := newLab(t)
	bootH := l.Public("boot")
	hosts := map[string]*lab.Host{}
	for _, name := range []string{"a", "b", "c", "d", "e"} {
		hosts[name] = l.NAT("r"+name, lab.Restricted).Add(name)
	}
	boot := newInvNode(t, l, "boot", bootH)
	nodes := map[string]*invNode{}
	for name, h := range hosts {
		nodes[name] = newInvNode(t, l, name, h)
	}
	a, b := nodes["a"], nodes["b"]
	conf := fmt.Sprintf("name inv\nsubnet 10.77.0.0/24\nboot boot %s %s:62096\ntrust a %s\ntrust b %s\n",
		boot.pub(), bootH.Addr, a.pub(), b.pub())
	for _, n := range []*invNode{boot, a, b} {
		writeFile(t, n.conf, conf)
	}
	boot.up(t, boot.conf, "listen-port", "62096")
	a.start(t, "")
	b.start(t, "")

	whOn := func(n *invNode, args ...string) (string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
		defer cancel()
		return n.wh(ctx, args...)
	}
	// On a: wh invite, which reloads a.
	out, err := whOn(a, "invite", a.conf, "laptop")
	if err != nil {
		t.Fatalf("wh invite: %v\n%s", err, out)
	}
	t.Logf("wh invite:\n%s", out)
	m := regexp.MustCompile(`wh up \S+ invitation (\S+)`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no command for the invitee in\n%s", out)
	}
	inv := m[1]
	parsed, err := invite.Parse(inv, key.DefaultNamespace, 8)
	if err != nil || !parsed.Long() || parsed.Inviter != a.pub() {
		t.Fatalf("invitation %s: %+v, %v; want version 1 from a", inv, parsed, err)
	}
	// The updated config goes to b (and the new machines), b reloads.
	updated, err := os.ReadFile(a.conf)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(updated), conf) {
		t.Fatalf("wh invite changed more than a line:\n%s", updated)
	}
	for _, n := range []*invNode{b, nodes["c"], nodes["d"], nodes["e"]} {
		writeFile(t, n.conf, string(updated))
	}
	if out, err := whOn(b, "reload", b.iface); err != nil {
		t.Fatalf("reload b: %v: %s", err, out)
	}
	netw, err := config.Parse(a.conf, updated)
	if err != nil {
		t.Fatal(err)
	}
	ipOf := func(host string) string { c, _ := netw.Host(host); return c.IP.String() }

	// The new machine: wh up with the invitation, and it reaches a and b.
	c := nodes["c"]
	c.start(t, inv)
	for _, name := range []string{"a", "b"} {
		if err := ping(t, c.member, ipOf(name), 60*time.Second); err != nil {
			t.Fatalf("laptop → %s: %v\nlaptop's log:\n%s", name, err, tailOf(c.log()))
		}
		if err := ping(t, c.member, orchid.Addr(nodes[name].pub(), key.DefaultNamespace).String(), 30*time.Second); err != nil {
			t.Errorf("laptop → %s's ORCHID: %v", name, err)
		}
	}
	if err := ping(t, a.member, ipOf("laptop"), 30*time.Second); err != nil {
		t.Errorf("a → laptop: %v", err)
	}
	// By name, through each node's own resolver: the members' names on the
	// new machine, the slot's name on a member. (The lab's namespaces
	// share this machine's /etc/hosts, so the system resolver is not asked.)
	byName := func(on *invNode, host, want string) {
		t.Helper()
		out, err := whOn(on, "resolve", host)
		if err != nil || !strings.HasPrefix(out, want+"\n") {
			t.Errorf("wh resolve %s on %s: %v: %q, want %s first", host, on.name, err, out, want)
			return
		}
		if err := ping(t, on.member, want, 30*time.Second); err != nil {
			t.Errorf("%s → %s by name: %v", on.name, host, err)
		}
	}
	byName(c, "a", ipOf("a"))
	byName(c, "b.inv", ipOf("b"))
	byName(a, "laptop", ipOf("laptop"))
	if out, err := whOn(a, "show", a.iface); err != nil || !strings.Contains(out, "claimed alias; in the config: trust laptop ") {
		t.Errorf("show on a: %v\n%s", err, out)
	}

	// A second machine with the same invitation is refused, and reaches
	// nobody.
	d := nodes["d"]
	d.start(t, inv)
	err = lab.Eventually(60*time.Second, time.Second, func() error {
		if n := strings.Count(d.log(), "alias laptop is already claimed"); n < 2 {
			return fmt.Errorf("%d refusals", n)
		}
		return nil
	})
	if err != nil {
		t.Errorf("second machine: %v\n%s", err, tailOf(d.log()))
	}
	if err := ping(t, d.member, ipOf("a"), 5*time.Second); err == nil {
		t.Errorf("the refused machine reaches a")
	}

	// A restart and a reload of a keep the claim.
	a.restart(t)
	if err := ping(t, c.member, ipOf("a"), 60*time.Second); err != nil {
		t.Errorf("laptop → a after a's restart: %v", err)
	}
	if out, err := whOn(a, "reload", a.iface); err != nil {
		t.Fatalf("reload a: %v: %s", err, out)
	}
	if err := ping(t, c.member, ipOf("a"), 30*time.Second); err != nil {
		t.Errorf("laptop → a after a's reload: %v", err)
	}

	// wh auth from a running node, as in WireHub, at a slot that expires:
	// first after it expired, then at a fresh one.
	e := nodes["e"]
	aliasFile := filepath.Join(l.Dir(), "alias.sk")
	claimAt := func(slot, expires string) (string, error) {
		args := []string{"invite", a.conf, slot}
		if expires != "" {
			args = append(args, "expires", expires)
		}
		out, err := whOn(a, args...)
		if err != nil {
			t.Fatalf("wh invite %s: %v\n%s", slot, err, out)
		}
		m := regexp.MustCompile(`wh up \S+ invitation (\S+)`).FindStringSubmatch(out)
		p, err := invite.Parse(m[1], key.DefaultNamespace, 8)
		if err != nil {
			t.Fatal(err)
		}
		writeFile(t, aliasFile, p.Alias.String()+"\n")
		b, _ := os.ReadFile(a.conf)
		writeFile(t, e.conf, string(b))
		if !e.running {
			e.start(t, "")
		} else if out, err := whOn(e, "reload", e.iface); err != nil {
			t.Fatalf("reload e: %v: %s", err, out)
		}
		if expires != "" {
			time.Sleep(2 * time.Second)
		}
		return whOn(e, "auth", e.iface, "a", aliasFile)
	}
	if out, err := claimAt("old", "1s"); err == nil || !strings.Contains(out, "alias old expired at") {
		t.Errorf("wh auth at an expired alias: %v\n%s", err, out)
	}
	out, err = claimAt("tablet", "")
	if err != nil || !strings.Contains(out, "accepted: tablet 10.77.0.") {
		t.Errorf("wh auth: %v\n%s", err, out)
	}
}

func tailOf(log string) string {
	lines := strings.Split(log, "\n")
	return strings.Join(lines[max(0, len(lines)-40):], "\n")
}
