package resolver

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/whnet/wh/internal/testenv"
)

// netnsChildEnv tells the test binary it runs as TestNetns's child, inside
// the namespaces the parent made.
const netnsChildEnv = "WH_RESOLVER_NETNS_CHILD"

// TestNetns runs the resolver on a 127.119.x.y address in a fresh network
// namespace and asks it with the real dig, then checks hosts mode with the
// real getent against an /etc/hosts that is a bind mount private to the
// child's mount namespace.
func TestNetns(t *testing.T) {
	testenv.NeedRoot(t, "creates network and mount namespaces")
	testenv.NeedTools(t, "ip", "unshare", "dig", "getent")
	suffix := make([]byte, 4)
	rand.Read(suffix)
	ns := "whres-" + hex.EncodeToString(suffix)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	run := func(args ...string) {
		t.Helper()
		if out, err := exec.CommandContext(ctx, args[0], args[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	run("ip", "netns", "add", ns)
	t.Cleanup(func() { exec.Command("ip", "netns", "del", ns).Run() })
	run("ip", "-n", ns, "link", "set", "lo", "up")
	// wh0 stands in for the overlay interface, with the node's addresses:
	// the resolver listens on them, and getaddrinfo's AI_ADDRCONFIG wants
	// non-loopback addresses of each family. Both veth ends stay inside.
	run("ip", "-n", ns, "link", "add", "wh0", "type", "veth", "peer", "name", "wh0p")
	run("ip", "-n", ns, "addr", "add", "10.0.42.1/24", "dev", "wh0")
	run("ip", "-n", ns, "addr", "add", testZone.Hosts[0].IPv6.String()+"/128", "dev", "wh0", "nodad")
	run("ip", "-n", ns, "link", "set", "wh0", "up")
	run("ip", "-n", ns, "link", "set", "wh0p", "up")

	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.CommandContext(ctx, "ip", "netns", "exec", ns,
		"unshare", "--mount", "--propagation", "private",
		exe, "-test.run=^TestNetnsChild$", "-test.v", "-test.timeout=50s")
	// The child checks that its namespaces differ from these.
	parentNS := nsIDs(t)
	cmd.Env = append(os.Environ(), netnsChildEnv+"="+parentNS)
	out, err := cmd.CombinedOutput()
	t.Logf("child:\n%s", out)
	if err != nil {
		t.Fatalf("child failed: %v", err)
	}
	if !strings.Contains(string(out), "--- PASS: TestNetnsChild") {
		t.Fatal("child did not run its test")
	}
}

func TestNetnsChild(t *testing.T) {
	parentNS := os.Getenv(netnsChildEnv)
	if parentNS == "" {
		t.Skip("run by TestNetns inside its namespaces")
	}
	// Refuse to touch /etc/hosts unless the namespaces are not the parent's.
	ours := strings.Fields(nsIDs(t))
	for i, parent := range strings.Fields(parentNS) {
		if ours[i] == parent {
			t.Fatalf("still in the parent's namespace %s", parent)
		}
	}

	h := newTestHandler(t, Options{NoForward: true})
	addr := LoopbackAddr("wh0")
	self := testZone.Hosts[0] // on wh0
	s, err := Listen(h, []netip.AddrPort{
		netip.AddrPortFrom(addr, 53),
		netip.AddrPortFrom(self.IPv4, 53),
		netip.AddrPortFrom(self.IPv6, 53),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()

	dig := func(args ...string) string {
		t.Helper()
		if !strings.HasPrefix(args[0], "@") {
			args = append([]string{"@" + addr.String()}, args...)
		}
		args = append([]string{"+time=2", "+tries=1"}, args...)
		out, err := exec.Command("dig", args...).CombinedOutput()
		if err != nil {
			t.Fatalf("dig %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return strings.TrimSpace(string(out))
	}
	digTests := []struct {
		name string
		args []string
		want string
	}{
		{"A", []string{"+short", "node_a.tutorial", "A"}, "10.0.42.2"},
		{"AAAA", []string{"+short", "node_a.tutorial", "AAAA"}, "2001:1075:b63:9ef6:5070:2e62:2de:e917"},
		{"A_tcp", []string{"+short", "+tcp", "self.tutorial", "A"}, "10.0.42.1"},
		{"bare_name", []string{"+short", "NODE-B", "A"}, "10.0.42.3"},
		{"PTR_v4", []string{"+short", "-x", "10.0.42.2"}, "node_a.tutorial."},
		{"PTR_v6", []string{"+short", "-x", "2001:1075:b63:9ef6:5070:2e62:2de:e917"}, "node_a.tutorial."},
		{"NXDOMAIN", []string{"+noall", "+comments", "nobody.tutorial", "A"}, "status: NXDOMAIN"},
		{"NXDOMAIN_has_SOA", []string{"+noall", "+authority", "nobody.tutorial", "A"}, "tutorial.\t\t60\tIN\tSOA\tns.tutorial. hostmaster.tutorial."},
		{"no_forwarding", []string{"+noall", "+comments", "example.com", "A"}, "status: REFUSED"},
		{"overlay_IPv4_listener", []string{"@" + self.IPv4.String(), "+short", "node_a.tutorial", "A"}, "10.0.42.2"},
		{"overlay_IPv6_listener", []string{"@" + self.IPv6.String(), "+short", "+tcp", "node_a.tutorial", "AAAA"}, "2001:1075:b63:9ef6:5070:2e62:2de:e917"},
	}
	for _, tt := range digTests {
		t.Run("dig_"+tt.name, func(t *testing.T) {
			if got := dig(tt.args...); !strings.Contains(got, tt.want) {
				t.Errorf("dig %s:\n%s\nwant %q", strings.Join(tt.args, " "), got, tt.want)
			}
		})
	}

	// Hosts mode on an /etc/hosts bind-mounted from a temporary file: the
	// rename fails with EBUSY, and the in-place rewrite takes over.
	const original = "127.0.0.1\tlocalhost\n# user line\n"
	tmp := filepath.Join(t.TempDir(), "hosts")
	if err := os.WriteFile(tmp, []byte(original), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mount(tmp, "/etc/hosts", "", syscall.MS_BIND, ""); err != nil {
		t.Fatalf("bind-mounting over /etc/hosts: %v", err)
	}
	defer syscall.Unmount("/etc/hosts", 0)
	getent := func(db, key string) (string, error) {
		out, err := exec.Command("getent", db, key).Output()
		return strings.TrimSpace(string(out)), err
	}
	i := NewIntegrator(IntegratorOptions{Mode: ModeHosts, HostsPath: "/etc/hosts", Logger: testLogger(t)})
	if err := i.Apply("wh0", testZone, netip.AddrPort{}); err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, tmp); !strings.Contains(got, "# BEGIN wh wh0\n") {
		t.Fatalf("the bind-mounted file did not get the block: %q", got)
	}
	if left, _ := filepath.Glob("/etc/.hosts.wh-*"); len(left) != 0 {
		t.Errorf("temporary files left in /etc: %v", left)
	}
	getentTests := []struct{ db, key, want string }{
		{"ahostsv4", "node_a.tutorial", "10.0.42.2"},
		{"ahostsv6", "node_a.tutorial", "2001:1075:b63:9ef6:5070:2e62:2de:e917"},
		{"hosts", "self", "self.tutorial"},
		{"hosts", "10.0.42.3", "node-b.tutorial"},
	}
	for _, tt := range getentTests {
		t.Run(fmt.Sprintf("getent_%s_%s", tt.db, tt.key), func(t *testing.T) {
			got, err := getent(tt.db, tt.key)
			if err != nil || !strings.Contains(got, tt.want) {
				t.Errorf("getent %s %s = %q, %v; want %q", tt.db, tt.key, got, err, tt.want)
			}
		})
	}
	if err := i.Undo(); err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, tmp); got != original {
		t.Errorf("after Undo the hosts file is %q, want %q", got, original)
	}
	if got, err := getent("hosts", "node_a.tutorial"); err == nil {
		t.Errorf("getent hosts node_a.tutorial after Undo = %q", got)
	}
}

// nsIDs returns the identities of this process's network and mount
// namespaces, as "net:[N] mnt:[M]".
func nsIDs(t *testing.T) string {
	t.Helper()
	var ids []string
	for _, kind := range []string{"net", "mnt"} {
		id, err := os.Readlink("/proc/self/ns/" + kind)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	return strings.Join(ids, " ")
}
