package resolver

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os/exec"
	"strings"
	"sync"
	"time"
)

// ErrLoopbackServer is returned by Apply in ModeResolved for a resolver
// address on loopback, which systemd-resolved cannot reach through the link.
var ErrLoopbackServer = errors.New("systemd-resolved needs a resolver address on the interface, not on loopback")

// resolvectlTimeout bounds each resolvectl run.
const resolvectlTimeout = 10 * time.Second

// IntegratorOptions configures an Integrator.
type IntegratorOptions struct {
	// Mode to use; ModeAuto (the zero value) means Detect().
	Mode Mode
	// HostsPath is the hosts file of ModeHosts; "" means /etc/hosts.
	HostsPath string
	// Logger; nil discards.
	Logger *slog.Logger
}

// Integrator makes the system resolve one interface's names, and undoes it.
// It is safe for concurrent use.
type Integrator struct {
	mode      Mode // never ModeAuto
	hostsPath string
	log       *slog.Logger
	// run runs a command (resolvectl); tests replace it.
	run func(ctx context.Context, name string, args ...string) error

	mu    sync.Mutex // serializes Apply and Undo; guards iface
	iface string     // interface of the last successful Apply, "" after Undo
}

// NewIntegrator returns an integrator in opt.Mode, detected if ModeAuto.
// It changes nothing until Apply.
func NewIntegrator(opt IntegratorOptions) *Integrator {
	i := &Integrator{mode: opt.Mode, hostsPath: opt.HostsPath, log: opt.Logger, run: runCommand}
	if i.mode == ModeAuto {
		i.mode = Detect()
	}
	if i.hostsPath == "" {
		i.hostsPath = "/etc/hosts"
	}
	if i.log == nil {
		i.log = slog.New(slog.DiscardHandler)
	}
	return i
}

// Mode returns the mode in use, never ModeAuto.
func (i *Integrator) Mode() Mode { return i.mode }

// Apply makes the system resolve zone's names for interface iface, through
// the resolver at server (ModeResolved) or the hosts file (ModeHosts).
// Calling it again (on reload) replaces what the previous call did. In
// ModeResolved, server must be an address on iface itself on which the
// resolver listens, such as the node's overlay IPv4: systemd-resolved sends
// a link's queries out of that link (IP_UNICAST_IF), so a loopback address
// would never be reached; Apply refuses one with ErrLoopbackServer.
func (i *Integrator) Apply(iface string, zone Zone, server netip.AddrPort) error {
	if err := checkIface(iface); err != nil {
		return err
	}
	i.mu.Lock()
	defer i.mu.Unlock()
	if i.iface != "" && i.iface != iface {
		if err := i.undo(); err != nil {
			return err
		}
	}
	var err error
	switch i.mode {
	case ModeHosts:
		err = editHostsFile(i.hostsPath, iface, hostsLines(zone))
	case ModeResolved:
		err = i.applyResolved(iface, zone, server)
	}
	if err != nil {
		return fmt.Errorf("DNS integration (%v) of %s: %w", i.mode, iface, err)
	}
	if i.mode != ModeOff {
		i.iface = iface
	}
	return nil
}

// applyResolved registers server as iface's DNS server for ~DOMAIN only.
// default-route is turned off explicitly: with no domain, resolved would
// otherwise send every name to the link, and the resolver would forward
// them back to resolved.
func (i *Integrator) applyResolved(iface string, zone Zone, server netip.AddrPort) error {
	if !server.IsValid() {
		return fmt.Errorf("no resolver address to register")
	}
	if server.Addr().IsLoopback() {
		return fmt.Errorf("%w: %v", ErrLoopbackServer, server)
	}
	addr := server.Addr().String()
	if server.Port() != 53 {
		addr = server.String() // resolvectl takes ADDR:PORT and [ADDR]:PORT (systemd 246)
	}
	domain, _, _ := zone.normalize()
	cmds := [][]string{
		{"dns", iface, addr},
		{"default-route", iface, "false"},
	}
	if domain != "" {
		cmds = append(cmds, []string{"domain", iface, "~" + domain})
	} else {
		i.log.Warn("network has no name: systemd-resolved gets no routing domain, bare host names will not resolve", "iface", iface)
	}
	for _, args := range cmds {
		if err := i.resolvectl(args...); err != nil {
			return err
		}
	}
	return nil
}

// Undo removes what Apply did. It is idempotent, and a no-op before Apply.
func (i *Integrator) Undo() error {
	i.mu.Lock()
	defer i.mu.Unlock()
	return i.undo()
}

func (i *Integrator) undo() error {
	if i.iface == "" {
		return nil
	}
	var err error
	switch i.mode {
	case ModeHosts:
		err = editHostsFile(i.hostsPath, i.iface, nil)
	case ModeResolved:
		if _, ierr := net.InterfaceByName(i.iface); ierr != nil {
			break // the link is gone, and resolved forgot it with it
		}
		err = i.resolvectl("revert", i.iface)
	}
	if err != nil {
		return fmt.Errorf("undoing DNS integration (%v) of %s: %w", i.mode, i.iface, err)
	}
	i.iface = ""
	return nil
}

func (i *Integrator) resolvectl(args ...string) error {
	ctx, cancel := context.WithTimeout(context.Background(), resolvectlTimeout)
	defer cancel()
	return i.run(ctx, "resolvectl", args...)
}

// runCommand runs name with args, returning its stderr in the error.
func runCommand(ctx context.Context, name string, args ...string) error {
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return nil
}
