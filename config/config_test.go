package config

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/whnet/wh/key"
)

// Keys from WIREHUB.md §4.3; all have at least 8 workbits in namespace
// "public".
const (
	keyBoot = "P17zMwXJFbBdJEn05RFIMADw9TX5_m2xgf31OgNKX3w"
	keyA    = "zW-1lBeQ7IkT6NW6hL_NsV4eOPOwJi_rt1vO-omOEmQ"
	keyB    = "g878Bf9ZDc4IzFSUhWFTO1VYFVmHD5XfvEsVn83Dsho"
	keyC    = "gOVQwCSUxKUhUrkUSF0aDvssDfWVrrnm47ZMp5GJtDg"
	keyD    = "KJ7YGrBeqLLm_JJ1huIS26OnqAVFy57z5UJqjyMagW4"
	keyE    = "OgVwBkEoLpIBTSY2CMUbqyD9he19cOD2kpAEjYQQpS0"
)

// cmpNet compares Networks; netip values compare with ==.
var cmpNet = cmpopts.EquateComparable(netip.Addr{}, netip.AddrPort{}, netip.Prefix{})

// ignoreLine drops Node.Line, which Format does not preserve.
var ignoreLine = cmpopts.IgnoreFields(Node{}, "Line")

func mustKey(tb testing.TB, s string) key.Public {
	tb.Helper()
	k, err := key.ParsePublic(s)
	if err != nil {
		tb.Fatalf("key %q: %v", s, err)
	}
	return k
}

func defaults(n Network) *Network {
	if n.Namespace == "" {
		n.Namespace = "public"
	}
	if n.Workbit == 0 {
		n.Workbit = 8
	}
	return &n
}

type parseCase struct {
	name string
	src  string
	want *Network
}

