package outcome

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/boomerang-io/flow-tekton-handler/internal/contract"
	"github.com/boomerang-io/flow-tekton-handler/internal/engine"
	pipelinev1 "github.com/boomerang-io/flow-tekton-handler/internal/pipelinev1"
	"github.com/boomerang-io/flow-tekton-handler/test/fixtures"
)

const (
	product = "bmrg-flow"
	ref     = "65a1f1a0e4b0a1b2c3d4e610"
	trName  = "bmrg-flow-task-65a1f1a0e4b0a1b2c3d4e610"
)

// edited returns the data of fixture name after edit changed its taskRun.
func edited(t *testing.T, name string, edit func(tr map[string]any)) []byte {
	t.Helper()
	var data map[string]any
	if err := json.Unmarshal(fixtures.Data(t, name), &data); err != nil {
		t.Fatal(err)
	}
	edit(data["taskRun"].(map[string]any))
	b, err := json.Marshal(data)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func obj(m map[string]any, key string) map[string]any { return m[key].(map[string]any) }

func setCondition(status, reason, message string) func(map[string]any) {
	return func(tr map[string]any) {
		obj(tr, "status")["conditions"] = []any{map[string]any{
			"type": "Succeeded", "status": status, "reason": reason, "message": message,
			"lastTransitionTime": "2025-03-04T02:41:31Z",
		}}
	}
}

func all(edits ...func(map[string]any)) func(map[string]any) {
	return func(tr map[string]any) {
		for _, e := range edits {
			e(tr)
		}
	}
}

// deleting gives the TaskRun a deletion timestamp, as a delete does to one
// that carries a finalizer.
func deleting(tr map[string]any) {
	obj(tr, "metadata")["deletionTimestamp"] = "2025-03-04T02:41:40Z"
}

func annotate(key, value string) func(map[string]any) {
	return func(tr map[string]any) { obj(obj(tr, "metadata"), "annotations")[key] = value }
}

// endBody reads the body of an Engine callback fixture.
func endBody(t *testing.T, name string) engine.EndRequest {
	t.Helper()
	var body engine.EndRequest
	if err := json.Unmarshal(fixtures.Callback(t, name).Body, &body); err != nil {
		t.Fatal(err)
	}
	return body
}

func TestDecide(t *testing.T) {
	t.Parallel()
	succeeded := endBody(t, "engine-callback-end-succeeded.json")
	succeeded.StatusMessage = "" // any non-empty text; checked separately
	failed := endBody(t, "engine-callback-end-failed.json")
	report := func(end engine.EndRequest, ok bool) Report {
		return Report{TaskRunRef: ref, Name: trName, Namespace: "bmrg-flow", End: end, Succeeded: ok}
	}
	failedWith := func(msg string) Report {
		return report(engine.EndRequest{Status: engine.StatusFailed, Results: []engine.Result{}, StatusMessage: msg}, false)
	}
	succeededWith := func(results ...engine.Result) Report {
		return report(engine.EndRequest{Status: engine.StatusSucceeded, Results: append([]engine.Result{}, results...)}, true)
	}
	res := func(name, value string) engine.Result {
		return engine.Result{Name: name, Value: json.RawMessage(value)}
	}

	tests := []struct {
		name    string
		data    []byte
		product string
		want    Decision
		report  Report // compared when want is ReportEnd; StatusMessage of a success only checked non-empty
		reason  string // substring of the reason
	}{
		{
			name: "started is not finished",
			data: fixtures.Data(t, "tekton-taskrun-started.json"),
			want: Skip, reason: "not finished",
		},
		{
			name: "queued has no condition",
			data: edited(t, "tekton-taskrun-started.json", func(tr map[string]any) { delete(obj(tr, "status"), "conditions") }),
			want: Skip, reason: "not finished",
		},
		{
			name: "reported but still running is not finished",
			data: edited(t, "tekton-taskrun-started.json", annotate(contract.AnnotationReported, "2025-03-04T02:41:32Z")),
			want: Skip, reason: "not finished",
		},
		{
			name: "deleted while running is reported failed",
			data: edited(t, "tekton-taskrun-started.json", deleting),
			want: ReportEnd, report: failedWith(ReasonDeleted + ": The TaskRun was deleted before it finished."), reason: "deleted while running",
		},
		{
			name: "deleted while pending: owed only if the Engine's start landed",
			data: edited(t, "tekton-taskrun-started.json", all(deleting, func(tr map[string]any) {
				delete(obj(tr, "status"), "conditions")
				obj(tr, "spec")["status"] = "TaskRunPending"
			})),
			want: ReportEnd, report: failedWith(ReasonDeleted + ": The TaskRun was deleted before it finished."), reason: "deleted before it ran",
		},
		{
			name: "deleted while being cancelled for the Engine",
			data: edited(t, "tekton-taskrun-started.json", all(deleting, annotate(contract.AnnotationCancelled, "true"))),
			want: Skip, reason: "deleted while cancelled",
		},
		{
			name: "deleted after it finished is reported as it finished",
			data: edited(t, "tekton-taskrun-failed.json", deleting),
			want: ReportEnd, report: failedWith(`Failed: "step-task" exited with code 2`), reason: "failed",
		},
		{
			name: "deleted after the report",
			data: edited(t, "tekton-taskrun-started.json", all(deleting, annotate(contract.AnnotationReported, "2025-03-04T02:41:32Z"))),
			want: Skip, reason: "already reported",
		},
		{
			name: "successful with two results",
			data: fixtures.Data(t, "tekton-taskrun-successful-two-results.json"),
			want: ReportEnd, report: report(succeeded, true), reason: "succeeded",
		},
		{
			name: "failed",
			data: fixtures.Data(t, "tekton-taskrun-failed.json"),
			want: ReportEnd, report: report(failed, false), reason: "failed",
		},
		{
			name: "timed out is failed with its reason",
			data: edited(t, "tekton-taskrun-failed.json",
				setCondition("False", "TaskRunTimeout", `TaskRun "bmrg-flow-task-65a1f1a0e4b0a1b2c3d4e610" failed to finish within "30m0s"`)),
			want:   ReportEnd,
			report: failedWith(`TaskRunTimeout: TaskRun "bmrg-flow-task-65a1f1a0e4b0a1b2c3d4e610" failed to finish within "30m0s"`),
		},
		{
			name: "cancelled for the Engine is skipped",
			data: edited(t, "tekton-taskrun-failed.json", all(
				setCondition("False", "TaskRunCancelled", `TaskRun "x" was cancelled. Engine: cancelled`),
				annotate(contract.AnnotationCancelled, "2025-03-04T02:41:20Z"))),
			want: Skip, reason: "cancelled",
		},
		{
			name: "cancelled by someone else is failed",
			data: edited(t, "tekton-taskrun-failed.json",
				setCondition("False", "TaskRunCancelled", `TaskRun "x" was cancelled. `)),
			want:   ReportEnd,
			report: failedWith(`TaskRunCancelled: TaskRun "x" was cancelled.`),
		},
		{
			name: "cancel mark on a task that failed by itself is still reported",
			data: edited(t, "tekton-taskrun-failed.json", annotate(contract.AnnotationCancelled, "true")),
			want: ReportEnd, report: report(failed, false),
		},
		{
			name: "failed without a message gives the reason",
			data: edited(t, "tekton-taskrun-failed.json", setCondition("False", "TaskRunImagePullFailed", "")),
			want: ReportEnd, report: failedWith("TaskRunImagePullFailed"),
		},
		{
			name: "failed without reason or message",
			data: edited(t, "tekton-taskrun-failed.json", setCondition("False", "", "")),
			want: ReportEnd, report: failedWith("Failed"),
		},
		{
			name: "Succeeded condition is found when not first",
			data: edited(t, "tekton-taskrun-failed.json", func(tr map[string]any) {
				st := obj(tr, "status")
				st["conditions"] = append([]any{map[string]any{"type": "Ready", "status": "True"}}, st["conditions"].([]any)...)
			}),
			want: ReportEnd, report: report(failed, false),
		},
		{
			name:    "not ours: other product",
			data:    fixtures.Data(t, "tekton-taskrun-successful-two-results.json"),
			product: "other-flow",
			want:    Skip, reason: "not ours",
		},
		{
			name: "not ours: no taskrun-ref label",
			data: edited(t, "tekton-taskrun-successful-two-results.json", func(tr map[string]any) {
				delete(obj(obj(tr, "metadata"), "labels"), contract.LabelTaskRunRef)
			}),
			want: Skip, reason: "not ours",
		},
		{
			name: "not ours: no labels at all",
			data: edited(t, "tekton-taskrun-successful-two-results.json", func(tr map[string]any) {
				delete(obj(tr, "metadata"), "labels")
			}),
			want: Skip, reason: "not ours",
		},
		{
			name: "already reported (annotation)",
			data: edited(t, "tekton-taskrun-successful-two-results.json", annotate(contract.AnnotationReported, "2025-03-04T02:41:32Z")),
			want: Skip, reason: "already reported",
		},
		{
			name: "already reported (label)",
			data: edited(t, "tekton-taskrun-failed.json", func(tr map[string]any) {
				obj(obj(tr, "metadata"), "labels")[contract.LabelReported] = "true"
			}),
			want: Skip, reason: "already reported",
		},
		{
			name: "v1-shaped results",
			data: edited(t, "tekton-taskrun-successful-two-results.json", func(tr map[string]any) {
				st := obj(tr, "status")
				st["results"] = st["taskResults"]
				delete(st, "taskResults")
			}),
			want: ReportEnd, report: report(succeeded, true),
		},
		{
			name: "taskResults win over results",
			data: edited(t, "tekton-taskrun-successful-two-results.json", func(tr map[string]any) {
				obj(tr, "status")["results"] = []any{map[string]any{"name": "stale", "value": "v1"}}
			}),
			want: ReportEnd, report: report(succeeded, true),
		},
		{
			name: "typed results are JSON values, strings unchanged",
			data: edited(t, "tekton-taskrun-successful-two-results.json", func(tr map[string]any) {
				obj(tr, "status")["taskResults"] = []any{
					map[string]any{"name": "s", "type": "string", "value": "  line 1\nline \"2\"\n"},
					map[string]any{"name": "json", "type": "string", "value": `{"a":1}`},
					map[string]any{"name": "a", "type": "array", "value": []any{"x", "y"}},
					map[string]any{"name": "o", "type": "object", "value": map[string]any{"k": "v"}},
					map[string]any{"name": "empty", "value": ""},
				}
			}),
			want: ReportEnd,
			report: succeededWith(
				res("s", `"  line 1\nline \"2\"\n"`),
				res("json", `"{\"a\":1}"`),
				res("a", `["x","y"]`),
				res("o", `{"k":"v"}`),
				res("empty", `""`),
			),
		},
		{
			name: "success without results sends an empty array",
			data: edited(t, "tekton-taskrun-successful-two-results.json", func(tr map[string]any) {
				delete(obj(tr, "status"), "taskResults")
			}),
			want: ReportEnd, report: succeededWith(),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tr, err := Decode(tt.data)
			if err != nil {
				t.Fatal(err)
			}
			p := tt.product
			if p == "" {
				p = product
			}
			got, rep, reason := Decide(tr, p)
			if got != tt.want {
				t.Fatalf("decision %s (%s), want %s", got, reason, tt.want)
			}
			if !strings.Contains(reason, tt.reason) {
				t.Errorf("reason %q does not contain %q", reason, tt.reason)
			}
			if got != ReportEnd {
				return
			}
			if s := rep.End.Status; s != engine.StatusSucceeded && s != engine.StatusFailed {
				t.Errorf("status %q", s)
			}
			if rep.Succeeded {
				if rep.End.StatusMessage == "" {
					t.Error("empty statusMessage for a success")
				}
				rep.End.StatusMessage = ""
			}
			if diff := cmp.Diff(tt.report, rep); diff != "" {
				t.Errorf("report (-want +got):\n%s", diff)
			}
		})
	}
}

