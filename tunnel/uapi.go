package tunnel

import (
	"bufio"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/whnet/wh/key"
)

// This file speaks wireguard-go's UAPI text format (https://www.wireguard.com/xplatform/):
// "key=value" lines; keys are lowercase hex, not base64; "public_key=" starts a peer.

// uapiBuilder builds an IpcSet request.
type uapiBuilder struct{ strings.Builder }

func (b *uapiBuilder) line(k, v string) {
	b.WriteString(k)
	b.WriteByte('=')
	b.WriteString(v)
	b.WriteByte('\n')
}

func (b *uapiBuilder) key(k string, v [32]byte) { b.line(k, hex.EncodeToString(v[:])) }

// PeerStatus is a peer as the device reports it.
type PeerStatus struct {
	Key           key.Public
	Endpoint      string // the peer endpoint's address as `wg show` prints it; "" if none
	AllowedIPs    []netip.Prefix
	Keepalive     time.Duration
	LastHandshake time.Time // zero: never
	RxBytes       uint64
	TxBytes       uint64
}

var errUAPI = errors.New("malformed UAPI get response")

// parsePeers parses the peers out of an IpcGet response. Device-level keys are skipped.
func parsePeers(s string) ([]PeerStatus, error) {
	var peers []PeerStatus
	var p *PeerStatus
	var sec, nsec int64
	flush := func() {
		if p != nil && (sec != 0 || nsec != 0) {
			p.LastHandshake = time.Unix(sec, nsec)
		}
		sec, nsec = 0, 0
	}
	sc := bufio.NewScanner(strings.NewReader(s))
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if line == "" {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			return nil, fmt.Errorf("%w: line %d: no '='", errUAPI, n)
		}
		if k == "public_key" {
			flush()
			peers = append(peers, PeerStatus{})
			p = &peers[len(peers)-1]
			b, err := hex.DecodeString(v)
			if err != nil || len(b) != key.Size {
				return nil, fmt.Errorf("%w: line %d: bad public_key", errUAPI, n)
			}
			copy(p.Key[:], b)
			continue
		}
		if p == nil {
			continue // device-level key
		}
		var err error
		switch k {
		case "endpoint":
			p.Endpoint = v
		case "allowed_ip":
			var pfx netip.Prefix
			pfx, err = netip.ParsePrefix(v)
			p.AllowedIPs = append(p.AllowedIPs, pfx)
		case "persistent_keepalive_interval":
			var secs uint64
			secs, err = strconv.ParseUint(v, 10, 16)
			p.Keepalive = time.Duration(secs) * time.Second
		case "last_handshake_time_sec":
			sec, err = strconv.ParseInt(v, 10, 64)
		case "last_handshake_time_nsec":
			nsec, err = strconv.ParseInt(v, 10, 64)
		case "rx_bytes":
			p.RxBytes, err = strconv.ParseUint(v, 10, 64)
		case "tx_bytes":
			p.TxBytes, err = strconv.ParseUint(v, 10, 64)
		}
		if err != nil {
			return nil, fmt.Errorf("%w: line %d: %s: %w", errUAPI, n, k, err)
		}
	}
	flush()
	return peers, sc.Err()
}

// canonPrefixes returns ps masked, sorted and without duplicates, so that equal sets of
// allowed IPs compare equal.
func canonPrefixes(ps []netip.Prefix) []netip.Prefix {
	out := make([]netip.Prefix, 0, len(ps))
	for _, p := range ps {
		out = append(out, p.Masked())
	}
	slices.SortFunc(out, func(a, b netip.Prefix) int {
		if c := a.Addr().Compare(b.Addr()); c != 0 {
			return c
		}
		return a.Bits() - b.Bits()
	})
	return slices.Compact(out)
}
