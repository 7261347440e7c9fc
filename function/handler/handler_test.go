package handler_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	tektonv1 "github.com/tektoncd/pipeline/pkg/apis/pipeline/v1"
	tektonfake "github.com/tektoncd/pipeline/pkg/client/clientset/versioned/fake"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	k8stypes "k8s.io/apimachinery/pkg/types"
	k8sfake "k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
	"knative.dev/pkg/apis"

	"github.com/boomerang-io/flow-tekton-handler/function/handler"
	"github.com/boomerang-io/flow-tekton-handler/internal/contract"
	"github.com/boomerang-io/flow-tekton-handler/internal/engine"
	"github.com/boomerang-io/flow-tekton-handler/internal/kube/kubetest"
	pipelinev1 "github.com/boomerang-io/flow-tekton-handler/internal/pipelinev1"
	"github.com/boomerang-io/flow-tekton-handler/internal/pipelinev1/pipelinev1test"
	"github.com/boomerang-io/flow-tekton-handler/internal/status"
	"github.com/boomerang-io/flow-tekton-handler/internal/tekton"
	"github.com/boomerang-io/flow-tekton-handler/test/enginestub"
	"github.com/boomerang-io/flow-tekton-handler/test/fixtures"
	"github.com/boomerang-io/flow-tekton-handler/test/fnserve"
	"github.com/boomerang-io/flow-tekton-handler/test/wait"
)

const ns = "flow"

// client bounds each request as a Broker's delivery timeout does.
var client = fnserve.Client(10 * time.Second)

// env is one handler served by func-go's real receiver, with fake
// clientsets and a recording Engine.
type env struct {
	url     string
	handler *handler.Handler // the handler served last, for direct calls
	kube    *k8sfake.Clientset
	tekton  *tektonfake.Clientset
	engine  *enginestub.Server
}

func opts() tekton.Options {
	return tekton.Options{
		Prefix: "bmrg-flow", Instance: "bmrg-flow", Namespace: ns,
		DefaultTimeout: time.Hour, ImagePullPolicy: corev1.PullIfNotPresent,
		StorageSize: resource.MustParse("1Gi"), StorageAccessMode: corev1.ReadWriteMany,
	}
}

func newEnv(t *testing.T) *env {
	t.Helper()
	e := &env{kube: k8sfake.NewClientset(), tekton: tektonfake.NewSimpleClientset()}
	kubetest.Versioned(e.kube)
	kubetest.Versioned(e.tekton)
	stub, err := enginestub.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = stub.Close() })
	e.engine = stub
	e.serve(t)
	return e
}

// serve starts a new handler (a new process, as far as its memory goes)
// on the env's fakes and Engine.
func (e *env) serve(t *testing.T) {
	t.Helper()
	e.serveAsking(t, nil)
}

// serveAsking serves a handler whose Engine client runs then right after
// each answer to the handler's question about a task: the Engine changes
// between the question and the start.
func (e *env) serveAsking(t *testing.T, then func()) {
	t.Helper()
	e.serveWith(t, func(ec handler.Engine) handler.Engine {
		if then == nil {
			return ec
		}
		return hooked{Engine: ec, getTaskRun: func(ctx context.Context, id string) (*engine.TaskRun, error) {
			tr, err := ec.GetTaskRun(ctx, id)
			then()
			return tr, err
		}}
	})
}

// serveWith serves a handler whose Engine client is wrap's.
func (e *env) serveWith(t *testing.T, wrap func(handler.Engine) handler.Engine) {
	t.Helper()
	kc := kubetest.New(e.kube, e.tekton, ns, 5*time.Second)
	ec := wrap(engine.New(engine.Options{BaseURL: e.engine.URL(), Timeout: time.Second, RetryBudget: 2 * time.Second}))
	e.handler = handler.New(kc, ec, opts(), 1<<20, slog.New(slog.NewJSONHandler(io.Discard, nil)))
	e.url = fnserve.Serve(t, e.handler, 1<<20)
}

// hooked is an Engine client whose calls a test may replace: a nil field
// calls through to the embedded client.
type hooked struct {
	handler.Engine
	getTaskRun   func(ctx context.Context, id string) (*engine.TaskRun, error)
	startTaskRun func(ctx context.Context, id string) (*engine.TaskRun, error)
	endTaskRun   func(ctx context.Context, id string, req engine.EndRequest) error
}

var _ handler.Engine = hooked{}

func (h hooked) GetTaskRun(ctx context.Context, id string) (*engine.TaskRun, error) {
	if h.getTaskRun != nil {
		return h.getTaskRun(ctx, id)
	}
	return h.Engine.GetTaskRun(ctx, id)
}

func (h hooked) StartTaskRun(ctx context.Context, id string) (*engine.TaskRun, error) {
	if h.startTaskRun != nil {
		return h.startTaskRun(ctx, id)
	}
	return h.Engine.StartTaskRun(ctx, id)
}

func (h hooked) EndTaskRun(ctx context.Context, id string, req engine.EndRequest) error {
	if h.endTaskRun != nil {
		return h.endTaskRun(ctx, id, req)
	}
	return h.Engine.EndTaskRun(ctx, id, req)
}

// structured POSTs a structured-mode CloudEvent.
func (e *env) structured(t *testing.T, body []byte) (int, string) {
	t.Helper()
	e.engine.KnowEvent(body)
	return e.post(t, "/", "application/cloudevents+json", nil, body)
}

// binary POSTs the fixture in binary mode: attributes as ce- headers.
func (e *env) binary(t *testing.T, structured []byte) (int, string) {
	t.Helper()
	var doc map[string]json.RawMessage
	if err := json.Unmarshal(structured, &doc); err != nil {
		t.Fatal(err)
	}
	headers := map[string]string{}
	for k, v := range doc {
		if k == "data" || k == "datacontenttype" {
			continue
		}
		var s string
		if err := json.Unmarshal(v, &s); err != nil {
			t.Fatal(err)
		}
		headers["ce-"+k] = s
	}
	e.engine.KnowEvent(structured)
	return e.post(t, "/api/v1/event", "application/json", headers, doc["data"])
}

func (e *env) post(t *testing.T, path, contentType string, headers map[string]string, body []byte) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, e.url+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", contentType)
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Errorf("%s: no answer: %v", path, err) // Errorf: callers may be goroutines
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.Header.Get("ce-type") != "" || resp.Header.Get("ce-id") != "" {
		t.Errorf("the handler replied with an event (ce-type %q); replies re-enter the Broker", resp.Header.Get("ce-type"))
	}
	return resp.StatusCode, string(b)
}

func (e *env) taskRuns(t *testing.T) []tektonv1.TaskRun {
	t.Helper()
	l, err := e.tekton.TektonV1().TaskRuns(ns).List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return l.Items
}

func (e *env) configMaps(t *testing.T) []corev1.ConfigMap {
	t.Helper()
	l, err := e.kube.CoreV1().ConfigMaps(ns).List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return l.Items
}

func (e *env) pvcs(t *testing.T) []corev1.PersistentVolumeClaim {
	t.Helper()
	l, err := e.kube.CoreV1().PersistentVolumeClaims(ns).List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return l.Items
}

func (e *env) kinds() []string {
	var out []string
	for _, c := range e.engine.Calls() {
		out = append(out, c.Kind+" "+c.ID)
	}
	return out
}

// callbacks are the Engine calls other than reads.
func (e *env) callbacks() []enginestub.Call {
	var out []enginestub.Call
	for _, c := range e.engine.Calls() {
		if c.Method != http.MethodGet {
			out = append(out, c)
		}
	}
	return out
}

