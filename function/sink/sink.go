// Package sink reports finished Tekton TaskRuns to the Workflow Engine. It
// receives Tekton's TaskRun CloudEvents, takes the TaskRun from the
// apiserver (the source of truth: its watch, or a read), sends the Engine's
// end call once, records that on the TaskRun, and applies the deletion
// policy. A periodic sweep reports what a lost event left behind.
package sink

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/boomerang-io/flow-tekton-handler/internal/contract"
	"github.com/boomerang-io/flow-tekton-handler/internal/engine"
	"github.com/boomerang-io/flow-tekton-handler/internal/eventlog"
	"github.com/boomerang-io/flow-tekton-handler/internal/keylock"
	"github.com/boomerang-io/flow-tekton-handler/internal/kube"
	"github.com/boomerang-io/flow-tekton-handler/internal/memo"
	"github.com/boomerang-io/flow-tekton-handler/internal/outcome"
	pipelinev1 "github.com/boomerang-io/flow-tekton-handler/internal/pipelinev1"
	"github.com/boomerang-io/flow-tekton-handler/internal/status"
	"github.com/boomerang-io/flow-tekton-handler/internal/tekton"
)

// SweepType is the CloudEvent type a Knative PingSource sends; the sink
// answers it with a sweep.
const SweepType = "dev.knative.sources.ping"

// tektonTaskRunPrefix starts every Tekton TaskRun event type.
const tektonTaskRunPrefix = "dev.tekton.event.taskrun."

// Values of the reported label.
const (
	markReported = "true"
	markSkipped  = "skipped"
	markRejected = "rejected"
)

// Kube is the part of the cluster the sink reads and changes.
type Kube interface {
	Namespace() string
	GetTaskRun(ctx context.Context, name string) (*pipelinev1.TaskRun, error)
	MarkReported(ctx context.Context, name, value string, deleteDue bool, at time.Time) error
	ClaimTaskRun(ctx context.Context, tr *pipelinev1.TaskRun, key string, at time.Time) (bool, error)
	DropClaim(ctx context.Context, name, key, mine string) error
	GetConfigMap(ctx context.Context, name string) (*corev1.ConfigMap, error)
	ClaimReport(ctx context.Context, cm *corev1.ConfigMap, at time.Time) (bool, error)
	ClaimReportFirst(ctx context.Context, want *corev1.ConfigMap, at time.Time) (bool, error)
	SettleConfigMap(ctx context.Context, cm *corev1.ConfigMap) error
	DropConfigMapClaim(ctx context.Context, name, key, mine string) error
	DeleteTaskRun(ctx context.Context, name string) error
	DeleteConfigMap(ctx context.Context, name string) error
	ListTaskRuns(ctx context.Context, selector string, pageSize int64) ([]pipelinev1.TaskRun, error)
	TaskRunCache(selector string) *kube.TaskRunCache
	PodCache(selector string) *kube.PodCache
}

var _ Kube = (*kube.Client)(nil)

// watched is a watch of TaskRuns kept in memory (kube.TaskRunCache).
type watched interface {
	Get(name string) *pipelinev1.TaskRun
	OnUpdate(f func(was, is *pipelinev1.TaskRun))
	Run(ctx context.Context)
	Listed() <-chan struct{}
}

// podWatch is a watch of pods kept in memory (kube.PodCache).
type podWatch interface {
	OnUpdate(f func(was, is *corev1.Pod))
	Run(ctx context.Context)
}

// Engine is the part of the Engine's REST API the sink calls.
type Engine interface {
	EndTaskRun(ctx context.Context, id string, req engine.EndRequest) error
	GetTaskRun(ctx context.Context, id string) (*engine.TaskRun, error)
}

var _ Engine = (*engine.Client)(nil)

// Options tune the sink.
type Options struct {
	Product        string        // boomerang.io/product of our TaskRuns
	DeletionPolicy string        // when a TaskRun has no policy of its own
	SweepLimit     int           // TaskRuns reported per sweep at most
	SweepInterval  time.Duration // 0: sweep only on PingSource events and at start
	ReportStale    time.Duration // see ReportStale; 0: the defaults'
}

