package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	pipelinev1 "github.com/tektoncd/pipeline/pkg/apis/pipeline/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"knative.dev/pkg/apis"

	"github.com/boomerang-io/flow-tekton-handler/internal/contract"
	"github.com/boomerang-io/flow-tekton-handler/internal/tekton"
	"github.com/boomerang-io/flow-tekton-handler/test/enginestub"
)

// tee stands between Tekton's events controller and the sink: it records
// when each TaskRun's terminal event arrives (the floor: Tekton's own
// delivery) and forwards every event to the sink, answering what the sink
// answers.
type tee struct {
	srv    *http.Server
	url    string
	client *http.Client

	mu       sync.Mutex
	target   string
	terminal map[string]time.Time // TaskRun name → first terminal event's arrival
}

// startTee listens on a free loopback port.
func startTee() (*tee, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	t := &tee{url: "http://" + ln.Addr().String(), client: &http.Client{Timeout: 30 * time.Second}, terminal: map[string]time.Time{}}
	t.srv = &http.Server{Handler: t, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = t.srv.Serve(ln) }()
	return t, nil
}

// forwardTo sets where events go; empty answers them 200 and drops them.
func (t *tee) forwardTo(url string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.target = url
}

// arrived returns when the terminal event of TaskRun name arrived.
func (t *tee) arrived(name string) (time.Time, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	at, ok := t.terminal[name]
	return at, ok
}

// terminalType reports whether a Tekton event type says a TaskRun ended.
func terminalType(ceType string) bool {
	return strings.HasPrefix(ceType, "dev.tekton.event.taskrun.") &&
		(strings.HasSuffix(ceType, ".successful.v1") || strings.HasSuffix(ceType, ".failed.v1"))
}

func (t *tee) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	now := time.Now()
	body, err := io.ReadAll(io.LimitReader(r.Body, 8<<20))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	ceType, subject := r.Header.Get("Ce-Type"), r.Header.Get("Ce-Subject")
	if strings.HasPrefix(r.Header.Get("Content-Type"), "application/cloudevents+json") {
		var e struct{ Type, Subject string }
		if json.Unmarshal(body, &e) == nil {
			ceType, subject = e.Type, e.Subject
		}
	}
	t.mu.Lock()
	if _, seen := t.terminal[subject]; !seen && subject != "" && terminalType(ceType) {
		t.terminal[subject] = now
	}
	target := t.target
	t.mu.Unlock()
	if target == "" {
		w.WriteHeader(http.StatusOK)
		return
	}
	req, err := http.NewRequestWithContext(r.Context(), http.MethodPost, target, bytes.NewReader(body))
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	req.Header = r.Header.Clone()
	resp, err := t.client.Do(req)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	defer resp.Body.Close()
	w.WriteHeader(resp.StatusCode)
	_, _ = io.Copy(w, resp.Body)
}

// firstSeen records when this process first saw each object of a watch
// that matched: the time of the watch event, in milliseconds where the
// objects' own timestamps have whole seconds only.
type firstSeen struct {
	mu   sync.Mutex
	seen map[string]time.Time
}

// watchFirst watches with start until ctx ends, starting it again when it
// ends or fails, and records the objects for which match gives a name.
func watchFirst(ctx context.Context, start func(context.Context) (watch.Interface, error), match func(runtime.Object) (string, bool)) *firstSeen {
	w := &firstSeen{seen: map[string]time.Time{}}
	go func() {
		for ctx.Err() == nil {
			wi, err := start(ctx)
			if err != nil {
				time.Sleep(100 * time.Millisecond)
				continue
			}
			for ev := range wi.ResultChan() {
				now := time.Now()
				if name, ok := match(ev.Object); ok {
					w.mu.Lock()
					if _, ok := w.seen[name]; !ok {
						w.seen[name] = now
					}
					w.mu.Unlock()
				}
			}
			wi.Stop()
		}
	}()
	return w
}

