//go:build e2e

package e2e

import (
	"context"
	"strings"
	"testing"
	"time"

	pipelinev1 "github.com/tektoncd/pipeline/pkg/apis/pipeline/v1"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/boomerang-io/flow-tekton-handler/internal/contract"
	"github.com/boomerang-io/flow-tekton-handler/internal/outcome"
	"github.com/boomerang-io/flow-tekton-handler/internal/status"
	"github.com/boomerang-io/flow-tekton-handler/internal/tekton"
	"github.com/boomerang-io/flow-tekton-handler/test/enginestub"
	"github.com/boomerang-io/flow-tekton-handler/test/wait"
)

// The Engine's state, not ours, says whether a task may run: a copy of a
// ready event that arrives after the TaskRun was reported and deleted
// (deletion policy), to the same replicas or to new ones (a restart, a
// scale to zero), creates nothing and sends nothing.
func TestLateReadyAfterDeletionCreatesNothing(t *testing.T) {
	s := newStack(t, map[string]string{"DELETION_POLICY": "Always"})
	s.startSink()
	id := taskID(0x900)
	body := customTask(t, id)
	s.mustPost(body)
	s.waitEnd(id, time.Minute)
	s.waitGone(id, "the reported TaskRun to be deleted", 30*time.Second)
	for _, when := range []string{"to the same replicas", "after a restart"} {
		if when == "after a restart" {
			if err := s.handler.Close(10 * time.Second); err != nil {
				t.Fatal(err)
			}
			s.handler = s.start("handler")
		}
		s.mustPost(body)
		if trs := s.taskRuns(); len(trs) != 0 {
			t.Fatalf("late ready event %s: %d TaskRuns created for a task the Engine completed", when, len(trs))
		}
		if n := len(s.calls(enginestub.KindTaskRunStart, id)); n != 1 {
			t.Fatalf("late ready event %s: %d starts, want the first only", when, n)
		}
	}
	s.noViolations()
}

// A cancel that overtakes its task's ready event (the Engine cancelled the
// task before the handler saw it ready) is not lost: the cancel finds no
// TaskRun and is a no-op, and the ready event that follows creates nothing.
func TestCancelOvertakesReady(t *testing.T) {
	s := newStack(t, nil)
	s.startSink()
	ready := event(t, "engine-taskrun-script-ready.json")
	s.mustPost(event(t, "engine-taskrun-completed-cancelled.json"))
	s.mustPost(ready)
	if trs := s.taskRuns(); len(trs) != 0 {
		t.Fatalf("%d TaskRuns for a task cancelled before its ready event", len(trs))
	}
	if calls := s.engine.CallsFor(scriptID); len(calls) != 1 || calls[0].Kind != enginestub.KindTaskRunGet {
		t.Fatalf("want only the handler's question to the Engine, got %v", calls)
	}
	s.noViolations()
}

// A cancel that lands while a replica is starting the task (its ConfigMap
// under the claim, the Engine's start in flight) waits for the claim to
// settle: the Engine answers the start with the task cancelled, so no
// TaskRun is ever created, the ConfigMap goes, and no end is sent.
func TestCancelDuringStart(t *testing.T) {
	s := newStack(t, nil)
	s.startSink()
	s.engine.Delay(3 * time.Second) // the owner waits on the Engine's start
	done := make(chan delivery, 1)
	go func() { done <- s.deliver(event(t, "engine-taskrun-script-ready.json")) }()
	cfg := tekton.ConfigMapName("bmrg-flow", scriptID)
	wait.Eventually(s.t, 30*time.Second, "the claimed ConfigMap and the start in flight", func() (bool, error) {
		cm, err := s.kube.CoreV1().ConfigMaps(s.ns).Get(context.Background(), cfg, metav1.GetOptions{})
		return err == nil && cm.Annotations[contract.AnnotationClaimed] != "" && s.engine.Held() > 0, nil
	})
	s.engine.Delay(0)
	s.mustPost(event(t, "engine-taskrun-completed-cancelled.json"))
	if d := <-done; d.err != nil || d.code/100 != 2 {
		t.Fatalf("ready event: %d %s (%v)", d.code, d.body, d.err)
	}
	if trs := s.taskRuns(); len(trs) != 0 {
		t.Fatalf("%d TaskRuns for a task cancelled during its start", len(trs))
	}
	if _, err := s.kube.CoreV1().ConfigMaps(s.ns).Get(context.Background(), cfg, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("the claimed ConfigMap is still there (%v)", err)
	}
	if n := len(s.calls(enginestub.KindTaskRunEnd, scriptID)); n != 0 {
		t.Fatalf("%d ends for a task the Engine cancelled", n)
	}
	s.noViolations()
}

