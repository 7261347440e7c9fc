//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	pipelinev1 "github.com/tektoncd/pipeline/pkg/apis/pipeline/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/boomerang-io/flow-tekton-handler/function/logs"
	"github.com/boomerang-io/flow-tekton-handler/internal/contract"
	"github.com/boomerang-io/flow-tekton-handler/internal/status"
	"github.com/boomerang-io/flow-tekton-handler/test/cluster"
	"github.com/boomerang-io/flow-tekton-handler/test/fnproc"
	"github.com/boomerang-io/flow-tekton-handler/test/fnserve"
	"github.com/boomerang-io/flow-tekton-handler/test/wait"
)

// The script fixture's workflow and workflow run.
const (
	scriptWorkflow    = "65a1f0c2e4b0a1b2c3d4e5f6"
	scriptWorkflowRun = "65a1f0d9e4b0a1b2c3d4e601"
)

// logTarget is the Engine's request for a task of the script fixture's run.
func logTarget(task string) string { return logs.Target(scriptWorkflow, scriptWorkflowRun, task) }

// withEnv adds a step environment variable to a task event's data.
func withEnv(name, value string) func(map[string]any) {
	return func(d map[string]any) {
		spec := d["spec"].(map[string]any)
		envs, _ := spec["envs"].([]any)
		spec["envs"] = append(envs, map[string]any{"name": name, "value": value})
	}
}

// podLog is what the apiserver serves as the log of the TaskRun's pod:
// pods/log of each step container, in order.
func (s *stack) podLog(tr *pipelinev1.TaskRun) string {
	s.t.Helper()
	ctx := context.Background()
	pod, err := s.kube.CoreV1().Pods(s.ns).Get(ctx, tr.Status.PodName, metav1.GetOptions{})
	if err != nil {
		s.t.Fatal(err)
	}
	var b strings.Builder
	for _, c := range pod.Spec.Containers {
		if !strings.HasPrefix(c.Name, "step-") {
			continue
		}
		raw, err := s.kube.CoreV1().Pods(s.ns).GetLogs(pod.Name, &corev1.PodLogOptions{Container: c.Name}).DoRaw(ctx)
		if err != nil {
			s.t.Fatalf("pods/log of %s: %v", c.Name, err)
		}
		b.Write(raw)
	}
	return b.String()
}

// getLog asks the logs role for the whole stream and returns its answer.
func getLog(t *testing.T, svc *fnproc.Service, path string) (int, http.Header, string) {
	t.Helper()
	resp, err := client.Get(svc.URL + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("reading %s: %v", path, err)
	}
	return resp.StatusCode, resp.Header, string(b)
}

// A finished task's stream is what the apiserver serves for its pod; a
// request the role cannot serve gets the JSON error.
func TestLogsOfFinishedTask(t *testing.T) {
	s := newStack(t, nil)
	svc := s.start("logs")
	text := "building 1.4.2\nünïcode ✓ and a tab\t\n" + strings.Repeat("x", 5000) + "\nno newline at the end"
	s.mustPost(event(t, "engine-taskrun-script-ready.json", withEnv(cluster.LogEnv, text)))
	tr := s.waitDone(name(scriptID), time.Minute)
	want := s.podLog(tr)
	if want != text {
		t.Fatalf("the apiserver serves %q for the step, want the task's text", want)
	}
	code, h, got := getLog(t, svc, logTarget(scriptID))
	if code != http.StatusOK || got != want {
		t.Fatalf("stream %d %q, want 200 and the pod's log %q", code, got, want)
	}
	if ct := h.Get("Content-Type"); ct != "text/plain; charset=utf-8" {
		t.Errorf("Content-Type %q", ct)
	}

	for _, tc := range []struct {
		name, path string
		code       int
		field      string
	}{
		{"unknown task", logTarget(taskID(99)), http.StatusNotFound, logs.ParamTaskRun},
		{"another workflow run", logs.Target(scriptWorkflow, taskID(98), scriptID), http.StatusNotFound, logs.ParamTaskRun},
		{"no taskRunRef", logs.Path + "?workflowRef=" + scriptWorkflow + "&workflowRunRef=" + scriptWorkflowRun, http.StatusBadRequest, logs.ParamTaskRun},
		{"other path", strings.Replace(logTarget(scriptID), logs.Path, "/api/v1/logs", 1), http.StatusNotFound, ""},
	} {
		code, h, body := getLog(t, svc, tc.path)
		var b status.Body
		if err := json.Unmarshal([]byte(body), &b); code != tc.code || err != nil || b.Field != tc.field || h.Get("Content-Type") != "application/json" {
			t.Errorf("%s: %d %s %q, want %d JSON naming %q", tc.name, code, h.Get("Content-Type"), body, tc.code, tc.field)
		}
	}
}

