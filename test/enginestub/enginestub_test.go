package enginestub

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/boomerang-io/flow-tekton-handler/internal/engine"
)

var fixtures = filepath.Join("..", "..", "test", "fixtures")

func start(t *testing.T) *Server {
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
	return s
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
	s := start(t)
	ec := client(s)
	ctx := t.Context()
	steps := []func() error{
		func() error { return ec.StartWorkflowRun(ctx, "wr1") },
		func() error { return ec.StartTaskRun(ctx, "tr1") },
		func() error {
			return ec.EndTaskRun(ctx, "tr1", engine.EndRequest{
				Status:        engine.StatusSucceeded,
				Results:       []engine.Result{{Name: "ts", Value: json.RawMessage(`"1741056090.123456"`)}, {Name: "list", Value: json.RawMessage(`["a","b"]`)}},
				StatusMessage: "Task (tr1) has been executed successfully.",
			})
		},
		func() error { return ec.StartTaskRun(ctx, "tr2") },
		func() error {
			return ec.EndTaskRun(ctx, "tr2", engine.EndRequest{Status: engine.StatusFailed, StatusMessage: "Failed: boom"})
		},
		func() error { return ec.FinalizeWorkflowRun(ctx, "wr1") },
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
	want := []string{"workflowrun-start wr1", "taskrun-start tr1", "taskrun-end tr1", "taskrun-start tr2", "taskrun-end tr2", "workflowrun-finalize wr1"}
	if diff := cmp.Diff(want, kinds); diff != "" {
		t.Errorf("calls (-want +got):\n%s", diff)
	}
	tr1 := s.CallsFor("tr1")
	if len(tr1) != 2 || tr1[1].End == nil || tr1[1].End.Status != engine.StatusSucceeded || len(tr1[1].End.Results) != 2 {
		t.Fatalf("calls for tr1: %+v", tr1)
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
			raw, err := os.ReadFile(filepath.Join(fixtures, name))
			if err != nil {
				t.Fatal(err)
			}
			var fx struct {
				Method string          `json:"_method"`
				Path   string          `json:"_path"`
				Body   json.RawMessage `json:"body"`
			}
			if err := json.Unmarshal(raw, &fx); err != nil {
				t.Fatal(err)
			}
			s := start(t)
			send(t, s, http.MethodPut, "/api/v1/taskrun/65a1f1a0e4b0a1b2c3d4e610/start", "application/json", "{}")
			if code, body := send(t, s, fx.Method, fx.Path, "application/json", string(fx.Body)); code != http.StatusOK {
				t.Fatalf("answered %d %s", code, body)
			}
			if v := s.Violations(); len(v) != 0 {
				t.Fatalf("violations: %v", v)
			}
		})
	}
}

