package sink_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	tektonv1 "github.com/tektoncd/pipeline/pkg/apis/pipeline/v1"
	tektonfake "github.com/tektoncd/pipeline/pkg/client/clientset/versioned/fake"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	k8sfake "k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/boomerang-io/flow-tekton-handler/function/sink"
	"github.com/boomerang-io/flow-tekton-handler/internal/contract"
	"github.com/boomerang-io/flow-tekton-handler/internal/engine"
	"github.com/boomerang-io/flow-tekton-handler/internal/eventlog"
	"github.com/boomerang-io/flow-tekton-handler/internal/kube"
	"github.com/boomerang-io/flow-tekton-handler/internal/kube/kubetest"
	"github.com/boomerang-io/flow-tekton-handler/internal/outcome"
	"github.com/boomerang-io/flow-tekton-handler/internal/pipelinev1/pipelinev1test"
	"github.com/boomerang-io/flow-tekton-handler/internal/status"
	"github.com/boomerang-io/flow-tekton-handler/test/enginestub"
	"github.com/boomerang-io/flow-tekton-handler/test/fixtures"
	"github.com/boomerang-io/flow-tekton-handler/test/fnserve"
	"github.com/boomerang-io/flow-tekton-handler/test/wait"
)

const ns = "bmrg-flow"

// client bounds each request as a sender's timeout does.
var client = fnserve.Client(10 * time.Second)

type env struct {
	url    string
	kube   *k8sfake.Clientset
	tekton *tektonfake.Clientset
	engine *enginestub.Server
	sink   *sink.Sink
	log    *logBuffer    // the lines of every sink served
	stale  time.Duration // the sinks' ReportStale; 0: the default
}

// logBuffer collects log lines written from several goroutines.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// lines returns the lines logged with msg, decoded.
func (b *logBuffer) lines(t *testing.T, msg string) []map[string]any {
	t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []map[string]any
	for _, l := range bytes.Split(bytes.TrimSpace(b.buf.Bytes()), []byte("\n")) {
		if len(l) == 0 {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal(l, &m); err != nil {
			t.Fatalf("log line %q: %v", l, err)
		}
		if m["msg"] == msg {
			out = append(out, m)
		}
	}
	return out
}

func newEnv(t *testing.T, policy string) *env {
	t.Helper()
	e := &env{kube: k8sfake.NewClientset(), tekton: tektonfake.NewSimpleClientset(), log: &logBuffer{}}
	kubetest.Versioned(e.kube)
	kubetest.Versioned(e.tekton)
	stub, err := enginestub.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = stub.Close() })
	e.engine = stub
	e.serve(t, policy)
	return e
}

// serve starts a new sink (another replica, as far as its memory goes) on
// the env's fakes and Engine.
func (e *env) serve(t *testing.T, policy string) {
	t.Helper()
	kc := kubetest.New(e.kube, e.tekton, ns, 5*time.Second)
	ec := engine.New(engine.Options{BaseURL: e.engine.URL(), Timeout: time.Second, RetryBudget: 2 * time.Second})
	e.sink = sink.New(kc, ec, sink.Options{Product: "bmrg-flow", DeletionPolicy: policy, SweepLimit: 10, ReportStale: e.stale}, slog.New(slog.NewJSONHandler(e.log, &slog.HandlerOptions{Level: slog.LevelDebug})))
	e.url = fnserve.Serve(t, e.sink, 4<<20)
}

// seed stores the event's TaskRun in the fake apiserver, as Tekton would
// have it, and returns it.
func (e *env) seed(t *testing.T, data []byte) *tektonv1.TaskRun {
	t.Helper()
	return e.store(t, data, func(tr *tektonv1.TaskRun) {
		e.engine.Know(enginestub.Task{ID: tr.Labels[contract.LabelTaskRunRef], Status: enginestub.StatusRunning, Phase: enginestub.PhaseRunning})
	})
}

// store stores the event's TaskRun in the fake apiserver after edit
// changes it, and returns it: the whole TaskRun, as Tekton's own type (the
// event's v1beta1 taskResults as v1 results), as the apiserver would hold
// it; the sink reads it through the kube client as package pipelinev1's.
func (e *env) store(t *testing.T, data []byte, edit func(*tektonv1.TaskRun)) *tektonv1.TaskRun {
	t.Helper()
	var ev struct {
		TaskRun *tektonv1.TaskRun `json:"taskRun"`
	}
	var beta struct {
		TaskRun struct {
			Status struct {
				TaskResults []tektonv1.TaskRunResult `json:"taskResults"`
			} `json:"status"`
		} `json:"taskRun"`
	}
	if err := errors.Join(json.Unmarshal(data, &ev), json.Unmarshal(data, &beta)); err != nil || ev.TaskRun == nil {
		t.Fatalf("event data: %v", err)
	}
	tr := ev.TaskRun
	if rs := beta.TaskRun.Status.TaskResults; len(rs) > 0 {
		tr.Status.Results = rs
	}
	tr.ResourceVersion = ""
	edit(tr)
	got, err := e.tekton.TektonV1().TaskRuns(ns).Create(context.Background(), tr, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return got
}

// send POSTs a Tekton event in binary mode, as Tekton does.
func (e *env) send(t *testing.T, ceType, subject string, data []byte) int {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, e.url, bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("ce-specversion", "1.0")
	req.Header.Set("ce-id", time.Now().Format(time.RFC3339Nano))
	req.Header.Set("ce-source", "/apis///namespaces/"+ns+"//"+subject)
	req.Header.Set("ce-type", ceType)
	req.Header.Set("ce-subject", subject)
	resp, err := client.Do(req)
	if err != nil {
		t.Errorf("no answer: %v", err) // Errorf: callers may be goroutines
		return 0
	}
	defer resp.Body.Close()
	if resp.Header.Get("ce-type") != "" {
		t.Errorf("the sink replied with an event")
	}
	return resp.StatusCode
}

// sendEach sends a Tekton event to each sink at urls, one after the other,
// and expects 200 from each.
func sendEach(t *testing.T, ceType, subject string, data []byte, urls ...string) {
	t.Helper()
	for _, url := range urls {
		if code := (&env{url: url}).send(t, ceType, subject, data); code != http.StatusOK {
			t.Fatalf("%s: status %d", url, code)
		}
	}
}

func (e *env) get(t *testing.T, name string) *tektonv1.TaskRun {
	t.Helper()
	tr, err := e.tekton.TektonV1().TaskRuns(ns).Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		return nil
	}
	return tr
}

// ends returns the end calls the Engine accepted.
func ends(calls []enginestub.Call) []enginestub.Call {
	var out []enginestub.Call
	for _, c := range calls {
		if c.Kind == enginestub.KindTaskRunEnd && c.Status/100 == 2 {
			out = append(out, c)
		}
	}
	return out
}

