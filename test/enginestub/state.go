package enginestub

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/boomerang-io/flow-tekton-handler/internal/engine"
)

// Phases and statuses of the Engine's task and workflow runs
// (io.boomerang.engine.model.enums.RunPhase, RunStatus) that the stand-in
// sets itself.
const (
	PhasePending   = "pending"
	PhaseRunning   = "running"
	PhaseCompleted = "completed"
	PhaseFinalized = "finalized"

	StatusReady     = "ready"
	StatusRunning   = "running"
	StatusCancelled = "cancelled"
)

// DefaultEffectDelay is how long after its answer a task start takes
// effect, and an end stays in flight, unless SetEffectDelay says otherwise.
const DefaultEffectDelay = 20 * time.Millisecond

// createdSlack is how much later than a task's completion a TaskRun must
// have been created to count as created for a completed task (see
// TaskRunCreated).
const createdSlack = time.Second

// Task is what the stand-in knows of one of the Engine's task runs.
type Task struct {
	ID             string
	Type           string // template, custom, script, …
	WorkflowRunRef string
	Status         string // ready, running, succeeded, failed, cancelled, …
	Phase          string // pending, running, completed
	// StartTime is when the last start took effect; zero before.
	StartTime time.Time
	// CompletedAt is when the task entered phase completed; zero while it
	// is not completed.
	CompletedAt time.Time
}

// task is a known task run and its calls in progress.
type task struct {
	Task
	data     map[string]json.RawMessage // the event's data: the answers' other fields
	message  string
	results  []engine.Result
	starting int  // starts not taken effect yet
	ending   int  // ends in flight
	ended    bool // one of our ends was accepted
}

// run is a known workflow run.
type run struct {
	id, status, phase string
	data              map[string]json.RawMessage
}

// phaseOrder ranks phases: an event moves a known run forward only.
var phaseOrder = map[string]int{PhasePending: 1, PhaseRunning: 2, PhaseCompleted: 3, PhaseFinalized: 4}

// Know registers tasks as the Engine has them, as if it had sent their
// events: Status defaults to ready and Phase to pending. A task known
// already changes only when Phase is later than its own.
func (s *Server) Know(tasks ...Task) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, t := range tasks {
		if t.Status == "" {
			t.Status = StatusReady
		}
		if t.Phase == "" {
			t.Phase = PhasePending
		}
		s.knowTask(t, nil)
	}
	s.notify()
}

// KnowEvent registers the task run or workflow run a structured-mode
// Engine event (io.boomerang.event.status.taskrun or .workflowrun) carries,
// with its status and phase: the Engine sends an event after each change
// it saves. A run known already changes only when the event's phase is
// later than its own, so a redelivered or late event changes nothing.
// KnowEvent reports whether body was such an event; anything else is
// ignored.
func (s *Server) KnowEvent(body []byte) bool {
	var ev struct {
		Type string          `json:"type"`
		Data json.RawMessage `json:"data"`
	}
	var data map[string]json.RawMessage
	var f struct{ ID, Type, Status, Phase, WorkflowRunRef string }
	if json.Unmarshal(body, &ev) != nil || json.Unmarshal(ev.Data, &data) != nil || json.Unmarshal(ev.Data, &f) != nil || f.ID == "" {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	defer s.notify()
	switch strings.ToLower(strings.TrimPrefix(ev.Type, "io.boomerang.event.status.")) {
	case "taskrun":
		s.knowTask(Task{ID: f.ID, Type: f.Type, WorkflowRunRef: f.WorkflowRunRef, Status: f.Status, Phase: f.Phase}, data)
	case "workflowrun":
		if r := s.runs[f.ID]; r == nil {
			s.runs[f.ID] = &run{id: f.ID, status: f.Status, phase: f.Phase, data: data}
		} else if phaseOrder[f.Phase] > phaseOrder[r.phase] {
			r.status, r.phase = f.Status, f.Phase
		}
	default:
		return false
	}
	return true
}

// knowTask registers t or moves a known task forward. s.mu is held.
func (s *Server) knowTask(t Task, data map[string]json.RawMessage) {
	k := s.tasks[t.ID]
	if k == nil {
		k = &task{Task: Task{ID: t.ID, Type: t.Type, WorkflowRunRef: t.WorkflowRunRef}, data: data}
		s.tasks[t.ID] = k
	} else if phaseOrder[t.Phase] <= phaseOrder[k.Phase] {
		return
	}
	k.Status, k.Phase = t.Status, t.Phase
	if t.Phase == PhaseCompleted {
		k.CompletedAt = time.Now()
	}
}

// Cancel does what the Engine does to a task run before it sends its
// cancel event: status cancelled, phase completed. An unknown id is
// ignored.
func (s *Server) Cancel(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if t := s.tasks[id]; t != nil {
		t.complete(StatusCancelled)
		s.notify()
	}
}

// complete ends t with status, keeping the first completion time.
func (t *task) complete(status string) {
	t.Status, t.Phase = status, PhaseCompleted
	if t.CompletedAt.IsZero() {
		t.CompletedAt = time.Now()
	}
}

// Task returns what the stand-in knows of the task run id.
func (s *Server) Task(id string) (Task, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if t := s.tasks[id]; t != nil {
		return t.Task, true
	}
	return Task{}, false
}

// LateStarts counts the starts for a task no longer pending: the Engine
// ignores them and answers the task as it is.
func (s *Server) LateStarts() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lateStarts
}

