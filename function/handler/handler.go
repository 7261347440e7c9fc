// Package handler turns Workflow Engine CloudEvents into Tekton objects: a
// TaskRun with its params ConfigMap, a cancel, or a workflow's workspace
// claims, each exactly once, and tells the Engine when a run starts.
package handler

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"mime"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/boomerang-io/flow-tekton-handler/internal/clock"
	"github.com/boomerang-io/flow-tekton-handler/internal/contract"
	"github.com/boomerang-io/flow-tekton-handler/internal/engine"
	"github.com/boomerang-io/flow-tekton-handler/internal/eventlog"
	"github.com/boomerang-io/flow-tekton-handler/internal/keylock"
	"github.com/boomerang-io/flow-tekton-handler/internal/kube"
	"github.com/boomerang-io/flow-tekton-handler/internal/memo"
	pipelinev1 "github.com/boomerang-io/flow-tekton-handler/internal/pipelinev1"
	"github.com/boomerang-io/flow-tekton-handler/internal/status"
	"github.com/boomerang-io/flow-tekton-handler/internal/tekton"
)

// Engine is the part of the Engine's REST API the handler calls.
type Engine interface {
	StartTaskRun(ctx context.Context, id string) (*engine.TaskRun, error)
	EndTaskRun(ctx context.Context, id string, req engine.EndRequest) error
	StartWorkflowRun(ctx context.Context, id string) error
	FinalizeWorkflowRun(ctx context.Context, id string) error
	GetTaskRun(ctx context.Context, id string) (*engine.TaskRun, error)
}

var _ Engine = (*engine.Client)(nil)

// Kube is the part of the cluster the handler changes.
type Kube interface {
	GetTaskRun(ctx context.Context, name string) (*pipelinev1.TaskRun, error)
	CreateTaskRun(ctx context.Context, tr *pipelinev1.TaskRun) (*pipelinev1.TaskRun, bool, error)
	DryRunTaskRun(ctx context.Context, tr *pipelinev1.TaskRun) error
	CreateConfigMap(ctx context.Context, cm *corev1.ConfigMap) (*corev1.ConfigMap, bool, error)
	GetConfigMap(ctx context.Context, name string) (*corev1.ConfigMap, error)
	ClaimConfigMap(ctx context.Context, cm *corev1.ConfigMap, at time.Time) (bool, error)
	DropConfigMapClaim(ctx context.Context, name, key, mine string) error
	DeleteConfigMap(ctx context.Context, name string) error
	CreatePVC(ctx context.Context, pvc *corev1.PersistentVolumeClaim) (bool, error)
	GetPVC(ctx context.Context, name string) (*corev1.PersistentVolumeClaim, error)
	DeletePVCs(ctx context.Context, selector string) (int, error)
	CancelTaskRun(ctx context.Context, name, message string) (bool, error)
	ClaimTaskRun(ctx context.Context, tr *pipelinev1.TaskRun, key string, at time.Time) (bool, error)
	ReleaseTaskRun(ctx context.Context, name string) error
}

var _ Kube = (*kube.Client)(nil)

// Handler handles Engine events.
type Handler struct {
	kube     Kube
	engine   Engine
	opts     tekton.Options
	maxBytes int64
	log      *slog.Logger
	locks    keylock.Map
	// done remembers the tasks this process has created (or found), so
	// repeated deliveries cost no apiserver call.
	done *memo.Set
	// runClaims remembers the claims found for a workflow run's tasks.
	runClaims *memo.Map[found]
	now       func() time.Time
}

// doneSize is how many finished task ids a handler remembers, and runsSize
// how many workflow runs' claims, each for at most claimsFresh.
const (
	doneSize    = 4096
	runsSize    = 1024
	claimsFresh = time.Minute
)

// found is the claims found for a workflow run, and when.
type found struct {
	claims []tekton.Claim
	at     time.Time
}

// New returns a Handler building objects with opts and rejecting event data
// larger than maxBytes.
func New(k Kube, e Engine, opts tekton.Options, maxBytes int64, log *slog.Logger) *Handler {
	return &Handler{kube: k, engine: e, opts: opts, maxBytes: maxBytes, log: log, done: memo.NewSet(doneSize),
		runClaims: memo.NewMap[found](runsSize), now: time.Now}
}

// Handle processes one event. Its error decides the answer (package status);
// the handler never replies with an event: a reply would re-enter the Broker.
func (h *Handler) Handle(ctx context.Context, e event.Event) error {
	began := time.Now()
	l := h.log.With("ce.id", e.ID(), "ce.type", e.Type(), "ce.source", e.Source())
	hctx, cancel := context.WithTimeout(ctx, status.Budget)
	defer cancel()
	outcome, attrs, err := h.handle(hctx, e)
	if err != nil {
		outcome = eventlog.Failure(err)
	}
	return eventlog.Event(ctx, l, outcome, began, err, attrs...)
}

