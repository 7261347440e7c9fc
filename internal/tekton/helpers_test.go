package tekton

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	apivalidation "k8s.io/apimachinery/pkg/api/validation"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"sigs.k8s.io/yaml"

	"github.com/boomerang-io/flow-tekton-handler/internal/contract"
	pipelinev1 "github.com/boomerang-io/flow-tekton-handler/internal/pipelinev1"
	"github.com/boomerang-io/flow-tekton-handler/internal/pipelinev1/pipelinev1test"
	"github.com/boomerang-io/flow-tekton-handler/test/fixtures"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/")

// ownerUID is the fake UID of the TaskRun that owns a rendered ConfigMap.
const ownerUID = "00000000-0000-0000-0000-000000000001"

// testOptions are the fixed options of the golden files: the upstream
// defaults (product and instance bmrg-flow, 60 minute timeout,
// IfNotPresent, 1Gi ReadWriteMany claims, deletion Never) in namespace
// bmrg-flow, with no proxy, pod settings or service account.
func testOptions() Options {
	return Options{
		Prefix: "bmrg-flow", Instance: "bmrg-flow", Namespace: "bmrg-flow",
		DefaultTimeout:    60 * time.Minute,
		ImagePullPolicy:   corev1.PullIfNotPresent,
		StorageSize:       resource.MustParse("1Gi"),
		StorageAccessMode: corev1.ReadWriteMany,
	}
}

// fixtureTaskRun decodes a taskrun fixture's data.
func fixtureTaskRun(t testing.TB, name string) *contract.TaskRun {
	t.Helper()
	tr, err := contract.DecodeTaskRun(fixtures.Data(t, name))
	if err != nil {
		t.Fatalf("decode %s: %v", name, err)
	}
	return tr
}

// fixtureWorkflowRun decodes a workflowrun fixture's data.
func fixtureWorkflowRun(t testing.TB, name string) *contract.WorkflowRun {
	t.Helper()
	w, err := contract.DecodeWorkflowRun(fixtures.Data(t, name))
	if err != nil {
		t.Fatalf("decode %s: %v", name, err)
	}
	return w
}

// taskRunFromJSON decodes Engine taskrun data written inline in a test.
func taskRunFromJSON(t testing.TB, data string) *contract.TaskRun {
	t.Helper()
	tr, err := contract.DecodeTaskRun([]byte(data))
	if err != nil {
		t.Fatalf("decode taskrun: %v", err)
	}
	return tr
}

// build runs BuildTask and fails the test on error. Every TaskRun it
// returns has passed checkTask.
func build(t testing.TB, tr *contract.TaskRun, claims []Claim, traceparent string, o Options) *Task {
	t.Helper()
	task, err := BuildTask(tr, claims, traceparent, o)
	if err != nil {
		t.Fatalf("BuildTask: %v", err)
	}
	checkTask(t, task, o)
	return task
}

// tektonErrors validates tr as Tekton's admission webhook would, with
// Tekton's own code: the JSON the program sends, decoded into Tekton's
// TaskRun (which must read every field of it and mean the same; see
// pipelinev1test.ToTekton), as built, and after defaulting a copy (the
// validating webhook sees the defaulted object).
func tektonErrors(ctx context.Context, mirror *pipelinev1.TaskRun) []string {
	tr, err := pipelinev1test.ToTekton(mirror)
	if err != nil {
		return []string{err.Error()}
	}
	return pipelinev1test.Admit(ctx, tr)
}

// metaErrors prefixes apimachinery's ObjectMeta errors with the object
// kind. Callers validate names as DNS-1123 labels (Name guarantees it).
func metaErrors(kind string, errs field.ErrorList) []string {
	var out []string
	for _, e := range errs {
		out = append(out, kind+": "+e.Error())
	}
	return out
}

// taskErrors lists every reason the apiserver or Tekton would refuse the
// task's objects, and breaches of the builder's input policy. A TaskRun
// the builders do not vouch for is Tekton's webhook's to judge, in the
// handler's dry run: it must still convert to Tekton's type exactly.
func taskErrors(ctx context.Context, task *Task, o Options) []string {
	tr, cm := task.TaskRun, task.ConfigMap
	var errs []string
	if task.Unvouched == "" {
		for _, e := range tektonErrors(ctx, tr) {
			errs = append(errs, "taskrun: tekton: "+e)
		}
	} else if _, err := pipelinev1test.ToTekton(tr); err != nil {
		errs = append(errs, "taskrun: "+err.Error())
	}
	errs = append(errs, metaErrors("taskrun",
		apivalidation.ValidateObjectMeta(&tr.ObjectMeta, true, apivalidation.NameIsDNSLabel, field.NewPath("metadata")))...)

	// The ConfigMap is checked with an owner, as it is created.
	owned := cm.DeepCopy()
	owner := tr.DeepCopy()
	owner.UID = ownerUID
	SetOwner(owned, owner)
	errs = append(errs, metaErrors("configmap",
		apivalidation.ValidateObjectMeta(&owned.ObjectMeta, true, apivalidation.NameIsDNSLabel, field.NewPath("metadata")))...)
	size := 0
	for k, v := range cm.Data {
		for _, msg := range validation.IsConfigMapKey(k) {
			errs = append(errs, "configmap: data key "+k+": "+msg)
		}
		size += len(k) + len(v)
	}
	if size > corev1.MaxSecretSize {
		errs = append(errs, "configmap: data larger than 1MiB")
	}

	if tr.Namespace != o.Namespace || cm.Namespace != o.Namespace {
		errs = append(errs, "namespace is not Options.Namespace: "+tr.Namespace+", "+cm.Namespace)
	}
	if tr.Spec.ServiceAccountName != o.ServiceAccount {
		errs = append(errs, "serviceAccountName is not Options.ServiceAccount: "+tr.Spec.ServiceAccountName)
	}
	errs = append(errs, policyErrors(tr)...)
	return errs
}

