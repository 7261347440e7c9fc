// Package eventlog writes the one structured line each event gets, in the
// handler, the sink and the front door alike: the event's attributes, its
// outcome, the status code of the answer, the duration and the error if
// any, at a level that follows from the outcome and the code. Operators and
// the e2e tests read these lines: their message ("event"), keys and outcome
// values are part of the functions' interface.
package eventlog

import (
	"context"
	"log/slog"
	"net/http"
	"time"

	"github.com/boomerang-io/flow-tekton-handler/internal/status"
)

// Outcome is what became of an event, logged as "outcome".
type Outcome string

// The outcomes.
const (
	Created   Outcome = "created"   // the handler made the objects asked for
	Exists    Outcome = "exists"    // the handler found them made already
	Cancelled Outcome = "cancelled" // the handler cancelled a run
	Reported  Outcome = "reported"  // the Engine was told
	Skipped   Outcome = "skipped"   // nothing to do: logged at debug
	Rejected  Outcome = "rejected"  // failed for good (4xx)
	Failed    Outcome = "failed"    // failed for now (5xx): a redelivery may do
	Swept     Outcome = "swept"     // the sink swept for lost events
	Refused   Outcome = "refused"   // the front door turned the request away
)

// Failure is the outcome of an event whose handling failed with err:
// Rejected when a redelivery cannot help (4xx), Failed otherwise.
func Failure(err error) Outcome {
	if status.Code(err) < http.StatusInternalServerError {
		return Rejected
	}
	return Failed
}

// Level is the level of a line whose work ended with err: error when the
// answer is 5xx, warning when it is 4xx, info when there is no error.
func Level(err error) slog.Level {
	switch {
	case err == nil:
		return slog.LevelInfo
	case status.Code(err) >= http.StatusInternalServerError:
		return slog.LevelError
	}
	return slog.LevelWarn
}

// Level is the level of a line with outcome o whose work ended with err:
// Level(err), except that a skipped event without error is logged at debug.
func (o Outcome) Level(err error) slog.Level {
	if err == nil && o == Skipped {
		return slog.LevelDebug
	}
	return Level(err)
}

// Messages of the lines.
const (
	MsgEvent = "event" // an event's line
	MsgSweep = "sweep" // a sweep of the sink's own, on start or on a timer
)

// Event writes the line of an event with outcome o that began at began,
// and returns err for the caller to return.
func Event(ctx context.Context, log *slog.Logger, o Outcome, began time.Time, err error, attrs ...slog.Attr) error {
	write(ctx, log, o.Level(err), MsgEvent, o, began, err, attrs)
	return err
}

// Sweep writes the line of a sweep the sink began at began on its own
// (not for an event) that reported n TaskRuns: outcome Swept, at the level
// of an event's line, but debug for a sweep that found nothing to do (with
// SWEEP_INTERVAL set, most ticks).
func Sweep(ctx context.Context, log *slog.Logger, began time.Time, n int, err error, attrs ...slog.Attr) {
	level := Swept.Level(err)
	if n == 0 && err == nil {
		level = slog.LevelDebug
	}
	write(ctx, log, level, MsgSweep, Swept, began, err, append(attrs, slog.Int("reported", n)))
}

// write logs msg with attrs, then "outcome", "code", "duration" and, when
// err is set, "error".
func write(ctx context.Context, log *slog.Logger, level slog.Level, msg string, o Outcome, began time.Time, err error, attrs []slog.Attr) {
	attrs = append(attrs, slog.String("outcome", string(o)), slog.Int("code", status.Code(err)), slog.Duration("duration", time.Since(began)))
	if err != nil {
		attrs = append(attrs, slog.String("error", err.Error()))
	}
	log.LogAttrs(ctx, level, msg, attrs...)
}
