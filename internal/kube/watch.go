package kube

import (
	"context"
	"strings"
	"sync"

	pipelinev1 "github.com/boomerang-io/flow-tekton-handler/internal/pipelinev1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/tools/cache"
)

// Cache holds in memory the objects of one kind in the Client's namespace
// that a label selector picks, as a watch on the apiserver reports them
// (client-go's informer), so that an object is at hand when its event
// arrives. What it holds came from the apiserver but may lag it by the
// watch's delay: callers act on it only where a write they make next
// fails on a stale read.
type Cache[O any, P interface {
	*O
	runtime.Object
	metav1.Object
}] struct {
	informer cache.SharedIndexInformer
	ns       string
	listed   chan struct{} // closed when the first list is answered
	once     sync.Once
}

// TaskRunCache holds TaskRuns.
type TaskRunCache = Cache[pipelinev1.TaskRun, *pipelinev1.TaskRun]

// PodCache holds pods as StepsEnded reads them, and nothing else of them.
type PodCache = Cache[corev1.Pod, *corev1.Pod]

// listWatch lists, then watches from the list's resourceVersion. It opts
// out of client-go's streaming list (WatchListClient), which fake
// clientsets do not speak: the objects it lists are few.
type listWatch struct{ *cache.ListWatch }

// IsWatchListSemanticsUnSupported tells client-go's reflector to list.
func (listWatch) IsWatchListSemanticsUnSupported() bool { return true }

// lister is what a Cache lists and watches through.
type lister[L runtime.Object] interface {
	List(ctx context.Context, opts metav1.ListOptions) (L, error)
	Watch(ctx context.Context, opts metav1.ListOptions) (watch.Interface, error)
}

// newCache returns a Cache of what selector picks through r, each object
// passed through trim before it is kept. trim may change the object (the
// informer's own copy) and must keep its name and resourceVersion.
func newCache[O any, P interface {
	*O
	runtime.Object
	metav1.Object
}, L runtime.Object](c *Client, r lister[L], selector string, trim func(P)) *Cache[O, P] {
	t := &Cache[O, P]{ns: c.namespace, listed: make(chan struct{})}
	lw := listWatch{&cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			o.LabelSelector = selector
			l, err := r.List(ctx, o)
			t.once.Do(func() { close(t.listed) })
			return l, err
		},
		WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			o.LabelSelector = selector
			return r.Watch(ctx, o)
		},
	}}
	t.informer = cache.NewSharedIndexInformer(lw, P(new(O)), 0, cache.Indexers{})
	_ = t.informer.SetTransform(func(o any) (any, error) {
		if p, ok := o.(P); ok {
			// managedFields are most of an object's metadata, and
			// nothing reads them.
			p.SetManagedFields(nil)
			trim(p)
		}
		return o, nil
	})
	return t
}

// TaskRunCache returns a cache of the TaskRuns selector picks; Run fills it.
func (c *Client) TaskRunCache(selector string) *TaskRunCache {
	return newCache[pipelinev1.TaskRun, *pipelinev1.TaskRun, *pipelinev1.TaskRunList](c, c.taskRuns, selector, func(*pipelinev1.TaskRun) {})
}

// PodCache returns a cache of the pods selector picks, each kept as
// StepsEnded and TaskRunOfPod read it: its name, version, Tekton's label
// naming its TaskRun, its phase and which containers terminated. Run
// fills it.
func (c *Client) PodCache(selector string) *PodCache {
	return newCache[corev1.Pod, *corev1.Pod, *corev1.PodList](c, c.pods, selector, func(p *corev1.Pod) {
		taskRun := p.Labels[LabelPodTaskRun]
		p.ObjectMeta = metav1.ObjectMeta{Name: p.Name, Namespace: p.Namespace, UID: p.UID, ResourceVersion: p.ResourceVersion, Labels: map[string]string{LabelPodTaskRun: taskRun}}
		statuses := make([]corev1.ContainerStatus, len(p.Status.ContainerStatuses))
		for i, s := range p.Status.ContainerStatuses {
			statuses[i].Name = s.Name
			if s.State.Terminated != nil {
				statuses[i].State.Terminated = &corev1.ContainerStateTerminated{}
			}
		}
		p.Spec = corev1.PodSpec{}
		p.Status = corev1.PodStatus{Phase: p.Status.Phase, ContainerStatuses: statuses}
	})
}

// LabelPodTaskRun is the label Tekton gives a TaskRun's pod, naming the
// TaskRun.
const LabelPodTaskRun = "tekton.dev/taskRun"

// StepsEnded reports whether a TaskRun's pod is done as Tekton's TaskRun
// reconciler judges it when it finishes the TaskRun: every step container
// (named step-…; sidecars are not waited for) terminated, or the pod
// itself succeeded or failed.
func StepsEnded(p *corev1.Pod) bool {
	if p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed {
		return true
	}
	steps := 0
	for _, s := range p.Status.ContainerStatuses {
		if !strings.HasPrefix(s.Name, "step-") {
			continue
		}
		if s.State.Terminated == nil {
			return false
		}
		steps++
	}
	return steps > 0
}

// OnUpdate has f called with each change the watch sees to an object it
// holds, the object as it was and as it is; not for the first list. f
// must return at once and change neither.
func (t *Cache[O, P]) OnUpdate(f func(was, is P)) {
	_, _ = t.informer.AddEventHandler(cache.ResourceEventHandlerFuncs{UpdateFunc: func(o, n any) {
		was, _ := o.(P)
		is, _ := n.(P)
		if was != nil && is != nil {
			f(was, is)
		}
	}})
}

// Run lists and watches until ctx ends.
func (t *Cache[O, P]) Run(ctx context.Context) { t.informer.RunWithContext(ctx) }

// Listed is closed once Run's first list is answered, with the objects or
// an error. Requests made after a list that succeeded share its connection
// to the apiserver; made at the same time, each would open its own (one
// TLS handshake each, on both sides).
func (t *Cache[O, P]) Listed() <-chan struct{} { return t.listed }

// Get returns the named object as last seen, or nil when it is not
// picked, not seen yet, or the first list has not completed. The caller
// must not change it.
func (t *Cache[O, P]) Get(name string) P {
	if t == nil || !t.informer.HasSynced() {
		return nil
	}
	o, ok, err := t.informer.GetStore().GetByKey(t.ns + "/" + name)
	if err != nil || !ok {
		return nil
	}
	p, _ := o.(P)
	return p
}
