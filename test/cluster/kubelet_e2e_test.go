//go:build e2e

package cluster_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"os"
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
	"github.com/boomerang-io/flow-tekton-handler/test/wait"
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
	wait.Until(ctx, t, "pod done to succeed", func() (bool, error) {
		p, err := kube.CoreV1().Pods(ns).Get(ctx, "done", metav1.GetOptions{})
		return err == nil && p.Status.Phase == corev1.PodSucceeded, err
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
	wait.Until(ctx, t, "pod running to run", func() (bool, error) {
		p, err := kube.CoreV1().Pods(ns).Get(ctx, "running", metav1.GetOptions{})
		return err == nil && p.Status.Phase == corev1.PodRunning, err
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
	wait.Until(ctx, t, "the TaskRun's pod to run", func() (bool, error) {
		tr, err := tekton.TektonV1().TaskRuns(ns).Get(ctx, "logs", metav1.GetOptions{})
		if err != nil || tr.Status.PodName == "" {
			return false, err
		}
		pod = tr.Status.PodName
		p, err := kube.CoreV1().Pods(ns).Get(ctx, pod, metav1.GetOptions{})
		return err == nil && p.Status.Phase == corev1.PodRunning, err
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

// A container the annotation gives no log gets it from its env: LogEnv's
// text, or LogFileEnv's file streamed byte for byte (here 12 MB), whole,
// limited, tailed and followed; the annotation comes first. A Tekton step's
// env gives it its log. LogFollows counts the follows being served, and a
// client that goes away ends its follow upstream.
func TestPodLogsFromEnv(t *testing.T) {
	c := cluster.ForTest(t)
	kube := kubernetes.NewForConfigOrDie(c.RESTConfig())
	tekton := versioned.NewForConfigOrDie(c.RESTConfig())
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	ns := c.Namespace(t)

	// A 12 MB log file of numbered lines.
	var buf bytes.Buffer
	for i := 0; buf.Len() < 12<<20; i++ {
		fmt.Fprintf(&buf, "line %07d of a big log, padded to make it longer than an annotation could be\n", i)
	}
	big := buf.Bytes()
	file := filepath.Join(t.TempDir(), "big.log")
	if err := os.WriteFile(file, big, 0o644); err != nil {
		t.Fatal(err)
	}

	env := func(name, value string) []corev1.EnvVar { return []corev1.EnvVar{{Name: name, Value: value}} }
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "env", Namespace: ns, Labels: map[string]string{"ktest.dev/outcome": "hang"},
		Annotations: logsAnnotation(map[string]string{"annotated": "from the annotation\n"})},
		Spec: corev1.PodSpec{Containers: []corev1.Container{
			{Name: "text", Image: "x", Env: env(cluster.LogEnv, "one\ntwo\n")},
			{Name: "file", Image: "x", Env: env(cluster.LogFileEnv, file)},
			{Name: "annotated", Image: "x", Env: env(cluster.LogEnv, "from the env\n")},
		}}}
	if _, err := kube.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	wait.Until(ctx, t, "pod env to run", func() (bool, error) {
		p, err := kube.CoreV1().Pods(ns).Get(ctx, "env", metav1.GetOptions{})
		return err == nil && p.Status.Phase == corev1.PodRunning, err
	})

	// Whole, limited and tailed.
	one, two, limit := int64(1), int64(2), int64(1000)
	for _, tc := range []struct {
		name string
		opts corev1.PodLogOptions
		want []byte
	}{
		{"text", corev1.PodLogOptions{Container: "text"}, []byte("one\ntwo\n")},
		{"text tail 1", corev1.PodLogOptions{Container: "text", TailLines: &one}, []byte("two\n")},
		{"annotation first", corev1.PodLogOptions{Container: "annotated"}, []byte("from the annotation\n")},
		{"file", corev1.PodLogOptions{Container: "file"}, big},
		{"file limit", corev1.PodLogOptions{Container: "file", LimitBytes: &limit}, big[:limit]},
		{"file tail 2", corev1.PodLogOptions{Container: "file", TailLines: &two}, big[bytes.LastIndexByte(big[:bytes.LastIndexByte(big[:len(big)-1], '\n')], '\n')+1:]},
	} {
		rc, err := kube.CoreV1().Pods(ns).GetLogs("env", &tc.opts).Stream(ctx)
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		h := sha256.New()
		n, err := io.Copy(h, rc)
		rc.Close()
		if err != nil || n != int64(len(tc.want)) || !bytes.Equal(h.Sum(nil), sha256Sum(tc.want)) {
			t.Errorf("%s: read %d bytes (%v) sha256 %x, want %d bytes sha256 %x", tc.name, n, err, h.Sum(nil), len(tc.want), sha256Sum(tc.want))
		}
	}

	// A follow is counted while it is served, and a client that cancels
	// ends it upstream.
	pctx, pcancel := context.WithTimeout(ctx, 10*time.Second)
	wait.Until(pctx, t, "LogFollows() to be 0 before any follow", func() (bool, error) { return c.LogFollows(ns, "env") == 0, nil })
	pcancel()
	fctx, fcancel := context.WithCancel(ctx)
	r, _ := follow(fctx, t, kube, ns, "env", "text")
	readLine(t, r, "one\n")
	readLine(t, r, "two\n")
	if n := c.LogFollows(ns, "env"); n != 1 {
		t.Errorf("LogFollows() = %d during a follow, want 1", n)
	}
	fcancel()
	pctx, pcancel = context.WithTimeout(ctx, 10*time.Second)
	wait.Until(pctx, t, "the cancelled follow to end upstream", func() (bool, error) { return c.LogFollows(ns, "env") == 0, nil })
	pcancel()

	// Follows of the text and the file end once the pod finishes.
	r, end := follow(ctx, t, kube, ns, "env", "text")
	readLine(t, r, "one\n")
	readLine(t, r, "two\n")
	rc, err := kube.CoreV1().Pods(ns).GetLogs("env", &corev1.PodLogOptions{Container: "file", Follow: true}).Stream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	h := sha256.New()
	if n, err := io.CopyN(h, rc, int64(len(big))); err != nil || !bytes.Equal(h.Sum(nil), sha256Sum(big)) {
		t.Errorf("follow of the file: read %d bytes (%v) sha256 %x, want %x", n, err, h.Sum(nil), sha256Sum(big))
	}
	if n := c.LogFollows(ns, "env"); n != 2 {
		t.Errorf("LogFollows() = %d during two follows, want 2", n)
	}
	patchPod(ctx, t, kube, ns, "env", map[string]any{"labels": map[string]any{"ktest.dev/outcome": nil}})
	if err := end(); err != nil {
		t.Errorf("follow of the text of a pod that finished: %v, want its end", err)
	}
	if rest, err := io.ReadAll(rc); len(rest) > 0 || err != nil {
		t.Errorf("follow of the file of a pod that finished: %d more bytes (%v), want its end", len(rest), err)
	}
	pctx, pcancel = context.WithTimeout(ctx, 10*time.Second)
	wait.Until(pctx, t, "LogFollows() to be 0 after the follows ended", func() (bool, error) { return c.LogFollows(ns, "env") == 0, nil })
	pcancel()

	// A TaskRun's step: Tekton copies the step's env to its container.
	tr := taskRun(ns, "env", nil, nil)
	tr.Spec.TaskSpec.Steps[0].Env = env(cluster.LogEnv, "step log\n")
	if _, err := tekton.TektonV1().TaskRuns(ns).Create(ctx, tr, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	done, cond := waitTaskRun(ctx, t, tekton, ns, "env")
	if cond.Reason != "Succeeded" {
		t.Fatalf("TaskRun %s, want Succeeded", cond.Reason)
	}
	b, err := kube.CoreV1().Pods(ns).GetLogs(done.Status.PodName, &corev1.PodLogOptions{Container: "step-build"}).DoRaw(ctx)
	if err != nil || string(b) != "step log\n" {
		t.Errorf("step log %q (%v), want %q", b, err, "step log\n")
	}
}

func sha256Sum(b []byte) []byte {
	s := sha256.Sum256(b)
	return s[:]
}
