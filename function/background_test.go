package function

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// stopRole is a role whose Stop does nothing.
type stopRole struct{}

func (stopRole) Stop(context.Context) error { return nil }

// started returns a Function that has picked a role with background work
// that counts its runs in runs, waiting wait for a first check.
func started(runs *atomic.Int32, wait time.Duration) *Function {
	f := New()
	var r role = stopRole{}
	var front http.Handler = http.HandlerFunc(func(http.ResponseWriter, *http.Request) {})
	f.bg.Store(newBackground(func() { runs.Add(1) }, wait))
	f.front.Store(&front)
	f.role.Store(&r)
	return f
}

// A role's background work starts once, at the first readiness check or
// request that finds the function started, and never after Stop.
func TestBackgroundStartsWhenFirstSeenReady(t *testing.T) {
	t.Parallel()
	ready := func(f *Function) {
		if ok, err := f.Ready(context.Background()); !ok || err != nil {
			t.Fatalf("not ready: %v", err)
		}
	}
	request := func(f *Function) {
		f.Handle(httptest.NewRecorder(), httptest.NewRequest(http.MethodPost, "/", strings.NewReader(`{}`)))
	}
	stop := func(f *Function) {
		if err := f.Stop(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		name  string
		calls []func(*Function)
		runs  int32
	}{
		{"not yet seen", nil, 0},
		{"readiness check", []func(*Function){ready}, 1},
		{"request", []func(*Function){request}, 1},
		{"both, twice", []func(*Function){ready, request, ready, request}, 1},
		{"stopped first", []func(*Function){stop, ready, request}, 0},
		{"stopped after", []func(*Function){ready, stop, ready}, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var runs atomic.Int32
			f := started(&runs, time.Hour)
			for _, call := range tc.calls {
				call(f)
			}
			if got := runs.Load(); got != tc.runs {
				t.Fatalf("background work ran %d times, want %d", got, tc.runs)
			}
		})
	}
}

// With no readiness check and no request, the work starts after the wait.
func TestBackgroundStartsAfterWait(t *testing.T) {
	t.Parallel()
	ran := make(chan struct{})
	b := newBackground(func() { close(ran) }, time.Millisecond)
	select {
	case <-ran:
	case <-time.After(10 * time.Second):
		t.Fatal("background work not started 10 s after a 1 ms wait")
	}
	b.start() // a second start does nothing (closing twice would panic)
}
