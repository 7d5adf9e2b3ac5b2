// Package docker tests the images and the network of containers in this
// directory on the real Docker engine: the images build from a clean copy
// of the tree with nothing pulled, wh runs in them, and compose.yml's two
// members behind their own NAT routers ping each other by name.
//
// Without an engine the tests skip and say why; with CI=true a skip is a
// failure. Every image, container, network and volume they make has a
// fresh name, and is removed at the end, also when they fail.
package docker

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/big"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/whnet/wh/internal/testenv"
	"github.com/whnet/wh/key"
	"github.com/whnet/wh/node"
)

// docker runs the docker CLI and returns its standard output; stderr goes
// into the error.
func docker(ctx context.Context, stdin string, args ...string) (string, error) {
	return run(ctx, nil, stdin, "docker", args...)
}

func run(ctx context.Context, env []string, stdin, name string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("%s %s: %v: %s%s", name, strings.Join(args, " "), err, out.String(), errb.String())
	}
	return out.String(), nil
}

// need reports why the tests cannot run here, or "".
func need() string {
	if _, err := exec.LookPath("docker"); err != nil {
		return "no docker command (apt-get install docker.io)"
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := docker(ctx, "", "version", "--format", "{{.Server.Version}}"); err != nil {
		return "no Docker engine answers: " + strings.TrimSpace(err.Error())
	}
	if compose() == nil {
		return "no Compose (docker compose or docker-compose)"
	}
	if _, err := exec.LookPath("mmdebstrap"); err != nil && os.Geteuid() != 0 {
		return "the sandbox image needs mmdebstrap (apt-get install mmdebstrap), or root to install it"
	}
	return ""
}

// compose returns the Compose command of this machine, or nil.
func compose() []string {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := docker(ctx, "", "compose", "version"); err == nil {
		return []string{"docker", "compose"}
	}
	if _, err := run(ctx, nil, "", "docker-compose", "version"); err == nil {
		return []string{"docker-compose"}
	}
	return nil
}

// images are the images one test run built, and how to run them.
type images struct {
	prefix, tag string
	repo        string // the clean copy they were built from
}

func (im images) wh() string      { return im.prefix + "wh:" + im.tag }
func (im images) sandbox() string { return im.prefix + "sandbox:" + im.tag }

func randomID() string {
	b := make([]byte, 4)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// cleanCopy copies the files git knows of (tracked, and new ones not
// ignored) into a new directory: a clean checkout of the working tree,
// with no bin/ and no cache.
func cleanCopy(t *testing.T) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := run(ctx, nil, "", "git", "-C", "..", "ls-files", "-z", "--cached", "--others", "--exclude-standard")
	if err != nil {
		t.Fatalf("listing the tree: %v", err)
	}
	dst := t.TempDir()
	for _, f := range strings.Split(out, "\x00") {
		if f == "" {
			continue
		}
		src := filepath.Join("..", f)
		fi, err := os.Lstat(src)
		if os.IsNotExist(err) {
			continue // deleted in the working tree
		}
		if err != nil {
			t.Fatal(err)
		}
		if !fi.Mode().IsRegular() {
			continue
		}
		b, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dst, f)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, b, fi.Mode().Perm()); err != nil {
			t.Fatal(err)
		}
	}
	return dst
}

// build runs `make docker` in a clean copy of the tree, under a fresh image
// prefix (so no image of that name exists beforehand), and removes the
// images at the end.
func build(t *testing.T) images {
	t.Helper()
	if why := need(); why != "" {
		testenv.Skip(t, "docker: "+why)
	}
	if v := os.Getenv("WH_DOCKER_IMAGES"); v != "" {
		// For reruns while working on the tests: WH_DOCKER_IMAGES=whnet/,latest
		// uses images `make docker` built, and keeps them.
		prefix, tag, _ := strings.Cut(v, ",")
		return images{prefix: prefix, tag: tag, repo: ".."}
	}
	id := randomID()
	im := images{prefix: "whtest" + id + "/", tag: "t" + id, repo: cleanCopy(t)}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if out, err := docker(ctx, "", "images", "-q", "--filter", "reference="+im.prefix+"*"); err != nil || strings.TrimSpace(out) != "" {
		t.Fatalf("images %s* before the build: %q, %v; want none", im.prefix, out, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		var refs []string
		for _, n := range []string{"wh", "sandbox"} {
			refs = append(refs, im.prefix+n+":"+im.tag, im.prefix+n+":latest")
		}
		if out, err := docker(ctx, "", append([]string{"rmi", "-f"}, refs...)...); err != nil {
			t.Logf("removing the images: %v %s", err, out)
		}
	})
	start := time.Now()
	out, err := run(ctx, nil, "", "make", "-C", im.repo, "docker", "VERSION="+im.tag, "IMAGE_PREFIX="+im.prefix)
	if err != nil {
		t.Fatalf("make docker: %v", err)
	}
	t.Logf("make docker in a clean copy: %v\n%s", time.Since(start).Round(time.Second), out)
	for _, ref := range []string{im.wh(), im.sandbox()} {
		size, err := docker(ctx, "", "image", "inspect", "-f", "{{.Size}}", ref)
		if err != nil {
			t.Fatalf("%s was not built: %v", ref, err)
		}
		t.Logf("%s: %s bytes", ref, strings.TrimSpace(size))
	}
	return im
}

