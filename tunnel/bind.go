package tunnel

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"golang.zx2c4.com/wireguard/conn"
	"golang.zx2c4.com/wireguard/device"

	"github.com/whnet/wh/key"
)

// Errors returned by Bind.
var (
	ErrNoPath       = errors.New("tunnel: no path to peer")
	ErrUnknownPeer  = errors.New("tunnel: peer unknown to the bind")
	ErrNotWireGuard = errors.New("tunnel: not a WireGuard message")
	ErrBadPath      = errors.New("tunnel: path has both Direct and Relay")
)

// BindOptions configures a Bind. The zero value is a Bind that passes WireGuard and drops
// everything else.
type BindOptions struct {
	// Self is this node's public key. When both sides of a tunnel hold a
	// handshake initiation until they have a path, the side with the
	// greater key lets the other's go first. Zero disables the wait.
	Self key.Public

	// IsControl reports whether a datagram that is not WireGuard is a control message.
	// Nil means none is. It runs on the receive path for every such datagram.
	IsControl func(pkt []byte) bool

	// OnControl receives the control messages of one receive call together,
	// so that it can answer them in batches too (a relay forwards a burst in
	// one UDP GSO write), and hand relayed WireGuard packets back to the
	// device in the same batch (see Control). It runs on a receive goroutine
	// of the device: keep it short. Required when IsControl is set.
	OnControl func(msgs []Control)

	// Logger; nil discards.
	Logger *slog.Logger

	// UDP is the node's UDP sockets, which the Bind opens and closes with
	// itself. Nil means real ones: wireguard-go's conn.NewStdNetBind().
	// Tests pass an in-memory one (netsim.Bind). Its endpoints must be
	// *conn.StdNetEndpoint values, as StdNetBind's are.
	UDP conn.Bind
}

// A Control is a control message as OnControl sees it.
type Control struct {
	// Pkt is the datagram, in the device's receive buffer: valid only
	// during OnControl, which may overwrite it (open it in place).
	Pkt []byte
	Src netip.AddrPort // where it came from

	// Relayed, set by OnControl, is a WireGuard packet that came inside
	// Pkt through a relay, from Peer. The Bind hands it to the device in
	// the same receive batch, from Peer's endpoint (so WireGuard does not
	// roam), if it looks like WireGuard and Peer is known to the Bind;
	// otherwise it is counted and dropped.
	Relayed []byte
	Peer    key.Public

	i int // index in the receive batch
}

// Bind is wh's conn.Bind: wireguard-go's StdNetBind (or BindOptions.UDP) plus the control-message demultiplexer,
// per-peer paths and relayed-packet injection described in the package documentation.
// The device opens and closes it (on Up, Down and listen-port changes); all other methods
// are safe for concurrent use at any time.
type Bind struct {
	// Constant after NewBind.
	inner     conn.Bind  // BindOptions.UDP; safe for concurrent Send
	self      key.Public // breaks ties between held initiations; may be zero
	isControl func([]byte) bool
	onControl func([]Control)
	log       *slog.Logger

	tables atomic.Pointer[tables] // immutable snapshot; replaced under mu
	open   atomic.Bool
	stats  counters

	// While OnControl runs (inControl > 0), held handshake messages that
	// a new path releases wait in deferred until the batch is in; see
	// releaseHeld.
	inControl  atomic.Int32
	deferredMu sync.Mutex
	deferred   []*peerEndpoint

	mu   sync.Mutex // guards the fields below and serializes table updates
	port uint16     // from the last successful Open
}

// tables are the Bind's peer maps. A snapshot is never modified: writers copy it under
// Bind.mu and swap the pointer, so the receive and send paths read it without locking.
type tables struct {
	byKey  map[key.Public]*peerEndpoint
	byID   map[netip.AddrPort]*peerEndpoint // synthetic address → endpoint
	byAddr map[netip.AddrPort]*peerEndpoint // learned underlay address → endpoint
}

var _ conn.Bind = (*Bind)(nil)

