package engine

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/boomerang-io/flow-tekton-handler/test/fixtures"
)

// request is what the test server saw.
type request struct {
	Method, Path, RawPath, ContentType, Accept, Auth string
	Body                                             string
}

// server answers with the statuses of answers in turn (200 after the last)
// and records every request.
type server struct {
	t       *testing.T
	mu      sync.Mutex
	answers []answer
	reqs    []request
	srv     *httptest.Server
}

type answer struct {
	code       int
	body       string
	retryAfter string
	delay      time.Duration
}

func newServer(t *testing.T, answers ...answer) *server {
	t.Helper()
	s := &server{t: t, answers: answers}
	s.srv = httptest.NewServer(http.HandlerFunc(s.serve))
	t.Cleanup(s.srv.Close)
	return s
}

func (s *server) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	s.mu.Lock()
	s.reqs = append(s.reqs, request{
		Method: r.Method, Path: r.URL.Path, RawPath: r.URL.EscapedPath(),
		ContentType: r.Header.Get("Content-Type"), Accept: r.Header.Get("Accept"),
		Auth: r.Header.Get("Authorization"), Body: string(body),
	})
	a := answer{code: http.StatusOK}
	if len(s.answers) > 0 {
		a, s.answers = s.answers[0], s.answers[1:]
	}
	s.mu.Unlock()
	if a.delay > 0 {
		select {
		case <-time.After(a.delay):
		case <-r.Context().Done():
			return
		}
	}
	if a.retryAfter != "" {
		w.Header().Set("Retry-After", a.retryAfter)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(a.code)
	_, _ = io.WriteString(w, a.body)
}

func (s *server) requests() []request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]request(nil), s.reqs...)
}

// fakeTime is a clock that only moves when the client sleeps.
type fakeTime struct {
	mu    sync.Mutex
	now   time.Time
	waits []time.Duration
}

func (f *fakeTime) Now() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.now
}

func (f *fakeTime) Sleep(ctx context.Context, d time.Duration) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.waits = append(f.waits, d)
	f.now = f.now.Add(d)
	return ctx.Err()
}

func (f *fakeTime) Waits() []time.Duration {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]time.Duration(nil), f.waits...)
}

// newClient returns a client on a fake clock whose jitter always picks the
// largest wait, so waits are deterministic.
func newClient(base string, o Options) (*Client, *fakeTime) {
	o.BaseURL = base
	c := New(o)
	ft := &fakeTime{now: time.Date(2025, 3, 4, 2, 41, 0, 0, time.UTC)}
	c.now, c.sleep = ft.Now, ft.Sleep
	c.jitter = func(limit time.Duration) time.Duration { return limit }
	return c, ft
}

func TestCalls(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		call     func(context.Context, *Client) error
		wantPath string
		wantBody string
	}{
		{
			name: "start taskrun",
			call: func(ctx context.Context, c *Client) error {
				_, err := c.StartTaskRun(ctx, "65a1f1a0e4b0a1b2c3d4e610")
				return err
			},
			wantPath: "/api/v1/taskrun/65a1f1a0e4b0a1b2c3d4e610/start",
			wantBody: `{}`,
		},
		{
			name: "end taskrun",
			call: func(ctx context.Context, c *Client) error {
				return c.EndTaskRun(ctx, "65a1f1a0e4b0a1b2c3d4e610", EndRequest{Status: StatusFailed, StatusMessage: "Failed: boom"})
			},
			wantPath: "/api/v1/taskrun/65a1f1a0e4b0a1b2c3d4e610/end",
			wantBody: `{"status":"failed","results":[],"statusMessage":"Failed: boom"}`,
		},
		{
			name:     "start workflowrun",
			call:     func(ctx context.Context, c *Client) error { return c.StartWorkflowRun(ctx, "65a1f0d9e4b0a1b2c3d4e601") },
			wantPath: "/api/v1/workflowrun/65a1f0d9e4b0a1b2c3d4e601/start",
			wantBody: `{}`,
		},
		{
			name: "finalize workflowrun",
			call: func(ctx context.Context, c *Client) error {
				return c.FinalizeWorkflowRun(ctx, "65a1f0d9e4b0a1b2c3d4e601")
			},
			wantPath: "/api/v1/workflowrun/65a1f0d9e4b0a1b2c3d4e601/finalize",
			wantBody: `{}`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := newServer(t)
			c, _ := newClient(s.srv.URL+"/", Options{Timeout: time.Second, RetryBudget: time.Second})
			if err := tt.call(t.Context(), c); err != nil {
				t.Fatal(err)
			}
			want := []request{{
				Method: http.MethodPut, Path: tt.wantPath, RawPath: tt.wantPath,
				ContentType: "application/json", Accept: "application/json", Body: tt.wantBody,
			}}
			if diff := cmp.Diff(want, s.requests()); diff != "" {
				t.Errorf("requests (-want +got):\n%s", diff)
			}
		})
	}
}

