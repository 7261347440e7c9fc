package logs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/boomerang-io/flow-tekton-handler/internal/contract"
	"github.com/boomerang-io/flow-tekton-handler/internal/kube"
	pipelinev1 "github.com/boomerang-io/flow-tekton-handler/internal/pipelinev1"
	"github.com/boomerang-io/flow-tekton-handler/internal/status"
	"github.com/boomerang-io/flow-tekton-handler/internal/tekton"
	"github.com/boomerang-io/flow-tekton-handler/test/wait"
)

const (
	product = "bmrg-flow"
	wfRef   = "65a1f0c2e4b0a1b2c3d4e5f6"
	runRef  = "65a1f0c2e4b0a1b2c3d4e5f7"
	taskRef = "65a1f0c2e4b0a1b2c3d4e5f8"
	query   = Path + "?workflowRef=" + wfRef + "&workflowRunRef=" + runRef + "&taskRunRef=" + taskRef
)

// fakeKube answers with its functions; a nil function fails the test.
type fakeKube struct {
	t          *testing.T
	getTaskRun func(name string) (*pipelinev1.TaskRun, error)
	getPod     func(name string) (*corev1.Pod, error)
	followLog  func(ctx context.Context, pod, container string) (io.ReadCloser, error)
}

func (f *fakeKube) GetTaskRun(_ context.Context, name string) (*pipelinev1.TaskRun, error) {
	if f.getTaskRun == nil {
		f.t.Errorf("unexpected GetTaskRun(%s)", name)
		return nil, nil
	}
	return f.getTaskRun(name)
}

func (f *fakeKube) GetPod(_ context.Context, name string) (*corev1.Pod, error) {
	if f.getPod == nil {
		f.t.Errorf("unexpected GetPod(%s)", name)
		return nil, nil
	}
	return f.getPod(name)
}

func (f *fakeKube) FollowLog(ctx context.Context, pod, container string) (io.ReadCloser, error) {
	if f.followLog == nil {
		f.t.Errorf("unexpected FollowLog(%s, %s)", pod, container)
		return nil, errors.New("unexpected")
	}
	return f.followLog(ctx, pod, container)
}

// taskRun is our TaskRun of the task, with edits applied.
func taskRun(edits ...func(*pipelinev1.TaskRun)) *pipelinev1.TaskRun {
	tr := &pipelinev1.TaskRun{ObjectMeta: metav1.ObjectMeta{
		Name: tekton.TaskRunName(product, taskRef), UID: "tr-uid",
		Labels: map[string]string{
			contract.LabelProduct: product, contract.LabelWorkflowRef: wfRef,
			contract.LabelWorkflowRun: runRef, contract.LabelTaskRunRef: taskRef,
		},
	}}
	for _, e := range edits {
		e(tr)
	}
	return tr
}

func withPod(tr *pipelinev1.TaskRun) { tr.Status.PodName = tr.Name + "-pod" }

func finished(tr *pipelinev1.TaskRun) {
	tr.Status.Conditions = []pipelinev1.Condition{{Type: pipelinev1.ConditionSucceeded, Status: corev1.ConditionTrue}}
}

// pod is tr's pod with the given containers, each started.
func pod(tr *pipelinev1.TaskRun, containers ...string) *corev1.Pod {
	p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{
		Name: tr.Status.PodName, UID: "pod-uid",
		OwnerReferences: []metav1.OwnerReference{*metav1.NewControllerRef(tr, pipelinev1.SchemeGroupVersion.WithKind("TaskRun"))},
	}}
	for _, c := range containers {
		p.Spec.Containers = append(p.Spec.Containers, corev1.Container{Name: c})
		p.Status.ContainerStatuses = append(p.Status.ContainerStatuses, corev1.ContainerStatus{
			Name: c, State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{}}})
	}
	return p
}

// texts serves each container's log from a map.
func texts(logs map[string]string) func(context.Context, string, string) (io.ReadCloser, error) {
	return func(_ context.Context, _, c string) (io.ReadCloser, error) {
		return io.NopCloser(strings.NewReader(logs[c])), nil
	}
}

