package portmap

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/huin/goupnp/soap"
)

// upnpFault is the error goupnp returns for a SOAP fault with a UPnP code.
func upnpFault(code int) error {
	f := &soap.SOAPFaultError{FaultCode: "s:Client", FaultString: "UPnPError"}
	f.Detail.UPnPError.Errorcode = code
	return f
}

// fakeIGD is a scripted WAN connection service. Its answers come from the
// functions set on it; every call is logged.
type fakeIGD struct {
	mu       sync.Mutex
	external func() (string, error)                // guarded by mu; nil: testExternal
	add      func(port uint16, lease uint32) error // guarded by mu; nil: success
	del      func() error                          // guarded by mu; nil: success
	hang     bool                                  // guarded by mu: every call waits for its context to end
	calls    []string                              // guarded by mu
}

// fakeIGD2 adds IGDv2's AddAnyPortMapping.
type fakeIGD2 struct {
	*fakeIGD
	anyPort uint16
}

var (
	_ igdClient        = (*fakeIGD)(nil)
	_ igdAnyPortClient = fakeIGD2{}
)

func (f *fakeIGD) call(ctx context.Context, name string) (hang bool) {
	f.mu.Lock()
	f.calls = append(f.calls, name)
	hang = f.hang
	f.mu.Unlock()
	if hang {
		<-ctx.Done()
	}
	return hang
}