// Sink handles Tekton TaskRun events and sweeps.
type Sink struct {
	kube   Kube
	engine Engine
	opts   Options
	log    *slog.Logger
	locks  keylock.Map
	// unreported holds the TaskRuns of ours not marked reported, as a
	// watch sees them, once Run starts it.
	unreported watched
	// pods holds the pods of our TaskRuns as a watch sees them, once Run
	// starts it: their steps ending is when a report is claimed early
	// (claimEarly).
	pods podWatch
	// early holds the reports this replica claimed early, by TaskRun
	// name, until their TaskRuns finish or earlyHold passes.
	earlyMu sync.Mutex
	early   map[string]*earlyClaim
	// done remembers the TaskRuns (by UID) this process has seen reported,
	// so repeated events cost no apiserver call.
	done *memo.Set
	// firstGone remembers the TaskRuns (by UID) whose report's first claim
	// this process made, won or lost (claimFirst), so that it does not try
	// it again: when the TaskRun finishes after an early claim, or when
	// both its watch and Tekton's event report it.
	firstGone *memo.Set
	now       func() time.Time

	stop context.CancelFunc
	wg   sync.WaitGroup
}

// New returns a Sink.
func New(k Kube, e Engine, o Options, log *slog.Logger) *Sink {
	if o.ReportStale <= 0 {
		o.ReportStale = ReportStale(5*time.Second, 20*time.Second)
	}
	s := &Sink{kube: k, engine: e, opts: o, log: log, done: memo.NewSet(4096), firstGone: memo.NewSet(4096), now: time.Now, stop: func() {}, early: map[string]*earlyClaim{}}
	s.unreported = k.TaskRunCache(s.unreportedSelector())
	s.pods = k.PodCache(fmt.Sprintf("%s=%s,%s,%s", contract.LabelProduct, o.Product, contract.LabelTaskRunRef, kube.LabelPodTaskRun))
	return s
}

// unreportedSelector picks the TaskRuns of ours not marked reported.
func (s *Sink) unreportedSelector() string {
	return fmt.Sprintf("%s=%s,%s,!%s", contract.LabelProduct, s.opts.Product, contract.LabelTaskRunRef, contract.LabelReported)
}

// Run starts the watch of the TaskRuns not reported yet (watch) and the
// background sweeps: one once the watch's first list is answered, then
// one every SweepInterval when set. Stop ends them.
func (s *Sink) Run(ctx context.Context) {
	ctx, s.stop = context.WithCancel(context.WithoutCancel(ctx))
	s.watch(ctx)
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		if !s.listed(ctx) {
			return
		}
		var tick <-chan time.Time
		if s.opts.SweepInterval > 0 {
			t := time.NewTicker(s.opts.SweepInterval)
			defer t.Stop()
			tick = t.C
		}
		for {
			s.logSweep(ctx, "background")
			select {
			case <-ctx.Done():
				return
			case <-tick:
			}
		}
	}()
}

// Stop ends the watch and the background sweeps, waits for the sweep and
// the reports under way, and drops the early claims no report used, so
// that another replica takes those reports over at once.
func (s *Sink) Stop(ctx context.Context) error {
	s.stop()
	s.wg.Wait()
	s.earlyMu.Lock()
	held := s.early
	s.early = map[string]*earlyClaim{}
	s.earlyMu.Unlock()
	dctx, cancel := status.Settle(ctx) // also when the server's own time is up
	defer cancel()
	for _, e := range held {
		e.timer.Stop()
		s.dropOrWarn(dctx, e.mine)
	}
	return nil
}

// watch starts the watch of the TaskRuns not reported yet. A TaskRun it
// sees finish is reported at once when its report is the first claim
// (reportFirst): the end reaches the Engine without waiting for Tekton's
// event, which finds it reported. Any other is left to the event and the
// sweep. At most watchReports such reports run at a time. Like a request,
// a report under way when ctx ends runs to its end (Stop waits for it): an
// end call cut off might have landed, leaving the claim to go stale.
func (s *Sink) watch(ctx context.Context) {
	slots := make(chan struct{}, watchReports)
	reports := context.WithoutCancel(ctx)
	s.unreported.OnUpdate(func(was, is *pipelinev1.TaskRun) {
		if outcome.Finished(was, s.opts.Product) || !outcome.Finished(is, s.opts.Product) || ctx.Err() != nil {
			return
		}
		s.wg.Go(func() {
			slots <- struct{}{}
			defer func() { <-slots }()
			s.reportSeen(reports, is.Name)
		})
	})
	s.pods.OnUpdate(func(was, is *corev1.Pod) {
		if kube.StepsEnded(was) || !kube.StepsEnded(is) || s.earlyHold() <= 0 || ctx.Err() != nil {
			return
		}
		s.wg.Go(func() {
			slots <- struct{}{}
			defer func() { <-slots }()
			s.claimEarly(reports, is.Labels[kube.LabelPodTaskRun])
		})
	})
	s.wg.Go(func() { s.unreported.Run(ctx) })
	s.wg.Go(func() {
		if s.listed(ctx) {
			s.pods.Run(ctx)
		}
	})
}