// TestEndBodiesMatchFixtures compares the JSON sent to the Engine with the
// callback fixtures byte for byte after normalising whitespace.
func TestEndBodiesMatchFixtures(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, event, callback string
	}{
		{"succeeded", "tekton-taskrun-successful-two-results.json", "engine-callback-end-succeeded.json"},
		{"failed", "tekton-taskrun-failed.json", "engine-callback-end-failed.json"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tr, err := Decode(fixtures.Data(t, tt.event))
			if err != nil {
				t.Fatal(err)
			}
			d, rep, _ := Decide(tr, product)
			if d != ReportEnd {
				t.Fatalf("decision %s", d)
			}
			got, err := json.Marshal(rep.End)
			if err != nil {
				t.Fatal(err)
			}
			var want map[string]any
			if err := json.Unmarshal(fixtures.Callback(t, tt.callback).Body, &want); err != nil {
				t.Fatal(err)
			}
			var gotDoc map[string]any
			if err := json.Unmarshal(got, &gotDoc); err != nil {
				t.Fatal(err)
			}
			if rep.Succeeded {
				if s, _ := gotDoc["statusMessage"].(string); s == "" {
					t.Errorf("statusMessage %v, want non-empty text", gotDoc["statusMessage"])
				}
				gotDoc["statusMessage"] = want["statusMessage"]
			}
			if diff := cmp.Diff(want, gotDoc); diff != "" {
				t.Errorf("body (-want +got):\n%s", diff)
			}
		})
	}
}

