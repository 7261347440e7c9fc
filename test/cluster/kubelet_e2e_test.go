//go:build e2e

package cluster_test

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/tektoncd/pipeline/pkg/client/clientset/versioned"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"

	"github.com/boomerang-io/flow-tekton-handler/test/cluster"
)

// logsAnnotation is the PodLogsAnnotation value for the given container
// texts.
func logsAnnotation(logs map[string]string) map[string]string {
	b, _ := json.Marshal(logs)
	return map[string]string{cluster.PodLogsAnnotation: string(b)}
}

// patchPod merge-patches a pod's metadata.
func patchPod(ctx context.Context, t *testing.T, kube kubernetes.Interface, ns, name string, meta map[string]any) {
	t.Helper()
	b, err := json.Marshal(map[string]any{"metadata": meta})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kube.CoreV1().Pods(ns).Patch(ctx, name, types.MergePatchType, b, metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
}

// follow opens a follow stream of a container's log and returns a line
// reader and the stream's end, which is closed with the read's error.
func follow(ctx context.Context, t *testing.T, kube kubernetes.Interface, ns, pod, container string) (*bufio.Reader, func() error) {
	t.Helper()
	rc, err := kube.CoreV1().Pods(ns).GetLogs(pod, &corev1.PodLogOptions{Container: container, Follow: true}).Stream(ctx)
	if err != nil {
		t.Fatalf("follow %s/%s: %v", pod, container, err)
	}
	t.Cleanup(func() { rc.Close() })
	r := bufio.NewReader(rc)
	return r, func() error {
		rest, err := io.ReadAll(r)
		if len(rest) > 0 {
			t.Errorf("follow %s/%s: unexpected %q at the end", pod, container, rest)
		}
		return err
	}
}

// readLine reads one line or fails the test.
func readLine(t *testing.T, r *bufio.Reader, want string) {
	t.Helper()
	got, err := r.ReadString('\n')
	if got != want {
		t.Fatalf("read %q (%v), want %q", got, err, want)
	}
}

// The control plane serves pods/log as a kubelet would, from the
// PodLogsAnnotation: whole for a finished pod (client-go and kubectl logs),
// tailed, and followed while the container runs, ending when it finishes;
// a TaskRun's step gets the text the TaskRun's annotation gives it.
func TestPodLogs(t *testing.T) {
	c := cluster.ForTest(t)
	kube := kubernetes.NewForConfigOrDie(c.RESTConfig())
	tekton := versioned.NewForConfigOrDie(c.RESTConfig())
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	ns := c.Namespace(t)

	// A finished pod: its log whole, tailed, through kubectl, and a follow
	// that ends at once.
	done := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "done", Namespace: ns, Annotations: logsAnnotation(map[string]string{"main": "hello\nworld\n"})},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "main", Image: "x"}, {Name: "quiet", Image: "x"}}}}
	if _, err := kube.CoreV1().Pods(ns).Create(ctx, done, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	poll(ctx, t, "pod done to succeed", func() bool {
		p, err := kube.CoreV1().Pods(ns).Get(ctx, "done", metav1.GetOptions{})
		return err == nil && p.Status.Phase == corev1.PodSucceeded
	})
	one := int64(1)
	for _, tc := range []struct {
		name string
		opts corev1.PodLogOptions
		want string
	}{
		{"whole", corev1.PodLogOptions{Container: "main"}, "hello\nworld\n"},
		{"tail 1", corev1.PodLogOptions{Container: "main", TailLines: &one}, "world\n"},
		{"container without a log", corev1.PodLogOptions{Container: "quiet"}, ""},
	} {
		b, err := kube.CoreV1().Pods(ns).GetLogs("done", &tc.opts).DoRaw(ctx)
		if err != nil || string(b) != tc.want {
			t.Errorf("%s: log %q (%v), want %q", tc.name, b, err, tc.want)
		}
	}
	out, err := exec.CommandContext(ctx, filepath.Join(c.BinDir(), "kubectl"), "--kubeconfig="+c.Kubeconfig(), "-n", ns, "logs", "done", "-c", "main").CombinedOutput()
	if err != nil || string(out) != "hello\nworld\n" {
		t.Errorf("kubectl logs: %q (%v)", out, err)
	}
	r, end := follow(ctx, t, kube, ns, "done", "main")
	readLine(t, r, "hello\n")
	readLine(t, r, "world\n")
	if err := end(); err != nil {
		t.Errorf("follow of a finished pod: %v, want its end", err)
	}

	// A running pod: a follow streams what is appended, and ends when the
	// pod finishes.
	running := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "running", Namespace: ns, Labels: map[string]string{"ktest.dev/outcome": "hang"},
		Annotations: logsAnnotation(map[string]string{"main": "first\n"})},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "main", Image: "x"}}}}
	if _, err := kube.CoreV1().Pods(ns).Create(ctx, running, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	poll(ctx, t, "pod running to run", func() bool {
		p, err := kube.CoreV1().Pods(ns).Get(ctx, "running", metav1.GetOptions{})
		return err == nil && p.Status.Phase == corev1.PodRunning
	})
	r, end = follow(ctx, t, kube, ns, "running", "main")
	readLine(t, r, "first\n")
	patchPod(ctx, t, kube, ns, "running", map[string]any{"annotations": logsAnnotation(map[string]string{"main": "first\nsecond\n"})})
	readLine(t, r, "second\n")
	patchPod(ctx, t, kube, ns, "running", map[string]any{"labels": map[string]any{"ktest.dev/outcome": nil}})
	if err := end(); err != nil {
		t.Errorf("follow of a pod that finished: %v, want its end", err)
	}

	// A TaskRun's step: Tekton copies the TaskRun's annotations to its pod.
	tr := taskRun(ns, "logs", map[string]string{"ktest.dev/outcome": "hang"}, logsAnnotation(map[string]string{"step-build": "building\ndone\n"}))
	if _, err := tekton.TektonV1().TaskRuns(ns).Create(ctx, tr, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	var pod string
	poll(ctx, t, "the TaskRun's pod to run", func() bool {
		tr, err := tekton.TektonV1().TaskRuns(ns).Get(ctx, "logs", metav1.GetOptions{})
		if err != nil || tr.Status.PodName == "" {
			return false
		}
		pod = tr.Status.PodName
		p, err := kube.CoreV1().Pods(ns).Get(ctx, pod, metav1.GetOptions{})
		return err == nil && p.Status.Phase == corev1.PodRunning
	})
	r, end = follow(ctx, t, kube, ns, pod, "step-build")
	readLine(t, r, "building\n")
	readLine(t, r, "done\n")
	patchPod(ctx, t, kube, ns, pod, map[string]any{"labels": map[string]any{"ktest.dev/outcome": nil}})
	if err := end(); err != nil {
		t.Errorf("follow of the TaskRun's step: %v, want its end", err)
	}
	if _, cond := waitTaskRun(ctx, t, tekton, ns, "logs"); cond.Reason != "Succeeded" {
		t.Errorf("TaskRun %s, want Succeeded", cond.Reason)
	}
}
