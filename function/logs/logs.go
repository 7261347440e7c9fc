// Package logs is the logs role: the Engine's log stream for one task,
// GET /api/v1/logs/stream?workflowRef=…&workflowRunRef=…&taskRunRef=…, as
// the Java handler served it. The Engine copies the answer to the Flow UI
// byte for byte. The role finds the task's TaskRun by its name and our
// labels, then streams its pod's step containers' logs in step order as
// they are written (pods/log with follow), until the last step ends.
package logs

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"

	pipelinev1 "github.com/tektoncd/pipeline/pkg/apis/pipeline/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/boomerang-io/flow-tekton-handler/internal/contract"
	"github.com/boomerang-io/flow-tekton-handler/internal/kube"
	"github.com/boomerang-io/flow-tekton-handler/internal/status"
	"github.com/boomerang-io/flow-tekton-handler/internal/tekton"
)

// Path is the one path the role serves; the Engine's
// flow.handler.logstream.url points at it.
const Path = "/api/v1/logs/stream"

// The query parameters, in the Engine's names (client/LogClient.java).
const (
	ParamWorkflow    = "workflowRef"
	ParamWorkflowRun = "workflowRunRef"
	ParamTaskRun     = "taskRunRef"
)

// stepPrefix starts the name of every step container Tekton makes.
const stepPrefix = "step-"

// Kube is what the role reads from the apiserver: the TaskRun, its pod and
// the pod's logs, in its own namespace only.
type Kube interface {
	GetTaskRun(ctx context.Context, name string) (*pipelinev1.TaskRun, error)
	GetPod(ctx context.Context, name string) (*corev1.Pod, error)
	FollowLog(ctx context.Context, pod, container string) (io.ReadCloser, error)
}

var _ Kube = (*kube.Client)(nil)

// Options tune the role.
type Options struct {
	// Product is PRODUCT_PREFIX: our TaskRuns' name prefix and product label.
	Product string
	// Wait bounds each wait for the task's pod, or for a step, to start
	// (LOGS_WAIT). A stream whose wait runs out ends.
	Wait time.Duration
	// Poll is how often a wait reads the TaskRun or pod again; 1 s if zero.
	// The role may not watch (its Role grants get only).
	Poll time.Duration
}

// Logs serves the log stream.
type Logs struct {
	kube Kube
	o    Options
	log  *slog.Logger
}

// New returns the role.
func New(k Kube, o Options, log *slog.Logger) *Logs {
	if o.Poll <= 0 {
		o.Poll = time.Second
	}
	return &Logs{kube: k, o: o, log: log}
}

// Stop has nothing to stop: streams end with their requests.
func (l *Logs) Stop(context.Context) error { return nil }

// refs are the three references of a request.
type refs struct{ workflow, workflowRun, taskRun string }

// ServeHTTP answers one request: the JSON error of package status for a bad
// request (400), an unknown task (404) or apiserver trouble (503);
// otherwise 200 at once and then the log as it is written. The request's
// context bounds the work: a client that goes away stops it.
func (l *Logs) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	began := time.Now()
	ctx := r.Context()
	ref, err := parse(w, r)
	var tr *pipelinev1.TaskRun
	if err == nil {
		tr, err = l.find(ctx, ref)
	}
	if err != nil {
		status.Write(w, err)
		l.done(ctx, r, began, 0, "refused", err)
		return
	}
	// The answer lasts as long as the task: lift the server's write
	// deadline (func-go sets 30 s) for this request alone. (Its read
	// deadline is already lifted once a request without a body is read.)
	rc := http.NewResponseController(w)
	_ = rc.SetWriteDeadline(time.Time{})
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	_ = rc.Flush()
	n, ended, err := l.stream(ctx, flushWriter{w: w, rc: rc}, tr)
	l.done(ctx, r, began, n, ended, err, slog.String("taskrun", tr.Name))
}

// parse checks the path, the method and the three references.
func parse(w http.ResponseWriter, r *http.Request) (refs, error) {
	if r.URL.Path != Path {
		return refs{}, status.New(http.StatusNotFound, "", fmt.Sprintf("no such path; the log stream is GET %s", Path))
	}
	if r.Method != http.MethodGet {
		w.Header().Set("Allow", http.MethodGet)
		return refs{}, status.New(http.StatusMethodNotAllowed, "method", r.Method+" is not allowed; use GET")
	}
	q := r.URL.Query()
	var ref refs
	for _, p := range []struct {
		name string
		dst  *string
	}{{ParamWorkflow, &ref.workflow}, {ParamWorkflowRun, &ref.workflowRun}, {ParamTaskRun, &ref.taskRun}} {
		if len(q[p.name]) > 1 {
			return refs{}, status.New(http.StatusBadRequest, p.name, "is given more than once")
		}
		if err := contract.CheckID(p.name, q.Get(p.name)); err != nil {
			return refs{}, err
		}
		*p.dst = q.Get(p.name)
	}
	return ref, nil
}

// find returns the task's TaskRun: the one its name says, in our
// namespace, of our product, with all three references on its labels.
func (l *Logs) find(ctx context.Context, ref refs) (*pipelinev1.TaskRun, error) {
	tr, err := l.kube.GetTaskRun(ctx, tekton.TaskRunName(l.o.Product, ref.taskRun))
	if err != nil {
		return nil, err
	}
	if tr == nil || tr.Labels[contract.LabelProduct] != l.o.Product ||
		tr.Labels[contract.LabelTaskRunRef] != tekton.LabelValue(ref.taskRun) ||
		tr.Labels[contract.LabelWorkflowRun] != tekton.LabelValue(ref.workflowRun) ||
		tr.Labels[contract.LabelWorkflowRef] != tekton.LabelValue(ref.workflow) {
		return nil, status.New(http.StatusNotFound, ParamTaskRun, "no TaskRun of this task, workflow run and workflow is here")
	}
	return tr, nil
}