// settled waits until every start's effect has landed in the Engine and
// fails the test on any violation it saw.
func (e *env) settled(t *testing.T) {
	t.Helper()
	if err := e.engine.Settle(t.Context()); err != nil {
		t.Fatal(err)
	}
	if v := e.engine.Violations(); len(v) > 0 {
		t.Fatalf("Engine violations: %v", v)
	}
}

// acceptedStarts counts the taskrun starts the Engine accepted.
func (e *env) acceptedStarts() int {
	n := 0
	for _, c := range e.engine.Calls() {
		if c.Kind == enginestub.KindTaskRunStart && c.Status == http.StatusOK {
			n++
		}
	}
	return n
}

func countActions(actions []k8stesting.Action, verb, resource string) int {
	n := 0
	for _, a := range actions {
		if a.GetVerb() == verb && a.GetResource().Resource == resource {
			n++
		}
	}
	return n
}

func TestExecuteCreatesTaskRunAndConfigMap(t *testing.T) {
	t.Parallel()
	for _, fx := range []string{"engine-taskrun-template-ready.json", "engine-taskrun-script-ready.json", "engine-taskrun-custom-ready.json"} {
		for _, mode := range []string{"structured", "binary"} {
			t.Run(fx+"/"+mode, func(t *testing.T) {
				t.Parallel()
				e := newEnv(t)
				body := fixtures.Read(t, fx)
				var code int
				var msg string
				if mode == "structured" {
					code, msg = e.structured(t, body)
				} else {
					code, msg = e.binary(t, body)
				}
				if code != http.StatusOK {
					t.Fatalf("status %d %s", code, msg)
				}
				trs, cms := e.taskRuns(t), e.configMaps(t)
				if len(trs) != 1 || len(cms) != 1 {
					t.Fatalf("want 1 TaskRun and 1 ConfigMap, got %d and %d", len(trs), len(cms))
				}
				if !strings.HasPrefix(trs[0].Name, "bmrg-flow-task-65a1f1a0e4b0a1b2c3d4e6") || !strings.HasPrefix(cms[0].Name, "bmrg-flow-cfg-") {
					t.Errorf("names %s, %s", trs[0].Name, cms[0].Name)
				}
				assertClaimed(t, e, trs[0])
				if got := e.callbacks(); len(got) != 1 || got[0].Kind != enginestub.KindTaskRunStart {
					t.Errorf("engine calls %v, want one taskrun start", got)
				}
				if v := e.engine.Violations(); len(v) > 0 {
					t.Errorf("contract violations: %v", v)
				}
			})
		}
	}
}

// A timeout of zero or less is the default timeout, not a refusal.
func TestNonPositiveTimeoutIsTheDefault(t *testing.T) {
	t.Parallel()
	for _, minutes := range []int{0, -30} {
		e := newEnv(t)
		var doc map[string]any
		if err := json.Unmarshal(fixtures.Read(t, "engine-taskrun-script-ready.json"), &doc); err != nil {
			t.Fatal(err)
		}
		doc["data"].(map[string]any)["timeout"] = minutes
		body, _ := json.Marshal(doc)
		if code, msg := e.structured(t, body); code != http.StatusOK {
			t.Fatalf("timeout %d: status %d %s", minutes, code, msg)
		}
		trs := e.taskRuns(t)
		if len(trs) != 1 || trs[0].Spec.Timeout == nil || trs[0].Spec.Timeout.Duration != opts().DefaultTimeout {
			t.Fatalf("timeout %d: TaskRuns %d, want one with the default timeout %s", minutes, len(trs), opts().DefaultTimeout)
		}
	}
}

func TestRedeliveryIsIdempotent(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	body := fixtures.Read(t, "engine-taskrun-template-ready.json")
	for i := range 3 {
		if code, msg := e.structured(t, body); code != http.StatusOK {
			t.Fatalf("delivery %d: %d %s", i, code, msg)
		}
	}
	if n := len(e.taskRuns(t)); n != 1 {
		t.Fatalf("%d TaskRuns after 3 deliveries", n)
	}
	if n := len(e.callbacks()); n != 1 {
		t.Fatalf("%d Engine callbacks after 3 deliveries, want 1 start", n)
	}
}

func TestConcurrentCopiesMakeOneTaskRun(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	body := fixtures.Read(t, "engine-taskrun-script-ready.json")
	var wg sync.WaitGroup
	codes := make(chan int, 20)
	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			code, _ := e.structured(t, body)
			codes <- code
		}()
	}
	wg.Wait()
	close(codes)
	for c := range codes {
		if c != http.StatusOK {
			t.Errorf("copy answered %d", c)
		}
	}
	if n := countActions(e.tekton.Actions(), "create", "taskruns"); n != 1 {
		t.Errorf("%d TaskRun creates for 20 copies", n)
	}
	if n := countActions(e.kube.Actions(), "create", "configmaps"); n < 1 {
		t.Errorf("no ConfigMap created")
	}
	if n := len(e.configMaps(t)); n != 1 {
		t.Errorf("%d ConfigMaps", n)
	}
	if n := len(e.callbacks()); n != 1 {
		t.Errorf("%d Engine callbacks for 20 copies, want 1 start: %v", n, e.kinds())
	}
}

// Deliveries of one task to several replicas at once make one TaskRun and
// one Engine start: the replica whose create wins owns the start, the others
// wait for it to release the TaskRun, and every delivery is answered 200.
func TestReplicasMakeOneStart(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	var urls []string
	for range 3 {
		e.serve(t)
		urls = append(urls, e.url)
	}
	body := fixtures.Read(t, "engine-taskrun-script-ready.json")
	e.engine.KnowEvent(body)
	var wg sync.WaitGroup
	codes := make(chan int, 30)
	for i := range 30 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := &env{url: urls[i%len(urls)]}
			code, _ := r.post(t, "/", "application/cloudevents+json", nil, body)
			codes <- code
		}()
	}
	wg.Wait()
	close(codes)
	for c := range codes {
		if c != http.StatusOK {
			t.Errorf("a delivery answered %d", c)
		}
	}
	if trs := e.taskRuns(t); len(trs) != 1 || trs[0].IsPending() {
		t.Fatalf("want one released TaskRun, got %d (%+v)", len(trs), trs)
	}
	if n := len(e.callbacks()); n != 1 || e.acceptedStarts() != 1 {
		t.Fatalf("%d Engine callbacks for 30 deliveries to 3 replicas, want 1 start: %v", n, e.kinds())
	}
}

