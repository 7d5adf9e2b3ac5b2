// Command demo runs a small wh network on this machine: a boot node and
// two nodes, each in its own network namespace on an isolated bridge,
// shows `wh show` and pings across the overlay, then tears it all down
// (on exit, on Ctrl-C, or after -hold).
//
//	sudo go run ./tools/demo -wh bin/wh [-hold 10m]
//
// `make demo` builds wh and runs it. It needs root (namespaces, TUN).
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/whnet/wh/e2e/lab"
)

func main() {
	whBin := flag.String("wh", "bin/wh", "the wh binary to run")
	hold := flag.Duration("hold", 0, "keep the network up this long (Ctrl-C ends it early)")
	flag.Parse()
	var r lab.Runner
	if err := r.Do(func() { demo(&r, *whBin, *hold) }); err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
}

func demo(t *lab.Runner, whBin string, hold time.Duration) {
	if err := lab.Check(); err != nil {
		t.Fatal(err)
	}
	whBin, err := filepath.Abs(whBin)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(whBin); err != nil {
		t.Fatalf("%v (run `make demo`, which builds it)", err)
	}
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer cancel()

	say("building an isolated internet of network namespaces")
	l := lab.New(t)
	hosts := map[string]*lab.Host{"boot": l.Public("boot"), "alice": l.Public("alice"), "bob": l.Public("bob")}
	pubs := map[string]string{}
	for _, name := range []string{"boot", "alice", "bob"} {
		sk := filepath.Join(l.Dir(), name+".sk")
		run(t, fmt.Sprintf("wh genkey > %s", sk), whBin, []string{"genkey"}, "", sk)
		priv, _ := os.ReadFile(sk)
		pubs[name] = strings.TrimSpace(run(t, "", whBin, []string{"pubkey"}, string(priv), ""))
	}
	conf := filepath.Join(l.Dir(), "demo.conf")
	text := fmt.Sprintf(`# a wh network: its name, its private subnet, who trusts whom, and where to start
name demo
subnet 10.0.42.0/24
boot %s %s:62096
trust alice %s
trust bob %s
`, pubs["boot"], hosts["boot"].Addr, pubs["alice"], pubs["bob"])
	if err := os.WriteFile(conf, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	say("the network's config (%s):\n%s", conf, indent(text))

	id := l.ID()
	ifaces := map[string]string{}
	say("in %s:", l.Dir())
	for _, name := range []string{"boot", "alice", "bob"} {
		iface := "wh" + id + name[:min(len(name), 5)]
		ifaces[name] = iface
		// As the README: detached, paths relative to the directory that
		// holds them. dns off: the namespaces share this machine's
		// /etc/hosts, which the demo leaves alone; each node still
		// answers DNS itself.
		args := []string{"up", "./demo.conf", "private-key", name + ".sk", "interface", iface, "dns", "off"}
		if name == "boot" {
			args = append(args, "listen-port", "62096")
		}
		h := hosts[name]
		t.Cleanup(func() {
			h.Run(context.Background(), whBin, "down", iface) // if the demo stopped early
			os.Remove(filepath.Join("/var/log/wirehub", iface+".log"))
		})
		say("%s: wh %s", name, strings.Join(args, " "))
		c := h.Command(ctx, whBin, args...)
		c.Dir = l.Dir()
		out, err := c.CombinedOutput()
		if err != nil {
			t.Fatalf("%s: wh up: %v\n%s", name, err, out)
		}
		say("%s", indent(string(out)))
	}

	alice, bob := hosts["alice"], hosts["bob"]
	err = lab.Eventually(30*time.Second, 200*time.Millisecond, func() error {
		_, err := alice.Run(ctx, "ping", "-c1", "-W1", "10.0.42.3")
		return err
	})
	if err != nil {
		t.Fatalf("alice cannot reach bob over the overlay: %v", err)
	}
	out, _ := alice.Run(ctx, whBin, "show", ifaces["alice"])
	say("alice: wh show %s\n%s", ifaces["alice"], indent(out))
	out, err = alice.Run(ctx, "ping", "-c3", "-i0.2", "10.0.42.3")
	say("alice: ping -c3 10.0.42.3 (bob, over WireGuard)\n%s", indent(out))
	if err != nil {
		t.Fatalf("ping failed: %v", err)
	}
	orch, _ := bob.Run(ctx, "sh", "-c", fmt.Sprintf("echo %s | %s orchid", pubs["bob"], whBin))
	out, _ = alice.Run(ctx, "ping", "-c2", "-i0.2", strings.TrimSpace(orch))
	say("alice: ping -c2 %s (bob's ORCHID IPv6)\n%s", strings.TrimSpace(orch), indent(out))
	out, _ = alice.Run(ctx, "dig", "+short", "@10.0.42.3", "alice.demo", "bob.demo", "AAAA")
	if out != "" {
		say("alice: dig @10.0.42.3 alice.demo bob.demo AAAA (bob's resolver answers the network's names)\n%s", indent(out))
	}
	out, _ = bob.Run(ctx, "wg", "show", ifaces["bob"])
	if out != "" {
		say("bob: wg show %s\n%s", ifaces["bob"], indent(out))
	}
	if hold > 0 {
		say("the network stays up for %v; press Ctrl-C to tear it down. Try:\n  sudo ip netns exec %s %s show\n", hold, alice.NS, whBin)
		select {
		case <-ctx.Done():
		case <-time.After(hold):
		}
	}
	say("tearing down")
	for _, name := range []string{"alice", "bob", "boot"} {
		say("%s: wh down %s", name, ifaces[name])
		if out, err := hosts[name].Run(context.Background(), whBin, "down", ifaces[name]); err != nil {
			t.Fatalf("%s: wh down: %v\n%s", name, err, out)
		}
	}
}

// run runs a command in the root namespace (key generation only) with
// stdin, writing stdout to outFile if set, and returns stdout.
func run(t *lab.Runner, show, bin string, args []string, stdin, outFile string) string {
	if show != "" {
		say("%s", show)
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s %s: %v", bin, strings.Join(args, " "), err)
	}
	if outFile != "" {
		if err := os.WriteFile(outFile, out, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return string(out)
}

func say(format string, a ...any) { fmt.Printf("==> "+format+"\n", a...) }

func indent(s string) string {
	return "    " + strings.ReplaceAll(strings.TrimRight(s, "\n"), "\n", "\n    ")
}
