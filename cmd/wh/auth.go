package main

import (
	"context"
	"fmt"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/whnet/wh/node"
)

func newAuthCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "auth IFACE HOST|KEY ALIAS.sk",
		Short: "Claim an alias slot at a member with the alias's private key",
		Long: `Prove the alias private key in ALIAS.sk to the member HOST (a hostname of
the config or a key) and claim the alias's slot there for this node's key.
The daemon reads the key file itself. The first claimant gets the slot;
the member keeps the claim across reloads and restarts.

Prints the slot's name and address and exits 0 when the member accepts;
prints the member's reason and exits 1 when it refuses or never answers.`,
		Example: "  wh auth wh-zW-1lBeQ node_a alias.sk",
		Args:    exactArgs(3, "an interface, a member and an alias key file"),
		RunE: func(cmd *cobra.Command, args []string) error {
			file, err := filepath.Abs(args[2]) // the daemon's directory is not ours
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), 60*time.Second)
			defer cancel()
			var res node.ClaimResult
			if err := call(ctx, args[0], "auth", []string{args[1], file}, &res); err != nil {
				return err
			}
			if !res.Accepted {
				return fmt.Errorf("%s refused: %s", res.Member, res.Reason)
			}
			name := res.Slot
			if name == "" {
				name = "(alias not in this node's config)"
			}
			addr := "-"
			if res.IP.IsValid() {
				addr = res.IP.String()
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s accepted: %s %s\n", res.Member, name, addr)
			return nil
		},
	}
}
