//go:build e2e

package e2e

// What the Engine stand-in learns besides the calls it gets: the Engine
// knows the task and workflow runs it sent events for, and when a TaskRun
// was created for one (to tell a TaskRun made for a task it had already
// completed or cancelled).

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	pipelinev1 "github.com/tektoncd/pipeline/pkg/apis/pipeline/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"

	"github.com/boomerang-io/flow-tekton-handler/internal/contract"
)

// stacks holds each running test's stack by the name of its top-level test,
// so that builders given only a *testing.T (event, customTask) can tell the
// test's Engine stand-in about the events they make.
var stacks sync.Map

// tellEngine makes the stack's Engine stand-in learn what the Engine would
// know: the events the test builds (event, s.known) and the creation of
// each TaskRun in the namespace. newStack calls it.
func (s *stack) tellEngine() {
	name := topName(s.t)
	stacks.Store(name, s)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	s.t.Cleanup(func() {
		cancel()
		<-done
		stacks.Delete(name)
	})
	go func() {
		defer close(done)
		s.watchCreations(ctx)
	}()
}

// topName is the name of t's top-level test.
func topName(t *testing.T) string {
	name, _, _ := strings.Cut(t.Name(), "/")
	return name
}

// known tells the Engine stand-in of t's stack, if any, about the Engine
// event body, and returns body.
func known(t *testing.T, body []byte) []byte {
	if s, ok := stacks.Load(topName(t)); ok {
		s.(*stack).engine.KnowEvent(body)
	}
	return body
}

// known tells the stack's Engine stand-in about the Engine event body, and
// returns body: for events not built by event.
func (s *stack) known(body []byte) []byte {
	s.engine.KnowEvent(body)
	return body
}

// watchCreations tells the Engine stand-in when each TaskRun of the
// namespace was created, until ctx ends; a watch that ends is started
// again.
func (s *stack) watchCreations(ctx context.Context) {
	seen := map[types.UID]bool{}
	for ctx.Err() == nil {
		w, err := s.tekton.TektonV1().TaskRuns(s.ns).Watch(ctx, metav1.ListOptions{})
		if err != nil { // the apiserver is down: try again a moment later
			select {
			case <-ctx.Done():
			case <-time.After(200 * time.Millisecond):
			}
			continue
		}
		for ev := range w.ResultChan() {
			tr, ok := ev.Object.(*pipelinev1.TaskRun)
			if !ok || ev.Type != watch.Added || seen[tr.UID] {
				continue
			}
			seen[tr.UID] = true
			s.engine.TaskRunCreated(tr.Labels[contract.LabelTaskRunRef], tr.CreationTimestamp.Time)
		}
		w.Stop()
	}
}
