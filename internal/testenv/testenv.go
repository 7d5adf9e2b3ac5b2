// Package testenv decides what a test does when this machine lacks what it
// needs (root, a tool): it skips, saying what is missing, except in CI
// (CI=true), where everything must be there and a skip would hide a
// regression: there it fails.
//
// Only skips for the environment go through here. A test that skips for
// another reason (-short, a helper process run by its parent, a CPU
// feature no package installs) calls t.Skip itself.
package testenv

import (
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
)

// TB is what testenv needs of a test: a testing.TB, or e2e/lab's T.
type TB interface {
	Helper()
	Skip(args ...any)
	Fatal(args ...any)
}

// CI reports whether the tests run in CI: CI=true, as CI services set it
// and .ci/run does.
func CI() bool {
	v, _ := strconv.ParseBool(os.Getenv("CI"))
	return v
}

// Skip skips t because this machine lacks something, or fails it in CI.
func Skip(t TB, reason string) {
	t.Helper()
	if CI() {
		t.Fatal(reason + " (CI=true: in CI a test does not skip for lack of root or tools)")
		return
	}
	t.Skip(reason)
}

// NeedRoot skips t (fails it in CI) unless it runs as root.
func NeedRoot(t TB, why string) {
	t.Helper()
	if os.Geteuid() != 0 {
		Skip(t, "needs root: "+why)
	}
}

// NeedTools skips t (fails it in CI) unless every tool is on PATH.
func NeedTools(t TB, tools ...string) {
	t.Helper()
	if m := Missing(tools...); len(m) > 0 {
		Skip(t, fmt.Sprintf("needs %s (scripts/deps.sh installs it)", strings.Join(m, ", ")))
	}
}

// Missing returns the tools that are not on PATH.
func Missing(tools ...string) []string {
	var m []string
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			m = append(m, tool)
		}
	}
	return m
}
