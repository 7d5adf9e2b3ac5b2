package config

import (
	"strconv"
	"strings"
	"time"
)

// Format returns n as canonical config text: the header (name, namespace,
// workbit, subnet), a blank line, then one line per node in n's order, which
// must be kept since it decides assigned IPs. Keys are written in URL-safe
// base64, endpoints in canonical form, and IPs only for Static nodes. For
// any n returned by Parse, Parse(Format(n)) equals n except for Node.Line.
func (n *Network) Format() []byte {
	var b strings.Builder
	if n.Name != "" {
		b.WriteString("name " + n.Name + "\n")
	}
	b.WriteString("namespace " + n.Namespace + "\n")
	b.WriteString("workbit " + strconv.Itoa(n.Workbit) + "\n")
	if n.Subnet.IsValid() {
		b.WriteString("subnet " + n.Subnet.String() + "\n")
	}
	if len(n.Nodes) > 0 {
		b.WriteString("\n")
	}
	for _, nd := range n.Nodes {
		b.WriteString(nd.Role.String())
		if nd.Hostname != "" {
			b.WriteString(" " + nd.Hostname)
		}
		if nd.Static {
			b.WriteString(" " + nd.IP.String())
		}
		b.WriteString(" " + nd.Key.String())
		if !nd.Endpoint.IsZero() {
			b.WriteString(" " + nd.Endpoint.String())
		}
		if !nd.Expires.IsZero() {
			b.WriteString(" expires " + nd.Expires.Format(time.RFC3339Nano))
		}
		b.WriteString("\n")
	}
	return []byte(b.String())
}
