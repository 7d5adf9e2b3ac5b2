package portmap

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

const testPort = 51820

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// checkGoroutines fails the test if it leaves goroutines behind. Call it
// first, so its cleanup runs after every other one.
func checkGoroutines(t *testing.T) {
	before := runtime.NumGoroutine()
	t.Cleanup(func() {
		deadline := time.Now().Add(2 * time.Second)
		for runtime.NumGoroutine() > before {
			if time.Now().After(deadline) {
				buf := make([]byte, 1<<16)
				t.Errorf("%d goroutines left behind:\n%s", runtime.NumGoroutine()-before, buf[:runtime.Stack(buf, true)])
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
	})
}

// sameMapping compares mappings, Expires to within a second of want's.
func sameMapping(got, want Mapping) string {
	if d := got.Expires.Sub(want.Expires); d < -time.Second || d > time.Second {
		return "expires " + got.Expires.String() + ", want about " + want.Expires.String()
	}
	got.Expires, want.Expires = time.Time{}, time.Time{}
	return cmp.Diff(want, got, cmp.Comparer(func(a, b netip.AddrPort) bool { return a == b }))
}

var loopback = netip.MustParseAddr("127.0.0.1")

func TestPMPClient(t *testing.T) {
	ext := func(port uint16) netip.AddrPort { return netip.AddrPortFrom(testExternal, port) }
	tests := []struct {
		name    string
		setup   func(g *fakePMP)
		prev    Mapping
		want    netip.AddrPort
		wantErr error
		wantLog []string
	}{
		{name: "same_port", want: ext(testPort),
			wantLog: []string{"external", "map 51820→51820 600s"}},
		{name: "port_taken", setup: func(g *fakePMP) { g.taken[testPort] = true }, want: ext(testPort + 1),
			wantLog: []string{"external", "map 51820→51821 600s"}},
		{name: "renewal_keeps_port", prev: Mapping{External: ext(40001)}, want: ext(40001),
			wantLog: []string{"external", "map 51820→40001 600s"}},
		{name: "no_external_address", setup: func(g *fakePMP) { g.addrResult = pmpNetworkFailure }, wantErr: errRefused,
			wantLog: []string{"external"}},
		{name: "double_nat", setup: func(g *fakePMP) { g.external = netip.MustParseAddr("192.168.0.1") }, wantErr: errNoPublicAddress,
			wantLog: []string{"external"}},
		{name: "not_authorized", setup: func(g *fakePMP) { g.mapResult = pmpNotAuthorized }, wantErr: errRefused,
			wantLog: []string{"external", "map 51820 refused"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			checkGoroutines(t)
			g := newFakePMP(t)
			if tc.setup != nil {
				g.set(tc.setup)
			}
			c := &pmpClient{server: g.addr, localPort: testPort, lease: 10 * time.Minute}
			got, err := c.mapPort(t.Context(), tc.prev)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("err = %v, want %v", err, tc.wantErr)
			}
			if diff := cmp.Diff(tc.wantLog, g.log()); diff != "" {
				t.Errorf("gateway saw (-want +got):\n%s", diff)
			}
			if err != nil {
				return
			}
			want := Mapping{External: tc.want, Internal: netip.AddrPortFrom(loopback, testPort), Protocol: ProtocolNATPMP,
				Expires: time.Now().Add(10 * time.Minute)}
			if diff := sameMapping(got, want); diff != "" {
				t.Fatal(diff)
			}
			if err := c.unmap(t.Context(), got); err != nil {
				t.Fatal(err)
			}
			if _, ok := g.mapped(testPort); ok {
				t.Fatal("mapping still on the gateway after unmap")
			}
		})
	}
}

// TestPMPClientNoAnswer checks the retransmission schedule and that a
// silent gateway costs a bounded time.
func TestPMPClientNoAnswer(t *testing.T) {
	t.Parallel() // waits in real time
	g := newFakePMP(t)
	g.set(func(g *fakePMP) { g.silent = true })
	c := &pmpClient{server: g.addr, localPort: testPort, lease: time.Minute}
	start := time.Now()
	_, err := c.mapPort(t.Context(), Mapping{})
	elapsed := time.Since(start)
	if !errors.Is(err, errNoAnswer) {
		t.Fatalf("err = %v, want %v", err, errNoAnswer)
	}
	if want := []string{"dropped", "dropped", "dropped"}; !slices.Equal(g.log(), want) {
		t.Errorf("gateway saw %q, want %q", g.log(), want)
	}
	if elapsed < 1700*time.Millisecond || elapsed > 2500*time.Millisecond {
		t.Errorf("gave up after %v, want 250+500+1000 ms", elapsed)
	}
}

func TestPMPClientCancel(t *testing.T) {
	checkGoroutines(t)
	g := newFakePMP(t)
	g.set(func(g *fakePMP) { g.silent = true })
	c := &pmpClient{server: g.addr, localPort: testPort, lease: time.Minute}
	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := c.mapPort(ctx, Mapping{})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want deadline exceeded", err)
	}
	if elapsed := time.Since(start); elapsed > 300*time.Millisecond {
		t.Fatalf("cancellation took %v", elapsed)
	}
}

