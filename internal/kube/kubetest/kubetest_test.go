package kubetest

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	k8sfake "k8s.io/client-go/kubernetes/fake"
)

// Of two patches with the version read, the second is a Conflict, as on
// the apiserver; every write gives a new version.
func TestVersioned(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	fake := k8sfake.NewClientset()
	Versioned(fake)
	cms := fake.CoreV1().ConfigMaps("ns")
	cm, err := cms.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "cm", Namespace: "ns"}}, metav1.CreateOptions{})
	if err != nil || cm.ResourceVersion == "" {
		t.Fatalf("create = %v, %v; want a version", cm, err)
	}
	patch := []byte(`{"metadata":{"resourceVersion":"` + cm.ResourceVersion + `","annotations":{"a":"b"}}}`)
	if _, err := cms.Patch(ctx, "cm", types.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
		t.Fatalf("first patch: %v", err)
	}
	if _, err := cms.Patch(ctx, "cm", types.MergePatchType, patch, metav1.PatchOptions{}); !apierrors.IsConflict(err) {
		t.Fatalf("second patch with the same version: %v, want a Conflict", err)
	}
	got, err := cms.Get(ctx, "cm", metav1.GetOptions{})
	if err != nil || got.ResourceVersion == cm.ResourceVersion || got.Annotations["a"] != "b" {
		t.Fatalf("after the patch: %+v, %v; want a new version and the annotation", got.ObjectMeta, err)
	}
}
