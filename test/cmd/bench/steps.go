package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/boomerang-io/flow-tekton-handler/internal/contract"
	"github.com/boomerang-io/flow-tekton-handler/internal/engine"
	"github.com/boomerang-io/flow-tekton-handler/internal/kube"
	"github.com/boomerang-io/flow-tekton-handler/internal/tekton"
)

// stepNames are the steps of the handler's work for a task event, in its
// order (function/handler: execute), and one more: the claim List served
// from the watch cache as it is.
var stepNames = []string{
	"decode + build", "GET taskrun", "LIST persistentvolumeclaims", "PUT Engine start",
	"POST taskrun", "POST configmap", "LIST persistentvolumeclaims resourceVersion=0 (not a handler step)",
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
	opts := tekton.OptionsFrom(cfg)
	rc, err := kube.RESTConfig(cfg.Kubeconfig, cfg.KubeQPS, cfg.KubeBurst)
	if err != nil {
		return err
	}
	kc, err := kube.NewForConfig(rc, ns, cfg.KubeTimeout)
	if err != nil {
		return err
	}
	raw, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return err
	}
	ec := engine.New(engine.Options{BaseURL: cfg.EngineURL, Token: cfg.EngineToken, Timeout: cfg.EngineTimeout, RetryBudget: cfg.EngineRetryBudget})

	lat := make([][]time.Duration, len(stepNames))
	for i, tk := range b.ids.newTasks(warmups + n) {
		var d [7]time.Duration
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
		selector := tekton.ClaimSelector(opts.Prefix, t.WorkflowRef, t.WorkflowRunRef)
		pvcs, err := kc.ListPVCs(ctx, selector)
		if err != nil {
			return err
		}
		d[2] = time.Since(t0)

		t0 = time.Now()
		task, err := tekton.BuildTask(t, tekton.Claims(pvcs, t.WorkflowRef, t.WorkflowRunRef), "", opts)
		if err != nil {
			return err
		}
		d[0] += time.Since(t0)

		t0 = time.Now()
		if err := ec.StartTaskRun(ctx, t.ID); err != nil {
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

		t0 = time.Now()
		if _, err := raw.CoreV1().PersistentVolumeClaims(ns).List(ctx, metav1.ListOptions{LabelSelector: selector, ResourceVersion: "0"}); err != nil {
			return err
		}
		d[6] = time.Since(t0)

		if i >= warmups {
			for s := range d {
				lat[s] = append(lat[s], d[s])
			}
		}
	}
	var parts []string
	for s, name := range stepNames {
		parts = append(parts, fmt.Sprintf("%s %.2f / %.2f", name, ms(percentile(lat[s], 50)), ms(percentile(lat[s], 99))))
	}
	line := fmt.Sprintf("Where an event's time goes: the handler's steps replayed in this process with its own packages and configuration, one event at a time, %d events, p50 / p99 ms: %s.",
		n, strings.Join(parts, "; "))
	if ms(percentile(lat[2], 50)) > 4*ms(percentile(lat[6], 50))+5 {
		line += " The claim LIST is a consistent read (resourceVersion unset): the apiserver answers it from its watch cache only once the cache has caught up with etcd's current revision, and for a resource nobody changes that takes the next watch-progress request, sent every 100 ms while a read waits (k8s.io/apiserver, storage/cacher/progress, progressRequestPeriod)."
	}
	b.note("%s", line)
	return nil
}
