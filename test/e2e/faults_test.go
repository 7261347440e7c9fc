//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	pipelinev1 "github.com/tektoncd/pipeline/pkg/apis/pipeline/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/boomerang-io/flow-tekton-handler/function/handler"
	"github.com/boomerang-io/flow-tekton-handler/internal/contract"
	"github.com/boomerang-io/flow-tekton-handler/internal/tekton"
	"github.com/boomerang-io/flow-tekton-handler/test/enginestub"
	"github.com/boomerang-io/flow-tekton-handler/test/fnserve"
	"github.com/boomerang-io/flow-tekton-handler/test/wait"
)

func taskID(i int) string { return fmt.Sprintf("65a1f1a0e4b0a1b2c3d4%04x", i) }

// customTask is the custom fixture with another id.
func customTask(t *testing.T, id string) []byte {
	return event(t, "engine-taskrun-custom-ready.json", withID(id))
}

// The apiserver stops in the middle of a burst: the handler answers 5xx
// (so the Broker retries) and calls the Engine for nothing it could not
// create; once the apiserver is back, redelivering every event yields
// exactly one TaskRun and one Engine start per task.
func TestAPIServerDownDuringBurst(t *testing.T) {
	s := newStack(t, map[string]string{"KUBE_TIMEOUT": "2s"})
	const n = 12
	send := func(i int) int {
		code, _ := s.postDirect(customTask(t, taskID(i))) // each attempt's own answer
		return code
	}
	for i := range n / 2 {
		if code := send(i); code != http.StatusOK {
			t.Fatalf("before the fault: %d", code)
		}
	}
	start, err := s.c.StopAPIServer()
	if err != nil {
		t.Fatal(err)
	}
	failed := 0
	for i := n / 2; i < n; i++ {
		if code := send(i); code >= 500 {
			failed++
		} else {
			t.Errorf("event %d answered %d while the apiserver was down, want 5xx", i, code)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := start(ctx); err != nil {
		t.Fatal(err)
	}
	// The Broker redelivers what failed; an at-least-once sender may also
	// redeliver what succeeded.
	for i := range n {
		wait.Eventually(s.t, 30*time.Second, "redelivery to succeed", func() (bool, error) {
			return send(i) == http.StatusOK, nil
		})
	}
	if got := len(s.taskRuns()); got != n {
		t.Fatalf("%d TaskRuns for %d tasks", got, n)
	}
	for i := range n {
		if c := len(s.calls(enginestub.KindTaskRunStart, taskID(i))); c != 1 {
			t.Errorf("task %d: %d Engine starts", i, c)
		}
	}
	t.Logf("apiserver fault: %d events answered 5xx during the outage; after restart %d TaskRuns, one start each", failed, n)
	s.noViolations()
}

// 1000 parallel deliveries of one event make one TaskRun and one start;
// 1000 parallel copies of Tekton's successful event make one end. Every
// request is answered 200 in time.
func TestThousandDuplicates(t *testing.T) {
	s := newStack(t, nil)
	sink := s.startSink()
	body := customTask(t, taskID(0x500))
	bad := flood(1000, func() (*http.Response, error) {
		return floodClient.Post(s.handler.URL, "application/cloudevents+json", bytes.NewReader(body))
	})
	if bad != 0 {
		t.Errorf("%d of 1000 deliveries not answered 200 in time", bad)
	}
	if got := len(s.taskRuns()); got != 1 {
		t.Fatalf("%d TaskRuns from 1000 deliveries", got)
	}
	if c := len(s.calls(enginestub.KindTaskRunStart, taskID(0x500))); c != 1 {
		t.Fatalf("%d starts from 1000 deliveries", c)
	}
	s.waitEnd(taskID(0x500), time.Minute)

	// Tekton's own event, repeated 1000 times at the sink.
	tr, err := s.taskRun(name(taskID(0x500)))
	if err != nil {
		t.Fatal(err)
	}
	data, err := json.Marshal(map[string]any{"taskRun": tr})
	if err != nil {
		t.Fatal(err)
	}
	var n atomic.Int32
	bad = flood(1000, func() (*http.Response, error) {
		req, _ := http.NewRequest(http.MethodPost, sink.URL, bytes.NewReader(data))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("ce-specversion", "1.0")
		req.Header.Set("ce-id", fmt.Sprintf("dup-%d", n.Add(1)))
		req.Header.Set("ce-source", "/apis///namespaces/"+s.ns+"//"+tr.Name)
		req.Header.Set("ce-type", "dev.tekton.event.taskrun.successful.v1")
		return floodClient.Do(req)
	})
	if bad != 0 {
		t.Errorf("%d of 1000 Tekton events not answered 200 in time", bad)
	}
	if c := len(s.calls(enginestub.KindTaskRunEnd, taskID(0x500))); c != 1 {
		t.Fatalf("%d end calls after 1000 duplicate Tekton events", c)
	}
	t.Logf("1000 duplicate deliveries: 1 TaskRun, 1 start; 1000 duplicate completions: 1 end")
	s.noViolations()
}

// floodClient bounds each flood request as a Broker's delivery timeout does.
var floodClient = fnserve.Client(15 * time.Second)

// flood sends n requests, 64 at a time, and counts those not answered 200
// in time.
func flood(n int, send func() (*http.Response, error)) (bad int) {
	var wg sync.WaitGroup
	var nBad atomic.Int32
	sem := make(chan struct{}, 64)
	for range n {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			resp, err := send()
			if err != nil {
				nBad.Add(1)
				return
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				nBad.Add(1)
			}
		}()
	}
	wg.Wait()
	return int(nBad.Load())
}

// SIGTERM while events are in flight: they finish before the handler exits.
func TestSIGTERMDrainsInFlight(t *testing.T) {
	s := newStack(t, nil)
	s.engine.Delay(3 * time.Second)
	const n = 5
	codes := make([]int, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			codes[i], _ = s.postDirect(customTask(t, taskID(0x600+i))) // the attempt in flight
		}()
	}
	// SIGTERM only once every event's start waits on the slow Engine: its
	// claimed ConfigMap exists, so the handler's question to the Engine is
	// answered, and what is left fits in the drain's grace.
	wait.Eventually(s.t, 30*time.Second, "every event's start call to wait on the Engine", func() (bool, error) {
		cms, err := s.kube.CoreV1().ConfigMaps(s.ns).List(context.Background(), metav1.ListOptions{LabelSelector: contract.LabelTaskRunRef})
		return err == nil && len(cms.Items) == n && s.engine.Held() == n, err
	})
	if err := s.handler.Stop(20 * time.Second); err != nil {
		t.Fatalf("handler did not stop cleanly: %v", err)
	}
	wg.Wait()
	for i, c := range codes {
		if c != http.StatusOK {
			t.Errorf("in-flight event %d answered %d", i, c)
		}
	}
	if got := len(s.taskRuns()); got != n {
		t.Fatalf("%d TaskRuns for %d in-flight events", got, n)
	}
}

