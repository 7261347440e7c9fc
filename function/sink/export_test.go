package sink

import (
	"context"

	"github.com/boomerang-io/flow-tekton-handler/internal/kube"

	pipelinev1 "github.com/boomerang-io/flow-tekton-handler/internal/pipelinev1"
)

// Watch starts the sink's watches, without the sweeps Run starts with
// them, until ctx ends or StopWatch.
func (s *Sink) Watch(ctx context.Context) {
	ctx, s.stop = context.WithCancel(ctx)
	s.watch(ctx)
}

// StopWatch ends the watches and waits for what they started, leaving
// the early claims held.
func (s *Sink) StopWatch() {
	s.stop()
	s.wg.Wait()
}

// Versions returns the resourceVersions at which the sink's watches hold
// the named TaskRun and pod, "" for one they do not hold.
func (s *Sink) Versions(taskRun, pod string) (string, string) {
	var trv, prv string
	if tr := s.unreported.Get(taskRun); tr != nil {
		trv = tr.ResourceVersion
	}
	if c, ok := s.pods.(*kube.PodCache); ok {
		if p := c.Get(pod); p != nil {
			prv = p.ResourceVersion
		}
	}
	return trv, prv
}

// Lagging replaces the sink's watch with one that holds trs as they are
// now, whatever the apiserver holds later: a watch that has not caught up.
func (s *Sink) Lagging(trs ...*pipelinev1.TaskRun) {
	l := lagging{}
	for _, tr := range trs {
		l[tr.Name] = tr.DeepCopy()
	}
	s.unreported = l
}

type lagging map[string]*pipelinev1.TaskRun

func (l lagging) Get(name string) *pipelinev1.TaskRun        { return l[name] }
func (l lagging) OnUpdate(func(was, is *pipelinev1.TaskRun)) {}
func (l lagging) Run(context.Context)                        {}
func (l lagging) Listed() <-chan struct{}                    { return listed }

// listed is closed: a lagging watch has listed.
var listed = func() chan struct{} { c := make(chan struct{}); close(c); return c }()
