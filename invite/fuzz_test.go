package invite

import (
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// FuzzParse checks that Parse never panics and that whatever it accepts
// prints back to the same string and parses to the same value.
func FuzzParse(f *testing.F) {
	f.Add(readme)
	f.Add(Invitation{Inviter: testKey(f, 1).Public(), Alias: testKey(f, 2),
		Addrs:    []netip.AddrPort{netip.MustParseAddrPort("[2001:db8::1]:443")},
		Contacts: []Contact{{Key: testKey(f, 3).Public(), Addr: netip.MustParseAddrPort("192.0.2.1:62096")}}}.String())
	f.Add("")
	f.Add("AQ")
	f.Fuzz(func(t *testing.T, s string) {
		inv, err := Parse(s, "public", 0)
		if err != nil {
			return
		}
		out := inv.String()
		again, err := Parse(out, "public", 0)
		if err != nil {
			t.Fatalf("%q printed as %q, which does not parse: %v", s, out, err)
		}
		if diff := cmp.Diff(inv, again, cmp.Comparer(func(a, b netip.AddrPort) bool { return a == b })); diff != "" {
			t.Fatalf("round trip (-first +second):\n%s", diff)
		}
		if again.String() != out {
			t.Fatalf("printed %q, then %q", out, again.String())
		}
	})
}
