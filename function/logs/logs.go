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
	"net/url"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/boomerang-io/flow-tekton-handler/internal/clock"
	"github.com/boomerang-io/flow-tekton-handler/internal/contract"
	"github.com/boomerang-io/flow-tekton-handler/internal/eventlog"
	"github.com/boomerang-io/flow-tekton-handler/internal/kube"
	pipelinev1 "github.com/boomerang-io/flow-tekton-handler/internal/pipelinev1"
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

// Target is the request target of the stream of a task, as the Engine's
// log client builds it from the three references.
func Target(workflowRef, workflowRunRef, taskRunRef string) string {
	return Path + "?" + url.Values{
		ParamWorkflow: {workflowRef}, ParamWorkflowRun: {workflowRunRef}, ParamTaskRun: {taskRunRef},
	}.Encode()
}

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
	// (LOGS_WAIT). A stream whose wait runs out is cut.
	Wait time.Duration
	// Poll is how often a wait reads the TaskRun or pod again, and how often
	// a follow checks whether the TaskRun has ended; 1 s if zero. The role
	// may not watch (its Role grants get only).
	Poll time.Duration
	// Grace is how long a step may go on writing after its TaskRun ended
	// (a cancelled task's pod stops within its termination grace period,
	// 30 s by default); then its follow is ended. 2 s if zero.
	Grace time.Duration
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
	if o.Grace <= 0 {
		o.Grace = 2 * time.Second
	}
	return &Logs{kube: k, o: o, log: log}
}

// Stop has nothing to stop: streams end with their requests.
func (l *Logs) Stop(context.Context) error { return nil }

// refs are the three references of a request.
type refs struct{ workflow, workflowRun, taskRun string }

// ServeHTTP answers one request. A bad request (400), an unknown task (404)
// or apiserver trouble before the first byte (503) gets the JSON error of
// package status. Otherwise the answer is 200 and the log as it is written,
// ending when the last step ends. A stream that cannot go on (apiserver
// trouble, LOGS_WAIT run out, the function shutting down) is aborted, so
// the client sees a broken transfer, never a log that looks complete. The
// request's context bounds the work: a client that goes away stops it.
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
	out := newAnswer(w)
	s := &stream{Logs: l, ctx: ctx, out: out, tr: tr}
	ended, err := s.run()
	attrs := []slog.Attr{slog.String("taskrun", tr.Name)}
	if !out.sent && err != nil { // nothing sent yet: the error is the answer
		status.Write(w, err)
		l.done(ctx, r, began, 0, "refused", err, attrs...)
		return
	}
	out.commit()
	l.done(ctx, r, began, out.bytes, ended, err, attrs...)
	if err != nil || ended == endedWait {
		panic(http.ErrAbortHandler) // cut the transfer: the log is not complete
	}
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

// Why a stream ended, for its log line. endedWait cuts the transfer; after
// endedClient there is no one left to tell.
const (
	endedSteps  = "steps ended"
	endedNoPod  = "finished without a pod"
	endedGone   = "gone"
	endedDone   = "TaskRun ended, step stopped after the grace"
	endedWait   = "not started within LOGS_WAIT"
	endedClient = "client went away"
)

// errTaskRunEnded ends the follow of a step that outlived its TaskRun.
var errTaskRunEnded = errors.New("the TaskRun ended")

// stream is one request's log stream.
type stream struct {
	*Logs
	ctx context.Context
	out *answer
	tr  *pipelinev1.TaskRun
}

// run writes the logs of the TaskRun's step containers in step order, each
// followed until it ends, and returns why it ended.
func (s *stream) run() (string, error) {
	pod, ended, err := s.awaitPod()
	if pod == nil {
		return ended, err
	}
	for i, c := range steps(pod) {
		if pod, ended, err = s.awaitStep(pod, i > 0, c); pod == nil {
			return ended, err
		}
		if ended, err = s.follow(pod.Name, c); ended != "" || err != nil {
			return ended, err
		}
	}
	return endedSteps, nil
}

// follow copies container c's log to the answer until it ends. A step still
// running Grace after its TaskRun ended (cancelled, timed out) is not
// waited for any longer.
func (s *stream) follow(pod, c string) (string, error) {
	ctx, cancel := context.WithCancelCause(s.ctx)
	defer cancel(nil)
	body, err := s.kube.FollowLog(ctx, pod, c)
	switch {
	case errors.Is(err, kube.ErrGone):
		return endedGone, nil
	case err != nil:
		return s.cause(err)
	}
	defer body.Close()
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		if s.outlives(ctx, pod, c) {
			cancel(errTaskRunEnded)
		}
	}()
	_, err = io.Copy(s.out, body)
	cancel(nil)
	<-watched
	switch {
	case errors.Is(context.Cause(ctx), errTaskRunEnded):
		return endedDone, nil
	case err != nil:
		return s.cause(err)
	}
	return "", nil
}

// outlives reports, once it is so, that container c of pod is still
// running Grace after the TaskRun ended; false when ctx ends first.
func (s *stream) outlives(ctx context.Context, pod, c string) bool {
	var endedAt time.Time
	for clock.Sleep(ctx, s.o.Poll) == nil {
		if endedAt.IsZero() {
			tr, err := s.kube.GetTaskRun(ctx, s.tr.Name)
			if err == nil && (tr == nil || tr.UID != s.tr.UID || tr.IsDone()) {
				endedAt = time.Now()
			}
			continue
		}
		if time.Since(endedAt) < s.o.Grace {
			continue
		}
		p, err := s.kube.GetPod(ctx, pod)
		if err == nil && p != nil && !terminated(p, c) {
			return true
		}
	}
	return false
}

