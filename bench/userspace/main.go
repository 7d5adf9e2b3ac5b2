// Command userspace benchmarks a userspace wh node (netstack, no TUN)
// against a TUN node, in the same run. It needs root, for the namespaces
// and the TUN end:
//
//	go run ./bench/userspace [-t 10] [-runs 3]
//
// Topology, with S a random suffix so that runs never collide:
//
//	netns bua-S                                   netns bub-S
//	  bxa-S 10.243.0.1/24  <------ veth ------>     bxb-S 10.243.0.2/24
//	  wh 10.244.0.1: TUN (t), or userspace with     wh 10.244.0.2, TUN
//	  SOCKS5 on 127.0.0.1:1080 (s, f)
//
// One TCP stream for -t seconds, counted by the receiving end:
//
//	(t) TUN ↔ TUN: A dials 10.244.0.2:5201 through its TUN (the baseline)
//	(s) SOCKS5: A dials 10.244.0.2:5201 through A's SOCKS5 server
//	(f) forward: B dials 10.244.0.1:5201, which A's userspace node
//	    delivers to a receiver on A's 127.0.0.1:5201
//
// It prints Gbit/s of each, alternating the kinds within each run, their
// medians, and s/t and f/t.
package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/net/proxy"

	"github.com/whnet/wh/key"
)

func main() {
	if len(os.Args) > 1 {
		var err error
		switch os.Args[1] {
		case "recv":
			err = recv(os.Args[2])
		case "send":
			err = send(os.Args[2:])
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "bench/userspace:", err)
			os.Exit(1)
		}
		if os.Args[1] == "recv" || os.Args[1] == "send" {
			return
		}
	}
	var b bench
	flag.IntVar(&b.seconds, "t", 10, "seconds per transfer")
	flag.IntVar(&b.runs, "runs", 3, "runs of each kind, alternating")
	flag.Parse()
	if err := b.run(context.Background()); err != nil {
		fmt.Fprintln(os.Stderr, "bench/userspace:", err)
		os.Exit(1)
	}
}

type bench struct {
	seconds, runs int
	self, wh, dir string
	sfx           string
	nsA, nsB      string
	keyA, keyB    key.Private
}

const (
	ipA, ipB   = "10.244.0.1", "10.244.0.2"
	ulA, ulB   = "10.243.0.1", "10.243.0.2"
	port       = "5201"
	socks      = "127.0.0.1:1080"
	listenPort = "51820"
)

