package tekton

import (
	"encoding/json"
	"errors"
	"testing"

	"github.com/boomerang-io/flow-tekton-handler/internal/contract"
)

// TestVouched checks the fast path against Tekton's own validation: the
// references vouched for build TaskRuns Tekton admits, and anything else
// is left to Tekton (which refuses the unknown ones).
func TestVouched(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		edit    func(*contract.TaskRun)
		vouched bool
	}{
		{"no references", func(*contract.TaskRun) {}, true},
		{"shell substitutions", func(tr *contract.TaskRun) {
			tr.Spec.Script = "echo $(date) $(cat /params/version) $( params) $(Params.x) $"
		}, true},
		{"declared param, result and context", func(tr *contract.TaskRun) {
			tr.Spec.Script = "echo $(params.url) $(context.taskRun.name) > $(results.out.path)"
			tr.Spec.Arguments = []string{"$(params.url)", "$(context.task.retry-count)"}
			tr.Spec.WorkingDir = "/data/$(context.taskRun.uid)"
			tr.Spec.Envs = []contract.EnvVar{{Name: "U", Value: "$(params.url)$(context.taskRun.namespace)"}}
		}, true},
		{"param value with a shell substitution", func(tr *contract.TaskRun) {
			tr.Params = []contract.Param{{Name: "cmd", Value: json.RawMessage(`"$(id -u)"`)}}
		}, true},
		{"undeclared param", func(tr *contract.TaskRun) { tr.Spec.Script = "echo $(params.nope)" }, false},
		{"undeclared result", func(tr *contract.TaskRun) { tr.Spec.Script = "echo > $(results.nope.path)" }, false},
		{"unknown context variable", func(tr *contract.TaskRun) { tr.Spec.WorkingDir = "/$(context.task.bogus)" }, false},
		{"context lookalike", func(tr *contract.TaskRun) { tr.Spec.Arguments = []string{"$(contextXtaskRun.name)"} }, false},
		{"three-part result", func(tr *contract.TaskRun) { tr.Spec.Script = "echo > $(results.out.path.x)" }, false},
		{"bracket param", func(tr *contract.TaskRun) { tr.Spec.Script = `echo $(params["url"])` }, false},
		{"indexed param", func(tr *contract.TaskRun) { tr.Spec.Script = "echo $(params.url[0])" }, false},
		{"nested reference", func(tr *contract.TaskRun) { tr.Spec.Script = "echo $(params.$(params.url))" }, false},
		{"unclosed reference", func(tr *contract.TaskRun) { tr.Spec.Script = "echo $(params.url" }, false},
		{"step result", func(tr *contract.TaskRun) { tr.Spec.Script = "echo > $(step.results.x.path)" }, false},
		{"workspace path", func(tr *contract.TaskRun) { tr.Spec.Script = "ls $(workspaces.w.path)" }, false},
		{"reference in a param value", func(tr *contract.TaskRun) {
			tr.Params = append(tr.Params, contract.Param{Name: "v", Value: json.RawMessage(`"$(params.nope)"`)})
		}, false},
		{"declared reference in a param value", func(tr *contract.TaskRun) {
			tr.Params = append(tr.Params, contract.Param{Name: "v", Value: json.RawMessage(`"$(params.url)"`)})
		}, true},
		{"windows script", func(tr *contract.TaskRun) { tr.Spec.Script = "#!win pwsh\necho hi" }, false},
		{"param names equal but for case", func(tr *contract.TaskRun) {
			tr.Params = append(tr.Params, contract.Param{Name: "URL", Value: json.RawMessage(`"x"`)})
		}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			in := minimalTask()
			in.Params = []contract.Param{{Name: "url", Value: json.RawMessage(`"https://example.org"`)}}
			in.Results = []contract.Result{{Name: "out"}}
			tc.edit(in)
			o := testOptions()
			task, err := BuildTask(in, nil, "", o)
			var be *BuildError
			if errors.As(err, &be) && be.Code == "INVALID_TASK" && !tc.vouched {
				return // judged, and refused, by Tekton's own validation
			}
			if err != nil {
				t.Fatalf("BuildTask: %v", err)
			}
			if got := vouched(task.TaskRun); got != tc.vouched {
				t.Errorf("vouched = %v, want %v", got, tc.vouched)
			}
			checkTask(t, task, o)
		})
	}
}
