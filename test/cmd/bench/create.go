package main

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"math"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	tektonv1 "github.com/tektoncd/pipeline/pkg/apis/pipeline/v1"
	"github.com/tektoncd/pipeline/pkg/client/clientset/versioned"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/boomerang-io/flow-tekton-handler/function"
	"github.com/boomerang-io/flow-tekton-handler/internal/contract"
	"github.com/boomerang-io/flow-tekton-handler/internal/kube"
	pipelinev1 "github.com/boomerang-io/flow-tekton-handler/internal/pipelinev1"
	"github.com/boomerang-io/flow-tekton-handler/internal/pipelinev1/pipelinev1test"
	"github.com/boomerang-io/flow-tekton-handler/internal/tekton"
	"github.com/boomerang-io/flow-tekton-handler/test/fnproc"
)

// warmups is how many events each run sends before it measures: the first
// requests open connections and fill caches on both sides.
const warmups = 4

// loadRSSTargetMB is ours, not the issue's: twice the idle budget.
const loadRSSTargetMB = 2 * idleRSSTargetMB

// result is one throughput run.
type result struct {
	lat    []time.Duration // of the events answered 200 (the floor: created)
	failed []error         // of the events not answered 200 in time
	wall   time.Duration
	peak   int64    // the function's VmHWM after the run; 0 for the floor
	use    snapshot // what the run cost: after minus before
}

// throughput is the events answered 200 per second of the whole run.
func (r result) throughput() float64 { return float64(len(r.lat)) / r.wall.Seconds() }

// runErr returns the error that ends a run of events to p: err, when drive
// gave up, or p's exit under a run with failures (the run is then
// repeated); nil when the run stands, its failures counted.
func runErr(what string, c calls, err error, p *fnproc.Proc) error {
	if err != nil {
		return died(fmt.Errorf("%s: %w\n%s", what, err, tail(p.Logs(), 5)), p)
	}
	if len(c.failed) > 0 {
		if err := died(c.failed[0], p); errors.Is(err, errDied) {
			return fmt.Errorf("%s: %w", what, err)
		}
	}
	return nil
}

// snapshot is the CPU time used by each process and the apiserver's request
// counts, by "VERB resource".
type snapshot struct {
	cpu       map[string]time.Duration
	reqs      map[string]float64
	allReqs   float64 // every request but WATCH, of any resource and client
	switches  int64   // the function's context switches, voluntary or not
	planeCPUs int     // how many CPUs the control plane had to itself (split), or 0
}

// planeKey is a snapshot's cpu key of the control plane's process name.
func planeKey(name string) string { return planePrefix + name }

const planePrefix = "plane "

// planeCPUsKey is a snapshot's cpu key of the busy time of the CPUs the
// control plane has to itself, while they are split (split).
const planeCPUsKey = "the control plane's CPUs"

// counted are the resources and verbs whose apiserver requests a snapshot
// counts: what the handler and the floor do. (Tekton's controller, were
// it not paused, would mostly update and patch TaskRuns meanwhile.)
var (
	counted      = map[string]bool{"taskruns": true, "configmaps": true, "persistentvolumeclaims": true}
	countedVerbs = map[string]bool{"GET": true, "LIST": true, "POST": true, "PATCH": true, "PUT": true, "DELETE": true}
)

// snap reads the CPU time of process pid (as "function"; 0 for none), of
// this process (as "bench"), of each of the control plane's processes
// (planeKey), of the whole machine (as "machine") and of the control
// plane's CPUs while they are split (planeCPUsKey), and the apiserver's
// request counters.
func (b *bench) snap(ctx context.Context, pid int) (snapshot, error) {
	s := snapshot{cpu: map[string]time.Duration{}, planeCPUs: len(b.planeCPUs)}
	stat, err := os.ReadFile("/proc/stat")
	if err != nil {
		return s, err
	}
	if s.cpu["machine"], err = busyTime(stat); err != nil {
		return s, err
	}
	if s.planeCPUs > 0 {
		if s.cpu[planeCPUsKey], err = busyTime(stat, b.planeCPUs...); err != nil {
			return s, err
		}
	}
	if s.cpu["bench"], err = readCPU(os.Getpid()); err != nil {
		return s, err
	}
	for _, p := range b.plane {
		if s.cpu[planeKey(p.Name)], err = readCPU(p.PID); err != nil {
			return s, fmt.Errorf("control plane process %s: %w", p.Name, err)
		}
	}
	if pid != 0 {
		if s.cpu["function"], err = readCPU(pid); err != nil {
			return s, err
		}
		if s.switches, err = readSwitches(pid); err != nil {
			return s, err
		}
	}
	raw, err := b.kube.CoreV1().RESTClient().Get().AbsPath("/metrics").DoRaw(ctx)
	if err != nil {
		return s, fmt.Errorf("apiserver metrics: %w", err)
	}
	s.reqs, s.allReqs = parseRequests(raw)
	return s, nil
}