func (b *bench) run(ctx context.Context) error {
	if os.Geteuid() != 0 {
		return errors.New("needs root (network namespaces, TUN)")
	}
	var err error
	if b.self, err = os.Executable(); err != nil {
		return err
	}
	if b.dir, err = os.MkdirTemp("", "bench-userspace-"); err != nil {
		return err
	}
	defer os.RemoveAll(b.dir)
	b.wh = filepath.Join(b.dir, "wh")
	if out, err := exec.CommandContext(ctx, "go", "build", "-o", b.wh, "github.com/whnet/wh/cmd/wh").CombinedOutput(); err != nil {
		return fmt.Errorf("build wh: %v\n%s", err, out)
	}
	s := make([]byte, 3)
	rand.Read(s)
	b.sfx = hex.EncodeToString(s)
	b.nsA, b.nsB = "bua-"+b.sfx, "bub-"+b.sfx
	defer func() {
		exec.Command("ip", "netns", "del", b.nsA).Run()
		exec.Command("ip", "netns", "del", b.nsB).Run()
	}()
	for _, st := range [][]string{
		{"netns", "add", b.nsA}, {"netns", "add", b.nsB},
		{"-n", b.nsA, "link", "set", "lo", "up"}, {"-n", b.nsB, "link", "set", "lo", "up"},
		{"link", "add", "bxa-" + b.sfx, "netns", b.nsA, "type", "veth", "peer", "name", "bxb-" + b.sfx, "netns", b.nsB},
		{"-n", b.nsA, "addr", "add", ulA + "/24", "dev", "bxa-" + b.sfx},
		{"-n", b.nsB, "addr", "add", ulB + "/24", "dev", "bxb-" + b.sfx},
		{"-n", b.nsA, "link", "set", "bxa-" + b.sfx, "up"},
		{"-n", b.nsB, "link", "set", "bxb-" + b.sfx, "up"},
	} {
		if out, err := exec.CommandContext(ctx, "ip", st...).CombinedOutput(); err != nil {
			return fmt.Errorf("ip %s: %v: %s", strings.Join(st, " "), err, out)
		}
	}
	if b.keyA, err = key.NewPrivate(); err != nil {
		return err
	}
	if b.keyB, err = key.NewPrivate(); err != nil {
		return err
	}
	if err := b.writeConfig(); err != nil {
		return err
	}
	whB, err := b.startWH(ctx, b.nsB, "B", b.keyB)
	if err != nil {
		return err
	}
	defer stop(whB)

	fmt.Printf("one TCP stream, %d s, %d runs; wh on both ends over a veth\n", b.seconds, b.runs)
	var tun, sock, fwd []float64
	for i := range b.runs {
		kinds := []string{"t", "s", "f"}
		if i%2 == 1 {
			slices.Reverse(kinds)
		}
		got := map[string]float64{}
		for _, k := range kinds {
			g, err := b.measure(ctx, k)
			if err != nil {
				return fmt.Errorf("(%s): %w", k, err)
			}
			got[k] = g
		}
		fmt.Printf("run %d: (t) TUN %6.3f  (s) SOCKS5 %6.3f  (f) forward %6.3f Gbit/s\n", i+1, got["t"], got["s"], got["f"])
		tun, sock, fwd = append(tun, got["t"]), append(sock, got["s"]), append(fwd, got["f"])
	}
	mt, ms, mf := median(tun), median(sock), median(fwd)
	fmt.Printf("\nmedians\n(t) TUN ↔ TUN                       %6.3f Gbit/s\n", mt)
	fmt.Printf("(s) SOCKS5 → userspace ↔ TUN        %6.3f Gbit/s   s/t = %.3f\n", ms, ms/mt)
	fmt.Printf("(f) TUN ↔ userspace → 127.0.0.1     %6.3f Gbit/s   f/t = %.3f\n", mf, mf/mt)
	return nil
}

// measure starts A as kind needs (a TUN node for t, a userspace one for s
// and f), runs one transfer, and stops A.
func (b *bench) measure(ctx context.Context, kind string) (float64, error) {
	whA, err := b.startWH(ctx, b.nsA, "A", b.keyA, map[bool][]string{true: {"userspace", "socks5", socks}}[kind != "t"]...)
	if err != nil {
		return 0, err
	}
	defer stop(whA)
	recvNS, recvAddr, sendNS, args := b.nsB, ipB+":"+port, b.nsA, []string{ipB + ":" + port}
	switch kind {
	case "s":
		args = append(args, socks)
	case "f":
		recvNS, recvAddr, sendNS, args = b.nsA, "127.0.0.1:"+port, b.nsB, []string{ipA + ":" + port}
	}
	r := exec.CommandContext(ctx, "ip", "netns", "exec", recvNS, b.self, "recv", recvAddr)
	r.Stderr = os.Stderr
	if err := r.Start(); err != nil {
		return 0, err
	}
	defer func() { r.Process.Kill(); r.Wait() }()
	args = append([]string{"netns", "exec", sendNS, b.self, "send", strconv.Itoa(b.seconds)}, args...)
	out, err := exec.CommandContext(ctx, "ip", args...).Output()
	if err != nil {
		return 0, fmt.Errorf("send: %v", err)
	}
	return strconv.ParseFloat(strings.TrimSpace(string(out)), 64)
}

