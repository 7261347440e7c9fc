// Package enginestub is a stand-in for the Workflow Engine's REST API
// (boomerang-io/flow.service.engine), used by unit tests, the end-to-end
// tests, benchmarks and the demo. It records every call, checks it against
// the contract (UPSTREAM.md §3), answers as the Engine does, and can be
// told to fail or slow down to exercise retries.
//
// It keeps the Engine's state of each task run and workflow run (status,
// phase, start time) and answers from it:
//
//   - A run is known the way the Engine makes one known: by an event. A
//     harness passes each Engine event it sends the handler to KnowEvent
//     (or the tasks to Know); a call for an unknown id is refused 400 with
//     code 1501 (task) or 1301 (workflow run), and listed as a violation,
//     unless Learn is on.
//   - PUT /api/v1/taskrun/{id}/start answers 200 with the task as it was.
//     For a pending task the effect (status and phase running, start
//     time) lands a moment later (SetEffectDelay, DefaultEffectDelay), as
//     the Engine's asynchronous execute does; a task that is no longer
//     pending is answered as it is and not changed (LateStarts counts
//     these). A task whose workflow run the stand-in knows to be
//     completed or finalized is cancelled before the answer.
//   - PUT /api/v1/taskrun/{id}/end completes the task and answers 200
//     with it (status absent: succeeded; other than succeeded, failed or
//     invalid: 400 code 1505). The Engine finishes an end in its own
//     thread, so the end stays in flight for the same delay. An end for a
//     task completed already is answered and ignored.
//   - GET /api/v1/taskrun/{id} answers the task.
//   - PUT /api/v1/workflowrun/{id}/start starts a pending run at once; any
//     other is refused 400 code 1304. finalize finalizes the run.
//   - Cancel does what the Engine does before its cancel event.
//
// Violations, each listed on the call that made it but the last one
// (Violations lists them all):
//
//   - what a request shows alone: method, path, Content-Type, bodies,
//     end statuses and results, the bearer token (RequireToken);
//   - two starts for a pending task before the first took effect (the
//     Engine then runs the task twice: start time reset, two timeout
//     timers);
//   - an end before its start took effect (the Engine completes the task,
//     and then its start sets it running again: also listed on the start
//     when that happens), or with no start at all;
//   - an end while another is in flight (the Engine completes the task
//     twice and can advance the workflow twice);
//   - a duplicate end: a second end of ours after the first took effect.
//     The Engine ignores it, but the contract has the sink report each
//     TaskRun's end once (UPSTREAM.md §9 item 32), so it stays a
//     violation. An end for a task the Engine completed itself (cancelled,
//     timed out) is not one: the sink may have sent it before it could
//     know;
//   - a finalize for a workflow run not completed;
//   - a TaskRun created for a task the Engine had completed or cancelled
//     (TaskRunCreated, told by a harness that watches TaskRuns).
package enginestub

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"mime"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/boomerang-io/flow-tekton-handler/internal/engine"
)

// Call kinds.
const (
	KindTaskRunStart        = "taskrun-start"
	KindTaskRunEnd          = "taskrun-end"
	KindTaskRunGet          = "taskrun-get"
	KindWorkflowRunStart    = "workflowrun-start"
	KindWorkflowRunFinalize = "workflowrun-finalize"
)

// maxBody bounds what the stub reads of a request.
const maxBody = 1 << 20

// Call is one request the stub received.
type Call struct {
	Method string
	// Path is the request path as sent (escaped).
	Path string
	// Kind is one of the Kind constants, empty for an unknown path.
	Kind string
	// ID is the unescaped TaskRun or WorkflowRun id from the path.
	ID   string
	Body json.RawMessage
	// End is the decoded body of a taskrun-end call, nil otherwise or when
	// the body does not decode.
	End *engine.EndRequest
	// At is when the request arrived.
	At time.Time
	// Status is the HTTP status answered; 0 when the client went away
	// during an injected delay.
	Status int
	// Violations lists how the request broke the contract.
	Violations []string
}

// Server is a recording Engine. It is safe for concurrent use.
type Server struct {
	srv *http.Server
	url string

	mu       sync.Mutex
	calls    []Call
	other    []string // violations of no call (TaskRunCreated)
	tasks    map[string]*task
	runs     map[string]*run
	learn    bool
	token    string
	failN    int
	failNSt  int
	failTill time.Time
	failSt   int
	failRate float64
	failRtSt int
	rand     *rand.Rand
	delay    time.Duration
	held     int // requests waiting out the delay now
	changed  chan struct{}

	effectDelay time.Duration
	effects     int // starts not taken effect and ends in flight
	lateStarts  int
	// schedule runs f after d; tests replace it to choose the moment.
	schedule func(d time.Duration, f func())
}

