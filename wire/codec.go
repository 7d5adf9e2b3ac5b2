package wire

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	crand "crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/chacha20poly1305"
	"golang.org/x/crypto/hkdf"

	"github.com/whnet/wh/key"
)

// Envelope constants; the package comment draws the layout.
const (
	// Magic opens every control packet. Its first byte, 0xff, is never a
	// WireGuard message type (1 to 4), so one UDP port carries both.
	Magic = "\xffwhc"
	// Version is the envelope and message version this package speaks:
	// the low five bits of the version byte. The other three are flags.
	Version = 2
	// FlagFrame marks a relay frame: the envelope of Relay and Relayed,
	// whose payload is authenticated but not encrypted again (relay.go).
	FlagFrame = 0x80
	// FlagAESFrame marks a relay frame sealed with AES-256-GCM rather than
	// ChaCha20-Poly1305; only with FlagFrame.
	FlagAESFrame = 0x40
	// FlagAES says that the sender has AES and carry-less multiplication
	// in hardware, and so checks AES-256-GCM frames about 2.5 times faster
	// than ChaCha20-Poly1305 ones: frames to it may use AES when the
	// sender has them too. Any envelope may carry it.
	FlagAES = 0x20

	versionMask = 0x1f

	HeaderLen = len(Magic) + 1 + key.Size + NonceLen // 49
	// NonceLen is the size of the AEAD nonce, the header's last bytes:
	// the sender's random prefix and its counter.
	NonceLen = chacha20poly1305.NonceSize // 12
	TagLen   = chacha20poly1305.Overhead  // 16
	// Overhead is what the envelope adds to a body.
	Overhead = HeaderLen + TagLen // 65

	// MaxPacketSize bounds the UDP payload of control messages other than
	// relayed traffic; Nodes keeps to it. It is IPv6's minimum link MTU,
	// used as a payload bound: with IPv6 and UDP headers the datagram is
	// 1328 bytes, well under the 1500 of the paths WireGuard itself needs.
	MaxPacketSize = 1280
	// MaxBodySize is the largest body that fits in MaxPacketSize.
	MaxBodySize = MaxPacketSize - Overhead // 1215

	// MaxSkew is how far a packet's counter, read as Unix nanoseconds, may
	// be from the receiver's clock.
	MaxSkew = 5 * time.Minute

	// DefaultCacheSize is the default number of peers a Codec keeps.
	DefaultCacheSize = 4096

	// windowSize is how many of a sender's newest counters are remembered:
	// how far packets from one sender may be reordered.
	windowSize = 32

	// kdfLabel starts the HKDF info and binds the keys to this protocol;
	// the key schedule has not changed since version 1.
	kdfLabel = "wh control v1"
)

// Errors of Open and Seal. Open returns them unwrapped, so that dropping a
// packet costs no allocation; body errors are those of ParseMessage.
var (
	ErrShort        = errors.New("packet too short")
	ErrMagic        = errors.New("not a control packet")
	ErrVersion      = errors.New("unknown version")
	ErrWorkbits     = errors.New("sender has too few workbits")
	ErrKeyAgreement = errors.New("key agreement failed: low-order public key")
	ErrAuth         = errors.New("authentication failed")
	ErrStale        = errors.New("packet too old")
	ErrFuture       = errors.New("packet from the future")
	ErrReplay       = errors.New("replayed packet")
	ErrBusy         = errors.New("too many new senders: key derivation limited")
)

// Stats counts packets sealed, opened, and dropped by reason. Drops are
// listed in the order Open checks for them; each dropped packet is counted
// once, under the first check it fails.
type Stats struct {
	Sealed uint64
	Opened uint64

	Short        uint64 // shorter than Overhead plus a type byte
	BadMagic     uint64
	BadVersion   uint64
	Underworked  uint64 // sender's workbits below the codec's
	Busy         uint64 // new sender beyond the derivation limits (WithDeriveLimits)
	KeyAgreement uint64 // sender key of low order
	Auth         uint64 // AEAD failed: tampered, or not for us
	Stale        uint64 // counter more than MaxSkew behind our clock
	Future       uint64 // counter more than MaxSkew ahead of our clock
	Replay       uint64 // counter seen before, or older than the window
	Malformed    uint64 // authenticated body that does not parse
	UnknownType  uint64 // authenticated body of a type we do not know
}