// listed waits until the TaskRun watch's first list is answered, and
// reports whether it was before ctx ended. The sink's other requests at
// its start (the pod watch's list, the first sweep) wait for it, so that
// they share its connection to the apiserver instead of each opening one
// while the process is getting ready.
func (s *Sink) listed(ctx context.Context) bool {
	select {
	case <-s.unreported.Listed():
		return true
	case <-ctx.Done():
		return false
	}
}

// watchReports bounds the reports of TaskRuns the watch saw finish that run
// at once.
const watchReports = 8

// reportSeen reports a TaskRun the watch saw finish, when its report is the
// first claim, and logs it as an event's report is.
func (s *Sink) reportSeen(ctx context.Context, name string) {
	began := time.Now()
	ctx, cancel := context.WithTimeout(ctx, status.Budget)
	defer cancel()
	unlock := s.locks.Lock(name)
	result, done, err := s.reportFirst(ctx, name)
	unlock()
	if done {
		_ = eventlog.Event(ctx, s.log, result, began, err, slog.String("trigger", "watch"), slog.String("taskrun", name))
	}
}

func (s *Sink) logSweep(ctx context.Context, trigger string) {
	began := time.Now()
	n, err := s.Sweep(ctx)
	eventlog.Sweep(ctx, s.log, began, n, err, slog.String("trigger", trigger))
}

// Handle processes one Tekton event or sweep request. Its error decides the
// answer (package status); it never replies with an event.
func (s *Sink) Handle(ctx context.Context, e event.Event) error {
	began := time.Now()
	if e.Type() == SweepType {
		// What is left when the budget ends waits for the next sweep.
		sctx, cancel := context.WithTimeout(ctx, status.Budget)
		defer cancel()
		n, err := s.Sweep(sctx)
		return eventlog.Event(ctx, s.log, eventlog.Swept, began, err,
			slog.String("ce.id", e.ID()), slog.String("ce.type", e.Type()), slog.Int("reported", n))
	}
	hctx, cancel := context.WithTimeout(ctx, status.Budget)
	defer cancel()
	result, name, err := s.handle(hctx, e)
	if err != nil { // an error is the outcome, whatever else was decided
		result = eventlog.Failure(err)
	}
	return eventlog.Event(ctx, s.log, result, began, err,
		slog.String("ce.id", e.ID()), slog.String("ce.type", e.Type()), slog.String("ce.subject", e.Subject()), slog.String("taskrun", name))
}

func (s *Sink) handle(ctx context.Context, e event.Event) (eventlog.Outcome, string, error) {
	if !strings.HasPrefix(e.Type(), tektonTaskRunPrefix) {
		return eventlog.Skipped, "", nil
	}
	tr, err := outcome.Decode(e.Data())
	if err != nil {
		return eventlog.Rejected, "", err
	}
	if tr.Namespace != "" && tr.Namespace != s.kube.Namespace() {
		return eventlog.Skipped, tr.Name, nil
	}
	if !outcome.Finished(tr, s.opts.Product) {
		return eventlog.Skipped, tr.Name, nil
	}
	if tr.UID != "" && s.done.Has(string(tr.UID)) {
		return eventlog.Skipped, tr.Name, nil
	}
	result, err := s.report(ctx, tr.Name)
	return result, tr.Name, err
}

// ReportStale is the age past which a report's claim outlived the replica
// that took it, for an Engine client with the given per-request timeout and
// retry budget: the claim covers one Engine call, which ends within both
// and within the event's status.Budget, plus staleMargin. The next event
// or sweep takes an older claim over. With the defaults (5 s, 20 s) it is
// 30 s.
func ReportStale(engineTimeout, retryBudget time.Duration) time.Duration {
	return min(status.Budget, engineTimeout+retryBudget) + staleMargin
}

// staleMargin is how long a report's claim outlives the last moment its
// replica may still be sending the end call.
const staleMargin = 5 * time.Second