// SIGTERM while the sink is reporting an end to a slow Engine: the call
// completes, the TaskRun is marked, and only then does the sink exit.
func TestSinkSIGTERMFinishesEnd(t *testing.T) {
	s := newStack(t, nil)
	sink := s.startSink()
	id := taskID(0x650)
	s.mustPost(customTask(t, id)) // the start is answered at once
	s.engine.Delay(2 * time.Second)
	s.waitDone(name(id), time.Minute)
	wait.Eventually(s.t, 30*time.Second, "the sink's end call to wait on the Engine", func() (bool, error) {
		return s.engine.Held() > 0, nil
	})
	if err := sink.Stop(20 * time.Second); err != nil {
		t.Fatalf("sink did not stop cleanly: %v", err)
	}
	if n := len(s.calls(enginestub.KindTaskRunEnd, id)); n != 1 {
		t.Fatalf("%d accepted ends when the sink had exited, want 1", n)
	}
	tr, err := s.taskRun(name(id))
	if err != nil {
		t.Fatal(err)
	}
	if tr.Labels[contract.LabelReported] == "" {
		t.Fatalf("TaskRun not marked %s after the end was accepted: %v", contract.LabelReported, tr.Labels)
	}
	s.noViolations()
}

// The sink is killed (SIGKILL) while its end call waits on the Engine: the
// call dies with it, unanswered, and its claim on the report stays. The
// next sink's sweep (on its timer, as the PingSource would) takes the claim
// over once it is stale: exactly one accepted end. A short Engine budget
// makes the claim stale in sink.ReportStale(1 s, 2 s) = 8 s.
func TestSinkKilledMidFlight(t *testing.T) {
	s := newStack(t, map[string]string{"ENGINE_TIMEOUT": "1s", "ENGINE_RETRY_BUDGET": "2s", "SWEEP_INTERVAL": "1s"})
	sink := s.startSink()
	id := taskID(0x660)
	s.mustPost(customTask(t, id))
	s.engine.Delay(5 * time.Second)
	s.waitDone(name(id), time.Minute)
	wait.Eventually(s.t, 30*time.Second, "the sink's end call to wait on the Engine", func() (bool, error) {
		return s.engine.Held() > 0, nil
	})
	sink.Kill()
	wait.Eventually(s.t, 10*time.Second, "the killed call to be dropped", func() (bool, error) {
		return s.engine.Held() == 0, nil
	})
	if n := len(s.calls(enginestub.KindTaskRunEnd, id)); n != 0 {
		t.Fatalf("%d ends accepted from a killed sink", n)
	}
	s.engine.Delay(0)
	s.startSink()
	s.waitEnd(id, time.Minute)
	time.Sleep(2 * time.Second) // any late Tekton retry
	if n := len(s.calls(enginestub.KindTaskRunEnd, id)); n != 1 {
		t.Fatalf("%d accepted ends, want 1", n)
	}
	s.noViolations()
}

