//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"net/http"
	"sync"
	"testing"
	"time"

	pipelinev1 "github.com/tektoncd/pipeline/pkg/apis/pipeline/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/boomerang-io/flow-tekton-handler/internal/contract"
	"github.com/boomerang-io/flow-tekton-handler/internal/tekton"
	"github.com/boomerang-io/flow-tekton-handler/test/enginestub"
	"github.com/boomerang-io/flow-tekton-handler/test/wait"
)

const (
	templateID = "65a1f1a0e4b0a1b2c3d4e610"
	scriptID   = "65a1f1a0e4b0a1b2c3d4e611"
	customID   = "65a1f1a0e4b0a1b2c3d4e612"
	runID      = "65a1f0d9e4b0a1b2c3d4e601"
)

func name(id string) string { return tekton.TaskRunName("bmrg-flow", id) }

// Every taskrun fixture becomes a TaskRun that Tekton runs to Succeeded on a
// kwok node, with its ConfigMap, after one Engine start. (The ConfigMap
// keeps the start's claim until the sink reports: TestStaleClaimTakenOver
// checks what the report makes of it.)
func TestTaskFixturesSucceed(t *testing.T) {
	s := newStack(t, nil)
	for _, fx := range []struct{ file, id string }{
		{"engine-taskrun-template-ready.json", templateID},
		{"engine-taskrun-script-ready.json", scriptID},
		{"engine-taskrun-custom-ready.json", customID},
	} {
		s.mustPost(event(t, fx.file))
		tr := s.waitDone(name(fx.id), time.Minute)
		if st, reason, msg := condition(tr); st != corev1.ConditionTrue {
			t.Errorf("%s: %s %s %s, want Succeeded", fx.file, st, reason, msg)
		}
		cm, err := s.kube.CoreV1().ConfigMaps(s.ns).Get(context.Background(), tekton.ConfigMapName("bmrg-flow", fx.id), metav1.GetOptions{})
		if err != nil {
			t.Errorf("%s: params ConfigMap: %v", fx.file, err)
		} else if cm.Labels[contract.LabelTaskRunRef] != fx.id || cm.Annotations[contract.AnnotationClaimed] == "" {
			t.Errorf("%s: ConfigMap labels %v annotations %v, want the task's, under the start's claim", fx.file, cm.Labels, cm.Annotations)
		}
		if n := len(s.calls(enginestub.KindTaskRunStart, fx.id)); n != 1 {
			t.Errorf("%s: %d Engine starts, want 1", fx.file, n)
		}
	}
	s.noViolations()
}

// Twenty concurrent copies of one event make exactly one TaskRun and one
// Engine start.
func TestConcurrentCopiesMakeOneTaskRun(t *testing.T) {
	s := newStack(t, nil)
	body := event(t, "engine-taskrun-template-ready.json")
	var wg sync.WaitGroup
	codes := make([]int, 20)
	for i := range codes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			codes[i], _ = s.post(body)
		}()
	}
	wg.Wait()
	for i, c := range codes {
		if c != http.StatusOK {
			t.Errorf("copy %d answered %d", i, c)
		}
	}
	if n := len(s.taskRuns()); n != 1 {
		t.Fatalf("%d TaskRuns from 20 copies", n)
	}
	if n := len(s.calls(enginestub.KindTaskRunStart, templateID)); n != 1 {
		t.Fatalf("%d Engine starts from 20 copies", n)
	}
	s.waitDone(name(templateID), time.Minute)
	s.noViolations()
}

// A cancel event leaves a running TaskRun Cancelled, and the sink sends no
// end for it.
func TestCancelledTaskRun(t *testing.T) {
	s := newStack(t, nil)
	s.startSink()
	s.mustPost(event(t, "engine-taskrun-script-ready.json", withLabels(map[string]string{"ktest.dev/outcome": "hang"})))
	wait.Eventually(s.t, time.Minute, "the TaskRun to run", func() (bool, error) {
		tr, err := s.taskRun(name(scriptID))
		if err != nil {
			return false, err
		}
		_, reason, _ := condition(tr)
		return reason == "Running", nil
	})
	s.mustPost(event(t, "engine-taskrun-completed-cancelled.json"))
	tr := s.waitDone(name(scriptID), time.Minute)
	if st, reason, _ := condition(tr); st != corev1.ConditionFalse || reason != pipelinev1.TaskRunReasonCancelled.String() {
		t.Fatalf("condition %s %s, want False TaskRunCancelled", st, reason)
	}
	// The sink has seen the terminal state once it marks the TaskRun.
	wait.Eventually(s.t, 30*time.Second, "the sink to mark the cancelled TaskRun", func() (bool, error) {
		tr, err := s.taskRun(name(scriptID))
		return err == nil && tr.Labels["boomerang.io/reported"] == "skipped", err
	})
	if n := len(s.calls(enginestub.KindTaskRunEnd, scriptID)); n != 0 {
		t.Fatalf("%d end calls for a task the Engine cancelled", n)
	}
	// A second cancel, and one for a TaskRun that never existed, are no-ops.
	s.mustPost(event(t, "engine-taskrun-completed-cancelled.json"))
	s.mustPost(event(t, "engine-taskrun-completed-timedout.json"))
	s.noViolations()
}

