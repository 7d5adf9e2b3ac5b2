package node

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/whnet/wh/config"
	"github.com/whnet/wh/invite"
	"github.com/whnet/wh/key"
	"github.com/whnet/wh/wire"
)

// Claims, both ways (see wire/auth.go for the messages):
//
// As a member, the node answers an Auth for an alias slot its config
// lists: the first claimant with a valid claim gets the slot, recorded in
// the claims file before the answer goes out; the same claimant asking
// again is told yes again; anyone else is told no, with the reason.
//
// As a claimant, the node sends Auths from the alias key and waits for
// the member's Authed, accepted only from the member it sent to, for the
// txid and alias it sent.

// Claim retries: WireHub's AUTH_RETRY of 4, each waiting claimWait.
const (
	claimTries = 4
	claimWait  = 2 * time.Second
	// authQueue bounds the claims waiting for the one worker that
	// records them: more are dropped, and their claimants retry.
	authQueue = 16
)

// auth is the node's claims state: the members' side and the claimant's.
type auth struct {
	claims *claims
	queue  chan authReq // to the worker, which records claims

	mu      sync.Mutex
	raw     *config.Network     // the config as loaded, aliases unclaimed; guarded by mu
	inv     *invite.Invitation  // the one this node claims with, or nil; guarded by mu
	pending map[uint64]*pending // claims this node sent, by txid; guarded by mu
}

type authReq struct {
	alias key.Public
	src   netip.AddrPort
	m     wire.Auth
}

// pending is a claim this node sent and waits the answer of.
type pending struct {
	member, alias key.Public
	answer        chan wire.Authed // buffered, 1
}

// newAuth loads the claims of the node's state file, and with an
// invitation (opt's, or one the state kept) takes its alias slot for pub.
func newAuth(opt Options, n *config.Network, pub key.Public) (*auth, error) {
	c, err := loadClaims(statePath(opt.StateDir, opt.Interface))
	if err != nil {
		return nil, err
	}
	a := &auth{claims: c, queue: make(chan authReq, authQueue), raw: n, pending: map[uint64]*pending{}}
	inv := opt.Invitation
	if inv == nil && c.invitation() != "" {
		v, err := invite.Parse(c.invitation(), n.Namespace, n.Workbit)
		if err != nil {
			return nil, fmt.Errorf("the invitation kept in %s: %w", c.path, err)
		}
		inv = &v
	}
	if inv != nil {
		if err := a.takeInvitation(n, *inv, pub); err != nil {
			return nil, err
		}
	}
	return a, nil
}

// effective returns the network n means once the claims are applied, and
// remembers n as the config.
func (a *auth) effective(n *config.Network) *config.Network {
	a.mu.Lock()
	a.raw = n
	a.mu.Unlock()
	return a.claims.apply(n)
}

func (a *auth) config() *config.Network {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.raw
}

// handleAuth queues an Auth from alias, if alias is one of the config's
// alias lines, for runAuth. On the receive goroutine: it never blocks.
func (nd *Node) handleAuth(alias key.Public, src netip.AddrPort, m wire.Auth) {
	if c, ok := nd.auth.config().Node(alias); !ok || c.Role != config.Alias {
		return // not an alias here: nothing to prove
	}
	select {
	case nd.auth.queue <- authReq{alias, src, m}:
	default:
		nd.log.Debug("auth: queue full", "alias", alias.Short(10))
	}
}

// runAuth answers the queued claims, one at a time, until the node
// closes.
func (nd *Node) runAuth() {
	for {
		select {
		case <-nd.ctx.Done():
			return
		case r := <-nd.auth.queue:
			nd.answerAuth(r)
		}
	}
}

func (nd *Node) answerAuth(r authReq) {
	claimant, err := nd.codec.OpenClaim(r.alias, r.m)
	if err != nil {
		nd.log.Debug("auth: bad claim", "alias", r.alias.Short(10), "src", r.src, "err", err)
		return
	}
	ans := wire.Authed{TxID: r.m.TxID, Alias: r.alias}
	if reason := nd.admit(r.alias, claimant); reason != "" {
		ans.Status, ans.Reason = wire.AuthRefused, wire.Reason(reason)
		nd.log.Info("auth: refused", "alias", r.alias.Short(10), "claimant", claimant.String(), "reason", reason)
	}
	if err := nd.Send(claimant, r.src, ans); err != nil {
		nd.log.Debug("auth: answer", "err", err)
	}
}