func (f *fakeIGD) GetExternalIPAddressCtx(ctx context.Context) (string, error) {
	if f.call(ctx, "GetExternalIPAddress") {
		return "", ctx.Err()
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.external == nil {
		return testExternal.String(), nil
	}
	return f.external()
}

func (f *fakeIGD) AddPortMappingCtx(ctx context.Context, remoteHost string, port uint16, proto string,
	internalPort uint16, client string, enabled bool, desc string, lease uint32) error {
	if f.call(ctx, fmt.Sprintf("AddPortMapping %s %d→%s:%d %q %ds", proto, port, client, internalPort, desc, lease)) {
		return ctx.Err()
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.add == nil {
		return nil
	}
	return f.add(port, lease)
}

func (f *fakeIGD) DeletePortMappingCtx(ctx context.Context, remoteHost string, port uint16, proto string) error {
	if f.call(ctx, fmt.Sprintf("DeletePortMapping %s %d", proto, port)) {
		return ctx.Err()
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.del == nil {
		return nil
	}
	return f.del()
}

func (f fakeIGD2) AddAnyPortMappingCtx(ctx context.Context, remoteHost string, port uint16, proto string,
	internalPort uint16, client string, enabled bool, desc string, lease uint32) (uint16, error) {
	if f.call(ctx, fmt.Sprintf("AddAnyPortMapping %s %d→%s:%d", proto, port, client, internalPort)) {
		return 0, ctx.Err()
	}
	return f.anyPort, nil
}

func (f *fakeIGD) log() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.calls)
}

func (f *fakeIGD) set(fn func(f *fakeIGD)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn(f)
}

var lanAddr = netip.MustParseAddr("192.168.1.2")

// fakeMapper returns a mapper whose only gateway is the given IGD
// services: no network at all, so it runs inside a synctest bubble.
func fakeMapper(t *testing.T, svcs ...igdService) *Mapper {
	return New(Options{
		LocalPort: testPort, Description: "wh test", Lease: 10 * time.Minute, Logger: testLogger(t),
		DisableNATPMP: true, DisablePCP: true,
		findIGDs: func(ctx context.Context) ([]igdService, error) { return svcs, nil },
	})
}

// start runs m in the bubble and returns a function that cancels and
// waits for Run.
func start(t *testing.T, m *Mapper) (stop func()) {
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { m.Run(ctx); close(done) }()
	return func() { cancel(); <-done }
}

const (
	addSame = `AddPortMapping UDP 51820→192.168.1.2:51820 "wh test" 600s`
	getExt  = "GetExternalIPAddress"
)

// TestUPnPMapper drives the mapper's UPnP logic through the answers real
// gateways give.
func TestUPnPMapper(t *testing.T) {
	tests := []struct {
		name     string
		v2       bool // the service has AddAnyPortMapping
		setup    func(f *fakeIGD)
		wantPort uint16 // 0: no mapping
		// wantCalls is the first discovery's calls; "random" stands for an
		// AddPortMapping of a random port.
		wantCalls []string
	}{
		{name: "success", wantPort: testPort, wantCalls: []string{getExt, addSame}},
		{name: "double_nat_501_empty_external_ip",
			setup: func(f *fakeIGD) {
				f.external = func() (string, error) { return "", nil }
				f.add = func(uint16, uint32) error { return upnpFault(upnpActionFailed) }
			},
			wantCalls: []string{getExt}},
		{name: "external_ip_fault_501",
			setup:     func(f *fakeIGD) { f.external = func() (string, error) { return "", upnpFault(upnpActionFailed) } },
			wantCalls: []string{getExt}},
		{name: "private_external_ip",
			setup:     func(f *fakeIGD) { f.external = func() (string, error) { return "192.168.0.10", nil } },
			wantCalls: []string{getExt}},
		{name: "add_fails_501",
			setup:     func(f *fakeIGD) { f.add = func(uint16, uint32) error { return upnpFault(upnpActionFailed) } },
			wantCalls: []string{getExt, addSame}},
		{name: "606_everywhere",
			setup:     func(f *fakeIGD) { f.add = func(uint16, uint32) error { return upnpFault(upnpNotAuthorized) } },
			wantCalls: []string{getExt, addSame, "random", "random", "random"}},
		{name: "718_then_other_port",
			setup: func(f *fakeIGD) {
				f.add = func(port uint16, _ uint32) error {
					if port == testPort {
						return upnpFault(upnpConflictInMappingEntry)
					}
					return nil
				}
			},
			wantPort: 1, wantCalls: []string{getExt, addSame, "random"}},
		{name: "718_v2_any_port", v2: true,
			setup:    func(f *fakeIGD) { f.add = func(uint16, uint32) error { return upnpFault(upnpConflictInMappingEntry) } },
			wantPort: 40000, wantCalls: []string{getExt, addSame, "AddAnyPortMapping UDP 51820→192.168.1.2:51820"}},
		{name: "725_only_permanent",
			setup: func(f *fakeIGD) {
				f.add = func(_ uint16, lease uint32) error {
					if lease != 0 {
						return upnpFault(upnpOnlyPermanentLeases)
					}
					return nil
				}
			},
			wantPort: testPort, wantCalls: []string{getExt, addSame, `AddPortMapping UDP 51820→192.168.1.2:51820 "wh test" 0s`}},
		{name: "hang", setup: func(f *fakeIGD) { f.hang = true }, wantCalls: []string{getExt}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				f := &fakeIGD{}
				if tc.setup != nil {
					f.set(tc.setup)
				}
				var client igdClient = f
				if tc.v2 {
					client = fakeIGD2{f, 40000}
				}
				m := fakeMapper(t, igdService{proto: ProtocolUPnPIGD2, client: client, local: lanAddr, where: "fake"})
				t0 := time.Now()
				stop := start(t, m)
				// Long enough for every call to time out, short of the first retry.
				time.Sleep(retryFirst - time.Second)
				synctest.Wait()

				calls := f.log()
				for i, c := range calls {
					if i > 0 && i < len(tc.wantCalls) && tc.wantCalls[i] == "random" && c != addSame && c[:len("AddPortMapping")] == "AddPortMapping" {
						calls[i] = "random"
					}
				}
				if diff := cmp.Diff(tc.wantCalls, calls); diff != "" {
					t.Errorf("calls (-want +got):\n%s", diff)
				}
				mp, ok := m.Mapping()
				if ok != (tc.wantPort != 0) {
					t.Fatalf("Mapping() = %+v, %v; want a mapping: %v", mp, ok, tc.wantPort != 0)
				}
				if ok {
					want := Mapping{
						External: netip.AddrPortFrom(testExternal, tc.wantPort),
						Internal: netip.AddrPortFrom(lanAddr, testPort),
						Protocol: ProtocolUPnPIGD2,
						Expires:  t0.Add(10 * time.Minute),
					}
					if tc.wantPort == 1 { // random
						if p := mp.External.Port(); p < 1024 || p == testPort {
							t.Errorf("other port %d", p)
						}
						want.External = mp.External
					}
					if diff := sameMapping(mp, want); diff != "" {
						t.Error(diff)
					}
				}
				stop()
				if err := m.Close(); err != nil && ok {
					t.Errorf("Close: %v", err)
				}
			})
		})
	}
}

