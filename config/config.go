package config

import (
	"bytes"
	"fmt"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"golang.org/x/net/publicsuffix"

	"github.com/whnet/wh/key"
)

// Role is what a node is to the network; its String is the directive that
// declares it.
type Role uint8

// The roles. The zero Role is invalid.
const (
	Trust  Role = iota + 1 // trusted: a tunnel and an overlay IP
	Router                 // trusted; marked as a router (display only, as in WireHub)
	Alias                  // trusted placeholder named by an alias key, learned through AUTH
	Peer                   // known, untrusted DHT peer
	Boot                   // untrusted bootstrap DHT peer, with an endpoint
)

var roleWords = [...]string{Trust: "trust", Router: "router", Alias: "alias", Peer: "peer", Boot: "boot"}

func (r Role) String() string {
	if r >= Trust && int(r) < len(roleWords) {
		return roleWords[r]
	}
	return "Role(" + strconv.Itoa(int(r)) + ")"
}

// Trusted reports whether r is trust, router or alias.
func (r Role) Trusted() bool { return r == Trust || r == Router || r == Alias }

func parseRole(s string) (Role, bool) {
	for r, w := range roleWords {
		if w != "" && w == s {
			return Role(r), true
		}
	}
	return 0, false
}

// Node is one trust, router, alias, peer or boot line.
type Node struct {
	Role     Role
	Hostname string     // "" if none; unique in the file, compared case-insensitively
	Key      key.Public // for an Alias, the alias key
	IP       netip.Addr // static or assigned overlay address; invalid unless Trusted
	Static   bool       // IP was written in the file
	Endpoint Endpoint   // zero if none; never zero for Boot
	// Expires is when an Alias stops accepting claims; zero if never.
	Expires time.Time
	Line    int // 1-based line in the file
}

// Trusted reports whether n is a trust, router or alias node.
func (n Node) Trusted() bool { return n.Role.Trusted() }

// Network is a parsed network config file.
type Network struct {
	Name      string       // "" if unset
	Namespace string       // proof-of-work and ORCHID salt; default "public"
	Workbit   int          // required proof-of-work, 0..256; default 8
	Subnet    netip.Prefix // overlay subnet, masked; invalid if unset
	Nodes     []Node       // in file order, which decides assigned IPs
}

// Error is a mistake in a config file. Error() is "file:line: msg".
type Error struct {
	File string
	Line int
	Msg  string
}

func (e *Error) Error() string {
	if e.File == "" {
		return fmt.Sprintf("line %d: %s", e.Line, e.Msg)
	}
	return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg)
}

// Load reads and parses the config file at path.
func Load(path string) (*Network, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	return Parse(path, b)
}

// Parse parses the config src; file names it in errors. Every error is an
// *Error. See the package documentation for the grammar.
func Parse(file string, src []byte) (*Network, error) {
	p := parser{
		file:  file,
		net:   &Network{Namespace: key.DefaultNamespace, Workbit: key.DefaultWorkbit},
		once:  map[string]int{},
		keys:  map[key.Public]int{},
		hosts: map[string]int{},
		ips:   map[netip.Addr]int{},
	}
	src = bytes.TrimPrefix(src, []byte("\uFEFF"))
	for i, line := range strings.Split(string(src), "\n") {
		if err := p.line(i+1, line); err != nil {
			return nil, err
		}
	}
	if err := allocate(p.net.Subnet, p.net.Nodes); err != nil {
		return nil, &Error{File: file, Line: err.line, Msg: err.msg}
	}
	return p.net, nil
}

// parser holds the state of one Parse.
type parser struct {
	file  string
	net   *Network
	once  map[string]int     // header directive -> line it was set on
	keys  map[key.Public]int // key -> line
	hosts map[string]int     // lower-cased hostname -> line
	ips   map[netip.Addr]int // static IP -> line
}

// lineError is the error of one line, before it is given a file.
type lineError struct {
	line int
	msg  string
}

func (p *parser) errorf(line int, format string, args ...any) error {
	return &Error{File: p.file, Line: line, Msg: fmt.Sprintf(format, args...)}
}

func (p *parser) line(n int, text string) error {
	if !utf8.ValidString(text) {
		return p.errorf(n, "invalid UTF-8")
	}
	if i := strings.IndexByte(text, '#'); i >= 0 {
		text = text[:i]
	}
	words := strings.Fields(text)
	if len(words) == 0 {
		return nil
	}
	for _, w := range words {
		for _, c := range w {
			if c < ' ' || c == 0x7f {
				return p.errorf(n, "control character %U", c)
			}
		}
	}
	dir, args := words[0], words[1:]
	switch dir {
	case "name", "subnet", "workbit", "namespace":
		return p.header(n, dir, args)
	}
	role, ok := parseRole(dir)
	if !ok {
		return p.errorf(n, "unknown directive %q", dir)
	}
	return p.node(n, role, args)
}