func TestViolations(t *testing.T) {
	t.Parallel()
	const (
		startPath = "/api/v1/taskrun/t1/start"
		endPath   = "/api/v1/taskrun/t1/end"
		ctJSON    = "application/json"
	)
	type req struct{ method, path, contentType, body string }
	put := func(path, body string) req { return req{http.MethodPut, path, ctJSON, body} }
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
			reqs:      []req{put(startPath, `{}`), put(endPath, okEnd)},
			wantCodes: []int{200, 200},
		},
		{
			name:      "POST instead of PUT",
			reqs:      []req{{http.MethodPost, startPath, ctJSON, `{}`}},
			wantCodes: []int{405},
			wantViol:  "method POST",
		},
		{
			name:      "unknown path",
			reqs:      []req{put("/api/v1/taskrun/t1/restart", `{}`)},
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
			reqs:      []req{put(startPath, `{}`), put(endPath, `{"status":"cancelled","results":[],"statusMessage":"x"}`)},
			wantCodes: []int{200, 400},
			wantViol:  `end status "cancelled"`,
			wantBody:  `"reason":"TASKRUN_INVALID_END_STATUS"`,
		},
		{
			name:      "end status timedout is refused",
			reqs:      []req{put(startPath, `{}`), put(endPath, `{"status":"timedout","results":[],"statusMessage":"x"}`)},
			wantCodes: []int{200, 400},
			wantViol:  `end status "timedout"`,
			wantBody:  `"code":1505`,
		},
		{
			name:      "end status invalid is accepted",
			reqs:      []req{put(startPath, `{}`), put(endPath, `{"status":"invalid","results":[]}`)},
			wantCodes: []int{200, 200},
		},
		{
			name:      "end with error field",
			reqs:      []req{put(startPath, `{}`), put(endPath, `{"status":"failed","results":[],"statusMessage":"x","error":{"code":"100"}}`)},
			wantCodes: []int{200, 200},
			wantViol:  `"error" field`,
		},
		{
			name:      "end without results",
			reqs:      []req{put(startPath, `{}`), put(endPath, `{"status":"failed","statusMessage":"x"}`)},
			wantCodes: []int{200, 200},
			wantViol:  "no results array",
		},
		{
			name:      "end with null results",
			reqs:      []req{put(startPath, `{}`), put(endPath, `{"status":"failed","results":null,"statusMessage":"x"}`)},
			wantCodes: []int{200, 200},
			wantViol:  "no results array",
		},
		{
			name:      "end results not an array",
			reqs:      []req{put(startPath, `{}`), put(endPath, `{"status":"succeeded","results":{"a":"b"}}`)},
			wantCodes: []int{200, 400},
			wantViol:  "not an array",
		},
		{
			name:      "end result without value",
			reqs:      []req{put(startPath, `{}`), put(endPath, `{"status":"succeeded","results":[{"name":"a"}]}`)},
			wantCodes: []int{200, 200},
			wantViol:  "results[0] has no value",
		},
		{
			name:      "end result without name",
			reqs:      []req{put(startPath, `{}`), put(endPath, `{"status":"succeeded","results":[{"value":"a"}]}`)},
			wantCodes: []int{200, 200},
			wantViol:  "results[0] has no name",
		},
		{
			name:      "failed end without message",
			reqs:      []req{put(startPath, `{}`), put(endPath, `{"status":"failed","results":[]}`)},
			wantCodes: []int{200, 200},
			wantViol:  "without statusMessage",
		},
		{
			name:      "end without status",
			reqs:      []req{put(startPath, `{}`), put(endPath, `{"results":[]}`)},
			wantCodes: []int{200, 200},
			wantViol:  "no status",
		},
		{
			name:      "end not JSON",
			reqs:      []req{put(startPath, `{}`), put(endPath, `status=failed`)},
			wantCodes: []int{200, 400},
			wantViol:  "not a JSON object",
		},
		{
			name:      "end before start",
			reqs:      []req{put(endPath, okEnd)},
			wantCodes: []int{200},
			wantViol:  "end before start",
		},
		{
			name:      "duplicate end is accepted but flagged",
			reqs:      []req{put(startPath, `{}`), put(endPath, okEnd), put(endPath, okEnd)},
			wantCodes: []int{200, 200, 200},
			wantViol:  "duplicate end",
		},
		{
			name:      "duplicate start",
			reqs:      []req{put(startPath, `{}`), put(startPath, `{}`)},
			wantCodes: []int{200, 200},
			wantViol:  "duplicate start",
		},
		{
			name:      "start after end",
			reqs:      []req{put(startPath, `{}`), put(endPath, okEnd), put(startPath, `{}`)},
			wantCodes: []int{200, 200, 200},
			wantViol:  "duplicate start; start after end",
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
			s := start(t)
			var codes []int
			var body string
			for _, r := range tt.reqs {
				var code int
				code, body = send(t, s, r.method, r.path, r.contentType, r.body)
				codes = append(codes, code)
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
	s := start(t)
	if err := client(s).StartTaskRun(t.Context(), "a/b c"); err != nil {
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
	s := start(t)
	s.RequireToken("s3cret")
	err := client(s).StartTaskRun(t.Context(), "t1")
	var se *engine.StatusError
	if !errors.As(err, &se) || se.Code != http.StatusUnauthorized {
		t.Fatalf("err %v, want 401 for a missing token", err)
	}
	ok := engine.New(engine.Options{BaseURL: s.URL(), Token: "s3cret"})
	if err := ok.StartTaskRun(t.Context(), "t1"); err != nil {
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
	s := start(t)
	s.FailNext(2, http.StatusServiceUnavailable)
	if err := client(s).StartTaskRun(t.Context(), "t1"); err != nil {
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
	s := start(t)
	s.FailNext(1, http.StatusBadRequest)
	if err := client(s).StartTaskRun(t.Context(), "t1"); !errors.Is(err, engine.ErrRejected) {
		t.Fatalf("err %v, want ErrRejected", err)
	}
	if n := len(s.Calls()); n != 1 {
		t.Errorf("%d calls, want 1", n)
	}
}

func TestFailFor(t *testing.T) {
	t.Parallel()
	s := start(t)
	s.FailFor(time.Minute, http.StatusBadGateway)
	ec := engine.New(engine.Options{BaseURL: s.URL(), Timeout: time.Second, RetryBudget: 300 * time.Millisecond})
	err := ec.StartTaskRun(t.Context(), "t1")
	if !errors.Is(err, engine.ErrUnavailable) {
		t.Fatalf("err %v, want ErrUnavailable", err)
	}
	n := len(s.Calls())
	if n < 2 {
		t.Errorf("%d calls, want retries", n)
	}
	s.FailFor(0, 0)
	if err := ec.StartTaskRun(t.Context(), "t1"); err != nil {
		t.Fatalf("after the failure window: %v", err)
	}
	if v := s.Violations(); len(v) != 0 {
		t.Errorf("violations %v", v)
	}
}

func TestDelay(t *testing.T) {
	t.Parallel()
	s := start(t)
	s.Delay(time.Second)
	ec := engine.New(engine.Options{BaseURL: s.URL(), Timeout: 50 * time.Millisecond, RetryBudget: 0})
	err := ec.StartTaskRun(t.Context(), "t1")
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
	if err := client(s).StartTaskRun(t.Context(), "t1"); err != nil {
		t.Fatalf("short delay: %v", err)
	}
	if v := s.Violations(); len(v) != 0 {
		t.Errorf("an abandoned start counted: %v", v)
	}
}

func TestWaitFor(t *testing.T) {
	t.Parallel()
	s := start(t)
	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		done <- s.WaitFor(ctx, func(c []Call) bool {
			return len(c) > 0 && c[len(c)-1].Kind == KindTaskRunEnd
		})
	}()
	ec := client(s)
	if err := ec.StartTaskRun(t.Context(), "t1"); err != nil {
		t.Fatal(err)
	}
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
	ec := client(s)
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			id := "t" + string(rune('a'+i))
			if err := ec.StartTaskRun(t.Context(), id); err != nil {
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
