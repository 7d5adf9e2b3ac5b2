package node

import (
	"bytes"
	"context"
	"net/netip"
	"time"

	"github.com/whnet/wh/dht"
	"github.com/whnet/wh/key"
	"github.com/whnet/wh/nat"
	"github.com/whnet/wh/nat/portmap"
	"github.com/whnet/wh/orchid"
	"github.com/whnet/wh/relay"
	"github.com/whnet/wh/tunnel"
	"github.com/whnet/wh/wire"
)

// startNAT sets up what the node knows about its own reachability
// (reflexive addresses from pongs, a port mapping) and the hole puncher.
func (nd *Node) startNAT() error {
	nd.det = nat.NewDetector(nat.DetectorConfig{Local: nd.localAddrs})
	p, err := nat.New(nat.Config{
		Self:       nd.pub,
		Send:       nd.Send,
		Seal:       func(to key.Public, m wire.Message) ([]byte, error) { return nd.codec.Seal(nil, to, m) },
		Open:       nd.codec.Open,
		Ping:       nd.probePath,
		Candidates: nd.candidates,
		NAT:        nd.det.Info,
		Accept:     nd.acceptPunch,
		Locate:     nd.locate,
		Logger:     nd.log.With("sub", "nat"),
	})
	if err != nil {
		return err
	}
	nd.punch = p
	if nd.opt.Mode != ModeDirect && !nd.opt.NoPortMapping {
		nd.pm = portmap.New(portmap.Options{
			LocalPort:   nd.port,
			Description: "wh " + nd.pub.String(),
			Logger:      nd.log.With("sub", "portmap"),
		})
		nd.wg.Go(func() { nd.pm.Run(nd.ctx) })
	}
	return nil
}

// behindNAT is what the node tells others in its pings: mode nat or
// direct says so; mode unknown assumes NAT until a pong shows that others
// see the node at one of its own addresses.
func (nd *Node) behindNAT() bool {
	switch nd.opt.Mode {
	case ModeDirect:
		return false
	case ModeNAT:
		return true
	}
	return nd.det == nil || nd.det.Info().Mapping != nat.MappingNone
}

// localAddrs are the node's underlay addresses with its port, without the
// overlay's own addresses.
func (nd *Node) localAddrs() []netip.AddrPort {
	var as []netip.AddrPort
	if nd.opt.LocalAddrs != nil {
		for _, a := range nd.opt.LocalAddrs() {
			as = append(as, netip.AddrPortFrom(a, nd.port))
		}
	} else {
		as, _ = nat.LocalAddrs(nd.port)
	}
	out := as[:0]
	for _, a := range as {
		if orchid.Prefix.Contains(a.Addr()) || (nd.subnet.IsValid() && nd.subnet.Contains(a.Addr())) {
			continue
		}
		out = append(out, a)
	}
	return out
}

// candidates are the addresses a peer may reach the node at, best first:
// a port mapping, the reflexive addresses, then the LAN addresses (which
// let two nodes behind one NAT meet without hairpinning).
func (nd *Node) candidates() []netip.AddrPort {
	var out []netip.AddrPort
	if nd.pm != nil {
		if m, ok := nd.pm.Mapping(); ok {
			out = append(out, m.External)
		}
	}
	out = append(out, nd.det.Info().Reflexive...)
	return uniq(append(out, nd.localAddrs()...))
}

// isPeer reports whether k is a trusted peer of this node.
func (nd *Node) isPeer(k key.Public) bool {
	nd.mu.Lock()
	defer nd.mu.Unlock()
	_, ok := nd.peers[k]
	return ok
}

// relayedFrom notes that relay, at addr, delivered a packet from peer k,
// and reports whether k is a trusted peer. A relay that delivers a peer's
// packets reaches the peer, so it can carry our answers too: when we have
// no path of our own to the peer, it becomes the peer's relay. That is how
// a peer no lookup shows a way to is answered, such as one with a public
// address behind a firewall that lets in only those it has sent to, which
// has no Via, and whose relay towards us is one of our own Vias. A node
// that forges a Relayed for a peer we have no path to becomes that peer's
// relay until the next path search replaces the candidates: no more than
// a DHT node that offers itself as a Via can do, and, as for any relay, it
// sees only WireGuard ciphertext.
func (nd *Node) relayedFrom(k, relay key.Public, addr netip.AddrPort) bool {
	nd.mu.Lock()
	defer nd.mu.Unlock()
	p, ok := nd.peers[k]
	if !ok {
		return false
	}
	if !p.direct.IsValid() && !p.relayed {
		nd.relayLocked(p, []dht.Contact{{Key: relay, Addr: addr}})
		if p.why == "" {
			p.why = "the peer came through this relay"
		}
	}
	return true
}