func newLogs(k *fakeKube) *Logs {
	return New(k, Options{Product: product, Wait: time.Second, Poll: 5 * time.Millisecond, Grace: 20 * time.Millisecond}, slog.New(slog.DiscardHandler))
}

func serve(t *testing.T, l *Logs, method, target string) *httptest.ResponseRecorder {
	t.Helper()
	w, aborted := serveCut(l, httptest.NewRequest(method, target, nil))
	if aborted {
		t.Fatalf("the answer was cut after %q", w.Body)
	}
	return w
}

// serveCut serves r and reports whether the role cut the transfer short
// (http.ErrAbortHandler, which the server turns into a broken connection).
func serveCut(l *Logs, r *http.Request) (w *httptest.ResponseRecorder, aborted bool) {
	w = httptest.NewRecorder()
	defer func() {
		if v := recover(); v != nil {
			if v != http.ErrAbortHandler {
				panic(v)
			}
			aborted = true
		}
	}()
	l.ServeHTTP(w, r)
	return w, false
}

// A request the role cannot serve gets the JSON error naming what is wrong,
// and reads no log.
func TestRefused(t *testing.T) {
	t.Parallel()
	other := func(key, value string) func(*pipelinev1.TaskRun) {
		return func(tr *pipelinev1.TaskRun) { tr.Labels[key] = value }
	}
	cases := []struct {
		name, method, target string
		taskRun              *pipelinev1.TaskRun
		getErr               error
		code                 int
		field                string
	}{
		{"other path", http.MethodGet, "/api/v1/logs?taskRunRef=" + taskRef, nil, nil, http.StatusNotFound, ""},
		{"root", http.MethodGet, "/", nil, nil, http.StatusNotFound, ""},
		{"post", http.MethodPost, query, nil, nil, http.StatusMethodNotAllowed, "method"},
		{"no workflowRef", http.MethodGet, Path + "?workflowRunRef=" + runRef + "&taskRunRef=" + taskRef, nil, nil, http.StatusBadRequest, ParamWorkflow},
		{"no workflowRunRef", http.MethodGet, Path + "?workflowRef=" + wfRef + "&taskRunRef=" + taskRef, nil, nil, http.StatusBadRequest, ParamWorkflowRun},
		{"no taskRunRef", http.MethodGet, Path + "?workflowRef=" + wfRef + "&workflowRunRef=" + runRef, nil, nil, http.StatusBadRequest, ParamTaskRun},
		{"empty taskRunRef", http.MethodGet, Path + "?workflowRef=" + wfRef + "&workflowRunRef=" + runRef + "&taskRunRef=", nil, nil, http.StatusBadRequest, ParamTaskRun},
		{"taskRunRef twice", http.MethodGet, query + "&taskRunRef=" + wfRef, nil, nil, http.StatusBadRequest, ParamTaskRun},
		{"taskRunRef too long", http.MethodGet, Path + "?workflowRef=" + wfRef + "&workflowRunRef=" + runRef + "&taskRunRef=" + strings.Repeat("a", 200), nil, nil, http.StatusBadRequest, ParamTaskRun},
		{"unknown task", http.MethodGet, query, nil, nil, http.StatusNotFound, ParamTaskRun},
		{"another product", http.MethodGet, query, taskRun(other(contract.LabelProduct, "other")), nil, http.StatusNotFound, ParamTaskRun},
		{"another workflow run", http.MethodGet, query, taskRun(other(contract.LabelWorkflowRun, "x")), nil, http.StatusNotFound, ParamTaskRun},
		{"another workflow", http.MethodGet, query, taskRun(other(contract.LabelWorkflowRef, "x")), nil, http.StatusNotFound, ParamTaskRun},
		{"another task", http.MethodGet, query, taskRun(other(contract.LabelTaskRunRef, "x")), nil, http.StatusNotFound, ParamTaskRun},
		{"apiserver trouble", http.MethodGet, query, nil, errors.New("connection refused"), http.StatusServiceUnavailable, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			l := newLogs(&fakeKube{t: t, getTaskRun: func(string) (*pipelinev1.TaskRun, error) { return tc.taskRun, tc.getErr }})
			w := serve(t, l, tc.method, tc.target)
			if w.Code != tc.code {
				t.Fatalf("code %d, want %d; body %s", w.Code, tc.code, w.Body)
			}
			if ct := w.Header().Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type %q, want application/json", ct)
			}
			var b status.Body
			if err := json.Unmarshal(w.Body.Bytes(), &b); err != nil || b.Reason == "" {
				t.Fatalf("body %q is not the JSON error: %v", w.Body, err)
			}
			if b.Field != tc.field {
				t.Errorf("field %q, want %q (%s)", b.Field, tc.field, b.Reason)
			}
			if tc.code == http.StatusMethodNotAllowed && w.Header().Get("Allow") != http.MethodGet {
				t.Errorf("Allow %q, want GET", w.Header().Get("Allow"))
			}
		})
	}
}