// report sends the end call for the named TaskRun unless it was reported or
// needs none, as outcome.Decide judges. It runs under a per-name lock, so
// duplicate events in this process cause one call; across replicas, the
// report is claimed first (claim), so one replica sends it. The TaskRun is
// the watch's when its report is the first claim (reportFirst), and read
// from the apiserver otherwise.
func (s *Sink) report(ctx context.Context, name string) (eventlog.Outcome, error) {
	unlock := s.locks.Lock(name)
	defer unlock()

	if tr := s.unreported.Get(name); tr != nil && s.done.Has(string(tr.UID)) {
		return eventlog.Skipped, nil // reported meanwhile, as the watch saw it finish
	}
	if result, done, err := s.reportFirst(ctx, name); done {
		return result, err
	}
	tr, err := s.kube.GetTaskRun(ctx, name)
	if err != nil {
		return "", err
	}
	// Only what the apiserver holds counts: an event names the TaskRun,
	// nothing more (anyone who reaches the sink could forge one).
	decision, rep, _ := outcome.Decide(tr, s.opts.Product)
	switch {
	case rep.Left == outcome.Done:
		return eventlog.Skipped, s.reported(ctx, tr)
	case decision == outcome.ReportEnd && tr.IsPending():
		if decision, err = s.startLanded(ctx, tr, rep.TaskRunRef); err != nil || decision == wait {
			return eventlog.Skipped, err
		}
		if decision != outcome.ReportEnd {
			return eventlog.Skipped, s.release(ctx, tr)
		}
	case rep.Left == outcome.Release:
		return eventlog.Skipped, s.release(ctx, tr)
	case decision != outcome.ReportEnd:
		return eventlog.Skipped, nil // not ours, or not finished
	}
	return s.send(ctx, tr, rep)
}

// reported handles a TaskRun that carries the reported mark: its deletion
// under the policy, when due, failed after the report and is retried;
// otherwise it is remembered as done.
func (s *Sink) reported(ctx context.Context, tr *pipelinev1.TaskRun) error {
	if tr.Labels[contract.LabelDeleteDue] != "" && tr.DeletionTimestamp == nil {
		return s.delete(ctx, tr)
	}
	s.done.Add(string(tr.UID))
	return nil
}

// release marks a TaskRun that needs no call (cancelled by us, deleted
// before it ran, its mark incomplete), which releases it, so the sweep does
// not list it again. Its params ConfigMap is settled first, as a report's
// claim does: the TaskRun becomes its owner.
func (s *Sink) release(ctx context.Context, tr *pipelinev1.TaskRun) error {
	cm, err := s.paramsConfigMap(ctx, tr)
	if err != nil {
		return err
	}
	if cm != nil && (cm.Annotations[contract.AnnotationClaimed] != "" || len(cm.OwnerReferences) == 0) {
		tekton.SetOwner(cm, tr)
		if err := s.kube.SettleConfigMap(ctx, cm); err != nil {
			return err
		}
	}
	return s.kube.MarkReported(ctx, tr.Name, markSkipped, false, s.now())
}

// reportFirst reports a finished TaskRun as the watch holds it, with no
// read, when its report is the first claim: the claim (ClaimReportFirst)
// takes the start's claim off the params ConfigMap, which every other
// claim of the report takes off too (claim). A watched TaskRun that lags
// the apiserver in what matters (reported, claimed, being deleted) fails
// that claim. done is false when the watch has nothing to go on or the
// claim fails: the TaskRun is read then.
func (s *Sink) reportFirst(ctx context.Context, name string) (result eventlog.Outcome, done bool, err error) {
	tr := s.unreported.Get(name)
	if tr != nil && outcome.Finished(tr, s.opts.Product) {
		if result, done, err := s.reportEarly(ctx, tr); done {
			return result, done, err
		}
	}
	if tr == nil || tr.DeletionTimestamp != nil || tr.IsPending() || s.live(tr.Annotations) || s.firstGone.Has(string(tr.UID)) {
		return "", false, nil
	}
	decision, rep, _ := outcome.Decide(tr, s.opts.Product)
	want := paramsWant(tr)
	if decision != outcome.ReportEnd || rep.Left == outcome.Done || want == nil {
		return "", false, nil
	}
	mine, won, err := s.claimFirst(ctx, tr, want, s.now())
	if !won {
		return "", err != nil, err
	}
	result, err = s.sendClaimed(ctx, tr, rep, mine)
	return result, true, err
}

// claimFirst makes the first claim of tr's report (ClaimReportFirst), at
// at, on its params ConfigMap, as want expects it, and reports whether it
// won. Once the apiserver answers, won or not, the first claim is gone,
// which firstGone remembers.
func (s *Sink) claimFirst(ctx context.Context, tr *pipelinev1.TaskRun, want *corev1.ConfigMap, at time.Time) (mine claim, won bool, err error) {
	mine = claim{taskRun: tr.Name, configMap: want.Name, onConfigMap: contract.ClaimValue(at)}
	won, err = s.kube.ClaimReportFirst(ctx, want, at)
	if err != nil {
		won = s.landed(ctx, mine) // after a timeout, the claim may be there
	}
	if err == nil || won {
		s.firstGone.Add(string(tr.UID))
	}
	return mine, won, err
}

