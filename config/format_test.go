package config

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/whnet/wh/key"
)

func TestFormat(t *testing.T) {
	src := "# comment\n" +
		"boot " + keyBoot + " [::ffff:192.0.2.1]:0062096\n" +
		"subnet   10.0.42.0/24\n" +
		"name demo\n" +
		"trust 10.0.42.9 Node_A " + mustKey(t, keyA).Std() + "\n" +
		"router r " + keyB + " [2001:DB8::1]\n" +
		"alias " + keyC + "\n" +
		"peer p " + keyD + " h.example\n"
	want := "name demo\n" +
		"namespace public\n" +
		"workbit 8\n" +
		"subnet 10.0.42.0/24\n" +
		"\n" +
		"boot " + keyBoot + " 192.0.2.1:62096\n" +
		"trust Node_A 10.0.42.9 " + keyA + "\n" +
		"router r " + keyB + " [2001:db8::1]:62096\n" +
		"alias " + keyC + "\n" +
		"peer p " + keyD + " h.example:62096\n"
	n, err := Parse("net.conf", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, string(n.Format())); diff != "" {
		t.Errorf("Format (-want +got):\n%s", diff)
	}
	if got := string((&Network{Namespace: "public", Workbit: 8}).Format()); got != "namespace public\nworkbit 8\n" {
		t.Errorf("Format of an empty network = %q", got)
	}
}

// TestFormatParseProperty generates networks, gives them addresses with a
// naive reference allocator, and checks that Parse(Format(n)) == n: so
// Format writes what Parse reads, and Parse allocates as the reference
// does. Networks that do not fit their subnet must fail on the right line.
func TestFormatParseProperty(t *testing.T) {
	const runs = 1000
	rng := rand.New(rand.NewPCG(1, 2))
	var fits, overflows int
	for i := range runs {
		want, overflow := genNetwork(rng)
		text := want.Format()
		got, err := Parse("gen.conf", text)
		if overflow >= 0 {
			overflows++
			line := lineOf(text, want.Nodes[overflow].Key.String())
			wantErr := fmt.Sprintf("gen.conf:%d: %s: too many trusted nodes for subnet %s", line, want.Nodes[overflow].Role, want.Subnet)
			if err == nil || err.Error() != wantErr {
				t.Fatalf("run %d: Parse error %v, want %s\n%s", i, err, wantErr, text)
			}
			continue
		}
		fits++
		if err != nil {
			t.Fatalf("run %d: Parse(Format(n)): %v\n%s", i, err, text)
		}
		if !sameNetwork(want, got) {
			t.Fatalf("run %d: Parse(Format(n)) != n (-want +got):\n%s\n%s", i, cmp.Diff(want, got, cmpNet, ignoreLine), text)
		}
		if again := got.Format(); !bytes.Equal(again, text) {
			t.Fatalf("run %d: Format is not stable:\n%s\nthen\n%s", i, text, again)
		}
	}
	t.Logf("%d networks round-tripped, %d overflowed their subnet", fits, overflows)
	if fits < runs/2 || overflows == 0 {
		t.Errorf("generator is unbalanced: %d fit, %d overflow", fits, overflows)
	}
}

func lineOf(text []byte, word string) int {
	for i, l := range strings.Split(string(text), "\n") {
		if strings.Contains(l, word) {
			return i + 1
		}
	}
	return -1
}

var genSubnets = []string{"", "10.0.42.0/24", "10.0.42.0/29", "10.0.42.0/30", "172.16.0.0/12", "192.168.7.0/28", "fd00:42::/64", "fd00::/125", "2001:db8::/32"}

