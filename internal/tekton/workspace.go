package tekton

import (
	"bytes"
	"encoding/json"
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/boomerang-io/flow-tekton-handler/internal/contract"
)

// AnnotationMountPath records on a claim where tasks mount it.
const AnnotationMountPath = "boomerang.io/mount-path"

// scopeRef returns the reference a workspace scope is keyed by: the workflow
// for scope workflow (it outlives runs), the run for scope workflowrun.
func scopeRef(scope string, w *contract.WorkflowRun) string {
	if scope == contract.ScopeWorkflow {
		return w.WorkflowRef
	}
	return w.ID
}

// PVCs builds the claims of a WorkflowRun's workspaces of scope workflow or
// workflowrun that ask for storage (have a spec), and notes what it had to
// correct. A spec, or a field of it, of the wrong type never keeps a claim
// from being built: its default applies and it is noted by its path
// (readSpec).
func PVCs(w *contract.WorkflowRun, o Options) ([]*corev1.PersistentVolumeClaim, []string) {
	var out []*corev1.PersistentVolumeClaim
	var dropped []string
	seen := map[string]bool{}
	for i, ws := range w.Workspaces {
		scope := strings.ToLower(ws.Type)
		if !present(ws.Spec) || (scope != contract.ScopeWorkflow && scope != contract.ScopeWorkflowRun) {
			continue
		}
		ref := scopeRef(scope, w)
		if ref == "" || seen[scope] {
			dropped = append(dropped, fmt.Sprintf("workspace %q: no %s reference or repeated scope", ws.Name, scope))
			continue
		}
		seen[scope] = true
		pvc, notes := buildPVC(w, i, scope, ref, o)
		dropped = append(dropped, notes...)
		out = append(out, pvc)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, dropped
}

// buildPVC builds the claim of w's workspace i, of scope and keyed by ref.
func buildPVC(w *contract.WorkflowRun, i int, scope, ref string, o Options) (*corev1.PersistentVolumeClaim, []string) {
	ws := w.Workspaces[i]
	spec, dropped := readSpec(ws.Spec, fmt.Sprintf("workspaces[%d].spec", i), o)
	labels, annotations, notes := pvcMeta(w, scope, ref, spec.MountPath, o)
	dropped = append(dropped, notes...)
	mode, modeNote := accessMode(spec.AccessMode, o.StorageAccessMode)
	size, sizeNote := storageSize(spec.Size, o.StorageSize)
	class, classNote := storageClass(spec.ClassName, o.StorageClass)
	for _, note := range []string{modeNote, sizeNote, classNote} {
		if note != "" {
			dropped = append(dropped, fmt.Sprintf("workspace %q: %s", ws.Name, note))
		}
	}
	return &corev1.PersistentVolumeClaim{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "PersistentVolumeClaim"},
		ObjectMeta: metav1.ObjectMeta{Name: PVCName(o.Prefix, scope, ref), Namespace: o.Namespace, Labels: labels, Annotations: annotations},
		Spec: corev1.PersistentVolumeClaimSpec{
			AccessModes:      []corev1.PersistentVolumeAccessMode{mode},
			Resources:        corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: size}},
			StorageClassName: class,
		},
	}, dropped
}

// pvcMeta returns the labels and annotations of the claim of scope keyed
// by ref, and notes on the run's labels it left out.
func pvcMeta(w *contract.WorkflowRun, scope, ref, mountPath string, o Options) (map[string]string, map[string]string, []string) {
	labels := o.baseLabels(contract.TierSpace)
	addRef(labels, contract.LabelWorkflowRef, w.WorkflowRef)
	labels[contract.LabelWorkspaceRef] = LabelValue(ref)
	labels[contract.LabelWorkspaceTyp] = scope
	dropped := mergeLabels(labels, w.Labels)
	annotations := map[string]string{
		contract.AnnotationWorkspaceRf: ref,
		contract.AnnotationWorkspaceTy: scope,
		contract.AnnotationSelector:    selector(labels, contract.LabelProduct, contract.LabelTier, contract.LabelWorkspaceRef, contract.LabelWorkspaceTyp),
	}
	if w.WorkflowRef != "" {
		annotations[contract.AnnotationWorkflowRef] = w.WorkflowRef
	}
	if strings.HasPrefix(mountPath, "/") {
		annotations[AnnotationMountPath] = mountPath
	}
	return labels, annotations, dropped
}

// ValidAccessMode reports whether m is a PersistentVolume access mode a
// workspace claim may have: the one rule for STORAGE_ACCESS_MODE and for a
// workspace's own accessMode.
func ValidAccessMode(m corev1.PersistentVolumeAccessMode) bool {
	switch m {
	case corev1.ReadWriteOnce, corev1.ReadOnlyMany, corev1.ReadWriteMany, corev1.ReadWriteOncePod:
		return true
	}
	return false
}

// accessMode returns the access mode a workspace asks for when valid, else
// def, with a note when it asked for an invalid one.
func accessMode(want string, def corev1.PersistentVolumeAccessMode) (corev1.PersistentVolumeAccessMode, string) {
	switch m := corev1.PersistentVolumeAccessMode(want); {
	case m == "":
		return def, ""
	case ValidAccessMode(m):
		return m, ""
	}
	return def, fmt.Sprintf("access mode %q invalid, using %s", want, def)
}

// storageClass returns the storage class a workspace asks for, else def;
// nil (the cluster default) when neither is set or the one picked is
// invalid, then with a note.
func storageClass(want, def string) (*string, string) {
	class := want
	if class == "" {
		class = def
	}
	if class == "" {
		return nil, ""
	}
	if len(validation.IsDNS1123Subdomain(class)) > 0 {
		return nil, fmt.Sprintf("storage class %q invalid, using the cluster default", class)
	}
	return &class, ""
}

