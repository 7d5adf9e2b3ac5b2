package node

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.zx2c4.com/wireguard/tun/netstack"

	"github.com/whnet/wh/config"
	"github.com/whnet/wh/invite"
	"github.com/whnet/wh/key"
	"github.com/whnet/wh/orchid"
	"github.com/whnet/wh/resolver"
)

// aliasNet is a testNet whose config lists member "a" and the alias slot
// "laptop", and whose nodes keep their claims under state directories.
type aliasNet struct {
	*testNet
	alias   key.Private
	expires time.Time
	state   map[string]string // node → its state directory
	opts    func(*Options)    // if set, applied to the options of run
}

func newAliasNet(t *testing.T, names ...string) *aliasNet {
	an := &aliasNet{testNet: newTestNet(t, names...), state: map[string]string{}}
	var err error
	if an.alias, err = key.Search(context.Background(), 4, "test", key.SearchOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, n := range names {
		an.state[n] = t.TempDir()
	}
	return an
}

// config is the network: boot, trust a, alias laptop (10.9.0.3).
func (an *aliasNet) config() *config.Network {
	s := fmt.Sprintf("name t\nnamespace test\nworkbit 4\nsubnet 10.9.0.0/24\nboot %s 127.0.0.1:%d\ntrust a %s\n%s\n",
		an.keys["boot"].Public(), an.ports["boot"], an.keys["a"].Public(), config.AliasLine("laptop", an.alias.Public(), an.expires))
	n, err := config.Parse("t.conf", []byte(s))
	if err != nil {
		an.t.Fatal(err)
	}
	return n
}

// holdSlot writes name's state as if it had claimed the laptop slot, so
// that it starts in it (how a claimant restarts).
func (an *aliasNet) holdSlot(name string) {
	line := fmt.Sprintf("claim %s %s\n", an.alias.Public(), an.keys[name].Public())
	if err := os.WriteFile(filepath.Join(an.state[name], "wht"+name+".claims"), []byte(line), 0o600); err != nil {
		an.t.Fatal(err)
	}
}

// run starts name with its state directory, on an overlay address of ip
// (invalid: none), and returns a function that stops it.
func (an *aliasNet) run(name string, n *config.Network, ip netip.Addr) (*Node, func()) {
	t := an.t
	opt := Options{
		Interface:  "wht" + name,
		ListenPort: an.ports[name],
		Mode:       ModeDirect,
		DNS:        resolver.ModeOff,
		StateDir:   an.state[name],
		Logger:     slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelInfo})).With("node", name),
	}
	if an.opts != nil {
		an.opts(&opt)
	}
	if ip.IsValid() {
		tdev, tnet, err := netstack.CreateNetTUN([]netip.Addr{ip, orchid.Addr(an.keys[name].Public(), n.Namespace)}, nil, 1280)
		if err != nil {
			t.Fatal(err)
		}
		opt.TUN = tdev
		an.nets[name] = tnet
	}
	nd, err := New(n, an.keys[name], opt)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { nd.Run(ctx); close(done) }()
	stopped := false
	stop := func() {
		if !stopped {
			stopped = true
			cancel()
			<-done
			nd.Close()
		}
	}
	t.Cleanup(stop)
	an.nodes[name] = nd
	return nd, stop
}

func (an *aliasNet) claim(name string) ClaimResult {
	an.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	res, err := an.nodes[name].Claim(ctx, an.keys["a"].Public(), an.alias)
	if err != nil {
		an.t.Fatalf("%s claims: %v", name, err)
	}
	return res
}

var (
	ipA      = netip.MustParseAddr("10.9.0.2")
	ipLaptop = netip.MustParseAddr("10.9.0.3")
)

// TestAliasClaim: a claimant in the laptop slot claims it at member a and
// reaches a over the tunnel, both ways, by IPv4 and ORCHID; a second
// claimant is refused; the first again is accepted; the claim survives
// a's reload and restart; show marks the slot.
func TestAliasClaim(t *testing.T) {
	an := newAliasNet(t, "boot", "a", "c", "d")
	n := an.config()
	an.run("boot", n, netip.Addr{})
	_, stopA := an.run("a", n, ipA)
	an.echo("a")

	if st := an.nodes["a"].Status(false); len(st.Peers) != 1 || st.Peers[0].Alias != "unclaimed" || st.Peers[0].Hostname != "laptop" {
		t.Fatalf("before the claim, show on a: %+v", st.Peers)
	}

	an.holdSlot("c")
	an.run("c", n, ipLaptop)
	an.echo("c")
	res := an.claim("c")
	if !res.Accepted || res.Slot != "laptop" || res.IP != ipLaptop {
		t.Fatalf("claim: %+v", res)
	}
	conn := an.dial("c", ipA, 15*time.Second)
	roundTrip(t, conn, "laptop to a")
	conn.Close()
	conn = an.dial("a", ipLaptop, 15*time.Second)
	roundTrip(t, conn, "a to laptop")
	conn.Close()
	conn = an.dial("a", orchid.Addr(an.keys["c"].Public(), "test"), 15*time.Second)
	roundTrip(t, conn, "a to laptop's ORCHID")
	conn.Close()

	st := an.nodes["a"].Status(false)
	wantLine := "trust laptop " + an.keys["c"].Public().String()
	if len(st.Peers) != 1 || st.Peers[0].Alias != "claimed" || st.Peers[0].TrustLine != wantLine || st.Peers[0].Key != an.keys["c"].Public().String() {
		t.Errorf("after the claim, show on a: %+v", st.Peers)
	}
	if rr, err := an.nodes["a"].Resolve("laptop"); err != nil || rr.IP != ipLaptop.String() {
		t.Errorf("a resolves laptop: %+v, %v", rr, err)
	}

	// Another claimant is refused with the reason; the first one again
	// is accepted.
	an.run("d", n, netip.Addr{})
	if res := an.claim("d"); res.Accepted || res.Reason != "alias laptop is already claimed" {
		t.Errorf("second claimant: %+v", res)
	}
	if res := an.claim("c"); !res.Accepted {
		t.Errorf("first claimant again: %+v", res)
	}

	// A reload keeps the claim.
	if err := an.nodes["a"].Reload(an.config()); err != nil {
		t.Fatal(err)
	}
	if st := an.nodes["a"].Status(false); len(st.Peers) != 1 || st.Peers[0].Alias != "claimed" {
		t.Errorf("after reload, show on a: %+v", st.Peers)
	}

	// So does a restart: a comes back from its state file and c gets
	// through, d is still refused.
	stopA()
	an.run("a", n, ipA)
	an.echo("a")
	conn = an.dial("c", ipA, 20*time.Second)
	roundTrip(t, conn, "after a's restart")
	conn.Close()
	if res := an.claim("d"); res.Accepted || !strings.Contains(res.Reason, "already claimed") {
		t.Errorf("second claimant after restart: %+v", res)
	}
}

