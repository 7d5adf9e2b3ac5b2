package portmap

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"
)

// fakePMP is a NAT-PMP gateway (RFC 6886), and optionally a PCP one
// (RFC 6887), on a real socket on 127.0.0.1 or an in-memory one. It grants the suggested external port unless
// it is taken, keeps a table of mappings, and can be told to answer with
// error codes or not at all.
type fakePMP struct {
	conn packetConn
	addr netip.AddrPort
	done chan struct{}

	mu         sync.Mutex
	external   netip.Addr          // guarded by mu: the external address it reports
	addrResult pmpResult           // guarded by mu: result of external address requests
	mapResult  pmpResult           // guarded by mu: result of NAT-PMP mapping requests
	pcpResult  pcpResult           // guarded by mu: result of PCP MAP requests
	pcp        bool                // guarded by mu: speak PCP; else answer it "unsupported version"
	silent     bool                // guarded by mu: drop every request
	taken      map[uint16]bool     // guarded by mu: external ports used by someone else
	mappings   map[uint16]uint16   // guarded by mu: internal port → external port
	nonces     map[uint16][12]byte // guarded by mu: internal port → nonce of its PCP mapping
	requests   []string            // guarded by mu: what it was asked, for assertions
	times      []time.Time         // guarded by mu: when each request came
}

// newFakePMP returns a gateway on a real socket on 127.0.0.1.
func newFakePMP(t *testing.T) *fakePMP {
	t.Helper()
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	return serveFakePMP(t, conn, conn.LocalAddr().(*net.UDPAddr).AddrPort())
}

// newSimPMP returns a gateway on the in-memory LAN's gateway host.
func newSimPMP(t *testing.T, lan *simLAN) *fakePMP {
	return serveFakePMP(t, lan.listenGW(t, pmpServerPort), netip.AddrPortFrom(gwAddr, pmpServerPort))
}

// serveFakePMP serves the protocols on conn, whose address is addr.
func serveFakePMP(t *testing.T, conn packetConn, addr netip.AddrPort) *fakePMP {
	g := &fakePMP{
		conn:     conn,
		addr:     addr,
		done:     make(chan struct{}),
		external: testExternal,
		taken:    map[uint16]bool{},
		mappings: map[uint16]uint16{},
		nonces:   map[uint16][12]byte{},
	}
	go g.serve()
	t.Cleanup(func() {
		conn.Close()
		<-g.done
	})
	return g
}

func (g *fakePMP) serve() {
	defer close(g.done)
	buf := make([]byte, 1500)
	for {
		n, from, err := g.conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			return
		}
		if resp := g.handle(buf[:n], from); resp != nil {
			g.conn.WriteToUDPAddrPort(resp, from)
		}
	}
}

func (g *fakePMP) handle(b []byte, from netip.AddrPort) []byte {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.times = append(g.times, time.Now())
	if g.silent {
		g.requests = append(g.requests, "dropped")
		return nil
	}
	if len(b) >= 2 && b[0] == pcpVersion && g.pcp {
		return g.handlePCP(b, from)
	}
	req, err := parsePMPRequest(b)
	if errors.Is(err, errVersion) && len(b) >= 2 {
		g.requests = append(g.requests, fmt.Sprintf("version %d", b[0]))
		resp, _ := pmpResponse{Op: b[1] & 0x7f, Result: pmpUnsupportedVersion}.AppendBinary(nil)
		return resp[:pmpErrorResponseSize]
	}
	if err != nil {
		return nil
	}
	resp := pmpResponse{Op: req.Op, Epoch: 42}
	switch {
	case req.Op == pmpOpExternalAddr:
		g.requests = append(g.requests, "external")
		resp.Result, resp.ExternalAddr = g.addrResult, g.external
	case g.mapResult != pmpSuccess:
		g.requests = append(g.requests, fmt.Sprintf("map %d refused", req.InternalPort))
		resp.Result = g.mapResult
	case req.Lifetime == 0:
		g.requests = append(g.requests, fmt.Sprintf("delete %d", req.InternalPort))
		delete(g.mappings, req.InternalPort)
		resp.InternalPort = req.InternalPort
	default:
		ext := g.grant(req.ExternalPort)
		g.requests = append(g.requests, fmt.Sprintf("map %d→%d %ds", req.InternalPort, ext, req.Lifetime))
		g.mappings[req.InternalPort] = ext
		resp.InternalPort, resp.ExternalPort, resp.Lifetime = req.InternalPort, ext, req.Lifetime
	}
	out, _ := resp.AppendBinary(nil)
	return out
}

func (g *fakePMP) handlePCP(b []byte, from netip.AddrPort) []byte {
	req, err := parsePCPRequest(b)
	if err != nil || req.Opcode != pcpOpMap {
		return nil
	}
	resp := pcpResponse{Opcode: pcpOpMap, Epoch: 42, Lifetime: req.Lifetime, Map: req.Map}
	switch {
	case req.ClientAddr != from.Addr():
		g.requests = append(g.requests, fmt.Sprintf("pcp address mismatch %v", req.ClientAddr))
		resp.Result = pcpAddressMismatch
	case g.nonces[req.Map.InternalPort] != [12]byte{} && g.nonces[req.Map.InternalPort] != req.Map.Nonce:
		// RFC 6887 §11.3: a mapping is only touched with its own nonce.
		g.requests = append(g.requests, fmt.Sprintf("pcp map %d wrong nonce", req.Map.InternalPort))
		resp.Result = pcpNotAuthorized
	case g.pcpResult != pcpSuccess:
		g.requests = append(g.requests, fmt.Sprintf("pcp map %d refused", req.Map.InternalPort))
		resp.Result = g.pcpResult
	case req.Lifetime == 0:
		g.requests = append(g.requests, fmt.Sprintf("pcp delete %d", req.Map.InternalPort))
		delete(g.mappings, req.Map.InternalPort)
		delete(g.nonces, req.Map.InternalPort)
	default:
		ext := g.grant(req.Map.ExternalPort)
		g.requests = append(g.requests, fmt.Sprintf("pcp map %d→%d %ds", req.Map.InternalPort, ext, req.Lifetime))
		g.mappings[req.Map.InternalPort] = ext
		g.nonces[req.Map.InternalPort] = req.Map.Nonce
		resp.Map.ExternalPort, resp.Map.ExternalAddr = ext, g.external
	}
	out, _ := resp.AppendBinary(nil)
	return out
}

// grant returns the external port to give for a suggestion. Locked.
func (g *fakePMP) grant(want uint16) uint16 {
	for p := want; ; p++ {
		if p != 0 && !g.taken[p] {
			return p
		}
		if p == 0 {
			p = 40000 - 1
		}
	}
}

func (g *fakePMP) set(f func(g *fakePMP)) {
	g.mu.Lock()
	defer g.mu.Unlock()
	f(g)
}

func (g *fakePMP) log() []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]string(nil), g.requests...)
}

func (g *fakePMP) mapped(internal uint16) (uint16, bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	p, ok := g.mappings[internal]
	return p, ok
}

// arrivals returns when each request came, as offsets from t0.
func (g *fakePMP) arrivals(t0 time.Time) []time.Duration {
	g.mu.Lock()
	defer g.mu.Unlock()
	var d []time.Duration
	for _, at := range g.times {
		d = append(d, at.Sub(t0))
	}
	return d
}
