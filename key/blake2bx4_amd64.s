//go:build amd64 && !purego

#include "textflag.h"

// BLAKE2b (RFC 7693) compression of one final block for four messages at
// once, one per 64-bit lane of the AVX2 registers: blake2bx8's work for
// CPUs without AVX-512. Y0–Y14 hold the work vector v[0..14] of the four
// hashes; v[15] lives in the frame at v15-32(SP), so that Y15 is free as a
// temporary. The message words are read from memory.

// ROR16 and ROR24 rotate each 64-bit lane right by 16 and 24 bits.
DATA ror16<>+0(SB)/8, $0x0100070605040302
DATA ror16<>+8(SB)/8, $0x09080f0e0d0c0b0a
DATA ror16<>+16(SB)/8, $0x0100070605040302
DATA ror16<>+24(SB)/8, $0x09080f0e0d0c0b0a
GLOBL ror16<>(SB), RODATA|NOPTR, $32

DATA ror24<>+0(SB)/8, $0x0201000706050403
DATA ror24<>+8(SB)/8, $0x0a09080f0e0d0c0b
DATA ror24<>+16(SB)/8, $0x0201000706050403
DATA ror24<>+24(SB)/8, $0x0a09080f0e0d0c0b
GLOBL ror24<>(SB), RODATA|NOPTR, $32

// G mixes (a, b, c, d) with message words x, y (RFC 7693 section 3.1),
// using Y15 as a temporary.
#define G(a, b, c, d, x, y) \
	VPADDQ x, a, a; \
	VPADDQ b, a, a; \
	VPXOR a, d, d; \
	VPSHUFD $0xb1, d, d; \
	VPADDQ d, c, c; \
	VPXOR c, b, b; \
	VPSHUFB ror24<>(SB), b, b; \
	VPADDQ y, a, a; \
	VPADDQ b, a, a; \
	VPXOR a, d, d; \
	VPSHUFB ror16<>(SB), d, d; \
	VPADDQ d, c, c; \
	VPXOR c, b, b; \
	VPSRLQ $63, b, Y15; \
	VPADDQ b, b, b; \
	VPOR Y15, b, b

// G15 is G with d = v[15]: loaded into Y15, stored back once the last
// addition has used it, and Y15 then serves as the temporary.
#define G15(a, b, c, x, y) \
	VMOVDQU v15-32(SP), Y15; \
	VPADDQ x, a, a; \
	VPADDQ b, a, a; \
	VPXOR a, Y15, Y15; \
	VPSHUFD $0xb1, Y15, Y15; \
	VPADDQ Y15, c, c; \
	VPXOR c, b, b; \
	VPSHUFB ror24<>(SB), b, b; \
	VPADDQ y, a, a; \
	VPADDQ b, a, a; \
	VPXOR a, Y15, Y15; \
	VPSHUFB ror16<>(SB), Y15, Y15; \
	VPADDQ Y15, c, c; \
	VMOVDQU Y15, v15-32(SP); \
	VPXOR c, b, b; \
	VPSRLQ $63, b, Y15; \
	VPADDQ b, b, b; \
	VPOR Y15, b, b

#define ROUND(s0, s1, s2, s3, s4, s5, s6, s7, s8, s9, s10, s11, s12, s13, s14, s15) \
	G(Y0, Y4, Y8, Y12, s0, s1); \
	G(Y1, Y5, Y9, Y13, s2, s3); \
	G(Y2, Y6, Y10, Y14, s4, s5); \
	G15(Y3, Y7, Y11, s6, s7); \
	G15(Y0, Y5, Y10, s8, s9); \
	G(Y1, Y6, Y11, Y12, s10, s11); \
	G(Y2, Y7, Y8, Y13, s12, s13); \
	G(Y3, Y4, Y9, Y14, s14, s15)