// TestPMPClientNoServer: a gateway without NAT-PMP answers ICMP port
// unreachable, which must end the attempt at once.
func TestPMPClientNoServer(t *testing.T) {
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	closed := conn.LocalAddr().(*net.UDPAddr).AddrPort()
	conn.Close()
	c := &pmpClient{server: closed, localPort: testPort, lease: time.Minute}
	start := time.Now()
	_, err = c.mapPort(t.Context(), Mapping{})
	if !errors.Is(err, errNoServer) {
		t.Fatalf("err = %v, want %v", err, errNoServer)
	}
	if elapsed := time.Since(start); elapsed > 200*time.Millisecond {
		t.Fatalf("took %v", elapsed)
	}
}

func TestPCPClient(t *testing.T) {
	tests := []struct {
		name    string
		setup   func(g *fakePMP)
		want    netip.AddrPort
		wantErr error
		wantLog []string
	}{
		{name: "map", setup: func(g *fakePMP) { g.pcp = true }, want: netip.AddrPortFrom(testExternal, testPort),
			wantLog: []string{"pcp map 51820→51820 600s"}},
		{name: "port_taken", setup: func(g *fakePMP) { g.pcp, g.taken[testPort] = true, true }, want: netip.AddrPortFrom(testExternal, testPort+1),
			wantLog: []string{"pcp map 51820→51821 600s"}},
		{name: "natpmp_only_gateway", wantErr: errVersion, wantLog: []string{"version 2"}},
		{name: "not_authorized", setup: func(g *fakePMP) { g.pcp, g.pcpResult = true, pcpNotAuthorized }, wantErr: errRefused,
			wantLog: []string{"pcp map 51820 refused"}},
		{name: "double_nat_gives_port_back", setup: func(g *fakePMP) { g.pcp, g.external = true, netip.MustParseAddr("100.64.0.9") },
			wantErr: errNoPublicAddress, wantLog: []string{"pcp map 51820→51820 600s", "pcp delete 51820"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			checkGoroutines(t)
			g := newFakePMP(t)
			if tc.setup != nil {
				g.set(tc.setup)
			}
			c := &pcpClient{server: g.addr, localPort: testPort, lease: 10 * time.Minute, nonce: testNonce}
			got, err := c.mapPort(t.Context(), Mapping{})
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("err = %v, want %v", err, tc.wantErr)
			}
			if diff := cmp.Diff(tc.wantLog, g.log()); diff != "" {
				t.Errorf("gateway saw (-want +got):\n%s", diff)
			}
			if err != nil {
				return
			}
			want := Mapping{External: tc.want, Internal: netip.AddrPortFrom(loopback, testPort), Protocol: ProtocolPCP,
				Expires: time.Now().Add(10 * time.Minute)}
			if diff := sameMapping(got, want); diff != "" {
				t.Fatal(diff)
			}
			// Renewal suggests the same external address and port.
			g.set(func(g *fakePMP) { g.taken[testPort] = false })
			again, err := c.mapPort(t.Context(), got)
			if err != nil || again.External != got.External {
				t.Fatalf("renewal: %v, %v", again.External, err)
			}
			if err := c.unmap(t.Context(), got); err != nil {
				t.Fatal(err)
			}
			if _, ok := g.mapped(testPort); ok {
				t.Fatal("mapping still on the gateway after unmap")
			}
		})
	}
}