// workspaceSpec is the storage a workflow workspace asks for, as readSpec
// reads it from the event's raw spec. Size may be a string ("2Gi") or a
// bare number (meaning Gi); the other fields are strings.
type workspaceSpec struct {
	AccessMode string
	ClassName  string
	MountPath  string
	Size       json.RawMessage
}

// present reports whether a raw JSON value is there and not null: for a
// workspace's spec, whether it asks for storage, whatever the type.
func present(raw json.RawMessage) bool {
	raw = bytes.TrimSpace(raw)
	return len(raw) > 0 && !bytes.Equal(raw, []byte("null"))
}

// readSpec reads a workspace's raw spec field by field. A spec that is not
// a JSON object, or a field of the wrong type, is ignored, so that its
// default applies (Options' access mode, class and size; the tasks'
// mount path), and noted by its path, path being the spec's
// ("workspaces[0].spec"). Field names match as encoding/json matches
// them: case-insensitively, the last of repeated ones winning.
func readSpec(raw json.RawMessage, path string, o Options) (workspaceSpec, []string) {
	var fields struct {
		AccessMode json.RawMessage `json:"accessMode"`
		ClassName  json.RawMessage `json:"className"`
		MountPath  json.RawMessage `json:"mountPath"`
		Size       json.RawMessage `json:"size"`
	}
	if err := json.Unmarshal(raw, &fields); err != nil {
		return workspaceSpec{}, []string{fmt.Sprintf("%s: %s, not an object; using the defaults", path, jsonType(raw))}
	}
	var spec workspaceSpec
	var notes []string
	str := func(name string, v json.RawMessage, dst *string, def string) {
		if !present(v) {
			return
		}
		if err := json.Unmarshal(v, dst); err != nil {
			*dst = ""
			notes = append(notes, fmt.Sprintf("%s.%s: %s, not a string; %s", path, name, jsonType(v), def))
		}
	}
	str("accessMode", fields.AccessMode, &spec.AccessMode, "using "+string(o.StorageAccessMode))
	class := "using the cluster default"
	if o.StorageClass != "" {
		class = "using " + o.StorageClass
	}
	str("className", fields.ClassName, &spec.ClassName, class)
	str("mountPath", fields.MountPath, &spec.MountPath, "ignored")
	switch t := jsonType(fields.Size); {
	case !present(fields.Size):
	case t == "a string" || t == "a number":
		spec.Size = fields.Size
	default:
		notes = append(notes, fmt.Sprintf("%s.size: %s, not a string or number; using %s", path, t, o.StorageSize.String()))
	}
	return spec, notes
}

// jsonType names the type of a JSON value, with its article.
func jsonType(v json.RawMessage) string {
	v = bytes.TrimSpace(v)
	if !json.Valid(v) {
		return "invalid JSON"
	}
	switch v[0] {
	case '{':
		return "an object"
	case '[':
		return "an array"
	case '"':
		return "a string"
	case 't', 'f':
		return "a boolean"
	case 'n':
		return "null"
	}
	return "a number"
}

// maxBareSize bounds a unit-less workspace size, in Gi (1 PiB).
const maxBareSize = 1 << 20

// bareNumber is a unit-less size such as 5 or 1.5.
var bareNumber = regexp.MustCompile(`^[0-9]+(\.[0-9]+)?$`)

// storageSize reads a workspace size: a bare number (JSON number or numeric
// string, up to maxBareSize) means Gi; anything else must be a positive
// quantity, else the default is used with a note.
func storageSize(raw json.RawMessage, def resource.Quantity) (resource.Quantity, string) {
	s := strings.TrimSpace(string(raw))
	if s == "" || s == "null" {
		return def, ""
	}
	var str string
	if json.Unmarshal(raw, &str) == nil {
		s = strings.TrimSpace(str)
	}
	if s == "" {
		return def, ""
	}
	if bareNumber.MatchString(s) {
		if n, err := strconv.ParseFloat(s, 64); err == nil && n > 0 && n <= maxBareSize {
			if q, err := resource.ParseQuantity(s + "Gi"); err == nil {
				return q, ""
			}
		}
		return def, fmt.Sprintf("size %s invalid, using %s", s, def.String())
	}
	q, err := resource.ParseQuantity(s)
	if err != nil || q.Sign() <= 0 {
		return def, fmt.Sprintf("size %s invalid, using %s", s, def.String())
	}
	return q, ""
}

// WorkspaceSelector selects the claims of one scope and reference.
func WorkspaceSelector(prefix, scope, ref string) string {
	return fmt.Sprintf("%s=%s,%s=%s,%s=%s,%s=%s", contract.LabelProduct, prefix, contract.LabelTier, contract.TierSpace,
		contract.LabelWorkspaceTyp, scope, contract.LabelWorkspaceRef, LabelValue(ref))
}

// Claims picks from listed claims the ones a task mounts: the workflow's
// and the run's, skipping claims being deleted.
func Claims(pvcs []corev1.PersistentVolumeClaim, workflowRef, workflowRunRef string) []Claim {
	want := map[string]string{}
	if workflowRef != "" {
		want[contract.ScopeWorkflow] = LabelValue(workflowRef)
	}
	if workflowRunRef != "" {
		want[contract.ScopeWorkflowRun] = LabelValue(workflowRunRef)
	}
	var out []Claim
	for _, p := range pvcs {
		scope := p.Labels[contract.LabelWorkspaceTyp]
		if p.DeletionTimestamp != nil || want[scope] == "" || p.Labels[contract.LabelWorkspaceRef] != want[scope] {
			continue
		}
		out = append(out, Claim{Scope: scope, ClaimName: p.Name, MountPath: p.Annotations[AnnotationMountPath]})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Scope < out[j].Scope })
	return out
}