// Start listens on addr ("127.0.0.1:0" for any free port) and serves
// until Close.
func Start(addr string) (*Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("engine stub listen %s: %w", addr, err)
	}
	s := &Server{
		url:         "http://" + ln.Addr().String(),
		tasks:       map[string]*task{},
		runs:        map[string]*run{},
		changed:     make(chan struct{}),
		effectDelay: DefaultEffectDelay,
		schedule:    func(d time.Duration, f func()) { time.AfterFunc(d, f) },
	}
	s.srv = &http.Server{Handler: s, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = s.srv.Serve(ln) }()
	return s, nil
}

// URL is the stub's base URL, e.g. http://127.0.0.1:41234.
func (s *Server) URL() string { return s.url }

// Close stops the server at once.
func (s *Server) Close() error {
	if err := s.srv.Close(); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("engine stub close: %w", err)
	}
	return nil
}

// RequireToken makes every request without "Authorization: Bearer token"
// a violation answered 401. An empty token turns the check off.
func (s *Server) RequireToken(token string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.token = token
}

// FailNext answers the next n requests with status, before any check of
// their content.
func (s *Server) FailNext(n int, status int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failN, s.failNSt = n, status
}

// FailFor answers every request with status for the next d.
func (s *Server) FailFor(d time.Duration, status int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failTill, s.failSt = time.Now().Add(d), status
}

// FailRandomly answers each request with status with probability p
// (0 turns it off), before any check of its content, so the call has no
// effect: an Engine failing a share of its calls. The generator is seeded,
// but concurrent calls draw from it in the order they arrive, so which
// calls fail differs from run to run; the share does not.
func (s *Server) FailRandomly(p float64, status int, seed uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failRate, s.failRtSt, s.rand = p, status, rand.New(rand.NewPCG(seed, seed))
}

// Delay holds every request for d before the stub looks at it; a client
// that gives up meanwhile leaves a call with Status 0 and no effect.
func (s *Server) Delay(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.delay = d
}

// Held is how many requests are waiting out a Delay right now.
func (s *Server) Held() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.held
}

func (s *Server) release() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.held--
}

// Calls returns every request received so far, in arrival order of their
// answers.
func (s *Server) Calls() []Call {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Call(nil), s.calls...)
}

// CallsFor returns the calls for one TaskRun or WorkflowRun id.
func (s *Server) CallsFor(id string) []Call {
	var out []Call
	for _, c := range s.Calls() {
		if c.ID == id {
			out = append(out, c)
		}
	}
	return out
}

// WaitFor blocks until pred holds for the calls received, or ctx ends.
func (s *Server) WaitFor(ctx context.Context, pred func([]Call) bool) error {
	for {
		s.mu.Lock()
		calls := append([]Call(nil), s.calls...)
		changed := s.changed
		s.mu.Unlock()
		if pred(calls) {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("engine stub wait after %d calls: %w", len(calls), ctx.Err())
		case <-changed:
		}
	}
}

// Violations returns every contract violation seen, one line each: those
// of the calls, then those TaskRunCreated found.
func (s *Server) Violations() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, c := range s.calls {
		for _, v := range c.Violations {
			out = append(out, fmt.Sprintf("%s %s: %s", c.Method, c.Path, v))
		}
	}
	return append(out, s.other...)
}

// errorBody is the Engine's error answer (io.boomerang.error.RestErrorResponse).
type errorBody struct {
	Timestamp time.Time `json:"timestamp"`
	Code      int       `json:"code"`
	Reason    string    `json:"reason"`
	Message   string    `json:"message"`
	Status    string    `json:"status"`
}

// answer is the status and body the stub sends back: json when the
// status is 200, body otherwise.
type answer struct {
	status int
	body   errorBody
	json   []byte
}

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	c := Call{Method: r.Method, Path: r.URL.EscapedPath(), At: time.Now()}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	c.Body = body
	c.Kind, c.ID = route(c.Path)

	s.mu.Lock()
	delay, token := s.delay, s.token
	if delay > 0 {
		s.held++
	}
	s.mu.Unlock()
	if delay > 0 {
		t := time.NewTimer(delay)
		select {
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
			s.release()
			s.record(c)
			return
		}
		s.release()
	}

	a := check(&c, r, token)
	s.mu.Lock()
	if f, ok := s.fault(); ok {
		a = answer{status: f, body: errorBody{Timestamp: time.Now(), Code: f, Reason: "INJECTED_FAILURE", Message: "failure injected by the test", Status: statusText(f)}}
	} else if a.status == http.StatusOK {
		a = s.apply(&c)
	}
	c.Status = a.status
	s.calls = append(s.calls, c)
	s.notify()
	s.mu.Unlock()

	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(a.status)
	if a.status != http.StatusOK {
		_ = json.NewEncoder(w).Encode(a.body)
	} else if a.json != nil {
		_, _ = w.Write(a.json)
	}
}