// SetEffectDelay sets how long after its answer a task start takes effect
// and an end stays in flight (DefaultEffectDelay until then); 0: none.
func (s *Server) SetEffectDelay(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.effectDelay = d
}

// Settle blocks until every start has taken effect and no end is in
// flight, or ctx ends.
func (s *Server) Settle(ctx context.Context) error {
	for {
		s.mu.Lock()
		n, changed := s.effects, s.changed
		s.mu.Unlock()
		if n == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("engine stub settle with %d effects pending: %w", n, ctx.Err())
		case <-changed:
		}
	}
}

// Learn makes a call for an unknown task or workflow run register it as
// ready and pending first, as its Engine event would have, instead of
// refusing it: for bin/engine, which sees none of the events sent to the
// handler. Off by default.
func (s *Server) Learn(on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.learn = on
}

// TaskRunCreated tells the stand-in that a TaskRun for the task run id was
// created at at, and records a violation when the Engine had completed or
// cancelled that task before. at is typically a creationTimestamp, which
// has whole seconds (truncated) from the apiserver's clock, so only a
// completion more than a second before at is flagged: neither rounding
// nor a small clock difference can raise a false alarm. Unknown ids are
// ignored.
func (s *Server) TaskRunCreated(id string, at time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.tasks[id]
	if t == nil || t.CompletedAt.IsZero() || !t.CompletedAt.Add(createdSlack).Before(at) {
		return
	}
	s.other = append(s.other, fmt.Sprintf("TaskRun for task %s created at %s, after the Engine had completed the task (%s) at %s",
		id, at.Format(time.RFC3339), t.Status, t.CompletedAt.Format("15:04:05.000")))
	s.notify()
}

// later runs effect with s.mu held after the effect delay, or at once
// when there is none. s.mu is held.
func (s *Server) later(effect func()) {
	if s.effectDelay <= 0 {
		effect()
		return
	}
	s.effects++
	s.schedule(s.effectDelay, func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		s.effects--
		effect()
		s.notify()
	})
}

// notify wakes WaitFor and Settle. s.mu is held.
func (s *Server) notify() {
	close(s.changed)
	s.changed = make(chan struct{})
}

// lookup returns the task run id, learning it when Learn is on. s.mu is
// held.
func (s *Server) lookup(id string) *task {
	if s.tasks[id] == nil && s.learn {
		s.knowTask(Task{ID: id, Status: StatusReady, Phase: PhasePending}, nil)
	}
	return s.tasks[id]
}

