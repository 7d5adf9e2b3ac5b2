package portmap

import (
	"cmp"
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/huin/goupnp"
	"github.com/huin/goupnp/dcps/internetgateway2"
	"github.com/huin/goupnp/soap"
)

// Timeouts of UPnP's HTTP calls. Each call gets its own context deadline;
// the client's overall timeout is a backstop.
const (
	soapTimeout    = 3 * time.Second
	httpDialWait   = 2 * time.Second
	httpBackstop   = 5 * time.Second
	maxHTTPBody    = 256 << 10 // root descriptions are a few KiB, SOAP answers less
	otherPortTries = 3         // random external ports tried on a v1 gateway after a conflict
)

// igdClient is what the mapper needs from one WAN connection service of
// an Internet Gateway Device. goupnp's generated WANIPConnection2,
// WANIPConnection1 and WANPPPConnection1 clients all have these methods,
// and tests put a fake in their place.
type igdClient interface {
	GetExternalIPAddressCtx(ctx context.Context) (ip string, err error)
	AddPortMappingCtx(ctx context.Context, remoteHost string, externalPort uint16, protocol string,
		internalPort uint16, internalClient string, enabled bool, description string, leaseSeconds uint32) error
	DeletePortMappingCtx(ctx context.Context, remoteHost string, externalPort uint16, protocol string) error
}

// igdAnyPortClient is IGDv2's addition: the gateway picks a free external
// port itself when the one asked for is taken.
type igdAnyPortClient interface {
	AddAnyPortMappingCtx(ctx context.Context, remoteHost string, externalPort uint16, protocol string,
		internalPort uint16, internalClient string, enabled bool, description string, leaseSeconds uint32) (reservedPort uint16, err error)
}

var (
	_ igdClient        = (*internetgateway2.WANIPConnection2)(nil)
	_ igdClient        = (*internetgateway2.WANIPConnection1)(nil)
	_ igdClient        = (*internetgateway2.WANPPPConnection1)(nil)
	_ igdAnyPortClient = (*internetgateway2.WANIPConnection2)(nil)
)

// UPnP error codes met in the wild (IGD:2 WANIPConnection:2 §2.5).
const (
	upnpActionFailed           = 501 // also: no external address (double NAT, miniupnpd)
	upnpNotAuthorized          = 606 // e.g. a port outside miniupnpd's allowed ranges
	upnpConflictInMappingEntry = 718 // port taken by another host, or secure mode refusing another client
	upnpOnlyPermanentLeases    = 725 // some v1 gateways accept only lease 0
)

// upnpErrorCode returns the UPnP error code in a SOAP fault, or 0.
func upnpErrorCode(err error) int {
	var f *soap.SOAPFaultError
	if errors.As(err, &f) {
		return f.Detail.UPnPError.Errorcode
	}
	return 0
}

// igdService is one WAN connection service of a gateway on the LAN.
type igdService struct {
	proto  string // ProtocolUPnPIGD2, ProtocolUPnPIGD1IP or ProtocolUPnPIGD1PPP
	client igdClient
	local  netip.Addr // our address on the path to it: the only internal client a secure-mode gateway allows
	where  string     // its control URL, for logs
}

// protoRank orders services from most to least preferred.
func protoRank(proto string) int {
	switch proto {
	case ProtocolUPnPIGD2:
		return 0
	case ProtocolUPnPIGD1IP:
		return 1
	}
	return 2
}

// upnpClient maps the node's port through one IGD service.
type upnpClient struct {
	igdService
	localPort   uint16
	description string
	lease       time.Duration
	permanent   bool // the gateway answered 725: ask for lease 0 from now on
}

func (c *upnpClient) protocol() string { return c.proto }

func (c *upnpClient) String() string { return c.proto + " " + c.where }

// mapPort checks the gateway has a public address, then maps the local
// port: to prev's external port when renewing, else to the same port
// number, else to any port.
func (c *upnpClient) mapPort(ctx context.Context, prev Mapping) (Mapping, error) {
	ext, err := c.externalAddr(ctx)
	if err != nil {
		return Mapping{}, err
	}
	want := c.localPort
	if prev.External.IsValid() {
		want = prev.External.Port()
	}
	port, err := c.add(ctx, want)
	if err != nil {
		return Mapping{}, fmt.Errorf("%v: AddPortMapping: %w", c, err)
	}
	// A permanent mapping has no expiry to honour; we treat it as leased
	// all the same, and confirm it at the same pace.
	return Mapping{
		External: netip.AddrPortFrom(ext, port),
		Internal: netip.AddrPortFrom(c.local, c.localPort),
		Protocol: c.proto,
		Expires:  time.Now().Add(time.Duration(leaseSeconds(c.lease)) * time.Second),
	}, nil
}

