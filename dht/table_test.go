package dht

import (
	"errors"
	"math/rand/v2"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/whnet/wh/key"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// equateAddrs lets cmp compare netip values, whose fields are unexported.
var equateAddrs = cmp.Options{
	cmp.Comparer(func(a, b netip.AddrPort) bool { return a == b }),
	cmp.Comparer(func(a, b netip.Addr) bool { return a == b }),
}

func randKey(r *rand.Rand) key.Public {
	var k key.Public
	for i := range k {
		k[i] = byte(r.Uint32())
	}
	return k
}

// publicAddr returns the i-th of a series of public addresses, each in its
// own /24.
func publicAddr(i int) netip.AddrPort {
	v := uint32(20<<24) + uint32(i)<<8 + 1
	return netip.AddrPortFrom(netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)}), 62096)
}

// keyInBucket returns a random key sharing exactly i leading bits with self.
func keyInBucket(self key.Public, i int, r *rand.Rand) key.Public {
	return NewTable(self, TableConfig{}).RandomKey(i, r)
}

// naiveClosest is the reference for Table.Closest: sort everything.
func naiveClosest(cs []Contact, target key.Public, n int) []Contact {
	cs = slices.Clone(cs)
	slices.SortFunc(cs, func(a, b Contact) int { return xor(a.Key, target).cmp(xor(b.Key, target)) })
	return cs[:min(n, len(cs))]
}

func TestClosestMatchesNaiveSort(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	self := randKey(r)
	tab := NewTable(self, TableConfig{})
	for i := range 20000 {
		c := Contact{Key: randKey(r), Addr: publicAddr(i), NAT: i%7 == 0}
		// Keys close to self too, so that deep buckets are not empty.
		if i%4 == 0 {
			c.Key = keyInBucket(self, r.IntN(24), r)
		}
		tab.Add(c, t0.Add(time.Duration(i)))
	}
	all := tab.Contacts()
	t.Logf("table of %d contacts", len(all))
	if len(all) < 200 {
		t.Fatalf("table holds %d contacts, want a few hundred", len(all))
	}
	var direct []Contact
	for _, c := range all {
		if !c.NAT {
			direct = append(direct, c)
		}
	}
	targets := []key.Public{self}
	for _, c := range all {
		if c.NAT && len(targets) < 20 {
			targets = append(targets, c.Key)
		}
	}
	for range 300 {
		targets = append(targets, randKey(r), keyInBucket(self, r.IntN(30), r))
	}
	if raceEnabled {
		targets = targets[:50]
	}
	for _, target := range targets {
		sortedDirect := naiveClosest(direct, target, len(direct))
		// A FindNode's answer: the target if it is a NAT contact, then
		// the nearest direct ones.
		sortedAll := sortedDirect
		if c, ok := tab.Get(target); ok && c.NAT {
			sortedAll = append([]Contact{c}, sortedDirect...)
		}
		for _, n := range []int{1, 3, 20, 57, len(all) + 1} {
			if want, got := sortedAll[:min(n, len(sortedAll))], tab.Closest(target, n); !slices.Equal(want, got) {
				t.Fatalf("Closest(%v, %d) (-naive +table):\n%s", target, n, cmp.Diff(want, got, equateAddrs))
			}
			if want, got := sortedDirect[:min(n, len(direct))], tab.ClosestDirect(target, n); !slices.Equal(want, got) {
				t.Fatalf("ClosestDirect(%v, %d) (-naive +table):\n%s", target, n, cmp.Diff(want, got, equateAddrs))
			}
		}
	}
}

