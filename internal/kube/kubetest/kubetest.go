// Package kubetest builds a kube.Client on clientsets (the fakes), for tests.
package kubetest

import (
	"time"

	"github.com/tektoncd/pipeline/pkg/client/clientset/versioned"
	"k8s.io/client-go/kubernetes"

	"github.com/boomerang-io/flow-tekton-handler/internal/kube"
	"github.com/boomerang-io/flow-tekton-handler/internal/pipelinev1/pipelinev1test"
)

// New returns a Client over k and t. TaskRuns pass between the Client's
// types and Tekton's through their JSON, so every TaskRun the Client creates
// is checked to be one Tekton's own type reads whole.
func New(k kubernetes.Interface, t versioned.Interface, ns string, timeout time.Duration) *kube.Client {
	return kube.New(pipelinev1test.TaskRuns{C: t.TektonV1().TaskRuns(ns)}, k.CoreV1().ConfigMaps(ns), k.CoreV1().PersistentVolumeClaims(ns),
		k.CoreV1().Pods(ns), k.AuthenticationV1().TokenReviews(), ns, timeout)
}