// Before each measured run of events the machine settles: the apiserver,
// etcd and Tekton's webhook finish with the previous run's creates (and
// Tekton's controller, paused for these stages, does not reconcile them),
// so that no run, ours or a floor's, pays for another's on the control
// plane's CPUs (all of them, or its part while they are split).
const (
	quietBusy   = 0.25                   // the share of those CPUs in use that counts as settled
	quietWindow = 250 * time.Millisecond // over this long
	quietMax    = 30 * time.Second       // after which the run begins anyway, counted
)

// settledSnap waits until the control plane has settled (settle), then
// takes the run's first snapshot.
func (b *bench) settledSnap(ctx context.Context, pid int) (snapshot, error) {
	if err := b.settle(ctx); err != nil {
		return snapshot{}, err
	}
	return b.snap(ctx, pid)
}

// settle waits until the control plane's CPUs are under quietBusy, or
// quietMax.
func (b *bench) settle(ctx context.Context) error {
	start := time.Now()
	tick := time.NewTicker(quietWindow)
	defer tick.Stop()
	cpus := runtime.NumCPU()
	if len(b.planeCPUs) > 0 {
		cpus = len(b.planeCPUs)
	}
	last, err := readMachineCPU(b.planeCPUs...)
	if err != nil {
		return err
	}
	lastAt := time.Now()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
		cur, err := readMachineCPU(b.planeCPUs...)
		if err != nil {
			return err
		}
		busy := busyShare(cur-last, time.Since(lastAt), cpus)
		last, lastAt = cur, time.Now()
		if busy < quietBusy {
			b.settled = append(b.settled, time.Since(start).Seconds())
			break
		}
		if time.Since(start) > quietMax {
			b.unsettled++
			break
		}
	}
	return nil
}

// busyShare is the share of n CPUs that cpu time used over a span of
// wall time.
func busyShare(cpu, wall time.Duration, n int) float64 {
	return cpu.Seconds() / (wall.Seconds() * float64(n))
}

// minus returns s - o.
func (s snapshot) minus(o snapshot) snapshot {
	d := snapshot{cpu: map[string]time.Duration{}, reqs: map[string]float64{}, allReqs: s.allReqs - o.allReqs, switches: s.switches - o.switches, planeCPUs: s.planeCPUs}
	for k, v := range s.cpu {
		d.cpu[k] = v - o.cpu[k]
	}
	for k, v := range s.reqs {
		if n := v - o.reqs[k]; n > 0 {
			d.reqs[k] = n
		}
	}
	return d
}

// parseRequests sums the apiserver_request_total counters by verb and
// resource, for the counted resources and verbs, and in all but WATCH
// (long-running, one per watch, not per change).
func parseRequests(metrics []byte) (map[string]float64, float64) {
	out, all := map[string]float64{}, 0.0
	sc := bufio.NewScanner(bytes.NewReader(metrics))
	sc.Buffer(make([]byte, 64*1024), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		rest, ok := strings.CutPrefix(line, "apiserver_request_total{")
		if !ok {
			continue
		}
		labels, value, ok := strings.Cut(rest, "} ")
		if !ok {
			continue
		}
		v, err := strconv.ParseFloat(strings.TrimSpace(value), 64)
		if err != nil {
			continue
		}
		verb, resource, sub := label(labels, "verb"), label(labels, "resource"), label(labels, "subresource")
		if verb != "WATCH" {
			all += v
		}
		if !counted[resource] || !countedVerbs[verb] || sub != "" {
			continue
		}
		out[verb+" "+resource] += v
	}
	return out, all
}

// label returns the value of name in a Prometheus label set.
func label(labels, name string) string {
	for _, kv := range strings.Split(labels, ",") {
		k, v, ok := strings.Cut(kv, "=")
		if ok && k == name {
			return strings.Trim(v, `"`)
		}
	}
	return ""
}