// TestUPnPMapperRetry: with nothing mapped, discovery runs again after
// 10 s, 20 s, 40 s..., and a gateway that starts working is used.
func TestUPnPMapperRetry(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := &fakeIGD{}
		f.set(func(f *fakeIGD) { f.external = func() (string, error) { return "", nil } })
		m := fakeMapper(t, igdService{proto: ProtocolUPnPIGD1IP, client: f, local: lanAddr, where: "fake"})
		t0 := time.Now()
		stop := start(t, m)
		defer stop()
		var attempts []time.Duration
		for range 4 {
			synctest.Wait()
			attempts = append(attempts, time.Since(t0))
			time.Sleep(retryDelay(len(attempts)))
		}
		synctest.Wait()
		if want := []time.Duration{0, 10 * time.Second, 30 * time.Second, 70 * time.Second}; !slices.Equal(attempts, want) {
			t.Errorf("attempts at %v, want %v", attempts, want)
		}
		if n := len(f.log()); n != 5 {
			t.Errorf("%d calls after 5 discoveries (one GetExternalIPAddress each): %q", n, f.log())
		}
		f.set(func(f *fakeIGD) { f.external = nil })
		time.Sleep(retryDelay(5))
		synctest.Wait()
		if mp, ok := m.Mapping(); !ok || mp.Protocol != ProtocolUPnPIGD1IP {
			t.Fatalf("no mapping once the gateway works: %+v", mp)
		}
	})
}

// TestUPnPMapperRenewal: the lease is renewed at half-life on the same
// port, and Close deletes it.
func TestUPnPMapperRenewal(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := &fakeIGD{}
		m := fakeMapper(t, igdService{proto: ProtocolUPnPIGD2, client: f, local: lanAddr, where: "fake"})
		t0 := time.Now()
		stop := start(t, m)
		synctest.Wait()
		mp, ok := m.Mapping()
		if !ok || !mp.Expires.Equal(t0.Add(10*time.Minute)) {
			t.Fatalf("first mapping %+v, %v", mp, ok)
		}
		time.Sleep(5*time.Minute - time.Second)
		synctest.Wait()
		if n := len(f.log()); n != 2 {
			t.Fatalf("renewed before half-life: %q", f.log())
		}
		time.Sleep(time.Second)
		synctest.Wait()
		mp, ok = m.Mapping()
		if !ok || !mp.Expires.Equal(t0.Add(15*time.Minute)) || mp.External.Port() != testPort {
			t.Fatalf("after renewal %+v, %v", mp, ok)
		}
		if want := []string{getExt, addSame, getExt, addSame}; !slices.Equal(f.log(), want) {
			t.Errorf("calls %q, want %q", f.log(), want)
		}
		stop()
		if err := m.Close(); err != nil {
			t.Fatal(err)
		}
		if got := f.log(); got[len(got)-1] != "DeletePortMapping UDP 51820" {
			t.Errorf("Close did not delete: %q", got)
		}
		if _, ok := m.Mapping(); ok {
			t.Error("mapping reported after Close")
		}
	})
}

// TestUPnPMapperRenewalFails: a gateway that stops answering keeps its
// mapping counted until it expires, and no longer.
func TestUPnPMapperRenewalFails(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := &fakeIGD{}
		m := fakeMapper(t, igdService{proto: ProtocolUPnPIGD2, client: f, local: lanAddr, where: "fake"})
		t0 := time.Now()
		stop := start(t, m)
		defer stop()
		synctest.Wait()
		f.set(func(f *fakeIGD) { f.hang = true })
		time.Sleep(10*time.Minute - time.Second)
		synctest.Wait()
		if _, ok := m.Mapping(); !ok {
			t.Fatalf("mapping dropped at %v, before it expired", time.Since(t0))
		}
		time.Sleep(2 * time.Second)
		synctest.Wait()
		if mp, ok := m.Mapping(); ok {
			t.Fatalf("expired mapping still reported: %+v", mp)
		}
	})
}