// withCondition returns data whose TaskRun has the given Succeeded condition
// and extra annotations.
func withCondition(t *testing.T, data []byte, status corev1.ConditionStatus, reason, message string, annotations map[string]string) []byte {
	t.Helper()
	var doc map[string]map[string]any
	if err := json.Unmarshal(data, &doc); err != nil {
		t.Fatal(err)
	}
	tr := doc["taskRun"]
	st := tr["status"].(map[string]any)
	st["conditions"] = []map[string]any{{"type": "Succeeded", "status": string(status), "reason": reason, "message": message}}
	md := tr["metadata"].(map[string]any)
	ann, _ := md["annotations"].(map[string]any)
	if ann == nil {
		ann = map[string]any{}
	}
	for k, v := range annotations {
		ann[k] = v
	}
	md["annotations"] = ann
	out, err := json.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// withoutDeletion drops the TaskRun's deletion policy so it stays for
// inspection.
func withoutDeletion(t *testing.T, data []byte) []byte {
	t.Helper()
	var doc map[string]map[string]any
	if err := json.Unmarshal(data, &doc); err != nil {
		t.Fatal(err)
	}
	if ann, ok := doc["taskRun"]["metadata"].(map[string]any)["annotations"].(map[string]any); ok {
		delete(ann, "boomerang.io/deletion")
	}
	out, err := json.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestTektonEvents(t *testing.T) {
	t.Parallel()
	successful := fixtures.Data(t, "tekton-taskrun-successful-two-results.json")
	failed := fixtures.Data(t, "tekton-taskrun-failed.json")
	started := fixtures.Event(t, "tekton-taskrun-started.json")
	cases := []struct {
		name        string
		ceType      string
		data        []byte
		wantEnd     bool
		wantStatus  string
		wantMessage string // substring
		wantResults map[string]string
		wantMark    string // reported label after the event
	}{
		{name: "started", ceType: started.Type, data: started.Data},
		{name: "successful with results", ceType: "dev.tekton.event.taskrun.successful.v1", data: successful, wantEnd: true,
			wantStatus: "succeeded", wantResults: map[string]string{"ts": "1741056090.123456", "permalink": ""}, wantMark: "true"},
		{name: "failed with message", ceType: "dev.tekton.event.taskrun.failed.v1", data: failed, wantEnd: true,
			wantStatus: "failed", wantMessage: `Failed: "step-task" exited with code 2`, wantMark: "true"},
		{name: "timed out", ceType: "dev.tekton.event.taskrun.failed.v1",
			data:    withCondition(t, failed, corev1.ConditionFalse, "TaskRunTimeout", `TaskRun "x" failed to finish within "30m0s"`, nil),
			wantEnd: true, wantStatus: "failed", wantMessage: "TaskRunTimeout: ", wantMark: "true"},
		{name: "cancelled by the handler", ceType: "dev.tekton.event.taskrun.failed.v1",
			data:     withCondition(t, failed, corev1.ConditionFalse, "TaskRunCancelled", "cancelled", map[string]string{"boomerang.io/cancelled": "true"}),
			wantMark: "skipped"},
		{name: "running is not terminal", ceType: "dev.tekton.event.taskrun.running.v1",
			data: withCondition(t, failed, corev1.ConditionUnknown, "Running", "", nil)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, "Never")
			data := withoutDeletion(t, tc.data)
			tr := e.withConfigMap(t, data)
			if code := e.send(t, tc.ceType, tr.Name, data); code != http.StatusOK {
				t.Fatalf("status %d", code)
			}
			// Reported or released, the ConfigMap is settled: no start
			// claim, the TaskRun its owner.
			if cm := e.configMap(t, tr); tc.wantMark != "" && (cm.Annotations["boomerang.io/claimed"] != "" || len(cm.OwnerReferences) != 1 || cm.OwnerReferences[0].UID != tr.UID) {
				t.Errorf("ConfigMap annotations %v, owners %v; want it settled, owned by the TaskRun", cm.Annotations, cm.OwnerReferences)
			}
			got := ends(e.engine.Calls())
			if !tc.wantEnd {
				if len(got) != 0 {
					t.Fatalf("unexpected end call %+v", got[0].End)
				}
			} else {
				if len(got) != 1 {
					t.Fatalf("%d end calls, want 1", len(got))
				}
				end := got[0].End
				if end.Status != tc.wantStatus || !strings.Contains(end.StatusMessage, tc.wantMessage) || end.StatusMessage == "" {
					t.Errorf("end %+v, want status %s message containing %q", end, tc.wantStatus, tc.wantMessage)
				}
				if tc.wantResults != nil {
					res := map[string]string{}
					for _, r := range end.Results {
						var s string
						if err := json.Unmarshal(r.Value, &s); err != nil {
							t.Fatalf("result %s value %s", r.Name, r.Value)
						}
						res[r.Name] = s
					}
					for k := range tc.wantResults {
						if _, ok := res[k]; !ok {
							t.Errorf("result %s missing from %v", k, res)
						}
					}
				}
			}
			if mark := e.get(t, tr.Name).Labels["boomerang.io/reported"]; mark != tc.wantMark {
				t.Errorf("reported label %q, want %q", mark, tc.wantMark)
			}
		})
	}
}

func TestNotOursIgnored(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "Never")
	data := fixtures.Data(t, "tekton-taskrun-failed.json")
	var doc map[string]map[string]any
	_ = json.Unmarshal(data, &doc)
	md := doc["taskRun"]["metadata"].(map[string]any)
	md["labels"] = map[string]any{"app": "other"}
	data, _ = json.Marshal(doc)
	if code := e.send(t, "dev.tekton.event.taskrun.failed.v1", "x", data); code != http.StatusOK {
		t.Fatalf("status %d", code)
	}
	if n := len(e.tekton.Actions()); n != 0 {
		t.Fatalf("%d apiserver calls for a foreign TaskRun", n)
	}
	if n := len(e.engine.Calls()); n != 0 {
		t.Fatal("Engine called for a foreign TaskRun")
	}
}

// An event is read only for the TaskRun it names: a forged one claiming
// that another product's TaskRun is ours and finished changes nothing.
func TestForgedEventChangesNothing(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "Never")
	data := fixtures.Data(t, "tekton-taskrun-failed.json")
	tr := e.store(t, data, func(tr *tektonv1.TaskRun) { tr.Labels[contract.LabelProduct] = "someone-else" })
	e.tekton.ClearActions()
	if code := e.send(t, "dev.tekton.event.taskrun.failed.v1", tr.Name, data); code != http.StatusOK {
		t.Fatalf("status %d", code)
	}
	for _, a := range e.tekton.Actions() {
		if a.GetVerb() != "get" {
			t.Errorf("%s %s for a TaskRun that is not ours", a.GetVerb(), a.GetResource().Resource)
		}
	}
	if n := len(e.engine.Calls()); n != 0 {
		t.Errorf("Engine called for a TaskRun that is not ours")
	}
}