// The stream of a task with several steps and a sidecar is its steps' logs
// in step order, as the apiserver serves them; a TaskRun of the task in
// another namespace, or of another product in the role's namespace, is
// never found.
func TestLogsOnlyOurs(t *testing.T) {
	s := newStack(t, nil)
	svc := s.start("logs")
	ctx := context.Background()
	create := func(ns, id, product string, edits ...func(*pipelinev1.TaskSpec)) {
		tr := &pipelinev1.TaskRun{
			ObjectMeta: metav1.ObjectMeta{Name: name(id), Namespace: ns, Labels: map[string]string{
				contract.LabelProduct: product, contract.LabelWorkflowRef: scriptWorkflow,
				contract.LabelWorkflowRun: scriptWorkflowRun, contract.LabelTaskRunRef: id,
			}},
			Spec: pipelinev1.TaskRunSpec{TaskSpec: &pipelinev1.TaskSpec{Steps: []pipelinev1.Step{{
				Name: "task", Image: "alpine", Command: []string{"true"},
				Env: []corev1.EnvVar{{Name: cluster.LogEnv, Value: "secret of " + ns + "\n"}},
			}}}},
		}
		for _, e := range edits {
			e(tr.Spec.TaskSpec)
		}
		if _, err := s.tekton.TektonV1().TaskRuns(ns).Create(ctx, tr, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	elsewhere, other, steps := taskID(1), taskID(2), taskID(4)
	create(s.c.Namespace(t), elsewhere, "bmrg-flow")
	create(s.ns, other, "another-product")
	create(s.ns, steps, "bmrg-flow", func(spec *pipelinev1.TaskSpec) {
		spec.Steps = []pipelinev1.Step{
			{Name: "build", Image: "alpine", Command: []string{"true"}, Env: []corev1.EnvVar{{Name: cluster.LogEnv, Value: "compiling\n"}}},
			{Name: "test", Image: "alpine", Command: []string{"true"}, Env: []corev1.EnvVar{{Name: cluster.LogEnv, Value: "ok 12 tests\n"}}},
		}
		spec.Sidecars = []pipelinev1.Sidecar{{Name: "db", Image: "postgres", Env: []corev1.EnvVar{{Name: cluster.LogEnv, Value: "ready\n"}}}}
	})
	want := s.podLog(s.waitDone(name(steps), time.Minute))
	if code, _, got := getLog(t, svc, logTarget(steps)); code != http.StatusOK || got != want || got != "compiling\nok 12 tests\n" {
		t.Errorf("stream of a two-step task: %d %q, want its steps' logs %q", code, got, want)
	}
	for _, id := range []string{elsewhere, other} {
		code, _, body := getLog(t, svc, logTarget(id))
		if code != http.StatusNotFound || strings.Contains(body, "secret") {
			t.Errorf("task %s: %d %q, want 404", id, code, body)
		}
	}
}

// follow reads a log stream as it comes.
type follow struct {
	mu    sync.Mutex
	body  bytes.Buffer
	err   error
	ended time.Time
	done  chan struct{}
}

// streamClient follows log streams, which outlive client's timeout: ctx
// bounds each.
var streamClient = fnserve.Client(0)

func (s *stack) follow(ctx context.Context, svc *fnproc.Service, task string) *follow {
	s.t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, svc.URL+logTarget(task), nil)
	if err != nil {
		s.t.Fatal(err)
	}
	req.Header.Set("Accept", "application/octet-stream, */*") // the Engine's
	resp, err := streamClient.Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		s.t.Fatalf("stream of %s: %d %s", task, resp.StatusCode, b)
	}
	f := &follow{done: make(chan struct{})}
	go func() {
		defer close(f.done)
		defer resp.Body.Close()
		buf := make([]byte, 4096)
		for {
			n, err := resp.Body.Read(buf)
			f.mu.Lock()
			f.body.Write(buf[:n])
			if err != nil {
				f.ended = time.Now()
				if !errors.Is(err, io.EOF) {
					f.err = err
				}
			}
			f.mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	return f
}

func (f *follow) text() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.body.String()
}

// result is the stream's end: when, and the error if it did not end
// cleanly; zero while it is open.
func (f *follow) result() (time.Time, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.ended, f.err
}

// setPodLog sets the text the pod's step serves (cluster.PodLogsAnnotation).
func (s *stack) setPodLog(pod, text string) {
	s.t.Helper()
	doc, _ := json.Marshal(map[string]string{"step-task": text})
	patch, _ := json.Marshal(map[string]any{"metadata": map[string]any{"annotations": map[string]string{cluster.PodLogsAnnotation: string(doc)}}})
	s.patchPod(pod, string(patch))
}

// patchPod merges patch into the pod.
func (s *stack) patchPod(pod, patch string) {
	s.t.Helper()
	if _, err := s.kube.CoreV1().Pods(s.ns).Patch(context.Background(), pod, types.MergePatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
		s.t.Fatal(err)
	}
}

// A running task's stream stays open past func-go's 30 s write timeout,
// carries what the step writes as it writes it, and ends within a few
// seconds of the TaskRun ending: one task succeeds, one is cancelled.
func TestLogsFollowRunningTask(t *testing.T) {
	s := newStack(t, nil)
	svc := s.start("logs")
	succeeds, cancelled := taskID(3), scriptID
	hang := withLabels(map[string]string{"ktest.dev/outcome": "hang"})
	s.mustPost(event(t, "engine-taskrun-script-ready.json", hang, withID(succeeds)))
	s.mustPost(event(t, "engine-taskrun-script-ready.json", hang))
	pods := map[string]string{}
	for _, id := range []string{succeeds, cancelled} {
		pods[id] = s.waitRunning(name(id)).Status.PodName
		s.setPodLog(pods[id], "first of "+id+"\n")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	opened := time.Now()
	streams := map[string]*follow{}
	for _, id := range []string{succeeds, cancelled} {
		streams[id] = s.follow(ctx, svc, id)
	}
	for id, f := range streams {
		wait.Eventually(s.t, 30*time.Second, "the first line of "+id, func() (bool, error) { return f.text() == "first of "+id+"\n", nil })
	}
	// The stream is still open, and live, past 35 s.
	time.Sleep(time.Until(opened.Add(36 * time.Second)))
	for id, f := range streams {
		if ended, err := f.result(); !ended.IsZero() {
			t.Fatalf("stream of %s ended after %s (%v): %q", id, ended.Sub(opened), err, f.text())
		}
		s.setPodLog(pods[id], "first of "+id+"\nsecond of "+id+"\n")
	}
	for id, f := range streams {
		want := "first of " + id + "\nsecond of " + id + "\n"
		wait.Eventually(s.t, 30*time.Second, "the second line of "+id, func() (bool, error) { return f.text() == want, nil })
	}

	// One ends (its pod completes), one is cancelled by the Engine. The
	// cancelled one's pod is held while it terminates (a finalizer), as a
	// step that takes its grace period to stop: its stream must end with
	// the TaskRun all the same.
	s.patchPod(pods[succeeds], `{"metadata":{"labels":{"ktest.dev/outcome":"succeed"}}}`)
	s.patchPod(pods[cancelled], `{"metadata":{"finalizers":["ktest.dev/hold"]}}`)
	t.Cleanup(func() { s.patchPod(pods[cancelled], `{"metadata":{"finalizers":null}}`) })
	s.mustPost(event(t, "engine-taskrun-completed-cancelled.json"))
	for id, f := range streams {
		tr := s.waitDone(name(id), time.Minute)
		done := time.Now()
		select {
		case <-f.done:
		case <-time.After(10 * time.Second):
			t.Fatalf("stream of %s still open 10 s after its TaskRun ended (%s)", id, tr.Status.GetCondition("Succeeded").Reason)
		}
		ended, err := f.result()
		if err != nil {
			t.Errorf("stream of %s ended with %v", id, err)
		}
		t.Logf("%s: TaskRun %s seen done, stream ended %s later, %s after it opened",
			id, tr.Status.GetCondition("Succeeded").Reason, ended.Sub(done).Round(time.Millisecond), ended.Sub(opened).Round(time.Second))
		if want := "first of " + id + "\nsecond of " + id + "\n"; f.text() != want {
			t.Errorf("stream of %s: %q, want %q", id, f.text(), want)
		}
	}
}

// A client that goes away ends the role's work: its follow of the pod's
// log is closed upstream at once, and the role logs the stream's end.
func TestLogsClientGone(t *testing.T) {
	s := newStack(t, nil)
	svc := s.start("logs")
	s.mustPost(event(t, "engine-taskrun-script-ready.json", withLabels(map[string]string{"ktest.dev/outcome": "hang"})))
	pod := s.waitRunning(name(scriptID)).Status.PodName
	s.setPodLog(pod, "working\n")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	f := s.follow(ctx, svc, scriptID)
	wait.Eventually(s.t, 30*time.Second, "the first line", func() (bool, error) { return f.text() == "working\n", nil })
	if n := s.c.LogFollows(s.ns, pod); n != 1 {
		t.Fatalf("%d follows of the pod's log open, want 1", n)
	}
	cancel()
	gone := time.Now()
	wait.Eventually(s.t, 5*time.Second, "the role to close its follow", func() (bool, error) { return s.c.LogFollows(s.ns, pod) == 0, nil })
	wait.Eventually(s.t, 5*time.Second, "the role to log the stream's end", func() (bool, error) {
		for _, l := range svc.LogLines(name(scriptID)) {
			if strings.Contains(l, `"ended":"client went away"`) {
				return true, nil
			}
		}
		return false, nil
	})
	t.Logf("follow closed upstream %s after the client went away", time.Since(gone).Round(time.Millisecond))
}