// A cancel that arrives after the TaskRun succeeded and was reported is a
// no-op answered 200: Tekton's webhook refuses any change to a finished
// TaskRun, and a 4xx would send the event to the Broker's dead letters.
func TestCancelAfterEnd(t *testing.T) {
	s := newStack(t, nil)
	s.startSink()
	s.mustPost(event(t, "engine-taskrun-custom-ready.json"))
	s.waitEnd(customID, time.Minute)
	s.mustPost(event(t, "engine-taskrun-completed-cancelled.json", withID(customID)))
	after, err := s.taskRun(name(customID))
	if err != nil {
		t.Fatal(err)
	}
	if after.Spec.Status != "" || after.Annotations["boomerang.io/cancelled"] != "" {
		t.Fatalf("finished TaskRun changed by a late cancel: spec.status %q, annotations %v", after.Spec.Status, after.Annotations)
	}
	if st, reason, _ := condition(after); st != corev1.ConditionTrue {
		t.Fatalf("condition %s %s after a late cancel, want True", st, reason)
	}
	s.noViolations()
}

// A workflowrun ready event makes the workspace claim that its tasks mount;
// the completed event removes it; the Engine hears start and finalize.
func TestWorkflowRunWorkspace(t *testing.T) {
	s := newStack(t, nil)
	s.mustPost(event(t, "engine-workflowrun-ready-with-workspace.json"))
	pvcs, err := s.kube.CoreV1().PersistentVolumeClaims(s.ns).List(context.Background(), metav1.ListOptions{})
	if err != nil || len(pvcs.Items) != 1 {
		t.Fatalf("want one PVC after ready, got %v (%v)", len(pvcs.Items), err)
	}
	claim := pvcs.Items[0].Name
	if n := len(s.calls(enginestub.KindWorkflowRunStart, runID)); n != 1 {
		t.Fatalf("%d workflowrun starts", n)
	}

	s.mustPost(event(t, "engine-taskrun-template-ready.json"))
	tr, err := s.taskRun(name(templateID))
	if err != nil {
		t.Fatal(err)
	}
	if len(tr.Spec.Workspaces) != 1 || tr.Spec.Workspaces[0].PersistentVolumeClaim == nil || tr.Spec.Workspaces[0].PersistentVolumeClaim.ClaimName != claim {
		t.Fatalf("TaskRun workspaces %+v, want claim %s", tr.Spec.Workspaces, claim)
	}
	// Tekton's pod mounts the claim.
	wait.Eventually(s.t, time.Minute, "the TaskRun's pod to mount the claim", func() (bool, error) {
		pods, err := s.kube.CoreV1().Pods(s.ns).List(context.Background(), metav1.ListOptions{LabelSelector: "tekton.dev/taskRun=" + tr.Name})
		if err != nil || len(pods.Items) == 0 {
			return false, err
		}
		for _, v := range pods.Items[0].Spec.Volumes {
			if v.PersistentVolumeClaim != nil && v.PersistentVolumeClaim.ClaimName == claim {
				return true, nil
			}
		}
		return false, nil
	})

	// The pod is scheduled with the bound claim and the task succeeds.
	if st, reason, msg := condition(s.waitDone(tr.Name, time.Minute)); st != corev1.ConditionTrue {
		t.Fatalf("task with workspace: %s %s %s", st, reason, msg)
	}

	s.mustPost(event(t, "engine-workflowrun-completed.json"))
	wait.Eventually(s.t, 30*time.Second, "the run's claim to be deleted", func() (bool, error) {
		_, err := s.kube.CoreV1().PersistentVolumeClaims(s.ns).Get(context.Background(), claim, metav1.GetOptions{})
		return apierrors.IsNotFound(err), err
	})
	if n := len(s.calls(enginestub.KindWorkflowRunFinalize, runID)); n != 1 {
		t.Fatalf("%d workflowrun finalizes", n)
	}
	s.noViolations()
}

// Array and object param values reach the task's /params as compact JSON in
// one canonical form, as the Java handler's Jackson wrote them: members in
// the event's order, numbers as written, strings in UTF-8 as is, whatever
// escapes and spaces the event carried.
func TestParamsCanonicalJSON(t *testing.T) {
	s := newStack(t, nil)
	id := taskID(0x930)
	var doc, data map[string]json.RawMessage
	if err := json.Unmarshal(event(t, "engine-taskrun-custom-ready.json", withID(id)), &doc); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(doc["data"], &data); err != nil {
		t.Fatal(err)
	}
	data["params"] = json.RawMessage(`[
		{"name": "list", "value": [ "caf\u00e9", "a\u003cb" ]},
		{"name": "obj", "value": { "z" : "x\u2028y \/ \"q\"", "a" : 1.50 }}
	]`)
	var err error
	if doc["data"], err = json.Marshal(data); err != nil {
		t.Fatal(err)
	}
	body, err := json.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	s.mustPost(s.known(body))
	cm, err := s.kube.CoreV1().ConfigMaps(s.ns).Get(context.Background(), tekton.ConfigMapName("bmrg-flow", id), metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for k, want := range map[string]string{"list": `["café","a<b"]`, "obj": "{\"z\":\"x\u2028y / \\\"q\\\"\",\"a\":1.50}"} {
		if got := cm.Data[k]; got != want {
			t.Errorf("param %s in /params: %q, want %q", k, got, want)
		}
	}
}
