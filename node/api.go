package node

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/whnet/wh/config"
	"github.com/whnet/wh/dht"
	"github.com/whnet/wh/ipc"
	"github.com/whnet/wh/key"
	"github.com/whnet/wh/orchid"
)

// LookupResult is the answer to `wh lookup`.
type LookupResult struct {
	Found bool           `json:"found"`
	Key   string         `json:"key"`
	Addr  netip.AddrPort `json:"addr"`
	NAT   bool           `json:"nat"`
	Via   string         `json:"via,omitempty"` // the node that keeps a NATed node alive
}

// String is what `wh lookup` prints (WireHub's forms).
func (r LookupResult) String() string {
	switch {
	case !r.Found:
		return "not found"
	case r.NAT && r.Via != "":
		return fmt.Sprintf("nat %s via %s", r.Addr, r.Via)
	case r.NAT:
		return fmt.Sprintf("nat %s", r.Addr)
	}
	return fmt.Sprintf("direct %s", r.Addr)
}

// PingResult is the answer to `wh ping`.
type PingResult struct {
	Answered bool           `json:"answered"`
	RTT      time.Duration  `json:"rtt"`
	Addr     netip.AddrPort `json:"addr"`
}

// handle serves the control socket. Verbs are exact.
func (nd *Node) handle(ctx context.Context, req ipc.Request) (any, error) {
	arg := func(i int) string {
		if i < len(req.Args) {
			return req.Args[i]
		}
		return ""
	}
	switch req.Verb {
	case "version":
		return nd.opt.Version, nil
	case "show":
		return nd.Status(arg(0) == "all"), nil
	case "reload":
		if nd.opt.ConfigPath == "" {
			return nil, errors.New("this node was not started from a config file")
		}
		n, err := config.Load(nd.opt.ConfigPath)
		if err != nil {
			return nil, err
		}
		return nil, nd.Reload(n)
	case "down":
		nd.downOnce.Do(func() { close(nd.downReq) })
		return nil, nil
	case "lookup":
		k, err := nd.resolveKey(arg(0))
		if err != nil {
			return nil, err
		}
		res := nd.dht.Lookup(ctx, k)
		if !res.Found {
			return LookupResult{Key: k.String()}, nil
		}
		r := LookupResult{Found: true, Key: k.String(), Addr: res.Contact.Addr, NAT: res.Contact.NAT}
		if len(res.Vias) > 0 {
			r.Via = nd.displayName(res.Vias[0].Key)
		}
		return r, nil
	case "stats":
		return nd.Counters(), nil
	case "netcheck":
		return nd.Netcheck(), nil
	case "resolve":
		return nd.Resolve(arg(0))
	case "auth":
		return nd.authVerb(ctx, arg(0), arg(1))
	case "ping":
		k, err := nd.resolveKey(arg(0))
		if err != nil {
			return nil, err
		}
		return nd.ping(ctx, k), nil
	}
	return nil, fmt.Errorf("unknown verb %q", req.Verb)
}

// ping finds k and pings it at each address it may be at.
func (nd *Node) ping(ctx context.Context, k key.Public) PingResult {
	var cands []netip.AddrPort
	nd.mu.Lock()
	if p, ok := nd.peers[k]; ok && p.direct.IsValid() {
		cands = append(cands, p.direct)
	}
	nd.mu.Unlock()
	if r := nd.dht.Lookup(ctx, k); r.Found {
		cands = append(cands, r.Contact.Addr)
	}
	for _, a := range uniq(cands) {
		pctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		start := time.Now()
		_, err := nd.dht.Ping(pctx, dht.Contact{Key: k, Addr: a})
		cancel()
		if err == nil {
			return PingResult{Answered: true, RTT: time.Since(start), Addr: a}
		}
	}
	return PingResult{}
}

// resolveKey turns a hostname of the config, a full key in either form,
// or a unique prefix of a trusted key into a key (WireHub's getent order).
func (nd *Node) resolveKey(s string) (key.Public, error) {
	if s == "" {
		return key.Public{}, errors.New("want a key or hostname")
	}
	if k, err := key.ParsePublic(s); err == nil {
		return k, nil
	}
	nd.mu.Lock()
	n := nd.net
	nd.mu.Unlock()
	if c, ok := n.Host(s); ok {
		return c.Key, nil
	}
	var match []key.Public
	for _, c := range n.Nodes {
		if strings.HasPrefix(c.Key.String(), s) {
			match = append(match, c.Key)
		}
	}
	switch len(match) {
	case 1:
		return match[0], nil
	case 0:
		return key.Public{}, fmt.Errorf("%q is neither a key nor a hostname of network %q", s, n.Name)
	}
	return key.Public{}, fmt.Errorf("%q is the prefix of %d keys", s, len(match))
}