type stats struct {
	sealed, opened                            atomic.Uint64
	short, badMagic, badVersion, underworked  atomic.Uint64
	keyAgreement, auth, stale, future, replay atomic.Uint64
	busy, malformed, unknownType              atomic.Uint64
}

// A Codec seals and opens control packets for one private key. It is safe
// for concurrent use.
type Codec struct {
	// Constant after NewCodec.
	priv      key.Private
	pub       key.Public
	namespace string
	workbit   int
	now       func() time.Time
	cacheSize int
	aes       bool     // AES-GCM in hardware here: FlagAES, and AES frames to peers that have it
	prefix    [4]byte  // random: the first 4 bytes of every nonce this codec seals with
	limit     *limiter // nil: no limits (WithDeriveLimits); safe for concurrent use

	last  atomic.Uint64 // the last counter Seal used
	stats stats

	mu sync.Mutex
	// peers holds every cached peer: the pinned ones, and up to cacheSize
	// others, which are also in evictable (in no order; peer.slot is the
	// index). pins holds the pin sets, each without repeats.
	peers     map[key.Public]*peer    // guarded by mu
	evictable []evictable             // guarded by mu
	pins      map[string][]key.Public // guarded by mu
}

// An evictable is a cached peer that no pin set holds, and the time it
// was last used: our Unix ns when we last sealed to it or accepted a
// packet from it. The times lie side by side for evictLocked to scan.
type evictable struct {
	p    *peer
	used int64
}

// A peer is what a Codec keeps about one remote key.
type peer struct {
	key key.Public
	// send seals packets to the peer, recv opens packets from it. Both are
	// set by derive and never change.
	send, recv cipher.AEAD
	// sendAES and recvAES do the same for AES frames.
	sendAES, recvAES cipher.AEAD
	// aes: the peer's last authenticated envelope carried FlagAES.
	aes atomic.Bool
	// worked: the key has the codec's workbits (set by derive), so that
	// Open hashes a key once, not once per packet.
	worked bool

	// Guarded by Codec.mu.
	slot   int // index in Codec.evictable; -1 when not there
	pins   int // how many pin sets hold the key
	window window
}

// An Option configures a Codec.
type Option func(*Codec)

// WithClock makes the codec read the time from now instead of time.Now,
// for the counters it sends and the freshness check. For tests.
func WithClock(now func() time.Time) Option {
	return func(c *Codec) { c.now = now }
}

// WithCacheSize bounds the number of peers whose keys and replay windows the
// codec keeps. Zero or less means DefaultCacheSize.
func WithCacheSize(n int) Option {
	return func(c *Codec) {
		if n > 0 {
			c.cacheSize = n
		}
	}
}

// WithAES overrides whether the codec has AES in hardware (see FlagAES).
// For tests and benchmarks.
func WithAES(has bool) Option {
	return func(c *Codec) { c.aes = has }
}

// NewCodec returns a codec for priv that accepts only senders with at least
// workbit workbits in namespace. Workbit 0 accepts any key.
func NewCodec(priv key.Private, namespace string, workbit int, opts ...Option) *Codec {
	c := &Codec{
		priv:      priv,
		pub:       priv.Public(),
		namespace: namespace,
		workbit:   workbit,
		now:       time.Now,
		cacheSize: DefaultCacheSize,
		aes:       hasAESHardware,
		peers:     make(map[key.Public]*peer),
		pins:      make(map[string][]key.Public),
	}
	crand.Read(c.prefix[:]) // never fails
	for _, o := range opts {
		o(c)
	}
	return c
}

// Public returns the codec's public key, the sender key of its packets.
func (c *Codec) Public() key.Public { return c.pub }

// Stats returns the codec's counters.
func (c *Codec) Stats() Stats {
	s := &c.stats
	return Stats{
		Sealed: s.sealed.Load(), Opened: s.opened.Load(),
		Short: s.short.Load(), BadMagic: s.badMagic.Load(), BadVersion: s.badVersion.Load(),
		Underworked: s.underworked.Load(), KeyAgreement: s.keyAgreement.Load(), Auth: s.auth.Load(),
		Stale: s.stale.Load(), Future: s.future.Load(), Replay: s.replay.Load(), Busy: s.busy.Load(),
		Malformed: s.malformed.Load(), UnknownType: s.unknownType.Load(),
	}
}

