package nat

import (
	"fmt"
	"net"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/whnet/wh/key"
)

// Mapping is how the NAT in front of a node maps its UDP socket (RFC 4787
// §4.1). Its values travel in wire.Punch.Mapping.
type Mapping uint8

const (
	// MappingUnknown: not enough observations yet.
	MappingUnknown Mapping = iota
	// MappingNone: peers see the node at one of its own addresses; there
	// is no NAT (or a router of kind none) in front of it.
	MappingNone
	// MappingEndpointIndependent: one reflexive address towards every
	// peer (full-cone and restricted NATs). Hole punching works.
	MappingEndpointIndependent
	// MappingEndpointDependent: a reflexive port per destination
	// (symmetric NATs). The address peers learn from the DHT is of no use
	// to anyone else; punching works only towards a peer that is public
	// or whose NAT does not filter.
	MappingEndpointDependent
)

// String returns the form `wh netcheck` prints: "unknown", "public",
// "endpoint-independent" or "endpoint-dependent".
func (m Mapping) String() string {
	switch m {
	case MappingUnknown:
		return "unknown"
	case MappingNone:
		return "public"
	case MappingEndpointIndependent:
		return "endpoint-independent"
	case MappingEndpointDependent:
		return "endpoint-dependent"
	}
	return fmt.Sprintf("Mapping(%d)", uint8(m))
}

// Info is what a Detector has learned about the node's NAT.
//
// A single peer can lie: whatever its pong says, one pong moves nothing.
// The reflexive IP address of a family is the one the most peers agree
// on, and it needs two (by IP address: keys are cheap, addresses less
// so); a new address takes over once more peers report it than the old
// one. The mapping needs two agreeing peers too, and one peer that
// reports another port cannot make an endpoint-independent NAT look
// endpoint-dependent.
type Info struct {
	// Reflexive are the node's addresses as its peers see them, on the
	// agreed IP address of each family: IPv4 first, then IPv6, each the
	// address the most peers saw first, without duplicates.
	Reflexive []netip.AddrPort
	// Mapping is the NAT's mapping behaviour, from the IPv4 observations
	// (or IPv6 if there are none: NATs are an IPv4 affair). Public
	// (MappingNone) needs two peers that see the node at one of its own
	// addresses; endpoint-independent two that see it at one reflexive
	// address; endpoint-dependent two that see ports other than the
	// most seen one, or three that each see another.
	Mapping Mapping
	// BehindNAT is set when the agreed reflexive address is not one of
	// the node's own.
	BehindNAT bool
}

// Defaults of DetectorConfig.
const (
	// DefaultObservationAge is how long an observation counts. A NATed
	// node refreshes its observations with every keepalive (25 s), a
	// public node only when it announces itself (every 15 minutes).
	DefaultObservationAge = 30 * time.Minute
	// maxObservations bounds a Detector's memory: one per peer IP.
	maxObservations = 16
)

// DetectorConfig configures a Detector.
type DetectorConfig struct {
	// Local returns the node's own addresses with its UDP port (LocalAddrs
	// does that). An observation equal to one of them means no NAT. Nil
	// means none are known, so the node is never taken for public.
	Local func() []netip.AddrPort
	// MaxAge is how long an observation counts. Zero means
	// DefaultObservationAge.
	MaxAge time.Duration
}

// Detector learns the node's reflexive addresses and its NAT's mapping
// behaviour from the pongs of DHT peers, a very light STUN: each pong says
// which address the peer saw the ping come from. Feed it only pongs that
// answer the node's own pings (dht.Config.OnPong): anyone can send a
// pong. It is safe for concurrent use.
type Detector struct {
	cfg DetectorConfig // constant after NewDetector

	mu  sync.Mutex
	obs []observation // newest first, one per peer key and per peer IP, at most maxObservations; guarded by mu
}

// An observation is one peer's view of the node.
type observation struct {
	from     key.Public
	peer     netip.Addr     // the peer's IP address
	observed netip.AddrPort // where the peer saw the node
	at       time.Time
}

// NewDetector returns a Detector with no observations.
func NewDetector(cfg DetectorConfig) *Detector {
	if cfg.MaxAge <= 0 {
		cfg.MaxAge = DefaultObservationAge
	}
	return &Detector{cfg: cfg}
}

// Observe records that the peer whose key is from, pinged at fromAddr,
// saw the ping come from observed. It replaces the earlier observation of
// the same key, and of the same peer IP: a host with many keys is one
// source.
func (d *Detector) Observe(from key.Public, fromAddr, observed netip.AddrPort) {
	observed = unmap(observed)
	if !observed.IsValid() || !fromAddr.IsValid() {
		return
	}
	o := observation{from: from, peer: fromAddr.Addr().Unmap(), observed: observed, at: time.Now()}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.obs = slices.DeleteFunc(d.obs, func(e observation) bool { return e.from == from || e.peer == o.peer })
	d.obs = slices.Insert(d.obs, 0, o)
	if len(d.obs) > maxObservations {
		d.obs = d.obs[:maxObservations]
	}
}