func TestPathEscaping(t *testing.T) {
	t.Parallel()
	s := newServer(t)
	c, _ := newClient(s.srv.URL, Options{})
	if _, err := c.StartTaskRun(t.Context(), "a/b c?d#e%f"); err != nil {
		t.Fatal(err)
	}
	got := s.requests()
	if len(got) != 1 {
		t.Fatalf("%d requests", len(got))
	}
	if want := "/api/v1/taskrun/a%2Fb%20c%3Fd%23e%25f/start"; got[0].RawPath != want {
		t.Errorf("raw path %q, want %q", got[0].RawPath, want)
	}
	if want := "/api/v1/taskrun/a/b c?d#e%f/start"; got[0].Path != want {
		t.Errorf("decoded path %q, want %q", got[0].Path, want)
	}
}

func TestEmptyIDIsRejectedWithoutACall(t *testing.T) {
	t.Parallel()
	s := newServer(t)
	c, _ := newClient(s.srv.URL, Options{})
	_, err := c.StartTaskRun(t.Context(), "")
	if !errors.Is(err, ErrRejected) {
		t.Fatalf("err %v, want ErrRejected", err)
	}
	if n := len(s.requests()); n != 0 {
		t.Fatalf("%d requests for an empty id", n)
	}
}

func TestToken(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, token, want string
	}{
		{name: "set", token: "s3cret-token", want: "Bearer s3cret-token"},
		{name: "unset", token: "", want: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := newServer(t, answer{code: http.StatusUnauthorized, body: `{"code":403,"reason":"PERMISSION_DENIED"}`})
			c, _ := newClient(s.srv.URL, Options{Token: tt.token})
			_, err := c.StartTaskRun(t.Context(), "x")
			// A token to fix, not a refusal of the task: not final, and not
			// retried within the call either.
			if !errors.Is(err, ErrUnavailable) || errors.Is(err, ErrRejected) {
				t.Fatalf("err %v, want ErrUnavailable", err)
			}
			if tt.token != "" && strings.Contains(err.Error(), tt.token) {
				t.Errorf("error shows the token: %v", err)
			}
			reqs := s.requests()
			if len(reqs) != 1 || reqs[0].Auth != tt.want {
				t.Fatalf("Authorization %q, want %q", reqs[0].Auth, tt.want)
			}
		})
	}
}

