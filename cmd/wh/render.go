package main

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/whnet/wh/node"
)

// renderStatus prints a node's state in WireHub's `wh show` layout:
//
//	interface wh-zW-1lBeQ network tutorial node node_a <NAT>
//	  public key: zW-1lBeQ7IkT6NW6hL_NsV4eOPOwJi_rt1vO-omOEmQ
//	  listening port: 62096, addresses: 10.0.42.2/24 2001:2f…/128, dns: hosts
//
//	  peers
//	  ●  node_b: 11.22.0.3:62096 (handshake 4s ago, ↓ 1.2 KiB ↑ 3.0 KiB)
//	  ○  node_c: relay via boot (both sides map per destination)
func renderStatus(w io.Writer, st node.Status, color bool, now time.Time) {
	var flags []string
	if st.NAT {
		flags = append(flags, "NAT")
	}
	if st.Router {
		flags = append(flags, "ROUTER")
	}
	if st.Userspace {
		flags = append(flags, "USERSPACE")
	}
	fmt.Fprintf(w, "interface %s", st.Interface)
	if st.Network != "" {
		fmt.Fprintf(w, " network %s", st.Network)
	}
	if st.Hostname != "" {
		fmt.Fprintf(w, " node %s", st.Hostname)
	}
	fmt.Fprintf(w, " <%s>\n", strings.Join(flags, ","))
	fmt.Fprintf(w, "  public key: %s\n", st.PublicKey)
	fmt.Fprintf(w, "  listening port: %d", st.ListenPort)
	if len(st.Addresses) > 0 {
		fmt.Fprintf(w, ", addresses: %s", strings.Join(st.Addresses, " "))
	} else {
		fmt.Fprintf(w, ", headless")
	}
	if st.DNS != "" {
		fmt.Fprintf(w, ", dns: %s", st.DNS)
	}
	if st.SOCKS5 != "" {
		fmt.Fprintf(w, ", socks5: %s", st.SOCKS5)
	}
	fmt.Fprintf(w, "\n  dht: %d contacts\n", st.DHT.Contacts)
	if len(st.Peers) == 0 {
		return
	}
	fmt.Fprintf(w, "\n  peers\n")
	for _, p := range st.Peers {
		fmt.Fprintf(w, "  %s\n", peerLine(p, color, now))
	}
}

func peerLine(p node.PeerStatus, color bool, now time.Time) string {
	glyph := "  "
	switch {
	case p.Role == "alias" && p.Path == node.PathOffline:
		glyph = "◌"
	case p.Path == node.PathDirect:
		glyph = "●"
	case p.Path == node.PathRelay:
		glyph = "○"
	case p.Path == node.PathConnecting:
		glyph = "◒"
	}
	name := p.Hostname
	if name == "" {
		name = p.IP
	}
	if name == "" {
		name = p.Key[:min(10, len(p.Key))]
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s  %s", glyph, name)
	switch p.Path {
	case node.PathDirect:
		fmt.Fprintf(&b, ": %s", p.Endpoint)
	case node.PathRelay:
		fmt.Fprintf(&b, ": relay via %s", p.Relay)
	case node.PathConnecting:
		b.WriteString(": connecting")
		if p.Endpoint != "" {
			fmt.Fprintf(&b, " %s", p.Endpoint)
		}
	case node.PathOffline:
		b.WriteString(": offline")
	}
	if p.Role == "router" {
		b.WriteString(" (master)")
	}
	var extra []string
	switch p.Alias {
	case "unclaimed":
		extra = append(extra, "alias, unclaimed")
	case "claimed":
		extra = append(extra, "claimed alias; in the config: "+p.TrustLine)
	}
	if p.Why != "" {
		extra = append(extra, p.Why)
	}
	if !p.LastHandshake.IsZero() {
		extra = append(extra, "handshake "+ago(now.Sub(p.LastHandshake)))
	}
	if p.RxBytes > 0 || p.TxBytes > 0 {
		extra = append(extra, fmt.Sprintf("↓ %s ↑ %s", bytesStr(p.RxBytes), bytesStr(p.TxBytes)))
	}
	if p.Bucket > 0 {
		extra = append(extra, fmt.Sprintf("bucket:%d", p.Bucket))
	}
	if len(extra) > 0 {
		fmt.Fprintf(&b, " (%s)", strings.Join(extra, ", "))
	}
	s := b.String()
	active := p.Path == node.PathDirect || p.Path == node.PathRelay
	if color && active {
		s = "\x1b[32m" + s + "\x1b[0m"
	}
	return s
}

func ago(d time.Duration) string {
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds ago", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm ago", int(d.Minutes()))
	default:
		return fmt.Sprintf("%dh ago", int(d.Hours()))
	}
}

func bytesStr(n uint64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	v, suf := float64(n)/unit, "KiB"
	for _, s := range []string{"MiB", "GiB", "TiB"} {
		if v < unit {
			break
		}
		v, suf = v/unit, s
	}
	return fmt.Sprintf("%.1f %s", v, suf)
}
