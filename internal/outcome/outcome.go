// Package outcome reads Tekton's TaskRun CloudEvents for the sink: it
// decodes the event data, whatever TaskRun version it carries, and decides
// whether a TaskRun's state calls for an Engine end call and with which
// body. It does no I/O.
package outcome

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"unicode"

	pipelinev1 "github.com/tektoncd/pipeline/pkg/apis/pipeline/v1"
	"knative.dev/pkg/apis"

	"github.com/boomerang-io/flow-tekton-handler/internal/config"
	"github.com/boomerang-io/flow-tekton-handler/internal/contract"
	"github.com/boomerang-io/flow-tekton-handler/internal/engine"
)

// EventType is a CloudEvent type Tekton sends for a TaskRun.
type EventType string

// Tekton's TaskRun event types (tektoncd/pipeline
// pkg/reconciler/events/cloudevent/cloudevent.go).
const (
	TaskRunQueued     EventType = "dev.tekton.event.taskrun.queued.v1"
	TaskRunStarted    EventType = "dev.tekton.event.taskrun.started.v1"
	TaskRunRunning    EventType = "dev.tekton.event.taskrun.running.v1"
	TaskRunUnknown    EventType = "dev.tekton.event.taskrun.unknown.v1"
	TaskRunSuccessful EventType = "dev.tekton.event.taskrun.successful.v1"
	TaskRunFailed     EventType = "dev.tekton.event.taskrun.failed.v1"
)

// ErrInvalid marks event data that is not a TaskRun event. It is the
// contract package's sentinel, so the sink answers 400 for it.
var ErrInvalid = contract.ErrInvalid

func invalid(field, format string, args ...any) error {
	return &contract.FieldError{Field: field, Reason: fmt.Sprintf(format, args...)}
}

// Decode reads the data of a Tekton TaskRun event, {"taskRun": {...}}.
// Tekton sends the TaskRun converted to tekton.dev/v1beta1, whose results
// are status.taskResults; a tekton.dev/v1 status.results is accepted as
// well, and taskResults win when both are present. Unknown fields are
// ignored. Errors match ErrInvalid and name the field.
func Decode(data []byte) (*pipelinev1.TaskRun, error) {
	var env struct {
		TaskRun json.RawMessage `json:"taskRun"`
	}
	if err := json.Unmarshal(data, &env); err != nil {
		return nil, invalid("data", "not a JSON object: %v", err)
	}
	raw := bytes.TrimSpace(env.TaskRun)
	if len(raw) == 0 || bytes.Equal(raw, []byte("null")) {
		return nil, invalid("data.taskRun", "required")
	}
	if raw[0] != '{' {
		return nil, invalid("data.taskRun", "not an object")
	}
	tr := &pipelinev1.TaskRun{}
	if err := json.Unmarshal(raw, tr); err != nil {
		return nil, typeError("data.taskRun", err)
	}
	var beta struct {
		Status struct {
			TaskResults []pipelinev1.TaskRunResult `json:"taskResults"`
		} `json:"status"`
	}
	if err := json.Unmarshal(raw, &beta); err != nil {
		return nil, typeError("data.taskRun", err)
	}
	if len(beta.Status.TaskResults) > 0 {
		tr.Status.Results = beta.Status.TaskResults
	}
	if tr.Name == "" {
		return nil, invalid("data.taskRun.metadata.name", "required")
	}
	return tr, nil
}

// typeError names the field of a JSON type mismatch when it can.
func typeError(prefix string, err error) error {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) && te.Field != "" {
		// Field names embedded Go structs too (status.Status.conditions);
		// JSON keys of Kubernetes objects start in lower case.
		var keys []string
		for _, k := range strings.Split(te.Field, ".") {
			if k != "" && !unicode.IsUpper(rune(k[0])) {
				keys = append(keys, k)
			}
		}
		return invalid(strings.Join(append([]string{prefix}, keys...), "."), "%s is not a valid %s", te.Value, te.Type)
	}
	return invalid(prefix, "%v", err)
}

// ReasonDeleted starts the failure message of a TaskRun deleted while it
// ran.
const ReasonDeleted = "TaskRunDeleted"

// Decision is what the sink does with a TaskRun.
type Decision int

// Decisions.
const (
	// Skip: not ours, not finished, cancelled on the Engine's behalf,
	// deleted before it ran, or already reported.
	Skip Decision = iota
	// ReportEnd: send the Engine the end call in Report.End.
	ReportEnd
)

func (d Decision) String() string {
	if d == ReportEnd {
		return "report-end"
	}
	return "skip"
}

// Report is the end call owed for one finished TaskRun.
type Report struct {
	// TaskRunRef is the Engine's TaskRun id (label boomerang.io/taskrun-ref).
	TaskRunRef string
	// Name and Namespace identify the Tekton TaskRun.
	Name, Namespace string
	// End is the body of the end call.
	End engine.EndRequest
	// Succeeded is true when the TaskRun succeeded.
	Succeeded bool
}