// TestAliasExpired: an alias past its expiry refuses claims, saying so.
func TestAliasExpired(t *testing.T) {
	an := newAliasNet(t, "boot", "a", "c")
	an.expires = time.Now().Add(-time.Hour).Truncate(time.Second)
	n := an.config()
	an.run("boot", n, netip.Addr{})
	an.run("a", n, ipA)
	an.run("c", n, netip.Addr{})
	res := an.claim("c")
	want := "alias laptop expired at " + an.expires.UTC().Format(time.RFC3339)
	if res.Accepted || res.Reason != want {
		t.Fatalf("claim of an expired alias: %+v, want refused with %q", res, want)
	}
	if st := an.nodes["a"].Status(false); len(st.Peers) != 1 || st.Peers[0].Alias != "unclaimed" {
		t.Errorf("show on a: %+v", st.Peers)
	}
}

// TestInvitation: a new machine with the invitation takes the laptop
// slot, claims it at the inviter a and at member b, and reaches both by
// IPv4 and ORCHID; once both answered, the invitation leaves its state.
// A second machine with the same invitation is refused and reaches
// nobody.
func TestInvitation(t *testing.T) {
	an := newAliasNet(t, "boot", "a", "b", "c", "d")
	s := fmt.Sprintf("name t\nnamespace test\nworkbit 4\nsubnet 10.9.0.0/24\nboot %s 127.0.0.1:%d\ntrust a %s\ntrust b %s\n%s\n",
		an.keys["boot"].Public(), an.ports["boot"], an.keys["a"].Public(), an.keys["b"].Public(), config.AliasLine("laptop", an.alias.Public(), time.Time{}))
	n, err := config.Parse("t.conf", []byte(s))
	if err != nil {
		t.Fatal(err)
	}
	ipB, ipSlot := netip.MustParseAddr("10.9.0.3"), netip.MustParseAddr("10.9.0.4")
	an.run("boot", n, netip.Addr{})
	an.run("a", n, ipA)
	an.run("b", n, ipB)
	an.echo("a")
	an.echo("b")

	inv := invite.Invitation{Inviter: an.keys["a"].Public(), Alias: an.alias}
	start := func(name string) {
		an.opts = func(o *Options) { o.Invitation = &inv }
		defer func() { an.opts = nil }()
		an.run(name, n, ipSlot)
	}
	start("c")
	for _, target := range []netip.Addr{ipA, ipB, orchid.Addr(an.keys["a"].Public(), "test"), orchid.Addr(an.keys["b"].Public(), "test")} {
		conn := an.dial("c", target, 30*time.Second)
		roundTrip(t, conn, "laptop to "+target.String())
		conn.Close()
	}
	state := filepath.Join(an.state["c"], "whtc.claims")
	deadline := time.Now().Add(30 * time.Second)
	for {
		b, _ := os.ReadFile(state)
		if !strings.Contains(string(b), "invitation ") {
			if !strings.Contains(string(b), "claim "+an.alias.Public().String()+" "+an.keys["c"].Public().String()) {
				t.Errorf("c's state lost its slot: %q", b)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("c still keeps the invitation: %q", b)
		}
		time.Sleep(200 * time.Millisecond)
	}

	start("d")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	res, err := an.nodes["d"].Claim(ctx, an.keys["b"].Public(), an.alias)
	if err != nil || res.Accepted || res.Reason != "alias laptop is already claimed" {
		t.Errorf("d's claim at b: %+v, %v", res, err)
	}
	dctx, dcancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer dcancel()
	if conn, err := an.nets["d"].DialContextTCPAddrPort(dctx, netip.AddrPortFrom(ipA, 7)); err == nil {
		conn.Close()
		t.Errorf("d, refused, reaches a")
	}
}