// oursRun sends n distinct task events to a new handler at concurrency
// conc and waits for every answer.
func (b *bench) oursRun(ctx context.Context, conc, n int, qps float64, burst int) (result, error) {
	p, _, err := b.warmHandler(ctx, fmt.Sprintf("ours-c%d", conc), qps, burst)
	if err != nil {
		return result{}, err
	}
	defer stop(p)
	defer b.send.closeIdle() // first: p then drains at once
	tasks := b.ids.newTasks(n)
	pid := p.Cmd.Process.Pid
	before, err := b.settledSnap(ctx, pid)
	if err != nil {
		return result{}, err
	}
	c, err := drive(ctx, n, conc, func(ctx context.Context, i int) error {
		return b.send.post(ctx, p.URL, tasks[i].body)
	})
	if err := runErr("handler", c, err, p); err != nil {
		return result{}, err
	}
	after, err := b.snap(ctx, pid)
	if err != nil {
		return result{}, err
	}
	m, err := readMemory(pid)
	if err != nil {
		return result{}, err
	}
	b.oursSent.add(n, c.failed)
	return result{lat: c.lat, failed: c.failed, wall: c.wall, peak: m.peak, use: after.minus(before)}, nil
}

// floor creates the TaskRuns and ConfigMaps of task events with raw
// client-go, as the handler would build them.
type floor struct {
	kube   kubernetes.Interface
	tekton versioned.Interface
	ns     string
	opts   tekton.Options
}

// newFloor returns a floor in a new namespace, with new clients limited to
// qps/burst and the builders' options a handler there would load.
func (b *bench) newFloor(ctx context.Context, prefix string, qps float64, burst int) (*floor, error) {
	ns, err := b.namespace(ctx, prefix)
	if err != nil {
		return nil, err
	}
	cfg, err := loadConfig(b.env(ns, qps, burst))
	if err != nil {
		return nil, err
	}
	k, t, err := b.clients(qps, burst)
	if err != nil {
		return nil, err
	}
	return &floor{kube: k, tekton: t, ns: ns, opts: function.TektonOptions(cfg)}, nil
}

// built is a task's objects as the builders made them, with its TaskRun
// also as Tekton's own type for the raw client, converted before any clock
// starts.
type built struct {
	*tekton.Task
	run *tektonv1.TaskRun
}

// build builds the objects of each task with the pure builders, as the
// handler does when no workspace claim exists.
func (f *floor) build(tasks []task) ([]built, error) {
	out := make([]built, len(tasks))
	for i, t := range tasks {
		tr, err := contract.DecodeTaskRun(t.data)
		if err != nil {
			return nil, err
		}
		if out[i].Task, err = tekton.BuildTask(tr, nil, "", f.opts); err != nil {
			return nil, fmt.Errorf("build task %s: %w", t.id, err)
		}
		if out[i].run, err = pipelinev1test.ToTekton(out[i].TaskRun); err != nil {
			return nil, fmt.Errorf("build task %s: %w", t.id, err)
		}
	}
	return out, nil
}

// create creates a TaskRun and then its ConfigMap, owned by it.
func (f *floor) create(ctx context.Context, t built) error {
	opts := metav1.CreateOptions{FieldManager: kube.FieldManager}
	tr, err := f.tekton.TektonV1().TaskRuns(f.ns).Create(ctx, t.run, opts)
	if err != nil {
		return fmt.Errorf("create taskrun %s/%s: %w", f.ns, t.TaskRun.Name, err)
	}
	setOwner(t.ConfigMap, tr)
	if _, err := f.kube.CoreV1().ConfigMaps(f.ns).Create(ctx, t.ConfigMap, opts); err != nil {
		return fmt.Errorf("create configmap %s/%s: %w", f.ns, t.ConfigMap.Name, err)
	}
	return nil
}

// setOwner makes Tekton's TaskRun tr the owner of cm, as the handler does.
func setOwner(cm *corev1.ConfigMap, tr *tektonv1.TaskRun) {
	tekton.SetOwner(cm, &pipelinev1.TaskRun{ObjectMeta: metav1.ObjectMeta{Name: tr.Name, UID: tr.UID}})
}

// warmHandler starts a handler in a new namespace named after prefix and
// sends it warmups events; it returns the handler, which the caller
// stops, and its namespace.
func (b *bench) warmHandler(ctx context.Context, prefix string, qps float64, burst int) (*fnproc.Proc, string, error) {
	ns, err := b.namespace(ctx, prefix)
	if err != nil {
		return nil, "", err
	}
	p, err := b.startFunction(ctx, "handler", ns, qps, burst)
	if err != nil {
		return nil, "", err
	}
	for _, t := range b.ids.newTasks(warmups) {
		if err := b.send.post(ctx, p.URL, t.body); err != nil {
			stop(p)
			return nil, "", err
		}
	}
	return p, ns, nil
}