// Tokens and credentials never reach the logs.
func TestSecretsNotLogged(t *testing.T) {
	const secret = "s3cr3t-7f1d"
	stub, err := enginestub.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer stub.Close()
	stub.RequireToken("tok-" + secret)
	engineURL := strings.Replace(stub.URL(), "http://", "http://flow:pw-"+secret+"@", 1)
	s := newStack(t, map[string]string{
		"ENGINE_URL": engineURL, "ENGINE_TOKEN": "tok-" + secret,
		"PROXY_HOST": "user:" + secret + "@proxy.internal", "PROXY_PORT": "3128",
	})
	s.engine = stub
	sink := s.startSink()
	s.mustPost(customTask(t, taskID(0x700)))
	s.waitEnd(taskID(0x700), time.Minute)
	// And a failure path: an Engine that refuses the token (401). Every
	// attempt fails, and the event ends in the dead letters.
	stub.FailFor(time.Hour, http.StatusUnauthorized)
	_, _ = s.post(customTask(t, taskID(0x701)))
	if l := s.takeDeadLetters(); len(l) != 1 {
		t.Errorf("%d dead letters for the refused event, want 1", len(l))
	}
	for name, logs := range map[string]string{"handler": s.handler.Logs(), "sink": sink.Logs()} {
		if logs == "" {
			t.Fatalf("%s logged nothing", name)
		}
		if strings.Contains(logs, secret) {
			t.Errorf("%s log contains a secret:\n%s", name, logs)
		}
	}
}

// Copies of one task delivered to three handler replicas at once make one
// TaskRun and one Engine start on the real apiserver, through Tekton's
// webhook: the replica whose pending create wins starts the task and
// releases the TaskRun; the others wait for the release. Every delivery is
// answered 200, and the sink reports one end.
func TestReplicasStartOnce(t *testing.T) {
	s := newStack(t, nil)
	s.startSink()
	id := taskID(0x800)
	body := customTask(t, id)
	bad := flood(60, func() (*http.Response, error) {
		return floodClient.Post(s.handler.URL, "application/cloudevents+json", bytes.NewReader(body))
	})
	if bad != 0 {
		t.Errorf("%d of 60 deliveries not answered 200 in time", bad)
	}
	for i, p := range s.handler.Replicas() {
		if n := len(p.LogLines(`"msg":"event"`)); n == 0 {
			t.Errorf("replica %d handled none of the 60 deliveries", i)
		}
	}
	if got := len(s.taskRuns()); got != 1 {
		t.Fatalf("%d TaskRuns from 60 deliveries to 3 replicas", got)
	}
	s.waitEnd(id, time.Minute)
	if c := len(s.calls(enginestub.KindTaskRunStart, id)); c != 1 {
		t.Fatalf("%d starts from 60 deliveries to 3 replicas, want 1", c)
	}
	s.noViolations()
}

