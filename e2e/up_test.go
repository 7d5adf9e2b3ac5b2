package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/whnet/wh/e2e/lab"
	"github.com/whnet/wh/key"
)

// TestUpMistakes: every mistake is reported by `wh up` itself, before it
// detaches, with exit status 1 and a message that says what to do.
func TestUpMistakes(t *testing.T) {
	l := newLab(t)
	h := l.Public("h")
	good := newMember(t, l, "g", h, 8)
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
	writeFile(t, weakf, weak.String()+"\n")

	// A busy port, held in h's namespace.
	busy := h.Start("holder", nil, "python3", "-c", "import socket,time; s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM); s.bind(('0.0.0.0',40404)); time.sleep(60)")
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
		{"bad_config", []string{"up", badConf, "private-key", good.keyf}, nil, "bad.conf:3"},
		{"missing_config", []string{"up", "/nonexistent.conf"}, nil, "nonexistent.conf"},
		{"weak_key", []string{"up", conf, "private-key", weakf}, nil, "wh genkey"},
		{"missing_key", []string{"up", conf, "private-key", "/nonexistent.sk"}, nil, "private-key"},
		{"busy_port", []string{"up", conf, "private-key", good.keyf, "listen-port", "40404"}, nil, "in use"},
		{"bad_port", []string{"up", conf, "private-key", good.keyf, "listen-port", "99999"}, nil, "listen-port"},
		{"bad_mode", []string{"up", conf, "private-key", good.keyf, "mode", "sideways"}, nil, "mode"},
		{"no_rights", []string{"up", conf, "private-key", good.keyf, "interface", "wh" + l.ID() + "nr"},
			[]string{"setpriv", "--inh-caps=-all", "--bounding-set=-net_admin", "--"}, "CAP_NET_ADMIN"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.prefix != nil {
				if _, err := exec.LookPath(tc.prefix[0]); err != nil {
					t.Skipf("needs %s (util-linux)", tc.prefix[0])
				}
			}
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

// TestUpDetaches: without --foreground, wh up returns once the daemon is
// up, and the daemon logs to /var/log/wirehub/IFACE.log.
func TestUpDetaches(t *testing.T) {
	l := newLab(t)
	h := l.Public("h")
	m := newMember(t, l, "d", h, 8)
	conf := filepath.Join(l.Dir(), "net.conf")
	writeFile(t, conf, fmt.Sprintf("name det\nsubnet 10.79.0.0/24\ntrust d %s\n", m.pub()))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := m.wh(ctx, "up", conf, "private-key", m.keyf, "interface", m.iface)
	if err != nil {
		t.Fatalf("wh up: %v\n%s", err, out)
	}
	t.Cleanup(func() { m.wh(context.Background(), "down", m.iface) })
	if !strings.Contains(out, m.iface+" is up") {
		t.Errorf("wh up said %q", out)
	}
	st, err := m.status(t)
	if err != nil {
		t.Fatal(err)
	}
	if st.Interface != m.iface || len(st.Addresses) != 2 {
		t.Errorf("status = %+v", st)
	}
	logPath := "/var/log/wirehub/" + m.iface + ".log"
	t.Cleanup(func() { os.Remove(logPath) })
	if b, err := os.ReadFile(logPath); err != nil || !strings.Contains(string(b), "wh listening") {
		t.Errorf("log %s: %v\n%s", logPath, err, b)
	}
	// The ephemeral-key form and the interface are checked: a second up on
	// the same interface is refused before it detaches.
	out, err = m.wh(ctx, "up", conf, "private-key", m.keyf, "interface", m.iface)
	if err == nil || !strings.Contains(out, "already running") {
		t.Errorf("second wh up: %v\n%s", err, out)
	}
	if out, err := m.wh(ctx, "down", m.iface); err != nil {
		t.Fatalf("wh down: %v\n%s", err, out)
	}
	if out, err := h.Run(ctx, "ip", "link", "show", m.iface); err == nil {
		t.Errorf("interface %s still exists after down:\n%s", m.iface, out)
	}
}