// admit decides a claim of alias by claimant, records it, and returns ""
// if it is accepted, else the reason it is not.
func (nd *Node) admit(alias, claimant key.Public) string {
	raw := nd.auth.config()
	slot, ok := raw.Node(alias)
	if !ok || slot.Role != config.Alias {
		return reasonNoAlias
	}
	name := slot.Hostname
	if name == "" {
		name = alias.Short(10)
	}
	if k, ok := nd.auth.claims.claimant(alias); ok {
		if k == claimant {
			return ""
		}
		return fmt.Sprintf("alias %s is already claimed", name)
	}
	if !slot.Expires.IsZero() && !time.Now().Before(slot.Expires) {
		return fmt.Sprintf("alias %s expired at %s", name, slot.Expires.UTC().Format(time.RFC3339))
	}
	if c, ok := raw.Node(claimant); ok {
		return fmt.Sprintf("key is already listed on line %d of the config", c.Line)
	}
	if claimant == nd.pub {
		return "a member cannot claim an alias at itself"
	}
	if a, ok := nd.auth.claims.aliasOf(claimant); ok {
		return fmt.Sprintf("key already holds alias %s", a.Short(10))
	}
	if err := nd.auth.claims.add(alias, claimant); err != nil {
		if errors.Is(err, errClaimed) {
			return fmt.Sprintf("alias %s is already claimed", name)
		}
		nd.log.Error("auth: cannot record the claim", "alias", name, "err", err)
		return "the member cannot record the claim"
	}
	nd.log.Info("auth: alias claimed", "alias", name, "claimant", claimant.String(), "ip", slot.IP)
	nd.applyClaims()
	return ""
}

// applyClaims makes the node see the config with its current claims.
func (nd *Node) applyClaims() {
	n := nd.auth.claims.apply(nd.auth.config())
	nd.applyPeers(n)
	nd.updateDNS(n)
}

// handleAuthed hands an Authed to the claim waiting for it: only from
// the member that claim was sent to, for its alias. On the receive
// goroutine: it never blocks.
func (nd *Node) handleAuthed(from key.Public, m wire.Authed) {
	nd.auth.mu.Lock()
	p := nd.auth.pending[m.TxID]
	nd.auth.mu.Unlock()
	if p == nil || p.member != from || p.alias != m.Alias {
		return
	}
	select {
	case p.answer <- m:
	default:
	}
}

// reasonNoAlias is the refusal of a member whose config does not list the
// alias (yet).
const reasonNoAlias = "this member's config has no such alias"

// ClaimResult is the answer to a claim: the member's, or none.
type ClaimResult struct {
	Member   string     `json:"member"`
	Accepted bool       `json:"accepted"`
	Reason   string     `json:"reason,omitempty"` // the member's, when refused
	Slot     string     `json:"slot,omitempty"`   // the alias's hostname, if the config has it
	IP       netip.Addr `json:"ip"`               // the alias's address, if the config has it
}

// ErrNoAnswer is returned by Claim when the member never answered.
var ErrNoAnswer = errors.New("no answer to the claim")

// Claim proves aliasPriv to member and returns its answer: Auths from
// the alias key to every address the member may be at, claimTries times.
// An accepted claim of an alias the config lists makes its slot this
// node's, in the claims file too.
func (nd *Node) Claim(ctx context.Context, member key.Public, aliasPriv key.Private) (ClaimResult, error) {
	alias := aliasPriv.Public()
	res := ClaimResult{Member: nd.displayName(member)}
	raw := nd.auth.config()
	if slot, ok := raw.Node(alias); ok {
		res.Slot, res.IP = slot.Hostname, slot.IP
	}
	aliasCodec := wire.NewCodec(aliasPriv, raw.Namespace, raw.Workbit)
	var b [8]byte
	rand.Read(b[:])
	txid := binary.BigEndian.Uint64(b[:])
	p := &pending{member: member, alias: alias, answer: make(chan wire.Authed, 1)}
	nd.auth.mu.Lock()
	nd.auth.pending[txid] = p
	nd.auth.mu.Unlock()
	defer func() {
		nd.auth.mu.Lock()
		delete(nd.auth.pending, txid)
		nd.auth.mu.Unlock()
	}()
	for try := 0; try < claimTries; try++ {
		addrs := nd.memberAddrs(ctx, member)
		for _, a := range addrs {
			m, err := nd.codec.Claim(member, alias, txid)
			if err != nil {
				return res, err
			}
			pkt, err := aliasCodec.Seal(nil, member, m)
			if err != nil {
				return res, err
			}
			if err := nd.bind.SendControl(pkt, a); err != nil {
				nd.log.Debug("auth: send", "addr", a, "err", err)
			}
		}
		select {
		case <-ctx.Done():
			return res, ctx.Err()
		case m := <-p.answer:
			res.Accepted, res.Reason = m.Status == wire.AuthAccepted, m.Reason
			if res.Accepted {
				if err := nd.takeSlot(alias); err != nil {
					return res, err
				}
			}
			return res, nil
		case <-time.After(claimWait):
		}
	}
	return res, ErrNoAnswer
}