// A delivery that finds the ConfigMap under another delivery's live claim
// waits for the owner to create the TaskRun and sends no start of its own.
func TestLiveClaimIsWaitedFor(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	id := "65a1f1a0e4b0a1b2c3d4e611"
	body := fixtures.Read(t, "engine-taskrun-script-ready.json")
	e.engine.KnowEvent(body)
	if _, err := e.kube.CoreV1().ConfigMaps(ns).Create(context.Background(), claimedConfigMap(id, time.Now()), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	done := make(chan int, 1)
	go func() {
		code, _ := e.post(t, "/", "application/cloudevents+json", nil, body)
		done <- code
	}()
	// Create the TaskRun once the delivery has looked again (it is waiting).
	wait.Eventually(t, 10*time.Second, "the delivery to wait for the owner", func() (bool, error) {
		select {
		case code := <-done:
			t.Fatalf("answered %d before the owner created the TaskRun", code)
		default:
		}
		return countActions(e.kube.Actions(), "get", "configmaps") >= 3, nil
	})
	if _, err := e.tekton.TektonV1().TaskRuns(ns).Create(context.Background(), ourTaskRun(tekton.TaskRunName("bmrg-flow", id), id), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if code := <-done; code != http.StatusOK {
		t.Fatalf("answered %d after the owner created the TaskRun, want 200", code)
	}
	if n := len(e.callbacks()); n != 0 {
		t.Fatalf("the waiting delivery called the Engine: %v", e.kinds())
	}
}

// A claim older than ClaimStale outlived its owner: the next delivery takes
// it over and does what the owner had left, as the Engine's state shows:
// the start and the TaskRun, or only the TaskRun. A TaskRun an earlier
// version left pending under a stale claim is started and released.
func TestStaleClaimIsTakenOver(t *testing.T) {
	t.Parallel()
	id := "65a1f1a0e4b0a1b2c3d4e611"
	name := tekton.TaskRunName("bmrg-flow", id)
	old := time.Now().Add(-handler.ClaimStale - time.Second)
	cases := []struct {
		name    string
		seed    func(t *testing.T, e *env)
		started bool // the owner's start landed
		starts  int  // accepted starts the takeover adds
	}{
		{"claimed before the start", func(t *testing.T, e *env) {
			seedConfigMap(t, e, claimedConfigMap(id, old))
		}, false, 1},
		{"claimed after the start", func(t *testing.T, e *env) {
			seedConfigMap(t, e, claimedConfigMap(id, old))
		}, true, 0},
		{"claim dropped", func(t *testing.T, e *env) {
			seedConfigMap(t, e, claimedConfigMap(id, time.Time{}))
		}, false, 1},
		{"an earlier version's pending TaskRun", func(t *testing.T, e *env) {
			if _, err := e.tekton.TektonV1().TaskRuns(ns).Create(context.Background(), pendingTaskRun(name, id, old), metav1.CreateOptions{}); err != nil {
				t.Fatal(err)
			}
		}, false, 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			body := fixtures.Read(t, "engine-taskrun-script-ready.json")
			e.engine.KnowEvent(body)
			tc.seed(t, e)
			if tc.started {
				ec := engine.New(engine.Options{BaseURL: e.engine.URL(), Timeout: time.Second})
				if _, err := ec.StartTaskRun(t.Context(), id); err != nil {
					t.Fatal(err)
				}
				e.settled(t)
			}
			before := e.acceptedStarts()
			if code, msg := e.post(t, "/", "application/cloudevents+json", nil, body); code != http.StatusOK {
				t.Fatalf("status %d %s", code, msg)
			}
			trs := e.taskRuns(t)
			if len(trs) != 1 || trs[0].IsPending() {
				t.Fatalf("want the TaskRun running, got %+v", trs)
			}
			if n := e.acceptedStarts() - before; n != tc.starts {
				t.Fatalf("%d starts by the takeover, want %d: %v", n, tc.starts, e.kinds())
			}
			assertClaimed(t, e, trs[0])
			e.settled(t)
		})
	}
}

// claimedConfigMap is a task's params ConfigMap under a start's claim
// taken at at (the zero time: dropped).
func claimedConfigMap(id string, at time.Time) *corev1.ConfigMap {
	return &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: tekton.ConfigMapName("bmrg-flow", id), Namespace: ns,
		Labels:      map[string]string{"boomerang.io/taskrun-ref": id},
		Annotations: map[string]string{"boomerang.io/claimed": at.UTC().Format(time.RFC3339Nano)}}}
}

func seedConfigMap(t *testing.T, e *env, cm *corev1.ConfigMap) {
	t.Helper()
	if _, err := e.kube.CoreV1().ConfigMaps(ns).Create(context.Background(), cm, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}

// assertNoObjects checks that there is no TaskRun and no ConfigMap.
func assertNoObjects(t *testing.T, e *env) {
	t.Helper()
	if trs, cms := e.taskRuns(t), e.configMaps(t); len(trs) != 0 || len(cms) != 0 {
		t.Fatalf("want no TaskRun and no ConfigMap, got %+v and %+v", trs, cms)
	}
}

// assertClaimed checks that tr's task has one ConfigMap, holding a live
// claim (the sink settles it when it claims the report).
func assertClaimed(t *testing.T, e *env, tr tektonv1.TaskRun) {
	t.Helper()
	cms := e.configMaps(t)
	if len(cms) != 1 || cms[0].Labels["boomerang.io/taskrun-ref"] != tr.Labels["boomerang.io/taskrun-ref"] ||
		time.Since(contract.ClaimTime(cms[0].Annotations, "boomerang.io/claimed")) > handler.ClaimStale {
		t.Fatalf("want one ConfigMap of %s under a live claim, got %+v", tr.Name, cms)
	}
}

// mirror returns Tekton's TaskRun tr as the handler reads it.
func mirror(t *testing.T, tr *tektonv1.TaskRun) *pipelinev1.TaskRun {
	t.Helper()
	out, err := pipelinev1test.FromTekton(tr)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// ourTaskRun is a running TaskRun of ours.
func ourTaskRun(name, id string) *tektonv1.TaskRun {
	return &tektonv1.TaskRun{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, UID: k8stypes.UID("uid-" + id),
		Labels: map[string]string{"boomerang.io/taskrun-ref": id}}}
}

// pendingTaskRun is a TaskRun of ours created pending, claimed at at.
func pendingTaskRun(name, id string, at time.Time) *tektonv1.TaskRun {
	return &tektonv1.TaskRun{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns,
			Labels:      map[string]string{"boomerang.io/taskrun-ref": id},
			Annotations: map[string]string{"boomerang.io/claimed": at.UTC().Format(time.RFC3339Nano)}},
		Spec: tektonv1.TaskRunSpec{Status: tektonv1.TaskRunSpecStatusPending},
	}
}

// A ready event for a task the Engine has cancelled (or completed, and
// its TaskRun reported and deleted) creates nothing: the Engine says it is
// no longer pending.
func TestTaskTheEngineCancelledCreatesNothing(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	body := fixtures.Read(t, "engine-taskrun-script-ready.json")
	e.engine.KnowEvent(body)
	e.engine.Cancel("65a1f1a0e4b0a1b2c3d4e611")
	if code, msg := e.structured(t, body); code != http.StatusOK {
		t.Fatalf("status %d %s", code, msg)
	}
	if trs := e.taskRuns(t); len(trs) != 0 {
		t.Fatalf("want no TaskRun, got %+v", trs)
	}
	if calls := e.callbacks(); len(calls) != 0 {
		t.Fatalf("want no callback, got %v", e.kinds())
	}
	e.settled(t)
}

// A task the Engine cancels after the handler asked about it (its answer
// to the start says so) gets no TaskRun, and its ConfigMap goes; no end is
// sent.
func TestTaskTheEngineCancelledMeanwhileNeverRuns(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.serveAsking(t, func() { e.engine.Cancel("65a1f1a0e4b0a1b2c3d4e611") })
	body := fixtures.Read(t, "engine-taskrun-script-ready.json")
	if code, msg := e.structured(t, body); code != http.StatusOK {
		t.Fatalf("status %d %s", code, msg)
	}
	assertNoObjects(t, e)
	if calls := e.callbacks(); len(calls) != 1 || calls[0].Kind != enginestub.KindTaskRunStart {
		t.Fatalf("want only the start, got %v", e.kinds())
	}
	e.settled(t)
}

// A task the Engine does not know is refused at once: nothing is created.
func TestUnknownTaskCreatesNothing(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	// Posted without telling the stand-in: the Engine does not know it.
	code, msg := e.post(t, "/", "application/cloudevents+json", nil, fixtures.Read(t, "engine-taskrun-script-ready.json"))
	if code != http.StatusUnprocessableEntity {
		t.Fatalf("status %d %s, want 422", code, msg)
	}
	if trs := e.taskRuns(t); len(trs) != 0 {
		t.Fatalf("want no TaskRun, got %+v", trs)
	}
	if calls := e.callbacks(); len(calls) != 0 {
		t.Fatalf("want no callback, got %v", e.kinds())
	}
}

