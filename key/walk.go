package key

import (
	"crypto/rand"
	"fmt"
	"math/big"
	"slices"

	"filippo.io/edwards25519"
	"filippo.io/edwards25519/field"
)

// The walk behind Search; the package documentation explains it. A walk
// visits groups of candidates. A group is a center C = c·B (c is the clamped
// private scalar) and the points C ± j·Q for j = 1..walkHalf, where Q = 8·B,
// so that every candidate's scalar c ± 8j is clamped too. Then the center
// moves on by groupSize·Q, and the next group's candidates follow the last
// group's without gap or overlap.
const (
	walkHalf  = 1024
	groupSize = 2*walkHalf + 1
	// maxGroups bounds one walk (3.4·10^10 candidates), so that the
	// scalars of a walk stay clamped; then a walk starts afresh.
	maxGroups = 1 << 24
)

// montA is the A of Curve25519, v² = u³ + A·u² + u.
const montA = 486662

// walkTable holds the affine Montgomery points that every walker adds to
// its center. It is read-only once built and shared between walkers.
type walkTable struct {
	u, v         [walkHalf]field.Element // (j+1)·Q
	stepU, stepV field.Element           // groupSize·Q
	a            field.Element           // montA
	sqrtMinusA2  field.Element           // √(−(A+2)), for toMontgomery
}

func newWalkTable() *walkTable {
	t := new(walkTable)
	one := new(field.Element).One()
	t.a.Mult32(one, montA)
	var minusA2 field.Element
	minusA2.Negate(new(field.Element).Mult32(one, montA+2))
	t.sqrtMinusA2.SqrtRatio(&minusA2, one)

	q := new(edwards25519.Point).MultByCofactor(edwards25519.NewGeneratorPoint())
	points := make([]*edwards25519.Point, walkHalf+1)
	points[0] = new(edwards25519.Point).Set(q)
	for j := 1; j < walkHalf; j++ {
		points[j] = new(edwards25519.Point).Add(points[j-1], q)
	}
	// groupSize·Q = 2·(walkHalf·Q) + Q
	step := new(edwards25519.Point).Add(points[walkHalf-1], points[walkHalf-1])
	points[walkHalf] = step.Add(step, q)

	u := make([]field.Element, walkHalf+1)
	v := make([]field.Element, walkHalf+1)
	if !t.toMontgomery(points, u, v) {
		panic("key: multiples of 8·B up to 2049 are not the identity")
	}
	copy(t.u[:], u)
	copy(t.v[:], v)
	t.stepU, t.stepV = u[walkHalf], v[walkHalf]
	return t
}

// toMontgomery sets u[i], v[i] to the affine Montgomery coordinates of
// points[i], with one field inversion for all of them, by RFC 7748's map
// (u, v) = ((1+y)/(1−y), √(−(A+2))·u/x). Its sign of the root is one of the
// two group isomorphisms; the walk only needs the same one throughout. It
// returns false if a point has x = 0 or y = 1 (the identity, or a point of
// order 2 or 4), which has no affine Montgomery form here.
//
// With x = X/Z and y = Y/Z, u = (Z+Y)·X / D and v = √(−(A+2))·(Z+Y)·Z / D
// for the common denominator D = (Z−Y)·X.
func (t *walkTable) toMontgomery(points []*edwards25519.Point, u, v []field.Element) bool {
	den := make([]field.Element, len(points))
	for i, p := range points {
		x, y, z, _ := p.ExtendedCoordinates()
		var zMinusY field.Element
		zMinusY.Subtract(z, y)
		den[i].Multiply(&zMinusY, x)
		u[i].Add(z, y) // Z+Y for now
		v[i].Multiply(&u[i], z)
		v[i].Multiply(&v[i], &t.sqrtMinusA2)
		u[i].Multiply(&u[i], x)
	}
	if !invertAll(den, make([]field.Element, len(den))) {
		return false
	}
	for i := range den {
		u[i].Multiply(&u[i], &den[i])
		v[i].Multiply(&v[i], &den[i])
	}
	return true
}

