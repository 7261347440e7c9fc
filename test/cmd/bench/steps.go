package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/pprof"
	"strings"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/boomerang-io/flow-tekton-handler/function"
	"github.com/boomerang-io/flow-tekton-handler/function/handler"
	"github.com/boomerang-io/flow-tekton-handler/internal/contract"
	"github.com/boomerang-io/flow-tekton-handler/internal/engine"
	"github.com/boomerang-io/flow-tekton-handler/internal/kube"
	"github.com/boomerang-io/flow-tekton-handler/internal/outcome"
	pipelinev1 "github.com/boomerang-io/flow-tekton-handler/internal/pipelinev1"
	"github.com/boomerang-io/flow-tekton-handler/internal/tekton"
)

// stepNames are the steps of the handler's work for a new task event, in
// its order (function/handler: create). The workspace claims are read once
// per workflow run, with the run's first task, so not here.
var stepNames = []string{
	"decode + build", "GET Engine task", "POST configmap (claim)", "PUT Engine start", "POST taskrun",
}

// steps replays the handler's work for one task event at a time in this
// process, with the handler's own packages (internal/kube, internal/engine,
// internal/tekton) and configuration, and times each step: a profile of
// where the time of an event goes, which the process cannot give. It then
// profiles the handler's CPU in this process, and replays the sink.
func (b *bench) steps(ctx context.Context) error {
	n := b.o.steps
	if n <= 0 {
		return nil
	}
	ns, err := b.namespace(ctx, "steps")
	if err != nil {
		return err
	}
	cfg, err := loadConfig(b.env(ns, b.o.qps, b.o.burst))
	if err != nil {
		return err
	}
	opts := function.TektonOptions(cfg)
	rc, err := kube.RESTConfig(cfg.Kubeconfig, cfg.KubeQPS, cfg.KubeBurst)
	if err != nil {
		return err
	}
	kc, err := kube.NewForConfig(rc, ns, cfg.KubeTimeout)
	if err != nil {
		return err
	}
	ec := engine.New(engine.Options{BaseURL: cfg.EngineURL, Token: cfg.EngineToken, Timeout: cfg.EngineTimeout, RetryBudget: cfg.EngineRetryBudget})

	lat := make([][]time.Duration, len(stepNames))
	var made []string
	for i, tk := range b.ids.newTasks(warmups + n) {
		d, name, err := replayTask(ctx, kc, ec, opts, tk.data)
		if err != nil {
			return err
		}
		if i >= warmups {
			for s := range d {
				lat[s] = append(lat[s], d[s])
			}
			made = append(made, name)
		}
	}
	b.note("%s", stepsLine(fmt.Sprintf("Where an event's time goes: the handler's steps for a new task replayed in this process with its own packages and configuration, one event at a time, %d events", n), stepNames, lat))
	if err := b.sinkSteps(ctx, kc, ec, opts.Prefix, made); err != nil {
		return err
	}
	return b.profileHandler(ctx, kc, ec, opts)
}

// replayTask does the handler's steps for a new task, one after the
// other, and times each.
func replayTask(ctx context.Context, kc *kube.Client, ec *engine.Client, opts tekton.Options, data []byte) ([5]time.Duration, string, error) {
	var d [5]time.Duration
	lap := func(s int, t0 time.Time) { d[s] += time.Since(t0) }
	t0 := time.Now()
	t, err := contract.DecodeTaskRun(data)
	if err != nil {
		return d, "", err
	}
	task, err := tekton.BuildTask(t, nil, "", opts)
	if err != nil {
		return d, "", err
	}
	metav1.SetMetaDataAnnotation(&task.ConfigMap.ObjectMeta, contract.AnnotationClaimed, contract.ClaimValue(time.Now()))
	lap(0, t0)
	steps := []func() error{
		func() error { _, err := ec.GetTaskRun(ctx, t.ID); return err },
		func() error { _, _, err := kc.CreateConfigMap(ctx, task.ConfigMap); return err },
		func() error { _, err := ec.StartTaskRun(ctx, t.ID); return err },
		func() error { _, _, err := kc.CreateTaskRun(ctx, task.TaskRun); return err },
	}
	for i, step := range steps {
		t0 := time.Now()
		if err := step(); err != nil {
			return d, "", err
		}
		lap(i+1, t0)
	}
	return d, task.TaskRun.Name, nil
}

// profileEvents is how many events profileHandler sends, at profileConc.
const (
	profileEvents = 300
	profileConc   = 32
)

