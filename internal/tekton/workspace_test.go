package tekton

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/boomerang-io/flow-tekton-handler/internal/contract"
)

// workflowRun is a WorkflowRun with one workspace of the given type and
// spec JSON.
func workflowRun(t testing.TB, wsType, spec string) *contract.WorkflowRun {
	t.Helper()
	data := `{"id":"65a1f0d9e4b0a1b2c3d4e601","status":"ready","phase":"pending","workflowRef":"65a1f0c2e4b0a1b2c3d4e5f6",
		"workspaces":[{"name":"ws","type":"` + wsType + `","spec":` + spec + `}]}`
	w, err := contract.DecodeWorkflowRun([]byte(data))
	if err != nil {
		t.Fatalf("decode: %v", err)
	}
	return w
}

func TestPVCsSize(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, size string // size is the JSON value; "" leaves it out
		want       string
		note       string
	}{
		{name: "absent", want: "1Gi"},
		{name: "null", size: "null", want: "1Gi"},
		{name: "empty string", size: `""`, want: "1Gi"},
		{name: "numeric string", size: `"5"`, want: "5Gi"},
		{name: "number", size: "5", want: "5Gi"},
		{name: "padded numeric string", size: `" 7 "`, want: "7Gi"},
		{name: "decimal number", size: "1.5", want: "1.5Gi"},
		{name: "decimal string", size: `"0.5"`, want: "512Mi"},
		{name: "largest bare number", size: "1048576", want: "1048576Gi"},
		{name: "bare number too large", size: `"2000000"`, want: "1Gi", note: `workspace "ws": size 2000000 invalid, using 1Gi`},
		{name: "zero decimal", size: "0.0", want: "1Gi", note: `workspace "ws": size 0.0 invalid, using 1Gi`},
		{name: "quantity", size: `"2Gi"`, want: "2Gi"},
		{name: "decimal quantity", size: `"500M"`, want: "500M"},
		{name: "bogus", size: `"bogus"`, want: "1Gi", note: `workspace "ws": size bogus invalid, using 1Gi`},
		{name: "zero", size: "0", want: "1Gi", note: `workspace "ws": size 0 invalid, using 1Gi`},
		{name: "negative", size: `"-1"`, want: "1Gi", note: `workspace "ws": size -1 invalid, using 1Gi`},
		{name: "negative quantity", size: `"-2Gi"`, want: "1Gi", note: `workspace "ws": size -2Gi invalid, using 1Gi`},
		{name: "boolean", size: "true", want: "1Gi", note: `workspaces[0].spec.size: a boolean, not a string or number; using 1Gi`},
		{name: "object", size: `{"a":1}`, want: "1Gi", note: `workspaces[0].spec.size: an object, not a string or number; using 1Gi`},
		{name: "array", size: `["2Gi"]`, want: "1Gi", note: `workspaces[0].spec.size: an array, not a string or number; using 1Gi`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			spec := `{}`
			if tc.size != "" {
				spec = `{"size":` + tc.size + `}`
			}
			o := testOptions()
			pvcs, dropped := PVCs(workflowRun(t, "workflowrun", spec), o)
			if len(pvcs) != 1 {
				t.Fatalf("%d claims, want 1", len(pvcs))
			}
			checkPVCs(t, pvcs, o)
			got := pvcs[0].Spec.Resources.Requests[corev1.ResourceStorage]
			if want := resource.MustParse(tc.want); got.Cmp(want) != 0 {
				t.Errorf("size %s, want %s", got.String(), tc.want)
			}
			var wantDropped []string
			if tc.note != "" {
				wantDropped = []string{tc.note}
			}
			if d := cmp.Diff(wantDropped, dropped); d != "" {
				t.Errorf("dropped (-want +got):\n%s", d)
			}
		})
	}
}