// NewBind returns a closed Bind; the device opens it.
func NewBind(o BindOptions) *Bind {
	b := &Bind{
		inner:     o.UDP,
		self:      o.Self,
		isControl: o.IsControl,
		onControl: o.OnControl,
		log:       o.Logger,
	}
	if b.log == nil {
		b.log = slog.New(slog.DiscardHandler)
	}
	if b.inner == nil {
		b.inner = conn.NewStdNetBind()
	}
	if b.isControl != nil && b.onControl == nil {
		b.onControl = func([]Control) {}
	}
	b.tables.Store(&tables{})
	return b
}

// Open implements conn.Bind. It opens the IPv4 and IPv6 sockets on port (0: random) and
// returns their demultiplexing receive functions.
func (b *Bind) Open(port uint16) ([]conn.ReceiveFunc, uint16, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	fns, actual, err := b.inner.Open(port)
	if err != nil {
		return nil, 0, err
	}
	out := make([]conn.ReceiveFunc, 0, len(fns))
	for _, fn := range fns {
		out = append(out, b.demux(fn))
	}
	b.port = actual
	b.open.Store(true)
	return out, actual, nil
}

// Close implements conn.Bind: every receive function returns net.ErrClosed afterwards.
// Closing a closed Bind does nothing.
func (b *Bind) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.open.Store(false)
	return b.inner.Close()
}

// Port is the UDP port of the last successful Open: the port to announce. It changes only
// when the device re-opens the Bind on another port.
func (b *Bind) Port() uint16 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.port
}

// SetMark implements conn.Bind.
func (b *Bind) SetMark(mark uint32) error { return b.inner.SetMark(mark) }

// BatchSize implements conn.Bind.
func (b *Bind) BatchSize() int { return b.inner.BatchSize() }

// ParseEndpoint implements conn.Bind. It accepts a peer's synthetic address (see
// endpointID) for a peer the Bind knows, and any other ip:port as a plain endpoint.
func (b *Bind) ParseEndpoint(s string) (conn.Endpoint, error) {
	ap, err := netip.ParseAddrPort(s)
	if err != nil {
		return nil, fmt.Errorf("tunnel: parse endpoint: %w", err)
	}
	if discardPrefix.Contains(ap.Addr()) {
		if pe := b.tables.Load().byID[ap]; pe != nil {
			return pe, nil
		}
		return nil, fmt.Errorf("tunnel: parse endpoint %s: %w", ap, errEndpointNotPeer)
	}
	return &conn.StdNetEndpoint{AddrPort: unmap(ap)}, nil
}

// demux wraps one of the inner Bind's receive functions; see the package documentation.
// Per batch it loads the tables once and touches the shared counters once.
// The device calls each receive function from one goroutine, so the
// Control slice is the function's own, reused from batch to batch.
func (b *Bind) demux(recv conn.ReceiveFunc) conn.ReceiveFunc {
	var ctls []Control
	return func(bufs [][]byte, sizes []int, eps []conn.Endpoint) (int, error) {
		n, err := recv(bufs, sizes, eps)
		if err != nil {
			return n, err
		}
		t := b.tables.Load()
		var wg, drop uint64
		ctls = ctls[:0]
		var lastSrc netip.AddrPort // GRO batches come from one source: cache its lookup
		var lastPeer *peerEndpoint
		for i := range n {
			if sizes[i] == 0 {
				continue
			}
			pkt := bufs[i][:sizes[i]]
			std, ok := eps[i].(*conn.StdNetEndpoint)
			if !ok {
				continue // not a UDP endpoint; leave it to the device
			}
			switch {
			case looksLikeWireGuard(pkt):
				wg++
				if len(t.byAddr) == 0 {
					continue
				}
				if src := unmap(std.AddrPort); src != lastSrc {
					lastSrc, lastPeer = src, t.byAddr[src]
					if lastPeer != nil { // once per run of one source
						lastPeer.directIn.Store(time.Now().UnixNano())
					}
				}
				if lastPeer != nil {
					eps[i] = lastPeer
					if pkt[0] == 1 {
						lastPeer.initiationIn.Store(time.Now().UnixNano())
					}
				}
			case b.isControl != nil && b.isControl(pkt):
				sizes[i] = 0
				ctls = append(ctls, Control{Pkt: pkt, Src: unmap(std.AddrPort), i: i})
			default:
				drop++
				sizes[i] = 0
			}
		}
		if len(ctls) > 0 {
			b.inControl.Add(1)
			b.onControl(ctls)
			b.unwrapRelayed(t, ctls, bufs, sizes, eps)
			b.inControl.Add(-1)
			b.sendDeferred()
			b.stats.controlIn.Add(uint64(len(ctls)))
		}
		b.stats.wireGuardIn.Add(wg)
		b.stats.dropUnknown.Add(drop)
		return n, nil
	}
}

