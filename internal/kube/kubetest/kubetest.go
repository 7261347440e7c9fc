// Package kubetest builds a kube.Client on clientsets (the fakes), for tests.
package kubetest

import (
	"encoding/json"
	"errors"
	"strconv"
	"sync"
	"time"

	"github.com/tektoncd/pipeline/pkg/client/clientset/versioned"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	k8stesting "k8s.io/client-go/testing"

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

// Fake is a fake clientset: k8s.io/client-go/kubernetes/fake's or
// Tekton's.
type Fake interface {
	PrependReactor(verb, resource string, reaction k8stesting.ReactionFunc)
	Tracker() k8stesting.ObjectTracker
}

// Versioned makes a fake clientset keep resourceVersions as the apiserver
// does: every write gives the object a new one, and a merge patch that
// names one (the precondition the Client's claims carry) fails with a
// Conflict unless it is the object's. Writes apply one at a time. Without
// it, two replicas' claims with one version read would both win.
func Versioned(f Fake) {
	var (
		mu      sync.Mutex
		version int
	)
	tracker := f.Tracker()
	react := k8stesting.ObjectReaction(tracker)
	f.PrependReactor("*", "*", func(a k8stesting.Action) (bool, runtime.Object, error) {
		if a.GetVerb() != "create" && a.GetVerb() != "update" && a.GetVerb() != "patch" {
			return react(a)
		}
		mu.Lock()
		defer mu.Unlock()
		if p, ok := a.(k8stesting.PatchAction); ok && p.GetPatchType() == types.MergePatchType {
			var want struct {
				Metadata struct{ ResourceVersion string } `json:"metadata"`
			}
			if err := json.Unmarshal(p.GetPatch(), &want); err == nil && want.Metadata.ResourceVersion != "" {
				cur, err := tracker.Get(p.GetResource(), p.GetNamespace(), p.GetName())
				if err != nil {
					return true, nil, err
				}
				if m, err := meta.Accessor(cur); err != nil || m.GetResourceVersion() != want.Metadata.ResourceVersion {
					return true, nil, apierrors.NewConflict(p.GetResource().GroupResource(), p.GetName(), errors.New("the object has been modified"))
				}
			}
		}
		handled, obj, err := react(a)
		if err != nil || obj == nil {
			return handled, obj, err
		}
		if dry, ok := a.(interface{ GetCreateOptions() metav1.CreateOptions }); ok && len(dry.GetCreateOptions().DryRun) > 0 {
			return handled, obj, err
		}
		version++
		m, merr := meta.Accessor(obj)
		if merr != nil {
			return handled, obj, err
		}
		m.SetResourceVersion(strconv.Itoa(version))
		return handled, obj, tracker.Update(a.GetResource(), obj, m.GetNamespace(), metav1.UpdateOptions{})
	})
}