func (c *upnpClient) externalAddr(ctx context.Context) (netip.Addr, error) {
	ctx, cancel := context.WithTimeout(ctx, soapTimeout)
	defer cancel()
	s, err := c.client.GetExternalIPAddressCtx(ctx)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("%v: GetExternalIPAddress: %w", c, err)
	}
	a, err := netip.ParseAddr(strings.TrimSpace(s))
	if err != nil || !isPublic(a) {
		return netip.Addr{}, fmt.Errorf("%v: external address %q: %w", c, s, errNoPublicAddress)
	}
	return a.Unmap(), nil
}

// add maps external port want to us, or another port if want is refused.
func (c *upnpClient) add(ctx context.Context, want uint16) (uint16, error) {
	err := c.addPort(ctx, want)
	if !c.permanent && upnpErrorCode(err) == upnpOnlyPermanentLeases {
		c.permanent = true
		err = c.addPort(ctx, want)
	}
	if err == nil {
		return want, nil
	}
	if code := upnpErrorCode(err); code != upnpConflictInMappingEntry && code != upnpNotAuthorized {
		return 0, err
	}
	if v2, ok := c.client.(igdAnyPortClient); ok {
		callCtx, cancel := context.WithTimeout(ctx, soapTimeout)
		port, anyErr := v2.AddAnyPortMappingCtx(callCtx, "", want, "UDP", c.localPort, c.local.String(), true, c.description, c.leaseSeconds())
		cancel()
		if anyErr == nil && port != 0 {
			return port, nil
		}
		err = fmt.Errorf("%w; AddAnyPortMapping: %w", err, cmp.Or(anyErr, errBadMapping))
	}
	for range otherPortTries {
		if ctx.Err() != nil {
			return 0, ctx.Err()
		}
		port := uint16(1024 + rand.IntN(65536-1024))
		perr := c.addPort(ctx, port)
		if perr == nil {
			return port, nil
		}
		err = fmt.Errorf("%w; port %d: %w", err, port, perr)
		if code := upnpErrorCode(perr); code != upnpConflictInMappingEntry && code != upnpNotAuthorized {
			break
		}
	}
	return 0, err
}

func (c *upnpClient) leaseSeconds() uint32 {
	if c.permanent {
		return 0
	}
	return leaseSeconds(c.lease)
}

func (c *upnpClient) addPort(ctx context.Context, port uint16) error {
	ctx, cancel := context.WithTimeout(ctx, soapTimeout)
	defer cancel()
	return c.client.AddPortMappingCtx(ctx, "", port, "UDP", c.localPort, c.local.String(), true, c.description, c.leaseSeconds())
}

func (c *upnpClient) unmap(ctx context.Context, mp Mapping) error {
	ctx, cancel := context.WithTimeout(ctx, soapTimeout)
	defer cancel()
	if err := c.client.DeletePortMappingCtx(ctx, "", mp.External.Port(), "UDP"); err != nil {
		return fmt.Errorf("%v: DeletePortMapping: %w", c, err)
	}
	return nil
}

// findIGDs searches the LAN (and the gateway gw, when known) for Internet
// Gateway Devices and returns their WAN connection services, the most
// preferred first.
func (m *Mapper) findIGDs(ctx context.Context, gw netip.Addr) ([]igdService, error) {
	if m.opt.findIGDs != nil {
		return m.opt.findIGDs(ctx)
	}
	dsts := m.opt.ssdpAddrs
	if dsts == nil {
		dsts = []netip.AddrPort{ssdpMulticast}
		if gw.IsValid() {
			dsts = append(dsts, netip.AddrPortFrom(gw, ssdpPort))
		}
	}
	locs, err := searchSSDP(ctx, m.opt.listen, dsts)
	if err != nil {
		return nil, err
	}
	var svcs []igdService
	var errs []error
	for _, loc := range locs {
		s, err := igdServices(ctx, m.http, loc)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		svcs = append(svcs, s...)
	}
	if len(svcs) == 0 {
		return nil, errors.Join(append([]error{errNoIGD}, errs...)...)
	}
	slices.SortStableFunc(svcs, func(a, b igdService) int { return protoRank(a.proto) - protoRank(b.proto) })
	return svcs, nil
}

