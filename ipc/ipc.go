// Package ipc is the protocol between the wh command line and a running wh
// daemon: one unix stream socket per interface, at DIR/IFACE.sock, owner
// only (0600 in a 0700 directory). DIR is UserDir(): /var/run/wirehub for
// root, $XDG_RUNTIME_DIR/wirehub for anyone else (a userspace node needs
// no root).
//
// A client connects, writes one request as a JSON object on one line, and
// reads one reply as a JSON object on one line; then both sides close.
//
//	→ {"verb":"show","args":["all"]}
//	← {"version":1,"daemon":"v0.1.0","ok":true,"data":{...}}
//	← {"version":1,"daemon":"v0.1.0","ok":false,"error":"unknown peer \"zz\""}
//
// Verbs are matched exactly (WireHub matched unanchored patterns, so that
// one verb could be taken for another). An unknown verb is an error reply.
// Every reply carries the protocol version; a client refuses replies of a
// version it does not know.
package ipc

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Version is the protocol version carried in every reply.
const Version = 1

// Dir is where root's daemons put their sockets (WireHub's path).
const Dir = "/var/run/wirehub"

// UserDir returns where the daemons of the current user put their
// sockets: Dir for root; for anyone else $XDG_RUNTIME_DIR/wirehub, or,
// where no session set XDG_RUNTIME_DIR (runuser, setpriv, cron),
// $TMPDIR/wirehub-UID, which Listen refuses if another user owns it.
func UserDir() string {
	uid := os.Geteuid()
	if uid == 0 {
		return Dir
	}
	if d := os.Getenv("XDG_RUNTIME_DIR"); filepath.IsAbs(d) {
		return filepath.Join(d, "wirehub")
	}
	return filepath.Join(os.TempDir(), fmt.Sprintf("wirehub-%d", uid))
}

// maxMessage bounds a request or a reply line.
const maxMessage = 1 << 20

// Request is what a client sends.
type Request struct {
	Verb string   `json:"verb"`
	Args []string `json:"args,omitempty"`
}

// Reply is what a daemon answers.
type Reply struct {
	Version int             `json:"version"`
	Daemon  string          `json:"daemon,omitempty"` // the daemon's build version
	OK      bool            `json:"ok"`
	Error   string          `json:"error,omitempty"`
	Data    json.RawMessage `json:"data,omitempty"`
}

// ErrNotRunning is returned by Call when no daemon listens on the socket.
var ErrNotRunning = errors.New("not running")

// SocketPath returns the socket of interface iface under dir.
func SocketPath(dir, iface string) string { return filepath.Join(dir, iface+".sock") }

// Interfaces lists the interfaces with a socket in dir, sorted.
func Interfaces(dir string) ([]string, error) {
	ents, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range ents {
		if name, ok := strings.CutSuffix(e.Name(), ".sock"); ok && e.Type()&fs.ModeSocket != 0 {
			out = append(out, name)
		}
	}
	sort.Strings(out)
	return out, nil
}

// Call sends verb and args to the daemon at path and decodes the reply's
// data into out (if out is not nil). A daemon's error reply is returned as
// an error.
func Call(ctx context.Context, path, verb string, args []string, out any) error {
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ECONNREFUSED) {
			return ErrNotRunning
		}
		return err
	}
	defer c.Close()
	if dl, ok := ctx.Deadline(); ok {
		c.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { c.SetDeadline(time.Unix(1, 0)) })
	defer stop()

	req, _ := json.Marshal(Request{Verb: verb, Args: args})
	if _, err := c.Write(append(req, '\n')); err != nil {
		return err
	}
	line, err := bufio.NewReader(io.LimitReader(c, maxMessage)).ReadBytes('\n')
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("reading reply: %w", err)
	}
	var rep Reply
	if err := json.Unmarshal(line, &rep); err != nil {
		return fmt.Errorf("reading reply: %w", err)
	}
	if rep.Version != Version {
		return fmt.Errorf("daemon speaks protocol version %d, this wh speaks %d: restart the daemon with this wh", rep.Version, Version)
	}
	if !rep.OK {
		return errors.New(rep.Error)
	}
	if out != nil && len(rep.Data) > 0 {
		return json.Unmarshal(rep.Data, out)
	}
	return nil
}

