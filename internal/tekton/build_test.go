package tekton

import (
	"encoding/json"
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/boomerang-io/flow-tekton-handler/internal/contract"
	pipelinev1 "github.com/boomerang-io/flow-tekton-handler/internal/pipelinev1"
	"github.com/boomerang-io/flow-tekton-handler/test/fixtures"
)

// minimalTask is the smallest executable taskrun data; tests add to it.
func minimalTask() *contract.TaskRun {
	return &contract.TaskRun{
		ID: "65a1f1a0e4b0a1b2c3d4e610", Type: "template", Status: "ready", Phase: "pending",
		WorkflowRef: "65a1f0c2e4b0a1b2c3d4e5f6", WorkflowRunRef: "65a1f0d9e4b0a1b2c3d4e601",
		Spec: contract.TaskSpec{Image: "alpine:3.20"},
	}
}

func TestBuildTaskMissingImage(t *testing.T) {
	t.Parallel()
	for _, image := range []string{"", " ", "\t\n"} {
		t.Run("image "+strings.ReplaceAll(image, "\n", `\n`), func(t *testing.T) {
			t.Parallel()
			tr := minimalTask()
			tr.Spec.Image = image
			task, err := BuildTask(tr, nil, "", testOptions())
			if task != nil {
				t.Errorf("got a task: %+v", task)
			}
			if !errors.Is(err, ErrUnbuildable) {
				t.Fatalf("err = %v, want ErrUnbuildable", err)
			}
			var be *BuildError
			if !errors.As(err, &be) || be.Code != "NO_TASK_IMAGE" {
				t.Errorf("err = %#v, want *BuildError NO_TASK_IMAGE", err)
			}
			if got, want := err.Error(), "NO_TASK_IMAGE: spec.image is required"; got != want {
				t.Errorf("message %q, want %q", got, want)
			}
		})
	}
}

// TestBuildTaskParamsSize checks that params the apiserver would refuse in
// a ConfigMap (over 1 MiB of keys and values) are a *BuildError, so the
// Engine is told before anything is created.
func TestBuildTaskParamsSize(t *testing.T) {
	t.Parallel()
	big := func(n int) json.RawMessage {
		b, _ := json.Marshal(strings.Repeat("x", n))
		return b
	}
	tests := []struct {
		name    string
		params  []contract.Param
		tooLong bool
	}{
		{name: "at the limit", params: []contract.Param{{Name: "a", Value: big(corev1.MaxSecretSize - 1)}}},
		{name: "one byte over", params: []contract.Param{{Name: "a", Value: big(corev1.MaxSecretSize)}}, tooLong: true},
		{name: "over in sum", params: []contract.Param{{Name: "a", Value: big(600 << 10)}, {Name: "b", Value: big(600 << 10)}}, tooLong: true},
		{name: "repeated name counts once", params: []contract.Param{{Name: "a", Value: big(600 << 10)}, {Name: "a", Value: big(600 << 10)}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tr := minimalTask()
			tr.Params = tc.params
			task, err := BuildTask(tr, nil, "", testOptions())
			var be *BuildError
			switch {
			case tc.tooLong && (!errors.As(err, &be) || be.Code != "PARAMS_TOO_LARGE" || task != nil):
				t.Fatalf("got %v, %v; want a PARAMS_TOO_LARGE *BuildError", task, err)
			case !tc.tooLong && err != nil:
				t.Fatalf("BuildTask: %v", err)
			case !tc.tooLong:
				checkTask(t, task, testOptions())
			}
		})
	}
}

func TestBuildTaskParams(t *testing.T) {
	t.Parallel()
	type kv struct{ Name, Value string }
	tests := []struct {
		name    string
		params  string // JSON array of Engine params
		want    []kv
		dropped []string
	}{{
		name:   "string",
		params: `[{"name":"s","value":"hello"}]`,
		want:   []kv{{"s", "hello"}},
	}, {
		name:   "numbers",
		params: `[{"name":"int","value":42},{"name":"neg","value":-3.25},{"name":"zero","value":0}]`,
		want:   []kv{{"int", "42"}, {"neg", "-3.25"}, {"zero", "0"}},
	}, {
		name:   "booleans",
		params: `[{"name":"yes","value":true},{"name":"no","value":false}]`,
		want:   []kv{{"yes", "true"}, {"no", "false"}},
	}, {
		name:   "object as compact JSON",
		params: `[{"name":"obj","value":{ "a" : 1, "b" : [ 1, 2 ], "c": {"d": null} }}]`,
		want:   []kv{{"obj", `{"a":1,"b":[1,2],"c":{"d":null}}`}},
	}, {
		name:   "array as compact JSON",
		params: `[{"name":"arr","value":[ "x" , 1, true ]}]`,
		want:   []kv{{"arr", `["x",1,true]`}},
	}, {
		name:   "null and missing become empty",
		params: `[{"name":"null","value":null},{"name":"missing"}]`,
		want:   []kv{{"null", ""}, {"missing", ""}},
	}, {
		name:   "unicode kept verbatim",
		params: `[{"name":"u","value":"héllo ✓ 日本 \u00e9"},{"name":"obj","value":{"k":"日本"}}]`,
		want:   []kv{{"u", "héllo ✓ 日本 é"}, {"obj", `{"k":"日本"}`}},
	}, {
		name:   "string with quotes, newlines and variables",
		params: `[{"name":"s","value":"a \"q\"\nline2 $(params.s)"}]`,
		want:   []kv{{"s", "a \"q\"\nline2 $(params.s)"}},
	}, {
		name:   "repeated name: last value wins, first position kept",
		params: `[{"name":"a","value":"1"},{"name":"b","value":"2"},{"name":"a","value":"3"}]`,
		want:   []kv{{"a", "3"}, {"b", "2"}},
	}, {
		name: "invalid names skipped",
		params: `[{"name":"1abc","value":"x"},{"name":"has space","value":"x"},{"name":"a/b","value":"x"},{"name":"","value":"x"},
			{"name":"` + strings.Repeat("k", 254) + `","value":"x"},{"name":"ok.name-1_x","value":"y"},{"name":"_under","value":"z"}]`,
		want: []kv{{"ok.name-1_x", "y"}, {"_under", "z"}},
		dropped: []string{`param "1abc": invalid name`, `param "has space": invalid name`, `param "a/b": invalid name`, `param "": invalid name`,
			`param "` + strings.Repeat("k", 254) + `": invalid ConfigMap key`},
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tr := minimalTask()
			if err := json.Unmarshal([]byte(tc.params), &tr.Params); err != nil {
				t.Fatalf("params: %v", err)
			}
			task := build(t, tr, nil, "", testOptions())

			var runParams, specParams []kv
			for _, p := range task.TaskRun.Spec.Params {
				if p.Value.Type != pipelinev1.ParamTypeString {
					t.Errorf("param %s has type %s, want string", p.Name, p.Value.Type)
				}
				runParams = append(runParams, kv{p.Name, p.Value.StringVal})
			}
			for _, p := range task.TaskRun.Spec.TaskSpec.Params {
				if p.Type != pipelinev1.ParamTypeString {
					t.Errorf("taskSpec param %s has type %s, want string", p.Name, p.Type)
				}
				specParams = append(specParams, kv{p.Name, ""})
			}
			if d := cmp.Diff(tc.want, runParams); d != "" {
				t.Errorf("spec.params (-want +got):\n%s", d)
			}
			var wantSpec []kv
			wantData := map[string]string{}
			for _, p := range tc.want {
				wantSpec = append(wantSpec, kv{p.Name, ""})
				wantData[p.Name] = p.Value
			}
			if d := cmp.Diff(wantSpec, specParams); d != "" {
				t.Errorf("taskSpec.params (-want +got):\n%s", d)
			}
			if d := cmp.Diff(wantData, task.ConfigMap.Data); d != "" {
				t.Errorf("ConfigMap data (-want +got):\n%s", d)
			}
			if d := cmp.Diff(tc.dropped, task.Dropped); d != "" {
				t.Errorf("Dropped (-want +got):\n%s", d)
			}
		})
	}
}

