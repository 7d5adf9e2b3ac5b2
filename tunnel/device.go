package tunnel

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"sync"
	"time"

	"golang.zx2c4.com/wireguard/device"
	"golang.zx2c4.com/wireguard/ipc"
	"golang.zx2c4.com/wireguard/tun"

	"github.com/whnet/wh/key"
)

// DefaultMTU is the TUN MTU when Config.MTU is 0; the package documentation derives it.
const DefaultMTU = 1280

// ErrClosed is returned by the methods of a closed Device.
var ErrClosed = errors.New("tunnel: device closed")

// Config describes a Device.
type Config struct {
	// Name is the interface name. Required when TUN is nil. When set, the WireGuard UAPI
	// socket /var/run/wireguard/<Name>.sock is served so that `wg show Name` works; that
	// directory is shared by all network namespaces, so names must be unique on the host.
	Name string

	// Private is the node's key. Required.
	Private key.Private

	// ListenPort is the UDP port; 0 picks a free one (see Bind.Port).
	ListenPort uint16

	// MTU of the kernel TUN that New creates; 0 means DefaultMTU.
	MTU int

	// Addresses of the kernel TUN, typically the node's IPv4 address with the overlay's
	// prefix length and its ORCHID IPv6 address as a /128.
	Addresses []netip.Prefix

	// Routes through the kernel TUN, typically none for IPv4 (the address's prefix
	// covers the overlay subnet) and 2001:20::/28 for ORCHIDs.
	Routes []netip.Prefix

	// TUN is the packet device. Nil: New creates a kernel TUN named Name and sets
	// Addresses and Routes on it through netlink. Otherwise (a netstack TUN, say) the
	// caller has configured it, and Addresses, Routes and MTU must be empty.
	TUN tun.Device

	// Bind is the node's UDP port. Nil: New makes one that carries WireGuard only.
	// The device opens it, and closes it on Close.
	Bind *Bind

	// Logger; nil discards. wireguard-go's verbose log goes to Debug.
	Logger *slog.Logger
}

// Peer is a trusted peer as the device should have it.
type Peer struct {
	Key        key.Public
	AllowedIPs []netip.Prefix
	Keepalive  time.Duration // persistent keepalive, whole seconds up to 65535; 0 is off
}

// Device is a running wireguard-go device with its TUN, Bind and UAPI socket. It is up
// from New to Close: taking it down would close the Bind, and with it the node's port.
type Device struct {
	// Constant after New.
	log  *slog.Logger
	dev  *device.Device
	bind *Bind
	uapi net.Listener  // nil when Config.Name is empty
	stop chan struct{} // closed by Close: stops the memory watcher
	done sync.WaitGroup

	mu     sync.Mutex            // guards the fields below; held across IpcSet in SetPeers
	peers  map[key.Public]Peer   // as last applied, AllowedIPs canonical
	conns  map[net.Conn]struct{} // open UAPI connections
	closed bool
}

