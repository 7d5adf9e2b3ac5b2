package portmap

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
)

var errNoDefaultRoute = errors.New("no IPv4 default route with a gateway")

// defaultGateway returns the gateway of the IPv4 default route with the
// lowest metric, read from /proc/net/route (which shows the calling
// process's network namespace).
func defaultGateway() (netip.Addr, error) {
	b, err := os.ReadFile("/proc/net/route")
	if err != nil {
		return netip.Addr{}, fmt.Errorf("default gateway: %w", err)
	}
	return parseProcNetRoute(b)
}

// parseProcNetRoute finds the default gateway in the text of
// /proc/net/route: a header line, then one line per route of
// tab-separated fields
//
//	Iface Destination Gateway Flags RefCnt Use Metric Mask MTU Window IRTT
//
// where Destination, Gateway and Mask are the kernel's 32-bit values in
// host byte order, printed as 8 hex digits, and Flags is hex.
func parseProcNetRoute(b []byte) (netip.Addr, error) {
	const (
		rtfUp      = 0x1
		rtfGateway = 0x2
	)
	var (
		best       netip.Addr
		bestMetric uint64
	)
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 8 || f[0] == "Iface" {
			continue
		}
		dst, err1 := strconv.ParseUint(f[1], 16, 32)
		gw, err2 := strconv.ParseUint(f[2], 16, 32)
		flags, err3 := strconv.ParseUint(f[3], 16, 32)
		metric, err4 := strconv.ParseUint(f[6], 10, 32)
		mask, err5 := strconv.ParseUint(f[7], 16, 32)
		if err := errors.Join(err1, err2, err3, err4, err5); err != nil {
			continue
		}
		if dst != 0 || mask != 0 || flags&(rtfUp|rtfGateway) != rtfUp|rtfGateway {
			continue
		}
		var a [4]byte
		binary.NativeEndian.PutUint32(a[:], uint32(gw))
		if !best.IsValid() || metric < bestMetric {
			best, bestMetric = netip.AddrFrom4(a), metric
		}
	}
	if !best.IsValid() {
		return netip.Addr{}, errNoDefaultRoute
	}
	return best, nil
}

// localAddrTo returns the source address the kernel would use to reach
// dst. No packet is sent.
func localAddrTo(dst netip.Addr) (netip.Addr, error) {
	c, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(netip.AddrPortFrom(dst, 9)))
	if err != nil {
		return netip.Addr{}, fmt.Errorf("route to %v: %w", dst, err)
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).AddrPort().Addr().Unmap(), nil
}

// cgnat is the shared address space of carrier-grade NATs (RFC 6598).
var cgnat = netip.MustParsePrefix("100.64.0.0/10")

// isPublic reports whether a gateway's external address can be reached
// from the internet. A private or shared address means another NAT sits
// beyond the gateway (double NAT): a mapping there helps nobody outside.
func isPublic(a netip.Addr) bool {
	a = a.Unmap()
	return a.IsValid() && a.IsGlobalUnicast() && !a.IsPrivate() && !cgnat.Contains(a)
}