// TestUPnPCloseBounded: Close gives up on a gateway that hangs after 2 s,
// and stops a Run that is waiting on one.
func TestUPnPCloseBounded(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := &fakeIGD{}
		m := fakeMapper(t, igdService{proto: ProtocolUPnPIGD2, client: f, local: lanAddr, where: "fake"})
		done := make(chan struct{})
		go func() { m.Run(context.Background()); close(done) }()
		synctest.Wait()
		if _, ok := m.Mapping(); !ok {
			t.Fatal("no mapping")
		}
		f.set(func(f *fakeIGD) { f.hang = true })
		time.Sleep(5 * time.Minute) // the renewal hangs now
		synctest.Wait()
		t0 := time.Now()
		err := m.Close()
		if d := time.Since(t0); d != closeTimeout {
			t.Errorf("Close took %v, want %v", d, closeTimeout)
		}
		if err == nil {
			t.Error("Close reported success on a hung gateway")
		}
		<-done
		if err2 := m.Close(); err2 != err {
			t.Errorf("second Close: %v, first %v", err2, err)
		}
	})
}

// TestUPnPPreference: IGDv2 is used before v1 IP before v1 PPP.
func TestUPnPPreference(t *testing.T) {
	svcs := []igdService{
		{proto: ProtocolUPnPIGD1PPP}, {proto: ProtocolUPnPIGD1IP}, {proto: ProtocolUPnPIGD2}, {proto: ProtocolUPnPIGD1IP},
	}
	slices.SortStableFunc(svcs, func(a, b igdService) int { return protoRank(a.proto) - protoRank(b.proto) })
	var got []string
	for _, s := range svcs {
		got = append(got, s.proto)
	}
	if want := []string{ProtocolUPnPIGD2, ProtocolUPnPIGD1IP, ProtocolUPnPIGD1IP, ProtocolUPnPIGD1PPP}; !slices.Equal(got, want) {
		t.Fatalf("order %q", got)
	}
}

func TestRunTwiceAndAfterClose(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := &fakeIGD{}
		m := fakeMapper(t, igdService{proto: ProtocolUPnPIGD2, client: f, local: lanAddr, where: "fake"})
		stop := start(t, m)
		synctest.Wait()
		m.Run(t.Context()) // returns at once: already running
		stop()
		m.Close()
		m.Run(t.Context()) // returns at once: closed
		if n := len(f.log()); n != 3 {
			t.Fatalf("calls %q", f.log())
		}
	})
}