func TestImages(t *testing.T) {
	im := build(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	t.Run("genkey_pubkey", func(t *testing.T) {
		priv, err := docker(ctx, "", "run", "--rm", im.wh(), "genkey")
		if err != nil {
			t.Fatal(err)
		}
		k, err := key.ParsePrivate(strings.TrimSpace(priv))
		if err != nil {
			t.Fatalf("docker run wh genkey printed %q: %v", priv, err)
		}
		pub, err := docker(ctx, priv, "run", "--rm", "-i", im.wh(), "pubkey")
		if err != nil {
			t.Fatal(err)
		}
		if got, want := strings.TrimSpace(pub), k.Public().String(); got != want {
			t.Errorf("docker run wh genkey | docker run -i wh pubkey = %q, want %q", got, want)
		}
	})

	t.Run("health_without_network", func(t *testing.T) {
		out, err := docker(ctx, "", "run", "--rm", im.wh(), "health")
		if err == nil || !strings.Contains(out, "no network is running") {
			t.Errorf("wh health with no network: %q, %v; want exit 1 and a reason", out, err)
		}
	})

	t.Run("sandbox_completion", func(t *testing.T) {
		out, err := docker(ctx, "", "run", "--rm", im.sandbox(), "bash", "-ic", "complete -p wh")
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(out, "complete -o default -F __start_wh wh") {
			t.Errorf("complete -p wh in the sandbox: %q", out)
		}
		if !strings.Contains(out, "wh "+im.tag+" sandbox") {
			t.Errorf("no motd naming the version in an interactive shell: %q", out)
		}
		for _, tool := range []string{"ping", "ip", "nc", "dig", "iperf3", "iptables", "wh"} {
			if _, err := docker(ctx, "", "run", "--rm", im.sandbox(), "sh", "-c", "command -v "+tool); err != nil {
				t.Errorf("the sandbox has no %s: %v", tool, err)
			}
		}
		if _, err := docker(ctx, "", "run", "--rm", im.sandbox(), "wh", "check", "/etc/wirehub/example.conf"); err != nil {
			t.Errorf("the example config: %v", err)
		}
	})

	t.Run("tun_node", func(t *testing.T) { testTUN(t, im) })
	t.Run("sd_notify", func(t *testing.T) { testNotify(t, im) })
	t.Run("compose_nat", func(t *testing.T) { testCompose(t, im) })
	// TODO(0nc): 0nc between two containers with no capability, as an
	// unprivileged user (--cap-drop ALL --user 65534), moving a file intact,
	// once tools/0nc exists (make docker puts it in both images then).
	// TODO(userspace): a member with no capability and no /dev/net/tun,
	// `wh up … userspace`, once wh has that mode.
}

// testTUN runs a node with an interface in the wh image (FROM scratch):
// config and key from the mounted /etc/wirehub, the interface with its
// overlay address, and its name in the container's /etc/hosts.
func testTUN(t *testing.T, im images) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dir := t.TempDir()
	priv, err := docker(ctx, "", "run", "--rm", im.wh(), "genkey")
	if err != nil {
		t.Fatal(err)
	}
	k, err := key.ParsePrivate(strings.TrimSpace(priv))
	if err != nil {
		t.Fatal(err)
	}
	conf := "name solo\nsubnet 10.0.45.0/24\ntrust solo " + k.Public().String() + "\n"
	if err := os.WriteFile(filepath.Join(dir, "net.conf"), []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "node.sk"), []byte(priv), 0o600); err != nil {
		t.Fatal(err)
	}
	name := "whtest" + randomID()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		docker(ctx, "", "rm", "-f", name)
	})
	// Docker turns IPv6 off in containers: wh says what to pass.
	tun := []string{"--network", "none", "--cap-add", "NET_ADMIN", "--device", "/dev/net/tun", "-v", dir + ":/etc/wirehub:ro"}
	out, err := docker(ctx, "", append(append([]string{"run", "--rm"}, tun...), im.wh())...)
	if err == nil || !strings.Contains(err.Error(), "--sysctl net.ipv6.conf.all.disable_ipv6=0") {
		t.Errorf("wh up with IPv6 disabled: %v %s; want an error naming the sysctl", err, out)
	}
	tun = append(tun, "--sysctl", "net.ipv6.conf.all.disable_ipv6=0")
	if _, err := docker(ctx, "", append(append([]string{"run", "-d", "--name", name}, tun...), im.wh())...); err != nil {
		t.Fatal(err)
	}
	for end := time.Now().Add(30 * time.Second); time.Now().Before(end); time.Sleep(time.Second) {
		if out, err = docker(ctx, "", "exec", name, "wh", "show", "--json"); err == nil {
			break
		}
	}
	if err != nil {
		logs, _ := docker(ctx, "", "logs", name)
		t.Fatalf("the node did not come up: %v\n%s", err, logs)
	}
	var st node.Status
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatal(err)
	}
	if st.Hostname != "solo" || len(st.Addresses) == 0 || st.Addresses[0] != "10.0.45.2/24" {
		t.Errorf("wh show: %+v, want node solo with 10.0.45.2/24", st)
	}
	// No shell in the image: the container's files through docker cp.
	hosts, err := docker(ctx, "", "cp", name+":/etc/hosts", "-")
	if err != nil || !strings.Contains(hosts, "10.0.45.2") || !strings.Contains(hosts, "solo") {
		t.Errorf("/etc/hosts in the container has no line for solo: %v\n%s", err, hosts)
	}
}

