// Package config reads and writes wh's network config: one text file,
// shared by every member of a network, that names the network, its overlay
// subnet and its nodes. The grammar and the address allocation are
// WireHub's, made strict (see "Differences from WireHub").
//
// # Example
//
//	name demo                 # network name
//	subnet 10.0.42.0/24       # overlay subnet
//	boot P17zMwXJFbBdJEn05RFIMADw9TX5_m2xgf31OgNKX3w 192.0.2.1
//	trust node_a zW-1lBeQ7IkT6NW6hL_NsV4eOPOwJi_rt1vO-omOEmQ   # 10.0.42.2
//	trust node_b g878Bf9ZDc4IzFSUhWFTO1VYFVmHD5XfvEsVn83Dsho   # 10.0.42.3
//
// # Lexical rules
//
// The file is UTF-8 (a leading byte order mark is skipped) and is read line
// by line. '#' starts a comment that runs to the end of the line, anywhere
// on it. A line is split into words at white space; an empty line is
// skipped. The first word is the directive, and the other words are its
// arguments. Directives are lower case. Control characters other than white
// space are errors.
//
// # Directives
//
//	name <word>               network name, for display and as a DNS domain
//	namespace <word>          proof-of-work and ORCHID salt; default "public"
//	workbit <0..256>          proof-of-work every key must carry; default 8
//	subnet <prefix>           overlay subnet, IPv4 (10.0.42.0/24) or IPv6 (fd00:42::/64)
//	boot  [<hostname>] <key> <endpoint>             bootstrap DHT node, untrusted
//	peer  [<hostname>] <key> [<endpoint>]           known DHT node, untrusted
//	trust [<hostname>] [<ip>] <key> [<endpoint>]    trusted: a tunnel and an overlay IP
//	router [<hostname>] [<ip>] <key> [<endpoint>]   as trust, displayed as a router
//	alias [<hostname>] [<ip>] <key> [<endpoint>] [expires <time>]
//	                          a trusted slot named by an alias key, until claimed
//
// name, namespace, workbit and subnet take exactly one word and may each be
// given once. The name is the members' DNS domain for the network, so it
// may not be a public suffix on the Public Suffix List (com, co.uk,
// github.io): every name under it would resolve to the network. The subnet must be written as its network address (no host
// bits set) and must come before any trust, router or alias line. An
// unknown directive, a missing argument and an extra word are errors.
//
// # Node lines
//
// The words after boot, peer, trust, router and alias are read one at a
// time:
//
//   - A word that decodes as a 32-byte public key, in either base64 form
//     (URL-safe without padding as WireHub writes it, or standard with
//     padding as wg(8) does), is the node's key. A line has exactly one key;
//     the all-zero key is refused; a key may appear on one line only.
//   - After the key, the next word is the endpoint; any word after that is
//     an error, except that an alias line may end with "expires" and an
//     RFC 3339 time (2026-12-31T00:00:00Z): after it, the alias accepts no
//     claim. "expires" on any other line is an error.
//   - Before the key, a word that is an IP address is the node's static
//     overlay IP, and any other word is its hostname. Both are optional,
//     come in either order, and may each be given once.
//
// A boot line needs an endpoint. Only trust, router and alias lines may
// have a static IP. A hostname may be given on any node line (as in
// WireHub), but only trusted nodes have overlay addresses to resolve it to.
//
// A hostname is a DNS name of at most 253 characters: labels of 1 to 63
// ASCII letters, digits, '-' and '_', separated by '.', no label starting or
// ending with '-', and a last label that is not all digits. Hostnames are
// unique in the file, compared without regard to case.
//
// A static IP must lie inside the subnet and may not be the subnet's first
// (network) or last (IPv4 broadcast) address; host index 1 is allowed. No
// two lines may have the same static IP.
//
// # Endpoints
//
// An endpoint is one of
//
//	1.2.3.4   1.2.3.4:62096   2001:db8::1   [2001:db8::1]   [2001:db8::1]:62096
//	boot.example.org   boot.example.org:62096
//
// The port defaults to 62096 (DefaultPort) and must be 1..65535. An IP must
// be unicast and may not carry a zone. A host name follows the hostname
// rule above and is kept as written: it is resolved when used
// (Endpoint.Resolve), never while parsing, so a config parses offline.
//
// # Overlay addresses
//
// Every trust, router and alias node gets an overlay IP. This rule is the
// contract between the members of a network: each computes the addresses
// from the same file, so the file, and the order of its lines, must be the
// same everywhere.
//
//  1. Static IPs are reserved first.
//  2. Then every trusted node without a static IP, in file order, gets the
//     next free host index of the subnet, starting at index 2 and skipping
//     indexes held by static IPs. Index 1 is never assigned automatically.
//  3. The largest index is 2^hostbits − 2, with host bits capped at 64 for
//     large IPv6 subnets. A node that does not fit is an error, "too many
//     trusted nodes", on that node's line.
//
// Peer and boot nodes get no overlay IP.
//
// # Errors
//
// Every mistake is an *Error naming the file, the line and the offending
// word, for example
//
//	net.conf:7: trust: "zz" is not a public key
//
// # Differences from WireHub
//
//   - Unknown directives and extra words are errors (WireHub ignored them).
//   - name, like namespace, workbit and subnet, may be given only once.
//   - name may not be a public suffix.
//   - workbit is a decimal integer from 0 to 256.
//   - The subnet may be IPv6, and must be written without host bits.
//   - A static IP may not be the subnet's first or last address.
//   - A key may appear only once in the file; hostnames are compared without
//     regard to case and must be valid DNS names.
//   - Endpoint host names are resolved when used, not when parsing.
//   - Errors name the file as well as the line, and quote the word.
package config
