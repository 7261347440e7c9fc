package pipelinev1_test

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	tektonv1 "github.com/tektoncd/pipeline/pkg/apis/pipeline/v1"
	tektonv1beta1 "github.com/tektoncd/pipeline/pkg/apis/pipeline/v1beta1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"knative.dev/pkg/apis"

	pipelinev1 "github.com/boomerang-io/flow-tekton-handler/internal/pipelinev1"
	"github.com/boomerang-io/flow-tekton-handler/internal/pipelinev1/pipelinev1test"
	"github.com/boomerang-io/flow-tekton-handler/test/fixtures"
)

// TestFieldsMatchTekton checks every field of the mirror, down from
// TaskRun and TaskRunList, against the field of the same name in Tekton's
// type (promoted through inline embedding as Tekton's status is): the same
// JSON tag, and the same type where the mirror uses Kubernetes' own, the
// same kind of value where it declares its own.
func TestFieldsMatchTekton(t *testing.T) {
	t.Parallel()
	for _, pair := range [][2]any{{pipelinev1.TaskRun{}, tektonv1.TaskRun{}}, {pipelinev1.TaskRunList{}, tektonv1.TaskRunList{}}} {
		for _, e := range sameShape(reflect.TypeOf(pair[0]), reflect.TypeOf(pair[1]), reflect.TypeOf(pair[0]).Name()) {
			t.Error(e)
		}
	}
}

// volatileTime is knative's apis.VolatileTime, which the mirror's
// Condition declares as the metav1.Time it wraps and marshals as.
var volatileTime = reflect.TypeOf(apis.VolatileTime{})

// sameShape lists how the mirror's type m differs from Tekton's r at path.
func sameShape(m, r reflect.Type, path string) []string {
	switch {
	case m == r, m == reflect.TypeOf(metav1.Time{}) && r == volatileTime:
		return nil
	case m.Kind() != r.Kind():
		return []string{fmt.Sprintf("%s: %s, Tekton's %s", path, m, r)}
	case m.PkgPath() != "" && !ours(m):
		return []string{fmt.Sprintf("%s: %s, Tekton's %s", path, m, r)} // another package's type must be Tekton's
	}
	switch m.Kind() {
	case reflect.Pointer, reflect.Slice:
		return sameShape(m.Elem(), r.Elem(), path+"[]")
	case reflect.Map:
		return append(sameShape(m.Key(), r.Key(), path+"{key}"), sameShape(m.Elem(), r.Elem(), path+"{}")...)
	case reflect.Struct:
		var errs []string
		for i := range m.NumField() {
			f := m.Field(i)
			rf, ok := r.FieldByName(f.Name)
			switch {
			case !ok:
				errs = append(errs, fmt.Sprintf("%s.%s: not in Tekton's %s", path, f.Name, r))
			case f.Tag.Get("json") != rf.Tag.Get("json"):
				errs = append(errs, fmt.Sprintf("%s.%s: json tag %q, Tekton's %q", path, f.Name, f.Tag.Get("json"), rf.Tag.Get("json")))
			default:
				errs = append(errs, sameShape(f.Type, rf.Type, path+"."+f.Name)...)
			}
		}
		return errs
	}
	return nil // strings and numbers of the same kind
}

// fixtureTaskRuns are the TaskRuns of the Tekton event fixtures as JSON:
// as the events carry them (tekton.dev/v1beta1), and converted by Tekton
// to tekton.dev/v1, as the apiserver serves them to the program.
func fixtureTaskRuns(t *testing.T) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	for _, name := range fixtures.Glob(t, "tekton-*.json") {
		var ev struct {
			TaskRun json.RawMessage `json:"taskRun"`
		}
		if err := json.Unmarshal(fixtures.Data(t, name), &ev); err != nil {
			t.Fatal(err)
		}
		out[name+" as sent"] = ev.TaskRun
		// Tekton's events carry v1beta1, deprecated; Tekton's own
		// conversion makes the v1 object the apiserver serves.
		var beta tektonv1beta1.TaskRun //lint:ignore SA1019 the events' version
		v1 := &tektonv1.TaskRun{}
		if err := json.Unmarshal(ev.TaskRun, &beta); err != nil {
			t.Fatal(err)
		}
		if err := beta.ConvertTo(context.Background(), v1); err != nil {
			t.Fatal(err)
		}
		v1.APIVersion = "tekton.dev/v1"
		out[name+" as v1"] = marshal(t, v1)
	}
	return out
}