// A start the Engine refuses for good is final: no TaskRun is created, and
// the claimed ConfigMap goes, so nothing waits on it.
func TestRefusedStartCreatesNothing(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.serveAsking(t, func() { e.engine.FailNext(1, http.StatusBadRequest) })
	code, msg := e.structured(t, fixtures.Read(t, "engine-taskrun-script-ready.json"))
	if code != http.StatusUnprocessableEntity {
		t.Fatalf("status %d %s, want 422", code, msg)
	}
	assertNoObjects(t, e)
}

// A TaskRun left without its ConfigMap (deleted by hand) gets it back,
// owned, when the event is redelivered to a restarted handler.
func TestRedeliveryRestoresMissingConfigMap(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	body := fixtures.Read(t, "engine-taskrun-template-ready.json")
	if code, msg := e.structured(t, body); code != http.StatusOK {
		t.Fatal(code, msg)
	}
	e.settled(t) // the Engine shows the task running
	cm := e.configMaps(t)[0]
	if err := e.kube.CoreV1().ConfigMaps(ns).Delete(context.Background(), cm.Name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	e.serve(t) // the process crashed and restarted
	if code, msg := e.structured(t, body); code != http.StatusOK {
		t.Fatal(code, msg)
	}
	if cms, tr := e.configMaps(t), e.taskRuns(t)[0]; len(cms) != 1 || len(cms[0].OwnerReferences) != 1 || cms[0].OwnerReferences[0].Name != tr.Name {
		t.Fatalf("want the ConfigMap back, owned by %s, got %+v", tr.Name, cms)
	}
	if n := len(e.callbacks()); n != 1 {
		t.Fatalf("redelivery called the Engine again: %v", e.kinds())
	}
}

func errorBody(t *testing.T, msg string) map[string]string {
	t.Helper()
	var b map[string]string
	if err := json.Unmarshal([]byte(msg), &b); err != nil {
		t.Fatalf("error body is not JSON: %q", msg)
	}
	return b
}

// binaryHeaders are the attributes of a valid binary-mode taskrun event.
var binaryHeaders = map[string]string{
	"ce-specversion": "1.0", "ce-id": "b1", "ce-source": "/apis/v1/events", "ce-type": "io.boomerang.event.status.taskrun",
}

func TestRejections(t *testing.T) {
	t.Parallel()
	good := fixtures.Read(t, "engine-taskrun-template-ready.json")
	with := func(mutate func(doc map[string]any)) []byte {
		var doc map[string]any
		if err := json.Unmarshal(good, &doc); err != nil {
			t.Fatal(err)
		}
		mutate(doc)
		b, err := json.Marshal(doc)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	data := func(mutate func(d map[string]any)) []byte {
		return with(func(doc map[string]any) { mutate(doc["data"].(map[string]any)) })
	}
	cases := []struct {
		name      string
		ctype     string
		headers   map[string]string
		body      []byte
		wantCode  int
		wantField string // field or attribute named in the JSON body
	}{
		{"foreign type", "application/cloudevents+json", nil, with(func(d map[string]any) { d["type"] = "com.example.other" }), 422, "type"},
		{"missing data id", "application/cloudevents+json", nil, data(func(d map[string]any) { delete(d, "id") }), 400, "data.id"},
		{"id wrong type", "application/cloudevents+json", nil, data(func(d map[string]any) { d["id"] = 42 }), 400, "data.id"},
		{"timeout wrong type", "application/cloudevents+json", nil, data(func(d map[string]any) { d["timeout"] = "soon" }), 400, "data.timeout"},
		{"labels wrong type", "application/cloudevents+json", nil, data(func(d map[string]any) { d["labels"] = []string{"a"} }), 400, "data.labels"},
		{"null data", "application/cloudevents+json", nil, with(func(d map[string]any) { d["data"] = nil }), 400, "data"},
		{"data not object", "application/cloudevents+json", nil, with(func(d map[string]any) { d["data"] = []int{1} }), 400, "data"},
		{"data not json", "application/cloudevents+json", nil, with(func(d map[string]any) { d["datacontenttype"] = "text/plain"; d["data"] = "hello" }), 415, "datacontenttype"},
		{"missing ce id", "application/cloudevents+json", nil, with(func(d map[string]any) { delete(d, "id") }), 400, "id"},
		{"missing ce source, binary mode", "application/json", map[string]string{"ce-specversion": "1.0", "ce-id": "b1", "ce-type": "io.boomerang.event.status.taskrun"}, []byte(`{"id":"a"}`), 400, "source"},
		{"unknown specversion, binary mode", "application/json", map[string]string{"ce-specversion": "9.9", "ce-id": "b1", "ce-source": "/s", "ce-type": "io.boomerang.event.status.taskrun"}, []byte(`{"id":"a"}`), 400, "ce-specversion"},
		{"bad ce-time, binary mode", "application/json", map[string]string{"ce-specversion": "1.0", "ce-id": "b1", "ce-source": "/s", "ce-type": "io.boomerang.event.status.taskrun", "ce-time": "yesterday"}, []byte(`{"id":"a"}`), 400, "headers"},
		{"truncated data, binary mode", "application/json", binaryHeaders, []byte(`{"id":"65a1f1a0e4b0a1b2c3d4e610","type":"scr`), 400, "data"},
		{"data array, binary mode", "application/json", binaryHeaders, []byte(`[1,2]`), 400, "data"},
		{"truncated structured envelope", "application/cloudevents+json", nil, good[:len(good)/2], 400, "body"},
		{"structured envelope not json", "application/cloudevents+json", nil, []byte("hello"), 400, "body"},
		{"structured specversion unknown", "application/cloudevents+json", nil, with(func(d map[string]any) { d["specversion"] = "9.9" }), 400, "body"},
		{"batch", "application/cloudevents-batch+json", nil, []byte("[" + string(good) + "]"), 415, "content-type"},
		{"other cloudevents format", "application/cloudevents+xml", nil, []byte("<e/>"), 415, "content-type"},
		{"not a cloudevent", "text/plain", nil, []byte("hello"), 415, "ce-specversion"},
		{"no content type", "", nil, []byte("hello"), 415, "ce-specversion"},
		{"body larger than any event", "application/cloudevents+json", nil, data(func(d map[string]any) { d["name"] = strings.Repeat("x", 3<<20) }), 413, "data"},
		{"too large", "application/cloudevents+json", nil, data(func(d map[string]any) { d["name"] = strings.Repeat("x", 2<<20) }), 413, "data"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			code, msg := e.post(t, "/", tc.ctype, tc.headers, tc.body)
			if code != tc.wantCode {
				t.Fatalf("status %d (%s), want %d", code, msg, tc.wantCode)
			}
			if got := errorBody(t, msg)["field"]; got != tc.wantField {
				t.Errorf("error names field %q, want %q (%s)", got, tc.wantField, msg)
			}
			if n := len(e.tekton.Actions()) + len(e.kube.Actions()); n != 0 {
				t.Errorf("%d cluster calls for a rejected event", n)
			}
			if n := len(e.engine.Calls()); n != 0 {
				t.Errorf("Engine called for a rejected event: %v", e.kinds())
			}
		})
	}
}

func TestBinaryWithoutID(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	code, _ := e.post(t, "/", "application/json", map[string]string{
		"ce-specversion": "1.0", "ce-type": "io.boomerang.event.status.taskrun", "ce-source": "/apis/v1/events",
	}, []byte(`{"id":"a"}`))
	if code != http.StatusBadRequest {
		t.Fatalf("status %d, want 400", code)
	}
}

func TestUnbuildableTaskIsReportedFailed(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	var doc map[string]any
	if err := json.Unmarshal(fixtures.Read(t, "engine-taskrun-custom-ready.json"), &doc); err != nil {
		t.Fatal(err)
	}
	delete(doc["data"].(map[string]any)["spec"].(map[string]any), "image")
	body, _ := json.Marshal(doc)
	if code, msg := e.structured(t, body); code != http.StatusOK {
		t.Fatalf("status %d %s, want 200: the Engine is told instead", code, msg)
	}
	calls := e.callbacks()
	if len(calls) != 2 || calls[0].Kind != "taskrun-start" || calls[1].Kind != "taskrun-end" {
		t.Fatalf("want start then end, got %v", e.kinds())
	}
	e.settled(t) // the end came after the start took effect
	end := calls[1].End
	if end == nil || end.Status != engine.StatusFailed || !strings.Contains(end.StatusMessage, "NO_TASK_IMAGE") {
		t.Fatalf("end %+v", end)
	}
	if n := len(e.taskRuns(t)) + len(e.configMaps(t)); n != 0 {
		t.Fatalf("%d objects created for an unbuildable task", n)
	}
}

// A task whose references the builders cannot vouch for is judged by
// Tekton's admission webhook in a dry run (here Tekton's own validation,
// as the fake's dry run answers): one Tekton refuses is reported failed as
// INVALID_TASK with nothing created; one it admits runs.
func TestUnvouchedTaskJudgedByTekton(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, script string
		admitted     bool
	}{
		{"refused", "echo $(params.nope)", false},
		{"admitted", "echo $(context.pipelineRun.name)", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			var doc map[string]any
			if err := json.Unmarshal(fixtures.Read(t, "engine-taskrun-script-ready.json"), &doc); err != nil {
				t.Fatal(err)
			}
			doc["data"].(map[string]any)["spec"].(map[string]any)["script"] = tc.script
			body, _ := json.Marshal(doc)
			if code, msg := e.structured(t, body); code != http.StatusOK {
				t.Fatalf("status %d %s", code, msg)
			}
			objects := len(e.taskRuns(t)) + len(e.configMaps(t))
			if tc.admitted {
				if objects != 2 {
					t.Fatalf("%d objects, want the TaskRun and its ConfigMap", objects)
				}
				return
			}
			calls := e.callbacks()
			if len(calls) != 2 || calls[1].Kind != "taskrun-end" || calls[1].End == nil ||
				!strings.Contains(calls[1].End.StatusMessage, "INVALID_TASK") || !strings.Contains(calls[1].End.StatusMessage, "params.nope") {
				t.Fatalf("want start, then an end failed with INVALID_TASK naming the reference; got %+v", calls)
			}
			if objects != 0 {
				t.Fatalf("%d objects created for a task Tekton refuses", objects)
			}
		})
	}
}

