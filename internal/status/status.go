// Package status maps the errors of the other packages to the HTTP answers a
// CloudEvents sender understands: 2xx done, 4xx never retry, 5xx retry. It is
// the one place where errors are classified.
package status

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"time"

	cehttp "github.com/cloudevents/sdk-go/v2/protocol/http"

	"github.com/boomerang-io/flow-tekton-handler/internal/contract"
	"github.com/boomerang-io/flow-tekton-handler/internal/engine"
	"github.com/boomerang-io/flow-tekton-handler/internal/kube"
)

// Budget bounds the handling of one event, below func-go's 30 s write
// timeout, so the sender gets an answer (5xx when time ran out) rather than
// a cut connection.
const Budget = 25 * time.Second

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
// redelivery cannot fix, 5xx for the rest.
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
		return http.StatusInternalServerError
	}
}

// Result turns err into the value a func-go Handle returns: nil for success,
// otherwise a CloudEvents HTTP result carrying the status code and a JSON
// body that names the field at fault when there is one.
func Result(err error) error {
	if err == nil {
		return nil
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
	doc, _ := json.Marshal(b) // a struct of strings always marshals
	return cehttp.NewResult(code, "%s", doc)
}

// Log writes the one line an event gets: its attributes, the outcome, the
// status code, the duration and the error if any, at a level that follows
// the code (error for 5xx, warning for 4xx, debug for a skipped event), and
// returns what Handle returns.
func Log(ctx context.Context, log *slog.Logger, outcome string, skipped bool, began time.Time, err error, attrs ...slog.Attr) error {
	code := Code(err)
	attrs = append(attrs, slog.String("outcome", outcome), slog.Int("code", code), slog.Duration("duration", time.Since(began)))
	level := slog.LevelInfo
	switch {
	case code >= 500:
		level = slog.LevelError
	case err != nil:
		level = slog.LevelWarn
	case skipped:
		level = slog.LevelDebug
	}
	if err != nil {
		attrs = append(attrs, slog.String("error", err.Error()))
	}
	log.LogAttrs(ctx, level, "event", attrs...)
	return Result(err)
}
