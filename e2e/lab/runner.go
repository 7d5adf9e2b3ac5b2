package lab

import (
	"fmt"
	"os"
	"os/signal"
	"sync"
	"syscall"
)

// Runner stands in for *testing.T outside tests (the demo, benchmarks),
// so that they build their internets with the tests' lab.
type Runner struct {
	mu       sync.Mutex // serializes the cleanups with an interrupt
	cleanups []func()
	failed   bool
}

var _ T = (*Runner)(nil)

// failure is what Fatal panics with; Do recovers it.
type failure struct{ msg string }

// Do runs f with r, turns a Fatal into an error, and runs r's cleanups,
// also when the program is interrupted (Ctrl-C, SIGTERM, a closed pipe):
// no namespace or process outlives it.
func (r *Runner) Do(f func()) (err error) {
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM, syscall.SIGPIPE)
	done := make(chan struct{})
	defer close(done)
	go func() {
		select {
		case <-sig:
			r.mu.Lock()
			r.cleanupLocked()
			os.Exit(1)
		case <-done:
		}
	}()
	defer signal.Stop(sig)
	defer func() {
		if x := recover(); x != nil {
			fl, ok := x.(failure)
			if !ok {
				r.cleanup()
				panic(x)
			}
			err = fmt.Errorf("%s", fl.msg)
		}
		r.cleanup()
	}()
	f()
	return nil
}

func (r *Runner) cleanup() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.cleanupLocked()
}

func (r *Runner) cleanupLocked() {
	for i := len(r.cleanups) - 1; i >= 0; i-- {
		r.cleanups[i]()
	}
	r.cleanups = nil
}

func (r *Runner) Helper() {}
func (r *Runner) Cleanup(f func()) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.cleanups = append(r.cleanups, f)
}
func (r *Runner) Failed() bool            { return r.failed }
func (r *Runner) Logf(f string, a ...any) { fmt.Fprintf(os.Stderr, f+"\n", a...) }
func (r *Runner) Fatal(a ...any)          { r.Fatalf("%s", fmt.Sprint(a...)) }
func (r *Runner) Fatalf(f string, a ...any) {
	r.failed = true
	panic(failure{fmt.Sprintf(f, a...)})
}
func (r *Runner) Skip(a ...any) { r.Fatal(a...) }
func (r *Runner) TempDir() string {
	d, err := os.MkdirTemp("", "wh-lab-")
	if err != nil {
		r.Fatal(err)
	}
	r.Cleanup(func() { os.RemoveAll(d) })
	return d
}