// TestClosestDiverseMatchesNaive checks ClosestDirect where addresses
// cluster in a few /24s against sorting everything and applying diverse,
// and that diverse takes each prefix's share first.
func TestClosestDiverseMatchesNaive(t *testing.T) {
	r := rand.New(rand.NewPCG(17, 18))
	self := randKey(r)
	tab := NewTable(self, TableConfig{})
	for i := range 5000 {
		c := Contact{Key: randKey(r), Addr: netip.AddrPortFrom(netip.AddrFrom4([4]byte{20, 0, byte(i % 4), byte(i / 4 % 250)}), uint16(1000+i))}
		if i%3 == 0 {
			c.Key = keyInBucket(self, r.IntN(16), r)
		}
		tab.Add(c, t0.Add(time.Duration(i)))
	}
	all := tab.Contacts()
	for range 200 {
		target := randKey(r)
		for _, n := range []int{1, 8, 20} {
			want := diverse(naiveClosest(all, target, len(all)), n, DefaultPerPrefix)
			if got := tab.ClosestDirect(target, n); !slices.Equal(want, got) {
				t.Fatalf("ClosestDirect(%v, %d) (-naive +table):\n%s", target, n, cmp.Diff(want, got, equateAddrs))
			}
		}
	}
	// 20 contacts nearest first: 12 of one /24, then 8 of 8 others.
	var cs []Contact
	for i := range 20 {
		a := netip.MustParseAddrPort("20.1.1.1:1")
		if i >= 12 {
			a = publicAddr(i)
		}
		cs = append(cs, Contact{Key: randKey(r), Addr: a})
	}
	got := diverse(cs, 10, 2)
	want := append(slices.Clone(cs[:2]), cs[12:20]...)
	if diff := cmp.Diff(want, got, equateAddrs); diff != "" {
		t.Fatalf("diverse (-want +got):\n%s", diff)
	}
	if got := diverse(cs[:12], 10, 2); !slices.Equal(got, cs[:10]) {
		t.Fatalf("diverse of one prefix = %v, want the 10 nearest", got)
	}
}

func TestAddRejects(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	self := randKey(r)
	// A key with 8 workbits and one with fewer.
	var rich, poor key.Public
	for rich.IsZero() || poor.IsZero() {
		k := randKey(r)
		if key.Workbits(k, "test") >= 8 {
			rich = k
		} else {
			poor = k
		}
	}
	tests := []struct {
		name string
		cfg  TableConfig
		c    Contact
		want error
	}{
		{"self", TableConfig{}, Contact{Key: self, Addr: publicAddr(1)}, ErrSelf},
		{"no_address", TableConfig{}, Contact{Key: randKey(r)}, ErrNoAddr},
		{"port_zero", TableConfig{}, Contact{Key: randKey(r), Addr: netip.MustParseAddrPort("20.0.0.1:0")}, ErrNoAddr},
		{"too_few_workbits", TableConfig{Namespace: "test", Workbit: 8}, Contact{Key: poor, Addr: publicAddr(1)}, ErrWorkbits},
		{"enough_workbits", TableConfig{Namespace: "test", Workbit: 8}, Contact{Key: rich, Addr: publicAddr(1)}, nil},
		{"workbit_0_admits_any", TableConfig{}, Contact{Key: poor, Addr: publicAddr(1)}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tab := NewTable(self, tc.cfg)
			_, err := tab.Add(tc.c, t0)
			if !errors.Is(err, tc.want) {
				t.Fatalf("Add = %v, want %v", err, tc.want)
			}
			if _, in := tab.Get(tc.c.Key); in != (tc.want == nil) {
				t.Fatalf("Get(%v) = %v after Add error %v", tc.c.Key, in, err)
			}
		})
	}
}

