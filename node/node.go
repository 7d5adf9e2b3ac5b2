// Package node is the wh daemon as a library: it owns one network, runs
// the DHT and the WireGuard device on one UDP port, finds each trusted peer
// by looking its key up, keeps a path to it, and applies config reloads as
// a diff.
//
// Data flows one way through it:
//
//	UDP port ── tunnel.Bind ─┬─ WireGuard messages → wireguard-go → TUN
//	                         └─ control messages → wire.Codec.Open → observe (paths)
//	                                  → puncher, relay server, relay client, dht
//	dht / path probes → wire.Codec.Seal → tunnel.Bind.SendControl → UDP port
//
// The node decides each trusted peer's path (tunnel.Bind.SetPath); the
// WireGuard device only ever sees one stable endpoint per peer.
package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.zx2c4.com/wireguard/conn"

	"github.com/whnet/wh/config"
	"github.com/whnet/wh/dht"
	"github.com/whnet/wh/ipc"
	"github.com/whnet/wh/key"
	"github.com/whnet/wh/nat"
	"github.com/whnet/wh/nat/portmap"
	"github.com/whnet/wh/orchid"
	"github.com/whnet/wh/relay"
	"github.com/whnet/wh/resolver"
	"github.com/whnet/wh/tunnel"
	"github.com/whnet/wh/wire"
)

// Timers. A peer's path is retried with exponential backoff between
// retryMin and retryMax while it has none; a path whose last handshake is
// older than pathStale is probed again.
const (
	tickEvery = time.Second
	retryMin  = time.Second
	retryMax  = 30 * time.Second
	pathStale = 3 * time.Minute // WireGuard's RejectAfterTime
	probeWait = 2 * time.Second
)

// Node is one running network.
type Node struct {
	// Constant after New.
	opt   Options
	log   *slog.Logger
	priv  key.Private
	pub   key.Public
	codec *wire.Codec
	bind  *tunnel.Bind
	dev   *tunnel.Device // nil when headless
	dht   *dht.Server
	ctl   *ipc.Server // nil without a socket directory

	det   *nat.Detector   // what others see of us
	punch *nat.Puncher    // hole punching, and rendezvous for others
	pm    *portmap.Mapper // nil when port mapping is off

	relayServer *relay.Server // relays for others
	relayClient *relay.Client // relays for our peers

	dnsHandler *resolver.Handler    // nil without DNS
	dnsServer  *resolver.Server     // nil without DNS
	dnsInteg   *resolver.Integrator // nil when not hooked into the system

	us   *userspace // nil unless a userspace node
	auth *auth      // alias slots: claims made here and by this node (auth.go)

	ready atomic.Bool // set when New is done: control messages are handled
	// pongSrc is the source of the Pong being handled, by sender, for
	// onPong (called inside dht.Handle, on the receive goroutine).
	pongSrc sync.Map // key.Public → netip.AddrPort
	port    uint16
	boot    []dht.Contact // the boot nodes, resolved at start
	// subnet is the overlay's, whose addresses are never underlay
	// candidates. It cannot change on reload (the node's own address
	// would).
	subnet netip.Prefix
	addrs  []netip.Prefix // the interface's addresses

	// Lock order: applyMu, then mu; then the locks of the Bind, the
	// relay client and the puncher, which never call back into the node
	// holding them; path.go's probes.mu is a leaf. The device is never
	// called with mu held; Bind calls under mu (Learn, SetPath) change
	// tables, but SetPath may send a held handshake: left for the path
	// engine to move out.
	applyMu sync.Mutex // serializes applyPeers: one device configuration at a time
	mu      sync.Mutex
	net     *config.Network      // guarded by mu
	peers   map[key.Public]*peer // trusted peers other than self; guarded by mu
	probes  probes               // path probes out (path.go)

	ctx      context.Context // cancelled by Close
	cancel   context.CancelFunc
	wg       sync.WaitGroup
	downReq  chan struct{} // closed when a client asks the node to go down
	downOnce sync.Once
	closed   sync.Once
}

// peer is the node's view of one trusted peer. Guarded by Node.mu.
type peer struct {
	cfg  config.Node
	path // see path.go
}

