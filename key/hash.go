package key

import (
	"encoding/binary"
	"math/bits"

	"golang.org/x/crypto/blake2b"
)

// workHasher scores many public keys in one namespace: it finds the first
// key whose BLAKE2b-256(key ‖ namespace) has enough leading zero bits.
//
// Where key ‖ namespace fits in one BLAKE2b block (namespaces of up to 96
// bytes), it hashes several keys at once, one per 64-bit lane of the vector
// registers: eight with AVX-512 (blake2bx8), four with AVX2 (blake2bx4).
// Otherwise it calls blake2b.Sum256 for each.
type workHasher struct {
	workbit int
	lanes   int // 8, 4, or 0 for blake2b.Sum256

	// For blake2bx8 and blake2bx4.
	msg *[16][8]uint64 // words 0–3: the keys; 4–15: namespace, padding
	iv  [16]uint64     // the work vector every hash starts from
	out [4][8]uint64

	// For blake2b.Sum256.
	in []byte // key ‖ namespace
}

// BLAKE2b's initialization vector, RFC 7693 section 2.6.
var blake2bIV = [8]uint64{
	0x6a09e667f3bcc908, 0xbb67ae8584caa73b, 0x3c6ef372fe94f82b, 0xa54ff53a5f1d36f1,
	0x510e527fade682d1, 0x9b05688c2b3e6c1f, 0x1f83d9abfb41bd6b, 0x5be0cd19137e2179,
}

// newWorkHasher returns a workHasher that hashes lanes keys at once (see
// hashLanes), or one at a time if lanes is 0 or the namespace is too long.
func newWorkHasher(namespace string, workbit, lanes int) *workHasher {
	h := &workHasher{
		workbit: workbit,
		in:      append(make([]byte, Size, Size+len(namespace)), namespace...),
	}
	if Size+len(namespace) > blake2b.BlockSize || (lanes != 8 && lanes != 4) {
		return h
	}
	h.lanes = lanes
	// The block: key (bytes 0–31), namespace, zeros; words 4–15 are the
	// same for every key.
	var block [blake2b.BlockSize]byte
	copy(block[Size:], namespace)
	h.msg = new([16][8]uint64)
	for i := 4; i < 16; i++ {
		w := binary.LittleEndian.Uint64(block[8*i:])
		for lane := range 8 {
			h.msg[i][lane] = w
		}
	}
	// Parameter block: digest length 32, no key, fanout 1, depth 1.
	// One block, so the counter is the input length and it is the last.
	copy(h.iv[:8], blake2bIV[:])
	h.iv[0] ^= 0x01010000 | blake2b.Size256
	copy(h.iv[8:], blake2bIV[:])
	h.iv[12] ^= uint64(Size + len(namespace))
	h.iv[14] = ^h.iv[14]
	return h
}

// first returns the index of the first key in keys with at least
// h.workbit workbits, or −1.
func (h *workHasher) first(keys []Public) int {
	i := 0
	if h.lanes > 0 {
		for ; i+h.lanes <= len(keys); i += h.lanes {
			for lane := range h.lanes {
				k := &keys[i+lane]
				for w := range 4 {
					h.msg[w][lane] = binary.LittleEndian.Uint64(k[8*w:])
				}
			}
			if h.lanes == 8 {
				blake2bx8(&h.out, h.msg, &h.iv)
			} else {
				blake2bx4(&h.out, h.msg, &h.iv)
			}
			for lane := range h.lanes {
				if h.lanePasses(lane) {
					return i + lane
				}
			}
		}
	}
	for ; i < len(keys); i++ {
		copy(h.in, keys[i][:])
		d := blake2b.Sum256(h.in)
		if leadingZeros(&d) >= h.workbit {
			return i
		}
	}
	return -1
}

// lanePasses reports whether lane's digest in h.out has at least h.workbit
// leading zero bits, counted as leadingZeros counts bytes: digest word w is
// bytes 8w to 8w+7, little endian.
func (h *workHasher) lanePasses(lane int) bool {
	n := 0
	for w := range 4 {
		z := bits.LeadingZeros64(bits.ReverseBytes64(h.out[w][lane]))
		n += z
		if z < 64 {
			break
		}
	}
	return n >= h.workbit
}