// TestFixturesReadAsTekton decodes Tekton's TaskRuns into the mirror and
// into Tekton's type: every value the mirror holds is the one Tekton's type
// holds (the mirror's JSON, read back by Tekton's type, is part of
// Tekton's), the mirror reads the same from either JSON, and its methods
// answer as Tekton's.
func TestFixturesReadAsTekton(t *testing.T) {
	t.Parallel()
	for name, raw := range fixtureTaskRuns(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			mirror, real := decodeBoth(t, raw)
			if mirror.Status.GetCondition(pipelinev1.ConditionSucceeded) == nil || mirror.Status.PodName == "" {
				t.Fatal("the fixture lacks what the program reads")
			}
			back, err := pipelinev1test.ToTekton(mirror)
			if err != nil {
				t.Fatal(err)
			}
			if err := pipelinev1test.Contained("", generic(t, back), generic(t, real), func(any) bool { return true }); err != nil {
				t.Errorf("the mirror's TaskRun is not part of Tekton's: %v", err)
			}
			via, err := pipelinev1test.FromTekton(real)
			if err != nil {
				t.Fatal(err)
			}
			if d := cmp.Diff(mirror, via); d != "" {
				t.Errorf("read directly and through Tekton's type (-direct +through):\n%s", d)
			}
			if got, want := methods(mirror), tektonMethods(real); got != want {
				t.Errorf("methods %+v, Tekton's %+v", got, want)
			}
		})
	}
}

// generic returns v's JSON decoded as generic values.
func generic(t *testing.T, v any) any {
	t.Helper()
	var out any
	if err := json.Unmarshal(marshal(t, v), &out); err != nil {
		t.Fatal(err)
	}
	return out
}

// answers are what a TaskRun's methods say, and its Succeeded condition.
type answers struct {
	done, pending, cancelled, isTrue, isUnknown, found bool
	cond                                               string
}

func methods(tr *pipelinev1.TaskRun) answers {
	c := tr.Status.GetCondition(pipelinev1.ConditionSucceeded)
	a := answers{done: tr.IsDone(), pending: tr.IsPending(), cancelled: tr.IsCancelled(), isTrue: c.IsTrue(), isUnknown: c.IsUnknown(), found: c != nil}
	if c != nil {
		a.cond = fmt.Sprint(c.Type, c.Status, c.Severity, c.LastTransitionTime.UTC(), c.Reason, c.Message)
	}
	return a
}

func tektonMethods(tr *tektonv1.TaskRun) answers {
	c := tr.Status.GetCondition(apis.ConditionSucceeded)
	a := answers{done: tr.IsDone(), pending: tr.IsPending(), cancelled: tr.IsCancelled(), isTrue: c.IsTrue(), isUnknown: c.IsUnknown(), found: c != nil}
	if c != nil {
		a.cond = fmt.Sprint(c.Type, c.Status, c.Severity, c.LastTransitionTime.Inner.UTC(), c.Reason, c.Message)
	}
	return a
}