// cause tells a client that went away, or a shutdown, from a failure.
func (s *stream) cause(err error) (string, error) {
	switch {
	case s.ctx.Err() == nil:
		return "", err
	case errors.Is(context.Cause(s.ctx), context.Canceled):
		return endedClient, nil
	}
	return "", fmt.Errorf("stream cut: %w", context.Cause(s.ctx))
}

// awaitPod returns the TaskRun's pod once Tekton has made it, or nil with
// why when the TaskRun finished without one, went away, or Wait ran out.
func (s *stream) awaitPod() (*corev1.Pod, string, error) {
	deadline := time.Now().Add(s.o.Wait)
	tr := s.tr
	for {
		if tr.Status.PodName != "" {
			pod, err := s.kube.GetPod(s.ctx, tr.Status.PodName)
			if err != nil {
				ended, err := s.cause(err)
				return nil, ended, err
			}
			if pod != nil && metav1.IsControlledBy(pod, tr) {
				return pod, "", nil
			}
		}
		if tr.IsDone() {
			return nil, endedNoPod, nil
		}
		if ended, err := s.pause(deadline); ended != "" || err != nil {
			return nil, ended, err
		}
		next, ended, err := again(s, tr, s.kube.GetTaskRun)
		if next == nil {
			return nil, ended, err
		}
		tr = next
	}
}

// awaitStep returns the pod as read once container c has started (so
// pods/log can follow it), or nil with why when the pod went away or was
// replaced, finished without running c, or Wait ran out. reread reads the
// pod first: it may have changed while an earlier step ran.
func (s *stream) awaitStep(pod *corev1.Pod, reread bool, c string) (*corev1.Pod, string, error) {
	deadline := time.Now().Add(s.o.Wait)
	for {
		if reread {
			next, ended, err := again(s, pod, s.kube.GetPod)
			if next == nil {
				return nil, ended, err
			}
			pod = next
		}
		if started(pod, c) {
			return pod, "", nil
		}
		if pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed {
			return nil, endedSteps, nil
		}
		if ended, err := s.pause(deadline); ended != "" || err != nil {
			return nil, ended, err
		}
		reread = true
	}
}

// again reads obj once more with get, or returns the zero T and why when
// it is gone or was replaced (another UID under its name).
func again[T interface {
	comparable
	metav1.Object
}](s *stream, obj T, get func(context.Context, string) (T, error)) (T, string, error) {
	var gone T
	next, err := get(s.ctx, obj.GetName())
	switch {
	case err != nil:
		ended, err := s.cause(err)
		return gone, ended, err
	case next == gone || next.GetUID() != obj.GetUID():
		return gone, endedGone, nil
	}
	return next, "", nil
}

// pause sends the answer's headers, since the wait may be long, and waits
// Poll; or it returns why it cannot: the deadline has passed, or the
// client went away.
func (s *stream) pause(deadline time.Time) (string, error) {
	s.out.commit()
	if !time.Now().Before(deadline) {
		return endedWait, nil
	}
	if clock.Sleep(s.ctx, min(s.o.Poll, time.Until(deadline))) != nil {
		return s.cause(s.ctx.Err())
	}
	return "", nil
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
	st := containerStatus(pod, c)
	return st != nil && (st.State.Running != nil || st.State.Terminated != nil)
}

// terminated reports whether container c has run, or its pod is gone.
func terminated(pod *corev1.Pod, c string) bool {
	st := containerStatus(pod, c)
	return pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed ||
		st != nil && st.State.Terminated != nil
}

func containerStatus(pod *corev1.Pod, c string) *corev1.ContainerStatus {
	for i := range pod.Status.ContainerStatuses {
		if pod.Status.ContainerStatuses[i].Name == c {
			return &pod.Status.ContainerStatuses[i]
		}
	}
	return nil
}

// done logs the one line a request gets, at the level of an event's line
// (package eventlog) with the same error; "ended" says how it ended.
func (l *Logs) done(ctx context.Context, r *http.Request, began time.Time, n int64, ended string, err error, attrs ...slog.Attr) {
	attrs = append(attrs, slog.String("query", r.URL.RawQuery), slog.Int64("bytes", n),
		slog.String("ended", ended), slog.Duration("duration", time.Since(began)))
	if err != nil {
		attrs = append(attrs, slog.Int("code", status.Code(err)), slog.String("error", err.Error()))
	}
	l.log.LogAttrs(ctx, eventlog.Level(err), "log stream", attrs...)
}

// answer is the response to a request served: 200 and its headers go out
// at the first byte or before the stream waits, so trouble found before
// then is still answered with its status. Each write is sent at once.
type answer struct {
	w     http.ResponseWriter
	rc    *http.ResponseController
	sent  bool
	bytes int64
}

func newAnswer(w http.ResponseWriter) *answer {
	return &answer{w: w, rc: http.NewResponseController(w)}
}

// commit sends the 200 and its headers, once. The answer lasts as long as
// the task: the server's write deadline (func-go sets 30 s) is lifted for
// it. (Its read deadline is lifted once a request without a body is read.)
func (a *answer) commit() {
	if a.sent {
		return
	}
	a.sent = true
	_ = a.rc.SetWriteDeadline(time.Time{})
	h := a.w.Header()
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "no-store")
	a.w.WriteHeader(http.StatusOK)
	_ = a.rc.Flush()
}

func (a *answer) Write(p []byte) (int, error) {
	a.commit()
	n, err := a.w.Write(p)
	a.bytes += int64(n)
	if err == nil {
		err = a.rc.Flush()
	}
	return n, err
}
