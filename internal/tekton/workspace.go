package tekton

import (
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
// workflowrun that ask for storage, and notes what it had to correct.
func PVCs(w *contract.WorkflowRun, o Options) ([]*corev1.PersistentVolumeClaim, []string) {
	var out []*corev1.PersistentVolumeClaim
	var dropped []string
	seen := map[string]bool{}
	for _, ws := range w.Workspaces {
		scope := strings.ToLower(ws.Type)
		if ws.Spec == nil || (scope != contract.ScopeWorkflow && scope != contract.ScopeWorkflowRun) {
			continue
		}
		ref := scopeRef(scope, w)
		if ref == "" || seen[scope] {
			dropped = append(dropped, fmt.Sprintf("workspace %q: no %s reference or repeated scope", ws.Name, scope))
			continue
		}
		seen[scope] = true

		labels := o.baseLabels(contract.TierSpace)
		addRef(labels, contract.LabelWorkflowRef, w.WorkflowRef)
		labels[contract.LabelWorkspaceRef] = LabelValue(ref)
		labels[contract.LabelWorkspaceTyp] = scope
		dropped = append(dropped, mergeLabels(labels, w.Labels)...)
		annotations := map[string]string{
			contract.AnnotationWorkspaceRf: ref,
			contract.AnnotationWorkspaceTy: scope,
			contract.AnnotationSelector:    selector(labels, contract.LabelProduct, contract.LabelTier, contract.LabelWorkspaceRef, contract.LabelWorkspaceTyp),
		}
		if w.WorkflowRef != "" {
			annotations[contract.AnnotationWorkflowRef] = w.WorkflowRef
		}
		if mp := ws.Spec.MountPath; strings.HasPrefix(mp, "/") {
			annotations[AnnotationMountPath] = mp
		}

		mode := o.StorageAccessMode
		if ws.Spec.AccessMode != "" {
			switch m := corev1.PersistentVolumeAccessMode(ws.Spec.AccessMode); m {
			case corev1.ReadWriteOnce, corev1.ReadOnlyMany, corev1.ReadWriteMany, corev1.ReadWriteOncePod:
				mode = m
			default:
				dropped = append(dropped, fmt.Sprintf("workspace %q: access mode %q invalid, using %s", ws.Name, ws.Spec.AccessMode, o.StorageAccessMode))
			}
		}
		size, note := storageSize(ws.Spec.Size, o.StorageSize)
		if note != "" {
			dropped = append(dropped, fmt.Sprintf("workspace %q: %s", ws.Name, note))
		}
		pvc := &corev1.PersistentVolumeClaim{
			TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "PersistentVolumeClaim"},
			ObjectMeta: metav1.ObjectMeta{Name: PVCName(o.Prefix, scope, ref), Namespace: o.Namespace, Labels: labels, Annotations: annotations},
			Spec: corev1.PersistentVolumeClaimSpec{
				AccessModes: []corev1.PersistentVolumeAccessMode{mode},
				Resources:   corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: size}},
			},
		}
		class := ws.Spec.ClassName
		if class == "" {
			class = o.StorageClass
		}
		if class != "" {
			if len(validation.IsDNS1123Subdomain(class)) > 0 {
				dropped = append(dropped, fmt.Sprintf("workspace %q: storage class %q invalid, using the cluster default", ws.Name, class))
			} else {
				pvc.Spec.StorageClassName = &class
			}
		}
		out = append(out, pvc)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, dropped
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