// warmFloor returns a floor in a new namespace named after prefix that
// has created warmups tasks' objects, and the objects of n more tasks,
// built.
func (b *bench) warmFloor(ctx context.Context, prefix string, n int, qps float64, burst int) (*floor, []built, error) {
	f, err := b.newFloor(ctx, prefix, qps, burst)
	if err != nil {
		return nil, nil, err
	}
	warm, err := f.build(b.ids.newTasks(warmups))
	if err != nil {
		return nil, nil, err
	}
	for _, t := range warm {
		if err := f.create(ctx, t); err != nil {
			return nil, nil, err
		}
	}
	objs, err := f.build(b.ids.newTasks(n))
	if err != nil {
		return nil, nil, err
	}
	return f, objs, nil
}

// floorRun creates the objects of n distinct task events at concurrency
// conc with raw client-go; objects are built before the clock starts.
func (b *bench) floorRun(ctx context.Context, conc, n int, qps float64, burst int) (result, error) {
	f, objs, err := b.warmFloor(ctx, fmt.Sprintf("floor-c%d", conc), n, qps, burst)
	if err != nil {
		return result{}, err
	}
	return b.floorMeasure(ctx, "floor", n, conc, func(ctx context.Context, i int) error { return f.create(ctx, objs[i]) })
}

// floorMeasure runs do for n items at concurrency conc, with the
// apiserver's request counts before and after; any failure ends the run.
func (b *bench) floorMeasure(ctx context.Context, what string, n, conc int, do func(ctx context.Context, i int) error) (result, error) {
	before, err := b.settledSnap(ctx, 0)
	if err != nil {
		return result{}, err
	}
	c, err := drive(ctx, n, conc, do)
	if err == nil && len(c.failed) > 0 {
		err = fmt.Errorf("%d of %d failed, the first: %w", len(c.failed), n, c.failed[0])
	}
	if err != nil {
		return result{}, fmt.Errorf("%s: %w", what, err)
	}
	after, err := b.snap(ctx, 0)
	if err != nil {
		return result{}, err
	}
	return result{lat: c.lat, wall: c.wall, use: after.minus(before)}, nil
}

// helloRun sends n events to a new bare function at concurrency conc.
func (b *bench) helloRun(ctx context.Context, conc, n int) (result, error) {
	p, err := fnproc.Start(ctx, b.hello, nil)
	if err != nil {
		return result{}, err
	}
	defer stop(p)
	defer b.send.closeIdle() // first: p then drains at once
	tasks := b.ids.newTasks(n + warmups)
	for _, t := range tasks[:warmups] {
		if err := b.send.post(ctx, p.URL, t.body); err != nil {
			return result{}, err
		}
	}
	tasks = tasks[warmups:]
	pid := p.Cmd.Process.Pid
	before, err := b.settledSnap(ctx, pid)
	if err != nil {
		return result{}, err
	}
	c, err := drive(ctx, n, conc, func(ctx context.Context, i int) error {
		return b.send.post(ctx, p.URL, tasks[i].body)
	})
	if err := runErr("hello", c, err, p); err != nil {
		return result{}, err
	}
	after, err := b.snap(ctx, pid)
	if err != nil {
		return result{}, err
	}
	m, err := readMemory(pid)
	if err != nil {
		return result{}, err
	}
	b.helloSent.add(n, c.failed)
	return result{lat: c.lat, failed: c.failed, wall: c.wall, peak: m.peak, use: after.minus(before)}, nil
}

// rotate runs each of runs once, one after the other, beginning with run
// rep (modulo their number) and going round: over as many repetitions as
// there are runs, each runs first, second, … and last once, so that drift
// from one run to the next (the control plane slows as the objects pile
// up) hits every kind alike.
func rotate(rep int, runs ...func() error) error {
	for i := range runs {
		if err := runs[(rep+i)%len(runs)](); err != nil {
			return err
		}
	}
	return nil
}

// floorKept makes one run of a floor and, when it stands, adds it to s and
// reports it as what, its throughput in units per second.
func floorKept(rep, c int, what, units string, s *series, run func() (result, error)) error {
	r, err := run()
	if err == nil {
		s.add(r)
		say("rep %d c=%d %s %.0f %s/s, p50 %.1f ms, p99 %.1f ms", rep+1, c, what, r.throughput(), units, ms(percentile(r.lat, 50)), ms(percentile(r.lat, 99)))
	}
	return err
}

// series collects the figures of repeated runs of one kind.
type series struct {
	tput, p50, p99, peak runs
	busy                 runs // the share of the machine's CPUs in use
	planeBusy            runs // the share of the control plane's CPUs in use, while split
	use                  []snapshot
}

