package resolver

import (
	"context"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// fakeResolvectl records the commands an integrator runs; fail makes the
// command whose arguments start with it fail.
type fakeResolvectl struct {
	cmds []string
	fail string
}

func (f *fakeResolvectl) run(_ context.Context, name string, args ...string) error {
	cmd := name + " " + strings.Join(args, " ")
	f.cmds = append(f.cmds, cmd)
	if f.fail != "" && strings.HasPrefix(strings.Join(args, " "), f.fail) {
		return errors.New("exit status 1")
	}
	return nil
}

func resolvedIntegrator(t *testing.T) (*Integrator, *fakeResolvectl) {
	fake := &fakeResolvectl{}
	i := NewIntegrator(IntegratorOptions{Mode: ModeResolved, HostsPath: filepath.Join(t.TempDir(), "hosts"), Logger: testLogger(t)})
	i.run = fake.run
	return i, fake
}

func TestResolvedMode(t *testing.T) {
	server := netip.MustParseAddrPort("10.0.42.2:53")
	tests := []struct {
		name   string
		iface  string
		zone   Zone
		server netip.AddrPort
		want   []string
	}{
		{"up", "wh0", zone1, server, []string{
			"resolvectl dns wh0 10.0.42.2",
			"resolvectl default-route wh0 false",
			"resolvectl domain wh0 ~tutorial",
		}},
		{"other_port", "wh0", zone1, netip.MustParseAddrPort("[2001:db8::1]:5353"), []string{
			"resolvectl dns wh0 [2001:db8::1]:5353",
			"resolvectl default-route wh0 false",
			"resolvectl domain wh0 ~tutorial",
		}},
		{"no_domain", "wh0", Zone{Hosts: zone1.Hosts}, server, []string{
			"resolvectl dns wh0 10.0.42.2",
			"resolvectl default-route wh0 false",
		}},
		{"domain_normalized", "wh0", Zone{Domain: "Corp.Example."}, server, []string{
			"resolvectl dns wh0 10.0.42.2",
			"resolvectl default-route wh0 false",
			"resolvectl domain wh0 ~corp.example",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			i, fake := resolvedIntegrator(t)
			if err := i.Apply(tt.iface, tt.zone, tt.server); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, fake.cmds); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
			if _, err := os.Stat(i.hostsPath); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("resolved mode touched the hosts file (%v)", err)
			}
		})
	}
}

func TestResolvedModeUndo(t *testing.T) {
	server := netip.MustParseAddrPort("10.0.42.2:53")
	t.Run("revert", func(t *testing.T) {
		i, fake := resolvedIntegrator(t)
		if err := i.Apply("lo", zone1, server); err != nil { // lo exists everywhere
			t.Fatal(err)
		}
		fake.cmds = nil
		for range 2 {
			if err := i.Undo(); err != nil {
				t.Fatal(err)
			}
		}
		if diff := cmp.Diff([]string{"resolvectl revert lo"}, fake.cmds); diff != "" {
			t.Errorf("(-want +got):\n%s", diff)
		}
	})
	t.Run("link_gone", func(t *testing.T) {
		i, fake := resolvedIntegrator(t)
		if err := i.Apply("whgone0", zone1, server); err != nil {
			t.Fatal(err)
		}
		fake.cmds = nil
		if err := i.Undo(); err != nil {
			t.Fatal(err)
		}
		if len(fake.cmds) != 0 {
			t.Errorf("ran %v for a link that does not exist", fake.cmds)
		}
	})
	t.Run("failure_reported", func(t *testing.T) {
		i, fake := resolvedIntegrator(t)
		fake.fail = "domain"
		if err := i.Apply("wh0", zone1, server); err == nil || !strings.Contains(err.Error(), "wh0") {
			t.Errorf("err = %v, want the failure, naming the interface", err)
		}
	})
	t.Run("loopback_server", func(t *testing.T) {
		i, fake := resolvedIntegrator(t)
		for _, s := range []string{"127.119.1.2:53", "[::1]:53"} {
			if err := i.Apply("wh0", zone1, netip.MustParseAddrPort(s)); !errors.Is(err, ErrLoopbackServer) {
				t.Errorf("Apply with %s: err = %v, want ErrLoopbackServer", s, err)
			}
		}
		if len(fake.cmds) != 0 {
			t.Errorf("ran %v", fake.cmds)
		}
	})
	t.Run("no_server", func(t *testing.T) {
		i, fake := resolvedIntegrator(t)
		if err := i.Apply("wh0", zone1, netip.AddrPort{}); err == nil {
			t.Error("Apply without a server address succeeded")
		}
		if len(fake.cmds) != 0 {
			t.Errorf("ran %v", fake.cmds)
		}
	})
	t.Run("new_interface_reverts_old", func(t *testing.T) {
		i, fake := resolvedIntegrator(t)
		for _, iface := range []string{"lo", "wh1"} {
			if err := i.Apply(iface, zone1, server); err != nil {
				t.Fatal(err)
			}
		}
		if got := fake.cmds[3]; got != "resolvectl revert lo" {
			t.Errorf("fourth command %q, want the revert of lo; all: %q", got, fake.cmds)
		}
	})
}

func TestOffMode(t *testing.T) {
	path := filepath.Join(t.TempDir(), "hosts")
	i := NewIntegrator(IntegratorOptions{Mode: ModeOff, HostsPath: path})
	i.run = func(context.Context, string, ...string) error {
		t.Error("off mode ran a command")
		return nil
	}
	if err := i.Apply("wh0", zone1, netip.MustParseAddrPort("10.0.42.2:53")); err != nil {
		t.Fatal(err)
	}
	if err := i.Undo(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("off mode created the hosts file (%v)", err)
	}
	if i.Mode().String() != "off" {
		t.Errorf("Mode() = %v", i.Mode())
	}
}

func TestApplyRejectsBadInterface(t *testing.T) {
	i, path := hostsIntegrator(t, userHosts)
	for _, iface := range []string{"", "wh 0", "wh0\n# END wh wh1"} {
		if err := i.Apply(iface, zone1, netip.AddrPort{}); !errors.Is(err, ErrBadName) {
			t.Errorf("Apply(%q): err = %v, want ErrBadName", iface, err)
		}
	}
	if got := readFile(t, path); got != userHosts {
		t.Errorf("file changed to %q", got)
	}
}
