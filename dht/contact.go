package dht

import (
	"encoding/binary"
	"fmt"
	"math/bits"
	"net/netip"
	"slices"

	"github.com/whnet/wh/key"
)

// Contact is what the DHT knows about another node: its key and the one
// address it is reached at.
type Contact struct {
	Key key.Public
	// Addr is where the node's packets come from. For a NAT contact it is
	// the reflexive address its NAT maps it to, as seen by the node that
	// keeps it.
	Addr netip.AddrPort
	// NAT is set for a node behind NAT: it answers only nodes it has sent
	// to, so it is a lookup target but never an intermediate hop.
	NAT bool
}

func (c Contact) String() string {
	if c.NAT {
		return fmt.Sprintf("%s@%s(nat)", c.Key.Short(8), c.Addr)
	}
	return fmt.Sprintf("%s@%s", c.Key.Short(8), c.Addr)
}

// distance is the Kademlia distance a XOR b as four big-endian words, so
// that comparing distances is comparing four integers.
type distance [4]uint64

func xor(a, b key.Public) distance {
	var d distance
	for i := range d {
		d[i] = binary.BigEndian.Uint64(a[8*i:]) ^ binary.BigEndian.Uint64(b[8*i:])
	}
	return d
}

// cmp returns -1, 0 or +1 as d is nearer than, as near as, or farther than e.
func (d distance) cmp(e distance) int {
	for i := range d {
		if d[i] != e[i] {
			if d[i] < e[i] {
				return -1
			}
			return 1
		}
	}
	return 0
}

// prefixLen returns the number of leading zero bits of d: the length of the
// prefix two keys at distance d share (256 for equal keys).
func (d distance) prefixLen() int {
	for i, w := range d {
		if w != 0 {
			return 64*i + bits.LeadingZeros64(w)
		}
	}
	return 256
}

// commonPrefixLen returns how many leading bits a and b share, from 0 to
// 256. It is WireHub's bucket id minus one (key.BucketID), uncapped.
func commonPrefixLen(a, b key.Public) int { return xor(a, b).prefixLen() }

// sortByDistance sorts cs nearest to target first.
func sortByDistance(cs []Contact, target key.Public) {
	if len(cs) < 2 {
		return
	}
	type item struct {
		d distance
		c Contact
	}
	items := make([]item, len(cs))
	for i, c := range cs {
		items[i] = item{xor(c.Key, target), c}
	}
	slices.SortFunc(items, func(a, b item) int { return a.d.cmp(b.d) })
	for i := range items {
		cs[i] = items[i].c
	}
}

// PrefixRange returns the lowest and highest keys that share the first n
// bits with self and, if flip, differ from it in bit n: with flip, the
// keys of bucket n of self's table. Tables for tests and simulations are
// filled from it.
func PrefixRange(self key.Public, n int, flip bool) (lo, hi key.Public) {
	lo, hi = self, self
	for b := n; b < 256; b++ {
		mask := byte(0x80) >> (b % 8)
		if b == n && flip {
			lo[b/8] ^= mask
			hi[b/8] ^= mask
			continue
		}
		lo[b/8] &^= mask
		hi[b/8] |= mask
	}
	return lo, hi
}
