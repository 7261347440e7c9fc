package enginestub

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/boomerang-io/flow-tekton-handler/internal/engine"
	"github.com/boomerang-io/flow-tekton-handler/test/fixtures"
)

// start serves a stand-in that knows the tasks ids, pending, and the
// workflow run w1, pending.
func start(t *testing.T, ids ...string) *Server {
	t.Helper()
	s, err := Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Error(err)
		}
	})
	for _, id := range ids {
		s.Know(Task{ID: id, WorkflowRunRef: "w1"})
	}
	s.KnowEvent(event("workflowrun", "w1", "ready", "pending", ""))
	return s
}

// event is a structured-mode Engine event for the run id.
func event(kind, id, status, phase, workflowRun string) []byte {
	return fmt.Appendf(nil, `{"specversion":"1.0","id":"e","source":"/apis/v1/events","type":"io.boomerang.event.status.%s",`+
		`"data":{"id":%q,"type":"custom","status":%q,"phase":%q,"workflowRunRef":%q}}`, kind, id, status, phase, workflowRun)
}

// settle waits until every effect of s has landed.
func settle(t *testing.T, s *Server) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	if err := s.Settle(ctx); err != nil {
		t.Fatal(err)
	}
}

// capture makes s keep its effects for the test to land, in order.
func capture(s *Server) *[]func() {
	var effects []func()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.schedule = func(_ time.Duration, f func()) { effects = append(effects, f) }
	return &effects
}

// send makes one raw request and returns the status and body answered.
func send(t *testing.T, s *Server, method, path, contentType, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, s.URL()+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func client(s *Server) *engine.Client {
	return engine.New(engine.Options{BaseURL: s.URL(), Timeout: time.Second, RetryBudget: 3 * time.Second})
}

func TestCleanRunHasNoViolations(t *testing.T) {
	t.Parallel()
	s := start(t, "tr1", "tr2")
	ec := client(s)
	ctx := t.Context()
	steps := []func() error{
		func() error { return ec.StartWorkflowRun(ctx, "w1") },
		func() error { _, err := ec.StartTaskRun(ctx, "tr1"); return err },
		func() error { return s.Settle(ctx) },
		func() error {
			return ec.EndTaskRun(ctx, "tr1", engine.EndRequest{
				Status:        engine.StatusSucceeded,
				Results:       []engine.Result{{Name: "ts", Value: json.RawMessage(`"1741056090.123456"`)}, {Name: "list", Value: json.RawMessage(`["a","b"]`)}},
				StatusMessage: "Task (tr1) has been executed successfully.",
			})
		},
		func() error { _, err := ec.StartTaskRun(ctx, "tr2"); return err },
		func() error { return s.Settle(ctx) },
		func() error {
			return ec.EndTaskRun(ctx, "tr2", engine.EndRequest{Status: engine.StatusFailed, StatusMessage: "Failed: boom"})
		},
		func() error {
			s.KnowEvent(event("workflowrun", "w1", "succeeded", "completed", ""))
			return nil
		},
		func() error { return ec.FinalizeWorkflowRun(ctx, "w1") },
	}
	for i, step := range steps {
		if err := step(); err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
	}
	if v := s.Violations(); len(v) != 0 {
		t.Fatalf("violations: %v", v)
	}
	var kinds []string
	for _, c := range s.Calls() {
		kinds = append(kinds, c.Kind+" "+c.ID)
		if c.Status != http.StatusOK || c.Method != http.MethodPut {
			t.Errorf("call %+v", c)
		}
	}
	want := []string{"workflowrun-start w1", "taskrun-start tr1", "taskrun-end tr1", "taskrun-start tr2", "taskrun-end tr2", "workflowrun-finalize w1"}
	if diff := cmp.Diff(want, kinds); diff != "" {
		t.Errorf("calls (-want +got):\n%s", diff)
	}
	tr1 := s.CallsFor("tr1")
	if len(tr1) != 2 || tr1[1].End == nil || tr1[1].End.Status != engine.StatusSucceeded || len(tr1[1].End.Results) != 2 {
		t.Fatalf("calls for tr1: %+v", tr1)
	}
	for id, status := range map[string]string{"tr1": "succeeded", "tr2": "failed"} {
		if got, _ := s.Task(id); got.Status != status || got.Phase != PhaseCompleted || got.StartTime.IsZero() || got.CompletedAt.IsZero() {
			t.Errorf("task %s: %+v, want %s and completed after a start", id, got, status)
		}
	}
	table := Table(s.Calls())
	for _, wantText := range []string{"| 3 | taskrun-end | tr1 | 200 | succeeded | ts=\"1741056090.123456\", list=[\"a\",\"b\"] |", "Failed: boom"} {
		if !strings.Contains(table, wantText) {
			t.Errorf("table lacks %q:\n%s", wantText, table)
		}
	}
}

func TestFixtureBodiesAreValid(t *testing.T) {
	t.Parallel()
	for _, name := range []string{"engine-callback-end-succeeded.json", "engine-callback-end-failed.json"} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			fx := fixtures.Callback(t, name)
			s := start(t)
			if !s.KnowEvent(fixtures.Read(t, "engine-taskrun-template-ready.json")) {
				t.Fatal("the fixture's task is not known")
			}
			send(t, s, http.MethodPut, "/api/v1/taskrun/65a1f1a0e4b0a1b2c3d4e610/start", "application/json", "{}")
			settle(t, s)
			if code, body := send(t, s, fx.Method, fx.Path, "application/json", string(fx.Body)); code != http.StatusOK {
				t.Fatalf("answered %d %s", code, body)
			}
			if v := s.Violations(); len(v) != 0 {
				t.Fatalf("violations: %v", v)
			}
		})
	}
}

