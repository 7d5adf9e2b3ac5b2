package dht

import (
	"cmp"
	"encoding/binary"
	"errors"
	"hash/maphash"
	"math"
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
	DefaultPerPrefix    = 2  // entries per /24 or /64 in one full bucket
	DefaultPerAddr      = 3  // entries per IP address in the full buckets of the table
	// DefaultMaxNAT is how many NAT contacts a table keeps: the NATed
	// nodes that keep themselves alive through this node.
	DefaultMaxNAT = 4096
	// MaxFails is how many consecutive failed queries remove an entry whose
	// bucket has no replacement waiting.
	MaxFails = 3
	// DefaultCheckAfter is how long an entry must have been silent before a
	// newcomer to its full bucket makes the table ask for a liveness check.
	DefaultCheckAfter = time.Minute
)

// Reasons Table.Add turns a contact away.
var (
	ErrSelf        = errors.New("dht: contact is this node")
	ErrNoAddr      = errors.New("dht: contact has no valid address")
	ErrWorkbits    = errors.New("dht: key has too few workbits")
	ErrPrefixLimit = errors.New("dht: too many contacts from this IP prefix in the bucket")
	ErrAddrLimit   = errors.New("dht: too many contacts at this IP address")
	// ErrNATFull means the NAT contacts are at MaxNAT and the newcomer's
	// /24 holds at least as many of them as any other.
	ErrNATFull = errors.New("dht: no room for NAT contacts from this prefix")
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
	// PerPrefix is the share of one IPv4 /24 or IPv6 /64 in a bucket, so
	// that one host with many keys cannot fill a bucket: entries beyond it
	// are admitted while the bucket has room, and give way to any newcomer
	// within its own prefix's share once the bucket is full. Closest and
	// lookups also take at most PerPrefix contacts of one prefix before
	// those of other prefixes. Zero means DefaultPerPrefix; negative means
	// no cap. Loopback, private and link-local addresses are not capped:
	// they are someone's own LAN.
	PerPrefix int
	// PerAddr is the share of one IP address (any port) in the whole
	// table, enforced as PerPrefix is; private addresses are exempt as for
	// PerPrefix. Zero means DefaultPerAddr; negative means no cap.
	PerAddr int
	// MaxNAT bounds the NAT contacts, which are kept apart from the
	// buckets (see Add). When it is reached, a newcomer takes the place of
	// the least recently seen NAT contact of the /24 (/64) that holds the
	// most, if that is more than the newcomer's own holds. Zero means
	// DefaultMaxNAT.
	MaxNAT int
	// CheckAfter is how long the least recently seen entry of a full bucket
	// must have been silent for a newcomer to trigger a liveness check of
	// it. Fresher entries are kept without a check; otherwise every ping
	// could set off a chain of checks, each checked node admitting its
	// checker and checking its own oldest entry in turn. Zero means
	// DefaultCheckAfter; negative means always check.
	CheckAfter time.Duration
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
	if c.CheckAfter == 0 {
		c.CheckAfter = DefaultCheckAfter
	}
	if c.MaxNAT <= 0 {
		c.MaxNAT = DefaultMaxNAT
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
	buckets []bucket             // guarded by mu; grown to the deepest bucket ever used
	perAddr map[uint64]int32     // guarded by mu; entries (not replacements) per capped IP address, by addrHash
	seed    maphash.Seed         // for addrHash; random, so that nobody can aim at a collision
	size    int                  // guarded by mu; entries in all buckets
	nat     map[key.Public]entry // guarded by mu; NAT contacts, apart from the buckets
	natPer  map[uint64]int32     // guarded by mu; NAT contacts per prefix (natGroup)
}

type bucket struct {
	entries      []entry   // least recently seen first
	replacements []entry   // most recently seen last
	touched      time.Time // last lookup of a key in this bucket's range
}

// entry is a contact in a bucket. It holds no pointers (72 bytes), so that
// the simulator's 100,000 tables stay small and cost the GC nothing.
type entry struct {
	key      key.Public
	ip       [16]byte // IPv4 as IPv4-mapped IPv6
	seen     int64    // last message from the contact, Unix nanoseconds
	net      uint64   // the address's capped network (netOf), 0 if not capped
	port     uint16
	nat      bool
	fails    uint8 // consecutive failed queries
	checking bool  // a liveness check was handed out and not yet resolved
}

func newEntry(c Contact, now time.Time) entry {
	a := c.Addr.Addr()
	return entry{key: c.Key, ip: a.As16(), port: c.Addr.Port(), nat: c.NAT, seen: now.UnixNano(), net: netOf(a)}
}

func (e *entry) addr() netip.Addr { return netip.AddrFrom16(e.ip).Unmap() }

func (e *entry) contact() Contact {
	return Contact{Key: e.key, Addr: netip.AddrPortFrom(e.addr(), e.port), NAT: e.nat}
}

// NewTable returns an empty table for the node whose key is self.
func NewTable(self key.Public, cfg TableConfig) *Table {
	return &Table{
		self: self, cfg: cfg.withDefaults(), seed: maphash.MakeSeed(),
		perAddr: make(map[uint64]int32), nat: make(map[key.Public]entry), natPer: make(map[uint64]int32),
	}
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
// is full, a newcomer within its prefix's and address's share (PerPrefix,
// PerAddr) takes the place of an entry beyond its own; otherwise Add
// returns ErrBucketFull (or ErrPrefixLimit, ErrAddrLimit for a newcomer
// beyond its share), keeps c in the replacement cache and returns the
// bucket's least recently seen entry for the caller to ping, or a zero
// Contact when that entry was seen within CheckAfter or a check of it is
// already under way. Any other error means c was rejected.
//
// NAT contacts are kept apart from the buckets, up to MaxNAT, and are
// returned by Closest only for their own key: they are lookup targets,
// never hops, so they need no place in a bucket, and many NATed nodes
// behind one address or prefix (a CGNAT, one ISP's customers) can all be
// kept by the few nodes nearest to their keys.
func (t *Table) Add(c Contact, now time.Time) (check Contact, err error) {
	if err := t.Admissible(c.Key); err != nil {
		return Contact{}, err
	}
	if !c.Addr.IsValid() || c.Addr.Port() == 0 || c.Addr.Addr().Zone() != "" {
		return Contact{}, ErrNoAddr
	}
	e := newEntry(c, now)

	t.mu.Lock()
	defer t.mu.Unlock()
	if c.NAT {
		if b := t.bucketOf(c.Key); b != nil {
			if i := indexOf(b.entries, c.Key); i >= 0 {
				t.remove(b, i)
				t.promote(b)
			}
		}
		return Contact{}, t.addNAT(e)
	}
	t.removeNAT(c.Key)
	b := t.bucket(commonPrefixLen(t.self, c.Key))

	if i := indexOf(b.entries, c.Key); i >= 0 {
		old := b.entries[i]
		if old.ip != e.ip || old.port != e.port {
			t.uncount(&old)
			t.count(&e)
		}
		b.entries = append(slices.Delete(b.entries, i, i+1), e)
		return Contact{}, nil
	}
	if i := indexOf(b.replacements, c.Key); i >= 0 {
		b.replacements = slices.Delete(b.replacements, i, i+1)
	}
	if len(b.entries) < t.cfg.K {
		t.insert(b, e)
		return Contact{}, nil
	}
	// Full. A newcomer within its share takes the place of an entry
	// beyond its own; an entry that already failed a query goes without
	// a check.
	limit := t.checkLimits(b, &e)
	i := -1
	if limit == nil {
		i = t.beyondShare(b)
	}
	if i < 0 {
		i = slices.IndexFunc(b.entries, func(e entry) bool { return e.fails > 0 })
	}
	if i >= 0 {
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
	if limit != nil {
		return Contact{}, limit
	}
	oldest := &b.entries[0]
	if oldest.checking || (t.cfg.CheckAfter > 0 && oldest.seen > now.Add(-t.cfg.CheckAfter).UnixNano()) {
		return Contact{}, ErrBucketFull
	}
	oldest.checking = true
	return oldest.contact(), ErrBucketFull
}

// addNAT keeps e as a NAT contact, making room as MaxNAT says. t.mu must
// be held.
func (t *Table) addNAT(e entry) error {
	g := natGroup(e.addr())
	if old, ok := t.nat[e.key]; ok {
		if natGroup(old.addr()) == g {
			t.nat[e.key] = e
			return nil
		}
		t.removeNAT(e.key) // moved to another prefix: a newcomer there
	}
	if len(t.nat) >= t.cfg.MaxNAT {
		// The group holding the most gives way, if it holds more than
		// the newcomer's.
		var most uint64
		for k, n := range t.natPer {
			if n > t.natPer[most] || (n == t.natPer[most] && k < most) {
				most = k
			}
		}
		if t.natPer[most] <= t.natPer[g] {
			return ErrNATFull
		}
		var victim key.Public
		oldest := int64(math.MaxInt64)
		for k, x := range t.nat {
			if x.seen < oldest && natGroup(x.addr()) == most {
				victim, oldest = k, x.seen
			}
		}
		t.removeNAT(victim)
	}
	t.nat[e.key] = e
	t.natPer[g]++
	return nil
}

// removeNAT forgets the NAT contact k, if there is one. t.mu must be held.
func (t *Table) removeNAT(k key.Public) bool {
	e, ok := t.nat[k]
	if !ok {
		return false
	}
	delete(t.nat, k)
	g := natGroup(e.addr())
	if t.natPer[g]--; t.natPer[g] <= 0 {
		delete(t.natPer, g)
	}
	return true
}

// natGroup is the /24 (IPv4) or /64 (IPv6) a NAT contact counts in for
// MaxNAT, private addresses included.
func natGroup(a netip.Addr) uint64 {
	if a.Is4() {
		b := a.As4()
		return 1<<32 | uint64(b[0])<<16 | uint64(b[1])<<8 | uint64(b[2])
	}
	b := a.As16()
	return binary.BigEndian.Uint64(b[:8])
}

// Heard refreshes the entry for k, as Add would, if k is in a bucket at
// addr, and reports whether it was. Unlike Add it never admits anyone: it
// is for messages that do not tell whether their sender can be reached.
func (t *Table) Heard(k key.Public, addr netip.AddrPort, now time.Time) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if e, ok := t.nat[k]; ok {
		if e.ip != addr.Addr().As16() || e.port != addr.Port() {
			return false
		}
		e.seen = now.UnixNano()
		t.nat[k] = e
		return true
	}
	b := t.bucketOf(k)
	if b == nil {
		return false
	}
	i := indexOf(b.entries, k)
	if i < 0 || b.entries[i].ip != addr.Addr().As16() || b.entries[i].port != addr.Port() {
		return false
	}
	e := b.entries[i]
	e.seen, e.fails, e.checking = now.UnixNano(), 0, false
	b.entries = append(slices.Delete(b.entries, i, i+1), e)
	return true
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
	if t.removeNAT(k) {
		return true
	}
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
	for k, e := range t.nat {
		if e.seen < limit {
			t.removeNAT(k)
			removed++
		}
	}
	return removed
}

// Get returns the entry for k, if k is in a bucket.
func (t *Table) Get(k key.Public) (Contact, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if e, ok := t.nat[k]; ok {
		return e.contact(), true
	}
	if b := t.bucketOf(k); b != nil {
		if i := indexOf(b.entries, k); i >= 0 {
			return b.entries[i].contact(), true
		}
	}
	return Contact{}, false
}

// Len returns the number of entries, NAT contacts included and
// replacement caches excluded.
func (t *Table) Len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.size + len(t.nat)
}

// Contacts returns every entry, shallowest bucket first and least recently
// seen first within a bucket, then the NAT contacts.
func (t *Table) Contacts() []Contact {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]Contact, 0, t.size+len(t.nat))
	for bi := range t.buckets {
		for i := range t.buckets[bi].entries {
			out = append(out, t.buckets[bi].entries[i].contact())
		}
	}
	for _, e := range t.nat {
		out = append(out, e.contact())
	}
	return out
}

