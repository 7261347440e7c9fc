// Package engine is the Workflow Engine's REST client: the four callbacks
// the handler and the sink send (TaskRun start and end, WorkflowRun start and
// finalize), each attempt bounded by a timeout, transient failures (no
// connection; 5xx, 408, 429 answers) retried with jittered exponential
// backoff inside a total budget, but never an attempt that may have landed
// (a timeout, a broken connection), and every failure
// classified as ErrRejected (permanent) or ErrUnavailable (transient).
package engine

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/boomerang-io/flow-tekton-handler/internal/clock"
)

// End statuses the Engine accepts from us. The Engine refuses cancelled and
// timedout on /end, so a Tekton timeout is reported as StatusFailed.
const (
	StatusSucceeded = "succeeded"
	StatusFailed    = "failed"
)

// ErrRejected marks a request the Engine refused for good: its validation
// refusals, all answered 400 (io.boomerang.error.BoomerangError). Sending
// it again cannot help.
var ErrRejected = errors.New("engine rejected the request")

// ErrUnavailable marks a request that did not get through: network errors,
// timeouts, 5xx, 408 and 429 after the retry budget, and at once every
// other answer that is not the Engine's own refusal (401, 403, 404, a
// redirect: a token or URL to fix). A later delivery or sweep may succeed.
var ErrUnavailable = errors.New("engine unavailable")

const (
	defaultTimeout = 5 * time.Second
	backoffBase    = 100 * time.Millisecond
	backoffCap     = 2 * time.Second
	// maxErrorBody is how much of the Engine's answer an error keeps.
	maxErrorBody = 512
	// maxDrain is how much of an answer is read to reuse the connection.
	maxDrain = 64 << 10
)

// Options configure a Client.
type Options struct {
	// BaseURL is the Engine's base, e.g. http://bmrg-flow-engine:7701.
	BaseURL string
	// Token, when set, is sent as "Authorization: Bearer <token>".
	Token string
	// Timeout bounds each attempt; zero means 5s.
	Timeout time.Duration
	// RetryBudget bounds all attempts of one call together; zero means a
	// single attempt.
	RetryBudget time.Duration
	// HTTPClient replaces the default client, which follows no redirects.
	HTTPClient *http.Client
}

// Client calls the Engine. It is safe for concurrent use.
type Client struct {
	base    string
	token   string
	timeout time.Duration
	budget  time.Duration
	http    *http.Client

	// Injected by tests.
	now    func() time.Time
	sleep  func(ctx context.Context, d time.Duration) error
	jitter func(limit time.Duration) time.Duration
}

// New returns a Client for o.
func New(o Options) *Client {
	c := &Client{
		base:    strings.TrimRight(o.BaseURL, "/"),
		token:   o.Token,
		timeout: o.Timeout,
		budget:  max(o.RetryBudget, 0),
		http:    o.HTTPClient,
		now:     time.Now,
		sleep:   clock.Sleep,
		jitter:  fullJitter,
	}
	if c.timeout <= 0 {
		c.timeout = defaultTimeout
	}
	if c.http == nil {
		// A transport of its own: nothing else closes or drains its pool.
		// Every call goes to one host, the Engine: net/http's default of two
		// idle connections per host would close most connections of a busy
		// function after one call and open new ones (a handshake and two
		// goroutines each) for the next.
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.MaxIdleConnsPerHost = t.MaxIdleConns
		c.http = &http.Client{
			Transport:     t,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		}
	}
	return c
}

// Result is one task result reported to the Engine; Value is any JSON.
type Result struct {
	Name  string          `json:"name"`
	Value json.RawMessage `json:"value"`
}

// EndRequest is the body of a TaskRun end call, as the Engine's
// TaskRunEndRequest reads it. Results is always sent as an array.
type EndRequest struct {
	Status        string   `json:"status"`
	Results       []Result `json:"results"`
	StatusMessage string   `json:"statusMessage,omitempty"`
}

// MarshalJSON writes r with Results as [] when there are none.
func (r EndRequest) MarshalJSON() ([]byte, error) {
	type plain EndRequest
	if r.Results == nil {
		r.Results = []Result{}
	}
	return json.Marshal(plain(r))
}

// StatusError is a non-2xx answer of the Engine. It matches ErrRejected for
// 400, the Engine's refusals, and ErrUnavailable for every other code.
type StatusError struct {
	Code int
	// EngineCode is the "code" of the Engine's error body
	// (io.boomerang.error.RestErrorResponse), 0 when there is none.
	EngineCode int
	// Body is the start of the Engine's answer, at most 512 bytes.
	Body string
}

// The Engine's own error codes (io.boomerang.error.BoomerangError) that the
// functions act on.
const (
	// CodeWorkflowRunInvalidPhase: the workflow run is not pending, e.g.
	// it was started already.
	CodeWorkflowRunInvalidPhase = 1304
	// CodeTaskRunInvalidRef: the Engine has no such task run.
	CodeTaskRunInvalidRef = 1501
	// CodeTaskRunInvalidEndStatus: an end status other than succeeded,
	// failed or invalid.
	CodeTaskRunInvalidEndStatus = 1505
)