// An early claim is a report's claim taken when the pod watch sees the
// TaskRun's steps end, before Tekton finishes the TaskRun (which it does
// once it sees the same), so that the end call, when it does, waits for no
// write. It is the first claim, as reportFirst's is. Like any claim it
// covers end calls that end before it is stale: the call made under it is
// bounded by its time plus sendWindow. One that no report used within
// earlyHold (the TaskRun retries its steps, Tekton is slow, the replica
// stops) is dropped, so that any replica takes the report over at once.
type earlyClaim struct {
	mine  claim
	at    time.Time
	timer *time.Timer
}

// sendWindow is how long after a claim its replica may still send the end
// call: the claim is stale staleMargin later.
func (s *Sink) sendWindow() time.Duration { return s.opts.ReportStale - staleMargin }

// earlyHold is how long an early claim waits for its TaskRun to finish: a
// fifth of sendWindow, at most 5 s. Tekton finishes a TaskRun within a
// reconcile of its pod's steps ending.
func (s *Sink) earlyHold() time.Duration { return min(s.sendWindow()/5, 5*time.Second) }

// claimEarly claims the report of the named TaskRun, whose steps the pod
// watch saw end, when the TaskRun watch holds it unfinished and its report
// unclaimed.
func (s *Sink) claimEarly(ctx context.Context, name string) {
	hold := s.earlyHold()
	ctx, cancel := context.WithTimeout(ctx, hold)
	defer cancel()
	unlock := s.locks.Lock(name)
	defer unlock()
	tr := s.unreported.Get(name)
	if tr == nil || tr.DeletionTimestamp != nil || tr.IsPending() || outcome.Finished(tr, s.opts.Product) || s.live(tr.Annotations) {
		return
	}
	want := paramsWant(tr)
	if want == nil {
		return
	}
	at := s.now()
	mine, won, _ := s.claimFirst(ctx, tr, want, at)
	if !won {
		return
	}
	s.log.DebugContext(ctx, "claimed a report when the steps ended", "taskrun", name)
	e := &earlyClaim{mine: mine, at: at}
	s.earlyMu.Lock()
	defer s.earlyMu.Unlock()
	e.timer = time.AfterFunc(hold, func() {
		unlock := s.locks.Lock(name) // not while a report may use it
		defer unlock()
		if s.takeEarly(name, e) != nil {
			dctx, cancel := status.Settle(context.Background())
			defer cancel()
			s.dropOrWarn(dctx, e.mine)
		}
	})
	s.early[name] = e
}

// takeEarly removes and returns the early claim held for the named
// TaskRun; only when it is want, if want is not nil.
func (s *Sink) takeEarly(name string, want *earlyClaim) *earlyClaim {
	s.earlyMu.Lock()
	defer s.earlyMu.Unlock()
	e := s.early[name]
	if e == nil || (want != nil && e != want) {
		return nil
	}
	delete(s.early, name)
	e.timer.Stop()
	return e
}

// reportEarly sends the end call of a finished TaskRun under this
// replica's early claim of its report, when it holds one, bounded by the
// claim's sendWindow (at least four fifths of it are left: one is held
// for earlyHold at most); done is false when it holds none. A claim the
// TaskRun as it is cannot use (it is being deleted or needs no end call)
// is dropped, and the report goes on as any other.
func (s *Sink) reportEarly(ctx context.Context, tr *pipelinev1.TaskRun) (result eventlog.Outcome, done bool, err error) {
	e := s.takeEarly(tr.Name, nil)
	if e == nil {
		return "", false, nil
	}
	decision, rep, _ := outcome.Decide(tr, s.opts.Product)
	if tr.DeletionTimestamp != nil || decision != outcome.ReportEnd || rep.Left == outcome.Done {
		s.dropOrWarn(ctx, e.mine)
		return "", false, nil
	}
	ctx, cancel := context.WithDeadline(ctx, e.at.Add(s.sendWindow()))
	defer cancel()
	result, err = s.sendClaimed(ctx, tr, rep, e.mine)
	return result, true, err
}

// dropOrWarn drops a report's claim of this replica, and logs a failure:
// the claim then goes stale by itself.
func (s *Sink) dropOrWarn(ctx context.Context, mine claim) {
	if err := s.drop(ctx, mine); err != nil {
		s.log.WarnContext(ctx, "could not drop the report's claim; it goes stale by itself", "taskrun", mine.taskRun, "error", err.Error())
	}
}

// landed reports whether a claim on the ConfigMap whose patch failed (a
// timeout, a broken connection) is there all the same: it holds this
// replica's claim value.
func (s *Sink) landed(ctx context.Context, mine claim) bool {
	cm, err := s.kube.GetConfigMap(ctx, mine.configMap)
	return err == nil && cm != nil && cm.Annotations[contract.AnnotationReporting] == mine.onConfigMap
}

