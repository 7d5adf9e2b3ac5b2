package netsim

import (
	"fmt"
	"log/slog"
	"math"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
)

// NATKind is how a router translates and filters IPv4 traffic between its
// LAN and the network above it. The names are the e2e lab's.
type NATKind int

const (
	None       NATKind = iota // no translation: the router routes its LAN prefix
	FullCone                  // endpoint-independent mapping and filtering
	Restricted                // endpoint-independent mapping, address-and-port-dependent filtering
	Symmetric                 // endpoint-dependent mapping: an external port per destination
)

// String returns the lab's name of k: "none", "full", "restricted" or "symmetric".
func (k NATKind) String() string {
	switch k {
	case None:
		return "none"
	case FullCone:
		return "full"
	case Restricted:
		return "restricted"
	case Symmetric:
		return "symmetric"
	}
	return fmt.Sprintf("NATKind(%d)", int(k))
}

// Defaults for the zero values of Options.
const (
	DefaultMappingTimeout = 30 * time.Second
	DefaultQueueLen       = 256
)

// Options configure an Internet. The zero value is a lossless internet with
// no delay.
type Options struct {
	// Seed drives every random choice: loss, jitter, and the external
	// ports of NAT mappings and ephemeral ports. Same seed, same topology
	// and same writes per conn give the same run.
	Seed int64

	// Latency, Jitter and Loss describe the internet's core, crossed once
	// by every packet that reaches the internet. A packet is delayed by
	// Latency plus a uniform draw in [0, Jitter), and lost with
	// probability Loss (0 to 1).
	Latency, Jitter time.Duration
	Loss            float64

	// MappingTimeout is how long a NAT mapping lives after its last
	// outbound packet. Zero means DefaultMappingTimeout; a router can
	// override it with SetMappingTimeout.
	MappingTimeout time.Duration

	// QueueLen is the receive queue of each conn, in packets. A packet
	// arriving at a full queue is dropped and counted in Stats.Overflow.
	// Zero means DefaultQueueLen.
	QueueLen int

	// Logger receives NAT mapping events at debug level. Nil discards them.
	Logger *slog.Logger
}

// Stats counts packets since New. Every packet written is, once it is no
// longer in flight, counted in exactly one of the other fields:
// Sent = Delivered + Lost + Filtered + Overflow + Unreachable.
type Stats struct {
	Sent        uint64 // packets accepted by a conn's write
	Delivered   uint64 // packets put in a receive queue
	Lost        uint64 // dropped by the random loss of a link or the core
	Filtered    uint64 // dropped by a NAT: no mapping, source not allowed, hairpin off, no free port
	Overflow    uint64 // dropped because the receiving conn's queue was full
	Unreachable uint64 // no host at the address, no conn on the port, or a host down
}

// Internet is the simulated network: the public internet with its hosts and
// NAT routers, and the LANs behind them. It is safe for concurrent use;
// hosts and routers can be added while traffic flows.
type Internet struct {
	opt  Options      // constant after New, zero values replaced by defaults
	log  *slog.Logger // constant
	core link         // constant: Options.Latency, Jitter, Loss
	pool sync.Pool    // *packet, to spare an allocation per packet

	// topo guards the topology: the nodes and routes of every network,
	// v6, and each Router's dmz.
	topo sync.RWMutex
	wan  network              // the internet itself
	v6   map[netip.Addr]*Host // every IPv6 address of every host

	stats struct {
		sent, delivered, lost, filtered, overflow, unreachable atomic.Uint64
	}
}

// New returns an empty Internet. It panics if Loss is not in [0, 1] or a
// duration is negative.
func New(opt Options) *Internet {
	if opt.MappingTimeout == 0 {
		opt.MappingTimeout = DefaultMappingTimeout
	}
	if opt.QueueLen == 0 {
		opt.QueueLen = DefaultQueueLen
	}
	if opt.MappingTimeout < 0 || opt.QueueLen < 0 {
		panic("netsim: negative MappingTimeout or QueueLen")
	}
	n := &Internet{
		opt:  opt,
		log:  opt.Logger,
		core: newLink(opt.Latency, opt.Jitter, opt.Loss),
		v6:   make(map[netip.Addr]*Host),
	}
	if n.log == nil {
		n.log = slog.New(slog.DiscardHandler)
	}
	n.wan = network{seed: mix(uint64(opt.Seed)), nodes: make(map[netip.Addr]node)}
	n.pool.New = func() any { return new(packet) }
	return n
}

// AddHost adds a host on the public internet with the given addresses. The
// first address is its conns' LocalAddr and the source of what it sends to
// that family; it sends IPv4 from its first IPv4 address and IPv6 from its
// first IPv6 address. AddHost panics if there is no address or one is taken.
func (n *Internet) AddHost(addrs ...netip.Addr) *Host {
	return n.addHost(&n.wan, addrs)
}