// testNotify runs a headless node in the wh image as systemd would run it
// (Type=notify): READY=1 arrives on $NOTIFY_SOCKET, and by then the
// daemon answers on its control socket.
func testNotify(t *testing.T, im images) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "net.conf"), []byte("name notify\nsubnet 10.0.44.0/24\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	ln, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: filepath.Join(dir, "notify"), Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	name := "whtest" + randomID()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		docker(ctx, "", "rm", "-f", name)
	})
	if _, err := docker(ctx, "", "run", "-d", "--name", name, "--network", "none", "-v", dir+":/etc/wirehub",
		"-e", "NOTIFY_SOCKET=/etc/wirehub/notify", im.wh(), "up", "/etc/wirehub/net.conf", "interface", "wh-notify"); err != nil {
		t.Fatal(err)
	}
	ln.SetReadDeadline(time.Now().Add(30 * time.Second))
	buf := make([]byte, 256)
	n, err := ln.Read(buf)
	if err != nil {
		logs, _ := docker(ctx, "", "logs", name)
		t.Fatalf("no notification from the daemon: %v\n%s", err, logs)
	}
	if msg := string(buf[:n]); !strings.HasPrefix(msg, "READY=1\n") {
		t.Fatalf("the daemon sent %q, want READY=1", msg)
	}
	if out, err := docker(ctx, "", "exec", name, "wh", "show", "wh-notify"); err != nil {
		t.Errorf("READY=1 came before the control socket answered: %v", err)
	} else if !strings.Contains(out, "interface wh-notify network notify") {
		t.Errorf("wh show after READY=1: %q", out)
	}
}

// composeNet is one compose project of compose.yml.
type composeNet struct {
	t       *testing.T
	cmd     []string
	project string
	file    string // compose.yml
	env     []string
	net     string // WH_NET, the /16 its subnets come from
}

func (c *composeNet) run(ctx context.Context, args ...string) (string, error) {
	all := append(append(append([]string{}, c.cmd[1:]...), "-p", c.project, "-f", c.file), args...)
	return run(ctx, c.env, "", c.cmd[0], all...)
}

// exec runs a command in service svc.
func (c *composeNet) exec(ctx context.Context, svc string, args ...string) (string, error) {
	return c.run(ctx, append([]string{"exec", "-T", svc}, args...)...)
}

// freeNet picks a 10.N prefix whose subnets (10.N.0.0/24 to 10.N.2.0/24)
// no Docker network overlaps.
func freeNet(ctx context.Context) (string, error) {
	out, err := docker(ctx, "", "network", "ls", "-q")
	if err != nil {
		return "", err
	}
	var used []netip.Prefix
	if ids := strings.Fields(out); len(ids) > 0 {
		out, err := docker(ctx, "", append([]string{"network", "inspect", "-f", "{{range .IPAM.Config}}{{.Subnet}} {{end}}"}, ids...)...)
		if err != nil {
			return "", err
		}
		for _, s := range strings.Fields(out) {
			if p, err := netip.ParsePrefix(s); err == nil {
				used = append(used, p)
			}
		}
	}
	for range 50 {
		n, _ := rand.Int(rand.Reader, big.NewInt(150))
		pre := fmt.Sprintf("10.%d", 100+n.Int64())
		ours := netip.MustParsePrefix(pre + ".0.0/22")
		free := true
		for _, u := range used {
			free = free && !u.Overlaps(ours)
		}
		if free {
			return pre, nil
		}
	}
	return "", fmt.Errorf("no free subnets in 10.100.0.0/14 and above among %v", used)
}

