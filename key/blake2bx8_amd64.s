//go:build amd64 && !purego

#include "textflag.h"

// BLAKE2b (RFC 7693) compression of one final block for eight messages at
// once, one per 64-bit lane of the AVX-512 registers. Z0–Z15 hold the work
// vector v[0..15] of the eight hashes, Z16–Z31 the message words m[0..15].

// G mixes the column or diagonal (a, b, c, d) with message words x, y
// (RFC 7693 section 3.1).
#define G(a, b, c, d, x, y) \
	VPADDQ x, a, a; \
	VPADDQ b, a, a; \
	VPXORQ a, d, d; \
	VPRORQ $32, d, d; \
	VPADDQ d, c, c; \
	VPXORQ c, b, b; \
	VPRORQ $24, b, b; \
	VPADDQ y, a, a; \
	VPADDQ b, a, a; \
	VPXORQ a, d, d; \
	VPRORQ $16, d, d; \
	VPADDQ d, c, c; \
	VPXORQ c, b, b; \
	VPRORQ $63, b, b

// ROUND is one round, given the message words in the order of that
// round's SIGMA row.
#define ROUND(s0, s1, s2, s3, s4, s5, s6, s7, s8, s9, s10, s11, s12, s13, s14, s15) \
	G(Z0, Z4, Z8, Z12, s0, s1); \
	G(Z1, Z5, Z9, Z13, s2, s3); \
	G(Z2, Z6, Z10, Z14, s4, s5); \
	G(Z3, Z7, Z11, Z15, s6, s7); \
	G(Z0, Z5, Z10, Z15, s8, s9); \
	G(Z1, Z6, Z11, Z12, s10, s11); \
	G(Z2, Z7, Z8, Z13, s12, s13); \
	G(Z3, Z4, Z9, Z14, s14, s15)

// func blake2bx8(out *[4][8]uint64, msg *[16][8]uint64, iv *[16]uint64)
TEXT ·blake2bx8(SB), NOSPLIT, $0-24
	MOVQ out+0(FP), DI
	MOVQ msg+8(FP), SI
	MOVQ iv+16(FP), DX

	VPBROADCASTQ 0(DX), Z0
	VPBROADCASTQ 8(DX), Z1
	VPBROADCASTQ 16(DX), Z2
	VPBROADCASTQ 24(DX), Z3
	VPBROADCASTQ 32(DX), Z4
	VPBROADCASTQ 40(DX), Z5
	VPBROADCASTQ 48(DX), Z6
	VPBROADCASTQ 56(DX), Z7
	VPBROADCASTQ 64(DX), Z8
	VPBROADCASTQ 72(DX), Z9
	VPBROADCASTQ 80(DX), Z10
	VPBROADCASTQ 88(DX), Z11
	VPBROADCASTQ 96(DX), Z12
	VPBROADCASTQ 104(DX), Z13
	VPBROADCASTQ 112(DX), Z14
	VPBROADCASTQ 120(DX), Z15

	VMOVDQU64 0(SI), Z16
	VMOVDQU64 64(SI), Z17
	VMOVDQU64 128(SI), Z18
	VMOVDQU64 192(SI), Z19
	VMOVDQU64 256(SI), Z20
	VMOVDQU64 320(SI), Z21
	VMOVDQU64 384(SI), Z22
	VMOVDQU64 448(SI), Z23
	VMOVDQU64 512(SI), Z24
	VMOVDQU64 576(SI), Z25
	VMOVDQU64 640(SI), Z26
	VMOVDQU64 704(SI), Z27
	VMOVDQU64 768(SI), Z28
	VMOVDQU64 832(SI), Z29
	VMOVDQU64 896(SI), Z30
	VMOVDQU64 960(SI), Z31

	// Twelve rounds: round r takes the message words in the order of
	// RFC 7693's SIGMA[r mod 10]; word i is in Z(16+i).
	ROUND(Z16, Z17, Z18, Z19, Z20, Z21, Z22, Z23, Z24, Z25, Z26, Z27, Z28, Z29, Z30, Z31)
	ROUND(Z30, Z26, Z20, Z24, Z25, Z31, Z29, Z22, Z17, Z28, Z16, Z18, Z27, Z23, Z21, Z19)
	ROUND(Z27, Z24, Z28, Z16, Z21, Z18, Z31, Z29, Z26, Z30, Z19, Z22, Z23, Z17, Z25, Z20)
	ROUND(Z23, Z25, Z19, Z17, Z29, Z28, Z27, Z30, Z18, Z22, Z21, Z26, Z20, Z16, Z31, Z24)
	ROUND(Z25, Z16, Z21, Z23, Z18, Z20, Z26, Z31, Z30, Z17, Z27, Z28, Z22, Z24, Z19, Z29)
	ROUND(Z18, Z28, Z22, Z26, Z16, Z27, Z24, Z19, Z20, Z29, Z23, Z21, Z31, Z30, Z17, Z25)
	ROUND(Z28, Z21, Z17, Z31, Z30, Z29, Z20, Z26, Z16, Z23, Z22, Z19, Z25, Z18, Z24, Z27)
	ROUND(Z29, Z27, Z23, Z30, Z28, Z17, Z19, Z25, Z21, Z16, Z31, Z20, Z24, Z22, Z18, Z26)
	ROUND(Z22, Z31, Z30, Z25, Z27, Z19, Z16, Z24, Z28, Z18, Z29, Z23, Z17, Z20, Z26, Z21)
	ROUND(Z26, Z18, Z24, Z20, Z23, Z22, Z17, Z21, Z31, Z27, Z25, Z30, Z19, Z28, Z29, Z16)
	ROUND(Z16, Z17, Z18, Z19, Z20, Z21, Z22, Z23, Z24, Z25, Z26, Z27, Z28, Z29, Z30, Z31)
	ROUND(Z30, Z26, Z20, Z24, Z25, Z31, Z29, Z22, Z17, Z28, Z16, Z18, Z27, Z23, Z21, Z19)

	// h[i] = iv[i] ^ v[i] ^ v[i+8] for the 256 bits of the digest
	VPBROADCASTQ 0(DX), Z16
	VPTERNLOGQ $0x96, Z8, Z0, Z16
	VMOVDQU64 Z16, 0(DI)
	VPBROADCASTQ 8(DX), Z16
	VPTERNLOGQ $0x96, Z9, Z1, Z16
	VMOVDQU64 Z16, 64(DI)
	VPBROADCASTQ 16(DX), Z16
	VPTERNLOGQ $0x96, Z10, Z2, Z16
	VMOVDQU64 Z16, 128(DI)
	VPBROADCASTQ 24(DX), Z16
	VPTERNLOGQ $0x96, Z11, Z3, Z16
	VMOVDQU64 Z16, 192(DI)
	VZEROUPPER
	RET
