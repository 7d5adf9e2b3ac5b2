// Package resolver is the DNS server of one wh network, and its wiring into
// the local system's name resolution.
//
// # What it answers
//
// For a zone with domain NETWORK (the config's name) and hosts H:
//
//   - H.NETWORK and the bare H: A (overlay IPv4) and AAAA (ORCHID IPv6),
//     both for ANY, NODATA for other types. Authoritative.
//   - the reverse names of those addresses (in-addr.arpa, ip6.arpa): PTR
//     to H.NETWORK.
//   - other names under NETWORK: NXDOMAIN with the zone's SOA in the
//     authority section; NETWORK itself has a SOA and nothing else.
//   - everything else, including bare names that are not hosts, is
//     forwarded to the upstream resolvers, or REFUSED when forwarding is
//     off. A bare name usually comes from the search-domain expansion of
//     a name that belongs to someone else, so it must not get NXDOMAIN.
//
// Names are case-insensitive; answers spell the owner as asked. TTLs are
// short (Options.TTL, 60s by default) because reload can change names.
// Forwarded queries keep their transport (UDP stays UDP, so a truncated
// answer makes the client retry over TCP), get a fresh ID, and are bounded
// in time and in number. UDP answers are truncated to the client's EDNS0
// size, 512 without EDNS0.
//
// # Where it listens
//
// The node listens on its overlay addresses, so peers can ask it, and on
// LoopbackAddr(iface) port 53 for the local system. Each listener answers
// only loopback and ORCHID sources and those inside a prefix of the
// interface holding its address (the overlay subnet): a LAN neighbour
// routing to an overlay address, which Linux's weak-host model lets in,
// gets nothing. Listen opens UDP and
// TCP on each address with a private dns.ServeMux, returns only once every
// listener runs (NotifyStartedFunc), so Close never races miekg/dns's
// start-up.
//
// # System integration
//
// An Integrator, in the Mode chosen by Detect or by the user:
//
//   - ModeResolved: systemd-resolved gets the resolver as the link's DNS
//     server with routing domain ~NETWORK and default-route off (resolvectl
//     dns/domain/default-route), reverted with resolvectl revert.
//   - ModeHosts: a block of the hosts file between "# BEGIN wh IFACE" and
//     "# END wh IFACE" lists the interface's names; it is replaced on
//     reload and removed on down without touching any other byte.
//   - ModeOff: nothing.
//
// /etc/resolv.conf is only ever read.
package resolver
