package orchid

import (
	"math/big"
	"net/netip"
	"strings"
	"testing"

	"github.com/whnet/wh/key"
	"golang.org/x/crypto/blake2b"
)

func mustPublic(t testing.TB, s string) key.Public {
	t.Helper()
	p, err := key.ParsePublic(s)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// rfc7343 computes an ORCHIDv2 literally, as RFC 7343 section 2 writes it,
// on bit strings held in big integers:
//
//	Hash Input := Context ID | Input
//	Hash       := Hash_function( Hash Input )
//	ORCHID     := Prefix | OGA ID | Encode_96( Hash )
//
// where Encode_96 extracts the middle 96 bits of its argument.
func rfc7343(contextIDHex string, input []byte, prefix28, ogaID uint64) netip.Addr {
	ctx, _ := new(big.Int).SetString(contextIDHex, 16)
	hashInput := append(ctx.FillBytes(make([]byte, 16)), input...)

	digest := blake2b.Sum256(hashInput)
	hash := new(big.Int).SetBytes(digest[:]) // a 256-bit string
	hashBits := 256

	// Encode_96: as many bits after the 96 as before them.
	drop := (hashBits - 96) / 2
	mask := new(big.Int).Sub(new(big.Int).Lsh(big.NewInt(1), 96), big.NewInt(1))
	encoded := new(big.Int).And(new(big.Int).Rsh(hash, uint(drop)), mask)

	orchid := new(big.Int).SetUint64(prefix28)                 // 28 bits
	orchid.Lsh(orchid, 4).Or(orchid, big.NewInt(int64(ogaID))) // 32 bits
	orchid.Lsh(orchid, 96).Or(orchid, encoded)                 // 128 bits

	return netip.AddrFrom16([16]byte(orchid.FillBytes(make([]byte, 16))))
}

// referenceAddr is Addr through rfc7343, with the choices of the package
// documentation written out again.
func referenceAddr(pub key.Public, namespace string) netip.Addr {
	input := append([]byte(namespace), pub[:]...)
	return rfc7343("8bbfde75ff40677c7ba388d5da401eea", input, 0x2001002, 0xf)
}

func TestContextID(t *testing.T) {
	h := blake2b.Sum256([]byte("wh ORCHID context v1"))
	if string(h[:16]) != contextID {
		t.Fatalf("contextID = %x, want BLAKE2b-256(\"wh ORCHID context v1\")[:16] = %x", contextID, h[:16])
	}
}

func TestVectors(t *testing.T) {
	tests := []struct {
		name, key, namespace, want string
	}{
		{"bootstrap_public", "P17zMwXJFbBdJEn05RFIMADw9TX5_m2xgf31OgNKX3w", "public", "2001:2f:aae3:4788:f887:83cc:6a20:d579"},
		{"node_a_public", "zW-1lBeQ7IkT6NW6hL_NsV4eOPOwJi_rt1vO-omOEmQ", "public", "2001:2f:bee:770c:4603:d4d0:5aff:6dbc"},
		{"node_b_public", "g878Bf9ZDc4IzFSUhWFTO1VYFVmHD5XfvEsVn83Dsho", "public", "2001:2f:1ca7:fa3d:4345:da16:3c2b:6e96"},
		{"pubkey_vector_public", "OgVwBkEoLpIBTSY2CMUbqyD9he19cOD2kpAEjYQQpS0", "public", "2001:2f:de21:88a6:e75:1f5d:2052:6d7d"},
		{"bootstrap_empty_namespace", "P17zMwXJFbBdJEn05RFIMADw9TX5_m2xgf31OgNKX3w", "", "2001:2f:42d4:62f3:be65:55e6:37d6:aa00"},
		{"bootstrap_test", "P17zMwXJFbBdJEn05RFIMADw9TX5_m2xgf31OgNKX3w", "test", "2001:2f:c9b9:4aae:2779:f5ad:834e:a0a9"},
		{"zero_key_public", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", "public", "2001:2f:3c58:97c6:e3dd:549e:7bb1:26e6"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			pub := mustPublic(t, tc.key)
			got := Addr(pub, tc.namespace)
			if got.String() != tc.want {
				t.Errorf("Addr = %s, want %s", got, tc.want)
			}
			if ref := referenceAddr(pub, tc.namespace); got != ref {
				t.Errorf("Addr = %s, RFC 7343 reference %s", got, ref)
			}
			if !Contains(got) {
				t.Errorf("Contains(%s) = false", got)
			}
		})
	}
}