func (s *series) add(r result) {
	s.tput = append(s.tput, r.throughput())
	s.busy = append(s.busy, busyShare(r.use.cpu["machine"], r.wall, runtime.NumCPU()))
	if r.use.planeCPUs > 0 {
		s.planeBusy = append(s.planeBusy, busyShare(r.use.cpu[planeCPUsKey], r.wall, r.use.planeCPUs))
	}
	s.p50 = append(s.p50, ms(percentile(r.lat, 50)))
	s.p99 = append(s.p99, ms(percentile(r.lat, 99)))
	s.peak = append(s.peak, mb(r.peak))
	s.use = append(s.use, r.use)
}

// per returns, run by run, what of a run's use f counts, per event.
func (s *series) per(n int, f func(snapshot) float64) runs {
	out := make(runs, 0, len(s.use))
	for _, u := range s.use {
		out = append(out, f(u)/float64(n))
	}
	return out
}

// perEvent returns, run by run, the CPU time (ms) of process name per
// event, or the count of requests key per event.
func (s *series) perEvent(n int, cpu string, req string) runs {
	return s.per(n, func(u snapshot) float64 {
		if cpu != "" {
			return ms(u.cpu[cpu])
		}
		return u.reqs[req]
	})
}

// allPerEvent returns, run by run, the apiserver's requests per event of
// every resource and client but WATCH.
func (s *series) allPerEvent(n int) runs {
	return s.per(n, func(u snapshot) float64 { return u.allReqs })
}

// switchesPerEvent returns, run by run, the function's context switches
// per event.
func (s *series) switchesPerEvent(n int) runs {
	return s.per(n, func(u snapshot) float64 { return float64(u.switches) })
}

