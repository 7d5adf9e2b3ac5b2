// Command 0nc is netcat over a one-shot overlay: `0nc` prints an
// invitation, `0nc INVITATION` on another machine connects to it, and
// from then on the stdin of each is piped to the stdout of the other, end
// to end encrypted, through the NATs between them. It runs a userspace
// node in process: no root, no TUN, nothing written to disk.
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/whnet/wh/config"
	"github.com/whnet/wh/invite"
	"github.com/whnet/wh/key"
	"github.com/whnet/wh/node"
	"github.com/whnet/wh/resolver"
)

const usage = `usage: 0nc [-v] [CONFIG]                      print an invitation, wait for its peer
       0nc [-v] [CONFIG] INVITATION           connect to the inviter
       0nc [-v] [CONFIG] -i FILE              the same, the invitation read from FILE

stdin goes to the peer's stdout and the peer's stdin to stdout; stdout
carries nothing else. Each direction closes on its own end of input; 0nc
exits 0 once both directions are closed and everything was delivered, 1
with a reason on stderr otherwise.

CONFIG gives the DHT to meet through: its boot, namespace and workbit lines
(other lines are ignored). Without CONFIG, /etc/wirehub/0nc.conf if it
exists; WH_BOOT="KEY HOST:PORT" adds a boot node. An invitation in the long
form carries the inviter's addresses and DHT contacts and needs no boot
node; WireHub's 86-character form needs CONFIG or WH_BOOT.

The invitation may also come from WH_INVITATION. It admits one peer, for one
connection, while the inviting 0nc runs. The invitee gives up when the
inviter does not answer within 60 s.

  -v   say on stderr who connected, the path (direct ip:port or relayed
       through which node) and, every 5 s of a transfer, bytes and rate
`

// defaultConfig is read when no CONFIG is given, if it exists.
const defaultConfig = "/etc/wirehub/0nc.conf"

// findTimeout bounds how long the invitee looks for the inviter: the
// claim answered and the TCP connection set up. A variable for tests.
var findTimeout = 60 * time.Second

// port is the overlay TCP port the inviter listens on.
const port = 1

// linger is how long a finished 0nc keeps its node up so that its last
// segments and acknowledgements reach the peer.
const linger = 2 * time.Second

// Hostnames of the one-shot network.
const (
	inviterName = "inviter"
	peerName    = "peer"
)

// testOptions, if set, changes the node's options (tests: loopback, no
// port mapping).
var testOptions func(*node.Options)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr, os.Getenv))
}

type session struct {
	verbose bool
	stderr  io.Writer
}

func (s *session) logf(format string, a ...any) {
	if s.verbose {
		fmt.Fprintf(s.stderr, "0nc: "+format+"\n", a...)
	}
}

// run is 0nc with its arguments, streams and environment; it returns the
// exit code.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer, getenv func(string) string) int {
	fs := flag.NewFlagSet("0nc", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	verbose := fs.Bool("v", false, "")
	invFile := fs.String("i", "", "")
	help := fs.Bool("h", false, "")
	fs.BoolVar(help, "help", false, "")
	if err := fs.Parse(args); err != nil {
		fmt.Fprintf(stderr, "0nc: %v\n%s", err, usage)
		return 2
	}
	if *help {
		fmt.Fprint(stdout, usage)
		return 0
	}
	s := &session{verbose: *verbose, stderr: stderr}
	fail := func(err error) int {
		fmt.Fprintf(stderr, "0nc: %v\n", err)
		return 1
	}
	var cfgPath, invText string
	rest := fs.Args()
	if len(rest) > 2 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	for _, a := range rest {
		if _, err := os.Stat(a); err == nil && cfgPath == "" {
			cfgPath = a
		} else if invText == "" {
			invText = a
		} else {
			fmt.Fprint(stderr, usage)
			return 2
		}
	}
	if *invFile != "" {
		if invText != "" {
			return fail(errors.New("an invitation and -i: give one"))
		}
		b, err := os.ReadFile(*invFile)
		if err != nil {
			return fail(err)
		}
		invText = string(b)
	}
	if invText == "" {
		invText = getenv("WH_INVITATION")
	}
	meet, err := meeting(cfgPath, getenv("WH_BOOT"))
	if err != nil {
		return fail(err)
	}
	if invText != "" {
		err = s.join(ctx, meet, invText, stdin, stdout)
	} else {
		err = s.invite(ctx, meet, stdin, stdout)
	}
	if err != nil {
		return fail(err)
	}
	return 0
}