// func blake2bx4(out *[4][8]uint64, msg *[16][8]uint64, iv *[16]uint64)
TEXT ·blake2bx4(SB), NOSPLIT, $32-24
	MOVQ out+0(FP), DI
	MOVQ msg+8(FP), SI
	MOVQ iv+16(FP), DX

	VPBROADCASTQ 0(DX), Y0
	VPBROADCASTQ 8(DX), Y1
	VPBROADCASTQ 16(DX), Y2
	VPBROADCASTQ 24(DX), Y3
	VPBROADCASTQ 32(DX), Y4
	VPBROADCASTQ 40(DX), Y5
	VPBROADCASTQ 48(DX), Y6
	VPBROADCASTQ 56(DX), Y7
	VPBROADCASTQ 64(DX), Y8
	VPBROADCASTQ 72(DX), Y9
	VPBROADCASTQ 80(DX), Y10
	VPBROADCASTQ 88(DX), Y11
	VPBROADCASTQ 96(DX), Y12
	VPBROADCASTQ 104(DX), Y13
	VPBROADCASTQ 112(DX), Y14
	VPBROADCASTQ 120(DX), Y15
	VMOVDQU Y15, v15-32(SP)

	// Twelve rounds: round r takes the message words in the order of
	// RFC 7693's SIGMA[r mod 10]; word i is at 64·i(SI).
	ROUND(0(SI), 64(SI), 128(SI), 192(SI), 256(SI), 320(SI), 384(SI), 448(SI), 512(SI), 576(SI), 640(SI), 704(SI), 768(SI), 832(SI), 896(SI), 960(SI))
	ROUND(896(SI), 640(SI), 256(SI), 512(SI), 576(SI), 960(SI), 832(SI), 384(SI), 64(SI), 768(SI), 0(SI), 128(SI), 704(SI), 448(SI), 320(SI), 192(SI))
	ROUND(704(SI), 512(SI), 768(SI), 0(SI), 320(SI), 128(SI), 960(SI), 832(SI), 640(SI), 896(SI), 192(SI), 384(SI), 448(SI), 64(SI), 576(SI), 256(SI))
	ROUND(448(SI), 576(SI), 192(SI), 64(SI), 832(SI), 768(SI), 704(SI), 896(SI), 128(SI), 384(SI), 320(SI), 640(SI), 256(SI), 0(SI), 960(SI), 512(SI))
	ROUND(576(SI), 0(SI), 320(SI), 448(SI), 128(SI), 256(SI), 640(SI), 960(SI), 896(SI), 64(SI), 704(SI), 768(SI), 384(SI), 512(SI), 192(SI), 832(SI))
	ROUND(128(SI), 768(SI), 384(SI), 640(SI), 0(SI), 704(SI), 512(SI), 192(SI), 256(SI), 832(SI), 448(SI), 320(SI), 960(SI), 896(SI), 64(SI), 576(SI))
	ROUND(768(SI), 320(SI), 64(SI), 960(SI), 896(SI), 832(SI), 256(SI), 640(SI), 0(SI), 448(SI), 384(SI), 192(SI), 576(SI), 128(SI), 512(SI), 704(SI))
	ROUND(832(SI), 704(SI), 448(SI), 896(SI), 768(SI), 64(SI), 192(SI), 576(SI), 320(SI), 0(SI), 960(SI), 256(SI), 512(SI), 384(SI), 128(SI), 640(SI))
	ROUND(384(SI), 960(SI), 896(SI), 576(SI), 704(SI), 192(SI), 0(SI), 512(SI), 768(SI), 128(SI), 832(SI), 448(SI), 64(SI), 256(SI), 640(SI), 320(SI))
	ROUND(640(SI), 128(SI), 512(SI), 256(SI), 448(SI), 384(SI), 64(SI), 320(SI), 960(SI), 704(SI), 576(SI), 896(SI), 192(SI), 768(SI), 832(SI), 0(SI))
	ROUND(0(SI), 64(SI), 128(SI), 192(SI), 256(SI), 320(SI), 384(SI), 448(SI), 512(SI), 576(SI), 640(SI), 704(SI), 768(SI), 832(SI), 896(SI), 960(SI))
	ROUND(896(SI), 640(SI), 256(SI), 512(SI), 576(SI), 960(SI), 832(SI), 384(SI), 64(SI), 768(SI), 0(SI), 128(SI), 704(SI), 448(SI), 320(SI), 192(SI))

	// h[i] = iv[i] ^ v[i] ^ v[i+8] for the 256 bits of the digest
	VPBROADCASTQ 0(DX), Y15
	VPXOR Y0, Y15, Y15
	VPXOR Y8, Y15, Y15
	VMOVDQU Y15, 0(DI)
	VPBROADCASTQ 8(DX), Y15
	VPXOR Y1, Y15, Y15
	VPXOR Y9, Y15, Y15
	VMOVDQU Y15, 64(DI)
	VPBROADCASTQ 16(DX), Y15
	VPXOR Y2, Y15, Y15
	VPXOR Y10, Y15, Y15
	VMOVDQU Y15, 128(DI)
	VPBROADCASTQ 24(DX), Y15
	VPXOR Y3, Y15, Y15
	VPXOR Y11, Y15, Y15
	VMOVDQU Y15, 192(DI)
	VZEROUPPER
	RET
