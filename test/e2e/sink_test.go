//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/boomerang-io/flow-tekton-handler/internal/engine"
	"github.com/boomerang-io/flow-tekton-handler/internal/tekton"
	"github.com/boomerang-io/flow-tekton-handler/test/enginestub"
	"github.com/boomerang-io/flow-tekton-handler/test/wait"
)

// waitEnd waits for the Engine to accept one end call for id and returns
// it.
func (s *stack) waitEnd(id string, timeout time.Duration) *engine.EndRequest {
	s.t.Helper()
	wait.Eventually(s.t, timeout, "the end call for "+id, func() (bool, error) {
		return len(s.calls(enginestub.KindTaskRunEnd, id)) > 0, nil
	})
	return s.calls(enginestub.KindTaskRunEnd, id)[0].End
}

func resultsOf(t *testing.T, end *engine.EndRequest) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, r := range end.Results {
		var v string
		if err := json.Unmarshal(r.Value, &v); err != nil {
			t.Fatalf("result %s: %s", r.Name, r.Value)
		}
		out[r.Name] = v
	}
	return out
}

// A TaskRun made by the handler ends; Tekton's events controller tells the
// sink; the Engine gets one start (from the handler) and one end with the
// results Tekton parsed from the step's termination message.
func TestSuccessReportsResults(t *testing.T) {
	s := newStack(t, nil)
	s.startSink()
	s.mustPost(event(t, "engine-taskrun-template-ready.json", withLabels(map[string]string{
		"ktest.dev/result-name": "ts", "ktest.dev/result-value": "1741056090.123456",
	})))
	end := s.waitEnd(templateID, time.Minute)
	if end.Status != engine.StatusSucceeded {
		t.Fatalf("end status %q", end.Status)
	}
	if got := resultsOf(t, end)["ts"]; got != "1741056090.123456" {
		t.Fatalf("result ts = %q, want the value Tekton parsed", got)
	}
	// The task's own spec.deletion (OnSuccess) wins over DELETION_POLICY
	// (Never by default): the reported TaskRun goes.
	s.waitGone(templateID, "the reported TaskRun to be deleted", 10*time.Second)
	// Tekton sends several events per TaskRun; still one end.
	time.Sleep(time.Second)
	if n := len(s.calls(enginestub.KindTaskRunStart, templateID)); n != 1 {
		t.Errorf("%d starts", n)
	}
	if n := len(s.calls(enginestub.KindTaskRunEnd, templateID)); n != 1 {
		t.Errorf("%d ends", n)
	}
	s.noViolations()
}

// A failing step ends failed with Tekton's reason and message.
func TestFailureReportsMessage(t *testing.T) {
	s := newStack(t, nil)
	s.startSink()
	s.mustPost(event(t, "engine-taskrun-custom-ready.json", withLabels(map[string]string{"ktest.dev/outcome": "fail"})))
	end := s.waitEnd(customID, time.Minute)
	if end.Status != engine.StatusFailed || !strings.HasPrefix(end.StatusMessage, "StepFailed: ") || !strings.Contains(end.StatusMessage, "exited with code 1") {
		t.Fatalf("end %+v, want failed with Tekton's reason and message", end)
	}
	s.noViolations()
}

// The Engine answers 503 for 30 seconds; Tekton's few retries run out, the
// sink's sweep keeps trying, and the end arrives once the Engine is back.
func TestEngineOutageRecovers(t *testing.T) {
	s := newStack(t, map[string]string{"SWEEP_INTERVAL": "2s", "ENGINE_RETRY_BUDGET": "3s", "ENGINE_TIMEOUT": "1s"})
	s.startSink()
	s.mustPost(event(t, "engine-taskrun-template-ready.json")) // start is accepted before the outage
	s.engine.FailFor(30*time.Second, http.StatusServiceUnavailable)
	began := time.Now()
	s.waitDone(name(templateID), time.Minute)
	end := s.waitEnd(templateID, 90*time.Second)
	if since := time.Since(began); since < 25*time.Second {
		t.Fatalf("end accepted after %s, inside the outage", since)
	}
	if end.Status != engine.StatusSucceeded {
		t.Fatalf("end %+v", end)
	}
	time.Sleep(3 * time.Second) // another sweep tick
	if n := len(s.calls(enginestub.KindTaskRunEnd, templateID)); n != 1 {
		t.Fatalf("%d accepted ends, want 1", n)
	}
	s.noViolations()
}

