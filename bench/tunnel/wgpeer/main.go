// Command wgpeer is one end of a WireGuard tunnel for the tunnel benchmark: a kernel TUN
// with one peer, run either on stock wireguard-go (conn.StdNetBind) or on wh's tunnel
// package. It prints "ready" once the device is up and runs until SIGINT or SIGTERM.
//
//	wgpeer -mode std|wh -iface NAME -priv KEY -peer PUBKEY -endpoint IP:PORT \
//	       -addr 10.242.0.1/24 -allowed 10.242.0.2/32 [-port 51820] [-mtu 1280]
package main

import (
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/vishvananda/netlink"
	"golang.zx2c4.com/wireguard/conn"
	"golang.zx2c4.com/wireguard/device"
	"golang.zx2c4.com/wireguard/tun"

	"github.com/whnet/wh/key"
	"github.com/whnet/wh/tunnel"
)

type options struct {
	mode, iface       string
	priv              key.Private
	peer              key.Public
	endpoint          netip.AddrPort
	addrs, allowedIPs []netip.Prefix
	port              uint16
	mtu               int
}

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "wgpeer:", err)
		os.Exit(1)
	}
}

func run() error {
	var o options
	var priv, peer, endpoint, addrs, allowed string
	var port uint
	flag.StringVar(&o.mode, "mode", "wh", "std (stock wireguard-go) or wh (package tunnel)")
	flag.StringVar(&o.iface, "iface", "", "TUN interface name")
	flag.StringVar(&priv, "priv", "", "private key")
	flag.StringVar(&peer, "peer", "", "peer public key")
	flag.StringVar(&endpoint, "endpoint", "", "peer address ip:port")
	flag.StringVar(&addrs, "addr", "", "comma-separated interface addresses")
	flag.StringVar(&allowed, "allowed", "", "comma-separated allowed IPs of the peer")
	flag.UintVar(&port, "port", 51820, "UDP listen port")
	flag.IntVar(&o.mtu, "mtu", tunnel.DefaultMTU, "TUN MTU")
	flag.Parse()
	o.port = uint16(port)
	var err error
	if o.priv, err = key.ParsePrivate(priv); err != nil {
		return fmt.Errorf("-priv: %w", err)
	}
	if o.peer, err = key.ParsePublic(peer); err != nil {
		return fmt.Errorf("-peer: %w", err)
	}
	if o.endpoint, err = netip.ParseAddrPort(endpoint); err != nil {
		return fmt.Errorf("-endpoint: %w", err)
	}
	if o.addrs, err = prefixes(addrs); err != nil {
		return fmt.Errorf("-addr: %w", err)
	}
	if o.allowedIPs, err = prefixes(allowed); err != nil {
		return fmt.Errorf("-allowed: %w", err)
	}

	var closeFn func()
	switch o.mode {
	case "std":
		closeFn, err = startStd(o)
	case "wh":
		closeFn, err = startWH(o)
	default:
		err = fmt.Errorf("unknown -mode %q", o.mode)
	}
	if err != nil {
		return err
	}
	defer closeFn()
	fmt.Println("ready")
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	<-sig
	return nil
}

// startStd runs stock wireguard-go with conn.StdNetBind, configured as wg(8) would.
func startStd(o options) (func(), error) {
	tdev, err := tun.CreateTUN(o.iface, o.mtu)
	if err != nil {
		return nil, fmt.Errorf("create TUN: %w", err)
	}
	dev := device.NewDevice(tdev, conn.NewStdNetBind(), device.NewLogger(device.LogLevelError, o.iface+": "))
	var b strings.Builder
	fmt.Fprintf(&b, "private_key=%s\nlisten_port=%d\npublic_key=%s\nendpoint=%s\n",
		hex.EncodeToString(o.priv[:]), o.port, hex.EncodeToString(o.peer[:]), o.endpoint)
	for _, p := range o.allowedIPs {
		fmt.Fprintf(&b, "allowed_ip=%s\n", p)
	}
	err = dev.IpcSet(b.String())
	if err == nil {
		err = dev.Up()
	}
	if err == nil {
		err = configureLink(o.iface, o.addrs)
	}
	if err != nil {
		dev.Close()
		return nil, err
	}
	return dev.Close, nil
}

// startWH runs package tunnel as the wh daemon will: our Bind with a control demux,
// the peer's stable endpoint, a direct path to it.
func startWH(o options) (func(), error) {
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))
	bind := tunnel.NewBind(tunnel.BindOptions{
		IsControl: func(pkt []byte) bool { return len(pkt) > 0 && pkt[0] == 0xff },
		OnControl: func([]tunnel.Control) {},
		Logger:    log,
	})
	dev, err := tunnel.New(tunnel.Config{
		Name: o.iface, Private: o.priv, ListenPort: o.port, MTU: o.mtu,
		Addresses: o.addrs, Bind: bind, Logger: log,
	})
	if err != nil {
		return nil, err
	}
	err = errors.Join(
		dev.SetPeers([]tunnel.Peer{{Key: o.peer, AllowedIPs: o.allowedIPs}}),
		bind.SetPath(o.peer, tunnel.Path{Direct: o.endpoint}),
		bind.Learn(o.endpoint, o.peer),
	)
	if err != nil {
		dev.Close()
		return nil, err
	}
	return func() { dev.Close() }, nil
}

func configureLink(name string, addrs []netip.Prefix) error {
	link, err := netlink.LinkByName(name)
	if err != nil {
		return err
	}
	for _, a := range addrs {
		ipn := &net.IPNet{IP: a.Addr().AsSlice(), Mask: net.CIDRMask(a.Bits(), a.Addr().BitLen())}
		if err := netlink.AddrAdd(link, &netlink.Addr{IPNet: ipn}); err != nil {
			return fmt.Errorf("add address %s: %w", a, err)
		}
	}
	return netlink.LinkSetUp(link)
}

func prefixes(s string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for f := range strings.SplitSeq(s, ",") {
		if f == "" {
			continue
		}
		p, err := netip.ParsePrefix(f)
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, nil
}
