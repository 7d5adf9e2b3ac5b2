// Package netsim is an in-memory internet for tests: hosts with IPv4 and IPv6
// addresses, UDP conns that satisfy net.PacketConn, NAT routers of the kinds
// the e2e lab builds with iptables, and links with latency, jitter and loss
// drawn from a seed.
//
// A typical topology, as the hole-punching and DHT tests build it:
//
//	                    +-------------- internet (core) ----------------+
//	                    |                    |                          |
//	              203.0.113.10        198.51.100.1 (WAN)         198.51.100.2 (WAN)
//	              host A (public,     NAT "home", Restricted     NAT "cgn", Restricted
//	              also 2001:db8::a)   LAN 192.168.1.0/24         LAN 100.64.0.0/10
//	                                     |            |                 |
//	                               192.168.1.10  192.168.1.11    100.64.0.2 (WAN)
//	                               host B        host C          NAT "inner", Symmetric
//	                               (samelan: B and C reach       LAN 192.168.1.0/24
//	                               each other directly)                 |
//	                                                              192.168.1.10
//	                                                              host D (cgnat)
//
//	n := netsim.New(netsim.Options{Seed: 1, Latency: 20 * time.Millisecond})
//	a := n.AddHost(netip.MustParseAddr("203.0.113.10"), netip.MustParseAddr("2001:db8::a"))
//	home := n.AddNAT(netsim.Restricted, netip.MustParseAddr("198.51.100.1"), netip.MustParsePrefix("192.168.1.0/24"))
//	b := home.AddHost(netip.MustParseAddr("192.168.1.10"))
//	cgn := n.AddNAT(netsim.Restricted, netip.MustParseAddr("198.51.100.2"), netip.MustParsePrefix("100.64.0.0/10"))
//	inner := cgn.AddNAT(netsim.Symmetric, netip.MustParseAddr("100.64.0.2"), netip.MustParsePrefix("192.168.1.0/24"))
//	d := inner.AddHost(netip.MustParseAddr("192.168.1.10"))
//	conn, err := d.ListenUDP(0)
//
// # Routing
//
// A packet to an IPv4 address goes to the node owning that address on the
// sender's network (its LAN, or the internet for a public host). If there is
// none, the network's router carries it out (translating its source) to the
// network above, and so on up to the internet. A packet to a router's WAN
// address enters the router, which looks up its mappings and carries the
// packet down into its LAN. LAN addresses are reachable only from their own
// LAN (and the LANs below it), and two LANs may use the same prefix. A packet
// from a LAN to its own router's WAN address is hairpinned if the router
// allows it (SetHairpin; off by default) and filtered otherwise. A router of
// kind None translates nothing: it routes its LAN prefix, which must then be
// unique, on the network above.
//
// IPv6 is not translated: every IPv6 address is reachable from every host
// that has an IPv6 address itself, wherever the two sit.
//
// NAT state is read and updated when a packet is sent; the link delays are
// applied on the way to the receiver.
//
// # NAT kinds
//
// The kinds mirror the e2e lab (NOTES-wireguard-go.md §7), with RFC 4787's
// mapping and filtering behaviour:
//
//	kind        mapping                        filtering (inbound is let in from)
//	None        no translation                 everyone
//	FullCone    endpoint-independent           everyone; with no mapping, the first
//	                                           node on the LAN gets it (the lab's DNAT)
//	Restricted  endpoint-independent           the ip:port pairs the mapping sent to
//	            (Linux MASQUERADE)             in the last mapping timeout
//	Symmetric   endpoint-dependent: a new      the one ip:port the mapping was made for
//	            external port per destination
//	            (MASQUERADE --random)
//
// Endpoint-independent mappings keep the internal port when it is free; a
// second internal endpoint asking for a taken port gets another one. A mapping
// lives for the mapping timeout after its last outbound packet (inbound
// packets do not refresh it). Restricted permissions expire the same way,
// one per remote ip:port. Router.Flush drops every mapping, like a reboot or
// `conntrack -F`.
//
// # Links
//
// Every packet that reaches the internet crosses its core, which has
// Options.Latency, Jitter and Loss. Host.SetLink gives one host an access link
// of its own, crossed by every packet it sends or receives; hosts have none by
// default, so traffic inside a LAN is instant unless SetLink says otherwise.
// A packet's one-way delay is the sum of the latencies of the links it
// crosses, each plus a uniform jitter in [0, Jitter); each link drops it with
// its own probability.
//
// Random draws come from Options.Seed, the sender's address and port, and the
// index of the packet among those its conn has sent, so a run that sends the
// same packets from each conn loses and delays the same ones, however the
// goroutines interleave.
//
// # Conns
//
// A Conn behaves like a *net.UDPConn bound to all of its host's addresses:
// writes never block, each conn has a receive queue of Options.QueueLen
// packets and drops on overflow (counted in Stats.Overflow), read deadlines
// and Close unblock readers, and errors are *net.OpError values wrapping
// os.ErrDeadlineExceeded, net.ErrClosed or syscall errnos (EADDRINUSE from
// ListenUDP on a port in use).
//
// A Bind is a wireguard-go conn.Bind on a Host, one Conn for both
// families, so that a whole WireGuard node (tunnel.BindOptions.UDP,
// node.Options.UDP) runs on the simulated internet. Its endpoints are
// *conn.StdNetEndpoint values; a receive call returns the datagrams already
// queued together, up to BindBatchSize, as recvmmsg would.
//
// # Fake time
//
// netsim starts no goroutines of its own: delays and deadlines are
// time.AfterFunc timers created by the goroutines that send and set
// deadlines, and readers block on channels. Under testing/synctest, build the
// Internet inside the bubble and use it only there; time then advances
// whenever every goroutine waits on a conn, and a 30 s mapping timeout takes
// no real time.
package netsim