// Handler answers a request. It returns the data of an OK reply (marshalled
// as JSON), or an error whose text the client shows.
type Handler func(ctx context.Context, req Request) (any, error)

// Server serves a socket.
type Server struct {
	ln      net.Listener
	path    string
	handle  Handler
	version string
	log     *slog.Logger

	wg     sync.WaitGroup
	ctx    context.Context // cancelled on Close
	cancel context.CancelFunc
	once   sync.Once
}

// Listen creates the socket at path (its directory made 0700 if missing)
// and serves h on it until Close. A socket left behind by a dead daemon is
// replaced; one with a live daemon behind it is an error.
func Listen(path string, daemonVersion string, h Handler, log *slog.Logger) (*Server, error) {
	if err := PrivateDir(filepath.Dir(path)); err != nil {
		return nil, err
	}
	if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
		c.Close()
		return nil, fmt.Errorf("%s: a daemon is already running on this interface", path)
	}
	os.Remove(path)
	old := syscall.Umask(0o077)
	ln, err := net.Listen("unix", path)
	syscall.Umask(old)
	if err != nil {
		return nil, err
	}
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, err
	}
	ln.(*net.UnixListener).SetUnlinkOnClose(true)
	ctx, cancel := context.WithCancel(context.Background())
	s := &Server{ln: ln, path: path, handle: h, version: daemonVersion, log: log, ctx: ctx, cancel: cancel}
	s.wg.Go(s.accept)
	return s, nil
}

// PrivateDir makes dir (0700) unless it exists, and checks that it is a
// directory of the current user's (or root's) that no one else can write:
// in a shared directory such as /tmp, someone else could have made it.
func PrivateDir(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	fi, err := os.Lstat(dir)
	if err != nil {
		return err
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	switch {
	case !fi.IsDir():
		return fmt.Errorf("%s is not a directory", dir)
	case ok && st.Uid != uint32(os.Geteuid()) && st.Uid != 0:
		return fmt.Errorf("%s belongs to user %d, not to this one (%d)", dir, st.Uid, os.Geteuid())
	case fi.Mode().Perm()&0o022 != 0:
		return fmt.Errorf("%s is writable by others (mode %v)", dir, fi.Mode().Perm())
	}
	return nil
}

// Path returns the socket's path.
func (s *Server) Path() string { return s.path }

func (s *Server) accept() {
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.wg.Go(func() { s.serve(c) })
	}
}

func (s *Server) serve(c net.Conn) {
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	line, err := bufio.NewReader(io.LimitReader(c, maxMessage)).ReadBytes('\n')
	if err != nil {
		return
	}
	c.SetReadDeadline(time.Time{})
	rep := Reply{Version: Version, Daemon: s.version}
	var req Request
	if err := json.Unmarshal(line, &req); err != nil {
		rep.Error = "bad request: " + err.Error()
	} else if data, err := s.handle(s.ctx, req); err != nil {
		rep.Error = err.Error()
	} else {
		rep.OK = true
		if data != nil {
			if rep.Data, err = json.Marshal(data); err != nil {
				rep.OK, rep.Error = false, "encoding reply: "+err.Error()
			}
		}
	}
	b, _ := json.Marshal(rep)
	c.SetWriteDeadline(time.Now().Add(5 * time.Second))
	c.Write(append(b, '\n'))
}

// Close stops accepting, cancels the context given to running handlers,
// waits for them, and removes the socket. It is safe to call more than once.
func (s *Server) Close() error {
	s.once.Do(func() {
		s.ln.Close()
		s.cancel()
	})
	s.wg.Wait()
	return nil
}
