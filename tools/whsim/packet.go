package main

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"regexp"
	"testing"
	"testing/synctest"
	"time"

	"github.com/whnet/wh/dht"
	"github.com/whnet/wh/key"
	"github.com/whnet/wh/netsim"
	"github.com/whnet/wh/wire"
)

// runPacket runs the simulation over the wire protocol and netsim, in
// virtual time, and exits.
//
// Virtual time needs a synctest bubble, and a bubble needs a *testing.T:
// testing.Main provides one outside `go test`. It runs the one test below
// and exits; the test prints the report and then silences the "PASS" that
// testing.Main would add to stdout, so that -json prints one object.
func runPacket(o options) {
	test := func(t *testing.T) {
		var rep *report
		start := time.Now()
		synctest.Test(t, func(t *testing.T) {
			var err error
			if rep, err = packetSim(t, o); err != nil {
				t.Fatal(err)
			}
		})
		rep.WallSec = time.Since(start).Seconds()
		rep.print(os.Stdout, o.jsonOut)
		if devnull, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0); err == nil {
			os.Stdout = devnull
		}
	}
	match := func(pat, str string) (bool, error) { return regexp.MatchString(pat, str) }
	testing.Main(match, []testing.InternalTest{{Name: "whsim", F: test}}, nil, nil)
}

// packetSim builds and measures the network inside the bubble.
func packetSim(t *testing.T, o options) (*report, error) {
	const namespace = "whsim"
	r := rand.New(rand.NewPCG(o.seed, 0x9ac7))
	ctx := t.Context()
	rep := &report{Nodes: o.nodes, Build: o.build, Packet: true, Dead: o.dead, Loss: o.loss, Seed: o.seed, Find: o.find}
	wallStart := time.Now()
	inet := netsim.New(netsim.Options{Seed: int64(o.seed), Latency: o.latency, Jitter: o.jitter, Loss: o.loss})

	nodes := make([]*simNode, o.nodes)
	hosts := make([]*netsim.Host, o.nodes)
	done := make(chan struct{}, o.nodes)
	// Cleanups run last-in first-out: every node closes before this waits
	// for their Serve goroutines.
	t.Cleanup(func() {
		for range nodes {
			<-done
		}
	})
	for i := range nodes {
		priv, err := key.NewPrivate()
		if err != nil {
			return nil, err
		}
		addr := nodeAddr(i)
		hosts[i] = inet.AddHost(addr.Addr())
		pc, err := hosts[i].ListenUDP(addr.Port())
		if err != nil {
			return nil, err
		}
		conn := wire.NewConn(pc, wire.NewCodec(priv, namespace, 0))
		n := &simNode{Contact: dht.Contact{Key: priv.Public(), Addr: addr}}
		var boot []dht.Contact
		if o.build == "join" && i > 0 {
			boot = []dht.Contact{nodes[r.IntN(i)].Contact}
		}
		n.srv, err = dht.NewServer(dht.Config{Key: n.Key, Transport: conn, Boot: boot, Table: dht.TableConfig{Namespace: namespace}})
		if err != nil {
			return nil, err
		}
		go func() {
			dht.Serve(conn, n.srv)
			done <- struct{}{}
		}()
		t.Cleanup(func() {
			n.srv.Close()
			conn.Close()
		})
		nodes[i] = n
	}
	if err := build(ctx, o, nodes, r); err != nil {
		return nil, err
	}
	rep.BuildSec = time.Since(wallStart).Seconds() // virtual: how long joining took
	rep.AvgTable = avgTable(nodes)
	kill(nodes, o.dead, r, func(i int) {
		nodes[i].dead.Store(true)
		hosts[i].Kill()
	})
	start := time.Now()
	net := &memNet{nodes: nodes, byAddr: map[netip.AddrPort]*simNode{}}
	for _, n := range nodes {
		net.byAddr[n.Addr] = n
	}
	rep.summarize(measure(ctx, net, o, r))
	rep.LookupSec = time.Since(start).Seconds()
	if rep.Lookups == 0 {
		return nil, fmt.Errorf("no lookups ran")
	}
	return rep, nil
}
