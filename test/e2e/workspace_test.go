//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/boomerang-io/flow-tekton-handler/internal/contract"
	"github.com/boomerang-io/flow-tekton-handler/internal/tekton"
	"github.com/boomerang-io/flow-tekton-handler/test/enginestub"
	"github.com/boomerang-io/flow-tekton-handler/test/fixtures"
	"github.com/boomerang-io/flow-tekton-handler/test/wait"
)

// workflowRunFixture is the workflowrun ready event the workspace tests
// edit.
const workflowRunFixture = "engine-workflowrun-ready-with-workspace.json"

// workflowID is the workflow of the workflowrun fixtures.
const workflowID = "65a1f0c2e4b0a1b2c3d4e5f6"

// withRun makes a workflowrun event's data about run id of workflow
// workflowRef, with the workspaces given as raw JSON (so that their specs
// may carry any type).
func withRun(id, workflowRef, workspaces string) func(map[string]any) {
	return func(d map[string]any) {
		d["id"], d["workflowRef"], d["workspaces"] = id, workflowRef, json.RawMessage(workspaces)
	}
}

// deliverCase delivers an event through the dispatcher as s.mustPost does,
// failing the test with the case's name unless the handler's final answer
// is 2xx and the event was not dead-lettered.
func (s *stack) deliverCase(name string, body []byte) {
	s.t.Helper()
	switch d := s.deliver(body); {
	case d.err != nil:
		s.t.Fatalf("%s: delivery failed: %v", name, d.err)
	case d.deadLetter:
		s.takeDeadLetters()
		s.t.Fatalf("%s: event dead-lettered; the handler's last answer: %d %s", name, d.code, d.body)
	case d.code/100 != 2:
		s.t.Fatalf("%s: handler answered %d: %s", name, d.code, d.body)
	}
}