// TestViolations covers what a request shows alone: every case's task t1
// and workflow run w1 are known, and a start has taken effect before its
// end.
func TestViolations(t *testing.T) {
	t.Parallel()
	const (
		startPath = "/api/v1/taskrun/t1/start"
		endPath   = "/api/v1/taskrun/t1/end"
		ctJSON    = "application/json"
	)
	type req struct{ method, path, contentType, body string }
	put := func(path, body string) req { return req{http.MethodPut, path, ctJSON, body} }
	started := put(startPath, `{}`) // followed by a wait for its effect
	okEnd := `{"status":"failed","results":[],"statusMessage":"Failed: x"}`
	tests := []struct {
		name      string
		reqs      []req
		wantCodes []int
		wantViol  string // substring of the last call's only violation; empty: none at all
		wantBody  string // substring of the last answer
	}{
		{
			name:      "valid start then end",
			reqs:      []req{started, put(endPath, okEnd)},
			wantCodes: []int{200, 200},
			wantBody:  `"status":"failed"`,
		},
		{
			name:      "POST instead of PUT",
			reqs:      []req{{http.MethodPost, startPath, ctJSON, `{}`}},
			wantCodes: []int{405},
			wantViol:  "method POST",
		},
		{
			name:      "PUT instead of GET",
			reqs:      []req{put("/api/v1/taskrun/t1", `{}`)},
			wantCodes: []int{405},
			wantViol:  "want GET",
		},
		{
			name:      "GET without a Content-Type",
			reqs:      []req{{http.MethodGet, "/api/v1/taskrun/t1", "", ``}},
			wantCodes: []int{200},
			wantBody:  `"id":"t1"`,
		},
		{
			name:      "unknown path",
			reqs:      []req{put("/api/v1/taskrun/t1/restart", `{}`)},
			wantCodes: []int{404},
			wantViol:  "unknown path",
		},
		{
			name:      "GET of a workflow run is not the Engine's path",
			reqs:      []req{{http.MethodGet, "/api/v1/workflowrun/w1", "", ``}},
			wantCodes: []int{404},
			wantViol:  "unknown path",
		},
		{
			name:      "missing id",
			reqs:      []req{put("/api/v1/taskrun//start", `{}`)},
			wantCodes: []int{404},
			wantViol:  "unknown path",
		},
		{
			name:      "wrong content type",
			reqs:      []req{{http.MethodPut, startPath, "text/plain", `{}`}},
			wantCodes: []int{415},
			wantViol:  "Content-Type",
		},
		{
			name:      "content type with charset is fine",
			reqs:      []req{{http.MethodPut, startPath, "application/json; charset=utf-8", `{}`}},
			wantCodes: []int{200},
		},
		{
			name:      "start body not {}",
			reqs:      []req{put("/api/v1/workflowrun/w1/start", `{"x":1}`)},
			wantCodes: []int{200},
			wantViol:  "want {}",
		},
		{
			name:      "finalize with empty body",
			reqs:      []req{put("/api/v1/workflowrun/w1/finalize", ``)},
			wantCodes: []int{200},
			wantViol:  "want {}",
		},
		{
			name:      "end status cancelled is refused like the Engine",
			reqs:      []req{started, put(endPath, `{"status":"cancelled","results":[],"statusMessage":"x"}`)},
			wantCodes: []int{200, 400},
			wantViol:  `end status "cancelled"`,
			wantBody:  `"reason":"TASKRUN_INVALID_END_STATUS"`,
		},
		{
			name:      "end status timedout is refused",
			reqs:      []req{started, put(endPath, `{"status":"timedout","results":[],"statusMessage":"x"}`)},
			wantCodes: []int{200, 400},
			wantViol:  `end status "timedout"`,
			wantBody:  `"code":1505`,
		},
		{
			name:      "end status invalid is accepted",
			reqs:      []req{started, put(endPath, `{"status":"invalid","results":[]}`)},
			wantCodes: []int{200, 200},
			wantBody:  `"status":"invalid"`,
		},
		{
			name:      "end with error field",
			reqs:      []req{started, put(endPath, `{"status":"failed","results":[],"statusMessage":"x","error":{"code":"100"}}`)},
			wantCodes: []int{200, 200},
			wantViol:  `"error" field`,
		},
		{
			name:      "end without results",
			reqs:      []req{started, put(endPath, `{"status":"failed","statusMessage":"x"}`)},
			wantCodes: []int{200, 200},
			wantViol:  "no results array",
		},
		{
			name:      "end with null results",
			reqs:      []req{started, put(endPath, `{"status":"failed","results":null,"statusMessage":"x"}`)},
			wantCodes: []int{200, 200},
			wantViol:  "no results array",
		},
		{
			name:      "end results not an array",
			reqs:      []req{started, put(endPath, `{"status":"succeeded","results":{"a":"b"}}`)},
			wantCodes: []int{200, 400},
			wantViol:  "not an array",
		},
		{
			name:      "end result without value",
			reqs:      []req{started, put(endPath, `{"status":"succeeded","results":[{"name":"a"}]}`)},
			wantCodes: []int{200, 200},
			wantViol:  "results[0] has no value",
		},
		{
			name:      "end result without name",
			reqs:      []req{started, put(endPath, `{"status":"succeeded","results":[{"value":"a"}]}`)},
			wantCodes: []int{200, 200},
			wantViol:  "results[0] has no name",
		},
		{
			name:      "failed end without message",
			reqs:      []req{started, put(endPath, `{"status":"failed","results":[]}`)},
			wantCodes: []int{200, 200},
			wantViol:  "without statusMessage",
		},
		{
			name:      "end without status is flagged and ends succeeded, as the Engine does",
			reqs:      []req{started, put(endPath, `{"results":[]}`)},
			wantCodes: []int{200, 200},
			wantViol:  "no status",
			wantBody:  `"status":"succeeded"`,
		},
		{
			name:      "end not JSON",
			reqs:      []req{started, put(endPath, `status=failed`)},
			wantCodes: []int{200, 400},
			wantViol:  "not a JSON object",
		},
		{
			name:      "ids are unescaped and kept apart",
			reqs:      []req{put("/api/v1/taskrun/a%2Fb/start", `{}`), put("/api/v1/taskrun/a/start", `{}`)},
			wantCodes: []int{200, 200},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := start(t, "t1", "a/b", "a")
			var codes []int
			var body string
			for _, r := range tt.reqs {
				var code int
				code, body = send(t, s, r.method, r.path, r.contentType, r.body)
				codes = append(codes, code)
				if r == started {
					settle(t, s)
				}
			}
			if diff := cmp.Diff(tt.wantCodes, codes); diff != "" {
				t.Errorf("answers (-want +got):\n%s", diff)
			}
			if !strings.Contains(body, tt.wantBody) {
				t.Errorf("last answer %q lacks %q", body, tt.wantBody)
			}
			calls := s.Calls()
			if len(calls) != len(tt.reqs) {
				t.Fatalf("%d calls recorded, want %d", len(calls), len(tt.reqs))
			}
			for i, c := range calls {
				if c.Status != codes[i] {
					t.Errorf("call %d recorded status %d, answered %d", i, c.Status, codes[i])
				}
			}
			last := calls[len(calls)-1]
			got := strings.Join(last.Violations, "; ")
			if tt.wantViol == "" {
				if v := s.Violations(); len(v) != 0 {
					t.Errorf("violations %v, want none", v)
				}
				return
			}
			if !strings.Contains(got, tt.wantViol) {
				t.Errorf("last call's violations %q lack %q", got, tt.wantViol)
			}
			if n := len(s.Violations()); n != len(last.Violations) {
				t.Errorf("violations %v, want only the last call's", s.Violations())
			}
		})
	}
}

