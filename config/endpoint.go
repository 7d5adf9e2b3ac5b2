package config

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
)

// DefaultPort is the UDP port of an endpoint written without one (WireHub's).
const DefaultPort = 62096

// ErrNoEndpoint is returned by Endpoint.Resolve for the zero Endpoint.
var ErrNoEndpoint = errors.New("no endpoint")

// Endpoint is where a node's wh daemon listens: an IP literal or a DNS name,
// and a UDP port. Names are kept as written and resolved only when used, so
// that a config parses offline.
//
// The zero Endpoint means "none". An Endpoint from ParseEndpoint always has
// a non-zero Port.
type Endpoint struct {
	// Host is an IP literal without brackets or zone, in netip's canonical
	// form (IPv4-mapped IPv6 is written as IPv4), or a DNS name.
	Host string
	Port uint16
}

// IsZero reports whether e is the zero Endpoint (no endpoint).
func (e Endpoint) IsZero() bool { return e == Endpoint{} }

// String returns e in canonical form: ip:port, [ipv6]:port or host:port.
// It returns "" for the zero Endpoint.
func (e Endpoint) String() string {
	if e.IsZero() {
		return ""
	}
	if a, err := netip.ParseAddr(e.Host); err == nil {
		return netip.AddrPortFrom(a, e.Port).String()
	}
	return e.Host + ":" + strconv.Itoa(int(e.Port))
}

// Addr returns the endpoint's IP and port if Host is an IP literal.
func (e Endpoint) Addr() (netip.AddrPort, bool) {
	a, err := netip.ParseAddr(e.Host)
	if err != nil {
		return netip.AddrPort{}, false
	}
	return netip.AddrPortFrom(a, e.Port), true
}

// Resolve returns the UDP addresses of e. An IP literal needs no lookup;
// a name is looked up with r, or net.DefaultResolver if r is nil. IPv4
// results are returned as IPv4, never IPv4-mapped IPv6.
func (e Endpoint) Resolve(ctx context.Context, r *net.Resolver) ([]netip.AddrPort, error) {
	if e.IsZero() {
		return nil, ErrNoEndpoint
	}
	if ap, ok := e.Addr(); ok {
		return []netip.AddrPort{ap}, nil
	}
	if r == nil {
		r = net.DefaultResolver
	}
	addrs, err := r.LookupNetIP(ctx, "ip", e.Host)
	if err != nil {
		return nil, fmt.Errorf("resolve endpoint %s: %w", e, err)
	}
	out := make([]netip.AddrPort, 0, len(addrs))
	for _, a := range addrs {
		out = append(out, netip.AddrPortFrom(a.Unmap(), e.Port))
	}
	return out, nil
}

// ParseEndpoint parses an endpoint written as ip, ip:port, ipv6, [ipv6],
// [ipv6]:port, host or host:port. The port defaults to DefaultPort and must
// be 1..65535. An IP must be unicast and carry no zone (a config is shared
// between machines, and zones are local to one); a name must be a valid DNS
// name (see the package documentation).
func ParseEndpoint(s string) (Endpoint, error) {
	e, err := parseEndpoint(s)
	if err != nil {
		return Endpoint{}, fmt.Errorf("endpoint %q: %w", s, err)
	}
	return e, nil
}

func parseEndpoint(s string) (Endpoint, error) {
	host, port := s, ""
	switch {
	case strings.HasPrefix(s, "["):
		end := strings.IndexByte(s, ']')
		if end < 0 {
			return Endpoint{}, errors.New("missing ']'")
		}
		host, port = s[1:end], s[end+1:]
		if port != "" {
			if port[0] != ':' {
				return Endpoint{}, fmt.Errorf("unexpected %q after ']'", port)
			}
			port = port[1:]
			if port == "" {
				return Endpoint{}, errors.New("empty port")
			}
		}
		if a, err := netip.ParseAddr(host); err != nil || !a.Is6() {
			return Endpoint{}, errors.New("only an IPv6 address goes in brackets")
		}
	case strings.Count(s, ":") == 1:
		i := strings.IndexByte(s, ':')
		host, port = s[:i], s[i+1:]
		if port == "" {
			return Endpoint{}, errors.New("empty port")
		}
	case strings.Count(s, ":") > 1:
		// A bare IPv6 address; with a port it must be in brackets.
		if _, err := netip.ParseAddr(s); err != nil {
			return Endpoint{}, errors.New("not an IP address (an IPv6 address with a port is written [addr]:port)")
		}
	}
	e := Endpoint{Host: host, Port: DefaultPort}
	if port != "" {
		p, err := parsePort(port)
		if err != nil {
			return Endpoint{}, err
		}
		e.Port = p
	}
	if a, err := netip.ParseAddr(host); err == nil {
		if a.Zone() != "" {
			return Endpoint{}, errors.New("an address with a zone is local to one machine")
		}
		a = a.Unmap()
		if a.IsUnspecified() || a.IsMulticast() {
			return Endpoint{}, fmt.Errorf("%s is not a unicast address", a)
		}
		e.Host = a.String()
		return e, nil
	}
	if err := checkHostname(host); err != nil {
		return Endpoint{}, fmt.Errorf("not an IP address or host name: %w", err)
	}
	return e, nil
}

func parsePort(s string) (uint16, error) {
	if !isDigits(s) {
		return 0, fmt.Errorf("port %q is not a number", s)
	}
	p, err := strconv.ParseUint(s, 10, 16)
	if err != nil || p == 0 {
		return 0, fmt.Errorf("port %s is out of range 1..65535", s)
	}
	return uint16(p), nil
}

func isDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

// checkHostname accepts a DNS name of at most 253 characters whose labels
// are 1..63 characters of ASCII letters, digits, '-' and '_', neither
// starting nor ending with '-'. The last label may not be all digits, so
// that a mistyped IPv4 address (10.0.42.300) is not taken for a name.
func checkHostname(s string) error {
	if s == "" {
		return errors.New("empty name")
	}
	if len(s) > 253 {
		return errors.New("name longer than 253 characters")
	}
	labels := strings.Split(s, ".")
	for _, l := range labels {
		switch {
		case l == "":
			return errors.New("empty label")
		case len(l) > 63:
			return fmt.Errorf("label %q longer than 63 characters", l)
		case l[0] == '-' || l[len(l)-1] == '-':
			return fmt.Errorf("label %q starts or ends with '-'", l)
		}
		for _, c := range l {
			if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
				return fmt.Errorf("character %q not allowed", c)
			}
		}
	}
	if isDigits(labels[len(labels)-1]) {
		return errors.New("last label is all digits")
	}
	return nil
}
