package portmap

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"time"
)

// SSDP search for Internet Gateway Devices (UPnP Device Architecture 1.1
// §1.3). IGDv2 devices answer a search for IGD:1 too, as the standard
// asks of every newer version.
const (
	ssdpPort        = 1900
	ssdpWait        = 2 * time.Second        // at most this long for answers: MX
	ssdpLinger      = 250 * time.Millisecond // and this long after the first one
	maxSSDPResponse = 2048
	igdSearchTarget = "urn:schemas-upnp-org:device:InternetGatewayDevice:1"

	ssdpSearchRequest = "M-SEARCH * HTTP/1.1\r\n" +
		"HOST: 239.255.255.250:1900\r\n" +
		"MAN: \"ssdp:discover\"\r\n" +
		"MX: 2\r\n" +
		"ST: " + igdSearchTarget + "\r\n" +
		"\r\n"
)

var ssdpMulticast = netip.AddrPortFrom(netip.AddrFrom4([4]byte{239, 255, 255, 250}), ssdpPort)

var errNoIGD = errors.New("no UPnP Internet Gateway Device answered")

// packetConn is an unconnected UDP socket: a *net.UDPConn, or an
// in-memory one in tests.
type packetConn interface {
	ReadFromUDPAddrPort(b []byte) (int, netip.AddrPort, error)
	WriteToUDPAddrPort(b []byte, addr netip.AddrPort) (int, error)
	SetReadDeadline(t time.Time) error
	Close() error
}

// listenFunc opens a packetConn on an ephemeral port.
type listenFunc func() (packetConn, error)

// listenUDP is the listenFunc of real sockets.
func listenUDP() (packetConn, error) {
	conn, err := net.ListenUDP("udp4", nil)
	if err != nil {
		return nil, err
	}
	return conn, nil
}

// searchSSDP sends an M-SEARCH for Internet Gateway Devices to each of
// dsts (the multicast group, and the gateway itself: a unicast search
// needs no multicast route) and returns the distinct root description
// URLs in the answers, in the order they came. It waits up to ssdpWait,
// but only ssdpLinger after the first answer, rather than the whole
// window as goupnp does. It listens with listen, or listenUDP if that is
// nil.
func searchSSDP(ctx context.Context, listen listenFunc, dsts []netip.AddrPort) ([]*url.URL, error) {
	if listen == nil {
		listen = listenUDP
	}
	conn, err := listen()
	if err != nil {
		return nil, fmt.Errorf("ssdp: %w", err)
	}
	defer conn.Close()
	defer context.AfterFunc(ctx, func() { conn.Close() })()

	var sent int
	var sendErr error
	for _, dst := range dsts {
		if _, err := conn.WriteToUDPAddrPort([]byte(ssdpSearchRequest), dst); err != nil {
			sendErr = err
			continue
		}
		sent++
	}
	if sent == 0 {
		if sendErr == nil {
			return nil, errNoIGD // nowhere to search
		}
		return nil, fmt.Errorf("ssdp: send M-SEARCH: %w", udpError(ctx, sendErr))
	}

	deadline := time.Now().Add(ssdpWait)
	if err := conn.SetReadDeadline(deadline); err != nil {
		return nil, fmt.Errorf("ssdp: %w", err)
	}
	var locs []*url.URL
	seen := make(map[string]bool)
	buf := make([]byte, maxSSDPResponse)
	for {
		n, from, err := conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			var nerr net.Error
			if errors.As(err, &nerr) && nerr.Timeout() {
				break
			}
			return nil, fmt.Errorf("ssdp: %w", err)
		}
		loc, err := parseSSDPResponse(buf[:n], from.Addr())
		if err != nil || seen[loc.String()] {
			continue
		}
		seen[loc.String()] = true
		locs = append(locs, loc)
		if len(locs) == 1 {
			if d := time.Now().Add(ssdpLinger); d.Before(deadline) {
				conn.SetReadDeadline(d)
			}
		}
	}
	if len(locs) == 0 {
		return nil, errNoIGD
	}
	return locs, nil
}

var (
	errSSDPStatus   = errors.New("ssdp: answer is not 200 OK")
	errSSDPLocation = errors.New("ssdp: LOCATION is not an http URL on the answering host")
)

// parseSSDPResponse returns the LOCATION of a search answer received from
// the address from. The location must be a plain http URL whose host is
// from itself, so a device on the LAN cannot point us at some other host.
func parseSSDPResponse(b []byte, from netip.Addr) (*url.URL, error) {
	resp, err := http.ReadResponse(bufio.NewReader(bytes.NewReader(b)), nil)
	if err != nil {
		return nil, fmt.Errorf("ssdp: %w", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, errSSDPStatus
	}
	loc, err := url.Parse(resp.Header.Get("Location"))
	if err != nil {
		return nil, fmt.Errorf("ssdp: %w", err)
	}
	host, err := netip.ParseAddr(loc.Hostname())
	if err != nil || loc.Scheme != "http" || host.Unmap() != from.Unmap() || loc.User != nil {
		return nil, errSSDPLocation
	}
	return loc, nil
}
