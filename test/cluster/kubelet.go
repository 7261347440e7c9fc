package cluster

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
)

// PodLogsAnnotation on a pod (or on a TaskRun: Tekton copies its
// annotations to the pod) sets what the API server's pods/log (kubectl logs)
// returns for the pod's containers: a JSON object of container name to text,
// e.g. {"step-build":"compiling\ndone\n"}. A follow request streams the
// text, then whatever is appended to it in the annotation while the
// container runs, and ends once the container has terminated or the pod is
// gone, like a kubelet's.
//
// A container the annotation gives no text gets its log from its own env (a
// Tekton step's env is its container's): LogEnv's value, else the whole
// contents of the harness file named by LogFileEnv (for logs too big for an
// annotation or a pod spec). A follow of either sends it, then waits for the
// container to terminate or the pod to go, and ends.
const PodLogsAnnotation = "ktest.dev/logs"

// Container env vars that give a container's log (see PodLogsAnnotation).
const (
	// LogEnv is the log text itself.
	LogEnv = "KTEST_LOG"
	// LogFileEnv is the path of a file on the harness machine whose whole
	// contents are the log.
	LogFileEnv = "KTEST_LOG_FILE"
)

// kubeletLogs serves the kubelet's GET /containerLogs/{ns}/{pod}/{container}
// for the kwok node (kwok's --node-port points the node's kubeletEndpoint
// here): the API server sends pods/log requests to it.
type kubeletLogs struct {
	kube kubernetes.Interface

	mu      sync.Mutex
	follows map[string]int // follow requests being served, by "namespace/pod"
}

// LogFollows returns how many pods/log follow requests of the pod the
// node's kubelet endpoint is serving, e.g. to check that a client that went
// away ended its follow upstream too.
func (c *Cluster) LogFollows(namespace, pod string) int {
	if c.kubelet == nil {
		return 0
	}
	c.kubelet.mu.Lock()
	defer c.kubelet.mu.Unlock()
	return c.kubelet.follows[namespace+"/"+pod]
}

// following counts a follow of the pod until the returned func is called.
func (k *kubeletLogs) following(namespace, pod string) func() {
	key := namespace + "/" + pod
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.follows == nil {
		k.follows = map[string]int{}
	}
	k.follows[key]++
	return func() {
		k.mu.Lock()
		defer k.mu.Unlock()
		if k.follows[key]--; k.follows[key] == 0 {
			delete(k.follows, key)
		}
	}
}

// serveKubeletLogs serves kubelet logs on ln with TLS until ctx ends.
func serveKubeletLogs(ctx context.Context, ln net.Listener, cert tls.Certificate, kube kubernetes.Interface) *kubeletLogs {
	k := &kubeletLogs{kube: kube}
	srv := &http.Server{
		Handler:           k,
		TLSConfig:         &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12},
		ReadHeaderTimeout: 5 * time.Second,
		BaseContext:       func(net.Listener) context.Context { return ctx },
	}
	go func() {
		<-ctx.Done()
		_ = srv.Close()
	}()
	go func() { _ = srv.ServeTLS(ln, "", "") }()
	return k
}