func (h *Handler) handle(ctx context.Context, e event.Event) (eventlog.Outcome, []slog.Attr, error) {
	typ, ok := contract.ParseType(e.Type())
	if !ok {
		return eventlog.Rejected, nil, status.New(http.StatusUnprocessableEntity, "type", fmt.Sprintf("%q is not an %s* event", e.Type(), contract.TypePrefix))
	}
	if err := h.checkData(e); err != nil {
		return eventlog.Rejected, nil, err
	}
	switch typ {
	case contract.TypeTaskRun:
		return decoded(ctx, e, contract.DecodeTaskRun, h.handleTaskRun)
	case contract.TypeWorkflowRun:
		return decoded(ctx, e, contract.DecodeWorkflowRun, h.handleWorkflowRun)
	case contract.TypeWorkflow:
		return decoded(ctx, e, contract.DecodeWorkflow, h.handleWorkflow)
	}
	return eventlog.Skipped, nil, nil
}

// decoded hands the event and its data, read by decode, to handle; data
// that decode refuses is rejected.
func decoded[T any](ctx context.Context, e event.Event, decode func([]byte) (T, error),
	handle func(context.Context, event.Event, T) (eventlog.Outcome, []slog.Attr, error)) (eventlog.Outcome, []slog.Attr, error) {
	v, err := decode(e.Data())
	if err != nil {
		return eventlog.Rejected, nil, err
	}
	return handle(ctx, e, v)
}

// handleTaskRun executes or cancels the task of a TaskRun event.
func (h *Handler) handleTaskRun(ctx context.Context, e event.Event, t *contract.TaskRun) (eventlog.Outcome, []slog.Attr, error) {
	attrs := []slog.Attr{slog.String("taskrun", tekton.TaskRunName(h.opts.Prefix, t.ID)),
		slog.String("taskrunref", t.ID), slog.String("workflowrunref", t.WorkflowRunRef)}
	switch t.Action() {
	case contract.Execute:
		// What the TaskRun leaves out (invalid labels, param names, ...).
		outcome, dropped, err := h.execute(ctx, t, traceparent(e))
		return outcome, withDropped(attrs, dropped), err
	case contract.Cancel:
		outcome, err := h.cancel(ctx, t)
		return outcome, attrs, err
	}
	return eventlog.Skipped, attrs, nil
}

// handleWorkflowRun starts or finalizes the run of a WorkflowRun event.
func (h *Handler) handleWorkflowRun(ctx context.Context, _ event.Event, w *contract.WorkflowRun) (eventlog.Outcome, []slog.Attr, error) {
	attrs := []slog.Attr{slog.String("workflowrunref", w.ID)}
	switch w.Action() {
	case contract.StartWorkflowRun:
		// Claim settings it could not read, defaults used instead.
		dropped, err := h.startWorkflowRun(ctx, w)
		return eventlog.Created, withDropped(attrs, dropped), err
	case contract.FinalizeWorkflowRun:
		return eventlog.Reported, attrs, h.finalizeWorkflowRun(ctx, w)
	}
	return eventlog.Skipped, attrs, nil
}

// handleWorkflow deletes the workspace claims of a deleted workflow.
func (h *Handler) handleWorkflow(ctx context.Context, _ event.Event, w *contract.Workflow) (eventlog.Outcome, []slog.Attr, error) {
	attrs := []slog.Attr{slog.String("workflowref", w.ID)}
	if w.Action() != contract.DeleteWorkflow {
		return eventlog.Skipped, attrs, nil
	}
	_, err := h.kube.DeletePVCs(ctx, tekton.WorkspaceSelector(h.opts.Prefix, contract.ScopeWorkflow, w.ID))
	prefix := runKey(w.ID, "")
	h.runClaims.ForgetFunc(func(key string) bool { return strings.HasPrefix(key, prefix) })
	return eventlog.Cancelled, attrs, err
}

// withDropped adds to attrs what an event asked for that was left out,
// when anything was.
func withDropped(attrs []slog.Attr, dropped []string) []slog.Attr {
	if len(dropped) == 0 {
		return attrs
	}
	return append(attrs, slog.Any("dropped", dropped))
}

// checkData enforces the size limit and a JSON content type on the data.
func (h *Handler) checkData(e event.Event) error {
	if n := int64(len(e.Data())); n > h.maxBytes {
		return status.New(http.StatusRequestEntityTooLarge, "data", fmt.Sprintf("%d bytes exceed the limit of %d", n, h.maxBytes))
	}
	if ct := e.DataContentType(); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || (mt != "application/json" && mt != "text/json" && !hasJSONSuffix(mt)) {
			return status.New(http.StatusUnsupportedMediaType, "datacontenttype", fmt.Sprintf("%q is not JSON", ct))
		}
	}
	return nil
}

func hasJSONSuffix(mt string) bool {
	return len(mt) > 5 && mt[len(mt)-5:] == "+json"
}

