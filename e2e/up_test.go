package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/whnet/wh/e2e/lab"
	"github.com/whnet/wh/key"
	"github.com/whnet/wh/node"
)

// TestUpMistakes: every mistake is reported by `wh up` itself, before it
// detaches, with exit status 1 and a message that says what to do.
func TestUpMistakes(t *testing.T) {
	l := newLab(t, "socat", "ss", "setpriv")
	h := l.Public("h")
	good := newMember(t, l, "g", h, 8)
	goodf := filepath.Join(good.dir, good.keyf)
	conf := filepath.Join(l.Dir(), "net.conf")
	writeFile(t, conf, fmt.Sprintf("name m\nsubnet 10.78.0.0/24\nworkbit 8\ntrust g %s\n", good.pub()))
	badConf := filepath.Join(l.Dir(), "bad.conf")
	writeFile(t, badConf, "name m\nsubnet 10.78.0.0/24\ntrust g notakey\n")

	// A key with fewer than 8 workbits.
	var weak key.Private
	for {
		k, err := key.NewPrivate()
		if err != nil {
			t.Fatal(err)
		}
		if key.Workbits(k.Public(), key.DefaultNamespace) < 8 {
			weak = k
			break
		}
	}
	weakf := filepath.Join(l.Dir(), "weak.sk")
	if err := os.WriteFile(weakf, []byte(weak.String()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	// A good key that anyone can read.
	openf := filepath.Join(l.Dir(), "open.sk")
	writeFile(t, openf, good.priv.String()+"\n")
	if err := os.Chmod(openf, 0o644); err != nil {
		t.Fatal(err)
	}

	// A busy port, held in h's namespace.
	busy := h.Start("holder", nil, "socat", "-u", "UDP4-RECV:40404", "-")
	defer busy.Stop()
	if err := lab.Eventually(10*time.Second, 50*time.Millisecond, func() error {
		out, _ := h.Run(context.Background(), "ss", "-Huln", "sport = :40404")
		if !strings.Contains(out, "40404") {
			return fmt.Errorf("port 40404 not bound yet")
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name   string
		args   []string
		prefix []string // run through this (e.g. to drop rights)
		want   string
	}{
		{"bad_config", []string{"up", badConf, "private-key", goodf}, nil, "bad.conf:3"},
		{"missing_config", []string{"up", "/nonexistent.conf"}, nil, "nonexistent.conf"},
		{"weak_key", []string{"up", conf, "private-key", weakf}, nil, "wh genkey"},
		{"open_key", []string{"up", conf, "private-key", openf}, nil, "chmod 600 " + openf},
		{"missing_key", []string{"up", conf, "private-key", "/nonexistent.sk"}, nil, "private-key"},
		{"busy_port", []string{"up", conf, "private-key", goodf, "listen-port", "40404"}, nil, "in use"},
		{"bad_port", []string{"up", conf, "private-key", goodf, "listen-port", "99999"}, nil, "listen-port"},
		{"bad_mode", []string{"up", conf, "private-key", goodf, "mode", "sideways"}, nil, "mode"},
		{"no_rights", []string{"up", conf, "private-key", goodf, "interface", "wh" + l.ID() + "nr"},
			[]string{"setpriv", "--inh-caps=-all", "--bounding-set=-net_admin", "--"}, "CAP_NET_ADMIN"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			cmd := append(append([]string{}, tc.prefix...), whBin)
			cmd = append(cmd, tc.args...)
			start := time.Now()
			out, err := h.Run(ctx, cmd[0], cmd[1:]...)
			ee, ok := err.(*exec.ExitError)
			if !ok || ee.ExitCode() == 0 {
				t.Fatalf("wh %s: err %v, want exit status 1 or 2\n%s", strings.Join(tc.args, " "), err, out)
			}
			if !strings.Contains(out, tc.want) {
				t.Errorf("message %q does not mention %q", out, tc.want)
			}
			if d := time.Since(start); d > 10*time.Second {
				t.Errorf("took %v to fail", d)
			}
		})
	}
}

// TestUpAsREADME is the README's own sequence, typed as a new user would
// in a directory holding net.conf and node.sk: `wh up ./net.conf
// private-key node.sk` (detached, the default interface name, dns auto),
// `wh show`, `wh reload`, `wh down`; after which nothing of the daemon is
// left. The daemon runs in / and must have been given absolute paths.
// dns auto runs in a private mount namespace with its own /etc/hosts (and
// no systemd-resolved), so that the machine's files are never touched.
func TestUpAsREADME(t *testing.T) {
	l := newLab(t, "unshare")
	boot := newMember(t, l, "boot", l.Public("boot"), 8)
	peer := newMember(t, l, "peer", l.Public("peer"), 8)
	late := newMember(t, l, "late", l.Public("late"), 8) // trusted on reload
	h := l.Public("home")

	home := filepath.Join(l.Dir(), "home")
	if err := os.Mkdir(home, 0o755); err != nil {
		t.Fatal(err)
	}
	priv, err := key.Search(context.Background(), 8, key.DefaultNamespace, key.SearchOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(home, "node.sk"), []byte(priv.String()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	me := &member{name: "home", host: h, priv: priv, iface: "wh-" + priv.Public().Short(8), dir: home, keyf: "node.sk"}
	t.Cleanup(func() { me.cleanup(t) })
	conf := filepath.Join(home, "net.conf")
	base := fmt.Sprintf("name readme\nsubnet 10.81.0.0/24\nboot %s %s:62096\ntrust home %s\ntrust peer %s\n",
		boot.pub(), boot.host.Addr, me.pub(), peer.pub())
	writeFile(t, conf, base)
	hosts := filepath.Join(l.Dir(), "hosts")
	original := "127.0.0.1\tlocalhost\n"
	writeFile(t, hosts, original)

	boot.up(t, conf, "listen-port", "62096")
	peer.up(t, conf)

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	wh := func(wrap []string, args ...string) (string, error) {
		cmd := append(append(append([]string{}, wrap...), whBin), args...)
		c := h.Command(ctx, cmd[0], cmd[1:]...)
		c.Dir = home
		out, err := c.CombinedOutput()
		return string(out), err
	}
	out, err := wh(privateHosts(hosts), "up", "./net.conf", "private-key", "node.sk")
	if err != nil {
		t.Fatalf("wh up ./net.conf private-key node.sk: %v\n%s", err, out)
	}
	me.running = true
	logPath := "/var/log/wirehub/" + me.iface + ".log"
	if want := me.iface + " is up (logs: " + logPath + ")"; !strings.Contains(out, want) {
		t.Errorf("wh up said %q, want %q", out, want)
	}
	// The log says which files the daemon runs with, absolute.
	if b, err := os.ReadFile(logPath); err != nil || !strings.Contains(string(b), "config="+conf) ||
		!strings.Contains(string(b), "private-key="+filepath.Join(home, "node.sk")) || !strings.Contains(string(b), "wh listening") {
		t.Errorf("log %s: %v\n%s", logPath, err, b)
	}

	out, err = wh(nil, "show")
	if err != nil || !strings.Contains(out, me.iface) {
		t.Errorf("wh show: %v\n%s", err, out)
	}
	st, err := me.status(t)
	if err != nil {
		t.Fatal(err)
	}
	if st.Interface != me.iface || st.Hostname != "home" || st.DNS != "hosts" || len(st.Addresses) != 2 {
		t.Errorf("status = %+v", st)
	}
	if err := ping(t, me, "10.81.0.3", 30*time.Second); err != nil {
		t.Fatal(err)
	}
	// A second up of the same key and interface is refused before it detaches.
	if out, err := wh(nil, "up", "./net.conf", "private-key", "node.sk"); err == nil || !strings.Contains(out, "already running") {
		t.Errorf("second wh up: %v\n%s", err, out)
	}

	// reload re-reads the config: from the path the daemon was given.
	writeFile(t, conf, base+fmt.Sprintf("trust late %s\n", late.pub()))
	if out, err := wh(nil, "reload", me.iface); err != nil {
		t.Fatalf("wh reload: %v\n%s", err, out)
	}
	if st, err := me.status(t); err != nil || !slices.ContainsFunc(st.Peers, func(p node.PeerStatus) bool { return p.Hostname == "late" }) {
		t.Errorf("after reload, peers %+v (%v), want late among them", st.Peers, err)
	}

	// down: no interface, no socket, no daemon, the hosts file as it was.
	me.down(t)
	if got, _ := os.ReadFile(hosts); string(got) != original {
		t.Errorf("hosts file after down:\n%q\nwant\n%q", got, original)
	}
}