func TestPVCsClassAndAccessMode(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, spec, optionClass string
		wantClass               *string
		wantMode                corev1.PersistentVolumeAccessMode
		note                    string
	}{
		{name: "nothing set", spec: `{}`, wantMode: corev1.ReadWriteMany},
		{name: "empty class", spec: `{"className":""}`, wantMode: corev1.ReadWriteMany},
		{name: "configured class", spec: `{}`, optionClass: "fast", wantClass: ptr("fast"), wantMode: corev1.ReadWriteMany},
		{name: "event class wins", spec: `{"className":"standard"}`, optionClass: "fast", wantClass: ptr("standard"), wantMode: corev1.ReadWriteMany},
		{name: "invalid class", spec: `{"className":"Bad_Class"}`, wantMode: corev1.ReadWriteMany,
			note: `workspace "ws": storage class "Bad_Class" invalid, using the cluster default`},
		{name: "event access mode", spec: `{"accessMode":"ReadWriteOnce"}`, wantMode: corev1.ReadWriteOnce},
		{name: "RWOP", spec: `{"accessMode":"ReadWriteOncePod"}`, wantMode: corev1.ReadWriteOncePod},
		{name: "invalid access mode", spec: `{"accessMode":"rwx"}`, wantMode: corev1.ReadWriteMany,
			note: `workspace "ws": access mode "rwx" invalid, using ReadWriteMany`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			o := testOptions()
			o.StorageClass = tc.optionClass
			pvcs, dropped := PVCs(workflowRun(t, "workflowrun", tc.spec), o)
			if len(pvcs) != 1 {
				t.Fatalf("%d claims, want 1", len(pvcs))
			}
			checkPVCs(t, pvcs, o)
			if d := cmp.Diff(tc.wantClass, pvcs[0].Spec.StorageClassName); d != "" {
				t.Errorf("storageClassName (-want +got):\n%s", d)
			}
			if d := cmp.Diff([]corev1.PersistentVolumeAccessMode{tc.wantMode}, pvcs[0].Spec.AccessModes); d != "" {
				t.Errorf("accessModes (-want +got):\n%s", d)
			}
			var wantDropped []string
			if tc.note != "" {
				wantDropped = []string{tc.note}
			}
			if d := cmp.Diff(wantDropped, dropped); d != "" {
				t.Errorf("dropped (-want +got):\n%s", d)
			}
		})
	}
}

func ptr(s string) *string { return &s }

