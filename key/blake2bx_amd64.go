//go:build amd64 && !purego

package key

import "golang.org/x/sys/cpu"

// blake2bx8 compresses one final BLAKE2b block for eight messages at once:
// msg[i][lane] is message word i of a lane, iv the work vector v[0..15] that
// all lanes start from, and out[i][lane] receives digest word i (little
// endian) of the 256-bit digest. It needs AVX-512F.
//
//go:noescape
func blake2bx8(out *[4][8]uint64, msg *[16][8]uint64, iv *[16]uint64)

// blake2bx4 is blake2bx8 for lanes 0–3 only, with AVX2.
//
//go:noescape
func blake2bx4(out *[4][8]uint64, msg *[16][8]uint64, iv *[16]uint64)

// hashLanes returns how many keys this CPU hashes at once: 8, 4, or 0 for
// one at a time with blake2b.Sum256.
func hashLanes() int {
	switch {
	case cpu.X86.HasAVX512F:
		return 8
	case cpu.X86.HasAVX2:
		return 4
	}
	return 0
}