// New starts a node for network n with private key priv: it opens the
// UDP port, creates the interface (unless headless) and the control
// socket. Run then joins the network.
func New(n *config.Network, priv key.Private, opt Options) (*Node, error) {
	pub := priv.Public()
	if wb := key.Workbits(pub, n.Namespace); wb < n.Workbit {
		return nil, fmt.Errorf("key %s has %d workbits, the network needs %d", pub, wb, n.Workbit)
	}
	if opt.Interface == "" {
		opt.Interface = "wh-" + pub.Short(8)
	}
	log := opt.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	au, err := newAuth(opt, n, pub)
	if err != nil {
		return nil, err
	}
	n = au.effective(n)
	ctx, cancel := context.WithCancel(context.Background())
	nd := &Node{
		opt:     opt,
		log:     log,
		priv:    priv,
		pub:     pub,
		codec:   wire.NewCodec(priv, n.Namespace, n.Workbit, wire.WithDeriveLimits(wire.DefaultDeriveLimits)),
		net:     n,
		subnet:  n.Subnet,
		peers:   make(map[key.Public]*peer),
		ctx:     ctx,
		cancel:  cancel,
		downReq: make(chan struct{}),
		auth:    au,
	}
	ok := false
	defer func() {
		if !ok {
			nd.Close()
		}
	}()
	nd.bind = tunnel.NewBind(tunnel.BindOptions{
		Self:      pub,
		IsControl: wire.IsControl,
		OnControl: nd.handleControl,
		Logger:    log,
		UDP:       opt.UDP,
	})
	nd.boot = append(resolveBoot(ctx, n, pub, opt.Resolver, log), au.seeds()...)
	nd.codec.Pin("boot", keysOf(nd.boot)...)
	d, err := dht.NewServer(dht.Config{
		Key:       pub,
		Boot:      nd.boot,
		Transport: nd,
		Table:     dht.TableConfig{Namespace: n.Namespace, Workbit: n.Workbit},
		NAT:       nd.behindNAT,
		OnPong:    nd.onPong,
		Logger:    log.With("sub", "dht"),
	})
	if err != nil {
		return nil, err
	}
	nd.dht = d

	if Headless(n, pub) {
		fns, port, err := nd.bind.Open(opt.ListenPort)
		if err != nil {
			return nil, fmt.Errorf("listen-port %d: %w", opt.ListenPort, err)
		}
		nd.port = port
		for _, fn := range fns {
			nd.wg.Go(func() { nd.drain(fn) })
		}
	} else {
		self, _ := n.Node(pub)
		nd.addrs = ownAddrs(n, self)
		if opt.Userspace && opt.TUN == nil {
			ns, err := nd.newNetstack()
			if err != nil {
				return nil, err
			}
			opt.TUN, nd.opt.TUN = ns, ns
		}
		dev, err := tunnel.New(tunnel.Config{
			Name:       kernelName(opt),
			Private:    priv,
			ListenPort: opt.ListenPort,
			Addresses:  kernelOnly(opt, nd.addrs),
			Routes:     kernelOnly(opt, []netip.Prefix{orchid.Prefix}),
			TUN:        opt.TUN,
			Bind:       nd.bind,
			Logger:     log.With("sub", "wg"),
		})
		if err != nil {
			return nil, err
		}
		nd.dev = dev
		nd.port = nd.bind.Port()
	}
	if err := nd.startNAT(); err != nil {
		return nil, err
	}
	if err := nd.startRelay(); err != nil {
		return nil, err
	}
	if err := nd.applyPeers(n); err != nil {
		return nil, err
	}
	if nd.us != nil {
		if err := nd.startUserspace(); err != nil {
			return nil, err
		}
	} else if nd.dev != nil {
		nd.startDNS(n)
	}

	if opt.SocketDir != "" {
		srv, err := ipc.Listen(ipc.SocketPath(opt.SocketDir, opt.Interface), opt.Version, nd.handle, log)
		if err != nil {
			return nil, fmt.Errorf("control socket: %w", err)
		}
		nd.ctl = srv
	}
	nd.ready.Store(true)
	ok = true
	log.Info("wh listening", "key", pub.String(), "port", nd.port, "interface", opt.Interface,
		"mode", opt.Mode.String(), "headless", nd.dev == nil)
	return nd, nil
}