// invertAll replaces every element of den by its inverse with one field
// inversion and 3(n−1) multiplications (Montgomery's trick), using scratch
// (as long as den) for the running products. It returns false, leaving den
// undefined, if any element is zero.
func invertAll(den, scratch []field.Element) bool {
	n := len(den)
	scratch[0] = den[0]
	for i := 1; i < n; i++ {
		scratch[i].Multiply(&scratch[i-1], &den[i])
	}
	var inv, t field.Element
	inv.Invert(&scratch[n-1]) // 1/(den[0]···den[n−1])
	if inv.Equal(new(field.Element)) == 1 {
		return false
	}
	for i := n - 1; i > 0; i-- {
		t.Multiply(&inv, &scratch[i-1]) // 1/den[i]
		inv.Multiply(&inv, &den[i])     // 1/(den[0]···den[i−1])
		den[i] = t
	}
	den[0] = inv
	return true
}

// walker is one goroutine's walk. It is not safe for concurrent use.
type walker struct {
	tab  *walkTable
	hash *workHasher

	start      Private // scalar of the walk's first center
	center     int64   // the center's scalar is start + 8·center
	groupsLeft int     // groups the walk may still take; 0: start anew
	uC, vC     field.Element

	den, scratch []field.Element    // walkHalf+1 denominators, then inverses
	pubs         *[groupSize]Public // the current group's candidates

	attempts uint64 // candidates hashed so far
}

func newWalker(tab *walkTable, namespace string, workbit int) *walker {
	return &walker{
		tab:     tab,
		hash:    newWorkHasher(namespace, workbit, hashLanes()),
		den:     make([]field.Element, walkHalf+1),
		scratch: make([]field.Element, walkHalf+1),
		pubs:    new([groupSize]Public),
	}
}

// run walks until a candidate has workbit workbits and returns its private
// key, or returns the zero Private when done is closed. It calls report
// about every progressEvery attempts.
func (w *walker) run(done <-chan struct{}, report func()) (Private, error) {
	next := uint64(progressEvery)
	for {
		select {
		case <-done:
			return Private{}, nil
		default:
		}
		if k, err := w.step(); err != nil || !k.IsZero() {
			return k, err
		}
		if w.attempts >= next {
			report()
			next = w.attempts + progressEvery
		}
	}
}

// step hashes the next group of candidates, starting a walk first if none
// is under way, and returns the first candidate with enough workbits, or
// the zero Private.
func (w *walker) step() (Private, error) {
	if w.groupsLeft == 0 {
		if err := w.reset(); err != nil {
			return Private{}, err
		}
		w.groupsLeft = maxGroups
	}
	center := w.center
	if !w.fill() {
		w.groupsLeft = 0 // degenerate center: start afresh
		return Private{}, nil
	}
	w.groupsLeft--
	if i := w.hash.first(w.pubs[:]); i >= 0 {
		w.attempts += uint64(i + 1)
		return w.confirm(center+groupOffset(i), w.pubs[i])
	}
	w.attempts += groupSize
	return Private{}, nil
}

// reset starts a new walk at a random clamped scalar whose whole walk,
// from start − 8·walkHalf to start + 8·(maxGroups·groupSize + walkHalf),
// stays clamped.
func (w *walker) reset() error {
	for {
		if _, err := rand.Read(w.start[:]); err != nil {
			return fmt.Errorf("random start: %w", err)
		}
		w.start.clamp()
		if !w.setStart() {
			continue
		}
		return nil
	}
}

