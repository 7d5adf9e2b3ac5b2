// Package nat gets wh's peers through NATs: it learns the node's reflexive
// addresses and its NAT's mapping behaviour (Detector), and punches holes
// between two NATed peers with the help of a rendezvous node (Puncher).
// Port mapping over UPnP IGD, NAT-PMP and PCP is in nat/portmap.
//
// # Detection
//
// Every pong carries the address its sender saw the ping come from. The
// node feeds a Detector the pongs that answer its own pings, with the
// address it pinged. One peer decides nothing, since any peer can lie:
// the reflexive IP is the one the most peers (by IP) report, at least
// two; two peers that see the node at one of its own addresses make it
// public, two that see the same reflexive address show an
// endpoint-independent mapping, and two that see other ports than the
// most seen one (or three that each see another) an endpoint-dependent
// (symmetric) one. Detection is passive: no extra packets, and it
// follows the node as its network changes.
//
// # Punching
//
// A lookup of a NATed peer T returns its reflexive address as seen by the
// direct nodes that keep it alive (its Vias). Initiator A picks one, R:
//
//	A ── Punch{T, A's candidates} ─────────────▶ R     A probes T's candidates
//	                                           R ── PunchFrom{A, src + candidates} ──▶ T
//	                                           T probes A's candidates
//	A ◀── PunchFrom{T, Reply, T's candidates} ── R ◀── Punch{A, Reply, …} ── T
//
// Both sides ping each other's candidates every Interval (150 ms) for
// Timeout (3 s), so each NAT sees outbound packets to the other before the
// other's arrive. The first answered ping makes the path direct. A
// candidate is a reflexive, port-mapped or LAN address: two peers behind
// one NAT reach each other at their LAN addresses without hairpinning. A
// ping from the peer at an unexpected address (a symmetric NAT's fresh
// port) becomes a candidate too.
//
// What works, by NAT mapping (and filtering) of the two sides: any pair
// of endpoint-independent NATs, whatever their filtering, including NATs
// behind NATs (cgnat); an endpoint-dependent NAT towards a public node or
// a NAT that does not filter (full cone). Endpoint-dependent towards
// anything that filters fails, and the node relays: the birthday-paradox
// trick would need the hard side to send from many ports, and wh sends
// everything from its one port, which WireGuard shares.
//
// # Threat model
//
// A rendezvous forwards a Punch only to a verified address of its target
// (Config.Locate: a node that keeps it alive) or to the address a Punch
// of the target came from within the last seconds, adds one candidate at
// most (19 bytes), and rate-limits each source key and everyone together.
// It cannot be made to send to an address of an attacker's choosing or to
// send more than it received.
//
// A target probes only for peers it trusts (Config.Accept), and its
// probes are pings sealed to the trusted peer's key. A lying rendezvous
// can name a trusted peer and arbitrary candidates; it then makes the
// target send at most maxSessionCandidates × Timeout/Interval small pings
// per trusted peer per session, one session per peer at a time, with a
// cooldown between sessions, and maxResponders such sessions at once.
package nat