// ownAddrs returns the interface addresses of self: its overlay address
// in the subnet and its ORCHID.
func ownAddrs(n *config.Network, self config.Node) []netip.Prefix {
	return []netip.Prefix{
		netip.PrefixFrom(self.IP, n.Subnet.Bits()),
		netip.PrefixFrom(orchid.Addr(self.Key, n.Namespace), 128),
	}
}

// Public returns the node's public key.
func (nd *Node) Public() key.Public { return nd.pub }

// Port returns the UDP port the node listens on.
func (nd *Node) Port() uint16 { return nd.port }

// Interface returns the interface name.
func (nd *Node) Interface() string { return nd.opt.Interface }

// drain runs a headless node's receive function: the Bind hands control
// messages to the node and drops the rest.
func (nd *Node) drain(fn conn.ReceiveFunc) {
	n := nd.bind.BatchSize()
	bufs := make([][]byte, n)
	for i := range bufs {
		bufs[i] = make([]byte, 1<<16)
	}
	sizes := make([]int, n)
	eps := make([]conn.Endpoint, n)
	for {
		if _, err := fn(bufs, sizes, eps); err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			select {
			case <-nd.ctx.Done():
				return
			case <-time.After(10 * time.Millisecond):
			}
		}
	}
}

// handleControl is the Bind's control-message callback: it opens each
// envelope of one receive call, in place, and hands the message on, on the
// receive goroutine it was called on. Relayed WireGuard packets come this
// way, so a queue between the socket and here would reorder or drop them
// under load; every handler is short and never blocks. The Relay messages
// of the batch are forwarded together, a burst to one node in one write;
// the WireGuard packets inside Relayed messages from trusted peers go back
// to the device in the same batch. Nothing may keep a message: it lies in
// the device's buffer.
func (nd *Node) handleControl(msgs []tunnel.Control) {
	if !nd.ready.Load() {
		return // New has not finished: a peer was quick
	}
	var fwd forwards
	var run relayedRun
	for i := range msgs {
		c := &msgs[i]
		from, m, err := nd.codec.OpenInPlace(c.Src.Addr(), c.Pkt)
		if err != nil {
			continue // counted by the codec
		}
		src := c.Src
		if pong, ok := m.(wire.Pong); ok {
			if pr := nd.probes.answer(from, src, pong.TxID); pr != nil {
				nd.pathVerified(pr.peer, pr.addr)
				continue // our path probe, no DHT query
			}
		}
		if r, ok := m.(wire.Relayed); ok {
			// From any relay (see package relay), for trusted peers only.
			// A burst comes from one relay for one peer: look it up once.
			if !run.valid || run.relay != from || run.addr != src || run.peer != r.Src {
				nd.observe(from, src, len(c.Pkt))
				run = relayedRun{relay: from, addr: src, peer: r.Src, trusted: nd.relayedFrom(r.Src, from, src), valid: true}
			}
			if run.trusted {
				c.Relayed, c.Peer = r.Payload, r.Src
				nd.relayClient.Delivered(r.Src, r.Payload) // judges our relay to the peer
			}
			continue
		}
		nd.observe(from, src, len(c.Pkt))
		switch m := m.(type) {
		case wire.Pong:
			// Only the DHT knows whether the pong answers one of our
			// pings; its OnPong, inside Handle, needs the source.
			nd.pongSrc.Store(from, src)
		case wire.Relay:
			if addr, ok := nd.relayServer.Route(from, m); ok {
				fwd.add(m.Dst, addr, from, m)
			}
			continue
		case wire.Auth:
			nd.handleAuth(from, src, m)
			continue
		case wire.Authed:
			nd.handleAuthed(from, m)
			continue
		}
		// The puncher sees every message (a peer's new port shows up in
		// any of them) and consumes its own.
		_ = nd.punch.Handle(from, src, m) || nd.dht.Handle(from, src, m)
		if _, ok := m.(wire.Pong); ok {
			nd.pongSrc.Delete(from)
		}
	}
	for _, f := range fwd {
		if err := nd.SendBatch(f.dst, f.addr, f.msgs()); err != nil {
			for _, r := range f.relays {
				nd.relayServer.SendFailed(r)
			}
		}
	}
}