// AddNAT adds a router of the given kind with WAN address public on the
// internet, and an empty LAN with the IPv4 prefix lan. It panics if public
// is taken or not IPv4, or lan is not an IPv4 prefix.
func (n *Internet) AddNAT(kind NATKind, public netip.Addr, lan netip.Prefix) *Router {
	return n.addRouter(&n.wan, kind, public, lan)
}

// Stats returns the packet counters.
func (n *Internet) Stats() Stats {
	s := &n.stats
	return Stats{
		Sent:        s.sent.Load(),
		Delivered:   s.delivered.Load(),
		Lost:        s.lost.Load(),
		Filtered:    s.filtered.Load(),
		Overflow:    s.overflow.Load(),
		Unreachable: s.unreachable.Load(),
	}
}

// A network is the internet or one router's LAN.
type network struct {
	gw   *Router // the router this is the LAN of; nil for the internet; constant
	seed uint64  // mixes the network's identity into its hosts' seeds; constant

	// Guarded by Internet.topo.
	nodes  map[netip.Addr]node // IPv4 addresses of the hosts and routers on this network
	routes []*Router           // kind None routers here, which route their LAN prefix
}

// A node is what owns an address on a network: a host, or a router by its
// WAN address. Exactly one field is set.
type node struct {
	host   *Host
	router *Router
}

func (nw *network) routeTo(a netip.Addr) *Router {
	for _, r := range nw.routes {
		if r.prefix.Contains(a) {
			return r
		}
	}
	return nil
}

func (n *Internet) addHost(nw *network, addrs []netip.Addr) *Host {
	if len(addrs) == 0 {
		panic("netsim: AddHost without an address")
	}
	h := &Host{n: n, at: nw, conns: make(map[uint16]*Conn)}
	n.topo.Lock()
	defer n.topo.Unlock()
	for _, a := range addrs {
		a = a.Unmap()
		switch {
		case !a.IsValid():
			panic("netsim: AddHost with an invalid address")
		case a.Is6():
			if n.v6[a] != nil {
				panic(fmt.Sprintf("netsim: address %v is taken", a))
			}
		default:
			n.checkFreeLocked(nw, a)
		}
		h.addrs = append(h.addrs, a)
	}
	for _, a := range h.addrs {
		if a.Is6() {
			n.v6[a] = h
		} else {
			nw.addLocked(a, node{host: h})
		}
	}
	h.seed = mix(nw.seed ^ addrBits(h.addrs[0]))
	return h
}

func (n *Internet) addRouter(nw *network, kind NATKind, wan netip.Addr, lan netip.Prefix) *Router {
	wan = wan.Unmap()
	if kind < None || kind > Symmetric {
		panic(fmt.Sprintf("netsim: unknown %v", kind))
	}
	if !wan.Is4() {
		panic(fmt.Sprintf("netsim: router WAN address %v is not IPv4", wan))
	}
	if !lan.IsValid() || !lan.Addr().Is4() {
		panic(fmt.Sprintf("netsim: router LAN %v is not an IPv4 prefix", lan))
	}
	lan = lan.Masked()
	r := &Router{
		n:       n,
		kind:    kind,
		wan:     wan,
		up:      nw,
		prefix:  lan,
		timeout: n.opt.MappingTimeout,
		byFlow:  make(map[flow]*mapping),
		byPort:  make(map[uint16]*mapping),
	}
	r.seed = mix(nw.seed ^ addrBits(wan))
	r.lan = network{gw: r, seed: r.seed, nodes: make(map[netip.Addr]node)}
	n.topo.Lock()
	defer n.topo.Unlock()
	n.checkFreeLocked(nw, wan)
	if kind == None {
		for _, o := range nw.routes {
			if o.prefix.Overlaps(lan) {
				panic(fmt.Sprintf("netsim: routed LAN %v overlaps %v", lan, o.prefix))
			}
		}
		nw.routes = append(nw.routes, r)
	}
	nw.addLocked(wan, node{router: r})
	return r
}

// checkFreeLocked panics unless a can be added to nw. n.topo must be held.
func (n *Internet) checkFreeLocked(nw *network, a netip.Addr) {
	if _, ok := nw.nodes[a]; ok {
		panic(fmt.Sprintf("netsim: address %v is taken", a))
	}
	if r := nw.gw; r != nil && !r.prefix.Contains(a) {
		panic(fmt.Sprintf("netsim: address %v is outside the LAN %v", a, r.prefix))
	}
}

// addLocked registers a node; the first on a LAN is the full cone's
// default host. Internet.topo must be held.
func (nw *network) addLocked(a netip.Addr, nd node) {
	nw.nodes[a] = nd
	if r := nw.gw; r != nil && !r.dmz.IsValid() {
		r.dmz = a
	}
}

// A link is a hop with a delay and a loss rate: the core, or a host's access
// link.
type link struct {
	latency, jitter time.Duration
	loss            float64
}

func newLink(latency, jitter time.Duration, loss float64) link {
	if latency < 0 || jitter < 0 || !(loss >= 0 && loss <= 1) {
		panic(fmt.Sprintf("netsim: invalid link: latency %v, jitter %v, loss %v", latency, jitter, loss))
	}
	return link{latency, jitter, loss}
}