// Why a stream ended, for its log line.
const (
	endedSteps  = "steps ended"
	endedNoPod  = "finished without a pod"
	endedGone   = "gone"
	endedWait   = "not started within LOGS_WAIT"
	endedClient = "client went away"
)

// stream writes the logs of tr's step containers to w in step order, each
// followed until it ends, and returns the bytes written and why it ended.
func (l *Logs) stream(ctx context.Context, w io.Writer, tr *pipelinev1.TaskRun) (int64, string, error) {
	pod, ended, err := l.awaitPod(ctx, tr)
	if pod == nil {
		return 0, ended, err
	}
	var n int64
	for _, c := range steps(pod) {
		if pod, ended, err = l.awaitStep(ctx, pod, c); pod == nil {
			return n, ended, err
		}
		body, err := l.kube.FollowLog(ctx, pod.Name, c)
		switch {
		case errors.Is(err, kube.ErrGone):
			return n, endedGone, nil
		case err != nil:
			ended, err = l.cause(ctx, err)
			return n, ended, err
		}
		m, err := io.Copy(w, body)
		_ = body.Close()
		n += m
		if err != nil {
			ended, err = l.cause(ctx, err)
			return n, ended, err
		}
	}
	return n, endedSteps, nil
}

// cause tells a client that went away from a failure.
func (l *Logs) cause(ctx context.Context, err error) (string, error) {
	if ctx.Err() != nil {
		return endedClient, nil
	}
	return "", err
}

// awaitPod returns tr's pod once Tekton has made it, or nil with why when
// the TaskRun finished without one, went away, or Wait ran out.
func (l *Logs) awaitPod(ctx context.Context, tr *pipelinev1.TaskRun) (*corev1.Pod, string, error) {
	deadline := time.Now().Add(l.o.Wait)
	for {
		if tr.Status.PodName != "" {
			pod, err := l.kube.GetPod(ctx, tr.Status.PodName)
			if err != nil {
				ended, err := l.cause(ctx, err)
				return nil, ended, err
			}
			if pod != nil && metav1.IsControlledBy(pod, tr) {
				return pod, "", nil
			}
		}
		if tr.IsDone() {
			return nil, endedNoPod, nil
		}
		if ended, err := l.pause(ctx, deadline); ended != "" {
			return nil, ended, err
		}
		next, err := l.kube.GetTaskRun(ctx, tr.Name)
		switch {
		case err != nil:
			ended, err := l.cause(ctx, err)
			return nil, ended, err
		case next == nil || next.UID != tr.UID:
			return nil, endedGone, nil
		}
		tr = next
	}
}

// awaitStep returns pod as read once container c has started (so pods/log
// can follow it), or nil with why when the pod went away, finished without
// running c, or Wait ran out.
func (l *Logs) awaitStep(ctx context.Context, pod *corev1.Pod, c string) (*corev1.Pod, string, error) {
	deadline := time.Now().Add(l.o.Wait)
	for {
		if started(pod, c) {
			return pod, "", nil
		}
		if pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed {
			return nil, endedSteps, nil
		}
		if ended, err := l.pause(ctx, deadline); ended != "" {
			return nil, ended, err
		}
		next, err := l.kube.GetPod(ctx, pod.Name)
		switch {
		case err != nil:
			ended, err := l.cause(ctx, err)
			return nil, ended, err
		case next == nil || next.UID != pod.UID:
			return nil, endedGone, nil
		}
		pod = next
	}
}

// pause waits Poll, or returns why it cannot: the deadline has passed or
// the client went away.
func (l *Logs) pause(ctx context.Context, deadline time.Time) (string, error) {
	if !time.Now().Before(deadline) {
		return endedWait, nil
	}
	t := time.NewTimer(min(l.o.Poll, time.Until(deadline)))
	defer t.Stop()
	select {
	case <-ctx.Done():
		return endedClient, nil
	case <-t.C:
		return "", nil
	}
}

// steps returns the names of pod's step containers in step order (Tekton
// makes them in the order of the Task's steps; sidecars are not steps).
func steps(pod *corev1.Pod) []string {
	var names []string
	for _, c := range pod.Spec.Containers {
		if strings.HasPrefix(c.Name, stepPrefix) {
			names = append(names, c.Name)
		}
	}
	return names
}

// started reports whether container c is running or has run.
func started(pod *corev1.Pod, c string) bool {
	for _, s := range pod.Status.ContainerStatuses {
		if s.Name == c {
			return s.State.Running != nil || s.State.Terminated != nil
		}
	}
	return false
}

// done logs the one line a request gets.
func (l *Logs) done(ctx context.Context, r *http.Request, began time.Time, n int64, ended string, err error, attrs ...slog.Attr) {
	attrs = append(attrs, slog.String("query", r.URL.RawQuery), slog.Int64("bytes", n),
		slog.String("ended", ended), slog.Duration("duration", time.Since(began)))
	level := slog.LevelInfo
	if err != nil {
		code := status.Code(err)
		attrs = append(attrs, slog.Int("code", code), slog.String("error", err.Error()))
		level = slog.LevelWarn
		if code >= 500 {
			level = slog.LevelError
		}
	}
	l.log.LogAttrs(ctx, level, "log stream", attrs...)
}

// flushWriter sends each write to the client at once.
type flushWriter struct {
	w  io.Writer
	rc *http.ResponseController
}

func (f flushWriter) Write(p []byte) (int, error) {
	n, err := f.w.Write(p)
	if err == nil {
		err = f.rc.Flush()
	}
	return n, err
}
