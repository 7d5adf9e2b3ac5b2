package ipc

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

func TestCallRoundTrip(t *testing.T) {
	dir := t.TempDir()
	path := SocketPath(dir, "wh-test")
	srv, err := Listen(path, "v-test", func(_ context.Context, req Request) (any, error) {
		switch req.Verb {
		case "echo":
			return req.Args, nil
		case "fail":
			return nil, errors.New("it failed")
		}
		return nil, errors.New("unknown verb " + req.Verb)
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()

	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if perm := fi.Mode().Perm(); perm != 0o600 {
		t.Errorf("socket mode %v, want 0600", perm)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var got []string
	if err := Call(ctx, path, "echo", []string{"a", "b c"}, &got); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, []string{"a", "b c"}) {
		t.Errorf("echo = %q", got)
	}
	if err := Call(ctx, path, "fail", nil, nil); err == nil || err.Error() != "it failed" {
		t.Errorf("fail: err = %v", err)
	}
	// Exact verbs: a verb containing another is not that verb.
	if err := Call(ctx, path, "echoes", nil, nil); err == nil {
		t.Errorf("echoes: want an error")
	}
	ifs, err := Interfaces(dir)
	if err != nil || !slices.Equal(ifs, []string{"wh-test"}) {
		t.Errorf("Interfaces = %q, %v", ifs, err)
	}

	// A second daemon on the same socket is refused.
	if _, err := Listen(path, "v", nil, nil); err == nil {
		t.Errorf("second Listen on a live socket succeeded")
	}
	srv.Close()
	srv.Close()
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("socket left after Close: %v", err)
	}
	if err := Call(ctx, path, "echo", nil, nil); !errors.Is(err, ErrNotRunning) {
		t.Errorf("Call after Close: %v, want ErrNotRunning", err)
	}
}

func TestListenReplacesStaleSocket(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "x.sock")
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	srv, err := Listen(path, "v", func(context.Context, Request) (any, error) { return "ok", nil }, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	var s string
	if err := Call(context.Background(), path, "x", nil, &s); err != nil || s != "ok" {
		t.Fatalf("Call = %q, %v", s, err)
	}
}

func TestCallHonoursContext(t *testing.T) {
	path := SocketPath(t.TempDir(), "slow")
	srv, err := Listen(path, "v", func(ctx context.Context, _ Request) (any, error) {
		<-ctx.Done()
		return nil, ctx.Err()
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	// The handler answers only once the server closes, after Call: Call
	// returns at all only because it honours its deadline.
	// Call's error is the context's or, when the socket's deadline (set
	// from the context's) fires first, the socket's.
	err = Call(ctx, path, "wait", nil, nil)
	if !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("Call = %v, want a deadline exceeded", err)
	}
	srv.Close() // must not hang on the blocked handler
}

func TestUserDir(t *testing.T) {
	t.Setenv("XDG_RUNTIME_DIR", "/run/user/1000")
	want := "/run/user/1000/wirehub"
	if os.Geteuid() == 0 {
		want = Dir
	}
	if got := UserDir(); got != want {
		t.Errorf("UserDir = %q, want %q", got, want)
	}
}

// TestPrivateDir: a directory that others may write, or that another user
// owns, is refused; a missing one is made 0700.
func TestPrivateDir(t *testing.T) {
	base := t.TempDir()
	fresh := filepath.Join(base, "a", "wirehub")
	if err := PrivateDir(fresh); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(fresh); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("made %v, %v; want mode 0700", fi.Mode(), err)
	}
	open := filepath.Join(base, "open")
	os.Mkdir(open, 0o700)
	os.Chmod(open, 0o777)
	if err := PrivateDir(open); err == nil {
		t.Error("a world-writable directory was accepted")
	}
	file := filepath.Join(base, "file")
	os.WriteFile(file, nil, 0o600)
	if err := PrivateDir(file); err == nil {
		t.Error("a file was accepted")
	}
	if os.Geteuid() == 0 {
		other := filepath.Join(base, "other")
		os.Mkdir(other, 0o700)
		if err := os.Chown(other, 65534, 65534); err != nil {
			t.Fatal(err)
		}
		if err := PrivateDir(other); err == nil {
			t.Error("another user's directory was accepted")
		}
	}
}
