package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/whnet/wh/config"
	"github.com/whnet/wh/invite"
	"github.com/whnet/wh/ipc"
	"github.com/whnet/wh/key"
	"github.com/whnet/wh/node"
	"github.com/whnet/wh/resolver"
)

// logDir is where detached daemons write their logs.
const logDir = "/var/log/wirehub"

// Environment variables between `wh up` and the daemon it detaches.
const (
	envReadyFD = "WH_READY_FD" // the daemon writes "ok IFACE" or "error: ..." there
	envKeyFD   = "WH_KEY_FD"   // the daemon reads its private key there

	envCPUProfile = "WH_CPUPROFILE" // for profiling the daemon: WH_CPUPROFILE=/tmp/wh.prof wh up ...
)

type upOptions struct {
	keyFile, iface, port, mode, dns, logLevel string
	invitation, invitationFile                string
	foreground                                bool
	userspace                                 bool   // netstack instead of a TUN
	socks5                                    string // SOCKS5 server address, userspace only
}

func newUpCmd(io stdio) *cobra.Command {
	var o upOptions
	cmd := &cobra.Command{
		Use:   "up CONFIG [private-key FILE] [interface NAME] [listen-port PORT] [mode unknown|direct|nat] [dns auto|resolved|hosts|off] [userspace [socks5 ADDR]] [invitation INV | invitation-file FILE]",
		Short: "Join the network described by CONFIG",
		Long: `Join the network described by CONFIG: find the trusted peers in the DHT,
open WireGuard tunnels to them on interface NAME (default wh- and the first
8 characters of the public key), and answer their hostnames over DNS.

Everything is checked before the daemon detaches: the config, the key (its
workbits), the port and the rights. The private-key file must be
accessible to its owner only (chmod 600). Without private-key, the node
uses an ephemeral key that meets the network's workbit. A node whose key has no
address in the config is headless: DHT, bootstrap and relay only, no
interface.

With userspace, the node runs on an in-process TCP/IP stack instead of a
TUN, for containers and users without root: no interface, no routes, no
DNS integration, no privilege (unless a port below 1024 is asked for).
Programs reach the network through a SOCKS5 server (socks5 ADDR, e.g.
127.0.0.1:1080, off unless asked; it resolves the network's hostnames),
and connections from peers to this node's overlay addresses, TCP and
UDP, are delivered to the same port on 127.0.0.1: a service listening on
localhost is reachable by the network's trusted nodes.

With an invitation (from wh invite; also WH_INVITATION, or invitation-file
so that it stays out of ps and shell history) the node takes the alias slot
the invitation is for: its hostname and address, and interface wh- and 8
characters of the alias key. It claims the slot at the inviter and at
every other member. Without private-key, its key is made once and kept in
/var/lib/wirehub/INTERFACE.key, so a restart keeps the slot.

The daemon detaches and logs to /var/log/wirehub/NAME.log (for a user
other than root: $XDG_STATE_HOME/wirehub, by default
~/.local/state/wirehub), unless --foreground (or FG=1) keeps it in
front, logging to stderr (for systemd and containers). Its control
socket is /var/run/wirehub/NAME.sock, or, for a user other than root,
$XDG_RUNTIME_DIR/wirehub/NAME.sock ($TMPDIR/wirehub-UID without
XDG_RUNTIME_DIR), where wh show, reload, down and ping find it.`,
		Example: `  wh up ./net.conf private-key node.sk
  wh up ./net.conf private-key node.sk interface wh-home listen-port 62096
  FG=1 wh up /etc/wirehub/home.conf private-key /etc/wirehub/home.sk
  wh up ./net.conf private-key node.sk userspace socks5 127.0.0.1:1080
  wh up ./net.conf invitation-file laptop.inv`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			rest, err := keywords(cmd, args, map[string]*string{
				"private-key": &o.keyFile, "interface": &o.iface, "listen-port": &o.port,
				"mode": &o.mode, "dns": &o.dns, "socks5": &o.socks5,
				"invitation": &o.invitation, "invitation-file": &o.invitationFile,
			})
			if err != nil {
				return err
			}
			rest = slices.DeleteFunc(rest, func(w string) bool {
				if w == "userspace" {
					o.userspace = true
				}
				return w == "userspace"
			})
			if len(rest) != 1 {
				return usagef("up: want one config file, got %q", rest)
			}
			if v := os.Getenv("FG"); v == "1" || v == "y" || v == "yes" || v == "true" {
				o.foreground = true
			}
			return up(cmd.Context(), io, rest[0], &o)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.keyFile, "private-key", "", "file holding the node's private key (default: an ephemeral key)")
	f.StringVar(&o.iface, "interface", "", "interface name (default wh- and 8 characters of the public key)")
	f.StringVar(&o.port, "listen-port", "", "UDP port for WireGuard and the DHT (default: random)")
	f.StringVar(&o.mode, "mode", "unknown", "NAT mode: unknown (detect), direct (public address) or nat")
	f.StringVar(&o.dns, "dns", "auto", "name resolution: auto, resolved (systemd-resolved), hosts (/etc/hosts) or off")
	f.StringVar(&o.logLevel, "log-level", "info", "log level: debug, info, warn or error")
	f.StringVar(&o.invitation, "invitation", "", "an invitation to claim an alias slot with (also WH_INVITATION)")
	f.StringVar(&o.invitationFile, "invitation-file", "", "a file holding the invitation")
	f.BoolVar(&o.foreground, "foreground", false, "stay in the foreground, logging to stderr (also FG=1)")
	f.BoolVar(&o.userspace, "userspace", false, "run on an in-process TCP/IP stack: no TUN, no root")
	f.StringVar(&o.socks5, "socks5", "", "address of a SOCKS5 server into the network (userspace only), e.g. 127.0.0.1:1080")
	return cmd
}

