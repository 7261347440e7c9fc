//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"knative.dev/pkg/apis"

	"github.com/boomerang-io/flow-tekton-handler/internal/contract"
	"github.com/boomerang-io/flow-tekton-handler/internal/engine"
	"github.com/boomerang-io/flow-tekton-handler/test/enginestub"
	"github.com/boomerang-io/flow-tekton-handler/test/wait"
)

// The sink acts on what the apiserver holds, never on an event's content:
// a forged Tekton event saying that a running TaskRun succeeded is answered
// 200 and changes nothing: no end, no mark, our finalizer kept.
func TestSinkForgedEventChangesNothing(t *testing.T) {
	s := newStack(t, nil)
	sink := s.startSink()
	s.mustPost(event(t, "engine-taskrun-script-ready.json", withLabels(map[string]string{"ktest.dev/outcome": "hang"})))
	tr := s.waitRunning(name(scriptID))
	forged := tr.DeepCopy()
	forged.Status.SetCondition(&apis.Condition{Type: apis.ConditionSucceeded, Status: corev1.ConditionTrue, Reason: "Succeeded"})
	data, err := json.Marshal(map[string]any{"taskRun": forged})
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest(http.MethodPost, sink.URL, bytes.NewReader(data))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("ce-specversion", "1.0")
	req.Header.Set("ce-id", "forged-1")
	req.Header.Set("ce-source", "/apis///namespaces/"+s.ns+"//"+tr.Name)
	req.Header.Set("ce-type", "dev.tekton.event.taskrun.successful.v1")
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("forged event answered %d, want 200", resp.StatusCode)
	}
	if n := len(s.engine.CallsFor(scriptID)) - len(s.calls(enginestub.KindTaskRunStart, scriptID)) - s.gets(scriptID); n != 0 {
		t.Fatalf("the forged event made %d Engine calls", n)
	}
	after, err := s.taskRun(tr.Name)
	if err != nil {
		t.Fatal(err)
	}
	if after.Labels[contract.LabelReported] != "" || !slices.Contains(after.Finalizers, contract.FinalizerReport) {
		t.Fatalf("the forged event marked or released the running TaskRun: labels %v, finalizers %v", after.Labels, after.Finalizers)
	}
}

// gets counts the Engine's answers to reads of the task id.
func (s *stack) gets(id string) int {
	n := 0
	for _, c := range s.engine.CallsFor(id) {
		if c.Kind == enginestub.KindTaskRunGet {
			n++
		}
	}
	return n
}

// Only the Engine's own refusals (400) are final for an end: 401, 403 and
// 404 (a token or a URL to fix) leave the TaskRun unreported, and a later
// sweep reports it once the Engine answers again.
func TestSinkEndRefusalsRetried(t *testing.T) {
	for i, code := range []int{http.StatusUnauthorized, http.StatusForbidden, http.StatusNotFound} {
		t.Run(http.StatusText(code), func(t *testing.T) {
			s := newStack(t, map[string]string{"SWEEP_INTERVAL": "1s"})
			s.startSink()
			id := taskID(0xa00 + i)
			s.mustPost(customTask(t, id)) // its start is accepted before the fault
			s.engine.FailFor(time.Hour, code)
			s.waitDone(name(id), time.Minute)
			wait.Eventually(s.t, 30*time.Second, fmt.Sprintf("two end attempts answered %d", code), func() (bool, error) {
				return len(s.attempts(id, code)) >= 2, nil
			})
			tr, err := s.taskRun(name(id))
			if err != nil {
				t.Fatal(err)
			}
			if mark := tr.Labels[contract.LabelReported]; mark != "" {
				t.Fatalf("%d: TaskRun marked %q, want it left for a later sweep", code, mark)
			}
			s.engine.FailFor(0, 0)
			s.waitEnd(id, time.Minute)
			wait.Eventually(s.t, 30*time.Second, "the report to be marked", func() (bool, error) {
				tr, err := s.taskRun(name(id))
				return err == nil && tr.Labels[contract.LabelReported] == "true", err
			})
			if n := len(s.calls(enginestub.KindTaskRunEnd, id)); n != 1 {
				t.Fatalf("%d: %d accepted ends, want 1", code, n)
			}
		})
	}
}

