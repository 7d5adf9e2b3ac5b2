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
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"
)

const testPort = 51820

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// checkGoroutines fails the test if it leaves goroutines behind. Call it
// first, so its cleanup runs after every other one. Tests in a synctest
// bubble need none: synctest.Test fails on a goroutine left blocked.
//
// Goroutines that are winding down are given a long while, so a busy
// machine never fails the check: only a leak waits it out.
func checkGoroutines(t *testing.T) {
	before := runtime.NumGoroutine()
	t.Cleanup(func() {
		deadline := time.Now().Add(30 * time.Second)
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

// sameMapping compares mappings exactly.
func sameMapping(got, want Mapping) string {
	return cmp.Diff(want, got, cmp.Comparer(func(a, b netip.AddrPort) bool { return a == b }),
		cmp.Comparer(func(a, b time.Time) bool { return a.Equal(b) }))
}

// expiresWithin checks a mapping made in real time, between before and
// after, expires lease after that; it returns mp with Expires set to
// before+lease, so it compares with sameMapping.
func expiresWithin(t *testing.T, mp Mapping, before, after time.Time, lease time.Duration) Mapping {
	t.Helper()
	if mp.Expires.Before(before.Add(lease)) || mp.Expires.After(after.Add(lease)) {
		t.Errorf("expires %v, want %v after a time in [%v, %v]", mp.Expires, lease, before, after)
	}
	mp.Expires = before.Add(lease)
	return mp
}

var loopback = netip.MustParseAddr("127.0.0.1")

// TestPMPClient maps through a NAT-PMP gateway on the in-memory LAN.
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
			synctest.Test(t, func(t *testing.T) {
				lan := newSimLAN(t)
				g := newSimPMP(t, lan)
				if tc.setup != nil {
					g.set(tc.setup)
				}
				c := &pmpClient{server: g.addr, localPort: testPort, lease: 10 * time.Minute, dial: lan.dial}
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
				want := Mapping{External: tc.want, Internal: netip.AddrPortFrom(lanAddr, testPort), Protocol: ProtocolNATPMP,
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
		})
	}
}

// TestPMPClientNoAnswer checks the retransmission schedule (RFC 6886
// §3.1: 250 ms, doubling) and that a silent gateway costs 1.75 s.
func TestPMPClientNoAnswer(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		lan := newSimLAN(t)
		g := newSimPMP(t, lan)
		g.set(func(g *fakePMP) { g.silent = true })
		c := &pmpClient{server: g.addr, localPort: testPort, lease: time.Minute, dial: lan.dial}
		start := time.Now()
		_, err := c.mapPort(t.Context(), Mapping{})
		if !errors.Is(err, errNoAnswer) {
			t.Fatalf("err = %v, want %v", err, errNoAnswer)
		}
		if d := time.Since(start); d != 1750*time.Millisecond {
			t.Errorf("gave up after %v, want 250+500+1000 ms", d)
		}
		if want := []string{"dropped", "dropped", "dropped"}; !slices.Equal(g.log(), want) {
			t.Errorf("gateway saw %q, want %q", g.log(), want)
		}
		if got, want := g.arrivals(start), []time.Duration{0, 250 * time.Millisecond, 750 * time.Millisecond}; !slices.Equal(got, want) {
			t.Errorf("requests at %v, want %v", got, want)
		}
	})
}

// TestPMPClientCancel: the context's deadline ends an exchange at once,
// between retransmissions.
func TestPMPClientCancel(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		lan := newSimLAN(t)
		g := newSimPMP(t, lan)
		g.set(func(g *fakePMP) { g.silent = true })
		c := &pmpClient{server: g.addr, localPort: testPort, lease: time.Minute, dial: lan.dial}
		ctx, cancel := context.WithTimeout(t.Context(), 400*time.Millisecond)
		defer cancel()
		start := time.Now()
		_, err := c.mapPort(ctx, Mapping{})
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("err = %v, want deadline exceeded", err)
		}
		if d := time.Since(start); d != 400*time.Millisecond {
			t.Errorf("returned after %v, want the context's 400ms", d)
		}
		if got, want := g.arrivals(start), []time.Duration{0, 250 * time.Millisecond}; !slices.Equal(got, want) {
			t.Errorf("requests at %v, want %v", got, want)
		}
	})
}