// meet is what the one-shot network takes from CONFIG.
type meet struct {
	lines     string // namespace, workbit and boot lines
	namespace string
	workbit   int
	boots     int
}

// meeting reads the namespace, workbit and boot lines of path (or of
// defaultConfig, if path is "" and it exists) and adds WH_BOOT's.
func meeting(path, envBoot string) (meet, error) {
	var b strings.Builder
	explicit := path != ""
	if !explicit {
		path = defaultConfig
	}
	data, err := os.ReadFile(path)
	if err != nil && (explicit || !errors.Is(err, os.ErrNotExist)) {
		return meet{}, err
	}
	for _, l := range strings.Split(string(data), "\n") {
		f := strings.Fields(l)
		if len(f) > 0 && (f[0] == "boot" || f[0] == "namespace" || f[0] == "workbit") {
			b.WriteString(strings.Join(f, " ") + "\n")
		}
	}
	if envBoot = strings.TrimSpace(envBoot); envBoot != "" {
		b.WriteString("boot " + envBoot + "\n")
	}
	n, err := config.Parse(path, []byte("name 0nc\n"+b.String()))
	if err != nil {
		return meet{}, fmt.Errorf("boot nodes: %w", err)
	}
	return meet{lines: b.String(), namespace: n.Namespace, workbit: n.Workbit, boots: len(n.Boot())}, nil
}

// network is the one-shot network: the inviter and the alias slot of its
// peer, both on a subnet of their own.
func (m meet) network(inviter, alias key.Public) (*config.Network, error) {
	s := "name 0nc\n" + m.lines + "subnet 10.0.0.0/24\n" +
		fmt.Sprintf("trust %s %s\n", inviterName, inviter) +
		config.AliasLine(peerName, alias, time.Time{}) + "\n"
	return config.Parse("0nc", []byte(s))
}

