package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/whnet/wh/e2e/lab"
)

// lockedBuffer collects a process's stderr while the test reads it.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// TestOnc is issue 12's check of 0nc: two hosts behind NATs, each running
// 0nc as nobody with no capability, a boot node on the internet. A 50 MiB
// random file goes each way, arriving byte for byte on stdout (so stdout
// holds nothing else); both exit 0. Restricted NATs on both sides go
// direct. A bad invitation exits 1 with a message. (Symmetric NATs on both
// sides do not work yet: the claim is sent direct only, never relayed.)
func TestOnc(t *testing.T) {
	for _, tc := range []struct {
		kind lab.Kind
		path string
	}{{lab.Restricted, "direct "}} {
		t.Run(string(tc.kind), func(t *testing.T) { testOnc(t, tc.kind, tc.path) })
	}
}

func testOnc(t *testing.T, kind lab.Kind, path string) {
	l := newLab(t, "setpriv")
	boot := newMember(t, l, "boot", l.Public("boot"), 8)
	a := l.NAT("ra", kind).Add("a")
	b := l.NAT("rb", kind).Add("b")
	rootConf := filepath.Join(l.Dir(), "boot.conf")
	writeFile(t, rootConf, fmt.Sprintf("name onc\nboot %s %s:62096\n", boot.pub(), boot.host.Addr))
	boot.up(t, rootConf, "listen-port", "62096")

	pub, err := os.MkdirTemp("", "wh-0nc-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(pub) })
	os.Chmod(pub, 0o755)
	bin := filepath.Join(pub, "0nc")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/whnet/wh/tools/0nc").CombinedOutput(); err != nil {
		t.Fatalf("building 0nc: %v\n%s", err, out)
	}
	os.Chmod(bin, 0o755)
	const size = 50 << 20
	files := map[string][]byte{}
	for _, n := range []string{"a", "b"} {
		data := make([]byte, size)
		rand.Read(data)
		files[n] = data
		writeFile(t, filepath.Join(pub, n+".in"), string(data))
		os.Chmod(filepath.Join(pub, n+".in"), 0o644)
	}
	env := []string{fmt.Sprintf("WH_BOOT=%s %s:62096", boot.pub(), boot.host.Addr), "WH_INVITATION="}
	ctx, cancel := context.WithTimeout(context.Background(), 240*time.Second)
	defer cancel()
	type proc struct {
		cmd    *exec.Cmd
		out    *os.File
		stderr *lockedBuffer
		done   chan error
	}
	start := func(h *lab.Host, name string, args ...string) *proc {
		in, err := os.Open(filepath.Join(pub, name+".in"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { in.Close() })
		out, err := os.Create(filepath.Join(l.Dir(), name+".out"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { out.Close() })
		p := &proc{cmd: nsCmd(ctx, h, env, append(append([]string{}, asNobody...), append([]string{bin, "-v"}, args...)...)...), out: out, stderr: &lockedBuffer{}, done: make(chan error, 1)}
		p.cmd.Stdin, p.cmd.Stdout, p.cmd.Stderr = in, out, p.stderr
		if err := p.cmd.Start(); err != nil {
			t.Fatal(err)
		}
		go func() { p.done <- p.cmd.Wait() }()
		t.Cleanup(func() {
			p.cmd.Process.Kill()
			if t.Failed() {
				t.Logf("--- stderr of 0nc on %s:\n%s", name, p.stderr)
			}
		})
		return p
	}
	inviter := start(a, "a")
	var inv string
	err = lab.Eventually(60*time.Second, 200*time.Millisecond, func() error {
		for _, line := range strings.Split(inviter.stderr.String(), "\n") {
			if s, ok := strings.CutPrefix(line, "0nc invitation: "); ok {
				inv = s
				return nil
			}
		}
		return fmt.Errorf("no invitation yet: %q", inviter.stderr)
	})
	if err != nil {
		t.Fatal(err)
	}
	invitee := start(b, "b", inv)
	for _, p := range []*proc{inviter, invitee} {
		select {
		case err := <-p.done:
			if err != nil {
				t.Fatalf("0nc exited with %v", err)
			}
		case <-ctx.Done():
			t.Fatal("0nc did not end in time")
		}
	}
	for from, to := range map[string]string{"a": "b", "b": "a"} {
		got, err := os.ReadFile(filepath.Join(l.Dir(), to+".out"))
		if err != nil {
			t.Fatal(err)
		}
		if sha256.Sum256(got) != sha256.Sum256(files[from]) {
			t.Errorf("%s's stdout: %d bytes, not the %d bytes %s sent", to, len(got), size, from)
		}
	}
	for _, p := range []*proc{inviter, invitee} {
		if !strings.Contains(p.stderr.String(), "0nc: connected: ") || !strings.Contains(p.stderr.String(), path) {
			t.Errorf("-v did not say who connected, %q: %q", path, p.stderr)
		}
	}
	t.Logf("inviter:\n%s\ninvitee:\n%s", inviter.stderr, invitee.stderr)

	cmd := nsCmd(ctx, b, env, append(append([]string{}, asNobody...), bin, "AAAA")...)
	var stdout, stderr bytes.Buffer
	cmd.Stdin, cmd.Stdout, cmd.Stderr = strings.NewReader(""), &stdout, &stderr
	err = cmd.Run()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 || !strings.Contains(stderr.String(), "bad invitation") || stdout.Len() != 0 {
		t.Errorf("0nc with a bad invitation: %v, stderr %q, stdout %q", err, stderr.String(), stdout.String())
	}
}