func (b *bench) writeConfig() error {
	ends := []string{
		fmt.Sprintf("trust %s a %s %s:%s", ipA, b.keyA.Public(), ulA, listenPort),
		fmt.Sprintf("trust %s b %s %s:%s", ipB, b.keyB.Public(), ulB, listenPort),
	}
	return os.WriteFile(filepath.Join(b.dir, "net.conf"), []byte("name bench\nworkbit 0\nsubnet 10.244.0.0/24\n"+strings.Join(ends, "\n")+"\n"), 0o644)
}

// startWH starts wh in ns in the foreground and waits until it answers.
func (b *bench) startWH(ctx context.Context, ns, name string, k key.Private, extra ...string) (*exec.Cmd, error) {
	keyf := filepath.Join(b.dir, name+".sk")
	if err := os.WriteFile(keyf, []byte(k.String()), 0o600); err != nil {
		return nil, err
	}
	iface := "bu" + strings.ToLower(name) + "-" + b.sfx
	args := append([]string{"netns", "exec", ns, b.wh, "up", filepath.Join(b.dir, "net.conf"), "private-key", keyf,
		"interface", iface, "listen-port", listenPort, "mode", "direct", "dns", "off", "--foreground", "--log-level", "warn"}, extra...)
	cmd := exec.CommandContext(ctx, "ip", args...)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	for deadline := time.Now().Add(10 * time.Second); ; {
		if exec.CommandContext(ctx, "ip", "netns", "exec", ns, b.wh, "show", iface).Run() == nil {
			return cmd, nil
		}
		if time.Now().After(deadline) {
			stop(cmd)
			return nil, fmt.Errorf("wh in %s: not up within 10s", ns)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func stop(c *exec.Cmd) {
	c.Process.Signal(os.Interrupt)
	done := make(chan struct{})
	go func() { c.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		c.Process.Kill()
		<-done
	}
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// recv accepts one connection on addr, counts what arrives until EOF and
// answers with the count.
func recv(addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	defer ln.Close()
	c, err := ln.Accept()
	if err != nil {
		return err
	}
	defer c.Close()
	n, err := io.Copy(io.Discard, c)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(c, "%d\n", n)
	return err
}

// send: SECONDS ADDR [SOCKS5]. It connects to ADDR (through the SOCKS5
// server if given), retrying while paths form, sends for SECONDS, half-
// closes, and prints the Gbit/s the receiver counted.
func send(args []string) error {
	if len(args) < 2 {
		return errors.New("send SECONDS ADDR [SOCKS5]")
	}
	secs, err := strconv.Atoi(args[0])
	if err != nil {
		return err
	}
	var d proxy.Dialer = &net.Dialer{Timeout: 2 * time.Second}
	if len(args) > 2 {
		if d, err = proxy.SOCKS5("tcp", args[2], nil, &net.Dialer{Timeout: 2 * time.Second}); err != nil {
			return err
		}
	}
	var c net.Conn
	for deadline := time.Now().Add(20 * time.Second); ; {
		if c, err = d.Dial("tcp", args[1]); err == nil {
			break
		}
		if time.Now().After(deadline) {
			return err
		}
		time.Sleep(100 * time.Millisecond)
	}
	defer c.Close()
	buf := bytes.Repeat([]byte{0x5a}, 128<<10)
	start := time.Now()
	for end := start.Add(time.Duration(secs) * time.Second); time.Now().Before(end); {
		if _, err := c.Write(buf); err != nil {
			return err
		}
	}
	if cw, ok := c.(interface{ CloseWrite() error }); ok {
		cw.CloseWrite()
	}
	reply, err := io.ReadAll(c)
	if err != nil {
		return err
	}
	elapsed := time.Since(start)
	n, err := strconv.ParseInt(strings.TrimSpace(string(reply)), 10, 64)
	if err != nil {
		return fmt.Errorf("receiver said %q", reply)
	}
	fmt.Printf("%.4f\n", float64(n)*8/elapsed.Seconds()/1e9)
	return nil
}
