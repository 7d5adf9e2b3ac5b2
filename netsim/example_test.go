package netsim_test

import (
	"fmt"
	"net/netip"

	"github.com/whnet/wh/netsim"
)

// Two hosts behind restricted NATs punch a hole with the help of a
// rendezvous server that tells each the other's external endpoint.
func Example_holePunch() {
	n := netsim.New(netsim.Options{Seed: 1})
	rendezvous, _ := n.AddHost(netip.MustParseAddr("203.0.113.1")).ListenUDP(7)
	natA := n.AddNAT(netsim.Restricted, netip.MustParseAddr("198.51.100.1"), netip.MustParsePrefix("192.168.1.0/24"))
	natB := n.AddNAT(netsim.Restricted, netip.MustParseAddr("198.51.100.2"), netip.MustParsePrefix("192.168.1.0/24"))
	a, _ := natA.AddHost(netip.MustParseAddr("192.168.1.10")).ListenUDP(4000)
	b, _ := natB.AddHost(netip.MustParseAddr("192.168.1.10")).ListenUDP(5000)
	buf := make([]byte, 100)

	// Each registers with the rendezvous server, which sees its endpoint.
	a.WriteToUDPAddrPort([]byte("hello"), rendezvous.LocalAddrPort())
	_, extA, _ := rendezvous.ReadFromUDPAddrPort(buf)
	b.WriteToUDPAddrPort([]byte("hello"), rendezvous.LocalAddrPort())
	_, extB, _ := rendezvous.ReadFromUDPAddrPort(buf)
	fmt.Println("a is", extA, "and b is", extB)

	// a's first probe opens a's NAT to b, but b's NAT drops it.
	a.WriteToUDPAddrPort([]byte("probe"), extB)
	fmt.Println("filtered:", n.Stats().Filtered)

	// b's probe gets through a's NAT, and now a's answer through b's.
	b.WriteToUDPAddrPort([]byte("probe"), extA)
	nr, from, _ := a.ReadFromUDPAddrPort(buf)
	fmt.Printf("a got %q from %v\n", buf[:nr], from)
	a.WriteToUDPAddrPort([]byte("ack"), from)
	nr, from, _ = b.ReadFromUDPAddrPort(buf)
	fmt.Printf("b got %q from %v\n", buf[:nr], from)

	// Output:
	// a is 198.51.100.1:4000 and b is 198.51.100.2:5000
	// filtered: 1
	// a got "probe" from 198.51.100.2:5000
	// b got "ack" from 198.51.100.1:4000
}
