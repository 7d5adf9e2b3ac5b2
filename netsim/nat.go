package netsim

import (
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
)

// NAT mappings use external ports from this range.
const (
	natFirstPort = 1024
	natPortCount = 1<<16 - natFirstPort
)

// A Router joins a LAN to the network above it (the internet, or another
// router's LAN), translating IPv4 as its NATKind says.
type Router struct {
	n      *Internet    // constant
	kind   NATKind      // constant
	wan    netip.Addr   // its address on up; constant
	up     *network     // constant
	prefix netip.Prefix // of the LAN; constant
	seed   uint64       // constant
	lan    network      // the hosts and routers behind it

	// dmz is the first node added to the LAN: a FullCone router sends it
	// inbound packets that match no mapping, as the lab's DNAT rule does.
	// Guarded by Internet.topo.
	dmz netip.Addr

	hairpin atomic.Bool

	mu      sync.Mutex
	timeout time.Duration       // guarded by mu
	byFlow  map[flow]*mapping   // guarded by mu
	byPort  map[uint16]*mapping // by external port; guarded by mu
	allocs  uint64              // mappings made so far, a seed ingredient; guarded by mu
	sweepAt int                 // sweep expired mappings when there are this many; guarded by mu
}

// A flow is what a router maps: an internal endpoint, and for a Symmetric
// router also the remote endpoint (zero otherwise).
type flow struct {
	internal, remote netip.AddrPort
}

// A mapping ties a flow to an external port on the router's WAN address.
type mapping struct {
	flow    flow
	port    uint16
	expires time.Time // last outbound packet + timeout

	// Restricted only: the remote endpoints allowed in, each until the
	// last packet sent to it + timeout.
	peers   map[netip.AddrPort]time.Time
	pruneAt int // prune expired peers when there are this many
}

// Kind returns the router's NAT kind.
func (r *Router) Kind() NATKind { return r.kind }

// Addr returns the router's WAN address.
func (r *Router) Addr() netip.Addr { return r.wan }

// AddHost adds a host on the router's LAN. Its IPv4 address must be in the
// LAN prefix; IPv6 addresses are reachable from everywhere without NAT.
// AddHost panics if there is no address or one is taken or out of the LAN.
func (r *Router) AddHost(addrs ...netip.Addr) *Host {
	return r.n.addHost(&r.lan, addrs)
}

// AddNAT adds a router behind r: its WAN address wan is on r's LAN, and
// lan is its own LAN's IPv4 prefix. A Restricted router behind a Restricted
// router is the lab's cgnat.
func (r *Router) AddNAT(kind NATKind, wan netip.Addr, lan netip.Prefix) *Router {
	return r.n.addRouter(&r.lan, kind, wan, lan)
}

// SetHairpin sets whether a packet from the LAN to the router's own WAN
// address is translated and sent back in through the mappings (off by
// default, as with Linux MASQUERADE) or dropped.
func (r *Router) SetHairpin(on bool) { r.hairpin.Store(on) }