// members reports whether src and dst are both trusted in this node's
// config: members of its network relay for each other without limits.
func (nd *Node) members(src, dst key.Public) bool {
	nd.mu.Lock()
	n := nd.net
	nd.mu.Unlock()
	s, ok1 := n.Node(src)
	d, ok2 := n.Node(dst)
	return ok1 && ok2 && s.Trusted() && d.Trusted()
}

// locate is where the node last heard from k in its DHT table: a verified
// address (k answered, or keeps us alive), never one a stranger chose.
func (nd *Node) locate(k key.Public) (netip.AddrPort, bool) {
	c, ok := nd.dht.Table().Get(k)
	return c.Addr, ok
}

// natKeepalive keeps NAT mappings open: WireHub's 25 s.
const natKeepalive = 25 * time.Second

// keepalive is the WireGuard persistent keepalive of every peer: none for
// a node that says it has a public address, 25 s otherwise, so that its
// own mapping and its peers' stay open.
func (nd *Node) keepalive() time.Duration {
	if nd.opt.Mode == ModeDirect {
		return 0
	}
	return natKeepalive
}

// startRelay makes the node a relay for others (any node with enough
// workbits, within limits) and a client of relays for its own peers.
func (nd *Node) startRelay() error {
	srv, err := relay.NewServer(relay.ServerConfig{
		Send:    nd.Send,
		Locate:  nd.locate,
		Members: nd.members,
		Logger:  nd.log.With("sub", "relay"),
	})
	if err != nil {
		return err
	}
	cl, err := relay.NewClient(relay.ClientConfig{
		Send:      nd.Send,
		SendBatch: nd.SendBatch,
		Ping: func(ctx context.Context, k key.Public, addr netip.AddrPort) (time.Duration, error) {
			start := time.Now()
			_, err := nd.dht.Ping(ctx, dht.Contact{Key: k, Addr: addr})
			return time.Since(start), err
		},
		Self:   nd.pub,
		Logger: nd.log.With("sub", "relay"),
	})
	if err != nil {
		return err
	}
	nd.relayServer, nd.relayClient = srv, cl
	nd.wg.Go(func() { cl.Run(nd.ctx) })
	return nil
}

// relayLocked sends peer p's packets through the nodes that keep it alive
// (its Vias), the fastest live one, until a direct path forms. WireGuard
// does not notice: only the Bind's path for p changes.
func (nd *Node) relayLocked(p *peer, vias []dht.Contact) {
	if len(vias) == 0 {
		return
	}
	k := p.cfg.Key
	nd.setRelays(k, vias)
	if p.relayed {
		return
	}
	if p.direct.IsValid() {
		nd.bind.Forget(p.direct)
		p.direct = netip.AddrPort{}
	}
	p.relayed = true
	nd.bind.SetPath(k, tunnel.Path{Relay: func(bufs [][]byte) error { return nd.relayClient.Send(k, bufs) }})
	nd.log.Info("path", "peer", name(p.cfg), "relay", vias[0].Key.Short(10))
	if nd.dev != nil {
		nd.wg.Go(func() { nd.greet(k) })
	}
}

// greet has the device greet peer k through the relay just set: if the
// peer has no way to us of its own, the relay that delivers our handshake
// becomes its way back (relayedFrom), before either side has traffic to
// send. Both sides may get here at once, and two handshake initiations
// that cross cost both sides WireGuard's 5 s retry (each side's answer to
// the other's initiation replaces its own), so the side with the greater
// key waits, as the Bind does with held initiations, and greets only if no
// handshake happened meanwhile.
func (nd *Node) greet(k key.Public) {
	if bytes.Compare(nd.pub[:], k[:]) > 0 {
		start := time.Now()
		select {
		case <-nd.ctx.Done():
			return
		case <-time.After(tunnel.HeldDelay):
		}
		if nd.handshakes()[k].After(start) {
			return
		}
	}
	nd.dev.Greet(k)
}

// setRelays makes relays the relay candidates for peer k, none to stop
// relaying for it, and pins the relays' keys in the codec: a relay in use
// is heard at once, however many new senders flood the node.
func (nd *Node) setRelays(k key.Public, relays []dht.Contact) {
	nd.relayClient.SetCandidates(k, relays)
	nd.codec.Pin("relays for "+k.String(), keysOf(relays)...)
}

// keysOf returns the keys of contacts.
func keysOf(contacts []dht.Contact) []key.Public {
	ks := make([]key.Public, len(contacts))
	for i, c := range contacts {
		ks[i] = c.Key
	}
	return ks
}
