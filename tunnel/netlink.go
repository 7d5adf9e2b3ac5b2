package tunnel

import (
	"fmt"
	"net"
	"net/netip"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// configureLink brings the interface up and sets its addresses and routes.
func configureLink(name string, addrs, routes []netip.Prefix) error {
	link, err := netlink.LinkByName(name)
	if err != nil {
		return fmt.Errorf("find link: %w", err)
	}
	if err := netlink.LinkSetUp(link); err != nil {
		return fmt.Errorf("set link up: %w", err)
	}
	for _, a := range addrs {
		na := &netlink.Addr{IPNet: ipNet(a)}
		if a.Addr().Is6() {
			na.Flags = unix.IFA_F_NODAD // usable at once: nobody else is on a TUN
		}
		if err := netlink.AddrReplace(link, na); err != nil {
			return fmt.Errorf("add address %s: %w", a, err)
		}
	}
	for _, r := range routes {
		nr := &netlink.Route{LinkIndex: link.Attrs().Index, Dst: ipNet(r.Masked())}
		if r.Addr().Is4() {
			nr.Scope = netlink.SCOPE_LINK // as `ip route add PREFIX dev NAME` does
		}
		if err := netlink.RouteReplace(nr); err != nil {
			return fmt.Errorf("add route %s: %w", r, err)
		}
	}
	return nil
}

func ipNet(p netip.Prefix) *net.IPNet {
	return &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}
