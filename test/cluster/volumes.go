package cluster

import (
	"context"
	"fmt"
	"slices"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// pvcProtection is the finalizer the apiserver's admission adds to claims;
// kube-controller-manager removes it once no pod uses the claim.
const pvcProtection = "kubernetes.io/pvc-protection"

// Annotations the volume controller puts on a claim it has bound.
const (
	annBindCompleted     = "pv.kubernetes.io/bind-completed"
	annBoundByController = "pv.kubernetes.io/bound-by-controller"
)

// bindVolumes stands in for the two kube-controller-manager loops that
// workspaces need, as kwok stands in for the kubelet: every pending claim
// gets a matching PersistentVolume and both are marked Bound (so the
// scheduler places pods that mount it), and a claim being deleted loses its
// protection finalizer once no pod uses it. It polls until ctx ends.
func bindVolumes(ctx context.Context, kube kubernetes.Interface) {
	for {
		_ = bindOnce(ctx, kube)
		select {
		case <-ctx.Done():
			return
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func bindOnce(ctx context.Context, kube kubernetes.Interface) error {
	pvcs, err := kube.CoreV1().PersistentVolumeClaims("").List(ctx, metav1.ListOptions{})
	if err != nil {
		return err
	}
	for i := range pvcs.Items {
		pvc := &pvcs.Items[i]
		switch {
		case pvc.DeletionTimestamp != nil:
			if err := release(ctx, kube, pvc); err != nil {
				return err
			}
		case pvc.Status.Phase == corev1.ClaimPending || pvc.Status.Phase == "":
			if err := bind(ctx, kube, pvc); err != nil {
				return err
			}
		}
	}
	return nil
}

// bind creates a volume for pvc and marks both Bound.
func bind(ctx context.Context, kube kubernetes.Interface, pvc *corev1.PersistentVolumeClaim) error {
	size := pvc.Spec.Resources.Requests[corev1.ResourceStorage]
	if size.IsZero() {
		size = resource.MustParse("1Gi")
	}
	class := ""
	if pvc.Spec.StorageClassName != nil {
		class = *pvc.Spec.StorageClassName
	}
	pv := &corev1.PersistentVolume{
		ObjectMeta: metav1.ObjectMeta{Name: "pv-" + string(pvc.UID), Labels: map[string]string{"ktest.dev/fake": "true"}},
		Spec: corev1.PersistentVolumeSpec{
			Capacity:                      corev1.ResourceList{corev1.ResourceStorage: size},
			AccessModes:                   pvc.Spec.AccessModes,
			StorageClassName:              class,
			PersistentVolumeReclaimPolicy: corev1.PersistentVolumeReclaimDelete,
			PersistentVolumeSource:        corev1.PersistentVolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: "/ktest/" + string(pvc.UID)}},
			ClaimRef: &corev1.ObjectReference{
				Kind: "PersistentVolumeClaim", APIVersion: "v1",
				Namespace: pvc.Namespace, Name: pvc.Name, UID: pvc.UID,
			},
		},
	}
	pv, err := kube.CoreV1().PersistentVolumes().Create(ctx, pv, metav1.CreateOptions{FieldManager: fieldManager})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("create pv for %s/%s: %w", pvc.Namespace, pvc.Name, err)
	}
	if err == nil {
		pv.Status.Phase = corev1.VolumeBound
		if _, err := kube.CoreV1().PersistentVolumes().UpdateStatus(ctx, pv, metav1.UpdateOptions{}); err != nil {
			return fmt.Errorf("bind pv %s: %w", pv.Name, err)
		}
	}
	if pvc.Spec.VolumeName == "" || pvc.Annotations[annBindCompleted] != "yes" {
		pvc.Spec.VolumeName = "pv-" + string(pvc.UID)
		// The scheduler counts a claim bound only with this annotation.
		if pvc.Annotations == nil {
			pvc.Annotations = map[string]string{}
		}
		pvc.Annotations[annBindCompleted] = "yes"
		pvc.Annotations[annBoundByController] = "yes"
		updated, err := kube.CoreV1().PersistentVolumeClaims(pvc.Namespace).Update(ctx, pvc, metav1.UpdateOptions{FieldManager: fieldManager})
		if err != nil {
			return fmt.Errorf("bind pvc %s/%s: %w", pvc.Namespace, pvc.Name, err)
		}
		pvc = updated
	}
	pvc.Status.Phase = corev1.ClaimBound
	pvc.Status.AccessModes = pvc.Spec.AccessModes
	pvc.Status.Capacity = corev1.ResourceList{corev1.ResourceStorage: size}
	if _, err := kube.CoreV1().PersistentVolumeClaims(pvc.Namespace).UpdateStatus(ctx, pvc, metav1.UpdateOptions{}); err != nil {
		return fmt.Errorf("bind pvc %s/%s: %w", pvc.Namespace, pvc.Name, err)
	}
	return nil
}

// release removes the protection finalizer of a claim being deleted once no
// running pod mounts it, and deletes its volume.
func release(ctx context.Context, kube kubernetes.Interface, pvc *corev1.PersistentVolumeClaim) error {
	if !slices.Contains(pvc.Finalizers, pvcProtection) {
		return nil
	}
	pods, err := kube.CoreV1().Pods(pvc.Namespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		return err
	}
	for _, p := range pods.Items {
		if p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed {
			continue
		}
		for _, v := range p.Spec.Volumes {
			if v.PersistentVolumeClaim != nil && v.PersistentVolumeClaim.ClaimName == pvc.Name {
				return nil
			}
		}
	}
	pvc.Finalizers = slices.DeleteFunc(pvc.Finalizers, func(f string) bool { return f == pvcProtection })
	if _, err := kube.CoreV1().PersistentVolumeClaims(pvc.Namespace).Update(ctx, pvc, metav1.UpdateOptions{FieldManager: fieldManager}); err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
		return fmt.Errorf("release pvc %s/%s: %w", pvc.Namespace, pvc.Name, err)
	}
	if pvc.Spec.VolumeName != "" {
		err := kube.CoreV1().PersistentVolumes().Delete(ctx, pvc.Spec.VolumeName, metav1.DeleteOptions{})
		if err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("delete pv %s: %w", pvc.Spec.VolumeName, err)
		}
	}
	return nil
}