// relayedRun is the last Relayed of a batch: its relay, the relay's
// address and the peer it came from, and whether that peer is trusted.
type relayedRun struct {
	relay   key.Public
	addr    netip.AddrPort
	peer    key.Public
	trusted bool
	valid   bool
}

// forwards are the Relayed messages of one batch, by destination.
type forwards []*forward

type forward struct {
	dst     key.Public
	addr    netip.AddrPort
	relays  []wire.Relay
	relayed []wire.Relayed
}

// msgs returns f's Relayed messages as Messages: pointers, which box
// without an allocation each.
func (f *forward) msgs() []wire.Message {
	ms := make([]wire.Message, len(f.relayed))
	for i := range f.relayed {
		ms[i] = &f.relayed[i]
	}
	return ms
}

func (f *forwards) add(dst key.Public, addr netip.AddrPort, src key.Public, r wire.Relay) {
	var cur *forward
	for _, c := range *f {
		if c.dst == dst && c.addr == addr {
			cur = c
		}
	}
	if cur == nil {
		cur = &forward{dst: dst, addr: addr}
		*f = append(*f, cur)
	}
	cur.relays = append(cur.relays, r)
	cur.relayed = append(cur.relayed, wire.Relayed{Src: src, Payload: r.Payload})
}

// SendBatch seals ms for to and sends them from the node's port in one
// write (relay.ClientConfig.SendBatch). The packets are sealed one after
// the other into 64 KiB buffers: StdNetBind coalesces a batch into UDP GSO
// segments (of at most 64 KiB) by appending each packet to the first one's
// spare capacity, which separate 1500-byte buffers do not have.
func (nd *Node) SendBatch(to key.Public, addr netip.AddrPort, ms []wire.Message) error {
	var used []*[]byte
	defer func() {
		for _, bp := range used {
			batchBufs.Put(bp)
		}
	}()
	var buf []byte
	pkts := make([][]byte, len(ms))
	for i, m := range ms {
		if cap(buf)-len(buf) < wire.MaxRelayPacketSize {
			bp := batchBufs.Get().(*[]byte)
			used = append(used, bp)
			buf = (*bp)[:0]
		}
		start := len(buf)
		var err error
		if buf, err = nd.codec.Seal(buf, to, m); err != nil {
			return err
		}
		pkts[i] = buf[start:]
	}
	return nd.bind.SendControls(pkts, addr)
}

// batchBufs holds the buffers of SendBatch.
var batchBufs = sync.Pool{New: func() any { b := make([]byte, 0, 64<<10); return &b }}

// sendBufs holds buffers for sealed control messages, big enough for a
// relay frame, so that relaying allocates nothing per packet.
var sendBufs = sync.Pool{New: func() any { b := make([]byte, 0, 1500); return &b }}

// Send implements dht.Transport: seal m for to and send it from the
// node's port.
func (nd *Node) Send(to key.Public, addr netip.AddrPort, m wire.Message) error {
	bp := sendBufs.Get().(*[]byte)
	defer sendBufs.Put(bp)
	pkt, err := nd.codec.Seal((*bp)[:0], to, m)
	if err != nil {
		return err
	}
	*bp = pkt[:0]
	return nd.bind.SendControl(pkt, addr)
}

// onPong is the DHT's OnPong: a pong that answers one of our pings says
// where its sender saw us. Pongs nobody asked for never get here: anyone
// can send one.
func (nd *Node) onPong(from key.Public, observed netip.AddrPort) {
	if src, ok := nd.pongSrc.Load(from); ok {
		nd.det.Observe(from, src.(netip.AddrPort), observed)
	}
}

// observe learns from an authenticated message of n bytes: a trusted
// peer is at src. From the direct path, it confirms the path; from
// another address, it makes the node ask the peer there (ask): the path
// moves only when the peer answers from there.
func (nd *Node) observe(from key.Public, src netip.AddrPort, n int) {
	nd.mu.Lock()
	p, ok := nd.peers[from]
	same := ok && p.direct == src
	if same {
		p.confirmed = time.Now()
	}
	nd.mu.Unlock()
	if ok && !same {
		nd.ask(from, src, n)
	}
}

