package dht

import (
	"cmp"
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/whnet/wh/key"
)

// Defaults of TableConfig and Config.
const (
	DefaultK            = 20 // bucket size and lookup width
	DefaultAlpha        = 3  // queries in flight per lookup
	DefaultReplacements = 8  // replacement cache per bucket
	DefaultPerPrefix    = 2  // entries per /24 or /64 in one bucket
	DefaultPerAddr      = 3  // entries per IP address in the table
	// MaxFails is how many consecutive failed queries remove an entry whose
	// bucket has no replacement waiting.
	MaxFails = 3
)

// Reasons Table.Add turns a contact away.
var (
	ErrSelf        = errors.New("dht: contact is this node")
	ErrNoAddr      = errors.New("dht: contact has no valid address")
	ErrWorkbits    = errors.New("dht: key has too few workbits")
	ErrPrefixLimit = errors.New("dht: too many contacts from this IP prefix in the bucket")
	ErrAddrLimit   = errors.New("dht: too many contacts at this IP address")
	// ErrBucketFull means the contact waits in the bucket's replacement
	// cache. It enters the bucket when an entry fails.
	ErrBucketFull = errors.New("dht: bucket full")
)

// TableConfig tunes a Table. The zero value is WireHub's public network
// without proof-of-work.
type TableConfig struct {
	// K is the bucket size. Zero means DefaultK.
	K int
	// Replacements is the size of each bucket's replacement cache. Zero
	// means DefaultReplacements; negative means none.
	Replacements int
	// Namespace is the proof-of-work namespace. Empty means
	// key.DefaultNamespace.
	Namespace string
	// Workbit is the number of workbits a key needs to be admitted. Zero
	// means no proof-of-work.
	Workbit int
	// PerPrefix caps the entries of one bucket that share an IPv4 /24 or an
	// IPv6 /64, so that one host with many keys cannot fill a bucket. Zero
	// means DefaultPerPrefix; negative means no cap. Loopback, private and
	// link-local addresses are not capped: they are someone's own LAN.
	PerPrefix int
	// PerAddr caps the entries of the whole table at one IP address (any
	// port); private addresses are exempt as for PerPrefix. Zero means
	// DefaultPerAddr; negative means no cap.
	PerAddr int
}

func (c TableConfig) withDefaults() TableConfig {
	if c.K <= 0 {
		c.K = DefaultK
	}
	if c.Replacements == 0 {
		c.Replacements = DefaultReplacements
	}
	if c.Replacements < 0 {
		c.Replacements = 0
	}
	if c.Namespace == "" {
		c.Namespace = key.DefaultNamespace
	}
	if c.PerPrefix == 0 {
		c.PerPrefix = DefaultPerPrefix
	}
	if c.PerAddr == 0 {
		c.PerAddr = DefaultPerAddr
	}
	return c
}

// Table is a Kademlia routing table. Bucket i holds contacts whose key
// shares exactly i leading bits with the table's own key; a bucket holds at
// most K entries, ordered least recently seen first, plus a replacement
// cache of contacts that arrived while it was full.
//
// Table is a pure data structure: it sends nothing and reads no clock. When
// Add reports a full bucket it names the entry whose liveness the caller
// should check; the caller reports the outcome with Add (the entry
// answered) or Failed (it did not). All methods are safe for concurrent
// use.
type Table struct {
	self key.Public
	cfg  TableConfig // immutable after NewTable

	mu      sync.Mutex
	buckets []bucket           // guarded by mu; grown to the deepest bucket ever used
	perAddr map[netip.Addr]int // guarded by mu; entries (not replacements) per capped IP address
	size    int                // guarded by mu; entries in all buckets
}

type bucket struct {
	entries      []entry   // least recently seen first
	replacements []entry   // most recently seen last
	touched      time.Time // last lookup of a key in this bucket's range
}

type entry struct {
	Contact
	seen     int64  // last message from the contact, Unix nanoseconds
	net      netKey // Addr's /24 or /64, zero if not capped
	fails    uint8  // consecutive failed queries
	checking bool   // a liveness check was handed out and not yet resolved
}

// NewTable returns an empty table for the node whose key is self.
func NewTable(self key.Public, cfg TableConfig) *Table {
	return &Table{self: self, cfg: cfg.withDefaults(), perAddr: make(map[netip.Addr]int)}
}

