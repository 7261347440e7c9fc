//go:build e2e

package cluster_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	v1 "github.com/tektoncd/pipeline/pkg/apis/pipeline/v1"
	"github.com/tektoncd/pipeline/pkg/apis/pipeline/v1beta1"
	"github.com/tektoncd/pipeline/pkg/client/clientset/versioned"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"

	"github.com/boomerang-io/flow-tekton-handler/test/cluster"
)

// TestWebhookValidation checks that Tekton's validating webhook is in the
// path of TaskRuns created directly: invalid ones are refused with
// Tekton's own messages and not stored.
func TestWebhookValidation(t *testing.T) {
	t.Parallel()
	c := cluster.ForTest(t)
	tekton := versioned.NewForConfigOrDie(c.RESTConfig())
	ns := c.Namespace(t)
	tests := []struct {
		name   string
		change func(*v1.TaskRun)
		want   string
	}{
		{"no-image", func(tr *v1.TaskRun) { tr.Spec.TaskSpec.Steps[0].Image = "" },
			"missing field(s): spec.taskSpec.steps[0].Image"},
		{"bad-param-name", func(tr *v1.TaskRun) {
			tr.Spec.Params = v1.Params{{Name: "bad name!", Value: *v1.NewStructuredValues("x")}}
			tr.Spec.TaskSpec.Params = v1.ParamSpecs{{Name: "bad name!"}}
		}, "The format of following array and string variable names is invalid: [bad name!]"},
		{"ref-and-spec", func(tr *v1.TaskRun) { tr.Spec.TaskRef = &v1.TaskRef{Name: "build"} },
			"expected exactly one, got both: spec.taskRef, spec.taskSpec"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			tr := taskRun(ns, tc.name, nil, nil)
			tc.change(tr)
			_, err := tekton.TektonV1().TaskRuns(ns).Create(ctx, tr, metav1.CreateOptions{})
			if !apierrors.IsBadRequest(err) || !strings.Contains(err.Error(), cluster.WebhookDenied) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("create: %v\nwant a BadRequest with %q and %q", err, cluster.WebhookDenied, tc.want)
			}
			if _, err := tekton.TektonV1().TaskRuns(ns).Get(ctx, tc.name, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
				t.Errorf("get after the refused create: %v, want NotFound", err)
			}
		})
	}
}