// header parses one of the directives that may appear at most once.
func (p *parser) header(n int, dir string, args []string) error {
	if prev, ok := p.once[dir]; ok {
		return p.errorf(n, "%s: already set on line %d", dir, prev)
	}
	p.once[dir] = n
	if len(args) == 0 {
		return p.errorf(n, "%s: missing value", dir)
	}
	if len(args) > 1 {
		return p.errorf(n, "%s: unexpected %q", dir, args[1])
	}
	v := args[0]
	switch dir {
	case "name":
		if isPublicSuffix(v) {
			return p.errorf(n, "name: %q is a public suffix (a domain like com or co.uk that others register names under): "+
				"members would resolve every name under it to the network", v)
		}
		p.net.Name = v
	case "namespace":
		p.net.Namespace = v
	case "workbit":
		w, err := strconv.Atoi(v)
		if !isDigits(v) || err != nil || w > key.MaxWorkbit {
			return p.errorf(n, "workbit: %q is not a number from 0 to %d", v, key.MaxWorkbit)
		}
		p.net.Workbit = w
	case "subnet":
		s, err := netip.ParsePrefix(v)
		switch {
		case err != nil:
			return p.errorf(n, "subnet: %q is not an address/length prefix like 10.0.42.0/24", v)
		case s.Addr().Is4In6():
			return p.errorf(n, "subnet: %q is IPv4-mapped; write the IPv4 prefix", v)
		case s != s.Masked():
			return p.errorf(n, "subnet: %q has host bits set; the network is %s", v, s.Masked())
		}
		p.net.Subnet = s
	}
	return nil
}

// node parses the words after trust, router, alias, peer or boot:
// [hostname] [ip] key [endpoint], hostname and ip in either order.
func (p *parser) node(n int, role Role, words []string) error {
	nd := Node{Role: role, Line: n}
	if role.Trusted() && !p.net.Subnet.IsValid() {
		return p.errorf(n, "%s: no subnet set (the subnet line must come before trust, router and alias lines)", role)
	}
	haveKey := false
	for i := 0; i < len(words); i++ {
		w := words[i]
		if haveKey && w == "expires" {
			if role != Alias {
				return p.errorf(n, "%s: expires is allowed only on alias lines", role)
			}
			if !nd.Expires.IsZero() {
				return p.errorf(n, "alias: second expires")
			}
			if i+1 == len(words) {
				return p.errorf(n, "alias: expires: missing time (like 2026-12-31T00:00:00Z)")
			}
			i++
			t, err := time.Parse(time.RFC3339, words[i])
			if err != nil {
				return p.errorf(n, "alias: expires: %q is not an RFC 3339 time like 2026-12-31T00:00:00Z", words[i])
			}
			nd.Expires = t.UTC()
			continue
		}
		if k, err := parseKey(w); err == nil {
			if haveKey {
				return p.errorf(n, "%s: second public key %q", role, w)
			}
			if k.IsZero() {
				return p.errorf(n, "%s: %q is the all-zero key", role, w)
			}
			if prev, ok := p.keys[k]; ok {
				return p.errorf(n, "%s: key %s is already listed on line %d", role, k, prev)
			}
			p.keys[k] = n
			nd.Key, haveKey = k, true
			continue
		}
		switch {
		case haveKey && !nd.Expires.IsZero():
			return p.errorf(n, "%s: unexpected %q after expires", role, w)
		case haveKey && nd.Endpoint.IsZero():
			e, err := ParseEndpoint(w)
			if err != nil {
				return p.errorf(n, "%s: %v", role, err)
			}
			nd.Endpoint = e
		case haveKey:
			return p.errorf(n, "%s: unexpected %q after the endpoint", role, w)
		default:
			if ip, err := netip.ParseAddr(w); err == nil {
				if err := p.staticIP(n, &nd, ip); err != nil {
					return err
				}
				continue
			}
			if err := p.hostname(n, &nd, w); err != nil {
				return err
			}
		}
	}
	if !haveKey {
		if looksLikeKey(nd.Hostname) {
			return p.errorf(n, "%s: %q is not a public key", role, nd.Hostname)
		}
		return p.errorf(n, "%s: missing public key", role)
	}
	if role == Boot && nd.Endpoint.IsZero() {
		return p.errorf(n, "boot: missing endpoint (a boot node needs one)")
	}
	p.net.Nodes = append(p.net.Nodes, nd)
	return nil
}