// setDirectLocked makes addr, verified by a probe, p's path. nd.mu must
// be held.
func (nd *Node) setDirectLocked(p *peer, addr netip.AddrPort, now time.Time) {
	if p.direct.IsValid() && p.direct != addr {
		nd.bind.Forget(p.direct)
	}
	p.direct, p.confirmed, p.why = addr, now, ""
	p.since = now // traffic before now was on another path
	p.backoff = 0
	if p.relayed {
		p.relayed = false
		nd.setRelays(p.cfg.Key, nil)
	}
	nd.bind.Learn(addr, p.cfg.Key)
	nd.bind.SetPath(p.cfg.Key, tunnel.Path{Direct: addr})
	nd.log.Info("path", "peer", name(p.cfg), "direct", addr)
}

func name(n config.Node) string {
	if n.Hostname != "" {
		return n.Hostname
	}
	return n.Key.Short(10)
}

// Run joins the network and keeps paths to the trusted peers until ctx is
// done, Close is called, or a client asks the node to go down. Each of
// those is an orderly stop: Run returns nil.
func (nd *Node) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-nd.ctx.Done():
		case <-nd.downReq:
		}
		cancel()
	}()
	nd.wg.Go(func() { nd.dht.Run(nd.ctx) })
	nd.wg.Go(nd.runAuth)
	nd.wg.Go(func() { nd.claimAll(ctx) })
	bootstrapped := make(chan struct{})
	nd.wg.Go(func() {
		nd.bootstrap(ctx)
		close(bootstrapped)
	})
	t := time.NewTicker(tickEvery)
	defer t.Stop()
	for {
		nd.maintain(ctx)
		select {
		case <-ctx.Done():
			return nil
		case <-bootstrapped:
			// The DHT can find peers now: look for every peer at once
			// instead of waiting out its backoff.
			bootstrapped = nil
			nd.retryAll()
		case <-t.C:
		}
	}
}

// retryAll clears every peer's backoff.
func (nd *Node) retryAll() {
	nd.mu.Lock()
	defer nd.mu.Unlock()
	for _, p := range nd.peers {
		p.nextTry, p.backoff = time.Time{}, 0
	}
}

// resolveBoot returns the contacts of the config's boot nodes, other than
// self, resolving hostnames (each within a few seconds).
func resolveBoot(ctx context.Context, n *config.Network, self key.Public, r *net.Resolver, log *slog.Logger) []dht.Contact {
	var seeds []dht.Contact
	for _, b := range n.Boot() {
		if b.Key == self {
			continue
		}
		rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		addrs, err := b.Endpoint.Resolve(rctx, r)
		cancel()
		if err != nil {
			log.Warn("boot node", "key", b.Key.String(), "endpoint", b.Endpoint.String(), "err", err)
			continue
		}
		for _, a := range addrs {
			seeds = append(seeds, dht.Contact{Key: b.Key, Addr: a})
		}
	}
	return seeds
}

// bootstrap joins the DHT through the boot nodes and announces the node
// with a lookup of its own key, retrying until it works.
func (nd *Node) bootstrap(ctx context.Context) {
	if len(nd.boot) == 0 {
		nd.log.Info("no boot node other than this one: waiting to be found")
		return
	}
	for wait := retryMin; ; wait = min(2*wait, retryMax) {
		err := nd.dht.Bootstrap(ctx)
		if err == nil || ctx.Err() != nil {
			return
		}
		nd.log.Warn("bootstrap", "err", err, "retry_in", wait)
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
	}
}

// maintain starts a path search for every trusted peer that needs one.
func (nd *Node) maintain(ctx context.Context) {
	hs := nd.handshakes()
	now := time.Now()
	nd.mu.Lock()
	defer nd.mu.Unlock()
	for k, p := range nd.peers {
		if p.trying || now.Before(p.nextTry) {
			continue
		}
		nd.refreshLocked(p)
		if p.working(now) || p.direct.IsValid() && (now.Sub(hs[k]) < pathStale || now.Sub(p.confirmed) < pathStale) {
			continue
		}
		p.trying = true
		nd.wg.Go(func() { nd.connect(ctx, k) })
	}
}