func TestDecodeKeepsIdentity(t *testing.T) {
	t.Parallel()
	tr, err := Decode(fixtures.Data(t, "tekton-taskrun-failed.json"))
	if err != nil {
		t.Fatal(err)
	}
	want := metav1.ObjectMeta{Name: trName, Namespace: "bmrg-flow"}
	got := metav1.ObjectMeta{Name: tr.Name, Namespace: tr.Namespace}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("identity (-want +got):\n%s", diff)
	}
	if tr.Labels[contract.LabelTaskRunRef] != ref || tr.Annotations[contract.AnnotationDeletion] != "OnSuccess" {
		t.Errorf("labels %v annotations %v", tr.Labels, tr.Annotations)
	}
	if c := tr.Status.GetCondition(pipelinev1.ConditionSucceeded); c == nil || c.LastTransitionTime.IsZero() || tr.Status.PodName == "" {
		t.Errorf("status not decoded: %+v", tr.Status)
	}
}

func TestDecodeErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, data, field string
	}{
		{"not JSON", `{"taskRun":`, "data"},
		{"array", `[]`, "data"},
		{"empty", ``, "data"},
		{"no taskRun", `{"pipelineRun":{"metadata":{"name":"p"}}}`, "data.taskRun"},
		{"null taskRun", `{"taskRun":null}`, "data.taskRun"},
		{"string taskRun", `{"taskRun":"x"}`, "data.taskRun"},
		{"no name", `{"taskRun":{"metadata":{"namespace":"n"}}}`, "data.taskRun.metadata.name"},
		{"labels not a map", `{"taskRun":{"metadata":{"name":"n","labels":["a"]}}}`, "data.taskRun.metadata.labels"},
		{"conditions not a list", `{"taskRun":{"metadata":{"name":"n"},"status":{"conditions":"True"}}}`, "data.taskRun.status.conditions"},
		{"taskResults not a list", `{"taskRun":{"metadata":{"name":"n"},"status":{"taskResults":{}}}}`, "data.taskRun.status.taskResults"},
		{"bad timestamp", `{"taskRun":{"metadata":{"name":"n"},"status":{"conditions":[{"type":"Succeeded","lastTransitionTime":"yesterday"}]}}}`, "data.taskRun"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tr, err := Decode([]byte(tt.data))
			if err == nil {
				t.Fatalf("decoded %v, want an error", tr)
			}
			if tr != nil {
				t.Errorf("TaskRun %v returned with error", tr)
			}
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("err %v does not match ErrInvalid", err)
			}
			var fe *contract.FieldError
			if !errors.As(err, &fe) || fe.Field != tt.field {
				t.Errorf("err %v, want field %q", err, tt.field)
			}
		})
	}
}

