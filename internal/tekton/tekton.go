// Package tekton builds the Kubernetes and Tekton objects for Engine events
// with pure functions: no client, clock, random or environment. The same
// event and options always give the same objects.
package tekton

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"math"
	"path"
	"regexp"
	"sort"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/boomerang-io/flow-tekton-handler/internal/contract"
	pipelinev1 "github.com/boomerang-io/flow-tekton-handler/internal/pipelinev1"
)

// Options is everything the builders take from configuration (package
// function fills it from the loaded settings).
type Options struct {
	Prefix, Instance, Namespace string
	DefaultTimeout              time.Duration
	ImagePullPolicy             corev1.PullPolicy
	ImagePullSecret             string
	ServiceAccount              string
	NodeSelector                map[string]string
	Tolerations                 []corev1.Toleration
	HostAliases                 []corev1.HostAlias
	// DataMemory allows /data in memory for tasks whose param
	// worker.storage.data.memory is true.
	DataMemory                        bool
	ProxyHost, ProxyPort, ProxyIgnore string
	StorageClass                      string
	StorageSize                       resource.Quantity
	StorageAccessMode                 corev1.PersistentVolumeAccessMode
}

// hashLen is how many hex characters of sha256 a shortened name keeps.
const hashLen = 10

// Name returns "<prefix>-<kind>-<id>" when that is a DNS-1123 label of at
// most 63 characters. Otherwise it sanitises and truncates it and appends a
// short sha256 of the full identity, so that different identities keep
// different names. The result is always a valid DNS-1123 label.
func Name(prefix, kind, id string) string {
	full := prefix + "-" + kind + "-" + id
	if len(validation.IsDNS1123Label(full)) == 0 {
		return full
	}
	sum := sha256.Sum256([]byte(full))
	hash := hex.EncodeToString(sum[:])[:hashLen]
	clean := sanitize(full)
	if max := validation.DNS1123LabelMaxLength - hashLen - 1; len(clean) > max {
		clean = strings.TrimRight(clean[:max], "-")
	}
	if clean == "" {
		return "x-" + hash
	}
	return clean + "-" + hash
}

// sanitize lower-cases s and keeps [a-z0-9-], collapsing other runs to one
// dash and trimming dashes at both ends.
func sanitize(s string) string {
	var b strings.Builder
	dash := false
	for _, r := range strings.ToLower(s) {
		if (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') {
			b.WriteRune(r)
			dash = false
		} else if !dash && b.Len() > 0 {
			b.WriteByte('-')
			dash = true
		}
	}
	return strings.Trim(b.String(), "-")
}

// TaskRunName is the TaskRun's name for an Engine taskrun id.
func TaskRunName(prefix, id string) string { return Name(prefix, "task", id) }

// ConfigMapName is the params ConfigMap's name for an Engine taskrun id.
func ConfigMapName(prefix, id string) string { return Name(prefix, "cfg", id) }

// PVCName is the workspace claim's name for a scope and its reference.
func PVCName(prefix, scope, ref string) string { return Name(prefix, "pvc-"+scope, ref) }

// LabelValue returns v when it is a valid label value, else a sanitised,
// truncated form with a short hash of v.
func LabelValue(v string) string {
	if len(validation.IsValidLabelValue(v)) == 0 {
		return v
	}
	sum := sha256.Sum256([]byte(v))
	hash := hex.EncodeToString(sum[:])[:hashLen]
	clean := strings.Trim(labelChars.ReplaceAllString(v, "-"), "-_.")
	if max := validation.LabelValueMaxLength - hashLen - 1; len(clean) > max {
		clean = strings.TrimRight(clean[:max], "-_.")
	}
	if clean == "" {
		return hash
	}
	return clean + "-" + hash
}

var labelChars = regexp.MustCompile(`[^A-Za-z0-9_.-]+`)

// Claim is an existing workspace claim to attach to a TaskRun.
type Claim struct {
	Scope, ClaimName, MountPath string
}

// Task is what a taskrun event becomes.
type Task struct {
	TaskRun   *pipelinev1.TaskRun
	ConfigMap *corev1.ConfigMap
	// Dropped notes what of the event was left out as invalid, for logs.
	Dropped []string
	// Unvouched says why the builders cannot vouch that Tekton admits
	// TaskRun (see vouch.go), "" when they can. Such a TaskRun must pass
	// Tekton's own validation, which the program does not link, before
	// anything is created for it: the handler asks Tekton's admission
	// webhook in a dry run.
	Unvouched string
}