// handshakes returns the time of each peer's last WireGuard handshake.
func (nd *Node) handshakes() map[key.Public]time.Time {
	out := make(map[key.Public]time.Time)
	if nd.dev == nil {
		return out
	}
	ps, _ := nd.dev.Peers()
	for _, s := range ps {
		out[s.Key] = s.LastHandshake
	}
	return out
}

// connect looks for a path to peer k. Its configured endpoint and a
// public address from the DHT are probed with pings; a peer behind NAT is
// punched through the node that keeps it alive (its Via). The first
// answer wins: every probe is probePath's, whose answer sets the path
// (pathVerified).
func (nd *Node) connect(ctx context.Context, k key.Public) {
	nd.mu.Lock()
	p := nd.peers[k]
	var ep config.Endpoint
	if p != nil {
		ep = p.cfg.Endpoint
	}
	nd.mu.Unlock()
	if p == nil {
		return
	}
	var cands []netip.AddrPort
	if !ep.IsZero() {
		if as, err := ep.Resolve(ctx, nd.opt.Resolver); err == nil {
			cands = append(cands, as...)
		}
	}
	why := ""
	r := nd.dht.Lookup(ctx, k)
	natted := r.Found && r.Contact.NAT
	if r.Found {
		cands = append(cands, r.Contact.Addr)
	} else if len(cands) == 0 {
		why = "not found in the DHT"
	}
	found := netip.AddrPort{}
	if !natted {
		for _, a := range uniq(cands) {
			pctx, cancel := context.WithTimeout(ctx, probeWait)
			err := nd.probePath(pctx, k, a)
			cancel()
			if err == nil {
				found = a
				break
			}
			why = "no answer from " + a.String()
		}
	}
	if !found.IsValid() && len(r.Vias) > 0 {
		// Relay at once, so that packets flow while the punch runs;
		// a direct path replaces the relay without WireGuard noticing.
		nd.mu.Lock()
		if !p.direct.IsValid() {
			nd.relayLocked(p, r.Vias)
		}
		nd.mu.Unlock()
		pctx, cancel := context.WithTimeout(ctx, 2*probeWait)
		a, err := nd.punch.Punch(pctx, k, r.Vias[0], uniq(cands))
		cancel()
		if err == nil {
			found = a
		} else {
			why = punchReason(err)
		}
	}
	nd.mu.Lock()
	defer nd.mu.Unlock()
	p.trying = false
	if found.IsValid() {
		if now := time.Now(); p.direct != found && p.mayMove(found, now) {
			nd.setDirectLocked(p, found, now)
		}
		return
	}
	if p.direct.IsValid() && time.Since(p.confirmed) < pathStale {
		return // observe found it meanwhile
	}
	nd.relayLocked(p, r.Vias)
	p.backoff = min(max(2*p.backoff, retryMin), retryMax)
	p.nextTry = time.Now().Add(p.backoff)
	p.why = why
}

// punchReason is the part of a punch error `wh show` says after "relay".
func punchReason(err error) string {
	s := err.Error()
	if i := strings.LastIndex(s, ": "); i >= 0 {
		return s[i+2:]
	}
	return s
}

func uniq(as []netip.AddrPort) []netip.AddrPort {
	seen := make(map[netip.AddrPort]bool)
	var out []netip.AddrPort
	for _, a := range as {
		a = netip.AddrPortFrom(a.Addr().Unmap(), a.Port())
		if a.IsValid() && !seen[a] {
			seen[a] = true
			out = append(out, a)
		}
	}
	return out
}

