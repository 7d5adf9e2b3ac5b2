package node

import (
	"fmt"
	"log/slog"
	"net"
	"net/netip"

	"golang.zx2c4.com/wireguard/conn"
	"golang.zx2c4.com/wireguard/tun"

	"github.com/whnet/wh/config"
	"github.com/whnet/wh/invite"
	"github.com/whnet/wh/key"
	"github.com/whnet/wh/resolver"
)

// Mode is what a node assumes about its own reachability.
type Mode uint8

const (
	// ModeUnknown detects whether the node is behind NAT (the default).
	ModeUnknown Mode = iota
	// ModeDirect asserts a public address: no detection, no keepalives.
	ModeDirect
	// ModeNAT asserts a NAT: keep mappings alive, never act as a hop.
	ModeNAT
)

var modeNames = [...]string{"unknown", "direct", "nat"}

func (m Mode) String() string {
	if int(m) < len(modeNames) {
		return modeNames[m]
	}
	return fmt.Sprintf("Mode(%d)", m)
}

// ParseMode parses unknown, direct or nat.
func ParseMode(s string) (Mode, error) {
	for i, n := range modeNames {
		if n == s {
			return Mode(i), nil
		}
	}
	return 0, fmt.Errorf("mode %q: want unknown, direct or nat", s)
}

// Options tunes a Node. The zero value of each field is documented.
type Options struct {
	// Interface names the WireGuard interface, its UAPI socket and its
	// control socket. Empty means "wh-" and 8 characters of the public key.
	Interface string
	// ConfigPath is the file Reload re-reads. Empty disables reload from
	// the control socket (Reload with a network still works).
	ConfigPath string
	// ListenPort is the UDP port for WireGuard and the control protocol.
	// Zero picks a free one.
	ListenPort uint16
	// Mode is what to assume about NAT. Zero detects.
	Mode Mode
	// DNS is how names reach the system. Zero (auto) detects.
	DNS resolver.Mode
	// TUN, if set, is used instead of creating a kernel TUN (netstack, for
	// tests and rootless use). Addresses and routes are then not set.
	TUN tun.Device
	// Userspace runs the node on an in-process TCP/IP stack
	// (tunnel.Netstack) instead of a kernel TUN: no interface, no routes,
	// no privilege, no DNS server. Programs reach the overlay through
	// Dial, Listen and the SOCKS5 server. Ignored when TUN is set.
	Userspace bool
	// SOCKS5 is the TCP address ("127.0.0.1:1080") of a SOCKS5 server
	// that dials the overlay, on a userspace node. Empty means none.
	SOCKS5 string
	// ForwardLocal delivers the TCP connections and UDP flows that reach a
	// userspace node's overlay addresses, on ports no Listen holds, to the
	// same port on 127.0.0.1, so that services on localhost are reachable
	// by the trusted peers. False: such connections are reset.
	ForwardLocal bool
	// StateDir is where the node keeps the alias slots claimed at it, in
	// INTERFACE.claims. Empty keeps them in memory only (tests); the
	// daemon passes DefaultStateDir.
	StateDir string
	// Invitation, if set, makes the node the claimant of its alias slot:
	// it takes the slot at once and claims it at the inviter, then at
	// every other member, keeping the invitation in its state until each
	// has answered. The config must list the alias.
	Invitation *invite.Invitation
	// SocketDir is where the control socket goes. Empty means no control
	// socket (tests); the daemon passes ipc.Dir.
	SocketDir string
	// Version is reported in control replies.
	Version string
	// Logger receives the node's logs. Nil discards them.
	Logger *slog.Logger
	// NoPortMapping disables UPnP IGD, NAT-PMP and PCP (tests).
	NoPortMapping bool
	// Resolver resolves hostnames in endpoints. Nil means net.DefaultResolver.
	Resolver *net.Resolver

	// UDP, if set, is the node's UDP port instead of real sockets: a
	// netsim.Bind runs whole nodes on an in-memory internet in tests.
	// See tunnel.BindOptions.UDP.
	UDP conn.Bind
	// LocalAddrs, if set, lists the node's underlay addresses instead of
	// those of the machine's interfaces (with UDP: the simulated host's).
	// They are what the node offers peers on its LAN, and what it compares
	// the addresses others see it at with to tell whether it is behind NAT.
	LocalAddrs func() []netip.Addr
	// NoDNS serves no names: no resolver on a loopback socket (tests whose
	// nodes must not open real sockets).
	NoDNS bool
}

// Headless reports whether a node with key pub in network n runs without
// an interface: no subnet, or no address of its own in the config. Such a
// node serves the DHT, bootstrap and relay only, like WireHub's public nodes.
func Headless(n *config.Network, pub key.Public) bool {
	if !n.Subnet.IsValid() {
		return true
	}
	self, ok := n.Node(pub)
	return !ok || !self.Trusted() || !self.IP.IsValid()
}