// waitMapping polls m until it holds a mapping or timeout passes.
func waitMapping(t *testing.T, m *Mapper, timeout time.Duration) Mapping {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		if mp, ok := m.Mapping(); ok {
			return mp
		}
		if time.Now().After(deadline) {
			t.Fatalf("no mapping after %v", timeout)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestMapperPMPAndPCP runs a whole Mapper against the fake gateway: PCP
// is preferred, NAT-PMP is the fallback of a gateway that speaks only
// that, and Close removes the mapping.
func TestMapperPMPAndPCP(t *testing.T) {
	tests := []struct {
		name       string
		gatewayPCP bool
		disablePCP bool
		want       string
		wantLog    []string
	}{
		{"pcp_preferred", true, false, ProtocolPCP, []string{"pcp map 51820→51820 600s", "pcp delete 51820"}},
		{"natpmp_fallback", false, false, ProtocolNATPMP,
			[]string{"version 2", "external", "map 51820→51820 600s", "delete 51820"}},
		{"pcp_disabled", true, true, ProtocolNATPMP, []string{"external", "map 51820→51820 600s", "delete 51820"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			checkGoroutines(t)
			g := newFakePMP(t)
			g.set(func(g *fakePMP) { g.pcp = tc.gatewayPCP })
			m := New(Options{
				LocalPort: testPort, Lease: 10 * time.Minute, Logger: testLogger(t),
				DisableUPnP: true, DisablePCP: tc.disablePCP,
				Gateway: loopback, pmpPort: g.addr.Port(),
			})
			done := make(chan struct{})
			go func() { m.Run(t.Context()); close(done) }()
			mp := waitMapping(t, m, 2*time.Second)
			if mp.Protocol != tc.want || mp.External != netip.AddrPortFrom(testExternal, testPort) {
				t.Fatalf("mapping %+v, want %s to %v:%d", mp, tc.want, testExternal, testPort)
			}
			if err := m.Close(); err != nil {
				t.Fatal(err)
			}
			<-done
			if _, ok := m.Mapping(); ok {
				t.Error("Mapping still reported after Close")
			}
			if diff := cmp.Diff(tc.wantLog, g.log()); diff != "" {
				t.Errorf("gateway saw (-want +got):\n%s", diff)
			}
			if err := m.Close(); err != nil {
				t.Errorf("second Close: %v", err)
			}
			if got := g.log(); len(got) != len(tc.wantLog) {
				t.Errorf("second Close talked to the gateway: %q", got)
			}
		})
	}
}

// TestMapperDoubleNAT: a gateway whose own address is private gives no
// mapping, and the mapper keeps running without hammering it.
func TestMapperDoubleNAT(t *testing.T) {
	checkGoroutines(t)
	g := newFakePMP(t)
	g.set(func(g *fakePMP) { g.external = netip.MustParseAddr("10.1.2.3") })
	m := New(Options{LocalPort: testPort, Logger: testLogger(t), DisableUPnP: true, Gateway: loopback, pmpPort: g.addr.Port()})
	done := make(chan struct{})
	go func() { m.Run(t.Context()); close(done) }()
	time.Sleep(300 * time.Millisecond)
	if mp, ok := m.Mapping(); ok {
		t.Fatalf("mapping %+v behind a double NAT", mp)
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	<-done
	log := strings.Join(g.log(), ", ")
	if want := "version 2, external"; log != want {
		t.Fatalf("gateway saw %q, want %q (one attempt, then backoff)", log, want)
	}
}

// TestMapperRediscoveryPCP: after a failed renewal the mapper discovers
// afresh; its new PCP client must use the same nonce, or the gateway
// refuses to touch the mapping it still holds for us.
func TestMapperRediscoveryPCP(t *testing.T) {
	checkGoroutines(t)
	g := newFakePMP(t)
	g.set(func(g *fakePMP) { g.pcp = true })
	m := New(Options{LocalPort: testPort, Logger: testLogger(t), DisableUPnP: true, Gateway: loopback, pmpPort: g.addr.Port()})
	first, _, err := m.discover(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	again, c, err := m.discover(t.Context())
	if err != nil || c.protocol() != ProtocolPCP || again.External != first.External {
		t.Fatalf("rediscovery: %+v via %v, %v; first %+v", again, c, err, first)
	}
	stranger := &pcpClient{server: g.addr, localPort: testPort, lease: time.Minute, nonce: newPCPNonce()}
	if _, err := stranger.mapPort(t.Context(), Mapping{}); !errors.Is(err, errRefused) {
		t.Fatalf("another nonce: %v; the fake gateway should refuse it", err)
	}
	want := []string{"pcp map 51820→51820 600s", "pcp map 51820→51820 600s", "pcp map 51820 wrong nonce"}
	if diff := cmp.Diff(want, g.log()); diff != "" {
		t.Errorf("gateway saw (-want +got):\n%s", diff)
	}
}
