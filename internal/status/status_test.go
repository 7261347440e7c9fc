package status

import (
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"unicode/utf8"

	"net/http/httptest"
	"strings"

	"github.com/boomerang-io/flow-tekton-handler/internal/contract"
	"github.com/boomerang-io/flow-tekton-handler/internal/engine"
	"github.com/boomerang-io/flow-tekton-handler/internal/kube"
)

func TestCode(t *testing.T) {
	t.Parallel()
	fe := &contract.FieldError{Field: "data.id", Reason: "is required"}
	cases := []struct {
		name string
		err  error
		want int
	}{
		{"nil", nil, 200},
		{"chosen", New(413, "data", "too big"), 413},
		{"field error wrapped", fmt.Errorf("decode: %w", fe), 400},
		{"identity conflict", fmt.Errorf("create: %w", kube.ErrConflict), 422},
		{"apiserver refused", fmt.Errorf("create: %w", kube.ErrRejected), 422},
		{"engine refused", fmt.Errorf("start: %w", &engine.StatusError{Code: 400}), 422},
		{"engine unavailable", fmt.Errorf("start: %w", &engine.StatusError{Code: 503}), 503},
		{"anything else", errors.New("connection refused"), 503},
	}
	for _, tc := range cases {
		if got := Code(tc.err); got != tc.want {
			t.Errorf("%s: %d, want %d", tc.name, got, tc.want)
		}
	}
}

func TestWrite(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name       string
		err        error
		wantCode   int
		wantBody   Body // zero: empty body
		wantHeader string
	}{
		{"success", nil, 200, Body{}, ""},
		{"field error", fmt.Errorf("decode: %w", &contract.FieldError{Field: "data.timeout", Reason: "must be a number"}), 400,
			Body{Error: "Bad Request", Field: "data.timeout", Reason: "must be a number"}, "application/json"},
		{"chosen", New(401, "authorization", "no bearer token"), 401,
			Body{Error: "Unauthorized", Field: "authorization", Reason: "no bearer token"}, "application/json"},
		{"transient", errors.New("connection refused"), 503,
			Body{Error: "Service Unavailable", Reason: "connection refused"}, "application/json"},
	}
	for _, tc := range cases {
		w := httptest.NewRecorder()
		Write(w, tc.err)
		if w.Code != tc.wantCode || w.Header().Get("Content-Type") != tc.wantHeader {
			t.Errorf("%s: %d %q, want %d %q", tc.name, w.Code, w.Header().Get("Content-Type"), tc.wantCode, tc.wantHeader)
			continue
		}
		if tc.wantBody == (Body{}) {
			if w.Body.Len() != 0 {
				t.Errorf("%s: body %q, want none", tc.name, w.Body)
			}
			continue
		}
		var b Body
		if err := json.Unmarshal(w.Body.Bytes(), &b); err != nil || b != tc.wantBody {
			t.Errorf("%s: body %q (%v), want %+v", tc.name, w.Body, err, tc.wantBody)
		}
	}
}

// Every answer's body stays within 768 bytes, what Knative's dispatcher can
// carry to a dead-letter sink, however long the error.
func TestWriteBoundsTheBody(t *testing.T) {
	t.Parallel()
	for _, err := range []error{
		New(400, strings.Repeat("f", 1000), strings.Repeat("é", 1000)),
		errors.New(strings.Repeat("engine answered 400: ", 200)),
	} {
		w := httptest.NewRecorder()
		Write(w, err)
		var b Body
		if jerr := json.Unmarshal(w.Body.Bytes(), &b); jerr != nil || w.Body.Len() > 768 || !utf8.ValidString(b.Reason) || !strings.HasSuffix(b.Reason, "…") {
			t.Errorf("body of %d bytes (%v): %.80q…", w.Body.Len(), jerr, w.Body)
		}
	}
}
