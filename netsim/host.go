package netsim

import (
	"container/heap"
	"net"
	"net/netip"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// The ephemeral port range, Linux's default ip_local_port_range.
const (
	ephemeralFirst = 32768
	ephemeralCount = 60999 - ephemeralFirst + 1
)

// A Host is a machine with addresses on the internet or on a router's LAN.
type Host struct {
	n     *Internet    // constant
	at    *network     // where its IPv4 addresses are; constant
	addrs []netip.Addr // constant after AddHost
	seed  uint64       // from Options.Seed, its network and first address; constant

	down    atomic.Bool
	ownLink atomic.Pointer[link] // nil: no access link of its own

	mu        sync.Mutex
	conns     map[uint16]*Conn // open conns by port; guarded by mu
	ephemeral uint64           // ephemeral port draws so far; guarded by mu
	pending   arrivals         // packets on their way here; guarded by mu
	timer     *time.Timer      // calls deliverDue at pending[0].at; guarded by mu
	order     uint64           // packets scheduled so far; guarded by mu
}

// Addrs returns the host's addresses, in the order given to AddHost.
func (h *Host) Addrs() []netip.Addr {
	return slices.Clone(h.addrs)
}

// SetLink gives the host an access link, crossed by every packet it sends
// and receives in addition to the core: latency plus a uniform jitter in
// [0, jitter), and loss as a probability from 0 to 1. All zero removes it.
// SetLink panics on negative durations or a loss outside [0, 1].
func (h *Host) SetLink(latency, jitter time.Duration, loss float64) {
	l := newLink(latency, jitter, loss)
	if l == (link{}) {
		h.ownLink.Store(nil)
		return
	}
	h.ownLink.Store(&l)
}

func (h *Host) link() link {
	if l := h.ownLink.Load(); l != nil {
		return *l
	}
	return link{}
}

// Kill takes the host off the network, as if its cable were cut: packets
// it sends and packets arriving for it (including those already in flight)
// are dropped and counted as unreachable. Its conns stay open.
func (h *Host) Kill() { h.down.Store(true) }

// Revive puts a killed host back on the network.
func (h *Host) Revive() { h.down.Store(false) }

// ListenUDP opens a conn on port, on all of the host's addresses. Port 0
// picks a free ephemeral port. A port in use fails with an error that
// matches syscall.EADDRINUSE.
func (h *Host) ListenUDP(port uint16) (*Conn, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if port == 0 {
		port = h.ephemeralLocked()
	}
	if _, taken := h.conns[port]; taken || port == 0 {
		return nil, &net.OpError{
			Op:   "listen",
			Net:  "udp",
			Addr: net.UDPAddrFromAddrPort(netip.AddrPortFrom(h.addrs[0], port)),
			Err:  os.NewSyscallError("bind", syscall.EADDRINUSE),
		}
	}
	c := newConn(h, port)
	h.conns[port] = c
	return c, nil
}

// ephemeralLocked returns a free ephemeral port, or 0 if all are taken. The
// search starts at a seeded random point, so it repeats with the seed.
func (h *Host) ephemeralLocked() uint16 {
	h.ephemeral++
	start := mix(h.seed+h.ephemeral) % ephemeralCount
	for i := range uint64(ephemeralCount) {
		p := uint16(ephemeralFirst + (start+i)%ephemeralCount)
		if _, taken := h.conns[p]; !taken {
			return p
		}
	}
	return 0
}

// source returns the address the host sends to a dst from.
func (h *Host) source(dst netip.Addr) (netip.Addr, bool) {
	for _, a := range h.addrs {
		if a.Is4() == dst.Is4() {
			return a, true
		}
	}
	return netip.Addr{}, false
}

// arrive schedules p's arrival after delay.
func (h *Host) arrive(p *packet, delay time.Duration) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if delay <= 0 {
		h.deliverLocked(p)
		return
	}
	h.order++
	p.at, p.order = time.Now().Add(delay), h.order
	heap.Push(&h.pending, p)
	if h.pending[0] != p {
		return // the timer is set for an earlier packet
	}
	if h.timer == nil {
		h.timer = time.AfterFunc(delay, h.deliverDue)
	} else {
		h.timer.Reset(delay)
	}
}

// deliverDue delivers the packets whose time has come and sets the timer
// for the next one. It runs on the timer's goroutine.
func (h *Host) deliverDue() {
	h.mu.Lock()
	defer h.mu.Unlock()
	now := time.Now()
	for len(h.pending) > 0 && !h.pending[0].at.After(now) {
		h.deliverLocked(heap.Pop(&h.pending).(*packet))
	}
	if len(h.pending) > 0 {
		h.timer.Reset(h.pending[0].at.Sub(now))
	}
}

// deliverLocked puts p in its conn's receive queue, or drops it. h.mu must
// be held.
func (h *Host) deliverLocked(p *packet) {
	st := &h.n.stats
	c := h.conns[p.dst.Port()]
	if c == nil || h.down.Load() {
		st.unreachable.Add(1)
		h.n.free(p)
		return
	}
	select {
	case c.queue <- p:
		st.delivered.Add(1)
	default:
		st.overflow.Add(1)
		h.n.free(p)
	}
}

// arrivals is a min-heap of packets by arrival time, then scheduling order.
type arrivals []*packet

func (a arrivals) Len() int { return len(a) }
func (a arrivals) Less(i, j int) bool {
	if !a[i].at.Equal(a[j].at) {
		return a[i].at.Before(a[j].at)
	}
	return a[i].order < a[j].order
}
func (a arrivals) Swap(i, j int) { a[i], a[j] = a[j], a[i] }
func (a *arrivals) Push(x any)   { *a = append(*a, x.(*packet)) }
func (a *arrivals) Pop() any {
	old := *a
	p := old[len(old)-1]
	old[len(old)-1] = nil
	*a = old[:len(old)-1]
	return p
}
