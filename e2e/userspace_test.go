package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/whnet/wh/e2e/lab"
	"github.com/whnet/wh/node"
)

// nobody is the unprivileged user the userspace node runs as.
const nobody = 65534

// asNobody is the command prefix that runs a program as nobody, without
// any capability.
var asNobody = []string{"setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all", "--"}

// TestUserspace is issue 12's check of `wh up … userspace`: a node run
// by an unprivileged user, detached, with no TUN. curl reaches a TUN
// peer's web server by hostname through its SOCKS5 port; the peer reaches
// a TCP and a UDP service on the userspace node's localhost at its overlay
// address; show, ping, reload and down work for that user, whose socket
// and log are in directories of its own.
func TestUserspace(t *testing.T) {
	l := newLab(t, "setpriv", "curl", "socat", "python3")
	const wb = 8
	boot := newMember(t, l, "boot", l.Public("boot"), wb)
	web := newMember(t, l, "web", l.Public("web"), wb)
	u := newMember(t, l, "u", l.Public("u"), wb)

	// nobody must reach the binary, the config and its key: a directory
	// of their own, since the test's are root's only.
	pub, err := os.MkdirTemp("", "wh-userspace-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(pub) })
	os.Chmod(pub, 0o755)
	bin := filepath.Join(pub, "wh")
	if out, err := exec.Command("cp", whBin, bin).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v: %s", err, out)
	}
	home := filepath.Join(pub, "home")  // for the detached daemon's log
	runDir := filepath.Join(pub, "run") // XDG_RUNTIME_DIR
	for _, d := range []string{home, runDir} {
		os.Mkdir(d, 0o700)
		os.Chown(d, nobody, nobody)
	}
	ukey := filepath.Join(pub, "u.sk")
	b, _ := os.ReadFile(filepath.Join(u.dir, u.keyf))
	writeFile(t, ukey, string(b))
	os.Chown(ukey, nobody, nobody)
	os.Chmod(ukey, 0o600)

	netConf := fmt.Sprintf("name userland\nsubnet 10.81.0.0/24\nworkbit %d\nboot %s %s:62096\ntrust web %s\ntrust u %s\n",
		wb, boot.pub(), boot.host.Addr, web.pub(), u.pub())
	conf := filepath.Join(pub, "net.conf") // nobody's copy
	writeFile(t, conf, netConf)
	rootConf := filepath.Join(l.Dir(), "net.conf")
	writeFile(t, rootConf, netConf)
	const webIP, uIP = "10.81.0.2", "10.81.0.3"

	boot.up(t, rootConf, "listen-port", "62096")
	web.up(t, rootConf)
	// web serves a page on its overlay address.
	page := "hello from web " + l.ID()
	site := filepath.Join(l.Dir(), "site")
	os.Mkdir(site, 0o755)
	writeFile(t, filepath.Join(site, "index.html"), page)
	web.host.Start("http", nil, "python3", "-m", "http.server", "--bind", webIP, "--directory", site, "8080")

	env := []string{"XDG_RUNTIME_DIR=" + runDir, "HOME=" + home, "XDG_STATE_HOME="}
	run := func(ctx context.Context, args ...string) (string, error) {
		cmd := nsCmd(ctx, u.host, env, append(append([]string{}, asNobody...), args...)...)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	// Up, detached, as nobody.
	out, err := run(ctx, bin, "up", conf, "private-key", ukey, "interface", u.iface, "userspace", "socks5", "127.0.0.1:1080", "--log-level", "debug")
	if err != nil {
		t.Fatalf("wh up userspace as nobody: %v\n%s", err, out)
	}
	logPath := filepath.Join(home, ".local", "state", "wirehub", u.iface+".log")
	t.Cleanup(func() {
		if t.Failed() {
			b, _ := os.ReadFile(logPath)
			t.Logf("--- log of the userspace node:\n%s", b)
		}
	})
	if !strings.Contains(out, logPath) {
		t.Errorf("wh up said %q, want the log path %s", out, logPath)
	}
	sock := filepath.Join(runDir, "wirehub", u.iface+".sock")
	if fi, err := os.Stat(sock); err != nil || fi.Sys() == nil {
		t.Fatalf("control socket %s: %v", sock, err)
	}
	if out, err := u.host.Run(ctx, "ip", "-o", "link"); err != nil || strings.Contains(out, u.iface) {
		t.Errorf("the userspace node made an interface:\n%s", out)
	}

	// curl through SOCKS5, by hostname.
	err = lab.Eventually(30*time.Second, 300*time.Millisecond, func() error {
		out, err := run(ctx, "curl", "-sS", "--max-time", "3", "--socks5-hostname", "127.0.0.1:1080", "http://web:8080/")
		if err != nil || out != page {
			return fmt.Errorf("curl via socks5: %v: %q", err, out)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if out, _ := run(ctx, "curl", "-sS", "--max-time", "3", "--socks5-hostname", "127.0.0.1:1080", "http://nosuch:8080/"); !strings.Contains(out, "SOCKS") {
		t.Errorf("curl to a name outside the network: %q, want a SOCKS error", out)
	}

	// A TCP and a UDP service on u's localhost, reached from web.
	u.host.Start("localtcp", nil, asNobody[0], append(asNobody[1:], "socat", "TCP4-LISTEN:8081,bind=127.0.0.1,fork,reuseaddr", "EXEC:tr a-z A-Z")...)
	u.host.Start("localudp", nil, asNobody[0], append(asNobody[1:], "socat", "UDP4-RECVFROM:5301,bind=127.0.0.1,fork", "EXEC:tr a-z A-Z")...)
	err = lab.Eventually(20*time.Second, 300*time.Millisecond, func() error {
		// socat half-closes after its input; tr answers, then ends.
		cmd := nsCmd(ctx, web.host, nil, "socat", "-T3", "-", "TCP4:"+uIP+":8081")
		cmd.Stdin = strings.NewReader("ping over tcp\n")
		out, err := cmd.CombinedOutput()
		if err != nil || string(out) != "PING OVER TCP\n" {
			return fmt.Errorf("web → u's localhost TCP: %v: %q", err, out)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	err = lab.Eventually(10*time.Second, 300*time.Millisecond, func() error {
		cmd := nsCmd(ctx, web.host, nil, "socat", "-T2", "-", "UDP4:"+uIP+":5301")
		cmd.Stdin = strings.NewReader("ping over udp\n")
		out, err := cmd.CombinedOutput()
		if err != nil || string(out) != "PING OVER UDP\n" {
			return fmt.Errorf("web → u's localhost UDP: %v: %q", err, out)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}

	// show, ping, reload, as nobody.
	out, err = run(ctx, bin, "show", u.iface, "--json")
	var st node.Status
	if err != nil || json.Unmarshal([]byte(out), &st) != nil {
		t.Fatalf("wh show as nobody: %v: %s", err, out)
	}
	if !st.Userspace || st.SOCKS5 != "127.0.0.1:1080" || len(st.Peers) != 1 || st.Peers[0].Hostname != "web" || st.Peers[0].Path != node.PathDirect {
		t.Errorf("status = %+v", st)
	}
	if out, err := run(ctx, bin, "ping", u.iface, "web"); err != nil {
		t.Errorf("wh ping as nobody: %v: %s", err, out)
	}
	if out, err := run(ctx, bin, "reload", u.iface); err != nil {
		t.Errorf("wh reload as nobody: %v: %s", err, out)
	}
	// The daemon runs as nobody with no capability.
	if out, err := u.host.Run(ctx, "sh", "-c", "for p in $(pgrep -f 'wh up .*userspace'); do grep -E '^(Uid|CapEff)' /proc/$p/status; done"); err != nil ||
		!strings.Contains(out, "Uid:\t"+strconv.Itoa(nobody)) || !strings.Contains(out, "CapEff:\t0000000000000000") {
		t.Errorf("daemon credentials:\n%s (%v)", out, err)
	}
	if out, err := run(ctx, bin, "down", u.iface); err != nil {
		t.Fatalf("wh down as nobody: %v: %s", err, out)
	}
	if _, err := os.Stat(sock); !os.IsNotExist(err) {
		t.Errorf("socket still there after down: %v", err)
	}
	if b, err := os.ReadFile(logPath); err != nil || !strings.Contains(string(b), "wh listening") {
		t.Errorf("log %s: %v\n%s", logPath, err, b)
	}
}

// nsCmd is a command on h with env added.
func nsCmd(ctx context.Context, h *lab.Host, env []string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", h.NS}, args...)...)
	cmd.Env = append(os.Environ(), env...)
	return cmd
}