func TestAddressLimits(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	self := randKey(r)
	addrs := func(s ...string) []netip.AddrPort {
		var out []netip.AddrPort
		for _, a := range s {
			out = append(out, netip.MustParseAddrPort(a))
		}
		return out
	}
	// Every case adds contacts to bucket 0 of a table with K=4, then
	// checks which are in.
	tests := []struct {
		name  string
		cfg   TableConfig
		addrs []netip.AddrPort
		want  []error
		in    []bool // after all were added
	}{
		{
			name:  "one_prefix_fills_a_bucket_with_room",
			addrs: addrs("20.1.2.3:1", "20.1.2.4:1", "20.1.2.5:1", "20.1.2.6:1"),
			want:  []error{nil, nil, nil, nil},
			in:    []bool{true, true, true, true},
		},
		{
			name:  "full_bucket_refuses_beyond_the_share",
			addrs: addrs("20.1.2.3:1", "20.1.2.4:1", "20.9.0.1:1", "20.8.0.1:1", "20.1.2.5:1"),
			want:  []error{nil, nil, nil, nil, ErrPrefixLimit},
			in:    []bool{true, true, true, true, false},
		},
		{
			name:  "newcomer_within_its_share_displaces_the_oldest_beyond",
			addrs: addrs("20.1.2.3:1", "20.1.2.4:1", "20.1.2.5:1", "20.9.0.1:1", "20.7.0.1:1", "20.6.0.1:1", "20.5.0.1:1"),
			want:  []error{nil, nil, nil, nil, nil, ErrBucketFull, ErrBucketFull},
			in:    []bool{false, true, true, true, true, false, false},
		},
		{
			name:  "ipv6_slash64",
			addrs: addrs("[2001:db8:0:1::1]:1", "[2001:db8:0:1::2]:1", "[2001:db8:0:1:ffff::3]:1", "[2001:db8:0:2::1]:1", "[2001:db8:0:3::1]:1"),
			want:  []error{nil, nil, nil, nil, nil},
			in:    []bool{false, true, true, true, true},
		},
		{
			name:  "ipv4_mapped_counts_as_ipv4",
			addrs: addrs("[::ffff:20.1.2.3]:1", "20.1.2.4:1", "[::ffff:20.1.2.5]:1", "20.9.0.1:1", "20.7.0.1:1"),
			want:  []error{nil, nil, nil, nil, nil},
			in:    []bool{false, true, true, true, true},
		},
		{
			name:  "one_ip_beyond_its_share",
			cfg:   TableConfig{PerPrefix: -1},
			addrs: addrs("20.1.2.3:1", "20.1.2.3:2", "20.1.2.3:3", "20.1.2.3:4", "20.5.0.1:1"),
			want:  []error{nil, nil, nil, nil, nil},
			in:    []bool{false, true, true, true, true},
		},
		{
			name:  "private_and_loopback_exempt",
			addrs: addrs("192.168.1.2:1", "192.168.1.3:1", "127.0.0.1:1", "127.0.0.1:2", "20.5.0.1:1"),
			want:  []error{nil, nil, nil, nil, ErrBucketFull},
			in:    []bool{true, true, true, true, false},
		},
		{
			name:  "caps_disabled",
			cfg:   TableConfig{PerPrefix: -1, PerAddr: -1},
			addrs: addrs("20.1.2.3:1", "20.1.2.3:2", "20.1.2.3:3", "20.1.2.3:4", "20.5.0.1:1"),
			want:  []error{nil, nil, nil, nil, ErrBucketFull},
			in:    []bool{true, true, true, true, false},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.cfg.K = 4
			tab := NewTable(self, tc.cfg)
			var cs []Contact
			for i, a := range tc.addrs {
				c := Contact{Key: keyInBucket(self, 0, r), Addr: a}
				cs = append(cs, c)
				if _, err := tab.Add(c, t0.Add(time.Duration(i))); !errors.Is(err, tc.want[i]) {
					t.Errorf("Add(%v) = %v, want %v", c, err, tc.want[i])
				}
			}
			for i, c := range cs {
				if _, in := tab.Get(c.Key); in != tc.in[i] {
					t.Errorf("%v in table = %v, want %v", c, in, tc.in[i])
				}
			}
		})
	}
	t.Run("sybil_host_gets_a_bounded_share", func(t *testing.T) {
		// One IP address with 1000 keys comes first, then honest
		// nodes, each in a /24 of its own: wherever they compete for
		// room, the Sybil host keeps at most its share.
		tab := NewTable(self, TableConfig{})
		sybil := map[key.Public]bool{}
		for i := range 1000 {
			addr := netip.AddrPortFrom(netip.MustParseAddr("20.6.6.6"), uint16(1000+i))
			c := Contact{Key: randKey(r), Addr: addr}
			sybil[c.Key] = true
			tab.Add(c, t0)
		}
		var honest []Contact
		for i := range 2000 {
			c := Contact{Key: randKey(r), Addr: publicAddr(i)}
			honest = append(honest, c)
			tab.Add(c, t0.Add(time.Second))
		}
		perBucket := map[int][2]int{} // bucket: honest, sybil entries
		for _, c := range tab.Contacts() {
			b := commonPrefixLen(self, c.Key)
			n := perBucket[b]
			if sybil[c.Key] {
				n[1]++
			} else {
				n[0]++
			}
			perBucket[b] = n
		}
		sybilInFull := 0
		for b, n := range perBucket {
			if n[0]+n[1] == DefaultK {
				sybilInFull += n[1]
			}
			if n[0] < DefaultK && n[1] > 0 {
				// Room held by the Sybil host must be room no honest
				// node asked for.
				asked := 0
				for _, c := range honest {
					if commonPrefixLen(self, c.Key) == b {
						asked++
					}
				}
				if asked > n[0] {
					t.Errorf("bucket %d: %d honest nodes asked, %d in, %d Sybil entries", b, asked, n[0], n[1])
				}
			}
		}
		if sybilInFull > DefaultPerAddr {
			t.Errorf("the Sybil host holds %d entries of full buckets, want at most %d", sybilInFull, DefaultPerAddr)
		}
	})
}