// Decide tells whether tr, a TaskRun of any origin (event or apiserver),
// needs an end call for product, builds its body, and gives the reason in
// a few words for the logs. The outcome comes from the Succeeded condition;
// a Tekton timeout or a cancellation nobody asked for through the Engine is
// reported as failed, never as cancelled or timedout.
func Decide(tr *pipelinev1.TaskRun, product string) (Decision, Report, string) {
	if tr == nil {
		return Skip, Report{}, "no taskrun"
	}
	ref := tr.Labels[contract.LabelTaskRunRef]
	if ref == "" {
		return Skip, Report{}, "not ours: no " + contract.LabelTaskRunRef + " label"
	}
	if p := tr.Labels[contract.LabelProduct]; p != product {
		return Skip, Report{}, fmt.Sprintf("not ours: product %q", p)
	}
	rep := Report{TaskRunRef: ref, Name: tr.Name, Namespace: tr.Namespace}
	if _, ok := tr.Annotations[contract.AnnotationReported]; ok {
		return Skip, rep, "already reported"
	}
	if _, ok := tr.Labels[contract.LabelReported]; ok {
		return Skip, rep, "already reported"
	}
	_, cancelledByUs := tr.Annotations[contract.AnnotationCancelled]
	c := tr.Status.GetCondition(apis.ConditionSucceeded)
	if c == nil || c.IsUnknown() {
		switch {
		case tr.DeletionTimestamp == nil:
			return Skip, rep, "not finished"
		case cancelledByUs:
			// Cancelled for the Engine: it has nothing to hear.
			return Skip, rep, "deleted while cancelled"
		}
		// Deleted before it finished: Tekton stops reconciling it, so it
		// never will; the Engine hears that it failed, and why. One still
		// pending (never released to Tekton) is owed this only if the
		// Engine's start landed: the caller asks the Engine.
		rep.End = engine.EndRequest{
			Status:        engine.StatusFailed,
			Results:       []engine.Result{},
			StatusMessage: failureMessage(ReasonDeleted, "The TaskRun was deleted before it finished."),
		}
		if tr.IsPending() {
			return ReportEnd, rep, "deleted before it ran"
		}
		return ReportEnd, rep, "deleted while running"
	}
	if c.IsTrue() {
		rep.Succeeded = true
		rep.End = engine.EndRequest{
			Status:        engine.StatusSucceeded,
			Results:       results(tr.Status.Results),
			StatusMessage: fmt.Sprintf("Task (%s) has been executed successfully.", ref),
		}
		return ReportEnd, rep, "succeeded"
	}
	if c.Reason == pipelinev1.TaskRunReasonCancelled.String() && cancelledByUs {
		return Skip, rep, "cancelled for the Engine"
	}
	rep.End = engine.EndRequest{
		Status:        engine.StatusFailed,
		Results:       []engine.Result{},
		StatusMessage: failureMessage(c.Reason, c.Message),
	}
	return ReportEnd, rep, "failed: " + rep.End.StatusMessage
}

// failureMessage is "<reason>: <message>", or whichever of the two is set.
func failureMessage(reason, message string) string {
	reason, message = strings.TrimSpace(reason), strings.TrimSpace(message)
	switch {
	case reason == "" && message == "":
		return "Failed"
	case reason == "":
		return message
	case message == "":
		return reason
	}
	return reason + ": " + message
}

// results converts Tekton results to the Engine's: string values unchanged,
// array and object values as JSON. It never returns nil.
func results(rs []pipelinev1.TaskRunResult) []engine.Result {
	out := make([]engine.Result, 0, len(rs))
	for _, r := range rs {
		out = append(out, engine.Result{Name: r.Name, Value: value(r.Value)})
	}
	return out
}

func value(v pipelinev1.ResultValue) json.RawMessage {
	var x any = v.StringVal
	switch {
	case v.Type == pipelinev1.ParamTypeArray || (v.Type == "" && v.ArrayVal != nil):
		x = v.ArrayVal
		if v.ArrayVal == nil {
			x = []string{}
		}
	case v.Type == pipelinev1.ParamTypeObject || (v.Type == "" && v.ObjectVal != nil):
		x = v.ObjectVal
		if v.ObjectVal == nil {
			x = map[string]string{}
		}
	}
	b, err := json.Marshal(x)
	if err != nil { // strings, string slices and maps always marshal
		return json.RawMessage(`null`)
	}
	return b
}

// DeletionPolicy returns the TaskRun's deletion policy from its
// boomerang.io/deletion annotation (Never, OnSuccess or Always, any case),
// or def when the annotation is absent or not one of those.
func DeletionPolicy(tr *pipelinev1.TaskRun, def string) string {
	if tr == nil {
		return def
	}
	if p := canonicalPolicy(tr.Annotations[contract.AnnotationDeletion]); p != "" {
		return p
	}
	return def
}

func canonicalPolicy(s string) string {
	s = strings.TrimSpace(s)
	for _, p := range []string{config.DeletionNever, config.DeletionOnSuccess, config.DeletionAlways} {
		if strings.EqualFold(s, p) {
			return p
		}
	}
	return ""
}

// ShouldDelete tells whether a reported TaskRun is deleted under policy:
// Always deletes, OnSuccess deletes successes only, anything else keeps it.
func ShouldDelete(policy string, succeeded bool) bool {
	switch canonicalPolicy(policy) {
	case config.DeletionAlways:
		return true
	case config.DeletionOnSuccess:
		return succeeded
	}
	return false
}
