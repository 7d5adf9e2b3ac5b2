package tunnel

import (
	"encoding/hex"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/whnet/wh/key"
)

// formatPeers writes peers as wireguard-go's IpcGet does.
func formatPeers(ps []PeerStatus) string {
	var b strings.Builder
	b.WriteString("private_key=" + strings.Repeat("ab", 32) + "\nlisten_port=51820\n")
	for _, p := range ps {
		fmt.Fprintf(&b, "public_key=%s\npreshared_key=%s\nprotocol_version=1\n", hex.EncodeToString(p.Key[:]), strings.Repeat("00", 32))
		if p.Endpoint != "" {
			fmt.Fprintf(&b, "endpoint=%s\n", p.Endpoint)
		}
		var sec, nsec int64
		if !p.LastHandshake.IsZero() {
			sec, nsec = p.LastHandshake.Unix(), int64(p.LastHandshake.Nanosecond())
		}
		fmt.Fprintf(&b, "last_handshake_time_sec=%d\nlast_handshake_time_nsec=%d\n", sec, nsec)
		fmt.Fprintf(&b, "tx_bytes=%d\nrx_bytes=%d\npersistent_keepalive_interval=%d\n", p.TxBytes, p.RxBytes, p.Keepalive/time.Second)
		for _, a := range p.AllowedIPs {
			fmt.Fprintf(&b, "allowed_ip=%s\n", a)
		}
	}
	return b.String()
}

var peersCmp = cmp.Options{cmpopts.EquateEmpty(), cmp.Comparer(func(a, b netip.Prefix) bool { return a == b })}

func TestParsePeers(t *testing.T) {
	var k1, k2 key.Public
	k1[0], k2[31] = 1, 2
	peers := []PeerStatus{
		{
			Key:           k1,
			Endpoint:      "[100::102:304:506:708]:2314",
			AllowedIPs:    []netip.Prefix{netip.MustParsePrefix("10.0.0.2/32"), netip.MustParsePrefix("2001:20::1/128")},
			Keepalive:     25 * time.Second,
			LastHandshake: time.Unix(1700000000, 123456789),
			RxBytes:       1 << 40,
			TxBytes:       7,
		},
		{Key: k2},
	}
	got, err := parsePeers(formatPeers(peers))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(peers, got, peersCmp); diff != "" {
		t.Errorf("parsePeers (-want +got):\n%s", diff)
	}

	for _, bad := range []string{
		"public_key=zz\n",
		"public_key=" + strings.Repeat("00", 31) + "\n",
		"public_key=" + strings.Repeat("00", 32) + "\nrx_bytes=-1\n",
		"public_key=" + strings.Repeat("00", 32) + "\nallowed_ip=10.0.0.0\n",
		"public_key=" + strings.Repeat("00", 32) + "\nno equals sign\n",
	} {
		if _, err := parsePeers(bad); err == nil {
			t.Errorf("parsePeers(%q) succeeded", bad)
		}
	}
}

func FuzzParsePeers(f *testing.F) {
	var k key.Public
	k[3] = 9
	f.Add(formatPeers([]PeerStatus{{Key: k, AllowedIPs: []netip.Prefix{netip.MustParsePrefix("10.1.0.0/16")}, LastHandshake: time.Unix(5, 6)}}))
	f.Add("")
	f.Add("listen_port=1\n")
	f.Add("public_key=" + strings.Repeat("00", 32) + "\nlast_handshake_time_nsec=-1\n")
	f.Fuzz(func(t *testing.T, s string) {
		ps, err := parsePeers(s)
		if err != nil {
			return
		}
		for i := range ps {
			ps[i].Endpoint = strings.TrimRight(ps[i].Endpoint, "\r\n") // not representable
		}
		again, err := parsePeers(formatPeers(ps))
		if err != nil {
			t.Fatalf("re-parse: %v\n%s", err, formatPeers(ps))
		}
		if diff := cmp.Diff(ps, again, peersCmp, cmpopts.EquateApproxTime(0)); diff != "" {
			t.Fatalf("round trip (-first +second):\n%s", diff)
		}
	})
}
