package resolver

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
)

// Mode is how the network's names reach the local system's resolver.
type Mode uint8

const (
	// ModeAuto picks ModeResolved or ModeHosts with Detect. The zero value.
	ModeAuto Mode = iota
	// ModeOff leaves the system alone: only queries sent to the resolver's
	// addresses get the network's names.
	ModeOff
	// ModeHosts writes the names into a marked block of /etc/hosts.
	ModeHosts
	// ModeResolved makes systemd-resolved send the network's domain to
	// the resolver (per-link DNS server and routing domain ~NETWORK).
	ModeResolved
)

// ErrUnknownMode is returned by ParseMode.
var ErrUnknownMode = errors.New("unknown DNS mode (want auto, resolved, hosts or off)")

var modeNames = [...]string{ModeAuto: "auto", ModeOff: "off", ModeHosts: "hosts", ModeResolved: "resolved"}

// String returns the name ParseMode accepts.
func (m Mode) String() string {
	if int(m) < len(modeNames) {
		return modeNames[m]
	}
	return fmt.Sprintf("Mode(%d)", uint8(m))
}

// ParseMode parses "auto", "resolved", "hosts" or "off".
func ParseMode(s string) (Mode, error) {
	for m, name := range modeNames {
		if s == name {
			return Mode(m), nil
		}
	}
	return 0, fmt.Errorf("%w: %q", ErrUnknownMode, s)
}

// Set parses s into m; with String and Type, *Mode is a pflag.Value, so
// cobra can take it as a flag.
func (m *Mode) Set(s string) error {
	v, err := ParseMode(s)
	if err == nil {
		*m = v
	}
	return err
}

// Type names the flag's value type for help texts.
func (m *Mode) Type() string { return "mode" }

// Detect returns ModeResolved when systemd-resolved runs and the system
// resolves through it, ModeHosts otherwise. It never returns ModeAuto or
// ModeOff.
func Detect() Mode {
	return detect(systemPaths{
		resolvedDir: "/run/systemd/resolve",
		resolvConf:  "/etc/resolv.conf",
		nsswitch:    "/etc/nsswitch.conf",
		lookPath:    exec.LookPath,
	})
}

// systemPaths are the files Detect looks at, replaced in tests.
type systemPaths struct {
	resolvedDir string
	resolvConf  string
	nsswitch    string
	lookPath    func(string) (string, error)
}

// detect implements Detect. systemd-resolved counts when its runtime
// directory exists, resolvectl is installed, and either resolv.conf points
// at its stub (127.0.0.53) or nsswitch.conf uses nss-resolve: a resolved
// that runs but that nothing asks would make the names vanish.
func detect(p systemPaths) Mode {
	if fi, err := os.Stat(p.resolvedDir); err != nil || !fi.IsDir() {
		return ModeHosts
	}
	if _, err := p.lookPath("resolvectl"); err != nil {
		return ModeHosts
	}
	if fileHasLine(p.resolvConf, func(f []string) bool {
		return len(f) >= 2 && f[0] == "nameserver" && f[1] == "127.0.0.53"
	}) || fileHasLine(p.nsswitch, func(f []string) bool {
		if len(f) == 0 || f[0] != "hosts:" {
			return false
		}
		for _, w := range f[1:] {
			if w == "resolve" {
				return true
			}
		}
		return false
	}) {
		return ModeResolved
	}
	return ModeHosts
}

// fileHasLine reports whether a line of the file, split into fields with
// '#' comments removed, satisfies match. Unreadable files have none.
func fileHasLine(path string, match func(fields []string) bool) bool {
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line, _, _ := strings.Cut(sc.Text(), "#")
		if match(strings.Fields(line)) {
			return true
		}
	}
	return false
}
