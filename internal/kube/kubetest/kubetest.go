// Package kubetest builds a kube.Client on clientsets (the fakes), for tests.
package kubetest

import (
	"time"

	"github.com/tektoncd/pipeline/pkg/client/clientset/versioned"
	"k8s.io/client-go/kubernetes"

	"github.com/boomerang-io/flow-tekton-handler/internal/kube"
)

// New returns a Client over k and t.
func New(k kubernetes.Interface, t versioned.Interface, ns string, timeout time.Duration) *kube.Client {
	return kube.New(t.TektonV1().TaskRuns(ns), k.CoreV1().ConfigMaps(ns), k.CoreV1().PersistentVolumeClaims(ns),
		k.CoreV1().Pods(ns), k.AuthenticationV1().TokenReviews(), ns, timeout)
}
