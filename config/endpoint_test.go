package config

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/miekg/dns"
)

func TestParseEndpoint(t *testing.T) {
	tests := []struct {
		name      string
		in        string
		want      Endpoint
		canonical string
	}{
		{"ipv4", "192.0.2.1", Endpoint{"192.0.2.1", 62096}, "192.0.2.1:62096"},
		{"ipv4_port", "192.0.2.1:51820", Endpoint{"192.0.2.1", 51820}, "192.0.2.1:51820"},
		{"ipv4_port_min", "192.0.2.1:1", Endpoint{"192.0.2.1", 1}, "192.0.2.1:1"},
		{"ipv4_port_max", "192.0.2.1:65535", Endpoint{"192.0.2.1", 65535}, "192.0.2.1:65535"},
		{"ipv4_port_leading_zero", "192.0.2.1:0080", Endpoint{"192.0.2.1", 80}, "192.0.2.1:80"},
		{"ipv6_bare", "2001:db8::1", Endpoint{"2001:db8::1", 62096}, "[2001:db8::1]:62096"},
		{"ipv6_bare_uncanonical", "2001:DB8:0:0::1", Endpoint{"2001:db8::1", 62096}, "[2001:db8::1]:62096"},
		{"ipv6_brackets", "[2001:db8::1]", Endpoint{"2001:db8::1", 62096}, "[2001:db8::1]:62096"},
		{"ipv6_brackets_port", "[2001:db8::1]:9", Endpoint{"2001:db8::1", 9}, "[2001:db8::1]:9"},
		{"ipv4_mapped", "::ffff:192.0.2.1", Endpoint{"192.0.2.1", 62096}, "192.0.2.1:62096"},
		{"ipv4_mapped_brackets_port", "[::ffff:192.0.2.1]:7", Endpoint{"192.0.2.1", 7}, "192.0.2.1:7"},
		{"loopback", "127.0.0.1", Endpoint{"127.0.0.1", 62096}, "127.0.0.1:62096"},
		{"host", "bootstrap.wirehub.io", Endpoint{"bootstrap.wirehub.io", 62096}, "bootstrap.wirehub.io:62096"},
		{"host_port", "bootstrap.wirehub.io:62096", Endpoint{"bootstrap.wirehub.io", 62096}, "bootstrap.wirehub.io:62096"},
		{"host_case_kept", "Boot.Example", Endpoint{"Boot.Example", 62096}, "Boot.Example:62096"},
		{"single_label", "localhost:5", Endpoint{"localhost", 5}, "localhost:5"},
		{"idna", "xn--bcher-kva.example", Endpoint{"xn--bcher-kva.example", 62096}, "xn--bcher-kva.example:62096"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseEndpoint(tc.in)
			if err != nil {
				t.Fatalf("ParseEndpoint(%q): %v", tc.in, err)
			}
			if got != tc.want {
				t.Errorf("ParseEndpoint(%q) = %+v, want %+v", tc.in, got, tc.want)
			}
			if s := got.String(); s != tc.canonical {
				t.Errorf("String() = %q, want %q", s, tc.canonical)
			}
			again, err := ParseEndpoint(got.String())
			if err != nil || again != got {
				t.Errorf("ParseEndpoint(String()) = %+v, %v; want %+v", again, err, got)
			}
		})
	}
}

func TestParseEndpointErrors(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"empty", "", `endpoint "": not an IP address or host name: empty name`},
		{"empty_host", ":80", `endpoint ":80": not an IP address or host name: empty name`},
		{"junk_after_bracket", "[::1]x", `endpoint "[::1]x": unexpected "x" after ']'`},
		{"empty_port_bracket", "[::1]:", `endpoint "[::1]:": empty port`},
		{"hostname_in_brackets", "[host]:80", `endpoint "[host]:80": only an IPv6 address goes in brackets`},
		{"two_colons", "host:80:90", `endpoint "host:80:90": not an IP address (an IPv6 address with a port is written [addr]:port)`},
		{"space", "a b", `endpoint "a b": not an IP address or host name: character ' ' not allowed`},
		{"negative_port", "host:-1", `endpoint "host:-1": port "-1" is not a number`},
		{"ipv4_typo", "10.0.0.300:80", `endpoint "10.0.0.300:80": not an IP address or host name: last label is all digits`},
		{"long_label", "a234567890123456789012345678901234567890123456789012345678901234.example", `endpoint "a234567890123456789012345678901234567890123456789012345678901234.example": not an IP address or host name: label "a234567890123456789012345678901234567890123456789012345678901234" longer than 63 characters`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e, err := ParseEndpoint(tc.in)
			if err == nil {
				t.Fatalf("ParseEndpoint(%q) = %+v, want error", tc.in, e)
			}
			if err.Error() != tc.want {
				t.Errorf("error:\n got %s\nwant %s", err, tc.want)
			}
		})
	}
}