func (p *parser) staticIP(n int, nd *Node, ip netip.Addr) error {
	role, s := nd.Role, p.net.Subnet
	switch {
	case !role.Trusted():
		return p.errorf(n, "%s: static IP %s is allowed only on trust, router and alias lines", role, ip)
	case nd.Static:
		return p.errorf(n, "%s: second static IP %s (already %s)", role, ip, nd.IP)
	case ip.Zone() != "" || !s.Contains(ip):
		return p.errorf(n, "%s: %s is not inside subnet %s", role, ip, s)
	case ip == s.Addr():
		return p.errorf(n, "%s: %s is the network address of subnet %s", role, ip, s)
	case ip == lastAddr(s):
		return p.errorf(n, "%s: %s is the broadcast (last) address of subnet %s", role, ip, s)
	}
	if prev, ok := p.ips[ip]; ok {
		return p.errorf(n, "%s: %s is already used on line %d", role, ip, prev)
	}
	p.ips[ip] = n
	nd.IP, nd.Static = ip, true
	return nil
}

func (p *parser) hostname(n int, nd *Node, w string) error {
	role := nd.Role
	if nd.Hostname != "" || looksLikeKey(w) {
		return p.errorf(n, "%s: %q is not a public key", role, w)
	}
	if err := checkHostname(w); err != nil {
		return p.errorf(n, "%s: %q is not a host name, IP address or public key: %v", role, w, err)
	}
	lower := strings.ToLower(w)
	if prev, ok := p.hosts[lower]; ok {
		return p.errorf(n, "%s: host name %q is already used on line %d", role, w, prev)
	}
	p.hosts[lower] = n
	nd.Hostname = w
	return nil
}

// parseKey is key.ParsePublic, skipping the words that cannot be keys.
func parseKey(w string) (key.Public, error) {
	if !looksLikeKey(w) {
		return key.Public{}, key.ErrFormat
	}
	return key.ParsePublic(w)
}

// looksLikeKey reports whether w, which did not decode as a key, has a
// key's length, so that it is reported as a bad key rather than taken as a
// host name.
func looksLikeKey(w string) bool { return len(w) == 43 || len(w) == 44 }

// Node returns the node with key k (for an alias, its alias key).
func (n *Network) Node(k key.Public) (Node, bool) {
	for _, nd := range n.Nodes {
		if nd.Key == k {
			return nd, true
		}
	}
	return Node{}, false
}

// Host returns the node named hostname, compared case-insensitively. It may
// be of any role; only trusted nodes have an IP.
func (n *Network) Host(hostname string) (Node, bool) {
	for _, nd := range n.Nodes {
		if nd.Hostname != "" && strings.EqualFold(nd.Hostname, hostname) {
			return nd, true
		}
	}
	return Node{}, false
}

// NodeByIP returns the trusted node whose overlay address is ip.
func (n *Network) NodeByIP(ip netip.Addr) (Node, bool) {
	for _, nd := range n.Nodes {
		if nd.IP.IsValid() && nd.IP == ip {
			return nd, true
		}
	}
	return Node{}, false
}

// Trusted returns the trust, router and alias nodes, in file order.
func (n *Network) Trusted() []Node { return n.filter(Node.Trusted) }

// Boot returns the boot nodes, in file order.
func (n *Network) Boot() []Node { return n.filter(func(nd Node) bool { return nd.Role == Boot }) }

func (n *Network) filter(keep func(Node) bool) []Node {
	var out []Node
	for _, nd := range n.Nodes {
		if keep(nd) {
			out = append(out, nd)
		}
	}
	return out
}

// isPublicSuffix reports whether name, as a DNS domain, is a public
// suffix on the Public Suffix List (https://publicsuffix.org): a domain
// under which anyone may register names, like com, co.uk or github.io, or
// one whose every subdomain is such a suffix (ck, under the rule *.ck).
//
// The list's algorithm also makes every unlisted top-level label a suffix
// (its implicit rule "*"); such names (demo, tutorial, public) are what
// networks are called, so only listed rules count.
func isPublicSuffix(name string) bool {
	d := strings.TrimSuffix(strings.ToLower(name), ".")
	if d == "" {
		return false
	}
	// The implicit rule only ever yields the last label, and every rule of
	// the list's private section has more than one: a single label that is
	// not ICANN's came from the implicit rule.
	if ps, icann := publicsuffix.PublicSuffix(d); ps == d && (icann || strings.Contains(d, ".")) {
		return true
	}
	// A wildcard rule *.d makes any child of d a suffix; the implicit
	// rule never yields two labels.
	probe := "whprobe." + d
	ps, _ := publicsuffix.PublicSuffix(probe)
	return ps == probe
}
