package key

import (
	"context"
	"errors"
	"fmt"
	"math/bits"
	"runtime"
	"sync"
	"sync/atomic"

	"golang.org/x/crypto/blake2b"
)

// DefaultNamespace and DefaultWorkbit are WireHub's defaults.
const (
	DefaultNamespace = "public"
	DefaultWorkbit   = 8
	// MaxWorkbit is the largest meaningful workbit: a digest has 256 bits.
	MaxWorkbit = 256
)

// Workbits returns the number of leading zero bits, most significant first,
// of BLAKE2b-256(pub ‖ namespace), counted over all 256 bits.
//
// WireHub counted only the first 32 bits correctly; keys it accepted keep
// their value, since no practical key has 32 or more.
func Workbits(pub Public, namespace string) int {
	h := workHash(pub, namespace)
	return leadingZeros(&h)
}

// workHash returns BLAKE2b-256(pub ‖ namespace). Namespaces of up to 96
// bytes are hashed from a buffer on the stack.
func workHash(pub Public, namespace string) [32]byte {
	var buf [128]byte
	in := append(buf[:0], pub[:]...)
	in = append(in, namespace...)
	return blake2b.Sum256(in)
}

// leadingZeros returns the number of leading zero bits of h, most
// significant bit of h[0] first.
func leadingZeros(h *[32]byte) int {
	n := 0
	for _, b := range h {
		if b != 0 {
			return n + bits.LeadingZeros8(b)
		}
		n += 8
	}
	return n
}

// BucketID is WireHub's bucket id of b as seen from a: the number of leading
// equal bits of a and b plus one, from 1 (differ in the first bit) to 256
// (equal keys, capped).
func BucketID(a, b Public) int {
	var x [32]byte
	for i := range x {
		x[i] = a[i] ^ b[i]
	}
	return min(leadingZeros(&x), 255) + 1
}

// SearchOptions tunes Search. The zero value searches on every core without
// reporting progress.
type SearchOptions struct {
	// Threads is how many goroutines search. Zero means runtime.NumCPU().
	Threads int
	// Progress, if set, receives the running count of attempts of all
	// threads about every 2^16 attempts per thread. It is called from the
	// search goroutines, possibly at once from several.
	Progress func(attempts uint64)
}

// Errors returned by Search.
var (
	// ErrWorkbit is returned for a workbit outside 0..MaxWorkbit.
	ErrWorkbit = errors.New("workbit must be between 0 and 256")
	// errMismatch means the search computed a public key that X25519
	// does not confirm: a bug in the walk, never a property of the input.
	errMismatch = errors.New("internal error: walked public key does not match X25519")
)

// progressEvery is how many attempts a thread makes between reports of
// progress.
const progressEvery = 1 << 16

// Search finds a private key whose public key has at least workbit
// workbits in namespace, on opt.Threads goroutines, and returns it. The
// expected number of attempts is 2^workbit; see the package documentation
// for how an attempt costs about one hash. It returns ctx's error when ctx
// is done first; every goroutine has stopped when it returns.
func Search(ctx context.Context, workbit int, namespace string, opt SearchOptions) (Private, error) {
	if workbit < 0 || workbit > MaxWorkbit {
		return Private{}, fmt.Errorf("%w: got %d", ErrWorkbit, workbit)
	}
	threads := opt.Threads
	if threads <= 0 {
		threads = runtime.NumCPU()
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	tab := newWalkTable()
	var (
		once     sync.Once
		found    Private
		fail     error
		attempts atomic.Uint64
		wg       sync.WaitGroup
	)
	for range threads {
		wg.Go(func() {
			w := newWalker(tab, namespace, workbit)
			var reported uint64
			k, err := w.run(ctx.Done(), func() {
				n := attempts.Add(w.attempts - reported)
				reported = w.attempts
				if opt.Progress != nil {
					opt.Progress(n)
				}
			})
			attempts.Add(w.attempts - reported)
			if err != nil || !k.IsZero() {
				once.Do(func() { found, fail = k, err; cancel() })
			}
		})
	}
	wg.Wait()
	if fail != nil {
		return Private{}, fmt.Errorf("key search: %w", fail)
	}
	if found.IsZero() {
		return Private{}, ctx.Err()
	}
	return found, nil
}