// Self returns the table's own key.
func (t *Table) Self() key.Public { return t.self }

// K returns the bucket size.
func (t *Table) K() int { return t.cfg.K }

// Admissible reports why k could never enter the table (own key, too few
// workbits), or nil.
func (t *Table) Admissible(k key.Public) error {
	if k == t.self {
		return ErrSelf
	}
	if t.cfg.Workbit > 0 && key.Workbits(k, t.cfg.Namespace) < t.cfg.Workbit {
		return ErrWorkbits
	}
	return nil
}

// Add records that a message from c arrived at now. A known entry is
// refreshed (address, NAT flag, last seen) and moves to the end of its
// bucket. A new contact enters its bucket if there is room; if the bucket
// is full Add returns ErrBucketFull, keeps c in the replacement cache and
// returns the bucket's least recently seen entry for the caller to ping,
// or a zero Contact when a check of that bucket is already under way. Any
// other error means c was rejected.
func (t *Table) Add(c Contact, now time.Time) (check Contact, err error) {
	if err := t.Admissible(c.Key); err != nil {
		return Contact{}, err
	}
	if !c.Addr.IsValid() || c.Addr.Port() == 0 {
		return Contact{}, ErrNoAddr
	}
	c.Addr = netip.AddrPortFrom(c.Addr.Addr().Unmap(), c.Addr.Port())

	t.mu.Lock()
	defer t.mu.Unlock()
	b := t.bucket(commonPrefixLen(t.self, c.Key))

	if i := indexOf(b.entries, c.Key); i >= 0 {
		e := b.entries[i]
		if e.Addr != c.Addr {
			n := netOf(c.Addr.Addr())
			if err := t.checkLimits(b, c.Addr.Addr(), n, c.Key); err != nil {
				return Contact{}, err
			}
			t.uncount(e)
			e.Addr, e.net = c.Addr, n
			t.count(e)
		}
		e.NAT, e.seen, e.fails, e.checking = c.NAT, now.UnixNano(), 0, false
		b.entries = append(slices.Delete(b.entries, i, i+1), e)
		return Contact{}, nil
	}
	if i := indexOf(b.replacements, c.Key); i >= 0 {
		b.replacements = slices.Delete(b.replacements, i, i+1)
	}
	e := entry{Contact: c, seen: now.UnixNano(), net: netOf(c.Addr.Addr())}
	if err := t.checkLimits(b, c.Addr.Addr(), e.net, c.Key); err != nil {
		return Contact{}, err
	}
	if len(b.entries) < t.cfg.K {
		t.insert(b, e)
		return Contact{}, nil
	}
	// Full. An entry that already failed a query goes without a check.
	if i := slices.IndexFunc(b.entries, func(e entry) bool { return e.fails > 0 }); i >= 0 {
		t.remove(b, i)
		t.insert(b, e)
		return Contact{}, nil
	}
	if t.cfg.Replacements > 0 {
		if len(b.replacements) == t.cfg.Replacements {
			b.replacements = slices.Delete(b.replacements, 0, 1)
		}
		b.replacements = append(b.replacements, e)
	}
	oldest := &b.entries[0]
	if oldest.checking {
		return Contact{}, ErrBucketFull
	}
	oldest.checking = true
	return oldest.Contact, ErrBucketFull
}

// Failed records that a query to k went unanswered. The entry is replaced
// by the most recently seen contact of the replacement cache if there is
// one, and removed after MaxFails consecutive failures if there is not. It
// reports whether k was removed.
func (t *Table) Failed(k key.Public) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	b := t.bucketOf(k)
	if b == nil {
		return false
	}
	i := indexOf(b.entries, k)
	if i < 0 {
		return false
	}
	e := &b.entries[i]
	e.fails++
	e.checking = false
	if len(b.replacements) == 0 && int(e.fails) < MaxFails {
		return false
	}
	t.remove(b, i)
	t.promote(b)
	return true
}

// Remove deletes k from the table, replacement caches included, and
// promotes a replacement into its place. It reports whether k was present.
func (t *Table) Remove(k key.Public) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	b := t.bucketOf(k)
	if b == nil {
		return false
	}
	if i := indexOf(b.replacements, k); i >= 0 {
		b.replacements = slices.Delete(b.replacements, i, i+1)
		return true
	}
	i := indexOf(b.entries, k)
	if i < 0 {
		return false
	}
	t.remove(b, i)
	t.promote(b)
	return true
}