func TestRetries(t *testing.T) {
	t.Parallel()
	unavailable := answer{code: http.StatusInternalServerError, body: `{"message":"mongo down"}`}
	tests := []struct {
		name      string
		answers   []answer
		budget    time.Duration
		wantErr   error // nil: success
		wantCalls int
		wantWaits []time.Duration
		wantInErr string
	}{
		{
			name:      "success",
			budget:    time.Second,
			wantCalls: 1,
		},
		{
			name:      "5xx three times then 200",
			answers:   []answer{unavailable, unavailable, {code: http.StatusServiceUnavailable}},
			budget:    10 * time.Second,
			wantCalls: 4,
			wantWaits: []time.Duration{100 * time.Millisecond, 200 * time.Millisecond, 400 * time.Millisecond},
		},
		{
			name:      "two 500 then 200",
			answers:   []answer{unavailable, unavailable},
			budget:    10 * time.Second,
			wantCalls: 3,
			wantWaits: []time.Duration{100 * time.Millisecond, 200 * time.Millisecond},
		},
		{
			name:      "429 with Retry-After seconds",
			answers:   []answer{{code: http.StatusTooManyRequests, retryAfter: "3"}},
			budget:    10 * time.Second,
			wantCalls: 2,
			wantWaits: []time.Duration{3 * time.Second},
		},
		{
			name:      "503 with Retry-After zero retries at once",
			answers:   []answer{{code: http.StatusServiceUnavailable, retryAfter: "0"}},
			budget:    time.Second,
			wantCalls: 2,
			wantWaits: []time.Duration{0},
		},
		{
			name:      "408 is retried",
			answers:   []answer{{code: http.StatusRequestTimeout}},
			budget:    time.Second,
			wantCalls: 2,
			wantWaits: []time.Duration{100 * time.Millisecond},
		},
		{
			name:      "Retry-After beyond the budget gives up",
			answers:   []answer{{code: http.StatusTooManyRequests, retryAfter: "30"}},
			budget:    10 * time.Second,
			wantErr:   ErrUnavailable,
			wantCalls: 1,
			wantInErr: "429",
		},
		{
			name:      "400 is not retried",
			answers:   []answer{{code: http.StatusBadRequest, body: `{"code":1505,"reason":"TASKRUN_INVALID_END_STATUS","message":"Invalid end status"}`}},
			budget:    10 * time.Second,
			wantErr:   ErrRejected,
			wantCalls: 1,
			wantInErr: `400 Bad Request: {"code":1505,"reason":"TASKRUN_INVALID_END_STATUS"`,
		},
		{
			name:      "404 is not retried, and not final",
			answers:   []answer{{code: http.StatusNotFound}},
			budget:    10 * time.Second,
			wantErr:   ErrUnavailable,
			wantCalls: 1,
		},
		{
			name:      "redirect is not followed, and not final",
			answers:   []answer{{code: http.StatusMovedPermanently}},
			budget:    10 * time.Second,
			wantErr:   ErrUnavailable,
			wantCalls: 1,
		},
		{
			name:      "budget exhausted",
			answers:   []answer{unavailable, unavailable, unavailable, unavailable, unavailable, unavailable, unavailable},
			budget:    time.Second,
			wantErr:   ErrUnavailable,
			wantCalls: 4,
			wantWaits: []time.Duration{100 * time.Millisecond, 200 * time.Millisecond, 400 * time.Millisecond},
			wantInErr: "mongo down",
		},
		{
			name:      "zero budget means one attempt",
			answers:   []answer{unavailable},
			budget:    0,
			wantErr:   ErrUnavailable,
			wantCalls: 1,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := newServer(t, tt.answers...)
			c, ft := newClient(s.srv.URL, Options{Timeout: time.Second, RetryBudget: tt.budget})
			err := c.EndTaskRun(t.Context(), "tr1", EndRequest{Status: StatusSucceeded})
			switch {
			case tt.wantErr == nil && err != nil:
				t.Fatalf("err %v, want success", err)
			case tt.wantErr != nil && !errors.Is(err, tt.wantErr):
				t.Fatalf("err %v, want %v", err, tt.wantErr)
			}
			if err != nil && !strings.Contains(err.Error(), tt.wantInErr) {
				t.Errorf("err %q does not contain %q", err, tt.wantInErr)
			}
			if errors.Is(err, ErrRejected) && errors.Is(err, ErrUnavailable) {
				t.Errorf("err %v is both rejected and unavailable", err)
			}
			if n := len(s.requests()); n != tt.wantCalls {
				t.Errorf("%d attempts, want %d", n, tt.wantCalls)
			}
			if diff := cmp.Diff(tt.wantWaits, ft.Waits()); diff != "" {
				t.Errorf("waits (-want +got):\n%s", diff)
			}
		})
	}
}