// unwrapRelayed puts the WireGuard packets OnControl found inside control
// messages in the control messages' places in the batch.
func (b *Bind) unwrapRelayed(t *tables, ctls []Control, bufs [][]byte, sizes []int, eps []conn.Endpoint) {
	var in, drop uint64
	for j := range ctls {
		c := &ctls[j]
		if c.Relayed == nil {
			continue
		}
		pe := t.byKey[c.Peer]
		if pe == nil || !looksLikeWireGuard(c.Relayed) || len(c.Relayed) > len(bufs[c.i]) {
			drop++
			continue
		}
		if c.Relayed[0] == 1 {
			pe.initiationIn.Store(time.Now().UnixNano())
		}
		sizes[c.i] = copy(bufs[c.i], c.Relayed) // within one buffer: copy allows the overlap
		eps[c.i] = pe
		in++
	}
	b.stats.relayedIn.Add(in)
	b.stats.dropRelayedInvalid.Add(drop)
}

// Send implements conn.Bind. For a peer's endpoint, and for a plain endpoint whose address
// the node has learned for a peer (the device roamed to it before the node learned it), it
// sends on the peer's current path; other plain endpoints are sent to directly.
func (b *Bind) Send(bufs [][]byte, ep conn.Endpoint) error {
	var pe *peerEndpoint
	switch e := ep.(type) {
	case *peerEndpoint:
		pe = e
	case *conn.StdNetEndpoint:
		pe = b.tables.Load().byAddr[unmap(e.AddrPort)]
		if pe == nil {
			return b.sendDirect(bufs, e)
		}
	default:
		return conn.ErrWrongEndpointType
	}
	r := pe.route.Load()
	if r != nil && len(bufs) == 1 && isHandshake(bufs[0]) { // the device sends them one by one
		if s := pe.sent.Load(); s == nil || !bytes.Equal(s.pkt, bufs[0]) { // not a resend
			pe.sent.Store(&heldMessage{pkt: slices.Clone(bufs[0]), at: time.Now().UnixNano()})
		}
	}
	switch {
	case r == nil:
		if hold(pe, bufs) {
			// The initiation goes out when a path appears (SetPath):
			// as far as the device knows, it has been sent.
			b.stats.held.Add(1)
			return nil
		}
		b.stats.dropNoPath.Add(uint64(len(bufs)))
		return ErrNoPath
	case r.direct != nil:
		return b.sendDirect(bufs, r.direct)
	}
	if err := r.relay(bufs); err != nil {
		b.stats.sendErrors.Add(uint64(len(bufs)))
		return fmt.Errorf("tunnel: relay to %s: %w", pe.key.Short(8), err)
	}
	b.stats.relayedOut.Add(uint64(len(bufs)))
	return nil
}

func (b *Bind) sendDirect(bufs [][]byte, ep *conn.StdNetEndpoint) error {
	if err := b.sendInner(bufs, ep); err != nil {
		b.stats.sendErrors.Add(uint64(len(bufs)))
		return err
	}
	b.stats.wireGuardOut.Add(uint64(len(bufs)))
	return nil
}

// sendInner sends through StdNetBind. ErrUDPGSODisabled means the packets were sent after
// StdNetBind turned GSO off for a NIC without checksum offload: log it, not an error.
func (b *Bind) sendInner(bufs [][]byte, ep *conn.StdNetEndpoint) error {
	err := b.inner.Send(bufs, ep)
	if err == nil {
		return nil
	}
	var gso conn.ErrUDPGSODisabled // escapes: keep it off the success path
	if errors.As(err, &gso) {
		b.log.Warn("UDP GSO disabled", "err", gso)
		err = gso.RetryErr
	}
	return err
}