// Seal appends to dst the packet carrying m from c to the key to, and
// returns the extended slice. On error dst is returned unchanged.
func (c *Codec) Seal(dst []byte, to key.Public, m Message) ([]byte, error) {
	p, err := c.lookup(to)
	if err != nil {
		return dst, fmt.Errorf("seal %v to %s: %w", m.Type(), to, err)
	}
	if f, ok := m.(framed); ok {
		return c.sealFrame(dst, p, f)
	}
	start := len(dst)
	b := append(dst, Magic...)
	b = append(b, c.version())
	b = append(b, c.pub[:]...)
	b = append(b, c.prefix[:]...)
	b = binary.BigEndian.AppendUint64(b, c.nextCounter())
	b, err = m.AppendBinary(b)
	if err != nil {
		return dst, fmt.Errorf("seal %v to %s: %w", m.Type(), to, err)
	}
	header := b[start : start+HeaderLen]
	body := b[start+HeaderLen:]
	b = p.send.Seal(b[:start+HeaderLen], nonce(header), body, header)
	c.stats.sealed.Add(1)
	return b, nil
}

// sealFrame is Seal for a relay frame: header, payload, then the frame's
// type and key encrypted, and the tag over all of it.
func (c *Codec) sealFrame(dst []byte, p *peer, f framed) ([]byte, error) {
	t, k, payload := f.frame()
	if err := checkPayload(t, len(payload)); err != nil {
		return dst, err
	}
	start := len(dst)
	b := append(dst, Magic...)
	aead, v := p.send, c.version()|FlagFrame
	if c.aes && p.aes.Load() {
		aead, v = p.sendAES, v|FlagAESFrame
	}
	b = append(b, v)
	b = append(b, c.pub[:]...)
	b = append(b, c.prefix[:]...)
	b = binary.BigEndian.AppendUint64(b, c.nextCounter())
	b = append(b, payload...)
	var trailer [RelayHeaderLen]byte
	trailer[0] = byte(t)
	copy(trailer[1:], k[:])
	b = aead.Seal(b, nonce(b[start:start+HeaderLen]), trailer[:], b[start:])
	c.stats.sealed.Add(1)
	return b, nil
}

// version returns the version byte of the codec's envelopes.
func (c *Codec) version() byte {
	if c.aes {
		return Version | FlagAES
	}
	return Version
}

// Open authenticates and decrypts a packet and parses its body. Checks run
// cheapest first: length, magic, version, the sender's workbits, the
// derivation limits and the key agreement (for a sender without cached
// keys), the AEAD, freshness, the sender's replay window, the body. A
// packet that fails is counted in Stats under the first check it fails.
//
// from is set once the packet is authenticated, even if a later check
// rejects it, so that callers can tell which peer has a skewed clock.
//
// Open knows no source address: of the derivation limits, only the total
// applies.
func (c *Codec) Open(pkt []byte) (from key.Public, m Message, err error) {
	return c.open(nil, netip.Addr{}, pkt)
}

// OpenInPlace is Open for a packet from src, decrypting pkt where it lies:
// pkt is overwritten, and m may refer to it (a relay frame's payload
// does), so it is valid only as long as pkt is. A node's receive path
// takes this way: it saves an allocation and a copy per packet, and src's
// prefix has its own derivation limit (DeriveLimits.PerPrefix).
func (c *Codec) OpenInPlace(src netip.Addr, pkt []byte) (from key.Public, m Message, err error) {
	if len(pkt) < HeaderLen {
		return c.open(nil, src, pkt)
	}
	return c.open(pkt[HeaderLen:HeaderLen], src, pkt)
}

