package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"knative.dev/pkg/apis"

	"github.com/boomerang-io/flow-tekton-handler/function"
	"github.com/boomerang-io/flow-tekton-handler/internal/contract"
	"github.com/boomerang-io/flow-tekton-handler/internal/engine"
	"github.com/boomerang-io/flow-tekton-handler/internal/kube"
	"github.com/boomerang-io/flow-tekton-handler/internal/outcome"
	"github.com/boomerang-io/flow-tekton-handler/internal/tekton"
)

// stepNames are the steps of the handler's work for a new task event, in
// its order (function/handler: create; it overlaps the two reads).
var stepNames = []string{
	"decode + build", "GET taskrun", "GET the 2 workspace claims", "PUT Engine start", "POST taskrun", "POST configmap",
}

// steps replays the handler's work for one task event at a time in this
// process, with the handler's own packages (internal/kube, internal/engine,
// internal/tekton) and configuration, and times each step: a profile of
// where the time of an event goes, which the process cannot give.
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
		var d [6]time.Duration
		t0 := time.Now()
		t, err := contract.DecodeTaskRun(tk.data)
		if err != nil {
			return err
		}
		d[0] = time.Since(t0)

		t0 = time.Now()
		name := tekton.TaskRunName(opts.Prefix, t.ID)
		if _, err := kc.GetTaskRun(ctx, name); err != nil {
			return err
		}
		d[1] = time.Since(t0)

		t0 = time.Now()
		var pvcs []corev1.PersistentVolumeClaim
		for _, c := range []struct{ scope, ref string }{{contract.ScopeWorkflow, t.WorkflowRef}, {contract.ScopeWorkflowRun, t.WorkflowRunRef}} {
			pvc, err := kc.GetPVC(ctx, tekton.PVCName(opts.Prefix, c.scope, c.ref))
			if err != nil {
				return err
			}
			if pvc != nil {
				pvcs = append(pvcs, *pvc)
			}
		}
		d[2] = time.Since(t0)

		t0 = time.Now()
		task, err := tekton.BuildTask(t, tekton.Claims(pvcs, t.WorkflowRef, t.WorkflowRunRef), "", opts)
		if err != nil {
			return err
		}
		d[0] += time.Since(t0)

		t0 = time.Now()
		if _, err := ec.StartTaskRun(ctx, t.ID); err != nil {
			return err
		}
		d[3] = time.Since(t0)

		t0 = time.Now()
		tr, _, err := kc.CreateTaskRun(ctx, task.TaskRun)
		if err != nil {
			return err
		}
		d[4] = time.Since(t0)

		t0 = time.Now()
		tekton.SetOwner(task.ConfigMap, tr)
		if err := kc.CreateConfigMap(ctx, task.ConfigMap); err != nil {
			return err
		}
		d[5] = time.Since(t0)

		if i >= warmups {
			for s := range d {
				lat[s] = append(lat[s], d[s])
			}
			made = append(made, tr.Name)
		}
	}
	b.note("%s", stepsLine(fmt.Sprintf("Where an event's time goes: the handler's steps for a new task replayed in this process with its own packages and configuration, one event at a time, %d events", n), stepNames, lat))
	return b.sinkSteps(ctx, kc, ec, opts.Prefix, made)
}

// sinkStepNames are the steps of the sink's report of a finished TaskRun
// (function/sink: report).
var sinkStepNames = []string{"GET taskrun", "decide", "PUT Engine end", "PATCH reported mark"}

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
			if c := trs[i].Status.GetCondition(apis.ConditionSucceeded); c != nil && !c.IsUnknown() {
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
		var d [4]time.Duration
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
		if err := ec.EndTaskRun(ctx, rep.TaskRunRef, rep.End); err != nil {
			return err
		}
		d[2] = time.Since(t0)

		t0 = time.Now()
		if err := kc.MarkReported(ctx, name, "true", false, time.Now()); err != nil {
			return err
		}
		d[3] = time.Since(t0)
		for s := range d {
			lat[s] = append(lat[s], d[s])
		}
	}
	b.note("%s", stepsLine(fmt.Sprintf("The sink's steps for a finished TaskRun replayed the same way, %d TaskRuns (the end call arrives after the third; decoding Tekton's event is in the micro-benchmarks)", len(names)), sinkStepNames, lat))
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
