package main

import (
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/whnet/wh/config"
	"github.com/whnet/wh/key"
	"github.com/whnet/wh/orchid"
)

// powParams resolves a namespace and workbit from, in order of precedence,
// keyword arguments or flags, and a config file given as the only other
// argument; defaults are WireHub's (public, 8).
type powParams struct {
	namespace, workbit string
}

func (p *powParams) flags(cmd *cobra.Command, withWorkbit bool) {
	cmd.Flags().StringVar(&p.namespace, "namespace", "", "proof-of-work namespace (default \"public\", or the config's)")
	if withWorkbit {
		cmd.Flags().StringVar(&p.workbit, "workbit", "", "proof-of-work difficulty in bits (default 8, or the config's)")
	}
}

// resolve applies the keyword form to p and returns namespace and workbit.
func (p *powParams) resolve(cmd *cobra.Command, args []string, extra map[string]*string) (string, int, error) {
	vals := map[string]*string{"namespace": &p.namespace}
	if cmd.Flags().Lookup("workbit") != nil {
		vals["workbit"] = &p.workbit
	}
	for k, v := range extra {
		vals[k] = v
	}
	rest, err := keywords(cmd, args, vals)
	if err != nil {
		return "", 0, err
	}
	ns, wb := key.DefaultNamespace, key.DefaultWorkbit
	switch len(rest) {
	case 0:
	case 1:
		n, err := config.Load(rest[0])
		if err != nil {
			return "", 0, err
		}
		ns, wb = n.Namespace, n.Workbit
	default:
		return "", 0, usagef("%s: unexpected argument %q", cmd.Name(), rest[1])
	}
	if p.namespace != "" {
		ns = p.namespace
	}
	if p.workbit != "" {
		if wb, err = parseWorkbit(p.workbit); err != nil {
			return "", 0, err
		}
	}
	return ns, wb, nil
}

func newGenkeyCmd(io stdio) *cobra.Command {
	var (
		p       powParams
		threads string
	)
	cmd := &cobra.Command{
		Use:   "genkey [CONFIG | workbit N namespace NS] [threads N]",
		Short: "Generate a private key that meets a network's proof-of-work",
		Long: `Generate a private key whose public key carries enough proof-of-work
(workbits) for a network, and print it in standard base64 (as wg genkey).

The network's namespace and workbit come from CONFIG, or from the keyword
arguments or flags (default: namespace public, workbit 8). The search uses
every core; expect 2^workbit attempts. Progress is shown on a terminal.`,
		Example: `  wh genkey | tee node.sk | wh pubkey
  wh genkey ./net.conf > node.sk
  wh genkey workbit 16 namespace test`,
		RunE: func(cmd *cobra.Command, args []string) error {
			ns, wb, err := p.resolve(cmd, args, map[string]*string{"threads": &threads})
			if err != nil {
				return err
			}
			opt := key.SearchOptions{}
			if threads != "" {
				if _, err := fmt.Sscan(threads, &opt.Threads); err != nil || opt.Threads < 0 {
					return usagef("threads %q: want a number", threads)
				}
			}
			if f, ok := cmd.OutOrStdout().(*os.File); ok {
				warnAccessible(cmd.ErrOrStderr(), f)
			}
			if io.IsTerminal != nil && io.IsTerminal() && wb >= 12 {
				pr := newProgress(cmd.ErrOrStderr(), wb)
				opt.Progress = pr.update
				defer pr.done()
			}
			k, err := key.Search(cmd.Context(), wb, ns, opt)
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), k.String())
			return nil
		},
	}
	p.flags(cmd, true)
	cmd.Flags().StringVar(&threads, "threads", "", "goroutines searching (default: one per core)")
	return cmd
}

// accessibleTo says who besides its owner can access the regular file fi
// ("" if nobody, or if fi is not a regular file: a pipe, a terminal).
func accessibleTo(fi os.FileInfo) string {
	if !fi.Mode().IsRegular() {
		return ""
	}
	switch perm := fi.Mode().Perm(); {
	case perm&0o070 != 0 && perm&0o007 != 0:
		return "its group and others"
	case perm&0o070 != 0:
		return "its group"
	case perm&0o007 != 0:
		return "others"
	}
	return ""
}

// warnAccessible warns, as wg genkey does, when a private key is about to
// be written to a file that others can access; `wh up` refuses such a file.
func warnAccessible(w io.Writer, f *os.File) {
	fi, err := f.Stat()
	if err != nil {
		return
	}
	who := accessibleTo(fi)
	if who == "" {
		return
	}
	name := "FILE"
	if p, err := os.Readlink(fmt.Sprintf("/proc/self/fd/%d", f.Fd())); err == nil && filepath.IsAbs(p) {
		name = p
	}
	world := "world"
	if who == "its group" {
		world = "group"
	}
	fmt.Fprintf(w, "Warning: writing to %s accessible file.\n"+
		"Consider setting the umask to 077 and trying again, or run `chmod 600 %s`: wh up refuses a key file that %s can access.\n",
		world, name, who)
}

