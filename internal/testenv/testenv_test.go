package testenv

import (
	"fmt"
	"strings"
	"testing"
)

// recorder is a TB that records what a helper did instead of stopping.
type recorder struct {
	skipped, failed string
}

func (r *recorder) Helper()           {}
func (r *recorder) Skip(args ...any)  { r.skipped = fmt.Sprint(args...) }
func (r *recorder) Fatal(args ...any) { r.failed = fmt.Sprint(args...) }

func TestSkipFailsInCI(t *testing.T) {
	for _, tc := range []struct {
		ci       string
		wantFail bool
	}{{"", false}, {"false", false}, {"0", false}, {"true", true}, {"1", true}} {
		t.Run("CI="+tc.ci, func(t *testing.T) {
			t.Setenv("CI", tc.ci)
			var r recorder
			NeedTools(&r, "sh", "wh-no-such-tool-on-path")
			got := r.skipped
			if tc.wantFail {
				got = r.failed
			}
			if !strings.Contains(got, "needs wh-no-such-tool-on-path (") {
				t.Errorf("skipped %q, failed %q: want the missing tool named in the %s",
					r.skipped, r.failed, map[bool]string{true: "failure", false: "skip"}[tc.wantFail])
			}
			if tc.wantFail && r.skipped != "" || !tc.wantFail && r.failed != "" {
				t.Errorf("CI=%q: skipped %q, failed %q", tc.ci, r.skipped, r.failed)
			}
		})
	}
}

func TestNothingMissing(t *testing.T) {
	t.Setenv("CI", "true")
	var r recorder
	NeedTools(&r)
	if r.skipped != "" || r.failed != "" {
		t.Errorf("with nothing needed: skipped %q, failed %q", r.skipped, r.failed)
	}
}