// traceparent returns the W3C trace context carried by the event, if any.
func traceparent(e event.Event) string {
	if v, ok := e.Extensions()["traceparent"].(string); ok {
		return v
	}
	return ""
}

// execute starts the Engine's task and creates its TaskRun and ConfigMap.
// Concurrent copies of one task wait for the first; a TaskRun that already
// exists means a redelivery, which only makes sure the ConfigMap exists.
func (h *Handler) execute(ctx context.Context, t *contract.TaskRun, tp string) (eventlog.Outcome, []string, error) {
	unlock := h.locks.Lock(t.ID)
	defer unlock()
	if h.done.Has(t.ID) {
		return eventlog.Exists, nil, nil
	}
	outcome, dropped, err := h.create(ctx, t, tp)
	if err == nil && (outcome == eventlog.Created || outcome == eventlog.Exists) {
		h.done.Add(t.ID)
	}
	return outcome, dropped, err
}

// Claims. The params ConfigMap is created first, with the time of its
// claim (boomerang.io/claimed): the delivery whose create wins, in
// whichever replica, owns the Engine's start, then creates the TaskRun,
// running. A claim is settled once the TaskRun exists; the sink drops it
// when it claims the report, in the patch that makes the TaskRun the
// ConfigMap's owner. A claim older than ClaimStale, with no TaskRun,
// outlived its owner and may be taken over by one delivery (the claim is
// renewed with the version read, so only one wins). A TaskRun that an
// earlier version left pending holds the claim itself and is taken over
// the same way.
const (
	ClaimStale = status.ClaimStale
	// claimPoll is how often a delivery that found a live claim looks
	// again, while it waits for the owner to create the TaskRun.
	claimPoll = 100 * time.Millisecond
)

// create does the work of execute for a task this process has not seen
// finished. A task the Engine has pending is claimed at once (a claim or
// TaskRun that exists is found by the create, or looked up when the create
// fails); only a task it has not, or that cannot be built, is looked up
// first.
func (h *Handler) create(ctx context.Context, t *contract.TaskRun, tp string) (eventlog.Outcome, []string, error) {
	asked, claims, err := h.read(ctx, t)
	if err != nil {
		return "", nil, err
	}
	task, err := tekton.BuildTask(t, claims, tp, h.opts)
	if err == nil && asked.pending() {
		if err = h.admitted(ctx, task); err != nil && !errors.Is(err, tekton.ErrUnbuildable) {
			return "", nil, err
		}
	}
	if !asked.pending() || err != nil {
		outcome, err := h.notPending(ctx, t, task, asked, err)
		return outcome, nil, err
	}
	metav1.SetMetaDataAnnotation(&task.ConfigMap.ObjectMeta, contract.AnnotationClaimed, contract.ClaimValue(h.now()))
	cm, created, err := h.kube.CreateConfigMap(ctx, task.ConfigMap)
	switch {
	case errors.Is(err, kube.ErrConflict):
		return "", nil, status.New(http.StatusUnprocessableEntity, "data.id", err.Error())
	case err != nil:
		// Admission (a quota, a policy) answers before storage could say
		// that the ConfigMap exists: look before acting on it.
		outcome, err := h.notCreated(ctx, t, task, asked, err)
		return outcome, nil, err
	case !created:
		// Another delivery's create won.
		outcome, err := h.claimed(ctx, t, task, cm)
		return outcome, nil, err
	}
	outcome, err := h.start(ctx, t, task, task.ConfigMap)
	if err != nil || outcome != eventlog.Created {
		return outcome, nil, err
	}
	return eventlog.Created, task.Dropped, nil
}

// admitted asks Tekton's admission webhook, in a dry run, whether it admits
// a TaskRun the builders could not vouch for (tekton.Task.Unvouched): the
// program does not link Tekton's validation. A refusal is the task's
// INVALID_TASK, before anything is created or started.
func (h *Handler) admitted(ctx context.Context, task *tekton.Task) error {
	if task.Unvouched == "" {
		return nil
	}
	err := h.kube.DryRunTaskRun(ctx, task.TaskRun)
	if errors.Is(err, kube.ErrRejected) {
		return &tekton.BuildError{Code: "INVALID_TASK", Message: err.Error()}
	}
	return err
}