// progress prints the attempt rate and an estimate of the time left, at
// most a few times a second, once the search has run for a second.
type progress struct {
	w        io.Writer
	expected float64
	start    time.Time

	mu      sync.Mutex
	last    time.Time
	printed bool
}

func newProgress(w io.Writer, workbit int) *progress {
	now := time.Now()
	return &progress{w: w, expected: math.Ldexp(1, workbit), start: now, last: now}
}

func (p *progress) update(attempts uint64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := time.Now()
	if now.Sub(p.start) < time.Second || now.Sub(p.last) < 250*time.Millisecond {
		return
	}
	p.last = now
	p.printed = true
	el := now.Sub(p.start).Seconds()
	rate := float64(attempts) / el
	// The number of attempts is geometric: the expected time left is the
	// same at any moment, 2^workbit/rate.
	left := time.Duration(p.expected / rate * float64(time.Second)).Round(time.Second)
	fmt.Fprintf(p.w, "\rsearching: %.3g attempts, %.3g/s, expect ~%v more (2^%d on average) ",
		float64(attempts), rate, left, int(math.Log2(p.expected)))
}

func (p *progress) done() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.printed {
		fmt.Fprintln(p.w)
	}
}

func newPubkeyCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "pubkey",
		Short: "Read a private key on stdin and print its public key",
		Long: `Read a private key (either base64 form) on standard input and print its
public key in URL-safe base64 without padding (43 characters).`,
		Example: `  wh genkey | wh pubkey`,
		Args:    noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			s, err := readLine(cmd.InOrStdin())
			if err != nil {
				return err
			}
			k, err := key.ParsePrivate(s)
			if err != nil {
				return fmt.Errorf("private key: %w", err)
			}
			fmt.Fprintln(cmd.OutOrStdout(), k.Public())
			return nil
		},
	}
}

func readPublic(cmd *cobra.Command) (key.Public, error) {
	s, err := readLine(cmd.InOrStdin())
	if err != nil {
		return key.Public{}, err
	}
	k, err := key.ParsePublic(s)
	if err != nil {
		return key.Public{}, fmt.Errorf("public key: %w", err)
	}
	return k, nil
}

func newWorkbitCmd() *cobra.Command {
	return newPublicKeyCmd(&cobra.Command{
		Use:   "workbit [CONFIG | namespace NS]",
		Short: "Read a public key on stdin and print its workbits",
		Long: `Read a public key on standard input and print its proof-of-work: the
number of leading zero bits of BLAKE2b-256(key || namespace).`,
		Example: `  echo zW-1lBeQ7IkT6NW6hL_NsV4eOPOwJi_rt1vO-omOEmQ | wh workbit
  wh pubkey < node.sk | wh workbit ./net.conf`,
	}, func(k key.Public, ns string) any { return key.Workbits(k, ns) })
}

func newOrchidCmd() *cobra.Command {
	return newPublicKeyCmd(&cobra.Command{
		Use:   "orchid [CONFIG | namespace NS]",
		Short: "Read a public key on stdin and print its ORCHID IPv6 address",
		Long: `Read a public key on standard input and print the node's ORCHID IPv6
address (RFC 7343, inside 2001:20::/28) in the network's namespace.`,
		Example: `  echo zW-1lBeQ7IkT6NW6hL_NsV4eOPOwJi_rt1vO-omOEmQ | wh orchid namespace public`,
	}, func(k key.Public, ns string) any { return orchid.Addr(k, ns) })
}

// newPublicKeyCmd completes cmd as a command that reads a public key on
// stdin, takes a namespace (from a config, keywords or --namespace), and
// prints what of(key, namespace) returns.
func newPublicKeyCmd(cmd *cobra.Command, of func(k key.Public, namespace string) any) *cobra.Command {
	var p powParams
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		ns, _, err := p.resolve(cmd, args, nil)
		if err != nil {
			return err
		}
		k, err := readPublic(cmd)
		if err != nil {
			return err
		}
		fmt.Fprintln(cmd.OutOrStdout(), of(k, ns))
		return nil
	}
	p.flags(cmd, false)
	return cmd
}

func newBidCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "bid KEY KEY",
		Short: "Print the DHT bucket id of two public keys",
		Long: `Print the Kademlia bucket id of two public keys: the number of leading
bits they share, plus one (1 to 256). A key of "-" is read from stdin.`,
		Example: `  wh bid zW-1lBeQ7IkT6NW6hL_NsV4eOPOwJi_rt1vO-omOEmQ g878Bf9ZDc4IzFSUhWFTO1VYFVmHD5XfvEsVn83Dsho`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) != 2 {
				return usagef("bid: want two keys, got %d arguments", len(args))
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			var ks [2]key.Public
			for i, a := range args {
				if a == "-" {
					s, err := readLine(cmd.InOrStdin())
					if err != nil {
						return err
					}
					a = s
				}
				k, err := key.ParsePublic(a)
				if err != nil {
					return fmt.Errorf("key %q: %w", a, err)
				}
				ks[i] = k
			}
			fmt.Fprintln(cmd.OutOrStdout(), key.BucketID(ks[0], ks[1]))
			return nil
		},
	}
}
