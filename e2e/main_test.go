// Package e2e runs real wh binaries in small internets of network
// namespaces (see package lab), driven as the README drives them: `wh up`
// detached, with paths relative to a working directory, `wh show`, and
// `wh down` at the end. The tests need root; without it they skip, saying
// so (in CI, CI=true, they fail: see internal/testenv).
package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/whnet/wh/e2e/lab"
	"github.com/whnet/wh/internal/testenv"
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

// newLab builds a lab, or skips the test (fails it in CI) when this
// machine cannot, or lacks ping or one of tools.
func newLab(t *testing.T, tools ...string) *lab.Lab {
	t.Helper()
	l := lab.New(t)
	testenv.NeedTools(t, append([]string{"ping"}, tools...)...)
	return l
}

// member is a node of a test network: its key and where it runs. Its wh
// commands run as the README's do: from a working directory that holds
// the configs and its key, with relative paths, detached.
type member struct {
	name    string
	host    *lab.Host
	priv    key.Private
	iface   string
	dir     string   // the working directory of its wh commands
	keyf    string   // its private-key file, relative to dir; "" for none
	env     []string // added to its wh commands' environment
	running bool     // up, not yet down
}

func newMember(t *testing.T, l *lab.Lab, name string, h *lab.Host, workbit int) *member {
	t.Helper()
	k, err := key.Search(context.Background(), workbit, key.DefaultNamespace, key.SearchOptions{})
	if err != nil {
		t.Fatal(err)
	}
	m := &member{name: name, host: h, priv: k, iface: "wh" + l.ID() + name, dir: l.Dir(), keyf: name + ".sk"}
	if err := os.WriteFile(filepath.Join(m.dir, m.keyf), []byte(k.String()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	// Before the lab's own cleanup (registered earlier, run later).
	t.Cleanup(func() { m.cleanup(t) })
	return m
}

func (m *member) pub() key.Public { return m.priv.Public() }

// up runs `wh up ./CONF private-key NAME.sk` on m from its working
// directory, detached, and returns once the daemon is up. The test's end
// takes it down with `wh down` (m.down). dns off: the lab's namespaces
// share this machine's /etc/hosts.
func (m *member) up(t *testing.T, conf string, extra ...string) {
	t.Helper()
	if err := m.start(nil, conf, extra...); err != nil {
		t.Fatal(err)
	}
}

// start runs wh up on m (through the command wrap, if any) and waits until
// it has detached. It is safe to call for different members at once.
func (m *member) start(wrap []string, conf string, extra ...string) error {
	rel, err := filepath.Rel(m.dir, conf)
	if err != nil {
		return err
	}
	args := []string{"up", "./" + rel, "interface", m.iface, "dns", "off", "--log-level", "debug"}
	if m.keyf != "" {
		args = append(args, "private-key", m.keyf)
	}
	args = append(args, extra...)
	cmd := append(append(append([]string{}, wrap...), whBin), args...)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c := m.host.Command(ctx, cmd[0], cmd[1:]...)
	c.Dir = m.dir
	if m.env != nil {
		c.Env = append(os.Environ(), m.env...)
	}
	out, err := c.CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s: %s: %v\n%s", m.name, strings.Join(cmd, " "), err, out)
	}
	m.running = true
	if want := m.iface + " is up"; !strings.Contains(string(out), want) {
		return fmt.Errorf("%s: wh up said %q, want %q", m.name, out, want)
	}
	return nil
}

// upAll brings members up at once, as machines booting would; extra, if
// not nil, gives each its extra wh up arguments.
func upAll(t *testing.T, conf string, ms []*member, extra func(*member) []string) {
	t.Helper()
	if err := startAll(conf, ms, extra); err != nil {
		t.Fatal(err)
	}
}

// startAll is upAll for any goroutine: it returns what went wrong.
func startAll(conf string, ms []*member, extra func(*member) []string) error {
	errs := make([]error, len(ms))
	var wg sync.WaitGroup
	for i, m := range ms {
		wg.Go(func() {
			var x []string
			if extra != nil {
				x = extra(m)
			}
			errs[i] = m.start(nil, conf, x...)
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// down runs `wh down` on m and checks that nothing of the daemon is left:
// no interface, no control socket, no process.
func (m *member) down(t *testing.T) {
	t.Helper()
	if err := m.stop(); err != nil {
		t.Fatal(err)
	}
}

func (m *member) stop() error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := m.wh(ctx, "down", m.iface)
	if err != nil {
		return fmt.Errorf("%s: wh down: %v\n%s", m.name, err, out)
	}
	m.running = false
	// wh down returns once the socket and the interface are gone.
	if out, err := m.host.Run(ctx, "ip", "link", "show", m.iface); err == nil {
		return fmt.Errorf("%s: interface %s still there after wh down:\n%s", m.name, m.iface, out)
	}
	if _, err := os.Stat(sockPath(m.iface)); err == nil {
		return fmt.Errorf("%s: control socket still there after wh down", m.name)
	}
	return lab.Eventually(10*time.Second, 50*time.Millisecond, func() error {
		if ps := m.daemons(); len(ps) > 0 {
			return fmt.Errorf("%s: daemon %v still running after wh down", m.name, ps)
		}
		return nil
	})
}

// kill stops m's daemon as a crash would, with SIGKILL.
func (m *member) kill(t *testing.T) {
	t.Helper()
	for _, p := range m.daemons() {
		syscall.Kill(p, syscall.SIGKILL)
	}
	if err := lab.Eventually(10*time.Second, 50*time.Millisecond, func() error {
		if ps := m.daemons(); len(ps) > 0 {
			return fmt.Errorf("%s: daemon %v survived SIGKILL", m.name, ps)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	m.running = false
	os.Remove(sockPath(m.iface)) // what a crash leaves
}

// daemons returns the pids of m's wh daemons: the wh up processes on its
// host whose command line names its interface.
func (m *member) daemons() []int {
	var ps []int
	for _, p := range m.host.Pids() {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", p))
		if err != nil {
			continue
		}
		args := strings.Split(string(b), "\x00")
		if len(args) > 1 && args[1] == "up" && slices.Contains(args, m.iface) {
			ps = append(ps, p)
		}
	}
	return ps
}

// cleanup takes m down if the test left it up (a test that passed must be
// able to), and keeps its log with the lab's, out of /var/log/wirehub.
func (m *member) cleanup(t *testing.T) {
	if m.running {
		if err := m.stop(); err != nil {
			t.Error(err)
		}
	}
	os.Remove(sockPath(m.iface))
	logPath := filepath.Join("/var/log/wirehub", m.iface+".log")
	b, err := os.ReadFile(logPath)
	if err != nil {
		return
	}
	os.Remove(logPath)
	os.WriteFile(filepath.Join(m.dir, m.name+"-wh.log"), b, 0o644)
	if t.Failed() {
		lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
		t.Logf("--- log of %s (%s):\n%s", m.name, logPath, strings.Join(lines[max(0, len(lines)-60):], "\n"))
	}
}

func sockPath(iface string) string { return filepath.Join("/var/run/wirehub", iface+".sock") }

// log returns what m's detached daemon has logged so far.
func (m *member) log() string {
	b, _ := os.ReadFile(filepath.Join("/var/log/wirehub", m.iface+".log"))
	return string(b)
}

// wh runs a wh command on m, in its working directory.
func (m *member) wh(ctx context.Context, args ...string) (string, error) {
	c := m.host.Command(ctx, whBin, args...)
	c.Dir = m.dir
	if m.env != nil {
		c.Env = append(os.Environ(), m.env...)
	}
	out, err := c.CombinedOutput()
	return string(out), err
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
