package wire

import (
	"testing"
)

// looksLikeWireGuard is wireguard-go's test for its own messages: a
// little-endian uint32 type from 1 to 4 (device/receive.go).
func looksLikeWireGuard(b []byte) bool {
	return len(b) >= 4 && b[0] >= 1 && b[0] <= 4 && b[1] == 0 && b[2] == 0 && b[3] == 0
}

func TestClassify(t *testing.T) {
	c := NewCodec(newPrivate(t), testNamespace, 0)
	wg := func(typ byte, size int) []byte {
		b := make([]byte, size)
		b[0] = typ
		return b
	}
	tests := []struct {
		name      string
		pkt       []byte
		control   bool
		wireguard bool
	}{
		{"wg_initiation", wg(1, 148), false, true},
		{"wg_response", wg(2, 92), false, true},
		{"wg_cookie", wg(3, 64), false, true},
		{"wg_data", wg(4, 32), false, true},
		{"wg_keepalive", wg(4, 32), false, true},
		{"empty", nil, false, false},
		{"magic_prefix_short", []byte(Magic[:3]), false, false},
		{"magic_only", []byte(Magic), true, false},
		{"wirehub_original", []byte{0xff, 0, 0, 0, 1}, false, false},
		{"magic_other_version", append([]byte(Magic), 9), true, false},
	}
	for _, m := range validMessages {
		tests = append(tests, struct {
			name      string
			pkt       []byte
			control   bool
			wireguard bool
		}{"envelope_" + m.name, seal(t, c, c.Public(), m.m), true, false})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := IsControl(tt.pkt); got != tt.control {
				t.Errorf("IsControl = %v, want %v", got, tt.control)
			}
			if got := looksLikeWireGuard(tt.pkt); got != tt.wireguard {
				t.Errorf("looks like WireGuard = %v, want %v", got, tt.wireguard)
			}
		})
	}
}