// header is the part of a packet that routing reads and NAT rewrites.
type header struct {
	src, dst netip.AddrPort
}

// A packet in flight or in a receive queue.
type packet struct {
	header
	data  []byte
	at    time.Time // when it arrives at the receiving host
	order uint64    // breaks ties in at, in the order the host scheduled them
}

// verdict is what routing decided about a packet.
type verdict int

const (
	deliver verdict = iota
	filtered
	unreachable
)

// send carries a copy of b from conn c, whose host has address src, to dst.
// k numbers the packet among those c has sent.
func (n *Internet) send(c *Conn, k uint64, src, dst netip.AddrPort, b []byte) {
	n.stats.sent.Add(1)
	from := c.h
	if from.down.Load() {
		n.stats.unreachable.Add(1)
		return
	}
	hdr := header{src: src, dst: dst}
	to, core, v := n.route(from.at, &hdr, time.Now())
	switch v {
	case filtered:
		n.stats.filtered.Add(1)
		return
	case unreachable:
		n.stats.unreachable.Add(1)
		return
	}
	var hops [3]link
	hops[0] = from.link()
	if core {
		hops[1] = n.core
	}
	hops[2] = to.link()
	delay, lost := transit(hops[:], mix(c.seed+k))
	if lost {
		n.stats.lost.Add(1)
		return
	}
	p := n.pool.Get().(*packet)
	p.header = hdr
	p.data = append(p.data[:0], b...)
	to.arrive(p, delay)
}

// transit draws the fate of a packet crossing hops from the random stream x:
// its delay, or whether it is lost. Each hop uses its own draws, so a hop
// without loss or jitter does not shift the others'.
func transit(hops []link, x uint64) (delay time.Duration, lost bool) {
	for i, l := range hops {
		d := x + uint64(2*i)
		if l.loss > 0 && unit(mix(d)) < l.loss {
			return 0, true
		}
		delay += l.latency
		if l.jitter > 0 {
			delay += time.Duration(unit(mix(d+1)) * float64(l.jitter))
		}
	}
	return delay, false
}

// route finds the host that a packet from network at reaches, rewriting hdr
// at each NAT on the way, and reports whether it crossed the internet.
func (n *Internet) route(at *network, hdr *header, now time.Time) (to *Host, core bool, v verdict) {
	n.topo.RLock()
	defer n.topo.RUnlock()
	dst := hdr.dst.Addr()
	if dst.Is6() {
		if to = n.v6[dst]; to == nil {
			return nil, true, unreachable
		}
		return to, true, deliver
	}
	descending := false // once inside a LAN from its WAN side, never go back up
	for {
		core = core || at == &n.wan
		nd, ok := at.nodes[dst]
		if !ok {
			nd.router = at.routeTo(dst)
		}
		switch {
		case nd.host != nil:
			return nd.host, core, deliver
		case nd.router != nil:
			r := nd.router
			if dst == r.wan && r.kind == None {
				return nil, core, unreachable // nothing listens on the router itself
			}
			if !r.inbound(hdr, now) {
				return nil, core, filtered
			}
			at, dst, descending = &r.lan, hdr.dst.Addr(), true
			continue
		}
		r := at.gw
		switch {
		case r == nil || descending:
			return nil, core, unreachable
		case dst != r.wan:
			if !r.outbound(hdr, now) {
				return nil, core, filtered
			}
			at = r.up
		case r.kind == None:
			return nil, core, unreachable
		default: // a LAN host to its own router's WAN address
			if !r.hairpin.Load() || !r.outbound(hdr, now) || !r.inbound(hdr, now) {
				return nil, core, filtered
			}
			dst, descending = hdr.dst.Addr(), true
		}
	}
}

func (n *Internet) free(p *packet) {
	p.data = p.data[:0]
	n.pool.Put(p)
}

// mix is SplitMix64's output function: a bijection that spreads any change
// of x over all 64 bits.
func mix(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ x>>30) * 0xbf58476d1ce4e5b9
	x = (x ^ x>>27) * 0x94d049bb133111eb
	return x ^ x>>31
}

// unit maps x to [0, 1).
func unit(x uint64) float64 {
	return float64(x>>11) / (1 << 53)
}

// addrBits folds an address into 64 bits, as a seed ingredient.
func addrBits(a netip.Addr) uint64 {
	b := a.As16()
	var hi, lo uint64
	for i := range 8 {
		hi = hi<<8 | uint64(b[i])
		lo = lo<<8 | uint64(b[8+i])
	}
	return mix(hi) ^ lo
}

// endpointBits folds an ip:port into 64 bits, as a seed ingredient.
func endpointBits(ap netip.AddrPort) uint64 {
	return mix(addrBits(ap.Addr()) ^ uint64(ap.Port()))
}

// maxPayload is the largest UDP payload of each family.
func maxPayload(a netip.Addr) int {
	if a.Is4() {
		return math.MaxUint16 - 20 - 8
	}
	return math.MaxUint16 - 8
}