// notCreated handles a ConfigMap create that failed with err. A ConfigMap
// or TaskRun that exists (another delivery's, a redelivery) is taken up;
// without one, objects the cluster refuses for good are reported to the
// Engine, rather than left waiting for ever, and any other error is
// returned for a retry.
func (h *Handler) notCreated(ctx context.Context, t *contract.TaskRun, task *tekton.Task, asked answer, err error) (eventlog.Outcome, error) {
	cm, gerr := h.kube.GetConfigMap(ctx, task.ConfigMap.Name)
	var tr *pipelinev1.TaskRun
	if gerr == nil && cm == nil {
		tr, gerr = h.kube.GetTaskRun(ctx, task.TaskRun.Name)
	}
	switch {
	case gerr != nil:
		// Whether they exist is unknown: retry (the create's error says
		// why it failed, not what to do).
		return "", fmt.Errorf("%v; then %w", err, gerr)
	case cm != nil:
		return h.claimed(ctx, t, task, cm)
	case tr != nil:
		return h.resume(ctx, t, task, tr, nil)
	case errors.Is(err, kube.ErrRejected):
		return h.reportUnbuildable(ctx, t, asked.task, fmt.Errorf("TASKRUN_REJECTED: %w", err))
	}
	return "", err
}

// notPending handles a task that is not simply to be created: the Engine
// could not be asked, has it other than pending, or it cannot be built. A
// TaskRun that exists wins over all three (a redelivery); without one, the
// Engine's answer decides, and a task it runs may still be under a claim
// whose owner started it and has yet to create its TaskRun.
func (h *Handler) notPending(ctx context.Context, t *contract.TaskRun, task *tekton.Task, asked answer, buildErr error) (eventlog.Outcome, error) {
	existing, err := h.kube.GetTaskRun(ctx, tekton.TaskRunName(h.opts.Prefix, t.ID))
	switch {
	case err != nil:
		return "", err
	case existing != nil:
		return h.resume(ctx, t, task, existing, nil)
	case asked.err != nil:
		return "", asked.err
	case asked.task.Done():
		// The Engine is done with the task (cancelled, completed, and its
		// TaskRun reported and deleted): this is a late copy of its ready
		// event, and nothing may run.
		return eventlog.Skipped, h.dropLeftover(ctx, tekton.ConfigMapName(h.opts.Prefix, t.ID))
	case errors.Is(buildErr, tekton.ErrUnbuildable):
		return h.reportUnbuildable(ctx, t, asked.task, buildErr)
	case buildErr != nil:
		return "", buildErr
	}
	cm, err := h.kube.GetConfigMap(ctx, task.ConfigMap.Name)
	if err != nil {
		return "", err
	}
	if _, ok := claimOf(cm); ok {
		return h.claimed(ctx, t, task, cm)
	}
	// Running without a TaskRun or a claim: its TaskRun was reported
	// failed and is gone, or another delivery is reporting it unbuildable.
	return eventlog.Skipped, nil
}

// dropLeftover deletes the named ConfigMap of a task the Engine is done
// with and that has no TaskRun, when a claim on it is stale: its owner died
// (or failed to delete it), and with no owner reference nothing else would.
func (h *Handler) dropLeftover(ctx context.Context, name string) error {
	cm, err := h.kube.GetConfigMap(ctx, name)
	if err != nil {
		return err
	}
	if at, claimed := claimOf(cm); !claimed || !h.stale(at) {
		return nil
	}
	_, err = h.discard(ctx, cm)
	return err
}

// stale reports whether a claim taken at at outlived its owner.
func (h *Handler) stale(at time.Time) bool { return h.now().Sub(at) >= ClaimStale }

// discard takes a stale claim over and deletes its ConfigMap, so that no
// TaskRun comes; it reports false when another delivery took it first.
func (h *Handler) discard(ctx context.Context, cm *corev1.ConfigMap) (bool, error) {
	won, mine, err := h.claim(ctx, cm)
	if err != nil || !won {
		return false, err
	}
	return true, h.unclaim(ctx, mine)
}

// claimOf is the time of the start's claim on a ConfigMap, and whether it
// has one; a claim that does not parse (or was dropped) is the zero time,
// stale.
func claimOf(cm *corev1.ConfigMap) (time.Time, bool) {
	if cm == nil {
		return time.Time{}, false
	}
	if _, ok := cm.Annotations[contract.AnnotationClaimed]; !ok {
		return time.Time{}, false
	}
	return contract.ClaimTime(cm.Annotations, contract.AnnotationClaimed), true
}

// claimed handles a ConfigMap that another delivery created: once the
// TaskRun exists it is resumed; until then, a live claim is waited for and
// a stale one taken over. With neither, the TaskRun was reported and
// deleted (the sink settled the claim), or an earlier version made the
// ConfigMap and its TaskRun is gone.
func (h *Handler) claimed(ctx context.Context, t *contract.TaskRun, task *tekton.Task, cm *corev1.ConfigMap) (eventlog.Outcome, error) {
	for {
		tr, err := h.kube.GetTaskRun(ctx, task.TaskRun.Name)
		if err != nil {
			return "", err
		}
		at, claimed := claimOf(cm)
		switch {
		case tr != nil:
			return h.resume(ctx, t, task, tr, cm)
		case !claimed:
			return eventlog.Skipped, nil
		case h.stale(at):
			if !timeLeft(ctx) {
				return "", status.New(status.Transient, "", fmt.Sprintf("task %s: too little time left to take its stale claim over", t.ID))
			}
			won, mine, err := h.claim(ctx, cm)
			if err != nil {
				return "", err
			}
			if won {
				return h.takeOver(ctx, t, task, mine)
			}
		default:
			if err := clock.Sleep(ctx, claimPoll); err != nil {
				return "", status.New(status.Transient, "", fmt.Sprintf("task %s is being started by another delivery", t.ID))
			}
		}
		cur, err := h.kube.GetConfigMap(ctx, cm.Name)
		if err != nil {
			return "", err
		}
		if cur == nil {
			return eventlog.Skipped, nil // the start settled with no TaskRun
		}
		cm = cur
	}
}