// A TaskRun deleted while it runs (a user, a pruner) is held by our
// finalizer: the sweep reports it failed with the reason, and the mark
// releases it.
func TestDeletedWhileRunningReportedFailed(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "Never")
	data := fixtures.Data(t, "tekton-taskrun-started.json")
	tr := e.store(t, data, func(tr *tektonv1.TaskRun) {
		e.engine.Know(enginestub.Task{ID: tr.Labels[contract.LabelTaskRunRef], Status: enginestub.StatusRunning, Phase: enginestub.PhaseRunning})
		now := metav1.Now()
		tr.DeletionTimestamp = &now
		tr.Finalizers = []string{"example.com/other", contract.FinalizerReport}
	})
	if n, err := e.sink.Sweep(context.Background()); err != nil || n != 1 {
		t.Fatalf("sweep reported %d (%v), want 1", n, err)
	}
	got := ends(e.engine.Calls())
	if len(got) != 1 || got[0].End.Status != engine.StatusFailed || !strings.HasPrefix(got[0].End.StatusMessage, outcome.ReasonDeleted+": ") {
		t.Fatalf("want one end failed with %s, got %+v", outcome.ReasonDeleted, got)
	}
	after := e.get(t, tr.Name)
	if after == nil || after.Labels[contract.LabelReported] != "true" {
		t.Fatalf("want the TaskRun marked reported, got %+v", after)
	}
	if fs := after.Finalizers; len(fs) != 1 || fs[0] != "example.com/other" {
		t.Fatalf("finalizers %v, want ours released and the other kept", fs)
	}
	if n, _ := e.sink.Sweep(context.Background()); n != 0 || len(ends(e.engine.Calls())) != 1 {
		t.Fatalf("a second sweep reported it again")
	}
}

// A TaskRun deleted while still pending (never run by Tekton) is owed an
// end only if the handler's start reached the Engine: while the handler's
// claim is live nothing is decided; after that, the Engine says.
func TestDeletedWhilePending(t *testing.T) {
	t.Parallel()
	running := &enginestub.Task{Status: enginestub.StatusRunning, Phase: enginestub.PhaseRunning}
	settled := status.ClaimStale + status.SettleTimeout + time.Minute
	cases := []struct {
		name       string
		claimAge   time.Duration
		engine     *enginestub.Task // nil: the Engine does not know the task
		wantAsked  bool             // the sink asked the Engine
		wantEnd    bool
		wantMark   string
		wantHolder bool // our finalizer still holds it
	}{
		{"claim live: its owner releases or cancels it", time.Second, running, false, false, "", true},
		{"claim stale, a start may still land", status.ClaimStale + time.Second, running, false, false, "", true},
		{"owner died after the start landed: reported failed", settled, running, true, true, "true", false},
		{"owner died before the start: nothing owed", settled, &enginestub.Task{}, true, false, "skipped", false},
		{"the Engine cancelled it: nothing owed", settled,
			&enginestub.Task{Status: enginestub.StatusCancelled, Phase: enginestub.PhaseCompleted}, true, false, "skipped", false},
		{"the Engine does not know it: nothing owed", settled, nil, true, false, "skipped", false},
		{"the Engine cannot be asked: wait", settled, running, true, false, "", true},
		{"the Engine cannot be asked for long: given up", settled, running, true, false, "skipped", false},
	}
	failing := map[string]time.Duration{ // the Engine answers 401; the deletion's age
		"the Engine cannot be asked: wait":              time.Minute,
		"the Engine cannot be asked for long: given up": 11 * time.Minute,
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, "Never")
			data := fixtures.Data(t, "tekton-taskrun-started.json")
			tr := e.store(t, data, func(tr *tektonv1.TaskRun) {
				tr.Status.Conditions = nil
				tr.Spec.Status = tektonv1.TaskRunSpecStatusPending
				tr.Annotations[contract.AnnotationClaimed] = contract.ClaimValue(time.Now().Add(-tc.claimAge))
				deleted := metav1.NewTime(time.Now().Add(-failing[tc.name]))
				tr.DeletionTimestamp = &deleted
				tr.Finalizers = []string{contract.FinalizerReport}
			})
			if _, ok := failing[tc.name]; ok {
				e.engine.FailFor(time.Hour, http.StatusUnauthorized)
			}
			if tc.engine != nil {
				known := *tc.engine
				known.ID = tr.Labels[contract.LabelTaskRunRef]
				e.engine.Know(known)
			}
			_, _ = e.sink.Sweep(context.Background()) // an Engine that cannot be asked is an error
			asked := false
			for _, c := range e.engine.Calls() {
				asked = asked || c.Kind == enginestub.KindTaskRunGet
			}
			if asked != tc.wantAsked {
				t.Fatalf("asked the Engine = %v, want %v", asked, tc.wantAsked)
			}
			got := ends(e.engine.Calls())
			if (len(got) == 1) != tc.wantEnd || len(got) > 1 {
				t.Fatalf("%d ends, want end=%v", len(got), tc.wantEnd)
			}
			if tc.wantEnd && (got[0].End.Status != engine.StatusFailed || !strings.HasPrefix(got[0].End.StatusMessage, outcome.ReasonDeleted)) {
				t.Fatalf("end %+v, want failed with %s", got[0].End, outcome.ReasonDeleted)
			}
			after := e.get(t, tr.Name)
			if after == nil {
				t.Fatal("TaskRun gone")
			}
			if mark := after.Labels[contract.LabelReported]; mark != tc.wantMark {
				t.Fatalf("marked %q, want %q", mark, tc.wantMark)
			}
			if holds := len(after.Finalizers) == 1; holds != tc.wantHolder {
				t.Fatalf("finalizers %v, want ours kept = %v", after.Finalizers, tc.wantHolder)
			}
		})
	}
}

// A deletion under the policy that fails after the report is retried by
// Tekton's retry of the event and by the sweep, without a second end.
func TestFailedDeletionRetried(t *testing.T) {
	t.Parallel()
	for _, by := range []string{"event", "sweep"} {
		t.Run(by, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, "Always")
			data := fixtures.Data(t, "tekton-taskrun-successful-two-results.json")
			tr := e.seed(t, data)
			fail := true
			e.tekton.PrependReactor("delete", "taskruns", func(k8stesting.Action) (bool, runtime.Object, error) {
				if fail {
					return true, nil, apierrors.NewServiceUnavailable("etcd is slow")
				}
				return false, nil, nil
			})
			if code := e.send(t, "dev.tekton.event.taskrun.successful.v1", tr.Name, data); code < 500 {
				t.Fatalf("status %d, want 5xx so Tekton retries", code)
			}
			if got := e.get(t, tr.Name); got == nil || got.Labels[contract.LabelDeleteDue] != "true" || len(got.Finalizers) != 0 {
				t.Fatalf("want the TaskRun marked for deletion and released, got %+v", got)
			}
			fail = false
			if by == "event" {
				if code := e.send(t, "dev.tekton.event.taskrun.successful.v1", tr.Name, data); code != http.StatusOK {
					t.Fatalf("retry: status %d", code)
				}
			} else if _, err := e.sink.Sweep(context.Background()); err != nil {
				t.Fatal(err)
			}
			if e.get(t, tr.Name) != nil {
				t.Fatalf("TaskRun not deleted by the %s", by)
			}
			if n := len(ends(e.engine.Calls())); n != 1 {
				t.Fatalf("%d ends, want 1", n)
			}
		})
	}
}

