package tekton

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/boomerang-io/flow-tekton-handler/internal/contract"
)

// TestVouched checks the builders' own check against Tekton's validation:
// the TaskRuns they vouch for Tekton admits; any other they build with
// Task.Unvouched set, for Tekton's webhook to judge. tekton is Tekton's
// verdict on the TaskRun: the cases where it admits what the builders do
// not vouch for cost a dry run each, not the task.
func TestVouched(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name            string
		edit            func(*contract.TaskRun)
		vouched, tekton bool
	}{
		{"no references", func(*contract.TaskRun) {}, true, true},
		{"shell substitutions", func(tr *contract.TaskRun) {
			tr.Spec.Script = "echo $(date) $(cat /params/version) $( params) $(Params.x) $"
		}, true, true},
		{"declared param, result and context", func(tr *contract.TaskRun) {
			tr.Spec.Script = "echo $(params.url) $(context.taskRun.name) > $(results.out.path)"
			tr.Spec.Arguments = []string{"$(params.url)", "$(context.task.retry-count)"}
			tr.Spec.WorkingDir = "/data/$(context.taskRun.uid)"
			tr.Spec.Envs = []contract.EnvVar{{Name: "U", Value: "$(params.url)$(context.taskRun.namespace)"}}
		}, true, true},
		{"param value with a shell substitution", func(tr *contract.TaskRun) {
			tr.Params = []contract.Param{{Name: "cmd", Value: json.RawMessage(`"$(id -u)"`)}}
		}, true, true},
		{"undeclared param", func(tr *contract.TaskRun) { tr.Spec.Script = "echo $(params.nope)" }, false, false},
		{"undeclared result", func(tr *contract.TaskRun) { tr.Spec.Script = "echo > $(results.nope.path)" }, false, false},
		{"unknown context variable", func(tr *contract.TaskRun) { tr.Spec.WorkingDir = "/$(context.task.bogus)" }, false, false},
		{"context lookalike", func(tr *contract.TaskRun) { tr.Spec.Arguments = []string{"$(contextXtaskRun.name)"} }, false, true},
		{"three-part result", func(tr *contract.TaskRun) { tr.Spec.Script = "echo > $(results.out.path.x)" }, false, false},
		{"bracket param", func(tr *contract.TaskRun) { tr.Spec.Script = `echo $(params["url"])` }, false, true},
		{"indexed param", func(tr *contract.TaskRun) { tr.Spec.Script = "echo $(params.url[0])" }, false, true},
		{"whole-array param", func(tr *contract.TaskRun) { tr.Spec.Script = "echo $(params.url[*])" }, false, true},
		{"nested reference", func(tr *contract.TaskRun) { tr.Spec.Script = "echo $(params.$(params.url))" }, false, false},
		{"unclosed reference", func(tr *contract.TaskRun) { tr.Spec.Script = "echo $(params.url" }, false, true},
		{"step result", func(tr *contract.TaskRun) { tr.Spec.Script = "echo > $(step.results.x.path)" }, false, true},
		{"undeclared workspace path", func(tr *contract.TaskRun) { tr.Spec.Script = "ls $(workspaces.w.path)" }, false, true},
		{"declared workspace path", func(tr *contract.TaskRun) {
			tr.Workspaces = []contract.TaskWorkspace{{Type: "workflow"}}
			tr.Spec.Script = "ls $(workspaces.bmrg-flow-vol-ws-workflow.path)"
		}, false, true},
		{"credentials path", func(tr *contract.TaskRun) { tr.Spec.Script = "ls $(credentials.path)" }, false, true},
		{"pipeline run context", func(tr *contract.TaskRun) { tr.Spec.Script = "echo $(context.pipelineRun.name)" }, false, true},
		{"command substitution of a root word", func(tr *contract.TaskRun) { tr.Spec.Script = "$(tasks list) $(finally)" }, false, true},
		{"reference in a param value", func(tr *contract.TaskRun) {
			tr.Params = append(tr.Params, contract.Param{Name: "v", Value: json.RawMessage(`"$(params.nope)"`)})
		}, false, true},
		{"declared reference in a param value", func(tr *contract.TaskRun) {
			tr.Params = append(tr.Params, contract.Param{Name: "v", Value: json.RawMessage(`"$(params.url)"`)})
		}, true, true},
		{"windows script", func(tr *contract.TaskRun) { tr.Spec.Script = "#!win pwsh\necho hi" }, false, false},
		{"param names equal but for case", func(tr *contract.TaskRun) {
			tr.Params = append(tr.Params, contract.Param{Name: "URL", Value: json.RawMessage(`"x"`)})
		}, false, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			in := minimalTask()
			in.Params = []contract.Param{{Name: "url", Value: json.RawMessage(`"https://example.org"`)}}
			in.Results = []contract.Result{{Name: "out"}}
			tc.edit(in)
			o := testOptions()
			claims := []Claim{{Scope: "workflow", ClaimName: "wf"}}
			task, err := BuildTask(in, claims, "", o)
			if err != nil {
				t.Fatalf("BuildTask: %v", err)
			}
			if got := task.Unvouched == ""; got != tc.vouched {
				t.Errorf("vouched = %v (%q), want %v", got, task.Unvouched, tc.vouched)
			}
			if errs := tektonErrors(t.Context(), task.TaskRun); (len(errs) == 0) != tc.tekton {
				t.Errorf("Tekton's validation: %q, want admitted %v", errs, tc.tekton)
			}
			checkTask(t, task, o)
		})
	}
}

// TestUnvouchedReason checks that Task.Unvouched names what the builders
// could not vouch for, briefly.
func TestUnvouchedReason(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("x", 200)
	tests := []struct{ script, want string }{
		{"echo $(date) $(params.nope) $(params.url)", "reference $(params.nope)"},
		{"echo $(params.url) $(params.url", "reference $(params.url"},
		{"echo $(params." + long + ")", "reference $(params." + long[:71] + "…"},
		{"#!win pwsh", "a Windows script"},
	}
	for _, tc := range tests {
		in := minimalTask()
		in.Params = []contract.Param{{Name: "url", Value: json.RawMessage(`"x"`)}}
		in.Spec.Script = tc.script
		task, err := BuildTask(in, nil, "", testOptions())
		if err != nil || task.Unvouched != tc.want {
			t.Errorf("script %.30q: Unvouched %q, %v; want %q", tc.script, task.Unvouched, err, tc.want)
		}
	}
}