// ErrUnbuildable marks a task the Engine can identify but that cannot run.
var ErrUnbuildable = errors.New("task cannot be built")

// BuildError says why a task cannot be built, with a code for the Engine.
type BuildError struct{ Code, Message string }

func (e *BuildError) Error() string { return e.Code + ": " + e.Message }

// Is reports whether target is ErrUnbuildable.
func (e *BuildError) Is(target error) bool { return target == ErrUnbuildable }

// dataMemoryParam is the task param that asks for /data in memory.
const dataMemoryParam = "worker.storage.data.memory"

// Volume and mount names and paths.
func (o Options) dataVolume() string   { return o.Prefix + "-vol-data" }
func (o Options) paramsVolume() string { return o.Prefix + "-vol-params" }
func (o Options) workspace(scope string) string {
	return o.Prefix + "-vol-ws-" + strings.ToLower(scope)
}

// baseLabels are on every object we create.
func (o Options) baseLabels(tier string) map[string]string {
	return map[string]string{
		contract.LabelName:      o.Prefix,
		contract.LabelInstance:  o.Instance,
		contract.LabelManagedBy: contract.ManagedBy,
		contract.LabelPartOf:    o.Prefix,
		contract.LabelProduct:   o.Prefix,
		contract.LabelTier:      tier,
	}
}

// addRef sets a system label from an Engine reference when non-empty.
func addRef(labels map[string]string, key, ref string) {
	if ref != "" {
		labels[key] = LabelValue(ref)
	}
}

// mergeLabels adds valid Engine labels that do not override ours and
// returns notes on the ones it dropped.
func mergeLabels(dst, engine map[string]string) []string {
	var dropped []string
	keys := make([]string, 0, len(engine))
	for k := range engine {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		v := engine[k]
		switch {
		case len(validation.IsQualifiedName(k)) > 0:
			dropped = append(dropped, fmt.Sprintf("label %q: invalid key", k))
		case len(validation.IsValidLabelValue(v)) > 0:
			dropped = append(dropped, fmt.Sprintf("label %q: invalid value", k))
		case dst[k] != "" || strings.HasPrefix(k, "boomerang.io/") || strings.HasPrefix(k, "app.kubernetes.io/") || strings.HasPrefix(k, "tekton.dev/"):
			dropped = append(dropped, fmt.Sprintf("label %q: reserved", k))
		default:
			dst[k] = v
		}
	}
	return dropped
}

// selector renders labels as a selector, keys sorted.
func selector(labels map[string]string, keys ...string) string {
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		if v, ok := labels[k]; ok {
			parts = append(parts, k+"="+v)
		}
	}
	return strings.Join(parts, ",")
}

// taskMeta returns the labels and annotations of a task's objects.
func taskMeta(t *contract.TaskRun, o Options) (map[string]string, map[string]string, []string) {
	labels := o.baseLabels(contract.TierTask)
	addRef(labels, contract.LabelWorkflowRef, t.WorkflowRef)
	addRef(labels, contract.LabelWorkflowRun, t.WorkflowRunRef)
	addRef(labels, contract.LabelTaskRunRef, t.ID)
	addRef(labels, contract.LabelTaskRef, t.TaskRef)
	system := selector(labels, contract.LabelProduct, contract.LabelTier, contract.LabelWorkflowRef, contract.LabelWorkflowRun, contract.LabelTaskRunRef)
	dropped := mergeLabels(labels, t.Labels)
	annotations := map[string]string{contract.AnnotationSelector: system}
	if t.WorkflowRef != "" {
		annotations[contract.AnnotationWorkflowRef] = t.WorkflowRef
	}
	return labels, annotations, dropped
}

// DeletionPolicy returns the task's own valid policy, or "" when it names
// none: then the sink's DELETION_POLICY applies when the TaskRun ends.
func DeletionPolicy(t *contract.TaskRun) string { return contract.DeletionPolicy(t.Spec.Deletion) }