func TestStatusErrorCarriesCodeAndTruncatedBody(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("x", 2000)
	s := newServer(t, answer{code: http.StatusConflict, body: long})
	c, _ := newClient(s.srv.URL, Options{})
	_, err := c.StartTaskRun(t.Context(), "x")
	var se *StatusError
	if !errors.As(err, &se) {
		t.Fatalf("err %v is not a StatusError", err)
	}
	if se.Code != http.StatusConflict || len(se.Body) != maxErrorBody {
		t.Errorf("code %d, body of %d bytes; want 409 and %d", se.Code, len(se.Body), maxErrorBody)
	}
}

// TestAttemptTimeout: an attempt cut at its timeout may have reached the
// Engine, so it is not sent again inside the call (a second start before
// the first took effect runs the task twice); the caller decides.
func TestAttemptTimeout(t *testing.T) {
	t.Parallel()
	s := newServer(t, answer{code: http.StatusOK, delay: 5 * time.Second})
	c, ft := newClient(s.srv.URL, Options{Timeout: 50 * time.Millisecond, RetryBudget: 10 * time.Second})
	start := time.Now()
	_, err := c.StartTaskRun(t.Context(), "x")
	if !errors.Is(err, ErrUnavailable) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err %v, want ErrUnavailable and DeadlineExceeded", err)
	}
	var se *StatusError
	if errors.As(err, &se) {
		t.Errorf("err %v is a StatusError: the caller would take it for an answer", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("took %s: the slow attempt was not cut at its timeout", d)
	}
	if n := len(s.requests()); n != 1 {
		t.Errorf("%d attempts, want 1", n)
	}
	if n := len(ft.Waits()); n != 0 {
		t.Errorf("%d waits, want none", n)
	}
}

// TestProxyTimeoutNotResent: 502 and 504 come from a proxy that may have
// forwarded the request, so, like a timeout, they are not sent again in
// the call and are not taken for the Engine's own answer.
func TestProxyTimeoutNotResent(t *testing.T) {
	t.Parallel()
	for _, code := range []int{http.StatusBadGateway, http.StatusGatewayTimeout} {
		s := newServer(t, answer{code: code})
		c, ft := newClient(s.srv.URL, Options{Timeout: time.Second, RetryBudget: 10 * time.Second})
		_, err := c.StartTaskRun(t.Context(), "x")
		var se *StatusError
		if !errors.Is(err, ErrUnavailable) || errors.As(err, &se) {
			t.Fatalf("%d: err %v, want ErrUnavailable and no StatusError", code, err)
		}
		if n := len(s.requests()); n != 1 || len(ft.Waits()) != 0 {
			t.Errorf("%d: %d attempts, %d waits; want 1 and none", code, n, len(ft.Waits()))
		}
	}
}

func TestNetworkErrorIsUnavailable(t *testing.T) {
	t.Parallel()
	s := httptest.NewServer(http.NotFoundHandler())
	url := s.URL
	s.Close()
	c, ft := newClient(url, Options{Timeout: time.Second, RetryBudget: time.Second})
	err := c.StartWorkflowRun(t.Context(), "w")
	if !errors.Is(err, ErrUnavailable) || errors.Is(err, ErrRejected) {
		t.Fatalf("err %v, want only ErrUnavailable", err)
	}
	if n := len(ft.Waits()); n != 3 {
		t.Errorf("%d waits, want 3 inside a 1s budget", n)
	}
}