func TestBuildTaskLabels(t *testing.T) {
	t.Parallel()
	tr := minimalTask()
	tr.TaskRef = "65a1e0aae4b0a1b2c3d4e500"
	tr.Labels = map[string]string{
		"team":                         "platform",
		"example.com/owner":            "a.b_c-D",
		"empty":                        "",
		"bad key":                      "x",
		"good":                         "bad value",
		"toolong":                      strings.Repeat("v", 64),
		"initiatorContext":             `{"user":"x"}`,
		"boomerang.io/taskrun-ref":     "evil",
		"boomerang.io/custom":          "x",
		"app.kubernetes.io/name":       "evil",
		"app.kubernetes.io/managed-by": "evil",
		"tekton.dev/task":              "evil",
	}
	o := testOptions()
	task := build(t, tr, nil, "", o)

	want := map[string]string{
		contract.LabelName:        "bmrg-flow",
		contract.LabelInstance:    "bmrg-flow",
		contract.LabelManagedBy:   contract.ManagedBy,
		contract.LabelPartOf:      "bmrg-flow",
		contract.LabelProduct:     "bmrg-flow",
		contract.LabelTier:        contract.TierTask,
		contract.LabelWorkflowRef: "65a1f0c2e4b0a1b2c3d4e5f6",
		contract.LabelWorkflowRun: "65a1f0d9e4b0a1b2c3d4e601",
		contract.LabelTaskRunRef:  "65a1f1a0e4b0a1b2c3d4e610",
		contract.LabelTaskRef:     "65a1e0aae4b0a1b2c3d4e500",
		"team":                    "platform",
		"example.com/owner":       "a.b_c-D",
		"empty":                   "",
	}
	if d := cmp.Diff(want, task.TaskRun.Labels); d != "" {
		t.Errorf("TaskRun labels (-want +got):\n%s", d)
	}
	if d := cmp.Diff(want, task.ConfigMap.Labels); d != "" {
		t.Errorf("ConfigMap labels (-want +got):\n%s", d)
	}
	wantDropped := []string{
		`label "app.kubernetes.io/managed-by": reserved`,
		`label "app.kubernetes.io/name": reserved`,
		`label "bad key": invalid key`,
		`label "boomerang.io/custom": reserved`,
		`label "boomerang.io/taskrun-ref": reserved`,
		`label "good": invalid value`,
		`label "initiatorContext": invalid value`,
		`label "tekton.dev/task": reserved`,
		`label "toolong": invalid value`,
	}
	if d := cmp.Diff(wantDropped, task.Dropped); d != "" {
		t.Errorf("Dropped (-want +got):\n%s", d)
	}
	wantSelector := "boomerang.io/product=bmrg-flow,boomerang.io/tier=task,boomerang.io/workflow-ref=65a1f0c2e4b0a1b2c3d4e5f6," +
		"boomerang.io/workflowrun-ref=65a1f0d9e4b0a1b2c3d4e601,boomerang.io/taskrun-ref=65a1f1a0e4b0a1b2c3d4e610"
	for kind, ann := range map[string]map[string]string{"TaskRun": task.TaskRun.Annotations, "ConfigMap": task.ConfigMap.Annotations} {
		if got := ann[contract.AnnotationSelector]; got != wantSelector {
			t.Errorf("%s selector %q, want %q", kind, got, wantSelector)
		}
		if got := ann[contract.AnnotationWorkflowRef]; got != tr.WorkflowRef {
			t.Errorf("%s workflow-ref annotation %q", kind, got)
		}
	}
}