func TestNATContactsApart(t *testing.T) {
	r := rand.New(rand.NewPCG(19, 20))
	self := randKey(r)
	t.Run("a_cgnat_behind_one_address_is_kept_whole", func(t *testing.T) {
		tab := NewTable(self, TableConfig{})
		var cs []Contact
		for i := range 500 {
			c := Contact{Key: keyInBucket(self, 0, r), Addr: netip.AddrPortFrom(netip.MustParseAddr("20.7.7.7"), uint16(1024+i)), NAT: true}
			cs = append(cs, c)
			if _, err := tab.Add(c, t0); err != nil {
				t.Fatal(err)
			}
		}
		for _, c := range cs {
			got := tab.Closest(c.Key, DefaultK)
			if len(got) == 0 || got[0] != c {
				t.Fatalf("Closest(%v) = %v, want it first", c, got)
			}
		}
		if got := tab.Closest(randKey(r), DefaultK); len(got) != 0 {
			t.Fatalf("Closest of another key = %v, want no NAT contacts", got)
		}
		if got := tab.ClosestDirect(cs[0].Key, DefaultK); len(got) != 0 {
			t.Fatalf("ClosestDirect = %v, want nothing", got)
		}
	})
	t.Run("a_prefix_holding_most_gives_way_when_full", func(t *testing.T) {
		tab := NewTable(self, TableConfig{MaxNAT: 10})
		var sybils, honest []Contact
		for i := range 10 {
			c := Contact{Key: randKey(r), Addr: netip.AddrPortFrom(netip.MustParseAddr("20.6.6.6"), uint16(1024+i)), NAT: true}
			sybils = append(sybils, c)
			tab.Add(c, t0.Add(time.Duration(i)))
		}
		for i := range 5 {
			c := Contact{Key: randKey(r), Addr: publicAddr(i), NAT: true}
			honest = append(honest, c)
			if _, err := tab.Add(c, t0.Add(time.Minute)); err != nil {
				t.Fatalf("honest NAT contact %d: %v", i, err)
			}
		}
		more := Contact{Key: randKey(r), Addr: netip.MustParseAddrPort("20.6.6.6:9999"), NAT: true}
		if _, err := tab.Add(more, t0.Add(time.Hour)); !errors.Is(err, ErrNATFull) {
			t.Fatalf("a sixth Sybil with five in: %v, want ErrNATFull", err)
		}
		for i, c := range sybils {
			if _, in := tab.Get(c.Key); in != (i >= 5) {
				t.Errorf("Sybil %d in = %v, want only the five newest", i, in)
			}
		}
		for _, c := range honest {
			if _, in := tab.Get(c.Key); !in {
				t.Errorf("honest %v not kept", c)
			}
		}
	})
	t.Run("a_nat_contact_moving_prefix_is_counted_once", func(t *testing.T) {
		tab := NewTable(self, TableConfig{})
		c := Contact{Key: randKey(r), Addr: publicAddr(1), NAT: true}
		tab.Add(c, t0)
		c.Addr = publicAddr(2)
		tab.Add(c, t0)
		checkTable(t, tab)
		if got, _ := tab.Get(c.Key); got != c || tab.Len() != 1 {
			t.Fatalf("Get = %v, Len %d", got, tab.Len())
		}
	})
	t.Run("a_node_moving_behind_nat_leaves_its_bucket", func(t *testing.T) {
		tab := NewTable(self, TableConfig{})
		c := Contact{Key: randKey(r), Addr: publicAddr(1)}
		tab.Add(c, t0)
		c.NAT = true
		tab.Add(c, t0)
		if got := tab.ClosestDirect(c.Key, 1); len(got) != 0 {
			t.Fatalf("ClosestDirect = %v after the move", got)
		}
		if got, _ := tab.Get(c.Key); got != c || tab.Len() != 1 {
			t.Fatalf("Get = %v, Len %d", got, tab.Len())
		}
		c.NAT = false
		tab.Add(c, t0)
		if got := tab.Closest(c.Key, 2); len(got) != 1 || got[0] != c {
			t.Fatalf("Closest = %v after moving back", got)
		}
	})
}

