package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/boomerang-io/flow-tekton-handler/internal/engine"
	"github.com/boomerang-io/flow-tekton-handler/test/enginestub"
	"github.com/boomerang-io/flow-tekton-handler/test/wait"
)

func TestLine(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		call enginestub.Call
		want string
	}{
		{"start", enginestub.Call{Method: "PUT", Path: "/api/v1/taskrun/t1/start", Status: 200},
			"engine: PUT /api/v1/taskrun/t1/start -> 200"},
		{"end with its status", enginestub.Call{Method: "PUT", Path: "/api/v1/taskrun/t1/end", Status: 200, End: &engine.EndRequest{Status: "succeeded"}},
			"engine: PUT /api/v1/taskrun/t1/end -> 200 (status succeeded)"},
		{"client gone", enginestub.Call{Method: "PUT", Path: "/api/v1/taskrun/t1/start"},
			"engine: PUT /api/v1/taskrun/t1/start -> no answer"},
		{"violations", enginestub.Call{Method: "POST", Path: "/x", Status: 404, Violations: []string{"unknown path /x", "again"}},
			"engine: POST /x -> 404 VIOLATES CONTRACT: unknown path /x; again"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := Line(tc.call); got != tc.want {
				t.Errorf("Line = %q, want %q", got, tc.want)
			}
		})
	}
}

// TestRun serves on a free port, prints each call as it is answered, and
// returns when interrupted.
func TestRun(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	outR, outW := io.Pipe()
	logR, logW := io.Pipe()
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, "127.0.0.1:0", outW, logW)
		outW.Close()
		logW.Close()
	}()
	first, err := bufio.NewReader(logR).ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	go func() { _, _ = io.Copy(io.Discard, logR) }()
	url := strings.Fields(strings.SplitN(first, " at ", 2)[1])[0]
	url = strings.TrimSuffix(url, ";")

	out := bufio.NewReader(outR)
	// do sends one request and returns the answer and the line printed.
	do := func(method, path, body string) (string, string) {
		t.Helper()
		req, err := http.NewRequestWithContext(ctx, method, url+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		answer, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		line, err := out.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		return string(answer), strings.TrimSuffix(line, "\n")
	}
	if _, line := do(http.MethodPut, "/api/v1/taskrun/t1/start", `{}`); line != "engine: PUT /api/v1/taskrun/t1/start -> 200" {
		t.Errorf("printed %q for the start", line)
	}
	// The start takes effect a moment later.
	wait.Eventually(t, 10*time.Second, "t1 to run", func() (bool, error) {
		answer, _ := do(http.MethodGet, "/api/v1/taskrun/t1", "")
		return strings.Contains(answer, `"phase":"running"`), fmt.Errorf("t1 not running: %s", answer)
	})
	for _, tc := range []struct {
		method, path, body string
		want               string
	}{
		{http.MethodPut, "/api/v1/taskrun/t1/end", `{"status":"succeeded","results":[]}`, "engine: PUT /api/v1/taskrun/t1/end -> 200 (status succeeded)"},
		{http.MethodPut, "/api/v1/nothing", `{}`, "engine: PUT /api/v1/nothing -> 404 VIOLATES CONTRACT: unknown path /api/v1/nothing"},
	} {
		if _, got := do(tc.method, tc.path, tc.body); got != tc.want {
			t.Errorf("printed %q, want %q", got, tc.want)
		}
	}
	cancel()
	go func() { _, _ = io.Copy(io.Discard, outR) }()
	if err := <-done; err != nil {
		t.Errorf("run after interrupt: %v", err)
	}
}
