package e2e

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"
)

// TestFirstPing: from starting a boot node and two nodes (three `wh up`
// at once, each returning once its daemon is up), the first ping across
// the overlay comes back within a second or two. It guards the handshake
// that would otherwise be lost while the path is being found (or cross
// the peer's), which costs WireGuard's 5 s retry.
func TestFirstPing(t *testing.T) {
	for run := range 3 {
		l := newLab(t)
		boot := newMember(t, l, "boot", l.Public("boot"), 8)
		a := newMember(t, l, "a", l.Public("a"), 8)
		b := newMember(t, l, "b", l.Public("b"), 8)
		conf := filepath.Join(l.Dir(), "n.conf")
		writeFile(t, conf, fmt.Sprintf("name fp\nsubnet 10.0.42.0/24\nboot %s %s:62096\ntrust a %s\ntrust b %s\n",
			boot.pub(), boot.host.Addr, a.pub(), b.pub()))
		start := time.Now()
		upped := make(chan error, 1)
		go func() {
			upped <- startAll(conf, []*member{boot, a, b}, func(m *member) []string {
				if m == boot {
					return []string{"listen-port", "62096"}
				}
				return nil
			})
		}()
		var took time.Duration
		for time.Since(start) < 15*time.Second {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			// Fails at once until a's interface exists, then pings every
			// 10 ms until the first reply.
			_, err := a.host.Run(ctx, "ping", "-n", "-q", "-c1", "-w3", "-i0.01", "10.0.42.3")
			cancel()
			if err == nil {
				took = time.Since(start)
				break
			}
			time.Sleep(5 * time.Millisecond)
		}
		if err := <-upped; err != nil {
			t.Fatal(err)
		}
		t.Logf("run %d: first ping after %v", run+1, took.Round(time.Millisecond))
		if took == 0 || took > 2*time.Second {
			t.Fatalf("run %d: first ping after %v, want ≤ 2s", run+1, took)
		}
	}
}
