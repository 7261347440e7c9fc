package main

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/boomerang-io/flow-tekton-handler/test/fnproc"
)

// Targets from the issue.
const (
	coldStartTarget  = 2.0 // × the bare function
	idleRSSTargetMB  = 40
	throughputTarget = 0.9 // × the floor
	addedTargetMs    = 5.0 // added latency at p50 (the issue's), and at p99 (†)
)

// mb converts bytes to megabytes (10^6).
func mb(n int64) float64 { return float64(n) / 1e6 }

// fnBins are the programs measured against the bare function.
var fnBins = []string{"handler", "sink"}

// sizes compares the binaries' sizes with the bare function's.
func (b *bench) sizes() error {
	hello, err := os.Stat(b.hello)
	if err != nil {
		return err
	}
	handler, err := os.Stat(filepath.Join(b.o.bin, "handler"))
	if err != nil {
		return fmt.Errorf("%w (run make build first)", err)
	}
	sink, err := os.Stat(filepath.Join(b.o.bin, "sink"))
	if err != nil {
		return fmt.Errorf("%w (run make build first)", err)
	}
	what := "bin/handler"
	if os.SameFile(handler, sink) {
		what = "bin/handler = bin/sink (one file)"
	}
	ours, floor := runs{mb(handler.Size())}, runs{mb(hello.Size())}
	b.rows = append(b.rows, row{
		metric: "binary size as func builds it: " + what + " (MB)",
		ours:   ours.format(1, false),
		floor:  floor.format(1, false),
		ratio:  ratioText(ratios(ours, floor)),
		target: fmt.Sprintf("≤ %d MB", binarySizeTargetMB),
		met:    ours.median() <= binarySizeTargetMB,
	})
	return nil
}

// binarySizeTargetMB is the issue's.
const binarySizeTargetMB = 40

// coldStarts measures exec → readiness 200 of the handler, the sink and
// the bare function, taking turns to go first (rotate) so that drift and
// the page cache the one before left hit all three alike.
func (b *bench) coldStarts(ctx context.Context) error {
	ns, err := b.namespace(ctx, "cold")
	if err != nil {
		return err
	}
	env := b.env(ns, b.o.qps, b.o.burst)
	type prog struct {
		name, path string
		env        map[string]string
	}
	progs := []prog{{"hello", b.hello, nil}}
	for _, name := range fnBins {
		progs = append(progs, prog{name, filepath.Join(b.o.bin, name), env})
	}
	for _, p := range progs { // warms the page cache
		if _, _, err := coldStart(ctx, p.path, p.env); err != nil {
			return err
		}
	}
	times := make([]runs, len(progs))
	starts := make([]func() error, len(progs))
	for i, p := range progs {
		starts[i] = func() error {
			d, _, err := coldStart(ctx, p.path, p.env)
			if err != nil {
				return err
			}
			times[i] = append(times[i], ms(d))
			return nil
		}
	}
	for rep := range b.o.coldReps {
		if err := rotate(rep, starts...); err != nil {
			return err
		}
	}
	say("cold start (ms): hello %s, handler %s, sink %s", times[0].format(1, false), times[1].format(1, false), times[2].format(1, false))
	for i, name := range fnBins {
		r := ratios(times[i+1], times[0])
		b.rows = append(b.rows, row{
			metric: fmt.Sprintf("cold start, exec → readiness 200: bin/%s (ms)", name),
			ours:   times[i+1].format(1, false),
			floor:  times[0].format(1, false),
			ratio:  ratioText(r),
			target: fmt.Sprintf("≤ %g×", coldStartTarget),
			met:    r.median() <= coldStartTarget,
		})
	}

	// Where the time goes: package initialisation, as the runtime traces it.
	for _, p := range []prog{progs[1], progs[0]} {
		traced := map[string]string{"GODEBUG": "inittrace=1"}
		for k, v := range p.env {
			traced[k] = v
		}
		_, out, err := coldStart(ctx, p.path, traced)
		if err != nil {
			return err
		}
		total, n, top := parseInitTrace(out)
		line := fmt.Sprintf("Package initialisation (GODEBUG=inittrace=1, one start) of %s: %.1f ms in %d packages", p.name, total, n)
		if p.name != "hello" && len(top) > 0 {
			line += "; the slowest: " + strings.Join(top, ", ")
		}
		b.note("%s.", line)
	}
	return nil
}

