package eventlog

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"testing"
	"time"

	"github.com/boomerang-io/flow-tekton-handler/internal/engine"
	"github.com/boomerang-io/flow-tekton-handler/internal/status"
)

// line logs through f and returns the one JSON line written.
func line(t *testing.T, f func(*slog.Logger)) map[string]any {
	t.Helper()
	var buf bytes.Buffer
	f(slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})))
	var m map[string]any
	if err := json.Unmarshal(buf.Bytes(), &m); err != nil {
		t.Fatalf("not one JSON line: %q: %v", buf.String(), err)
	}
	return m
}

func TestEvent(t *testing.T) {
	transient := errors.New("connection refused")
	rejected := fmt.Errorf("end: %w", engine.ErrRejected)
	for _, tc := range []struct {
		name    string
		outcome Outcome
		err     error
		level   string
		code    float64
	}{
		{"done", Created, nil, "INFO", 200},
		{"skipped", Skipped, nil, "DEBUG", 200},
		{"skipped with an error", Skipped, transient, "ERROR", 503},
		{"failed", Failed, transient, "ERROR", 503},
		{"rejected", Rejected, rejected, "WARN", 422},
		{"refused", Refused, status.New(http.StatusUnauthorized, "", "no token"), "WARN", 401},
		{"swept", Swept, nil, "INFO", 200},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got error
			m := line(t, func(l *slog.Logger) {
				got = Event(context.Background(), l, tc.outcome, time.Now(), tc.err, slog.String("ce.id", "1"))
			})
			if got != tc.err {
				t.Errorf("returned %v, want %v", got, tc.err)
			}
			if m["msg"] != "event" || m["level"] != tc.level || m["outcome"] != string(tc.outcome) || m["code"] != tc.code || m["ce.id"] != "1" {
				t.Errorf("line %v, want msg event, level %s, outcome %s, code %v, ce.id 1", m, tc.level, tc.outcome, tc.code)
			}
			if _, ok := m["duration"]; !ok {
				t.Errorf("line %v has no duration", m)
			}
			if e, ok := m["error"]; (tc.err != nil) != ok || ok && e != tc.err.Error() {
				t.Errorf("line %v, want error %v", m, tc.err)
			}
		})
	}
}

// A sweep's line has its own message and an event's level rules.
func TestSweep(t *testing.T) {
	for _, tc := range []struct {
		n     int
		err   error
		level string
	}{{0, nil, "DEBUG"}, {2, nil, "INFO"}, {0, errors.New("list: timeout"), "ERROR"}, {1, errors.New("list: timeout"), "ERROR"}} {
		m := line(t, func(l *slog.Logger) {
			Sweep(context.Background(), l, time.Now(), tc.n, tc.err, slog.String("trigger", "background"))
		})
		if m["msg"] != "sweep" || m["outcome"] != "swept" || m["level"] != tc.level || m["trigger"] != "background" || m["reported"] != float64(tc.n) {
			t.Errorf("err %v: line %v, want msg sweep, outcome swept, level %s", tc.err, m, tc.level)
		}
	}
}

func TestFailure(t *testing.T) {
	if o := Failure(errors.New("timeout")); o != Failed {
		t.Errorf("transient error: %s, want %s", o, Failed)
	}
	if o := Failure(status.New(http.StatusBadRequest, "id", "missing")); o != Rejected {
		t.Errorf("bad request: %s, want %s", o, Rejected)
	}
}

func TestLevel(t *testing.T) {
	if l := Level(nil); l != slog.LevelInfo {
		t.Errorf("nil: %v", l)
	}
	if l := Level(status.New(http.StatusNotFound, "", "no such task")); l != slog.LevelWarn {
		t.Errorf("404: %v", l)
	}
	if l := Level(errors.New("timeout")); l != slog.LevelError {
		t.Errorf("503: %v", l)
	}
}
