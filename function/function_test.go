package function

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Until Start has picked the role, every request is answered 503 with the
// JSON error body, and readiness says not ready.
func TestNotReadyUntilStarted(t *testing.T) {
	t.Parallel()
	f := New()
	w := httptest.NewRecorder()
	f.Handle(w, httptest.NewRequest(http.MethodPost, "/", strings.NewReader(`{}`)))
	var b struct{ Error, Reason string }
	if err := json.Unmarshal(w.Body.Bytes(), &b); err != nil || w.Code != http.StatusServiceUnavailable || b.Reason == "" {
		t.Fatalf("before Start: %d %q, want 503 with a JSON reason", w.Code, w.Body)
	}
	if ready, err := f.Ready(context.Background()); ready || err != nil {
		t.Fatalf("ready %v (%v) before Start", ready, err)
	}
	if alive, err := f.Alive(context.Background()); !alive || err != nil {
		t.Fatalf("alive %v (%v)", alive, err)
	}
}

// A configuration error stops the function at Start with the variable's name.
func TestStartRefusesBadConfig(t *testing.T) {
	t.Setenv("ENGINE_URL", "")
	err := New().Start(context.Background(), nil)
	if err == nil || !strings.Contains(err.Error(), "ENGINE_URL") {
		t.Fatalf("Start without ENGINE_URL: %v", err)
	}
}

// Start picks the role FUNCTION names: each serves its own requests, the
// logs role without ENGINE_URL. No apiserver is needed to start.
func TestStartPicksRole(t *testing.T) {
	startable(t)
	for _, tc := range []struct {
		role, engine, method, path string
		code                       int
	}{
		{"handler", "http://127.0.0.1:1", http.MethodGet, "/", http.StatusMethodNotAllowed},      // CloudEvents are POSTed
		{"sink", "http://127.0.0.1:1", http.MethodPost, "/", http.StatusUnsupportedMediaType},    // not a CloudEvent
		{"logs", "", http.MethodGet, "/api/v1/logs/stream?workflowRef=a", http.StatusBadRequest}, // references missing
		{"logs", "", http.MethodPost, "/", http.StatusNotFound},                                  // its one path only
	} {
		t.Run(tc.role+" "+tc.method, func(t *testing.T) {
			t.Setenv("FUNCTION", tc.role)
			t.Setenv("ENGINE_URL", tc.engine)
			f := New()
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			if err := f.Start(ctx, nil); err != nil {
				t.Fatal(err)
			}
			defer func() { _ = f.Stop(context.Background()) }()
			if ready, err := f.Ready(ctx); !ready || err != nil {
				t.Fatalf("not ready after Start: %v", err)
			}
			w := httptest.NewRecorder()
			f.Handle(w, httptest.NewRequest(tc.method, tc.path, strings.NewReader(`{}`)))
			var b struct{ Error, Reason string }
			if err := json.Unmarshal(w.Body.Bytes(), &b); err != nil || w.Code != tc.code || b.Reason == "" {
				t.Fatalf("%s %s: %d %q, want %d with a JSON reason", tc.method, tc.path, w.Code, w.Body, tc.code)
			}
		})
	}
}

// startable sets the environment a function starts in: a kubeconfig of
// an apiserver it does not need to reach, a namespace, and the test
// process's own GOMAXPROCS, which Start then keeps.
func startable(t *testing.T) {
	t.Helper()
	kubeconfig := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(kubeconfig, []byte(`apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://127.0.0.1:1"}}]
users: [{name: u, user: {token: t}}]
contexts: [{name: x, context: {cluster: c, user: u}}]
current-context: x
`), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("KUBECONFIG", kubeconfig)
	t.Setenv("NAMESPACE", "flow")
	t.Setenv("GOMAXPROCS", strconv.Itoa(runtime.GOMAXPROCS(0)))
}

// A started function runs with GOMAXPROCS Procs, unless the environment
// sets GOMAXPROCS.
func TestStartSetsProcs(t *testing.T) {
	startable(t)
	t.Setenv("FUNCTION", "handler")
	t.Setenv("ENGINE_URL", "http://127.0.0.1:1")
	saved := runtime.GOMAXPROCS(0)
	t.Cleanup(func() { runtime.GOMAXPROCS(saved) })
	start := func(t *testing.T, env string, was int) {
		t.Helper()
		t.Setenv("GOMAXPROCS", env)
		runtime.GOMAXPROCS(was) // as the runtime set it from the environment
		f := New()
		if err := f.Start(context.Background(), nil); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = f.Stop(context.Background()) })
	}

	start(t, "", 4)
	deadline := time.Now().Add(5 * time.Second)
	for runtime.GOMAXPROCS(0) != Procs {
		if time.Now().After(deadline) {
			t.Fatalf("GOMAXPROCS %d 5s after Start, want %d", runtime.GOMAXPROCS(0), Procs)
		}
		time.Sleep(time.Millisecond)
	}

	// Nothing is left to change it: the goroutine above has run.
	start(t, "3", 3)
	if got := runtime.GOMAXPROCS(0); got != 3 {
		t.Fatalf("GOMAXPROCS %d after Start with GOMAXPROCS=3, want 3", got)
	}
}

func TestBodyLimitLeavesRoomForBase64AndEnvelope(t *testing.T) {
	t.Parallel()
	for _, max := range []int64{1, 1 << 10, 1 << 20} {
		if got := BodyLimit(max); got < max*4/3+1<<10 {
			t.Errorf("BodyLimit(%d) = %d: no room for base64 data and the envelope", max, got)
		}
	}
}