// A deletion under the policy that fails after the report (here the sink's
// Role lost its delete permission) leaves the TaskRun reported and marked
// for deletion; once the permission is back, the sweep deletes it. The end
// is sent once.
func TestDeletionRetriedUntilItSucceeds(t *testing.T) {
	s := newStack(t, map[string]string{"DELETION_POLICY": "Always", "SWEEP_INTERVAL": "1s"})
	ctx := context.Background()
	roles := s.kube.RbacV1().Roles(s.ns)
	role, err := roles.Get(ctx, "flow-tekton-sink", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	withDelete := role.DeepCopy()
	for i, r := range role.Rules {
		if slices.Contains(r.Resources, "taskruns") {
			role.Rules[i].Verbs = slices.DeleteFunc(r.Verbs, func(v string) bool { return v == "delete" })
		}
	}
	if role, err = roles.Update(ctx, role, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	s.startSink()
	id := taskID(0xa10)
	s.mustPost(customTask(t, id))
	s.waitEnd(id, time.Minute)
	wait.Eventually(s.t, 30*time.Second, "the report marked, the deletion due", func() (bool, error) {
		tr, err := s.taskRun(name(id))
		return err == nil && tr.Labels[contract.LabelReported] == "true" && tr.Labels[contract.LabelDeleteDue] == "true", err
	})
	if _, err := s.taskRun(name(id)); err != nil {
		t.Fatalf("TaskRun gone although the sink may not delete: %v", err)
	}
	withDelete.ResourceVersion = role.ResourceVersion
	if _, err := roles.Update(ctx, withDelete, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	s.waitGone(id, "the sweep to delete the reported TaskRun", 30*time.Second)
	if n := len(s.calls(enginestub.KindTaskRunEnd, id)); n != 1 {
		t.Fatalf("%d accepted ends, want 1", n)
	}
}

// The sink claims a report when the TaskRun's steps end, before Tekton
// finishes the TaskRun, so the end call waits for no write: with Tekton's
// controller paused, the pod ends (the node, kwok) and the claim is on the
// params ConfigMap while the TaskRun still runs; once Tekton finishes it,
// the Engine gets one end.
func TestSinkClaimsWhenStepsEnd(t *testing.T) {
	s := newStack(t, nil)
	s.startSink()
	s.mustPost(event(t, "engine-taskrun-script-ready.json", withLabels(map[string]string{"ktest.dev/outcome": "hang"})))
	tr := s.waitRunning(name(scriptID))
	ctx := context.Background()
	cms, err := s.kube.CoreV1().ConfigMaps(s.ns).List(ctx, metav1.ListOptions{LabelSelector: contract.LabelTaskRunRef + "=" + scriptID})
	if err != nil || len(cms.Items) != 1 {
		t.Fatalf("params ConfigMaps: %v, %v", cms, err)
	}
	cm := cms.Items[0].Name

	resume, err := s.c.PauseTekton()
	if err != nil {
		t.Fatal(err)
	}
	resumed := false
	t.Cleanup(func() {
		if !resumed {
			_ = resume()
		}
	})
	// The pod stops hanging: kwok ends its containers.
	patch := []byte(`{"metadata":{"labels":{"ktest.dev/outcome":"pass"}}}`)
	if _, err := s.kube.CoreV1().Pods(s.ns).Patch(ctx, tr.Status.PodName, types.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	wait.Eventually(t, 30*time.Second, "the report claimed on the ConfigMap", func() (bool, error) {
		got, err := s.kube.CoreV1().ConfigMaps(s.ns).Get(ctx, cm, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		_, claimed := got.Annotations[contract.AnnotationClaimed]
		return !claimed && !contract.ClaimTime(got.Annotations, contract.AnnotationReporting).IsZero(), nil
	})
	if status, reason, _ := condition(s.waitRunning(tr.Name)); status != corev1.ConditionUnknown {
		t.Fatalf("TaskRun %s (%s) while Tekton is paused", status, reason)
	}
	if n := len(s.calls(enginestub.KindTaskRunEnd, scriptID)); n != 0 {
		t.Fatalf("%d end calls before Tekton finished the TaskRun", n)
	}
	resumed = true
	if err := resume(); err != nil {
		t.Fatal(err)
	}
	if end := s.waitEnd(scriptID, time.Minute); end.Status != engine.StatusSucceeded {
		t.Fatalf("end status %q", end.Status)
	}
	wait.Eventually(t, 30*time.Second, "the TaskRun marked reported (and deleted, as its task asks)", func() (bool, error) {
		got, err := s.taskRun(tr.Name)
		if apierrors.IsNotFound(err) {
			return true, nil
		}
		return err == nil && got.Labels[contract.LabelReported] != "", err
	})
	if n := len(s.calls(enginestub.KindTaskRunEnd, scriptID)); n != 1 {
		t.Fatalf("%d end calls, want 1", n)
	}
}