func TestIDs(t *testing.T) {
	t.Parallel()
	s := start(t, "a/b c")
	if _, err := client(s).StartTaskRun(t.Context(), "a/b c"); err != nil {
		t.Fatal(err)
	}
	c := s.Calls()[0]
	if c.ID != "a/b c" || c.Path != "/api/v1/taskrun/a%2Fb%20c/start" || c.Kind != KindTaskRunStart {
		t.Errorf("call %+v", c)
	}
	if got := s.CallsFor("a/b c"); len(got) != 1 {
		t.Errorf("CallsFor: %d calls", len(got))
	}
}

func TestRequireToken(t *testing.T) {
	t.Parallel()
	s := start(t, "t1")
	s.RequireToken("s3cret")
	_, err := client(s).StartTaskRun(t.Context(), "t1")
	var se *engine.StatusError
	if !errors.As(err, &se) || se.Code != http.StatusUnauthorized {
		t.Fatalf("err %v, want 401 for a missing token", err)
	}
	ok := engine.New(engine.Options{BaseURL: s.URL(), Token: "s3cret"})
	if _, err := ok.StartTaskRun(t.Context(), "t1"); err != nil {
		t.Fatal(err)
	}
	v := s.Violations()
	if len(v) != 1 || !strings.Contains(v[0], "bearer token") {
		t.Errorf("violations %v, want one for the missing token", v)
	}
	if calls := s.Calls(); len(calls) != 2 || calls[0].Status != http.StatusUnauthorized || calls[1].Status != http.StatusOK {
		t.Errorf("calls %+v", calls)
	}
}