// throughput measures event → TaskRun and ConfigMap created at each
// concurrency against the floor, then at the functions' default rate limit.
func (b *bench) throughput(ctx context.Context) error {
	n := b.o.events
	ours := map[int]*series{}
	floors := map[int]*series{}
	protos := map[int]*series{}
	for _, c := range b.o.concurrency {
		ours[c], floors[c], protos[c] = &series{}, &series{}, &series{}
	}
	top, low := slices.Max(b.o.concurrency), slices.Min(b.o.concurrency)
	var hello series
	paired := map[int]*pairs{}
	for rep := range b.o.tputReps {
		for _, c := range b.o.concurrency {
			err := rotate(rep, func() error {
				return retried("handler run", func() error {
					r, err := b.oursRun(ctx, c, n, b.o.qps, b.o.burst)
					if err == nil {
						ours[c].add(r)
						say("rep %d c=%d handler: %.0f events/s, p50 %.1f ms, p99 %.1f ms%s", rep+1, c, r.throughput(), ms(percentile(r.lat, 50)), ms(percentile(r.lat, 99)), failures(r.failed))
					}
					return err
				})
			}, func() error {
				return floorKept(rep, c, "floor:  ", "pairs", floors[c], func() (result, error) { return b.floorRun(ctx, c, n, b.o.qps, b.o.burst) })
			}, func() error {
				return floorKept(rep, c, "protocol by hand:", "tasks", protos[c], func() (result, error) { return b.protocolRun(ctx, c, n) })
			})
			if err != nil {
				return err
			}
			if !slices.Contains(throughputLevels, c) {
				continue
			}
			err = retried("side-by-side run", func() error {
				p, err := b.pairedRun(ctx, c, n)
				if err == nil {
					if paired[c] == nil {
						paired[c] = &pairs{}
					}
					paired[c].add(p)
					say("rep %d c=%d side by side: handler %.0f events/s, floor %.0f pairs/s, over %s", rep+1, c, p.ours, p.floor, p.window.Round(time.Millisecond))
				}
				return err
			})
			if err != nil {
				return err
			}
		}
		err := retried("hello run", func() error {
			r, err := b.helloRun(ctx, top, n)
			if err == nil {
				hello.add(r)
				say("rep %d c=%d bare function: %.0f events/s, p50 %.2f ms, p99 %.2f ms%s", rep+1, top, r.throughput(), ms(percentile(r.lat, 50)), ms(percentile(r.lat, 99)), failures(r.failed))
			}
			return err
		})
		if err != nil {
			return err
		}
	}
	for _, c := range b.o.concurrency {
		o, f := ours[c], floors[c]
		r := ratios(o.tput, f.tput)
		name := fmt.Sprintf("event → TaskRun + ConfigMap, %d events, c=%d", n, c)
		if pr := paired[c]; pr != nil {
			pr2 := ratios(pr.ours, pr.floor)
			b.rows = append(b.rows, row{
				metric: fmt.Sprintf("event → TaskRun + ConfigMap, %d events each, c=%d, ours and the floor side by side: throughput (events/s)", n, c),
				ours:   pr.ours.format(0, false), floor: pr.floor.format(0, false),
				ratio:  ratioText(pr2),
				target: fmt.Sprintf("≥ %g×", throughputTarget),
				met:    pr2.median() >= throughputTarget,
				why:    pairedWhy(c, pr),
			})
		}
		b.rows = append(b.rows,
			row{
				metric: name + ": throughput (events/s)",
				ours:   o.tput.format(0, false), floor: f.tput.format(0, false),
				ratio:  ratioText(r),
				target: fmt.Sprintf("≥ %g× †", throughputTarget),
				met:    r.median() >= throughputTarget,
				why:    machineWhy(n, o, f),
			},
			// The issue holds the added latency against the protocol by
			// hand (protocolRows); against the raw objects it is shown.
			saturated(c, latencyRow(name+": p50 latency (ms)", o.p50, f.p50, addedTargetMs, " †"), o.p50, f.p50, o.tput, f.tput),
			saturated(c, latencyRow(name+": p99 latency (ms)", o.p99, f.p99, addedTargetMs, " †"), o.p99, f.p99, o.tput, f.tput),
		)
	}
	for _, c := range b.o.concurrency {
		b.protocolRows(n, c, c == low, ours[c], floors[c], protos[c])
	}
	o := ours[top]
	cpu := o.perEvent(n, "function", "")
	b.rows = append(b.rows, row{
		metric: fmt.Sprintf("handler CPU per event, %d events at c=%d (utime+stime over the run, ms)", n, top),
		ours:   cpu.format(2, false),
		target: fmt.Sprintf("≤ %g ms", cpuTargetMs),
		met:    cpu.median() <= cpuTargetMs,
	})
	b.note("Where the handler's CPU time goes besides its own work: at c=%d its threads switched context %s times per event (voluntary or not, /proc/<pid>/task/*/status), the bare function's %s. Each of the handler's waits on the network (the event, the Engine's two calls, the apiserver's two) puts threads to sleep and wakes them, and wakes the Go runtime's monitor thread, which then polls every 20 µs for about a millisecond before it backs off; this is mostly kernel time, and it grows with the time the events take, not only with their number.",
		top, o.switchesPerEvent(n).format(1, false), hello.switchesPerEvent(n).format(1, false))
	b.rows = append(b.rows, row{
		metric: fmt.Sprintf("RSS peak (VmHWM) after %d events at c=%d: handler (MB)", n, top),
		ours:   o.peak.format(1, false), floor: hello.peak.format(1, false),
		ratio:  ratioText(ratios(o.peak, hello.peak)),
		target: fmt.Sprintf("≤ %d MB †", loadRSSTargetMB),
		met:    o.peak.median() <= loadRSSTargetMB,
	})
	b.note("The bare func-go function answers the same %d events at c=%d at %s events/s, p50 %s ms, p99 %s ms: what func-go's HTTP server and the loopback round trip cost any function (it answers 200 without reading the event).",
		n, top, hello.tput.format(0, false), hello.p50.format(2, false), hello.p99.format(2, false))
	f := floors[top]
	reqs, floorReqs := o.requests(n), f.requests(n)
	b.rows = append(b.rows, row{
		metric: fmt.Sprintf("apiserver requests per event, %d events at c=%d (taskruns, configmaps, persistentvolumeclaims; GET, POST, PATCH, DELETE)", n, top),
		ours:   reqs.format(2, false), floor: floorReqs.format(2, false),
		ratio:  ratioText(ratios(reqs, floorReqs)),
		target: fmt.Sprintf("≤ %g: the design's %d writes, and other clients' requests as in the floor †", designRequests+0.1, designRequests),
		met:    reqs.median() <= designRequests+0.1,
	})
	cpus := "the machine's CPUs"
	if len(b.planeCPUs) > 0 {
		cpus = fmt.Sprintf("CPUs %v, which the control plane had to itself,", b.planeCPUs)
	}
	b.note("Each measured run of events (ours, the floors, the bare function) began once the control plane had settled, %s under %.0f%% busy over %s, so that it had finished with the previous run's creates (Tekton's controller was paused; see Event → TaskRun + ConfigMap above): the wait took %s s; %d runs began after %s without it.",
		cpus, 100*quietBusy, quietWindow, b.settled.format(1, false), b.unsettled, quietMax)
	b.note("apiserver requests per event at c=%d (apiserver_request_total of taskruns, configmaps and persistentvolumeclaims, every verb but the status subresource's, over the run, median of runs; Tekton's controller, paused, adds none): handler %s; floor %s.",
		top, requestsPerEvent(o, n), requestsPerEvent(f, n))
	return nil
}