// An unbuildable task whose end fails after its start landed is ended by
// the redelivery: the Engine shows it running, so the redelivery sends the
// end without a second start.
func TestUnbuildableEndRetried(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	var fail atomic.Bool
	fail.Store(true)
	e.serveWith(t, func(ec handler.Engine) handler.Engine {
		// The end fails, unsent, while fail is set.
		return hooked{Engine: ec, endTaskRun: func(ctx context.Context, id string, req engine.EndRequest) error {
			if fail.Load() {
				return fmt.Errorf("end: %w", engine.ErrUnavailable)
			}
			return ec.EndTaskRun(ctx, id, req)
		}}
	})
	var doc map[string]any
	if err := json.Unmarshal(fixtures.Read(t, "engine-taskrun-custom-ready.json"), &doc); err != nil {
		t.Fatal(err)
	}
	delete(doc["data"].(map[string]any)["spec"].(map[string]any), "image")
	body, _ := json.Marshal(doc)
	if code, msg := e.structured(t, body); code < 500 {
		t.Fatalf("status %d %s, want 5xx when the end fails", code, msg)
	}
	fail.Store(false)
	if code, msg := e.structured(t, body); code != http.StatusOK {
		t.Fatalf("redelivery: status %d %s", code, msg)
	}
	var kinds []string
	for _, c := range e.callbacks() {
		kinds = append(kinds, c.Kind)
	}
	if len(kinds) != 2 || kinds[0] != enginestub.KindTaskRunStart || kinds[1] != enginestub.KindTaskRunEnd {
		t.Fatalf("callbacks %v, want one start, then the redelivery's end", kinds)
	}
	e.settled(t)
}

func TestTransientFailuresAnswer5xx(t *testing.T) {
	t.Parallel()
	body := fixtures.Read(t, "engine-taskrun-template-ready.json")
	t.Run("apiserver create fails", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t)
		e.tekton.PrependReactor("create", "taskruns", func(k8stesting.Action) (bool, runtime.Object, error) {
			return true, nil, apierrors.NewServiceUnavailable("etcd down")
		})
		if code, _ := e.structured(t, body); code < 500 {
			t.Fatalf("status %d, want 5xx", code)
		}
	})
	t.Run("apiserver read fails", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t)
		// The workspace claims are the one read before anything is sent.
		e.kube.PrependReactor("get", "persistentvolumeclaims", func(k8stesting.Action) (bool, runtime.Object, error) {
			return true, nil, apierrors.NewTimeoutError("slow", 1)
		})
		if code, _ := e.structured(t, body); code < 500 {
			t.Fatalf("status %d, want 5xx", code)
		}
		if n := len(e.callbacks()); n != 0 {
			t.Fatalf("Engine called back although the apiserver failed first: %v", e.kinds())
		}
	})
	t.Run("engine unavailable", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t)
		e.serveAsking(t, func() { e.engine.FailFor(time.Minute, http.StatusServiceUnavailable) })
		if code, _ := e.structured(t, body); code < 500 {
			t.Fatalf("status %d, want 5xx", code)
		}
		// No TaskRun; the ConfigMap's claim is dropped for the retry.
		if trs, cms := e.taskRuns(t), e.configMaps(t); len(trs) != 0 || len(cms) != 1 || cms[0].Annotations["boomerang.io/claimed"] != "0001-01-01T00:00:00Z" {
			t.Fatalf("want no TaskRun and a ConfigMap with a dropped claim after the failed start, got %+v and %+v", trs, cms)
		}
		e.engine.FailFor(0, 0)
		e.serve(t) // the retry reaches another replica
		if code, msg := e.structured(t, body); code != http.StatusOK {
			t.Fatalf("retry: %d %s", code, msg)
		}
		trs := e.taskRuns(t)
		if len(trs) != 1 || trs[0].IsPending() {
			t.Fatalf("want the TaskRun running after the retry's start, got %+v", trs)
		}
		assertClaimed(t, e, trs[0])
		if starts := e.acceptedStarts(); starts != 1 {
			t.Fatalf("%d accepted starts, want 1", starts)
		}
	})
}

