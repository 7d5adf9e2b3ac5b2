// Package portmap asks the LAN's router to forward the node's UDP port to
// it, so peers on the internet can reach the node directly: UPnP IGD
// (IGDv2 WANIPConnection:2, then IGDv1 WANIPConnection:1 and
// WANPPPConnection:1, through github.com/huin/goupnp), NAT-PMP (RFC 6886)
// and PCP (RFC 6887).
//
// A Mapper works in the background: Run discovers gateways, maps the port,
// renews the lease at half its life and rediscovers with backoff when
// nothing answers; Mapping reports what it holds; Close removes it.
// Failures are normal in the wild (no gateway, UPnP switched off, a double
// NAT that gives the router no public address, a port taken by another
// host) and only mean "no mapping": the node falls back to hole punching
// and relays.
package portmap

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"net/netip"
	"sync"
	"time"
)

// How a mapping was made: Mapping.Protocol.
const (
	ProtocolUPnPIGD2    = "upnp-igd2"     // UPnP IGDv2, WANIPConnection:2
	ProtocolUPnPIGD1IP  = "upnp-igd1-ip"  // UPnP IGDv1, WANIPConnection:1
	ProtocolUPnPIGD1PPP = "upnp-igd1-ppp" // UPnP IGDv1, WANPPPConnection:1
	ProtocolNATPMP      = "nat-pmp"       // RFC 6886
	ProtocolPCP         = "pcp"           // RFC 6887
)

const (
	// DefaultLease is the lifetime asked for when Options.Lease is zero:
	// WireHub's 10 minutes. The mapping is renewed at half-life, so it
	// costs one small exchange with the gateway every 5 minutes, and a
	// node that dies without Close leaves a stale forward for at most
	// 10 minutes.
	DefaultLease = 10 * time.Minute

	closeTimeout = 2 * time.Second  // Close's bound on removing the mapping
	retryFirst   = 10 * time.Second // wait after the first failed discovery,
	retryMax     = 5 * time.Minute  // doubling up to this
	renewMin     = time.Second      // never renew more often than this
)

var (
	errNoAnswer        = errors.New("no answer")
	errNoServer        = errors.New("nothing listens on the gateway's port")
	errRefused         = errors.New("refused")
	errNoPublicAddress = errors.New("gateway has no public address (double NAT?)")
	errBadMapping      = errors.New("unusable mapping granted")
	errNoProtocol      = errors.New("every protocol is disabled")
)

// Options configures a Mapper. Only LocalPort is required.
type Options struct {
	// LocalPort is the node's UDP port. The mapper asks for the same
	// external port first, and takes any port if that one is refused.
	// It must not be zero.
	LocalPort uint16

	// Description labels the mapping in the router's UPnP table, e.g.
	// "wh <public key>". Zero means "wh".
	Description string

	// Lease is the lifetime asked for. Zero means DefaultLease. Gateways
	// may grant another lifetime (NAT-PMP and PCP say which); mappings
	// are renewed at half the lifetime granted.
	Lease time.Duration

	// Logger receives what the mapper does. Nil means no logging.
	Logger *slog.Logger

	// DisableUPnP, DisableNATPMP and DisablePCP turn a protocol off.
	DisableUPnP, DisableNATPMP, DisablePCP bool

	// Gateway is the router asked over NAT-PMP and PCP (port 5351) and
	// searched with a unicast SSDP request (port 1900). Zero means the
	// gateway of the IPv4 default route, read again at every discovery.
	Gateway netip.Addr

	// HTTPClient talks UPnP to gateways. Nil means a client with no
	// proxy, no redirects, no keep-alives, bounded waits and bodies.
	HTTPClient *http.Client

	// Test hooks.
	pmpPort   uint16                                          // NAT-PMP and PCP server port; zero means 5351
	ssdpAddrs []netip.AddrPort                                // where to send M-SEARCH; nil means the multicast group and the gateway
	findIGDs  func(ctx context.Context) ([]igdService, error) // replaces SSDP and description fetching
	dial      dialFunc                                        // NAT-PMP and PCP sockets; nil means real ones
	listen    listenFunc                                      // the SSDP socket; nil means a real one
}

// Mapping is a port mapping held on a gateway.
type Mapping struct {
	External netip.AddrPort // the gateway's public address, and the port it forwards
	Internal netip.AddrPort // where it forwards to: our LAN address and Options.LocalPort
	Protocol string         // how it was made: one of the Protocol constants
	Expires  time.Time      // when the gateway drops it unless renewed
}

