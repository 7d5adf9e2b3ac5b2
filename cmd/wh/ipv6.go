package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
)

// ipv6DisabledPath is where Linux says whether new interfaces get IPv6.
const ipv6DisabledPath = "/proc/sys/net/ipv6/conf/default/disable_ipv6"

// checkIPv6 reports, before the daemon starts, that a new interface would
// have IPv6 disabled and so could not take its ORCHID address, as in a
// Docker container, where IPv6 is off unless asked for.
func checkIPv6(iface string) error {
	b, err := os.ReadFile(ipv6DisabledPath)
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("interface %s needs IPv6 for its ORCHID address, and this kernel has none (ipv6.disable=1?)", iface)
	}
	if err != nil || strings.TrimSpace(string(b)) != "1" {
		return nil // unknown: let the interface's setup say
	}
	return fmt.Errorf("interface %s needs IPv6 for its ORCHID address, and it is disabled (%s is 1): "+
		"in a container, pass --sysctl net.ipv6.conf.all.disable_ipv6=0; elsewhere, sysctl -w net.ipv6.conf.default.disable_ipv6=0", iface, ipv6DisabledPath)
}