// watchTerminal records when each TaskRun of ns is first seen with a final
// Succeeded condition.
func (b *bench) watchTerminal(ctx context.Context, ns string) *firstSeen {
	return watchFirst(ctx, func(ctx context.Context) (watch.Interface, error) {
		return b.tekton.TektonV1().TaskRuns(ns).Watch(ctx, metav1.ListOptions{})
	}, func(o runtime.Object) (string, bool) {
		tr, ok := o.(*pipelinev1.TaskRun)
		if !ok {
			return "", false
		}
		c := tr.Status.GetCondition(apis.ConditionSucceeded)
		return tr.Name, c != nil && !c.IsUnknown()
	})
}

// watchClaims records when each ConfigMap of ns is first seen with the
// sink's claim of its TaskRun's report.
func (b *bench) watchClaims(ctx context.Context, ns string) *firstSeen {
	return watchFirst(ctx, func(ctx context.Context) (watch.Interface, error) {
		return b.kube.CoreV1().ConfigMaps(ns).Watch(ctx, metav1.ListOptions{})
	}, func(o runtime.Object) (string, bool) {
		cm, ok := o.(*corev1.ConfigMap)
		if !ok {
			return "", false
		}
		return cm.Name, cm.Annotations[contract.AnnotationReporting] != ""
	})
}

func (w *firstSeen) at(name string) (time.Time, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	at, ok := w.seen[name]
	return at, ok
}

// endCalls returns the arrival of the first accepted end call of each id.
func endCalls(calls []enginestub.Call) map[string]time.Time {
	out := map[string]time.Time{}
	for _, c := range calls {
		if c.Kind == enginestub.KindTaskRunEnd && c.Status == http.StatusOK {
			if _, ok := out[c.ID]; !ok {
				out[c.ID] = c.At
			}
		}
	}
	return out
}

// waitEnds waits until the Engine stand-in has an end call for every id.
func (b *bench) waitEnds(ctx context.Context, ids []string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	return b.engine.WaitFor(ctx, func(calls []enginestub.Call) bool {
		ends := endCalls(calls)
		for _, id := range ids {
			if _, ok := ends[id]; !ok {
				return false
			}
		}
		return true
	})
}

// completions measures TaskRun completion → Engine end call through
// Tekton's events controller and the sink, against the arrival of Tekton's
// terminal event itself.
func (b *bench) completions(ctx context.Context) error {
	t, err := startTee()
	if err != nil {
		return err
	}
	defer t.srv.Close()
	if err := b.cluster.SetEventsSink(ctx, t.url); err != nil {
		return err
	}
	var o50, o99, f50, f99, c50 runs
	for rep := range b.o.reps {
		var ours, floor, claimed []time.Duration
		err := retried("completion run", func() error {
			var err error
			ours, floor, claimed, err = b.completionRun(ctx, t)
			return err
		})
		if err != nil {
			return err
		}
		c50 = append(c50, ms(percentile(claimed, 50)))
		o50, o99 = append(o50, ms(percentile(ours, 50))), append(o99, ms(percentile(ours, 99)))
		f50, f99 = append(f50, ms(percentile(floor, 50))), append(f99, ms(percentile(floor, 99)))
		say("rep %d completion: end call p50 %.1f ms p99 %.1f ms; Tekton event p50 %.1f ms p99 %.1f ms",
			rep+1, o50[rep], o99[rep], f50[rep], f99[rep])
	}
	t.forwardTo("")
	if err := b.cluster.SetEventsSink(ctx, ""); err != nil {
		return err
	}
	name := fmt.Sprintf("TaskRun terminal → Engine end call, %d TaskRuns", b.o.completions)
	b.rows = append(b.rows,
		latencyRow(name+": p50 latency (ms)", o50, f50, addedTargetMs, ""),
		latencyRow(name+": p99 latency (ms)", o99, f99, addedTargetMs, " †"))
	b.note("Where the sink's time goes in the same runs (p50 of each run): its claim of the report, the one write that keeps two replicas from both sending the end call (a JSON patch of the params ConfigMap, with no read), is made when the sink's pod watch sees the steps end, before Tekton finishes the TaskRun, and is seen by a watch of this process %s ms after the TaskRun was seen terminal (negative: before); the end call, which then waits for no write, arrives %s ms after it was (the row above). The same patch made one at a time is in the sink's replayed steps below.",
		c50.format(1, false), o50.format(1, false))
	return nil
}

