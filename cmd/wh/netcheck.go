package main

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/whnet/wh/node"
)

func newNetcheckCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "netcheck IFACE",
		Short: "Show how other nodes see this one: reflexive addresses, NAT mapping, port mapping",
		Long: `Show what the node has learned about its own reachability: the addresses
other DHT nodes see it at (from their pongs), whether its NAT maps
endpoint-independently (the same address towards every peer, so hole
punching works) or per destination, and which port-mapping protocol (UPnP
IGD, NAT-PMP, PCP) answered, if any.`,
		Example: "  wh netcheck wh-zW-1lBeQ\n  wh netcheck wh-zW-1lBeQ --json",
		Args:    exactArgs(1, "one interface"),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, cancel := context.WithTimeout(cmd.Context(), 5*time.Second)
			defer cancel()
			var r node.Netcheck
			if err := call(ctx, args[0], "netcheck", nil, &r); err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			if asJSON {
				e := json.NewEncoder(w)
				e.SetIndent("", "  ")
				return e.Encode(r)
			}
			nat := "no"
			if r.BehindNAT {
				nat = "yes"
			}
			fmt.Fprintf(w, "behind NAT:    %s\nmapping:       %s\n", nat, r.Mapping)
			for _, a := range r.Reflexive {
				fmt.Fprintf(w, "reflexive:     %s\n", a)
			}
			if r.PortMapping != "" {
				fmt.Fprintf(w, "port mapping:  %s %s\n", r.PortMapping, r.External)
			} else {
				fmt.Fprintf(w, "port mapping:  none\n")
			}
			for _, s := range r.SeenBy {
				fmt.Fprintf(w, "  seen by %s at %s (%s ago)\n", s.Peer, s.Observed, time.Since(s.At).Round(time.Second))
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print as JSON")
	return cmd
}
