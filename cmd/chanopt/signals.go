package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sync"
	"syscall"

	"github.com/urfave/cli/v2"
)

// interrupts handles SIGINT and SIGTERM for one run of the CLI: it cancels the run's context
// (optimizer.Shrink stops at its next step), removes the temporary files of every registered
// output plan, prints one line and exits 130 (SIGINT) or 143 (SIGTERM), as shells report them.
// The exit does not wait for the work to notice the cancellation: nothing it would still write
// can matter once the temporary files are gone.
type interrupts struct {
	mu    sync.Mutex
	plans []*outputPlan
}

const interruptsKey = "interrupts"

// watchSignals installs the handler; stop uninstalls it. exit is os.Exit outside tests.
func watchSignals(stderr io.Writer, exit func(int)) (context.Context, *interrupts, func()) {
	ctx, cancel := context.WithCancel(context.Background())
	in := &interrupts{}
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	done := make(chan struct{})
	go func() {
		select {
		case s := <-sigs:
			cancel()
			in.mu.Lock()
			for _, p := range in.plans {
				p.cleanup()
			}
			in.mu.Unlock()
			code, name := 130, "SIGINT"
			if s == syscall.SIGTERM {
				code, name = 143, "SIGTERM"
			}
			fmt.Fprintf(stderr, "chanopt: interrupted by %s; temporary files removed\n", name)
			exit(code)
		case <-done:
		}
	}()
	return ctx, in, func() {
		signal.Stop(sigs)
		close(done)
		cancel()
	}
}

// newPlan makes the output plan of a command, cleaned up by the signal handler if one runs.
func newPlan(c *cli.Context) *outputPlan {
	p := &outputPlan{}
	if in, ok := c.App.Metadata[interruptsKey].(*interrupts); ok {
		in.mu.Lock()
		in.plans = append(in.plans, p)
		in.mu.Unlock()
	}
	return p
}
