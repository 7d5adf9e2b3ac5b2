package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/blake2b"

	"github.com/whnet/wh/key"
)

// wh runs the command tree with args and stdin, and returns stdout,
// stderr and the exit status.
func wh(t *testing.T, stdin string, args ...string) (string, string, int) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(context.Background(), args, stdio{In: strings.NewReader(stdin), Out: &out, Err: &errb})
	return out.String(), errb.String(), code
}

const (
	nodeA = "zW-1lBeQ7IkT6NW6hL_NsV4eOPOwJi_rt1vO-omOEmQ"
	nodeB = "g878Bf9ZDc4IzFSUhWFTO1VYFVmHD5XfvEsVn83Dsho"
	boot  = "P17zMwXJFbBdJEn05RFIMADw9TX5_m2xgf31OgNKX3w"
)

func TestVectorsThroughCLI(t *testing.T) {
	tests := []struct {
		name  string
		stdin string
		args  []string
		want  string
	}{
		{"pubkey", "8DtM/sYqHv4PXHXDGZKVdm+ZTe493iyC46ZQX3743XM=\n", []string{"pubkey"}, "OgVwBkEoLpIBTSY2CMUbqyD9he19cOD2kpAEjYQQpS0"},
		{"pubkey_no_newline", "8DtM/sYqHv4PXHXDGZKVdm+ZTe493iyC46ZQX3743XM=", []string{"pubkey"}, "OgVwBkEoLpIBTSY2CMUbqyD9he19cOD2kpAEjYQQpS0"},
		{"workbit_boot", boot + "\n", []string{"workbit"}, "11"},
		{"workbit_node_a", nodeA, []string{"workbit", "namespace", "public"}, "9"},
		{"workbit_node_b_flag", nodeB, []string{"workbit", "--namespace", "public"}, "9"},
		{"workbit_public_node", "gOVQwCSUxKUhUrkUSF0aDvssDfWVrrnm47ZMp5GJtDg", []string{"workbit"}, "12"},
		{"workbit_mailing_list", "KJ7YGrBeqLLm_JJ1huIS26OnqAVFy57z5UJqjyMagW4", []string{"workbit"}, "8"},
		{"workbit_alias", "OgVwBkEoLpIBTSY2CMUbqyD9he19cOD2kpAEjYQQpS0", []string{"workbit"}, "12"},
		{"workbit_std_base64", "OgVwBkEoLpIBTSY2CMUbqyD9he19cOD2kpAEjYQQpS0=", []string{"workbit"}, "12"},
		{"bid_a_b", "", []string{"bid", nodeA, nodeB}, "2"},
		{"bid_boot_a", "", []string{"bid", boot, nodeA}, "1"},
		{"bid_same", "", []string{"bid", nodeA, nodeA}, "256"},
		{"bid_stdin", nodeB, []string{"bid", nodeA, "-"}, "2"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out, errs, code := wh(t, tc.stdin, tc.args...)
			if code != 0 || strings.TrimSpace(out) != tc.want {
				t.Errorf("wh %s = %q (exit %d, stderr %q), want %q", strings.Join(tc.args, " "), out, code, errs, tc.want)
			}
		})
	}
}

func TestOrchidCLI(t *testing.T) {
	out, errs, code := wh(t, nodeA, "orchid", "namespace", "public")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	if !strings.HasPrefix(out, "2001:2") {
		t.Errorf("orchid %q is not in 2001:20::/28", out)
	}
	out2, _, _ := wh(t, nodeA, "orchid", "--namespace", "other")
	if out == out2 {
		t.Errorf("namespace does not change the ORCHID: %q", out)
	}
}

func TestGenkeyMeetsWorkbit(t *testing.T) {
	out, errs, code := wh(t, "", "genkey", "workbit", "10", "namespace", "x")
	if code != 0 {
		t.Fatalf("genkey: exit %d: %s", code, errs)
	}
	priv, err := key.ParsePrivate(out)
	if err != nil {
		t.Fatal(err)
	}
	if len(strings.TrimSpace(out)) != 44 {
		t.Errorf("private key %q is not 44 characters of standard base64", out)
	}
	// An independent check: BLAKE2b-256(pub || "x") starts with 10 zero bits.
	pub := priv.Public()
	h := blake2b.Sum256(append(pub[:], "x"...))
	if h[0] != 0 || h[1]&0xc0 != 0 {
		t.Errorf("key %s: digest %x has fewer than 10 leading zero bits", pub, h[:4])
	}
	// The pipeline of the README.
	pubOut, _, code := wh(t, out, "pubkey")
	if code != 0 || strings.TrimSpace(pubOut) != pub.String() {
		t.Errorf("genkey | pubkey = %q, want %s", pubOut, pub)
	}
}