// profileHandler runs the handler (function/handler, its Handle, without
// func-go's HTTP server in front) in this process on new task events at
// profileConc and notes the top entries of its CPU profile.
func (b *bench) profileHandler(ctx context.Context, kc *kube.Client, ec *engine.Client, opts tekton.Options) error {
	h := handler.New(kc, ec, opts, 1<<20, slog.New(slog.NewJSONHandler(io.Discard, nil)))
	tasks := b.ids.newTasks(profileEvents)
	events := make([]event.Event, len(tasks))
	for i, t := range tasks {
		if err := json.Unmarshal(t.body, &events[i]); err != nil {
			return err
		}
	}
	path := filepath.Join(b.tmp, "handler.cpu.pprof")
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := pprof.StartCPUProfile(f); err != nil {
		return err
	}
	c, err := drive(ctx, len(events), profileConc, func(ctx context.Context, i int) error { return h.Handle(ctx, events[i]) })
	pprof.StopCPUProfile()
	if err == nil && len(c.failed) > 0 {
		err = c.failed[0]
	}
	if err != nil {
		return fmt.Errorf("profile the handler: %w", err)
	}
	top, err := exec.CommandContext(ctx, "go", "tool", "pprof", "-top", "-cum", "-nodecount=25", path).Output()
	if err != nil {
		return fmt.Errorf("go tool pprof: %w", err)
	}
	b.note("CPU profile of this process while it runs the handler's Handle (no HTTP server in front; the Engine stand-in runs in this process too) on %d events at c=%d, go tool pprof -top -cum:\n\n```text\n%s```", profileEvents, profileConc, pprofTop(string(top)))
	return nil
}

// pprofTop keeps the table of go tool pprof -top: its header line and
// entries.
func pprofTop(out string) string {
	var b strings.Builder
	for _, line := range strings.Split(out, "\n") {
		if f := strings.Fields(line); len(f) >= 5 && f[0] == "flat" || len(f) >= 6 && strings.HasSuffix(f[1], "%") {
			// A generic function's type arguments take a line each.
			if i := strings.Index(line, "[go.shape."); i >= 0 {
				line = line[:i] + "[…]" + line[strings.LastIndex(line, "]")+1:]
			}
			b.WriteString(strings.TrimSpace(line) + "\n")
		}
	}
	return b.String()
}

// sinkStepNames are the steps of the sink's report of a TaskRun its watch
// saw finish (function/sink: reportSeen): the watch holds the TaskRun (the
// GET stands for it, and is not on the sink's path), and the report's
// first claim is a patch with no read, which the sink usually makes
// earlier, when its pod watch sees the steps end (claimEarly).
var sinkStepNames = []string{"GET taskrun (the watch holds it)", "decide", "PATCH configmap (first claim; made when the steps end, before the TaskRun finishes, where the pod watch sees that first)", "PUT Engine end", "PATCH reported mark"}

// sinkSteps waits for the TaskRuns the replay made to finish, then replays
// the sink's report of each and times its steps.
func (b *bench) sinkSteps(ctx context.Context, kc *kube.Client, ec *engine.Client, product string, names []string) error {
	wctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	for {
		trs, err := kc.ListTaskRuns(wctx, "", 500)
		if err != nil {
			return err
		}
		finished := 0
		for i := range trs {
			if c := trs[i].Status.GetCondition(pipelinev1.ConditionSucceeded); c != nil && !c.IsUnknown() {
				finished++
			}
		}
		if finished >= len(trs) {
			break
		}
		select {
		case <-wctx.Done():
			return fmt.Errorf("%d of %d replayed TaskRuns finished: %w", finished, len(trs), wctx.Err())
		case <-time.After(time.Second):
		}
	}
	lat := make([][]time.Duration, len(sinkStepNames))
	for _, name := range names {
		var d [5]time.Duration
		t0 := time.Now()
		tr, err := kc.GetTaskRun(ctx, name)
		if err != nil {
			return err
		}
		d[0] = time.Since(t0)

		t0 = time.Now()
		decision, rep, why := outcome.Decide(tr, product)
		if decision != outcome.ReportEnd {
			return fmt.Errorf("taskrun %s: no end call to replay: %s", name, why)
		}
		d[1] = time.Since(t0)

		t0 = time.Now()
		want := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: tekton.ConfigMapName(product, rep.TaskRunRef),
			Labels: map[string]string{contract.LabelTaskRunRef: rep.TaskRunRef}}}
		tekton.SetOwner(want, tr)
		if won, err := kc.ClaimReportFirst(ctx, want, time.Now()); err != nil || !won {
			return fmt.Errorf("claim the report of taskrun %s: won %v, %v", name, won, err)
		}
		d[2] = time.Since(t0)

		t0 = time.Now()
		if err := ec.EndTaskRun(ctx, rep.TaskRunRef, rep.End); err != nil {
			return err
		}
		d[3] = time.Since(t0)

		t0 = time.Now()
		if err := kc.MarkReported(ctx, name, "true", false, time.Now()); err != nil {
			return err
		}
		d[4] = time.Since(t0)
		for s := range d {
			lat[s] = append(lat[s], d[s])
		}
	}
	b.note("%s", stepsLine(fmt.Sprintf("The sink's steps for a finished TaskRun replayed the same way, %d TaskRuns (the end call arrives after the fourth, or after the second when the claim was made early; decoding Tekton's event is in the micro-benchmarks)", len(names)), sinkStepNames, lat))
	return nil
}

// stepsLine renders the p50 and p99 of each step.
func stepsLine(what string, names []string, lat [][]time.Duration) string {
	var parts []string
	for s, name := range names {
		parts = append(parts, fmt.Sprintf("%s %.2f / %.2f", name, ms(percentile(lat[s], 50)), ms(percentile(lat[s], 99))))
	}
	return fmt.Sprintf("%s, p50 / p99 ms: %s.", what, strings.Join(parts, "; "))
}
