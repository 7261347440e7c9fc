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
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"knative.dev/pkg/apis"

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

// terminalWatch records when this process first saw each TaskRun of a
// namespace with a final Succeeded condition. The condition's
// lastTransitionTime has whole seconds only; the watch gives milliseconds.
type terminalWatch struct {
	mu   sync.Mutex
	seen map[string]time.Time
}

// watchTerminal watches the TaskRuns of ns until ctx ends.
func (b *bench) watchTerminal(ctx context.Context, ns string) *terminalWatch {
	w := &terminalWatch{seen: map[string]time.Time{}}
	go func() {
		for ctx.Err() == nil {
			wi, err := b.tekton.TektonV1().TaskRuns(ns).Watch(ctx, metav1.ListOptions{})
			if err != nil {
				time.Sleep(100 * time.Millisecond)
				continue
			}
			for ev := range wi.ResultChan() {
				now := time.Now()
				tr, ok := ev.Object.(*pipelinev1.TaskRun)
				if !ok {
					continue
				}
				if c := tr.Status.GetCondition(apis.ConditionSucceeded); c != nil && !c.IsUnknown() {
					w.mu.Lock()
					if _, ok := w.seen[tr.Name]; !ok {
						w.seen[tr.Name] = now
					}
					w.mu.Unlock()
				}
			}
			wi.Stop()
		}
	}()
	return w
}

func (w *terminalWatch) at(name string) (time.Time, bool) {
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
	var o50, o99, f50, f99 runs
	for rep := range b.o.reps {
		var ours, floor []time.Duration
		err := retried("completion run", func() error {
			var err error
			ours, floor, err = b.completionRun(ctx, t)
			return err
		})
		if err != nil {
			return err
		}
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
	return nil
}

// completionRun starts a sink and a handler in a new namespace, makes
// TaskRuns through the handler one by one, and returns for each the time
// from the moment it was seen terminal to the end call's arrival (ours) and
// to the arrival of Tekton's terminal event (the floor).
func (b *bench) completionRun(ctx context.Context, t *tee) (ours, floor []time.Duration, err error) {
	ns, err := b.namespace(ctx, "completion")
	if err != nil {
		return nil, nil, err
	}
	sink, err := b.startFunction(ctx, "sink", ns, b.o.qps, b.o.burst)
	if err != nil {
		return nil, nil, err
	}
	defer stop(sink)
	handler, err := b.startFunction(ctx, "handler", ns, b.o.qps, b.o.burst)
	if err != nil {
		return nil, nil, err
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

	// One task end to end first: it warms both functions and, on the first
	// run, waits for the events controller to read its new sink setting.
	warm := false
	for try := 0; try < 6 && !warm; try++ {
		tk := b.ids.newTask()
		if err := b.send.post(ctx, handler.URL, tk.body); err != nil {
			return nil, nil, err
		}
		err := b.waitEnds(ctx, []string{tk.id}, 20*time.Second)
		if err != nil && ctx.Err() != nil {
			return nil, nil, err
		}
		warm = err == nil
	}
	if !warm {
		return nil, nil, errors.New("no end call for any warm-up task: is Tekton's events controller sending to the sink?\n" + tail(sink.Logs(), 10))
	}

	cfg, err := loadConfig(b.env(ns, b.o.qps, b.o.burst))
	if err != nil {
		return nil, nil, err
	}
	prefix := cfg.ProductPrefix
	tasks := b.ids.newTasks(b.o.completions)
	ids := make([]string, len(tasks))
	for i, tk := range tasks {
		ids[i] = tk.id
		if err := b.send.post(ctx, handler.URL, tk.body); err != nil {
			return nil, nil, err
		}
		time.Sleep(b.o.gap)
	}
	if err := b.waitEnds(ctx, ids, 3*time.Minute); err != nil {
		return nil, nil, fmt.Errorf("%w\nsink:\n%s", err, tail(sink.Logs(), 10))
	}
	ends := endCalls(b.engine.Calls())
	for _, tk := range tasks {
		name := tekton.TaskRunName(prefix, tk.id)
		seen, ok := watch.at(name)
		if !ok {
			return nil, nil, fmt.Errorf("taskrun %s/%s was reported but never seen terminal", ns, name)
		}
		arrived, ok := t.arrived(name)
		if !ok {
			return nil, nil, fmt.Errorf("taskrun %s/%s was reported but its terminal event did not pass the tee", ns, name)
		}
		ours = append(ours, ends[tk.id].Sub(seen))
		floor = append(floor, arrived.Sub(seen))
	}
	return ours, floor, nil
}