// takeOverTime is the time a delivery must have left to take a stale claim
// over: enough for the Engine's start and the creates that follow it.
const takeOverTime = 10 * time.Second

// timeLeft reports whether ctx leaves takeOverTime.
func timeLeft(ctx context.Context) bool {
	deadline, ok := ctx.Deadline()
	return !ok || time.Until(deadline) >= takeOverTime
}

// claim takes a stale claim over, and returns the ConfigMap as claimed.
func (h *Handler) claim(ctx context.Context, cm *corev1.ConfigMap) (bool, *corev1.ConfigMap, error) {
	at := h.now()
	won, err := h.kube.ClaimConfigMap(ctx, cm, at)
	if !won || err != nil {
		return false, nil, err
	}
	mine := cm.DeepCopy()
	metav1.SetMetaDataAnnotation(&mine.ObjectMeta, contract.AnnotationClaimed, contract.ClaimValue(at))
	return true, mine, nil
}

// takeOver does the part of a claim's owner that died: the Engine's state
// says how far it got.
func (h *Handler) takeOver(ctx context.Context, t *contract.TaskRun, task *tekton.Task, cm *corev1.ConfigMap) (eventlog.Outcome, error) {
	asked, err := h.engine.GetTaskRun(ctx, t.ID)
	switch {
	case err != nil:
		h.dropClaim(ctx, cm) // nothing was sent: the retry may take over at once
		return "", err
	case asked.Pending():
		return h.start(ctx, t, task, cm)
	case asked.Done():
		return eventlog.Skipped, h.unclaim(ctx, cm)
	case !asked.Running():
		h.dropClaim(ctx, cm)
		return "", status.New(status.Transient, "", fmt.Sprintf("the Engine's answer for task %s has phase %q", t.ID, asked.Phase))
	}
	// The owner's start landed; its TaskRun was not made.
	sctx, cancel := status.Settle(ctx)
	defer cancel()
	return h.run(sctx, t, task, cm)
}

// start does the owner's part: the Engine's start, then the TaskRun. When
// the start fails the claim is dropped, so the sender's retry takes over at
// once instead of after ClaimStale. When the Engine answers that it is done
// with the task (cancelled, say, before this event arrived), or refuses it
// for good, nothing runs and the ConfigMap is deleted.
func (h *Handler) start(ctx context.Context, t *contract.TaskRun, task *tekton.Task, cm *corev1.ConfigMap) (eventlog.Outcome, error) {
	answer, err := h.engine.StartTaskRun(ctx, t.ID)
	sctx, cancel := status.Settle(ctx)
	defer cancel()
	var refused *engine.StatusError
	switch {
	case errors.Is(err, engine.ErrRejected):
		if uerr := h.unclaim(sctx, cm); uerr != nil {
			h.log.WarnContext(ctx, "could not delete the ConfigMap of the task the Engine refused", "configmap", cm.Name, "error", uerr.Error())
		}
		return "", err
	case errors.As(err, &refused):
		// The Engine answered, and not with a start: the retry may take
		// over at once. After a timeout or a broken connection the start
		// may have landed, so the claim is kept until it is stale and a
		// second start could only be a late one, which the Engine ignores.
		h.dropClaim(ctx, cm)
		return "", err
	case err != nil:
		return "", err
	}
	if answer != nil && answer.Done() {
		return eventlog.Cancelled, h.unclaim(sctx, cm)
	}
	// The Engine has started the task: create its TaskRun even when the
	// request's time has run out, or it would wait until the claim is
	// stale.
	return h.run(sctx, t, task, cm)
}