// TestBuildTaskRefs checks labels and names for references that are not
// valid label values, and for absent references.
func TestBuildTaskRefs(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name                   string
		id, workflow, run      string
		wantWorkflow, wantRun  string
		wantSelector, wantName string
	}{{
		name: "refs hashed into label values",
		id:   "Task ID/1", workflow: "wf with spaces", run: strings.Repeat("r", 70),
		wantWorkflow: LabelValue("wf with spaces"), wantRun: LabelValue(strings.Repeat("r", 70)),
		wantSelector: "boomerang.io/product=bmrg-flow,boomerang.io/tier=task,boomerang.io/workflow-ref=" + LabelValue("wf with spaces") +
			",boomerang.io/workflowrun-ref=" + LabelValue(strings.Repeat("r", 70)) + ",boomerang.io/taskrun-ref=" + LabelValue("Task ID/1"),
		wantName: Name("bmrg-flow", "task", "Task ID/1"),
	}, {
		name:         "no workflow refs",
		id:           "65a1f1a0e4b0a1b2c3d4e610",
		wantSelector: "boomerang.io/product=bmrg-flow,boomerang.io/tier=task,boomerang.io/taskrun-ref=65a1f1a0e4b0a1b2c3d4e610",
		wantName:     "bmrg-flow-task-65a1f1a0e4b0a1b2c3d4e610",
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tr := minimalTask()
			tr.ID, tr.WorkflowRef, tr.WorkflowRunRef = tc.id, tc.workflow, tc.run
			task := build(t, tr, nil, "", testOptions())
			l := task.TaskRun.Labels
			if got, ok := l[contract.LabelWorkflowRef]; got != tc.wantWorkflow || ok != (tc.workflow != "") {
				t.Errorf("workflow-ref label %q (present %v), want %q", got, ok, tc.wantWorkflow)
			}
			if got, ok := l[contract.LabelWorkflowRun]; got != tc.wantRun || ok != (tc.run != "") {
				t.Errorf("workflowrun-ref label %q (present %v), want %q", got, ok, tc.wantRun)
			}
			if got := l[contract.LabelTaskRunRef]; got != LabelValue(tc.id) {
				t.Errorf("taskrun-ref label %q, want %q", got, LabelValue(tc.id))
			}
			if got := task.TaskRun.Annotations[contract.AnnotationSelector]; got != tc.wantSelector {
				t.Errorf("selector %q, want %q", got, tc.wantSelector)
			}
			if _, ok := task.TaskRun.Annotations[contract.AnnotationWorkflowRef]; ok != (tc.workflow != "") {
				t.Errorf("workflow-ref annotation present %v", ok)
			}
			if task.TaskRun.Name != tc.wantName || task.ConfigMap.Name != ConfigMapName("bmrg-flow", tc.id) {
				t.Errorf("names %q, %q", task.TaskRun.Name, task.ConfigMap.Name)
			}
		})
	}
}

func TestBuildTaskStep(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name        string
		script      string
		command     []string
		wantScript  string
		wantCommand []string
	}{
		{name: "script wins over command", script: "echo hi", command: []string{"sh", "-c"}, wantScript: "echo hi"},
		{name: "command when no script", command: []string{"curl"}, wantCommand: []string{"curl"}},
		{name: "blank script means none", script: " \n\t", command: []string{"curl"}, wantCommand: []string{"curl"}},
		{name: "neither"},
		{name: "empty command", command: []string{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tr := minimalTask()
			tr.Spec.Script, tr.Spec.Command = tc.script, tc.command
			tr.Spec.Arguments = []string{"--flag", "value"}
			tr.Spec.WorkingDir = "/data/src"
			task := build(t, tr, nil, "", testOptions())
			steps := task.TaskRun.Spec.TaskSpec.Steps
			if len(steps) != 1 {
				t.Fatalf("%d steps, want 1", len(steps))
			}
			s := steps[0]
			if s.Name != "task" || s.Image != "alpine:3.20" || s.WorkingDir != "/data/src" || s.ImagePullPolicy != corev1.PullIfNotPresent {
				t.Errorf("step name %q image %q workingDir %q pullPolicy %q", s.Name, s.Image, s.WorkingDir, s.ImagePullPolicy)
			}
			if s.Script != tc.wantScript {
				t.Errorf("script %q, want %q", s.Script, tc.wantScript)
			}
			if d := cmp.Diff(tc.wantCommand, s.Command); d != "" {
				t.Errorf("command (-want +got):\n%s", d)
			}
			if d := cmp.Diff([]string{"--flag", "value"}, s.Args); d != "" {
				t.Errorf("args (-want +got):\n%s", d)
			}
		})
	}
}

// TestBuildTaskImageTrimmed checks that blanks around the image are
// removed: the apiserver refuses a container image with them.
func TestBuildTaskImageTrimmed(t *testing.T) {
	t.Parallel()
	tr := minimalTask()
	tr.Spec.Image = " \talpine:3.20\n"
	if got := build(t, tr, nil, "", testOptions()).TaskRun.Spec.TaskSpec.Steps[0].Image; got != "alpine:3.20" {
		t.Errorf("image %q, want %q", got, "alpine:3.20")
	}
}