// ExpireNAT removes NAT entries not heard from since before: a NATed node
// that stopped its keepalives has moved or gone, and its address is no
// longer worth handing out.
func (t *Table) ExpireNAT(before time.Time) (removed int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	limit := before.UnixNano()
	for bi := range t.buckets {
		b := &t.buckets[bi]
		b.replacements = slices.DeleteFunc(b.replacements, func(e entry) bool { return e.NAT && e.seen < limit })
		for i := 0; i < len(b.entries); {
			if e := b.entries[i]; e.NAT && e.seen < limit {
				t.remove(b, i)
				t.promote(b)
				removed++
				continue
			}
			i++
		}
	}
	return removed
}

// Get returns the entry for k, if k is in a bucket.
func (t *Table) Get(k key.Public) (Contact, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if b := t.bucketOf(k); b != nil {
		if i := indexOf(b.entries, k); i >= 0 {
			return b.entries[i].Contact, true
		}
	}
	return Contact{}, false
}

// Len returns the number of entries, replacement caches excluded.
func (t *Table) Len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.size
}

// Contacts returns every entry, shallowest bucket first and least recently
// seen first within a bucket.
func (t *Table) Contacts() []Contact {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]Contact, 0, t.size)
	for _, b := range t.buckets {
		for _, e := range b.entries {
			out = append(out, e.Contact)
		}
	}
	return out
}

// Closest returns up to n entries nearest to target by XOR distance,
// nearest first, NAT contacts included: the answer to a FindNode.
func (t *Table) Closest(target key.Public, n int) []Contact {
	return t.closest(target, n, false)
}

// ClosestDirect is Closest without NAT contacts: the nodes a lookup can
// query and a NATed node keeps alive.
func (t *Table) ClosestDirect(target key.Public, n int) []Contact {
	return t.closest(target, n, true)
}

// closest gathers whole groups of buckets in order of distance from target
// until it has n contacts, then sorts what it gathered. With c the length
// of the prefix target shares with self: every entry of bucket c shares at
// least c+1 bits with target; every entry of a bucket deeper than c shares
// exactly c; an entry of bucket i < c shares exactly i. So the groups (c),
// (all buckets deeper than c), (c-1), (c-2), ... come in strictly
// increasing distance, and sorting the groups gathered orders them.
func (t *Table) closest(target key.Public, n int, direct bool) []Contact {
	if n <= 0 {
		return nil
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]Contact, 0, n+t.cfg.K)
	gather := func(b *bucket) {
		for _, e := range b.entries {
			if !direct || !e.NAT {
				out = append(out, e.Contact)
			}
		}
	}
	c := commonPrefixLen(t.self, target)
	if c < len(t.buckets) {
		gather(&t.buckets[c])
		if len(out) < n {
			for i := c + 1; i < len(t.buckets); i++ {
				gather(&t.buckets[i])
			}
		}
	}
	for i := min(c, len(t.buckets)) - 1; i >= 0 && len(out) < n; i-- {
		gather(&t.buckets[i])
	}
	sortByDistance(out, target)
	if len(out) > n {
		out = out[:n]
	}
	return out
}

// Touch records a lookup of target, which refreshes target's bucket.
func (t *Table) Touch(target key.Public, now time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if c := commonPrefixLen(t.self, target); c < len(t.buckets) {
		t.buckets[c].touched = now
	}
}

// Stale returns, shallowest first, the buckets that no lookup touched since
// before, up to the deepest bucket in use. A refresh looks up a random key
// in each (RandomKey).
func (t *Table) Stale(before time.Time) []int {
	t.mu.Lock()
	defer t.mu.Unlock()
	var out []int
	for i := range t.buckets {
		if t.buckets[i].touched.Before(before) {
			out = append(out, i)
		}
	}
	return out
}