// A claim whose owner died (older than handler.ClaimStale) is taken over by
// the next delivery on the real apiserver, which does what the Engine's
// state says is left: the start and the TaskRun when the owner died before
// its start, only the TaskRun when after. A TaskRun an earlier version left
// pending under a stale claim is started and released. Each task runs once
// and is reported once.
func TestStaleClaimTakenOver(t *testing.T) {
	s := newStack(t, nil)
	s.startSink()
	ctx := context.Background()
	stale := contract.ClaimValue(time.Now().Add(-handler.ClaimStale - time.Minute))
	labels := func(id string) map[string]string {
		return map[string]string{contract.LabelTaskRunRef: id, contract.LabelProduct: "bmrg-flow"}
	}
	claimed := func(id string) {
		cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: tekton.ConfigMapName("bmrg-flow", id), Namespace: s.ns,
			Labels: labels(id), Annotations: map[string]string{contract.AnnotationClaimed: stale}}}
		if _, err := s.kube.CoreV1().ConfigMaps(s.ns).Create(ctx, cm, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	cases := []struct {
		id     string
		seed   func(id string)
		starts int
	}{
		{taskID(0x801), claimed, 1},
		{taskID(0x802), func(id string) {
			claimed(id)
			s.engine.Know(enginestub.Task{ID: id, Status: enginestub.StatusRunning, Phase: enginestub.PhaseRunning})
		}, 0},
		{taskID(0x803), func(id string) {
			tr := &pipelinev1.TaskRun{
				ObjectMeta: metav1.ObjectMeta{Name: name(id), Namespace: s.ns, Labels: labels(id),
					Annotations: map[string]string{contract.AnnotationClaimed: stale}},
				Spec: pipelinev1.TaskRunSpec{Status: pipelinev1.TaskRunSpecStatusPending,
					TaskSpec: &pipelinev1.TaskSpec{Steps: []pipelinev1.Step{{Name: "main", Image: "alpine", Command: []string{"true"}}},
						Volumes: []corev1.Volume{{Name: "params", VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{
							Sources: []corev1.VolumeProjection{{ConfigMap: &corev1.ConfigMapProjection{
								LocalObjectReference: corev1.LocalObjectReference{Name: tekton.ConfigMapName("bmrg-flow", id)}}}}}}}}}},
			}
			if _, err := s.tekton.TektonV1().TaskRuns(s.ns).Create(ctx, tr, metav1.CreateOptions{}); err != nil {
				t.Fatal(err)
			}
		}, 1},
	}
	for _, tc := range cases {
		body := customTask(t, tc.id)
		tc.seed(tc.id)
		s.mustPost(body)
		s.waitEnd(tc.id, time.Minute)
		if c := len(s.calls(enginestub.KindTaskRunStart, tc.id)); c != tc.starts {
			t.Errorf("task %s: %d starts after the takeover, want %d", tc.id, c, tc.starts)
		}
		cm, err := s.kube.CoreV1().ConfigMaps(s.ns).Get(ctx, tekton.ConfigMapName("bmrg-flow", tc.id), metav1.GetOptions{})
		if err != nil || cm.Annotations[contract.AnnotationClaimed] != "" || len(cm.OwnerReferences) != 1 {
			t.Errorf("task %s: ConfigMap %+v (%v), want it settled and owned by the TaskRun", tc.id, cm, err)
		}
	}
	s.noViolations()
}

// Tekton's event for one finished TaskRun, delivered 300 times to two sink
// replicas at once, makes one end call: the replica whose claim on the
// TaskRun wins reports it.
func TestSinkReplicasReportOnce(t *testing.T) {
	s := newStack(t, nil)
	id := taskID(0x802)
	s.mustPost(customTask(t, id))
	tr := s.waitDone(name(id), time.Minute)
	data, err := json.Marshal(map[string]any{"taskRun": tr})
	if err != nil {
		t.Fatal(err)
	}
	sink := s.startSink()
	var n atomic.Int32
	bad := flood(300, func() (*http.Response, error) {
		i := n.Add(1)
		req, _ := http.NewRequest(http.MethodPost, sink.URL, bytes.NewReader(data))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("ce-specversion", "1.0")
		req.Header.Set("ce-id", fmt.Sprintf("rep-%d", i))
		req.Header.Set("ce-source", "/apis///namespaces/"+s.ns+"//"+tr.Name)
		req.Header.Set("ce-type", "dev.tekton.event.taskrun.successful.v1")
		return floodClient.Do(req)
	})
	if bad != 0 {
		t.Errorf("%d of 300 Tekton events not answered 200 in time", bad)
	}
	s.waitEnd(id, time.Minute)
	if c := len(s.calls(enginestub.KindTaskRunEnd, id)); c != 1 {
		t.Fatalf("%d end calls from two sink replicas, want 1", c)
	}
	s.noViolations()
}