// record keeps a call that got no answer.
func (s *Server) record(c Call) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls = append(s.calls, c)
	s.notify()
}

// fault consumes one injected failure, if any. s.mu is held.
func (s *Server) fault() (int, bool) {
	if s.failN > 0 {
		s.failN--
		return s.failNSt, true
	}
	if time.Now().Before(s.failTill) {
		return s.failSt, true
	}
	if s.failRate > 0 && s.rand.Float64() < s.failRate {
		return s.failRtSt, true
	}
	return 0, false
}

// apply answers a call that passed check from the state, changes the
// state, and records the violations that depend on earlier calls. s.mu
// is held.
func (s *Server) apply(c *Call) answer {
	switch c.Kind {
	case KindTaskRunStart:
		return s.startTask(c)
	case KindTaskRunEnd:
		return s.endTask(c)
	case KindTaskRunGet:
		return s.getTask(c)
	case KindWorkflowRunStart:
		return s.startRun(c)
	case KindWorkflowRunFinalize:
		return s.finalizeRun(c)
	}
	return answer{status: http.StatusOK}
}

// statusText is Spring's rendering of an HTTP status, e.g. "400 BAD_REQUEST".
func statusText(code int) string {
	return fmt.Sprintf("%d %s", code, strings.ToUpper(strings.ReplaceAll(http.StatusText(code), " ", "_")))
}

// route finds the kind and id of an escaped path.
func route(path string) (kind, id string) {
	parts := strings.Split(strings.TrimPrefix(path, "/"), "/")
	if len(parts) < 4 || len(parts) > 5 || parts[0] != "api" || parts[1] != "v1" || parts[3] == "" {
		return "", ""
	}
	id, err := url.PathUnescape(parts[3])
	if err != nil {
		return "", ""
	}
	if len(parts) == 4 {
		if parts[2] == "taskrun" {
			return KindTaskRunGet, id
		}
		return "", ""
	}
	switch parts[2] + "/" + parts[4] {
	case "taskrun/start":
		return KindTaskRunStart, id
	case "taskrun/end":
		return KindTaskRunEnd, id
	case "workflowrun/start":
		return KindWorkflowRunStart, id
	case "workflowrun/finalize":
		return KindWorkflowRunFinalize, id
	}
	return "", ""
}

// check records the violations visible in the request alone and returns
// the Engine's answer to it.
func check(c *Call, r *http.Request, token string) answer {
	bad := func(v string) { c.Violations = append(c.Violations, v) }
	reject := func(status, code int, desc, format string, args ...any) answer {
		msg := fmt.Sprintf(format, args...)
		bad(msg)
		return answer{status: status, body: errorBody{Timestamp: time.Now(), Code: code, Reason: desc, Message: msg, Status: statusText(status)}}
	}
	if token != "" && r.Header.Get("Authorization") != "Bearer "+token {
		return reject(http.StatusUnauthorized, 403, "PERMISSION_DENIED", "missing or wrong bearer token")
	}
	if c.Kind == "" {
		return reject(http.StatusNotFound, 404, "NOT_FOUND", "unknown path %s", c.Path)
	}
	if c.Kind == KindTaskRunGet {
		if r.Method != http.MethodGet {
			return reject(http.StatusMethodNotAllowed, 405, "METHOD_NOT_ALLOWED", "method %s, want GET", r.Method)
		}
		return answer{status: http.StatusOK}
	}
	if r.Method != http.MethodPut {
		return reject(http.StatusMethodNotAllowed, 405, "METHOD_NOT_ALLOWED", "method %s, want PUT", r.Method)
	}
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		return reject(http.StatusUnsupportedMediaType, 415, "UNSUPPORTED_MEDIA_TYPE", "Content-Type %q, want application/json", r.Header.Get("Content-Type"))
	}
	if len(c.Body) > maxBody {
		return reject(http.StatusRequestEntityTooLarge, 413, "PAYLOAD_TOO_LARGE", "body over %d bytes", maxBody)
	}
	if c.Kind != KindTaskRunEnd {
		var doc map[string]json.RawMessage
		if err := json.Unmarshal(c.Body, &doc); err != nil || doc == nil || len(doc) != 0 {
			bad(fmt.Sprintf("body %.80q, want {}", c.Body))
		}
		return answer{status: http.StatusOK}
	}
	return checkEnd(c, bad, reject)
}