// protocolClient speaks one protocol to one gateway.
type protocolClient interface {
	fmt.Stringer
	protocol() string
	// mapPort creates a mapping, or renews prev if prev is valid.
	mapPort(ctx context.Context, prev Mapping) (Mapping, error)
	unmap(ctx context.Context, mp Mapping) error
}

// Mapper holds a port mapping for the node's UDP port on whichever gateway
// answers. It is safe for concurrent use.
type Mapper struct {
	opt      Options // constant after New, defaults filled in
	log      *slog.Logger
	http     *http.Client
	pcpNonce [12]byte // our PCP mappings' nonce, kept across rediscoveries

	lifetime  context.Context // ends when Close is called; ends Run
	stop      context.CancelFunc
	runs      sync.WaitGroup // the Run call, if any
	closeOnce sync.Once
	closeErr  error // set inside closeOnce

	mu      sync.Mutex
	closed  bool           // guarded by mu
	running bool           // guarded by mu: Run was called
	client  protocolClient // guarded by mu: made mapping; nil if there is none
	mapping Mapping        // guarded by mu
}

// New returns a mapper for opt.LocalPort. It does nothing until
// Run is called.
func New(opt Options) *Mapper {
	if opt.Description == "" {
		opt.Description = "wh"
	}
	if opt.Lease <= 0 {
		opt.Lease = DefaultLease
	}
	if opt.pmpPort == 0 {
		opt.pmpPort = pmpServerPort
	}
	m := &Mapper{opt: opt, log: opt.Logger, http: opt.HTTPClient, pcpNonce: newPCPNonce()}
	if m.log == nil {
		m.log = slog.New(slog.DiscardHandler)
	}
	if m.http == nil {
		m.http = newHTTPClient()
	}
	m.lifetime, m.stop = context.WithCancel(context.Background())
	return m
}

// Mapping returns the mapping held now, if any.
func (m *Mapper) Mapping() (Mapping, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.client == nil || !time.Now().Before(m.mapping.Expires) {
		return Mapping{}, false
	}
	return m.mapping, true
}