// Closest returns the answer to a FindNode: target itself if it is a NAT
// contact, then ClosestDirect(target, n), up to n in all.
func (t *Table) Closest(target key.Public, n int) []Contact {
	t.mu.Lock()
	e, ok := t.nat[target]
	t.mu.Unlock()
	if !ok || n <= 0 {
		return t.ClosestDirect(target, n)
	}
	return append([]Contact{e.contact()}, t.ClosestDirect(target, n-1)...)
}

// ClosestDirect returns up to n direct entries nearest to target by XOR
// distance, nearest first, taking at most PerPrefix of one /24 (/64)
// before those of other prefixes (see diverse): the nodes a lookup starts
// from and a NATed node keeps alive.
func (t *Table) ClosestDirect(target key.Public, n int) []Contact {
	return t.closest(target, n)
}

// closest gathers whole groups of buckets in order of distance from target
// until it has n contacts within their prefixes' share, then sorts what it
// gathered and picks by diverse. With c the length of the prefix target
// shares with self: every entry of bucket c shares at least c+1 bits with
// target; every entry of a bucket deeper than c shares exactly c; an entry
// of bucket i < c shares exactly i. So the groups (c), (all buckets deeper
// than c), (c-1), (c-2), ... come in strictly increasing distance, and
// sorting the groups gathered orders them; whether a contact is within its
// prefix's share depends only on nearer ones, all gathered.
func (t *Table) closest(target key.Public, n int) []Contact {
	if n <= 0 {
		return nil
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]Contact, 0, n+t.cfg.K)
	per := map[uint64]int{}
	within := 0 // contacts gathered within their prefix's share
	gather := func(b *bucket) {
		for i := range b.entries {
			e := &b.entries[i]
			out = append(out, e.contact())
			if e.net == 0 || t.cfg.PerPrefix < 0 || per[e.net] < t.cfg.PerPrefix {
				within++
			}
			per[e.net]++
		}
	}
	c := commonPrefixLen(t.self, target)
	if c < len(t.buckets) {
		gather(&t.buckets[c])
		if within < n {
			for i := c + 1; i < len(t.buckets); i++ {
				gather(&t.buckets[i])
			}
		}
	}
	for i := min(c, len(t.buckets)) - 1; i >= 0 && within < n; i-- {
		gather(&t.buckets[i])
	}
	sortByDistance(out, target)
	return diverse(out, n, t.cfg.PerPrefix)
}