// A task's stream is its step containers' logs in step order, nothing of
// its sidecars or Tekton's own containers.
func TestStreamsStepsInOrder(t *testing.T) {
	t.Parallel()
	tr := taskRun(withPod, finished)
	p := pod(tr, "prepare", "step-build", "sidecar-db", "step-test")
	var asked []string
	l := newLogs(&fakeKube{t: t,
		getTaskRun: func(string) (*pipelinev1.TaskRun, error) { return tr, nil },
		getPod:     func(string) (*corev1.Pod, error) { return p, nil },
		followLog: func(ctx context.Context, pod, c string) (io.ReadCloser, error) {
			asked = append(asked, c)
			return texts(map[string]string{"step-build": "compiling\n", "step-test": "ok\n", "sidecar-db": "ready\n", "prepare": "init\n"})(ctx, pod, c)
		},
	})
	w := serve(t, l, http.MethodGet, query)
	if w.Code != http.StatusOK || w.Body.String() != "compiling\nok\n" {
		t.Fatalf("got %d %q, want 200 %q", w.Code, w.Body, "compiling\nok\n")
	}
	if ct := w.Header().Get("Content-Type"); ct != "text/plain; charset=utf-8" {
		t.Errorf("Content-Type %q", ct)
	}
	if strings.Join(asked, ",") != "step-build,step-test" {
		t.Errorf("followed %v, want step-build then step-test", asked)
	}
	if !w.Flushed {
		t.Error("the answer was never flushed")
	}
}

// The stream waits for the pod and for its step to start, then follows it.
func TestWaitsForPodAndStep(t *testing.T) {
	t.Parallel()
	var reads, podReads atomic.Int32
	tr := taskRun()
	l := newLogs(&fakeKube{t: t,
		getTaskRun: func(string) (*pipelinev1.TaskRun, error) {
			if reads.Add(1) >= 4 { // pending for three reads, then it has a pod
				return taskRun(withPod), nil
			}
			return tr, nil
		},
		getPod: func(string) (*corev1.Pod, error) {
			p := pod(taskRun(withPod), "step-a")
			if podReads.Add(1) < 3 { // waiting (pulling its image) at first
				p.Status.ContainerStatuses[0].State = corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "ContainerCreating"}}
			}
			return p, nil
		},
		followLog: texts(map[string]string{"step-a": "hello\n"}),
	})
	if w := serve(t, l, http.MethodGet, query); w.Body.String() != "hello\n" {
		t.Fatalf("got %q, want the step's log", w.Body)
	}
	if reads.Load() < 4 || podReads.Load() < 3 {
		t.Errorf("read the TaskRun %d and the pod %d times: did not wait", reads.Load(), podReads.Load())
	}
}

// running is tr's pod with its containers running.
func running(tr *pipelinev1.TaskRun, containers ...string) *corev1.Pod {
	p := pod(tr, containers...)
	for i := range p.Status.ContainerStatuses {
		p.Status.ContainerStatuses[i].State = corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}
	}
	return p
}

