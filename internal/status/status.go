// Package status maps the errors of the other packages to the HTTP answers a
// CloudEvents sender understands: 2xx done, 4xx never retry, 5xx retry. It is
// the one place where errors are classified and answers are written.
package status

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"time"
	"unicode/utf8"

	"github.com/boomerang-io/flow-tekton-handler/internal/contract"
	"github.com/boomerang-io/flow-tekton-handler/internal/engine"
	"github.com/boomerang-io/flow-tekton-handler/internal/kube"
)

// Transient is the answer for a failure a redelivery can fix. 503 is the
// code every sender retries: Knative's dispatcher retries any 5xx, Tekton's
// CloudEvents sender only 404, 413, 425, 429, 502, 503 and 504.
const Transient = http.StatusServiceUnavailable

// Budget bounds the handling of one event, below func-go's 30 s write
// timeout, so the sender gets an answer (5xx when time ran out) rather than
// a cut connection.
const Budget = 25 * time.Second

// ClaimStale is the age past which a handler's claim on a task's start
// (boomerang.io/claimed, on its ConfigMap, or on a TaskRun an earlier
// version created pending) outlived the delivery that took it: longer than
// its Budget and the SettleTimeout its owner may work on after it, with a
// margin for clocks.
const ClaimStale = Budget + SettleTimeout + 5*time.Second

// SettleTimeout bounds the calls that finish what the Engine's answer
// started (create or cancel the TaskRun, settle or drop a claim, mark a
// report): they run on when the event's own time is up, or the work would
// be left half done.
const SettleTimeout = 10 * time.Second

// Settle is ctx without its cancellation, bounded by SettleTimeout.
func Settle(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), SettleTimeout)
}

// Error is an answer with a chosen status code.
type Error struct {
	Code   int
	Field  string
	Reason string
}

func (e *Error) Error() string {
	if e.Field == "" {
		return e.Reason
	}
	return e.Field + ": " + e.Reason
}

// New returns an Error with code for field.
func New(code int, field, reason string) *Error {
	return &Error{Code: code, Field: field, Reason: reason}
}

// Body is the JSON document sent with every non-2xx answer.
type Body struct {
	Error  string `json:"error"`
	Field  string `json:"field,omitempty"`
	Reason string `json:"reason,omitempty"`
}

// Code returns the HTTP status for err: 200 for nil, 4xx for errors that a
// redelivery cannot fix, Transient for the rest.
func Code(err error) int {
	var se *Error
	var fe *contract.FieldError
	switch {
	case err == nil:
		return http.StatusOK
	case errors.As(err, &se):
		return se.Code
	case errors.As(err, &fe), errors.Is(err, contract.ErrInvalid):
		return http.StatusBadRequest
	case errors.Is(err, kube.ErrConflict), errors.Is(err, kube.ErrRejected), errors.Is(err, engine.ErrRejected):
		return http.StatusUnprocessableEntity
	default:
		return Transient
	}
}

// Write answers a request: 200 with an empty body for nil, otherwise the
// code and a JSON Body naming the field at fault when there is one.
func Write(w http.ResponseWriter, err error) {
	if err == nil {
		w.WriteHeader(http.StatusOK)
		return
	}
	code := Code(err)
	b := Body{Error: http.StatusText(code), Reason: err.Error()}
	var se *Error
	var fe *contract.FieldError
	switch {
	case errors.As(err, &se):
		b.Field, b.Reason = se.Field, se.Reason
	case errors.As(err, &fe):
		b.Field, b.Reason = fe.Field, fe.Reason
	}
	b.Field, b.Reason = truncate(b.Field, maxField), truncate(b.Reason, maxReason)
	doc, _ := json.Marshal(b) // a struct of strings always marshals
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	_, _ = w.Write(append(doc, '\n'))
}

// Bounds of an answer's field and reason. Knative's dispatcher (v0.46)
// copies a dead-lettered answer's body base64-encoded into a 1 KiB buffer
// and panics on a body over 768 bytes; the whole body stays below that.
const (
	maxField  = 128
	maxReason = 512
)

// truncate cuts s to at most n bytes on a rune boundary, marking the cut.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	s = s[:n-len("…")]
	for len(s) > 0 && !utf8.ValidString(s) {
		s = s[:len(s)-1]
	}
	return s + "…"
}
