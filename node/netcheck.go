package node

import "time"

// Netcheck is what `wh netcheck` prints: how others see this node.
type Netcheck struct {
	// Reflexive are the addresses other nodes see this node at.
	Reflexive []string `json:"reflexive"`
	// Mapping is public, endpoint-independent, endpoint-dependent or unknown.
	Mapping   string `json:"mapping"`
	BehindNAT bool   `json:"behind_nat"`
	// PortMapping is the protocol that mapped the node's port (upnp-igd2,
	// nat-pmp, pcp, ...), "" if none; External is the mapped address.
	PortMapping string `json:"port_mapping"`
	External    string `json:"external,omitempty"`
	// SeenBy lists each observation: which peer saw the node where.
	SeenBy []Seen `json:"seen_by"`
}

// Seen is one peer's observation of the node.
type Seen struct {
	Peer     string    `json:"peer"`
	Observed string    `json:"observed"`
	At       time.Time `json:"at"`
}

// Netcheck reports the node's view of its own reachability.
func (nd *Node) Netcheck() Netcheck {
	info := nd.det.Info()
	r := Netcheck{Reflexive: []string{}, Mapping: info.Mapping.String(), BehindNAT: nd.behindNAT(), SeenBy: []Seen{}}
	for _, a := range info.Reflexive {
		r.Reflexive = append(r.Reflexive, a.String())
	}
	if nd.pm != nil {
		if m, ok := nd.pm.Mapping(); ok {
			r.PortMapping, r.External = m.Protocol, m.External.String()
		}
	}
	for _, o := range nd.det.Observations() {
		r.SeenBy = append(r.SeenBy, Seen{Peer: o.Peer.String(), Observed: o.Observed.String(), At: o.At})
	}
	return r
}