// How a stream ends: a complete log ends cleanly, with 200 (empty when
// there is nothing to send); one that cannot be completed is answered with
// a status while nothing was sent, else cut, so that it never looks whole.
func TestStreamEnds(t *testing.T) {
	t.Parallel()
	strange := pod(taskRun(withPod), "step-a")
	strange.OwnerReferences[0].UID = "someone-else"
	notRun := pod(taskRun(withPod), "step-a")
	notRun.Status.ContainerStatuses = nil
	notRun.Status.Phase = corev1.PodFailed
	replaced := pod(taskRun(withPod), "step-a", "step-b")
	replaced.UID = "another-pod"
	waitingB := pod(taskRun(withPod), "step-a", "step-b")
	waitingB.Status.ContainerStatuses[1].State = corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{}}
	never := func(string) (*corev1.Pod, error) { return nil, nil }
	fixed := func(p *corev1.Pod) func(string) (*corev1.Pod, error) {
		return func(string) (*corev1.Pod, error) { return p, nil }
	}
	// sequence answers with each pod in turn, then the last one again.
	sequence := func(pods ...*corev1.Pod) func(string) (*corev1.Pod, error) {
		var n atomic.Int32
		return func(string) (*corev1.Pod, error) {
			i := min(int(n.Add(1))-1, len(pods)-1)
			return pods[i], nil
		}
	}
	ab := texts(map[string]string{"step-a": "a\n", "step-b": "b\n"})
	cases := []struct {
		name    string
		taskRun func(reads int32) (*pipelinev1.TaskRun, error)
		pod     func(string) (*corev1.Pod, error)
		follow  func(context.Context, string, string) (io.ReadCloser, error)
		code    int
		body    string
		cut     bool
	}{
		{name: "finished without a pod", taskRun: always(taskRun(finished)), pod: never, code: 200},
		{name: "never gets a pod within the wait", taskRun: always(taskRun()), pod: never, code: 200, cut: true},
		{name: "pod of another owner", taskRun: always(taskRun(withPod, finished)), pod: fixed(strange), code: 200},
		{name: "pod gone, TaskRun finished", taskRun: always(taskRun(withPod, finished)), pod: never, code: 200},
		{name: "pod failed before its step ran", taskRun: always(taskRun(withPod, finished)), pod: fixed(notRun), code: 200},
		{name: "TaskRun deleted while waiting", taskRun: firstThen(taskRun(), nil), pod: never, code: 200},
		{name: "TaskRun recreated while waiting", taskRun: firstThen(taskRun(), taskRun(withPod, func(tr *pipelinev1.TaskRun) { tr.UID = "recreated" })), pod: never, code: 200},
		{name: "apiserver trouble reading the pod", taskRun: always(taskRun(withPod)), pod: func(string) (*corev1.Pod, error) { return nil, errors.New("connection refused") }, code: 503},
		{name: "log refused before any byte", taskRun: always(taskRun(withPod)), pod: fixed(pod(taskRun(withPod), "step-a")),
			follow: func(context.Context, string, string) (io.ReadCloser, error) {
				return nil, errors.New("pods/log forbidden")
			}, code: 503},
		{name: "log refused after a step", taskRun: always(taskRun(withPod)), pod: fixed(pod(taskRun(withPod), "step-a", "step-b")),
			follow: func(ctx context.Context, p, c string) (io.ReadCloser, error) {
				if c == "step-b" {
					return nil, errors.New("pods/log forbidden")
				}
				return ab(ctx, p, c)
			}, code: 200, body: "a\n", cut: true},
		{name: "pod gone before its second step's log", taskRun: always(taskRun(withPod)), pod: fixed(pod(taskRun(withPod), "step-a", "step-b")),
			follow: func(ctx context.Context, p, c string) (io.ReadCloser, error) {
				if c == "step-b" {
					return nil, kube.ErrGone
				}
				return ab(ctx, p, c)
			}, code: 200, body: "a\n"},
		{name: "pod replaced during the first step", taskRun: always(taskRun(withPod)), pod: sequence(pod(taskRun(withPod), "step-a", "step-b"), replaced),
			follow: ab, code: 200, body: "a\n"},
		{name: "second step never starts", taskRun: always(taskRun(withPod)), pod: fixed(waitingB), follow: ab, code: 200, body: "a\n", cut: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var reads atomic.Int32
			l := New(&fakeKube{t: t,
				getTaskRun: func(string) (*pipelinev1.TaskRun, error) { return tc.taskRun(reads.Add(1)) },
				getPod:     tc.pod,
				followLog:  tc.follow,
			}, Options{Product: product, Wait: 50 * time.Millisecond, Poll: 5 * time.Millisecond}, slog.New(slog.DiscardHandler))
			began := time.Now()
			w, cut := serveCut(l, httptest.NewRequest(http.MethodGet, query, nil))
			if w.Code != tc.code || cut != tc.cut || (tc.code == 200 && w.Body.String() != tc.body) {
				t.Fatalf("got %d %q cut=%v, want %d %q cut=%v", w.Code, w.Body, cut, tc.code, tc.body, tc.cut)
			}
			if d := time.Since(began); d > 2*time.Second {
				t.Errorf("took %s: the wait is not bounded", d)
			}
		})
	}
}

