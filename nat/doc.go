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
//	A ── Punch{T, offer A→T} ──────────────────▶ R     A probes T's candidates
//	                                           R ── PunchFrom{A, src, offer A→T} ──▶ T
//	                                           T probes A's candidates
//	A ◀── PunchFrom{T, src, offer T→A} ── R ◀── Punch{A, offer T→A (Reply)} ── T
//
// The offer (candidates, NAT mapping, R's key) is sealed end to end by the
// offering peer's key for the other: R carries it and cannot forge it,
// and adds only the address it saw the Punch come from, which the target
// takes because the offer names R. Both sides ping each other's
// candidates every Interval (150 ms) for Timeout (3 s), so each NAT sees
// outbound packets to the other before the other's arrive. The first
// ping answered from the address it went to, by the peer's key, makes the
// path direct. A candidate is a reflexive, port-mapped or LAN address: two
// peers behind one NAT reach each other at their LAN addresses without
// hairpinning. A message from the peer at an unexpected address (a
// symmetric NAT's fresh port) makes that address a candidate too.
//
// Probes go to addresses that have not answered yet, so a session pays
// for them: a PunchFrom credits it with its own size, and each probe (a
// 71-byte ping) takes from the credit. An offer is padded (to about 1 KB)
// so that each of the initiator's four Punches pays for about 15 probes;
// an answer to R is never larger than the PunchFrom it answers.
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
// A target probes only for peers it trusts (Config.Accept), and only the
// candidates of an offer it opened from that peer's key, for this punch
// and this rendezvous; the codec's replay check lets each offer in once.
// A lying rendezvous can only drop, delay or misreport the one address it
// saw; a node that is not the rendezvous the offer names can do nothing.
// What a PunchFrom makes the target send to unverified addresses is no
// larger than the PunchFrom itself, one session per peer at a time, with
// a cooldown between sessions, and maxResponders such sessions at once.
// An answered probe proves the peer's key at that address; whether the
// path moves there is the node's decision (it does not leave a path that
// WireGuard traffic shows to be working while the peer answers there).
package nat