// startTask is TaskRunService.start and TaskExecutionService.start: a
// pending task is answered as it is and runs a moment later (execute is
// asynchronous); any other is answered as it is. s.mu is held.
func (s *Server) startTask(c *Call) answer {
	t := s.lookup(c.ID)
	if t == nil {
		return unknownTask(c)
	}
	if t.Phase != PhasePending {
		s.lateStarts++
		return ok(t.json(""))
	}
	if r := s.runs[t.WorkflowRunRef]; r != nil && (r.phase == PhaseCompleted || r.phase == PhaseFinalized) {
		t.complete(StatusCancelled) // before the answer, as the Engine does
		return ok(t.json(""))
	}
	if t.starting > 0 {
		c.Violations = append(c.Violations, "two starts before the first took effect: the Engine runs the task twice (start time reset, two timeout timers)")
	}
	a := ok(t.json(""))
	t.starting++
	at := len(s.calls) // this call's index: ServeHTTP records it under the same lock
	s.later(func() {
		t.starting--
		if t.Phase == PhaseCompleted && at < len(s.calls) {
			s.calls[at].Violations = append(s.calls[at].Violations,
				fmt.Sprintf("the start's effect overwrote the task's end (%s): the Engine runs it again", t.Status))
		}
		t.Status, t.Phase, t.StartTime, t.CompletedAt = StatusRunning, PhaseRunning, time.Now(), time.Time{}
	})
	return a
}

// endTask is TaskRunService.end and TaskExecutionService.end: answered
// with the request's status and completed at once, ignored when the task
// was completed already. The Engine completes the task in its own thread
// from what it read when the end arrived, so an end is in flight for the
// effect delay after its answer: a second end meanwhile is processed in
// full too. s.mu is held.
func (s *Server) endTask(c *Call) answer {
	t := s.lookup(c.ID)
	if t == nil {
		return unknownTask(c)
	}
	bad := func(v string) { c.Violations = append(c.Violations, v) }
	switch {
	case t.ending > 0:
		bad("two ends in flight at once: the Engine completes the task twice and can advance the workflow twice")
	case t.Phase == PhaseCompleted && t.ended:
		bad("duplicate end: the Engine ignores it, but the contract reports each end once (UPSTREAM.md §9 item 32)")
	case t.Phase == PhasePending && t.starting > 0:
		bad("end before its start took effect: the Engine completes the task, then its start runs it again")
	case t.Phase == PhasePending:
		bad("end before start")
	}
	if t.Phase == PhaseCompleted {
		return ok(t.json(""))
	}
	status := engine.StatusSucceeded
	if c.End != nil {
		if c.End.Status != "" {
			status = c.End.Status
		}
		if c.End.StatusMessage != "" {
			t.message = c.End.StatusMessage
		}
		t.results = merge(t.results, c.End.Results)
	}
	a := ok(t.json(status))
	t.complete(status)
	t.ended = true
	t.ending++
	s.later(func() { t.ending-- })
	return a
}

// getTask is TaskRunService.get. s.mu is held.
func (s *Server) getTask(c *Call) answer {
	t := s.lookup(c.ID)
	if t == nil {
		return unknownTask(c)
	}
	return ok(t.json(""))
}

// startRun is WorkflowRunService.start: a pending run starts (the Engine
// does it in its own thread within milliseconds; the stand-in at once, so
// a second start is always refused), any other is refused. s.mu is held.
func (s *Server) startRun(c *Call) answer {
	r := s.lookupRun(c.ID)
	if r == nil {
		return unknownRun(c)
	}
	if r.phase != PhasePending {
		return refusal(1304, "WORKFLOWRUN_INVALID_PHASE",
			fmt.Sprintf("Invalid WorkflowRun request. WorkflowRun is not in the correct phase. Current: %s, Needed: pending.", r.phase))
	}
	a := ok(r.json())
	r.status, r.phase = StatusRunning, PhaseRunning
	return a
}