// open opens pkt from src, decrypting its body to dst.
func (c *Codec) open(dst []byte, src netip.Addr, pkt []byte) (from key.Public, m Message, err error) {
	s := &c.stats
	switch {
	case len(pkt) < Overhead+1:
		return drop(&s.short, ErrShort)
	case string(pkt[:len(Magic)]) != Magic:
		return drop(&s.badMagic, ErrMagic)
	}
	v := pkt[len(Magic)]
	isFrame := v&FlagFrame != 0
	switch {
	case v&versionMask != Version || v&FlagAESFrame != 0 && !isFrame:
		return drop(&s.badVersion, ErrVersion)
	case isFrame && len(pkt) < minFrameLen:
		return drop(&s.short, ErrShort)
	}
	header := pkt[:HeaderLen]
	sender := key.Public(header[len(Magic)+1:])
	p := c.cached(sender)
	switch {
	case p != nil && !p.worked:
		return drop(&s.underworked, ErrWorkbits)
	case p == nil && c.workbit > 0 && key.Workbits(sender, c.namespace) < c.workbit:
		return drop(&s.underworked, ErrWorkbits)
	case p == nil:
		if !c.limit.allow(src, c.now().UnixNano()) {
			return drop(&s.busy, ErrBusy)
		}
		var err error
		if p, err = c.derive(sender); err != nil { // cached only once a packet authenticates
			return drop(&s.keyAgreement, ErrKeyAgreement)
		}
	}
	var body []byte
	if isFrame {
		// Everything up to the trailer is associated data; the trailer,
		// decrypted, is the frame's type and key.
		n := len(pkt) - frameTrailerLen
		if dst != nil {
			dst = pkt[n:n]
		}
		aead := p.recv
		if v&FlagAESFrame != 0 {
			aead = p.recvAES
		}
		body, err = aead.Open(dst, nonce(header), pkt[n:], pkt[:n])
	} else {
		body, err = p.recv.Open(dst, nonce(header), pkt[HeaderLen:], header)
	}
	if err != nil {
		return drop(&s.auth, ErrAuth)
	}

	from = sender
	counter := binary.BigEndian.Uint64(header[HeaderLen-8:])
	now := c.now().UnixNano()
	switch t := uint64(max(now, 0)); {
	case counter < t && t-counter > uint64(MaxSkew):
		s.stale.Add(1)
		return from, nil, ErrStale
	case counter > t && counter-t > uint64(MaxSkew):
		s.future.Add(1)
		return from, nil, ErrFuture
	}
	if p, err = c.accept(p, counter, now); err != nil {
		s.replay.Add(1)
		return from, nil, err
	}
	if aes := v&FlagAES != 0; p.aes.Load() != aes {
		p.aes.Store(aes)
	}

	if isFrame {
		m, err = parseFrame(body, pkt[HeaderLen:len(pkt)-frameTrailerLen], dst == nil)
	} else if m, err = ParseMessage(body); err == nil && isFramed(m) {
		err = fmt.Errorf("%v in a plain envelope: %w", m.Type(), ErrMalformed)
	}
	switch {
	case errors.Is(err, ErrUnknownType):
		s.unknownType.Add(1)
		return from, nil, err
	case err != nil:
		s.malformed.Add(1)
		return from, nil, err
	}
	s.opened.Add(1)
	return from, m, nil
}

func drop(n *atomic.Uint64, err error) (key.Public, Message, error) {
	n.Add(1)
	return key.Public{}, nil, err
}

// nonce returns the AEAD nonce of a packet, the header's last NonceLen
// bytes: the sender's prefix and counter.
func nonce(header []byte) []byte { return header[HeaderLen-NonceLen : HeaderLen] }

// nextCounter returns the sender's clock in Unix nanoseconds, made strictly
// greater than every counter returned before. If the clock steps back, the
// counter runs one nanosecond a packet ahead of it until it catches up.
func (c *Codec) nextCounter() uint64 {
	now := uint64(max(c.now().UnixNano(), 0))
	for {
		last := c.last.Load()
		next := max(now, last+1)
		if c.last.CompareAndSwap(last, next) {
			return next
		}
	}
}

// cached returns the cached peer for k, or nil.
func (c *Codec) cached(k key.Public) *peer {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.peers[k]
}

