// Command bench measures the handler and the sink against floors measured
// in the same run, on the embedded control plane, and writes one Markdown
// table (metric | ours | floor | ratio | target | met) with notes and the
// Go micro-benchmarks of test/bench to -out.
//
// Figures, each the median of -reps runs (-cold-reps for cold starts,
// -throughput-reps for event → TaskRun) with min and max:
//
//  1. Cold start, exec → /health/readiness 200, of bin/handler, bin/sink and
//     a bare func-go function built here through the same scaffolding.
//  2. Engine event → TaskRun and ConfigMap created, -events distinct events
//     at each -concurrency, against raw client-go creates of the same
//     objects (built by the same pure builders) at the same concurrency and
//     the same client-side rate limit (-qps, -burst; by default the shipped
//     one), and against the contract's own calls made by hand, with
//     Tekton's controller paused and the control plane on CPUs of its own.
//     Each run begins once the control plane has settled from the one
//     before. At c=8 and c=32 the handler and the floor also run side by
//     side, at the same time, so that the host's speed is the same for
//     both: the throughput target is held there.
//  3. A duplicate storm: -storm-copies concurrent copies of each of
//     -storm-events events must make exactly one TaskRun each.
//  4. TaskRun completion → Engine end call, through Tekton's events
//     controller and the sink, against the arrival of Tekton's event.
//  5. Resident memory idle and under load, and binary sizes.
//  6. A finished task's log through the logs role (FUNCTION=logs): time to
//     the first byte against client-go's pods/log stream, and throughput of
//     a 12 MB log against kubectl logs.
//
// It also replays the handler's and the sink's steps in-process to show
// where an event's time goes, and traces package initialisation for the
// cold start.
//
// Progress goes to stderr; the results go to stdout and -out.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// options are the command-line settings.
type options struct {
	bin          string
	out          string
	reps         int
	coldReps     int
	tputReps     int
	events       int
	concurrency  []int
	qps          float64
	burst        int
	stormEvents  int
	stormCopies  int
	completions  int
	steps        int
	gap          time.Duration
	timeout      time.Duration
	gobenchCount int
	stages       map[string]bool // empty: all
}

func main() {
	var o options
	var conc, stages string
	flag.StringVar(&o.bin, "bin", "bin", "directory with handler and sink")
	flag.StringVar(&o.out, "out", "test/bench/RESULTS.md", "results file")
	flag.IntVar(&o.reps, "reps", 3, "repetitions of every figure")
	flag.IntVar(&o.coldReps, "cold-reps", 45, "repetitions of the cold start (a multiple of 3 gives each program every place in the order equally often)")
	flag.IntVar(&o.tputReps, "throughput-reps", 6, "repetitions of the event → TaskRun runs (a multiple of 3 gives each kind every place in the order equally often)")
	flag.IntVar(&o.events, "events", 500, "distinct events per throughput run")
	flag.StringVar(&conc, "concurrency", "1,8,32", "concurrency levels of the throughput runs")
	flag.Float64Var(&o.qps, "qps", 0, "KUBE_QPS of the functions and the floors' clients (0: the shipped default)")
	flag.IntVar(&o.burst, "burst", 0, "KUBE_BURST of the functions and the floors' clients (0: the shipped default)")
	flag.IntVar(&o.stormEvents, "storm-events", 100, "distinct events of the duplicate storm")
	flag.IntVar(&o.stormCopies, "storm-copies", 32, "concurrent copies of each storm event")
	flag.IntVar(&o.completions, "completions", 25, "TaskRuns per completion run")
	flag.DurationVar(&o.timeout, "request-timeout", 30*time.Second, "timeout of one POST to a function")
	flag.IntVar(&o.steps, "steps", 50, "events of the in-process replay of the handler's and the sink's steps (0: skip)")
	flag.DurationVar(&o.gap, "completion-gap", 200*time.Millisecond, "time between the completion run's events")
	flag.IntVar(&o.gobenchCount, "gobench-count", 5, "go test -count for test/bench (0: skip)")
	flag.StringVar(&stages, "stages", "", "comma-separated stages to run (cold, memory, completion, throughput, steps, storm, logs); empty: all")
	flag.Parse()
	var err error
	if o.concurrency, err = parseInts(conc); err != nil {
		fmt.Fprintln(os.Stderr, "bench: -concurrency:", err)
		os.Exit(2)
	}
	if stages != "" {
		o.stages = map[string]bool{}
		for _, s := range strings.Split(stages, ",") {
			o.stages[strings.TrimSpace(s)] = true
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	began := time.Now()
	if err := run(ctx, o); err != nil {
		fmt.Fprintf(os.Stderr, "bench FAILED after %s: %v\n", time.Since(began).Round(time.Second), err)
		os.Exit(1)
	}
	fmt.Fprintf(os.Stderr, "bench done in %s; results in %s\n", time.Since(began).Round(time.Second), o.out)
}

// parseInts parses "1,8,32".
func parseInts(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n <= 0 {
			return nil, fmt.Errorf("%q is not a positive number", f)
		}
		out = append(out, n)
	}
	return out, nil
}

// say prints a progress line to stderr.
func say(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "%s  bench: %s\n", time.Now().Format("15:04:05.000"), fmt.Sprintf(format, args...))
}
