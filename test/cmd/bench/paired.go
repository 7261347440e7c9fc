package main

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// Side by side. The host's speed moves within a minute: the same run's
// work took up to twice the CPU time of the run before it, in the
// handler, this process and every control-plane process together, so the
// throughput ratio of runs made one after the other ranged from 0.6× to
// 1.7× between repetitions of the same code. A paired run sends events to
// the handler and makes the floor's raw creates at the same time, each
// with its own n tasks at the same concurrency, against the same control
// plane: whatever the host does meets both, and the ratio of what each
// got through in the same time is what ours costs the control plane
// against the floor, in its work and in the time ours' events spend
// outside it.

// pair is what a paired run got through: each side's events per second
// until the first side finished, and how long that was.
type pair struct {
	ours, floor float64
	window      time.Duration
}

// pairedRun sends n events to a new handler at concurrency conc and, at
// the same time, creates n tasks' objects with raw client-go at the same
// concurrency. Each side's throughput counts what it finished before the
// first side finished all of its own: after that the other would have the
// control plane to itself.
func (b *bench) pairedRun(ctx context.Context, conc, n int) (pair, error) {
	p, _, err := b.warmHandler(ctx, fmt.Sprintf("paired-c%d", conc), b.o.qps, b.o.burst)
	if err != nil {
		return pair{}, err
	}
	defer stop(p)
	defer b.send.closeIdle() // first: p then drains at once
	f, objs, err := b.warmFloor(ctx, fmt.Sprintf("paired-floor-c%d", conc), n, b.o.qps, b.o.burst)
	if err != nil {
		return pair{}, err
	}
	tasks := b.ids.newTasks(n)
	if err := b.settle(ctx); err != nil {
		return pair{}, err
	}
	var (
		wg     sync.WaitGroup
		co, cf calls
		eo, ef error
	)
	wg.Go(func() {
		co, eo = drive(ctx, n, conc, func(ctx context.Context, i int) error { return b.send.post(ctx, p.URL, tasks[i].body) })
	})
	wg.Go(func() {
		cf, ef = drive(ctx, n, conc, func(ctx context.Context, i int) error { return f.create(ctx, objs[i]) })
	})
	wg.Wait()
	if err := runErr("handler, side by side", co, eo, p); err != nil {
		return pair{}, err
	}
	if ef == nil && len(cf.failed) > 0 {
		ef = fmt.Errorf("%d of %d failed, the first: %w", len(cf.failed), n, cf.failed[0])
	}
	if ef != nil {
		return pair{}, fmt.Errorf("floor, side by side: %w", ef)
	}
	b.oursSent.add(n, co.failed)
	w := min(co.wall, cf.wall)
	return pair{ours: float64(co.doneBy(w)) / w.Seconds(), floor: float64(cf.doneBy(w)) / w.Seconds(), window: w}, nil
}

// pairs collects the paired runs at one concurrency.
type pairs struct{ ours, floor, window runs }

func (s *pairs) add(p pair) {
	s.ours = append(s.ours, p.ours)
	s.floor = append(s.floor, p.floor)
	s.window = append(s.window, p.window.Seconds())
}

// pairedWhy explains a side-by-side throughput ratio below the target.
func pairedWhy(c int, pr *pairs) string {
	return fmt.Sprintf("the handler and the floor each kept %d events in flight against the same control plane at the same time, so the host's speed was the same for both; in the %s s until the first finished, the control plane got through fewer of ours' events than of the floor's: each of ours' events cost it more, or spent longer outside it (the Engine's calls, the hop to the handler). The runs one after the other at c=%d measure each side alone (rows below).",
		c, pr.window.format(1, false), c)
}