// TestUPnPGoupnp runs the mapper's discovery against goupnp's real
// generated clients over real sockets: our SSDP search finds a fake IGD
// (ignoring an answer that points at another host), the root description
// is fetched with our HTTP client, and SOAP goes to an httptest server.
// It waits for discover to return rather than for a time.
func TestUPnPGoupnp(t *testing.T) {
	tests := []struct {
		name      string
		service   string
		setup     func(s *fakeIGDServer)
		wantProto string
		wantPort  uint16 // 0: no mapping
		wantCalls []string
	}{
		{name: "igd2", service: urnIP2, wantProto: ProtocolUPnPIGD2, wantPort: testPort,
			wantCalls: []string{"GetExternalIPAddress", "AddPortMapping 51820", "DeletePortMapping 51820"}},
		{name: "igd2_718_any_port", service: urnIP2, setup: func(s *fakeIGDServer) { s.refuse["AddPortMapping 51820"] = upnpConflictInMappingEntry },
			wantProto: ProtocolUPnPIGD2, wantPort: 40000,
			wantCalls: []string{"GetExternalIPAddress", "AddPortMapping 51820", "AddAnyPortMapping 51820", "DeletePortMapping 40000"}},
		{name: "igd1_ip", service: urnIP1, wantProto: ProtocolUPnPIGD1IP, wantPort: testPort,
			wantCalls: []string{"GetExternalIPAddress", "AddPortMapping 51820", "DeletePortMapping 51820"}},
		{name: "igd1_ppp", service: urnPPP1, wantProto: ProtocolUPnPIGD1PPP, wantPort: testPort,
			wantCalls: []string{"GetExternalIPAddress", "AddPortMapping 51820", "DeletePortMapping 51820"}},
		{name: "double_nat_501", service: urnIP2,
			setup: func(s *fakeIGDServer) {
				s.external = ""
				s.refuse["AddPortMapping"] = upnpActionFailed
			},
			wantCalls: []string{"GetExternalIPAddress"}},
		{name: "external_ip_606", service: urnIP1, setup: func(s *fakeIGDServer) { s.refuse["GetExternalIPAddress"] = upnpNotAuthorized },
			wantCalls: []string{"GetExternalIPAddress"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			checkGoroutines(t)
			srv := newFakeIGDServer(t, tc.service)
			if tc.setup != nil {
				srv.set(tc.setup)
			}
			ssdp := newFakeSSDP(t, "http://10.9.9.9/elsewhere.xml", srv.URL+"/rootDesc.xml")
			m := New(Options{
				LocalPort: testPort, Logger: testLogger(t), DisableNATPMP: true, DisablePCP: true,
				Gateway: loopback, ssdpAddrs: []netip.AddrPort{ssdp.addr},
			})
			before := time.Now()
			mp, c, err := m.discover(t.Context())
			after := time.Now()
			if tc.wantPort == 0 {
				if err == nil {
					t.Errorf("mapping %+v", mp)
				}
			} else {
				if err != nil {
					t.Fatal(err)
				}
				want := Mapping{
					External: netip.AddrPortFrom(testExternal, tc.wantPort),
					Internal: netip.AddrPortFrom(loopback, testPort),
					Protocol: tc.wantProto,
					Expires:  before.Add(DefaultLease),
				}
				if diff := sameMapping(expiresWithin(t, mp, before, after, DefaultLease), want); diff != "" {
					t.Error(diff)
				}
				if got, want := srv.table()[fmt.Sprint(tc.wantPort)], "127.0.0.1:51820"; got != want {
					t.Errorf("gateway maps port %d to %q, want %q", tc.wantPort, got, want)
				}
				if err := c.unmap(t.Context(), mp); err != nil {
					t.Error(err)
				}
			}
			if diff := cmp.Diff(tc.wantCalls, srv.log()); diff != "" {
				t.Errorf("SOAP calls (-want +got):\n%s", diff)
			}
			if tbl := srv.table(); len(tbl) != 0 {
				t.Errorf("mappings left after unmap: %v", tbl)
			}
			if n := ssdp.count(); n != 1 {
				t.Errorf("%d searches, want 1", n)
			}
		})
	}
}

// TestSearchSSDP: answers are collected for a short while after the first
// instead of the whole MX window, duplicates and answers pointing away
// from their sender are dropped, and a silent network costs ssdpWait.
func TestSearchSSDP(t *testing.T) {
	search := func(ctx context.Context, lan *simLAN, s *fakeSSDP) ([]string, time.Duration, error) {
		t0 := time.Now()
		locs, err := searchSSDP(ctx, lan.listen, []netip.AddrPort{s.addr})
		var got []string
		for _, l := range locs {
			got = append(got, l.String())
		}
		return got, time.Since(t0), err
	}
	t.Run("answers", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			lan := newSimLAN(t)
			s := newSimSSDP(t, lan, "http://192.168.1.1:1/a.xml", "http://192.168.1.9:1/b.xml", "http://192.168.1.1:1/a.xml", "http://192.168.1.1:2/c.xml")
			got, d, err := search(t.Context(), lan, s)
			if err != nil {
				t.Fatal(err)
			}
			if want := []string{"http://192.168.1.1:1/a.xml", "http://192.168.1.1:2/c.xml"}; !slices.Equal(got, want) {
				t.Errorf("locations %q, want %q", got, want)
			}
			if d != ssdpLinger {
				t.Errorf("search took %v, want %v", d, ssdpLinger)
			}
		})
	})
	t.Run("silence", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			lan := newSimLAN(t)
			_, d, err := search(t.Context(), lan, newSimSSDP(t, lan))
			if !errors.Is(err, errNoIGD) {
				t.Fatalf("err = %v, want %v", err, errNoIGD)
			}
			if d != ssdpWait {
				t.Errorf("search took %v, want %v", d, ssdpWait)
			}
		})
	})
	t.Run("cancel", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			lan := newSimLAN(t)
			ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
			defer cancel()
			_, d, err := search(ctx, lan, newSimSSDP(t, lan))
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("err = %v", err)
			}
			if d != 100*time.Millisecond {
				t.Errorf("cancel took %v, want the context's 100ms", d)
			}
		})
	})
}