func (k *kubeletLogs) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	parts := strings.Split(strings.TrimPrefix(r.URL.Path, "/containerLogs/"), "/")
	if r.Method != http.MethodGet || !strings.HasPrefix(r.URL.Path, "/containerLogs/") || len(parts) != 3 {
		http.NotFound(w, r)
		return
	}
	ns, name, container := parts[0], parts[1], parts[2]
	q := r.URL.Query()
	if q.Get("previous") == "true" {
		http.Error(w, "previous terminated container "+strconv.Quote(container)+" in pod "+strconv.Quote(name)+" not found", http.StatusBadRequest)
		return
	}
	ctx := r.Context()
	pod, err := k.kube.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		http.Error(w, err.Error(), http.StatusNotFound)
		return
	}
	// The log is the annotation's text, else LogEnv's, else LogFileEnv's
	// file (src); only the annotation's text grows while following.
	text, fromAnnotation := podLogs(pod, container)
	grows := true
	var src io.Reader
	if !fromAnnotation {
		if s, ok := containerEnv(pod, container, LogEnv); ok {
			text, grows = s, false
		} else if path, ok := containerEnv(pod, container, LogFileEnv); ok {
			grows = false
			f, err := os.Open(path)
			if err != nil {
				http.Error(w, "log of container "+strconv.Quote(container)+": "+err.Error(), http.StatusInternalServerError)
				return
			}
			defer f.Close()
			src = f
		}
	}
	full := text // what the client has been sent, untailed
	if n, err := strconv.Atoi(q.Get("tailLines")); err == nil && n >= 0 {
		if src != nil {
			b, err := io.ReadAll(src)
			if err != nil {
				http.Error(w, "log of container "+strconv.Quote(container)+": "+err.Error(), http.StatusInternalServerError)
				return
			}
			text = string(b)
		}
		text = tailLines(text, n)
		src = nil
	}
	if src == nil {
		src = strings.NewReader(text)
	}
	limit := int64(-1)
	if n, err := strconv.ParseInt(q.Get("limitBytes"), 10, 64); err == nil && n > 0 {
		limit = n
	}
	follow := q.Get("follow") == "true"
	if follow {
		defer k.following(ns, name)()
	}
	w.Header().Set("Content-Type", "text/plain")
	write := func(r io.Reader) bool {
		if limit >= 0 {
			r = io.LimitReader(r, limit)
		}
		n, err := io.Copy(w, r)
		if limit >= 0 {
			limit -= n
		}
		if f, ok := w.(http.Flusher); ok {
			f.Flush()
		}
		return err == nil && limit != 0
	}
	if !write(src) || !follow {
		return
	}
	// Follow: stream what is appended until the container terminates.
	// appended writes what p's text adds to what was sent.
	appended := func(p *corev1.Pod) bool {
		s, _ := podLogs(p, container)
		if !grows || len(s) <= len(full) || !strings.HasPrefix(s, full) {
			return true
		}
		add := s[len(full):]
		full = s
		return write(strings.NewReader(add))
	}
	for !terminated(pod, container) {
		wi, err := k.kube.CoreV1().Pods(ns).Watch(ctx, metav1.ListOptions{
			FieldSelector:   fields.OneTermEqualSelector("metadata.name", name).String(),
			ResourceVersion: pod.ResourceVersion,
		})
		if err != nil {
			return
		}
		for ev := range wi.ResultChan() {
			p, ok := ev.Object.(*corev1.Pod)
			if !ok { // watch.Error, e.g. 410 Gone: start again from the current pod
				break
			}
			pod = p
			if !appended(p) || ev.Type == watch.Deleted {
				wi.Stop()
				return
			}
			if terminated(p, container) {
				break
			}
		}
		wi.Stop()
		if ctx.Err() != nil {
			return
		}
		if !terminated(pod, container) {
			if pod, err = k.kube.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{}); err != nil || !appended(pod) {
				return
			}
			select { // a watch the apiserver keeps closing is not retried in a busy loop
			case <-ctx.Done():
				return
			case <-time.After(100 * time.Millisecond):
			}
		}
	}
}

// podLogs returns the PodLogsAnnotation text of container and whether the
// annotation has an entry for it.
func podLogs(pod *corev1.Pod, container string) (string, bool) {
	var logs map[string]string
	_ = json.Unmarshal([]byte(pod.Annotations[PodLogsAnnotation]), &logs)
	s, ok := logs[container]
	return s, ok
}

// containerEnv returns the value of container's env var name, if set.
func containerEnv(pod *corev1.Pod, container, name string) (string, bool) {
	for _, cs := range [][]corev1.Container{pod.Spec.InitContainers, pod.Spec.Containers} {
		for _, c := range cs {
			if c.Name != container {
				continue
			}
			for _, e := range c.Env {
				if e.Name == name && e.ValueFrom == nil {
					return e.Value, true
				}
			}
		}
	}
	return "", false
}

// terminated reports whether container has terminated or the pod finished.
// A pod being deleted still runs, as on a real node, until it is gone
// (kwok removes it after up to its termination grace period, 30 s by
// default, or never while it has finalizers).
func terminated(pod *corev1.Pod, container string) bool {
	if pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed {
		return true
	}
	for _, ss := range [][]corev1.ContainerStatus{pod.Status.InitContainerStatuses, pod.Status.ContainerStatuses} {
		for _, s := range ss {
			if s.Name == container && s.State.Terminated != nil {
				return true
			}
		}
	}
	return false
}

// tailLines returns the last n lines of s.
func tailLines(s string, n int) string {
	if n == 0 {
		return ""
	}
	end := len(s)
	if strings.HasSuffix(s, "\n") {
		end--
	}
	for i := end - 1; i >= 0; i-- {
		if s[i] == '\n' {
			n--
			if n == 0 {
				return s[i+1:]
			}
		}
	}
	return s
}