func TestDuplicatesReportOnce(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "Never")
	data := fixtures.Data(t, "tekton-taskrun-successful-two-results.json")
	tr := e.seed(t, data)
	var wg sync.WaitGroup
	for range 30 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if code := e.send(t, "dev.tekton.event.taskrun.successful.v1", tr.Name, data); code != http.StatusOK {
				t.Errorf("status %d", code)
			}
		}()
	}
	wg.Wait()
	if n := len(ends(e.engine.Calls())); n != 1 {
		t.Fatalf("%d end calls for 30 duplicates", n)
	}
}

// Copies of Tekton's event delivered to several sink replicas at once make
// one end call: the replica whose claim on the TaskRun wins reports it.
func TestReplicasReportOnce(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "Never")
	var urls []string
	for range 3 {
		e.serve(t, "Never")
		urls = append(urls, e.url)
	}
	data := fixtures.Data(t, "tekton-taskrun-successful-two-results.json")
	data = withoutDeletion(t, data)
	tr := e.seed(t, data)
	var wg sync.WaitGroup
	for i := range 30 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := &env{url: urls[i%len(urls)]}
			if code := r.send(t, "dev.tekton.event.taskrun.successful.v1", tr.Name, data); code != http.StatusOK {
				t.Errorf("status %d", code)
			}
		}()
	}
	wg.Wait()
	if n := len(ends(e.engine.Calls())); n != 1 {
		t.Fatalf("%d end calls for 30 copies at 3 replicas, want 1", n)
	}
	if got := e.get(t, tr.Name); got.Labels["boomerang.io/reported"] != "true" || got.Annotations["boomerang.io/reporting"] != "" {
		t.Fatalf("want reported and the claim dropped, got labels %v annotations %v", got.Labels, got.Annotations)
	}
}

// A report claimed by a live replica is left to it; one whose claim is
// older than ReportStale (its replica died) is taken over by the sweep.
func TestReportClaims(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		age     time.Duration
		wantEnd int
	}{
		{"live claim", time.Second, 0},
		{"stale claim", sink.ReportStale(5*time.Second, 20*time.Second) + time.Second, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, "Never")
			data := fixtures.Data(t, "tekton-taskrun-successful-two-results.json")
			tr := e.seed(t, data)
			tr.Annotations["boomerang.io/reporting"] = time.Now().Add(-tc.age).UTC().Format(time.RFC3339Nano)
			if _, err := e.tekton.TektonV1().TaskRuns(ns).Update(context.Background(), tr, metav1.UpdateOptions{}); err != nil {
				t.Fatal(err)
			}
			if _, err := e.sink.Sweep(context.Background()); err != nil {
				t.Fatal(err)
			}
			if n := len(ends(e.engine.Calls())); n != tc.wantEnd {
				t.Fatalf("%d end calls, want %d", n, tc.wantEnd)
			}
		})
	}
}

// A TaskRun with its params ConfigMap has its report claimed on the
// ConfigMap (no TaskRun write before the end call), in the patch that
// settles the handler's claim and makes the TaskRun the ConfigMap's owner.
// A live claim there is left to its replica; a stale one is taken over; an
// end the Engine answers with an error drops it.
func TestReportClaimedOnTheConfigMap(t *testing.T) {
	t.Parallel()
	stale := sink.ReportStale(5*time.Second, 20*time.Second) + time.Second
	for _, tc := range []struct {
		name     string
		claimAge time.Duration // 0: no report claim yet
		wantEnd  int
	}{
		{"first report", 0, 1},
		{"live claim", time.Second, 0},
		{"stale claim", stale, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, "Never")
			data := withoutDeletion(t, fixtures.Data(t, "tekton-taskrun-successful-two-results.json"))
			tr := e.withConfigMap(t, data)
			cm := e.configMap(t, tr)
			if tc.claimAge > 0 {
				cm.Annotations["boomerang.io/reporting"] = contract.ClaimValue(time.Now().Add(-tc.claimAge))
				if _, err := e.kube.CoreV1().ConfigMaps(ns).Update(context.Background(), cm, metav1.UpdateOptions{}); err != nil {
					t.Fatal(err)
				}
			}
			e.tekton.ClearActions()
			if code := e.send(t, "dev.tekton.event.taskrun.successful.v1", tr.Name, data); code != http.StatusOK {
				t.Fatalf("status %d", code)
			}
			if n := len(ends(e.engine.Calls())); n != tc.wantEnd {
				t.Fatalf("%d end calls, want %d", n, tc.wantEnd)
			}
			if tc.wantEnd == 0 {
				return
			}
			for _, a := range e.tekton.Actions() {
				if p, ok := a.(k8stesting.PatchAction); ok && strings.Contains(string(p.GetPatch()), "boomerang.io/reporting\":\"2") {
					t.Errorf("the report was claimed on the TaskRun: %s", p.GetPatch())
				}
			}
			e.reportedOnConfigMap(t, tr)
		})
	}
	t.Run("end refused", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, "Never")
		data := fixtures.Data(t, "tekton-taskrun-successful-two-results.json")
		tr := e.withConfigMap(t, data)
		e.engine.FailFor(time.Hour, http.StatusServiceUnavailable)
		if code := e.send(t, "dev.tekton.event.taskrun.successful.v1", tr.Name, data); code != http.StatusServiceUnavailable {
			t.Fatalf("status %d, want 503", code)
		}
		if got := e.configMap(t, tr).Annotations["boomerang.io/reporting"]; got != contract.ClaimValue(time.Time{}) {
			t.Fatalf("report claim %q after a refused end, want it dropped", got)
		}
	})
}