// TestPVCsWrongTypes checks that a workspace spec, or a field of it, of
// the wrong JSON type decodes, is ignored so that its default applies, and
// is noted by its path; the claim is still built.
func TestPVCsWrongTypes(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name        string
		workspaces  string // the data's workspaces array
		optionClass string
		wantMode    corev1.PersistentVolumeAccessMode
		wantClass   *string
		wantSize    string
		wantMount   string
		wantNotes   []string
	}{{
		name:       "access mode number",
		workspaces: `[{"name":"ws","type":"workflowrun","spec":{"accessMode":5,"size":"3Gi"}}]`,
		wantMode:   corev1.ReadWriteMany, wantSize: "3Gi",
		wantNotes: []string{`workspaces[0].spec.accessMode: a number, not a string; using ReadWriteMany`},
	}, {
		name:       "access mode object",
		workspaces: `[{"name":"ws","type":"workflowrun","spec":{"accessMode":{"mode":"ReadWriteOnce"}}}]`,
		wantMode:   corev1.ReadWriteMany, wantSize: "1Gi",
		wantNotes: []string{`workspaces[0].spec.accessMode: an object, not a string; using ReadWriteMany`},
	}, {
		name:       "class boolean",
		workspaces: `[{"name":"ws","type":"workflowrun","spec":{"className":true,"accessMode":"ReadWriteOnce"}}]`,
		wantMode:   corev1.ReadWriteOnce, wantSize: "1Gi",
		wantNotes: []string{`workspaces[0].spec.className: a boolean, not a string; using the cluster default`},
	}, {
		name:        "class number with a configured class",
		workspaces:  `[{"name":"ws","type":"workflowrun","spec":{"className":7}}]`,
		optionClass: "fast",
		wantMode:    corev1.ReadWriteMany, wantClass: ptr("fast"), wantSize: "1Gi",
		wantNotes: []string{`workspaces[0].spec.className: a number, not a string; using fast`},
	}, {
		name:       "mount path array",
		workspaces: `[{"name":"ws","type":"workflowrun","spec":{"mountPath":["/a"],"className":"standard"}}]`,
		wantMode:   corev1.ReadWriteMany, wantClass: ptr("standard"), wantSize: "1Gi",
		wantNotes: []string{`workspaces[0].spec.mountPath: an array, not a string; ignored`},
	}, {
		name:       "size boolean",
		workspaces: `[{"name":"ws","type":"workflowrun","spec":{"size":false,"mountPath":"/cache"}}]`,
		wantMode:   corev1.ReadWriteMany, wantSize: "1Gi", wantMount: "/cache",
		wantNotes: []string{`workspaces[0].spec.size: a boolean, not a string or number; using 1Gi`},
	}, {
		name:       "every field wrong",
		workspaces: `[{"name":"ws","type":"workflowrun","spec":{"size":{},"mountPath":1,"className":[],"accessMode":false}}]`,
		wantMode:   corev1.ReadWriteMany, wantSize: "1Gi",
		wantNotes: []string{
			`workspaces[0].spec.accessMode: a boolean, not a string; using ReadWriteMany`,
			`workspaces[0].spec.className: an array, not a string; using the cluster default`,
			`workspaces[0].spec.mountPath: a number, not a string; ignored`,
			`workspaces[0].spec.size: an object, not a string or number; using 1Gi`,
		},
	}, {
		name:       "null fields are absent",
		workspaces: `[{"name":"ws","type":"workflowrun","spec":{"size":null,"mountPath":null,"className":null,"accessMode":null}}]`,
		wantMode:   corev1.ReadWriteMany, wantSize: "1Gi",
	}, {
		name:       "spec string",
		workspaces: `[{"name":"ws","type":"workflowrun","spec":"x"}]`,
		wantMode:   corev1.ReadWriteMany, wantSize: "1Gi",
		wantNotes: []string{`workspaces[0].spec: a string, not an object; using the defaults`},
	}, {
		name:       "spec empty array",
		workspaces: `[{"name":"ws","type":"workflowrun","spec":[]}]`,
		wantMode:   corev1.ReadWriteMany, wantSize: "1Gi",
		wantNotes: []string{`workspaces[0].spec: an array, not an object; using the defaults`},
	}, {
		name:        "spec number",
		workspaces:  `[{"name":"ws","type":"workflowrun","spec":5}]`,
		optionClass: "fast",
		wantMode:    corev1.ReadWriteMany, wantClass: ptr("fast"), wantSize: "1Gi",
		wantNotes: []string{`workspaces[0].spec: a number, not an object; using the defaults`},
	}, {
		name:       "spec boolean",
		workspaces: `[{"name":"ws","type":"workflowrun","spec":false}]`,
		wantMode:   corev1.ReadWriteMany, wantSize: "1Gi",
		wantNotes: []string{`workspaces[0].spec: a boolean, not an object; using the defaults`},
	}, {
		// Names match as encoding/json matches struct fields.
		name:       "field names in other cases",
		workspaces: `[{"name":"ws","type":"workflowrun","spec":{"ACCESSMODE":"ReadWriteOnce","ClassName":1}}]`,
		wantMode:   corev1.ReadWriteOnce, wantSize: "1Gi",
		wantNotes: []string{`workspaces[0].spec.className: a number, not a string; using the cluster default`},
	}, {
		name:       "repeated field, last wins",
		workspaces: `[{"name":"ws","type":"workflowrun","spec":{"accessMode":5,"accessMode":"ReadOnlyMany"}}]`,
		wantMode:   corev1.ReadOnlyMany, wantSize: "1Gi",
	}, {
		// The path is the workspace's index in the event; workspaces
		// without a claim are not read.
		name: "index of the workspace",
		workspaces: `[{"name":"t","type":"task","spec":{"accessMode":1}},{"name":"none","type":"workflowrun"},
			{"name":"ws","type":"workflowrun","spec":{"accessMode":2}}]`,
		wantMode: corev1.ReadWriteMany, wantSize: "1Gi",
		wantNotes: []string{`workspaces[2].spec.accessMode: a number, not a string; using ReadWriteMany`},
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			data := `{"id":"65a1f0d9e4b0a1b2c3d4e601","status":"ready","phase":"pending","workspaces":` + tc.workspaces + `}`
			w, err := contract.DecodeWorkflowRun([]byte(data))
			if err != nil {
				t.Fatalf("%s: decode: %v", tc.name, err)
			}
			o := testOptions()
			o.StorageClass = tc.optionClass
			pvcs, dropped := PVCs(w, o)
			if len(pvcs) != 1 {
				t.Fatalf("%s: %d claims, want 1", tc.name, len(pvcs))
			}
			checkPVCs(t, pvcs, o)
			p := pvcs[0]
			if d := cmp.Diff([]corev1.PersistentVolumeAccessMode{tc.wantMode}, p.Spec.AccessModes); d != "" {
				t.Errorf("%s: accessModes (-want +got):\n%s", tc.name, d)
			}
			if d := cmp.Diff(tc.wantClass, p.Spec.StorageClassName); d != "" {
				t.Errorf("%s: storageClassName (-want +got):\n%s", tc.name, d)
			}
			if got := p.Spec.Resources.Requests[corev1.ResourceStorage]; got.Cmp(resource.MustParse(tc.wantSize)) != 0 {
				t.Errorf("%s: size %s, want %s", tc.name, got.String(), tc.wantSize)
			}
			if got := p.Annotations[AnnotationMountPath]; got != tc.wantMount {
				t.Errorf("%s: mount-path annotation %q, want %q", tc.name, got, tc.wantMount)
			}
			if d := cmp.Diff(tc.wantNotes, dropped); d != "" {
				t.Errorf("%s: dropped (-want +got):\n%s", tc.name, d)
			}
		})
	}
}