// parseInitTrace sums the clock time of the runtime's init trace lines
// ("init <pkg> @<t> ms, <clock> ms clock, ...") and names the five slowest
// packages.
func parseInitTrace(out string) (total float64, n int, top []string) {
	type pkg struct {
		name string
		ms   float64
	}
	var pkgs []pkg
	sc := bufio.NewScanner(strings.NewReader(out))
	sc.Buffer(make([]byte, 64*1024), 1<<20)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		// init NAME @T ms, CLOCK ms clock, ...
		if len(f) < 7 || f[0] != "init" || !strings.HasPrefix(f[2], "@") || f[6] != "clock," {
			continue
		}
		v, err := strconv.ParseFloat(f[4], 64)
		if err != nil {
			continue
		}
		pkgs = append(pkgs, pkg{f[1], v})
		total += v
	}
	slices.SortFunc(pkgs, func(a, b pkg) int {
		switch {
		case a.ms > b.ms:
			return -1
		case a.ms < b.ms:
			return 1
		}
		return strings.Compare(a.name, b.name)
	})
	for _, p := range pkgs[:min(5, len(pkgs))] {
		top = append(top, fmt.Sprintf("%s %.2f ms", p.name, p.ms))
	}
	return total, len(pkgs), top
}

// idleMemory reads the resident memory of each function and the bare one
// two seconds after they became ready.
func (b *bench) idleMemory(ctx context.Context) error {
	ns, err := b.namespace(ctx, "idle")
	if err != nil {
		return err
	}
	rss := make([]runs, 1+len(fnBins))
	anon := make([]runs, 1+len(fnBins))
	file := make([]runs, 1+len(fnBins))
	for range b.o.reps {
		procs := make([]*fnproc.Proc, 0, len(rss))
		hello, err := fnproc.Start(ctx, b.hello, nil)
		if err != nil {
			return err
		}
		procs = append(procs, hello)
		for _, name := range fnBins {
			p, err := b.startFunction(ctx, name, ns, b.o.qps, b.o.burst)
			if err != nil {
				return err
			}
			procs = append(procs, p)
		}
		time.Sleep(2 * time.Second)
		for i, p := range procs {
			m, err := readMemory(p.Cmd.Process.Pid)
			if err != nil {
				return err
			}
			rss[i] = append(rss[i], mb(m.rss))
			anon[i] = append(anon[i], mb(m.anon))
			file[i] = append(file[i], mb(m.file))
			stop(p)
		}
	}
	for i, name := range fnBins {
		ours := rss[i+1]
		b.rows = append(b.rows, row{
			metric: fmt.Sprintf("RSS idle (VmRSS 2 s after ready): %s (MB)", name),
			ours:   ours.format(1, false),
			floor:  rss[0].format(1, false),
			ratio:  ratioText(ratios(ours, rss[0])),
			target: fmt.Sprintf("≤ %d MB", idleRSSTargetMB),
			met:    ours.median() <= idleRSSTargetMB,
		})
	}
	names := append([]string{"hello"}, fnBins...)
	var parts []string
	for i, name := range names {
		parts = append(parts, fmt.Sprintf("%s %s MB anonymous (heap, stacks) + %s MB file-backed (the binary's pages)",
			name, anon[i].format(1, false), file[i].format(1, false)))
	}
	b.note("Idle VmRSS is %s (RssAnon + RssFile; the rest is shared memory).", strings.Join(parts, "; "))
	return nil
}
