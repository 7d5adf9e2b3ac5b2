package nat

import (
	"net/netip"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/whnet/wh/key"
)

// obs is one Observe call: peer p (its key is fillKey(p), its address
// 203.0.113.p:1 unless addr says otherwise) saw the node at observed.
type obs struct {
	p        byte
	addr     string // the peer's address, if not 203.0.113.p:1
	observed string
}

func (o obs) apply(d *Detector) {
	addr := netip.AddrPortFrom(netip.AddrFrom4([4]byte{203, 0, 113, o.p}), 1)
	if o.addr != "" {
		addr = ipport(o.addr)
	}
	d.Observe(fillKey(o.p), addr, ipport(o.observed))
}

func TestDetector(t *testing.T) {
	local := []netip.AddrPort{ipport("192.168.1.10:62096"), ipport("[2001:db8::10]:62096")}
	tests := []struct {
		name string
		obs  []obs
		want Info
	}{
		{"nothing", nil, Info{}},
		{"public_one_pong", []obs{{1, "", "192.168.1.10:62096"}}, Info{}},
		{"public", []obs{{1, "", "192.168.1.10:62096"}, {2, "", "192.168.1.10:62096"}},
			Info{Reflexive: aps("192.168.1.10:62096"), Mapping: MappingNone}},
		{"public_mapped_v6", []obs{{1, "", "[::ffff:192.168.1.10]:62096"}, {2, "", "192.168.1.10:62096"}},
			Info{Reflexive: aps("192.168.1.10:62096"), Mapping: MappingNone}},
		{"nat_one_pong", []obs{{1, "", "198.51.100.1:62096"}}, Info{}},
		{"port_rewritten", []obs{{1, "", "192.168.1.10:1024"}, {2, "", "192.168.1.10:1024"}},
			Info{Reflexive: aps("192.168.1.10:1024"), Mapping: MappingEndpointIndependent, BehindNAT: true}},
		{"independent", []obs{{1, "", "198.51.100.1:62096"}, {2, "", "198.51.100.1:62096"}},
			Info{Reflexive: aps("198.51.100.1:62096"), Mapping: MappingEndpointIndependent, BehindNAT: true}},
		{"two_ports_undecided", []obs{{1, "", "198.51.100.1:1111"}, {2, "", "198.51.100.1:2222"}},
			Info{Reflexive: aps("198.51.100.1:2222", "198.51.100.1:1111"), BehindNAT: true}},
		{"dependent", []obs{{1, "", "198.51.100.1:1111"}, {2, "", "198.51.100.1:2222"}, {3, "", "198.51.100.1:3333"}},
			Info{Reflexive: aps("198.51.100.1:3333", "198.51.100.1:2222", "198.51.100.1:1111"), Mapping: MappingEndpointDependent, BehindNAT: true}},
		{"dependent_with_a_repeat", []obs{{1, "", "198.51.100.1:1111"}, {2, "", "198.51.100.1:1111"}, {3, "", "198.51.100.1:2222"}, {4, "", "198.51.100.1:3333"}},
			Info{Reflexive: aps("198.51.100.1:1111", "198.51.100.1:3333", "198.51.100.1:2222"), Mapping: MappingEndpointDependent, BehindNAT: true}},
		{"liar_port", []obs{{1, "", "198.51.100.1:62096"}, {2, "", "198.51.100.1:62096"}, {3, "", "198.51.100.1:9999"}},
			Info{Reflexive: aps("198.51.100.1:62096", "198.51.100.1:9999"), Mapping: MappingEndpointIndependent, BehindNAT: true}},
		{"liar_address", []obs{{1, "", "198.51.100.1:62096"}, {2, "", "198.51.100.1:62096"}, {3, "", "192.0.2.66:1"}},
			Info{Reflexive: aps("198.51.100.1:62096"), Mapping: MappingEndpointIndependent, BehindNAT: true}},
		{"liar_public", []obs{{1, "", "198.51.100.1:62096"}, {2, "", "198.51.100.1:62096"}, {3, "", "192.168.1.10:62096"}},
			Info{Reflexive: aps("198.51.100.1:62096"), Mapping: MappingEndpointIndependent, BehindNAT: true}},
		{"liar_keys_one_ip", []obs{{1, "", "198.51.100.1:62096"}, {2, "", "198.51.100.1:62096"},
			{3, "192.0.2.66:1", "192.0.2.66:1"}, {4, "192.0.2.66:2", "192.0.2.66:1"}},
			Info{Reflexive: aps("198.51.100.1:62096"), Mapping: MappingEndpointIndependent, BehindNAT: true}},
		{"two_peers_one_ip", []obs{{1, "", "198.51.100.1:62096"}, {2, "203.0.113.1:2", "198.51.100.1:62096"}}, Info{}},
		{"same_peer_twice", []obs{{1, "", "198.51.100.1:1111"}, {1, "", "198.51.100.1:2222"}}, Info{}},
		{"nat_changed_address", []obs{{1, "", "198.51.100.1:1111"}, {2, "", "198.51.100.9:62096"}, {3, "", "198.51.100.9:62096"}},
			Info{Reflexive: aps("198.51.100.9:62096"), Mapping: MappingEndpointIndependent, BehindNAT: true}},
		{"one_peer_does_not_move_it", []obs{{1, "", "198.51.100.1:62096"}, {2, "", "198.51.100.1:62096"}, {3, "", "198.51.100.9:62096"}},
			Info{Reflexive: aps("198.51.100.1:62096"), Mapping: MappingEndpointIndependent, BehindNAT: true}},
		{"left_the_nat", []obs{{1, "", "198.51.100.1:62096"}, {2, "", "192.168.1.10:62096"}, {3, "", "192.168.1.10:62096"}},
			Info{Reflexive: aps("192.168.1.10:62096"), Mapping: MappingNone}},
		{"v4_decides", []obs{
			{1, "[2001:db8::1]:1", "[2001:db8::10]:62096"}, {5, "[2001:db8::5]:1", "[2001:db8::10]:62096"},
			{2, "", "198.51.100.1:1111"}, {3, "", "198.51.100.1:2222"}, {4, "", "198.51.100.1:3333"}},
			Info{Reflexive: aps("198.51.100.1:3333", "198.51.100.1:2222", "198.51.100.1:1111", "[2001:db8::10]:62096"),
				Mapping: MappingEndpointDependent, BehindNAT: true}},
		{"v6_only", []obs{{1, "[2001:db8::1]:1", "[2001:db8::10]:62096"}, {2, "[2001:db8::2]:1", "[2001:db8::10]:62096"}},
			Info{Reflexive: aps("[2001:db8::10]:62096"), Mapping: MappingNone}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := NewDetector(DetectorConfig{Local: func() []netip.AddrPort { return local }})
			for _, o := range tt.obs {
				o.apply(d)
			}
			if diff := cmp.Diff(tt.want, d.Info(), cmp.Comparer(addrPortEqual)); diff != "" {
				t.Errorf("Info() (-want +got):\n%s", diff)
			}
		})
	}
}