// applyPeers makes the trusted peers of n the node's peers: new ones are
// added, gone ones removed, the others keep their state and tunnels. The
// device is configured first, without nd.mu: if it refuses, nothing
// changed and the error says why.
func (nd *Node) applyPeers(n *config.Network) error {
	nd.applyMu.Lock()
	defer nd.applyMu.Unlock()
	if nd.dev == nil {
		nd.mu.Lock()
		nd.net = n // headless: no tunnels, no paths to keep
		nd.mu.Unlock()
		return nil
	}
	want := make(map[key.Public]config.Node)
	for _, c := range n.Trusted() {
		if c.Key == nd.pub || c.Role == config.Alias || !c.IP.IsValid() {
			continue
		}
		want[c.Key] = c
	}
	var wg []tunnel.Peer
	for k, c := range want {
		wg = append(wg, tunnel.Peer{Key: k, Keepalive: nd.keepalive(), AllowedIPs: []netip.Prefix{
			netip.PrefixFrom(c.IP, c.IP.BitLen()),
			netip.PrefixFrom(orchid.Addr(k, n.Namespace), 128),
		}})
	}
	if err := nd.dev.SetPeers(wg); err != nil {
		return fmt.Errorf("configuring WireGuard peers: %w", err)
	}
	nd.codec.Pin("trusted", slices.Collect(maps.Keys(want))...)
	nd.mu.Lock()
	nd.net = n
	var gone []key.Public
	for k, p := range nd.peers {
		if _, ok := want[k]; !ok {
			if p.direct.IsValid() {
				nd.bind.Forget(p.direct)
			}
			if p.relayed {
				nd.setRelays(k, nil)
			}
			nd.bind.SetPath(k, tunnel.Path{})
			delete(nd.peers, k)
			gone = append(gone, k)
		}
	}
	for k, c := range want {
		if p, ok := nd.peers[k]; ok {
			p.cfg = c
		} else {
			nd.peers[k] = &peer{cfg: c}
		}
	}
	nd.mu.Unlock()
	// Only now that the device has dropped them: their endpoints go.
	for _, k := range gone {
		nd.bind.RemovePeer(k)
	}
	return nil
}

// Reload applies a changed config. The namespace, the workbit and the
// node's own address cannot change: restart for that.
func (nd *Node) Reload(n *config.Network) error {
	raw := n
	n = nd.auth.claims.apply(n)
	nd.mu.Lock()
	old := nd.net
	nd.mu.Unlock()
	switch {
	case n.Namespace != old.Namespace:
		return errors.New("namespace changed: restart the node to change it")
	case n.Workbit != old.Workbit:
		return errors.New("workbit changed: restart the node to change it")
	case Headless(n, nd.pub) != (nd.dev == nil):
		return errors.New("this node's own address appeared or went: restart the node")
	}
	if nd.dev != nil {
		self, _ := n.Node(nd.pub)
		for i, a := range ownAddrs(n, self) {
			if a != nd.addrs[i] {
				return fmt.Errorf("this node's address changed (%s → %s): restart the node", nd.addrs[i], a)
			}
		}
	}
	if err := nd.applyPeers(n); err != nil {
		return fmt.Errorf("reload not applied, the network runs as before: %w", err)
	}
	nd.auth.effective(raw)
	nd.updateDNS(n)
	nd.log.Info("reloaded", "trusted", len(n.Trusted()))
	return nil
}

// Close stops the node: the control socket, the DHT, the device and its
// interface. It is safe to call more than once.
func (nd *Node) Close() error {
	nd.closed.Do(func() {
		nd.cancel()
		if nd.ctl != nil {
			nd.ctl.Close()
		}
		nd.stopDNS()
		nd.stopUserspace()
		if nd.punch != nil {
			nd.punch.Close()
		}
		if nd.pm != nil {
			nd.pm.Close()
		}
		if nd.dht != nil {
			nd.dht.Close()
		}
		if nd.dev != nil {
			nd.dev.Close()
		} else if nd.bind != nil {
			nd.bind.Close()
		}
		nd.wg.Wait()
	})
	return nil
}

// kernelOnly returns ps for a kernel TUN, none for a userspace one
// (whose addresses its creator set).
func kernelOnly(opt Options, ps []netip.Prefix) []netip.Prefix {
	if opt.TUN != nil {
		return nil
	}
	return ps
}

// kernelName is the interface name the device serves its UAPI socket
// under: none for a userspace (netstack) node, which has no interface.
func kernelName(opt Options) string {
	if opt.TUN != nil {
		return ""
	}
	return opt.Interface
}
