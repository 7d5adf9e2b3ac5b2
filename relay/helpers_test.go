package relay

import (
	"bytes"
	"encoding/binary"
	"errors"
	"net/netip"
	"sync"
	"testing"

	"github.com/whnet/wh/key"
	"github.com/whnet/wh/wire"
)

// fill returns a key whose bytes are all b.
func fill(b byte) key.Public {
	var k key.Public
	for i := range k {
		k[i] = b
	}
	return k
}

// wgData returns a WireGuard transport message of n ≥ 16 bytes carrying seq
// in its counter field.
func wgData(n int, seq uint64) []byte {
	b := make([]byte, n)
	b[0] = 4
	binary.LittleEndian.PutUint64(b[8:], seq)
	for i := 16; i < n; i++ {
		b[i] = byte(i)
	}
	return b
}

// seqOf returns the counter field of a packet made by wgData.
func seqOf(p []byte) uint64 { return binary.LittleEndian.Uint64(p[8:]) }

// sent is one message a recorder was asked to send, copied.
type sent struct {
	To   key.Public
	Addr netip.AddrPort
	M    wire.Message // a value, never a pointer
}

// recorder is a fake Send that keeps copies of what it is given, so that
// a caller reusing its message after Send returns shows up as corruption
// only if it changes what was sent before returning.
type recorder struct {
	mu   sync.Mutex
	sent []sent // guarded by mu
	err  error  // guarded by mu; returned by Send when set
}

var errSend = errors.New("test: send failed")

func (r *recorder) Send(to key.Public, addr netip.AddrPort, m wire.Message) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.err != nil {
		return r.err
	}
	r.sent = append(r.sent, sent{To: to, Addr: addr, M: copyMessage(m)})
	return nil
}

func (r *recorder) take() []sent {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := r.sent
	r.sent = nil
	return s
}

func (r *recorder) fail(err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.err = err
}

// copyMessage returns m as a value with its own payload.
func copyMessage(m wire.Message) wire.Message {
	switch v := m.(type) {
	case *wire.Relay:
		return wire.Relay{Dst: v.Dst, Payload: bytes.Clone(v.Payload)}
	case wire.Relay:
		return wire.Relay{Dst: v.Dst, Payload: bytes.Clone(v.Payload)}
	case *wire.Relayed:
		return wire.Relayed{Src: v.Src, Payload: bytes.Clone(v.Payload)}
	case wire.Relayed:
		return wire.Relayed{Src: v.Src, Payload: bytes.Clone(v.Payload)}
	}
	return m
}

func newTestServer(t testing.TB, cfg ServerConfig) *Server {
	t.Helper()
	s, err := NewServer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func locateIn(m map[key.Public]netip.AddrPort) func(key.Public) (netip.AddrPort, bool) {
	return func(k key.Public) (netip.AddrPort, bool) {
		a, ok := m[k]
		return a, ok
	}
}