func TestDecodeIgnoresUnknownFields(t *testing.T) {
	t.Parallel()
	data := `{"taskRun":{"apiVersion":"tekton.dev/v1beta1","kind":"TaskRun","metadata":{"name":"n","future":1},` +
		`"spec":{"resources":{"inputs":[]},"stepOverrides":[]},"status":{"cloudEvents":[],"novel":{"x":1}}},"extra":true}`
	tr, err := Decode([]byte(data))
	if err != nil {
		t.Fatal(err)
	}
	if tr.Name != "n" {
		t.Errorf("name %q", tr.Name)
	}
}

// mustDecode decodes event data that must decode.
func mustDecode(t *testing.T, data []byte) *pipelinev1.TaskRun {
	t.Helper()
	tr, err := Decode(data)
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

func label(key, value string) func(map[string]any) {
	return func(tr map[string]any) { obj(obj(tr, "metadata"), "labels")[key] = value }
}

// TestDecideLeftover covers what a Skip leaves the sink to do: the
// judgments the sink once made beside Decide (ours, finished or deleted,
// marked reported).
func TestDecideLeftover(t *testing.T) {
	t.Parallel()
	cancelled := all(
		setCondition("False", "TaskRunCancelled", `TaskRun "x" was cancelled. Engine: cancelled`),
		annotate(contract.AnnotationCancelled, "2025-03-04T02:41:20Z"))
	tests := []struct {
		name    string
		data    []byte
		product string
		want    Decision
		left    Leftover
	}{
		{"not ours: other product", fixtures.Data(t, "tekton-taskrun-failed.json"), "other-flow", Skip, Nothing},
		{"not ours: marked, still nothing to do", edited(t, "tekton-taskrun-failed.json", label(contract.LabelReported, "true")), "other-flow", Skip, Nothing},
		{"not finished", fixtures.Data(t, "tekton-taskrun-started.json"), product, Skip, Nothing},
		{"marked but not finished nor deleted", edited(t, "tekton-taskrun-started.json", label(contract.LabelReported, "true")), product, Skip, Nothing},
		{"marked reported", edited(t, "tekton-taskrun-failed.json", label(contract.LabelReported, "true")), product, Skip, Done},
		{"marked rejected", edited(t, "tekton-taskrun-successful-two-results.json", label(contract.LabelReported, "rejected")), product, Skip, Done},
		{"marked skipped while deleted", edited(t, "tekton-taskrun-started.json", all(deleting, label(contract.LabelReported, "skipped"))), product, Skip, Done},
		{"reported annotation without the label", edited(t, "tekton-taskrun-successful-two-results.json", annotate(contract.AnnotationReported, "2025-03-04T02:41:32Z")), product, Skip, Release},
		{"empty reported label", edited(t, "tekton-taskrun-failed.json", label(contract.LabelReported, "")), product, Skip, Release},
		{"reported annotation, deleted while running", edited(t, "tekton-taskrun-started.json", all(deleting, annotate(contract.AnnotationReported, "2025-03-04T02:41:32Z"))), product, Skip, Release},
		{"cancelled for the Engine", edited(t, "tekton-taskrun-failed.json", cancelled), product, Skip, Release},
		{"deleted while cancelled", edited(t, "tekton-taskrun-started.json", all(deleting, annotate(contract.AnnotationCancelled, "true"))), product, Skip, Release},
		{"failed", fixtures.Data(t, "tekton-taskrun-failed.json"), product, ReportEnd, Nothing},
		{"succeeded", fixtures.Data(t, "tekton-taskrun-successful-two-results.json"), product, ReportEnd, Nothing},
		{"deleted while running", edited(t, "tekton-taskrun-started.json", deleting), product, ReportEnd, Nothing},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, rep, reason := Decide(mustDecode(t, tt.data), tt.product)
			if got != tt.want || rep.Left != tt.left {
				t.Errorf("decision %s, left %d (%s), want %s, left %d", got, rep.Left, reason, tt.want, tt.left)
			}
		})
	}
}

