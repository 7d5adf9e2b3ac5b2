//go:build amd64 && !purego

package key

import "golang.org/x/sys/cpu"

// blake2bx8 compresses one final BLAKE2b block for eight messages at once:
// msg[i][lane] is message word i of a lane, iv the work vector v[0..15] that
// all lanes start from, and out[i][lane] receives digest word i (little
// endian) of the 256-bit digest. It needs AVX-512 (see haveX8).
//
//go:noescape
func blake2bx8(out *[4][8]uint64, msg *[16][8]uint64, iv *[16]uint64)

// haveX8 reports whether blake2bx8 can run here.
func haveX8() bool { return cpu.X86.HasAVX512F }
