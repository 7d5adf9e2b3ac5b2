package key

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/blake2b"
	"golang.org/x/crypto/curve25519"
)

// WIREHUB.md §4.3: workbits of BLAKE2b-256(pk ‖ "public") and the digest's
// first bytes.
var workbitVectors = []struct {
	name, key string
	workbits  int
	prefix    string
}{
	{"bootstrap", "P17zMwXJFbBdJEn05RFIMADw9TX5_m2xgf31OgNKX3w", 11, "0011cae1"},
	{"node_a", "zW-1lBeQ7IkT6NW6hL_NsV4eOPOwJi_rt1vO-omOEmQ", 9, "005c2571"},
	{"node_b", "g878Bf9ZDc4IzFSUhWFTO1VYFVmHD5XfvEsVn83Dsho", 9, "006512be"},
	{"readme_public", "gOVQwCSUxKUhUrkUSF0aDvssDfWVrrnm47ZMp5GJtDg", 12, "000c725c"},
	{"mailing_list", "KJ7YGrBeqLLm_JJ1huIS26OnqAVFy57z5UJqjyMagW4", 8, "00d2c00b"},
}

// WIREHUB.md §4.3: the `wh pubkey` vector.
const (
	vectorPrivate = "8DtM/sYqHv4PXHXDGZKVdm+ZTe493iyC46ZQX3743XM="
	vectorPublic  = "OgVwBkEoLpIBTSY2CMUbqyD9he19cOD2kpAEjYQQpS0"
)

func mustPublic(t testing.TB, s string) Public {
	t.Helper()
	p, err := ParsePublic(s)
	if err != nil {
		t.Fatalf("ParsePublic(%q): %v", s, err)
	}
	return p
}

func TestWorkbitsVectors(t *testing.T) {
	for _, tc := range workbitVectors {
		t.Run(tc.name, func(t *testing.T) {
			pub := mustPublic(t, tc.key)
			if got := Workbits(pub, "public"); got != tc.workbits {
				t.Errorf("Workbits = %d, want %d", got, tc.workbits)
			}
			h := workHash(pub, "public")
			if got := hex.EncodeToString(h[:4]); got != tc.prefix {
				t.Errorf("digest prefix = %s, want %s", got, tc.prefix)
			}
			if got := pub.String(); got != tc.key {
				t.Errorf("String = %s, want %s", got, tc.key)
			}
		})
	}
}

func TestPubkeyVector(t *testing.T) {
	k, err := ParsePrivate(vectorPrivate)
	if err != nil {
		t.Fatal(err)
	}
	pub := k.Public()
	if got := pub.String(); got != vectorPublic {
		t.Errorf("Public = %s, want %s", got, vectorPublic)
	}
	if got := Workbits(pub, DefaultNamespace); got != 12 {
		t.Errorf("Workbits = %d, want 12", got)
	}
	if got := k.String(); got != vectorPrivate {
		t.Errorf("Private.String = %s, want %s", got, vectorPrivate)
	}
	if got, want := pub.Std(), base64.StdEncoding.EncodeToString(pub[:]); got != want {
		t.Errorf("Std = %s, want %s", got, want)
	}
}

func TestBucketIDVectors(t *testing.T) {
	nodeA := mustPublic(t, workbitVectors[1].key)
	nodeB := mustPublic(t, workbitVectors[2].key)
	bootstrap := mustPublic(t, workbitVectors[0].key)
	tests := []struct {
		name string
		a, b Public
		want int
	}{
		{"node_a_node_b", nodeA, nodeB, 2},
		{"bootstrap_node_a", bootstrap, nodeA, 1},
		{"same_key", nodeA, nodeA, 256},
		{"zero_zero", Public{}, Public{}, 256},
		{"last_bit", Public{}, Public{31: 1}, 256},
		{"second_to_last_bit", Public{}, Public{31: 2}, 255},
		{"first_bit", Public{}, Public{0: 0x80}, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := BucketID(tc.a, tc.b); got != tc.want {
				t.Errorf("BucketID = %d, want %d", got, tc.want)
			}
			if got := BucketID(tc.b, tc.a); got != tc.want {
				t.Errorf("BucketID reversed = %d, want %d", got, tc.want)
			}
		})
	}
}

// naiveLeadingZeros counts leading zero bits one bit at a time, most
// significant bit of b[0] first.
func naiveLeadingZeros(b []byte) int {
	for i := range len(b) * 8 {
		if b[i/8]>>(7-i%8)&1 == 1 {
			return i
		}
	}
	return len(b) * 8
}