// forbidden are fields an Engine event must never reach in a TaskRun.
var forbidden = []string{`"securityContext"`, `"hostPath"`, `"hostNetwork"`, `"hostPID"`, `"hostIPC"`, `"privileged"`, `"runtimeClassName"`}

// policyErrors reports forbidden fields in the TaskRun's JSON.
func policyErrors(tr *pipelinev1.TaskRun) []string {
	raw, err := json.Marshal(tr)
	if err != nil {
		return []string{"marshal taskrun: " + err.Error()}
	}
	var errs []string
	for _, f := range forbidden {
		if bytes.Contains(raw, []byte(f)) {
			errs = append(errs, "taskrun contains "+f)
		}
	}
	return errs
}

// checkTask fails the test when taskErrors finds anything.
func checkTask(t testing.TB, task *Task, o Options) {
	t.Helper()
	if task == nil || task.TaskRun == nil || task.ConfigMap == nil {
		t.Fatalf("BuildTask returned an incomplete task: %+v", task)
	}
	for _, e := range taskErrors(t.Context(), task, o) {
		t.Error(e)
	}
}

// pvcErrors lists every reason the apiserver would refuse a claim.
func pvcErrors(pvc *corev1.PersistentVolumeClaim, o Options) []string {
	errs := metaErrors("pvc "+pvc.Name,
		apivalidation.ValidateObjectMeta(&pvc.ObjectMeta, true, apivalidation.NameIsDNSLabel, field.NewPath("metadata")))
	if pvc.Namespace != o.Namespace {
		errs = append(errs, "pvc "+pvc.Name+": namespace "+pvc.Namespace)
	}
	size, ok := pvc.Spec.Resources.Requests[corev1.ResourceStorage]
	if !ok || size.Sign() <= 0 {
		errs = append(errs, "pvc "+pvc.Name+": storage request must be positive, got "+size.String())
	}
	if len(pvc.Spec.AccessModes) != 1 {
		errs = append(errs, "pvc "+pvc.Name+": want one access mode")
	}
	for _, m := range pvc.Spec.AccessModes {
		switch m {
		case corev1.ReadWriteOnce, corev1.ReadOnlyMany, corev1.ReadWriteMany, corev1.ReadWriteOncePod:
		default:
			errs = append(errs, "pvc "+pvc.Name+": access mode "+string(m))
		}
	}
	if c := pvc.Spec.StorageClassName; c != nil {
		for _, msg := range validation.IsDNS1123Subdomain(*c) {
			errs = append(errs, "pvc "+pvc.Name+": storageClassName: "+msg)
		}
	}
	return errs
}

// checkPVCs fails the test when pvcErrors finds anything.
func checkPVCs(t testing.TB, pvcs []*corev1.PersistentVolumeClaim, o Options) {
	t.Helper()
	for _, p := range pvcs {
		for _, e := range pvcErrors(p, o) {
			t.Error(e)
		}
	}
}

// renderYAML renders objects as a YAML stream, led by comment lines for
// the builder's notes.
func renderYAML(t testing.TB, notes []string, objs ...any) []byte {
	t.Helper()
	var b bytes.Buffer
	if len(notes) == 0 {
		b.WriteString("# dropped: none\n")
	}
	for _, n := range notes {
		b.WriteString("# dropped: " + n + "\n")
	}
	for _, o := range objs {
		out, err := yaml.Marshal(o)
		if err != nil {
			t.Fatalf("marshal: %v", err)
		}
		b.WriteString("---\n")
		b.Write(out)
	}
	return b.Bytes()
}

// golden compares got with testdata/<name>.golden.yaml, rewriting it
// under -update.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name+".golden.yaml")
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read golden (run go test -update to create it): %v", err)
	}
	if d := cmp.Diff(string(want), string(got)); d != "" {
		t.Errorf("%s mismatch (-want +got):\n%s", path, d)
	}
}

// ownedConfigMap returns the task's ConfigMap owned by a copy of its
// TaskRun with the fake UID, as the handler creates it.
func ownedConfigMap(task *Task) *corev1.ConfigMap {
	cm := task.ConfigMap.DeepCopy()
	owner := task.TaskRun.DeepCopy()
	owner.UID = ownerUID
	SetOwner(cm, owner)
	return cm
}

// hasNote reports whether notes has one containing sub.
func hasNote(notes []string, sub string) bool {
	for _, n := range notes {
		if strings.Contains(n, sub) {
			return true
		}
	}
	return false
}
