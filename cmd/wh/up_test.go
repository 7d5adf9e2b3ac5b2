package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/whnet/wh/key"
)

// TestGenkeyWarnsAccessibleFile: as wg genkey, wh genkey warns when its
// standard output is a file that others can access, and still writes the
// key; it says nothing for a private file or a pipe.
func TestGenkeyWarnsAccessibleFile(t *testing.T) {
	tests := []struct {
		mode os.FileMode
		want string // in stderr; "" for no warning
	}{
		{0o644, "Warning: writing to world accessible file."},
		{0o604, "Warning: writing to world accessible file."},
		{0o640, "Warning: writing to group accessible file."},
		{0o620, "Warning: writing to group accessible file."},
		{0o600, ""},
		{0o400, ""},
	}
	for _, tc := range tests {
		t.Run(tc.mode.String(), func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "node.sk")
			f, err := os.Create(path)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if err := f.Chmod(tc.mode); err != nil { // whatever the umask; f stays writable
				t.Fatal(err)
			}
			var errb bytes.Buffer
			code := run(context.Background(), []string{"genkey", "workbit", "0"}, stdio{In: strings.NewReader(""), Out: f, Err: &errb})
			if code != 0 {
				t.Fatalf("exit %d: %s", code, errb.String())
			}
			if b, _ := os.ReadFile(path); len(strings.TrimSpace(string(b))) != 44 {
				t.Errorf("the file holds %q, want a key", b)
			}
			stderr := errb.String()
			if tc.want == "" {
				if stderr != "" {
					t.Errorf("warned about a private file: %q", stderr)
				}
				return
			}
			if !strings.Contains(stderr, tc.want) || !strings.Contains(stderr, "chmod 600 "+path) {
				t.Errorf("stderr %q: want %q and `chmod 600 %s`", stderr, tc.want, path)
			}
		})
	}
	var out, errb bytes.Buffer
	if code := run(context.Background(), []string{"genkey", "workbit", "0"}, stdio{In: strings.NewReader(""), Out: &out, Err: &errb}); code != 0 || errb.Len() != 0 {
		t.Errorf("genkey to a pipe: exit %d, stderr %q", code, errb.String())
	}
}

// writeKey writes a fresh key to dir/name with mode perm, whatever the umask.
func writeKey(t *testing.T, dir, name string, perm os.FileMode) string {
	t.Helper()
	k, err := key.NewPrivate()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, []byte(k.String()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, perm); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestUpRefusesAccessibleKey: wh up refuses a private-key file that its
// group or others can access, naming the chmod that fixes it (with the
// file's absolute path when it was given relative), and reads one only
// its owner can.
func TestUpRefusesAccessibleKey(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	writeFile(t, filepath.Join(dir, "net.conf"), "name n\nsubnet 10.0.42.0/24\nworkbit 0\n")
	for _, perm := range []os.FileMode{0o644, 0o640, 0o604, 0o660, 0o602} {
		t.Run(perm.String(), func(t *testing.T) {
			path := writeKey(t, dir, "node.sk", perm)
			// The interface name is invalid, and checked after the key: if
			// the key passed, up would stop there rather than start a node.
			_, errs, code := wh(t, "", "up", "./net.conf", "private-key", "node.sk", "dns", "off", "interface", "not/valid")
			if code != exitFailure {
				t.Errorf("exit %d, want %d (stderr %q)", code, exitFailure, errs)
			}
			if want := "`chmod 600 " + path + "`"; !strings.Contains(errs, want) {
				t.Errorf("stderr %q does not say %s", errs, want)
			}
		})
	}
	for _, perm := range []os.FileMode{0o600, 0o400} {
		path := writeKey(t, dir, "ok.sk", perm)
		if _, err := readKeyFile(path); err != nil {
			t.Errorf("mode %v: %v", perm, err)
		}
	}
}

// TestPlanMakesPathsAbsolute: the daemon runs in /, so `wh up` resolves
// the config and key paths before it detaches; the node re-reads the
// absolute config path on reload.
func TestPlanMakesPathsAbsolute(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	// A node whose key is not in the config is headless: plan needs no
	// rights to create an interface.
	writeFile(t, filepath.Join(dir, "net.conf"), "name n\nsubnet 10.0.42.0/24\nworkbit 0\n")
	writeKey(t, dir, "node.sk", 0o600)
	o := upOptions{keyFile: "node.sk", mode: "unknown", dns: "off", logLevel: "info"}
	p, err := plan(context.Background(), stdio{Err: new(bytes.Buffer)}, "./net.conf", &o)
	if err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(dir, "net.conf")
	if p.cfgPath != conf || p.opts.ConfigPath != conf {
		t.Errorf("config path %q, node's %q, want %q", p.cfgPath, p.opts.ConfigPath, conf)
	}
	if want := filepath.Join(dir, "node.sk"); o.keyFile != want {
		t.Errorf("key path %q, want %q", o.keyFile, want)
	}
}

func writeFile(t *testing.T, path, s string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}