// fullBucket returns a table whose bucket 0 holds K contacts added at t0+i.
func fullBucket(t *testing.T, r *rand.Rand) (*Table, []Contact) {
	t.Helper()
	tab := NewTable(randKey(r), TableConfig{Replacements: 2})
	var cs []Contact
	for i := range tab.K() {
		c := Contact{Key: keyInBucket(tab.Self(), 0, r), Addr: publicAddr(i)}
		if _, err := tab.Add(c, t0.Add(time.Duration(i)*time.Second)); err != nil {
			t.Fatal(err)
		}
		cs = append(cs, c)
	}
	return tab, cs
}

func TestEvictionPrefersLiveOldNodes(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	now := t0.Add(time.Hour)
	t.Run("full_bucket_asks_to_check_the_oldest_once", func(t *testing.T) {
		tab, cs := fullBucket(t, r)
		n1 := Contact{Key: keyInBucket(tab.Self(), 0, r), Addr: publicAddr(100)}
		check, err := tab.Add(n1, now)
		if !errors.Is(err, ErrBucketFull) || check != cs[0] {
			t.Fatalf("Add to full bucket = %v, %v; want %v, ErrBucketFull", check, err, cs[0])
		}
		n2 := Contact{Key: keyInBucket(tab.Self(), 0, r), Addr: publicAddr(101)}
		if check, err := tab.Add(n2, now); !errors.Is(err, ErrBucketFull) || !check.Key.IsZero() {
			t.Fatalf("second Add while checking = %v, %v; want no check, ErrBucketFull", check, err)
		}
		if _, in := tab.Get(n1.Key); in {
			t.Fatal("newcomer entered a full bucket")
		}
	})
	t.Run("fresh_oldest_is_not_checked", func(t *testing.T) {
		tab, _ := fullBucket(t, r)
		n := Contact{Key: keyInBucket(tab.Self(), 0, r), Addr: publicAddr(100)}
		soon := t0.Add(DefaultCheckAfter / 2)
		if check, err := tab.Add(n, soon); !errors.Is(err, ErrBucketFull) || !check.Key.IsZero() {
			t.Fatalf("Add with a fresh oldest entry = %v, %v; want no check, ErrBucketFull", check, err)
		}
	})
	t.Run("oldest_answers_and_stays", func(t *testing.T) {
		tab, cs := fullBucket(t, r)
		n := Contact{Key: keyInBucket(tab.Self(), 0, r), Addr: publicAddr(100)}
		check, _ := tab.Add(n, now)
		tab.Add(check, now) // the pong
		got := tab.Contacts()
		want := append(slices.Clone(cs[1:]), cs[0])
		if diff := cmp.Diff(want, got, equateAddrs); diff != "" {
			t.Fatalf("after the oldest answered (-want +got):\n%s", diff)
		}
		// The next newcomer checks the new oldest.
		check, _ = tab.Add(Contact{Key: keyInBucket(tab.Self(), 0, r), Addr: publicAddr(101)}, now)
		if check != cs[1] {
			t.Fatalf("next check = %v, want %v", check, cs[1])
		}
	})
	t.Run("oldest_silent_is_replaced_by_newest_replacement", func(t *testing.T) {
		tab, cs := fullBucket(t, r)
		var news []Contact
		for i := range 3 { // one more than the replacement cache holds
			c := Contact{Key: keyInBucket(tab.Self(), 0, r), Addr: publicAddr(100 + i)}
			tab.Add(c, now.Add(time.Duration(i)))
			news = append(news, c)
		}
		if !tab.Failed(cs[0].Key) {
			t.Fatal("Failed did not remove the silent oldest entry")
		}
		got := tab.Contacts()
		want := append(slices.Clone(cs[1:]), news[2])
		if diff := cmp.Diff(want, got, equateAddrs); diff != "" {
			t.Fatalf("after the oldest failed (-want +got):\n%s", diff)
		}
	})
	t.Run("failed_entry_without_replacement_stays_until_max_fails", func(t *testing.T) {
		tab, cs := fullBucket(t, r)
		for i := range MaxFails {
			removed := tab.Failed(cs[5].Key)
			if removed != (i == MaxFails-1) {
				t.Fatalf("failure %d: removed = %v", i+1, removed)
			}
		}
		// An answer in between resets the count.
		tab.Failed(cs[6].Key)
		tab.Add(cs[6], now)
		tab.Failed(cs[6].Key)
		tab.Failed(cs[6].Key)
		if _, in := tab.Get(cs[6].Key); !in {
			t.Fatal("an answer did not reset the failure count")
		}
	})
	t.Run("entry_that_failed_gives_way_at_once", func(t *testing.T) {
		tab, cs := fullBucket(t, r)
		tab.Failed(cs[3].Key)
		n := Contact{Key: keyInBucket(tab.Self(), 0, r), Addr: publicAddr(100)}
		if check, err := tab.Add(n, now); err != nil || !check.Key.IsZero() {
			t.Fatalf("Add = %v, %v; want the failed entry replaced without a check", check, err)
		}
		if _, in := tab.Get(cs[3].Key); in {
			t.Fatal("failed entry still in the table")
		}
	})
	t.Run("heard_refreshes_known_entries_only", func(t *testing.T) {
		tab, cs := fullBucket(t, r)
		stranger := Contact{Key: keyInBucket(tab.Self(), 1, r), Addr: publicAddr(100)}
		if tab.Heard(stranger.Key, stranger.Addr, now) || tab.Len() != len(cs) {
			t.Fatal("Heard admitted a stranger")
		}
		if tab.Heard(cs[0].Key, publicAddr(101), now) {
			t.Fatal("Heard accepted a known key at another address")
		}
		if !tab.Heard(cs[0].Key, cs[0].Addr, now) {
			t.Fatal("Heard did not refresh a known entry")
		}
		if got := tab.Contacts(); got[len(got)-1] != cs[0] {
			t.Fatalf("last entry = %v, want the refreshed %v", got[len(got)-1], cs[0])
		}
	})
	t.Run("refresh_moves_to_the_end_and_updates_address", func(t *testing.T) {
		tab, cs := fullBucket(t, r)
		moved := cs[0]
		moved.Addr = publicAddr(200)
		if _, err := tab.Add(moved, now); err != nil {
			t.Fatal(err)
		}
		got := tab.Contacts()
		if got[len(got)-1] != moved {
			t.Fatalf("last entry = %v, want %v", got[len(got)-1], moved)
		}
	})
}