// TestBuildTaskWorkspaceMounts checks where claims are mounted: the event's
// path for the scope, else the claim's, else /workspace/<scope>; a path that
// is relative, "/", under /tekton/ or /params/, or already used falls back
// to the default, and a claim whose default is taken too is not attached.
func TestBuildTaskWorkspaceMounts(t *testing.T) {
	t.Parallel()
	type mount struct{ Name, Path, Claim string }
	wf := func(p string) Claim { return Claim{Scope: "workflow", ClaimName: "wf", MountPath: p} }
	run := func(p string) Claim { return Claim{Scope: "workflowrun", ClaimName: "run", MountPath: p} }
	tests := []struct {
		name   string
		events []contract.TaskWorkspace
		claims []Claim
		want   []mount
		notes  []string
	}{{
		name:   "claim paths",
		claims: []Claim{wf("/workspace/shared"), run("/build/")},
		want:   []mount{{"bmrg-flow-vol-ws-workflow", "/workspace/shared", "wf"}, {"bmrg-flow-vol-ws-workflowrun", "/build/", "run"}},
	}, {
		name:   "defaults",
		claims: []Claim{{Scope: "WorkflowRun", ClaimName: "run"}, {Scope: "Workflow", ClaimName: "wf"}},
		want:   []mount{{"bmrg-flow-vol-ws-workflowrun", "/workspace/workflowrun", "run"}, {"bmrg-flow-vol-ws-workflow", "/workspace/workflow", "wf"}},
	}, {
		name:   "event path wins",
		events: []contract.TaskWorkspace{{Name: "x", Type: "WORKFLOW", MountPath: "/from-event"}, {Name: "y", Type: "workflowrun"}},
		claims: []Claim{wf("/from-claim"), run("/run")},
		want:   []mount{{"bmrg-flow-vol-ws-workflow", "/from-event", "wf"}, {"bmrg-flow-vol-ws-workflowrun", "/run", "run"}},
	}, {
		name:   "unusable paths fall back",
		claims: []Claim{wf("relative"), run("/")},
		want:   []mount{{"bmrg-flow-vol-ws-workflow", "/workspace/workflow", "wf"}, {"bmrg-flow-vol-ws-workflowrun", "/workspace/workflowrun", "run"}},
		notes:  []string{`workspace workflow: mount path "relative"`, `workspace workflowrun: mount path "/"`},
	}, {
		name:   "reserved directories",
		claims: []Claim{wf("/params/x"), run("/tekton/results")},
		want:   []mount{{"bmrg-flow-vol-ws-workflow", "/workspace/workflow", "wf"}, {"bmrg-flow-vol-ws-workflowrun", "/workspace/workflowrun", "run"}},
		notes:  []string{`workspace workflow: mount path "/params/x"`, `workspace workflowrun: mount path "/tekton/results"`},
	}, {
		name:   "nested under /data is allowed",
		claims: []Claim{wf("/data/cache")},
		want:   []mount{{"bmrg-flow-vol-ws-workflow", "/data/cache", "wf"}},
	}, {
		name:   "same path twice",
		claims: []Claim{wf("/w"), run("/w/")},
		want:   []mount{{"bmrg-flow-vol-ws-workflow", "/w", "wf"}, {"bmrg-flow-vol-ws-workflowrun", "/workspace/workflowrun", "run"}},
		notes:  []string{`workspace workflowrun: mount path "/w/"`},
	}, {
		name:   "default taken too",
		claims: []Claim{wf("/workspace/workflowrun"), run("/data")},
		want:   []mount{{"bmrg-flow-vol-ws-workflow", "/workspace/workflowrun", "wf"}},
		notes:  []string{`workspace workflowrun: mount path "/data"`, `workspace workflowrun: mount path "/workspace/workflowrun" is taken, not attached`},
	}, {
		name:   "ignored claims",
		claims: []Claim{{Scope: "workflow"}, {Scope: "task", ClaimName: "t"}, wf("/a"), {Scope: "workflow", ClaimName: "second"}},
		want:   []mount{{"bmrg-flow-vol-ws-workflow", "/a", "wf"}},
	}, {
		name:   "event workspace without a claim",
		events: []contract.TaskWorkspace{{Name: "x", Type: "workflow", MountPath: "/x"}},
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tr := minimalTask()
			tr.Workspaces = tc.events
			task := build(t, tr, tc.claims, "", testOptions())
			spec := task.TaskRun.Spec
			if len(spec.TaskSpec.Workspaces) != len(spec.Workspaces) {
				t.Fatalf("%d declarations, %d bindings", len(spec.TaskSpec.Workspaces), len(spec.Workspaces))
			}
			var got []mount
			for i, d := range spec.TaskSpec.Workspaces {
				b := spec.Workspaces[i]
				if b.Name != d.Name || b.PersistentVolumeClaim == nil || b.PersistentVolumeClaim.ClaimName == "" {
					t.Fatalf("binding %+v does not match declaration %s", b, d.Name)
				}
				got = append(got, mount{d.Name, d.MountPath, b.PersistentVolumeClaim.ClaimName})
			}
			if d := cmp.Diff(tc.want, got); d != "" {
				t.Errorf("workspaces (-want +got):\n%s", d)
			}
			var notes []string
			for _, n := range task.Dropped {
				if strings.HasPrefix(n, "workspace ") {
					notes = append(notes, n)
				}
			}
			if len(notes) != len(tc.notes) {
				t.Fatalf("notes %q, want %d starting %q", notes, len(tc.notes), tc.notes)
			}
			for i, n := range tc.notes {
				if !strings.HasPrefix(notes[i], n) {
					t.Errorf("note %q, want it to start %q", notes[i], n)
				}
			}
		})
	}
}

func TestBuildTaskResults(t *testing.T) {
	t.Parallel()
	tr := minimalTask()
	tr.Results = []contract.Result{
		{Name: "ts", Description: "timestamp"}, {Name: "ok-1_x"}, {Name: "ts"}, {Name: "-bad"}, {Name: "bad-"},
		{Name: "has space"}, {Name: "a.b"}, {Name: ".a"}, {Name: "a."}, {Name: ""}, {Name: "B"},
	}
	task := build(t, tr, nil, "", testOptions())
	want := []pipelinev1.TaskResult{
		{Name: "ts", Type: pipelinev1.ResultsTypeString, Description: "timestamp"},
		{Name: "ok-1_x", Type: pipelinev1.ResultsTypeString},
		{Name: "a.b", Type: pipelinev1.ResultsTypeString},
		{Name: "B", Type: pipelinev1.ResultsTypeString},
	}
	if d := cmp.Diff(want, task.TaskRun.Spec.TaskSpec.Results); d != "" {
		t.Errorf("results (-want +got):\n%s", d)
	}
	for _, n := range []string{"ts", "-bad", "bad-", "has space", ".a", "a.", ""} {
		if !hasNote(task.Dropped, `result "`+n+`"`) {
			t.Errorf("no note for result %q in %q", n, task.Dropped)
		}
	}
}