func TestGenkeyFromConfig(t *testing.T) {
	conf := writeConf(t, "name n\nnamespace blue\nworkbit 6\n")
	out, errs, code := wh(t, "", "genkey", conf)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	priv, err := key.ParsePrivate(out)
	if err != nil {
		t.Fatal(err)
	}
	if wb := key.Workbits(priv.Public(), "blue"); wb < 6 {
		t.Errorf("workbits %d < 6 in the config's namespace", wb)
	}
	wbOut, _, _ := wh(t, priv.Public().String(), "workbit", conf)
	if strings.TrimSpace(wbOut) == "" {
		t.Errorf("workbit CONFIG printed nothing")
	}
}

func writeConf(t *testing.T, s string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "net.conf")
	if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestCheck(t *testing.T) {
	conf := writeConf(t, `name tutorial
subnet 10.0.42.0/24
boot `+boot+` bootstrap.example.org
trust node_a `+nodeA+`
trust 10.0.42.9 node_b `+nodeB+` 192.0.2.7:5000
`)
	out, errs, code := wh(t, "", "check", conf, "--json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	var got checkedNetwork
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("bad JSON %q: %v", out, err)
	}
	if got.Name != "tutorial" || got.Namespace != "public" || got.Workbit != 8 || got.Subnet != "10.0.42.0/24" {
		t.Errorf("header = %+v", got)
	}
	if len(got.Nodes) != 3 {
		t.Fatalf("nodes = %+v", got.Nodes)
	}
	b, a, bb := got.Nodes[0], got.Nodes[1], got.Nodes[2]
	if b.Role != "boot" || b.Endpoint != "bootstrap.example.org:62096" || b.IP != "" {
		t.Errorf("boot = %+v", b)
	}
	if a.Hostname != "node_a" || a.IP != "10.0.42.2" || a.Role != "trust" || !strings.HasPrefix(a.IPv6, "2001:2") {
		t.Errorf("node_a = %+v", a)
	}
	if bb.IP != "10.0.42.9" || bb.Endpoint != "192.0.2.7:5000" {
		t.Errorf("node_b = %+v", bb)
	}

	text, _, code := wh(t, "", "check", conf)
	if code != 0 || !strings.Contains(text, "node_a") || !strings.Contains(text, "10.0.42.2") {
		t.Errorf("text output:\n%s", text)
	}
}

func TestExitStatus(t *testing.T) {
	bad := writeConf(t, "name x\nsubnet 10.0.0.0/24\ntrust a zz\n")
	tests := []struct {
		name      string
		stdin     string
		args      []string
		code      int
		errSubstr string
	}{
		{"invalid_config", "", []string{"check", bad}, 1, "net.conf:3"},
		{"missing_config", "", []string{"check", "/nonexistent/net.conf"}, 1, "nonexistent"},
		{"check_no_args", "", []string{"check"}, 2, "want one config"},
		{"unknown_command", "", []string{"frobnicate"}, 2, "unknown command"},
		{"unknown_flag", "", []string{"check", "--frob", bad}, 2, "unknown flag"},
		{"bad_workbit", "", []string{"genkey", "workbit", "300"}, 2, "workbit"},
		{"pubkey_garbage", "hello\n", []string{"pubkey"}, 1, "not a key"},
		{"pubkey_empty", "", []string{"pubkey"}, 1, "nothing on standard input"},
		{"workbit_private_garbage", "!!!!", []string{"workbit"}, 1, "not a key"},
		{"bid_one_key", "", []string{"bid", nodeA}, 2, "two keys"},
		{"socks5_without_userspace", "", []string{"up", bad, "socks5", "127.0.0.1:1080"}, 2, "socks5 needs userspace"},
		{"userspace_with_system_dns", "", []string{"up", bad, "userspace", "dns", "resolved"}, 2, "no interface"},
		{"userspace_keyword_taken", "", []string{"up", bad, "userspace", "extra"}, 2, "want one config"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out, errs, code := wh(t, tc.stdin, tc.args...)
			if code != tc.code {
				t.Errorf("exit %d, want %d (stderr %q)", code, tc.code, errs)
			}
			if !strings.Contains(errs, tc.errSubstr) {
				t.Errorf("stderr %q does not mention %q", errs, tc.errSubstr)
			}
			if tc.code != 0 && out != "" {
				t.Errorf("stdout %q on failure, want nothing", out)
			}
		})
	}
}

// TestHelp walks the command tree: every command has a short and a long
// description or an example, and --help exits 0.
func TestHelp(t *testing.T) {
	root := newRootCmd(stdio{In: strings.NewReader(""), Out: new(bytes.Buffer), Err: new(bytes.Buffer)})
	for _, c := range root.Commands() {
		if c.Hidden || c.Name() == "help" {
			continue
		}
		if c.Short == "" {
			t.Errorf("%s: no short description", c.Name())
		}
		out, _, code := wh(t, "", c.Name(), "--help")
		if code != 0 || !strings.Contains(out, "Usage:") {
			t.Errorf("%s --help: exit %d:\n%s", c.Name(), code, out)
		}
	}
}

// TestBareWhShows: wh alone runs show, as in WireHub (no daemon: nothing).
func TestBareWhShows(t *testing.T) {
	if _, errs, code := wh(t, ""); code != 0 {
		t.Errorf("wh: exit %d, stderr %q", code, errs)
	}
}
