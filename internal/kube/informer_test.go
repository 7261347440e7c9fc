package kube

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"

	pipelinev1 "github.com/boomerang-io/flow-tekton-handler/internal/pipelinev1"
	"github.com/boomerang-io/flow-tekton-handler/test/wait"
)

// TestTaskRunInformer checks that the Client's scheme and TaskRun REST
// client decode lists and WATCH events (bookmarks included) into package
// pipelinev1's types, so that a client-go shared informer works on them,
// whether it lists then watches or streams the list as a watch.
func TestTaskRunInformer(t *testing.T) {
	t.Parallel()
	const path = "/apis/tekton.dev/v1/namespaces/flow/taskruns"
	taskRun := func(rv, status string) string {
		return `{"apiVersion":"tekton.dev/v1","kind":"TaskRun","metadata":{"name":"a","namespace":"flow","resourceVersion":"` + rv + `"},` +
			`"spec":{"serviceAccountName":"default"},"status":{"podName":"a-pod","conditions":[{"type":"Succeeded","status":"` + status + `",` +
			`"lastTransitionTime":"2026-12-02T10:00:00Z"}],"results":[{"name":"r","type":"array","value":["x","y"]}]}}`
	}
	bookmark := `{"apiVersion":"tekton.dev/v1","kind":"TaskRun","metadata":{"resourceVersion":"2","annotations":{"k8s.io/initial-events-end":"true"}}}`
	done := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != path {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		q := r.URL.Query()
		if q.Get("watch") != "true" {
			fmt.Fprintf(w, `{"apiVersion":"tekton.dev/v1","kind":"TaskRunList","metadata":{"resourceVersion":"2"},"items":[%s]}`, taskRun("2", "Unknown"))
			return
		}
		if q.Get("sendInitialEvents") == "true" {
			fmt.Fprintf(w, `{"type":"ADDED","object":%s}`+"\n"+`{"type":"BOOKMARK","object":%s}`+"\n", taskRun("2", "Unknown"), bookmark)
		}
		fmt.Fprintf(w, `{"type":"MODIFIED","object":%s}`+"\n", taskRun("3", "True"))
		w.(http.Flusher).Flush()
		select {
		case <-r.Context().Done():
		case <-done:
		}
	}))
	defer srv.Close()
	defer close(done)

	cfg := &rest.Config{Host: srv.URL}
	hc, err := rest.HTTPClientFor(cfg)
	if err != nil {
		t.Fatal(err)
	}
	tk, err := restClient(cfg, hc, pipelinev1.SchemeGroupVersion, "/apis")
	if err != nil {
		t.Fatal(err)
	}
	inf := cache.NewSharedIndexInformer(cache.NewListWatchFromClient(tk, "taskruns", "flow", fields.Everything()), &pipelinev1.TaskRun{}, 0, cache.Indexers{})
	go inf.Run(t.Context().Done())
	wait.Eventually(t, 10*time.Second, "the informer to see the TaskRun succeed", func() (bool, error) {
		obj, ok, err := inf.GetStore().GetByKey("flow/a")
		if err != nil || !ok {
			return false, err
		}
		tr := obj.(*pipelinev1.TaskRun)
		if !tr.IsDone() {
			return false, fmt.Errorf("resourceVersion %s not done", tr.ResourceVersion)
		}
		if c := tr.Status.GetCondition(pipelinev1.ConditionSucceeded); !c.IsTrue() || tr.Status.PodName != "a-pod" ||
			len(tr.Status.Results) != 1 || len(tr.Status.Results[0].Value.ArrayVal) != 2 {
			t.Fatalf("decoded %+v", tr.Status)
		}
		return true, nil
	})
}