func TestFailNext(t *testing.T) {
	t.Parallel()
	s := start(t, "t1")
	s.FailNext(2, http.StatusServiceUnavailable)
	if _, err := client(s).StartTaskRun(t.Context(), "t1"); err != nil {
		t.Fatal(err)
	}
	var codes []int
	for _, c := range s.Calls() {
		codes = append(codes, c.Status)
	}
	if diff := cmp.Diff([]int{503, 503, 200}, codes); diff != "" {
		t.Errorf("answers (-want +got):\n%s", diff)
	}
	if v := s.Violations(); len(v) != 0 {
		t.Errorf("retried start flagged: %v", v)
	}
}

func TestFailNextRejects(t *testing.T) {
	t.Parallel()
	s := start(t, "t1")
	s.FailNext(1, http.StatusBadRequest)
	if _, err := client(s).StartTaskRun(t.Context(), "t1"); !errors.Is(err, engine.ErrRejected) {
		t.Fatalf("err %v, want ErrRejected", err)
	}
	if n := len(s.Calls()); n != 1 {
		t.Errorf("%d calls, want 1", n)
	}
}

func TestFailFor(t *testing.T) {
	t.Parallel()
	s := start(t, "t1")
	s.FailFor(time.Minute, http.StatusServiceUnavailable)
	ec := engine.New(engine.Options{BaseURL: s.URL(), Timeout: time.Second, RetryBudget: 300 * time.Millisecond})
	_, err := ec.StartTaskRun(t.Context(), "t1")
	if !errors.Is(err, engine.ErrUnavailable) {
		t.Fatalf("err %v, want ErrUnavailable", err)
	}
	n := len(s.Calls())
	if n < 2 {
		t.Errorf("%d calls, want retries", n)
	}
	s.FailFor(0, 0)
	if _, err := ec.StartTaskRun(t.Context(), "t1"); err != nil {
		t.Fatalf("after the failure window: %v", err)
	}
	if v := s.Violations(); len(v) != 0 {
		t.Errorf("violations %v", v)
	}
}

func TestFailRandomly(t *testing.T) {
	t.Parallel()
	s := start(t, "t1")
	s.FailRandomly(0.25, http.StatusInternalServerError, 7)
	failed := 0
	for range 400 {
		resp, err := http.Get(s.URL() + "/api/v1/taskrun/t1")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		switch resp.StatusCode {
		case http.StatusInternalServerError:
			failed++
		case http.StatusOK:
		default:
			t.Fatalf("status %d", resp.StatusCode)
		}
	}
	if failed < 60 || failed > 140 {
		t.Errorf("%d of 400 calls failed, want about 100", failed)
	}
	s.FailRandomly(0, 0, 0)
	if _, err := engine.New(engine.Options{BaseURL: s.URL(), Timeout: time.Second}).GetTaskRun(t.Context(), "t1"); err != nil {
		t.Errorf("after turning it off: %v", err)
	}
}

func TestDelay(t *testing.T) {
	t.Parallel()
	s := start(t, "t1")
	s.Delay(time.Second)
	ec := engine.New(engine.Options{BaseURL: s.URL(), Timeout: 50 * time.Millisecond, RetryBudget: 0})
	_, err := ec.StartTaskRun(t.Context(), "t1")
	if !errors.Is(err, engine.ErrUnavailable) {
		t.Fatalf("err %v, want a timeout", err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	if err := s.WaitFor(ctx, func(c []Call) bool { return len(c) == 1 }); err != nil {
		t.Fatal(err)
	}
	if c := s.Calls()[0]; c.Status != 0 {
		t.Errorf("abandoned call recorded with status %d", c.Status)
	}
	s.Delay(10 * time.Millisecond)
	if _, err := client(s).StartTaskRun(t.Context(), "t1"); err != nil {
		t.Fatalf("short delay: %v", err)
	}
	if v := s.Violations(); len(v) != 0 {
		t.Errorf("an abandoned start counted: %v", v)
	}
}

func TestWaitFor(t *testing.T) {
	t.Parallel()
	s := start(t, "t1")
	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		done <- s.WaitFor(ctx, func(c []Call) bool {
			return len(c) > 0 && c[len(c)-1].Kind == KindTaskRunEnd
		})
	}()
	ec := client(s)
	if _, err := ec.StartTaskRun(t.Context(), "t1"); err != nil {
		t.Fatal(err)
	}
	settle(t, s)
	if err := ec.EndTaskRun(t.Context(), "t1", engine.EndRequest{Status: engine.StatusSucceeded, StatusMessage: "ok"}); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Millisecond)
	defer cancel()
	if err := s.WaitFor(ctx, func(c []Call) bool { return len(c) > 5 }); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("WaitFor never satisfied returned %v", err)
	}
}