func TestEndpointZero(t *testing.T) {
	var e Endpoint
	if !e.IsZero() || e.String() != "" {
		t.Errorf("zero Endpoint: IsZero %v, String %q", e.IsZero(), e.String())
	}
	if _, err := e.Resolve(context.Background(), nil); !errors.Is(err, ErrNoEndpoint) {
		t.Errorf("Resolve of zero Endpoint: %v, want ErrNoEndpoint", err)
	}
	if (Endpoint{Host: "h", Port: 1}).IsZero() {
		t.Errorf("non-zero Endpoint reports IsZero")
	}
}

// fakeDNS returns a resolver whose every query is answered by answer, and
// counts the connections it is asked for. The Go resolver speaks DNS over a
// stream to it (net.Pipe), so no socket is opened.
func fakeDNS(t *testing.T, answer func(q dns.Question) []dns.RR) (*net.Resolver, *atomic.Int32) {
	t.Helper()
	dials := new(atomic.Int32)
	return &net.Resolver{
		PreferGo: true,
		Dial: func(ctx context.Context, network, address string) (net.Conn, error) {
			dials.Add(1)
			client, server := net.Pipe()
			go func() {
				defer server.Close()
				conn := &dns.Conn{Conn: server}
				for {
					q, err := conn.ReadMsg()
					if err != nil {
						return
					}
					r := new(dns.Msg)
					r.SetReply(q)
					for _, question := range q.Question {
						r.Answer = append(r.Answer, answer(question)...)
					}
					if err := conn.WriteMsg(r); err != nil {
						return
					}
				}
			}()
			return client, nil
		},
	}, dials
}

func TestResolve(t *testing.T) {
	r, dials := fakeDNS(t, func(q dns.Question) []dns.RR {
		hdr := dns.RR_Header{Name: q.Name, Rrtype: q.Qtype, Class: dns.ClassINET, Ttl: 60}
		switch q.Qtype {
		case dns.TypeA:
			return []dns.RR{&dns.A{Hdr: hdr, A: net.ParseIP("192.0.2.7")}}
		case dns.TypeAAAA:
			return []dns.RR{&dns.AAAA{Hdr: hdr, AAAA: net.ParseIP("2001:db8::7")}}
		}
		return nil
	})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()

	t.Run("ip_literal_needs_no_dns", func(t *testing.T) {
		e, _ := ParseEndpoint("[2001:db8::1]:9")
		got, err := e.Resolve(ctx, r)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff([]netip.AddrPort{netip.MustParseAddrPort("[2001:db8::1]:9")}, got, cmpNet); diff != "" {
			t.Errorf("(-want +got):\n%s", diff)
		}
		if dials.Load() != 0 {
			t.Errorf("resolver dialled %d times for an IP literal", dials.Load())
		}
		// The default resolver is never asked either.
		if _, err := e.Resolve(ctx, nil); err != nil {
			t.Errorf("Resolve with nil resolver: %v", err)
		}
	})
	t.Run("name", func(t *testing.T) {
		e, _ := ParseEndpoint("boot.wh-test.invalid:51820")
		got, err := e.Resolve(ctx, r)
		if err != nil {
			t.Fatal(err)
		}
		want := map[netip.AddrPort]bool{
			netip.MustParseAddrPort("192.0.2.7:51820"):     true,
			netip.MustParseAddrPort("[2001:db8::7]:51820"): true,
		}
		if len(got) != len(want) {
			t.Fatalf("got %v, want the keys of %v", got, want)
		}
		for _, ap := range got {
			if !want[ap] {
				t.Errorf("unexpected address %v (want IPv4 unmapped)", ap)
			}
		}
		if dials.Load() == 0 {
			t.Errorf("resolver was not asked")
		}
	})
	t.Run("name_not_found", func(t *testing.T) {
		empty, _ := fakeDNS(t, func(dns.Question) []dns.RR { return nil })
		e, _ := ParseEndpoint("gone.wh-test.invalid")
		if got, err := e.Resolve(ctx, empty); err == nil {
			t.Errorf("Resolve = %v, want an error", got)
		}
	})
}