// A TaskRun the sink's watch holds is reported with no read: its report is
// claimed by moving the start's claim on the params ConfigMap to the
// report's, which only one replica can do. One the watch sees finish is
// reported at once, before Tekton's event. A replica whose watch lags a
// deletion that another replica reported on the TaskRun finds the start's
// claim gone, and reads the TaskRun.
func TestReportedFromTheWatch(t *testing.T) {
	t.Parallel()
	const successful = "dev.tekton.event.taskrun.successful.v1"
	data := withoutDeletion(t, fixtures.Data(t, "tekton-taskrun-successful-two-results.json"))
	watching := func(t *testing.T, e *env, name string) {
		ctx, cancel := context.WithCancel(context.Background())
		t.Cleanup(cancel)
		e.sink.Watch(ctx)
		e.watching(t, name)
	}
	t.Run("first report", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, "Never")
		tr := e.withConfigMap(t, data)
		watching(t, e, tr.Name)
		e.kube.ClearActions()
		if code := e.send(t, successful, tr.Name, data); code != http.StatusOK {
			t.Fatalf("status %d", code)
		}
		if n := len(ends(e.engine.Calls())); n != 1 {
			t.Fatalf("%d end calls, want 1", n)
		}
		for _, a := range e.kube.Actions() {
			if a.GetVerb() == "get" {
				t.Errorf("read the ConfigMap to claim the report on it; want one patch")
			}
		}
		e.reportedOnConfigMap(t, tr)
	})
	t.Run("seen finishing", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, "Never")
		tr := e.withConfigMap(t, withCondition(t, data, corev1.ConditionUnknown, "Running", "", nil))
		var urls []string
		for range 2 { // replicas, each watching
			e.serve(t, "Never")
			watching(t, e, tr.Name)
			urls = append(urls, e.url)
		}
		e.finish(t, tr.Name)
		wait.Eventually(t, 10*time.Second, "the end, with no event", func() (bool, error) { return len(ends(e.engine.Calls())) > 0, nil })
		sendEach(t, successful, tr.Name, data, urls...) // Tekton's event, late
		e.endedOnce(t, tr.Name)
	})
	t.Run("stopped while reporting", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, "Never")
		tr := e.withConfigMap(t, withCondition(t, data, corev1.ConditionUnknown, "Running", "", nil))
		e.sink.Run(context.Background())
		e.watching(t, tr.Name)
		e.engine.Delay(300 * time.Millisecond) // within the Engine client's 1 s timeout
		e.finish(t, tr.Name)
		wait.Eventually(t, 10*time.Second, "the end call to wait on the Engine", func() (bool, error) { return e.engine.Held() > 0, nil })
		if err := e.sink.Stop(context.Background()); err != nil {
			t.Fatal(err)
		}
		e.endedOnce(t, tr.Name) // when Stop returned
	})
	t.Run("replicas", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, "Never")
		tr := e.withConfigMap(t, data)
		var urls []string
		for range 3 {
			e.serve(t, "Never")
			watching(t, e, tr.Name)
			urls = append(urls, e.url)
		}
		var wg sync.WaitGroup
		for i := range 30 {
			wg.Go(func() {
				if code := (&env{url: urls[i%len(urls)]}).send(t, successful, tr.Name, data); code != http.StatusOK {
					t.Errorf("status %d", code)
				}
			})
		}
		wg.Wait()
		if n := len(ends(e.engine.Calls())); n != 1 {
			t.Fatalf("%d end calls for 30 copies at 3 watching replicas, want 1", n)
		}
	})
	t.Run("watch lags a deletion", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, "Never")
		tr := e.withConfigMap(t, data)
		seen, err := pipelinev1test.FromTekton(tr)
		if err != nil {
			t.Fatal(err)
		}
		e.sink.Lagging(seen)
		lagging := e.url
		deleting := e.get(t, tr.Name)
		now := metav1.Now()
		deleting.DeletionTimestamp, deleting.Finalizers = &now, []string{contract.FinalizerReport}
		if _, err := e.tekton.TektonV1().TaskRuns(ns).Update(context.Background(), deleting, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		e.serve(t, "Never") // a replica that reads
		sendEach(t, successful, tr.Name, data, e.url, lagging)
		if n := len(ends(e.engine.Calls())); n != 1 {
			t.Fatalf("%d end calls, want 1: the lagging replica reported a TaskRun another reported while it was deleted", n)
		}
	})
}

// A replica whose pod watch sees a TaskRun's steps end claims its report
// then, before Tekton finishes the TaskRun, and sends the end call with no
// write once it does. An early claim no report used in time, or held when
// its replica stops, is dropped, and the report goes on as any other: one
// end call in every case.
func TestReportClaimedEarly(t *testing.T) {
	t.Parallel()
	const successful = "dev.tekton.event.taskrun.successful.v1"
	data := withoutDeletion(t, fixtures.Data(t, "tekton-taskrun-successful-two-results.json"))
	running := withCondition(t, data, corev1.ConditionUnknown, "Running", "", nil)
	start := func(t *testing.T, e *env, replicas int) (*tektonv1.TaskRun, []string) {
		tr := e.withConfigMap(t, running)
		e.pod(t, tr, false)
		var urls []string
		for range replicas {
			e.serve(t, "Never")
			ctx, cancel := context.WithCancel(context.Background())
			t.Cleanup(cancel)
			e.sink.Watch(ctx)
			e.watching(t, tr.Name)
			urls = append(urls, e.url)
		}
		return tr, urls
	}
	claimed := func(t *testing.T, e *env, tr *tektonv1.TaskRun) {
		e.pod(t, tr, true)
		wait.Eventually(t, 10*time.Second, "the report claimed early", func() (bool, error) {
			return !contract.ClaimTime(e.configMap(t, tr).Annotations, contract.AnnotationReporting).IsZero(), nil
		})
	}
	dropped := func(t *testing.T, e *env, tr *tektonv1.TaskRun) {
		wait.Eventually(t, 10*time.Second, "the early claim dropped", func() (bool, error) {
			a := e.configMap(t, tr).Annotations
			return a[contract.AnnotationReporting] != "" && contract.ClaimTime(a, contract.AnnotationReporting).IsZero(), nil
		})
	}
	t.Run("used", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, "Never")
		tr, urls := start(t, e, 1)
		claimed(t, e, tr)
		e.kube.ClearActions()
		e.finish(t, tr.Name)
		wait.Eventually(t, 10*time.Second, "the end, with no event", func() (bool, error) { return len(ends(e.engine.Calls())) > 0, nil })
		for _, a := range e.kube.Actions() {
			if a.GetResource().Resource == "configmaps" {
				t.Errorf("%s of the ConfigMap after the TaskRun finished; want the end call under the early claim, with no write", a.GetVerb())
			}
		}
		sendEach(t, successful, tr.Name, data, urls...) // Tekton's event, late
		e.endedOnce(t, tr.Name)
		e.reportedOnConfigMap(t, tr)
	})
	t.Run("replicas", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, "Never")
		tr, urls := start(t, e, 3)
		claimed(t, e, tr)
		patches := func() int {
			n := 0
			for _, a := range e.kube.Actions() {
				if a.GetVerb() == "patch" && a.GetResource().Resource == "configmaps" {
					n++
				}
			}
			return n
		}
		wait.Eventually(t, 10*time.Second, "every replica's early claim", func() (bool, error) { return patches() == 3, nil })
		e.kube.ClearActions()
		e.finish(t, tr.Name)
		var wg sync.WaitGroup
		for i := range 30 { // Tekton's event, and copies, at every replica
			wg.Go(func() {
				if code := (&env{url: urls[i%len(urls)]}).send(t, successful, tr.Name, data); code != http.StatusOK {
					t.Errorf("status %d", code)
				}
			})
		}
		wg.Wait()
		wait.Eventually(t, 10*time.Second, "the end", func() (bool, error) { return len(ends(e.engine.Calls())) > 0, nil })
		wait.Eventually(t, 10*time.Second, "the mark", func() (bool, error) { return e.get(t, tr.Name).Labels["boomerang.io/reported"] == "true", nil })
		e.endedOnce(t, tr.Name)
		if n := patches(); n != 0 {
			t.Errorf("%d patches of the ConfigMap after the TaskRun finished; want none: the replicas that lost the early claim know the first claim is taken", n)
		}
	})
	t.Run("not used in time", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, "Never")
		e.stale = sink.ReportStale(300*time.Millisecond, 700*time.Millisecond) // held 200 ms
		tr, urls := start(t, e, 2)
		claimed(t, e, tr)
		dropped(t, e, tr)
		e.finish(t, tr.Name)
		// The first claim is gone, so the watch leaves the report to
		// Tekton's event, which reads.
		sendEach(t, successful, tr.Name, data, urls...)
		e.endedOnce(t, tr.Name)
	})
	t.Run("held when its replica stops", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, "Never")
		tr, _ := start(t, e, 1)
		claimed(t, e, tr)
		if err := e.sink.Stop(context.Background()); err != nil {
			t.Fatal(err)
		}
		dropped(t, e, tr)
		e.serve(t, "Never") // another replica, which Tekton's event reaches
		e.finish(t, tr.Name)
		sendEach(t, successful, tr.Name, data, e.url)
		e.endedOnce(t, tr.Name)
	})
	t.Run("Tekton's event first", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, "Never")
		tr, _ := start(t, e, 1)
		claimed(t, e, tr)
		e.sink.StopWatch()
		seen, err := pipelinev1test.FromTekton(e.get(t, tr.Name))
		if err != nil {
			t.Fatal(err)
		}
		e.sink.Lagging(seen) // a watch that has not seen the finish
		e.finish(t, tr.Name)
		e.kube.ClearActions()
		if code := e.send(t, successful, tr.Name, data); code != http.StatusOK {
			t.Fatalf("status %d", code)
		}
		e.endedOnce(t, tr.Name)
		for _, a := range e.kube.Actions() {
			if a.GetVerb() != "get" {
				t.Errorf("%s of the ConfigMap after the TaskRun finished; want the end call under the early claim", a.GetVerb())
			}
		}
	})
}

