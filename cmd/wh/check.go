package main

import (
	"encoding/json"
	"fmt"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/whnet/wh/config"
	"github.com/whnet/wh/orchid"
)

// checkedNetwork is what `wh check --json` prints. Absent values are empty
// strings, so that scripts need no null checks.
type checkedNetwork struct {
	Name      string        `json:"name"`
	Namespace string        `json:"namespace"`
	Workbit   int           `json:"workbit"`
	Subnet    string        `json:"subnet"`
	Nodes     []checkedNode `json:"nodes"`
}

type checkedNode struct {
	Hostname string `json:"hostname"`
	Key      string `json:"key"`
	Role     string `json:"role"`
	IP       string `json:"ip"`
	IPv6     string `json:"ipv6"`
	Endpoint string `json:"endpoint"`
}

func describeNetwork(n *config.Network) checkedNetwork {
	out := checkedNetwork{
		Name:      n.Name,
		Namespace: n.Namespace,
		Workbit:   n.Workbit,
		Nodes:     []checkedNode{},
	}
	if n.Subnet.IsValid() {
		out.Subnet = n.Subnet.String()
	}
	for _, nd := range n.Nodes {
		c := checkedNode{
			Hostname: nd.Hostname,
			Key:      nd.Key.String(),
			Role:     nd.Role.String(),
		}
		if nd.IP.IsValid() {
			c.IP = nd.IP.String()
		}
		// Only trusted nodes have overlay addresses on the interface;
		// the ORCHID of a boot or peer node would route nowhere.
		if nd.Trusted() {
			c.IPv6 = orchid.Addr(nd.Key, n.Namespace).String()
		}
		if !nd.Endpoint.IsZero() {
			c.Endpoint = nd.Endpoint.String()
		}
		out.Nodes = append(out.Nodes, c)
	}
	return out
}

func newCheckCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "check CONFIG",
		Short: "Validate a network config and print the resolved network",
		Long: `Validate a network config, as nginx -t does, and print the network it
describes: name, namespace, workbit, subnet, and for each node its
hostname, key, role, overlay address, ORCHID IPv6 address and endpoint.

Exit status: 0 if the config is valid, 1 if it is not (the error, with
file and line, on stderr and nothing on stdout), 2 on a usage error.`,
		Example: `  wh check ./examples/net.conf
  wh check ./net.conf --json | jq '.nodes[] | .hostname + " " + .ip'`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) != 1 {
				return usagef("check: want one config file, got %d arguments", len(args))
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			n, err := config.Load(args[0])
			if err != nil {
				return err
			}
			d := describeNetwork(n)
			w := cmd.OutOrStdout()
			if asJSON {
				e := json.NewEncoder(w)
				e.SetIndent("", "  ")
				return e.Encode(d)
			}
			opt := func(s string) string {
				if s == "" {
					return "-"
				}
				return s
			}
			fmt.Fprintf(w, "network    %s\nnamespace  %s\nworkbit    %d\nsubnet     %s\n\n",
				opt(d.Name), d.Namespace, d.Workbit, opt(d.Subnet))
			tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "HOSTNAME\tROLE\tKEY\tIP\tIPV6\tENDPOINT")
			for _, c := range d.Nodes {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n",
					opt(c.Hostname), c.Role, c.Key, opt(c.IP), opt(c.IPv6), opt(c.Endpoint))
			}
			return tw.Flush()
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the network as JSON")
	return cmd
}
