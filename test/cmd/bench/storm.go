package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/boomerang-io/flow-tekton-handler/internal/kube"
	"github.com/boomerang-io/flow-tekton-handler/internal/tekton"
	"github.com/boomerang-io/flow-tekton-handler/test/enginestub"
)

// stormTimeTarget is ours, not the issue's: the throughput target turned
// into a time (at most 1/0.9 of the floor's).
const stormTimeTarget = 1 / throughputTarget

// storm is the outcome of one duplicate storm.
type storm struct {
	wall    time.Duration
	created int     // TaskRuns of the storm's tasks
	extra   int     // TaskRuns beyond one per task, or Engine starts beyond one per task
	failed  []error // requests not answered 200 in time
}

// storms sends stormCopies concurrent copies of each of stormEvents events
// and counts the TaskRuns, against the floor: the same number of concurrent
// raw creates of each pair of objects, where AlreadyExists is success.
func (b *bench) storms(ctx context.Context) error {
	m, k := b.o.stormEvents, b.o.stormCopies
	var oursT, floorT, oursN, floorN runs
	met := true
	for rep := range b.o.reps {
		err := rotate(rep, func() error {
			return retried("handler storm", func() error {
				s, err := b.oursStorm(ctx, m, k)
				if err != nil {
					return err
				}
				say("rep %d storm handler: %d TaskRuns, %d extra, %s%s", rep+1, s.created, s.extra, s.wall.Round(time.Millisecond), failures(s.failed))
				oursT, oursN = append(oursT, s.wall.Seconds()), append(oursN, float64(s.created))
				met = met && s.created == m && s.extra == 0
				return nil
			})
		}, func() error {
			s, err := b.floorStorm(ctx, m, k)
			if err != nil {
				return err
			}
			say("rep %d storm floor:   %d TaskRuns, %s", rep+1, s.created, s.wall.Round(time.Millisecond))
			floorT, floorN = append(floorT, s.wall.Seconds()), append(floorN, float64(s.created))
			return nil
		})
		if err != nil {
			return err
		}
	}
	name := fmt.Sprintf("duplicate storm, %d concurrent copies of each of %d events", k, m)
	r := ratios(oursT, floorT)
	b.rows = append(b.rows,
		row{
			metric: name + ": TaskRuns created",
			ours:   oursN.format(0, false), floor: floorN.format(0, false),
			ratio:  ratioText(ratios(oursN, floorN)),
			target: fmt.Sprintf("exactly %d, one Engine start each", m),
			met:    met,
		},
		row{
			metric: name + ": time (s)",
			ours:   oursT.format(2, false), floor: floorT.format(2, false),
			ratio:  ratioText(r),
			target: fmt.Sprintf("≤ %.2f× †", stormTimeTarget),
			met:    r.median() <= stormTimeTarget,
		})
	return nil
}

// oursStorm runs one storm against a new handler.
func (b *bench) oursStorm(ctx context.Context, m, k int) (storm, error) {
	p, ns, err := b.warmHandler(ctx, "ours-storm", b.o.qps, b.o.burst)
	if err != nil {
		return storm{}, err
	}
	defer stop(p)
	defer b.send.closeIdle() // first: p then drains at once
	tasks := b.ids.newTasks(m)
	var failed []error
	began := time.Now()
	for _, t := range tasks {
		failed = append(failed, together(ctx, k, func(ctx context.Context, _ int) error { return b.send.post(ctx, p.URL, t.body) })...)
		if err := ctx.Err(); err != nil {
			return storm{}, err
		}
		if len(failed) >= maxFailed {
			err := fmt.Errorf("handler: %d requests failed, the first: %w\n%s", len(failed), failed[0], tail(p.Logs(), 5))
			return storm{}, died(err, p)
		}
	}
	s := storm{wall: time.Since(began), failed: failed}
	if len(failed) > 0 {
		if err := died(failed[0], p); errors.Is(err, errDied) {
			return storm{}, fmt.Errorf("handler: %w", err)
		}
	}
	names, err := b.taskRunNames(ctx, ns)
	if err != nil {
		return s, err
	}
	starts := map[string]int{}
	for _, c := range b.engine.Calls() {
		if c.Kind == enginestub.KindTaskRunStart && c.Status == 200 {
			starts[c.ID]++
		}
	}
	cfg, err := loadConfig(b.env(ns, b.o.qps, b.o.burst))
	if err != nil {
		return s, err
	}
	prefix := cfg.ProductPrefix
	for _, t := range tasks {
		if names[tekton.TaskRunName(prefix, t.id)] {
			s.created++
		}
		s.extra += max(0, starts[t.id]-1)
	}
	s.extra += max(0, len(names)-warmups-m)
	b.oursSent.add(m*k, failed)
	return s, nil
}

// floorStorm runs one storm with raw client-go: each copy creates the
// TaskRun (reading it on AlreadyExists) and then the ConfigMap.
func (b *bench) floorStorm(ctx context.Context, m, k int) (storm, error) {
	f, objs, err := b.warmFloor(ctx, "floor-storm", m, b.o.qps, b.o.burst)
	if err != nil {
		return storm{}, err
	}
	began := time.Now()
	for _, t := range objs {
		if errs := together(ctx, k, func(ctx context.Context, _ int) error { return f.createCopy(ctx, t) }); len(errs) > 0 {
			return storm{}, fmt.Errorf("floor: %d of %d copies failed, the first: %w", len(errs), k, errs[0])
		}
	}
	s := storm{wall: time.Since(began)}
	names, err := b.taskRunNames(ctx, f.ns)
	if err != nil {
		return s, err
	}
	for _, t := range objs {
		if names[t.TaskRun.Name] {
			s.created++
		}
	}
	return s, nil
}

// createCopy is one copy's creates: the TaskRun, or the existing one, and
// the ConfigMap owned by it; AlreadyExists is success.
func (f *floor) createCopy(ctx context.Context, t built) error {
	opts := metav1.CreateOptions{FieldManager: kube.FieldManager}
	tr, err := f.tekton.TektonV1().TaskRuns(f.ns).Create(ctx, t.run, opts)
	if apierrors.IsAlreadyExists(err) {
		tr, err = f.tekton.TektonV1().TaskRuns(f.ns).Get(ctx, t.TaskRun.Name, metav1.GetOptions{})
	}
	if err != nil {
		return fmt.Errorf("create taskrun %s/%s: %w", f.ns, t.TaskRun.Name, err)
	}
	cm := t.ConfigMap.DeepCopy()
	setOwner(cm, tr)
	if _, err := f.kube.CoreV1().ConfigMaps(f.ns).Create(ctx, cm, opts); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("create configmap %s/%s: %w", f.ns, cm.Name, err)
	}
	return nil
}

// taskRunNames lists the names of the TaskRuns in ns.
func (b *bench) taskRunNames(ctx context.Context, ns string) (map[string]bool, error) {
	list, err := b.tekton.TektonV1().TaskRuns(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("list taskruns in %s: %w", ns, err)
	}
	names := make(map[string]bool, len(list.Items))
	for _, tr := range list.Items {
		names[tr.Name] = true
	}
	return names, nil
}
