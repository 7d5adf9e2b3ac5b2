package resolver

import (
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// zone1 and zone2 are a network before and after a reload.
var (
	zone1 = Zone{Domain: "tutorial", Hosts: []Host{
		{Name: "node_a", IPv4: netip.MustParseAddr("10.0.42.2"), IPv6: netip.MustParseAddr("2001:1075:b63:9ef6:5070:2e62:2de:e917")},
	}}
	zone2 = Zone{Domain: "tutorial", Hosts: []Host{
		{Name: "node_a", IPv4: netip.MustParseAddr("10.0.42.2")},
		{Name: "node_c", IPv4: netip.MustParseAddr("10.0.42.5")},
	}}
	block1 = "# BEGIN wh wh0\n" +
		"10.0.42.2\tnode_a.tutorial node_a\n" +
		"2001:1075:b63:9ef6:5070:2e62:2de:e917\tnode_a.tutorial node_a\n" +
		"# END wh wh0\n"
	block2 = "# BEGIN wh wh0\n" +
		"10.0.42.2\tnode_a.tutorial node_a\n" +
		"10.0.42.5\tnode_c.tutorial node_c\n" +
		"# END wh wh0\n"
	otherBlock = "# BEGIN wh wh1\n10.9.0.2\tpeer.other peer\n# END wh wh1\n"
)

// userHosts has what users put in hosts files: tabs, comments, blank
// lines, CRLF, trailing blanks, and a line that merely mentions wh.
const userHosts = "127.0.0.1\tlocalhost\n" +
	"# a comment about # BEGIN wh wh0\n" +
	"\n" +
	"::1     localhost ip6-localhost   \n" +
	"192.168.1.10 nas # the NAS\r\n"

func TestHostsLines(t *testing.T) {
	got := hostsLines(Zone{Domain: "Tutorial.", Hosts: []Host{
		{Name: "Node_A", IPv4: netip.MustParseAddr("10.0.42.2"), IPv6: netip.MustParseAddr("2001:db8::2")},
		{Name: "v6only", IPv6: netip.MustParseAddr("2001:db8::3")},
		{Name: "bad name", IPv4: netip.MustParseAddr("10.0.42.4")},
	}})
	want := []string{
		"10.0.42.2\tnode_a.tutorial node_a",
		"2001:db8::2\tnode_a.tutorial node_a",
		"2001:db8::3\tv6only.tutorial v6only",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	if got := hostsLines(Zone{Hosts: zone1.Hosts}); got[0] != "10.0.42.2\tnode_a" {
		t.Errorf("without a domain: %q, want bare names only", got)
	}
}

func TestSpliceBlock(t *testing.T) {
	body1, body2 := hostsLines(zone1), hostsLines(zone2)
	tests := []struct {
		name    string
		in      string
		iface   string
		body    []string
		want    string
		wantErr error
	}{
		{"append", userHosts, "wh0", body1, userHosts + block1, nil},
		{"empty_file", "", "wh0", body1, block1, nil},
		{"idempotent", userHosts + block1, "wh0", body1, userHosts + block1, nil},
		{"replace_in_place", "a\n" + block1 + "b\n", "wh0", body2, "a\n" + block2 + "b\n", nil},
		{"remove", "a\n" + block1 + "b\n", "wh0", nil, "a\nb\n", nil},
		{"remove_absent", userHosts, "wh0", nil, userHosts, nil},
		{"other_interface_kept", otherBlock + block1, "wh0", body2, otherBlock + block2, nil},
		{"other_interface_kept_on_remove", block1 + otherBlock, "wh0", nil, otherBlock, nil},
		{"no_trailing_newline", "a\nb", "wh0", body1, "a\nb\n" + strings.TrimSuffix(block1, "\n"), nil},
		{"no_trailing_newline_removed", "a\nb\n" + strings.TrimSuffix(block1, "\n"), "wh0", nil, "a\nb", nil},
		{"no_trailing_newline_reload", "a\nb\n" + strings.TrimSuffix(block1, "\n"), "wh0", body2, "a\nb\n" + strings.TrimSuffix(block2, "\n"), nil},
		{"duplicate_blocks_merged", block1 + "x\n" + block1, "wh0", body2, block2 + "x\n", nil},
		{"marker_with_trailing_blanks", "# BEGIN wh wh0 \r\nold\n# END wh wh0\t\n", "wh0", body1, block1, nil},
		{"prefix_interface_untouched", "# BEGIN wh wh01\nx\n# END wh wh01\n", "wh0", nil, "# BEGIN wh wh01\nx\n# END wh wh01\n", nil},
		{"unterminated", "a\n# BEGIN wh wh0\nb\n", "wh0", body1, "", ErrUnterminatedBlock},
		{"bad_iface", "", "wh 0", body1, "", ErrBadName},
		{"empty_iface", "", "", body1, "", ErrBadName},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := spliceBlock([]byte(tt.in), tt.iface, tt.body)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if diff := cmp.Diff(tt.want, string(got)); err == nil && diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

// hostsIntegrator returns an integrator in hosts mode on a temporary hosts
// file holding content.
func hostsIntegrator(t *testing.T, content string) (*Integrator, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "hosts")
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return NewIntegrator(IntegratorOptions{Mode: ModeHosts, HostsPath: path, Logger: testLogger(t)}), path
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestHostsModeLifecycle(t *testing.T) {
	files := []struct{ name, content string }{
		{"user_lines", userHosts},
		{"no_trailing_newline", "127.0.0.1 localhost"},
		{"empty", ""},
	}
	for _, file := range files {
		original := file.content
		t.Run(file.name, func(t *testing.T) {
			i, path := hostsIntegrator(t, original)
			if i.Mode() != ModeHosts {
				t.Fatalf("Mode() = %v", i.Mode())
			}
			steps := []struct {
				name string
				do   func() error
				want string
			}{
				{"up", func() error { return i.Apply("wh0", zone1, netip.AddrPort{}) }, "+" + block1},
				{"up_again", func() error { return i.Apply("wh0", zone1, netip.AddrPort{}) }, "+" + block1},
				{"reload", func() error { return i.Apply("wh0", zone2, netip.AddrPort{}) }, "+" + block2},
				{"down", i.Undo, ""},
				{"down_again", i.Undo, ""},
			}
			for _, st := range steps {
				if err := st.do(); err != nil {
					t.Fatalf("%s: %v", st.name, err)
				}
				want := original
				if st.want != "" {
					want = appendBlock(original, strings.TrimPrefix(st.want, "+"))
				}
				if diff := cmp.Diff(want, readFile(t, path)); diff != "" {
					t.Fatalf("after %s (-want +got):\n%s", st.name, diff)
				}
			}
		})
	}
}

// appendBlock is what a hosts file looks like with block added at its end.
func appendBlock(content, block string) string {
	if content != "" && !strings.HasSuffix(content, "\n") {
		return content + "\n" + strings.TrimSuffix(block, "\n")
	}
	return content + block
}

func TestHostsModeTwoInterfaces(t *testing.T) {
	path := filepath.Join(t.TempDir(), "hosts")
	if err := os.WriteFile(path, []byte(userHosts), 0o644); err != nil {
		t.Fatal(err)
	}
	wh0 := NewIntegrator(IntegratorOptions{Mode: ModeHosts, HostsPath: path})
	wh1 := NewIntegrator(IntegratorOptions{Mode: ModeHosts, HostsPath: path})
	other := Zone{Domain: "other", Hosts: []Host{{Name: "peer", IPv4: netip.MustParseAddr("10.9.0.2")}}}
	if err := wh0.Apply("wh0", zone1, netip.AddrPort{}); err != nil {
		t.Fatal(err)
	}
	if err := wh1.Apply("wh1", other, netip.AddrPort{}); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(userHosts+block1+otherBlock, readFile(t, path)); diff != "" {
		t.Fatalf("both up (-want +got):\n%s", diff)
	}
	if err := wh0.Apply("wh0", zone2, netip.AddrPort{}); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(userHosts+block2+otherBlock, readFile(t, path)); diff != "" {
		t.Fatalf("wh0 reloaded (-want +got):\n%s", diff)
	}
	if err := wh0.Undo(); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(userHosts+otherBlock, readFile(t, path)); diff != "" {
		t.Fatalf("wh0 down (-want +got):\n%s", diff)
	}
	if err := wh1.Undo(); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(userHosts, readFile(t, path)); diff != "" {
		t.Fatalf("both down (-want +got):\n%s", diff)
	}
}

func TestHostsModeFile(t *testing.T) {
	t.Run("keeps_mode", func(t *testing.T) {
		i, path := hostsIntegrator(t, userHosts)
		if err := os.Chmod(path, 0o640); err != nil {
			t.Fatal(err)
		}
		if err := i.Apply("wh0", zone1, netip.AddrPort{}); err != nil {
			t.Fatal(err)
		}
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o640 {
			t.Errorf("mode %v, want 0640", fi.Mode().Perm())
		}
	})
	t.Run("follows_symlink", func(t *testing.T) {
		i, target := hostsIntegrator(t, userHosts)
		link := filepath.Join(t.TempDir(), "hosts-link")
		if err := os.Symlink(target, link); err != nil {
			t.Fatal(err)
		}
		i.hostsPath = link
		if err := i.Apply("wh0", zone1, netip.AddrPort{}); err != nil {
			t.Fatal(err)
		}
		if fi, err := os.Lstat(link); err != nil || fi.Mode()&os.ModeSymlink == 0 {
			t.Errorf("the link was replaced (%v)", err)
		}
		if got := readFile(t, target); got != userHosts+block1 {
			t.Errorf("target = %q", got)
		}
	})
	t.Run("no_temporary_files_left", func(t *testing.T) {
		i, path := hostsIntegrator(t, userHosts)
		if err := i.Apply("wh0", zone1, netip.AddrPort{}); err != nil {
			t.Fatal(err)
		}
		if err := i.Undo(); err != nil {
			t.Fatal(err)
		}
		entries, err := os.ReadDir(filepath.Dir(path))
		if err != nil || len(entries) != 1 {
			t.Errorf("directory holds %v (%v), want only the hosts file", entries, err)
		}
	})
	t.Run("missing_file", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "hosts")
		i := NewIntegrator(IntegratorOptions{Mode: ModeHosts, HostsPath: path})
		if err := i.Apply("wh0", zone1, netip.AddrPort{}); err != nil {
			t.Fatal(err)
		}
		if got := readFile(t, path); got != block1 {
			t.Errorf("created %q", got)
		}
		if err := i.Undo(); err != nil {
			t.Fatal(err)
		}
		os.Remove(path)
		if err := editHostsFile(path, "wh0", nil); err != nil {
			t.Errorf("removing from a missing file: %v", err)
		}
		if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("removing created the file (%v)", err)
		}
	})
	t.Run("unterminated_block_left_alone", func(t *testing.T) {
		content := userHosts + "# BEGIN wh wh0\n10.0.0.1 mine\n"
		i, path := hostsIntegrator(t, content)
		if err := i.Apply("wh0", zone1, netip.AddrPort{}); !errors.Is(err, ErrUnterminatedBlock) {
			t.Errorf("err = %v, want ErrUnterminatedBlock", err)
		}
		if got := readFile(t, path); got != content {
			t.Errorf("file changed to %q", got)
		}
	})
	t.Run("in_place_rewrite", func(t *testing.T) {
		_, path := hostsIntegrator(t, userHosts)
		if err := overwriteFile(path, []byte("short\n")); err != nil {
			t.Fatal(err)
		}
		if got := readFile(t, path); got != "short\n" {
			t.Errorf("got %q", got)
		}
	})
}
