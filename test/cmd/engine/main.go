// Command engine serves the Engine stand-in of package enginestub, for
// trying the handler by hand (README, "Trying the handler by hand"):
//
//	engine [-addr 127.0.0.1:7701]
//
// It prints one line per call it answers on stdout, with any way the call
// broke the contract, and runs until interrupted (SIGINT or SIGTERM). It
// sees none of the events sent to the handler, so it takes any task or
// workflow run a call names as one the Engine has made, ready and pending
// (enginestub's Learn).
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/boomerang-io/flow-tekton-handler/test/enginestub"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:7701", "listen address (the handler's ENGINE_URL host and port)")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, *addr, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "engine:", err)
		os.Exit(1)
	}
}

// run serves the stand-in on addr until ctx ends, writing each call to out.
func run(ctx context.Context, addr string, out, log io.Writer) error {
	s, err := enginestub.Start(addr)
	if err != nil {
		return err
	}
	defer s.Close()
	s.Learn(true)
	fmt.Fprintf(log, "engine: Engine stand-in at %s; Ctrl-C stops it\n", s.URL())
	printed := 0
	for {
		err := s.WaitFor(ctx, func(calls []enginestub.Call) bool { return len(calls) > printed })
		for _, c := range s.Calls()[printed:] {
			fmt.Fprintln(out, Line(c))
			printed++
		}
		if err != nil {
			return nil // interrupted
		}
	}
}

// Line describes one call: method, path, the answer's status, and the
// contract violations, if any.
func Line(c enginestub.Call) string {
	status := fmt.Sprint(c.Status)
	if c.Status == 0 {
		status = "no answer"
	}
	line := fmt.Sprintf("engine: %s %s -> %s", c.Method, c.Path, status)
	if c.End != nil {
		line += fmt.Sprintf(" (status %s)", c.End.Status)
	}
	if len(c.Violations) > 0 {
		line += " VIOLATES CONTRACT: " + strings.Join(c.Violations, "; ")
	}
	return line
}