// endFields are the fields of the Engine's TaskRunEndRequest.
var endFields = map[string]bool{"status": true, "results": true, "statusMessage": true, "labels": true, "annotations": true}

// endStatuses are the statuses the Engine accepts on end.
var endStatuses = map[string]bool{engine.StatusSucceeded: true, engine.StatusFailed: true, "invalid": true}

func checkEnd(c *Call, bad func(string), reject func(int, int, string, string, ...any) answer) answer {
	var doc map[string]json.RawMessage
	if err := json.Unmarshal(c.Body, &doc); err != nil || doc == nil {
		return reject(http.StatusBadRequest, 400, "BAD_REQUEST", "end body is not a JSON object")
	}
	for k := range doc {
		switch {
		case k == "error":
			bad(`end body has an "error" field, which the Engine does not read`)
		case !endFields[k]:
			bad(fmt.Sprintf("end body has unknown field %q", k))
		}
	}
	var status string
	if raw, ok := doc["status"]; !ok {
		bad("end body has no status")
	} else if err := json.Unmarshal(raw, &status); err != nil {
		return reject(http.StatusBadRequest, 400, "BAD_REQUEST", "end status %s is not a string", raw)
	}
	if _, ok := doc["status"]; ok && !endStatuses[status] {
		return reject(http.StatusBadRequest, 1505, "TASKRUN_INVALID_END_STATUS", "end status %q is not succeeded, failed or invalid", status)
	}
	var msg string
	if raw, ok := doc["statusMessage"]; ok && json.Unmarshal(raw, &msg) != nil {
		return reject(http.StatusBadRequest, 400, "BAD_REQUEST", "statusMessage %s is not a string", raw)
	}
	if status == engine.StatusFailed && strings.TrimSpace(msg) == "" {
		bad("failed end without statusMessage")
	}
	raw, ok := doc["results"]
	var results []map[string]json.RawMessage
	switch {
	case !ok || bytes.Equal(bytes.TrimSpace(raw), []byte("null")):
		bad("end body has no results array")
	case json.Unmarshal(raw, &results) != nil:
		return reject(http.StatusBadRequest, 400, "BAD_REQUEST", "results is not an array of objects")
	}
	for i, r := range results {
		var name string
		if err := json.Unmarshal(r["name"], &name); err != nil || name == "" {
			bad(fmt.Sprintf("results[%d] has no name", i))
		}
		if _, ok := r["value"]; !ok {
			bad(fmt.Sprintf("results[%d] has no value", i))
		}
		for k := range r {
			if k != "name" && k != "value" && k != "description" {
				bad(fmt.Sprintf("results[%d] has unknown field %q", i, k))
			}
		}
	}
	var end engine.EndRequest
	if err := json.Unmarshal(c.Body, &end); err == nil {
		c.End = &end
	}
	return answer{status: http.StatusOK}
}

// Table renders calls as a Markdown table: kind, id, HTTP answer, end
// status, results, status message and violations.
func Table(calls []Call) string {
	var b strings.Builder
	b.WriteString("| # | kind | id | http | status | results | message | violations |\n")
	b.WriteString("|---|------|----|------|--------|---------|---------|------------|\n")
	for i, c := range calls {
		kind := c.Kind
		if kind == "" {
			kind = c.Method + " " + c.Path
		}
		var status, results, message string
		if c.End != nil {
			status, message = c.End.Status, c.End.StatusMessage
			var rs []string
			for _, r := range c.End.Results {
				rs = append(rs, r.Name+"="+string(r.Value))
			}
			results = strings.Join(rs, ", ")
		}
		fmt.Fprintf(&b, "| %d | %s | %s | %d | %s | %s | %s | %s |\n", i+1,
			cell(kind), cell(c.ID), c.Status, cell(status), cell(results), cell(message), cell(strings.Join(c.Violations, "; ")))
	}
	return b.String()
}

// cell makes s safe inside a Markdown table cell.
func cell(s string) string {
	s = strings.ReplaceAll(s, "|", `\|`)
	s = strings.Join(strings.Fields(s), " ")
	if r := []rune(s); len(r) > 120 {
		s = string(r[:117]) + "..."
	}
	return s
}