func TestContextCancelled(t *testing.T) {
	t.Parallel()
	t.Run("before the call", func(t *testing.T) {
		t.Parallel()
		s := newServer(t)
		c, _ := newClient(s.srv.URL, Options{RetryBudget: time.Minute})
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		_, err := c.StartTaskRun(ctx, "x")
		if !errors.Is(err, context.Canceled) || !errors.Is(err, ErrUnavailable) {
			t.Fatalf("err %v, want context.Canceled and ErrUnavailable", err)
		}
	})
	t.Run("during the backoff", func(t *testing.T) {
		t.Parallel()
		s := newServer(t, answer{code: http.StatusServiceUnavailable}, answer{code: http.StatusServiceUnavailable})
		c := New(Options{BaseURL: s.srv.URL, Timeout: time.Second, RetryBudget: time.Minute})
		c.jitter = func(time.Duration) time.Duration { return time.Hour }
		c.budget = 2 * time.Hour
		ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
		defer cancel()
		start := time.Now()
		_, err := c.StartTaskRun(ctx, "x")
		if !errors.Is(err, context.DeadlineExceeded) || !errors.Is(err, ErrUnavailable) {
			t.Fatalf("err %v, want DeadlineExceeded and ErrUnavailable", err)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("took %s after the context ended", d)
		}
		if n := len(s.requests()); n != 1 {
			t.Errorf("%d attempts, want 1", n)
		}
	})
}

func TestRealBackoff(t *testing.T) {
	t.Parallel()
	s := newServer(t, answer{code: http.StatusInternalServerError}, answer{code: http.StatusInternalServerError})
	c := New(Options{BaseURL: s.srv.URL, Timeout: time.Second, RetryBudget: 5 * time.Second})
	if _, err := c.StartTaskRun(t.Context(), "x"); err != nil {
		t.Fatal(err)
	}
	if n := len(s.requests()); n != 3 {
		t.Errorf("%d attempts, want 3", n)
	}
}

func TestEndBodiesMatchFixtures(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		fixture string
		req     EndRequest
	}{
		{
			name:    "succeeded",
			fixture: "engine-callback-end-succeeded.json",
			req: EndRequest{
				Status: StatusSucceeded,
				Results: []Result{
					{Name: "ts", Value: json.RawMessage(`"1741056090.123456"`)},
					{Name: "permalink", Value: json.RawMessage(`"https://example.slack.com/archives/C0123/p1741056090123456"`)},
				},
				StatusMessage: "Task (65a1f1a0e4b0a1b2c3d4e610) has been executed successfully.",
			},
		},
		{
			name:    "failed",
			fixture: "engine-callback-end-failed.json",
			req:     EndRequest{Status: StatusFailed, StatusMessage: `Failed: "step-task" exited with code 2`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			fx := fixtures.Callback(t, tt.fixture)
			s := newServer(t)
			c, _ := newClient(s.srv.URL, Options{})
			if err := c.EndTaskRun(t.Context(), "65a1f1a0e4b0a1b2c3d4e610", tt.req); err != nil {
				t.Fatal(err)
			}
			reqs := s.requests()
			if len(reqs) != 1 {
				t.Fatalf("%d requests", len(reqs))
			}
			if reqs[0].Method != fx.Method || reqs[0].Path != fx.Path {
				t.Errorf("%s %s, want %s %s", reqs[0].Method, reqs[0].Path, fx.Method, fx.Path)
			}
			var want, got any
			if err := json.Unmarshal(fx.Body, &want); err != nil {
				t.Fatal(err)
			}
			if err := json.Unmarshal([]byte(reqs[0].Body), &got); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("body (-want +got):\n%s", diff)
			}
		})
	}
}