// TestWebhookDefaulting checks that Tekton's defaulting webhook sets the
// defaults of config-defaults on a TaskRun created without them.
func TestWebhookDefaulting(t *testing.T) {
	t.Parallel()
	c := cluster.ForTest(t)
	tekton := versioned.NewForConfigOrDie(c.RESTConfig())
	ns := c.Namespace(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	tr := taskRun(ns, "defaults", nil, nil)
	if tr.Spec.Timeout != nil || tr.Spec.ServiceAccountName != "" || tr.Labels != nil {
		t.Fatalf("taskRun sets what the webhook should default: %+v", tr)
	}
	if _, err := tekton.TektonV1().TaskRuns(ns).Create(ctx, tr, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	got, err := tekton.TektonV1().TaskRuns(ns).Get(ctx, "defaults", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got.Spec.Timeout == nil || got.Spec.Timeout.Duration != time.Hour {
		t.Errorf("spec.timeout = %v, want 1h (config-defaults default-timeout-minutes: 60)", got.Spec.Timeout)
	}
	if got.Spec.ServiceAccountName != "default" {
		t.Errorf("spec.serviceAccountName = %q, want default", got.Spec.ServiceAccountName)
	}
	if v := got.Labels["app.kubernetes.io/managed-by"]; v != "tekton-pipelines" {
		t.Errorf("label app.kubernetes.io/managed-by = %q, want tekton-pipelines", v)
	}
}

// TestWebhookCompletedTaskRun checks Tekton's update rules: the spec of a
// TaskRun the controller has completed cannot change (here: a cancel, as
// the handler sends), while its metadata can (the sink's annotation); a
// TaskRun that has not started can be cancelled.
func TestWebhookCompletedTaskRun(t *testing.T) {
	t.Parallel()
	c := cluster.ForTest(t)
	tekton := versioned.NewForConfigOrDie(c.RESTConfig())
	ns := c.Namespace(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	trs := tekton.TektonV1().TaskRuns(ns)
	cancelPatch := []byte(`{"spec":{"status":"` + v1.TaskRunSpecStatusCancelled + `"}}`)

	if _, err := trs.Create(ctx, taskRun(ns, "done", nil, nil), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	_, cond := waitTaskRun(ctx, t, tekton, ns, "done")
	t.Logf("done: %s %s", cond.Status, cond.Reason)
	_, err := trs.Patch(ctx, "done", types.MergePatchType, cancelPatch, metav1.PatchOptions{})
	const want = "Once the TaskRun is complete, no updates are allowed"
	if !apierrors.IsBadRequest(err) || !strings.Contains(err.Error(), cluster.WebhookDenied) || !strings.Contains(err.Error(), want) {
		t.Errorf("cancel a completed TaskRun: %v\nwant a BadRequest with %q and %q", err, cluster.WebhookDenied, want)
	}
	annotate := []byte(`{"metadata":{"annotations":{"ktest.dev/reported":"true"}}}`)
	if _, err := trs.Patch(ctx, "done", types.MergePatchType, annotate, metav1.PatchOptions{}); err != nil {
		t.Errorf("annotate a completed TaskRun: %v", err)
	}
	got, err := trs.Get(ctx, "done", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got.Spec.Status != "" || got.Annotations["ktest.dev/reported"] != "true" {
		t.Errorf("completed TaskRun: spec.status %q, annotations %v; want no status, the annotation", got.Spec.Status, got.Annotations)
	}

	pending := taskRun(ns, "pending", nil, nil)
	pending.Spec.Status = v1.TaskRunSpecStatusPending
	if _, err := trs.Create(ctx, pending, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := trs.Patch(ctx, "pending", types.MergePatchType, cancelPatch, metav1.PatchOptions{}); err != nil {
		t.Errorf("cancel a pending TaskRun: %v", err)
	}
}

// TestWebhookConversion checks that the API server converts TaskRuns
// between versions through Tekton's conversion webhook: a v1 TaskRun read
// as v1beta1 has its results where v1beta1 keeps them.
func TestWebhookConversion(t *testing.T) {
	t.Parallel()
	c := cluster.ForTest(t)
	tekton := versioned.NewForConfigOrDie(c.RESTConfig())
	ns := c.Namespace(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	tr := taskRun(ns, "convert", nil, map[string]string{cluster.TerminationMessageAnnotation: resultMessage}, "digest")
	if _, err := tekton.TektonV1().TaskRuns(ns).Create(ctx, tr, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitTaskRun(ctx, t, tekton, ns, "convert")
	got, err := tekton.TektonV1beta1().TaskRuns(ns).Get(ctx, "convert", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	want := []v1beta1.TaskRunResult{{Name: "digest", Type: v1beta1.ResultsTypeString, Value: *v1beta1.NewStructuredValues("sha256:abc")}}
	if diff := cmp.Diff(want, got.Status.TaskRunResults); diff != "" {
		t.Errorf("v1beta1 status.taskResults (-want +got):\n%s", diff)
	}
}

// TestWebhookConfigValidation checks that Tekton's ConfigMap validation is
// in the path: a bad value in config-defaults is refused (dry run: the
// cluster's configuration stays as it is).
func TestWebhookConfigValidation(t *testing.T) {
	t.Parallel()
	c := cluster.ForTest(t)
	kube := kubernetes.NewForConfigOrDie(c.RESTConfig())
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cm, err := kube.CoreV1().ConfigMaps("tekton-pipelines").Get(ctx, "config-defaults", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if cm.Data == nil {
		cm.Data = map[string]string{}
	}
	cm.Data["default-timeout-minutes"] = "sixty"
	_, err = kube.CoreV1().ConfigMaps("tekton-pipelines").Update(ctx, cm, metav1.UpdateOptions{DryRun: []string{metav1.DryRunAll}})
	const denied = `admission webhook "config.webhook.pipeline.tekton.dev" denied the request`
	const want = `failed parsing default config "default-timeout-minutes"`
	if !apierrors.IsBadRequest(err) || !strings.Contains(err.Error(), denied) || !strings.Contains(err.Error(), want) {
		t.Errorf("update config-defaults: %v\nwant a BadRequest with %q and %q", err, denied, want)
	}
}