// TestFinished covers the sink's look at a Tekton event before it reads
// the TaskRun: only a finished TaskRun of ours is worth the read.
func TestFinished(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		data    []byte
		product string
		want    bool
	}{
		{"successful", fixtures.Data(t, "tekton-taskrun-successful-two-results.json"), product, true},
		{"failed", fixtures.Data(t, "tekton-taskrun-failed.json"), product, true},
		{"cancelled for the Engine: read, Decide judges", edited(t, "tekton-taskrun-failed.json", all(
			setCondition("False", "TaskRunCancelled", "cancelled"), annotate(contract.AnnotationCancelled, "true"))), product, true},
		{"marked reported: read, Decide judges", edited(t, "tekton-taskrun-failed.json", label(contract.LabelReported, "true")), product, true},
		{"started", fixtures.Data(t, "tekton-taskrun-started.json"), product, false},
		{"running", edited(t, "tekton-taskrun-failed.json", setCondition("Unknown", "Running", "")), product, false},
		{"deleted while running: the sweep's", edited(t, "tekton-taskrun-started.json", deleting), product, false},
		{"other product", fixtures.Data(t, "tekton-taskrun-failed.json"), "other-flow", false},
		{"no taskrun-ref label", edited(t, "tekton-taskrun-failed.json", func(tr map[string]any) {
			delete(obj(obj(tr, "metadata"), "labels"), contract.LabelTaskRunRef)
		}), product, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := Finished(mustDecode(t, tt.data), tt.product); got != tt.want {
				t.Errorf("Finished %v, want %v", got, tt.want)
			}
		})
	}
	if Finished(nil, product) {
		t.Error("Finished(nil)")
	}
}