func TestExpireNAT(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 10))
	tab := NewTable(randKey(r), TableConfig{})
	old := Contact{Key: randKey(r), Addr: publicAddr(1), NAT: true}
	fresh := Contact{Key: randKey(r), Addr: publicAddr(2), NAT: true}
	direct := Contact{Key: randKey(r), Addr: publicAddr(3)}
	tab.Add(old, t0)
	tab.Add(direct, t0)
	tab.Add(fresh, t0.Add(time.Minute))
	if n := tab.ExpireNAT(t0.Add(30 * time.Second)); n != 1 {
		t.Fatalf("ExpireNAT removed %d, want 1", n)
	}
	for _, c := range []struct {
		c    Contact
		want bool
	}{{old, false}, {fresh, true}, {direct, true}} {
		if _, in := tab.Get(c.c.Key); in != c.want {
			t.Errorf("%v in table = %v, want %v", c.c, in, c.want)
		}
	}
}

func TestRandomKeyAndStale(t *testing.T) {
	r := rand.New(rand.NewPCG(11, 12))
	tab := NewTable(randKey(r), TableConfig{})
	for i := range 256 {
		if got := commonPrefixLen(tab.Self(), tab.RandomKey(i, r)); got != i {
			t.Fatalf("RandomKey(%d) shares %d bits", i, got)
		}
	}
	for i := range 5 {
		tab.Add(Contact{Key: tab.RandomKey(i, r), Addr: publicAddr(i)}, t0)
	}
	tab.Touch(tab.RandomKey(2, r), t0.Add(time.Hour))
	if diff := cmp.Diff([]int{0, 1, 3, 4}, tab.Stale(t0.Add(time.Minute))); diff != "" {
		t.Fatalf("Stale (-want +got):\n%s", diff)
	}
}

func TestCommonPrefixLenMatchesBucketID(t *testing.T) {
	r := rand.New(rand.NewPCG(13, 14))
	for range 1000 {
		a := randKey(r)
		b := keyInBucket(a, r.IntN(256), r)
		if got, want := commonPrefixLen(a, b), key.BucketID(a, b)-1; got != want {
			t.Fatalf("commonPrefixLen = %d, key.BucketID-1 = %d", got, want)
		}
	}
}
