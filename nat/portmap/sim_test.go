package portmap

import (
	"net/netip"
	"testing"

	"github.com/whnet/wh/netsim"
)

// simLAN is an in-memory LAN with no delay: the gateway at gwAddr and our
// host at lanAddr. Build it inside a synctest bubble, where the mapper's
// retransmissions, deadlines and backoff then run in fake time.
type simLAN struct {
	gw, host *netsim.Host
}

var gwAddr = netip.MustParseAddr("192.168.1.1")

func newSimLAN(t *testing.T) *simLAN {
	n := netsim.New(netsim.Options{})
	home := n.AddNAT(netsim.Restricted, netip.MustParseAddr("198.51.100.1"), netip.MustParsePrefix("192.168.1.0/24"))
	return &simLAN{gw: home.AddHost(gwAddr), host: home.AddHost(lanAddr)}
}

// listenGW opens a conn on the gateway, closed when the test ends.
func (l *simLAN) listenGW(t *testing.T, port uint16) packetConn {
	c, err := l.gw.ListenUDP(port)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// dial is the mapper's dialFunc on our host.
func (l *simLAN) dial(server netip.AddrPort) (datagramConn, netip.Addr, error) {
	c, err := l.host.ListenUDP(0)
	if err != nil {
		return nil, netip.Addr{}, err
	}
	return &connectedConn{Conn: c, server: server}, lanAddr, nil
}

// listen is the mapper's listenFunc on our host.
func (l *simLAN) listen() (packetConn, error) { return l.host.ListenUDP(0) }

// connectedConn is a netsim conn that, like a connected UDP socket, sends
// only to server and drops datagrams from anyone else.
type connectedConn struct {
	*netsim.Conn
	server netip.AddrPort
}

func (c *connectedConn) Write(b []byte) (int, error) { return c.WriteToUDPAddrPort(b, c.server) }

func (c *connectedConn) Read(b []byte) (int, error) {
	for {
		n, from, err := c.ReadFromUDPAddrPort(b)
		if err != nil || from == c.server {
			return n, err
		}
	}
}