func aps(s ...string) []netip.AddrPort {
	out := make([]netip.AddrPort, len(s))
	for i, a := range s {
		out[i] = ipport(a)
	}
	return out
}

// TestDetectorExpires checks that observations count for MaxAge only.
func TestDetectorExpires(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		d := NewDetector(DetectorConfig{MaxAge: time.Minute})
		obs{1, "", "198.51.100.1:62096"}.apply(d)
		time.Sleep(30 * time.Second)
		obs{2, "", "198.51.100.1:62096"}.apply(d)
		if got := d.Info().Mapping; got != MappingEndpointIndependent {
			t.Fatalf("Mapping = %v, want endpoint-independent", got)
		}
		time.Sleep(31 * time.Second)
		if diff := cmp.Diff(Info{}, d.Info(), cmp.Comparer(addrPortEqual)); diff != "" {
			t.Errorf("after the first expired, one peer is left (-want +got):\n%s", diff)
		}
		if n := len(d.Observations()); n != 1 {
			t.Errorf("%d observations, want 1", n)
		}
		time.Sleep(30 * time.Second)
		d.Info() // drops the expired
		if n := len(d.Observations()); n != 0 {
			t.Errorf("after both expired: %d observations", n)
		}
	})
}

// TestDetectorBounded checks that a Detector keeps one observation per
// peer and at most maxObservations, the newest.
func TestDetectorBounded(t *testing.T) {
	d := NewDetector(DetectorConfig{})
	for i := range 3 * maxObservations {
		obs{byte(i), "", "198.51.100.1:62096"}.apply(d)
		obs{byte(i), "", "198.51.100.1:62096"}.apply(d)
	}
	if n := len(d.obs); n != maxObservations {
		t.Errorf("%d observations kept, want %d", n, maxObservations)
	}
	if d.obs[0].from != fillKey(3*maxObservations-1) {
		t.Errorf("newest observation is from %v", d.obs[0].from)
	}
}

// TestDetectorIgnoresInvalid checks that zero addresses change nothing.
func TestDetectorIgnoresInvalid(t *testing.T) {
	d := NewDetector(DetectorConfig{})
	d.Observe(key.Public{1}, netip.AddrPort{}, ipport("198.51.100.1:1"))
	d.Observe(key.Public{2}, ipport("203.0.113.1:1"), netip.AddrPort{})
	if diff := cmp.Diff(Info{}, d.Info(), cmp.Comparer(addrPortEqual)); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

func TestMappingString(t *testing.T) {
	for m, want := range map[Mapping]string{
		MappingUnknown:             "unknown",
		MappingNone:                "public",
		MappingEndpointIndependent: "endpoint-independent",
		MappingEndpointDependent:   "endpoint-dependent",
		7:                          "Mapping(7)",
	} {
		if got := m.String(); got != want {
			t.Errorf("Mapping(%d).String() = %q, want %q", uint8(m), got, want)
		}
	}
}

func TestWhy(t *testing.T) {
	var (
		public  = Info{Mapping: MappingNone}
		easy    = Info{Mapping: MappingEndpointIndependent, BehindNAT: true}
		hard    = Info{Mapping: MappingEndpointDependent, BehindNAT: true}
		unknown = Info{}
	)
	tests := []struct {
		name          string
		local, remote Info
		want          string
	}{
		{"hard_hard", hard, hard, "both sides map per destination"},
		{"hard_easy", hard, easy, "this side maps per destination and the peer's NAT filters"},
		{"easy_hard", easy, hard, "the peer maps per destination and this side's NAT filters"},
		{"hard_public", hard, public, "punch timed out"},
		{"easy_easy", easy, easy, "punch timed out"},
		{"unknown", unknown, unknown, "punch timed out"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Why(tt.local, tt.remote); got != tt.want {
				t.Errorf("Why = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestLocalAddrs(t *testing.T) {
	addrs, err := LocalAddrs(62096)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range addrs {
		if a.Port() != 62096 || a.Addr().IsLoopback() || a.Addr().IsLinkLocalUnicast() || a.Addr().Is4In6() {
			t.Errorf("LocalAddrs returned %v", a)
		}
	}
	t.Logf("%v", addrs)
}