// SendControl sends a control message from the node's UDP port to dst.
func (b *Bind) SendControl(pkt []byte, dst netip.AddrPort) error {
	return b.SendControls([][]byte{pkt}, dst)
}

// SendControls sends control messages to dst from the node's port in one
// go: packets of equal size leave in one UDP GSO send, as WireGuard's do.
// Relayed WireGuard packets take this way.
func (b *Bind) SendControls(pkts [][]byte, dst netip.AddrPort) error {
	dst = unmap(dst)
	if !b.open.Load() {
		return fmt.Errorf("tunnel: send control to %s: %w", dst, net.ErrClosed)
	}
	if err := b.sendInner(pkts, &conn.StdNetEndpoint{AddrPort: dst}); err != nil {
		return fmt.Errorf("tunnel: send control to %s: %w", dst, err)
	}
	b.stats.controlOut.Add(uint64(len(pkts)))
	return nil
}

// SetPath sets how packets to peer are sent from now on; see Path. The device does not
// notice: its sessions with the peer continue.
func (b *Bind) SetPath(peer key.Public, p Path) error {
	var r *route
	switch {
	case p.Direct.IsValid() && p.Relay != nil:
		return ErrBadPath
	case p.Direct.IsValid():
		r = &route{direct: &conn.StdNetEndpoint{AddrPort: unmap(p.Direct)}}
	case p.Relay != nil:
		r = &route{relay: p.Relay}
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	pe, err := b.endpointLocked(peer)
	if err != nil {
		return err
	}
	old := pe.route.Swap(r)
	if r == nil {
		return nil
	}
	if old != nil && !old.sameDirect(r) {
		// A handshake message sent just before may be lost with the old
		// path: send it again, subject to the same rules as a held one.
		if h := pe.sent.Load(); h != nil && time.Now().UnixNano()-h.at < int64(resendWindow) {
			pe.held.CompareAndSwap(nil, h)
		}
	}
	b.releaseHeld(pe)
	return nil
}

// resendWindow bounds how old a handshake message SetPath sends again on
// a new path may be: WireGuard retries a handshake after 5 s anyway.
const resendWindow = 2 * time.Second

// releaseHeld sends pe's held handshake message, if any, now that pe has
// a path. A path is often set from OnControl, by the very message that
// shows the way to the peer: the peer's relayed handshake initiation,
// say, which the Bind notes only once OnControl has returned (so that
// sendHeld drops our crossing initiation). So while any OnControl runs,
// the held message waits until that batch is in.
func (b *Bind) releaseHeld(pe *peerEndpoint) {
	if b.inControl.Load() == 0 {
		if h := pe.held.Swap(nil); h != nil {
			b.sendHeld(pe, h)
		}
		return
	}
	b.deferredMu.Lock()
	b.deferred = append(b.deferred, pe)
	b.deferredMu.Unlock()
	if b.inControl.Load() == 0 { // the batch ended meanwhile
		b.sendDeferred()
	}
}

// sendDeferred sends the held messages releaseHeld deferred.
func (b *Bind) sendDeferred() {
	b.deferredMu.Lock()
	pes := b.deferred
	b.deferred = nil
	b.deferredMu.Unlock()
	for _, pe := range pes {
		if h := pe.held.Swap(nil); h != nil {
			b.sendHeld(pe, h)
		}
	}
}

// HeldDelay is how long the side with the greater key waits before it
// sends a held initiation (see sendHeld): long enough for the other side's
// path to appear a little later and its initiation to arrive. At 250 ms
// about one NAT grid in five still had a pair cross and wait 5 s.
const HeldDelay = time.Second

// sendHeld sends the handshake message h held while pe had no path.
//
// A response goes at once: the peer is waiting for it. An initiation is
// stale, and dropped, if the peer's own initiation arrived after it was
// held: answering that replaced our handshake state, so a response to
// ours would be invalid. When both sides hold a fresh initiation (each
// device's keepalive starts a handshake as soon as the peer is
// configured), sending both at once makes them cross, and each side's
// response to the other is then invalid, until WireGuard's 5 s retry. So
// the side whose key is greater waits a moment, and drops its initiation
// if the peer's arrives meanwhile.
func (b *Bind) sendHeld(pe *peerEndpoint, h *heldMessage) {
	send := func() {
		if err := b.Send([][]byte{h.pkt}, pe); err != nil {
			b.log.Debug("tunnel: sending a held handshake message", "peer", pe.key.Short(8), "err", err)
		}
	}
	if h.pkt[0] != 1 {
		send()
		return
	}
	if pe.initiationIn.Load() >= h.at {
		return
	}
	if b.self.IsZero() || bytes.Compare(b.self[:], pe.key[:]) < 0 {
		send()
		return
	}
	time.AfterFunc(HeldDelay, func() {
		if pe.initiationIn.Load() >= h.at || !b.open.Load() {
			return
		}
		send()
	})
}

// heldMessage is a handshake message kept until its peer has a path.
type heldMessage struct {
	pkt []byte
	at  int64 // when it was held, Unix ns
}

// hold keeps the last handshake initiation or response of bufs for pe,
// and reports whether there was one. Other packets are dropped: they need
// a session.
func hold(pe *peerEndpoint, bufs [][]byte) bool {
	for i := len(bufs) - 1; i >= 0; i-- {
		if b := bufs[i]; isHandshake(b) {
			pe.held.Store(&heldMessage{pkt: slices.Clone(b), at: time.Now().UnixNano()})
			return true
		}
	}
	return false
}

// isHandshake reports whether b is a WireGuard handshake initiation or
// response.
func isHandshake(b []byte) bool {
	if len(b) < 4 || b[1] != 0 || b[2] != 0 || b[3] != 0 {
		return false
	}
	return b[0] == 1 && len(b) == messageInitiationSize || b[0] == 2 && len(b) == messageResponseSize
}

// Sizes of WireGuard's handshake initiation and response.
const (
	messageInitiationSize = 148
	messageResponseSize   = 92
)

// Learn records that datagrams from addr come from peer, after the node authenticated a
// control message from there: WireGuard packets from addr then carry the peer's endpoint.
// An address belongs to one peer; learning it again for another moves it.
func (b *Bind) Learn(addr netip.AddrPort, peer key.Public) error {
	if !addr.IsValid() {
		return fmt.Errorf("tunnel: learn invalid address for %s", peer.Short(8))
	}
	addr = unmap(addr)
	b.mu.Lock()
	defer b.mu.Unlock()
	pe, err := b.endpointLocked(peer)
	if err != nil {
		return err
	}
	t := b.tables.Load()
	if t.byAddr[addr] == pe {
		return nil
	}
	nt := *t
	nt.byAddr = maps.Clone(t.byAddr)
	if nt.byAddr == nil {
		nt.byAddr = make(map[netip.AddrPort]*peerEndpoint)
	}
	nt.byAddr[addr] = pe
	b.tables.Store(&nt)
	return nil
}

// LastDirect returns when a WireGuard packet last came from an address
// learned for peer (its direct path); zero if none did.
func (b *Bind) LastDirect(peer key.Public) time.Time {
	pe := b.tables.Load().byKey[peer]
	if pe == nil {
		return time.Time{}
	}
	if ns := pe.directIn.Load(); ns != 0 {
		return time.Unix(0, ns)
	}
	return time.Time{}
}

// Forget undoes Learn: datagrams from addr again carry a plain endpoint.
func (b *Bind) Forget(addr netip.AddrPort) {
	addr = unmap(addr)
	b.mu.Lock()
	defer b.mu.Unlock()
	t := b.tables.Load()
	if _, ok := t.byAddr[addr]; !ok {
		return
	}
	nt := *t
	nt.byAddr = maps.Clone(t.byAddr)
	delete(nt.byAddr, addr)
	b.tables.Store(&nt)
}

// RemovePeer forgets peer: its path, its learned addresses and its endpoint. Call it once
// the device no longer has the peer (Device.SetPeers without it): a device still holding
// the old endpoint keeps dropping what it sends there, even after a new SetPath.
func (b *Bind) RemovePeer(peer key.Public) {
	b.mu.Lock()
	defer b.mu.Unlock()
	t := b.tables.Load()
	pe := t.byKey[peer]
	if pe == nil {
		return
	}
	pe.route.Store(nil)
	nt := tables{
		byKey:  maps.Clone(t.byKey),
		byID:   maps.Clone(t.byID),
		byAddr: maps.Clone(t.byAddr),
	}
	delete(nt.byKey, peer)
	delete(nt.byID, pe.id)
	maps.DeleteFunc(nt.byAddr, func(_ netip.AddrPort, v *peerEndpoint) bool { return v == pe })
	b.tables.Store(&nt)
}

// endpoint returns peer's endpoint, creating it if needed.
func (b *Bind) endpoint(peer key.Public) (*peerEndpoint, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.endpointLocked(peer)
}

func (b *Bind) endpointLocked(peer key.Public) (*peerEndpoint, error) {
	t := b.tables.Load()
	if pe := t.byKey[peer]; pe != nil {
		return pe, nil
	}
	pe := newPeerEndpoint(peer)
	if other := t.byID[pe.id]; other != nil {
		// 80 bits of two keys agree: someone made them collide on purpose.
		return nil, fmt.Errorf("tunnel: peers %s and %s share endpoint %s", peer, other.key, pe.id)
	}
	nt := tables{
		byKey:  maps.Clone(t.byKey),
		byID:   maps.Clone(t.byID),
		byAddr: t.byAddr,
	}
	if nt.byKey == nil {
		nt.byKey = make(map[key.Public]*peerEndpoint)
		nt.byID = make(map[netip.AddrPort]*peerEndpoint)
	}
	nt.byKey[peer] = pe
	nt.byID[pe.id] = pe
	b.tables.Store(&nt)
	return pe, nil
}

// looksLikeWireGuard reports whether b has the header and size of a WireGuard message:
// a little-endian uint32 type 1..4 and the size that type requires.
func looksLikeWireGuard(b []byte) bool {
	if len(b) < 4 || b[1]|b[2]|b[3] != 0 {
		return false
	}
	switch b[0] {
	case device.MessageInitiationType:
		return len(b) == device.MessageInitiationSize
	case device.MessageResponseType:
		return len(b) == device.MessageResponseSize
	case device.MessageCookieReplyType:
		return len(b) == device.MessageCookieReplySize
	case device.MessageTransportType:
		return len(b) >= device.MessageTransportSize
	}
	return false
}

// unmap turns an IPv4-mapped IPv6 address into IPv4: StdNetBind picks its socket by the
// address family.
func unmap(ap netip.AddrPort) netip.AddrPort {
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
}

// Stats are a Bind's counters since NewBind, in datagrams.
type Stats struct {
	ControlIn    uint64 // control messages handed to OnControl
	ControlOut   uint64 // control messages sent
	WireGuardIn  uint64 // WireGuard messages received from the socket
	WireGuardOut uint64 // WireGuard messages sent directly
	RelayedIn    uint64 // relayed WireGuard messages handed to the device
	RelayedOut   uint64 // WireGuard messages handed to a Relay func

	DropUnknown        uint64 // received, neither WireGuard nor control
	DropNoPath         uint64 // to a peer without a path
	Held               uint64 // handshake messages held until the peer had a path
	DropRelayedInvalid uint64 // relayed: not WireGuard, too long, or from an unknown peer
	SendErrors         uint64 // failed direct or relayed sends
}

// counters are Stats as they are counted.
type counters struct {
	controlIn, controlOut, wireGuardIn, wireGuardOut, relayedIn, relayedOut atomic.Uint64
	dropUnknown, dropNoPath, dropRelayedInvalid, sendErrors, held           atomic.Uint64
}

// Stats returns the Bind's counters.
func (b *Bind) Stats() Stats {
	c := &b.stats
	return Stats{
		ControlIn:          c.controlIn.Load(),
		ControlOut:         c.controlOut.Load(),
		WireGuardIn:        c.wireGuardIn.Load(),
		WireGuardOut:       c.wireGuardOut.Load(),
		RelayedIn:          c.relayedIn.Load(),
		RelayedOut:         c.relayedOut.Load(),
		DropUnknown:        c.dropUnknown.Load(),
		DropNoPath:         c.dropNoPath.Load(),
		Held:               c.held.Load(),
		DropRelayedInvalid: c.dropRelayedInvalid.Load(),
		SendErrors:         c.sendErrors.Load(),
	}
}