// upPlan is everything `wh up` has checked before it starts the node.
type upPlan struct {
	cfgPath  string
	network  *config.Network
	priv     key.Private
	opts     node.Options
	logLevel slog.Level
}

// plan validates the command line, the config, the key, the port and the
// rights, so that every mistake is reported before the daemon detaches.
// It makes the paths in cfgPath and o absolute: the daemon runs in /, and
// re-reads the config there on reload.
func plan(ctx context.Context, io stdio, cfgPath string, o *upOptions) (*upPlan, error) {
	var err error
	if cfgPath, err = filepath.Abs(cfgPath); err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	if o.keyFile != "" {
		if o.keyFile, err = filepath.Abs(o.keyFile); err != nil {
			return nil, fmt.Errorf("private-key: %w", err)
		}
	}
	p := &upPlan{cfgPath: cfgPath}
	if p.logLevel, err = parseLogLevel(o.logLevel); err != nil {
		return nil, err
	}
	mode, err := node.ParseMode(o.mode)
	if err != nil {
		return nil, usageError{err.Error()}
	}
	var port uint16
	if o.port != "" {
		n, err := strconv.ParseUint(o.port, 10, 16)
		if err != nil {
			return nil, usagef("listen-port %q: want a port number from 0 to 65535", o.port)
		}
		port = uint16(n)
	}
	dns, err := resolver.ParseMode(o.dns)
	if err != nil {
		return nil, usageError{err.Error()}
	}
	if err := checkUserspace(*o, dns); err != nil {
		return nil, err
	}
	if p.network, err = config.Load(cfgPath); err != nil {
		return nil, err
	}
	n := p.network
	inv, err := readInvitation(*o, n)
	if err != nil {
		return nil, err
	}
	if inv != nil && o.iface == "" {
		o.iface = "wh-" + inv.Alias.Public().Short(8)
	}

	// The key: from a file, from the daemon's parent, kept for an
	// invitation, or ephemeral.
	switch {
	case os.Getenv(envKeyFD) != "":
		p.priv, err = readKeyFD(os.Getenv(envKeyFD))
	case o.keyFile != "":
		p.priv, err = readKeyFile(o.keyFile)
	case inv != nil:
		p.priv, err = keptKey(ctx, filepath.Join(stateDir(), o.iface+".key"), n)
	default:
		if io.IsTerminal != nil && io.IsTerminal() && n.Workbit >= 12 {
			fmt.Fprintf(io.Err, "generating an ephemeral key with %d workbits...\n", n.Workbit)
		}
		p.priv, err = key.Search(ctx, n.Workbit, n.Namespace, key.SearchOptions{})
	}
	if err != nil {
		return nil, err
	}
	pub := p.priv.Public()
	if wb := key.Workbits(pub, n.Namespace); wb < n.Workbit {
		return nil, fmt.Errorf("key %s has %d workbits, network %q needs %d: make one with `(umask 077; wh genkey %s > node.sk)`",
			pub, wb, n.Name, n.Workbit, cfgPath)
	}

	iface := o.iface
	if iface == "" {
		iface = "wh-" + pub.Short(8)
	}
	if err := checkInterfaceName(iface); err != nil {
		return nil, usageError{err.Error()}
	}
	p.opts = node.Options{
		Interface:  iface,
		ConfigPath: cfgPath,
		ListenPort: port,
		Mode:       mode,
		DNS:        dns,
		Version:    version,
		SocketDir:  ipc.UserDir(),
		StateDir:   stateDir(),
		Invitation: inv,
	}
	if o.userspace {
		p.opts.Userspace, p.opts.SOCKS5, p.opts.ForwardLocal = true, o.socks5, true
	}
	if err := checkSocketFree(iface); err != nil {
		return nil, err
	}
	if err := checkPort(port); err != nil {
		return nil, err
	}
	if node.Headless(n, pub) && inv == nil {
		if o.socks5 != "" {
			return nil, fmt.Errorf("socks5: this node (%s) has no address in %s, so nothing to reach the network from", pub, cfgPath)
		}
		return p, nil
	}
	if o.userspace {
		if err := checkListen(o.socks5); err != nil {
			return nil, err
		}
		return p, nil
	}
	if err := checkNetAdmin(iface); err != nil {
		return nil, err
	}
	if err := checkIPv6(iface); err != nil {
		return nil, err
	}
	return p, nil
}