func TestWorkbitsMatchNaive(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	namespaces := []string{"", "public", "test", strings.Repeat("n", 96), strings.Repeat("long", 40)}
	for i := range 2000 {
		var pub Public
		for j := range pub {
			pub[j] = byte(rng.Uint32())
		}
		ns := namespaces[i%len(namespaces)]
		h := blake2b.Sum256(append(pub[:], ns...))
		if got, want := Workbits(pub, ns), naiveLeadingZeros(h[:]); got != want {
			t.Fatalf("Workbits(%s, %q) = %d, naive %d", pub, ns, got, want)
		}
	}
}

// TestLeadingZerosMatchNaive covers what random keys never reach: digests
// with 32 zero bits or more, where WireHub's count went wrong.
func TestLeadingZerosMatchNaive(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	check := func(h [32]byte) {
		t.Helper()
		if got, want := leadingZeros(&h), naiveLeadingZeros(h[:]); got != want {
			t.Fatalf("leadingZeros(%x) = %d, naive %d", h, got, want)
		}
	}
	check([32]byte{})
	for zeros := range 257 {
		for range 8 {
			var h [32]byte
			for j := range h {
				h[j] = byte(rng.Uint32())
			}
			for i := range zeros {
				h[i/8] &^= 0x80 >> (i % 8)
			}
			if zeros < 256 {
				h[zeros/8] |= 0x80 >> (zeros % 8)
			}
			if got := leadingZeros(&h); got != zeros {
				t.Fatalf("leadingZeros(%x) = %d, want %d", h, got, zeros)
			}
			check(h)
		}
	}
}

func TestBucketIDMatchesNaive(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	for range 2000 {
		var a, b Public
		for j := range a {
			a[j] = byte(rng.Uint32())
		}
		b = a
		// Flip one bit at a random depth, and maybe more after it.
		bit := rng.IntN(256)
		b[bit/8] ^= 0x80 >> (bit % 8)
		if rng.IntN(2) == 0 {
			for j := bit/8 + 1; j < len(b); j++ {
				b[j] = byte(rng.Uint32())
			}
		}
		var x [32]byte
		for j := range x {
			x[j] = a[j] ^ b[j]
		}
		want := min(naiveLeadingZeros(x[:]), 255) + 1
		if got := BucketID(a, b); got != want {
			t.Fatalf("BucketID(%s, %s) = %d, naive %d", a, b, got, want)
		}
	}
}

func TestParse(t *testing.T) {
	pub := mustPublic(t, workbitVectors[1].key) // has '-' and '_' in URL-safe form
	url := base64.RawURLEncoding.EncodeToString(pub[:])
	std := base64.StdEncoding.EncodeToString(pub[:])
	// The 43rd character carries 4 bits of the key and 2 that must be
	// zero: set the lowest of those.
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	trailingBit := url[:42] + string(alphabet[strings.IndexByte(alphabet, url[42])|1])
	tests := []struct {
		name string
		in   string
		err  error // nil: parses to pub
	}{
		{"url_safe", url, nil},
		{"std_padded", std, nil},
		{"std_unpadded", strings.TrimRight(std, "="), nil},
		{"url_safe_padded", url + "=", nil},
		{"trailing_newline", url + "\n", nil},
		{"crlf", std + "\r\n", nil},
		{"surrounding_space", " \t" + std + " \n", nil},
		{"empty", "", ErrFormat},
		{"spaces_only", "   \n", ErrFormat},
		{"too_short", url[:42], ErrFormat},
		{"too_long", url + "AA", ErrFormat},
		{"double_padding", url[:42] + "==", ErrFormat},
		{"44_without_padding", url + "A", ErrFormat},
		{"mixed_alphabets", strings.Replace(url, "-", "+", 1), ErrFormat},
		{"bad_character", "!" + url[1:], ErrFormat},
		{"inner_space", url[:20] + " " + url[21:], ErrFormat},
		{"padding_inside", url[:20] + "=" + url[21:], ErrFormat},
		{"nonzero_trailing_bits", trailingBit, ErrFormat},
		{"trailing_garbage", std + "x", ErrFormat},
		{"hex", hex.EncodeToString(pub[:]), ErrFormat},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParsePublic(tc.in)
			if tc.err != nil {
				if !errors.Is(err, tc.err) {
					t.Fatalf("ParsePublic(%q) error = %v, want %v", tc.in, err, tc.err)
				}
				if _, err := ParsePrivate(tc.in); !errors.Is(err, tc.err) {
					t.Fatalf("ParsePrivate(%q) error = %v, want %v", tc.in, err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParsePublic(%q): %v", tc.in, err)
			}
			if got != pub {
				t.Fatalf("ParsePublic(%q) = %s, want %s", tc.in, got, pub)
			}
		})
	}
}