// TestWireHubDiffers pins why wh's addresses are not WireHub's: WIREHUB.md
// §11's construction, rebuilt here, gives its published vectors, outside
// Prefix.
func TestWireHubDiffers(t *testing.T) {
	wirehub := func(pub key.Public, ns string) netip.Addr {
		h := blake2b.Sum256(append([]byte(ns), pub[:]...))
		var a [16]byte
		copy(a[:], h[:16])
		a[0], a[1], a[2] = 0x20, 0x01, h[2]&0x0f|0x10
		return netip.AddrFrom16(a)
	}
	tests := []struct{ key, want string }{
		{"P17zMwXJFbBdJEn05RFIMADw9TX5_m2xgf31OgNKX3w", "2001:1243:2dac:bb06:bd81:9846:256b:410b"},
		{"zW-1lBeQ7IkT6NW6hL_NsV4eOPOwJi_rt1vO-omOEmQ", "2001:1075:b63:9ef6:5070:2e62:2de:e917"},
		{"g878Bf9ZDc4IzFSUhWFTO1VYFVmHD5XfvEsVn83Dsho", "2001:170c:721c:5351:1b6c:ade4:6f19:4366"},
	}
	for _, tc := range tests {
		t.Run(tc.key[:8], func(t *testing.T) {
			pub := mustPublic(t, tc.key)
			old := wirehub(pub, "public")
			if old.String() != tc.want {
				t.Fatalf("WireHub's construction gives %s, WIREHUB.md §11 says %s", old, tc.want)
			}
			if Contains(old) || Prefix.Contains(old) {
				t.Errorf("WireHub's %s is inside %s", old, Prefix)
			}
			if Addr(pub, "public") == old {
				t.Errorf("wh's address equals WireHub's")
			}
		})
	}
}

func TestAddrProperties(t *testing.T) {
	a := mustPublic(t, "P17zMwXJFbBdJEn05RFIMADw9TX5_m2xgf31OgNKX3w")
	b := mustPublic(t, "zW-1lBeQ7IkT6NW6hL_NsV4eOPOwJi_rt1vO-omOEmQ")
	t.Run("deterministic", func(t *testing.T) {
		if Addr(a, "public") != Addr(a, "public") {
			t.Error("same input, different addresses")
		}
	})
	t.Run("namespace_matters", func(t *testing.T) {
		seen := map[netip.Addr]string{}
		for _, ns := range []string{"", "public", "Public", "test", "public\x00", strings.Repeat("n", 200)} {
			addr := Addr(a, ns)
			if prev, dup := seen[addr]; dup {
				t.Errorf("namespaces %q and %q give %s", prev, ns, addr)
			}
			seen[addr] = ns
		}
	})
	t.Run("key_matters", func(t *testing.T) {
		if Addr(a, "public") == Addr(b, "public") {
			t.Error("different keys, same address")
		}
	})
	t.Run("is_ipv6", func(t *testing.T) {
		addr := Addr(a, "public")
		if !addr.Is6() || addr.Is4In6() || addr.Zone() != "" {
			t.Errorf("%s is not a plain IPv6 address", addr)
		}
	})
}

func TestContains(t *testing.T) {
	tests := []struct {
		addr string
		want bool
	}{
		{"2001:2f::1", true},
		{"2001:2f:ffff:ffff:ffff:ffff:ffff:ffff", true},
		{"2001:20::1", false},                              // ORCHIDv2, another OGA ID
		{"2001:21:1::1", false},                            // ORCHIDv2, HIT suite 1
		{"2001:3f::1", false},                              // outside the prefix
		{"2001:1f::1", false},                              // ORCHIDv1's prefix
		{"2001:1243:2dac:bb06:bd81:9846:256b:410b", false}, // WireHub's
		{"1.2.3.4", false},
		{"::ffff:1.2.3.4", false},
		{"2001:2f::1%eth0", false}, // zoned addresses are never in a prefix
	}
	for _, tc := range tests {
		t.Run(tc.addr, func(t *testing.T) {
			if got := Contains(netip.MustParseAddr(tc.addr)); got != tc.want {
				t.Errorf("Contains(%s) = %v, want %v", tc.addr, got, tc.want)
			}
		})
	}
	if Contains(netip.Addr{}) {
		t.Error("Contains(zero Addr) = true")
	}
}

func FuzzAddr(f *testing.F) {
	f.Add("public", []byte("P17zMwXJFbBdJEn05RFIMADw9TX5"))
	f.Add("", make([]byte, key.Size))
	f.Add(strings.Repeat("x", 300), []byte{0xff})
	f.Fuzz(func(t *testing.T, namespace string, keyBytes []byte) {
		var pub key.Public
		copy(pub[:], keyBytes)
		addr := Addr(pub, namespace)
		if !Contains(addr) || !Prefix.Contains(addr) {
			t.Fatalf("Addr(%x, %q) = %s, not a wh ORCHID", pub, namespace, addr)
		}
		if b := addr.As16(); b[3]&0x0f != OGAID {
			t.Fatalf("OGA ID of %s = %x", addr, b[3]&0x0f)
		}
		if ref := referenceAddr(pub, namespace); addr != ref {
			t.Fatalf("Addr(%x, %q) = %s, RFC 7343 reference %s", pub, namespace, addr, ref)
		}
		// Round trip through text, as the address is shown and configured.
		if back := netip.MustParseAddr(addr.String()); back != addr {
			t.Fatalf("%s does not parse back", addr)
		}
	})
}
