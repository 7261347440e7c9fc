package tekton

import (
	"context"
	"slices"
	"strings"

	pipelinev1 "github.com/tektoncd/pipeline/pkg/apis/pipeline/v1"
)

// Tekton's own validation of a TaskRun costs about a millisecond of CPU per
// call (it compiles its regular expressions each time), most of it spent
// looking for $(...) variable references. Most of what it checks is the
// builders' making; of what the event controls, the references in the
// step's text, a Windows script and param names equal but for case can
// make Tekton refuse the TaskRun. So a TaskRun free of those but for
// references of a few forms known to pass skips it, and any other is
// judged by Tekton's Validate. FuzzBuildTask checks that every TaskRun the
// builders return passes Tekton's validation, the skipped ones included.

// tektonRoots are the first words of the variables Tekton's validation
// looks for (and a few more); a "$(" followed by anything else, such as a
// shell's $(date), is not a Tekton reference.
var tektonRoots = []string{"params", "results", "context", "step", "workspaces", "artifacts",
	"inputs", "outputs", "resources", "credentials", "tasks", "finally"}

// contextVars are the context variables a task may reference.
var contextVars = []string{"context.taskRun.name", "context.taskRun.namespace", "context.taskRun.uid",
	"context.task.name", "context.task.retry-count"}

// validate returns Tekton's verdict on tr, asking Tekton only when vouched
// cannot answer for it.
func validate(tr *pipelinev1.TaskRun) error {
	if vouched(tr) {
		return nil
	}
	if err := tr.Validate(context.Background()); err != nil {
		return err
	}
	return nil
}

// vouched reports whether every variable reference in tr's one step, its
// param values and its workspace paths is a declared string param
// $(params.p), a declared result's $(results.r.path) or a context variable,
// its script is not a Windows one, and no two param names differ only in
// case.
func vouched(tr *pipelinev1.TaskRun) bool {
	spec := tr.Spec.TaskSpec
	if spec == nil || len(spec.Steps) != 1 || spec.StepTemplate != nil || len(spec.Sidecars) > 0 {
		return false
	}
	s := &spec.Steps[0]
	if strings.Contains(s.Script, "#!win") {
		return false
	}
	ok := func(text string) bool { return knownRefs(text, spec) }
	if !ok(s.Name) || !ok(s.Image) || !ok(s.WorkingDir) || !ok(s.Script) ||
		!all(s.Command, ok) || !all(s.Args, ok) {
		return false
	}
	for _, e := range s.Env {
		if !ok(e.Value) {
			return false
		}
	}
	for _, m := range s.VolumeMounts {
		if !ok(m.Name) || !ok(m.MountPath) || !ok(m.SubPath) {
			return false
		}
	}
	names := make(map[string]bool, len(tr.Spec.Params))
	for _, p := range tr.Spec.Params {
		if p.Value.Type != pipelinev1.ParamTypeString || !ok(p.Value.StringVal) {
			return false
		}
		// Tekton refuses names that differ only in case (it lowers them).
		lower := strings.ToLower(p.Name)
		if names[lower] {
			return false
		}
		names[lower] = true
	}
	for _, w := range spec.Workspaces {
		if !ok(w.MountPath) {
			return false
		}
	}
	return true
}

// all reports whether ok holds for every text.
func all(texts []string, ok func(string) bool) bool {
	return !slices.ContainsFunc(texts, func(t string) bool { return !ok(t) })
}

// knownRefs reports whether every "$(" in text that starts with one of
// tektonRoots is a reference known to pass Tekton's validation of spec.
func knownRefs(text string, spec *pipelinev1.TaskSpec) bool {
	for {
		i := strings.Index(text, "$(")
		if i < 0 {
			return true
		}
		text = text[i+2:]
		if !slices.ContainsFunc(tektonRoots, func(root string) bool { return strings.HasPrefix(text, root) }) {
			continue
		}
		end := strings.IndexByte(text, ')')
		if end < 0 || !knownRef(text[:end], spec) {
			return false
		}
		text = text[end+1:]
	}
}

// knownRef reports whether ref (what is between "$(" and ")") is a
// declared string param, a declared result's path or a context variable.
func knownRef(ref string, spec *pipelinev1.TaskSpec) bool {
	if name, ok := strings.CutPrefix(ref, "params."); ok {
		return plainName(name) && slices.ContainsFunc(spec.Params, func(p pipelinev1.ParamSpec) bool {
			return p.Name == name && p.Type == pipelinev1.ParamTypeString
		})
	}
	if rest, ok := strings.CutPrefix(ref, "results."); ok {
		name, ok := strings.CutSuffix(rest, ".path")
		return ok && plainName(name) && slices.ContainsFunc(spec.Results, func(r pipelinev1.TaskResult) bool {
			return r.Name == name
		})
	}
	return slices.Contains(contextVars, ref)
}

// plainName reports whether name is non-empty and only letters, digits,
// '_' and '-': a name Tekton reads the same in any reference.
func plainName(name string) bool {
	if name == "" {
		return false
	}
	for _, c := range name {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}
