package node

import (
	"context"
	"errors"
	"math/rand/v2"
	"net/netip"
	"sync"
	"time"

	"github.com/whnet/wh/key"
	"github.com/whnet/wh/wire"
)

// A trusted peer's path is decided here: which way its packets go (direct
// to an address, through a relay, or nowhere yet), what shows that the
// way works, and when it may change. The rules:
//
//   - A path becomes direct at an address only after an exchange this
//     node started: a ping with a fresh txid, answered from that address
//     by the peer's key (probePath, pathVerified). An authenticated
//     message from a new address only makes the node ask (observe), with
//     one ping no larger than that message, one at a time per peer.
//   - A direct path that works is never left for another: WireGuard
//     traffic from its address within wgQuiet (tunnel.Bind.LastDirect),
//     or a control message from it within ctlQuiet, shows that it works
//     (path.working). When the peer answers at another address meanwhile,
//     the node pings it on the current path (checkPath): a peer that
//     restarted on a new port, or whose NAT changed its mapping, no
//     longer answers there, and the path moves; one that answers keeps
//     it.
//
// Locks: the path lives in its peer, guarded by Node.mu. probes.mu is a
// leaf, taken with or without Node.mu, never the other way round.

// Quiet times after which a direct path no longer counts as working.
const (
	// wgQuiet is longer than the persistent keepalive (25 s), so that an
	// idle path that works always shows traffic.
	wgQuiet = natKeepalive + 5*time.Second
	// ctlQuiet is for the control messages that come from the path.
	ctlQuiet = 2 * probeWait
	// checkWait is how long checkPath waits for the current path to
	// answer: under the Bind's 2 s window for sending a handshake message
	// again on a new path, so that one lost on the dead path is not.
	// Missing an answer that is merely slow only moves the path to
	// another where the peer answered.
	checkWait = time.Second
)

// path is one peer's path. Guarded by Node.mu.
type path struct {
	direct    netip.AddrPort // current direct path; invalid if none
	confirmed time.Time      // last authenticated control message from direct
	relayed   bool           // packets go through nd.relayClient
	trying    bool           // a path search (connect) runs
	nextTry   time.Time      // when to look for a path again
	backoff   time.Duration
	why       string // why there is no path, for `wh show`

	since time.Time // when direct was set
	wgAt  time.Time // last WireGuard packet from a learned address of the peer (Bind.LastDirect)

	asking   time.Time // until when observe's probe of a new address is out
	checking bool      // checkPath runs
	kept     time.Time // when checkPath last found the path answering
}

// working reports whether the direct path shows, by WireGuard traffic or
// control messages, that it works.
func (p *path) working(now time.Time) bool {
	wg := p.wgAt.After(p.since) && now.Sub(p.wgAt) < wgQuiet // traffic on this path, not the one before
	return p.direct.IsValid() && (wg || now.Sub(p.confirmed) < ctlQuiet)
}

// mayMove reports whether the path may become direct at addr, which a
// probe of ours has verified.
func (p *path) mayMove(addr netip.AddrPort, now time.Time) bool {
	return p.direct == addr || !p.working(now)
}

// refreshLocked reads when the peer's direct path last carried WireGuard
// traffic. nd.mu must be held.
func (nd *Node) refreshLocked(p *peer) {
	p.wgAt = nd.bind.LastDirect(p.cfg.Key)
}

// pathVerified is told that peer k answered our probe at addr: the path
// becomes direct there, unless a working one would be left.
func (nd *Node) pathVerified(k key.Public, addr netip.AddrPort) {
	nd.mu.Lock()
	defer nd.mu.Unlock()
	p, ok := nd.peers[k]
	if !ok {
		return
	}
	now := time.Now()
	p.asking = time.Time{} // answered: the next ask may go
	nd.refreshLocked(p)
	switch {
	case p.direct == addr:
		p.confirmed = now
	case p.mayMove(addr, now):
		nd.setDirectLocked(p, addr, now)
	case !p.checking && now.Sub(p.kept) >= wgQuiet:
		p.checking = true
		old := p.direct
		nd.wg.Go(func() { nd.checkPath(k, old, addr) })
	}
}