// start runs a userspace node of n with priv; stop ends it.
func (s *session) start(n *config.Network, priv key.Private, inv *invite.Invitation) (nd *node.Node, stop func(), err error) {
	opt := node.Options{
		Interface:  "0nc",
		Userspace:  true,
		DNS:        resolver.ModeOff,
		NoDNS:      true,
		Invitation: inv,
		Logger:     slog.New(slog.DiscardHandler),
	}
	if testOptions != nil {
		testOptions(&opt)
	}
	nd, err = node.New(n, priv, opt)
	if err != nil {
		return nil, nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { nd.Run(ctx); close(done) }()
	return nd, func() { cancel(); <-done; nd.Close() }, nil
}

// invite makes the network, prints the invitation and serves one
// connection.
func (s *session) invite(ctx context.Context, m meet, stdin io.Reader, stdout io.Writer) error {
	priv, err := key.Search(ctx, m.workbit, m.namespace, key.SearchOptions{})
	if err != nil {
		return err
	}
	alias, err := key.Search(ctx, m.workbit, m.namespace, key.SearchOptions{})
	if err != nil {
		return err
	}
	n, err := m.network(priv.Public(), alias.Public())
	if err != nil {
		return err
	}
	nd, stop, err := s.start(n, priv, nil)
	if err != nil {
		return err
	}
	defer stop()
	ln, err := nd.Listen("tcp", fmt.Sprintf(":%d", port))
	if err != nil {
		return err
	}
	defer ln.Close()
	inv := invite.Invitation{Inviter: priv.Public(), Alias: alias}
	inv.Addrs, inv.Contacts = reach(ctx, nd, m.boots > 0)
	fmt.Fprintf(s.stderr, "0nc invitation: %s\n", inv)
	type accepted struct {
		c   net.Conn
		err error
	}
	ch := make(chan accepted, 1)
	go func() { c, err := ln.Accept(); ch <- accepted{c, err} }()
	var c net.Conn
	select {
	case <-ctx.Done():
		return ctx.Err()
	case a := <-ch:
		if a.err != nil {
			return a.err
		}
		c = a.c
	}
	ln.Close() // one connection per invitation
	s.logf("connected: %s", s.describeSoon(ctx, nd, peerName))
	return s.pipe(ctx, nd, peerName, c, stdin, stdout)
}

// reach returns where the invitee finds nd: its addresses as others see
// them and a few DHT contacts, waiting a while for the DHT to answer.
func reach(ctx context.Context, nd *node.Node, wait bool) ([]netip.AddrPort, []invite.Contact) {
	deadline := time.Now().Add(10 * time.Second)
	for {
		var addrs []netip.AddrPort
		nc := nd.Netcheck()
		for _, s := range append([]string{nc.External}, nc.Reflexive...) {
			if a, err := netip.ParseAddrPort(s); err == nil && len(addrs) < invite.MaxAddrs {
				a = netip.AddrPortFrom(a.Addr().Unmap(), a.Port())
				if a.Addr().Zone() == "" && a.Port() != 0 && !contains(addrs, a) {
					addrs = append(addrs, a)
				}
			}
		}
		var contacts []invite.Contact
		for _, p := range nd.Status(true).Peers {
			if p.Trusted || len(contacts) == invite.MaxContacts {
				continue
			}
			k, err1 := key.ParsePublic(p.Key)
			a, err2 := netip.ParseAddrPort(p.Endpoint)
			if err1 == nil && err2 == nil && a.Port() != 0 && a.Addr().Zone() == "" {
				contacts = append(contacts, invite.Contact{Key: k, Addr: netip.AddrPortFrom(a.Addr().Unmap(), a.Port())})
			}
		}
		if !wait || (len(contacts) > 0 && len(addrs) > 0) || time.Now().After(deadline) {
			return addrs, contacts
		}
		select {
		case <-ctx.Done():
			return addrs, contacts
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func contains(as []netip.AddrPort, a netip.AddrPort) bool {
	for _, x := range as {
		if x == a {
			return true
		}
	}
	return false
}

// join claims the slot of the invitation and connects to the inviter.
func (s *session) join(ctx context.Context, m meet, text string, stdin io.Reader, stdout io.Writer) error {
	inv, err := invite.Parse(text, m.namespace, m.workbit)
	if err != nil {
		return fmt.Errorf("bad invitation: %w", err)
	}
	if !inv.Long() && m.boots == 0 {
		return errors.New("a short invitation needs boot nodes: give a CONFIG with boot lines, or WH_BOOT")
	}
	n, err := m.network(inv.Inviter, inv.Alias.Public())
	if err != nil {
		return err
	}
	priv, err := key.Search(ctx, m.workbit, m.namespace, key.SearchOptions{})
	if err != nil {
		return err
	}
	nd, stop, err := s.start(n, priv, &inv)
	if err != nil {
		return err
	}
	defer stop()
	fctx, cancel := context.WithTimeout(ctx, findTimeout)
	defer cancel()
	for {
		res, err := nd.Claim(fctx, inv.Inviter, inv.Alias)
		if err == nil && !res.Accepted {
			return fmt.Errorf("the inviter refused: %s", res.Reason)
		}
		if err == nil {
			break
		}
		if fctx.Err() != nil {
			return fmt.Errorf("the inviter was not found within %v", findTimeout)
		}
		if !errors.Is(err, node.ErrNoAnswer) {
			return fmt.Errorf("claiming the invitation: %w", err)
		}
	}
	s.logf("claim accepted by the inviter")
	var c net.Conn
	for {
		c, err = nd.Dial(fctx, "tcp", fmt.Sprintf("%s:%d", inviterName, port))
		if err == nil {
			break
		}
		if errors.Is(err, syscall.ECONNREFUSED) {
			return errors.New("the inviter refused the connection: its invitation was used")
		}
		if fctx.Err() != nil {
			return fmt.Errorf("no connection to the inviter within %v: %v", findTimeout, err)
		}
		time.Sleep(500 * time.Millisecond)
	}
	s.logf("connected: %s", s.describeSoon(ctx, nd, inviterName))
	return s.pipe(ctx, nd, inviterName, c, stdin, stdout)
}

// describeSoon is describe once the node knows the path, or after 3 s.
func (s *session) describeSoon(ctx context.Context, nd *node.Node, host string) string {
	if !s.verbose {
		return ""
	}
	for i := 0; i < 30; i++ {
		d := s.describe(nd, host)
		if strings.Contains(d, "direct ") || strings.Contains(d, "relayed via ") || ctx.Err() != nil {
			return d
		}
		time.Sleep(100 * time.Millisecond)
	}
	return s.describe(nd, host)
}

// describe says who host is and how it is reached.
func (s *session) describe(nd *node.Node, host string) string {
	for _, p := range nd.Status(false).Peers {
		if p.Hostname != host {
			continue
		}
		path := string(p.Path)
		switch {
		case p.Endpoint != "":
			path = "direct " + p.Endpoint
		case p.Relay != "":
			path = "relayed via " + p.Relay
		}
		return fmt.Sprintf("%s %s, %s", host, p.Key, path)
	}
	return host
}

// pipe copies stdin to c and c to stdout, each until its end, closing
// c's writing side at the end of stdin.
func (s *session) pipe(ctx context.Context, nd *node.Node, host string, c net.Conn, stdin io.Reader, stdout io.Writer) error {
	defer c.Close()
	var sent, recvd atomic.Int64
	errs := make(chan error, 2)
	go func() {
		_, err := io.Copy(c, countReader{stdin, &sent})
		if err != nil {
			errs <- fmt.Errorf("sending: %w", err)
			return
		}
		if cw, ok := c.(interface{ CloseWrite() error }); ok {
			err = cw.CloseWrite()
		}
		if err != nil {
			err = fmt.Errorf("closing the sending side: %w", err)
		}
		errs <- err
	}()
	go func() {
		w := bufio.NewWriterSize(stdout, 64<<10)
		_, err := io.Copy(w, countReader{c, &recvd})
		if err == nil {
			err = w.Flush()
		}
		if err != nil {
			err = fmt.Errorf("receiving: %w", err)
		}
		errs <- err
	}()
	var once sync.Once
	start := time.Now()
	tick := time.NewTicker(5 * time.Second)
	defer tick.Stop()
	path := ""
	for left := 2; left > 0; {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case err := <-errs:
			if err != nil {
				return err
			}
			left--
		case <-tick.C:
			if d := s.describe(nd, host); d != path {
				if path != "" {
					s.logf("path: %s", d)
				}
				path = d
			}
			el := time.Since(start).Seconds()
			s.logf("sent %d B (%.1f MB/s), received %d B (%.1f MB/s)", sent.Load(), float64(sent.Load())/el/1e6, recvd.Load(), float64(recvd.Load())/el/1e6)
		}
		once.Do(func() { path = s.describe(nd, host) })
	}
	s.logf("done: sent %d B, received %d B in %.1f s", sent.Load(), recvd.Load(), time.Since(start).Seconds())
	c.Close()
	time.Sleep(linger)
	return nil
}

type countReader struct {
	r io.Reader
	n *atomic.Int64
}

func (c countReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n.Add(int64(n))
	return n, err
}