// completionRun starts a sink and a handler in a new namespace, makes
// TaskRuns through the handler one by one, and returns for each the time
// from the moment it was seen terminal to the end call's arrival (ours), to
// the arrival of Tekton's terminal event (the floor), and to the sink's
// claim of the report seen on the params ConfigMap.
func (b *bench) completionRun(ctx context.Context, t *tee) (ours, floor, claimed []time.Duration, err error) {
	ns, err := b.namespace(ctx, "completion")
	if err != nil {
		return nil, nil, nil, err
	}
	sink, err := b.startFunction(ctx, "sink", ns, b.o.qps, b.o.burst)
	if err != nil {
		return nil, nil, nil, err
	}
	defer stop(sink)
	handler, err := b.startFunction(ctx, "handler", ns, b.o.qps, b.o.burst)
	if err != nil {
		return nil, nil, nil, err
	}
	defer stop(handler)
	// Runs before the stops above: a process gone by now died under us.
	defer func() {
		if err != nil {
			err = died(err, sink, handler)
		}
	}()
	t.forwardTo(sink.URL)
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	watch := b.watchTerminal(wctx, ns)
	claims := b.watchClaims(wctx, ns)

	// One task end to end first: it warms both functions and, on the first
	// run, waits for the events controller to read its new sink setting.
	warm := false
	for try := 0; try < 6 && !warm; try++ {
		tk := b.ids.newTask()
		if err := b.send.post(ctx, handler.URL, tk.body); err != nil {
			return nil, nil, nil, err
		}
		err := b.waitEnds(ctx, []string{tk.id}, 20*time.Second)
		if err != nil && ctx.Err() != nil {
			return nil, nil, nil, err
		}
		warm = err == nil
	}
	if !warm {
		return nil, nil, nil, errors.New("no end call for any warm-up task: is Tekton's events controller sending to the sink?\n" + tail(sink.Logs(), 10))
	}

	cfg, err := loadConfig(b.env(ns, b.o.qps, b.o.burst))
	if err != nil {
		return nil, nil, nil, err
	}
	prefix := cfg.ProductPrefix
	tasks := b.ids.newTasks(b.o.completions)
	ids := make([]string, len(tasks))
	for i, tk := range tasks {
		ids[i] = tk.id
		if err := b.send.post(ctx, handler.URL, tk.body); err != nil {
			return nil, nil, nil, err
		}
		time.Sleep(b.o.gap)
	}
	if err := b.waitEnds(ctx, ids, 3*time.Minute); err != nil {
		return nil, nil, nil, fmt.Errorf("%w\nsink:\n%s", err, tail(sink.Logs(), 10))
	}
	ends := endCalls(b.engine.Calls())
	// The sink reports what its watch sees finish, so an end call may come
	// before Tekton's event, and before this process's watches see what
	// they record.
	recorded := func(tk task) (seen, arrived, claim time.Time, ok [3]bool) {
		name := tekton.TaskRunName(prefix, tk.id)
		seen, ok[0] = watch.at(name)
		arrived, ok[1] = t.arrived(name)
		claim, ok[2] = claims.at(tekton.ConfigMapName(prefix, tk.id))
		return seen, arrived, claim, ok
	}
	if err := waitAll(ctx, 30*time.Second, func() bool {
		for _, tk := range tasks {
			if _, _, _, ok := recorded(tk); ok != [3]bool{true, true, true} {
				return false
			}
		}
		return true
	}); err != nil {
		for _, tk := range tasks {
			if _, _, _, ok := recorded(tk); ok != [3]bool{true, true, true} {
				return nil, nil, nil, fmt.Errorf("taskrun %s/%s was reported, but seen terminal, its terminal event through the tee, its report's claim seen: %v", ns, tekton.TaskRunName(prefix, tk.id), ok)
			}
		}
	}
	for _, tk := range tasks {
		seen, arrived, claim, _ := recorded(tk)
		ours = append(ours, ends[tk.id].Sub(seen))
		floor = append(floor, arrived.Sub(seen))
		claimed = append(claimed, claim.Sub(seen))
	}
	return ours, floor, claimed, nil
}

// waitAll waits until done holds, checking it every 50 ms, for at most
// timeout.
func waitAll(ctx context.Context, timeout time.Duration, done func() bool) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for !done() {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	return nil
}