func parseLogLevel(s string) (slog.Level, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(s)); err != nil {
		return 0, usagef("log-level %q: want debug, info, warn or error", s)
	}
	return l, nil
}

// readKeyFile reads a private key from a file that only its owner can
// access: a key others can read is no longer private, one they can write
// is theirs to swap.
func readKeyFile(path string) (key.Private, error) {
	f, err := os.Open(path)
	if err != nil {
		return key.Private{}, fmt.Errorf("private-key: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return key.Private{}, fmt.Errorf("private-key: %w", err)
	}
	if who := accessibleTo(fi); who != "" {
		return key.Private{}, fmt.Errorf("private-key %s is accessible to %s (mode %04o): run `chmod 600 %s`",
			path, who, fi.Mode().Perm(), path)
	}
	b, err := io.ReadAll(io.LimitReader(f, 4096))
	if err != nil {
		return key.Private{}, fmt.Errorf("private-key: %w", err)
	}
	k, err := key.ParsePrivate(string(b))
	if err != nil {
		return key.Private{}, fmt.Errorf("private-key %s: %w", path, err)
	}
	return k, nil
}

func readKeyFD(s string) (key.Private, error) {
	fd, err := strconv.Atoi(s)
	if err != nil {
		return key.Private{}, fmt.Errorf("%s=%q: not a file descriptor", envKeyFD, s)
	}
	f := os.NewFile(uintptr(fd), "key")
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, 128))
	if err != nil {
		return key.Private{}, err
	}
	return key.ParsePrivate(string(b))
}

func checkInterfaceName(s string) error {
	if len(s) == 0 || len(s) > 15 {
		return fmt.Errorf("interface %q: a name has 1 to 15 characters", s)
	}
	for _, c := range s {
		if c <= ' ' || c == '/' || c == ':' || c > '~' {
			return fmt.Errorf("interface %q: %q is not allowed in an interface name", s, c)
		}
	}
	return nil
}

func checkSocketFree(iface string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	err := ipc.Call(ctx, ipc.SocketPath(ipc.UserDir(), iface), "version", nil, nil)
	if errors.Is(err, ipc.ErrNotRunning) {
		return nil
	}
	return fmt.Errorf("interface %s: wh is already running there (see `wh show %s`, stop it with `wh down %s`)", iface, iface, iface)
}

// checkPort reports a port that is already in use, for IPv4 or IPv6.
func checkPort(port uint16) error {
	if port == 0 {
		return nil
	}
	for _, nw := range []string{"udp4", "udp6"} {
		c, err := net.ListenPacket(nw, net.JoinHostPort("", strconv.Itoa(int(port))))
		if err != nil {
			if errors.Is(err, syscall.EADDRINUSE) {
				return fmt.Errorf("listen-port %d is in use: choose another, or leave listen-port out for a random one", port)
			}
			if nw == "udp6" && errors.Is(err, syscall.EAFNOSUPPORT) {
				continue
			}
			return fmt.Errorf("listen-port %d: %w", port, err)
		}
		c.Close()
	}
	return nil
}

// checkUserspace checks the options of a userspace node.
func checkUserspace(o upOptions, dns resolver.Mode) error {
	if !o.userspace {
		if o.socks5 != "" {
			return usagef("socks5 needs userspace: a node with a TUN is reached through the system's sockets")
		}
		return nil
	}
	if dns != resolver.ModeAuto && dns != resolver.ModeOff {
		return usagef("dns %s: a userspace node has no interface to point the system's resolver at (its SOCKS5 server resolves the network's names)", o.dns)
	}
	return nil
}