// genNetwork returns a random valid network with reference addresses, and
// the index of the first node that does not fit its subnet, or -1.
func genNetwork(rng *rand.Rand) (*Network, int) {
	n := &Network{
		Namespace: genWord(rng),
		Workbit:   rng.IntN(key.MaxWorkbit + 1),
	}
	if rng.IntN(2) == 0 {
		n.Name = genWord(rng)
		for isPublicSuffix(n.Name) { // "eg" is Egypt's: not a valid name
			n.Name = genWord(rng)
		}
	}
	if s := genSubnets[rng.IntN(len(genSubnets))]; s != "" {
		n.Subnet = netip.MustParsePrefix(s)
	}
	used := map[netip.Addr]bool{}
	for i := range rng.IntN(12) {
		nd := Node{Role: Role(1 + rng.IntN(5))}
		if nd.Trusted() && !n.Subnet.IsValid() {
			nd.Role = Peer
		}
		fill(rng, nd.Key[:])
		if rng.IntN(2) == 0 {
			nd.Hostname = fmt.Sprintf("%s-%d", genWord(rng), i)
		}
		if nd.Trusted() && rng.IntN(3) == 0 {
			// A static IP near the start of the subnet, where the
			// allocator works; never the network or last address.
			a := n.Subnet.Addr()
			for range 1 + rng.IntN(8) {
				a = a.Next()
			}
			if n.Subnet.Contains(a) && a != lastAddr(n.Subnet) && !used[a] {
				used[a] = true
				nd.IP, nd.Static = a, true
			}
		}
		if nd.Role == Boot || rng.IntN(2) == 0 {
			nd.Endpoint = genEndpoint(rng)
		}
		n.Nodes = append(n.Nodes, nd)
	}
	return n, referenceAllocate(n)
}

// referenceAllocate assigns addresses the slow, obvious way: walk the
// subnet's addresses one by one from the third (index 2), skipping static
// ones, and stop at the last address. It returns the index of the first
// trusted node that does not fit, or -1.
func referenceAllocate(n *Network) int {
	static := map[netip.Addr]bool{}
	for _, nd := range n.Nodes {
		if nd.Static {
			static[nd.IP] = true
		}
	}
	next := n.Subnet.Addr().Next().Next()
	for i := range n.Nodes {
		nd := &n.Nodes[i]
		if !nd.Trusted() || nd.Static {
			continue
		}
		for static[next] {
			next = next.Next()
		}
		if !n.Subnet.Contains(next) || next == lastAddr(n.Subnet) {
			return i
		}
		nd.IP, next = next, next.Next()
	}
	return -1
}

func genWord(rng *rand.Rand) string {
	const alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_"
	b := make([]byte, 1+rng.IntN(10))
	for i := range b {
		b[i] = alphabet[rng.IntN(len(alphabet))]
	}
	return string(b)
}

func genEndpoint(rng *rand.Rand) Endpoint {
	port := uint16(1 + rng.IntN(65535))
	switch rng.IntN(3) {
	case 0:
		var b [4]byte
		fill(rng, b[:])
		b[0] = 1 + b[0]%223 // unicast, not 0.x.x.x
		return Endpoint{netip.AddrFrom4(b).String(), port}
	case 1:
		var b [16]byte
		fill(rng, b[:])
		b[0] = 0x20
		return Endpoint{netip.AddrFrom16(b).String(), port}
	}
	return Endpoint{strings.ToLower(genWord(rng)) + ".example" + strconv.Itoa(rng.IntN(9)) + "x", port}
}

func fill(rng *rand.Rand, b []byte) {
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
}

// sameNetwork reports whether a and b are equal but for Node.Line. It is
// cmp.Equal(a, b, cmpNet, ignoreLine), fast enough for many runs.
func sameNetwork(a, b *Network) bool {
	if a.Name != b.Name || a.Namespace != b.Namespace || a.Workbit != b.Workbit || a.Subnet != b.Subnet || len(a.Nodes) != len(b.Nodes) {
		return false
	}
	for i, nd := range a.Nodes {
		nd.Line = b.Nodes[i].Line
		if nd != b.Nodes[i] {
			return false
		}
	}
	return true
}

// BenchmarkParse parses a network of 1000 trusted nodes, a quarter of them
// static.
func BenchmarkParse(b *testing.B) {
	rng := rand.New(rand.NewPCG(3, 4))
	var src strings.Builder
	src.WriteString("name bench\nsubnet 10.1.0.0/16\n")
	for i := range 1000 {
		var k key.Public
		fill(rng, k[:])
		static := ""
		if i%4 == 0 {
			static = fmt.Sprintf(" 10.1.%d.%d", 100+i/256, i%256)
		}
		fmt.Fprintf(&src, "trust host-%d%s %s 192.0.2.%d:%d\n", i, static, k, i%250+1, 1000+i)
	}
	in := []byte(src.String())
	b.SetBytes(int64(len(in)))
	for b.Loop() {
		if _, err := Parse("bench.conf", in); err != nil {
			b.Fatal(err)
		}
	}
}