// HasCode reports whether err is an Engine answer with the error code.
func HasCode(err error, code int) bool {
	var se *StatusError
	return errors.As(err, &se) && se.EngineCode == code
}

func (e *StatusError) Error() string {
	msg := fmt.Sprintf("engine answered %d %s", e.Code, http.StatusText(e.Code))
	if e.Body != "" {
		msg += ": " + e.Body
	}
	return msg
}

// Is reports whether target is the class of e's code.
func (e *StatusError) Is(target error) bool {
	switch target {
	case ErrUnavailable:
		return e.Code != http.StatusBadRequest
	case ErrRejected:
		return e.Code == http.StatusBadRequest
	}
	return false
}

// retryable reports whether an answer is worth another attempt within the
// budget; the others end the call at once.
func retryable(code int) bool {
	return code >= 500 || code == http.StatusRequestTimeout || code == http.StatusTooManyRequests
}

var emptyObject = []byte("{}")

// StartTaskRun tells the Engine that the TaskRun id is about to run, and
// returns the task as the Engine answered it: as it was before the start's
// effect, which the Engine applies asynchronously. The task is nil when the
// answer carries none.
func (c *Client) StartTaskRun(ctx context.Context, id string) (*TaskRun, error) {
	answer, err := c.put(ctx, "taskrun", id, "start", emptyObject)
	if err != nil {
		return nil, err
	}
	var t TaskRun
	if json.Unmarshal(answer, &t) != nil || t.Phase == "" {
		return nil, nil
	}
	return &t, nil
}

// EndTaskRun reports the outcome of the TaskRun id.
func (c *Client) EndTaskRun(ctx context.Context, id string, req EndRequest) error {
	body, err := json.Marshal(req)
	if err != nil {
		return fmt.Errorf("engine end of taskrun %s: encode: %w", id, err)
	}
	_, err = c.put(ctx, "taskrun", id, "end", body)
	return err
}

// StartWorkflowRun tells the Engine that the WorkflowRun id's workspaces
// are ready.
func (c *Client) StartWorkflowRun(ctx context.Context, id string) error {
	_, err := c.put(ctx, "workflowrun", id, "start", emptyObject)
	return err
}

// FinalizeWorkflowRun tells the Engine that the WorkflowRun id's workspaces
// are cleaned up.
func (c *Client) FinalizeWorkflowRun(ctx context.Context, id string) error {
	_, err := c.put(ctx, "workflowrun", id, "finalize", emptyObject)
	return err
}

// TaskRun is what the functions read of the Engine's task run
// (io.boomerang.engine.model.TaskRun).
type TaskRun struct {
	ID     string `json:"id"`
	Status string `json:"status"` // RunStatus: ready, running, succeeded, failed, cancelled, ...
	Phase  string `json:"phase"`  // RunPhase: pending, running, completed, finalized
}

// Pending reports whether the Engine has not yet run the task's execute:
// a start's effect has not landed.
func (t *TaskRun) Pending() bool { return t.Phase == "pending" }

// Running reports whether a start's effect landed and the task is not
// finished.
func (t *TaskRun) Running() bool { return t.Phase == "running" }

// Done reports whether the Engine has finished with the task (completed,
// cancelled, skipped): it will not run it, whatever we create.
func (t *TaskRun) Done() bool { return t.Phase == "completed" || t.Phase == "finalized" }

// GetTaskRun reads the task run id, one attempt within the per-request
// timeout. Errors are classified like the callbacks' (400 with code 1501
// for an id the Engine does not know).
func (c *Client) GetTaskRun(ctx context.Context, id string) (*TaskRun, error) {
	path := "/api/v1/taskrun/" + url.PathEscape(id)
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+path, nil)
	if err != nil {
		return nil, fmt.Errorf("engine GET %s: %w: %w", path, ErrRejected, err)
	}
	req.Header.Set("Accept", "application/json")
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("engine GET %s: %w: %w", path, ErrUnavailable, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, maxDrain))
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("engine GET %s: %w", path, &StatusError{Code: resp.StatusCode, EngineCode: engineCode(body), Body: clean(body[:min(len(body), maxErrorBody)])})
	}
	var t TaskRun
	if err := json.Unmarshal(body, &t); err != nil {
		return nil, fmt.Errorf("engine GET %s: %w: %w", path, ErrUnavailable, err)
	}
	return &t, nil
}