// Run discovers gateways, maps the port and keeps the mapping until ctx
// ends or Close is called. It returns promptly then, leaving the mapping
// for Close to remove. Start it in its own goroutine: it runs until then
// (or returns at once if every protocol is disabled), so it never delays
// the node. Run may be called once.
func (m *Mapper) Run(ctx context.Context) {
	m.mu.Lock()
	if m.closed || m.running {
		m.mu.Unlock()
		return
	}
	m.running = true
	m.runs.Add(1)
	m.mu.Unlock()
	defer m.runs.Done()

	if m.opt.LocalPort == 0 {
		m.log.Error("port mapping: no local port given")
		return
	}
	if m.opt.DisableUPnP && m.opt.DisableNATPMP && m.opt.DisablePCP {
		return
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer context.AfterFunc(m.lifetime, cancel)()

	failures := 0
	for {
		t := time.NewTimer(m.refresh(ctx, &failures))
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// refresh renews the mapping held, or else discovers gateways and maps
// anew, and returns how long to wait before the next refresh.
func (m *Mapper) refresh(ctx context.Context, failures *int) time.Duration {
	m.mu.Lock()
	c, cur := m.client, m.mapping
	m.mu.Unlock()

	if c != nil {
		mp, err := c.mapPort(ctx, cur)
		if err == nil {
			*failures = 0
			m.set(c, mp)
			return renewIn(mp)
		}
		if ctx.Err() != nil {
			return 0
		}
		m.log.Info("port mapping: renewal failed", "protocol", c.protocol(), "err", err)
	}
	mp, nc, err := m.discover(ctx)
	if ctx.Err() != nil {
		return 0
	}
	if err == nil {
		*failures = 0
		m.set(nc, mp)
		return renewIn(mp)
	}
	*failures++
	wait := retryDelay(*failures)
	if c != nil {
		// Keep a mapping that has not expired: its gateway may answer again.
		if left := time.Until(cur.Expires); left > 0 {
			wait = min(wait, left)
		} else {
			m.set(nil, Mapping{})
		}
	}
	m.log.Debug("port mapping: none", "err", err, "retry_in", wait)
	return wait
}

// discover tries every enabled protocol, PCP and NAT-PMP (one UDP exchange
// with the gateway) before UPnP (SSDP, then HTTP), while the SSDP search
// runs alongside, and returns the first mapping made.
func (m *Mapper) discover(ctx context.Context) (Mapping, protocolClient, error) {
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()

	var errs []error
	var gw netip.Addr
	usePMP := !m.opt.DisablePCP || !m.opt.DisableNATPMP
	if usePMP || (!m.opt.DisableUPnP && m.opt.findIGDs == nil) {
		var err error
		if gw = m.opt.Gateway; !gw.IsValid() {
			gw, err = defaultGateway()
		}
		if err != nil {
			errs = append(errs, err)
		}
	}

	type igdResult struct {
		svcs []igdService
		err  error
	}
	igds := make(chan igdResult, 1)
	if !m.opt.DisableUPnP {
		wg.Go(func() {
			svcs, err := m.findIGDs(ctx, gw)
			igds <- igdResult{svcs, err}
		})
	}

	if usePMP && gw.IsValid() {
		server := netip.AddrPortFrom(gw, m.opt.pmpPort)
		var clients []protocolClient
		if !m.opt.DisablePCP {
			clients = append(clients, &pcpClient{server: server, localPort: m.opt.LocalPort, lease: m.opt.Lease, nonce: m.pcpNonce, dial: m.opt.dial})
		}
		if !m.opt.DisableNATPMP {
			clients = append(clients, &pmpClient{server: server, localPort: m.opt.LocalPort, lease: m.opt.Lease, dial: m.opt.dial})
		}
		for _, c := range clients {
			mp, err := c.mapPort(ctx, Mapping{})
			if err == nil {
				return mp, c, nil
			}
			errs = append(errs, err)
			if errors.Is(err, errNoServer) || errors.Is(err, errNoPublicAddress) || ctx.Err() != nil {
				break // the next protocol on the same port would fare no better
			}
		}
	}

	if !m.opt.DisableUPnP {
		r := <-igds
		if r.err != nil {
			errs = append(errs, r.err)
		}
		for _, s := range r.svcs {
			c := &upnpClient{igdService: s, localPort: m.opt.LocalPort, description: m.opt.Description, lease: m.opt.Lease}
			mp, err := c.mapPort(ctx, Mapping{})
			if err == nil {
				return mp, c, nil
			}
			errs = append(errs, err)
			if ctx.Err() != nil {
				break
			}
		}
	}
	if len(errs) == 0 {
		errs = append(errs, errNoProtocol)
	}
	return Mapping{}, nil, errors.Join(errs...)
}

// set records the mapping held (none if c is nil), logging changes.
func (m *Mapper) set(c protocolClient, mp Mapping) {
	m.mu.Lock()
	old, had := m.mapping, m.client != nil
	m.client, m.mapping = c, mp
	m.mu.Unlock()
	switch {
	case c == nil && had:
		m.log.Info("port mapping lost", "protocol", old.Protocol, "external", old.External)
	case c == nil:
	case !had || old.External != mp.External || old.Protocol != mp.Protocol:
		m.log.Info("port mapping", "protocol", mp.Protocol, "external", mp.External, "internal", mp.Internal,
			"lease", time.Until(mp.Expires).Round(time.Second), "via", c)
	default:
		m.log.Debug("port mapping renewed", "protocol", mp.Protocol, "external", mp.External, "expires", mp.Expires)
	}
}

// Close stops Run, waits for it, and removes the mapping from the gateway,
// giving up after 2 seconds. It returns the removal's error; later calls
// return the same.
func (m *Mapper) Close() error {
	m.closeOnce.Do(func() {
		m.mu.Lock()
		m.closed = true
		m.mu.Unlock()
		m.stop()
		m.runs.Wait()

		m.mu.Lock()
		c, mp := m.client, m.mapping
		m.client, m.mapping = nil, Mapping{}
		m.mu.Unlock()
		if c == nil {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), closeTimeout)
		defer cancel()
		if err := c.unmap(ctx, mp); err != nil {
			m.closeErr = fmt.Errorf("port mapping: remove %v: %w", mp.External, err)
			return
		}
		m.log.Info("port mapping removed", "protocol", mp.Protocol, "external", mp.External)
	})
	return m.closeErr
}

// renewIn returns when to renew mp: at half its remaining life.
func renewIn(mp Mapping) time.Duration {
	return max(time.Until(mp.Expires)/2, renewMin)
}

// retryDelay returns the wait after the n-th failed discovery in a row.
func retryDelay(n int) time.Duration {
	d := retryFirst
	for i := 1; i < n && d < retryMax; i++ {
		d *= 2
	}
	return min(d, retryMax)
}

// leaseSeconds converts a lease to the protocols' whole seconds, at least 1
// (0 would mean "delete" to NAT-PMP and PCP and "forever" to UPnP v1).
func leaseSeconds(d time.Duration) uint32 {
	s := (d + time.Second - 1) / time.Second
	return uint32(min(max(s, 1), math.MaxUint32))
}