// send claims the report of a TaskRun, sends the Engine its end call and
// marks it reported, unless another replica holds the claim.
func (s *Sink) send(ctx context.Context, tr *pipelinev1.TaskRun, rep outcome.Report) (eventlog.Outcome, error) {
	if result, done, err := s.reportEarly(ctx, tr); done {
		return result, err
	}
	mine, err := s.claim(ctx, tr)
	if err != nil || !mine.held() {
		return eventlog.Skipped, err // another replica is reporting it
	}
	return s.sendClaimed(ctx, tr, rep, mine)
}

// sendClaimed sends the Engine the end call of a TaskRun whose report this
// replica claimed, and marks it reported.
func (s *Sink) sendClaimed(ctx context.Context, tr *pipelinev1.TaskRun, rep outcome.Report, mine claim) (eventlog.Outcome, error) {
	if err := s.engine.EndTaskRun(ctx, rep.TaskRunRef, rep.End); err != nil {
		return "", s.unsent(ctx, mine, err)
	}
	if err := s.mark(ctx, tr, rep.Succeeded); err != nil {
		return "", err
	}
	return eventlog.Reported, nil
}

// unsent handles an end call that failed with err, and returns the error
// to answer with. A refusal for good is marked; any other answer from the
// Engine drops the claim so the sender's retry or the next sweep takes the
// report over at once. After a timeout or a broken connection the end may
// have landed, so the claim is kept until it is stale.
func (s *Sink) unsent(ctx context.Context, mine claim, err error) error {
	// What follows the Engine's answer runs on when the request's own time
	// is up.
	sctx, cancel := status.Settle(ctx)
	defer cancel()
	var refused *engine.StatusError
	switch {
	case errors.Is(err, engine.ErrRejected):
		if merr := s.kube.MarkReported(sctx, mine.taskRun, markRejected, false, s.now()); merr != nil {
			return merr
		}
	case errors.As(err, &refused):
		s.dropOrWarn(sctx, mine)
	}
	return err
}

// mark marks a TaskRun the Engine accepted the end of as reported, with its
// deletion due under the policy in the same patch, then deletes it if due.
// The mark runs on when the request's own time is up: a report the Engine
// accepted must be marked, or it is sent again once the claim is stale.
func (s *Sink) mark(ctx context.Context, tr *pipelinev1.TaskRun, succeeded bool) error {
	sctx, cancel := status.Settle(ctx)
	defer cancel()
	deleteDue := tr.DeletionTimestamp == nil && outcome.ShouldDelete(outcome.DeletionPolicy(tr, s.opts.DeletionPolicy), succeeded)
	if err := s.kube.MarkReported(sctx, tr.Name, markReported, deleteDue, s.now()); err != nil {
		return err
	}
	if deleteDue {
		// A failure here is retried by the sender's retry and by the
		// sweep, which lists LabelDeleteDue.
		if err := s.delete(ctx, tr); err != nil {
			return err
		}
	}
	s.done.Add(string(tr.UID))
	return nil
}

// wait: not yet decided; a later event or sweep looks again.
const wait outcome.Decision = -1

// Deleted pending TaskRuns. The owner of a claim works on past its
// status.ClaimStale by up to status.SettleTimeout (its release or cancel
// after the Engine's answer), and the Engine applies a start a moment after
// answering it: a claim older than pendingSettled has no start left in
// flight. An Engine that cannot be asked for pendingGiveUp after the
// deletion (a wrong URL, a missing endpoint) is given up on, loudly, so the
// TaskRun does not stay for ever.
const (
	pendingSettled = status.ClaimStale + status.SettleTimeout + 15*time.Second
	pendingGiveUp  = 10 * time.Minute
)

// startLanded decides for a TaskRun deleted while still pending, never run
// by Tekton, whether the Engine is owed an end: only if the handler's start
// reached it. Until its claim is settled, wait; after that, the Engine
// says: a running task is reported failed, any other is skipped.
func (s *Sink) startLanded(ctx context.Context, tr *pipelinev1.TaskRun, ref string) (outcome.Decision, error) {
	if s.now().Sub(contract.ClaimTime(tr.Annotations, contract.AnnotationClaimed)) < pendingSettled {
		return wait, nil
	}
	task, err := s.engine.GetTaskRun(ctx, ref)
	switch {
	case errors.Is(err, engine.ErrRejected):
		return outcome.Skip, nil // a task the Engine does not know
	case err != nil && s.now().Sub(tr.DeletionTimestamp.Time) > pendingGiveUp:
		s.log.ErrorContext(ctx, "the Engine could not be asked whether the deleted TaskRun's task started; releasing it unreported",
			"taskrun", tr.Name, "error", err.Error())
		return outcome.Skip, nil
	case err != nil:
		return wait, fmt.Errorf("ask the Engine about task %s: %w", ref, err)
	case task.Running():
		return outcome.ReportEnd, nil
	}
	return outcome.Skip, nil
}