func TestPVCsScope(t *testing.T) {
	t.Parallel()
	tests := []struct {
		wsType   string
		wantName string // "" for no claim
		wantType string
	}{
		{"workflowrun", "bmrg-flow-pvc-workflowrun-65a1f0d9e4b0a1b2c3d4e601", "workflowrun"},
		{"WorkflowRun", "bmrg-flow-pvc-workflowrun-65a1f0d9e4b0a1b2c3d4e601", "workflowrun"},
		{"WORKFLOWRUN", "bmrg-flow-pvc-workflowrun-65a1f0d9e4b0a1b2c3d4e601", "workflowrun"},
		{"workflow", "bmrg-flow-pvc-workflow-65a1f0c2e4b0a1b2c3d4e5f6", "workflow"},
		{"Workflow", "bmrg-flow-pvc-workflow-65a1f0c2e4b0a1b2c3d4e5f6", "workflow"},
		{"workfowRun", "", ""},
		{"task", "", ""},
		{"", "", ""},
	}
	for _, tc := range tests {
		t.Run("type "+tc.wsType, func(t *testing.T) {
			t.Parallel()
			o := testOptions()
			pvcs, _ := PVCs(workflowRun(t, tc.wsType, `{}`), o)
			if tc.wantName == "" {
				if len(pvcs) != 0 {
					t.Errorf("built %d claims for type %q", len(pvcs), tc.wsType)
				}
				return
			}
			if len(pvcs) != 1 {
				t.Fatalf("%d claims, want 1", len(pvcs))
			}
			checkPVCs(t, pvcs, o)
			p := pvcs[0]
			if p.Name != tc.wantName {
				t.Errorf("name %q, want %q", p.Name, tc.wantName)
			}
			if p.Labels[contract.LabelWorkspaceTyp] != tc.wantType || p.Annotations[contract.AnnotationWorkspaceTy] != tc.wantType {
				t.Errorf("type label %q annotation %q, want %q", p.Labels[contract.LabelWorkspaceTyp], p.Annotations[contract.AnnotationWorkspaceTy], tc.wantType)
			}
		})
	}
}

