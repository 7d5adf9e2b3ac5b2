package config

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/whnet/wh/key"
)

// AliasLine returns the config line of an alias slot named name for the
// alias key k, expiring at expires unless it is zero.
func AliasLine(name string, k key.Public, expires time.Time) string {
	line := "alias " + name + " " + k.String()
	if !expires.IsZero() {
		line += " expires " + expires.UTC().Format(time.RFC3339Nano)
	}
	return line
}

// AppendAlias adds the line AliasLine(name, k, expires) at the end of the
// config file at path and returns the network the file now describes.
// Every byte already in the file stays as it was (a missing final line
// break is added first, in the file's own style). It refuses a name or a
// key the file already has, and anything that would leave the file
// invalid. The file is replaced atomically, keeping its permissions.
func AppendAlias(path, name string, k key.Public, expires time.Time) (*Network, error) {
	old, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	n, err := Parse(path, old)
	if err != nil {
		return nil, err
	}
	if c, ok := n.Host(name); ok {
		return nil, fmt.Errorf("%s: host name %q is already used on line %d", path, name, c.Line)
	}
	if c, ok := n.Node(k); ok {
		return nil, fmt.Errorf("%s: key %s is already listed on line %d", path, k, c.Line)
	}
	if !n.Subnet.IsValid() {
		return nil, fmt.Errorf("%s: no subnet: an alias needs one to get an address", path)
	}
	eol := "\n"
	if bytes.Contains(old, []byte("\r\n")) {
		eol = "\r\n"
	}
	src := bytes.Clone(old)
	if len(src) > 0 && src[len(src)-1] != '\n' {
		src = append(src, eol...)
	}
	src = append(src, AliasLine(name, k, expires)+eol...)
	n, err = Parse(path, src)
	if err != nil {
		return nil, err
	}
	return n, writeAtomic(path, src)
}

// writeAtomic replaces the file at path with b: written to a temporary
// file beside it, synced, then renamed over it, with path's permissions.
func writeAtomic(path string, b []byte) error {
	mode := os.FileMode(0o644)
	if fi, err := os.Stat(path); err == nil {
		mode = fi.Mode().Perm()
	}
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	f, err := os.CreateTemp(dir, "."+strings.TrimPrefix(base, ".")+".tmp*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name()) // fails once renamed
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Chmod(mode); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}