// delete deletes a reported TaskRun under its deletion policy, and its
// params ConfigMap.
func (s *Sink) delete(ctx context.Context, tr *pipelinev1.TaskRun) error {
	if err := s.kube.DeleteTaskRun(ctx, tr.Name); err != nil {
		return err
	}
	for _, cm := range paramsConfigMaps(tr) {
		if err := s.kube.DeleteConfigMap(ctx, cm); err != nil {
			return err
		}
	}
	return nil
}

// claim is a report's claim taken by this replica: its value on the named
// params ConfigMap and on the TaskRun, "" where it has none.
type claim struct {
	taskRun, onTaskRun     string
	configMap, onConfigMap string
}

// held reports whether the claim is on any object.
func (c claim) held() bool { return c.onTaskRun != "" || c.onConfigMap != "" }

// claim claims the report of a finished TaskRun for this replica and
// returns the claim, held by none when another replica holds a live claim
// or reported it meanwhile. The claim goes on the TaskRun's params
// ConfigMap, a write that passes no admission webhook, in the patch that
// settles the handler's claim and makes the TaskRun the ConfigMap's owner;
// every replica claims there first, with the version it read, so of them
// one wins. When the TaskRun is being deleted its ConfigMap may go with it
// any moment (the claim made the TaskRun its owner), so the claim goes on
// the TaskRun too, which our finalizer keeps: a replica that then finds the
// ConfigMap gone meets it there. When the ConfigMap is gone or not the
// task's, the claim goes on the TaskRun alone.
func (s *Sink) claim(ctx context.Context, tr *pipelinev1.TaskRun) (claim, error) {
	if s.live(tr.Annotations) {
		return claim{}, nil // another replica, or an earlier version's, holds it
	}
	mine, ok, err := s.claimConfigMap(ctx, tr)
	if err != nil || (ok && (!mine.held() || tr.DeletionTimestamp == nil)) {
		return mine, err
	}
	onTaskRun, err := s.claimTaskRun(ctx, tr)
	if err != nil || onTaskRun == "" {
		if ok {
			s.dropOrWarn(ctx, mine)
		}
		return claim{}, err
	}
	mine.taskRun, mine.onTaskRun = tr.Name, onTaskRun
	return mine, nil
}

// paramsWant is a TaskRun's params ConfigMap as a claim on it expects it:
// its name, its task's label, and the TaskRun as its owner; nil when the
// TaskRun names none.
func paramsWant(tr *pipelinev1.TaskRun) *corev1.ConfigMap {
	names := paramsConfigMaps(tr)
	if len(names) == 0 {
		return nil
	}
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: names[0], Labels: map[string]string{contract.LabelTaskRunRef: tr.Labels[contract.LabelTaskRunRef]}}}
	tekton.SetOwner(cm, tr)
	return cm
}

// claimConfigMap claims the report on the TaskRun's params ConfigMap; ok is
// false when it has none of its task's to claim on. A ConfigMap that changed
// between the read and the claim is read again.
func (s *Sink) claimConfigMap(ctx context.Context, tr *pipelinev1.TaskRun) (mine claim, ok bool, err error) {
	for {
		cm, err := s.paramsConfigMap(ctx, tr)
		if err != nil || cm == nil {
			return claim{}, err != nil, err
		}
		if s.live(cm.Annotations) {
			return claim{}, true, nil
		}
		at := s.now()
		tekton.SetOwner(cm, tr)
		won, err := s.kube.ClaimReport(ctx, cm, at)
		if err != nil {
			return claim{}, true, err
		}
		if won {
			return claim{taskRun: tr.Name, configMap: cm.Name, onConfigMap: contract.ClaimValue(at)}, true, nil
		}
	}
}

// drop makes a report's claim of this replica stale, on the objects it is
// on, so that the next event or sweep takes the report over at once.
func (s *Sink) drop(ctx context.Context, mine claim) error {
	var errs []error
	if mine.onConfigMap != "" {
		errs = append(errs, s.kube.DropConfigMapClaim(ctx, mine.configMap, contract.AnnotationReporting, mine.onConfigMap))
	}
	if mine.onTaskRun != "" {
		errs = append(errs, s.kube.DropClaim(ctx, mine.taskRun, contract.AnnotationReporting, mine.onTaskRun))
	}
	return errors.Join(errs...)
}

