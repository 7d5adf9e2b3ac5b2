package resolver

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func TestParseMode(t *testing.T) {
	for _, m := range []Mode{ModeAuto, ModeOff, ModeHosts, ModeResolved} {
		t.Run(m.String(), func(t *testing.T) {
			got, err := ParseMode(m.String())
			if err != nil || got != m {
				t.Errorf("ParseMode(%q) = %v, %v", m.String(), got, err)
			}
			var v Mode
			if err := v.Set(m.String()); err != nil || v != m {
				t.Errorf("Set(%q) = %v, %v", m.String(), v, err)
			}
		})
	}
	for _, s := range []string{"", "Hosts", "systemd", "on"} {
		if _, err := ParseMode(s); !errors.Is(err, ErrUnknownMode) {
			t.Errorf("ParseMode(%q): err = %v, want ErrUnknownMode", s, err)
		}
	}
	v := ModeHosts
	if err := v.Set("bogus"); err == nil || v != ModeHosts {
		t.Errorf("Set(bogus) = %v, left %v", err, v)
	}
	if got := Mode(9).String(); got != "Mode(9)" {
		t.Errorf("Mode(9).String() = %q", got)
	}
}

func TestDetect(t *testing.T) {
	stub := "nameserver 127.0.0.53\noptions edns0 trust-ad\n"
	plain := "nameserver 10.255.255.53\n"
	nssResolve := "passwd: files\nhosts: mymachines resolve [!UNAVAIL=return] files myhostname dns\n"
	nssPlain := "hosts: files dns # resolve would be here\n"
	found := func(string) (string, error) { return "/usr/bin/resolvectl", nil }
	missing := func(string) (string, error) { return "", errors.New("not found") }
	tests := []struct {
		name        string
		resolvedDir bool
		lookPath    func(string) (string, error)
		resolvConf  string
		nsswitch    string
		want        Mode
	}{
		{"resolved_stub", true, found, stub, nssPlain, ModeResolved},
		{"resolved_nss", true, found, plain, nssResolve, ModeResolved},
		{"resolved_unused", true, found, plain, nssPlain, ModeHosts},
		{"no_resolved", false, found, stub, nssResolve, ModeHosts},
		{"no_resolvectl", true, missing, stub, nssResolve, ModeHosts},
		{"no_files", true, found, "", "", ModeHosts},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			p := systemPaths{
				resolvedDir: filepath.Join(dir, "resolve"),
				resolvConf:  filepath.Join(dir, "resolv.conf"),
				nsswitch:    filepath.Join(dir, "nsswitch.conf"),
				lookPath:    tt.lookPath,
			}
			if tt.resolvedDir {
				if err := os.Mkdir(p.resolvedDir, 0o755); err != nil {
					t.Fatal(err)
				}
			}
			for path, content := range map[string]string{p.resolvConf: tt.resolvConf, p.nsswitch: tt.nsswitch} {
				if content == "" {
					continue
				}
				if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			if got := detect(p); got != tt.want {
				t.Errorf("detect = %v, want %v", got, tt.want)
			}
		})
	}
	if m := Detect(); m != ModeHosts && m != ModeResolved {
		t.Errorf("Detect() = %v", m)
	}
}