func TestParsePrivate(t *testing.T) {
	t.Run("all_zeros", func(t *testing.T) {
		_, err := ParsePrivate(base64.StdEncoding.EncodeToString(make([]byte, 32)))
		if !errors.Is(err, ErrZero) {
			t.Fatalf("error = %v, want ErrZero", err)
		}
	})
	t.Run("clamps", func(t *testing.T) {
		raw := bytes.Repeat([]byte{0xff}, 32)
		k, err := ParsePrivate(base64.StdEncoding.EncodeToString(raw))
		if err != nil {
			t.Fatal(err)
		}
		if k[0]&7 != 0 || k[31]&0xc0 != 0x40 {
			t.Errorf("not clamped: %x", k)
		}
		want, err := curve25519.X25519(raw, curve25519.Basepoint)
		if err != nil {
			t.Fatal(err)
		}
		if pub := k.Public(); !bytes.Equal(pub[:], want) {
			t.Errorf("Public = %x, X25519 of the unclamped key = %x", pub, want)
		}
	})
	t.Run("url_safe", func(t *testing.T) {
		raw, _ := base64.StdEncoding.DecodeString(vectorPrivate)
		k, err := ParsePrivate(base64.RawURLEncoding.EncodeToString(raw) + "\n")
		if err != nil {
			t.Fatal(err)
		}
		if got := k.String(); got != vectorPrivate {
			t.Errorf("String = %s, want %s", got, vectorPrivate)
		}
	})
}

func TestNewPrivate(t *testing.T) {
	a, err := NewPrivate()
	if err != nil {
		t.Fatal(err)
	}
	b, err := NewPrivate()
	if err != nil {
		t.Fatal(err)
	}
	if a == b {
		t.Fatal("two fresh keys are equal")
	}
	if a[0]&7 != 0 || a[31]&0xc0 != 0x40 {
		t.Errorf("not clamped: %x", a)
	}
}

func TestSharedSecret(t *testing.T) {
	a, _ := NewPrivate()
	b, _ := NewPrivate()
	ab, err := a.SharedSecret(b.Public())
	if err != nil {
		t.Fatal(err)
	}
	ba, err := b.SharedSecret(a.Public())
	if err != nil {
		t.Fatal(err)
	}
	if ab != ba {
		t.Error("shared secrets differ")
	}
	if _, err := a.SharedSecret(Public{}); err == nil {
		t.Error("shared secret with the zero (low-order) key did not fail")
	}
}

func TestTextForms(t *testing.T) {
	pub := mustPublic(t, vectorPublic)
	b, err := pub.MarshalText()
	if err != nil {
		t.Fatal(err)
	}
	if string(b) != vectorPublic {
		t.Errorf("MarshalText = %s, want %s", b, vectorPublic)
	}
	var back Public
	if err := back.UnmarshalText([]byte(pub.Std())); err != nil || back != pub {
		t.Errorf("UnmarshalText(Std) = %s, %v; want %s", back, err, pub)
	}
	if err := back.UnmarshalText([]byte("nope")); !errors.Is(err, ErrFormat) {
		t.Errorf("UnmarshalText(nope) error = %v, want ErrFormat", err)
	}
	for _, tc := range []struct {
		n    int
		want string
	}{{8, vectorPublic[:8]}, {0, ""}, {-1, ""}, {100, vectorPublic}} {
		if got := pub.Short(tc.n); got != tc.want {
			t.Errorf("Short(%d) = %q, want %q", tc.n, got, tc.want)
		}
	}
}

// independentWorkbits scores a private key without the package's code:
// X25519 from x/crypto, BLAKE2b and a bit-by-bit count.
func independentWorkbits(t *testing.T, k Private, namespace string) int {
	t.Helper()
	pub, err := curve25519.X25519(k[:], curve25519.Basepoint)
	if err != nil {
		t.Fatal(err)
	}
	h := blake2b.Sum256(append(pub, namespace...))
	return naiveLeadingZeros(h[:])
}

func TestSearch(t *testing.T) {
	namespaces := []struct{ name, ns string }{
		{"public", "public"},
		{"empty", ""},
		{"test", "test"},
		{"multi_block", strings.Repeat("x", 100)},
	}
	for _, ns := range namespaces {
		t.Run(ns.name, func(t *testing.T) {
			for workbit := range 13 {
				if ns.name != "public" && workbit%4 != 0 {
					continue // every workbit once, a spread for the others
				}
				k, err := Search(t.Context(), workbit, ns.ns, SearchOptions{})
				if err != nil {
					t.Fatalf("workbit %d: %v", workbit, err)
				}
				if k[0]&7 != 0 || k[31]&0xc0 != 0x40 {
					t.Errorf("workbit %d: key not clamped: %x", workbit, k)
				}
				if got := independentWorkbits(t, k, ns.ns); got < workbit {
					t.Errorf("workbit %d: key %s scores %d", workbit, k.Public(), got)
				}
			}
		})
	}
}

