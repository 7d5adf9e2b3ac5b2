package resolver

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

// A managed block of the hosts file, for interface wh0 of network tutorial:
//
//	# BEGIN wh wh0
//	10.0.42.2	node_a.tutorial node_a
//	2001:1075:b63:9ef6:5070:2e62:2de:e917	node_a.tutorial node_a
//	# END wh wh0
//
// Each interface owns its block and touches no other line. A block is added
// at the end of the file and replaced where it stands. When the file did
// not end in a newline, the block goes after an added newline and its END
// line gets none, so that removing the block gives back the file byte for
// byte.

// ErrUnterminatedBlock is returned when a BEGIN marker has no END marker
// after it: the file was edited by hand, and guessing where the block ends
// could delete the user's lines.
var ErrUnterminatedBlock = errors.New("managed block has no END line")

func beginMarker(iface string) string { return "# BEGIN wh " + iface }
func endMarker(iface string) string   { return "# END wh " + iface }

// hostsLines returns the lines of iface's block body for zone: each address
// with the host's qualified name first (the canonical name) and its bare
// name second.
func hostsLines(zone Zone) []string {
	domain, hosts, _ := zone.normalize()
	var lines []string
	for _, h := range hosts {
		names := h.Name
		if domain != "" {
			names = h.Name + "." + domain + " " + h.Name
		}
		for _, a := range []netip.Addr{h.IPv4, h.IPv6} {
			if a.IsValid() {
				lines = append(lines, a.String()+"\t"+names)
			}
		}
	}
	return lines
}

// spliceBlock returns content with iface's block holding body: replaced
// where it was, or appended. An empty body removes the block.
func spliceBlock(content []byte, iface string, body []string) ([]byte, error) {
	if err := checkIface(iface); err != nil {
		return nil, err
	}
	begin, end := beginMarker(iface), endMarker(iface)
	lines := splitLines(content)
	var (
		kept []string // lines outside our blocks
		at   = -1     // index in kept of the first block
	)
	for i := 0; i < len(lines); i++ {
		if marker(lines[i]) != begin {
			kept = append(kept, lines[i])
			continue
		}
		j := i + 1
		for j < len(lines) && marker(lines[j]) != end {
			j++
		}
		if j == len(lines) {
			return nil, fmt.Errorf("%w: %q at line %d", ErrUnterminatedBlock, begin, i+1)
		}
		if at < 0 {
			at = len(kept)
		}
		if j == len(lines)-1 && !strings.HasSuffix(lines[j], "\n") && len(kept) > 0 {
			// We added the newline before the block, and none after it.
			kept[len(kept)-1] = strings.TrimSuffix(kept[len(kept)-1], "\n")
		}
		i = j
	}
	var out strings.Builder
	if len(body) == 0 {
		for _, l := range kept {
			out.WriteString(l)
		}
		return []byte(out.String()), nil
	}
	if at < 0 {
		at = len(kept)
	}
	block := append(append([]string{begin}, body...), end)
	for _, l := range kept[:at] {
		out.WriteString(l)
	}
	atEOF := at == len(kept)
	unterminated := atEOF && at > 0 && !strings.HasSuffix(kept[at-1], "\n")
	if unterminated {
		out.WriteString("\n")
	}
	for i, l := range block {
		out.WriteString(l)
		if i < len(block)-1 || !unterminated {
			out.WriteString("\n")
		}
	}
	for _, l := range kept[at:] {
		out.WriteString(l)
	}
	return []byte(out.String()), nil
}

// splitLines splits s after each '\n'; the last line may lack one.
func splitLines(s []byte) []string {
	var lines []string
	for len(s) > 0 {
		i := bytes.IndexByte(s, '\n') + 1
		if i == 0 {
			i = len(s)
		}
		lines = append(lines, string(s[:i]))
		s = s[i:]
	}
	return lines
}

// marker returns line without trailing blanks, for comparing with markers.
func marker(line string) string { return strings.TrimRight(line, " \t\r\n") }

// checkIface rejects interface names that would break the marker lines.
func checkIface(iface string) error {
	if iface == "" || strings.ContainsFunc(iface, func(r rune) bool { return r <= ' ' || r == 0x7f }) {
		return fmt.Errorf("%w: interface %q", ErrBadName, iface)
	}
	return nil
}

// editHostsFile rewrites the hosts file at path with iface's block holding
// body (empty removes it). Writers of the same directory are serialized
// with flock on the directory. The file is replaced atomically (a
// temporary file in the same directory, same mode and owner, renamed over
// it); when it cannot be renamed over, as with a bind-mounted /etc/hosts in
// a container (EBUSY), it is rewritten in place. A missing file is created
// (mode 0644) only to add a block.
func editHostsFile(path, iface string, body []string) error {
	if p, err := filepath.EvalSymlinks(path); err == nil {
		path = p // edit the target, keep the link
	}
	unlock, err := lockDir(filepath.Dir(path))
	if err != nil {
		return err
	}
	defer unlock()

	old, err := os.ReadFile(path)
	var mode fs.FileMode = 0o644
	uid, gid := -1, -1
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if len(body) == 0 {
			return nil
		}
	case err != nil:
		return fmt.Errorf("reading hosts file: %w", err)
	default:
		fi, err := os.Stat(path)
		if err != nil {
			return fmt.Errorf("reading hosts file: %w", err)
		}
		mode = fi.Mode().Perm()
		if st, ok := fi.Sys().(*syscall.Stat_t); ok {
			uid, gid = int(st.Uid), int(st.Gid)
		}
	}
	updated, err := spliceBlock(old, iface, body)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if old != nil && bytes.Equal(old, updated) {
		return nil
	}
	err = replaceFile(path, updated, mode, uid, gid)
	if errors.Is(err, syscall.EBUSY) || errors.Is(err, syscall.EXDEV) {
		err = overwriteFile(path, updated)
	}
	if err != nil {
		return fmt.Errorf("writing hosts file: %w", err)
	}
	return nil
}

// replaceFile atomically replaces path with data through a temporary file in
// the same directory.
func replaceFile(path string, data []byte, mode fs.FileMode, uid, gid int) (err error) {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".wh-*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			os.Remove(tmp.Name())
		}
	}()
	_, err = tmp.Write(data)
	if err == nil {
		err = tmp.Chmod(mode)
	}
	if err == nil && (uid >= 0 || gid >= 0) {
		err = tmp.Chown(uid, gid)
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// overwriteFile rewrites path in place: readers may see a mix of old and
// new bytes for an instant, but never an empty file.
func overwriteFile(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	_, err = f.WriteAt(data, 0)
	if err == nil {
		err = f.Truncate(int64(len(data)))
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// lockDir takes an exclusive flock on dir, which every wh process editing
// a file in it takes too.
func lockDir(dir string) (unlock func(), err error) {
	d, err := os.Open(dir)
	if err != nil {
		return nil, fmt.Errorf("locking %s: %w", dir, err)
	}
	if err := syscall.Flock(int(d.Fd()), syscall.LOCK_EX); err != nil {
		d.Close()
		return nil, fmt.Errorf("locking %s: %w", dir, err)
	}
	return func() { d.Close() }, nil // closing releases the lock
}