// finalizeRun is WorkflowRunService.finalize: the run is finalized
// whatever its phase. s.mu is held.
func (s *Server) finalizeRun(c *Call) answer {
	r := s.lookupRun(c.ID)
	if r == nil {
		return unknownRun(c)
	}
	if r.phase != PhaseCompleted && r.phase != PhaseFinalized {
		c.Violations = append(c.Violations, fmt.Sprintf("finalize of a workflow run in phase %s: the Engine finalizes it anyway and cancels its tasks that start later", r.phase))
	}
	r.phase = PhaseFinalized
	return ok(r.json())
}

// lookupRun returns the workflow run id, learning it when Learn is on.
// s.mu is held.
func (s *Server) lookupRun(id string) *run {
	if s.runs[id] == nil && s.learn {
		s.runs[id] = &run{id: id, status: StatusReady, phase: PhasePending}
	}
	return s.runs[id]
}

func unknownTask(c *Call) answer {
	c.Violations = append(c.Violations, "unknown task run: the Engine knows the tasks it sent events for (KnowEvent, Know)")
	return refusal(1501, "TASKRUN_INVALID_REFERENCE", "Invalid TaskRun reference has been provided.")
}

func unknownRun(c *Call) answer {
	c.Violations = append(c.Violations, "unknown workflow run: the Engine knows the runs it sent events for (KnowEvent)")
	return refusal(1301, "WORKFLOWRUN_INVALID_REFERENCE", "Invalid WorkflowRun reference has been provided.")
}

func ok(body []byte) answer { return answer{status: 200, json: body} }

// refusal is the Engine's 400 answer with one of its error codes
// (io.boomerang.error.BoomerangError).
func refusal(code int, reason, msg string) answer {
	return answer{status: 400, body: errorBody{Timestamp: time.Now(), Code: code, Reason: reason, Message: msg, Status: statusText(400)}}
}

// merge adds results to old, replacing those of the same name
// (ResultUtil.addUniqueResults).
func merge(old, results []engine.Result) []engine.Result {
	out := append([]engine.Result(nil), old...)
next:
	for _, r := range results {
		for i := range out {
			if out[i].Name == r.Name {
				out[i] = r
				continue next
			}
		}
		out = append(out, r)
	}
	return out
}

// json renders t as the Engine answers it (model.TaskRun): the event's
// fields with the current state; status, when set, replaces t's.
func (t *task) json(status string) []byte {
	doc := engineDoc(t.data)
	doc["id"], doc["status"], doc["phase"] = t.ID, t.Status, t.Phase
	if status != "" {
		doc["status"] = status
	}
	if t.Type != "" {
		doc["type"] = t.Type
	}
	if t.WorkflowRunRef != "" {
		doc["workflowRunRef"] = t.WorkflowRunRef
	}
	if !t.StartTime.IsZero() {
		doc["startTime"] = javaDate(t.StartTime)
	}
	if t.message != "" {
		doc["statusMessage"] = t.message
	}
	if t.results != nil {
		doc["results"] = t.results
	}
	b, _ := json.Marshal(doc)
	return b
}

// json renders r as the Engine answers it (model.WorkflowRun).
func (r *run) json() []byte {
	doc := engineDoc(r.data)
	doc["id"], doc["status"], doc["phase"] = r.id, r.status, r.phase
	b, _ := json.Marshal(doc)
	return b
}

// engineDoc copies an event's data without its nulls (the Engine's REST
// answers leave them out) and with its dates as the REST answers write
// them.
func engineDoc(data map[string]json.RawMessage) map[string]any {
	doc := map[string]any{}
	for k, v := range data {
		if string(v) == "null" {
			continue
		}
		doc[k] = v
		if ms, err := strconv.ParseInt(string(v), 10, 64); err == nil && (k == "creationDate" || k == "startTime") {
			doc[k] = javaDate(time.UnixMilli(ms))
		}
	}
	return doc
}

// javaDate writes t as Spring Boot's Jackson writes a java.util.Date.
func javaDate(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000-07:00") }
