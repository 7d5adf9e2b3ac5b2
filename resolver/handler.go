package resolver

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"
)

// Defaults for the zero values of Options.
const (
	DefaultTTL            = 60 * time.Second
	DefaultForwardTimeout = 2 * time.Second
)

// maxTTL caps Options.TTL.
const maxTTL = 24 * time.Hour

// maxForwards bounds the queries being forwarded at once; beyond it the
// handler answers SERVFAIL instead of piling up goroutines that wait on
// upstream timeouts.
const maxForwards = 256

// ednsSize is the UDP payload size the handler advertises in its own
// answers (the DNS flag day 2020 value).
const ednsSize = 1232

// Errors.
var (
	// ErrBadName is wrapped by the reasons a host or domain name is refused.
	ErrBadName = errors.New("not a valid name")
	// ErrBadUpstream is returned by NewHandler for an unparsable upstream.
	ErrBadUpstream = errors.New("bad upstream resolver address")
)

// Options configures a Handler. Every zero value is a usable default.
type Options struct {
	// Upstreams are the resolvers that names outside the zone are forwarded
	// to, each "ip:port" or "ip" (port 53), tried in order. Nil means the
	// nameservers of /etc/resolv.conf, read once by NewHandler.
	Upstreams []string
	// NoForward disables forwarding: names outside the zone get REFUSED.
	NoForward bool
	// ForwardTimeout bounds each attempt at an upstream; zero means
	// DefaultForwardTimeout.
	ForwardTimeout time.Duration
	// TTL of every answer, and the SOA minimum (negative-caching TTL), in
	// whole seconds up to a day; below a second means DefaultTTL. It is
	// kept short because reload can change names.
	TTL time.Duration
	// Logger receives warnings (hosts left out of a zone) and, at debug
	// level, upstream failures. Nil discards.
	Logger *slog.Logger

	// resolvConf replaces /etc/resolv.conf in tests.
	resolvConf string
}

// Handler is the DNS handler for one network: a dns.Handler that answers the
// zone's names and forwards the rest. It is safe for concurrent use.
type Handler struct {
	log       *slog.Logger
	ttl       uint32
	noForward bool
	timeout   time.Duration

	zone   atomic.Pointer[compiledZone] // swapped whole by SetZone; never nil
	serial atomic.Uint32                // SOA serial, bumped by SetZone

	// upstreams is configured minus the handler's own listen addresses;
	// replaced whole, never nil.
	upstreams atomic.Pointer[[]netip.AddrPort]

	mu         sync.Mutex       // serializes exclude; guards the two fields below
	configured []netip.AddrPort // upstreams as configured
	own        []netip.AddrPort // addresses this handler listens on

	forwardSlots chan struct{} // a token per forward in flight
}

var _ dns.Handler = (*Handler)(nil)

// NewHandler returns a handler with an empty zone. It reads
// /etc/resolv.conf when opt.Upstreams is nil and forwarding is enabled; a
// missing file leaves it without upstreams (forwarded names get SERVFAIL).
func NewHandler(opt Options) (*Handler, error) {
	h := &Handler{
		log:          opt.Logger,
		noForward:    opt.NoForward,
		timeout:      opt.ForwardTimeout,
		forwardSlots: make(chan struct{}, maxForwards),
	}
	if h.log == nil {
		h.log = slog.New(slog.DiscardHandler)
	}
	h.ttl = uint32(DefaultTTL / time.Second)
	if opt.TTL >= time.Second {
		h.ttl = uint32(min(opt.TTL, maxTTL) / time.Second)
	}
	if h.timeout <= 0 {
		h.timeout = DefaultForwardTimeout
	}
	switch {
	case opt.NoForward:
	case opt.Upstreams != nil:
		for _, s := range opt.Upstreams {
			ap, err := parseUpstream(s)
			if err != nil {
				return nil, err
			}
			h.configured = append(h.configured, ap)
		}
	default:
		path := opt.resolvConf
		if path == "" {
			path = "/etc/resolv.conf"
		}
		ups, err := readResolvConf(path)
		if err != nil {
			h.log.Warn("no upstream resolvers; names outside the network will fail", "err", err)
		}
		h.configured = ups
	}
	h.exclude(nil)
	h.serial.Store(uint32(time.Now().Unix()))
	h.SetZone(Zone{})
	return h, nil
}

