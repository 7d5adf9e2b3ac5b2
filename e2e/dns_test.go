package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/whnet/wh/orchid"
)

// TestNames: a node answers its network's names over DNS (A, AAAA, PTR,
// NXDOMAIN) to its peers with the real dig, updates them on reload, and in
// hosts mode makes `getent hosts` and `ping HOST.NETWORK` work; down leaves
// the hosts file exactly as it was. Node a runs in a private mount
// namespace with its own /etc/hosts, so the machine's is never touched.
func TestNames(t *testing.T) {
	l := newLab(t, "dig", "unshare", "nsenter", "getent")
	boot := newMember(t, l, "boot", l.Public("boot"), 8)
	a := newMember(t, l, "a", l.Public("a"), 8)
	b := newMember(t, l, "b", l.Public("b"), 8)
	c := newMember(t, l, "c", l.Public("c"), 8)

	base := fmt.Sprintf("name net\nsubnet 10.80.0.0/24\nboot %s %s:62096\ntrust alpha %s\ntrust beta %s\n",
		boot.pub(), boot.host.Addr, a.pub(), b.pub())
	conf := filepath.Join(l.Dir(), "net.conf")
	writeFile(t, conf, base)

	hosts := filepath.Join(l.Dir(), "hosts")
	original := "127.0.0.1\tlocalhost\n# a comment the user wrote\n192.0.2.1 printer\n"
	writeFile(t, hosts, original)

	upAll(t, conf, []*member{boot, b}, func(m *member) []string {
		if m == boot {
			return []string{"listen-port", "62096"}
		}
		return nil
	})
	// a's daemon detaches inside the mount namespace, and keeps it.
	if err := a.start(privateHosts(hosts), conf, "dns", "hosts"); err != nil {
		t.Fatal(err)
	}
	if err := ping(t, b, "10.80.0.2", 30*time.Second); err != nil {
		t.Fatal(err)
	}

	dig := func(args ...string) string {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		out, err := b.host.Run(ctx, "dig", append([]string{"@10.80.0.2", "+time=2", "+tries=2"}, args...)...)
		if err != nil {
			t.Fatalf("dig %v: %v\n%s", args, err, out)
		}
		return strings.TrimSpace(out)
	}
	bIPv6 := orchid.Addr(b.pub(), "public").String()
	checks := []struct {
		args []string
		want string
	}{
		{[]string{"+short", "beta.net", "A"}, "10.80.0.3"},
		{[]string{"+short", "BETA.NET", "A"}, "10.80.0.3"},
		{[]string{"+short", "beta", "A"}, "10.80.0.3"},
		{[]string{"+short", "beta.net", "AAAA"}, bIPv6},
		{[]string{"+short", "alpha.net", "A"}, "10.80.0.2"},
		{[]string{"+short", "-x", "10.80.0.3"}, "beta.net."},
		{[]string{"+short", "-x", bIPv6}, "beta.net."},
	}
	for _, ck := range checks {
		if got := dig(ck.args...); got != ck.want {
			t.Errorf("dig %v = %q, want %q", ck.args, got, ck.want)
		}
	}
	if got := dig("+noall", "+comments", "nobody.net", "A"); !strings.Contains(got, "status: NXDOMAIN") {
		t.Errorf("dig nobody.net: want NXDOMAIN:\n%s", got)
	}

	// Reload with a new host: its name answers at once.
	writeFile(t, conf, base+fmt.Sprintf("trust gamma %s\n", c.pub()))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if out, err := a.wh(ctx, "reload", a.iface); err != nil {
		t.Fatalf("reload: %v\n%s", err, out)
	}
	if got := dig("+short", "gamma.net", "A"); got != "10.80.0.4" {
		t.Errorf("after reload, gamma.net = %q, want 10.80.0.4", got)
	}

	// Hosts mode, seen from inside a's mount namespace.
	pids := a.daemons()
	if len(pids) != 1 {
		t.Fatalf("a's daemons: %v, want one", pids)
	}
	pid := strconv.Itoa(pids[0])
	inA := func(args ...string) (string, error) {
		return a.host.Run(ctx, "nsenter", append([]string{"-t", pid, "-m", "--"}, args...)...)
	}
	if out, err := inA("getent", "hosts", "beta.net"); err != nil || !(strings.Contains(out, "10.80.0.3") || strings.Contains(out, bIPv6)) {
		t.Errorf("getent hosts beta.net: %v: %q", err, out)
	}
	if out, err := inA("getent", "ahostsv4", "beta.net"); err != nil || !strings.Contains(out, "10.80.0.3") {
		t.Errorf("getent ahostsv4 beta.net: %v: %q", err, out)
	}
	if out, err := inA("ping", "-c1", "-W2", "beta.net"); err != nil {
		t.Errorf("ping beta.net: %v\n%s", err, out)
	}
	if out, err := a.wh(ctx, "resolve", "beta.net"); err != nil || !strings.Contains(out, "10.80.0.3") {
		t.Errorf("wh resolve beta.net: %v: %q", err, out)
	}
	if out, err := a.wh(ctx, "resolve", "10.80.0.4"); err != nil || strings.TrimSpace(out) != "gamma" {
		t.Errorf("wh resolve 10.80.0.4: %v: %q", err, out)
	}
	if out, err := a.wh(ctx, "resolve", "nobody"); err == nil {
		t.Errorf("wh resolve nobody succeeded: %q", out)
	}
	st, err := a.status(t)
	if err != nil || st.DNS != "hosts" {
		t.Errorf("wh show says dns %q (%v), want hosts", st.DNS, err)
	}

	// down leaves the hosts file exactly as it found it.
	a.down(t)
	if got, _ := os.ReadFile(hosts); string(got) != original {
		t.Errorf("hosts file after down:\n%q\nwant\n%q", got, original)
	}
}

// privateHosts is a command prefix that runs a command in a private mount
// namespace whose /etc/hosts is the file hosts, and without
// systemd-resolved (so that dns auto picks hosts mode there): a wh daemon
// started through it, and detached, keeps that namespace.
func privateHosts(hosts string) []string {
	return []string{"unshare", "--mount", "--propagation", "private", "sh", "-c",
		`mount --bind "$0" /etc/hosts && { [ ! -d /run/systemd ] || mount -t tmpfs none /run/systemd; } && exec "$@"`, hosts}
}
