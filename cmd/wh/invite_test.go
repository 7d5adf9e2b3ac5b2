package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/whnet/wh/config"
	"github.com/whnet/wh/invite"
)

func TestInvite(t *testing.T) {
	path := filepath.Join(t.TempDir(), "net.conf")
	old := "name t\nworkbit 4\nsubnet 10.0.42.0/24\n\ntrust a " + nodeA + "   # the first\n"
	if err := os.WriteFile(path, []byte(old), 0o644); err != nil {
		t.Fatal(err)
	}
	out, errs, code := wh(t, "", "invite", path, "laptop", "inviter", "a", "expires", "7d")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	b, _ := os.ReadFile(path)
	if !strings.HasPrefix(string(b), old) || strings.Count(string(b), "\n") != strings.Count(old, "\n")+1 {
		t.Fatalf("config is now\n%s", b)
	}
	n, err := config.Parse(path, b)
	if err != nil {
		t.Fatal(err)
	}
	slot, ok := n.Host("laptop")
	if !ok || slot.Role != config.Alias || slot.Expires.IsZero() || slot.IP.String() != "10.0.42.3" {
		t.Fatalf("laptop = %+v", slot)
	}
	m := regexp.MustCompile(`wh up (\S+) invitation (\S+)`).FindStringSubmatch(out)
	if m == nil || m[1] != path {
		t.Fatalf("no command for the invitee in\n%s", out)
	}
	inv, err := invite.Parse(m[2], n.Namespace, n.Workbit)
	if err != nil {
		t.Fatal(err)
	}
	if inv.Inviter.String() != nodeA || inv.Alias.Public() != slot.Key {
		t.Errorf("invitation from %v for %v, want %s for %v", inv.Inviter, inv.Alias.Public(), nodeA, slot.Key)
	}

	// The name is taken now.
	if _, errs, code := wh(t, "", "invite", path, "Laptop", "inviter", "a"); code != 1 || !strings.Contains(errs, `"Laptop" is already used on line 6`) {
		t.Errorf("second laptop: exit %d, %q", code, errs)
	}
	if _, errs, code := wh(t, "", "invite", path, "phone", "expires", "soon", "inviter", "a"); code != 2 {
		t.Errorf("expires soon: exit %d, %q", code, errs)
	}
	if b2, _ := os.ReadFile(path); string(b2) != string(b) {
		t.Errorf("a refused invite changed the config")
	}
}

func TestReadInvitation(t *testing.T) {
	alias := "OgVwBkEoLpIBTSY2CMUbqyD9he19cOD2kpAEjYQQpS0" // the alias of WireHub's README invitation
	const readme = "ncuJonSJOS1DlFtb3HdgDJczPilrs0oPR9pwRpa_7WXwO0z-xioe_g9cdcMZkpV2b5lN7j3eLILjplBffvjdcw"
	with, _ := config.Parse("n.conf", []byte("subnet 10.0.42.0/24\nalias client "+alias+"\n"))
	without, _ := config.Parse("n.conf", []byte("subnet 10.0.42.0/24\n"))
	file := filepath.Join(t.TempDir(), "inv")
	os.WriteFile(file, []byte(readme+"\n"), 0o600)

	inv, err := readInvitation(upOptions{invitationFile: file}, with)
	if err != nil || inv.Alias.Public().String() != alias {
		t.Fatalf("from a file: %+v, %v", inv, err)
	}
	t.Setenv(envInvitation, readme)
	if inv, err := readInvitation(upOptions{}, with); err != nil || inv == nil {
		t.Errorf("from %s: %+v, %v", envInvitation, inv, err)
	}
	if _, err := readInvitation(upOptions{invitation: readme}, without); err == nil || !strings.Contains(err.Error(), "not an alias line") {
		t.Errorf("alias not in the config: %v", err)
	}
	if _, err := readInvitation(upOptions{invitation: readme[:80]}, with); err == nil || !strings.Contains(err.Error(), "wrong length") {
		t.Errorf("short invitation: %v", err)
	}
	if _, err := readInvitation(upOptions{invitation: readme, invitationFile: file}, with); err == nil {
		t.Error("both invitation and invitation-file accepted")
	}
}
