package resolver

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/miekg/dns"
)

// Host is one named node of a network.
type Host struct {
	// Name is a single DNS label: 1 to 63 of [A-Za-z0-9_-]. Names are
	// case-insensitive and stored lowercase. The underscore is allowed
	// because WireHub configs use names like node_a.
	Name string
	// IPv4 is the node's overlay IPv4 address; the zero Addr means none.
	IPv4 netip.Addr
	// IPv6 is the node's ORCHID IPv6 address; the zero Addr means none.
	IPv6 netip.Addr
}

// Zone is what the resolver answers for one network.
type Zone struct {
	// Domain is the network's name (the config's `name`), one or more
	// labels. Empty means the hosts are only known by their bare names.
	Domain string
	// Hosts lists every node with a hostname, the local node included: the
	// resolver has no other notion of "self".
	Hosts []Host
}

// compiledZone is a Zone indexed for lookups. It is immutable once built,
// so the handler can swap it atomically and read it without locks.
type compiledZone struct {
	domain string   // lowercase FQDN ("tutorial."), "" if the zone has none
	soa    *dns.SOA // SOA of domain, nil if domain == ""
	// names maps a lowercase FQDN to its host: both "node_a.tutorial." and
	// the bare "node_a.".
	names map[string]*Host
	// ptr maps a lowercase reverse name (in-addr.arpa or ip6.arpa) to the
	// PTR target, the host's FQDN.
	ptr map[string]string
}

// normalize validates z and returns its lowercase domain (no trailing dot)
// and the hosts the resolver can serve. Hosts with an invalid name, or a
// name or address already taken by an earlier host, are left out and
// reported in skipped; the first one wins, as in a hosts file. An invalid
// domain is reported and dropped, so bare names still work.
func (z Zone) normalize() (domain string, hosts []Host, skipped []error) {
	domain = strings.ToLower(strings.TrimSuffix(z.Domain, "."))
	if domain != "" {
		if err := checkDomain(domain); err != nil {
			skipped = append(skipped, err)
			domain = ""
		}
	}
	seen := make(map[string]bool, len(z.Hosts))
	seenAddr := make(map[netip.Addr]bool, 2*len(z.Hosts))
	for _, h := range z.Hosts {
		h.Name = strings.ToLower(h.Name)
		h.IPv4 = h.IPv4.Unmap()
		if err := checkLabel(h.Name); err != nil {
			skipped = append(skipped, fmt.Errorf("host %q: %w", h.Name, err))
			continue
		}
		if h.IPv4.IsValid() && !h.IPv4.Is4() {
			skipped = append(skipped, fmt.Errorf("host %q: IPv4 %v is not an IPv4 address", h.Name, h.IPv4))
			continue
		}
		if h.IPv6.IsValid() && (!h.IPv6.Is6() || h.IPv6.Is4In6()) {
			skipped = append(skipped, fmt.Errorf("host %q: IPv6 %v is not an IPv6 address", h.Name, h.IPv6))
			continue
		}
		if seen[h.Name] || seenAddr[h.IPv4] || seenAddr[h.IPv6] {
			skipped = append(skipped, fmt.Errorf("host %q: duplicate name or address", h.Name))
			continue
		}
		seen[h.Name] = true
		for _, a := range []netip.Addr{h.IPv4, h.IPv6} {
			if a.IsValid() {
				seenAddr[a] = true
			}
		}
		hosts = append(hosts, h)
	}
	return domain, hosts, skipped
}

// fqdn returns the fully qualified name of host name in domain, with the
// trailing dot.
func fqdn(name, domain string) string {
	if domain == "" {
		return name + "."
	}
	return name + "." + domain + "."
}

// compile indexes the normalized zone. serial is the SOA serial.
func compile(domain string, hosts []Host, ttl uint32, serial uint32) *compiledZone {
	cz := &compiledZone{
		names: make(map[string]*Host, 2*len(hosts)),
		ptr:   make(map[string]string, 2*len(hosts)),
	}
	if domain != "" {
		cz.domain = domain + "."
		cz.soa = &dns.SOA{
			Hdr:     dns.RR_Header{Name: cz.domain, Rrtype: dns.TypeSOA, Class: dns.ClassINET, Ttl: ttl},
			Ns:      "ns." + cz.domain,
			Mbox:    "hostmaster." + cz.domain,
			Serial:  serial,
			Refresh: 3600,
			Retry:   600,
			Expire:  86400,
			Minttl:  ttl, // the negative-caching TTL (RFC 2308)
		}
	}
	for i := range hosts {
		h := &hosts[i]
		full := fqdn(h.Name, domain)
		cz.names[full] = h
		cz.names[h.Name+"."] = h
		for _, a := range []netip.Addr{h.IPv4, h.IPv6} {
			if a.IsValid() {
				rev, _ := dns.ReverseAddr(a.String()) // cannot fail on a valid address
				cz.ptr[rev] = full
			}
		}
	}
	return cz
}

// inDomain reports whether the lowercase FQDN name is the zone's domain or
// below it.
func (cz *compiledZone) inDomain(name string) bool {
	return cz.domain != "" && (name == cz.domain || strings.HasSuffix(name, "."+cz.domain))
}

// checkLabel reports whether s is a label the resolver serves.
func checkLabel(s string) error {
	if len(s) == 0 || len(s) > 63 {
		return fmt.Errorf("%w: %d bytes, want 1 to 63", ErrBadName, len(s))
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
			return fmt.Errorf("%w: %q has character %q", ErrBadName, s, c)
		}
	}
	return nil
}

// checkDomain reports whether s (no trailing dot) is a domain of valid
// labels, short enough to hold a host label in front.
func checkDomain(s string) error {
	if len(s) > 253-64 {
		return fmt.Errorf("domain %q: %w: too long", s, ErrBadName)
	}
	for _, l := range strings.Split(s, ".") {
		if err := checkLabel(l); err != nil {
			return fmt.Errorf("domain %q: %w", s, err)
		}
	}
	return nil
}