// parseCases are valid configs and what they parse to. FuzzParse uses
// their sources as seeds.
func parseCases(tb testing.TB) []parseCase {
	ip := netip.MustParseAddr
	pfx := netip.MustParsePrefix
	a, b, c, d, e := mustKey(tb, keyA), mustKey(tb, keyB), mustKey(tb, keyC), mustKey(tb, keyD), mustKey(tb, keyE)
	boot := mustKey(tb, keyBoot)
	net24 := pfx("10.0.42.0/24")

	return []parseCase{
		{
			name: "empty",
			src:  "",
			want: defaults(Network{}),
		},
		{
			name: "comments_and_blank_lines",
			src:  "# a network\n\n   # indented comment\n\t \n",
			want: defaults(Network{}),
		},
		{
			name: "header",
			src:  "name demo\nnamespace acme\nworkbit 12\nsubnet 10.0.42.0/24\n",
			want: &Network{Name: "demo", Namespace: "acme", Workbit: 12, Subnet: net24},
		},
		{
			name: "workbit_zero",
			src:  "workbit 0",
			want: &Network{Namespace: "public", Workbit: 0},
		},
		{
			name: "workbit_max",
			src:  "workbit 256",
			want: &Network{Namespace: "public", Workbit: 256},
		},
		{
			name: "public_config",
			src:  "name public\nworkbit 8\nboot " + keyBoot + " bootstrap.wirehub.io:62096\n",
			want: defaults(Network{Name: "public", Nodes: []Node{
				{Role: Boot, Key: boot, Endpoint: Endpoint{"bootstrap.wirehub.io", 62096}, Line: 3},
			}}),
		},
		{
			name: "readme_tutorial",
			src: "name tutorial           # name of network\n" +
				"subnet 10.0.42.0/24     # private subnetwork\n" +
				"boot " + keyBoot + " bootstrap.wirehub.io\n" +
				"trust node_a " + keyA + "   # -> 10.0.42.2\n" +
				"trust node_b " + keyB + "   # -> 10.0.42.3\n",
			want: defaults(Network{Name: "tutorial", Subnet: net24, Nodes: []Node{
				{Role: Boot, Key: boot, Endpoint: Endpoint{"bootstrap.wirehub.io", DefaultPort}, Line: 3},
				{Role: Trust, Hostname: "node_a", Key: a, IP: ip("10.0.42.2"), Line: 4},
				{Role: Trust, Hostname: "node_b", Key: b, IP: ip("10.0.42.3"), Line: 5},
			}}),
		},
		{
			name: "hostname_then_ip",
			src:  "subnet 10.0.42.0/24\ntrust node_a 10.0.42.7 " + keyA,
			want: defaults(Network{Subnet: net24, Nodes: []Node{
				{Role: Trust, Hostname: "node_a", Key: a, IP: ip("10.0.42.7"), Static: true, Line: 2},
			}}),
		},
		{
			name: "ip_then_hostname",
			src:  "subnet 10.0.42.0/24\ntrust 10.0.42.7 node_a " + keyA,
			want: defaults(Network{Subnet: net24, Nodes: []Node{
				{Role: Trust, Hostname: "node_a", Key: a, IP: ip("10.0.42.7"), Static: true, Line: 2},
			}}),
		},
		{
			name: "key_only",
			src:  "subnet 10.0.42.0/24\ntrust " + keyA,
			want: defaults(Network{Subnet: net24, Nodes: []Node{
				{Role: Trust, Key: a, IP: ip("10.0.42.2"), Line: 2},
			}}),
		},
		{
			name: "standard_base64_key",
			src:  "subnet 10.0.42.0/24\ntrust node_a " + a.Std(),
			want: defaults(Network{Subnet: net24, Nodes: []Node{
				{Role: Trust, Hostname: "node_a", Key: a, IP: ip("10.0.42.2"), Line: 2},
			}}),
		},
		{
			// Statics are reserved before allocation, even when written
			// after the nodes that are allocated.
			name: "statics_skipped",
			src: "subnet 10.0.42.0/24\n" +
				"trust a " + keyA + "\n" +
				"trust b " + keyB + "\n" +
				"trust c 10.0.42.2 " + keyC + "\n" +
				"trust d 10.0.42.4 " + keyD + "\n" +
				"trust e " + keyE + "\n",
			want: defaults(Network{Subnet: net24, Nodes: []Node{
				{Role: Trust, Hostname: "a", Key: a, IP: ip("10.0.42.3"), Line: 2},
				{Role: Trust, Hostname: "b", Key: b, IP: ip("10.0.42.5"), Line: 3},
				{Role: Trust, Hostname: "c", Key: c, IP: ip("10.0.42.2"), Static: true, Line: 4},
				{Role: Trust, Hostname: "d", Key: d, IP: ip("10.0.42.4"), Static: true, Line: 5},
				{Role: Trust, Hostname: "e", Key: e, IP: ip("10.0.42.6"), Line: 6},
			}}),
		},
		{
			name: "static_index_1",
			src:  "subnet 10.0.42.0/24\ntrust gw 10.0.42.1 " + keyA + "\ntrust b " + keyB,
			want: defaults(Network{Subnet: net24, Nodes: []Node{
				{Role: Trust, Hostname: "gw", Key: a, IP: ip("10.0.42.1"), Static: true, Line: 2},
				{Role: Trust, Hostname: "b", Key: b, IP: ip("10.0.42.2"), Line: 3},
			}}),
		},
		{
			name: "roles",
			src: "boot " + keyBoot + " 192.0.2.1\n" +
				"subnet 10.0.42.0/24\n" +
				"trust a " + keyA + "\n" +
				"peer p " + keyB + "\n" +
				"router r " + keyC + "\n" +
				"alias x " + keyD + "\n" +
				"peer " + keyE + "\n",
			want: defaults(Network{Subnet: net24, Nodes: []Node{
				{Role: Boot, Key: boot, Endpoint: Endpoint{"192.0.2.1", DefaultPort}, Line: 1},
				{Role: Trust, Hostname: "a", Key: a, IP: ip("10.0.42.2"), Line: 3},
				{Role: Peer, Hostname: "p", Key: b, Line: 4},
				{Role: Router, Hostname: "r", Key: c, IP: ip("10.0.42.3"), Line: 5},
				{Role: Alias, Hostname: "x", Key: d, IP: ip("10.0.42.4"), Line: 6},
				{Role: Peer, Key: e, Line: 7},
			}}),
		},
		{
			name: "alias_expires",
			src: "subnet 10.0.42.0/24\n" +
				"alias x " + keyA + " expires 2026-12-31T00:00:00Z\n" +
				"alias y " + keyB + " 198.51.100.7 expires 2027-01-01T02:00:00+02:00 # UTC midnight\n",
			want: defaults(Network{Subnet: net24, Nodes: []Node{
				{Role: Alias, Hostname: "x", Key: a, IP: ip("10.0.42.2"), Expires: time.Date(2026, 12, 31, 0, 0, 0, 0, time.UTC), Line: 2},
				{Role: Alias, Hostname: "y", Key: b, IP: ip("10.0.42.3"), Endpoint: Endpoint{"198.51.100.7", DefaultPort}, Expires: time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC), Line: 3},
			}}),
		},
		{
			name: "endpoints",
			src: "subnet 10.0.42.0/24\n" +
				"trust a " + keyA + " 198.51.100.7\n" +
				"trust b " + keyB + " [2001:db8::1]:51820\n" +
				"peer " + keyC + " host.example.org:9\n" +
				"peer " + keyD + " 2001:DB8::2\n" +
				"boot " + keyE + " [::ffff:198.51.100.8]\n",
			want: defaults(Network{Subnet: net24, Nodes: []Node{
				{Role: Trust, Hostname: "a", Key: a, IP: ip("10.0.42.2"), Endpoint: Endpoint{"198.51.100.7", DefaultPort}, Line: 2},
				{Role: Trust, Hostname: "b", Key: b, IP: ip("10.0.42.3"), Endpoint: Endpoint{"2001:db8::1", 51820}, Line: 3},
				{Role: Peer, Key: c, Endpoint: Endpoint{"host.example.org", 9}, Line: 4},
				{Role: Peer, Key: d, Endpoint: Endpoint{"2001:db8::2", DefaultPort}, Line: 5},
				{Role: Boot, Key: e, Endpoint: Endpoint{"198.51.100.8", DefaultPort}, Line: 6},
			}}),
		},
		{
			name: "ipv6_subnet",
			src: "subnet fd00:42::/64\n" +
				"trust a " + keyA + "\n" +
				"trust b fd00:42::2 " + keyB + "\n" +
				"trust c " + keyC + "\n",
			want: defaults(Network{Subnet: pfx("fd00:42::/64"), Nodes: []Node{
				{Role: Trust, Hostname: "a", Key: a, IP: ip("fd00:42::3"), Line: 2},
				{Role: Trust, Hostname: "b", Key: b, IP: ip("fd00:42::2"), Static: true, Line: 3},
				{Role: Trust, Hostname: "c", Key: c, IP: ip("fd00:42::4"), Line: 4},
			}}),
		},
		{
			name: "ipv6_large_subnet",
			src:  "subnet fd00::/8\ntrust a " + keyA + "\ntrust b fd00::ffff:ffff:ffff:ffff " + keyB,
			want: defaults(Network{Subnet: pfx("fd00::/8"), Nodes: []Node{
				{Role: Trust, Hostname: "a", Key: a, IP: ip("fd00::2"), Line: 2},
				{Role: Trust, Hostname: "b", Key: b, IP: ip("fd00::ffff:ffff:ffff:ffff"), Static: true, Line: 3},
			}}),
		},
		{
			name: "ipv6_small_subnet_full",
			src:  "subnet fd00::/126\ntrust a " + keyA,
			want: defaults(Network{Subnet: pfx("fd00::/126"), Nodes: []Node{
				{Role: Trust, Hostname: "a", Key: a, IP: ip("fd00::2"), Line: 2},
			}}),
		},
		{
			name: "slash30_full",
			src:  "subnet 10.0.42.0/30\ntrust gw 10.0.42.1 " + keyA + "\ntrust b " + keyB,
			want: defaults(Network{Subnet: pfx("10.0.42.0/30"), Nodes: []Node{
				{Role: Trust, Hostname: "gw", Key: a, IP: ip("10.0.42.1"), Static: true, Line: 2},
				{Role: Trust, Hostname: "b", Key: b, IP: ip("10.0.42.2"), Line: 3},
			}}),
		},
		{
			name: "whitespace_crlf_bom_glued_comment",
			src:  "\uFEFFname\tdemo#comment\r\n  subnet   10.0.42.0/24 \r\n\vtrust\u00a0a " + keyA + "\r\n",
			want: defaults(Network{Name: "demo", Subnet: net24, Nodes: []Node{
				{Role: Trust, Hostname: "a", Key: a, IP: ip("10.0.42.2"), Line: 3},
			}}),
		},
		{
			name: "hostname_with_dots_and_digits",
			src:  "subnet 10.0.42.0/24\ntrust db-1.eu_west.prod " + keyA + "\ntrust 42x " + keyB,
			want: defaults(Network{Subnet: net24, Nodes: []Node{
				{Role: Trust, Hostname: "db-1.eu_west.prod", Key: a, IP: ip("10.0.42.2"), Line: 2},
				{Role: Trust, Hostname: "42x", Key: b, IP: ip("10.0.42.3"), Line: 3},
			}}),
		},
		{
			name: "subnet_after_peers",
			src:  "peer " + keyA + "\nboot " + keyB + " boot.example\nsubnet 10.0.42.0/24\ntrust " + keyC,
			want: defaults(Network{Subnet: net24, Nodes: []Node{
				{Role: Peer, Key: a, Line: 1},
				{Role: Boot, Key: b, Endpoint: Endpoint{"boot.example", DefaultPort}, Line: 2},
				{Role: Trust, Key: c, IP: ip("10.0.42.2"), Line: 4},
			}}),
		},
	}
}