// SetZone replaces the names the handler answers, atomically: a query sees
// either the old zone or the new one. Hosts that cannot be served (bad
// name, duplicate) are logged and left out.
func (h *Handler) SetZone(z Zone) {
	domain, hosts, skipped := z.normalize()
	for _, err := range skipped {
		h.log.Warn("name left out of the DNS zone", "err", err)
	}
	h.zone.Store(compile(domain, hosts, h.ttl, h.serial.Add(1)))
}

// exclude removes own from the upstreams, so the handler never forwards to
// itself (a loop when resolv.conf lists one of its listen addresses).
func (h *Handler) exclude(own []netip.AddrPort) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, ap := range own {
		h.own = append(h.own, netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()))
	}
	kept := make([]netip.AddrPort, 0, len(h.configured))
	for _, up := range h.configured {
		self := false
		for _, ap := range h.own {
			self = self || ap == up
		}
		if self {
			h.log.Warn("not forwarding to an upstream that is this resolver", "upstream", up)
			continue
		}
		kept = append(kept, up)
	}
	h.upstreams.Store(&kept)
}

// ServeDNS answers req: from the zone for its names, by forwarding
// otherwise. Responses (QR set) are dropped unanswered.
func (h *Handler) ServeDNS(w dns.ResponseWriter, req *dns.Msg) {
	if req.Response {
		return
	}
	if m := h.local(req); m != nil {
		h.write(w, req, m)
		return
	}
	h.forward(w, req)
}

// local returns the handler's own answer to req, or nil when req is for an
// upstream.
func (h *Handler) local(req *dns.Msg) *dns.Msg {
	switch {
	case req.Opcode != dns.OpcodeQuery:
		return h.reply(req, dns.RcodeNotImplemented)
	case len(req.Question) != 1:
		return h.reply(req, dns.RcodeFormatError)
	}
	if opt := req.IsEdns0(); opt != nil && opt.Version() != 0 {
		return h.reply(req, dns.RcodeBadVers)
	}
	q := req.Question[0]
	if q.Qclass != dns.ClassINET && q.Qclass != dns.ClassANY {
		return nil
	}
	name := strings.ToLower(dns.Fqdn(q.Name))
	z := h.zone.Load()
	if host := z.names[name]; host != nil {
		return h.answerHost(req, z, name, host)
	}
	if target, ok := z.ptr[name]; ok {
		return h.answerPTR(req, target)
	}
	if z.inDomain(name) {
		return h.answerMissing(req, z, name)
	}
	return nil
}

// reply starts a response to req with rcode.
func (h *Handler) reply(req *dns.Msg, rcode int) *dns.Msg {
	m := new(dns.Msg)
	m.SetRcode(req, rcode)
	m.RecursionAvailable = !h.noForward
	if req.IsEdns0() != nil {
		m.SetEdns0(ednsSize, false)
	}
	return m
}

// header returns the header of an answer record of type t for the question
// of req (owner name spelled as asked).
func (h *Handler) header(req *dns.Msg, t uint16) dns.RR_Header {
	return dns.RR_Header{Name: dns.Fqdn(req.Question[0].Name), Rrtype: t, Class: dns.ClassINET, Ttl: h.ttl}
}

// answerHost answers a question whose name is host's, bare or qualified.
func (h *Handler) answerHost(req *dns.Msg, z *compiledZone, name string, host *Host) *dns.Msg {
	m := h.reply(req, dns.RcodeSuccess)
	m.Authoritative = true
	qt := req.Question[0].Qtype
	if (qt == dns.TypeA || qt == dns.TypeANY) && host.IPv4.IsValid() {
		m.Answer = append(m.Answer, &dns.A{Hdr: h.header(req, dns.TypeA), A: host.IPv4.AsSlice()})
	}
	if (qt == dns.TypeAAAA || qt == dns.TypeANY) && host.IPv6.IsValid() {
		m.Answer = append(m.Answer, &dns.AAAA{Hdr: h.header(req, dns.TypeAAAA), AAAA: host.IPv6.AsSlice()})
	}
	if len(m.Answer) == 0 && z.inDomain(name) {
		m.Ns = []dns.RR{z.soa} // NODATA (RFC 2308 §2.2)
	}
	return m
}

