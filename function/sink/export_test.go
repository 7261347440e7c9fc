package sink

import (
	"context"

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

// Watched reports whether the sink's watch holds the named TaskRun.
func (s *Sink) Watched(name string) bool { return s.unreported.Get(name) != nil }

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
