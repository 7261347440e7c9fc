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

	"github.com/boomerang-io/flow-tekton-handler/internal/contract"
	"github.com/boomerang-io/flow-tekton-handler/internal/engine"
	pipelinev1 "github.com/boomerang-io/flow-tekton-handler/internal/pipelinev1"
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
	// Skip: not ours, not finished, cancelled on the Engine's behalf, or
	// already reported. Report.Left says what the sink still does.
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

// Leftover is what a Skip leaves the sink to do for a TaskRun.
type Leftover int

// Leftovers.
const (
	// Nothing: not ours, or not finished (a later event or sweep looks
	// again). Also the Left of every ReportEnd.
	Nothing Leftover = iota
	// Release: ours, finished or deleted, and owed no end call (cancelled
	// for the Engine, or reported with the mark incomplete): the sink marks
	// it skipped, which releases it and keeps the sweep from listing it.
	Release
	// Done: it carries the sink's reported mark (see Marked); at most its
	// deletion under the policy is left.
	Done
)

// Report is what Decide found for one TaskRun: with ReportEnd, the end
// call owed; with a Skip, in Left, what is left for the sink to do.
type Report struct {
	// TaskRunRef is the Engine's TaskRun id (label boomerang.io/taskrun-ref).
	TaskRunRef string
	// Name and Namespace identify the Tekton TaskRun.
	Name, Namespace string
	// End is the body of the end call.
	End engine.EndRequest
	// Succeeded is true when the TaskRun succeeded.
	Succeeded bool
	// Left is what a Skip leaves the sink to do; Nothing for a ReportEnd.
	Left Leftover
}

// Decide tells whether tr, a TaskRun of any origin (event or apiserver),
// needs an end call for product, builds its body, and gives the reason in
// a few words for the logs. It is the one judge of what the sink reports;
// the sink only asks the Engine, for a TaskRun deleted while pending,
// whether the start its end is owed for ever landed. The outcome comes from
// the Succeeded condition; a Tekton timeout or a cancellation nobody asked
// for through the Engine is reported as failed, never as cancelled or
// timedout.
func Decide(tr *pipelinev1.TaskRun, product string) (Decision, Report, string) {
	if tr == nil {
		return Skip, Report{}, "no taskrun"
	}
	if why := notOurs(tr, product); why != "" {
		return Skip, Report{}, why
	}
	rep := Report{TaskRunRef: tr.Labels[contract.LabelTaskRunRef], Name: tr.Name, Namespace: tr.Namespace}
	c := tr.Status.GetCondition(pipelinev1.ConditionSucceeded)
	switch {
	case !final(c) && tr.DeletionTimestamp == nil:
		return Skip, rep, "not finished"
	case Marked(tr):
		rep.Left = Done
		return Skip, rep, "already reported"
	case reported(tr):
		rep.Left = Release
		return Skip, rep, "already reported"
	case !final(c):
		return decideDeleted(tr, rep)
	}
	return decideFinished(tr, c, rep)
}

// decideDeleted decides for a TaskRun of ours deleted before it finished:
// Tekton stops reconciling it, so it never will; the Engine hears that it
// failed, and why, unless it was cancelled for the Engine, which has
// nothing to hear. One still pending (never released to Tekton) is owed
// this only if the Engine's start landed: the caller asks the Engine.
func decideDeleted(tr *pipelinev1.TaskRun, rep Report) (Decision, Report, string) {
	if cancelledForEngine(tr) {
		rep.Left = Release
		return Skip, rep, "deleted while cancelled"
	}
	rep.End = failedEnd(ReasonDeleted, "The TaskRun was deleted before it finished.")
	if tr.IsPending() {
		return ReportEnd, rep, "deleted before it ran"
	}
	return ReportEnd, rep, "deleted while running"
}

// decideFinished decides for a finished TaskRun of ours, whose Succeeded
// condition c is final.
func decideFinished(tr *pipelinev1.TaskRun, c *pipelinev1.Condition, rep Report) (Decision, Report, string) {
	if c.IsTrue() {
		rep.Succeeded = true
		rep.End = engine.EndRequest{
			Status:        engine.StatusSucceeded,
			Results:       results(tr.Status.Results),
			StatusMessage: fmt.Sprintf("Task (%s) has been executed successfully.", rep.TaskRunRef),
		}
		return ReportEnd, rep, "succeeded"
	}
	if c.Reason == pipelinev1.TaskRunReasonCancelled.String() && cancelledForEngine(tr) {
		rep.Left = Release
		return Skip, rep, "cancelled for the Engine"
	}
	rep.End = failedEnd(c.Reason, c.Message)
	return ReportEnd, rep, "failed: " + rep.End.StatusMessage
}

// Finished tells whether tr is a TaskRun of product's whose Succeeded
// condition is final: the only kind a Tekton event is worth reading the
// TaskRun for. Decide judges the TaskRun read; a deleted one, of which
// Tekton sends no event, is the sweep's.
func Finished(tr *pipelinev1.TaskRun, product string) bool {
	return tr != nil && notOurs(tr, product) == "" && final(tr.Status.GetCondition(pipelinev1.ConditionSucceeded))
}

// notOurs tells, in a few words, why tr is not a TaskRun of product's (it
// lacks the Engine's id, or is another product's); "" when it is.
func notOurs(tr *pipelinev1.TaskRun, product string) string {
	if tr.Labels[contract.LabelTaskRunRef] == "" {
		return "not ours: no " + contract.LabelTaskRunRef + " label"
	}
	if p := tr.Labels[contract.LabelProduct]; p != product {
		return fmt.Sprintf("not ours: product %q", p)
	}
	return ""
}

// final tells whether a Succeeded condition is set and not Unknown.
func final(c *pipelinev1.Condition) bool {
	return c != nil && !c.IsUnknown()
}

// Marked tells whether tr carries the sink's reported mark: the
// boomerang.io/reported label, set with its annotation in one patch.
func Marked(tr *pipelinev1.TaskRun) bool {
	return tr.Labels[contract.LabelReported] != ""
}

// reported tells whether tr carries any part of a reported mark.
func reported(tr *pipelinev1.TaskRun) bool {
	_, annotated := tr.Annotations[contract.AnnotationReported]
	_, labelled := tr.Labels[contract.LabelReported]
	return annotated || labelled
}

// cancelledForEngine tells whether the handler cancelled tr on the
// Engine's behalf (annotation boomerang.io/cancelled).
func cancelledForEngine(tr *pipelinev1.TaskRun) bool {
	_, ok := tr.Annotations[contract.AnnotationCancelled]
	return ok
}

// failedEnd is the end call of a failed TaskRun.
func failedEnd(reason, message string) engine.EndRequest {
	return engine.EndRequest{Status: engine.StatusFailed, Results: []engine.Result{}, StatusMessage: failureMessage(reason, message)}
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

func canonicalPolicy(s string) string { return contract.DeletionPolicy(strings.TrimSpace(s)) }

// ShouldDelete tells whether a reported TaskRun is deleted under policy:
// Always deletes, OnSuccess deletes successes only, anything else keeps it.
func ShouldDelete(policy string, succeeded bool) bool {
	switch canonicalPolicy(policy) {
	case contract.DeletionAlways:
		return true
	case contract.DeletionOnSuccess:
		return succeeded
	}
	return false
}
