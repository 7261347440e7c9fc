//go:build e2e

package e2e

import (
	"context"
	"math/rand/v2"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/boomerang-io/flow-tekton-handler/test/enginestub"
	"github.com/boomerang-io/flow-tekton-handler/test/fnproc"
)

// Soak settings: the whole test, burst and reports, stays within
// soakBudget.
const (
	soakTasks  = 200
	soakBudget = 3 * time.Minute
	// soakFailRate is the share of Engine calls answered 503.
	soakFailRate = 0.1
	// soakSeed makes the choices (copies, delays, failures) repeatable.
	soakSeed = 13
)

// TestSoak sends 200 tasks through 3 handler and 2 sink replicas, each
// task's ready event 1 to 3 times (copies at the same instant, which reach
// different replicas, and redeliveries up to 2 s later) through Knative's
// dispatcher, while the Engine fails 10% of its calls, a handler replica is
// killed mid-burst (and replaced, as Kubernetes does) and so is a sink
// replica. Every task ends with exactly one TaskRun, one start while it was
// pending (later starts, which the Engine ignores, are counted), and one
// end; the Engine stand-in saw no violation and no event was
// dead-lettered.
func TestSoak(t *testing.T) {
	began := time.Now()
	deadline := began.Add(soakBudget)
	s := newStack(t, map[string]string{"SWEEP_INTERVAL": "2s"})
	sink := s.startSink()
	s.engine.FailRandomly(soakFailRate, http.StatusServiceUnavailable, soakSeed)

	rng := rand.New(rand.NewPCG(soakSeed, soakSeed))
	type copyPlan struct {
		task  int
		delay time.Duration
	}
	var plan []copyPlan
	for i := range soakTasks {
		plan = append(plan, copyPlan{task: i})
		for range rng.IntN(3) {
			delay := time.Duration(0) // a duplicate at the same instant
			if rng.IntN(2) == 0 {
				delay = time.Duration(rng.IntN(2000)) * time.Millisecond // a redelivery
			}
			plan = append(plan, copyPlan{task: i, delay: delay})
		}
	}
	bodies := make([][]byte, soakTasks)
	for i := range soakTasks {
		bodies[i] = customTask(t, taskID(0x1000+i))
	}

	var sent, failed atomic.Int32
	var killOnce, killSinkOnce sync.Once
	sem := make(chan struct{}, 32)
	var wg sync.WaitGroup
	for _, c := range plan {
		sem <- struct{}{}
		n := sent.Add(1)
		if n == int32(len(plan)/3) {
			killOnce.Do(func() { s.replace(s.handler, 1) })
		}
		if n == int32(2*len(plan)/3) {
			killSinkOnce.Do(func() { s.replace(sink, 0) })
		}
		wg.Go(func() {
			defer func() { <-sem }()
			if c.delay > 0 {
				time.Sleep(c.delay) // a Broker's redelivery comes later
			}
			if d := s.deliver(bodies[c.task]); d.err != nil || d.deadLetter || d.code/100 != 2 {
				failed.Add(1)
				t.Errorf("task %d: delivery answered %d %s (dead letter %v, err %v)", c.task, d.code, d.body, d.deadLetter, d.err)
			}
		})
	}
	wg.Wait()
	burst := time.Since(began)

	// Every task is reported once, within the budget.
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	err := s.engine.WaitFor(ctx, func(calls []enginestub.Call) bool {
		ended := map[string]bool{}
		for _, c := range calls {
			if c.Kind == enginestub.KindTaskRunEnd && c.Status/100 == 2 {
				ended[c.ID] = true
			}
		}
		return len(ended) == soakTasks
	})
	if err != nil {
		t.Fatalf("not every task reported within %s: %v", soakBudget, err)
	}
	if err := s.engine.Settle(ctx); err != nil {
		t.Fatal(err)
	}

	trs := map[string]int{}
	for _, tr := range s.taskRuns() {
		trs[tr.Name]++
	}
	injected, starts, ends := 0, 0, 0
	for _, c := range s.engine.Calls() {
		if c.Status == http.StatusServiceUnavailable {
			injected++
		}
	}
	for i := range soakTasks {
		id := taskID(0x1000 + i)
		if n := trs[name(id)]; n != 1 {
			t.Errorf("task %d: %d TaskRuns, want 1", i, n)
		}
		st := len(s.calls(enginestub.KindTaskRunStart, id))
		if st < 1 {
			t.Errorf("task %d: no accepted start", i)
		}
		starts += st
		if n := len(s.calls(enginestub.KindTaskRunEnd, id)); n != 1 {
			t.Errorf("task %d: %d accepted ends, want 1", i, n)
		}
		ends++
	}
	if len(trs) != soakTasks {
		t.Errorf("%d TaskRuns in the namespace, want %d", len(trs), soakTasks)
	}
	late := s.engine.LateStarts()
	if starts-late != soakTasks {
		t.Errorf("%d accepted starts, %d of them late: %d while pending, want %d", starts, late, starts-late, soakTasks)
	}
	s.noViolations()
	t.Logf("soak: %d tasks, %d deliveries (%d failed), burst %s, all reported after %s; %d TaskRuns, %d starts while pending + %d late (ignored by the Engine), %d ends; %d Engine calls answered 503 by injection",
		soakTasks, len(plan), failed.Load(), burst.Round(time.Millisecond), time.Since(began).Round(time.Millisecond),
		len(trs), starts-late, late, ends, injected)
}

// replace kills replica i of svc (SIGKILL, mid-request) and starts another
// in its place, as Kubernetes replaces a pod that died.
func (s *stack) replace(svc *fnproc.Service, i int) {
	s.t.Helper()
	if err := svc.Replicas()[i].Kill(); err != nil {
		s.t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := svc.Add(ctx); err != nil {
		s.t.Fatal(err)
	}
}