// throughputLevels are the concurrencies the issue sets the throughput
// target at; at others the same target is shown with †.
var throughputLevels = []int{8, 32}

// cpuTargetMs is the issue's handler CPU per event; designRequests the
// apiserver requests a new task needs in the design: create the ConfigMap
// under a claim, create the TaskRun.
const (
	cpuTargetMs    = 1.0
	designRequests = 2
)

// requests returns, run by run, the apiserver requests per event of the
// verbs the handler makes for a task event (GET, POST, PATCH, DELETE):
// during these runs LIST and PUT of these resources come from others
// (Tekton's controller, the harness's claim binder); the handler lists
// claims only when it deletes a run's or a workflow's.
func (s *series) requests(n int) runs {
	out := make(runs, len(s.use))
	for i, u := range s.use {
		for k, v := range u.reqs {
			if verb, _, _ := strings.Cut(k, " "); verb != "LIST" && verb != "PUT" {
				out[i] += v / float64(n)
			}
		}
	}
	return out
}

// protocolRows compares ours at concurrency c with the contract's own calls
// made by hand, and shows the raw-objects floor beside it. The issue holds
// the p50 against it at the lowest concurrency (issueLatency); at the
// others it shows how much of the gap to the raw objects the protocol
// itself makes.
func (b *bench) protocolRows(n, c int, issueLatency bool, o, raw, proto *series) {
	name := fmt.Sprintf("event → TaskRun + ConfigMap, %d events, c=%d, against the protocol by hand", n, c)
	mark := " †"
	if issueLatency {
		mark = ""
	}
	r := saturated(c, latencyRow(name+": p50 latency (ms)", o.p50, proto.p50, addedTargetMs, mark), o.p50, proto.p50, o.tput, proto.tput)
	b.rows = append(b.rows, r, row{
		metric: name + ": throughput (events/s)",
		ours:   o.tput.format(0, false), floor: proto.tput.format(0, false),
		ratio:  ratioText(ratios(o.tput, proto.tput)),
		target: fmt.Sprintf("≥ %g× †", throughputTarget),
		met:    ratios(o.tput, proto.tput).median() >= throughputTarget,
		why:    machineWhy(n, o, proto),
	})
	b.note("The protocol by hand at c=%d (the second floor) takes p50 %s ms, p99 %s ms, at %s tasks/s; the raw objects' Creates (the first floor) take p50 %s ms, at %s pairs/s: the contract's own calls cost %s ms over them, and run at %s the raw objects' throughput.",
		c, proto.p50.format(1, false), proto.p99.format(1, false), proto.tput.format(0, false), raw.p50.format(1, false), raw.tput.format(0, false),
		diffs(proto.p50, raw.p50).formatUnit(1, true, ""), ratioText(ratios(proto.tput, raw.tput)))
}

// machineWhy explains a throughput ratio by the CPU time per event of
// what bounds it: where the CPUs the control plane runs on are saturated,
// throughput is the inverse of the CPU time per event spent on them, so
// the floor's over ours is the ratio they allow. Sharing every CPU with
// the clients that is the whole machine's; on CPUs of its own (split),
// the control plane's processes'. What ours adds to the machine is split
// between the handler, this bench process (sender and Engine stand-in),
// the control plane's processes one by one, and the rest.
func machineWhy(n int, o, f *series) string {
	mo, mf := o.perEvent(n, "machine", ""), f.perEvent(n, "machine", "")
	bo, bf := o.perEvent(n, "bench", ""), f.perEvent(n, "bench", "")
	fn := o.perEvent(n, "function", "")
	plane, planeParts := planeAdded(n, o, f)
	rest := make(runs, 0, len(mo))
	for i := range min(len(mo), len(mf), len(bo), len(bf), len(fn), len(plane)) {
		rest = append(rest, (mo[i]-mf[i])-fn[i]-(bo[i]-bf[i])-plane[i])
	}
	busyO, busyF, co, cf := o.busy, f.busy, mo, mf
	where := fmt.Sprintf("the machine's %d CPUs, which the control plane and the clients shared,", runtime.NumCPU())
	whose := "It"
	if len(o.planeBusy) > 0 && len(f.planeBusy) > 0 {
		busyO, busyF, co, cf = o.planeBusy, f.planeBusy, planeTotal(n, o), planeTotal(n, f)
		where = fmt.Sprintf("the %d of the machine's %d CPUs the control plane had to itself (the clients had the others)", o.use[0].planeCPUs, runtime.NumCPU())
		whose = "Its processes"
	}
	bound := "is the throughput ratio saturated CPUs allow"
	if busyO.median() < saturatedBusy {
		bound = "would bound the throughput ratio if those CPUs were saturated; they were not, so the time each event waits on its calls, not CPU, set the throughput here (see the latency rows)"
	}
	return fmt.Sprintf("%s were %s busy during ours and %s during the floor (/proc/stat). %s spent %s ms of CPU per event with ours against %s ms with the floor, whose ratio, %s, %s. Of the %s ms the whole machine spent more per event with ours, the handler process spent %s ms, this bench process %s ms more than for the floor (it sends the events and is the Engine stand-in; for the floor it makes the calls itself), the control plane's processes %s ms (%s), and the rest of the machine (the kernel's work outside any process's time, such as loopback networking, and any other process) %s ms. The apiserver served %s requests per event during ours against %s during the floor (every resource and client, WATCH aside).",
		where, percent(busyO), percent(busyF), whose, co.format(1, false), cf.format(1, false), ratioText(ratios(cf, co)), bound,
		diffs(mo, mf).format(1, true), fn.format(2, false), diffs(bo, bf).format(2, true), plane.format(2, true), planeParts, rest.format(2, true),
		o.allPerEvent(n).format(1, false), f.allPerEvent(n).format(1, false))
}