var (
	// paramName is Tekton's rule for parameter names.
	paramName = regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_.-]*$`)
	// resultName is Tekton's rule for result names (dots allowed; a task
	// refers to such a result as $(results["a.b"].path)).
	resultName = regexp.MustCompile(pipelinev1.ResultNameFormat)
	// traceparentRe is a W3C trace context header of version 00.
	traceparentRe = regexp.MustCompile(`^00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$`)
)

// reservedEnv are set by the builder; the event cannot replace them.
var reservedEnv = map[string]bool{"DEBUG": true, "CI": true, "PROXY_HOST": true, "PROXY_PORT": true,
	"HTTP_PROXY": true, "HTTPS_PROXY": true, "http_proxy": true, "https_proxy": true, "NO_PROXY": true, "no_proxy": true, "use_proxy": true}

// BuildTask builds the TaskRun and its params ConfigMap for a taskrun
// event, attaching the given workspace claims. Event content that is not
// valid for Kubernetes or Tekton (labels, param, result and env names,
// mount paths, a malformed traceparent) is left out and noted in Dropped;
// of a repeated param name the last value wins. A task that cannot run is
// a *BuildError: NO_TASK_IMAGE, or PARAMS_TOO_LARGE (over a ConfigMap's 1
// MiB). A TaskRun whose variable references the builders cannot vouch for
// (such as $(params.p[*]) of an array param, or an undeclared
// $(params.x)) is built with Task.Unvouched set: Tekton's refusal of it is
// INVALID_TASK.
func BuildTask(t *contract.TaskRun, claims []Claim, traceparent string, o Options) (*Task, error) {
	if strings.TrimSpace(t.Spec.Image) == "" {
		return nil, &BuildError{Code: "NO_TASK_IMAGE", Message: "spec.image is required"}
	}
	labels, annotations, dropped := taskMeta(t, o)
	params, notes := readParams(t.Params)
	dropped = append(dropped, notes...)
	if size := dataSize(params.values); size > corev1.MaxSecretSize {
		return nil, &BuildError{Code: "PARAMS_TOO_LARGE",
			Message: fmt.Sprintf("params take %d bytes; a ConfigMap holds at most %d", size, corev1.MaxSecretSize)}
	}
	spec, notes := taskRunSpec(t, claims, params, o)
	dropped = append(dropped, notes...)
	trAnnotations, notes := taskRunAnnotations(t, annotations, traceparent)
	dropped = append(dropped, notes...)
	timeout, notes := taskTimeout(t.Timeout, o.DefaultTimeout)
	dropped = append(dropped, notes...)
	spec.Timeout = &metav1.Duration{Duration: timeout}

	tr := newTaskRun(TaskRunName(o.Prefix, t.ID), o.Namespace, labels, trAnnotations, spec)
	cm := newConfigMap(ConfigMapName(o.Prefix, t.ID), o.Namespace, maps.Clone(labels), annotations, params.values)
	return &Task{TaskRun: tr, ConfigMap: cm, Dropped: dropped, Unvouched: unvouched(tr)}, nil
}

// taskParams are a task's valid params: their values by name, and the
// names in the order first given.
type taskParams struct {
	names  []string
	values map[string]string
}

// readParams keeps the params whose names are valid for Tekton and as
// ConfigMap keys; of a repeated name the last value wins.
func readParams(in []contract.Param) (taskParams, []string) {
	p := taskParams{values: map[string]string{}}
	var dropped []string
	for _, q := range in {
		switch {
		case !paramName.MatchString(q.Name):
			dropped = append(dropped, fmt.Sprintf("param %q: invalid name", q.Name))
			continue
		case len(validation.IsConfigMapKey(q.Name)) > 0:
			dropped = append(dropped, fmt.Sprintf("param %q: invalid ConfigMap key", q.Name))
			continue
		}
		if _, seen := p.values[q.Name]; !seen {
			p.names = append(p.names, q.Name)
		}
		p.values[q.Name] = contract.ParamString(q.Value)
	}
	return p, dropped
}

// declare returns the task's string params and the TaskRun's values for
// them.
func (p taskParams) declare() ([]pipelinev1.ParamSpec, pipelinev1.Params) {
	var specs []pipelinev1.ParamSpec
	var values pipelinev1.Params
	for _, n := range p.names {
		specs = append(specs, pipelinev1.ParamSpec{Name: n, Type: pipelinev1.ParamTypeString})
		values = append(values, pipelinev1.Param{Name: n, Value: *pipelinev1.NewStructuredValues(p.values[n])})
	}
	return specs, values
}

// taskRunSpec returns the TaskRun's spec but its timeout: the task with
// one step, the claims as its workspaces, and the pod settings.
func taskRunSpec(t *contract.TaskRun, claims []Claim, p taskParams, o Options) (pipelinev1.TaskRunSpec, []string) {
	specParams, runParams := p.declare()
	results, dropped := taskResults(t.Results)
	env, notes := stepEnv(t, o)
	dropped = append(dropped, notes...)
	memory := o.DataMemory && p.values[dataMemoryParam] == "true"
	spec := &pipelinev1.TaskSpec{
		Params:  specParams,
		Results: results,
		Steps:   []pipelinev1.Step{taskStep(t, env, o)},
		Volumes: taskVolumes(ConfigMapName(o.Prefix, t.ID), memory, o),
	}
	var bindings []pipelinev1.WorkspaceBinding
	spec.Workspaces, bindings, notes = taskWorkspaces(t, claims, o)
	dropped = append(dropped, notes...)
	return pipelinev1.TaskRunSpec{
		Params:             runParams,
		TaskSpec:           spec,
		Workspaces:         bindings,
		ServiceAccountName: o.ServiceAccount,
		PodTemplate:        podTemplate(o),
	}, dropped
}

// taskResults declares the event's results, leaving out invalid and
// repeated names.
func taskResults(in []contract.Result) ([]pipelinev1.TaskResult, []string) {
	var results []pipelinev1.TaskResult
	var dropped []string
	seen := map[string]bool{}
	for _, r := range in {
		if !resultName.MatchString(r.Name) || seen[r.Name] {
			dropped = append(dropped, fmt.Sprintf("result %q: invalid or repeated name", r.Name))
			continue
		}
		seen[r.Name] = true
		results = append(results, pipelinev1.TaskResult{Name: r.Name, Type: pipelinev1.ResultsTypeString, Description: r.Description})
	}
	return results, dropped
}

// stepEnv is the proxy variables, DEBUG and CI, then the event's variables
// whose names are valid and not reserved.
func stepEnv(t *contract.TaskRun, o Options) ([]corev1.EnvVar, []string) {
	env := proxyEnv(o)
	env = append(env, corev1.EnvVar{Name: "DEBUG", Value: fmt.Sprint(t.Spec.Debug)}, corev1.EnvVar{Name: "CI", Value: "true"})
	var dropped []string
	for _, e := range t.Spec.Envs {
		switch {
		case len(validation.IsEnvVarName(e.Name)) > 0:
			dropped = append(dropped, fmt.Sprintf("env %q: invalid name", e.Name))
		case reservedEnv[e.Name]:
			dropped = append(dropped, fmt.Sprintf("env %q: reserved", e.Name))
		default:
			env = append(env, corev1.EnvVar{Name: e.Name, Value: e.Value})
		}
	}
	return env, dropped
}

// taskStep is the task's one step: its script, else its command, run in
// its image with /data and /params mounted.
func taskStep(t *contract.TaskRun, env []corev1.EnvVar, o Options) pipelinev1.Step {
	step := pipelinev1.Step{
		Name:            "task",
		Image:           strings.TrimSpace(t.Spec.Image),
		Args:            t.Spec.Arguments,
		WorkingDir:      t.Spec.WorkingDir,
		ImagePullPolicy: o.ImagePullPolicy,
		Env:             env,
		VolumeMounts: []corev1.VolumeMount{
			{Name: o.dataVolume(), MountPath: "/data"},
			{Name: o.paramsVolume(), MountPath: "/params"},
		},
	}
	if strings.TrimSpace(t.Spec.Script) != "" {
		step.Script = t.Spec.Script
	} else if len(t.Spec.Command) > 0 {
		step.Command = t.Spec.Command
	}
	return step
}

// taskVolumes are /data, an empty dir (in memory when memory is set), and
// /params, the params ConfigMap cmName projected.
func taskVolumes(cmName string, memory bool, o Options) []corev1.Volume {
	data := corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}
	if memory {
		data.EmptyDir.Medium = corev1.StorageMediumMemory
	}
	return []corev1.Volume{
		{Name: o.dataVolume(), VolumeSource: data},
		{Name: o.paramsVolume(), VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{
			Sources: []corev1.VolumeProjection{{ConfigMap: &corev1.ConfigMapProjection{LocalObjectReference: corev1.LocalObjectReference{Name: cmName}}}},
		}}},
	}
}

// taskWorkspaces declares and binds the claims, the first of each scope
// workflow and workflowrun, at the mount path mountPath picks.
func taskWorkspaces(t *contract.TaskRun, claims []Claim, o Options) ([]pipelinev1.WorkspaceDeclaration, []pipelinev1.WorkspaceBinding, []string) {
	var decls []pipelinev1.WorkspaceDeclaration
	var bindings []pipelinev1.WorkspaceBinding
	var dropped []string
	seen := map[string]bool{}
	used := map[string]bool{"/data": true, "/params": true}
	for _, c := range claims {
		scope := strings.ToLower(c.Scope)
		if c.ClaimName == "" || seen[scope] || (scope != contract.ScopeWorkflow && scope != contract.ScopeWorkflowRun) {
			continue
		}
		seen[scope] = true
		mount, notes := mountPath(scope, requestedMount(t, scope, c.MountPath), used)
		dropped = append(dropped, notes...)
		if mount == "" {
			continue
		}
		used[path.Clean(mount)] = true
		name := o.workspace(scope)
		decls = append(decls, pipelinev1.WorkspaceDeclaration{Name: name, MountPath: mount})
		bindings = append(bindings, pipelinev1.WorkspaceBinding{Name: name,
			PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: c.ClaimName}})
	}
	return decls, bindings, dropped
}

// requestedMount is where the task asks to mount its workspace of scope
// (the last it names), else def, the claim's.
func requestedMount(t *contract.TaskRun, scope, def string) string {
	mount := def
	for _, w := range t.Workspaces {
		if strings.EqualFold(w.Type, scope) && w.MountPath != "" {
			mount = w.MountPath
		}
	}
	return mount
}

// mountPath returns where a workspace of scope is mounted: at want when it
// is usable, else at /workspace/<scope>, else nowhere ("").
func mountPath(scope, want string, used map[string]bool) (string, []string) {
	var dropped []string
	if want != "" && !usableMount(want, used) {
		dropped = append(dropped, fmt.Sprintf("workspace %s: mount path %q is not absolute or is taken, using the default", scope, want))
		want = ""
	}
	if want == "" {
		want = "/workspace/" + scope
	}
	if !usableMount(want, used) {
		return "", append(dropped, fmt.Sprintf("workspace %s: mount path %q is taken, not attached", scope, want))
	}
	return want, dropped
}

// taskRunAnnotations are the task's annotations and the TaskRun's own: its
// deletion policy and the trace context Tekton continues.
func taskRunAnnotations(t *contract.TaskRun, annotations map[string]string, traceparent string) (map[string]string, []string) {
	out := maps.Clone(annotations)
	var dropped []string
	if policy := DeletionPolicy(t); policy != "" {
		out[contract.AnnotationDeletion] = policy
	} else if t.Spec.Deletion != "" {
		dropped = append(dropped, fmt.Sprintf("deletion %q: not Never, OnSuccess or Always, the sink's DELETION_POLICY applies", t.Spec.Deletion))
	}
	if wellFormedTraceparent(traceparent) {
		out[contract.AnnotationSpanContext] = `{"traceparent":"` + traceparent + `"}`
	} else if traceparent != "" {
		dropped = append(dropped, "traceparent: malformed")
	}
	return out, dropped
}

// taskTimeout is the task's timeout in minutes, at most maxTimeoutMinutes,
// or def when it has none.
func taskTimeout(minutes int64, def time.Duration) (time.Duration, []string) {
	if minutes <= 0 {
		return def, nil
	}
	if minutes > maxTimeoutMinutes {
		return time.Duration(maxTimeoutMinutes) * time.Minute,
			[]string{fmt.Sprintf("timeout %d minutes: above the maximum, using %d", minutes, maxTimeoutMinutes)}
	}
	return time.Duration(minutes) * time.Minute, nil
}

// newTaskRun returns the TaskRun named name running spec.
func newTaskRun(name, namespace string, labels, annotations map[string]string, spec pipelinev1.TaskRunSpec) *pipelinev1.TaskRun {
	return &pipelinev1.TaskRun{
		TypeMeta: metav1.TypeMeta{APIVersion: pipelinev1.SchemeGroupVersion.String(), Kind: "TaskRun"},
		ObjectMeta: metav1.ObjectMeta{
			Name: name, Namespace: namespace, Labels: labels, Annotations: annotations,
			// Kept until the sink has reported it, even when deleted.
			Finalizers: []string{contract.FinalizerReport},
		},
		Spec: spec,
	}
}

// newConfigMap returns the params ConfigMap named name holding data.
func newConfigMap(name, namespace string, labels, annotations, data map[string]string) *corev1.ConfigMap {
	return &corev1.ConfigMap{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "ConfigMap"},
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: namespace, Labels: labels, Annotations: annotations},
		Data:       data,
	}
}

// dataSize is the size the apiserver counts against a ConfigMap's limit.
func dataSize(data map[string]string) int {
	n := 0
	for k, v := range data {
		n += len(k) + len(v)
	}
	return n
}

// maxTimeoutMinutes is the longest timeout a task gets, about 45 years:
// Tekton sets the pod's activeDeadlineSeconds to 1.5 times the timeout and
// the apiserver bounds it to MaxInt32.
const maxTimeoutMinutes = math.MaxInt32 / 90

// usableMount reports whether p is an absolute path other than "/", not
// already used, and not under /tekton/ (Tekton's own mounts) or /params/
// (a read-only projected volume, where no mount point can be made).
func usableMount(p string, used map[string]bool) bool {
	clean := path.Clean(p)
	if !strings.HasPrefix(p, "/") || clean == "/" || used[clean] {
		return false
	}
	for _, dir := range []string{"/tekton", "/params"} {
		if clean == dir || strings.HasPrefix(clean, dir+"/") {
			return false
		}
	}
	return true
}

// wellFormedTraceparent reports whether tp is a W3C traceparent of version 00
// whose trace and parent ids are not all zeros (which W3C declares
// invalid).
func wellFormedTraceparent(tp string) bool {
	return traceparentRe.MatchString(tp) && tp[3:35] != strings.Repeat("0", 32) && tp[36:52] != strings.Repeat("0", 16)
}

// proxyEnv returns the proxy variables when a proxy is configured.
func proxyEnv(o Options) []corev1.EnvVar {
	if o.ProxyHost == "" {
		return nil
	}
	url := "http://" + o.ProxyHost + ":" + o.ProxyPort
	return []corev1.EnvVar{
		{Name: "PROXY_HOST", Value: o.ProxyHost}, {Name: "PROXY_PORT", Value: o.ProxyPort},
		{Name: "HTTP_PROXY", Value: url}, {Name: "HTTPS_PROXY", Value: url},
		{Name: "http_proxy", Value: url}, {Name: "https_proxy", Value: url},
		{Name: "NO_PROXY", Value: o.ProxyIgnore}, {Name: "no_proxy", Value: o.ProxyIgnore},
		{Name: "use_proxy", Value: "on"},
	}
}

// podTemplate returns the pod settings from configuration, nil when none.
func podTemplate(o Options) *pipelinev1.PodTemplate {
	if len(o.NodeSelector) == 0 && len(o.Tolerations) == 0 && len(o.HostAliases) == 0 && o.ImagePullSecret == "" {
		return nil
	}
	pt := &pipelinev1.PodTemplate{NodeSelector: maps.Clone(o.NodeSelector)}
	for _, t := range o.Tolerations {
		pt.Tolerations = append(pt.Tolerations, *t.DeepCopy())
	}
	for _, h := range o.HostAliases {
		pt.HostAliases = append(pt.HostAliases, *h.DeepCopy())
	}
	if o.ImagePullSecret != "" {
		pt.ImagePullSecrets = []corev1.LocalObjectReference{{Name: o.ImagePullSecret}}
	}
	return pt
}

// SetOwner makes tr the controller owner of cm, so Kubernetes deletes the
// ConfigMap with its TaskRun. It does not block the owner's deletion, which
// would need delete permission on the TaskRun's finalizers.
func SetOwner(cm *corev1.ConfigMap, tr *pipelinev1.TaskRun) {
	controller, block := true, false
	cm.OwnerReferences = []metav1.OwnerReference{{
		APIVersion: pipelinev1.SchemeGroupVersion.String(), Kind: "TaskRun",
		Name: tr.Name, UID: tr.UID, Controller: &controller, BlockOwnerDeletion: &block,
	}}
}
