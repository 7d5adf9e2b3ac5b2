// Command wh builds and runs peer-to-peer encrypted overlay networks.
//
// See `wh --help` and the project README.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], stdio{In: os.Stdin, Out: os.Stdout, Err: os.Stderr, IsTerminal: func() bool { return isTerminal(os.Stderr) }})
	stop()
	os.Exit(code)
}