// watching waits until the sink's watches of TaskRuns and pods are past
// their first list: a fake clientset's watch starts where it is when the
// informer asks for it, so what changes between the list and the watch is
// never seen. It changes the named TaskRun and its pod (if any) until the
// watches hold the versions of one change.
func (e *env) watching(t *testing.T, name string) {
	t.Helper()
	var trNow, podNow string
	polls := 0
	wait.Eventually(t, 10*time.Second, "the watches of "+name+" and its pod", func() (bool, error) {
		if trv, podv := e.sink.Versions(name, name+"-pod"); trv != "" && trv == trNow && podv == podNow {
			return true, nil
		}
		if polls++; polls%10 != 1 { // a change not seen yet may be on its way
			return false, nil
		}
		var err error
		trNow, podNow, err = e.touch(name)
		return false, err
	})
}

// touch changes an annotation of the named TaskRun and of its pod, if it
// has one, and returns their new versions ("" for no pod).
func (e *env) touch(name string) (trv, podv string, err error) {
	ctx := context.Background()
	const key = "ktest.dev/touched"
	at := time.Now().Format(time.RFC3339Nano)
	tr, err := e.tekton.TektonV1().TaskRuns(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return "", "", err
	}
	metav1.SetMetaDataAnnotation(&tr.ObjectMeta, key, at)
	if tr, err = e.tekton.TektonV1().TaskRuns(ns).Update(ctx, tr, metav1.UpdateOptions{}); err != nil {
		return "", "", err
	}
	pod, err := e.kube.CoreV1().Pods(ns).Get(ctx, name+"-pod", metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return tr.ResourceVersion, "", nil
	}
	if err != nil {
		return "", "", err
	}
	metav1.SetMetaDataAnnotation(&pod.ObjectMeta, key, at)
	if pod, err = e.kube.CoreV1().Pods(ns).Update(ctx, pod, metav1.UpdateOptions{}); err != nil {
		return "", "", err
	}
	return tr.ResourceVersion, pod.ResourceVersion, nil
}

// pod stores or updates the pod of tr as Tekton makes it and a node runs
// it: its steps running, or ended.
func (e *env) pod(t *testing.T, tr *tektonv1.TaskRun, ended bool) {
	t.Helper()
	p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: tr.Name + "-pod", Namespace: ns, Labels: map[string]string{
		contract.LabelProduct: "bmrg-flow", contract.LabelTaskRunRef: tr.Labels[contract.LabelTaskRunRef], "tekton.dev/taskRun": tr.Name}}}
	state := corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}
	if ended {
		state = corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{Reason: "Completed"}}
	}
	p.Status = corev1.PodStatus{Phase: corev1.PodRunning, ContainerStatuses: []corev1.ContainerStatus{{Name: "step-build", State: state}, {Name: "sidecar-db"}}}
	pods := e.kube.CoreV1().Pods(ns)
	if !ended {
		if _, err := pods.Create(context.Background(), p, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		return
	}
	if _, err := pods.UpdateStatus(context.Background(), p, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
}

// hookedKube runs before, once, when the sink first reads the named
// method's object.
type hookedKube struct {
	*kube.Client
	method string // "GetConfigMap" or "ClaimReport"
	once   sync.Once
	before func()
}

func (h *hookedKube) GetConfigMap(ctx context.Context, name string) (*corev1.ConfigMap, error) {
	if h.method == "GetConfigMap" {
		h.once.Do(h.before)
	}
	return h.Client.GetConfigMap(ctx, name)
}

func (h *hookedKube) ClaimReport(ctx context.Context, cm *corev1.ConfigMap, at time.Time) (bool, error) {
	if h.method == "ClaimReport" {
		h.once.Do(h.before)
	}
	return h.Client.ClaimReport(ctx, cm, at)
}

// A replica that read the TaskRun before it was deleted claims on the
// ConfigMap; the replica that reports it while it is deleted claims on the
// ConfigMap too, then on the TaskRun: of the two, one sends the end,
// wherever the deletion and the other's whole report fall in the first's
// claim (before it reads the ConfigMap, or between its read and its claim).
func TestDeletionDuringReport(t *testing.T) {
	t.Parallel()
	const successful = "dev.tekton.event.taskrun.successful.v1"
	data := withoutDeletion(t, fixtures.Data(t, "tekton-taskrun-successful-two-results.json"))
	for _, method := range []string{"GetConfigMap", "ClaimReport"} {
		t.Run(method, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, "Never")
			tr := e.withConfigMap(t, data)
			other := e.url
			hooked := &hookedKube{Client: kubetest.New(e.kube, e.tekton, ns, 5*time.Second), method: method, before: func() {
				deleting := e.get(t, tr.Name)
				now := metav1.Now()
				deleting.DeletionTimestamp, deleting.Finalizers = &now, []string{contract.FinalizerReport}
				if _, err := e.tekton.TektonV1().TaskRuns(ns).Update(context.Background(), deleting, metav1.UpdateOptions{}); err != nil {
					t.Error(err)
				}
				if code := (&env{url: other}).send(t, successful, tr.Name, data); code != http.StatusOK {
					t.Errorf("the other replica: status %d", code)
				}
			}}
			ec := engine.New(engine.Options{BaseURL: e.engine.URL(), Timeout: time.Second, RetryBudget: 2 * time.Second})
			first := sink.New(hooked, ec, sink.Options{Product: "bmrg-flow", DeletionPolicy: "Never", SweepLimit: 10}, slog.New(slog.DiscardHandler))
			if code := (&env{url: fnserve.Serve(t, first, 4<<20)}).send(t, successful, tr.Name, data); code != http.StatusOK {
				t.Fatalf("status %d", code)
			}
			if n := len(ends(e.engine.Calls())); n != 1 {
				t.Fatalf("%d end calls, want 1", n)
			}
		})
	}
}