// A TaskRun deleted while it runs (a user, a pruner) is held by our
// finalizer: the sink reports it failed with the reason, then releases it
// and the apiserver removes it.
func TestDeletedWhileRunningReported(t *testing.T) {
	s := newStack(t, map[string]string{"SWEEP_INTERVAL": "1s"})
	s.startSink()
	s.mustPost(event(t, "engine-taskrun-script-ready.json", withLabels(map[string]string{"ktest.dev/outcome": "hang"})))
	s.waitRunning(name(scriptID))
	if err := s.tekton.TektonV1().TaskRuns(s.ns).Delete(context.Background(), name(scriptID), metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	end := s.waitEnd(scriptID, time.Minute)
	if end.Status != "failed" || !strings.HasPrefix(end.StatusMessage, outcome.ReasonDeleted+": ") {
		t.Fatalf("end %+v, want failed with %s", end, outcome.ReasonDeleted)
	}
	s.waitGone(scriptID, "the reported TaskRun to be gone", 30*time.Second)
	if n := len(s.calls(enginestub.KindTaskRunEnd, scriptID)); n != 1 {
		t.Fatalf("%d ends, want 1", n)
	}
	s.noViolations()
}

// A TaskRun deleted while still pending, its handler claim stale (the owner
// died), is owed an end only if the owner's start reached the Engine: the
// sink asks the Engine, reports a running task failed, and releases both
// TaskRuns; a task still pending in the Engine gets no end.
func TestDeletedWhilePendingAsksTheEngine(t *testing.T) {
	s := newStack(t, map[string]string{"SWEEP_INTERVAL": "1s"})
	s.startSink()
	ctx := context.Background()
	landed, notSent := taskID(0x910), taskID(0x911)
	s.engine.Know(enginestub.Task{ID: landed, Status: enginestub.StatusRunning, Phase: enginestub.PhaseRunning}, enginestub.Task{ID: notSent})
	for _, id := range []string{landed, notSent} {
		tr := &pipelinev1.TaskRun{
			ObjectMeta: metav1.ObjectMeta{Name: name(id), Namespace: s.ns, Finalizers: []string{contract.FinalizerReport},
				Labels:      map[string]string{contract.LabelTaskRunRef: id, contract.LabelProduct: "bmrg-flow"},
				Annotations: map[string]string{contract.AnnotationClaimed: contract.ClaimValue(time.Now().Add(-status.ClaimStale - time.Minute))}},
			Spec: pipelinev1.TaskRunSpec{Status: pipelinev1.TaskRunSpecStatusPending,
				TaskSpec: &pipelinev1.TaskSpec{Steps: []pipelinev1.Step{{Name: "main", Image: "alpine", Command: []string{"true"}}}}},
		}
		if _, err := s.tekton.TektonV1().TaskRuns(s.ns).Create(ctx, tr, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		if err := s.tekton.TektonV1().TaskRuns(s.ns).Delete(ctx, tr.Name, metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	for _, id := range []string{landed, notSent} {
		s.waitGone(id, "the deleted pending TaskRun "+id+" to be released", 30*time.Second)
	}
	end := s.waitEnd(landed, time.Minute)
	if end.Status != "failed" || !strings.HasPrefix(end.StatusMessage, outcome.ReasonDeleted+": ") {
		t.Fatalf("end %+v for the started task, want failed with %s", end, outcome.ReasonDeleted)
	}
	if n := len(s.calls(enginestub.KindTaskRunEnd, notSent)); n != 0 {
		t.Fatalf("%d ends for a task whose start never reached the Engine", n)
	}
}

// A redelivered workflowrun ready event is answered 2xx: the Engine refuses
// the second start with 1304 (the run is no longer pending), which means
// it is started already.
func TestWorkflowRunRedeliveredStartsOnce(t *testing.T) {
	s := newStack(t, nil)
	body := event(t, "engine-workflowrun-ready-with-workspace.json")
	s.mustPost(body)
	s.mustPost(body)
	if n := len(s.calls(enginestub.KindWorkflowRunStart, runID)); n != 1 {
		t.Fatalf("%d accepted workflowrun starts, want 1", n)
	}
	refused := 0
	for _, c := range s.engine.CallsFor(runID) {
		if c.Kind == enginestub.KindWorkflowRunStart && c.Status == 400 {
			refused++
		}
	}
	if refused != 1 {
		t.Fatalf("%d workflowrun starts refused with 1304, want the redelivery's one", refused)
	}
}

// A workspace claim the cluster refuses for good (here an admission
// policy, as a policy engine would) does not keep the run from starting:
// the Engine hears the start, and the handler logs why the claim is
// missing.
func TestStorageRefusedRunStillStarts(t *testing.T) {
	s := newStack(t, nil)
	s.refuseClaims()
	s.mustPost(event(t, "engine-workflowrun-ready-with-workspace.json"))
	if n := len(s.calls(enginestub.KindWorkflowRunStart, runID)); n != 1 {
		t.Fatalf("%d accepted workflowrun starts, want 1", n)
	}
	pvcs, err := s.kube.CoreV1().PersistentVolumeClaims(s.ns).List(context.Background(), metav1.ListOptions{})
	if err != nil || len(pvcs.Items) != 0 {
		t.Fatalf("%d claims (%v), want none: the policy refuses them", len(pvcs.Items), err)
	}
	if len(s.handler.LogLines("workspace claim refused")) == 0 {
		t.Fatal("the handler did not log why the run has no claim")
	}
}

// refuseClaims makes the apiserver refuse every claim created in the
// stack's namespace as invalid (422), with a ValidatingAdmissionPolicy, and
// waits until it does.
func (s *stack) refuseClaims() {
	s.t.Helper()
	ctx := context.Background()
	invalid := metav1.StatusReasonInvalid
	fail := admissionregistrationv1.Fail
	policy := &admissionregistrationv1.ValidatingAdmissionPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "no-claims-" + s.ns},
		Spec: admissionregistrationv1.ValidatingAdmissionPolicySpec{
			FailurePolicy: &fail,
			MatchConstraints: &admissionregistrationv1.MatchResources{ResourceRules: []admissionregistrationv1.NamedRuleWithOperations{{
				RuleWithOperations: admissionregistrationv1.RuleWithOperations{
					Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create},
					Rule:       admissionregistrationv1.Rule{APIGroups: []string{""}, APIVersions: []string{"v1"}, Resources: []string{"persistentvolumeclaims"}},
				},
			}}},
			Validations: []admissionregistrationv1.Validation{{Expression: "false", Message: "storage is closed to this namespace", Reason: &invalid}},
		},
	}
	binding := &admissionregistrationv1.ValidatingAdmissionPolicyBinding{
		ObjectMeta: metav1.ObjectMeta{Name: policy.Name},
		Spec: admissionregistrationv1.ValidatingAdmissionPolicyBindingSpec{
			PolicyName:        policy.Name,
			ValidationActions: []admissionregistrationv1.ValidationAction{admissionregistrationv1.Deny},
			MatchResources: &admissionregistrationv1.MatchResources{NamespaceSelector: &metav1.LabelSelector{
				MatchLabels: map[string]string{corev1.LabelMetadataName: s.ns}}},
		},
	}
	api := s.kube.AdmissionregistrationV1()
	if _, err := api.ValidatingAdmissionPolicies().Create(ctx, policy, metav1.CreateOptions{}); err != nil {
		s.t.Fatal(err)
	}
	s.t.Cleanup(func() {
		_ = api.ValidatingAdmissionPolicies().Delete(context.Background(), policy.Name, metav1.DeleteOptions{})
	})
	if _, err := api.ValidatingAdmissionPolicyBindings().Create(ctx, binding, metav1.CreateOptions{}); err != nil {
		s.t.Fatal(err)
	}
	s.t.Cleanup(func() {
		_ = api.ValidatingAdmissionPolicyBindings().Delete(context.Background(), binding.Name, metav1.DeleteOptions{})
	})
	probe := &corev1.PersistentVolumeClaim{
		ObjectMeta: metav1.ObjectMeta{Name: "probe", Namespace: s.ns},
		Spec: corev1.PersistentVolumeClaimSpec{AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			Resources: corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")}}},
	}
	wait.Eventually(s.t, 30*time.Second, "the policy to refuse claims", func() (bool, error) {
		_, err := s.kube.CoreV1().PersistentVolumeClaims(s.ns).Create(ctx, probe, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		return apierrors.IsInvalid(err), nil
	})
}

// A task timeout of 0 or below means the default timeout (DEFAULT_TIMEOUT),
// not a refusal.
func TestTimeoutZeroMeansDefault(t *testing.T) {
	s := newStack(t, map[string]string{"DEFAULT_TIMEOUT": "42m"})
	for i, timeout := range []int{0, -5} {
		id := taskID(0x920 + i)
		s.mustPost(event(t, "engine-taskrun-custom-ready.json", func(d map[string]any) { d["id"], d["timeout"] = id, timeout }))
		tr, err := s.taskRun(name(id))
		if err != nil {
			t.Fatalf("timeout %d: %v", timeout, err)
		}
		if tr.Spec.Timeout == nil || tr.Spec.Timeout.Duration != 42*time.Minute {
			t.Fatalf("timeout %d: TaskRun timeout %v, want the default 42m", timeout, tr.Spec.Timeout)
		}
	}
}