func TestCancel(t *testing.T) {
	t.Parallel()
	for _, fx := range []string{"engine-taskrun-completed-cancelled.json", "engine-taskrun-completed-timedout.json"} {
		t.Run(fx, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			var data struct {
				ID string `json:"id"`
			}
			body := fixtures.Read(t, fx)
			if err := json.Unmarshal(fixtures.Data(t, fx), &data); err != nil {
				t.Fatal(err)
			}
			name := tekton.TaskRunName("bmrg-flow", data.ID)
			// Missing TaskRun: a no-op.
			if code, msg := e.structured(t, body); code != http.StatusOK {
				t.Fatalf("missing TaskRun: %d %s", code, msg)
			}
			tr := &tektonv1.TaskRun{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}}
			if _, err := e.tekton.TektonV1().TaskRuns(ns).Create(context.Background(), tr, metav1.CreateOptions{}); err != nil {
				t.Fatal(err)
			}
			if code, msg := e.structured(t, body); code != http.StatusOK {
				t.Fatalf("%d %s", code, msg)
			}
			got, err := e.tekton.TektonV1().TaskRuns(ns).Get(context.Background(), name, metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if got.Spec.Status != tektonv1.TaskRunSpecStatusCancelled || got.Annotations["boomerang.io/cancelled"] != "true" {
				t.Fatalf("not cancelled: status %q annotations %v", got.Spec.Status, got.Annotations)
			}
			if n := len(e.engine.Calls()); n != 0 {
				t.Fatalf("cancel called the Engine: %v", e.kinds())
			}
		})
	}
}

// A cancel that arrives while another delivery is starting the task (the
// Engine's start landed, the TaskRun is not yet created) waits for the
// claim to settle and cancels the TaskRun; one that finds a stale claim
// takes it over and deletes the ConfigMap, so no TaskRun comes.
func TestCancelDuringStart(t *testing.T) {
	t.Parallel()
	ready := fixtures.Read(t, "engine-taskrun-script-ready.json")
	cancel := fixtures.Read(t, "engine-taskrun-completed-cancelled.json")
	id := "65a1f1a0e4b0a1b2c3d4e611"
	t.Run("live claim", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t)
		e.engine.KnowEvent(ready)
		started, proceed := make(chan struct{}), make(chan struct{})
		e.serveWith(t, func(ec handler.Engine) handler.Engine {
			return hooked{Engine: ec, startTaskRun: func(ctx context.Context, id string) (*engine.TaskRun, error) {
				tr, err := ec.StartTaskRun(ctx, id)
				close(started)
				<-proceed
				return tr, err
			}}
		})
		codes := make(chan int, 2)
		go func() { code, _ := e.post(t, "/", "application/cloudevents+json", nil, ready); codes <- code }()
		<-started
		e.kube.ClearActions()
		go func() { code, _ := e.post(t, "/", "application/cloudevents+json", nil, cancel); codes <- code }()
		wait.Eventually(t, 10*time.Second, "the cancel to wait for the claim", func() (bool, error) {
			return countActions(e.kube.Actions(), "get", "configmaps") >= 2, nil
		})
		close(proceed)
		for range 2 {
			if code := <-codes; code != http.StatusOK {
				t.Fatalf("a delivery answered %d", code)
			}
		}
		trs := e.taskRuns(t)
		if len(trs) != 1 || trs[0].Spec.Status != tektonv1.TaskRunSpecStatusCancelled {
			t.Fatalf("want the TaskRun cancelled, got %+v", trs)
		}
	})
	t.Run("stale claim", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t)
		seedConfigMap(t, e, claimedConfigMap(id, time.Now().Add(-handler.ClaimStale-time.Second)))
		if code, msg := e.post(t, "/", "application/cloudevents+json", nil, cancel); code != http.StatusOK {
			t.Fatalf("status %d %s", code, msg)
		}
		assertNoObjects(t, e)
	})
}

// A TaskRun create that fails after the Engine's start is retried without
// a second start: the claim is dropped only once the Engine shows the task
// started, so the retry, taking it over, only creates the TaskRun.
func TestFailedCreateAfterStartStartsOnce(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	var failed atomic.Bool
	e.tekton.PrependReactor("create", "taskruns", func(k8stesting.Action) (bool, runtime.Object, error) {
		if failed.CompareAndSwap(false, true) {
			return true, nil, apierrors.NewServiceUnavailable("webhook down")
		}
		return false, nil, nil
	})
	body := fixtures.Read(t, "engine-taskrun-script-ready.json")
	if code, _ := e.structured(t, body); code < 500 {
		t.Fatalf("status %d, want 5xx when the create fails", code)
	}
	if code, msg := e.structured(t, body); code != http.StatusOK {
		t.Fatalf("retry: %d %s", code, msg)
	}
	trs := e.taskRuns(t)
	if len(trs) != 1 || e.acceptedStarts() != 1 {
		t.Fatalf("%d TaskRuns and %d starts, want 1 and 1: %v", len(trs), e.acceptedStarts(), e.kinds())
	}
	assertClaimed(t, e, trs[0])
	e.settled(t)
}

// A late copy of a ready event for a task the Engine is done with deletes
// a ConfigMap left under a stale claim (its owner died), and only then.
func TestLeftoverClaimDeleted(t *testing.T) {
	t.Parallel()
	id := "65a1f1a0e4b0a1b2c3d4e611"
	for _, tc := range []struct {
		name string
		at   time.Time
		kept bool
	}{
		{"stale", time.Now().Add(-handler.ClaimStale - time.Second), false},
		{"live", time.Now(), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			body := fixtures.Read(t, "engine-taskrun-script-ready.json")
			e.engine.KnowEvent(body)
			e.engine.Cancel(id)
			seedConfigMap(t, e, claimedConfigMap(id, tc.at))
			if code, msg := e.post(t, "/", "application/cloudevents+json", nil, body); code != http.StatusOK {
				t.Fatalf("status %d %s", code, msg)
			}
			if n := len(e.configMaps(t)); (n == 1) != tc.kept {
				t.Fatalf("%d ConfigMaps left, want kept=%v", n, tc.kept)
			}
			if trs := e.taskRuns(t); len(trs) != 0 || len(e.callbacks()) != 0 {
				t.Fatalf("want nothing created or sent, got %d TaskRuns and %v", len(trs), e.kinds())
			}
		})
	}
}