// run creates the TaskRun of a task the Engine started, which settles the
// claim. A TaskRun that cannot be created for good is reported failed; on
// any other failure the claim is dropped once the Engine shows the task
// started, so the retry creates it at once.
func (h *Handler) run(ctx context.Context, t *contract.TaskRun, task *tekton.Task, cm *corev1.ConfigMap) (eventlog.Outcome, error) {
	tr, created, err := h.kube.CreateTaskRun(ctx, task.TaskRun)
	if err != nil {
		// The retry may take over at once, once the Engine shows the task
		// started (or it would start it again).
		h.awaitStarted(ctx, t.ID)
	}
	var refused *engine.StatusError
	switch {
	case errors.Is(err, kube.ErrRejected), errors.Is(err, kube.ErrConflict):
		// Refused for good (by Tekton's webhook, say), or the name is
		// another task's TaskRun's.
		outcome, err := h.endFailed(ctx, t, fmt.Errorf("TASKRUN_REJECTED: %w", err))
		if errors.As(err, &refused) {
			h.dropClaim(ctx, cm) // after a timeout the end may have landed: kept
		}
		if err != nil {
			return "", err
		}
		return outcome, h.unclaim(ctx, cm)
	case err != nil:
		h.dropClaim(ctx, cm)
		return "", err
	}
	if !created && tr.IsPending() {
		// An earlier version's delivery created it pending: the task is
		// started now.
		return eventlog.Created, h.kube.ReleaseTaskRun(ctx, tr.Name)
	}
	return eventlog.Created, nil
}

// dropClaim makes this delivery's claim stale, best effort: if it fails,
// the claim goes stale after ClaimStale by itself.
func (h *Handler) dropClaim(ctx context.Context, cm *corev1.ConfigMap) {
	sctx, cancel := status.Settle(ctx)
	defer cancel()
	if err := h.kube.DropConfigMapClaim(sctx, cm.Name, contract.AnnotationClaimed, cm.Annotations[contract.AnnotationClaimed]); err != nil {
		h.log.WarnContext(ctx, "could not drop the claim; it goes stale by itself", "configmap", cm.Name, "error", err.Error())
	}
}

// unclaim ends a claim whose task will not run: the ConfigMap goes.
func (h *Handler) unclaim(ctx context.Context, cm *corev1.ConfigMap) error {
	return h.kube.DeleteConfigMap(ctx, cm.Name)
}

// resume handles a TaskRun that exists: it only makes sure the ConfigMap
// (cm, when it was read) exists. A TaskRun an earlier version left pending
// is waited for while its claim is live, and taken over when it is stale.
func (h *Handler) resume(ctx context.Context, t *contract.TaskRun, task *tekton.Task, tr *pipelinev1.TaskRun, cm *corev1.ConfigMap) (eventlog.Outcome, error) {
	if err := kube.SameIdentity(tr.Labels, map[string]string{contract.LabelTaskRunRef: tekton.LabelValue(t.ID)}); err != nil {
		return "", status.New(http.StatusUnprocessableEntity, "data.id", fmt.Sprintf("taskrun %s: %v", tr.Name, err))
	}
	for tr.IsPending() {
		if tr.DeletionTimestamp != nil {
			return eventlog.Skipped, nil // being deleted: not ours to start
		}
		if h.stale(contract.ClaimTime(tr.Annotations, contract.AnnotationClaimed)) {
			won, err := h.kube.ClaimTaskRun(ctx, tr, contract.AnnotationClaimed, h.now())
			if err != nil {
				return "", err
			}
			if won {
				return h.release(ctx, t, task, tr, cm)
			}
		} else if err := clock.Sleep(ctx, claimPoll); err != nil {
			return "", status.New(status.Transient, "", fmt.Sprintf("taskrun %s is being started by another delivery", tr.Name))
		}
		cur, err := h.kube.GetTaskRun(ctx, tr.Name)
		if err != nil || cur == nil {
			return eventlog.Skipped, err // deleted meanwhile: not ours to recreate
		}
		tr = cur
	}
	return eventlog.Exists, h.ensureConfigMap(ctx, task, tr, cm)
}

// ensureConfigMap makes sure the params ConfigMap of a TaskRun that exists
// exists too (existing, when it was read): one that is missing is made,
// owned by the TaskRun, with no claim.
func (h *Handler) ensureConfigMap(ctx context.Context, task *tekton.Task, tr *pipelinev1.TaskRun, existing *corev1.ConfigMap) error {
	if task == nil || existing != nil {
		return nil
	}
	cm := task.ConfigMap.DeepCopy()
	delete(cm.Annotations, contract.AnnotationClaimed)
	tekton.SetOwner(cm, tr)
	_, _, err := h.kube.CreateConfigMap(ctx, cm)
	return err
}

// release starts the task of a TaskRun an earlier version left pending,
// whose claim was taken over, then releases it to Tekton; it cancels it
// instead when the Engine is done with the task or refuses it.
func (h *Handler) release(ctx context.Context, t *contract.TaskRun, task *tekton.Task, tr *pipelinev1.TaskRun, cm *corev1.ConfigMap) (eventlog.Outcome, error) {
	if err := h.ensureConfigMap(ctx, task, tr, cm); err != nil {
		return "", err
	}
	answer, err := h.engine.StartTaskRun(ctx, t.ID)
	sctx, cancel := status.Settle(ctx)
	defer cancel()
	switch {
	case errors.Is(err, engine.ErrRejected):
		_, cerr := h.kube.CancelTaskRun(sctx, tr.Name, "The Workflow Engine refused to start the task.")
		return "", errors.Join(err, cerr)
	case err != nil:
		return "", err
	case answer != nil && answer.Done():
		_, err := h.kube.CancelTaskRun(sctx, tr.Name, fmt.Sprintf("The Workflow Engine no longer runs the task: it is %s.", answer.Status))
		return eventlog.Cancelled, err
	}
	return eventlog.Created, h.kube.ReleaseTaskRun(sctx, tr.Name)
}