// RandomKey returns a random key in bucket i: one that shares exactly i
// leading bits with the table's own key.
func (t *Table) RandomKey(i int, r *rand.Rand) key.Public {
	var k key.Public
	for j := 0; j < len(k); j += 8 {
		v := r.Uint64()
		for b := range 8 {
			k[j+b] = byte(v >> (8 * b))
		}
	}
	if i >= 256 {
		return t.self
	}
	// Copy the first i bits of self, then flip bit i.
	for bit := 0; bit <= i; bit++ {
		mask := byte(0x80) >> (bit % 8)
		want := t.self[bit/8] & mask
		if bit == i {
			want ^= mask
		}
		k[bit/8] = k[bit/8]&^mask | want
	}
	return k
}

// bucket returns bucket i, growing the table to it. t.mu must be held.
func (t *Table) bucket(i int) *bucket {
	for len(t.buckets) <= i {
		t.buckets = append(t.buckets, bucket{})
	}
	return &t.buckets[i]
}

// bucketOf returns k's bucket or nil if it was never used. t.mu must be
// held.
func (t *Table) bucketOf(k key.Public) *bucket {
	if i := commonPrefixLen(t.self, k); i < len(t.buckets) {
		return &t.buckets[i]
	}
	return nil
}

// checkLimits returns why a contact for k at addr, in network n, may not
// join b's entries beside those it replaces. t.mu must be held.
func (t *Table) checkLimits(b *bucket, addr netip.Addr, n netKey, k key.Public) error {
	if n == (netKey{}) {
		return nil
	}
	if t.cfg.PerAddr > 0 && t.perAddr[addr] >= t.cfg.PerAddr {
		return ErrAddrLimit
	}
	if t.cfg.PerPrefix > 0 {
		same := 0
		for i := range b.entries {
			if b.entries[i].net == n && b.entries[i].Key != k {
				same++
			}
		}
		if same >= t.cfg.PerPrefix {
			return ErrPrefixLimit
		}
	}
	return nil
}

func (t *Table) insert(b *bucket, e entry) {
	b.entries = append(b.entries, e)
	t.count(e)
	t.size++
}

func (t *Table) remove(b *bucket, i int) {
	t.uncount(b.entries[i])
	b.entries = slices.Delete(b.entries, i, i+1)
	t.size--
}

// promote moves the most recently seen replacement that fits the limits
// into b. t.mu must be held.
func (t *Table) promote(b *bucket) {
	for len(b.replacements) > 0 && len(b.entries) < t.cfg.K {
		last := len(b.replacements) - 1
		e := b.replacements[last]
		b.replacements = b.replacements[:last]
		if t.checkLimits(b, e.Addr.Addr(), e.net, e.Key) == nil {
			e.fails, e.checking = 0, false
			// Its place is by when it was last seen.
			i, _ := slices.BinarySearchFunc(b.entries, e.seen, func(x entry, s int64) int { return cmp.Compare(x.seen, s) })
			b.entries = slices.Insert(b.entries, i, e)
			t.count(e)
			t.size++
			return
		}
	}
}

func (t *Table) count(e entry) {
	if e.net != (netKey{}) {
		t.perAddr[e.Addr.Addr()]++
	}
}

func (t *Table) uncount(e entry) {
	if e.net != (netKey{}) {
		a := e.Addr.Addr()
		if t.perAddr[a]--; t.perAddr[a] <= 0 {
			delete(t.perAddr, a)
		}
	}
}

func indexOf(es []entry, k key.Public) int {
	for i := range es {
		if es[i].Key == k {
			return i
		}
	}
	return -1
}

// netKey names the network an address is capped in: its /24 (IPv4) or /64
// (IPv6). The zero netKey means not capped.
type netKey struct {
	prefix uint64 // the prefix's bits, left-aligned
	family uint8  // 4 or 6
}

// netOf returns the network a counts in, or the zero netKey for addresses
// that are not capped: loopback, private, link-local, unspecified (someone's
// own LAN, where the operator decides who runs nodes).
func netOf(a netip.Addr) netKey {
	a = a.Unmap()
	if a.IsLoopback() || a.IsPrivate() || a.IsLinkLocalUnicast() || a.IsUnspecified() || !a.IsValid() {
		return netKey{}
	}
	if a.Is4() {
		b := a.As4()
		return netKey{uint64(b[0])<<56 | uint64(b[1])<<48 | uint64(b[2])<<40, 4}
	}
	b := a.As16()
	return netKey{binary.BigEndian.Uint64(b[:8]), 6}
}