func TestParse(t *testing.T) {
	for _, tc := range parseCases(t) {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Parse("net.conf", []byte(tc.src))
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if diff := cmp.Diff(tc.want, got, cmpNet); diff != "" {
				t.Errorf("Parse mismatch (-want +got):\n%s", diff)
			}
			// Every accepted config survives a Format round trip.
			again, err := Parse("formatted", got.Format())
			if err != nil {
				t.Fatalf("Parse(Format): %v\n%s", err, got.Format())
			}
			if diff := cmp.Diff(got, again, cmpNet, ignoreLine); diff != "" {
				t.Errorf("Format round trip (-parsed +reparsed):\n%s", diff)
			}
		})
	}
}

type errorCase struct {
	name string
	src  string
	want string // the whole error text
}

// errorCases are mistakes and the errors they give. FuzzParse uses their
// sources as seeds.
func errorCases(tb testing.TB) []errorCase {
	const sub = "subnet 10.0.42.0/24\n"
	badKey := keyA[:42] + "X" // non-zero padding bits: not a key
	zeroKey := strings.Repeat("A", 43)
	return []errorCase{
		{"unknown_directive", "name x\ntrsut a " + keyA, `net.conf:2: unknown directive "trsut"`},
		{"directive_case", "Trust " + keyA, `net.conf:1: unknown directive "Trust"`},
		{"expires_on_trust", sub + "trust a " + keyA + " expires 2026-12-31T00:00:00Z", `net.conf:2: trust: expires is allowed only on alias lines`},
		{"expires_missing", sub + "alias a " + keyA + " expires", `net.conf:2: alias: expires: missing time (like 2026-12-31T00:00:00Z)`},
		{"expires_date_only", sub + "alias a " + keyA + " expires 2026-12-31", `net.conf:2: alias: expires: "2026-12-31" is not an RFC 3339 time like 2026-12-31T00:00:00Z`},
		{"expires_twice", sub + "alias a " + keyA + " expires 2026-12-31T00:00:00Z expires 2026-12-31T00:00:00Z", `net.conf:2: alias: second expires`},
		{"endpoint_after_expires", sub + "alias a " + keyA + " expires 2026-12-31T00:00:00Z 192.0.2.1", `net.conf:2: alias: unexpected "192.0.2.1" after expires`},
		{"name_missing", "name", `net.conf:1: name: missing value`},
		{"name_stray_word", "name my network", `net.conf:1: name: unexpected "network"`},
		{"name_twice", "name a\nname b", `net.conf:2: name: already set on line 1`},
		{"name_public_suffix", "# a network\n\nname com\n" + sub, `net.conf:3: name: "com" is a public suffix` + publicSuffixMsg},
		{"name_public_suffix_two_labels", "name co.uk", `net.conf:1: name: "co.uk" is a public suffix` + publicSuffixMsg},
		{"namespace_twice", "namespace a\n\nnamespace a", `net.conf:3: namespace: already set on line 1`},
		{"workbit_twice", "workbit 8\nworkbit 8", `net.conf:2: workbit: already set on line 1`},
		{"subnet_twice", sub + sub, `net.conf:2: subnet: already set on line 1`},
		{"workbit_word", "workbit x", `net.conf:1: workbit: "x" is not a number from 0 to 256`},
		{"workbit_too_big", "workbit 257", `net.conf:1: workbit: "257" is not a number from 0 to 256`},
		{"workbit_negative", "workbit -1", `net.conf:1: workbit: "-1" is not a number from 0 to 256`},
		{"workbit_plus", "workbit +8", `net.conf:1: workbit: "+8" is not a number from 0 to 256`},
		{"workbit_fraction", "workbit 8.5", `net.conf:1: workbit: "8.5" is not a number from 0 to 256`},
		{"workbit_stray", "workbit 8 9", `net.conf:1: workbit: unexpected "9"`},
		{"subnet_no_length", "subnet 10.0.42.0", `net.conf:1: subnet: "10.0.42.0" is not an address/length prefix like 10.0.42.0/24`},
		{"subnet_bad_length", "subnet 10.0.42.0/33", `net.conf:1: subnet: "10.0.42.0/33" is not an address/length prefix like 10.0.42.0/24`},
		{"subnet_host_bits", "subnet 10.0.42.1/24", `net.conf:1: subnet: "10.0.42.1/24" has host bits set; the network is 10.0.42.0/24`},
		{"subnet_mapped", "subnet ::ffff:10.0.0.0/104", `net.conf:1: subnet: "::ffff:10.0.0.0/104" is IPv4-mapped; write the IPv4 prefix`},
		{"trust_before_subnet", "trust a " + keyA + "\n" + sub, `net.conf:1: trust: no subnet set (the subnet line must come before trust, router and alias lines)`},
		{"router_before_subnet", "router " + keyA, `net.conf:1: router: no subnet set (the subnet line must come before trust, router and alias lines)`},
		{"alias_before_subnet", "alias " + keyA, `net.conf:1: alias: no subnet set (the subnet line must come before trust, router and alias lines)`},
		{"second_hostname_is_bad_key", "name x\nnamespace y\nworkbit 8\n" + sub + "\n# the nodes\ntrust node_a zz", `net.conf:7: trust: "zz" is not a public key`},
		{"missing_key", sub + "trust zz", `net.conf:2: trust: missing public key`},
		{"missing_key_empty", sub + "trust", `net.conf:2: trust: missing public key`},
		{"bad_key_alone", sub + "trust " + badKey, `net.conf:2: trust: "` + badKey + `" is not a public key`},
		{"bad_key_after_hostname", sub + "trust a " + badKey, `net.conf:2: trust: "` + badKey + `" is not a public key`},
		{"bad_key_before_key", sub + "trust " + badKey + " " + keyA, `net.conf:2: trust: "` + badKey + `" is not a public key`},
		{"bad_key_44_chars", "peer " + keyB + "x", `net.conf:1: peer: "` + keyB + `x" is not a public key`},
		{"zero_key", "peer " + zeroKey, `net.conf:1: peer: "` + zeroKey + `" is the all-zero key`},
		{"two_keys", "peer " + keyA + " " + keyB, `net.conf:1: peer: second public key "` + keyB + `"`},
		{"two_keys_after_endpoint", "peer " + keyA + " 192.0.2.1 " + keyB, `net.conf:1: peer: second public key "` + keyB + `"`},
		{"stray_after_endpoint", sub + "trust a " + keyA + " 192.0.2.1 x", `net.conf:2: trust: unexpected "x" after the endpoint`},
		{"duplicate_key", sub + "trust a " + keyA + "\npeer " + keyA, `net.conf:3: peer: key ` + keyA + ` is already listed on line 2`},
		{"duplicate_key_other_form", "peer " + keyA + "\nboot " + mustKey(tb, keyA).Std() + " 192.0.2.1", `net.conf:2: boot: key ` + keyA + ` is already listed on line 1`},
		{"duplicate_hostname", sub + "trust node_a " + keyA + "\ntrust Node_A " + keyB, `net.conf:3: trust: host name "Node_A" is already used on line 2`},
		{"duplicate_static_ip", sub + "trust 10.0.42.5 " + keyA + "\nrouter 10.0.42.5 " + keyB, `net.conf:3: router: 10.0.42.5 is already used on line 2`},
		{"static_outside_subnet", sub + "trust 10.0.43.5 " + keyA, `net.conf:2: trust: 10.0.43.5 is not inside subnet 10.0.42.0/24`},
		{"static_wrong_family", sub + "trust fd00::5 " + keyA, `net.conf:2: trust: fd00::5 is not inside subnet 10.0.42.0/24`},
		{"static_mapped", sub + "trust ::ffff:10.0.42.5 " + keyA, `net.conf:2: trust: ::ffff:10.0.42.5 is not inside subnet 10.0.42.0/24`},
		{"static_zone", "subnet fe80::/64\ntrust fe80::5%eth0 " + keyA, `net.conf:2: trust: fe80::5%eth0 is not inside subnet fe80::/64`},
		{"static_network_address", sub + "trust 10.0.42.0 " + keyA, `net.conf:2: trust: 10.0.42.0 is the network address of subnet 10.0.42.0/24`},
		{"static_broadcast", sub + "alias 10.0.42.255 " + keyA, `net.conf:2: alias: 10.0.42.255 is the broadcast (last) address of subnet 10.0.42.0/24`},
		{"static_ipv6_last", "subnet fd00::/120\ntrust fd00::ff " + keyA, `net.conf:2: trust: fd00::ff is the broadcast (last) address of subnet fd00::/120`},
		{"two_static_ips", sub + "trust 10.0.42.5 10.0.42.6 " + keyA, `net.conf:2: trust: second static IP 10.0.42.6 (already 10.0.42.5)`},
		{"static_on_peer", sub + "peer 10.0.42.5 " + keyA, `net.conf:2: peer: static IP 10.0.42.5 is allowed only on trust, router and alias lines`},
		{"static_on_boot", "boot 10.0.42.5 " + keyA + " 192.0.2.1", `net.conf:1: boot: static IP 10.0.42.5 is allowed only on trust, router and alias lines`},
		{"static_after_key", sub + "trust " + keyA + " 10.0.42.5 extra", `net.conf:2: trust: unexpected "extra" after the endpoint`},
		{"bad_hostname_dash", sub + "trust -a " + keyA, `net.conf:2: trust: "-a" is not a host name, IP address or public key: label "-a" starts or ends with '-'`},
		{"bad_hostname_ip_typo", sub + "trust 10.0.42.300 " + keyA, `net.conf:2: trust: "10.0.42.300" is not a host name, IP address or public key: last label is all digits`},
		{"bad_hostname_char", sub + "trust nœud " + keyA, `net.conf:2: trust: "nœud" is not a host name, IP address or public key: character 'œ' not allowed`},
		{"bad_hostname_prefix", sub + "trust 10.0.42.5/32 " + keyA, `net.conf:2: trust: "10.0.42.5/32" is not a host name, IP address or public key: character '/' not allowed`},
		{"bad_hostname_empty_label", sub + "trust a..b " + keyA, `net.conf:2: trust: "a..b" is not a host name, IP address or public key: empty label`},
		{"boot_without_endpoint", "boot " + keyBoot, `net.conf:1: boot: missing endpoint (a boot node needs one)`},
		{"endpoint_port_zero", "boot " + keyBoot + " 192.0.2.1:0", `net.conf:1: boot: endpoint "192.0.2.1:0": port 0 is out of range 1..65535`},
		{"endpoint_port_big", "boot " + keyBoot + " h.example:65536", `net.conf:1: boot: endpoint "h.example:65536": port 65536 is out of range 1..65535`},
		{"endpoint_port_word", "boot " + keyBoot + " h.example:http", `net.conf:1: boot: endpoint "h.example:http": port "http" is not a number`},
		{"endpoint_empty_port", "peer " + keyA + " h.example:", `net.conf:1: peer: endpoint "h.example:": empty port`},
		{"endpoint_v6_unbracketed_port", "peer " + keyA + " 2001:db8::1::80", `net.conf:1: peer: endpoint "2001:db8::1::80": not an IP address (an IPv6 address with a port is written [addr]:port)`},
		{"endpoint_unclosed", "peer " + keyA + " [2001:db8::1", `net.conf:1: peer: endpoint "[2001:db8::1": missing ']'`},
		{"endpoint_v4_brackets", "peer " + keyA + " [192.0.2.1]:80", `net.conf:1: peer: endpoint "[192.0.2.1]:80": only an IPv6 address goes in brackets`},
		{"endpoint_zone", "peer " + keyA + " [fe80::1%eth0]:80", `net.conf:1: peer: endpoint "[fe80::1%eth0]:80": an address with a zone is local to one machine`},
		{"endpoint_unspecified", "peer " + keyA + " 0.0.0.0:80", `net.conf:1: peer: endpoint "0.0.0.0:80": 0.0.0.0 is not a unicast address`},
		{"endpoint_multicast", "peer " + keyA + " [ff02::1]", `net.conf:1: peer: endpoint "[ff02::1]": ff02::1 is not a unicast address`},
		{"endpoint_bad_name", "peer " + keyA + " bad_host-.example", `net.conf:1: peer: endpoint "bad_host-.example": not an IP address or host name: label "bad_host-" starts or ends with '-'`},
		{"too_many_trusted", "subnet 10.0.42.0/30\ntrust a " + keyA + "\n\ntrust b " + keyB, `net.conf:4: trust: too many trusted nodes for subnet 10.0.42.0/30`},
		{"too_many_with_statics", "subnet 10.0.42.0/29\n" +
			"trust 10.0.42.2 " + keyA + "\ntrust 10.0.42.6 " + keyB + "\n" +
			"router " + keyC + "\nalias " + keyD + "\ntrust " + keyE + "\npeer " + keyBoot + "\ntrust x " + strings.Repeat("A", 42) + "E",
			`net.conf:8: trust: too many trusted nodes for subnet 10.0.42.0/29`},
		{"too_many_slash31", "subnet 10.0.42.0/31\ntrust a " + keyA, `net.conf:2: trust: too many trusted nodes for subnet 10.0.42.0/31`},
		{"too_many_slash32", "subnet 10.0.42.1/32\nalias a " + keyA, `net.conf:2: alias: too many trusted nodes for subnet 10.0.42.1/32`},
		{"control_character", "name a\x01b", `net.conf:1: control character U+0001`},
		{"invalid_utf8", "name ok\nname \xff", `net.conf:2: invalid UTF-8`},
	}
}

