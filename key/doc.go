// Package key holds wh's identities: X25519 key pairs, their two text forms,
// the proof of work ("workbits") a public key must carry to be admitted, and
// the search that makes such keys.
//
// # Keys and text forms
//
// A node's X25519 key (RFC 7748) is both its WireGuard key and its DHT node
// ID. Public and Private are the 32 raw bytes. A private key is kept
// clamped (bits 0–2 and 255 clear, bit 254 set), which changes nothing
// X25519 computes, since X25519 clamps every scalar.
//
// Private keys are written as standard base64 with padding (44 characters,
// the form `wg genkey` prints); public keys as URL-safe base64 without
// padding (43 characters, WireHub's form). ParsePublic and ParsePrivate
// accept both alphabets, with or without the padding '=', surrounded by
// white space such as a key file's trailing newline. Anything else is an
// error wrapping ErrFormat: another length, a mix of the two alphabets, a
// 43rd character whose two bits beyond the key are not zero (so each key
// has exactly one text per form), or trailing garbage.
//
// # Workbits
//
// workbits(pub, namespace) is the number of leading zero bits, most
// significant bit of the first byte first, of
//
//	BLAKE2b-256(pub ‖ namespace)
//
// where BLAKE2b-256 is BLAKE2b with a 32-byte digest and no key (RFC 7693),
// pub is the 32-byte public key and namespace its bytes, with no length or
// terminator. WireHub computed the same, but counted only the first 32 bits
// correctly; Workbits counts all 256. A key's expected cost is 2^workbits
// hashes: the default, 8, is instant.
//
// BucketID(a, b) is WireHub's Kademlia bucket of b seen from a: one more
// than the number of leading bits a and b share, capped at 256.
//
// # Search
//
// Search finds a key with at least a given number of workbits. Computing
// each candidate's public key with an X25519 scalar multiplication would
// cost hundreds of hashes, so Search, like fast vanity-address generators,
// walks the curve instead:
//
//  1. Each goroutine draws a random clamped scalar c₀ and computes C = c₀·B
//     once (B is the base point). Its walk's scalars are c₀ + 8i, every one
//     clamped: they stay multiples of 8 and, as the walk is bounded, between
//     2^254 and 2^255. Their public keys are C + i·Q with Q = 8·B.
//  2. The walk goes in groups around a center C: the candidates C and
//     C ± j·Q for j = 1..1024, from a table of j·Q shared by all
//     goroutines, then the center moves on by 2049·Q. Groups follow each
//     other without gap or overlap.
//  3. Points are affine (u, v) on the Montgomery curve v² = u³ + A·u² + u,
//     because X25519's public key is just the u coordinate. Adding (u_j, v_j)
//     to (u, v) needs λ = (v_j − v)/(u_j − u) and gives u' = λ² − A − u − u_j;
//     subtracting it has the same denominator. So a group needs 1025
//     inverses, which Montgomery's trick gets from one field inversion and
//     three multiplications each; then a candidate costs about two field
//     multiplications and an encoding, and the next center a few more.
//  4. Each candidate u ‖ namespace is hashed. Where the namespace has at
//     most 96 bytes (the input fits one BLAKE2b block), several candidates
//     are hashed at once, one per 64-bit lane of the vector registers:
//     eight with AVX-512, four with AVX2. Otherwise, or on other CPUs,
//     with blake2b.Sum256.
//  5. On a hit, the private key is c₀ + 8i, and X25519 of it is checked to
//     give the public key the walk hashed before Search returns it (a
//     mismatch is a bug, and an error).
//
// So, measured on a Xeon, an attempt costs a little less than a bare
// blake2b.Sum256 of the same 38 bytes with AVX-512, a little more with
// AVX2, and about 1.7 times as much with neither; the field arithmetic of
// step 3 is then most of it. `go test -bench PoWRatio ./key/` measures attempts per second per
// core against blake2b.Sum256 per second, for each way of hashing the CPU
// has; BenchmarkPoW and BenchmarkBLAKE2b measure Search's walk and the
// bare hash alone. The keys a walk yields are as good
// as any: the start is uniform over the clamped scalars, and the walk
// stops at the first key whose hash qualifies, which says nothing about the
// scalar.
package key
