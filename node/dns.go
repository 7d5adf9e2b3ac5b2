package node

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/whnet/wh/config"
	"github.com/whnet/wh/orchid"
	"github.com/whnet/wh/resolver"
)

// dnsPort is where the resolver listens on the overlay addresses and on
// its loopback address.
const dnsPort = 53

// zone returns the names of network n: every trusted node with a hostname,
// this one included.
func zone(n *config.Network) resolver.Zone {
	z := resolver.Zone{Domain: n.Name}
	for _, c := range n.Trusted() {
		if c.Hostname == "" || c.Role == config.Alias {
			continue
		}
		z.Hosts = append(z.Hosts, resolver.Host{Name: c.Hostname, IPv4: c.IP, IPv6: orchid.Addr(c.Key, n.Namespace)})
	}
	return z
}

// startDNS serves the network's names on the node's overlay addresses
// (for peers) and on a loopback address (for this machine), and hooks them
// into the system as opt.DNS says; with opt.NoDNS it does nothing. A failure is logged, not fatal: the
// network works without names.
func (nd *Node) startDNS(n *config.Network) {
	if nd.opt.NoDNS {
		return
	}
	mode := nd.opt.DNS
	if nd.opt.TUN != nil && mode == resolver.ModeAuto {
		// A userspace node (tests, 0nc) leaves the system alone unless
		// asked.
		mode = resolver.ModeOff
	}
	h, err := resolver.NewHandler(resolver.Options{Logger: nd.log.With("sub", "dns")})
	if err != nil {
		nd.log.Warn("dns: no resolver", "err", err)
		return
	}
	z := zone(n)
	h.SetZone(z)
	var addrs []netip.AddrPort
	if nd.opt.TUN == nil {
		for _, a := range nd.addrs {
			addrs = append(addrs, netip.AddrPortFrom(a.Addr(), dnsPort))
		}
	}
	lo := netip.AddrPortFrom(resolver.LoopbackAddr(nd.opt.Interface), dnsPort)
	addrs = append(addrs, lo)
	srv, err := resolver.Listen(h, addrs)
	if err != nil {
		nd.log.Warn("dns: cannot listen", "addrs", addrs, "err", err)
		return
	}
	nd.dnsHandler, nd.dnsServer = h, srv
	integ := resolver.NewIntegrator(resolver.IntegratorOptions{Mode: mode, Logger: nd.log.With("sub", "dns")})
	if err := integ.Apply(nd.opt.Interface, z, nd.systemServer()); err != nil {
		nd.log.Warn("dns: system integration", "mode", integ.Mode().String(), "err", err)
		return
	}
	nd.dnsInteg = integ
	nd.log.Info("dns", "mode", integ.Mode().String(), "listen", addrs)
}

// systemServer is the resolver address the system is pointed at: the
// overlay IPv4 address, since systemd-resolved sends a link's queries out
// of that link (a loopback server would never be reached).
func (nd *Node) systemServer() netip.AddrPort {
	if nd.opt.TUN == nil && len(nd.addrs) > 0 {
		return netip.AddrPortFrom(nd.addrs[0].Addr(), dnsPort)
	}
	return netip.AddrPortFrom(resolver.LoopbackAddr(nd.opt.Interface), dnsPort)
}

// updateDNS publishes the names of a reloaded network at once.
func (nd *Node) updateDNS(n *config.Network) {
	if nd.dnsHandler == nil {
		return
	}
	z := zone(n)
	nd.dnsHandler.SetZone(z)
	if nd.dnsInteg != nil {
		if err := nd.dnsInteg.Apply(nd.opt.Interface, z, nd.systemServer()); err != nil {
			nd.log.Warn("dns: system integration", "err", err)
		}
	}
}

// stopDNS undoes the system integration and stops the resolver.
func (nd *Node) stopDNS() {
	if nd.dnsInteg != nil {
		if err := nd.dnsInteg.Undo(); err != nil {
			nd.log.Warn("dns: undo", "err", err)
		}
	}
	if nd.dnsServer != nil {
		nd.dnsServer.Close()
	}
}

// dnsMode says which name-resolution mode is active.
func (nd *Node) dnsMode() string {
	if nd.dnsInteg == nil {
		if nd.dnsServer != nil {
			return "off"
		}
		return "none"
	}
	return nd.dnsInteg.Mode().String()
}

// Resolve answers `wh resolve`: the addresses of a hostname of the network
// (bare or under the network's name), or the name of an overlay address.
func (nd *Node) Resolve(name string) (ResolveResult, error) {
	nd.mu.Lock()
	n := nd.net
	nd.mu.Unlock()
	if ip, err := netip.ParseAddr(name); err == nil {
		for _, c := range n.Trusted() {
			if c.Hostname != "" && (c.IP == ip || orchid.Addr(c.Key, n.Namespace) == ip) {
				return ResolveResult{Name: c.Hostname, Network: n.Name, Key: c.Key.String()}, nil
			}
		}
		return ResolveResult{}, fmt.Errorf("%s is not an address of network %q", name, n.Name)
	}
	host := strings.TrimSuffix(name, ".")
	if n.Name != "" {
		host = strings.TrimSuffix(host, "."+n.Name)
	}
	c, ok := n.Host(host)
	if !ok || !c.Trusted() {
		return ResolveResult{}, fmt.Errorf("%s is not a host of network %q", name, n.Name)
	}
	r := ResolveResult{Name: c.Hostname, Network: n.Name, Key: c.Key.String(), IPv6: orchid.Addr(c.Key, n.Namespace).String()}
	if c.IP.IsValid() {
		r.IP = c.IP.String()
	}
	return r, nil
}

// ResolveResult is the answer to `wh resolve`.
type ResolveResult struct {
	Name    string `json:"name"`
	Network string `json:"network"`
	Key     string `json:"key"`
	IP      string `json:"ip,omitempty"`
	IPv6    string `json:"ipv6,omitempty"`
}
