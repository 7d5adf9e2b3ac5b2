package key

import (
	"encoding/binary"
	"math/rand/v2"
	"strings"
	"testing"

	"golang.org/x/crypto/blake2b"
)

// hashModes are the ways workHasher hashes, by number of lanes.
var hashModes = []struct {
	name  string
	lanes int
}{{"sum256", 0}, {"x4_avx2", 4}, {"x8_avx512", 8}}

// skipLanes skips a test of a way of hashing that this CPU lacks.
func skipLanes(t testing.TB, lanes int) {
	if lanes > hashLanes() {
		t.Skipf("this CPU hashes at most %d lanes at once (AVX2 gives 4, AVX-512 8)", hashLanes())
	}
}

// TestWorkHasher checks every way of hashing against blake2b.Sum256 and a
// bit-by-bit count, for every namespace length that fits one block and a
// few that do not.
func TestWorkHasher(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	for _, mode := range hashModes {
		t.Run(mode.name, func(t *testing.T) {
			skipLanes(t, mode.lanes)
			for nsLen := range 100 {
				ns := strings.Repeat(string(rune('a'+nsLen%26)), nsLen)
				keys := make([]Public, 19) // two batches of eight and a tail
				for i := range keys {
					for j := range keys[i] {
						keys[i][j] = byte(rng.Uint32())
					}
				}
				// Force low workbits into some keys' digests by
				// trying thresholds from each key's real score.
				for target := range keys {
					d := blake2b.Sum256(append(keys[target][:], ns...))
					wb := naiveLeadingZeros(d[:])
					h := newWorkHasher(ns, wb, mode.lanes)
					want := -1
					for i, k := range keys {
						d := blake2b.Sum256(append(k[:], ns...))
						if naiveLeadingZeros(d[:]) >= wb {
							want = i
							break
						}
					}
					if got := h.first(keys); got != want {
						t.Fatalf("namespace length %d, workbit %d: first = %d, want %d", nsLen, wb, got, want)
					}
				}
				if got := newWorkHasher(ns, MaxWorkbit+1, mode.lanes).first(keys); got != -1 {
					t.Fatalf("namespace length %d: workbit 257 matched key %d", nsLen, got)
				}
			}
		})
	}
}

// TestLanePasses covers digests with 64 or more leading zero bits, which
// random keys never reach, in the eight-lane hash's count.
func TestLanePasses(t *testing.T) {
	for zeros := range 257 {
		var d [32]byte
		if zeros < 256 {
			d[zeros/8] = 0x80 >> (zeros % 8)
		}
		h := &workHasher{}
		for w := range 4 {
			var word uint64
			for b := range 8 {
				word |= uint64(d[8*w+b]) << (8 * b)
			}
			h.out[w][3] = word
		}
		for _, wb := range []int{zeros - 1, zeros, zeros + 1} {
			h.workbit = wb
			if got, want := h.lanePasses(3), zeros >= wb; got != want {
				t.Fatalf("%d zero bits, workbit %d: lanePasses = %v", zeros, wb, got)
			}
		}
	}
}

// TestBlake2bx compares every lane's digest of blake2bx8 and blake2bx4
// with blake2b.Sum256.
func TestBlake2bx(t *testing.T) {
	for _, mode := range hashModes[1:] {
		t.Run(mode.name, func(t *testing.T) {
			skipLanes(t, mode.lanes)
			rng := rand.New(rand.NewPCG(9, 10))
			for nsLen := range blake2b.BlockSize - Size + 1 {
				ns := make([]byte, nsLen)
				for i := range ns {
					ns[i] = byte(rng.Uint32())
				}
				h := newWorkHasher(string(ns), 0, mode.lanes)
				keys := make([]Public, mode.lanes)
				for lane := range keys {
					for j := range keys[lane] {
						keys[lane][j] = byte(rng.Uint32())
					}
					for w := range 4 {
						h.msg[w][lane] = binary.LittleEndian.Uint64(keys[lane][8*w:])
					}
				}
				h.out = [4][8]uint64{}
				if mode.lanes == 8 {
					blake2bx8(&h.out, h.msg, &h.iv)
				} else {
					blake2bx4(&h.out, h.msg, &h.iv)
				}
				for lane, k := range keys {
					want := blake2b.Sum256(append(k[:], ns...))
					var got [32]byte
					for w := range 4 {
						binary.LittleEndian.PutUint64(got[8*w:], h.out[w][lane])
					}
					if got != want {
						t.Fatalf("namespace length %d, lane %d: %x, want %x", nsLen, lane, got, want)
					}
				}
				for w := range 4 {
					for lane := mode.lanes; lane < 8; lane++ {
						if h.out[w][lane] != 0 {
							t.Fatalf("lane %d written by a %d-lane hash", lane, mode.lanes)
						}
					}
				}
			}
		})
	}
}
