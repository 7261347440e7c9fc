package receive

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/boomerang-io/flow-tekton-handler/internal/status"
)

const tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

// What reaches the role, and what the sender is answered, for requests the
// role's decoding tests (function/handler) do not cover.
func TestFrontDoor(t *testing.T) {
	t.Parallel()
	binary := func(r *http.Request) {
		r.Header.Set("Content-Type", "application/json")
		r.Header.Set("Ce-Specversion", "1.0")
		r.Header.Set("Ce-Id", "1")
		r.Header.Set("Ce-Source", "/s")
		r.Header.Set("Ce-Type", "t")
	}
	cases := []struct {
		name      string
		method    string
		prepare   func(r *http.Request)
		authorize func(*http.Request) error
		roleErr   error
		wantCode  int
		wantField string
		wantTrace string // the traceparent extension the role sees
		wantRole  bool
	}{
		{name: "binary", method: http.MethodPost, prepare: binary, wantCode: 200, wantRole: true},
		{name: "traceparent header becomes the extension", method: http.MethodPost, prepare: func(r *http.Request) {
			binary(r)
			r.Header.Set("Traceparent", tp)
		}, wantCode: 200, wantRole: true, wantTrace: tp},
		{name: "extension wins over the header", method: http.MethodPost, prepare: func(r *http.Request) {
			binary(r)
			r.Header.Set("Ce-Traceparent", tp)
			r.Header.Set("Traceparent", "00-00000000000000000000000000000001-0000000000000001-01")
		}, wantCode: 200, wantRole: true, wantTrace: tp},
		{name: "GET", method: http.MethodGet, prepare: binary, wantCode: 405, wantField: "method"},
		{name: "refused sender", method: http.MethodPost, prepare: binary,
			authorize: func(*http.Request) error { return status.New(401, "authorization", "no token") }, wantCode: 401, wantField: "authorization"},
		{name: "allowed sender", method: http.MethodPost, prepare: binary,
			authorize: func(*http.Request) error { return nil }, wantCode: 200, wantRole: true},
		{name: "role's transient error", method: http.MethodPost, prepare: binary, roleErr: errors.New("apiserver down"), wantCode: 503, wantRole: true},
		{name: "body over the limit", method: http.MethodPost, prepare: func(r *http.Request) {
			binary(r)
			r.Body = io.NopCloser(strings.NewReader(`{"a":"` + strings.Repeat("x", 200) + `"}`))
		}, wantCode: 413, wantField: "data"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var got *event.Event
			h := New(HandlerFunc(func(_ context.Context, e event.Event) error {
				got = &e
				return tc.roleErr
			}), Options{MaxBodyBytes: 100, Authorize: tc.authorize})
			r := httptest.NewRequest(tc.method, "/", strings.NewReader(`{"a":1}`))
			tc.prepare(r)
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)
			if w.Code != tc.wantCode {
				t.Fatalf("answered %d %q, want %d", w.Code, w.Body, tc.wantCode)
			}
			if auth := w.Header().Get("WWW-Authenticate"); (w.Code == http.StatusUnauthorized) != (auth == "Bearer") {
				t.Errorf("answered %d with WWW-Authenticate %q", w.Code, auth)
			}
			if allow := w.Header().Get("Allow"); (w.Code == http.StatusMethodNotAllowed) != (allow == http.MethodPost) {
				t.Errorf("answered %d with Allow %q", w.Code, allow)
			}
			if (got != nil) != tc.wantRole {
				t.Fatalf("role called: %v, want %v", got != nil, tc.wantRole)
			}
			if tc.wantCode == 200 {
				if w.Body.Len() != 0 {
					t.Errorf("success with a body %q", w.Body)
				}
			} else {
				var b status.Body
				if err := json.Unmarshal(w.Body.Bytes(), &b); err != nil || b.Field != tc.wantField {
					t.Errorf("body %q names %q, want %q", w.Body, b.Field, tc.wantField)
				}
			}
			if got != nil {
				if trace, _ := got.Extensions()[traceparent].(string); trace != tc.wantTrace {
					t.Errorf("traceparent %q, want %q", trace, tc.wantTrace)
				}
			}
		})
	}
}