// TestMethodsAgreeWithTekton runs the methods copied from Tekton and
// knative, and Tekton's own, on the same TaskRuns.
func TestMethodsAgreeWithTekton(t *testing.T) {
	t.Parallel()
	tests := []struct{ name, spec, status string }{
		{"new", `{}`, `{}`},
		{"pending", `{"status":"TaskRunPending"}`, `{}`},
		{"cancelled, still running", `{"status":"TaskRunCancelled"}`, `{"conditions":[{"type":"Succeeded","status":"Unknown","reason":"Running"}]}`},
		{"cancelled", `{"status":"TaskRunCancelled","statusMessage":"x"}`,
			`{"conditions":[{"type":"Succeeded","status":"False","reason":"TaskRunCancelled","lastTransitionTime":"2026-12-02T10:00:00Z"}]}`},
		{"another spec status", `{"status":"Paused"}`, `{}`},
		{"succeeded", `{}`, `{"conditions":[{"type":"Succeeded","status":"True","severity":"Info","message":"done"}]}`},
		{"failed", `{}`, `{"conditions":[{"type":"Succeeded","status":"False","reason":"Failed"}]}`},
		{"unknown", `{}`, `{"conditions":[{"type":"Succeeded","status":"Unknown"}]}`},
		{"status neither True, False nor Unknown", `{}`, `{"conditions":[{"type":"Succeeded","status":"Maybe"}]}`},
		{"other conditions only", `{}`, `{"conditions":[{"type":"Ready","status":"True"}]}`},
		{"the first Succeeded wins", `{}`, `{"conditions":[{"type":"Ready","status":"False"},{"type":"Succeeded","status":"True"},{"type":"Succeeded","status":"False"}]}`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			raw := []byte(`{"metadata":{"name":"tr"},"spec":` + tc.spec + `,"status":` + tc.status + `}`)
			mirror, real := decodeBoth(t, raw)
			if got, want := methods(mirror), tektonMethods(real); got != want {
				t.Errorf("mirror %+v, Tekton %+v", got, want)
			}
			// GetCondition returns a copy, as Tekton's does.
			if c := mirror.Status.GetCondition(pipelinev1.ConditionSucceeded); c != nil {
				c.Status = "changed"
				if mirror.Status.GetCondition(pipelinev1.ConditionSucceeded).Status == "changed" {
					t.Error("GetCondition returned the condition itself")
				}
			}
		})
	}
	var nilCond *pipelinev1.Condition
	var tektonNil *apis.Condition
	if nilCond.IsTrue() != tektonNil.IsTrue() || nilCond.IsUnknown() != tektonNil.IsUnknown() {
		t.Error("a nil condition answers unlike knative's")
	}
	if pipelinev1.TaskRunReasonCancelled.String() != tektonv1.TaskRunReasonCancelled.String() ||
		pipelinev1.TaskRunSpecStatusCancelled != tektonv1.TaskRunSpecStatusCancelled ||
		pipelinev1.TaskRunSpecStatusPending != tektonv1.TaskRunSpecStatusPending ||
		pipelinev1.ResultNameFormat != tektonv1.ResultNameFormat ||
		pipelinev1.SchemeGroupVersion != tektonv1.SchemeGroupVersion ||
		string(pipelinev1.ConditionSucceeded) != string(apis.ConditionSucceeded) {
		t.Error("a constant differs from Tekton's")
	}
}

// paramValueSeeds are JSON values of every shape a param or result may
// take, the odd ones included.
var paramValueSeeds = []string{
	`"x"`, `""`, `"a\"b"`, `1`, `1.5`, `true`, `null`, `["a","b"]`, `[]`, `[1,2]`, `[["a"]]`, `["a",null]`,
	`{"k":"v"}`, `{}`, `{"k":1}`, `{"k":{"x":"y"}}`, ``, `[`, `{`, ` "x"`, `"\u00e9"`,
}

// FuzzParamValue checks that any bytes decode into the mirror's ParamValue
// as into Tekton's, and that both marshal what they decoded the same way.
func FuzzParamValue(f *testing.F) {
	for _, s := range paramValueSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var mirror pipelinev1.ParamValue
		var real tektonv1.ParamValue
		merr, rerr := mirror.UnmarshalJSON(data), real.UnmarshalJSON(data)
		if fmt.Sprint(merr) != fmt.Sprint(rerr) {
			t.Fatalf("UnmarshalJSON errors %v, Tekton's %v", merr, rerr)
		}
		if mirror.Type != pipelinev1.ParamType(real.Type) || mirror.StringVal != real.StringVal ||
			!reflect.DeepEqual(mirror.ArrayVal, real.ArrayVal) || !reflect.DeepEqual(mirror.ObjectVal, real.ObjectVal) {
			t.Fatalf("decoded %+v, Tekton %+v", mirror, real)
		}
		mb, merr := json.Marshal(mirror)
		rb, rerr := json.Marshal(real)
		if string(mb) != string(rb) || fmt.Sprint(merr != nil) != fmt.Sprint(rerr != nil) {
			t.Fatalf("marshalled %s (%v), Tekton %s (%v)", mb, merr, rb, rerr)
		}
	})
}

// TestParamValueConstructors checks NewStructuredValues and the zero value
// against Tekton's.
func TestParamValueConstructors(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{{"a"}, {""}, {"a", "b", "c"}} {
		got := marshal(t, pipelinev1.NewStructuredValues(args[0], args[1:]...))
		want := marshal(t, tektonv1.NewStructuredValues(args[0], args[1:]...))
		if string(got) != string(want) {
			t.Errorf("NewStructuredValues%q = %s, Tekton's %s", args, got, want)
		}
	}
	if _, err := json.Marshal(pipelinev1.ParamValue{}); err == nil {
		t.Error("a ParamValue without a type marshalled, Tekton's does not")
	}
}