// checkListen reports a TCP address the daemon could not listen on.
func checkListen(addr string) error {
	if addr == "" {
		return nil
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("socks5 %s: %w", addr, err)
	}
	ln.Close()
	return nil
}

// checkNetAdmin reports missing rights to create an interface.
func checkNetAdmin(iface string) error {
	if !hasCapNetAdmin() {
		return fmt.Errorf("creating interface %s needs CAP_NET_ADMIN: run wh up as root (sudo), give the binary the capability (setcap cap_net_admin+ep $(command -v wh)), or run the node without an interface (wh up CONFIG ... userspace)", iface)
	}
	if _, err := os.Stat("/dev/net/tun"); err != nil {
		return fmt.Errorf("creating interface %s needs /dev/net/tun (in a container, pass --device /dev/net/tun): %w", iface, err)
	}
	return nil
}

func hasCapNetAdmin() bool {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return os.Geteuid() == 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "CapEff:"); ok {
			caps, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
			return err == nil && caps&(1<<12) != 0 // CAP_NET_ADMIN
		}
	}
	return false
}

func up(ctx context.Context, io stdio, cfgPath string, o *upOptions) error {
	p, err := plan(ctx, io, cfgPath, o)
	if err != nil {
		return readyFail(err)
	}
	if !o.foreground {
		return detach(ctx, io, p, o)
	}
	if path := os.Getenv(envCPUProfile); path != "" {
		if f, err := os.Create(path); err == nil {
			pprof.StartCPUProfile(f)
			defer func() { pprof.StopCPUProfile(); f.Close() }()
		}
	}
	log := slog.New(slog.NewTextHandler(io.Err, &slog.HandlerOptions{Level: p.logLevel}))
	keyFrom := o.keyFile
	if keyFrom == "" {
		keyFrom = "ephemeral"
	}
	log.Info("wh up", "config", p.cfgPath, "private-key", keyFrom, "interface", p.opts.Interface)
	p.opts.Logger = log
	n, err := node.New(p.network, p.priv, p.opts)
	if err != nil {
		return readyFail(err)
	}
	defer n.Close()
	readyOK(p.opts.Interface)
	return n.Run(ctx)
}

// readyOK and readyFail tell a waiting `wh up` (our parent, if any) how
// the start went; readyOK tells systemd too (Type=notify).
func readyOK(iface string) {
	writeReady("ok " + iface)
	sdNotify("READY=1\nSTATUS=" + iface + " is up")
}

func readyFail(err error) error {
	writeReady("error: " + strings.ReplaceAll(err.Error(), "\n", " "))
	return err
}

func writeReady(msg string) {
	s := os.Getenv(envReadyFD)
	if s == "" {
		return
	}
	os.Unsetenv(envReadyFD)
	fd, err := strconv.Atoi(s)
	if err != nil {
		return
	}
	f := os.NewFile(uintptr(fd), "ready")
	fmt.Fprintln(f, msg)
	f.Close()
}