func TestBuildTaskTimeout(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		minutes int64
		def     time.Duration
		want    time.Duration
	}{
		{name: "absent uses default", minutes: 0, def: 60 * time.Minute, want: 60 * time.Minute},
		{name: "absent uses configured default", minutes: 0, def: 90 * time.Minute, want: 90 * time.Minute},
		{name: "negative uses default", minutes: -30, def: 60 * time.Minute, want: 60 * time.Minute},
		{name: "event minutes", minutes: 30, def: 60 * time.Minute, want: 30 * time.Minute},
		{name: "one minute", minutes: 1, def: 60 * time.Minute, want: time.Minute},
		{name: "a week", minutes: 7 * 24 * 60, def: 60 * time.Minute, want: 7 * 24 * time.Hour},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tr := minimalTask()
			tr.Timeout = tc.minutes
			o := testOptions()
			o.DefaultTimeout = tc.def
			task := build(t, tr, nil, "", o)
			if got := task.TaskRun.Spec.Timeout; got == nil || got.Duration != tc.want {
				t.Errorf("timeout %v, want %v", got, tc.want)
			}
		})
	}
}

// TestBuildTaskHugeTimeout checks that any timeout the decoder accepts
// gives a TaskRun Tekton admits and whose pod Kubernetes admits: Tekton
// sets the pod's activeDeadlineSeconds to 1.5 × the timeout, which the
// apiserver bounds to MaxInt32.
func TestBuildTaskHugeTimeout(t *testing.T) {
	t.Parallel()
	for _, minutes := range []int64{23860929, 23860930, 153722867, 153722868, 200000000, math.MaxInt64} {
		t.Run(jsonInt(minutes)+" minutes", func(t *testing.T) {
			t.Parallel()
			tr := taskRunFromJSON(t, `{"id":"65a1f1a0e4b0a1b2c3d4e610","type":"script","status":"ready","phase":"pending",
				"timeout":`+jsonInt(minutes)+`,"spec":{"image":"alpine"}}`)
			task, err := BuildTask(tr, nil, "", testOptions())
			if err != nil {
				if !errors.Is(err, ErrUnbuildable) {
					t.Fatalf("err %v is neither nil nor a BuildError", err)
				}
				return
			}
			checkTask(t, task, testOptions())
			d := task.TaskRun.Spec.Timeout.Duration
			if d <= 0 || d.Seconds()*1.5 > math.MaxInt32 {
				t.Errorf("timeout %d minutes became %v: not in (0, MaxInt32/1.5 s]", minutes, d)
			}
		})
	}
}

func jsonInt(n int64) string {
	b, _ := json.Marshal(n)
	return string(b)
}

func TestBuildTaskDeletion(t *testing.T) {
	t.Parallel()
	// want "": no annotation, the sink's DELETION_POLICY applies.
	// note: the event's policy is not one of the three and is noted.
	tests := []struct {
		event, want string
		note        bool
	}{
		{"Always", "Always", false},
		{"OnSuccess", "OnSuccess", false},
		{"Never", "Never", false},
		{"always", "Always", false},
		{"ONSUCCESS", "OnSuccess", false},
		{"", "", false},
		{"bogus", "", true},
	}
	for _, tc := range tests {
		t.Run("event "+tc.event, func(t *testing.T) {
			t.Parallel()
			tr := minimalTask()
			tr.Spec.Deletion = tc.event
			if got := DeletionPolicy(tr); got != tc.want {
				t.Errorf("DeletionPolicy = %q, want %q", got, tc.want)
			}
			task := build(t, tr, nil, "", testOptions())
			if got, ok := task.TaskRun.Annotations[contract.AnnotationDeletion]; got != tc.want || ok != (tc.want != "") {
				t.Errorf("annotation %q (present %v), want %q", got, ok, tc.want)
			}
			if _, ok := task.ConfigMap.Annotations[contract.AnnotationDeletion]; ok {
				t.Error("the ConfigMap carries the deletion annotation")
			}
			if got := hasNote(task.Dropped, "deletion"); got != tc.note {
				t.Errorf("Dropped %q, want a deletion note: %v", task.Dropped, tc.note)
			}
		})
	}
}

func TestBuildTaskEnv(t *testing.T) {
	t.Parallel()
	events := []contract.EnvVar{
		{Name: "LOG_LEVEL", Value: "info"},
		{Name: "HTTP_PROXY", Value: "http://evil:1"},
		{Name: "DEBUG", Value: "false"},
		{Name: "CI", Value: "false"},
		{Name: "no_proxy", Value: "*"},
		{Name: "use_proxy", Value: "off"},
		{Name: "1BAD", Value: "x"},
		{Name: "BAD NAME", Value: "x"},
		{Name: "BAD=NAME", Value: "x"},
		{Name: "", Value: "x"},
		{Name: "my.env-name", Value: "dotted"},
		{Name: "EMPTY", Value: ""},
	}
	wantDropped := []string{`env "HTTP_PROXY": reserved`, `env "DEBUG": reserved`, `env "CI": reserved`, `env "no_proxy": reserved`,
		`env "use_proxy": reserved`, `env "1BAD": invalid name`, `env "BAD NAME": invalid name`, `env "BAD=NAME": invalid name`, `env "": invalid name`}
	eventEnv := []corev1.EnvVar{{Name: "LOG_LEVEL", Value: "info"}, {Name: "my.env-name", Value: "dotted"}, {Name: "EMPTY"}}
	proxyURL := "http://proxy.example.com:3128"
	tests := []struct {
		name  string
		debug bool
		proxy bool
		want  []corev1.EnvVar
	}{{
		name: "no proxy",
		want: append([]corev1.EnvVar{{Name: "DEBUG", Value: "false"}, {Name: "CI", Value: "true"}}, eventEnv...),
	}, {
		name: "debug", debug: true,
		want: append([]corev1.EnvVar{{Name: "DEBUG", Value: "true"}, {Name: "CI", Value: "true"}}, eventEnv...),
	}, {
		name: "proxy", proxy: true,
		want: append([]corev1.EnvVar{
			{Name: "PROXY_HOST", Value: "proxy.example.com"}, {Name: "PROXY_PORT", Value: "3128"},
			{Name: "HTTP_PROXY", Value: proxyURL}, {Name: "HTTPS_PROXY", Value: proxyURL},
			{Name: "http_proxy", Value: proxyURL}, {Name: "https_proxy", Value: proxyURL},
			{Name: "NO_PROXY", Value: "localhost,.svc"}, {Name: "no_proxy", Value: "localhost,.svc"},
			{Name: "use_proxy", Value: "on"},
			{Name: "DEBUG", Value: "false"}, {Name: "CI", Value: "true"},
		}, eventEnv...),
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tr := minimalTask()
			tr.Spec.Envs = events
			tr.Spec.Debug = tc.debug
			o := testOptions()
			if tc.proxy {
				o.ProxyHost, o.ProxyPort, o.ProxyIgnore = "proxy.example.com", "3128", "localhost,.svc"
			}
			task := build(t, tr, nil, "", o)
			if d := cmp.Diff(tc.want, task.TaskRun.Spec.TaskSpec.Steps[0].Env); d != "" {
				t.Errorf("env (-want +got):\n%s", d)
			}
			if d := cmp.Diff(wantDropped, task.Dropped); d != "" {
				t.Errorf("Dropped (-want +got):\n%s", d)
			}
		})
	}
}