// full is a TaskRun with every field of the mirror set (TestDeepCopy checks
// that none is zero, so a field added later is covered too).
func full() *pipelinev1.TaskRun {
	at := metav1.Unix(1764669600, 0)
	timeout := metav1.Duration{Duration: 3}
	value := func(s string) pipelinev1.ParamValue {
		return pipelinev1.ParamValue{Type: pipelinev1.ParamTypeObject, StringVal: s, ArrayVal: []string{s}, ObjectVal: map[string]string{"k": s}}
	}
	spec := &pipelinev1.TaskSpec{
		Params: []pipelinev1.ParamSpec{{Name: "p", Type: pipelinev1.ParamTypeString}},
		Steps: []pipelinev1.Step{{Name: "s", Image: "i", Command: []string{"c"}, Args: []string{"a"}, WorkingDir: "/w",
			Env:             []corev1.EnvVar{{Name: "E", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "x"}}}},
			VolumeMounts:    []corev1.VolumeMount{{Name: "v", MountPath: "/v"}},
			ImagePullPolicy: corev1.PullAlways, Script: "echo"}},
		Volumes:    []corev1.Volume{{Name: "v", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}},
		Workspaces: []pipelinev1.WorkspaceDeclaration{{Name: "w", MountPath: "/w"}},
		Results:    []pipelinev1.TaskResult{{Name: "r", Type: pipelinev1.ResultsTypeString, Description: "d"}},
	}
	seconds := int64(5)
	return &pipelinev1.TaskRun{
		TypeMeta:   metav1.TypeMeta{APIVersion: "tekton.dev/v1", Kind: "TaskRun"},
		ObjectMeta: metav1.ObjectMeta{Name: "tr", Labels: map[string]string{"a": "b"}, DeletionTimestamp: &at},
		Spec: pipelinev1.TaskRunSpec{
			Params: pipelinev1.Params{{Name: "p", Value: value("v")}}, ServiceAccountName: "sa", TaskSpec: spec,
			Status: pipelinev1.TaskRunSpecStatusPending, StatusMessage: "m", Timeout: &timeout,
			PodTemplate: &pipelinev1.PodTemplate{NodeSelector: map[string]string{"n": "s"},
				Tolerations:      []corev1.Toleration{{Key: "k", TolerationSeconds: &seconds}},
				ImagePullSecrets: []corev1.LocalObjectReference{{Name: "s"}},
				HostAliases:      []corev1.HostAlias{{IP: "10.0.0.1", Hostnames: []string{"h"}}}},
			Workspaces: []pipelinev1.WorkspaceBinding{{Name: "w", PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: "c"}}},
		},
		Status: pipelinev1.TaskRunStatus{
			Conditions: []pipelinev1.Condition{{Type: pipelinev1.ConditionSucceeded, Status: corev1.ConditionTrue, Severity: "Info",
				LastTransitionTime: at, Reason: "r", Message: "m"}},
			PodName:  "pod",
			Results:  []pipelinev1.TaskRunResult{{Name: "r", Type: pipelinev1.ResultsTypeString, Value: value("x")}},
			TaskSpec: spec,
		},
	}
}

// TestDeepCopy checks that DeepCopy and DeepCopyObject copy every field of
// a TaskRun and a TaskRunList and share no memory with the original.
func TestDeepCopy(t *testing.T) {
	t.Parallel()
	tr := full()
	for _, z := range zeroFields(reflect.ValueOf(tr).Elem(), "TaskRun") {
		t.Errorf("full() leaves %s zero", z)
	}
	list := &pipelinev1.TaskRunList{ListMeta: metav1.ListMeta{Continue: "c"}, Items: []pipelinev1.TaskRun{*full()}}
	for _, pair := range [][2]any{
		{tr, tr.DeepCopy()}, {tr, tr.DeepCopyObject()}, {list, list.DeepCopy()}, {list, list.DeepCopyObject()},
	} {
		if d := cmp.Diff(pair[0], pair[1]); d != "" {
			t.Errorf("copy differs (-original +copy):\n%s", d)
		}
		for _, s := range shared(reflect.ValueOf(pair[0]), reflect.ValueOf(pair[1]), fmt.Sprintf("%T", pair[0])) {
			t.Errorf("the copy shares %s", s)
		}
	}
	if (*pipelinev1.TaskRun)(nil).DeepCopy() != nil || (*pipelinev1.TaskRunList)(nil).DeepCopy() != nil {
		t.Error("a nil TaskRun or list copies as non-nil")
	}
}