// lookup returns the cached peer for k, or derives its keys and caches
// it. It fails only when k is of low order.
func (c *Codec) lookup(k key.Public) (*peer, error) {
	now := c.now().UnixNano()
	c.mu.Lock()
	p := c.peers[k]
	if p != nil {
		c.usedLocked(p, now)
	}
	c.mu.Unlock()
	if p != nil {
		return p, nil
	}
	p, err := c.derive(k) // ~100-200 µs of CPU: outside the lock
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if q := c.peers[k]; q != nil { // another goroutine was faster
		c.usedLocked(q, now)
		return q, nil
	}
	c.insertLocked(p, now)
	return p, nil
}

// accept records counter in the replay window of p's sender, caching p if
// its key is not cached (any more), and returns the cached peer. It
// reports ErrReplay if the counter was seen before or is older than the
// window. now is our clock in Unix ns.
func (c *Codec) accept(p *peer, counter uint64, now int64) (*peer, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if q := c.peers[p.key]; q != nil {
		p = q
	} else {
		// New, or evicted since Open looked it up: p is then cached
		// again with the window it had, which only refuses more.
		c.insertLocked(p, now)
	}
	if !p.window.accept(counter) {
		return p, ErrReplay
	}
	c.usedLocked(p, now)
	return p, nil
}

// usedLocked records that p, cached, was used at now.
func (c *Codec) usedLocked(p *peer, now int64) {
	if p.slot >= 0 {
		c.evictable[p.slot].used = now
	}
}

// insertLocked caches p, which is not cached, evicting another peer if
// there is no room.
func (c *Codec) insertLocked(p *peer, now int64) {
	c.peers[p.key] = p
	if p.pins == 0 {
		c.addEvictableLocked(p, now)
	}
}

// addEvictableLocked adds p to the peers that may be evicted, evicting
// one first if there are cacheSize of them.
func (c *Codec) addEvictableLocked(p *peer, now int64) {
	if len(c.evictable) >= c.cacheSize {
		c.evictLocked(now)
	}
	p.slot = len(c.evictable)
	c.evictable = append(c.evictable, evictable{p, now})
}

// evictLocked evicts one of the peers that are not pinned: one unused
// for 2*MaxSkew if there is one, since every counter it was accepted with
// is then stale and forgetting its window lets no replay through, or else
// one drawn at random. So a peer's chance to go does not depend on how
// often it sends: keys that keep sending cannot crowd the others out, and
// a new sender always gets in. (Forgetting a recent peer's window lets its
// packets of the last MaxSkew be replayed once; pinned peers never lose
// theirs.) The scan costs a few µs for the default cache size, against the
// 100 µs of the derivation that comes with every new peer.
func (c *Codec) evictLocked(now int64) {
	n := len(c.evictable)
	if n == 0 {
		return
	}
	start := rand.IntN(n)
	victim := start
	for j := range n {
		i := (start + j) % n
		if now-c.evictable[i].used > int64(2*MaxSkew) {
			victim = i
			break
		}
	}
	c.removeEvictableLocked(c.evictable[victim].p)
}

// removeEvictableLocked takes p out of the evictable peers and out of the
// cache.
func (c *Codec) removeEvictableLocked(p *peer) {
	c.unslotLocked(p)
	delete(c.peers, p.key)
}

// unslotLocked takes p out of c.evictable.
func (c *Codec) unslotLocked(p *peer) {
	last := len(c.evictable) - 1
	q := c.evictable[last]
	c.evictable[p.slot], q.p.slot = q, p.slot
	c.evictable[last] = evictable{}
	c.evictable = c.evictable[:last]
	p.slot = -1
}