// setStart puts the center at w.start, and reports whether the walk from
// there works: it stays clamped and its center has an affine Montgomery
// form (it fails for about one scalar in 2^200).
func (w *walker) setStart() bool {
	if _, ok := scalarAt(w.start, -walkHalf); !ok {
		return false
	}
	if _, ok := scalarAt(w.start, maxGroups*groupSize+walkHalf); !ok {
		return false
	}
	s, err := new(edwards25519.Scalar).SetBytesWithClamping(w.start[:])
	if err != nil {
		panic("key: a scalar of 32 bytes was refused: " + err.Error())
	}
	p := new(edwards25519.Point).ScalarBaseMult(s)
	var u, v [1]field.Element
	if !w.tab.toMontgomery([]*edwards25519.Point{p}, u[:], v[:]) {
		return false
	}
	w.uC, w.vC, w.center = u[0], v[0], 0
	return true
}

// groupOffset returns the offset from its group's center (in steps of
// 8 in the scalar) of the i-th candidate of the order fill writes.
func groupOffset(i int) int64 {
	switch {
	case i == 0:
		return 0
	case i%2 == 1:
		return int64(i+1) / 2
	default:
		return -int64(i) / 2
	}
}

// fill writes the public keys of the current group to w.pubs in the order
// C, C+Q, C−Q, C+2Q, C−2Q, … (see groupOffset) and moves the center on.
// It returns false if the center lies in the table, so that the group's
// denominators vanish, which happens for about one center in 2^240; the
// walk then starts afresh.
func (w *walker) fill() bool {
	t := w.tab
	// Adding (u_j, v_j) to (uC, vC): λ = (v_j − vC)/(u_j − uC),
	// u = λ² − A − uC − u_j. Subtracting uses −v_j and the same
	// inverse.
	den := w.den
	for j := range walkHalf {
		den[j].Subtract(&t.u[j], &w.uC)
	}
	den[walkHalf].Subtract(&t.stepU, &w.uC)
	if !invertAll(den, w.scratch) {
		return false
	}
	copy(w.pubs[0][:], w.uC.Bytes())
	var aC, s, l, u field.Element
	aC.Add(&t.a, &w.uC)
	for j := range walkHalf {
		s.Add(&aC, &t.u[j])
		l.Subtract(&t.v[j], &w.vC)
		l.Multiply(&l, &den[j])
		u.Square(&l)
		u.Subtract(&u, &s)
		copy(w.pubs[2*j+1][:], u.Bytes())
		l.Add(&t.v[j], &w.vC) // −λ, squared all the same
		l.Multiply(&l, &den[j])
		u.Square(&l)
		u.Subtract(&u, &s)
		copy(w.pubs[2*j+2][:], u.Bytes())
	}
	// Move on: C += groupSize·Q, with v = λ·(uC − u) − vC.
	l.Subtract(&t.stepV, &w.vC)
	l.Multiply(&l, &den[walkHalf])
	u.Square(&l)
	u.Subtract(&u, &aC)
	u.Subtract(&u, &t.stepU)
	var v field.Element
	v.Subtract(&w.uC, &u)
	v.Multiply(&v, &l)
	v.Subtract(&v, &w.vC)
	w.uC, w.vC = u, v
	w.center += groupSize
	return true
}

// confirm returns the private key at offset, after checking with X25519
// that its public key is pub, the one the walk hashed.
func (w *walker) confirm(offset int64, pub Public) (Private, error) {
	k, ok := scalarAt(w.start, offset)
	if !ok {
		return Private{}, fmt.Errorf("%w: offset %d leaves the clamped range", errMismatch, offset)
	}
	if k.Public() != pub {
		return Private{}, fmt.Errorf("%w: offset %d", errMismatch, offset)
	}
	return k, nil
}

// scalarAt returns start + 8·offset as a little-endian scalar, and whether
// it is clamped (2^254 ≤ k < 2^255; it is a multiple of 8 as start is).
func scalarAt(start Private, offset int64) (Private, bool) {
	be := start
	slices.Reverse(be[:])
	k := new(big.Int).SetBytes(be[:])
	k.Add(k, new(big.Int).Lsh(big.NewInt(offset), 3))
	if k.Sign() < 0 || k.BitLen() != 255 {
		return Private{}, false
	}
	var out Private
	k.FillBytes(out[:])
	slices.Reverse(out[:])
	return out, true
}
