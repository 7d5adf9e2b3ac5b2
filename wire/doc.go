// Package wire is wh's control protocol: the envelope that authenticates and
// encrypts every control packet, and the messages inside it: ping/pong,
// find-node/nodes (the DHT), punch/punch-from (hole punching, punch.go),
// relay/relayed (WireGuard packets through a relay, relay.go), auth/authed
// and the inner claim (invitations: alias slots claimed, auth.go).
//
// # Envelope
//
//	offset  size  field
//	0       4     magic    ff 77 68 63 ("\xffwhc")
//	4       1     version  02, or with flags: 22 (FlagAES), 82/a2/e2 (relay frames)
//	5       32    sender   X25519 public key
//	37      4     prefix   random, drawn by the sender when it starts (per Codec)
//	41      8     counter  big-endian; the sender's Unix time in ns, strictly increasing
//	49      n     body     ChaCha20-Poly1305 ciphertext of the message (type byte first)
//	49+n    16    tag      Poly1305 tag over bytes [0, 49) as associated data and the body
//
// The overhead is 65 bytes (HeaderLen 49 + TagLen 16). Version 1 had no
// prefix (a 45-byte header) and is refused. Control messages
// other than relayed traffic fit in MaxPacketSize (1280) bytes of UDP
// payload; a Nodes message enforces it for itself.
//
// The version byte's low five bits are the version; its high three are
// flags. Relay and Relayed travel in a frame form of the envelope
// (FlagFrame): their payload, a WireGuard packet already encrypted end to
// end, is authenticated but not encrypted again; their type and key are
// encrypted, in AES-256-GCM when both sides have AES in hardware (FlagAES,
// which every envelope carries, FlagAESFrame). relay.go draws it.
//
// The first byte, 0xff, keeps every control packet apart from WireGuard's
// messages, whose first four bytes are a little-endian type from 1 to 4.
// IsControl checks the magic only, for the demultiplexer of the shared port.
//
// # Key schedule
//
//	secret    = X25519(own private key, peer public key)     (fails for low-order keys)
//	lo, hi    = the two public keys, bytewise lower first
//	okm       = HKDF-SHA256(IKM = secret, salt = empty, info = "wh control v1" ‖ lo ‖ hi, L = 128)
//	key lo→hi = okm[0:32]    (ChaCha20-Poly1305)
//	key hi→lo = okm[32:64]
//	frame key lo→hi = okm[64:96]  (AES-256-GCM, for relay frames only)
//	frame key hi→lo = okm[96:128]
//	nonce     = prefix ‖ counter (the header's last 12 bytes, NonceLen)
//
// Each direction has its own key, so the two sides never use a nonce under
// the same key even if their counters meet. A Codec caches the derived keys
// of its pinned peers and of up to DefaultCacheSize others: a derivation
// costs 100-200 µs of CPU, a Seal and an Open of a small body together
// about 1.5 µs.
//
// Why a prefix and a counter, and not XChaCha20-Poly1305 with a random
// nonce: the counter is needed anyway as the timestamp for freshness and as
// the replay window's sequence number, so it doubles as most of the nonce,
// where a random nonce would add 24 bytes to every packet. Within a process
// the counter never repeats: it is the clock made strictly increasing, so
// after a backward step it runs ahead of the clock until the clock catches
// up. Across processes with one key (a restart after the wall clock stepped
// back, or two copies of a key) the counters can meet; the random 32-bit
// prefix that each Codec draws keeps the nonces apart: a nonce repeats
// under one key only if two processes draw the same prefix (2^-32 for a
// pair) and also use the same counter to the nanosecond with the same peer.
// The replay window looks at the counter alone, so a restarted sender's
// packets with counters its peer has seen are refused as replays until its
// clock passes them (or the peer forgets the window).
//
// # Receiving
//
// Open checks, cheapest first, and stops at the first failure: the length,
// the magic and the version; the sender's workbits (key.Workbits, a BLAKE2b
// hash), so that keys without proof of work cost no X25519; for a sender
// without cached keys, the derivation limits and the key agreement; the
// AEAD; freshness; the sender's replay window; and the body. Every failure
// is counted in Stats by reason, never panics, and creates no state: a
// sender is cached only once a packet from it has authenticated, and all
// per-peer state lives in one bounded cache.
//
// # Peer cache and derivation limits
//
// Keys with the network's workbits are cheap to make (4096 of workbit 8
// take seconds), so the cache assumes that a sender may own thousands:
//   - Pinned keys (Pin: a node's trusted peers, boot nodes and the relays
//     it uses) are never evicted and do not count against the cache size,
//     so they are heard at once however long they were quiet and whatever
//     else arrives.
//   - Among the others, a new sender always gets in. It evicts a peer
//     unused for 2×MaxSkew if there is one (forgetting its window is then
//     safe: its counters are all stale), or else one drawn at random, so
//     that keys which keep sending cannot crowd out those which send
//     rarely. A recent peer evicted loses its replay window: its packets
//     of the last MaxSkew could be replayed to us once.
//   - Derivations for senders without cached keys are rate-limited
//     (WithDeriveLimits, DefaultDeriveLimits for a node), per source
//     prefix (/24 of IPv4, /48 of IPv6, in 4096 buckets by a keyed hash)
//     and in total, with small bursts: a flood of fresh keys costs at most
//     the total's share of a core (about 5%) and holds the receive
//     goroutine, which WireGuard's packets share, for at most a burst of
//     derivations. Packets beyond the limits are dropped before the X25519
//     and counted as Busy.
//
// Freshness: a packet is accepted only if its counter, read as Unix ns, is
// within MaxSkew (5 minutes) of the receiver's clock. Five minutes is
// Kerberos's long-proven default: NTP-synchronised hosts are within
// milliseconds, and a free-running quartz clock (20-50 ppm) takes months to
// drift that far. A larger bound would lengthen the time a replay window
// must be kept (below) and so shrink the cache's turnover. A host whose
// clock is wrong by more, such as a board without an RTC before NTP, can
// neither send nor receive; its peers count its packets as Stale or Future.
//
// Replay: each sender has a window of its 32 largest accepted counters;
// a counter is new if it is larger than the smallest of them and not among
// them. So packets from one sender may be reordered by up to 31 others.
// WireGuard's bitmap assumes consecutive counters; ours are nanoseconds.
// The window's state is bounded by the peer cache (above). (If the
// receiver's own clock steps back, replays of evicted peers' packets
// within the step can pass.)
//
// # Threat model
//
// An attacker on the path can read, drop, delay, reorder, replay and
// forge packets, and can own any number of keys with enough workbits. It
// cannot
//   - read a body: it sees only its length, and the header in clear (the
//     sender key and the counter, i.e. the sender's clock); of a relay
//     frame it also sees the payload, which WireGuard encrypted, but not
//     whom it is for or from;
//   - forge or alter a packet from a key it does not own, or make a packet
//     for one receiver open at another (the key is pairwise);
//   - reflect a packet back at its sender, as each direction has its own key;
//   - replay a packet that was accepted, or any packet older than MaxSkew;
//   - make a receiver do an X25519 for a key without the network's workbits;
//   - make a receiver hold unbounded state: the peer cache is bounded and
//     keys that never authenticated are not cached;
//   - lock pinned peers out, or any new sender for good: eviction is at
//     random among the unpinned.
//
// It can still
//   - see who talks to whom and when (sender keys are in clear);
//   - delay a packet by up to MaxSkew, or drop it;
//   - rewrite the UDP source address, so the address a message came from
//     proves nothing until the peer answers there (Pong.Observed is what
//     the responder saw, not a proof);
//   - make a receiver spend one X25519 per packet with worked keys it
//     owns, up to the derivation limits; and, spoofing many source
//     prefixes, use up the total limit, so that honest new (unpinned)
//     senders are refused as Busy while it lasts;
//   - with many worked keys, evict unpinned peers at the rate of the
//     limits, and then replay their packets of the last MaxSkew;
//   - with a stolen private key, read every recorded packet to or from it:
//     keys are static, there is no forward secrecy (WireGuard's handshake
//     has it; control messages carry addresses, not tunnel data).
package wire

// IsControl reports whether pkt begins with Magic. It is the cheap test the
// UDP demultiplexer uses to keep control packets from WireGuard.
func IsControl(pkt []byte) bool {
	return len(pkt) >= len(Magic) && string(pkt[:len(Magic)]) == Magic
}
