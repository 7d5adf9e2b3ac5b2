//go:build !amd64 || purego

package key

func blake2bx8(out *[4][8]uint64, msg *[16][8]uint64, iv *[16]uint64) {
	panic("key: blake2bx8 without AVX-512")
}

func blake2bx4(out *[4][8]uint64, msg *[16][8]uint64, iv *[16]uint64) {
	panic("key: blake2bx4 without AVX2")
}

func hashLanes() int { return 0 }
