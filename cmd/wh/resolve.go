package main

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/whnet/wh/node"
)

func newResolveCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "resolve NAME|ADDRESS",
		Short: "Print the addresses of a hostname, or the hostname of an address",
		Long: `Ask every running network for NAME (a hostname, bare or as HOST.NETWORK)
and print its overlay addresses, IPv4 then ORCHID IPv6; or, for an overlay
ADDRESS, print its hostname. Exit status 1 when no network knows it.`,
		Example: "  wh resolve node_b\n  wh resolve node_b.demo\n  wh resolve 10.0.42.3",
		Args:    exactArgs(1, "one name or address"),
		RunE: func(cmd *cobra.Command, args []string) error {
			ifs, err := runningInterfaces()
			if err != nil {
				return err
			}
			if len(ifs) == 0 {
				return fmt.Errorf("no network is running (see `wh up --help`)")
			}
			found := false
			w := cmd.OutOrStdout()
			for _, i := range ifs {
				var r node.ResolveResult
				ctx, cancel := context.WithTimeout(cmd.Context(), 3*time.Second)
				err := call(ctx, i, "resolve", args, &r)
				cancel()
				if err != nil {
					continue
				}
				found = true
				if r.IP == "" && r.IPv6 == "" {
					fmt.Fprintln(w, r.Name)
					continue
				}
				for _, a := range []string{r.IP, r.IPv6} {
					if a != "" {
						fmt.Fprintln(w, a)
					}
				}
			}
			if !found {
				return fmt.Errorf("%s: unknown to every running network", args[0])
			}
			return nil
		},
	}
}