// igdServices fetches the root description at loc and returns clients for
// its WAN connection services. goupnp's own fetch would use its global
// HTTP client (goupnp.HTTPClientDefault); we decode the description
// ourselves with hc and give every SOAP client hc too, so nothing global
// is touched. Services whose control URL points away from loc's host are
// skipped, like SSDP answers pointing away from their sender.
func igdServices(ctx context.Context, hc *http.Client, loc *url.URL) ([]igdService, error) {
	root, err := fetchRootDevice(ctx, hc, loc)
	if err != nil {
		return nil, err
	}
	host, err := netip.ParseAddr(loc.Hostname())
	if err != nil {
		return nil, fmt.Errorf("upnp %v: %w", loc, err)
	}
	local, err := localAddrTo(host)
	if err != nil {
		return nil, fmt.Errorf("upnp %v: %w", loc, err)
	}
	var svcs []igdService
	add := func(proto string, sc *goupnp.ServiceClient, c igdClient) {
		if sc.SOAPClient.EndpointURL.Hostname() != loc.Hostname() || sc.SOAPClient.EndpointURL.Scheme != "http" {
			return
		}
		sc.SOAPClient.HTTPClient = *hc
		svcs = append(svcs, igdService{proto: proto, client: c, local: local, where: sc.SOAPClient.EndpointURL.String()})
	}
	// Each constructor fails when the device lacks that service: expected.
	ip2, _ := internetgateway2.NewWANIPConnection2ClientsFromRootDevice(root, loc)
	for _, c := range ip2 {
		add(ProtocolUPnPIGD2, &c.ServiceClient, c)
	}
	ip1, _ := internetgateway2.NewWANIPConnection1ClientsFromRootDevice(root, loc)
	for _, c := range ip1 {
		add(ProtocolUPnPIGD1IP, &c.ServiceClient, c)
	}
	ppp1, _ := internetgateway2.NewWANPPPConnection1ClientsFromRootDevice(root, loc)
	for _, c := range ppp1 {
		add(ProtocolUPnPIGD1PPP, &c.ServiceClient, c)
	}
	if len(svcs) == 0 {
		return nil, fmt.Errorf("upnp %v: no WANIPConnection or WANPPPConnection service", loc)
	}
	return svcs, nil
}

// fetchRootDevice gets and decodes a UPnP root device description, as
// goupnp.DeviceByURLCtx does but with our HTTP client.
func fetchRootDevice(ctx context.Context, hc *http.Client, loc *url.URL) (*goupnp.RootDevice, error) {
	ctx, cancel := context.WithTimeout(ctx, soapTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, loc.String(), nil)
	if err != nil {
		return nil, fmt.Errorf("upnp %v: %w", loc, err)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("upnp: root description: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("upnp %v: root description: HTTP %s", loc, resp.Status)
	}
	dec := xml.NewDecoder(resp.Body)
	dec.DefaultSpace = goupnp.DeviceXMLNamespace
	root := new(goupnp.RootDevice)
	if err := dec.Decode(root); err != nil {
		return nil, fmt.Errorf("upnp %v: root description: %w", loc, err)
	}
	base := loc
	if root.URLBaseStr != "" {
		if base, err = url.Parse(root.URLBaseStr); err != nil {
			return nil, fmt.Errorf("upnp %v: URLBase: %w", loc, err)
		}
	}
	root.SetURLBase(base)
	return root, nil
}

// newHTTPClient returns the client for talking to gateways: no proxy (a
// gateway is on the LAN), no redirects, no keep-alive connections lingering
// between renewals minutes apart, bounded waits and bodies.
func newHTTPClient() *http.Client {
	return &http.Client{
		Timeout: httpBackstop,
		Transport: limitBody{rt: &http.Transport{
			Proxy:                 nil,
			DialContext:           (&net.Dialer{Timeout: httpDialWait}).DialContext,
			DisableKeepAlives:     true,
			ResponseHeaderTimeout: soapTimeout,
		}},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// limitBody cuts every response body at maxHTTPBody bytes.
type limitBody struct{ rt http.RoundTripper }

func (l limitBody) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := l.rt.RoundTrip(req)
	if err == nil {
		resp.Body = struct {
			io.Reader
			io.Closer
		}{io.LimitReader(resp.Body, maxHTTPBody), resp.Body}
	}
	return resp, err
}