func TestBuildTaskDataVolume(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		allowed bool
		param   string // JSON value of worker.storage.data.memory; "" for none
		memory  bool
	}{
		{name: "allowed, boolean true", allowed: true, param: "true", memory: true},
		{name: "allowed, string true", allowed: true, param: `"true"`, memory: true},
		{name: "allowed, false", allowed: true, param: "false"},
		{name: "allowed, string TRUE", allowed: true, param: `"TRUE"`},
		{name: "allowed, no param", allowed: true},
		{name: "not allowed, true", param: "true"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tr := minimalTask()
			if tc.param != "" {
				tr.Params = []contract.Param{{Name: "worker.storage.data.memory", Value: json.RawMessage(tc.param)}}
			}
			o := testOptions()
			o.DataMemory = tc.allowed
			task := build(t, tr, nil, "", o)
			vols := task.TaskRun.Spec.TaskSpec.Volumes
			if len(vols) != 2 || vols[0].Name != "bmrg-flow-vol-data" || vols[0].EmptyDir == nil {
				t.Fatalf("volumes %+v", vols)
			}
			want := corev1.StorageMedium("")
			if tc.memory {
				want = corev1.StorageMediumMemory
			}
			if got := vols[0].EmptyDir.Medium; got != want {
				t.Errorf("medium %q, want %q", got, want)
			}
			p := vols[1]
			if p.Name != "bmrg-flow-vol-params" || p.Projected == nil || len(p.Projected.Sources) != 1 ||
				p.Projected.Sources[0].ConfigMap == nil || p.Projected.Sources[0].ConfigMap.Name != task.ConfigMap.Name {
				t.Errorf("params volume %+v does not project ConfigMap %s", p, task.ConfigMap.Name)
			}
			wantMounts := []corev1.VolumeMount{{Name: "bmrg-flow-vol-data", MountPath: "/data"}, {Name: "bmrg-flow-vol-params", MountPath: "/params"}}
			if d := cmp.Diff(wantMounts, task.TaskRun.Spec.TaskSpec.Steps[0].VolumeMounts); d != "" {
				t.Errorf("mounts (-want +got):\n%s", d)
			}
		})
	}
}

func TestBuildTaskTraceparent(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, in, want string
		note           bool
	}{
		{name: "valid", in: validTraceparent, want: `{"traceparent":"` + validTraceparent + `"}`},
		{name: "absent", in: ""},
		{name: "malformed", in: "garbage", note: true},
		{name: "uppercase hex", in: strings.ToUpper(validTraceparent), note: true},
		{name: "injection", in: validTraceparent + `","x":"y`, note: true},
		{name: "unknown version", in: "ff" + validTraceparent[2:], note: true},
		{name: "zero trace id", in: "00-" + strings.Repeat("0", 32) + validTraceparent[35:], note: true},
		{name: "zero parent id", in: validTraceparent[:36] + strings.Repeat("0", 16) + "-01", note: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			task := build(t, minimalTask(), nil, tc.in, testOptions())
			got, ok := task.TaskRun.Annotations[contract.AnnotationSpanContext]
			if got != tc.want || ok != (tc.want != "") {
				t.Errorf("span context %q (present %v), want %q", got, ok, tc.want)
			}
			if hasNote(task.Dropped, "traceparent") != tc.note {
				t.Errorf("Dropped %q, want a traceparent note: %v", task.Dropped, tc.note)
			}
		})
	}
}

func TestBuildTaskPodTemplate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		options func(*Options)
		wantNil bool
	}{
		{name: "nothing configured", options: func(*Options) {}, wantNil: true},
		{name: "pull secret only", options: func(o *Options) { o.ImagePullSecret = "reg" }},
		{name: "node selector only", options: func(o *Options) { o.NodeSelector = map[string]string{"a": "b"} }},
		{name: "tolerations only", options: func(o *Options) {
			o.Tolerations = []corev1.Toleration{{Key: "k", Operator: corev1.TolerationOpExists}}
		}},
		{name: "host aliases only", options: func(o *Options) {
			o.HostAliases = []corev1.HostAlias{{IP: "10.0.0.1", Hostnames: []string{"h"}}}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			o := testOptions()
			tc.options(&o)
			pt := build(t, minimalTask(), nil, "", o).TaskRun.Spec.PodTemplate
			if (pt == nil) != tc.wantNil {
				t.Fatalf("podTemplate %+v, want nil: %v", pt, tc.wantNil)
			}
			if pt == nil {
				return
			}
			if d := cmp.Diff(o.NodeSelector, pt.NodeSelector); d != "" {
				t.Errorf("nodeSelector (-want +got):\n%s", d)
			}
			if d := cmp.Diff(o.Tolerations, pt.Tolerations); d != "" {
				t.Errorf("tolerations (-want +got):\n%s", d)
			}
			if d := cmp.Diff(o.HostAliases, pt.HostAliases); d != "" {
				t.Errorf("hostAliases (-want +got):\n%s", d)
			}
			var wantSecrets []corev1.LocalObjectReference
			if o.ImagePullSecret != "" {
				wantSecrets = []corev1.LocalObjectReference{{Name: o.ImagePullSecret}}
			}
			if d := cmp.Diff(wantSecrets, pt.ImagePullSecrets); d != "" {
				t.Errorf("imagePullSecrets (-want +got):\n%s", d)
			}
		})
	}
}

