package node

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/whnet/wh/config"
	"github.com/whnet/wh/dht"
	"github.com/whnet/wh/invite"
	"github.com/whnet/wh/key"
)

// claimEvery is how often a node with an invitation tries the members
// that have not answered it yet.
const claimEvery = 5 * time.Second

// takeInvitation makes the alias slot of inv pub's, in the state file
// too, and keeps inv there until every member has answered.
func (a *auth) takeInvitation(n *config.Network, inv invite.Invitation, pub key.Public) error {
	alias := inv.Alias.Public()
	slot, ok := n.Node(alias)
	if !ok || slot.Role != config.Alias {
		return fmt.Errorf("the invitation's alias %s is not an alias line of the config: ask the inviter for the updated config", alias)
	}
	if k, ok := a.claims.claimant(alias); ok && k != pub {
		return fmt.Errorf("alias %s is held by key %s in %s, not by this node's key", alias.Short(10), k, a.claims.path)
	}
	if err := a.claims.add(alias, pub); err != nil {
		return err
	}
	if err := a.claims.setInvitation(inv.String()); err != nil {
		return err
	}
	a.mu.Lock()
	a.inv = &inv
	a.mu.Unlock()
	return nil
}

// invitation returns the invitation the node claims with, or nil.
func (a *auth) invitation() *invite.Invitation {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.inv
}

// seeds are the DHT contacts of the invitation: the inviter at each of
// its addresses, and its contacts.
func (a *auth) seeds() []dht.Contact {
	inv := a.invitation()
	if inv == nil {
		return nil
	}
	var out []dht.Contact
	for _, ad := range inv.Addrs {
		out = append(out, dht.Contact{Key: inv.Inviter, Addr: ad})
	}
	for _, c := range inv.Contacts {
		out = append(out, dht.Contact{Key: c.Key, Addr: c.Addr})
	}
	return out
}

// claimAll claims the invitation's slot at the inviter and at every other
// member of the config, each until it answers, until all have; then the
// invitation is dropped from the state. A member whose config does not
// list the alias yet is asked again later (it may reload).
func (nd *Node) claimAll(ctx context.Context) {
	inv := nd.auth.invitation()
	if inv == nil {
		return
	}
	type answer struct {
		member key.Public
		done   bool
	}
	answers := make(chan answer)
	answered := map[key.Public]bool{}
	inflight := map[key.Public]bool{}
	t := time.NewTicker(claimEvery)
	defer t.Stop()
	for {
		members := nd.claimTargets(*inv)
		left := 0
		for _, m := range members {
			if answered[m] {
				continue
			}
			left++
			if inflight[m] {
				continue
			}
			inflight[m] = true
			nd.wg.Go(func() {
				res, err := nd.Claim(ctx, m, inv.Alias)
				done := err == nil && (res.Accepted || res.Reason != reasonNoAlias)
				switch {
				case err != nil && !errors.Is(err, ErrNoAnswer):
					nd.log.Warn("claim", "member", res.Member, "err", err)
				case err == nil && res.Accepted:
					nd.log.Info("claim accepted", "member", res.Member, "slot", res.Slot, "ip", res.IP)
				case err == nil:
					nd.log.Warn("claim refused", "member", res.Member, "reason", res.Reason)
				}
				select {
				case answers <- answer{m, done}:
				case <-ctx.Done():
				}
			})
		}
		if left == 0 {
			if err := nd.auth.claims.setInvitation(""); err != nil {
				nd.log.Warn("claim: forgetting the invitation", "err", err)
			}
			nd.log.Info("every member answered the claim", "members", len(members))
			return
		}
		select {
		case <-ctx.Done():
			return
		case a := <-answers:
			delete(inflight, a.member)
			answered[a.member] = a.done
		case <-t.C:
		}
	}
}

// claimTargets are the members to claim at: the inviter first, then every
// trusted node of the config other than this one and the aliases.
func (nd *Node) claimTargets(inv invite.Invitation) []key.Public {
	out := []key.Public{inv.Inviter}
	for _, c := range nd.auth.config().Trusted() {
		if c.Role != config.Alias && c.Key != nd.pub && c.Key != inv.Inviter {
			out = append(out, c.Key)
		}
	}
	return out
}

// inviterAddrs are the addresses the invitation gives for member.
func (nd *Node) inviterAddrs(member key.Public) []netip.AddrPort {
	if inv := nd.auth.invitation(); inv != nil && inv.Inviter == member {
		return inv.Addrs
	}
	return nil
}