// planeTotal returns, run by run, the CPU time (ms) per event of all the
// control plane's processes together.
func planeTotal(n int, s *series) runs {
	return s.per(n, func(u snapshot) float64 {
		var d time.Duration
		for k, v := range u.cpu {
			if strings.HasPrefix(k, planePrefix) {
				d += v
			}
		}
		return ms(d)
	})
}

// planeAdded returns, run by run, the CPU time per event the control
// plane's processes spent during ours more than during the floor, and the
// same by process, largest first, each that added or saved at least
// 0.05 ms in the median: "kube-apiserver +0.31 (…), tekton-webhook …".
func planeAdded(n int, o, f *series) (runs, string) {
	names := map[string]bool{}
	for _, u := range o.use {
		for k := range u.cpu {
			if name, ok := strings.CutPrefix(k, planePrefix); ok {
				names[name] = true
			}
		}
	}
	type part struct {
		name string
		d    runs
	}
	var parts []part
	for _, name := range slices.Sorted(maps.Keys(names)) {
		d := diffs(o.perEvent(n, planeKey(name), ""), f.perEvent(n, planeKey(name), ""))
		if math.Abs(d.median()) >= 0.05 {
			parts = append(parts, part{name, d})
		}
	}
	slices.SortStableFunc(parts, func(a, b part) int { return cmp.Compare(b.d.median(), a.d.median()) })
	texts := make([]string, 0, len(parts))
	for _, p := range parts {
		texts = append(texts, p.name+" "+p.d.format(2, true))
	}
	if len(texts) == 0 {
		texts = append(texts, "none of them 0.05 ms or more")
	}
	return diffs(planeTotal(n, o), planeTotal(n, f)), strings.Join(texts, ", ")
}

// saturatedBusy is the share of the CPUs in use from which machineWhy
// takes them as saturated.
const saturatedBusy = 0.95

// percent renders fractions as percentages: "97% (95…99)".
func percent(r runs) string {
	p := make(runs, len(r))
	for i, v := range r {
		p[i] = 100 * v
	}
	return p.formatUnit(0, false, "%")
}

// saturated gives a latency row above one event in flight its
// explanation by throughput (saturationWhy).
func saturated(c int, r row, ours, floor, oursTput, floorTput runs) row {
	if c > 1 {
		r.why = saturationWhy(c, ours, floor, oursTput, floorTput)
	}
	return r
}

// requestsPerEvent renders the requests per event of a series, by verb and
// resource, leaving out those below 0.05 per event.
func requestsPerEvent(s *series, n int) string {
	keys := map[string]bool{}
	for _, u := range s.use {
		for k := range u.reqs {
			keys[k] = true
		}
	}
	sorted := slices.Sorted(maps.Keys(keys))
	var parts []string
	total := make(runs, len(s.use))
	for _, k := range sorted {
		r := s.perEvent(n, "", k)
		for i, v := range r {
			total[i] += v
		}
		if r.median() >= 0.05 {
			parts = append(parts, fmt.Sprintf("%s %s", k, r.format(2, false)))
		}
	}
	return fmt.Sprintf("%s in all (%s)", total.format(2, false), strings.Join(parts, ", "))
}

// tail returns the last n lines of s.
func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}
