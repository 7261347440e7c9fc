package kube

import (
	"context"

	pipelinev1 "github.com/boomerang-io/flow-tekton-handler/internal/pipelinev1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/tools/cache"
)

// TaskRunCache holds in memory the TaskRuns of the Client's namespace that
// a label selector picks, as a watch on the apiserver reports them
// (client-go's informer), so that a TaskRun is at hand when its event
// arrives. What it holds came from the apiserver but may lag it by the
// watch's delay: callers act on it only where a write they make next
// fails on a stale read.
type TaskRunCache struct {
	informer cache.SharedIndexInformer
	ns       string
}

// listWatch lists, then watches from the list's resourceVersion. It opts
// out of client-go's streaming list (WatchListClient), which fake
// clientsets do not speak: the TaskRuns it lists are few.
type listWatch struct{ *cache.ListWatch }

// IsWatchListSemanticsUnSupported tells client-go's reflector to list.
func (listWatch) IsWatchListSemanticsUnSupported() bool { return true }

// TaskRunCache returns a cache of the TaskRuns selector picks; Run fills it.
func (c *Client) TaskRunCache(selector string) *TaskRunCache {
	lw := listWatch{&cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			o.LabelSelector = selector
			return c.taskRuns.List(ctx, o)
		},
		WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			o.LabelSelector = selector
			return c.taskRuns.Watch(ctx, o)
		},
	}}
	informer := cache.NewSharedIndexInformer(lw, &pipelinev1.TaskRun{}, 0, cache.Indexers{})
	// managedFields are most of a TaskRun's metadata, and nothing reads them.
	_ = informer.SetTransform(func(o any) (any, error) {
		if m, ok := o.(metav1.Object); ok {
			m.SetManagedFields(nil)
		}
		return o, nil
	})
	return &TaskRunCache{informer: informer, ns: c.namespace}
}

// OnUpdate has f called with each change the watch sees to a TaskRun it
// holds, the TaskRun as it was and as it is; not for the first list. f
// must return at once and change neither.
func (t *TaskRunCache) OnUpdate(f func(was, is *pipelinev1.TaskRun)) {
	_, _ = t.informer.AddEventHandler(cache.ResourceEventHandlerFuncs{UpdateFunc: func(o, n any) {
		was, _ := o.(*pipelinev1.TaskRun)
		is, _ := n.(*pipelinev1.TaskRun)
		if was != nil && is != nil {
			f(was, is)
		}
	}})
}

// Run lists and watches until ctx ends.
func (t *TaskRunCache) Run(ctx context.Context) { t.informer.RunWithContext(ctx) }

// Get returns the named TaskRun as last seen, or nil when it is not
// picked, not seen yet, or the first list has not completed. The caller
// must not change it.
func (t *TaskRunCache) Get(name string) *pipelinev1.TaskRun {
	if t == nil || !t.informer.HasSynced() {
		return nil
	}
	o, ok, err := t.informer.GetStore().GetByKey(t.ns + "/" + name)
	if err != nil || !ok {
		return nil
	}
	tr, _ := o.(*pipelinev1.TaskRun)
	return tr
}
