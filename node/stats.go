package node

import (
	"github.com/whnet/wh/relay"
	"github.com/whnet/wh/tunnel"
	"github.com/whnet/wh/wire"
)

// Counters are the node's packet counters, for `wh show IFACE stats`:
// what the UDP port carried, what the control protocol dropped and why,
// and what was relayed, for others and for us.
type Counters struct {
	Port        tunnel.Stats      `json:"port"`
	Control     wire.Stats        `json:"control"`
	RelayServer relay.ServerStats `json:"relay_server"`
	RelayClient relay.ClientStats `json:"relay_client"`
}

// Counters returns the node's packet counters.
func (nd *Node) Counters() Counters {
	return Counters{
		Port:        nd.bind.Stats(),
		Control:     nd.codec.Stats(),
		RelayServer: nd.relayServer.Stats(),
		RelayClient: nd.relayClient.Stats(),
	}
}