func TestConcurrentCalls(t *testing.T) {
	t.Parallel()
	s := start(t)
	s.SetEffectDelay(0) // each start takes effect before its answer
	for i := range 20 {
		s.Know(Task{ID: "t" + string(rune('a'+i))})
	}
	ec := client(s)
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			id := "t" + string(rune('a'+i))
			if _, err := ec.StartTaskRun(t.Context(), id); err != nil {
				t.Error(err)
			}
			if err := ec.EndTaskRun(t.Context(), id, engine.EndRequest{Status: engine.StatusFailed, StatusMessage: "Failed: x"}); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if n := len(s.Calls()); n != 40 {
		t.Errorf("%d calls, want 40", n)
	}
	if v := s.Violations(); len(v) != 0 {
		t.Errorf("violations %v", v)
	}
}

func TestTable(t *testing.T) {
	t.Parallel()
	calls := []Call{
		{Method: "PUT", Path: "/api/v1/taskrun/t1/start", Kind: KindTaskRunStart, ID: "t1", Status: 200},
		{Method: "PUT", Path: "/api/v1/taskrun/t1/end", Kind: KindTaskRunEnd, ID: "t1", Status: 200,
			End: &engine.EndRequest{Status: "failed", StatusMessage: "Failed: a | b\nc"}, Violations: []string{"duplicate end"}},
		{Method: "GET", Path: "/x", Status: 404},
	}
	want := "| # | kind | id | http | status | results | message | violations |\n" +
		"|---|------|----|------|--------|---------|---------|------------|\n" +
		"| 1 | taskrun-start | t1 | 200 |  |  |  |  |\n" +
		"| 2 | taskrun-end | t1 | 200 | failed |  | Failed: a \\| b c | duplicate end |\n" +
		"| 3 | GET /x |  | 404 |  |  |  |  |\n"
	if diff := cmp.Diff(want, Table(calls)); diff != "" {
		t.Errorf("table (-want +got):\n%s", diff)
	}
}