// diverse returns n of cs (sorted nearest first), keeping their order:
// those of round 0 first, nearest first, then round 1, and so on, where a
// contact's round is how many shares of perPrefix contacts of its IPv4 /24
// or IPv6 /64 are nearer than it. Contacts at uncapped addresses (private,
// loopback) are always of round 0; perPrefix < 0 means plain distance
// order. So one prefix full of Sybil keys near a target takes its share of
// the n places and then one share per round, as any other prefix does,
// however near its keys are; and a network all in one prefix (a cloud
// subnet) still gets its n nearest.
func diverse(cs []Contact, n, perPrefix int) []Contact {
	take := diversePick(len(cs), n, perPrefix, func(i int) uint64 { return netOf(cs[i].Addr.Addr()) })
	out := cs[:0:0]
	for i := range cs {
		if take[i] {
			out = append(out, cs[i])
		}
	}
	return out
}

// diversePick marks which n of count items, nearest first, diverse takes;
// net(i) is the prefix of item i (0 if uncapped).
func diversePick(count, n, perPrefix int, net func(i int) uint64) []bool {
	take := make([]bool, count)
	if count <= n || perPrefix < 0 {
		for i := range min(n, count) {
			take[i] = true
		}
		return take
	}
	if perPrefix == 0 {
		perPrefix = DefaultPerPrefix
	}
	rounds := make([]int, count)
	per := map[uint64]int{}
	for i := range count {
		if p := net(i); p != 0 {
			rounds[i] = per[p] / perPrefix
			per[p]++
		}
	}
	for r, taken := 0, 0; taken < n; r++ {
		for i := range count {
			if taken == n {
				break
			}
			if rounds[i] == r {
				take[i] = true
				taken++
			}
		}
	}
	return take
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

// beyondShare returns the index of the entry of full bucket b that gives
// way to a newcomer within its share: the least recently seen of the
// entries beyond their prefix's or address's share, taken from the prefix
// with the most entries, or -1 if every entry is within its share. t.mu
// must be held.
func (t *Table) beyondShare(b *bucket) int {
	per := map[uint64]int{}
	for i := range b.entries {
		per[b.entries[i].net]++
	}
	best, most := -1, 0
	for i := range b.entries {
		e := &b.entries[i]
		if e.net == 0 {
			continue
		}
		overPrefix := t.cfg.PerPrefix > 0 && per[e.net] > t.cfg.PerPrefix
		overAddr := t.cfg.PerAddr > 0 && t.perAddr[t.addrHash(e)] > int32(t.cfg.PerAddr)
		if (overPrefix || overAddr) && per[e.net] > most {
			// Entries are least recently seen first: the first of a
			// prefix is its oldest.
			best, most = i, per[e.net]
		}
	}
	return best
}

// checkLimits returns why e would be beyond its share in b: its prefix
// already has PerPrefix entries there, or its address PerAddr in the
// table. t.mu must be held.
func (t *Table) checkLimits(b *bucket, e *entry) error {
	if e.net == 0 {
		return nil
	}
	if t.cfg.PerAddr > 0 && t.perAddr[t.addrHash(e)] >= int32(t.cfg.PerAddr) {
		return ErrAddrLimit
	}
	if t.cfg.PerPrefix > 0 {
		same := 0
		for i := range b.entries {
			if b.entries[i].net == e.net && b.entries[i].key != e.key {
				same++
			}
		}
		if same >= t.cfg.PerPrefix {
			return ErrPrefixLimit
		}
	}
	return nil
}

// insert appends e to b, growing the bucket by steps up to K so that
// buckets never hold more room than K entries.
func (t *Table) insert(b *bucket, e entry) {
	if len(b.entries) == cap(b.entries) {
		grown := make([]entry, len(b.entries), min(max(4, 2*cap(b.entries)), t.cfg.K))
		copy(grown, b.entries)
		b.entries = grown
	}
	b.entries = append(b.entries, e)
	t.count(&e)
	t.size++
}

func (t *Table) remove(b *bucket, i int) {
	t.uncount(&b.entries[i])
	b.entries = slices.Delete(b.entries, i, i+1)
	t.size--
}

// promote moves the most recently seen replacement into b. t.mu must be
// held.
func (t *Table) promote(b *bucket) {
	if len(b.replacements) == 0 || len(b.entries) >= t.cfg.K {
		return
	}
	last := len(b.replacements) - 1
	e := b.replacements[last]
	b.replacements = b.replacements[:last]
	e.fails, e.checking = 0, false
	// Its place is by when it was last seen.
	i, _ := slices.BinarySearchFunc(b.entries, e.seen, func(x entry, s int64) int { return cmp.Compare(x.seen, s) })
	t.insert(b, e)
	copy(b.entries[i+1:], b.entries[i:])
	b.entries[i] = e
}

func (t *Table) addrHash(e *entry) uint64 { return maphash.Comparable(t.seed, e.ip) }

func (t *Table) count(e *entry) {
	if e.net != 0 && t.cfg.PerAddr > 0 {
		t.perAddr[t.addrHash(e)]++
	}
}

func (t *Table) uncount(e *entry) {
	if e.net != 0 && t.cfg.PerAddr > 0 {
		h := t.addrHash(e)
		if t.perAddr[h]--; t.perAddr[h] <= 0 {
			delete(t.perAddr, h)
		}
	}
}

func indexOf(es []entry, k key.Public) int {
	for i := range es {
		if es[i].key == k {
			return i
		}
	}
	return -1
}

// netOf returns the network a counts in for PerPrefix: its /24 (IPv4,
// tagged with bit 32 so that it is never zero) or its /64 (IPv6). It
// returns 0 for addresses that are not capped: loopback, private,
// link-local, unspecified (someone's own LAN, where its operator decides
// who runs nodes). An IPv6 /64 that is zero is not routable either.
func netOf(a netip.Addr) uint64 {
	a = a.Unmap()
	if a.IsLoopback() || a.IsPrivate() || a.IsLinkLocalUnicast() || a.IsUnspecified() || !a.IsValid() {
		return 0
	}
	if a.Is4() {
		b := a.As4()
		return 1<<32 | uint64(b[0])<<16 | uint64(b[1])<<8 | uint64(b[2])
	}
	b := a.As16()
	return binary.BigEndian.Uint64(b[:8])
}
