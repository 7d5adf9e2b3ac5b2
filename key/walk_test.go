package key

import (
	"errors"
	"testing"

	"filippo.io/edwards25519/field"
)

// TestWalkMatchesX25519 checks the candidates of the walk against X25519 of
// their scalars: over three whole groups (so across two moves of the
// center), every candidate near the group edges and a spread inside.
func TestWalkMatchesX25519(t *testing.T) {
	w := newWalker(newWalkTable(), DefaultNamespace, 0)
	if err := w.reset(); err != nil {
		t.Fatal(err)
	}
	for g := range 3 {
		center := w.center
		if !w.fill() {
			t.Fatalf("group %d: degenerate center", g)
		}
		for i := range groupSize {
			if i > 8 && i < groupSize-8 && i%97 != 0 {
				continue
			}
			k, ok := scalarAt(w.start, center+groupOffset(i))
			if !ok {
				t.Fatalf("group %d candidate %d: scalar not clamped", g, i)
			}
			if got, want := w.pubs[i], k.Public(); got != want {
				t.Errorf("group %d candidate %d (offset %d): walk %s, X25519 %s", g, i, center+groupOffset(i), got, want)
			}
		}
	}
}

// TestGroupOffsetCoversRange checks that consecutive groups cover every
// offset exactly once.
func TestGroupOffsetCoversRange(t *testing.T) {
	seen := map[int64]bool{}
	for g := range int64(3) {
		for i := range groupSize {
			off := g*groupSize + groupOffset(i)
			if seen[off] {
				t.Fatalf("offset %d visited twice", off)
			}
			seen[off] = true
		}
	}
	for off := int64(-walkHalf); off < 3*groupSize-walkHalf; off++ {
		if !seen[off] {
			t.Fatalf("offset %d never visited", off)
		}
	}
}

func TestInvertAll(t *testing.T) {
	var one field.Element
	one.One()
	den := make([]field.Element, 5)
	for i := range den {
		den[i].Mult32(&one, uint32(i*7+3))
	}
	orig := append([]field.Element(nil), den...)
	if !invertAll(den, make([]field.Element, len(den))) {
		t.Fatal("invertAll refused non-zero elements")
	}
	for i := range den {
		var p field.Element
		if p.Multiply(&den[i], &orig[i]); p.Equal(&one) != 1 {
			t.Errorf("element %d: x·x⁻¹ ≠ 1", i)
		}
	}
	den[3].Zero()
	if invertAll(den, make([]field.Element, len(den))) {
		t.Error("invertAll accepted a zero element")
	}
}

func TestConfirmRejectsMismatch(t *testing.T) {
	w := newWalker(newWalkTable(), DefaultNamespace, 0)
	if err := w.reset(); err != nil {
		t.Fatal(err)
	}
	k, err := w.confirm(5, mustScalarAt(t, w.start, 5).Public())
	if err != nil || k != mustScalarAt(t, w.start, 5) {
		t.Fatalf("confirm(5, its own key) = %x, %v", k, err)
	}
	if _, err := w.confirm(5, mustScalarAt(t, w.start, 6).Public()); !errors.Is(err, errMismatch) {
		t.Fatalf("confirm(5, another key) error = %v, want errMismatch", err)
	}
}

func mustScalarAt(t *testing.T, start Private, offset int64) Private {
	t.Helper()
	k, ok := scalarAt(start, offset)
	if !ok {
		t.Fatalf("scalarAt(%x, %d) not clamped", start, offset)
	}
	return k
}

func TestScalarAt(t *testing.T) {
	low := Private{31: 0x40}           // 2^254
	high := Private{0: 0xf8, 31: 0x7f} // 2^255 − 8, with bytes 1..30 below
	for i := 1; i < 31; i++ {
		high[i] = 0xff
	}
	tests := []struct {
		name   string
		start  Private
		offset int64
		want   Private
		ok     bool
	}{
		{"low_plus_one", low, 1, Private{0: 8, 31: 0x40}, true},
		{"low_minus_one", low, -1, Private{}, false},
		{"high_zero", high, 0, high, true},
		{"high_plus_one", high, 1, Private{}, false},
		{"carry", Private{0: 0xf8, 31: 0x40}, 1, Private{1: 1, 31: 0x40}, true},
		{"borrow", Private{1: 1, 31: 0x40}, -1, Private{0: 0xf8, 31: 0x40}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := scalarAt(tc.start, tc.offset)
			if ok != tc.ok || (ok && got != tc.want) {
				t.Errorf("scalarAt = %x, %v; want %x, %v", got, ok, tc.want, tc.ok)
			}
		})
	}
}