// detach starts the daemon as a new session with the same command line,
// hands it the key through a pipe, and waits until it says it is up (or
// why not).
func detach(ctx context.Context, io stdio, p *upPlan, o *upOptions) error {
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	dir := userLogDir()
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return fmt.Errorf("log directory: %w", err)
	}
	logPath := filepath.Join(dir, p.opts.Interface+".log")
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o640)
	if err != nil {
		return fmt.Errorf("log file: %w", err)
	}
	defer logf.Close()

	readyR, readyW, err := os.Pipe()
	if err != nil {
		return err
	}
	defer readyR.Close()
	keyR, keyW, err := os.Pipe()
	if err != nil {
		readyW.Close()
		return err
	}
	// Every path is absolute by now: the daemon runs in /. It reads the
	// key from a pipe; --private-key only names the file in its log.
	args := []string{"up", p.cfgPath, "--foreground", "--interface", p.opts.Interface,
		"--listen-port", strconv.Itoa(int(p.opts.ListenPort)), "--mode", o.mode, "--dns", o.dns,
		"--log-level", o.logLevel}
	if o.userspace {
		args = append(args, "--userspace", "--socks5", o.socks5)
	}
	if o.keyFile != "" {
		args = append(args, "--private-key", o.keyFile)
	}
	env := append(os.Environ(), envReadyFD+"=3", envKeyFD+"=4", "FG=")
	if prof := os.Getenv(envCPUProfile); prof != "" {
		abs, err := filepath.Abs(prof)
		if err != nil {
			return fmt.Errorf("%s: %w", envCPUProfile, err)
		}
		env = append(env, envCPUProfile+"="+abs)
	}
	cmd := exec.Command(exe, args...)
	cmd.Env = env
	if inv := p.opts.Invitation; inv != nil {
		cmd.Env = append(cmd.Env, envInvitation+"="+inv.String()) // not in ps
	}
	cmd.Stdin = nil
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.ExtraFiles = []*os.File{readyW, keyR}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	cmd.Dir = "/"
	err = cmd.Start()
	readyW.Close()
	keyR.Close()
	if err != nil {
		keyW.Close()
		return fmt.Errorf("starting the daemon: %w", err)
	}
	fmt.Fprintln(keyW, p.priv.String())
	keyW.Close()
	go cmd.Wait() // reap it if it dies while we wait

	type result struct {
		line string
		err  error
	}
	done := make(chan result, 1)
	go func() {
		line, err := bufio.NewReader(readyR).ReadString('\n')
		done <- result{strings.TrimSpace(line), err}
	}()
	select {
	case r := <-done:
		switch {
		case strings.HasPrefix(r.line, "ok "):
			fmt.Fprintf(io.Err, "%s is up (logs: %s)\n", strings.TrimPrefix(r.line, "ok "), logPath)
			return nil
		case strings.HasPrefix(r.line, "error: "):
			return errors.New(strings.TrimPrefix(r.line, "error: "))
		default:
			return fmt.Errorf("the daemon exited before it was up: see %s", logPath)
		}
	case <-time.After(60 * time.Second):
		return fmt.Errorf("the daemon did not come up within 60 s: see %s", logPath)
	case <-ctx.Done():
		cmd.Process.Kill()
		return ctx.Err()
	}
}

// userLogDir is where detached daemons of the current user write their
// logs: logDir for root; for anyone else $XDG_STATE_HOME/wirehub, by
// default ~/.local/state/wirehub, or the socket directory when there is
// no usable home (system users such as nobody).
func userLogDir() string {
	if os.Geteuid() == 0 {
		return logDir
	}
	state := os.Getenv("XDG_STATE_HOME")
	if !filepath.IsAbs(state) {
		if home, err := os.UserHomeDir(); err == nil && filepath.IsAbs(home) {
			state = filepath.Join(home, ".local", "state")
		}
	}
	if state != "" {
		d := filepath.Join(state, "wirehub")
		if os.MkdirAll(d, 0o750) == nil {
			return d
		}
	}
	return ipc.UserDir()
}

// stateDir is where the daemon keeps its claims: WH_STATE_DIR, else
// node.DefaultStateDir.
func stateDir() string {
	if d := os.Getenv("WH_STATE_DIR"); d != "" {
		return d
	}
	return node.DefaultStateDir
}

// envInvitation holds an invitation for `wh up`.
const envInvitation = "WH_INVITATION"

// readInvitation returns the invitation of the command line (invitation,
// invitation-file) or of WH_INVITATION, checked against n, or nil.
func readInvitation(o upOptions, n *config.Network) (*invite.Invitation, error) {
	s, what := o.invitation, "invitation"
	switch {
	case s != "" && o.invitationFile != "":
		return nil, usagef("up: invitation and invitation-file: give one")
	case o.invitationFile != "":
		b, err := os.ReadFile(o.invitationFile)
		if err != nil {
			return nil, fmt.Errorf("invitation-file: %w", err)
		}
		s, what = string(b), o.invitationFile
	case s == "":
		s, what = os.Getenv(envInvitation), envInvitation
	}
	if s == "" {
		return nil, nil
	}
	inv, err := invite.Parse(s, n.Namespace, n.Workbit)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	if c, ok := n.Node(inv.Alias.Public()); !ok || c.Role != config.Alias {
		return nil, fmt.Errorf("%s: its alias %s is not an alias line of the config: ask the inviter for the config with it", what, inv.Alias.Public())
	}
	return &inv, nil
}

// keptKey returns the private key kept at path, making one that meets
// n's workbit the first time.
func keptKey(ctx context.Context, path string, n *config.Network) (key.Private, error) {
	if _, err := os.Stat(path); err == nil {
		return readKeyFile(path)
	}
	k, err := key.Search(ctx, n.Workbit, n.Namespace, key.SearchOptions{})
	if err != nil {
		return key.Private{}, err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return key.Private{}, fmt.Errorf("keeping the key: %w", err)
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(k.String()+"\n"), 0o600); err != nil {
		return key.Private{}, fmt.Errorf("keeping the key: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return key.Private{}, fmt.Errorf("keeping the key: %w", err)
	}
	return k, nil
}
