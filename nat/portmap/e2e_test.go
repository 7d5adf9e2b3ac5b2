package portmap

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/whnet/wh/e2e/lab"
)

// The e2e test re-runs this test binary inside the lab's namespaces as
// TestE2EHelper, told what to do by environment variables.
const (
	envHelper = "WH_PORTMAP_E2E" // "map" or "send"
	envProto  = "WH_PORTMAP_PROTO"
	envPort   = "WH_PORTMAP_PORT"
	envTo     = "WH_PORTMAP_TO"

	// A race-enabled binary sleeps 1 s at exit unless told not to.
	noExitSleep = "GORACE=atexit_sleep_ms=0"
)

// TestE2EMiniupnpd runs the Mapper against real miniupnpd daemons, each
// protocol on its own:
//
//	out ─── inet bridge (11.22.0.0/16) ───┬──────────────────────┐
//	                                      gw  wan0 public         gw0  wan0 public, MASQUERADE
//	                                      │   nft + miniupnpd     │
//	                                      lan0 192.168.x.0/24     lan0 ── gw2  eth0 private (double NAT)
//	                                      in: the Mapper                  │    nft + miniupnpd
//	                                                                      lan0 ── in2: the Mapper
//
// Through gw it must get a mapping that carries a datagram from out to
// in, and Close must remove the forward from miniupnpd's chain. Through
// gw2, whose own address is private, miniupnpd reports no external
// address (UPnP: "" and 501); it must end with no mapping, promptly.
func TestE2EMiniupnpd(t *testing.T) {
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	t.Parallel() // only waits on other processes
	l := lab.New(t)
	out := l.Public("out")
	gw := l.NAT("gw", lab.UPnP)
	in := gw.Add("in")
	gw2 := l.NAT("gw0", lab.Restricted).NAT("gw2", lab.UPnP)
	in2 := gw2.Add("in2")

	tests := []struct {
		proto string
		want  string
		port  uint16
	}{
		{"upnp", ProtocolUPnPIGD2, 41001},
		{"nat-pmp", ProtocolNATPMP, 41002},
		{"pcp", ProtocolPCP, 41003},
	}
	for _, tc := range tests {
		t.Run(tc.proto, func(t *testing.T) {
			forward := fmt.Sprintf("dnat ip to %v:%d", in.Addr, tc.port)
			mapper := startMapper(t, in, self, tc.proto, tc.port)
			var mapped []string
			if err := lab.Eventually(10*time.Second, 20*time.Millisecond, func() error {
				mapped = regexp.MustCompile(`MAPPED (\S+) (\S+) in (\S+)`).FindStringSubmatch(mapper.Output())
				if mapped == nil {
					return fmt.Errorf("no mapping:\n%s", mapper.Output())
				}
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			t.Logf("%s mapping %s in %s", mapped[1], mapped[2], mapped[3])
			if want := netip.AddrPortFrom(gw.WAN, tc.port).String(); mapped[1] != tc.want || mapped[2] != want {
				t.Fatalf("mapped %s %s, want %s %s", mapped[1], mapped[2], tc.want, want)
			}
			if rules := miniupnpdChain(gw); !strings.Contains(rules, forward) {
				t.Fatalf("no %q in miniupnpd's chain:\n%s", forward, rules)
			}

			sender := out.Start("send-"+tc.proto, []string{envHelper + "=send", envTo + "=" + mapped[2], envProto + "=" + tc.proto, noExitSleep},
				self, "-test.run=^TestE2EHelper$")
			defer sender.Stop()
			if err := lab.Eventually(5*time.Second, 20*time.Millisecond, func() error {
				if !strings.Contains(mapper.Output(), fmt.Sprintf("RECEIVED %q from %v:", "through "+tc.proto, out.Addr)) {
					return fmt.Errorf("nothing from %v arrived through the mapping", out.Addr)
				}
				return nil
			}); err != nil {
				t.Fatal(err)
			}

			mapper.Stop() // SIGTERM: the helper calls Close
			if o := mapper.Output(); !strings.Contains(o, "CLOSED <nil>") {
				t.Fatalf("Close failed:\n%s", o)
			}
			if rules := miniupnpdChain(gw); strings.Contains(rules, forward) {
				t.Fatalf("forward still there after Close:\n%s", rules)
			}
		})
		t.Run(tc.proto+"_double_nat", func(t *testing.T) {
			mapper := startMapper(t, in2, self, tc.proto, tc.port)
			t0 := time.Now()
			if err := lab.Eventually(10*time.Second, 20*time.Millisecond, func() error {
				if !strings.Contains(mapper.Output(), `msg="port mapping: none"`) {
					return fmt.Errorf("discovery did not end:\n%s", mapper.Output())
				}
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			line := regexp.MustCompile(`msg="port mapping: none" err=.*`).FindString(mapper.Output())
			t.Logf("no mapping after %v: %s", time.Since(t0).Round(time.Millisecond), line)
			mapper.Stop()
			o := mapper.Output()
			if strings.Contains(o, "MAPPED") || !strings.Contains(o, "CLOSED <nil>") {
				t.Fatalf("want no mapping and a clean Close:\n%s", o)
			}
			if rules := miniupnpdChain(gw2); strings.Contains(rules, "dnat") {
				t.Fatalf("forward left behind:\n%s", rules)
			}
		})
	}
}

// startMapper runs this binary's TestE2EHelper on h: a Mapper for port
// using protocol proto only. It is stopped when t ends.
func startMapper(t *testing.T, h *lab.Host, self, proto string, port uint16) *lab.Proc {
	p := h.Start("mapper-"+proto, []string{envHelper + "=map", envProto + "=" + proto, envPort + "=" + strconv.Itoa(int(port)), noExitSleep},
		self, "-test.run=^TestE2EHelper$", "-test.v")
	t.Cleanup(p.Stop)
	return p
}

func miniupnpdChain(r *lab.Router) string {
	return r.Must("nft", "list", "chain", "inet", "filter", "prerouting_miniupnpd")
}

// TestE2EHelper is not a test: it is the process TestE2EMiniupnpd starts
// in a namespace.
func TestE2EHelper(t *testing.T) {
	switch os.Getenv(envHelper) {
	case "":
		t.Skip("helper process of TestE2EMiniupnpd")
	case "map":
		e2eMap(t)
	case "send":
		e2eSend(t)
	}
}

// e2eMap listens on the port, maps it with one protocol, prints the
// mapping and any datagram received, and on SIGTERM closes the mapper.
func e2eMap(t *testing.T) {
	port, err := strconv.ParseUint(os.Getenv(envPort), 10, 16)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{Port: int(port)})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	opt := Options{
		LocalPort: uint16(port), Description: "wh e2e",
		Logger:      slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug})),
		DisableUPnP: true, DisableNATPMP: true, DisablePCP: true,
	}
	switch os.Getenv(envProto) {
	case "upnp":
		opt.DisableUPnP = false
	case "nat-pmp":
		opt.DisableNATPMP = false
	case "pcp":
		opt.DisablePCP = false
	}
	term := make(chan os.Signal, 1)
	signal.Notify(term, syscall.SIGTERM)
	m := New(opt)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	t0 := time.Now()
	go m.Run(ctx)
	go func() {
		for ctx.Err() == nil {
			if mp, ok := m.Mapping(); ok {
				fmt.Printf("MAPPED %s %v in %v\n", mp.Protocol, mp.External, time.Since(t0).Round(time.Millisecond))
				return
			}
			time.Sleep(5 * time.Millisecond)
		}
	}()
	go func() {
		buf := make([]byte, 1500)
		for {
			n, from, err := conn.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			fmt.Printf("RECEIVED %q from %v\n", buf[:n], from)
		}
	}()
	select {
	case <-term:
	case <-ctx.Done():
	}
	fmt.Printf("CLOSED %v\n", m.Close())
}

// e2eSend sends a few datagrams to the mapped address.
func e2eSend(t *testing.T) {
	to, err := netip.ParseAddrPort(os.Getenv(envTo))
	if err != nil {
		t.Fatal(err)
	}
	conn, err := net.DialUDP("udp4", nil, net.UDPAddrFromAddrPort(to))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	proto := os.Getenv(envProto)
	for range 30 {
		conn.Write([]byte("through " + proto))
		time.Sleep(100 * time.Millisecond)
	}
}
