package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/whnet/wh/config"
	"github.com/whnet/wh/invite"
	"github.com/whnet/wh/key"
	"github.com/whnet/wh/node"
	"github.com/whnet/wh/resolver"
)

// buffer is a bytes.Buffer safe for one writer and a reader.
type buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *buffer) Len() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Len()
}

func (b *buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// bootNode runs a DHT node on loopback and returns its boot line's
// arguments, "KEY 127.0.0.1:PORT", for WH_BOOT.
func bootNode(t *testing.T) string {
	k, err := key.Search(context.Background(), 4, "test", key.SearchOptions{})
	if err != nil {
		t.Fatal(err)
	}
	c, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := uint16(c.LocalAddr().(*net.UDPAddr).Port)
	c.Close()
	boot := fmt.Sprintf("%s 127.0.0.1:%d", k.Public(), p)
	n, err := config.Parse("boot.conf", []byte("name t\nnamespace test\nworkbit 4\nboot "+boot+"\n"))
	if err != nil {
		t.Fatal(err)
	}
	nd, err := node.New(n, k, node.Options{Interface: "0ncboot", ListenPort: p, Mode: node.ModeDirect, DNS: resolver.ModeOff, NoDNS: true, NoPortMapping: true, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { nd.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done; nd.Close() })
	return boot
}

// setup runs a boot node and points 0nc at it, with a config file of the
// test namespace; it returns the config's path.
func setup(t *testing.T) string {
	testOptions = func(o *node.Options) {
		o.Mode = node.ModeDirect
		o.NoPortMapping = true
		o.Logger = slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	t.Cleanup(func() { testOptions = nil })
	boot := bootNode(t)
	path := t.TempDir() + "/0nc.conf"
	if err := writeFile(path, "namespace test\nworkbit 4\nboot "+boot+"\n"); err != nil {
		t.Fatal(err)
	}
	return path
}

type result struct {
	code           int
	stdout, stderr *buffer
}

// start runs 0nc with args and stdin, in the background.
func start(args []string, stdin io.Reader, env map[string]string) (*result, <-chan struct{}) {
	r := &result{stdout: &buffer{}, stderr: &buffer{}}
	done := make(chan struct{})
	go func() {
		defer close(done)
		r.code = run(context.Background(), args, stdin, r.stdout, r.stderr, func(k string) string { return env[k] })
	}()
	return r, done
}

func wait(t *testing.T, what string, done <-chan struct{}, d time.Duration) {
	t.Helper()
	select {
	case <-done:
	case <-time.After(d):
		t.Fatalf("%s did not end within %v", what, d)
	}
}

// invitation waits for the invitation on r's stderr.
func invitation(t *testing.T, r *result) string {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		for _, l := range strings.Split(r.stderr.String(), "\n") {
			if s, ok := strings.CutPrefix(l, "0nc invitation: "); ok {
				return s
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("no invitation; stderr %q", r.stderr.String())
	return ""
}

func random(t *testing.T, n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

// TestPipe: a few MiB go through both ways, byte for byte, each way
// closed at its own end of input (the inviter's input ends only after
// the invitee's has all arrived); a second claimant is refused with the
// inviter's reason; both ends exit 0.
func TestPipe(t *testing.T) {
	cfg := setup(t)
	toInvitee, toInviter := random(t, 3<<20+17), random(t, 2<<20+5)
	pr, pw := io.Pipe()
	inviter, inviterDone := start([]string{"-v", cfg}, pr, nil)
	inv := invitation(t, inviter)
	if len(inv) < 90 {
		t.Fatalf("invitation %q is not the long form", inv)
	}
	// The long form, no boot node: the invitee needs nothing else (but
	// the test's namespace).
	noBoot := t.TempDir() + "/ns.conf"
	if err := writeFile(noBoot, "namespace test\nworkbit 4\n"); err != nil {
		t.Fatal(err)
	}
	invitee, inviteeDone := start([]string{"-v", noBoot, inv}, bytes.NewReader(toInviter), map[string]string{})

	deadline := time.Now().Add(90 * time.Second)
	for inviter.stdout.Len() < len(toInviter) {
		select {
		case <-inviteeDone:
			t.Fatalf("the invitee ended: %d %q", invitee.code, invitee.stderr)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("the inviter received %d of %d bytes; inviter %q, invitee %q", inviter.stdout.Len(), len(toInviter), inviter.stderr, invitee.stderr)
		}
		time.Sleep(50 * time.Millisecond)
	}
	second, secondDone := start([]string{cfg, inv}, strings.NewReader("intruder"), nil)
	wait(t, "the second claimant", secondDone, 90*time.Second)
	if second.code != 1 || !strings.Contains(second.stderr.String(), "alias peer is already claimed") || second.stdout.Len() != 0 {
		t.Errorf("second claimant: exit %d, stderr %q, stdout %d bytes", second.code, second.stderr, second.stdout.Len())
	}

	go func() { pw.Write(toInvitee); pw.Close() }()
	wait(t, "the invitee", inviteeDone, 90*time.Second)
	wait(t, "the inviter", inviterDone, 30*time.Second)
	if inviter.code != 0 || invitee.code != 0 {
		t.Fatalf("exit codes: inviter %d (%q), invitee %d (%q)", inviter.code, inviter.stderr, invitee.code, invitee.stderr)
	}
	if got := inviter.stdout.String(); sha256.Sum256([]byte(got)) != sha256.Sum256(toInviter) {
		t.Errorf("the inviter received %d bytes, not the %d sent", len(got), len(toInviter))
	}
	if got := invitee.stdout.String(); sha256.Sum256([]byte(got)) != sha256.Sum256(toInvitee) {
		t.Errorf("the invitee received %d bytes, not the %d sent", len(got), len(toInvitee))
	}
	for _, r := range []*result{inviter, invitee} {
		if !strings.Contains(r.stderr.String(), "0nc: connected: ") || !strings.Contains(r.stderr.String(), "direct 127.0.0.1:") {
			t.Errorf("-v says neither who connected nor the path: %q", r.stderr)
		}
	}
}

// TestShortInvitation: WireHub's 86-character form, with the boot node
// from CONFIG, connects too; the inviter sends nothing.
func TestShortInvitation(t *testing.T) {
	cfg := setup(t)
	inviter, inviterDone := start([]string{cfg}, strings.NewReader(""), nil)
	long := invitation(t, inviter)
	inv, err := inviteParse(long)
	if err != nil {
		t.Fatal(err)
	}
	inv.Addrs, inv.Contacts = nil, nil
	msg := []byte("hello over the short form\n")
	invitee, inviteeDone := start([]string{cfg, inv.String()}, bytes.NewReader(msg), nil)
	wait(t, "the invitee", inviteeDone, 90*time.Second)
	wait(t, "the inviter", inviterDone, 30*time.Second)
	if inviter.code != 0 || invitee.code != 0 || inviter.stdout.String() != string(msg) || invitee.stdout.Len() != 0 {
		t.Fatalf("inviter %d %q out %q; invitee %d %q out %q", inviter.code, inviter.stderr, inviter.stdout, invitee.code, invitee.stderr, invitee.stdout)
	}
}

// TestBadInvitation: an invitation that does not parse, or one
// whose alias key is zero, exits 1 with a message and nothing on stdout.
func TestBadInvitation(t *testing.T) {
	for _, tc := range []struct{ arg, want string }{
		{"not-an-invitation", "bad invitation: invitation has the wrong length"},
		{strings.Repeat("!", 86), "bad invitation: invitation is not URL-safe base64"},
		{strings.Repeat("A", 86), "bad invitation: alias key is all zeros"},
	} {
		r, done := start([]string{tc.arg}, strings.NewReader(""), map[string]string{})
		<-done
		if r.code != 1 || !strings.Contains(r.stderr.String(), tc.want) || r.stdout.Len() != 0 {
			t.Errorf("0nc %q: exit %d, stderr %q, stdout %q; want 1 and %q", tc.arg, r.code, r.stderr, r.stdout, tc.want)
		}
	}
}

func writeFile(path, s string) error { return os.WriteFile(path, []byte(s), 0o600) }

func inviteParse(s string) (invite.Invitation, error) { return invite.Parse(s, "test", 4) }

// TestNotFound: an invitation whose inviter is gone exits 1 once the
// time to find it has passed, saying so.
func TestNotFound(t *testing.T) {
	cfg := setup(t)
	old := findTimeout
	findTimeout = 3 * time.Second
	t.Cleanup(func() { findTimeout = old })
	var inv invite.Invitation
	for _, k := range []*key.Private{new(key.Private), &inv.Alias} {
		var err error
		if *k, err = key.Search(context.Background(), 4, "test", key.SearchOptions{}); err != nil {
			t.Fatal(err)
		}
		if k != &inv.Alias {
			inv.Inviter = k.Public()
		}
	}
	r, done := start([]string{cfg, inv.String()}, strings.NewReader("lost"), nil)
	wait(t, "0nc", done, 60*time.Second)
	if r.code != 1 || !strings.Contains(r.stderr.String(), "the inviter was not found within 3s") || r.stdout.Len() != 0 {
		t.Errorf("exit %d, stderr %q, stdout %q", r.code, r.stderr, r.stdout)
	}
}