// reportUnbuildable tells the Engine that a task it can identify cannot run:
// start (unless an earlier delivery's start made it running), then end
// failed with the reason. Nothing is created.
func (h *Handler) reportUnbuildable(ctx context.Context, t *contract.TaskRun, asked *engine.TaskRun, buildErr error) (eventlog.Outcome, error) {
	if asked.Pending() {
		answer, err := h.engine.StartTaskRun(ctx, t.ID)
		if err != nil {
			return "", err
		}
		if answer != nil && answer.Done() {
			return eventlog.Skipped, nil // the Engine is done with it: nothing to end
		}
	}
	h.awaitStarted(ctx, t.ID)
	return h.endFailed(ctx, t, buildErr)
}

// startSettle bounds how long an end that follows a start at once waits
// for the start to take effect.
const startSettle = 5 * time.Second

// awaitStarted waits, up to startSettle, until the Engine shows the task no
// longer pending. The Engine runs a start's execute asynchronously; an end
// that lands before it is overwritten, and the task would stay running for
// ever. An Engine that cannot be read (no such endpoint) is not waited for.
func (h *Handler) awaitStarted(ctx context.Context, id string) {
	ctx, cancel := context.WithTimeout(ctx, startSettle)
	defer cancel()
	for {
		tr, err := h.engine.GetTaskRun(ctx, id)
		var se *engine.StatusError
		switch {
		case err == nil && !tr.Pending():
			return
		case errors.As(err, &se) && (se.Code == http.StatusNotFound || se.Code == http.StatusMethodNotAllowed), errors.Is(err, engine.ErrRejected):
			return
		}
		if clock.Sleep(ctx, claimPoll/2) != nil {
			h.log.WarnContext(ctx, "the Engine did not show the task started; ending it anyway", "taskrunref", id)
			return
		}
	}
}

// endFailed ends a started task as failed with the reason.
func (h *Handler) endFailed(ctx context.Context, t *contract.TaskRun, reason error) (eventlog.Outcome, error) {
	end := engine.EndRequest{Status: engine.StatusFailed, Results: []engine.Result{}, StatusMessage: reason.Error()}
	if err := h.engine.EndTaskRun(ctx, t.ID, end); err != nil {
		return "", err
	}
	return eventlog.Reported, nil
}

// answer is the Engine's answer about a task: its state, or why it could
// not be asked.
type answer struct {
	task *engine.TaskRun
	err  error
}

// pending reports whether the Engine answered that the task is pending.
func (a answer) pending() bool { return a.err == nil && a.task.Pending() }

// read reads what create needs: the Engine's task (the Engine's state, not
// ours, says whether a task may run; its answer counts only when there is
// no TaskRun, so an error asking is not the read's) and the workspace
// claims, the two in parallel when the claims must be read: otherwise the
// Engine's answer is all there is to wait for, and a goroutine for it would
// only add a hand-off between threads.
func (h *Handler) read(ctx context.Context, t *contract.TaskRun) (answer, []tekton.Claim, error) {
	var a answer
	claims, known := h.knownClaims(t)
	if known {
		a.task, a.err = h.engine.GetTaskRun(ctx, t.ID)
	} else {
		var wg sync.WaitGroup
		wg.Go(func() { a.task, a.err = h.engine.GetTaskRun(ctx, t.ID) })
		var err error
		claims, err = h.claims(ctx, t)
		wg.Wait()
		if err != nil {
			return answer{}, nil, err
		}
	}
	if a.err == nil && a.task.Phase == "" {
		a.err = status.New(status.Transient, "", fmt.Sprintf("the Engine's answer for task %s has no phase", t.ID))
	}
	if a.err != nil {
		a.err = fmt.Errorf("ask the Engine about task %s: %w", t.ID, a.err)
	}
	return a, claims, nil
}