// pvc returns the namespace's claim name, or nil when there is none.
func (s *stack) pvc(name string) (*corev1.PersistentVolumeClaim, error) {
	p, err := s.kube.CoreV1().PersistentVolumeClaims(s.ns).Get(context.Background(), name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	return p, err
}

// A workflowrun ready event whose workspace spec, or fields of it, have the
// wrong JSON type is answered 2xx: the claim is made with the defaults
// (ReadWriteMany, 1Gi) for what is wrong, the handler's warning names the
// ignored fields, and the Engine hears one start.
func TestWorkspaceSpecWrongTypes(t *testing.T) {
	s := newStack(t, nil)
	for i, tc := range []struct {
		name    string
		spec    string // the workspace's spec, raw JSON
		mode    corev1.PersistentVolumeAccessMode
		size    string
		dropped string // the field the handler's warning names
	}{
		{name: "access mode number", spec: `{"accessMode":5,"size":"2Gi"}`, mode: corev1.ReadWriteMany, size: "2Gi", dropped: "workspaces[0].spec.accessMode"},
		{name: "class boolean", spec: `{"className":true,"accessMode":"ReadWriteOnce"}`, mode: corev1.ReadWriteOnce, size: "1Gi", dropped: "workspaces[0].spec.className"},
		{name: "size object", spec: `{"size":{"gi":2}}`, mode: corev1.ReadWriteMany, size: "1Gi", dropped: "workspaces[0].spec.size"},
		{name: "every field wrong", spec: `{"accessMode":5,"className":true,"mountPath":[],"size":false}`, mode: corev1.ReadWriteMany, size: "1Gi", dropped: "workspaces[0].spec.mountPath"},
		{name: "spec string", spec: `"x"`, mode: corev1.ReadWriteMany, size: "1Gi", dropped: "workspaces[0].spec:"},
		{name: "spec empty array", spec: `[]`, mode: corev1.ReadWriteMany, size: "1Gi", dropped: "workspaces[0].spec:"},
	} {
		id := fmt.Sprintf("65a1f0d9e4b0a1b2c3d4e7%02x", i)
		s.deliverCase(tc.name, event(t, workflowRunFixture,
			withRun(id, workflowID, `[{"name":"ws","type":"workflowrun","spec":`+tc.spec+`}]`)))

		claim := tekton.PVCName("bmrg-flow", contract.ScopeWorkflowRun, id)
		p, err := s.pvc(claim)
		switch {
		case err != nil:
			t.Errorf("%s: claim %s: %v", tc.name, claim, err)
		case p == nil:
			t.Errorf("%s: no claim %s", tc.name, claim)
		default:
			if len(p.Spec.AccessModes) != 1 || p.Spec.AccessModes[0] != tc.mode {
				t.Errorf("%s: claim access modes %v, want [%s]", tc.name, p.Spec.AccessModes, tc.mode)
			}
			if got := p.Spec.Resources.Requests[corev1.ResourceStorage]; got.Cmp(resource.MustParse(tc.size)) != 0 {
				t.Errorf("%s: claim size %s, want %s", tc.name, got.String(), tc.size)
			}
		}
		if n := len(s.calls(enginestub.KindWorkflowRunStart, id)); n != 1 {
			t.Errorf("%s: %d accepted workflowrun starts, want 1", tc.name, n)
		}
		wait.Eventually(s.t, 10*time.Second, tc.name+": the handler's event line naming "+tc.dropped, func() (bool, error) {
			for _, l := range s.handler.LogLines(tc.dropped) {
				if strings.Contains(l, id) && strings.Contains(l, `"msg":"event"`) && strings.Contains(l, `"dropped"`) {
					return true, nil
				}
			}
			return false, nil
		})
	}
	s.noViolations()
}

// workflowEvent is an io.boomerang.event.status.workflow event for the
// workflow id with status, in the envelope of the workflowrun fixture.
func workflowEvent(t *testing.T, id, status string) []byte {
	t.Helper()
	var doc map[string]any
	if err := json.Unmarshal(fixtures.Read(t, workflowRunFixture), &doc); err != nil {
		t.Fatal(err)
	}
	doc["id"] = fmt.Sprintf("workflow-%s-%s-%d", id, status, time.Now().UnixNano())
	doc["type"] = string(contract.TypeWorkflow)
	doc["subject"] = "/workflow/" + id + "/status/" + status
	doc["data"] = map[string]any{
		"id": id, "name": "build-and-notify", "status": status,
		"creationDate": 1741056000000, "labels": map[string]string{"team": "platform"},
	}
	out, err := json.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// A workflow event with status deleted, delivered through its Trigger's
// delivery spec (config/trigger-workflow.yaml), deletes the workflow's
// workflow-scoped claim; claims of other workflows, workflow- and
// run-scoped, are untouched; another status and a redelivery change
// nothing.
func TestWorkflowDeletedDeletesClaims(t *testing.T) {
	s := newStack(t, nil)
	const (
		otherWorkflow = "65a1f0c2e4b0a1b2c3d4e5f9"
		otherRun      = "65a1f0d9e4b0a1b2c3d4e602"
	)
	s.deliverCase("ready run of the deleted workflow", event(t, workflowRunFixture,
		withRun(runID, workflowID, `[{"name":"cache","type":"workflow","spec":{"size":"2Gi","mountPath":"/workspace/cache"}}]`)))
	s.deliverCase("ready run of another workflow", event(t, workflowRunFixture,
		withRun(otherRun, otherWorkflow, `[{"name":"cache","type":"workflow","spec":{}},{"name":"scratch","type":"workflowrun","spec":{}}]`)))

	gone := tekton.PVCName("bmrg-flow", contract.ScopeWorkflow, workflowID)
	kept := map[string]string{
		"another workflow's workflow-scoped claim": tekton.PVCName("bmrg-flow", contract.ScopeWorkflow, otherWorkflow),
		"another workflow's run-scoped claim":      tekton.PVCName("bmrg-flow", contract.ScopeWorkflowRun, otherRun),
	}
	// checkKept fails the test, naming the step, unless every kept claim
	// exists and is not being deleted.
	checkKept := func(step string) {
		t.Helper()
		for what, name := range kept {
			p, err := s.pvc(name)
			switch {
			case err != nil:
				t.Errorf("%s: %s %s: %v", step, what, name, err)
			case p == nil:
				t.Errorf("%s: %s %s is gone", step, what, name)
			case p.DeletionTimestamp != nil:
				t.Errorf("%s: %s %s is being deleted", step, what, name)
			}
		}
	}
	if p, err := s.pvc(gone); err != nil || p == nil || p.DeletionTimestamp != nil {
		t.Fatalf("after the ready events: the workflow's claim %s: %v (err %v), want it made", gone, p, err)
	}
	checkKept("after the ready events")
	for _, id := range []string{runID, otherRun} {
		if n := len(s.calls(enginestub.KindWorkflowRunStart, id)); n != 1 {
			t.Errorf("after the ready events: %d accepted workflowrun starts for %s, want 1", n, id)
		}
	}

	// A status other than deleted leaves the claims alone.
	s.deliverCase("workflow event with status active", workflowEvent(t, workflowID, "active"))
	if p, err := s.pvc(gone); err != nil || p == nil || p.DeletionTimestamp != nil {
		t.Errorf("after status active: the workflow's claim %s: %v (err %v), want it kept", gone, p, err)
	}
	checkKept("after status active")

	s.deliverCase("workflow event with status deleted", workflowEvent(t, workflowID, "deleted"))
	// The claim may wait for the kubernetes.io/pvc-protection finalizer.
	wait.Eventually(s.t, 30*time.Second, "status deleted: the workflow's claim "+gone+" to be deleted", func() (bool, error) {
		p, err := s.pvc(gone)
		return err == nil && (p == nil || p.DeletionTimestamp != nil), err
	})
	checkKept("after status deleted")

	// A redelivery is answered 2xx and deletes nothing else.
	s.deliverCase("redelivered workflow event with status deleted", workflowEvent(t, workflowID, "deleted"))
	checkKept("after the redelivery")
	for _, id := range []string{runID, otherRun} {
		if n := len(s.calls(enginestub.KindWorkflowRunFinalize, id)); n != 0 {
			t.Errorf("workflow deleted: %d workflowrun finalizes for %s, want none", n, id)
		}
	}
	s.noViolations()
}
