package kube

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	k8sfake "k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/rest"
	k8stesting "k8s.io/client-go/testing"
	"k8s.io/client-go/tools/cache"

	pipelinev1 "github.com/boomerang-io/flow-tekton-handler/internal/pipelinev1"
	"github.com/boomerang-io/flow-tekton-handler/test/wait"
)

// taskRunServer serves TaskRun lists and WATCHes of namespace flow: one
// TaskRun "a", running in the list (and in the initial events of a
// streamed list), succeeded in the watch. Each request is passed to seen
// first.
func taskRunServer(t *testing.T, seen func(*http.Request)) *httptest.Server {
	const path = "/apis/tekton.dev/v1/namespaces/flow/taskruns"
	taskRun := func(rv, status string) string {
		return `{"apiVersion":"tekton.dev/v1","kind":"TaskRun","metadata":{"name":"a","namespace":"flow","resourceVersion":"` + rv + `",` +
			`"managedFields":[{"manager":"m","operation":"Update","fieldsType":"FieldsV1","fieldsV1":{"f:spec":{}}}]},` +
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
		seen(r)
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
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(done) })
	return srv
}

// checkSucceeded checks the TaskRun "a" as taskRunServer's watch has it.
func checkSucceeded(t *testing.T, tr *pipelinev1.TaskRun) {
	t.Helper()
	if c := tr.Status.GetCondition(pipelinev1.ConditionSucceeded); !c.IsTrue() || tr.Status.PodName != "a-pod" ||
		len(tr.Status.Results) != 1 || len(tr.Status.Results[0].Value.ArrayVal) != 2 {
		t.Fatalf("decoded %+v", tr.Status)
	}
}

// TestTaskRunInformer checks that the Client's scheme and TaskRun REST
// client decode lists and WATCH events (bookmarks included) into package
// pipelinev1's types, so that a client-go shared informer works on them,
// whether it lists then watches or streams the list as a watch.
func TestTaskRunInformer(t *testing.T) {
	t.Parallel()
	srv := taskRunServer(t, func(*http.Request) {})
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
		checkSucceeded(t, tr)
		return true, nil
	})
}

// The Client's TaskRunCache over REST: its list and its watch carry its
// label selector, it lists rather than streaming the list, it reports the
// change to OnUpdate, and it holds the TaskRun without managedFields.
func TestTaskRunCacheOverREST(t *testing.T) {
	t.Parallel()
	const selector = "boomerang.io/reported!=true"
	var mu sync.Mutex
	var requests []url.Values
	srv := taskRunServer(t, func(r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		requests = append(requests, r.URL.Query())
	})
	c, err := NewForConfig(&rest.Config{Host: srv.URL}, "flow", time.Second)
	if err != nil {
		t.Fatal(err)
	}
	trs := c.TaskRunCache(selector)
	updates := make(chan [2]*pipelinev1.TaskRun, 1)
	trs.OnUpdate(func(was, is *pipelinev1.TaskRun) { updates <- [2]*pipelinev1.TaskRun{was, is} })
	go trs.Run(t.Context())
	var u [2]*pipelinev1.TaskRun
	select {
	case u = <-updates:
	case <-time.After(10 * time.Second):
		t.Fatal("no update from the watch")
	}
	if u[0].IsDone() || !u[1].IsDone() {
		t.Errorf("update from resourceVersion %s to %s, want running to done", u[0].ResourceVersion, u[1].ResourceVersion)
	}
	got := trs.Get("a")
	if got == nil || got.ResourceVersion != "3" || len(got.ManagedFields) != 0 {
		t.Fatalf("Get = %+v, want resourceVersion 3 without managedFields", got)
	}
	checkSucceeded(t, got)
	mu.Lock()
	defer mu.Unlock()
	lists := 0
	for _, q := range requests {
		if q.Get("labelSelector") != selector || q.Get("sendInitialEvents") != "" {
			t.Errorf("request %v: want labelSelector %q and no streamed list", q, selector)
		}
		if q.Get("watch") != "true" {
			lists++
		}
	}
	if lists != 1 {
		t.Errorf("%d lists of %d requests, want 1", lists, len(requests))
	}
}

