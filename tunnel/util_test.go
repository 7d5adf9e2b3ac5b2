package tunnel

import (
	"log/slog"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// testLogger logs to the test's output, shown only on failure or with -v.
func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelInfo}))
}

func cmpDiff(want, got any) string { return cmp.Diff(want, got, peersCmp) }