func TestSearchOneThread(t *testing.T) {
	k, err := Search(t.Context(), 6, "one", SearchOptions{Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	if got := independentWorkbits(t, k, "one"); got < 6 {
		t.Errorf("scores %d, want ≥ 6", got)
	}
}

func TestSearchWorkbitRange(t *testing.T) {
	for _, wb := range []int{-1, MaxWorkbit + 1, 1 << 20} {
		if _, err := Search(t.Context(), wb, "public", SearchOptions{}); !errors.Is(err, ErrWorkbit) {
			t.Errorf("Search(workbit %d) error = %v, want ErrWorkbit", wb, err)
		}
	}
}

func TestSearchCancel(t *testing.T) {
	t.Run("cancel", func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		time.AfterFunc(50*time.Millisecond, cancel)
		// No key has MaxWorkbit: Search returns only because it is
		// cancelled.
		_, err := Search(ctx, MaxWorkbit, "public", SearchOptions{})
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("error = %v, want context.Canceled", err)
		}
	})
	t.Run("deadline", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(t.Context(), 20*time.Millisecond)
		defer cancel()
		if _, err := Search(ctx, MaxWorkbit, "public", SearchOptions{}); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("error = %v, want context.DeadlineExceeded", err)
		}
	})
	t.Run("already_done", func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		if _, err := Search(ctx, MaxWorkbit, "public", SearchOptions{}); !errors.Is(err, context.Canceled) {
			t.Fatalf("error = %v, want context.Canceled", err)
		}
	})
}

func TestSearchProgress(t *testing.T) {
	for _, threads := range []int{1, 2} {
		t.Run(fmt.Sprintf("threads_%d", threads), func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
			defer cancel()
			var (
				mu     sync.Mutex
				counts []uint64
			)
			_, err := Search(ctx, MaxWorkbit, "public", SearchOptions{
				Threads: threads,
				Progress: func(n uint64) {
					mu.Lock()
					defer mu.Unlock()
					counts = append(counts, n)
					if len(counts) == 3*threads {
						cancel()
					}
				},
			})
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("error = %v, want context.Canceled (from the Progress callback)", err)
			}
			mu.Lock()
			defer mu.Unlock()
			// Each report is a running total of all threads, so the
			// i-th report in time has seen at least i reports' worth.
			slices.Sort(counts)
			for i, n := range counts {
				if n < uint64(i+1)*progressEvery {
					t.Fatalf("report %d counts %d attempts, want ≥ %d; all: %v", i, n, (i+1)*progressEvery, counts)
				}
			}
			if threads == 1 && len(counts) != 3 {
				t.Errorf("%d reports after cancel from the third, want 3", len(counts))
			}
		})
	}
}

func FuzzParsePublic(f *testing.F) {
	for _, v := range workbitVectors {
		f.Add(v.key)
	}
	f.Add(vectorPublic + "\n")
	f.Add(vectorPrivate)
	f.Add("")
	f.Add("\xff")
	f.Fuzz(func(t *testing.T, s string) {
		k, err := ParsePublic(s)
		if err != nil {
			if !errors.Is(err, ErrFormat) {
				t.Fatalf("error %v is not ErrFormat", err)
			}
			return
		}
		for _, text := range []string{k.String(), k.Std()} {
			back, err := ParsePublic(text)
			if err != nil {
				t.Fatalf("ParsePublic(%q) of a parsed key: %v", text, err)
			}
			if back != k {
				t.Fatalf("round trip of %q: %s, want %s", s, back, k)
			}
		}
	})
}

func FuzzParsePrivate(f *testing.F) {
	f.Add(vectorPrivate)
	f.Add(vectorPrivate + "\n")
	for _, v := range workbitVectors {
		f.Add(v.key)
	}
	f.Add(base64.StdEncoding.EncodeToString(make([]byte, 32)))
	f.Add("")
	f.Fuzz(func(t *testing.T, s string) {
		k, err := ParsePrivate(s)
		if err != nil {
			if !errors.Is(err, ErrFormat) && !errors.Is(err, ErrZero) {
				t.Fatalf("error %v is neither ErrFormat nor ErrZero", err)
			}
			return
		}
		if k[0]&7 != 0 || k[31]&0xc0 != 0x40 {
			t.Fatalf("ParsePrivate(%q) is not clamped: %x", s, k)
		}
		back, err := ParsePrivate(k.String())
		if err != nil {
			t.Fatalf("ParsePrivate(%q) of a parsed key: %v", k.String(), err)
		}
		if back != k {
			t.Fatalf("round trip of %q: %s, want %s", s, back, k)
		}
	})
}
