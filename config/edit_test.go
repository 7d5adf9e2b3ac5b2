package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestAppendAlias(t *testing.T) {
	exp := time.Date(2026, 12, 31, 0, 0, 0, 0, time.UTC)
	d := mustKey(t, keyD)
	tests := []struct {
		name, old, want string
	}{
		{"plain", "subnet 10.0.42.0/24\ntrust a " + keyA + "\n",
			"subnet 10.0.42.0/24\ntrust a " + keyA + "\nalias laptop " + keyD + " expires 2026-12-31T00:00:00Z\n"},
		{"no_final_newline", "subnet 10.0.42.0/24 # keep\n\ttrust  a   " + keyA,
			"subnet 10.0.42.0/24 # keep\n\ttrust  a   " + keyA + "\nalias laptop " + keyD + " expires 2026-12-31T00:00:00Z\n"},
		{"crlf", "\uFEFFsubnet 10.0.42.0/24\r\ntrust a " + keyA,
			"\uFEFFsubnet 10.0.42.0/24\r\ntrust a " + keyA + "\r\nalias laptop " + keyD + " expires 2026-12-31T00:00:00Z\r\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "net.conf")
			if err := os.WriteFile(path, []byte(tt.old), 0o600); err != nil {
				t.Fatal(err)
			}
			n, err := AppendAlias(path, "laptop", d, exp)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := os.ReadFile(path)
			if string(b) != tt.want {
				t.Errorf("file is\n%q\nwant\n%q", b, tt.want)
			}
			c, ok := n.Host("laptop")
			if !ok || c.Role != Alias || c.Key != d || !c.Expires.Equal(exp) || c.IP.String() != "10.0.42.3" {
				t.Errorf("returned network has laptop = %+v, %v", c, ok)
			}
			if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
				t.Errorf("mode %v, want 0600 kept", fi.Mode().Perm())
			}
			if ents, _ := os.ReadDir(filepath.Dir(path)); len(ents) != 1 {
				t.Errorf("%d files in the directory, want the config alone", len(ents))
			}
		})
	}
}

func TestAppendAliasRefuses(t *testing.T) {
	old := "subnet 10.0.42.0/24\ntrust Laptop " + keyA + "\n"
	tests := []struct {
		name, host, key, want string
	}{
		{"name_in_use", "laptop", keyD, `host name "laptop" is already used on line 2`},
		{"key_in_use", "other", keyA, `is already listed on line 2`},
		{"bad_name", "-x", keyD, `is not a host name`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "net.conf")
			if err := os.WriteFile(path, []byte(old), 0o644); err != nil {
				t.Fatal(err)
			}
			_, err := AppendAlias(path, tt.host, mustKey(t, tt.key), time.Time{})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("AppendAlias = %v, want an error saying %q", err, tt.want)
			}
			if b, _ := os.ReadFile(path); string(b) != old {
				t.Errorf("file changed to %q", b)
			}
		})
	}
	path := filepath.Join(t.TempDir(), "net.conf")
	os.WriteFile(path, []byte("name public\n"), 0o644)
	if _, err := AppendAlias(path, "x", mustKey(t, keyD), time.Time{}); err == nil || !strings.Contains(err.Error(), "no subnet") {
		t.Errorf("without a subnet: %v", err)
	}
}