// A cancel for a TaskRun that has finished changes nothing and is 200:
// Tekton refuses any change to a finished TaskRun, and there is nothing to
// stop.
func TestCancelFinishedTaskRunIsANoOp(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	const fx = "engine-taskrun-completed-cancelled.json"
	body := fixtures.Read(t, fx)
	var data struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal(fixtures.Data(t, fx), &data); err != nil {
		t.Fatal(err)
	}
	tr := &tektonv1.TaskRun{ObjectMeta: metav1.ObjectMeta{Name: tekton.TaskRunName("bmrg-flow", data.ID), Namespace: ns}}
	tr.Status.SetCondition(&apis.Condition{Type: apis.ConditionSucceeded, Status: corev1.ConditionTrue, Reason: "Succeeded"})
	if _, err := e.tekton.TektonV1().TaskRuns(ns).Create(context.Background(), tr, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// Its ConfigMap still holds the start's claim (the sink settles it
	// when it reports): the cancel neither waits on it nor deletes it.
	seedConfigMap(t, e, claimedConfigMap(data.ID, time.Now()))
	if code, msg := e.structured(t, body); code != http.StatusOK {
		t.Fatalf("cancel of a finished TaskRun: %d %s", code, msg)
	}
	if n := countActions(e.tekton.Actions(), "patch", "taskruns"); n != 0 {
		t.Fatalf("%d patches of a finished TaskRun", n)
	}
	if n := len(e.configMaps(t)); n != 1 || countActions(e.kube.Actions(), "get", "configmaps") != 0 {
		t.Fatalf("%d ConfigMaps after the cancel (want 1), and it looked at the claim", n)
	}
}

func TestWorkflowRunLifecycle(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	if code, msg := e.structured(t, fixtures.Read(t, "engine-workflowrun-ready-with-workspace.json")); code != http.StatusOK {
		t.Fatal(code, msg)
	}
	pvcs := e.pvcs(t)
	if len(pvcs) != 1 {
		t.Fatalf("%d PVCs, want 1", len(pvcs))
	}
	if q := pvcs[0].Spec.Resources.Requests[corev1.ResourceStorage]; q.String() != "2Gi" {
		t.Errorf("size %s", q.String())
	}
	// A task of that run mounts the claim.
	if code, msg := e.structured(t, fixtures.Read(t, "engine-taskrun-template-ready.json")); code != http.StatusOK {
		t.Fatal(code, msg)
	}
	tr := e.taskRuns(t)[0]
	if len(tr.Spec.Workspaces) != 1 || tr.Spec.Workspaces[0].PersistentVolumeClaim == nil || tr.Spec.Workspaces[0].PersistentVolumeClaim.ClaimName != pvcs[0].Name {
		t.Fatalf("TaskRun workspaces %+v, want the claim %s", tr.Spec.Workspaces, pvcs[0].Name)
	}
	// Redelivery of the ready event: still one claim; the Engine refuses
	// the second start (1304, not pending), which means it is done: 200.
	if code, msg := e.structured(t, fixtures.Read(t, "engine-workflowrun-ready-with-workspace.json")); code != http.StatusOK {
		t.Fatal(code, msg)
	}
	if got := e.engine.CallsFor("65a1f0d9e4b0a1b2c3d4e601"); len(got) != 2 || got[1].Status != http.StatusBadRequest {
		t.Fatalf("calls %v, want the second start refused with 400", got)
	}
	if n := len(e.pvcs(t)); n != 1 {
		t.Fatalf("%d PVCs after redelivery", n)
	}
	if code, msg := e.structured(t, fixtures.Read(t, "engine-workflowrun-completed.json")); code != http.StatusOK {
		t.Fatal(code, msg)
	}
	if n := len(e.pvcs(t)); n != 0 {
		t.Fatalf("%d PVCs after completion", n)
	}
	kinds := strings.Join(e.kinds(), ",")
	if !strings.Contains(kinds, "workflowrun-start 65a1f0d9e4b0a1b2c3d4e601") || !strings.Contains(kinds, "workflowrun-finalize 65a1f0d9e4b0a1b2c3d4e601") {
		t.Fatalf("engine calls %s", kinds)
	}
	if strings.Index(kinds, "workflowrun-finalize") < strings.LastIndex(kinds, "workflowrun-start") {
		t.Fatalf("finalize before start: %s", kinds)
	}
}

// A workflow run's claims are read once: its later tasks mount them
// without reading them again, and a new task costs the apiserver its three
// writes only (create the pending TaskRun, create its ConfigMap, release
// it). Finalizing the run forgets them.
func TestClaimsReadOncePerRun(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	if code, msg := e.structured(t, fixtures.Read(t, "engine-workflowrun-ready-with-workspace.json")); code != http.StatusOK {
		t.Fatal(code, msg)
	}
	task := func(id string) []byte {
		var doc map[string]any
		if err := json.Unmarshal(fixtures.Read(t, "engine-taskrun-template-ready.json"), &doc); err != nil {
			t.Fatal(err)
		}
		doc["id"], doc["data"].(map[string]any)["id"] = "event-"+id, id
		body, _ := json.Marshal(doc)
		return body
	}
	if code, msg := e.structured(t, task("65a1f1a0e4b0a1b2c3d4e610")); code != http.StatusOK {
		t.Fatal(code, msg)
	}
	reads := countActions(e.kube.Actions(), "get", "persistentvolumeclaims")
	if reads != 2 {
		t.Fatalf("%d claim reads for the run's first task, want 2 (workflow and workflow run)", reads)
	}
	e.kube.ClearActions()
	e.tekton.ClearActions()
	if code, msg := e.structured(t, task("65a1f1a0e4b0a1b2c3d4e6aa")); code != http.StatusOK {
		t.Fatal(code, msg)
	}
	var calls []string
	for _, a := range append(e.kube.Actions(), e.tekton.Actions()...) {
		calls = append(calls, a.GetVerb()+" "+a.GetResource().Resource)
	}
	slices.Sort(calls)
	if want := []string{"create configmaps", "create taskruns"}; !slices.Equal(calls, want) {
		t.Fatalf("apiserver calls for the run's second task %v, want %v", calls, want)
	}
	for _, tr := range e.taskRuns(t) {
		if len(tr.Spec.Workspaces) != 1 || tr.Spec.Workspaces[0].PersistentVolumeClaim == nil {
			t.Errorf("TaskRun %s workspaces %+v, want the run's claim", tr.Name, tr.Spec.Workspaces)
		}
	}
	if code, msg := e.structured(t, fixtures.Read(t, "engine-workflowrun-completed.json")); code != http.StatusOK {
		t.Fatal(code, msg)
	}
	e.kube.ClearActions()
	if code, msg := e.structured(t, task("65a1f1a0e4b0a1b2c3d4e6ab")); code != http.StatusOK {
		t.Fatal(code, msg)
	}
	if n := countActions(e.kube.Actions(), "get", "persistentvolumeclaims"); n != 2 {
		t.Fatalf("%d claim reads after the run was finalized, want 2", n)
	}
}

// A workspace claim the apiserver refuses for good does not keep the run
// from starting: the Engine is told, and the event is done.
func TestRefusedClaimStillStartsTheRun(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.kube.PrependReactor("create", "persistentvolumeclaims", func(k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, apierrors.NewInvalid(schema.GroupKind{Kind: "PersistentVolumeClaim"}, "x", nil)
	})
	if code, msg := e.structured(t, fixtures.Read(t, "engine-workflowrun-ready-with-workspace.json")); code != http.StatusOK {
		t.Fatalf("status %d %s, want 200", code, msg)
	}
	if got := e.kinds(); len(got) != 1 || got[0] != "workflowrun-start 65a1f0d9e4b0a1b2c3d4e601" {
		t.Fatalf("engine calls %v, want the run's start", got)
	}
}

func TestIgnoredEvents(t *testing.T) {
	t.Parallel()
	cases := map[string]string{
		"running task":   `{"id":"a1","type":"script","status":"running","phase":"running","spec":{"image":"x"}}`,
		"generic task":   `{"id":"a2","type":"generic","status":"ready","phase":"pending"}`,
		"unknown status": `{"id":"a3","type":"script","status":"brand-new","phase":"pending"}`,
		"workflow data":  `{"id":"w1","name":"my workflow","status":"active"}`,
	}
	for name, data := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			body := fmt.Appendf(nil, `{"specversion":"1.0","id":"x","source":"/apis/v1/events","type":"io.boomerang.event.status.taskrun","datacontenttype":"application/json","data":%s}`, data)
			if code, msg := e.structured(t, body); code != http.StatusOK {
				t.Fatalf("%d %s", code, msg)
			}
			if n := len(e.tekton.Actions()) + len(e.kube.Actions()) + len(e.engine.Calls()); n != 0 {
				t.Fatalf("%d side effects for an ignored event", n)
			}
		})
	}
}

func TestOtherEngineTypeIgnored(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	body := []byte(`{"specversion":"1.0","id":"x","source":"/s","type":"io.boomerang.event.status.approval","data":{"id":"a"}}`)
	if code, msg := e.structured(t, body); code != http.StatusOK {
		t.Fatalf("%d %s", code, msg)
	}
}