func TestPVCsSkipped(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, data string
		wantNames  []string
		wantNotes  []string
	}{{
		name: "no spec",
		data: `{"id":"r1","workflowRef":"w1","workspaces":[{"name":"a","type":"workflow"},{"name":"b","type":"workflowrun","spec":null}]}`,
	}, {
		name:      "workflow scope without a workflow ref",
		data:      `{"id":"r1","workspaces":[{"name":"a","type":"workflow","spec":{}},{"name":"b","type":"workflowrun","spec":{}}]}`,
		wantNames: []string{"bmrg-flow-pvc-workflowrun-r1"},
		wantNotes: []string{`workspace "a": no workflow reference or repeated scope`},
	}, {
		name:      "repeated scope",
		data:      `{"id":"r1","workflowRef":"w1","workspaces":[{"name":"a","type":"workflowrun","spec":{}},{"name":"b","type":"WorkflowRun","spec":{"size":"9Gi"}}]}`,
		wantNames: []string{"bmrg-flow-pvc-workflowrun-r1"},
		wantNotes: []string{`workspace "b": no workflowrun reference or repeated scope`},
	}, {
		name:      "sorted by name",
		data:      `{"id":"r1","workflowRef":"w1","workspaces":[{"name":"b","type":"workflowrun","spec":{}},{"name":"a","type":"workflow","spec":{}}]}`,
		wantNames: []string{"bmrg-flow-pvc-workflow-w1", "bmrg-flow-pvc-workflowrun-r1"},
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			w, err := contract.DecodeWorkflowRun([]byte(tc.data))
			if err != nil {
				t.Fatal(err)
			}
			o := testOptions()
			pvcs, dropped := PVCs(w, o)
			checkPVCs(t, pvcs, o)
			var names []string
			for _, p := range pvcs {
				names = append(names, p.Name)
			}
			if d := cmp.Diff(tc.wantNames, names); d != "" {
				t.Errorf("names (-want +got):\n%s", d)
			}
			if d := cmp.Diff(tc.wantNotes, dropped); d != "" {
				t.Errorf("dropped (-want +got):\n%s", d)
			}
		})
	}
}

// TestPVCsMountPath checks that only absolute mount paths are recorded.
func TestPVCsMountPath(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ in, want string }{{"/workspace/build", "/workspace/build"}, {"relative", ""}, {"", ""}} {
		t.Run("path "+tc.in, func(t *testing.T) {
			t.Parallel()
			spec, _ := json.Marshal(map[string]string{"mountPath": tc.in})
			pvcs, _ := PVCs(workflowRun(t, "workflow", string(spec)), testOptions())
			if got := pvcs[0].Annotations[AnnotationMountPath]; got != tc.want {
				t.Errorf("mount-path annotation %q, want %q", got, tc.want)
			}
		})
	}
}

// TestSelectorsMatchPVCs builds claims for ordinary and awkward references
// and checks that the selectors the handler uses find exactly them, and
// that Claims maps them back to scopes.
func TestSelectorsMatchPVCs(t *testing.T) {
	t.Parallel()
	tests := []struct{ name, workflow, run string }{
		{"engine ids", "65a1f0c2e4b0a1b2c3d4e5f6", "65a1f0d9e4b0a1b2c3d4e601"},
		{"refs needing hashes", "Workflow ID with spaces", strings.Repeat("r", 80)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			data, _ := json.Marshal(map[string]any{
				"id": tc.run, "workflowRef": tc.workflow,
				"workspaces": []map[string]any{
					{"name": "wf", "type": "Workflow", "spec": map[string]any{"mountPath": "/workspace/wf"}},
					{"name": "run", "type": "workflowrun", "spec": map[string]any{}},
				},
			})
			w, err := contract.DecodeWorkflowRun(data)
			if err != nil {
				t.Fatal(err)
			}
			o := testOptions()
			pvcs, _ := PVCs(w, o)
			checkPVCs(t, pvcs, o)
			if len(pvcs) != 2 {
				t.Fatalf("%d claims, want 2", len(pvcs))
			}
			byScope := map[string]*corev1.PersistentVolumeClaim{}
			var listed []corev1.PersistentVolumeClaim
			for _, p := range pvcs {
				byScope[p.Labels[contract.LabelWorkspaceTyp]] = p
				listed = append(listed, *p)
			}

			// The handler finds the claims by these names.
			for scope, ref := range map[string]string{contract.ScopeWorkflow: tc.workflow, contract.ScopeWorkflowRun: tc.run} {
				if got, want := byScope[scope].Name, PVCName(o.Prefix, scope, ref); got != want {
					t.Errorf("%s claim named %s, want %s", scope, got, want)
				}
			}
			for scope, ref := range map[string]string{contract.ScopeWorkflow: tc.workflow, contract.ScopeWorkflowRun: tc.run} {
				sel, err := labels.Parse(WorkspaceSelector(o.Prefix, scope, ref))
				if err != nil {
					t.Fatalf("WorkspaceSelector does not parse: %v", err)
				}
				for s, p := range byScope {
					if got := sel.Matches(labels.Set(p.Labels)); got != (s == scope) {
						t.Errorf("WorkspaceSelector(%s) matches %s: %v", scope, p.Name, got)
					}
				}
			}

			want := []Claim{
				{Scope: contract.ScopeWorkflow, ClaimName: byScope[contract.ScopeWorkflow].Name, MountPath: "/workspace/wf"},
				{Scope: contract.ScopeWorkflowRun, ClaimName: byScope[contract.ScopeWorkflowRun].Name},
			}
			if d := cmp.Diff(want, Claims(listed, tc.workflow, tc.run)); d != "" {
				t.Errorf("Claims (-want +got):\n%s", d)
			}
		})
	}
}

