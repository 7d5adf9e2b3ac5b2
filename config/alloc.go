package config

import (
	"encoding/binary"
	"fmt"
	"math"
	"net/netip"
)

// firstIndex is the first host index that is assigned automatically. Index 1
// is never assigned automatically (WireHub's rule), though a static IP may
// take it.
const firstIndex = 2

// HostBits returns the number of host bits of the subnet, or -1 if it is
// unset.
func (n *Network) HostBits() int {
	if !n.Subnet.IsValid() {
		return -1
	}
	return n.Subnet.Addr().BitLen() - n.Subnet.Bits()
}

// maxIndex returns the largest host index that may be assigned in subnet s:
// 2^hostbits − 2, with host bits capped at 64 so that every index fits in a
// uint64. It returns 0 if s has fewer than 2 host bits.
func maxIndex(s netip.Prefix) uint64 {
	hb := s.Addr().BitLen() - s.Bits()
	switch {
	case hb < 2:
		return 0
	case hb >= 64:
		return math.MaxUint64 - 1
	}
	return 1<<hb - 2
}

// hostAddr returns the address with host index i in subnet s, the
// subnet's address plus i. The caller keeps i within the subnet.
func hostAddr(s netip.Prefix, i uint64) netip.Addr {
	b := s.Masked().Addr().As16()
	lo := binary.BigEndian.Uint64(b[8:])
	binary.BigEndian.PutUint64(b[8:], lo+i)
	a := netip.AddrFrom16(b)
	if s.Addr().Is4() {
		a = a.Unmap()
	}
	return a
}

// lastAddr returns the last address of s (all host bits set): the IPv4
// broadcast address.
func lastAddr(s netip.Prefix) netip.Addr {
	b := s.Masked().Addr().AsSlice()
	for i := s.Bits(); i < len(b)*8; i++ {
		b[i/8] |= 0x80 >> (i % 8)
	}
	a, _ := netip.AddrFromSlice(b)
	return a
}

// allocate gives every trusted node without a static IP the next free host
// index of subnet, in order, from firstIndex, skipping the indexes of static
// IPs. It is the contract between the members of a network: all of them
// must compute the same addresses from the same file.
func allocate(subnet netip.Prefix, nodes []Node) *lineError {
	static := map[netip.Addr]bool{}
	for _, nd := range nodes {
		if nd.Static {
			static[nd.IP] = true
		}
	}
	next, last := uint64(firstIndex), maxIndex(subnet)
	for i := range nodes {
		nd := &nodes[i]
		if !nd.Trusted() || nd.Static {
			continue
		}
		for !nd.IP.IsValid() {
			if next > last {
				return &lineError{line: nd.Line, msg: fmt.Sprintf("%s: too many trusted nodes for subnet %s", nd.Role, subnet)}
			}
			if a := hostAddr(subnet, next); !static[a] {
				nd.IP = a
			}
			next++
		}
	}
	return nil
}