// answerPTR answers a question for a reverse name of one of the zone's
// addresses.
func (h *Handler) answerPTR(req *dns.Msg, target string) *dns.Msg {
	m := h.reply(req, dns.RcodeSuccess)
	m.Authoritative = true
	if qt := req.Question[0].Qtype; qt == dns.TypePTR || qt == dns.TypeANY {
		m.Answer = []dns.RR{&dns.PTR{Hdr: h.header(req, dns.TypePTR), Ptr: target}}
	}
	return m
}

// answerMissing answers a name under the domain that is not a host: the
// apex itself has a SOA and nothing else, anything else does not exist.
func (h *Handler) answerMissing(req *dns.Msg, z *compiledZone, name string) *dns.Msg {
	if name != z.domain {
		m := h.reply(req, dns.RcodeNameError)
		m.Authoritative = true
		m.Ns = []dns.RR{z.soa}
		return m
	}
	m := h.reply(req, dns.RcodeSuccess)
	m.Authoritative = true
	if qt := req.Question[0].Qtype; qt == dns.TypeSOA || qt == dns.TypeANY {
		soa := *z.soa
		soa.Hdr.Name = dns.Fqdn(req.Question[0].Name)
		m.Answer = []dns.RR{&soa}
	} else {
		m.Ns = []dns.RR{z.soa}
	}
	return m
}

// write sends m, truncated to what the client accepts over UDP.
func (h *Handler) write(w dns.ResponseWriter, req *dns.Msg, m *dns.Msg) {
	if !isTCP(w) {
		m.Truncate(udpSize(req))
	}
	if err := w.WriteMsg(m); err != nil {
		h.log.Debug("DNS reply not sent", "err", err)
	}
}

// forward relays req to the upstreams, in order, over the transport req
// came on, and relays the first answer back.
func (h *Handler) forward(w dns.ResponseWriter, req *dns.Msg) {
	if h.noForward {
		h.write(w, req, h.reply(req, dns.RcodeRefused))
		return
	}
	ups := *h.upstreams.Load()
	if len(ups) == 0 {
		h.write(w, req, h.reply(req, dns.RcodeServerFailure))
		return
	}
	select {
	case h.forwardSlots <- struct{}{}:
		defer func() { <-h.forwardSlots }()
	default:
		h.log.Debug("too many DNS queries being forwarded; failing one")
		h.write(w, req, h.reply(req, dns.RcodeServerFailure))
		return
	}
	// UDPSize takes answers larger than a client without EDNS0 asked for;
	// write truncates them for it.
	c := &dns.Client{Net: "udp", Timeout: h.timeout, UDPSize: dns.DefaultMsgSize}
	if isTCP(w) {
		c.Net = "tcp"
	}
	q := req.Copy()
	q.Id = dns.Id() // a fresh ID, not the client's, against off-path spoofing
	for _, up := range ups {
		resp, _, err := c.Exchange(q, up.String())
		if err != nil {
			h.log.Debug("upstream resolver failed", "upstream", up, "err", err)
			continue
		}
		resp.Id = req.Id
		h.write(w, req, resp)
		return
	}
	h.write(w, req, h.reply(req, dns.RcodeServerFailure))
}

// isTCP reports whether w answers over TCP.
func isTCP(w dns.ResponseWriter) bool {
	_, ok := w.RemoteAddr().(*net.TCPAddr)
	return ok
}

// udpSize returns the largest UDP response the client of req accepts.
func udpSize(req *dns.Msg) int {
	if opt := req.IsEdns0(); opt != nil && int(opt.UDPSize()) > dns.MinMsgSize {
		return int(opt.UDPSize())
	}
	return dns.MinMsgSize
}

// parseUpstream parses "ip:port" or "ip" (port 53).
func parseUpstream(s string) (netip.AddrPort, error) {
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("%w: %q", ErrBadUpstream, s)
	}
	return netip.AddrPortFrom(a.Unmap(), 53), nil
}

// readResolvConf returns the nameservers of a resolv.conf file.
func readResolvConf(path string) ([]netip.AddrPort, error) {
	cfg, err := dns.ClientConfigFromFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	var ups []netip.AddrPort
	for _, s := range cfg.Servers {
		a, err := netip.ParseAddr(s)
		if err != nil {
			continue // dns.ClientConfigFromFile only keeps addresses; be safe anyway
		}
		ups = append(ups, netip.AddrPortFrom(a.Unmap(), 53))
	}
	if len(ups) == 0 {
		return nil, fmt.Errorf("%s lists no nameserver", path)
	}
	return ups, nil
}