func testCompose(t *testing.T, im images) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	c := &composeNet{t: t, cmd: compose(), project: "whtest" + randomID(), file: filepath.Join(im.repo, "docker", "compose.yml")}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		if t.Failed() {
			out, _ := c.run(ctx, "logs", "--no-color", "--tail", "40")
			t.Logf("logs:\n%s", out)
		}
		if out, err := c.run(ctx, "down", "-v", "--remove-orphans", "-t", "2"); err != nil {
			t.Logf("compose down: %v %s", err, out)
		}
	})
	var err error
	for range 3 { // another project may take the subnets between our look and our up
		if c.net, err = freeNet(ctx); err != nil {
			t.Fatal(err)
		}
		c.env = []string{"WH_NET=" + c.net, "WH_IMAGE_PREFIX=" + im.prefix, "WH_TAG=" + im.tag}
		var out string
		if out, err = c.run(ctx, "up", "-d"); err == nil {
			break
		}
		t.Logf("compose up with WH_NET=%s: %v %s", c.net, err, out)
		c.run(ctx, "down", "-v", "--remove-orphans", "-t", "2")
	}
	if err != nil {
		t.Fatal(err)
	}

	// Both members reach each other by name, through their NATs.
	for _, p := range [][2]string{{"alice", "bob"}, {"bob", "alice"}} {
		deadline := time.Now().Add(60 * time.Second)
		for {
			out, err := c.exec(ctx, p[0], "ping", "-c1", "-W2", p[1])
			if err == nil {
				t.Logf("%s: ping %s:\n%s", p[0], p[1], out)
				break
			}
			if time.Now().After(deadline) {
				show, _ := c.exec(ctx, p[0], "wh", "show")
				t.Fatalf("%s cannot ping %s within 60 s: %v\n%s", p[0], p[1], err, show)
			}
			time.Sleep(2 * time.Second)
		}
	}
	show, _ := c.exec(ctx, "alice", "wh", "show")
	t.Logf("alice: wh show\n%s", show)

	// The name is the overlay's, and bob is seen behind his router.
	js, err := c.exec(ctx, "alice", "wh", "show", "--json")
	if err != nil {
		t.Fatal(err)
	}
	var st node.Status
	if err := json.Unmarshal([]byte(js), &st); err != nil {
		t.Fatalf("wh show --json: %v: %s", err, js)
	}
	if !st.NAT {
		t.Errorf("alice does not see herself behind NAT: %+v", st)
	}
	hosts, err := c.exec(ctx, "alice", "getent", "ahosts", "bob")
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Peers) != 1 || st.Peers[0].Hostname != "bob" || !strings.Contains(hosts, st.Peers[0].IP) {
		t.Fatalf("bob resolves to %q in alice, not to his overlay address in %+v", hosts, st.Peers)
	}
	bob := st.Peers[0]
	switch bob.Path {
	case node.PathDirect:
		if want := c.net + ".0.12"; !strings.HasPrefix(bob.Endpoint, want+":") {
			t.Errorf("bob's direct path is %s, want through his router %s", bob.Endpoint, want)
		}
	case node.PathRelay:
	default:
		t.Errorf("bob's path: %s", bob.Path)
	}

	// The health check passes on both, and the images' HEALTHCHECK says so.
	for _, m := range []string{"alice", "bob", "boot"} {
		if out, err := c.exec(ctx, m, "wh", "health"); err != nil {
			t.Errorf("%s: wh health: %v %s", m, err, out)
		}
		id, err := c.run(ctx, "ps", "-q", m)
		if err != nil {
			t.Fatal(err)
		}
		var health string
		for end := time.Now().Add(40 * time.Second); time.Now().Before(end); time.Sleep(2 * time.Second) {
			out, _ := docker(ctx, "", "inspect", "-f", "{{.State.Health.Status}}", strings.TrimSpace(id))
			if health = strings.TrimSpace(out); health == "healthy" {
				break
			}
		}
		if health != "healthy" {
			t.Errorf("%s: docker says %q, want healthy", m, health)
		}
	}

	// Completion from the running daemon: its interface, then bob's name.
	out, err := c.exec(ctx, "alice", "wh", "__complete", "ping", "wh-")
	if err != nil || !strings.Contains(out, st.Interface+"\n") {
		t.Errorf("wh ping wh-<TAB> = %q (%v), want %s", out, err, st.Interface)
	}
	out, err = c.exec(ctx, "alice", "wh", "__complete", "ping", st.Interface, "b")
	if err != nil || !strings.HasPrefix(out, "bob\n") {
		t.Errorf("wh ping %s b<TAB> = %q (%v), want bob", st.Interface, out, err)
	}
}
