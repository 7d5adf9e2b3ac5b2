// Package relay carries WireGuard packets between two nodes that have no
// direct path, through a third node that reaches both: the Server is the
// relay's side, the Client the sender's. The receiver needs neither: its
// node opens a Relayed and hands the payload back to its Bind, in the
// receive batch it came in (tunnel.Control).
//
//	A's device ── Bind ── Client.Send ─ Relay{Dst: B} ─▶ Server (R) ─ Relayed{Src: A} ─▶ B's Bind ── B's device
//
// The packets travel unchanged, already encrypted end to end by WireGuard,
// inside the control protocol's authenticated envelope (wire.Relay and
// wire.Relayed; a 1280-MTU tunnel packet makes a 1410-byte frame, which
// a 1500-byte IPv6 path carries whole, so nothing is ever fragmented).
//
// # Choosing relays
//
// The node gives the Client, per peer, a few candidates: nodes that reach
// the peer directly, best the ones the peer keeps alive (the Vias of a DHT
// lookup of the peer), since those know its current address. The Client
// pings every candidate, keeps a smoothed round-trip time, and sends
// through the fastest live one. The relay in use is pinged every
// PingInterval; after DeadAfter missed pings in a row, PingTimeout apart,
// it is dead and the next best takes over, within PingInterval +
// DeadAfter×PingTimeout (4 s by default). Standby candidates are pinged
// every ProbeInterval (15 s), which also keeps our NAT's mapping towards
// them open so that they can reach us as soon as they are needed. A dead
// relay that answers again is live again; a live one at least a fifth
// faster than the current one takes over. A relay that answers pings but
// drops frames is caught by what it delivers: when a WireGuard handshake
// initiation sent through it goes unanswered for DeliverTimeout (6 s;
// the node reports each relayed handshake response with
// Client.Delivered), the peer moves to another candidate, and that relay
// stays behind the others for that peer for a minute.
//
// Each side chooses its own relay for what it sends, so the two
// directions may use different relays. That is what lets the candidates
// be the destination's neighbours: A sends to B through a node that B
// keeps alive, B to A through one that A keeps alive.
//
// The node keeps looking for a direct path in the background and switches
// the peer's tunnel.Path when one forms; WireGuard sees one endpoint per
// peer throughout, so neither a relay change nor the move to a direct
// path costs a handshake or a TCP connection inside the tunnel.
//
// # Serving
//
// Any node serves as a relay for any sender that the codec admits (enough
// workbits, an authenticated envelope). The Server forwards a Relay only
//
//   - if its payload is a WireGuard message (type and size), so that a
//     relay frame or any other control message is never relayed;
//   - to the address at which Locate says the destination proved itself
//     (the DHT table's), never to an address a packet names;
//   - as a Relayed exactly as long as the Relay: no request makes a relay
//     send more bytes than it received, and a relay sends nothing back to
//     the sender;
//   - within the sender's token buckets (by default 2000 packets/s
//     and 2 MiB/s, bursts of 250 ms) and the relay's total ones
//     (10000 packets/s and 10 MiB/s).
//
// Drops are counted by reason in ServerStats.
//
// # Trust
//
// A node takes a Relayed from any relay, not only those it chose: each
// peer chooses its own relay towards us, and the device authenticates
// every payload. A lying relay can replay, drop, or name the wrong source.
// WireGuard rejects replays (a used counter), dropping is always possible,
// and a packet passed off as another peer's only sends that peer's replies
// astray until its next packet: no worse than dropping. The node hands
// the device only WireGuard messages from trusted peers, with the peer's
// own endpoint (tunnel.Control), so a relayed packet never makes WireGuard
// roam.
//
// A relay sees who talks to whom, when and how much, as any router on the
// path does; it cannot read or alter the traffic.
//
// # Wiring it into a node
//
//	srv, _ := relay.NewServer(relay.ServerConfig{
//		Send: nd.Send,
//		Locate: func(k key.Public) (netip.AddrPort, bool) {
//			c, ok := nd.dht.Table().Get(k)
//			return c.Addr, ok
//		},
//	})
//	cl, _ := relay.NewClient(relay.ClientConfig{
//		Self: nd.pub,
//		Send: nd.Send,
//		Ping: func(ctx context.Context, k key.Public, a netip.AddrPort) (time.Duration, error) {
//			start := time.Now()
//			_, err := nd.dht.Ping(ctx, dht.Contact{Key: k, Addr: a})
//			return time.Since(start), err
//		},
//	})
//	go cl.Run(ctx)
//	// In the control callback: a Relay goes to srv.Route and out again;
//	// a Relayed from a trusted peer back to the device (tunnel.Control).
//	// For a peer without a direct path:
//	cl.SetCandidates(peer, lookup.Vias)
//	nd.bind.SetPath(peer, tunnel.Path{Relay: func(bufs [][]byte) error { return cl.Send(peer, bufs) }})
package relay
