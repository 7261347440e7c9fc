package function

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime/metrics"
	"strings"
	"testing"
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
// logs role without ENGINE_URL. No apiserver is needed to start. Each runs
// with the heap floor (internal/heapfloor).
func TestStartPicksRole(t *testing.T) {
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
			if _, set := os.LookupEnv("GOGC"); !set {
				// The test process keeps far less than the floor live.
				if got := gogc(); got < 200 {
					t.Fatalf("GOGC %d after Start, want the heap floor's (at least 200)", got)
				}
			}
		})
	}
}

// gogc is the GOGC the runtime works with.
func gogc() uint64 {
	s := []metrics.Sample{{Name: "/gc/gogc:percent"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

func TestBodyLimitLeavesRoomForBase64AndEnvelope(t *testing.T) {
	t.Parallel()
	for _, max := range []int64{1, 1 << 10, 1 << 20} {
		if got := BodyLimit(max); got < max*4/3+1<<10 {
			t.Errorf("BodyLimit(%d) = %d: no room for base64 data and the envelope", max, got)
		}
	}
}