// reportedOnConfigMap checks that tr's report was claimed on its params
// ConfigMap, in the patch that took the start's claim off and made tr its
// owner, and that tr is marked reported.
func (e *env) reportedOnConfigMap(t *testing.T, tr *tektonv1.TaskRun) {
	t.Helper()
	got := e.configMap(t, tr)
	if _, claimed := got.Annotations["boomerang.io/claimed"]; claimed || got.Annotations["boomerang.io/reporting"] == "" ||
		len(got.OwnerReferences) != 1 || got.OwnerReferences[0].UID != tr.UID {
		t.Fatalf("ConfigMap annotations %v, owners %v; want the report claimed, the start's claim gone, owned by the TaskRun", got.Annotations, got.OwnerReferences)
	}
	if mark := e.get(t, tr.Name).Labels["boomerang.io/reported"]; mark != "true" {
		t.Fatalf("TaskRun mark %q, want true", mark)
	}
}

// endedOnce checks that the Engine accepted one end call, and that the
// named TaskRun is marked reported.
func (e *env) endedOnce(t *testing.T, name string) {
	t.Helper()
	if n := len(ends(e.engine.Calls())); n != 1 {
		t.Fatalf("%d end calls, want 1", n)
	}
	if mark := e.get(t, name).Labels["boomerang.io/reported"]; mark != "true" {
		t.Fatalf("TaskRun mark %q, want true", mark)
	}
}

// finish makes the named TaskRun's Succeeded condition True, as Tekton
// does when it succeeds.
func (e *env) finish(t *testing.T, name string) {
	t.Helper()
	finished := e.get(t, name)
	finished.Status.Conditions[0].Status, finished.Status.Conditions[0].Reason = corev1.ConditionTrue, "Succeeded"
	if _, err := e.tekton.TektonV1().TaskRuns(ns).UpdateStatus(context.Background(), finished, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
}

// withConfigMap stores the event's TaskRun as seed does, projecting its
// params ConfigMap, and the ConfigMap under the handler's claim.
func (e *env) withConfigMap(t *testing.T, data []byte) *tektonv1.TaskRun {
	t.Helper()
	tr := e.store(t, data, func(tr *tektonv1.TaskRun) {
		e.engine.Know(enginestub.Task{ID: tr.Labels[contract.LabelTaskRunRef], Status: enginestub.StatusRunning, Phase: enginestub.PhaseRunning})
		if tr.Spec.TaskSpec == nil {
			tr.Spec.TaskSpec = &tektonv1.TaskSpec{}
		}
		tr.Spec.TaskSpec.Volumes = append(tr.Spec.TaskSpec.Volumes, corev1.Volume{Name: "params", VolumeSource: corev1.VolumeSource{
			Projected: &corev1.ProjectedVolumeSource{Sources: []corev1.VolumeProjection{{ConfigMap: &corev1.ConfigMapProjection{
				LocalObjectReference: corev1.LocalObjectReference{Name: "cfg-" + tr.Name}}}}}}})
	})
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "cfg-" + tr.Name, Namespace: ns,
		Labels:      map[string]string{contract.LabelTaskRunRef: tr.Labels[contract.LabelTaskRunRef]},
		Annotations: map[string]string{"boomerang.io/claimed": contract.ClaimValue(time.Now())}}}
	if _, err := e.kube.CoreV1().ConfigMaps(ns).Create(context.Background(), cm, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	return tr
}

// configMap reads the params ConfigMap withConfigMap stored for tr.
func (e *env) configMap(t *testing.T, tr *tektonv1.TaskRun) *corev1.ConfigMap {
	t.Helper()
	cm, err := e.kube.CoreV1().ConfigMaps(ns).Get(context.Background(), "cfg-"+tr.Name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return cm
}

func TestEngineDownThenSweep(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "Never")
	data := fixtures.Data(t, "tekton-taskrun-successful-two-results.json")
	tr := e.seed(t, data)
	e.engine.FailFor(time.Hour, http.StatusServiceUnavailable)
	if code := e.send(t, "dev.tekton.event.taskrun.successful.v1", tr.Name, data); code != http.StatusServiceUnavailable {
		t.Fatalf("status %d, want 503 so Tekton retries", code)
	}
	if l := e.log.lines(t, "event"); len(l) != 1 || l[0]["outcome"] != "failed" || l[0]["code"] != 503.0 || l[0]["level"] != "ERROR" {
		t.Fatalf("event lines %v, want one failed with 503 at error", l)
	}
	if mark := e.get(t, tr.Name).Labels["boomerang.io/reported"]; mark != "" {
		t.Fatalf("marked %q although the Engine never accepted", mark)
	}
	e.engine.FailFor(0, 0)
	n, err := e.sink.Sweep(context.Background())
	if err != nil || n != 1 {
		t.Fatalf("sweep reported %d, %v", n, err)
	}
	if n, _ := e.sink.Sweep(context.Background()); n != 0 {
		t.Fatalf("second sweep reported %d again", n)
	}
	if got := ends(e.engine.Calls()); len(got) != 1 {
		t.Fatalf("%d accepted end calls", len(got))
	}
}

// Only the Engine's own refusal (400) is final: the TaskRun is marked
// rejected and never sent again. Any other answer (a token or URL to fix)
// leaves it unmarked, answered 503, for a later sweep.
func TestOnlyTheEnginesRefusalIsFinal(t *testing.T) {
	t.Parallel()
	cases := []struct {
		code     int
		wantMark string
		wantHTTP int
	}{
		{http.StatusBadRequest, "rejected", http.StatusUnprocessableEntity},
		{http.StatusUnauthorized, "", http.StatusServiceUnavailable},
		{http.StatusForbidden, "", http.StatusServiceUnavailable},
		{http.StatusNotFound, "", http.StatusServiceUnavailable},
		{http.StatusConflict, "", http.StatusServiceUnavailable},
	}
	for _, tc := range cases {
		t.Run(http.StatusText(tc.code), func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, "Never")
			data := fixtures.Data(t, "tekton-taskrun-successful-two-results.json")
			tr := e.seed(t, data)
			e.engine.FailFor(time.Hour, tc.code)
			if code := e.send(t, "dev.tekton.event.taskrun.successful.v1", tr.Name, data); code != tc.wantHTTP {
				t.Fatalf("status %d, want %d", code, tc.wantHTTP)
			}
			want := map[bool]string{true: "rejected", false: "failed"}[tc.wantMark != ""]
			if l := e.log.lines(t, "event"); len(l) != 1 || l[0]["outcome"] != want || l[0]["code"] != float64(tc.wantHTTP) {
				t.Fatalf("event lines %v, want one %s with %d", l, want, tc.wantHTTP)
			}
			if mark := e.get(t, tr.Name).Labels["boomerang.io/reported"]; mark != tc.wantMark {
				t.Fatalf("marked %q, want %q", mark, tc.wantMark)
			}
			e.engine.FailFor(0, 0)
			n, err := e.sink.Sweep(context.Background())
			if want := map[bool]int{true: 0, false: 1}[tc.wantMark != ""]; err != nil || n != want {
				t.Fatalf("sweep after the Engine recovered reported %d (%v), want %d", n, err, want)
			}
		})
	}
}