// TestState follows the Engine's state of task t1 (workflow run w1) and
// workflow run w1 through calls, the stand-in's effects landed one by one
// when a case says so (effects run in the order they were scheduled).
func TestState(t *testing.T) {
	t.Parallel()
	const (
		startPath = "/api/v1/taskrun/t1/start"
		endPath   = "/api/v1/taskrun/t1/end"
		getPath   = "/api/v1/taskrun/t1"
	)
	failed := `{"status":"failed","results":[],"statusMessage":"Failed: x"}`
	succeeded := `{"status":"succeeded","results":[{"name":"a","value":"1"}]}`
	type step struct {
		method, path, body string // a request, unless do is set
		do                 func(s *Server, land func())
		code               int
		answer             []string // substrings of the answer
		viol               string   // substring of the call's violations once all steps ran; "" none
	}
	put := func(path, body string, code int, viol string, answer ...string) step {
		return step{method: http.MethodPut, path: path, body: body, code: code, viol: viol, answer: answer}
	}
	get := func(answer ...string) step {
		return step{method: http.MethodGet, path: getPath, code: 200, answer: answer}
	}
	land := step{do: func(_ *Server, land func()) { land() }}
	cancel := step{do: func(s *Server, _ func()) { s.Cancel("t1") }}
	runDone := step{do: func(s *Server, _ func()) { s.KnowEvent(event("workflowrun", "w1", "succeeded", "completed", "")) }}
	tests := []struct {
		name     string
		unknown  bool // t1 and w1 unknown
		steps    []step
		want     Task // status and phase of t1 after the steps
		wantLate int
	}{
		{
			name:  "start answers the task as it was and it runs a moment later",
			steps: []step{put(startPath, `{}`, 200, "", `"status":"ready"`, `"phase":"pending"`), get(`"phase":"pending"`), land, get(`"status":"running"`, `"phase":"running"`, `"startTime":"`)},
			want:  Task{Status: "running", Phase: "running"},
		},
		{
			name:  "get answers the task as the Engine has it",
			steps: []step{get(`"id":"t1"`, `"workflowRunRef":"w1"`, `"status":"ready"`, `"phase":"pending"`)},
			want:  Task{Status: "ready", Phase: "pending"},
		},
		{
			name:    "unknown task: start, end and get are refused 1501",
			unknown: true,
			steps: []step{
				put(startPath, `{}`, 400, "unknown task run", `"code":1501`, `"reason":"TASKRUN_INVALID_REFERENCE"`, `"status":"400 BAD_REQUEST"`, `"message":"Invalid TaskRun reference has been provided."`, `"timestamp":"`),
				put(endPath, failed, 400, "unknown task run", `"code":1501`),
				{method: http.MethodGet, path: getPath, code: 400, viol: "unknown task run", answer: []string{`"code":1501`}},
			},
		},
		{
			name:  "two starts before the first took effect",
			steps: []step{put(startPath, `{}`, 200, ""), put(startPath, `{}`, 200, "two starts before the first took effect", `"status":"ready"`), land, land},
			want:  Task{Status: "running", Phase: "running"},
		},
		{
			name:     "a start after the first took effect is answered and ignored",
			steps:    []step{put(startPath, `{}`, 200, ""), land, put(startPath, `{}`, 200, "", `"status":"running"`)},
			want:     Task{Status: "running", Phase: "running"},
			wantLate: 1,
		},
		{
			name:  "end after the start took effect",
			steps: []step{put(startPath, `{}`, 200, ""), land, put(endPath, failed, 200, "", `"status":"failed"`, `"phase":"running"`), get(`"status":"failed"`, `"phase":"completed"`, `"statusMessage":"Failed: x"`)},
			want:  Task{Status: "failed", Phase: "completed"},
		},
		{
			name:  "end results are kept",
			steps: []step{put(startPath, `{}`, 200, ""), land, put(endPath, succeeded, 200, ""), get(`"results":[{"name":"a","value":"1"}]`)},
			want:  Task{Status: "succeeded", Phase: "completed"},
		},
		{
			name: "end before its start took effect, then the start's effect overwrites the end",
			steps: []step{
				put(startPath, `{}`, 200, "the start's effect overwrote the task's end (failed)"),
				put(endPath, failed, 200, "end before its start took effect"),
				land, // the start
			},
			want: Task{Status: "running", Phase: "running"},
		},
		{
			name:  "end with no start",
			steps: []step{put(endPath, failed, 200, "end before start")},
			want:  Task{Status: "failed", Phase: "completed"},
		},
		{
			name:  "two ends in flight at once",
			steps: []step{put(startPath, `{}`, 200, ""), land, put(endPath, failed, 200, ""), put(endPath, succeeded, 200, "two ends in flight at once", `"status":"failed"`)},
			want:  Task{Status: "failed", Phase: "completed"},
		},
		{
			name: "an end after the first one's is ignored and a duplicate",
			steps: []step{
				put(startPath, `{}`, 200, ""), land,
				put(endPath, failed, 200, ""), land, // its time in flight
				put(endPath, succeeded, 200, "duplicate end", `"status":"failed"`),
			},
			want: Task{Status: "failed", Phase: "completed"},
		},
		{
			name:  "an end for a task the Engine cancelled is ignored",
			steps: []step{put(startPath, `{}`, 200, ""), land, cancel, put(endPath, succeeded, 200, "", `"status":"cancelled"`, `"phase":"completed"`)},
			want:  Task{Status: "cancelled", Phase: "completed"},
		},
		{
			name:     "a start for a task the Engine cancelled is answered and ignored",
			steps:    []step{cancel, put(startPath, `{}`, 200, "", `"status":"cancelled"`)},
			want:     Task{Status: "cancelled", Phase: "completed"},
			wantLate: 1,
		},
		{
			name:  "a start when the workflow run is completed cancels the task",
			steps: []step{runDone, put(startPath, `{}`, 200, "", `"status":"cancelled"`, `"phase":"completed"`)},
			want:  Task{Status: "cancelled", Phase: "completed"},
		},
		{
			name: "workflow run start, once",
			steps: []step{
				put("/api/v1/workflowrun/w1/start", `{}`, 200, "", `"id":"w1"`, `"phase":"pending"`),
				put("/api/v1/workflowrun/w1/start", `{}`, 400, "", `"code":1304`, `"reason":"WORKFLOWRUN_INVALID_PHASE"`, "Current: running, Needed: pending."),
			},
			want: Task{Status: "ready", Phase: "pending"},
		},
		{
			name:    "unknown workflow run: start and finalize are refused 1301",
			unknown: true,
			steps: []step{
				put("/api/v1/workflowrun/w1/start", `{}`, 400, "unknown workflow run", `"code":1301`, `"reason":"WORKFLOWRUN_INVALID_REFERENCE"`),
				put("/api/v1/workflowrun/w1/finalize", `{}`, 400, "unknown workflow run", `"code":1301`),
			},
		},
		{
			name:  "finalize of a completed workflow run",
			steps: []step{put("/api/v1/workflowrun/w1/start", `{}`, 200, ""), runDone, put("/api/v1/workflowrun/w1/finalize", `{}`, 200, "", `"phase":"finalized"`)},
			want:  Task{Status: "ready", Phase: "pending"},
		},
		{
			name:  "finalize of a running workflow run",
			steps: []step{put("/api/v1/workflowrun/w1/start", `{}`, 200, ""), put("/api/v1/workflowrun/w1/finalize", `{}`, 200, "finalize of a workflow run in phase running")},
			want:  Task{Status: "ready", Phase: "pending"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := start(t, "t1")
			if tt.unknown {
				s = start(t)
				s.mu.Lock()
				delete(s.runs, "w1")
				s.mu.Unlock()
			}
			effects := capture(s)
			landed := 0
			land := func() {
				if landed == len(*effects) {
					t.Fatalf("no effect left to land after %d", landed)
				}
				(*effects)[landed]()
				landed++
			}
			var wantViol []string
			for i, st := range tt.steps {
				if st.do != nil {
					st.do(s, land)
					continue
				}
				code, body := send(t, s, st.method, st.path, "application/json", st.body)
				if code != st.code {
					t.Errorf("step %d: answered %d %s, want %d", i, code, body, st.code)
				}
				for _, a := range st.answer {
					if !strings.Contains(body, a) {
						t.Errorf("step %d: answer %s lacks %s", i, body, a)
					}
				}
				wantViol = append(wantViol, st.viol)
			}
			calls := s.Calls()
			if len(calls) != len(wantViol) {
				t.Fatalf("%d calls, want %d", len(calls), len(wantViol))
			}
			for i, c := range calls {
				got := strings.Join(c.Violations, "; ")
				if wantViol[i] == "" && got != "" || !strings.Contains(got, wantViol[i]) || len(c.Violations) > 1 {
					t.Errorf("call %d (%s): violations %q, want %q", i, c.Path, got, wantViol[i])
				}
			}
			got, known := s.Task("t1")
			if known == tt.unknown || got.Status != tt.want.Status || got.Phase != tt.want.Phase {
				t.Errorf("task t1 %+v (known %v), want %s %s", got, known, tt.want.Status, tt.want.Phase)
			}
			if n := s.LateStarts(); n != tt.wantLate {
				t.Errorf("%d late starts, want %d", n, tt.wantLate)
			}
		})
	}
}