// TestIGDServices reads root descriptions with the mapper's own HTTP
// client, its transport swapped for an in-memory server (so its timeouts
// run in fake time, however long a busy machine takes to decode a huge
// body): miniupnpd's real one (testdata, captured from the e2e set-up),
// and hostile or broken ones.
func TestIGDServices(t *testing.T) {
	miniupnpd, err := os.ReadFile("testdata/miniupnpd-2.3.1-rootDesc.xml")
	if err != nil {
		t.Fatal(err)
	}
	elsewhere := strings.Replace(string(miniupnpd), `<specVersion>`, `<URLBase>http://10.9.9.9:5000/</URLBase><specVersion>`, 1)
	tests := []struct {
		name    string
		handler http.HandlerFunc
		want    []string // proto and control URL path of each service
		wantErr string
	}{
		{name: "miniupnpd", handler: func(w http.ResponseWriter, r *http.Request) { w.Write(miniupnpd) },
			want: []string{ProtocolUPnPIGD2 + " /ctl/IPConn"}},
		{name: "urlbase_elsewhere", handler: func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, elsewhere) },
			wantErr: "no WANIPConnection or WANPPPConnection service"},
		{name: "no_wan_service", handler: func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, strings.ReplaceAll(string(miniupnpd), "WANIPConnection:2", "WANIPConnection:9"))
		}, wantErr: "no WANIPConnection or WANPPPConnection service"},
		{name: "not_found", handler: http.NotFound, wantErr: "404"},
		{name: "redirect_not_followed", handler: func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, "http://10.9.9.9/rootDesc.xml", http.StatusFound)
		}, wantErr: "302"},
		{name: "huge_body_cut", handler: func(w http.ResponseWriter, r *http.Request) {
			// Valid, but too big: only the size limit fails it.
			io.WriteString(w, strings.Replace(string(miniupnpd), "<friendlyName>lab-igd", "<friendlyName>"+strings.Repeat("x", 2*maxHTTPBody), 1))
		}, wantErr: "EOF"},
		{name: "garbage", handler: func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "\x00<<") }, wantErr: "root description"},
	}
	const base = "http://127.0.0.1:5000"
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				loc, _ := url.Parse(base + "/rootDesc.xml")
				svcs, err := igdServices(t.Context(), inMemoryClient(t, tc.handler), loc)
				if tc.wantErr != "" {
					if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
						t.Fatalf("err = %v, want one containing %q", err, tc.wantErr)
					}
					return
				}
				if err != nil {
					t.Fatal(err)
				}
				var got []string
				for _, s := range svcs {
					if s.local != loopback {
						t.Errorf("local address %v, want %v", s.local, loopback)
					}
					got = append(got, s.proto+" "+strings.TrimPrefix(s.where, base))
				}
				if !slices.Equal(got, tc.want) {
					t.Fatalf("services %q, want %q", got, tc.want)
				}
			})
		})
	}
}

// inMemoryClient returns newHTTPClient's client with the transport under
// its body limit replaced by h, called in the goroutine of the request.
func inMemoryClient(t *testing.T, h http.Handler) *http.Client {
	hc := newHTTPClient()
	lb, ok := hc.Transport.(limitBody)
	if !ok {
		t.Fatalf("newHTTPClient's transport is %T, not limitBody", hc.Transport)
	}
	lb.rt = handlerTransport{h}
	hc.Transport = lb
	return hc
}

// handlerTransport answers requests with a handler, without a network.
type handlerTransport struct{ h http.Handler }

func (h handlerTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	rec := httptest.NewRecorder()
	sreq := req.Clone(req.Context())
	sreq.RemoteAddr, sreq.RequestURI = "127.0.0.1:40000", req.URL.RequestURI()
	h.h.ServeHTTP(rec, sreq)
	resp := rec.Result()
	resp.Request = req
	return resp, nil
}