func TestSweepEvent(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "Never")
	data := fixtures.Data(t, "tekton-taskrun-failed.json")
	e.seed(t, data)
	req, _ := http.NewRequest(http.MethodPost, e.url, strings.NewReader(`{}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("ce-specversion", "1.0")
	req.Header.Set("ce-id", "ping-1")
	req.Header.Set("ce-source", "/apis/v1/namespaces/flow/pingsources/flow-sweep")
	req.Header.Set("ce-type", sink.SweepType)
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d", resp.StatusCode)
	}
	if n := len(ends(e.engine.Calls())); n != 1 {
		t.Fatalf("%d end calls after a sweep", n)
	}
	if l := e.log.lines(t, "event"); len(l) != 1 || l[0]["outcome"] != "swept" || l[0]["reported"] != 1.0 || l[0]["ce.id"] != "ping-1" || l[0]["level"] != "INFO" {
		t.Fatalf("event lines %v, want one swept with 1 reported", l)
	}
}

// The sink's own sweep, at start, logs a sweep line by an event's rules.
func TestBackgroundSweepLogged(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "Never")
	e.seed(t, fixtures.Data(t, "tekton-taskrun-failed.json"))
	e.sink.Run(context.Background())
	var l []map[string]any
	wait.Eventually(t, 10*time.Second, "the background sweep's line", func() (bool, error) {
		l = e.log.lines(t, eventlog.MsgSweep)
		return len(l) > 0, nil
	})
	if err := e.sink.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	if len(l) != 1 || l[0]["outcome"] != "swept" || l[0]["trigger"] != "background" || l[0]["reported"] != 1.0 || l[0]["code"] != 200.0 || l[0]["level"] != "INFO" {
		t.Fatalf("sweep lines %v, want one swept with 1 reported at info", l)
	}
}

func TestDeletionPolicy(t *testing.T) {
	t.Parallel()
	ok := fixtures.Data(t, "tekton-taskrun-successful-two-results.json")
	bad := fixtures.Data(t, "tekton-taskrun-failed.json")
	cases := []struct {
		name, policy, annotation string
		data                     []byte
		ceType                   string
		wantDeleted              bool
	}{
		{"never", "Never", "Never", ok, "dev.tekton.event.taskrun.successful.v1", false},
		{"on success, succeeded", "Never", "OnSuccess", ok, "dev.tekton.event.taskrun.successful.v1", true},
		{"on success, failed", "Never", "OnSuccess", bad, "dev.tekton.event.taskrun.failed.v1", false},
		{"always, failed", "Never", "Always", bad, "dev.tekton.event.taskrun.failed.v1", true},
		{"default from config", "OnSuccess", "", ok, "dev.tekton.event.taskrun.successful.v1", true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, tc.policy)
			var doc map[string]map[string]any
			_ = json.Unmarshal(tc.data, &doc)
			ann := doc["taskRun"]["metadata"].(map[string]any)["annotations"].(map[string]any)
			if tc.annotation == "" {
				delete(ann, "boomerang.io/deletion")
			} else {
				ann["boomerang.io/deletion"] = tc.annotation
			}
			data, _ := json.Marshal(doc)
			tr := e.seed(t, data)
			cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "bmrg-flow-cfg-65a1f1a0e4b0a1b2c3d4e610", Namespace: ns}}
			if _, err := e.kube.CoreV1().ConfigMaps(ns).Create(context.Background(), cm, metav1.CreateOptions{}); err != nil {
				t.Fatal(err)
			}
			if code := e.send(t, tc.ceType, tr.Name, data); code != http.StatusOK {
				t.Fatalf("status %d", code)
			}
			deleted := e.get(t, tr.Name) == nil
			if deleted != tc.wantDeleted {
				t.Fatalf("TaskRun deleted = %v, want %v", deleted, tc.wantDeleted)
			}
			_, err := e.kube.CoreV1().ConfigMaps(ns).Get(context.Background(), cm.Name, metav1.GetOptions{})
			if cmDeleted := err != nil; cmDeleted != tc.wantDeleted {
				t.Fatalf("ConfigMap deleted = %v, want %v", cmDeleted, tc.wantDeleted)
			}
		})
	}
}

// Handle, called directly as the front door calls it, returns the error
// whose status the front door writes, and reports as over HTTP.
func TestHandleDirect(t *testing.T) {
	t.Parallel()
	successful := fixtures.Data(t, "tekton-taskrun-successful-two-results.json")
	cases := []struct {
		name, ceType string
		ends         int
	}{
		{"successful", "dev.tekton.event.taskrun.successful.v1", 1},
		{"running", "dev.tekton.event.taskrun.running.v1", 0},
		{"sweep", sink.SweepType, 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, "Never")
			tr := e.seed(t, successful)
			if tc.ceType == "dev.tekton.event.taskrun.running.v1" {
				tr.Status.Conditions[0].Status = corev1.ConditionUnknown
				if _, err := e.tekton.TektonV1().TaskRuns(ns).UpdateStatus(context.Background(), tr, metav1.UpdateOptions{}); err != nil {
					t.Fatal(err)
				}
			}
			ev := event.New()
			ev.SetID("direct-1")
			ev.SetSource("/apis///namespaces/" + ns + "//" + tr.Name)
			ev.SetType(tc.ceType)
			ev.SetSubject(tr.Name)
			if err := ev.SetData(event.ApplicationJSON, successful); err != nil {
				t.Fatal(err)
			}
			if err := e.sink.Handle(context.Background(), ev); err != nil {
				t.Fatalf("Handle: %v (%d)", err, status.Code(err))
			}
			if n := len(e.engine.CallsFor(tr.Labels[contract.LabelTaskRunRef])); n != tc.ends {
				t.Fatalf("%d Engine calls, want %d end", n, tc.ends)
			}
		})
	}
}

// TestRunListsFirst: Run's other requests (the pod watch's list, the first
// sweep) wait until the TaskRun watch's first list is answered, so that a
// starting sink opens one connection to the apiserver, not one per request.
func TestRunListsFirst(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "Never")
	release, pods := make(chan struct{}), make(chan struct{}, 8)
	var first sync.Once
	e.tekton.PrependReactor("list", "taskruns", func(k8stesting.Action) (bool, runtime.Object, error) {
		first.Do(func() { <-release })
		return false, nil, nil
	})
	e.kube.PrependReactor("list", "pods", func(k8stesting.Action) (bool, runtime.Object, error) {
		pods <- struct{}{}
		return false, nil, nil
	})
	e.sink.Run(context.Background())
	t.Cleanup(func() { _ = e.sink.Stop(context.Background()) })
	select {
	case <-pods:
		t.Fatal("the pod watch listed while the TaskRun watch's first list was unanswered")
	case <-time.After(100 * time.Millisecond): // it would have by now
	}
	close(release)
	select {
	case <-pods:
	case <-time.After(10 * time.Second):
		t.Fatal("the pod watch did not list after the TaskRun watch's first list")
	}
	wait.Eventually(t, 10*time.Second, "the first sweep's list", func() (bool, error) {
		n := 0
		for _, a := range e.tekton.Actions() {
			if a.GetVerb() == "list" {
				n++
			}
		}
		return n >= 2, nil
	})
}