// TestBuildTaskOptionsNotShared checks that a built TaskRun shares no
// mutable state with the Options, which are reused by every request.
func TestBuildTaskOptionsNotShared(t *testing.T) {
	t.Parallel()
	o := testOptions()
	o.NodeSelector = map[string]string{"kubernetes.io/os": "linux"}
	o.Tolerations = []corev1.Toleration{{Key: "k", Operator: corev1.TolerationOpExists}}
	o.HostAliases = []corev1.HostAlias{{IP: "10.0.0.1", Hostnames: []string{"h"}}}
	pt := build(t, minimalTask(), nil, "", o).TaskRun.Spec.PodTemplate
	pt.NodeSelector["mutated"] = "yes"
	pt.Tolerations[0].Key = "mutated"
	pt.HostAliases[0].Hostnames[0] = "mutated"
	if _, ok := o.NodeSelector["mutated"]; ok {
		t.Error("the TaskRun's nodeSelector is the Options' map")
	}
	if o.Tolerations[0].Key == "mutated" {
		t.Error("the TaskRun's tolerations share the Options' array")
	}
	if o.HostAliases[0].Hostnames[0] == "mutated" {
		t.Error("the TaskRun's hostAliases share the Options' array")
	}
}

// TestBuildTaskInputPolicy feeds an event that tries to reach fields the
// builder must never take from the Engine.
func TestBuildTaskInputPolicy(t *testing.T) {
	t.Parallel()
	data := `{"id":"65a1f1a0e4b0a1b2c3d4e610","type":"custom","status":"ready","phase":"pending",
		"namespace":"kube-system","serviceAccountName":"cluster-admin",
		"metadata":{"namespace":"kube-system"},
		"podTemplate":{"hostNetwork":true,"securityContext":{"runAsUser":0}},
		"spec":{"image":"alpine","serviceAccountName":"cluster-admin","securityContext":{"privileged":true},
			"hostNetwork":true,"hostPID":true,"hostIPC":true,"volumes":[{"name":"root","hostPath":{"path":"/"}}],
			"podTemplate":{"securityContext":{"runAsUser":0}},"runtimeClassName":"x","namespace":"kube-system"}}`
	for _, sa := range []string{"", "bmrg-flow-worker"} {
		t.Run("service account "+sa, func(t *testing.T) {
			t.Parallel()
			o := testOptions()
			o.ServiceAccount = sa
			// build runs checkTask: namespace, service account and the
			// forbidden fields.
			task := build(t, taskRunFromJSON(t, data), nil, "", o)
			if task.TaskRun.Namespace != "bmrg-flow" || task.ConfigMap.Namespace != "bmrg-flow" {
				t.Errorf("namespaces %q, %q", task.TaskRun.Namespace, task.ConfigMap.Namespace)
			}
			if task.TaskRun.Spec.ServiceAccountName != sa {
				t.Errorf("serviceAccountName %q, want %q", task.TaskRun.Spec.ServiceAccountName, sa)
			}
		})
	}
	// The policy check itself must catch what it looks for. Of the
	// forbidden fields only a volume's hostPath fits in package
	// pipelinev1's TaskRun: its steps and pod template have no security
	// context, host namespaces or runtime class.
	tr := build(t, minimalTask(), nil, "", testOptions()).TaskRun
	tr.Spec.TaskSpec.Volumes = append(tr.Spec.TaskSpec.Volumes, corev1.Volume{Name: "h", VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: "/"}}})
	if got := policyErrors(tr); len(got) != 1 {
		t.Errorf("policyErrors found %q, want hostPath", got)
	}
}

func TestSetOwner(t *testing.T) {
	t.Parallel()
	task := build(t, minimalTask(), nil, "", testOptions())
	owner := task.TaskRun.DeepCopy()
	owner.UID = ownerUID
	SetOwner(task.ConfigMap, owner)
	refs := task.ConfigMap.OwnerReferences
	if len(refs) != 1 {
		t.Fatalf("%d owner references, want 1", len(refs))
	}
	r := refs[0]
	if r.APIVersion != "tekton.dev/v1" || r.Kind != "TaskRun" || r.Name != task.TaskRun.Name || r.UID != ownerUID ||
		r.Controller == nil || !*r.Controller || r.BlockOwnerDeletion == nil || *r.BlockOwnerDeletion {
		t.Errorf("owner reference %+v", r)
	}
	// Setting it again replaces it.
	SetOwner(task.ConfigMap, owner)
	if len(task.ConfigMap.OwnerReferences) != 1 {
		t.Errorf("%d owner references after a second SetOwner", len(task.ConfigMap.OwnerReferences))
	}
}

// TestBuildTaskDeterministic builds every fixture twice.
func TestBuildTaskDeterministic(t *testing.T) {
	t.Parallel()
	for _, name := range fixtures.Glob(t, "engine-taskrun-*-ready.json") {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			a := build(t, fixtureTaskRun(t, name), nil, validTraceparent, testOptions())
			b := build(t, fixtureTaskRun(t, name), nil, validTraceparent, testOptions())
			if d := cmp.Diff(a, b); d != "" {
				t.Errorf("two builds differ (-first +second):\n%s", d)
			}
		})
	}
}