const publicSuffixMsg = " (a domain like com or co.uk that others register names under): members would resolve every name under it to the network"

// TestNamePublicSuffix: a network's name is its members' DNS domain, so it
// may not be a domain under which others register names; the names
// networks are called by (WireHub's "public" and "tutorial" among them)
// stay valid.
func TestNamePublicSuffix(t *testing.T) {
	for _, name := range []string{
		"com", "COM", "com.", "org", "io", "uk", "co.uk", "Co.UK", "home.arpa",
		"github.io", "blogspot.com", // the list's private section
		"ck", "x.ck", "kawasaki.jp", // wildcard rules: every child of ck is a suffix
	} {
		_, err := Parse("net.conf", []byte("name "+name+"\n"))
		var e *Error
		if !errors.As(err, &e) || e.Line != 1 || !strings.Contains(e.Msg, "public suffix") {
			t.Errorf("name %s: err = %v, want a public-suffix error on line 1", name, err)
		}
	}
	for _, name := range []string{"public", "tutorial", "demo", "wh", "home", "corp", "lan", "example.com", "mynet.github.io", "www.ck"} {
		n, err := Parse("net.conf", []byte("name "+name+"\n"))
		if err != nil || n.Name != name {
			t.Errorf("name %s: %+v, %v", name, n, err)
		}
	}
}