// Info returns what the fresh observations say.
func (d *Detector) Info() Info {
	d.mu.Lock()
	cutoff := time.Now().Add(-d.cfg.MaxAge)
	d.obs = slices.DeleteFunc(d.obs, func(e observation) bool { return e.at.Before(cutoff) })
	obs := slices.Clone(d.obs)
	d.mu.Unlock()

	v4 := slices.DeleteFunc(slices.Clone(obs), func(o observation) bool { return !o.observed.Addr().Is4() })
	v6 := slices.DeleteFunc(obs, func(o observation) bool { return o.observed.Addr().Is4() })
	on4, addrs4 := agreed(v4)
	on6, addrs6 := agreed(v6)
	info := Info{Reflexive: append(addrs4, addrs6...)}
	on, addrs := on4, addrs4
	if len(v4) == 0 {
		on, addrs = on6, addrs6
	}
	if len(on) < 2 {
		return info
	}
	// The sources on the agreed IP, by the port each saw.
	top := addrs[0]
	atTop := count(on, top)
	others := len(on) - atTop
	if d.isLocal(top) && atTop >= 2 {
		info.Mapping = MappingNone
		return info
	}
	info.BehindNAT = true
	switch {
	case others >= 2 || atTop == 1 && len(on) >= 3:
		info.Mapping = MappingEndpointDependent
	case atTop >= 2:
		info.Mapping = MappingEndpointIndependent
	}
	return info
}

// agreed returns, of observations of one family (one per peer IP, newest
// first), those on the IP address the most peers saw, if two or more
// did, and the addresses they saw, the most seen first, then the newest.
// Of two IPs seen by as many peers, the newer wins.
func agreed(obs []observation) ([]observation, []netip.AddrPort) {
	var best netip.Addr
	n := 0
	for _, o := range obs {
		ip := o.observed.Addr()
		if c := countIP(obs, ip); c > n {
			best, n = ip, c
		}
	}
	if n < 2 {
		return nil, nil
	}
	on := slices.DeleteFunc(slices.Clone(obs), func(o observation) bool { return o.observed.Addr() != best })
	var addrs []netip.AddrPort
	for _, o := range on {
		if !slices.Contains(addrs, o.observed) {
			addrs = append(addrs, o.observed)
		}
	}
	slices.SortStableFunc(addrs, func(a, b netip.AddrPort) int { return count(on, b) - count(on, a) })
	return on, addrs
}

func countIP(obs []observation, ip netip.Addr) int {
	n := 0
	for _, o := range obs {
		if o.observed.Addr() == ip {
			n++
		}
	}
	return n
}

func count(obs []observation, a netip.AddrPort) int {
	n := 0
	for _, o := range obs {
		if o.observed == a {
			n++
		}
	}
	return n
}

func (d *Detector) isLocal(a netip.AddrPort) bool {
	if d.cfg.Local == nil {
		return false
	}
	return slices.ContainsFunc(d.cfg.Local(), func(l netip.AddrPort) bool { return unmap(l) == a })
}

// LocalAddrs returns the global and private unicast addresses of the
// host's interfaces that are up, each with port: the LAN candidates of
// hole punching, and what a Detector compares observations with.
// Loopback and link-local addresses are left out.
func LocalAddrs(port uint16) ([]netip.AddrPort, error) {
	ifs, err := net.Interfaces()
	if err != nil {
		return nil, fmt.Errorf("nat: list interfaces: %w", err)
	}
	var out []netip.AddrPort
	for _, ifc := range ifs {
		if ifc.Flags&net.FlagUp == 0 || ifc.Flags&net.FlagLoopback != 0 {
			continue
		}
		addrs, err := ifc.Addrs()
		if err != nil {
			continue // the interface went away
		}
		for _, a := range addrs {
			pfx, ok := a.(*net.IPNet)
			if !ok {
				continue
			}
			ip, ok := netip.AddrFromSlice(pfx.IP)
			if !ok {
				continue
			}
			ip = ip.Unmap()
			if !ip.IsGlobalUnicast() {
				continue // link-local, multicast, unspecified
			}
			out = append(out, netip.AddrPortFrom(ip, port))
		}
	}
	return out, nil
}

// Why says, for `wh show`, why a punch between a node with local's NAT and
// a peer with remote's found no direct path.
func Why(local, remote Info) string {
	switch {
	case local.Mapping == MappingEndpointDependent && remote.Mapping == MappingEndpointDependent:
		return "both sides map per destination"
	case local.Mapping == MappingEndpointDependent && remote.BehindNAT:
		return "this side maps per destination and the peer's NAT filters"
	case remote.Mapping == MappingEndpointDependent && local.BehindNAT:
		return "the peer maps per destination and this side's NAT filters"
	}
	return "punch timed out"
}

func unmap(a netip.AddrPort) netip.AddrPort {
	return netip.AddrPortFrom(a.Addr().Unmap(), a.Port())
}

// Observation is one peer's view of the node, for `wh netcheck`.
type Observation struct {
	Peer     netip.Addr     // the peer's IP address
	Observed netip.AddrPort // where it saw the node
	At       time.Time
}

// Observations returns the observations Info is made of, newest first.
func (d *Detector) Observations() []Observation {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make([]Observation, len(d.obs))
	for i, o := range d.obs {
		out[i] = Observation{Peer: o.peer, Observed: o.observed, At: o.at}
	}
	return out
}
