// Package tunnel is the embedded wireguard-go device of a wh node: the TUN (kernel or
// netstack), the device, its UAPI socket, and the conn.Bind that shares the node's one UDP
// port between WireGuard and wh's control protocol.
//
// # One port, two protocols
//
// Bind wraps conn.StdNetBind, so recvmmsg/sendmmsg batching and UDP GSO/GRO survive (or
// the sockets in BindOptions.UDP: an in-memory netsim.Bind in tests). Every received
// datagram is classified:
//
//	WireGuard  first 4 bytes a little-endian type 1..4, with the size that type requires
//	           (initiation 148, response 92, cookie reply 64, data ≥ 32) → the device
//	control    BindOptions.IsControl(pkt) → handed, in place, to BindOptions.OnControl with
//	           the batch's other control messages, and its size set to 0 so the device
//	           skips it; unless OnControl found a relayed WireGuard packet inside, which
//	           then takes the message's place in the batch
//	other      dropped and counted
//
// # Peers are endpoints, paths are the node's business
//
// wireguard-go sees one stable conn.Endpoint per trusted peer. Its address, as `wg show`
// prints it, is a fixed synthetic one taken from IPv6's discard-only prefix 100::/64
// (RFC 6666), so it can never name a real host:
//
//	[100::k0k1:k2k3:k4k5:k6k7]:k8k9     k = the peer's public key bytes
//
// Bind.Send looks up the peer's current Path and sends on it: directly to an ip:port through
// the StdNetBind, or through a relay function set by the node. Switching paths never touches
// WireGuard, so sessions and the TCP connections inside them survive. Datagrams that arrive
// from an address the node has Learned for a peer carry that peer's endpoint, which turns
// wireguard-go's roaming (it adopts the source of every authenticated packet) into a no-op.
// Packets relayed to us reach the device in the receive batch they arrived in, with the
// peer's endpoint: no queue, no copy to another buffer, and wireguard-go's batching (its
// decryption workers, GRO towards the TUN) works for them as for direct packets.
//
// # MTU
//
// The default MTU leaves room for relaying a full-size packet over a 1500-byte path:
//
//	  1500  path MTU
//	−   40  IPv6 header (IPv4 needs 20)
//	−    8  UDP header
//	−   32  WireGuard data overhead: type 4 + receiver 4 + counter 8 + Poly1305 tag 16
//	−  128  relay frame budget: the wire envelope is ≈ 94 bytes (magic 4 + version 1 +
//	        sender key 32 + counter 8 + tag 16 + type 1 + destination key 32)
//	= 1292  ≥ 1280 = DefaultMTU, which is also IPv6's minimum link MTU (RFC 8200)
//
// # Netstack
//
// Netstack is a TUN without a kernel: gVisor's TCP/IP stack in the process, holding the
// node's overlay addresses, for userspace nodes (no root, no interface) and for tests. Its
// Read hands the device up to 64 packets at a time. Programs use its Dial and Listen methods;
// SetForwarder takes TCP connections and UDP flows to ports no listener holds (the node
// delivers them to localhost), with at most 64 TCP handshakes under way.
//
// # Memory
//
// wireguard-go keeps its 64 KiB message buffers in unbounded sync.Pools; after a burst of
// traffic a node holds 200–350 MB until two garbage collections have run, which an idle Go
// process only does every two minutes each. Device therefore watches its traffic and, once
// it has been quiet for 30 s after a busy second, returns the memory with
// debug.FreeOSMemory twice (the first empties the pools into their victim caches, the second
// frees them).
package tunnel