func TestWorkspaceSelector(t *testing.T) {
	t.Parallel()
	got := WorkspaceSelector("bmrg-flow", "workflowrun", "65a1f0d9e4b0a1b2c3d4e601")
	want := "boomerang.io/product=bmrg-flow,boomerang.io/tier=workspace,boomerang.io/workspace-type=workflowrun,boomerang.io/workspace-ref=65a1f0d9e4b0a1b2c3d4e601"
	if got != want {
		t.Errorf("WorkspaceSelector = %q, want %q", got, want)
	}
}

func TestClaims(t *testing.T) {
	t.Parallel()
	now := metav1.Now()
	claim := func(name, scope, ref, mount string, deleting bool) corev1.PersistentVolumeClaim {
		p := corev1.PersistentVolumeClaim{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{
			contract.LabelProduct: "bmrg-flow", contract.LabelTier: contract.TierSpace,
			contract.LabelWorkspaceTyp: scope, contract.LabelWorkspaceRef: ref,
		}}}
		if mount != "" {
			p.Annotations = map[string]string{AnnotationMountPath: mount}
		}
		if deleting {
			p.DeletionTimestamp = &now
		}
		return p
	}
	listed := []corev1.PersistentVolumeClaim{
		claim("run-claim", "workflowrun", "r1", "", false),
		claim("other-run", "workflowrun", "r2", "", false),
		claim("wf-claim", "workflow", "w1", "/workspace/shared", false),
		claim("wrong-scope", "workflow", "r1", "", false),
		claim("unknown-scope", "task", "w1", "", false),
		claim("deleting", "workflowrun", "r1", "", true),
	}
	tests := []struct {
		name          string
		workflow, run string
		pvcs          []corev1.PersistentVolumeClaim
		want          []Claim
	}{{
		name: "both scopes", workflow: "w1", run: "r1", pvcs: listed,
		want: []Claim{{Scope: "workflow", ClaimName: "wf-claim", MountPath: "/workspace/shared"}, {Scope: "workflowrun", ClaimName: "run-claim"}},
	}, {
		name: "run only", run: "r1", pvcs: listed,
		want: []Claim{{Scope: "workflowrun", ClaimName: "run-claim"}},
	}, {
		name: "workflow only", workflow: "w1", pvcs: listed,
		want: []Claim{{Scope: "workflow", ClaimName: "wf-claim", MountPath: "/workspace/shared"}},
	}, {
		name: "only one being deleted", workflow: "w1", run: "r1",
		pvcs: []corev1.PersistentVolumeClaim{claim("deleting", "workflowrun", "r1", "", true)},
	}, {
		name: "no refs", pvcs: listed,
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if d := cmp.Diff(tc.want, Claims(tc.pvcs, tc.workflow, tc.run)); d != "" {
				t.Errorf("Claims (-want +got):\n%s", d)
			}
		})
	}
}
