package node

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/whnet/wh/config"
	"github.com/whnet/wh/key"
)

// DefaultStateDir is where the daemon keeps what it learns and must not
// forget: the alias slots claimed at this node.
const DefaultStateDir = "/var/lib/wirehub"

// claims are the alias slots this node knows to be claimed: alias key →
// claimant key. A claimed slot is the claimant's: applyClaims makes the
// alias line a trust line of the claimant's key, so that the peers, DNS,
// `wh show` and the relay rules all see the claimant where the config
// says alias.
//
// The state file, when there is one, holds one line per claim,
//
//	claim <alias key> <claimant key>
//	invitation <invitation>
//
// where the invitation is the one this node is claiming with, until
// every member has answered it.
// and is replaced atomically on every change, before the claimant hears
// that the claim was accepted, so that a claim survives restarts and no
// second claimant can take a slot the first was told is theirs.
type claims struct {
	path string // the state file; "" keeps claims in memory (tests)

	mu      sync.Mutex
	byAlias map[key.Public]key.Public // guarded by mu
	inv     string                    // the invitation being claimed with, or ""; guarded by mu
}

// statePath is the claims file of interface iface under dir, or "" if
// dir is "".
func statePath(dir, iface string) string {
	if dir == "" {
		return ""
	}
	return filepath.Join(dir, iface+".claims")
}

// loadClaims reads the claims file at path; a missing file holds none.
func loadClaims(path string) (*claims, error) {
	c := &claims{path: path, byAlias: map[key.Public]key.Public{}}
	if path == "" {
		return c, nil
	}
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return c, nil
	}
	if err != nil {
		return nil, fmt.Errorf("claims: %w", err)
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for line := 1; sc.Scan(); line++ {
		f := strings.Fields(sc.Text())
		if len(f) == 0 || strings.HasPrefix(f[0], "#") {
			continue
		}
		if len(f) == 2 && f[0] == "invitation" {
			c.inv = f[1]
			continue
		}
		if len(f) != 3 || f[0] != "claim" {
			return nil, fmt.Errorf("%s:%d: want \"claim ALIAS_KEY CLAIMANT_KEY\"", path, line)
		}
		a, err1 := key.ParsePublic(f[1])
		k, err2 := key.ParsePublic(f[2])
		if err := errors.Join(err1, err2); err != nil {
			return nil, fmt.Errorf("%s:%d: %w", path, line, err)
		}
		c.byAlias[a] = k
	}
	return c, nil
}

// claimant returns who claimed alias.
func (c *claims) claimant(alias key.Public) (key.Public, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	k, ok := c.byAlias[alias]
	return k, ok
}

// aliasOf returns the alias whose slot k holds.
func (c *claims) aliasOf(k key.Public) (key.Public, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for a, x := range c.byAlias {
		if x == k {
			return a, true
		}
	}
	return key.Public{}, false
}

// add records that k claimed alias, in the state file first. It fails if
// alias is claimed by another key, or the file cannot be written; then
// nothing changed.
func (c *claims) add(alias, k key.Public) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if x, ok := c.byAlias[alias]; ok {
		if x == k {
			return nil
		}
		return errClaimed
	}
	next := make(map[key.Public]key.Public, len(c.byAlias)+1)
	for a, x := range c.byAlias {
		next[a] = x
	}
	next[alias] = k
	if err := c.writeLocked(next, c.inv); err != nil {
		return err
	}
	c.byAlias = next
	return nil
}

// invitation returns the invitation the node claims with, or "".
func (c *claims) invitation() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.inv
}

// setInvitation records the invitation the node claims with; "" forgets it.
func (c *claims) setInvitation(inv string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if inv == c.inv {
		return nil
	}
	if err := c.writeLocked(c.byAlias, inv); err != nil {
		return err
	}
	c.inv = inv
	return nil
}

var errClaimed = errors.New("already claimed")

func (c *claims) writeLocked(m map[key.Public]key.Public, inv string) error {
	if c.path == "" {
		return nil
	}
	var lines []string
	for a, k := range m {
		lines = append(lines, "claim "+a.String()+" "+k.String()+"\n")
	}
	slices.Sort(lines)
	if inv != "" {
		lines = append(lines, "invitation "+inv+"\n")
	}
	b := []byte("# alias slots claimed at this node, written by wh: alias key, claimant key\n" + strings.Join(lines, ""))
	if err := os.MkdirAll(filepath.Dir(c.path), 0o700); err != nil {
		return fmt.Errorf("claims: %w", err)
	}
	return writeFileAtomic(c.path, b)
}

// apply returns n with every claimed alias line turned into a trust line
// of its claimant's key, keeping the line's hostname and address. A
// claimant whose key another line lists keeps that line: the config wins.
func (c *claims) apply(n *config.Network) *config.Network {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := *n
	out.Nodes = slices.Clone(n.Nodes)
	for i, nd := range out.Nodes {
		k, ok := c.byAlias[nd.Key]
		if nd.Role != config.Alias || !ok {
			continue
		}
		if _, listed := n.Node(k); listed {
			continue
		}
		out.Nodes[i].Role, out.Nodes[i].Key, out.Nodes[i].Expires = config.Trust, k, time.Time{}
	}
	return &out
}

// writeFileAtomic replaces the file at path with b: a temporary file
// beside it, synced, renamed over it.
func writeFileAtomic(path string, b []byte) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name()) // fails once renamed
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}