// paramsConfigMap reads the TaskRun's params ConfigMap; nil when it has
// none, it is gone, or it belongs to another task.
func (s *Sink) paramsConfigMap(ctx context.Context, tr *pipelinev1.TaskRun) (*corev1.ConfigMap, error) {
	names := paramsConfigMaps(tr)
	if len(names) == 0 {
		return nil, nil
	}
	cm, err := s.kube.GetConfigMap(ctx, names[0])
	if err != nil || cm == nil {
		return nil, err
	}
	if kube.SameIdentity(cm.Labels, map[string]string{contract.LabelTaskRunRef: tr.Labels[contract.LabelTaskRunRef]}) != nil {
		return nil, nil
	}
	return cm, nil
}

// live reports whether annotations hold a report's claim younger than
// ReportStale.
func (s *Sink) live(annotations map[string]string) bool {
	return s.now().Sub(contract.ClaimTime(annotations, contract.AnnotationReporting)) < s.opts.ReportStale
}

// claimTaskRun claims the report on the TaskRun and returns the claim's
// value, "" when another replica holds a live claim there or it was marked
// meanwhile. Other changes to the TaskRun between the read and the claim
// (Tekton's) are read again.
func (s *Sink) claimTaskRun(ctx context.Context, tr *pipelinev1.TaskRun) (string, error) {
	for {
		if s.live(tr.Annotations) {
			return "", nil
		}
		at := s.now()
		won, err := s.kube.ClaimTaskRun(ctx, tr, contract.AnnotationReporting, at)
		if err != nil {
			return "", err
		}
		if won {
			return contract.ClaimValue(at), nil
		}
		if tr, err = s.kube.GetTaskRun(ctx, tr.Name); err != nil || tr == nil || outcome.Marked(tr) {
			return "", err
		}
	}
}

// paramsConfigMaps names the ConfigMaps a TaskRun's inline task projects:
// the params ConfigMap the handler created with it.
func paramsConfigMaps(tr *pipelinev1.TaskRun) []string {
	spec := tr.Spec.TaskSpec
	if spec == nil {
		spec = tr.Status.TaskSpec
	}
	if spec == nil {
		return nil
	}
	var names []string
	for _, v := range spec.Volumes {
		if v.Projected == nil {
			continue
		}
		for _, src := range v.Projected.Sources {
			if src.ConfigMap != nil && src.ConfigMap.Name != "" {
				names = append(names, src.ConfigMap.Name)
			}
		}
	}
	return names
}

// Sweep reports up to SweepLimit finished (or deleted) TaskRuns of ours
// that carry no reported mark, deletes the reported ones whose deletion
// failed, and returns how many it reported.
func (s *Sink) Sweep(ctx context.Context) (int, error) {
	trs, err := s.kube.ListTaskRuns(ctx, s.unreportedSelector(), 200)
	if err != nil {
		return 0, err
	}
	n := 0
	var errs []error
	for i := range trs {
		if n >= s.opts.SweepLimit || ctx.Err() != nil {
			break
		}
		if decision, rep, _ := outcome.Decide(&trs[i], s.opts.Product); decision == outcome.Skip && rep.Left == outcome.Nothing {
			continue // not ours or not finished: its event, or a later sweep, reports it
		}
		result, err := s.sweepReport(ctx, trs[i].Name)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if result == eventlog.Reported {
			n++
		}
	}
	return n, errors.Join(append(errs, s.sweepDeletions(ctx))...)
}

// sweepReport reports the named TaskRun for a sweep, as report does, in
// a context that ctx's cancellation does not end, only its deadline (or
// status.Budget when it has none): a report under way when the sweep is
// stopped runs to its end, as one the watch started does, since an end
// call cut off might have landed, leaving the claim to go stale.
func (s *Sink) sweepReport(ctx context.Context, name string) (eventlog.Outcome, error) {
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(status.Budget)
	}
	rctx, cancel := context.WithDeadline(context.WithoutCancel(ctx), deadline)
	defer cancel()
	return s.report(rctx, name)
}

// sweepDeletions deletes the reported TaskRuns whose deletion under their
// policy failed after the report.
func (s *Sink) sweepDeletions(ctx context.Context) error {
	selector := fmt.Sprintf("%s=%s,%s,%s", contract.LabelProduct, s.opts.Product, contract.LabelReported, contract.LabelDeleteDue)
	trs, err := s.kube.ListTaskRuns(ctx, selector, 200)
	if err != nil {
		return err
	}
	var errs []error
	for i := range trs {
		if trs[i].DeletionTimestamp == nil {
			errs = append(errs, s.delete(ctx, &trs[i]))
		}
	}
	return errors.Join(errs...)
}