func always(tr *pipelinev1.TaskRun) func(int32) (*pipelinev1.TaskRun, error) {
	return func(int32) (*pipelinev1.TaskRun, error) { return tr, nil }
}

// firstThen answers the first read with first, the others with then.
func firstThen(first, then *pipelinev1.TaskRun) func(int32) (*pipelinev1.TaskRun, error) {
	return func(n int32) (*pipelinev1.TaskRun, error) {
		if n == 1 {
			return first, nil
		}
		return then, nil
	}
}

// A step still running after its TaskRun ended (a cancelled task's pod
// stops within its grace period) is followed for Grace, then the stream
// ends, cleanly: the TaskRun's log is over.
func TestStepOutlivingItsTaskRun(t *testing.T) {
	t.Parallel()
	var reads atomic.Int32
	var closed atomic.Bool
	tr := taskRun(withPod)
	l := newLogs(&fakeKube{t: t,
		getTaskRun: func(string) (*pipelinev1.TaskRun, error) {
			if reads.Add(1) > 3 {
				return taskRun(withPod, finished), nil
			}
			return tr, nil
		},
		getPod: func(string) (*corev1.Pod, error) { return running(tr, "step-a"), nil },
		followLog: func(ctx context.Context, _, _ string) (io.ReadCloser, error) {
			return &blockingLog{ctx: ctx, closed: &closed}, nil
		},
	})
	began := time.Now()
	w := serve(t, l, http.MethodGet, query)
	if w.Code != http.StatusOK || w.Body.String() != "started\n" || !closed.Load() {
		t.Fatalf("got %d %q (follow closed %v), want 200 and the step's line", w.Code, w.Body, closed.Load())
	}
	if d := time.Since(began); d > 2*time.Second {
		t.Errorf("the stream ended %s after it began", d)
	}
}

// A stream cut by the function's shutdown is cut, not ended: the client
// must not take the log for whole.
func TestShutdownCutsTheStream(t *testing.T) {
	t.Parallel()
	tr := taskRun(withPod)
	var closed atomic.Bool
	l := newLogs(&fakeKube{t: t,
		getTaskRun: func(string) (*pipelinev1.TaskRun, error) { return tr, nil },
		getPod:     func(string) (*corev1.Pod, error) { return running(tr, "step-a"), nil },
		followLog: func(ctx context.Context, _, _ string) (io.ReadCloser, error) {
			return &blockingLog{ctx: ctx, closed: &closed}, nil
		},
	})
	ctx, cancel := context.WithCancelCause(context.Background())
	time.AfterFunc(50*time.Millisecond, func() { cancel(errors.New("the function is shutting down")) })
	w, cut := serveCut(l, httptest.NewRequest(http.MethodGet, query, nil).WithContext(ctx))
	if !cut || w.Body.String() != "started\n" {
		t.Fatalf("got %q cut=%v, want the line and a cut", w.Body, cut)
	}
}

// blockingLog is a follow that sends a line, then nothing until its
// context ends, like a running step's.
type blockingLog struct {
	ctx    context.Context
	sent   bool
	closed *atomic.Bool
}

func (b *blockingLog) Read(p []byte) (int, error) {
	if !b.sent {
		b.sent = true
		return copy(p, "started\n"), nil
	}
	<-b.ctx.Done()
	return 0, b.ctx.Err()
}