// TestPMPClientNoServer: a gateway without NAT-PMP answers ICMP port
// unreachable, which must end the attempt at once: with errNoServer, which
// only the ICMP error gives, not errNoAnswer after retransmitting. This
// needs the kernel, so it runs on a real socket.
func TestPMPClientNoServer(t *testing.T) {
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	closed := conn.LocalAddr().(*net.UDPAddr).AddrPort()
	conn.Close()
	c := &pmpClient{server: closed, localPort: testPort, lease: time.Minute}
	_, err = c.mapPort(t.Context(), Mapping{})
	if !errors.Is(err, errNoServer) {
		t.Fatalf("err = %v, want %v", err, errNoServer)
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
			synctest.Test(t, func(t *testing.T) {
				lan := newSimLAN(t)
				g := newSimPMP(t, lan)
				if tc.setup != nil {
					g.set(tc.setup)
				}
				c := &pcpClient{server: g.addr, localPort: testPort, lease: 10 * time.Minute, nonce: testNonce, dial: lan.dial}
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
				want := Mapping{External: tc.want, Internal: netip.AddrPortFrom(lanAddr, testPort), Protocol: ProtocolPCP,
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
		})
	}
}

// simMapper returns a mapper on the in-memory LAN, with UPnP off.
func simMapper(t *testing.T, lan *simLAN, disablePCP bool) *Mapper {
	return New(Options{
		LocalPort: testPort, Lease: 10 * time.Minute, Logger: testLogger(t),
		DisableUPnP: true, DisablePCP: disablePCP,
		Gateway: gwAddr, dial: lan.dial,
	})
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
			synctest.Test(t, func(t *testing.T) {
				lan := newSimLAN(t)
				g := newSimPMP(t, lan)
				g.set(func(g *fakePMP) { g.pcp = tc.gatewayPCP })
				m := simMapper(t, lan, tc.disablePCP)
				stop := start(t, m)
				synctest.Wait()
				mp, ok := m.Mapping()
				if !ok || mp.Protocol != tc.want || mp.External != netip.AddrPortFrom(testExternal, testPort) {
					t.Fatalf("mapping %+v, %v; want %s to %v:%d", mp, ok, tc.want, testExternal, testPort)
				}
				stop()
				if err := m.Close(); err != nil {
					t.Fatal(err)
				}
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
		})
	}
}

// TestMapperDoubleNAT: a gateway whose own address is private gives no
// mapping, and the mapper asks it again only after the backoff.
func TestMapperDoubleNAT(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		lan := newSimLAN(t)
		g := newSimPMP(t, lan)
		g.set(func(g *fakePMP) { g.external = netip.MustParseAddr("10.1.2.3") })
		m := simMapper(t, lan, false)
		t0 := time.Now()
		stop := start(t, m)
		defer stop()
		synctest.Wait()
		if mp, ok := m.Mapping(); ok {
			t.Fatalf("mapping %+v behind a double NAT", mp)
		}
		if log, want := strings.Join(g.log(), ", "), "version 2, external"; log != want {
			t.Fatalf("gateway saw %q, want %q (one attempt)", log, want)
		}
		time.Sleep(retryFirst - time.Second)
		synctest.Wait()
		if n := len(g.log()); n != 2 {
			t.Fatalf("asked again before the backoff: %q", g.log())
		}
		time.Sleep(time.Second)
		synctest.Wait()
		if got, want := g.arrivals(t0), []time.Duration{0, 0, retryFirst, retryFirst}; !slices.Equal(got, want) {
			t.Errorf("requests at %v, want %v", got, want)
		}
	})
}

// TestMapperRediscoveryPCP: after a failed renewal the mapper discovers
// afresh; its new PCP client must use the same nonce, or the gateway
// refuses to touch the mapping it still holds for us.
func TestMapperRediscoveryPCP(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		lan := newSimLAN(t)
		g := newSimPMP(t, lan)
		g.set(func(g *fakePMP) { g.pcp = true })
		m := simMapper(t, lan, false)
		first, _, err := m.discover(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		again, c, err := m.discover(t.Context())
		if err != nil || c.protocol() != ProtocolPCP || again.External != first.External {
			t.Fatalf("rediscovery: %+v via %v, %v; first %+v", again, c, err, first)
		}
		stranger := &pcpClient{server: g.addr, localPort: testPort, lease: time.Minute, nonce: newPCPNonce(), dial: lan.dial}
		if _, err := stranger.mapPort(t.Context(), Mapping{}); !errors.Is(err, errRefused) {
			t.Fatalf("another nonce: %v; the fake gateway should refuse it", err)
		}
		want := []string{"pcp map 51820→51820 600s", "pcp map 51820→51820 600s", "pcp map 51820 wrong nonce"}
		if diff := cmp.Diff(want, g.log()); diff != "" {
			t.Errorf("gateway saw (-want +got):\n%s", diff)
		}
	})
}

// TestMapperRealSockets maps over PCP and NAT-PMP through real UDP
// sockets to a gateway on 127.0.0.1: the dialUDP the other tests replace.
// A busy machine may delay an answer past a retransmission, so the
// gateway's log is not compared, only its table.
func TestMapperRealSockets(t *testing.T) {
	for _, want := range []string{ProtocolPCP, ProtocolNATPMP} {
		t.Run(want, func(t *testing.T) {
			checkGoroutines(t)
			g := newFakePMP(t)
			g.set(func(g *fakePMP) { g.pcp = want == ProtocolPCP })
			m := New(Options{LocalPort: testPort, Logger: testLogger(t), DisableUPnP: true, Gateway: loopback, pmpPort: g.addr.Port()})
			before := time.Now()
			mp, c, err := m.discover(t.Context())
			after := time.Now()
			if err != nil {
				t.Fatal(err)
			}
			mp = expiresWithin(t, mp, before, after, DefaultLease)
			if diff := sameMapping(mp, Mapping{External: netip.AddrPortFrom(testExternal, testPort),
				Internal: netip.AddrPortFrom(loopback, testPort), Protocol: want, Expires: before.Add(DefaultLease)}); diff != "" {
				t.Error(diff)
			}
			if p, ok := g.mapped(testPort); !ok || p != testPort {
				t.Fatalf("gateway maps %d, %v; want %d", p, ok, testPort)
			}
			if err := c.unmap(t.Context(), mp); err != nil {
				t.Fatal(err)
			}
			if _, ok := g.mapped(testPort); ok {
				t.Fatal("mapping still on the gateway after unmap")
			}
		})
	}
}
