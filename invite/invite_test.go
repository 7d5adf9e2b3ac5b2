package invite

import (
	"encoding/base64"
	"errors"
	"net/netip"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/whnet/wh/key"
)

// readme is the invitation of WireHub's README (0nc).
const readme = "ncuJonSJOS1DlFtb3HdgDJczPilrs0oPR9pwRpa_7WXwO0z-xioe_g9cdcMZkpV2b5lN7j3eLILjplBffvjdcw"

func TestParseWireHubVector(t *testing.T) {
	inv, err := Parse(readme, "public", 8)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := inv.Inviter.String(), "ncuJonSJOS1DlFtb3HdgDJczPilrs0oPR9pwRpa_7WU"; got != want {
		t.Errorf("inviter %s, want %s", got, want)
	}
	if got, want := inv.Alias.Public().String(), "OgVwBkEoLpIBTSY2CMUbqyD9he19cOD2kpAEjYQQpS0"; got != want {
		t.Errorf("alias public key %s, want %s", got, want)
	}
	if inv.Long() {
		t.Error("WireHub's form parsed as version 1")
	}
	if got := inv.String(); got != readme {
		t.Errorf("String() = %s, want the input back", got)
	}
	// The vector's keys have 9 and 12 workbits.
	if _, err := Parse(readme, "public", 10); !errors.Is(err, ErrWorkbits) || !strings.Contains(err.Error(), "inviter") {
		t.Errorf("workbit 10: %v, want the inviter's ErrWorkbits", err)
	}
	if _, err := Parse("  "+readme+"\n", "public", 9); err != nil {
		t.Errorf("with white space: %v", err)
	}
}

func testKey(t testing.TB, b byte) key.Private {
	var k key.Private
	for i := range k {
		k[i] = b
	}
	return k
}

func TestVersion1RoundTrip(t *testing.T) {
	inv := Invitation{
		Inviter: testKey(t, 1).Public(),
		Alias:   testKey(t, 2),
		Addrs: []netip.AddrPort{
			netip.MustParseAddrPort("192.0.2.1:62096"),
			netip.MustParseAddrPort("[2001:db8::1]:443"),
		},
		Contacts: []Contact{{Key: testKey(t, 3).Public(), Addr: netip.MustParseAddrPort("198.51.100.7:1")}},
	}
	s := inv.String()
	if len(s) == shortLen {
		t.Fatalf("version 1 printed in %d characters", len(s))
	}
	got, err := Parse(s, "public", 0)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(inv, got, cmp.Comparer(func(a, b netip.AddrPort) bool { return a == b })); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	// The smallest version 1 string: one IPv4 address.
	small := Invitation{Inviter: inv.Inviter, Alias: inv.Alias, Addrs: inv.Addrs[:1]}
	if n := len(small.String()); n < 90 {
		t.Errorf("smallest version 1 is %d characters, Parse wants at least 90", n)
	}
	if _, err := Parse(small.String(), "public", 0); err != nil {
		t.Error(err)
	}
}

func TestParseErrors(t *testing.T) {
	long := Invitation{Inviter: testKey(t, 1).Public(), Alias: testKey(t, 2), Addrs: []netip.AddrPort{netip.MustParseAddrPort("192.0.2.1:1")}}.String()
	enc := base64.RawURLEncoding.EncodeToString
	body := func(tail ...byte) []byte {
		b := []byte{1}
		k1, k2 := testKey(t, 1).Public(), testKey(t, 2)
		b = append(append(b, k1[:]...), k2[:]...)
		return append(b, tail...)
	}
	tests := []struct {
		name string
		s    string
		want error
	}{
		{"empty", "", ErrLength},
		{"85", readme[:85], ErrLength},
		{"87", readme + "A", ErrLength},
		{"standard_base64", strings.ReplaceAll(strings.ReplaceAll(readme, "-", "+"), "_", "/"), ErrBase64},
		{"padding", readme[:84] + "==", ErrBase64},
		{"nonzero_trailing_bits", readme[:85] + "x", ErrBase64},
		{"version_2", enc(append([]byte{2}, body(1, 4, 192, 0, 2, 1, 0, 1, 0)[1:]...)), ErrVersion},
		{"version_1", long, nil},
		{"long_trailing_byte", enc(body(0, 0, 0)), ErrMalformed},
		{"long_no_contact_count", enc(body(1, 4, 192, 0, 2, 1, 0, 1)), ErrMalformed},
		{"long_empty", enc(body(0, 0)), ErrMalformed},
		{"long_5_addrs", enc(body(5, 0, 0, 0, 0, 0, 0, 0)), ErrMalformed},
		{"long_family_5", enc(body(1, 5, 192, 0, 2, 1, 0, 1, 0)), ErrMalformed},
		{"long_port_0", enc(body(1, 4, 192, 0, 2, 1, 0, 0, 0)), ErrMalformed},
		{"long_5_contacts", enc(body(0, 5, 0, 0, 0, 0, 0, 0)), ErrMalformed},
		{"long_truncated_contact", enc(body(0, 1, 0, 0, 0, 0, 0, 0)), ErrMalformed},
		{"zero_alias", enc(make([]byte, 64)), ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			inv, err := Parse(tt.s, "public", 0)
			if !errors.Is(err, tt.want) {
				t.Fatalf("Parse = %+v, %v; want %v", inv, err, tt.want)
			}
		})
	}
}
