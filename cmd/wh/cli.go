package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"github.com/spf13/cobra"
)

// Exit statuses, as documented in `wh --help`.
const (
	exitOK      = 0
	exitFailure = 1 // invalid input, not found, the daemon said no
	exitUsage   = 2 // the command line itself is wrong
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "devel"

// stdio is the I/O a command tree reads and writes; tests pass buffers.
type stdio struct {
	In       io.Reader
	Out, Err io.Writer
	// IsTerminal reports whether Err is a terminal (for progress output).
	// Nil means "not a terminal".
	IsTerminal func() bool
}

// usageError marks an error in the command line (exit status 2).
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func usagef(format string, a ...any) error { return usageError{fmt.Sprintf(format, a...)} }

// run executes the command line args and returns the process exit status.
func run(ctx context.Context, args []string, io stdio) int {
	root := newRootCmd(io)
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return exitOK
	}
	if errors.Is(err, errSilent) {
		return exitFailure
	}
	fmt.Fprintf(io.Err, "wh: %v\n", err)
	var ue usageError
	if errors.As(err, &ue) || isCobraUsage(err) {
		fmt.Fprintf(io.Err, "Run 'wh --help' for usage.\n")
		return exitUsage
	}
	if errors.Is(err, context.Canceled) {
		return 130
	}
	return exitFailure
}

// isCobraUsage recognises the errors cobra returns for bad flags and
// unknown commands, which it does not type.
func isCobraUsage(err error) bool {
	s := err.Error()
	for _, p := range []string{"unknown command", "unknown flag", "unknown shorthand flag", "flag needs an argument", "invalid argument", "accepts ", "requires at least", "requires at most", "bad flag syntax"} {
		if strings.HasPrefix(s, p) || strings.Contains(s, " "+p) {
			return true
		}
	}
	return false
}

func newRootCmd(io stdio) *cobra.Command {
	root := &cobra.Command{
		Use:   "wh",
		Short: "Decentralized, peer-to-peer, encrypted overlay networks",
		Long: `wh builds peer-to-peer encrypted overlay networks from one small text file:
a network name, a private subnet, the public keys and hostnames of the nodes
that trust each other, and bootstrap nodes.

Exit status: 0 on success, 1 on invalid input or failure, 2 on a usage error.`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetIn(io.In)
	root.SetOut(io.Out)
	root.SetErr(io.Err)
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err.Error()} })
	show := newShowCmd()
	// As in WireHub, wh alone shows the running networks.
	root.RunE = func(cmd *cobra.Command, _ []string) error {
		show.SetContext(cmd.Context())
		return show.RunE(show, nil)
	}
	root.AddCommand(
		show,
		newGenkeyCmd(io),
		newPubkeyCmd(),
		newWorkbitCmd(),
		newOrchidCmd(),
		newBidCmd(),
		newCheckCmd(),
		newUpCmd(io),
		newDownCmd(),
		newReloadCmd(),
		newLookupCmd(),
		newPingCmd(),
		newAuthCmd(),
		newInviteCmd(io),
		newResolveCmd(),
		newNetcheckCmd(),
		newHealthCmd(),
		newVersionCmd(),
	)
	addCompletions(root, runningDaemons())
	root.CompletionOptions.HiddenDefaultCmd = false
	return root
}

func newVersionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print wh's version",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			fmt.Fprintf(cmd.OutOrStdout(), "wh %s\n", version)
			return nil
		},
	}
}

func noArgs(cmd *cobra.Command, args []string) error {
	if len(args) > 0 {
		return usagef("%s: unexpected argument %q", cmd.Name(), args[0])
	}
	return nil
}

// keywords parses WireHub's "keyword value" argument pairs (e.g. `workbit 12
// namespace test`) into vals, which maps each allowed keyword to a pointer
// to its current value (set from a --flag, perhaps). Words that are not a
// known keyword are returned in rest, in order.
func keywords(cmd *cobra.Command, args []string, vals map[string]*string) (rest []string, err error) {
	for i := 0; i < len(args); i++ {
		p, ok := vals[args[i]]
		if !ok {
			rest = append(rest, args[i])
			continue
		}
		if i+1 >= len(args) {
			return nil, usagef("%s: %s needs a value", cmd.Name(), args[i])
		}
		*p = args[i+1]
		i++
	}
	return rest, nil
}

func parseWorkbit(s string) (int, error) {
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 || n > 256 {
		return 0, usagef("workbit %q: want a number from 0 to 256", s)
	}
	return n, nil
}

// readLine reads the first line of r (a key piped in), without the newline.
func readLine(r io.Reader) (string, error) {
	b, err := io.ReadAll(io.LimitReader(r, 4096))
	if err != nil {
		return "", err
	}
	s := string(b)
	if i := strings.IndexByte(s, '\n'); i >= 0 && strings.TrimSpace(s[i:]) == "" {
		s = s[:i]
	}
	s = strings.TrimSpace(s)
	if s == "" {
		return "", errors.New("nothing on standard input: pipe a key in, e.g. `wh genkey | wh pubkey`")
	}
	return s, nil
}

// isTerminal reports whether f is a terminal.
func isTerminal(f *os.File) bool {
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}
