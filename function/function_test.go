package function

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
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

func TestRoleFromProgram(t *testing.T) {
	t.Parallel()
	for path, want := range map[string]string{
		"/usr/local/bin/sink":    "sink",
		"bin/sink":               "sink",
		"/usr/local/bin/handler": "handler",
		"/ko-app/flow":           "handler",
		"sink.test":              "handler",
	} {
		if got := RoleFromProgram(path); got != want {
			t.Errorf("RoleFromProgram(%q) = %q, want %q", path, got, want)
		}
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
