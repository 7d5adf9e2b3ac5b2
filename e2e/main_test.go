// Package e2e runs real wh binaries in small internets of network
// namespaces (see package lab). The tests need root; without it they skip,
// saying so.
package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/whnet/wh/e2e/lab"
	"github.com/whnet/wh/key"
	"github.com/whnet/wh/node"
)

// whBin is the wh binary built for this test run ("" if it can't be).
var whBin string

func TestMain(m *testing.M) {
	code := func() int {
		if lab.Check() == nil {
			dir, err := os.MkdirTemp("", "wh-e2e-")
			if err != nil {
				fmt.Fprintln(os.Stderr, err)
				return 1
			}
			defer os.RemoveAll(dir)
			whBin = filepath.Join(dir, "wh")
			out, err := exec.Command("go", "build", "-o", whBin, "github.com/whnet/wh/cmd/wh").CombinedOutput()
			if err != nil {
				fmt.Fprintf(os.Stderr, "building wh: %v\n%s", err, out)
				return 1
			}
		}
		return m.Run()
	}()
	os.Exit(code)
}

// newLab builds a lab, or skips the test.
func newLab(t *testing.T) *lab.Lab {
	t.Helper()
	if err := lab.Check(); err != nil {
		t.Skip("e2e: " + err.Error())
	}
	return lab.New(t)
}

// member is a node of a test network: its key and where it runs.
type member struct {
	name  string
	host  *lab.Host
	priv  key.Private
	iface string
	keyf  string
}

func newMember(t *testing.T, l *lab.Lab, name string, h *lab.Host, workbit int) *member {
	t.Helper()
	k, err := key.Search(context.Background(), workbit, key.DefaultNamespace, key.SearchOptions{})
	if err != nil {
		t.Fatal(err)
	}
	m := &member{name: name, host: h, priv: k, iface: "wh" + l.ID() + name, keyf: filepath.Join(l.Dir(), name+".sk")}
	if err := os.WriteFile(m.keyf, []byte(k.String()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return m
}

func (m *member) pub() key.Public { return m.priv.Public() }

// up starts wh on m in the foreground, as systemd would.
func (m *member) up(t *testing.T, conf string, extra ...string) *lab.Proc {
	t.Helper()
	args := append([]string{"up", conf, "private-key", m.keyf, "interface", m.iface, "--foreground", "--log-level", "debug", "dns", "off"}, extra...)
	return m.host.Start("wh", nil, whBin, args...)
}

// wh runs a wh command on m.
func (m *member) wh(ctx context.Context, args ...string) (string, error) {
	return m.host.Run(ctx, whBin, args...)
}

// status reads `wh show IFACE --json`.
func (m *member) status(t *testing.T) (node.Status, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := m.wh(ctx, "show", m.iface, "--json")
	if err != nil {
		return node.Status{}, fmt.Errorf("wh show: %v: %s", err, out)
	}
	var st node.Status
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		return node.Status{}, fmt.Errorf("wh show --json: %v: %s", err, out)
	}
	return st, nil
}

// waitSocket waits until m's daemon answers on its control socket.
func (m *member) waitUp(t *testing.T, p *lab.Proc) {
	t.Helper()
	err := lab.Eventually(20*time.Second, 100*time.Millisecond, func() error {
		if p != nil && p.Exited() {
			return fmt.Errorf("wh exited:\n%s", p.Output())
		}
		_, err := m.status(t)
		return err
	})
	if err != nil {
		t.Fatalf("%s: not up: %v", m.name, err)
	}
}

// ping pings addr from m until it answers or timeout passes.
func ping(t *testing.T, from *member, addr string, timeout time.Duration) error {
	t.Helper()
	return lab.Eventually(timeout, 200*time.Millisecond, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		out, err := from.host.Run(ctx, "ping", "-c1", "-W1", addr)
		if err != nil {
			return fmt.Errorf("%s → %s: %v: %s", from.name, addr, err, strings.TrimSpace(out))
		}
		return nil
	})
}

func writeFile(t *testing.T, path, s string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}