// TestValidators checks that the validity checks used by every test catch
// what Tekton and the apiserver refuse, so a passing build means something.
func TestValidators(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		edit func(*Task)
	}{
		{"script with command", func(k *Task) {
			k.TaskRun.Spec.TaskSpec.Steps[0].Script = "echo"
			k.TaskRun.Spec.TaskSpec.Steps[0].Command = []string{"sh"}
		}},
		{"undeclared result", func(k *Task) { k.TaskRun.Spec.TaskSpec.Steps[0].Script = "echo > $(results.nope.path)" }},
		{"negative timeout", func(k *Task) { k.TaskRun.Spec.Timeout.Duration = -time.Second }},
		{"long name", func(k *Task) { k.TaskRun.Name = strings.Repeat("a", 64) }},
		{"uppercase ConfigMap name", func(k *Task) { k.ConfigMap.Name = "Bad" }},
		{"invalid label value", func(k *Task) { k.TaskRun.Labels["x"] = "bad value" }},
		{"invalid ConfigMap key", func(k *Task) { k.ConfigMap.Data["bad/key"] = "" }},
		{"other namespace", func(k *Task) { k.TaskRun.Namespace = "kube-system" }},
		{"service account", func(k *Task) { k.TaskRun.Spec.ServiceAccountName = "admin" }},
		{"host path volume", func(k *Task) {
			k.TaskRun.Spec.TaskSpec.Volumes = append(k.TaskRun.Spec.TaskSpec.Volumes,
				corev1.Volume{Name: "host", VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: "/"}}})
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			o := testOptions()
			task := build(t, minimalTask(), nil, "", o)
			tc.edit(task)
			if errs := taskErrors(t.Context(), task, o); len(errs) == 0 {
				t.Error("taskErrors found nothing")
			}
		})
	}
	pvcTests := []struct {
		name string
		edit func(*corev1.PersistentVolumeClaim)
	}{
		{"zero size", func(p *corev1.PersistentVolumeClaim) {
			p.Spec.Resources.Requests[corev1.ResourceStorage] = resource.MustParse("0")
		}},
		{"bad access mode", func(p *corev1.PersistentVolumeClaim) { p.Spec.AccessModes = []corev1.PersistentVolumeAccessMode{"rwx"} }},
		{"bad class", func(p *corev1.PersistentVolumeClaim) { c := "Bad_Class"; p.Spec.StorageClassName = &c }},
		{"bad label", func(p *corev1.PersistentVolumeClaim) { p.Labels["bad key"] = "x" }},
	}
	for _, tc := range pvcTests {
		t.Run("pvc "+tc.name, func(t *testing.T) {
			t.Parallel()
			o := testOptions()
			pvcs, _ := PVCs(fixtureWorkflowRun(t, "engine-workflowrun-ready-with-workspace.json"), o)
			tc.edit(pvcs[0])
			if errs := pvcErrors(pvcs[0], o); len(errs) == 0 {
				t.Error("pvcErrors found nothing")
			}
		})
	}
}

// TestBuildTaskTektonAdmits feeds Engine content that Tekton's webhook
// would refuse if passed through as is. The handler sends the Engine start
// before it creates the TaskRun, so a refused TaskRun leaves the task
// running for ever: the builder must either return a *BuildError (the
// handler then ends the task failed) or build a TaskRun Tekton admits.
func TestBuildTaskTektonAdmits(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		edit   func(*contract.TaskRun)
		claims []Claim
	}{
		{name: "script uses an undeclared result", edit: func(tr *contract.TaskRun) { tr.Spec.Script = "echo ok > $(results.missing.path)" }},
		{name: "argument uses an undeclared param", edit: func(tr *contract.TaskRun) { tr.Spec.Arguments = []string{"$(params.nope)"} }},
		{name: "working dir uses an undeclared param", edit: func(tr *contract.TaskRun) { tr.Spec.WorkingDir = "/data/$(params.nope)" }},
		{name: "env uses an unknown context variable", edit: func(tr *contract.TaskRun) {
			tr.Spec.Envs = []contract.EnvVar{{Name: "X", Value: "$(context.task.bogus)"}}
		}},
		{name: "windows script", edit: func(tr *contract.TaskRun) { tr.Spec.Script = "#!win pwsh\necho hi" }},
		{name: "event workspace mounted on /data",
			edit: func(tr *contract.TaskRun) {
				tr.Workspaces = []contract.TaskWorkspace{{Type: "workflow", MountPath: "/data"}}
			},
			claims: []Claim{{Scope: "workflow", ClaimName: "wf"}}},
		{name: "claim mounted on /params/", claims: []Claim{{Scope: "workflowrun", ClaimName: "run", MountPath: "/params/"}}},
		{name: "both claims on one path", claims: []Claim{
			{Scope: "workflow", ClaimName: "wf", MountPath: "/workspace"},
			{Scope: "workflowrun", ClaimName: "run", MountPath: "/workspace"}}},
		{name: "claim on the other scope's default path", claims: []Claim{
			{Scope: "workflow", ClaimName: "wf", MountPath: "/workspace/workflowrun"},
			{Scope: "workflowrun", ClaimName: "run"}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tr := minimalTask()
			tc.edit = orNothing(tc.edit)
			tc.edit(tr)
			o := testOptions()
			task, err := BuildTask(tr, tc.claims, "", o)
			if err != nil {
				var be *BuildError
				if !errors.As(err, &be) || !errors.Is(err, ErrUnbuildable) {
					t.Fatalf("err %v is not a *BuildError", err)
				}
				return
			}
			checkTask(t, task, o)
		})
	}
}

func orNothing(f func(*contract.TaskRun)) func(*contract.TaskRun) {
	if f == nil {
		return func(*contract.TaskRun) {}
	}
	return f
}