func TestMarked(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		edit func(map[string]any)
		want bool
	}{
		{"reported", label(contract.LabelReported, "true"), true},
		{"skipped", label(contract.LabelReported, "skipped"), true},
		{"empty label", label(contract.LabelReported, ""), false},
		{"annotation only", annotate(contract.AnnotationReported, "2025-03-04T02:41:32Z"), false},
		{"unmarked", func(map[string]any) {}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := Marked(mustDecode(t, edited(t, "tekton-taskrun-failed.json", tt.edit))); got != tt.want {
				t.Errorf("Marked %v, want %v", got, tt.want)
			}
		})
	}
}

func TestDecideNil(t *testing.T) {
	t.Parallel()
	if d, _, _ := Decide(nil, product); d != Skip {
		t.Errorf("decision %s for nil", d)
	}
}

func TestDeletionPolicy(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, annotation, def, want string
		absent                      bool
	}{
		{name: "absent", absent: true, def: "Never", want: "Never"},
		{name: "OnSuccess", annotation: "OnSuccess", def: "Never", want: "OnSuccess"},
		{name: "Always", annotation: "Always", def: "Never", want: "Always"},
		{name: "Never overrides default", annotation: "Never", def: "Always", want: "Never"},
		{name: "any case", annotation: " onsuccess ", def: "Never", want: "OnSuccess"},
		{name: "invalid", annotation: "Sometimes", def: "Always", want: "Always"},
		{name: "empty", annotation: "", def: "OnSuccess", want: "OnSuccess"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tr := &pipelinev1.TaskRun{}
			if !tt.absent {
				tr.Annotations = map[string]string{contract.AnnotationDeletion: tt.annotation}
			}
			if got := DeletionPolicy(tr, tt.def); got != tt.want {
				t.Errorf("DeletionPolicy = %q, want %q", got, tt.want)
			}
		})
	}
	if got := DeletionPolicy(nil, "Never"); got != "Never" {
		t.Errorf("DeletionPolicy(nil) = %q", got)
	}
}

func TestShouldDelete(t *testing.T) {
	t.Parallel()
	tests := []struct {
		policy    string
		succeeded bool
		want      bool
	}{
		{"Never", true, false},
		{"Never", false, false},
		{"OnSuccess", true, true},
		{"OnSuccess", false, false},
		{"Always", true, true},
		{"Always", false, true},
		{"always", false, true},
		{"", true, false},
		{"bogus", true, false},
	}
	for _, tt := range tests {
		if got := ShouldDelete(tt.policy, tt.succeeded); got != tt.want {
			t.Errorf("ShouldDelete(%q, %t) = %t, want %t", tt.policy, tt.succeeded, got, tt.want)
		}
	}
}

func FuzzDecode(f *testing.F) {
	for _, name := range []string{"tekton-taskrun-started.json", "tekton-taskrun-successful-two-results.json", "tekton-taskrun-failed.json"} {
		f.Add(fixtures.Data(f, name))
	}
	f.Add([]byte(`{"taskRun":{"metadata":{"name":"n","labels":{"boomerang.io/taskrun-ref":"r","boomerang.io/product":"bmrg-flow"}},` +
		`"status":{"conditions":[{"type":"Succeeded","status":"True"}],"results":[{"name":"a","value":["x"]},{"name":"o","value":{"k":"v"}},{"name":"n","value":1}]}}}`))
	f.Add([]byte(`{"taskRun":null}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, data []byte) {
		tr, err := Decode(data)
		if (tr == nil) == (err == nil) {
			t.Fatalf("TaskRun %v and error %v", tr, err)
		}
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("error %v does not match ErrInvalid", err)
			}
			return
		}
		if tr.Name == "" {
			t.Fatal("decoded a TaskRun without a name")
		}
		d, rep, _ := Decide(tr, product)
		if d != ReportEnd {
			return
		}
		if s := rep.End.Status; s != engine.StatusSucceeded && s != engine.StatusFailed {
			t.Fatalf("status %q", s)
		}
		if rep.End.Results == nil || rep.End.StatusMessage == "" || rep.TaskRunRef == "" {
			t.Fatalf("incomplete report %+v", rep)
		}
		b, err := json.Marshal(rep.End)
		if err != nil {
			t.Fatalf("marshal end: %v", err)
		}
		var back engine.EndRequest
		if err := json.Unmarshal(b, &back); err != nil {
			t.Fatalf("end body %s does not read back: %v", b, err)
		}
	})
}