// TestEffectsLandLater: with real timers, a start takes effect after the
// delay, Settle waits for it, and with no delay it takes effect before the
// answer.
func TestEffectsLandLater(t *testing.T) {
	t.Parallel()
	s := start(t, "t1", "t2")
	s.SetEffectDelay(time.Hour)
	ec := client(s)
	if _, err := ec.StartTaskRun(t.Context(), "t1"); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.Task("t1"); got.Phase != PhasePending || !got.StartTime.IsZero() {
		t.Fatalf("t1 right after its start: %+v, want pending", got)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Millisecond)
	defer cancel()
	if err := s.Settle(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Settle with an effect an hour away returned %v", err)
	}

	s2 := start(t, "t1")
	began := time.Now()
	if _, err := client(s2).StartTaskRun(t.Context(), "t1"); err != nil {
		t.Fatal(err)
	}
	settle(t, s2)
	if got, _ := s2.Task("t1"); got.Phase != PhaseRunning || got.StartTime.Sub(began) < DefaultEffectDelay {
		t.Errorf("t1 after Settle: %+v, want running since %s after %s", got, DefaultEffectDelay, began)
	}

	s.SetEffectDelay(0)
	if _, err := ec.StartTaskRun(t.Context(), "t2"); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.Task("t2"); got.Phase != PhaseRunning {
		t.Errorf("t2 with no delay: %+v, want running", got)
	}
}

func TestKnowEvent(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		events  [][]byte
		wantOK  []bool
		id      string
		want    Task   // zero: id unknown
		wantGet string // substring of GET /api/v1/taskrun/{id}
	}{
		{
			name:    "a task's ready event",
			events:  [][]byte{fixtures.Read(t, "engine-taskrun-custom-ready.json")},
			wantOK:  []bool{true},
			id:      "65a1f1a0e4b0a1b2c3d4e612",
			want:    Task{ID: "65a1f1a0e4b0a1b2c3d4e612", Type: "custom", WorkflowRunRef: "65a1f0d9e4b0a1b2c3d4e601", Status: "ready", Phase: "pending"},
			wantGet: `"creationDate":"2025-03-04T02:41:00.123+00:00"`,
		},
		{
			name:    "the answer has the event's other fields",
			events:  [][]byte{fixtures.Read(t, "engine-taskrun-custom-ready.json")},
			wantOK:  []bool{true},
			id:      "65a1f1a0e4b0a1b2c3d4e612",
			want:    Task{ID: "65a1f1a0e4b0a1b2c3d4e612", Type: "custom", WorkflowRunRef: "65a1f0d9e4b0a1b2c3d4e601", Status: "ready", Phase: "pending"},
			wantGet: `"name":"Curl Health Check"`,
		},
		{
			name:   "a cancel event completes a known task",
			events: [][]byte{fixtures.Read(t, "engine-taskrun-script-ready.json"), fixtures.Read(t, "engine-taskrun-completed-cancelled.json")},
			wantOK: []bool{true, true},
			id:     "65a1f1a0e4b0a1b2c3d4e611",
			want:   Task{ID: "65a1f1a0e4b0a1b2c3d4e611", Type: "script", WorkflowRunRef: "65a1f0d9e4b0a1b2c3d4e601", Status: "cancelled", Phase: "completed"},
		},
		{
			name:   "a redelivered ready event changes nothing",
			events: [][]byte{event("taskrun", "t1", "timedout", "completed", "w1"), event("taskrun", "t1", "ready", "pending", "w1")},
			wantOK: []bool{true, true},
			id:     "t1",
			want:   Task{ID: "t1", Type: "custom", WorkflowRunRef: "w1", Status: "timedout", Phase: "completed"},
		},
		{
			name:   "a workflow run event is not a task",
			events: [][]byte{fixtures.Read(t, "engine-workflowrun-completed.json")},
			wantOK: []bool{true},
			id:     "65a1f0d9e4b0a1b2c3d4e601",
		},
		{
			name: "what is not an Engine event is ignored",
			events: [][]byte{
				[]byte(`not json`),
				[]byte(`{"type":"io.boomerang.event.status.taskrun","data":{"status":"ready"}}`),
				[]byte(`{"type":"io.boomerang.event.status.taskrun","data":{"id":5}}`),
				[]byte(`{"type":"io.boomerang.event.status.workflow","data":{"id":"t1"}}`),
				[]byte(`{"type":"dev.tekton.event.taskrun.successful.v1","data":{"id":"t1"}}`),
			},
			wantOK: []bool{false, false, false, false, false},
			id:     "t1",
		},
		{
			name:   "the type's suffix is case-insensitive",
			events: [][]byte{[]byte(`{"type":"io.boomerang.event.status.TaskRun","data":{"id":"t1","status":"ready","phase":"pending"}}`)},
			wantOK: []bool{true},
			id:     "t1",
			want:   Task{ID: "t1", Status: "ready", Phase: "pending"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := start(t)
			var ok []bool
			for _, e := range tt.events {
				ok = append(ok, s.KnowEvent(e))
			}
			if diff := cmp.Diff(tt.wantOK, ok); diff != "" {
				t.Errorf("KnowEvent (-want +got):\n%s", diff)
			}
			got, known := s.Task(tt.id)
			if known != (tt.want.ID != "") {
				t.Fatalf("task %s known: %v", tt.id, known)
			}
			got.CompletedAt = time.Time{}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("task (-want +got):\n%s", diff)
			}
			if tt.wantGet != "" {
				if code, body := send(t, s, http.MethodGet, "/api/v1/taskrun/"+tt.id, "", ""); code != 200 || !strings.Contains(body, tt.wantGet) {
					t.Errorf("GET answered %d %s, want %s", code, body, tt.wantGet)
				}
			}
		})
	}
}