func TestBackoff(t *testing.T) {
	t.Parallel()
	tests := []struct {
		attempt int
		want    time.Duration
	}{
		{1, 100 * time.Millisecond},
		{2, 200 * time.Millisecond},
		{4, 800 * time.Millisecond},
		{5, 1600 * time.Millisecond},
		{6, 2 * time.Second},
		{60, 2 * time.Second},
	}
	for _, tt := range tests {
		if got := backoff(tt.attempt); got != tt.want {
			t.Errorf("backoff(%d) = %s, want %s", tt.attempt, got, tt.want)
		}
	}
	for range 1000 {
		if d := fullJitter(time.Second); d < 0 || d > time.Second {
			t.Fatalf("jitter %s outside [0, 1s]", d)
		}
	}
}

func TestRetryAfter(t *testing.T) {
	t.Parallel()
	now := time.Date(2025, 3, 4, 2, 41, 0, 0, time.UTC)
	tests := []struct {
		name, in string
		want     time.Duration
		ok       bool
	}{
		{"empty", "", 0, false},
		{"seconds", "7", 7 * time.Second, true},
		{"negative", "-1", 0, false},
		{"date", now.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second, true},
		{"past date", now.Add(-time.Hour).Format(http.TimeFormat), 0, true},
		{"garbage", "soon", 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, ok := retryAfter(tt.in, now)
			if got != tt.want || ok != tt.ok {
				t.Errorf("retryAfter(%q) = %s, %t; want %s, %t", tt.in, got, ok, tt.want, tt.ok)
			}
		})
	}
}

// The Engine's own error code is read from its error body
// (io.boomerang.error.RestErrorResponse), and only from there.
func TestEngineCode(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		body string
		want int
	}{
		{"workflow run not pending", `{"timestamp":"2026-12-02T10:00:00.000+00:00","code":1304,"reason":"WORKFLOWRUN_INVALID_PHASE","message":"Invalid WorkflowRun request.","status":"400 BAD_REQUEST"}`, CodeWorkflowRunInvalidPhase},
		{"unknown task run", `{"code":1501,"reason":"TASKRUN_INVALID_REFERENCE"}`, CodeTaskRunInvalidRef},
		{"not JSON", `Bad Request`, 0},
		{"no code", `{"message":"x"}`, 0},
	}
	for _, tc := range cases {
		s := newServer(t, answer{code: http.StatusBadRequest, body: tc.body})
		c, _ := newClient(s.srv.URL, Options{})
		err := c.StartWorkflowRun(t.Context(), "w")
		var se *StatusError
		if !errors.As(err, &se) || se.EngineCode != tc.want || (tc.want != 0 && !HasCode(err, tc.want)) {
			t.Errorf("%s: %v, want engine code %d", tc.name, err, tc.want)
		}
	}
	if HasCode(nil, CodeWorkflowRunInvalidPhase) {
		t.Error("nil has a code")
	}
}

// Calls in flight together each get a connection, and the next calls reuse
// them all: a busy function opens no connection per call.
func TestConnectionsReused(t *testing.T) {
	t.Parallel()
	const inFlight = 32
	var opened atomic.Int32
	var arrived sync.WaitGroup
	release := make(chan struct{})
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		arrived.Done()
		<-release
		_, _ = w.Write([]byte(`{"id":"t","status":"running","phase":"running"}`))
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			opened.Add(1)
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	c := New(Options{BaseURL: srv.URL, Timeout: 10 * time.Second})
	for round := range 2 {
		arrived.Add(inFlight)
		var done sync.WaitGroup
		for range inFlight {
			done.Go(func() {
				if _, err := c.GetTaskRun(t.Context(), "t"); err != nil {
					t.Errorf("round %d: %v", round, err)
				}
			})
		}
		arrived.Wait() // all in flight at once
		for range inFlight {
			release <- struct{}{}
		}
		done.Wait()
	}
	if n := opened.Load(); n != inFlight {
		t.Fatalf("%d connections opened for two rounds of %d calls in flight, want %d", n, inFlight, inFlight)
	}
}