func TestParseErrors(t *testing.T) {
	for _, tc := range errorCases(t) {
		t.Run(tc.name, func(t *testing.T) {
			n, err := Parse("net.conf", []byte(tc.src))
			if err == nil {
				t.Fatalf("Parse succeeded, want error %q; got:\n%s", tc.want, n.Format())
			}
			if err.Error() != tc.want {
				t.Errorf("error:\n got %s\nwant %s", err, tc.want)
			}
			var perr *Error
			if !errors.As(err, &perr) || perr.File != "net.conf" || perr.Line < 1 {
				t.Errorf("error %#v is not an *Error with file and line", err)
			}
		})
	}
}

func TestErrorWithoutFile(t *testing.T) {
	_, err := Parse("", []byte("bogus"))
	if got, want := err.Error(), `line 1: unknown directive "bogus"`; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestRoleString(t *testing.T) {
	for r, want := range map[Role]string{Trust: "trust", Router: "router", Alias: "alias", Peer: "peer", Boot: "boot", 0: "Role(0)", 9: "Role(9)"} {
		if got := r.String(); got != want {
			t.Errorf("Role(%d).String() = %q, want %q", r, got, want)
		}
	}
	for _, r := range []Role{Trust, Router, Alias} {
		if !r.Trusted() {
			t.Errorf("%s is not trusted", r)
		}
	}
	for _, r := range []Role{Peer, Boot, 0} {
		if r.Trusted() {
			t.Errorf("%s is trusted", r)
		}
	}
}

func TestLookups(t *testing.T) {
	src := "subnet 10.0.42.0/24\n" +
		"boot " + keyBoot + " 192.0.2.1\n" +
		"trust node_a " + keyA + "\n" +
		"peer p " + keyB + "\n" +
		"alias Node_C 10.0.42.9 " + keyC + "\n" +
		"boot " + keyD + " boot2.example\n"
	n, err := Parse("net.conf", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	if nd, ok := n.Node(mustKey(t, keyC)); !ok || nd.Hostname != "Node_C" {
		t.Errorf("Node(keyC) = %+v, %v", nd, ok)
	}
	if _, ok := n.Node(mustKey(t, keyE)); ok {
		t.Errorf("Node(keyE) found a node")
	}
	if nd, ok := n.Host("node_c"); !ok || nd.Key != mustKey(t, keyC) {
		t.Errorf("Host(node_c) = %+v, %v", nd, ok)
	}
	if _, ok := n.Host(""); ok {
		t.Errorf("Host(\"\") found a node")
	}
	if nd, ok := n.NodeByIP(netip.MustParseAddr("10.0.42.2")); !ok || nd.Hostname != "node_a" {
		t.Errorf("NodeByIP(10.0.42.2) = %+v, %v", nd, ok)
	}
	if _, ok := n.NodeByIP(netip.Addr{}); ok {
		t.Errorf("NodeByIP(invalid) found a node")
	}
	hosts := func(nodes []Node) []string {
		var s []string
		for _, nd := range nodes {
			s = append(s, nd.Key.String()[:4])
		}
		return s
	}
	if diff := cmp.Diff([]string{keyA[:4], keyC[:4]}, hosts(n.Trusted())); diff != "" {
		t.Errorf("Trusted (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{keyBoot[:4], keyD[:4]}, hosts(n.Boot())); diff != "" {
		t.Errorf("Boot (-want +got):\n%s", diff)
	}
	if got := n.HostBits(); got != 8 {
		t.Errorf("HostBits = %d, want 8", got)
	}
	if got := (&Network{}).HostBits(); got != -1 {
		t.Errorf("HostBits without subnet = %d, want -1", got)
	}
}

func TestLoad(t *testing.T) {
	n, err := Load("../examples/net.conf")
	if err != nil {
		t.Fatal(err)
	}
	if n.Name != "demo" || n.Subnet != netip.MustParsePrefix("10.0.42.0/24") || len(n.Boot()) != 1 {
		t.Errorf("unexpected example network:\n%s", n.Format())
	}
	var ips []string
	for _, nd := range n.Trusted() {
		ips = append(ips, nd.Hostname+"="+nd.IP.String())
	}
	if diff := cmp.Diff([]string{"node_a=10.0.42.2", "node_b=10.0.42.3", "node_c=10.0.42.4"}, ips); diff != "" {
		t.Errorf("example addresses (-want +got):\n%s", diff)
	}
	// The example must be usable as is: every key has the proof of work
	// the network asks for.
	for _, nd := range n.Nodes {
		if wb := key.Workbits(nd.Key, n.Namespace); wb < n.Workbit {
			t.Errorf("line %d: key %s has %d workbits, network wants %d", nd.Line, nd.Key, wb, n.Workbit)
		}
		if nd.Trusted() && nd.Hostname == "" {
			t.Errorf("line %d: trusted node without a hostname", nd.Line)
		}
	}
	if _, err := Load("testdata/does-not-exist.conf"); err == nil {
		t.Errorf("Load of a missing file succeeded")
	}
	_, err = Load("testdata/bad.conf")
	var perr *Error
	if !errors.As(err, &perr) || perr.File != "testdata/bad.conf" || perr.Line != 3 {
		t.Errorf("Load(bad.conf) = %v, want an *Error on testdata/bad.conf:3", err)
	}
}

// TestDocExamples parses every plain ``` block of docs/config.md and
// examples/net.conf, and checks the addresses their comments promise
// ("# 10.0.42.2", "# none").
func TestDocExamples(t *testing.T) {
	doc, err := os.ReadFile("../docs/config.md")
	if err != nil {
		t.Fatal(err)
	}
	example, err := os.ReadFile("../examples/net.conf")
	if err != nil {
		t.Fatal(err)
	}
	blocks := []string{string(example)}
	var cur []string
	in := false
	for _, l := range strings.Split(string(doc), "\n") {
		switch {
		case !in && l == "```":
			in, cur = true, nil
		case in && l == "```":
			in = false
			blocks = append(blocks, strings.Join(cur, "\n"))
		case in:
			cur = append(cur, l)
		}
	}
	if len(blocks) < 5 {
		t.Fatalf("found only %d config blocks", len(blocks))
	}
	checked := 0
	for i, b := range blocks {
		n, err := Parse(fmt.Sprintf("block%d", i), []byte(b))
		if err != nil {
			t.Errorf("block %d: %v\n%s", i, err, b)
			continue
		}
		lines := strings.Split(b, "\n")
		for _, nd := range n.Nodes {
			_, comment, ok := strings.Cut(lines[nd.Line-1], "#")
			if !ok {
				continue
			}
			word := strings.Fields(comment)[0]
			want := netip.Addr{}
			if word != "none" {
				if want, err = netip.ParseAddr(word); err != nil {
					continue
				}
			}
			checked++
			if nd.IP != want {
				t.Errorf("block %d line %d: address %v, comment says %s", i, nd.Line, nd.IP, word)
			}
		}
	}
	if checked < 10 {
		t.Errorf("checked only %d address comments", checked)
	}
}