// ours reports whether struct type t is the mirror's (and so zeroFields
// looks inside it).
func ours(t reflect.Type) bool {
	return t.PkgPath() == reflect.TypeOf(pipelinev1.TaskRun{}).PkgPath()
}

// zeroFields lists the zero fields of v and of the mirror's structs in it.
func zeroFields(v reflect.Value, path string) []string {
	if v.IsZero() {
		return []string{path}
	}
	switch v.Kind() {
	case reflect.Pointer:
		return zeroFields(v.Elem(), path)
	case reflect.Slice:
		if v.Len() == 0 {
			return []string{path}
		}
		return zeroFields(v.Index(0), path+"[0]")
	case reflect.Struct:
		if !ours(v.Type()) {
			return nil
		}
		var out []string
		for i := range v.NumField() {
			out = append(out, zeroFields(v.Field(i), path+"."+v.Type().Field(i).Name)...)
		}
		return out
	}
	return nil
}

// shared lists the pointers, slices and maps that a and b share.
func shared(a, b reflect.Value, path string) []string {
	if a.Type() == reflect.TypeOf(time.Time{}) {
		return nil // its *Location is shared by design
	}
	switch a.Kind() {
	case reflect.Interface:
		return shared(a.Elem(), b.Elem(), path)
	case reflect.Pointer, reflect.Slice, reflect.Map:
		if a.IsNil() || b.IsNil() {
			return nil
		}
		if a.Pointer() == b.Pointer() && (a.Kind() != reflect.Slice || a.Cap() > 0) {
			return []string{path}
		}
	}
	var out []string
	switch a.Kind() {
	case reflect.Pointer:
		out = shared(a.Elem(), b.Elem(), path)
	case reflect.Slice:
		for i := range a.Len() {
			out = append(out, shared(a.Index(i), b.Index(i), fmt.Sprintf("%s[%d]", path, i))...)
		}
	case reflect.Map:
		for _, k := range a.MapKeys() {
			out = append(out, shared(a.MapIndex(k), b.MapIndex(k), fmt.Sprintf("%s[%v]", path, k))...)
		}
	case reflect.Struct:
		for i := range a.NumField() {
			out = append(out, shared(a.Field(i), b.Field(i), path+"."+a.Type().Field(i).Name)...)
		}
	}
	return out
}

// TestAddToScheme checks the kinds a scheme learns: TaskRun and
// TaskRunList as tekton.dev/v1, and the meta kinds of the group version.
func TestAddToScheme(t *testing.T) {
	t.Parallel()
	s := runtime.NewScheme()
	if err := pipelinev1.AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	for kind, obj := range map[string]runtime.Object{"TaskRun": &pipelinev1.TaskRun{}, "TaskRunList": &pipelinev1.TaskRunList{}, "WatchEvent": &metav1.WatchEvent{}} {
		gvk := pipelinev1.SchemeGroupVersion.WithKind(kind)
		got, err := s.New(gvk)
		if err != nil || reflect.TypeOf(got) != reflect.TypeOf(obj) {
			t.Errorf("New(%s) = %T, %v; want %T", gvk, got, err, obj)
		}
	}
	if kinds, _, err := s.ObjectKinds(&pipelinev1.TaskRun{}); err != nil || len(kinds) != 1 || !strings.HasPrefix(kinds[0].String(), "tekton.dev/v1, Kind=TaskRun") {
		t.Errorf("ObjectKinds(TaskRun) = %v, %v", kinds, err)
	}
}

func marshal(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// decodeBoth decodes raw into the mirror's TaskRun and into Tekton's.
func decodeBoth(t *testing.T, raw []byte) (*pipelinev1.TaskRun, *tektonv1.TaskRun) {
	t.Helper()
	var mirror pipelinev1.TaskRun
	var real tektonv1.TaskRun
	if err := json.Unmarshal(raw, &mirror); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, &real); err != nil {
		t.Fatal(err)
	}
	return &mirror, &real
}