func (nd *Node) displayName(k key.Public) string {
	nd.mu.Lock()
	n := nd.net
	nd.mu.Unlock()
	return nd.nameIn(n, k)
}

func (nd *Node) nameIn(n *config.Network, k key.Public) string {
	if c, ok := n.Node(k); ok && c.Hostname != "" {
		return c.Hostname
	}
	return k.Short(10)
}

// Status returns the node's state for `wh show`. With all, DHT contacts
// that are not trusted peers are listed too.
func (nd *Node) Status(all bool) Status {
	hs := make(map[key.Public]peerCounters)
	if nd.dev != nil {
		ps, _ := nd.dev.Peers()
		for _, s := range ps {
			hs[s.Key] = peerCounters{s.LastHandshake, s.RxBytes, s.TxBytes}
		}
	}
	behindNAT := nd.behindNAT()
	nd.mu.Lock()
	defer nd.mu.Unlock()
	n := nd.net
	st := Status{
		Interface:  nd.opt.Interface,
		Network:    n.Name,
		Config:     absPath(nd.opt.ConfigPath),
		PublicKey:  nd.pub.String(),
		ListenPort: nd.port,
		Addresses:  []string{},
		Mode:       nd.opt.Mode.String(),
		NAT:        behindNAT,
		DNS:        nd.dnsMode(),
		Peers:      []PeerStatus{},
		DHT:        DHTStatus{Contacts: nd.dht.Table().Len()},
		Userspace:  nd.us != nil,
	}
	if a := nd.SOCKS5Addr(); a != nil {
		st.SOCKS5 = a.String()
	}
	if self, ok := n.Node(nd.pub); ok {
		st.Hostname = self.Hostname
		st.Router = self.Role == config.Router
	}
	if nd.dev != nil {
		for _, a := range nd.addrs {
			st.Addresses = append(st.Addresses, a.String())
		}
	}
	now := time.Now()
	for _, c := range n.Trusted() {
		if c.Key == nd.pub || nd.dev == nil {
			continue // a headless node has no tunnels, so no peers of its own
		}
		ps := PeerStatus{
			Key:      c.Key.String(),
			Hostname: c.Hostname,
			Trusted:  true,
			Role:     c.Role.String(),
			Path:     PathOffline,
			IPv6:     orchid.Addr(c.Key, n.Namespace).String(),
		}
		if c.IP.IsValid() {
			ps.IP = c.IP.String()
		}
		h := hs[c.Key]
		ps.LastHandshake, ps.RxBytes, ps.TxBytes = h.handshake, h.rx, h.tx
		if p, ok := nd.peers[c.Key]; ok {
			ps.Why = p.why
			if p.relayed && !p.direct.IsValid() {
				ps.Path = PathRelay
				if r, ok := nd.relayClient.Current(c.Key); ok {
					ps.Relay = nd.nameIn(n, r)
				}
			}
			if p.direct.IsValid() {
				ps.Endpoint = p.direct.String()
				ps.Path = PathConnecting
				if now.Sub(h.handshake) < pathStale {
					ps.Path = PathDirect
					ps.Why = ""
				}
			}
		}
		st.Peers = append(st.Peers, ps)
	}
	if all {
		for _, c := range nd.dht.Table().Contacts() {
			if x, ok := n.Node(c.Key); ok && x.Trusted() {
				continue
			}
			st.Peers = append(st.Peers, PeerStatus{
				Key:      c.Key.String(),
				Role:     roleOf(n, c.Key),
				Path:     PathDirect,
				Endpoint: c.Addr.String(),
				Bucket:   key.BucketID(nd.pub, c.Key),
			})
		}
	}
	nd.markAliases(st.Peers)
	slices.SortStableFunc(st.Peers, func(a, b PeerStatus) int {
		if (a.Hostname == "") != (b.Hostname == "") {
			if a.Hostname != "" {
				return -1
			}
			return 1
		}
		if c := strings.Compare(a.Hostname, b.Hostname); c != 0 {
			return c
		}
		return strings.Compare(a.Key, b.Key)
	})
	return st
}

type peerCounters struct {
	handshake time.Time
	rx, tx    uint64
}

func roleOf(n *config.Network, k key.Public) string {
	if c, ok := n.Node(k); ok {
		return c.Role.String()
	}
	return "dht"
}

// absPath is path made absolute, or "" for "".
func absPath(path string) string {
	if path == "" {
		return ""
	}
	if a, err := filepath.Abs(path); err == nil {
		return a
	}
	return path
}