// StepsEnded judges a pod done as Tekton's TaskRun reconciler does: every
// step container terminated (sidecars not waited for), or the pod done.
func TestStepsEnded(t *testing.T) {
	t.Parallel()
	running := corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}
	ended := corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{}}
	for _, tc := range []struct {
		name       string
		phase      corev1.PodPhase
		containers map[string]corev1.ContainerState
		want       bool
	}{
		{"pending, no statuses", corev1.PodPending, nil, false},
		{"a step running", corev1.PodRunning, map[string]corev1.ContainerState{"step-a": ended, "step-b": running}, false},
		{"steps ended, sidecar running", corev1.PodRunning, map[string]corev1.ContainerState{"step-a": ended, "step-b": ended, "sidecar-db": running}, true},
		{"only a sidecar", corev1.PodRunning, map[string]corev1.ContainerState{"sidecar-db": ended}, false},
		{"succeeded", corev1.PodSucceeded, nil, true},
		{"failed, steps never started", corev1.PodFailed, map[string]corev1.ContainerState{"step-a": {}}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p := &corev1.Pod{Status: corev1.PodStatus{Phase: tc.phase}}
			for name, state := range tc.containers {
				p.Status.ContainerStatuses = append(p.Status.ContainerStatuses, corev1.ContainerStatus{Name: name, State: state})
			}
			if got := StepsEnded(p); got != tc.want {
				t.Fatalf("StepsEnded = %v, want %v", got, tc.want)
			}
		})
	}
}

// A PodCache keeps of each pod only what StepsEnded reads and the label
// naming its TaskRun, and reports its changes.
func TestPodCache(t *testing.T) {
	t.Parallel()
	k := k8sfake.NewClientset()
	c := New(nil, nil, nil, k.CoreV1().Pods("flow"), nil, "flow", time.Second)
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "a-pod", Namespace: "flow", Labels: map[string]string{LabelPodTaskRun: "a", "x": "y"}, Annotations: map[string]string{"big": "z"}},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "step-a", Image: "i", Env: []corev1.EnvVar{{Name: "SECRET", Value: "s"}}}}},
		Status:     corev1.PodStatus{Phase: corev1.PodRunning, PodIP: "10.0.0.1", ContainerStatuses: []corev1.ContainerStatus{{Name: "step-a", Image: "i", State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}}}},
	}
	if _, err := k.CoreV1().Pods("flow").Create(context.Background(), pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	cache := c.PodCache(LabelPodTaskRun)
	var (
		mu   sync.Mutex
		seen []*corev1.Pod
	)
	cache.OnUpdate(func(was, is *corev1.Pod) {
		mu.Lock()
		defer mu.Unlock()
		seen = append(seen, is)
	})
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	go cache.Run(ctx)
	wait.Eventually(t, 10*time.Second, "the cache holds a-pod", func() (bool, error) { return cache.Get("a-pod") != nil, nil })
	pod.Status.ContainerStatuses[0].State = corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 1, Message: "m"}}
	if _, err := k.CoreV1().Pods("flow").UpdateStatus(context.Background(), pod, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	wait.Eventually(t, 10*time.Second, "the update", func() (bool, error) {
		mu.Lock()
		defer mu.Unlock()
		return len(seen) > 0, nil
	})
	mu.Lock()
	got := seen[len(seen)-1]
	mu.Unlock()
	want := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "a-pod", Namespace: "flow", ResourceVersion: got.ResourceVersion, Labels: map[string]string{LabelPodTaskRun: "a"}},
		Status:     corev1.PodStatus{Phase: corev1.PodRunning, ContainerStatuses: []corev1.ContainerStatus{{Name: "step-a", State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{}}}}},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("kept (-want +got):\n%s", diff)
	}
	if !StepsEnded(got) {
		t.Fatal("StepsEnded of the kept pod is false")
	}
}

// TestCacheListed: Listed is closed once the first list is answered, with
// the objects or with an error, and not before Run lists.
func TestCacheListed(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		fail bool
	}{{"answered", false}, {"refused", true}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			k := k8sfake.NewClientset()
			release := make(chan struct{})
			k.PrependReactor("list", "pods", func(k8stesting.Action) (bool, runtime.Object, error) {
				<-release
				if tc.fail {
					return true, nil, apierrors.NewForbidden(corev1.Resource("pods"), "", errors.New("no"))
				}
				return false, nil, nil
			})
			cache := New(nil, nil, nil, k.CoreV1().Pods("flow"), nil, "flow", time.Second).PodCache(LabelPodTaskRun)
			ctx, cancel := context.WithCancel(context.Background())
			t.Cleanup(cancel)
			go cache.Run(ctx)
			select {
			case <-cache.Listed():
				t.Fatal("Listed closed before the list was answered")
			default:
			}
			close(release)
			select {
			case <-cache.Listed():
			case <-time.After(10 * time.Second):
				t.Fatal("Listed not closed after the list was answered")
			}
		})
	}
}