// takeSlot records that this node holds alias's slot.
func (nd *Node) takeSlot(alias key.Public) error {
	if c, ok := nd.auth.config().Node(alias); !ok || c.Role != config.Alias {
		return nil // the config does not list it: nothing to take here
	}
	if err := nd.auth.claims.add(alias, nd.pub); err != nil {
		return fmt.Errorf("recording the slot: %w", err)
	}
	nd.applyClaims()
	return nil
}

// memberAddrs are where member may be: the invitation's addresses of it,
// its current direct path and its endpoint in the config; or else where
// the DHT has it, punched through its NAT if it is behind one.
func (nd *Node) memberAddrs(ctx context.Context, member key.Public) []netip.AddrPort {
	out := slices.Clone(nd.inviterAddrs(member))
	nd.mu.Lock()
	if p, ok := nd.peers[member]; ok && p.direct.IsValid() {
		out = append(out, p.direct)
	}
	nd.mu.Unlock()
	if c, ok := nd.auth.config().Node(member); ok && !c.Endpoint.IsZero() {
		if as, err := c.Endpoint.Resolve(ctx, nd.opt.Resolver); err == nil {
			out = append(out, as...)
		}
	}
	if len(out) > 0 {
		return uniq(out)
	}
	if a, ok := nd.locate(member); ok {
		return []netip.AddrPort{a}
	}
	r := nd.dht.Lookup(ctx, member)
	if !r.Found {
		return nil
	}
	if r.Contact.NAT && len(r.Vias) > 0 {
		// Behind NAT: punch, as for a peer (the member accepts the punch
		// while its config has alias lines, see acceptPunch).
		pctx, cancel := context.WithTimeout(ctx, 2*probeWait)
		a, err := nd.punch.Punch(pctx, member, r.Vias[0], []netip.AddrPort{r.Contact.Addr})
		cancel()
		if err == nil {
			return []netip.AddrPort{a}
		}
	}
	return []netip.AddrPort{r.Contact.Addr}
}

// markAliases fills in the alias fields of `wh show`'s peers.
func (nd *Node) markAliases(ps []PeerStatus) {
	for i := range ps {
		p := &ps[i]
		k, err := key.ParsePublic(p.Key)
		if err != nil || !p.Trusted {
			continue
		}
		if p.Role == config.Alias.String() {
			p.Alias = "unclaimed"
			continue
		}
		if a, ok := nd.auth.claims.aliasOf(k); ok {
			p.Alias = "claimed"
			slot, _ := nd.auth.config().Node(a)
			line := "trust"
			if slot.Hostname != "" {
				line += " " + slot.Hostname
			}
			if slot.Static {
				line += " " + slot.IP.String()
			}
			line += " " + k.String()
			if !slot.Endpoint.IsZero() {
				line += " " + slot.Endpoint.String()
			}
			p.TrustLine = line
		}
	}
}

// authVerb is `wh auth`: claim at member (a hostname or key) the alias
// whose private key is in the file keyFile, which the daemon reads.
func (nd *Node) authVerb(ctx context.Context, member, keyFile string) (ClaimResult, error) {
	k, err := nd.resolveKey(member)
	if err != nil {
		return ClaimResult{}, err
	}
	if keyFile == "" {
		return ClaimResult{}, errors.New("want the alias's private key file")
	}
	b, err := os.ReadFile(keyFile)
	if err != nil {
		return ClaimResult{}, err
	}
	priv, err := key.ParsePrivate(string(b))
	if err != nil {
		return ClaimResult{}, fmt.Errorf("%s: %w", keyFile, err)
	}
	return nd.Claim(ctx, k, priv)
}

// acceptPunch reports whether the node probes toward k when k asks, through
// a rendezvous, for a hole punch: k is a trusted peer, or the node's
// config has an alias line, so that a claimant behind NAT reaches a member
// behind NAT to claim the slot, or to hear why it may not (claimed,
// expired). While the config has alias lines, any key may so make the
// node probe the addresses it names, within the puncher's rate limits;
// replacing a claimed alias line with its trust line (`wh show` prints
// it) closes that.
func (nd *Node) acceptPunch(k key.Public) bool {
	if nd.isPeer(k) {
		return true
	}
	for _, c := range nd.auth.config().Nodes {
		if c.Role == config.Alias {
			return true
		}
	}
	return false
}
