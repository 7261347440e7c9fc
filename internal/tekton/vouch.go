package tekton

import (
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"

	pipelinev1 "github.com/boomerang-io/flow-tekton-handler/internal/pipelinev1"
)

// Tekton's own validation is not linked into the program: its package and
// what it brings (OpenTelemetry, gRPC, Prometheus, CEL) cost milliseconds of
// every cold start, and a call cost about a millisecond of CPU (it compiles
// its regular expressions each time). Most of what it checks is the
// builders' making; of what the event controls, the references in the
// step's text, a Windows script and param names equal but for case can
// make Tekton refuse the TaskRun. So the builders vouch for a TaskRun free
// of those but for references of a few forms known to pass; any other
// (Task.Unvouched) is judged by Tekton itself, its admission webhook in a
// dry run, before anything is created. FuzzBuildTask checks, against
// Tekton's own validation, that every TaskRun the builders vouch for passes
// it; TestVouched lists forms Tekton admits that they leave to it.

// tektonRoots are the first words of the variables Tekton's validation
// looks for (and a few more); a "$(" followed by anything else, such as a
// shell's $(date), is not a Tekton reference.
var tektonRoots = []string{"params", "results", "context", "step", "workspaces", "artifacts",
	"inputs", "outputs", "resources", "credentials", "tasks", "finally"}

// contextVars are the context variables a task may reference.
var contextVars = []string{"context.taskRun.name", "context.taskRun.namespace", "context.taskRun.uid",
	"context.task.name", "context.task.retry-count"}

// unvouched returns the first thing in tr that keeps the builders from
// vouching for it, "" when every variable reference in its one step, its
// param values and its workspace paths is a declared string param
// $(params.p), a declared result's $(results.r.path) or a context variable,
// its script is not a Windows one, and no two param names differ only in
// case.
func unvouched(tr *pipelinev1.TaskRun) string {
	spec := tr.Spec.TaskSpec
	if spec == nil || len(spec.Steps) != 1 {
		return "not one inline step"
	}
	s := &spec.Steps[0]
	if strings.Contains(s.Script, "#!win") {
		return "a Windows script"
	}
	var bad string
	ok := func(text string) bool {
		bad = unknownRef(text, spec)
		return bad == ""
	}
	if !ok(s.Name) || !ok(s.Image) || !ok(s.WorkingDir) || !ok(s.Script) ||
		!all(s.Command, ok) || !all(s.Args, ok) ||
		slices.ContainsFunc(s.Env, func(e corev1.EnvVar) bool { return !ok(e.Value) }) ||
		slices.ContainsFunc(s.VolumeMounts, func(m corev1.VolumeMount) bool { return !ok(m.Name) || !ok(m.MountPath) || !ok(m.SubPath) }) ||
		slices.ContainsFunc(spec.Workspaces, func(w pipelinev1.WorkspaceDeclaration) bool { return !ok(w.MountPath) }) {
		return "reference " + bad
	}
	names := make(map[string]bool, len(tr.Spec.Params))
	for _, p := range tr.Spec.Params {
		if p.Value.Type != pipelinev1.ParamTypeString {
			return "param " + p.Name + " is not a string"
		}
		if !ok(p.Value.StringVal) {
			return "reference " + bad + " in param " + p.Name
		}
		// Tekton refuses names that differ only in case (it lowers them).
		lower := strings.ToLower(p.Name)
		if names[lower] {
			return "param names equal but for case: " + p.Name
		}
		names[lower] = true
	}
	return ""
}

// all reports whether ok holds for every text.
func all(texts []string, ok func(string) bool) bool {
	return !slices.ContainsFunc(texts, func(t string) bool { return !ok(t) })
}

// unknownRef returns the first "$(" in text that starts with one of
// tektonRoots and is not a reference known to pass Tekton's validation of
// spec, up to its ")" (or the end of text) and at most maxRef bytes; ""
// when there is none.
func unknownRef(text string, spec *pipelinev1.TaskSpec) string {
	for {
		i := strings.Index(text, "$(")
		if i < 0 {
			return ""
		}
		ref := text[i:]
		text = text[i+2:]
		if !slices.ContainsFunc(tektonRoots, func(root string) bool { return strings.HasPrefix(text, root) }) {
			continue
		}
		end := strings.IndexByte(text, ')')
		if end >= 0 && knownRef(text[:end], spec) {
			text = text[end+1:]
			continue
		}
		if end >= 0 {
			ref = ref[:end+3]
		}
		if len(ref) > maxRef {
			ref = strings.ToValidUTF8(ref[:maxRef], "") + "…"
		}
		return ref
	}
}

// maxRef bounds how much of a reference an error quotes.
const maxRef = 80

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
