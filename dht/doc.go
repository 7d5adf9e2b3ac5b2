// Package dht is wh's Kademlia distributed hash table. Node IDs are the
// nodes' X25519 public keys (256 bits), which cost proof-of-work, and the
// table answers one question: which nodes are closest to a key, and how can
// they be reached.
//
// The package has three layers, each usable on its own:
//
//   - Table: the routing table, a pure data structure. 256 k-buckets (K=20)
//     indexed by the length of the prefix a contact shares with the own
//     key; liveness-based eviction that prefers old nodes (the caller pings
//     the least recently seen entry of a full bucket and the newcomer waits
//     in a small replacement cache); proof-of-work admission; at most a few
//     entries per IP prefix in a bucket and per IP address in the table.
//   - Lookup: the α-parallel iterative lookup, a pure algorithm over a
//     QueryFunc. It knows nothing about packets, so the same code runs over
//     a map of fake nodes, over netsim and over real UDP.
//   - Server: the protocol node. It owns a Table, answers Ping and FindNode,
//     sends through a Transport and is fed every received control message
//     through Handle, so the daemon can run it on its shared UDP port.
//
// # NAT
//
// A node behind NAT cannot receive unsolicited packets, so it is never used
// as an intermediate hop. It keeps itself findable by pinging, every
// KeepaliveInterval, the K direct nodes closest to its own key. Those
// record it as a NAT contact at the address its pings come from and return
// it in Nodes replies with Via set to themselves; a lookup for a NATed key
// therefore ends with the key's reflexive address and the direct nodes
// (Result.Vias) that can relay to it or rendezvous a hole punch.
//
// # Admission
//
// Only three things put a contact in the table: a Ping (which says whether
// the sender is behind NAT), a reply to a query this node sent to that
// address (the sender is reachable), and the replacement cache. A FindNode
// from an unknown key refreshes nothing, because nothing in it tells
// whether the sender can receive unsolicited packets. A node announces
// itself by pinging the K closest nodes its self-lookup found.
package dht