// The Engine first stops answering in time (every request held 3 s against
// ENGINE_TIMEOUT=1s), then answers 500 a few times, then recovers: the sink
// gives up on each slow attempt, retries through both faults, and the end
// is accepted exactly once.
func TestEngineTimeoutsAndErrorsRecover(t *testing.T) {
	s := newStack(t, map[string]string{"SWEEP_INTERVAL": "2s", "ENGINE_RETRY_BUDGET": "3s", "ENGINE_TIMEOUT": "1s"})
	s.startSink()
	s.mustPost(event(t, "engine-taskrun-custom-ready.json")) // start is accepted before the faults
	s.engine.Delay(3 * time.Second)
	s.waitDone(name(customID), time.Minute)
	// Wait until the sink has given up on at least two slow attempts.
	wait.Eventually(s.t, 30*time.Second, "abandoned end attempts", func() (bool, error) {
		return len(s.attempts(customID, 0)) >= 2, nil
	})
	if n := len(s.calls(enginestub.KindTaskRunEnd, customID)); n != 0 {
		t.Fatalf("%d ends accepted while every answer came after the client's timeout", n)
	}
	s.engine.FailNext(3, http.StatusInternalServerError)
	s.engine.Delay(0)
	end := s.waitEnd(customID, time.Minute)
	if end.Status != engine.StatusSucceeded {
		t.Fatalf("end %+v", end)
	}
	time.Sleep(3 * time.Second) // another sweep tick and any Tekton retry
	timedOut, failed := len(s.attempts(customID, 0)), len(s.attempts(customID, http.StatusInternalServerError))
	if n := len(s.calls(enginestub.KindTaskRunEnd, customID)); n != 1 {
		t.Fatalf("%d accepted ends, want 1 (after %d timed-out and %d failed attempts)", n, timedOut, failed)
	}
	if failed == 0 {
		t.Fatalf("no end attempt was answered 500: the 500 phase was not exercised")
	}
	t.Logf("one end after %d timed-out and %d 500 attempts", timedOut, failed)
	s.noViolations()
}

// attempts returns the end calls for id that got status (0: the client gave
// up before the answer).
func (s *stack) attempts(id string, status int) []enginestub.Call {
	var out []enginestub.Call
	for _, c := range s.engine.CallsFor(id) {
		if c.Kind == enginestub.KindTaskRunEnd && c.Status == status {
			out = append(out, c)
		}
	}
	return out
}

// The sink is down when the TaskRun ends; its events are lost; the sweep
// reports it when the sink is back.
func TestSweepAfterSinkDowntime(t *testing.T) {
	s := newStack(t, nil)
	sink := s.startSink()
	if err := sink.Stop(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	s.mustPost(event(t, "engine-taskrun-custom-ready.json"))
	s.waitDone(name(customID), time.Minute)
	time.Sleep(2 * time.Second) // Tekton's retries to the dead sink run out
	if n := len(s.calls(enginestub.KindTaskRunEnd, customID)); n != 0 {
		t.Fatalf("end arrived while the sink was down")
	}
	s.startSink() // its start-up sweep finds the TaskRun
	end := s.waitEnd(customID, 30*time.Second)
	if end.Status != engine.StatusSucceeded {
		t.Fatalf("end %+v", end)
	}
	s.noViolations()
}

// The sink's DELETION_POLICY=OnSuccess removes the TaskRun and its
// ConfigMap after the end is reported, whatever the handler's own setting:
// the handler stamps only a task's own policy.
func TestDeletionOnSuccess(t *testing.T) {
	s := newStack(t, map[string]string{"DELETION_POLICY": "Never"}) // the handler's
	s.env["DELETION_POLICY"] = "OnSuccess"                          // the sink's
	s.startSink()
	s.mustPost(event(t, "engine-taskrun-custom-ready.json")) // no spec.deletion: config decides
	s.waitEnd(customID, time.Minute)
	wait.Eventually(s.t, 30*time.Second, "the TaskRun and ConfigMap to be deleted", func() (bool, error) {
		_, err := s.taskRun(name(customID))
		if !apierrors.IsNotFound(err) {
			return false, err
		}
		_, err = s.kube.CoreV1().ConfigMaps(s.ns).Get(context.Background(), tekton.ConfigMapName("bmrg-flow", customID), metav1.GetOptions{})
		return apierrors.IsNotFound(err), err
	})
	s.noViolations()
}