// put sends body to /api/v1/<kind>/<id>/<verb>, retrying transient
// failures until the budget or ctx runs out.
func (c *Client) put(ctx context.Context, kind, id, verb string, body []byte) ([]byte, error) {
	path := "/api/v1/" + kind + "/" + url.PathEscape(id) + "/" + verb
	if id == "" {
		return nil, fmt.Errorf("engine PUT %s: empty %s id: %w", path, kind, ErrRejected)
	}
	deadline := c.now().Add(c.budget)
	var last error
	for attempt := 1; ; attempt++ {
		// Each attempt gets its whole timeout: one cut short by the budget
		// could be cut after it landed, and could not be sent again.
		if c.budget > 0 && attempt > 1 && deadline.Sub(c.now()) <= 0 {
			return nil, fmt.Errorf("engine PUT %s: retry budget %s spent after %d attempts: %w", path, c.budget, attempt-1, last)
		}
		wait, answer, err := c.attempt(ctx, path, body, c.timeout)
		if err == nil {
			return answer, nil
		}
		last = err
		var serr *StatusError
		if errors.As(err, &serr) && !retryable(serr.Code) || errors.Is(err, ErrRejected) {
			return nil, fmt.Errorf("engine PUT %s: %w", path, err)
		}
		if serr == nil && !unsent(err) {
			// A timeout or a broken connection: the request may have
			// landed. Sending it again could start the task twice, so the
			// caller decides (its claim stays until it is stale).
			return nil, fmt.Errorf("engine PUT %s: attempt %d may have reached the Engine: %w", path, attempt, err)
		}
		if serr != nil && (serr.Code == http.StatusBadGateway || serr.Code == http.StatusGatewayTimeout) {
			// A proxy's answer, not the Engine's: it may have forwarded
			// the request. As above, and not a StatusError, which callers
			// take for the Engine's own answer.
			return nil, fmt.Errorf("engine PUT %s: attempt %d answered %d by a proxy, may have reached the Engine: %w", path, attempt, serr.Code, ErrUnavailable)
		}
		if ctx.Err() != nil {
			return nil, fmt.Errorf("engine PUT %s: %w (attempt %d: %w)", path, ctx.Err(), attempt, err)
		}
		if wait < 0 {
			wait = c.jitter(backoff(attempt))
		}
		if rem := deadline.Sub(c.now()); wait >= rem {
			return nil, fmt.Errorf("engine PUT %s: gave up after %d attempts in retry budget %s: %w", path, attempt, c.budget, err)
		}
		if serr := c.sleep(ctx, wait); serr != nil {
			return nil, fmt.Errorf("engine PUT %s: %w (attempt %d: %w)", path, serr, attempt, err)
		}
	}
}

// unsent reports whether a failed attempt never reached the Engine: the
// connection could not be opened.
func unsent(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}

// attempt sends one request and returns the answer of a 2xx. On a transient
// failure it returns how long the Engine asked us to wait (Retry-After), or
// -1 when it did not say.
func (c *Client) attempt(ctx context.Context, path string, body []byte, timeout time.Duration) (time.Duration, []byte, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, c.base+path, bytes.NewReader(body))
	if err != nil {
		return -1, nil, fmt.Errorf("%w: build request: %w", ErrRejected, err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return -1, nil, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	defer func() {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxDrain))
		_ = resp.Body.Close()
	}()
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		answer, _ := io.ReadAll(io.LimitReader(resp.Body, maxDrain))
		return 0, answer, nil
	}
	head, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	serr := &StatusError{Code: resp.StatusCode, EngineCode: engineCode(head), Body: clean(head)}
	wait := time.Duration(-1)
	if retryable(resp.StatusCode) {
		if d, ok := retryAfter(resp.Header.Get("Retry-After"), c.now()); ok {
			wait = d
		}
	}
	return wait, nil, serr
}

// backoff is the upper bound of the wait before attempt+1: base·2^(n-1),
// capped.
func backoff(attempt int) time.Duration {
	d := backoffBase
	for i := 1; i < attempt && d < backoffCap; i++ {
		d *= 2
	}
	return min(d, backoffCap)
}

// fullJitter picks a wait uniformly in [0, limit].
func fullJitter(limit time.Duration) time.Duration {
	if limit <= 0 {
		return 0
	}
	return rand.N(limit + 1)
}

// retryAfter parses a Retry-After header: delay seconds or an HTTP date.
func retryAfter(v string, now time.Time) (time.Duration, bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if s, err := strconv.Atoi(v); err == nil {
		if s < 0 {
			return 0, false
		}
		return time.Duration(s) * time.Second, true
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(t.Sub(now), 0), true
	}
	return 0, false
}

// clean makes the start of an answer body printable in one line.
func clean(b []byte) string {
	s := strings.ToValidUTF8(string(b), string(utf8.RuneError))
	s = strings.Join(strings.Fields(s), " ")
	return s
}

// engineCode reads the "code" of the Engine's JSON error body, or 0.
func engineCode(body []byte) int {
	var b struct {
		Code int `json:"code"`
	}
	if json.Unmarshal(body, &b) != nil {
		return 0
	}
	return b.Code
}