// claims finds the workspace claims that exist for the task's workflow and
// workflow run, reading each by its deterministic name, and remembers them
// for the run's other tasks (knownClaims) for claimsFresh: the handler
// creates a run's claims before it starts the run, and deletes them when
// it finalizes the run or the workflow is deleted, so while its tasks run
// they do not change. (The bound covers what another replica deleted or a
// redelivered start created.)
func (h *Handler) claims(ctx context.Context, t *contract.TaskRun) ([]tekton.Claim, error) {
	at := h.now()
	var pvcs []corev1.PersistentVolumeClaim
	for scope, ref := range map[string]string{contract.ScopeWorkflow: t.WorkflowRef, contract.ScopeWorkflowRun: t.WorkflowRunRef} {
		if ref == "" {
			continue
		}
		pvc, err := h.kube.GetPVC(ctx, tekton.PVCName(h.opts.Prefix, scope, ref))
		if err != nil {
			return nil, err
		}
		if pvc != nil {
			pvcs = append(pvcs, *pvc)
		}
	}
	claims := tekton.Claims(pvcs, t.WorkflowRef, t.WorkflowRunRef)
	if t.WorkflowRunRef != "" {
		h.runClaims.Put(runKey(t.WorkflowRef, t.WorkflowRunRef), found{claims, at})
	}
	return claims, nil
}

// knownClaims returns what claims found for the task's workflow run less
// than claimsFresh ago, if anything.
func (h *Handler) knownClaims(t *contract.TaskRun) ([]tekton.Claim, bool) {
	if t.WorkflowRunRef == "" {
		return nil, false
	}
	f, ok := h.runClaims.Get(runKey(t.WorkflowRef, t.WorkflowRunRef))
	if !ok || h.now().Sub(f.at) >= claimsFresh {
		return nil, false
	}
	return f.claims, true
}

// runKey keys a workflow run's claims.
func runKey(workflowRef, workflowRunRef string) string { return workflowRef + "/" + workflowRunRef }

// cancel asks Tekton to cancel the task's TaskRun. Without one, a TaskRun
// may be on its way under a claim: a live claim is waited for, a stale one
// taken over so that no TaskRun comes. A TaskRun that is finished or
// cancelled already, or nothing on its way, is a no-op.
func (h *Handler) cancel(ctx context.Context, t *contract.TaskRun) (eventlog.Outcome, error) {
	name := tekton.TaskRunName(h.opts.Prefix, t.ID)
	msg := fmt.Sprintf("The Workflow Engine marked the task %s.", t.Status)
	for {
		exists, err := h.kube.CancelTaskRun(ctx, name, msg)
		if err != nil || exists {
			return eventlog.Cancelled, err
		}
		tr, err := h.kube.GetTaskRun(ctx, name)
		if err != nil || tr != nil {
			return eventlog.Skipped, err // finished or cancelled already
		}
		cm, err := h.kube.GetConfigMap(ctx, tekton.ConfigMapName(h.opts.Prefix, t.ID))
		if err != nil {
			return "", err
		}
		at, claimed := claimOf(cm)
		switch {
		case !claimed:
			return eventlog.Skipped, nil // nothing on its way
		case h.stale(at):
			// Won or lost, one more look: a TaskRun its owner made
			// meanwhile is cancelled.
			if _, err := h.discard(ctx, cm); err != nil {
				return "", err
			}
		default:
			if err := clock.Sleep(ctx, claimPoll); err != nil {
				return "", status.New(status.Transient, "", fmt.Sprintf("task %s is being started by another delivery", t.ID))
			}
		}
	}
}

// startWorkflowRun creates the run's workspace claims, then tells the Engine.
// A claim the cluster refuses for good (a quota, an invalid class) does not
// keep the run from starting: it is logged, and its tasks run without it.
func (h *Handler) startWorkflowRun(ctx context.Context, w *contract.WorkflowRun) ([]string, error) {
	pvcs, dropped := tekton.PVCs(w, h.opts)
	for _, pvc := range pvcs {
		_, err := h.kube.CreatePVC(ctx, pvc)
		if errors.Is(err, kube.ErrRejected) {
			h.log.WarnContext(ctx, "workspace claim refused; starting the run without it", "workflowrunref", w.ID, "claim", pvc.Name, "error", err.Error())
			continue
		}
		if err != nil {
			return dropped, err
		}
	}
	err := h.engine.StartWorkflowRun(ctx, w.ID)
	if engine.HasCode(err, engine.CodeWorkflowRunInvalidPhase) {
		// Not pending any more: started by an earlier delivery of this
		// event. Nothing is left to do.
		h.log.InfoContext(ctx, "workflow run already started", "workflowrunref", w.ID)
		return dropped, nil
	}
	if err != nil {
		return dropped, err
	}
	return dropped, nil
}

// finalizeWorkflowRun deletes the run-scoped claims, then tells the Engine.
func (h *Handler) finalizeWorkflowRun(ctx context.Context, w *contract.WorkflowRun) error {
	_, err := h.kube.DeletePVCs(ctx, tekton.WorkspaceSelector(h.opts.Prefix, contract.ScopeWorkflowRun, w.ID))
	h.runClaims.Forget(runKey(w.WorkflowRef, w.ID))
	if err != nil {
		return err
	}
	if err := h.engine.FinalizeWorkflowRun(ctx, w.ID); err != nil {
		return err
	}
	return nil
}

// Stop has nothing to stop: the handler keeps no background work.
func (h *Handler) Stop(context.Context) error { return nil }