// checkPath pings peer k on its working path old, as it answered at addr
// too: if old does not answer, and no traffic came from it meanwhile, the
// path moves to addr.
func (nd *Node) checkPath(k key.Public, old, addr netip.AddrPort) {
	start := time.Now()
	ctx, cancel := context.WithTimeout(nd.ctx, checkWait)
	err := nd.probePath(ctx, k, old)
	cancel()
	nd.mu.Lock()
	defer nd.mu.Unlock()
	p, ok := nd.peers[k]
	if !ok {
		return
	}
	p.checking = false
	if err == nil {
		p.kept = time.Now() // it answers there: the path stays
		return
	}
	if p.direct != old || nd.ctx.Err() != nil {
		return
	}
	nd.refreshLocked(p)
	if p.wgAt.After(start) || p.confirmed.After(start) {
		return
	}
	nd.log.Info("path: no answer on the working one", "peer", name(p.cfg), "direct", old, "to", addr)
	nd.setDirectLocked(p, addr, time.Now())
}

// pingSize is the size of a probe: a sealed wire.Ping.
var pingSize = func() int {
	b, _ := wire.Ping{Size: wire.MaxPongSize}.AppendBinary(nil)
	return wire.Overhead + len(b)
}()

// ask probes peer k at addr, where an authenticated message of n bytes
// came from: one ping, no larger than the message, one at a time per
// peer. The pong, if it comes, goes to pathVerified, which decides. It
// does not block (it runs on the receive goroutine).
func (nd *Node) ask(k key.Public, addr netip.AddrPort, n int) {
	if n < pingSize {
		return
	}
	now := time.Now()
	nd.mu.Lock()
	p, ok := nd.peers[k]
	ask := ok && p.direct != addr && now.After(p.asking)
	if ask {
		p.asking = now.Add(probeWait)
	}
	nd.mu.Unlock()
	if !ask {
		return
	}
	txid, _, ok := nd.probes.add(k, addr, now.Add(probeWait))
	if !ok {
		return
	}
	if err := nd.Send(k, addr, wire.Ping{TxID: txid, NAT: nd.behindNAT(), Size: wire.MaxPongSize}); err != nil {
		nd.probes.remove(txid)
	}
}

// probePath pings peer k at addr and waits for the pong from there, by
// k's key, until ctx is done; an answer goes to pathVerified too.
func (nd *Node) probePath(ctx context.Context, k key.Public, addr netip.AddrPort) error {
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(probeWait)
	}
	txid, pr, ok := nd.probes.add(k, addr, deadline)
	if !ok {
		return errProbesFull
	}
	defer nd.probes.remove(txid)
	if err := nd.Send(k, addr, wire.Ping{TxID: txid, NAT: nd.behindNAT(), Size: wire.MaxPongSize}); err != nil {
		return err
	}
	select {
	case <-pr.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// maxProbes bounds the path probes out at once.
const maxProbes = 1024

var errProbesFull = errors.New("node: too many path probes out")

// probes are the path probes out, by txid.
type probes struct {
	mu sync.Mutex            // a leaf lock
	m  map[uint64]*pathProbe // guarded by mu
}

type pathProbe struct {
	peer     key.Public
	addr     netip.AddrPort
	deadline time.Time
	done     chan struct{} // closed when answered
}

// add registers a probe of peer at addr, answerable until deadline, and
// returns its txid. It refuses when maxProbes are out (expired ones are
// dropped first).
func (ps *probes) add(peer key.Public, addr netip.AddrPort, deadline time.Time) (uint64, *pathProbe, bool) {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	if ps.m == nil {
		ps.m = make(map[uint64]*pathProbe)
	}
	if len(ps.m) >= maxProbes {
		now := time.Now()
		for id, pr := range ps.m {
			if now.After(pr.deadline) {
				delete(ps.m, id)
			}
		}
		if len(ps.m) >= maxProbes {
			return 0, nil, false
		}
	}
	txid := rand.Uint64()
	for ps.m[txid] != nil {
		txid = rand.Uint64()
	}
	pr := &pathProbe{peer: peer, addr: addr, deadline: deadline, done: make(chan struct{})}
	ps.m[txid] = pr
	return txid, pr, true
}

// answer takes the probe a pong answers: one with its txid, to the
// pong's sender, at the address the pong came from, in time. It returns
// nil for any other pong (the DHT's, or a forgery).
func (ps *probes) answer(from key.Public, src netip.AddrPort, txid uint64) *pathProbe {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	pr := ps.m[txid]
	if pr == nil || pr.peer != from || pr.addr != src || time.Now().After(pr.deadline) {
		return nil
	}
	delete(ps.m, txid)
	close(pr.done)
	return pr
}

func (ps *probes) remove(txid uint64) {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	delete(ps.m, txid)
}