// SetMappingTimeout sets how long mappings live after their last outbound
// packet, from the next packet on. It panics if d is not positive.
func (r *Router) SetMappingTimeout(d time.Duration) {
	if d <= 0 {
		panic("netsim: mapping timeout must be positive")
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.timeout = d
}

// Flush drops every mapping, as a router reboot (or `conntrack -F`) does.
func (r *Router) Flush() {
	r.mu.Lock()
	defer r.mu.Unlock()
	clear(r.byFlow)
	clear(r.byPort)
	r.n.log.Debug("netsim: mappings flushed", "router", r.wan, "nat_type", r.kind)
}

// outbound translates the source of a packet leaving the LAN, making or
// refreshing its mapping. It reports false if no external port is free.
func (r *Router) outbound(hdr *header, now time.Time) bool {
	if r.kind == None {
		return true
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	f := flow{internal: hdr.src}
	if r.kind == Symmetric {
		f.remote = hdr.dst
	}
	m := r.byFlow[f]
	if m != nil && !now.Before(m.expires) {
		r.removeLocked(m)
		m = nil
	}
	if m == nil {
		if m = r.mapLocked(f, now); m == nil {
			return false
		}
	}
	m.expires = now.Add(r.timeout)
	if r.kind == Restricted {
		m.permitLocked(hdr.dst, now, m.expires)
	}
	hdr.src = netip.AddrPortFrom(r.wan, m.port)
	return true
}

// inbound translates the destination of a packet arriving at the WAN
// address, or reports false if the router filters it.
func (r *Router) inbound(hdr *header, now time.Time) bool {
	if r.kind == None {
		return true
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	m := r.byPort[hdr.dst.Port()]
	if m != nil && !now.Before(m.expires) {
		r.removeLocked(m)
		m = nil
	}
	switch {
	case m == nil:
		if r.kind != FullCone || !r.dmz.IsValid() {
			return false
		}
		hdr.dst = netip.AddrPortFrom(r.dmz, hdr.dst.Port())
		return true
	case r.kind == Restricted:
		if until, ok := m.peers[hdr.src]; !ok || !now.Before(until) {
			return false
		}
	case r.kind == Symmetric:
		if hdr.src != m.flow.remote {
			return false
		}
	}
	hdr.dst = m.flow.internal
	return true
}

// mapLocked makes a mapping for f, or returns nil if no port is free.
// Endpoint-independent kinds keep the internal port when it is free; other
// choices are seeded random ports. r.mu must be held.
func (r *Router) mapLocked(f flow, now time.Time) *mapping {
	if len(r.byPort) >= r.sweepAt {
		for _, m := range r.byPort {
			if !now.Before(m.expires) {
				r.removeLocked(m)
			}
		}
		r.sweepAt = max(64, 2*len(r.byPort))
	}
	r.allocs++
	port := f.internal.Port()
	if r.kind == Symmetric || !r.portFreeLocked(port, now) {
		port = 0
		start := mix(r.seed^mix(r.allocs)^endpointBits(f.internal)^mix(endpointBits(f.remote))) % natPortCount
		for i := range uint64(natPortCount) {
			p := uint16(natFirstPort + (start+i)%natPortCount)
			if r.portFreeLocked(p, now) {
				port = p
				break
			}
		}
		if port == 0 {
			r.n.log.Debug("netsim: no free port", "router", r.wan, "nat_type", r.kind, "internal", f.internal)
			return nil
		}
	}
	m := &mapping{flow: f, port: port}
	r.byFlow[f] = m
	r.byPort[port] = m
	r.n.log.Debug("netsim: new mapping", "router", r.wan, "nat_type", r.kind,
		"internal", f.internal, "remote", f.remote, "external", port)
	return m
}

// portFreeLocked reports whether port can be mapped, removing an expired
// mapping that holds it. r.mu must be held.
func (r *Router) portFreeLocked(port uint16, now time.Time) bool {
	if port < natFirstPort {
		return false
	}
	m := r.byPort[port]
	if m == nil {
		return true
	}
	if now.Before(m.expires) {
		return false
	}
	r.removeLocked(m)
	return true
}

func (r *Router) removeLocked(m *mapping) {
	delete(r.byFlow, m.flow)
	delete(r.byPort, m.port)
	r.n.log.Debug("netsim: mapping expired", "router", r.wan, "nat_type", r.kind,
		"internal", m.flow.internal, "external", m.port)
}

// permitLocked lets packets from remote in until the given time. The
// router's mu must be held.
func (m *mapping) permitLocked(remote netip.AddrPort, now, until time.Time) {
	if m.peers == nil {
		m.peers = make(map[netip.AddrPort]time.Time)
	}
	if len(m.peers) >= m.pruneAt {
		for p, t := range m.peers {
			if !now.Before(t) {
				delete(m.peers, p)
			}
		}
		m.pruneAt = max(16, 2*len(m.peers))
	}
	m.peers[remote] = until
}