// A ConfigMap create refused in admission while the objects exist (a quota
// answers before storage could say AlreadyExists) is a redelivery: the
// TaskRun is resumed, not reported unbuildable; and when they cannot be
// looked up either, the sender is told to retry (503, not 422).
func TestRefusedCreateLooksFirst(t *testing.T) {
	t.Parallel()
	refuse := func(e *env) {
		e.kube.PrependReactor("create", "configmaps", func(k8stesting.Action) (bool, runtime.Object, error) {
			return true, nil, apierrors.NewForbidden(schema.GroupResource{Resource: "configmaps"}, "x", fmt.Errorf("exceeded quota"))
		})
	}
	id := "65a1f1a0e4b0a1b2c3d4e611"
	t.Run("objects exist", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t)
		tr, err := e.tekton.TektonV1().TaskRuns(ns).Create(context.Background(), ourTaskRun(tekton.TaskRunName("bmrg-flow", id), id), metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		cm := claimedConfigMap(id, time.Now())
		delete(cm.Annotations, "boomerang.io/claimed")
		tekton.SetOwner(cm, mirror(t, tr))
		seedConfigMap(t, e, cm)
		refuse(e)
		if code, msg := e.structured(t, fixtures.Read(t, "engine-taskrun-script-ready.json")); code != http.StatusOK {
			t.Fatalf("status %d %s", code, msg)
		}
		if n := len(e.callbacks()); n != 0 {
			t.Fatalf("want the TaskRun resumed with no Engine call, got %v", e.kinds())
		}
	})
	t.Run("lookup fails", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t)
		refuse(e)
		e.kube.PrependReactor("get", "configmaps", func(k8stesting.Action) (bool, runtime.Object, error) {
			return true, nil, apierrors.NewTimeoutError("slow", 1)
		})
		if code, _ := e.structured(t, fixtures.Read(t, "engine-taskrun-script-ready.json")); code != http.StatusServiceUnavailable {
			t.Fatalf("status %d, want 503", code)
		}
		if n := len(e.callbacks()); n != 0 {
			t.Fatalf("Engine called although nothing is known: %v", e.kinds())
		}
	})
}

// A TaskRun the apiserver refuses after the Engine started the task is
// ended failed with the reason, not left running for ever.
func TestRejectedTaskRunIsReportedFailed(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.tekton.PrependReactor("create", "taskruns", func(k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, apierrors.NewInvalid(schema.GroupKind{Group: "tekton.dev", Kind: "TaskRun"}, "x", nil)
	})
	if code, msg := e.structured(t, fixtures.Read(t, "engine-taskrun-custom-ready.json")); code != http.StatusOK {
		t.Fatalf("status %d %s", code, msg)
	}
	calls := e.callbacks()
	if len(calls) != 2 || calls[1].End == nil || calls[1].End.Status != engine.StatusFailed || !strings.Contains(calls[1].End.StatusMessage, "TASKRUN_REJECTED") {
		t.Fatalf("want start then end failed TASKRUN_REJECTED, got %v", e.kinds())
	}
	e.settled(t)
}

// An object of the task's names that carries another task's reference is
// never taken for this task's: a ConfigMap is refused with 422 before
// anything is started; a TaskRun, found only when the started task's
// TaskRun is created, makes the task end failed, naming the label.
func TestObjectsOfAnotherTaskRefused(t *testing.T) {
	t.Parallel()
	id := "65a1f1a0e4b0a1b2c3d4e611"
	t.Run("configmap", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t)
		seedConfigMap(t, e, claimedConfigMap("another-task", time.Now()))
		cm := claimedConfigMap("another-task", time.Now())
		cm.Name = tekton.ConfigMapName("bmrg-flow", id)
		seedConfigMap(t, e, cm)
		code, msg := e.structured(t, fixtures.Read(t, "engine-taskrun-script-ready.json"))
		if code != http.StatusUnprocessableEntity || !strings.Contains(msg, `"field":"data.id"`) || !strings.Contains(msg, "boomerang.io/taskrun-ref") {
			t.Fatalf("%d %s, want 422 naming data.id and the label", code, msg)
		}
		if e.acceptedStarts() != 0 {
			t.Fatalf("Engine calls %v, want no start", e.kinds())
		}
	})
	t.Run("taskrun", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t)
		if _, err := e.tekton.TektonV1().TaskRuns(ns).Create(context.Background(), ourTaskRun(tekton.TaskRunName("bmrg-flow", id), "another-task"), metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		if code, msg := e.structured(t, fixtures.Read(t, "engine-taskrun-script-ready.json")); code != http.StatusOK {
			t.Fatalf("status %d %s", code, msg)
		}
		calls := e.callbacks()
		if len(calls) != 2 || calls[1].End == nil || calls[1].End.Status != engine.StatusFailed || !strings.Contains(calls[1].End.StatusMessage, "boomerang.io/taskrun-ref") {
			t.Fatalf("want start then end failed naming the label, got %v", e.kinds())
		}
		if cms := e.configMaps(t); len(cms) != 0 {
			t.Fatalf("want the claimed ConfigMap gone, got %+v", cms)
		}
		e.settled(t)
	})
}

// Handle, called directly as the front door calls it, returns the error
// whose status the front door writes: the same decisions as over HTTP.
func TestHandleDirect(t *testing.T) {
	t.Parallel()
	ready := fixtures.Event(t, "engine-taskrun-script-ready.json")
	cases := []struct {
		name, typ string
		data      []byte
		code      int
		taskRuns  int
	}{
		{"task ready", ready.Type, ready.Data, http.StatusOK, 1},
		{"prefix in capitals", strings.ToUpper(ready.Type[:3]) + ready.Type[3:], ready.Data, http.StatusUnprocessableEntity, 0},
		{"task type in capitals", contract.TypePrefix + "TASKRUN", ready.Data, http.StatusOK, 1},
		{"another Engine type", contract.TypePrefix + "approval", []byte(`{"id":"a"}`), http.StatusOK, 0},
		{"not the Engine's", "com.example.thing", []byte(`{}`), http.StatusUnprocessableEntity, 0},
		{"undecodable task", string(contract.TypeTaskRun), []byte(`{"id":7}`), http.StatusBadRequest, 0},
		{"workflow deleted", string(contract.TypeWorkflow), []byte(`{"id":"65a1f0c2e4b0a1b2c3d4e5f6","status":"deleted"}`), http.StatusOK, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			e.engine.KnowEvent(fixtures.Read(t, "engine-taskrun-script-ready.json"))
			ev := event.New()
			ev.SetID("direct-1")
			ev.SetSource("/apis/v1/events")
			ev.SetType(tc.typ)
			if err := ev.SetData(event.ApplicationJSON, tc.data); err != nil {
				t.Fatal(err)
			}
			err := e.handler.Handle(context.Background(), ev)
			if got := status.Code(err); got != tc.code {
				t.Fatalf("Handle: %v (%d), want %d", err, got, tc.code)
			}
			trs, lerr := e.tekton.TektonV1().TaskRuns(ns).List(context.Background(), metav1.ListOptions{})
			if lerr != nil || len(trs.Items) != tc.taskRuns {
				t.Fatalf("%d TaskRuns (%v), want %d", len(trs.Items), lerr, tc.taskRuns)
			}
		})
	}
}

// Every type of contract.EventTypes (each has a Trigger) reaches its
// decoder: data it cannot decode is refused, where a type the handler does
// not act on is skipped whatever its data.
func TestEveryEventTypeDispatched(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	for _, typ := range contract.EventTypes {
		ev := event.New()
		ev.SetID("dispatch-1")
		ev.SetSource("/apis/v1/events")
		ev.SetType(string(typ))
		if err := ev.SetData(event.ApplicationJSON, []byte(`{"id":7}`)); err != nil {
			t.Fatal(err)
		}
		if code := status.Code(e.handler.Handle(context.Background(), ev)); code != http.StatusBadRequest {
			t.Errorf("%s with undecodable data: %d, want 400 from its decoder", typ, code)
		}
	}
}