func (b *blockingLog) Close() error { b.closed.Store(true); return nil }

// A client that goes away stops the work at once: the follow is closed and
// no goroutine of the stream is left.
func TestClientGoneStopsWork(t *testing.T) {
	tr := taskRun(withPod)
	p := pod(tr, "step-a")
	p.Status.ContainerStatuses[0].State = corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}
	var closed atomic.Bool
	returned := make(chan struct{})
	l := newLogs(&fakeKube{t: t,
		getTaskRun: func(string) (*pipelinev1.TaskRun, error) { return tr, nil },
		getPod:     func(string) (*corev1.Pod, error) { return p, nil },
		followLog: func(ctx context.Context, _, _ string) (io.ReadCloser, error) {
			return &blockingLog{ctx: ctx, closed: &closed}, nil
		},
	})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer close(returned)
		l.ServeHTTP(w, r)
	}))
	defer srv.Close()
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+query, nil)
	resp, err := ownClient().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	line := make([]byte, len("started\n"))
	if _, err := io.ReadFull(resp.Body, line); err != nil || string(line) != "started\n" {
		t.Fatalf("first line %q: %v", line, err)
	}
	cancel()
	_ = resp.Body.Close()
	select {
	case <-returned:
	case <-time.After(5 * time.Second):
		t.Fatal("the stream went on after its client went away")
	}
	if !closed.Load() {
		t.Error("the follow was not closed")
	}
	var stacks string
	wait.Eventually(t, 5*time.Second, "no goroutine of the stream to be left", func() (bool, error) {
		stacks = streamGoroutines()
		return stacks == "", fmt.Errorf("goroutines left:\n%s", stacks)
	})
}

// streamGoroutines returns the stacks of goroutines running this package's
// code, other than the tests themselves.
func streamGoroutines() string {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	var left []string
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, "function/logs.(*Logs)") || strings.Contains(g, "function/logs.(*blockingLog)") {
			left = append(left, g)
		}
	}
	return strings.Join(left, "\n\n")
}

// slowLog sends a line every interval, n times, while its request's
// context lasts (as a pods/log body does).
type slowLog struct {
	ctx      context.Context
	n        int
	interval time.Duration
}

func (s *slowLog) Read(p []byte) (int, error) {
	if s.n == 0 {
		return 0, io.EOF
	}
	select {
	case <-s.ctx.Done():
		return 0, s.ctx.Err()
	case <-time.After(s.interval):
	}
	s.n--
	return copy(p, "tick\n"), nil
}

func (s *slowLog) Close() error { return nil }

// A stream outlives the server's read and write timeouts (func-go sets
// 30 s; here 300 ms, with a stream of about 1 s): the role lifts the
// write deadline for its answer, which would otherwise cut it.
func TestOutlivesServerTimeouts(t *testing.T) {
	t.Parallel()
	tr := taskRun(withPod)
	p := pod(tr, "step-a")
	l := newLogs(&fakeKube{t: t,
		getTaskRun: func(string) (*pipelinev1.TaskRun, error) { return tr, nil },
		getPod:     func(string) (*corev1.Pod, error) { return p, nil },
		followLog: func(ctx context.Context, _, _ string) (io.ReadCloser, error) {
			return &slowLog{ctx: ctx, n: 10, interval: 100 * time.Millisecond}, nil
		},
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: l, ReadTimeout: 300 * time.Millisecond, WriteTimeout: 300 * time.Millisecond}
	go func() { _ = srv.Serve(ln) }()
	defer srv.Close()
	resp, err := ownClient().Get("http://" + ln.Addr().String() + query)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || string(body) != strings.Repeat("tick\n", 10) {
		t.Fatalf("got %q: %v; want 10 ticks", body, err)
	}
}

// ownClient is fnserve.Client, which this package's tests cannot import (a
// cycle): a client whose transport no other test's server closes.
func ownClient() *http.Client {
	return &http.Client{Timeout: time.Minute, Transport: http.DefaultTransport.(*http.Transport).Clone()}
}