// TestKnowEventWorkflowRun: a workflow run is known from its ready event,
// and its completed event lets it be finalized.
func TestKnowEventWorkflowRun(t *testing.T) {
	t.Parallel()
	s := start(t)
	ready := fixtures.Read(t, "engine-workflowrun-ready-with-workspace.json")
	done := fixtures.Read(t, "engine-workflowrun-completed.json")
	ec := client(s)
	const id = "65a1f0d9e4b0a1b2c3d4e601"
	if err := ec.StartWorkflowRun(t.Context(), id); !engine.HasCode(err, 1301) {
		t.Fatalf("start before the event: %v, want 1301", err)
	}
	if !s.KnowEvent(ready) || !s.KnowEvent(done) || !s.KnowEvent(ready) { // the last one late
		t.Fatal("the events are not workflow run events")
	}
	if err := ec.StartWorkflowRun(t.Context(), id); !engine.HasCode(err, 1304) || !strings.Contains(err.Error(), "Current: completed") {
		t.Fatalf("start of a completed run: %v, want 1304", err)
	}
	if err := ec.FinalizeWorkflowRun(t.Context(), id); err != nil {
		t.Fatal(err)
	}
	if v := s.Violations(); len(v) != 1 || !strings.Contains(v[0], "unknown workflow run") {
		t.Errorf("violations %v, want the unknown run's only", v)
	}
}

func TestTaskRunCreated(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		cancel bool
		id     string
		after  time.Duration // creation time after the completion
		want   bool
	}{
		{name: "created two seconds after the cancel", cancel: true, id: "t1", after: 2 * time.Second, want: true},
		{name: "created within a second of the cancel", cancel: true, id: "t1", after: 900 * time.Millisecond},
		{name: "created before the cancel", cancel: true, id: "t1", after: -time.Minute},
		{name: "running task", id: "t1", after: time.Minute},
		{name: "unknown task", cancel: true, id: "t9", after: time.Minute},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := start(t, "t1")
			if tt.cancel {
				s.Cancel("t1")
			}
			completed, _ := s.Task("t1")
			at := completed.CompletedAt
			if at.IsZero() {
				at = time.Now()
			}
			s.TaskRunCreated(tt.id, at.Add(tt.after))
			v := s.Violations()
			if got := len(v) == 1 && strings.Contains(v[0], "TaskRun for task t1 created at") && strings.Contains(v[0], "(cancelled)"); got != tt.want || len(v) > 1 {
				t.Errorf("violations %v, want one: %v", v, tt.want)
			}
		})
	}
}

// TestLearn: with Learn on, calls for unknown runs find them pending.
func TestLearn(t *testing.T) {
	t.Parallel()
	s := start(t)
	s.Learn(true)
	ec := client(s)
	if err := ec.StartWorkflowRun(t.Context(), "w9"); err != nil {
		t.Fatal(err)
	}
	if _, err := ec.StartTaskRun(t.Context(), "t9"); err != nil {
		t.Fatal(err)
	}
	settle(t, s)
	if err := ec.EndTaskRun(t.Context(), "t9", engine.EndRequest{Status: engine.StatusSucceeded}); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.Task("t9"); got.Status != "succeeded" || got.Phase != PhaseCompleted {
		t.Errorf("learned task %+v", got)
	}
	if v := s.Violations(); len(v) != 0 {
		t.Errorf("violations %v", v)
	}
}