// New creates the TUN unless given one, starts wireguard-go on it and brings it up.
func New(cfg Config) (*Device, error) {
	if cfg.Private.IsZero() {
		return nil, errors.New("tunnel: no private key")
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	bind := cfg.Bind
	if bind == nil {
		bind = NewBind(BindOptions{Logger: log})
	}
	tdev := cfg.TUN
	if tdev == nil {
		if cfg.Name == "" {
			return nil, errors.New("tunnel: a kernel TUN needs a Name")
		}
		mtu := cfg.MTU
		if mtu == 0 {
			mtu = DefaultMTU
		}
		var err error
		if tdev, err = tun.CreateTUN(cfg.Name, mtu); err != nil {
			return nil, fmt.Errorf("tunnel: create TUN %s: %w", cfg.Name, err)
		}
	} else if len(cfg.Addresses) > 0 || len(cfg.Routes) > 0 || cfg.MTU != 0 {
		return nil, errors.New("tunnel: Addresses, Routes and MTU apply only to a TUN New creates")
	}

	d := &Device{
		log:   log,
		dev:   device.NewDevice(tdev, bind, deviceLogger(log)),
		bind:  bind,
		stop:  make(chan struct{}),
		peers: make(map[key.Public]Peer),
		conns: make(map[net.Conn]struct{}),
	}
	if err := d.start(cfg, tdev); err != nil {
		d.Close()
		return nil, err
	}
	return d, nil
}

func (d *Device) start(cfg Config, tdev tun.Device) error {
	var b uapiBuilder
	b.key("private_key", cfg.Private)
	b.line("listen_port", fmt.Sprint(cfg.ListenPort))
	if err := d.dev.IpcSet(b.String()); err != nil {
		return fmt.Errorf("tunnel: configure device: %w", err)
	}
	if err := d.dev.Up(); err != nil {
		return fmt.Errorf("tunnel: bring device up: %w", err)
	}
	if cfg.TUN == nil {
		name, err := tdev.Name()
		if err != nil {
			return fmt.Errorf("tunnel: TUN name: %w", err)
		}
		if err := configureLink(name, cfg.Addresses, cfg.Routes); err != nil {
			return fmt.Errorf("tunnel: configure %s: %w", name, err)
		}
	}
	if cfg.Name != "" {
		if err := d.serveUAPI(cfg.Name); err != nil {
			return fmt.Errorf("tunnel: UAPI socket for %s: %w", cfg.Name, err)
		}
	}
	d.done.Go(d.watchMemory)
	return nil
}

// serveUAPI serves wireguard-go's UAPI on /var/run/wireguard/<name>.sock for `wg`.
func (d *Device) serveUAPI(name string) error {
	f, err := ipc.UAPIOpen(name)
	if err != nil {
		return err
	}
	defer f.Close() // UAPIListen works on a duplicate
	ln, err := ipc.UAPIListen(name, f)
	if err != nil {
		return err
	}
	d.uapi = ln
	d.done.Go(func() {
		// The listener reports an error once closed, or when someone deletes the socket.
		// Reading that first error also lets both of its internal goroutines exit.
		for {
			c, err := ln.Accept()
			d.mu.Lock()
			if err != nil {
				if !d.closed {
					d.log.Warn("UAPI socket stopped; wg(8) cannot reach the device", "err", err)
				}
				d.mu.Unlock()
				return
			}
			if d.closed {
				d.mu.Unlock()
				c.Close()
				return
			}
			d.conns[c] = struct{}{}
			d.mu.Unlock()
			d.done.Go(func() {
				d.dev.IpcHandle(c) // closes c
				d.mu.Lock()
				delete(d.conns, c)
				d.mu.Unlock()
			})
		}
	})
	return nil
}

// SetPeers makes peers the device's peer set by applying the difference: new peers are
// added, missing ones removed, and of the others only what changed is set, so their
// sessions survive. Every new peer's endpoint is its stable Bind endpoint.
func (d *Device) SetPeers(peers []Peer) error {
	want := make(map[key.Public]Peer, len(peers))
	for _, p := range peers {
		if _, dup := want[p.Key]; dup {
			return fmt.Errorf("tunnel: peer %s listed twice", p.Key)
		}
		if p.Keepalive < 0 || p.Keepalive > 65535*time.Second || p.Keepalive%time.Second != 0 {
			return fmt.Errorf("tunnel: peer %s: keepalive %v is not 0..65535 whole seconds", p.Key, p.Keepalive)
		}
		for _, a := range p.AllowedIPs {
			if !a.IsValid() {
				return fmt.Errorf("tunnel: peer %s: invalid allowed IP %v", p.Key, a)
			}
		}
		p.AllowedIPs = canonPrefixes(p.AllowedIPs)
		want[p.Key] = p
	}

	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return ErrClosed
	}
	var b uapiBuilder
	for _, k := range sortedKeys(d.peers) {
		if _, ok := want[k]; !ok {
			b.key("public_key", k)
			b.line("remove", "true")
		}
	}
	for _, k := range sortedKeys(want) {
		p := want[k]
		old, had := d.peers[k]
		if had && old.Keepalive == p.Keepalive && slices.Equal(old.AllowedIPs, p.AllowedIPs) {
			continue
		}
		b.key("public_key", k)
		if !had {
			pe, err := d.bind.endpoint(k)
			if err != nil {
				return err
			}
			b.line("endpoint", pe.DstToString())
		}
		if !had || old.Keepalive != p.Keepalive {
			b.line("persistent_keepalive_interval", fmt.Sprint(int(p.Keepalive/time.Second)))
		}
		if !had || !slices.Equal(old.AllowedIPs, p.AllowedIPs) {
			b.line("replace_allowed_ips", "true")
			for _, a := range p.AllowedIPs {
				b.line("allowed_ip", a.String())
			}
		}
	}
	if b.Len() == 0 {
		return nil
	}
	// On error the device may hold part of the change. d.peers stays as it was; as every
	// line above is idempotent, the next SetPeers converges.
	if err := d.dev.IpcSet(b.String()); err != nil {
		return fmt.Errorf("tunnel: set peers: %w", err)
	}
	d.peers = want
	return nil
}

// Peers returns the device's peers and their counters, sorted by key.
func (d *Device) Peers() ([]PeerStatus, error) {
	s, err := d.dev.IpcGet()
	if err != nil {
		return nil, fmt.Errorf("tunnel: read device state: %w", err)
	}
	ps, err := parsePeers(s)
	if err != nil {
		return nil, fmt.Errorf("tunnel: read device state: %w", err)
	}
	slices.SortFunc(ps, func(a, b PeerStatus) int { return slices.Compare(a.Key[:], b.Key[:]) })
	return ps, nil
}

// Greet has the device send peer a keepalive now, which starts a
// handshake if there is no session: a peer that cannot reach us until we
// have sent it something (behind a firewall, or answering only through
// the relay it heard us on) then can. It reports whether peer is one of
// the device's peers.
func (d *Device) Greet(peer key.Public) bool {
	p := d.dev.LookupPeer(device.NoisePublicKey(peer))
	if p == nil {
		return false
	}
	p.SendKeepalive()
	return true
}

// Close stops the device, removes its TUN and UAPI socket and closes the Bind. It waits
// for the device's goroutines; closing twice does nothing.
func (d *Device) Close() error {
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return nil
	}
	d.closed = true
	close(d.stop)
	if d.uapi != nil {
		d.uapi.Close() // also unlinks the socket
	}
	for c := range d.conns {
		c.Close()
	}
	d.mu.Unlock()
	d.dev.Close() // closes the TUN and the Bind
	d.done.Wait()
	return nil
}

// deviceLogger adapts log to wireguard-go's printf-style logger.
func deviceLogger(log *slog.Logger) *device.Logger {
	l := &device.Logger{
		Verbosef: device.DiscardLogf,
		Errorf:   func(format string, args ...any) { log.Error(fmt.Sprintf(format, args...)) },
	}
	if log.Enabled(context.Background(), slog.LevelDebug) {
		l.Verbosef = func(format string, args ...any) { log.Debug(fmt.Sprintf(format, args...)) }
	}
	return l
}

func sortedKeys[V any](m map[key.Public]V) []key.Public {
	ks := make([]key.Public, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	slices.SortFunc(ks, func(a, b key.Public) int { return slices.Compare(a[:], b[:]) })
	return ks
}