// Pin makes keys the pin set named set, replacing the keys it held (none
// names no keys: the set goes). A key that any pin set holds stays cached,
// with its replay window, however long it is quiet and however many other
// senders come: a node pins its trusted peers, its boot nodes and the
// relays it uses, so that they are heard at once, never refused by the
// derivation limits. Pinned keys are not counted against the cache size.
// Pin derives the keys not cached yet, on the caller's goroutine; it skips
// keys of low order.
func (c *Codec) Pin(set string, keys ...key.Public) {
	var uniq []key.Public
	derived := make(map[key.Public]*peer)
	for _, k := range keys {
		if slices.Contains(uniq, k) {
			continue
		}
		if c.cached(k) == nil {
			p, err := c.derive(k)
			if err != nil {
				continue
			}
			derived[k] = p
		}
		uniq = append(uniq, k)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now().UnixNano()
	old := c.pins[set]
	// Pin the new set before unpinning the old, so that keys in both
	// stay.
	for _, k := range uniq {
		p := c.peers[k]
		if p == nil {
			if p = derived[k]; p == nil {
				// Cached when we looked, evicted since: derive again.
				var err error
				if p, err = c.derive(k); err != nil {
					continue
				}
			}
			c.peers[k] = p
		} else if p.pins == 0 {
			c.unslotLocked(p)
		}
		p.pins++
	}
	for _, k := range old {
		p := c.peers[k]
		if p == nil {
			continue
		}
		if p.pins--; p.pins == 0 {
			c.addEvictableLocked(p, now)
		}
	}
	if len(uniq) == 0 {
		delete(c.pins, set)
	} else {
		c.pins[set] = uniq
	}
}

// Pinned reports whether a pin set holds k.
func (c *Codec) Pinned(k key.Public) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	p := c.peers[k]
	return p != nil && p.pins > 0
}

// derive computes the keys c shares with k:
//
//	secret = X25519(c's private key, k)
//	lo, hi = c's public key and k, lower first (bytewise)
//	okm    = HKDF-SHA256(secret, salt = none, info = "wh control v1" ‖ lo ‖ hi, 128 bytes)
//	okm[0:32] seals lo→hi, okm[32:64] seals hi→lo (ChaCha20-Poly1305)
//	okm[64:96] seals AES frames lo→hi, okm[96:128] hi→lo (AES-256-GCM)
func (c *Codec) derive(k key.Public) (*peer, error) {
	secret, err := c.priv.SharedSecret(k)
	if err != nil {
		return nil, ErrKeyAgreement
	}
	lo, hi := c.pub, k
	if bytes.Compare(lo[:], hi[:]) > 0 {
		lo, hi = hi, lo
	}
	info := make([]byte, 0, len(kdfLabel)+2*key.Size)
	info = append(append(append(info, kdfLabel...), lo[:]...), hi[:]...)
	var okm [4 * chacha20poly1305.KeySize]byte
	if _, err := io.ReadFull(hkdf.New(sha256.New, secret[:], nil, info), okm[:]); err != nil {
		return nil, fmt.Errorf("hkdf: %w", err)
	}
	up, err := chacha20poly1305.New(okm[0:32])
	if err != nil {
		return nil, err
	}
	down, err := chacha20poly1305.New(okm[32:64])
	if err != nil {
		return nil, err
	}
	upAES, err := newGCM(okm[64:96])
	if err != nil {
		return nil, err
	}
	downAES, err := newGCM(okm[96:128])
	if err != nil {
		return nil, err
	}
	p := &peer{key: k, slot: -1, worked: c.workbit <= 0 || key.Workbits(k, c.namespace) >= c.workbit}
	switch {
	case c.pub == k: // to ourselves: one direction
		p.send, p.recv = up, up
		p.sendAES, p.recvAES = upAES, upAES
	case c.pub == lo:
		p.send, p.recv = up, down
		p.sendAES, p.recvAES = upAES, downAES
	default:
		p.send, p.recv = down, up
		p.sendAES, p.recvAES = downAES, upAES
	}
	return p, nil
}

func newGCM(key []byte) (cipher.AEAD, error) {
	b, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(b)
}

// A window remembers the windowSize largest counters accepted from one
// sender. A counter is new if it is not among them and is larger than the
// smallest of them once the window is full: every counter that left the
// window is smaller than every counter in it.
//
// WireGuard's bitmap fits consecutive counters; ours are nanosecond
// timestamps, far apart, so the window keeps the counters themselves.
type window struct {
	seen [windowSize]uint64
	n    int // seen[:n] are in use
}

// accept reports whether counter is new and records it.
func (w *window) accept(counter uint64) bool {
	low := 0 // index of the smallest counter
	for i, s := range w.seen[:w.n] {
		if s == counter {
			return false
		}
		if s < w.seen[low] {
			low = i
		}
	}
	if w.n < len(w.seen) {
		w.seen[w.n] = counter
		w.n++
		return true
	}
	if counter < w.seen[low] {
		return false
	}
	w.seen[low] = counter
	return true
}
