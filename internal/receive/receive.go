// Package receive is the functions' front door. It reads one CloudEvent from
// each HTTP request (binary or structured mode, with the CloudEvents SDK's
// binding), hands it to the role in the request's own goroutine and context,
// and writes every answer itself: 200 with an empty body, or the JSON error
// body of package status naming the field or attribute at fault.
package receive

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"mime"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/cloudevents/sdk-go/v2/binding"
	"github.com/cloudevents/sdk-go/v2/event"
	cehttp "github.com/cloudevents/sdk-go/v2/protocol/http"

	"github.com/boomerang-io/flow-tekton-handler/internal/eventlog"
	"github.com/boomerang-io/flow-tekton-handler/internal/status"
)

// Handler handles one decoded, valid event. Its error decides the answer
// (package status); it never replies with an event.
type Handler interface {
	Handle(ctx context.Context, e event.Event) error
}

// HandlerFunc adapts a function to Handler.
type HandlerFunc func(ctx context.Context, e event.Event) error

// Handle calls f.
func (f HandlerFunc) Handle(ctx context.Context, e event.Event) error { return f(ctx, e) }

// Options tune the front door.
type Options struct {
	// MaxBodyBytes bounds the request body; a larger one is answered 413
	// without being read further.
	MaxBodyBytes int64
	// Authorize, when set, is asked before the body is read; its error is
	// the answer (401, 403 or 503).
	Authorize func(*http.Request) error
	// Log gets one line per refused request; the role logs the rest.
	Log *slog.Logger
}

// New returns the http.Handler that serves h.
func New(h Handler, o Options) http.Handler {
	return &server{h: h, o: o}
}

type server struct {
	h Handler
	o Options
}

// ServeHTTP answers one request. The role's work runs with the request's
// context: a client that goes away cancels its own event and nothing else.
func (s *server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	began := time.Now()
	e, err := s.accept(w, r)
	if err != nil {
		if s.o.Log != nil {
			eventlog.Event(r.Context(), s.o.Log, eventlog.Refused, began, err,
				slog.String("method", r.Method), slog.String("content-type", r.Header.Get("Content-Type")))
		}
		status.Write(w, err)
		return
	}
	status.Write(w, s.h.Handle(r.Context(), *e))
}

// accept checks the method and the sender, then decodes the event.
func (s *server) accept(w http.ResponseWriter, r *http.Request) (*event.Event, error) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		return nil, status.New(http.StatusMethodNotAllowed, "method", fmt.Sprintf("%s is not allowed; CloudEvents are POSTed", r.Method))
	}
	if s.o.Authorize != nil {
		if err := s.o.Authorize(r); err != nil {
			if status.Code(err) == http.StatusUnauthorized {
				w.Header().Set("WWW-Authenticate", "Bearer") // RFC 6750
			}
			return nil, err
		}
	}
	if s.o.MaxBodyBytes > 0 {
		r.Body = http.MaxBytesReader(w, r.Body, s.o.MaxBodyBytes)
	}
	return Decode(r)
}

// Decode reads the CloudEvent in r and validates it. Every error is a
// *status.Error naming the attribute, header or part of the body at fault.
func Decode(r *http.Request) (*event.Event, error) {
	msg := cehttp.NewMessageFromHttpRequest(r)
	mode := msg.ReadEncoding()
	switch mode {
	case binding.EncodingUnknown:
		return nil, notCloudEvent(r.Header)
	case binding.EncodingBatch:
		return nil, status.New(http.StatusUnsupportedMediaType, "content-type", "batched CloudEvents are not accepted; send one event per request")
	}
	e, err := binding.ToEvent(r.Context(), msg)
	if err != nil {
		var tooLarge *http.MaxBytesError
		switch {
		case errors.As(err, &tooLarge):
			return nil, status.New(http.StatusRequestEntityTooLarge, "data", fmt.Sprintf("the request body exceeds %d bytes", tooLarge.Limit))
		case r.Context().Err() != nil:
			return nil, status.New(status.Transient, "body", "the client went away: "+err.Error())
		case mode == binding.EncodingStructured:
			return nil, status.New(http.StatusBadRequest, "body", "not a structured-mode CloudEvent in JSON: "+err.Error())
		default:
			return nil, status.New(http.StatusBadRequest, "headers", "not a binary-mode CloudEvent: "+err.Error())
		}
	}
	if err := e.Validate(); err != nil {
		return nil, invalid(err)
	}
	if _, ok := e.Extensions()[traceparent]; !ok {
		// Binary-mode senders (Knative's dispatcher among them) carry the
		// W3C trace context as a plain header.
		if tp := r.Header.Get(traceparent); tp != "" {
			e.SetExtension(traceparent, tp)
		}
	}
	return e, nil
}

// traceparent is the Distributed Tracing extension and the W3C header.
const traceparent = "traceparent"

// notCloudEvent explains why a request is neither binary nor structured
// mode.
func notCloudEvent(h http.Header) error {
	if v := h.Get("Ce-Specversion"); v != "" {
		return status.New(http.StatusBadRequest, "ce-specversion", fmt.Sprintf("%q is not a CloudEvents version this function reads (1.0 or 0.3)", v))
	}
	ct := h.Get("Content-Type")
	if mt, _, err := mime.ParseMediaType(ct); err == nil && strings.HasPrefix(mt, "application/cloudevents") {
		return status.New(http.StatusUnsupportedMediaType, "content-type", fmt.Sprintf("%q is not a CloudEvents format this function reads (application/cloudevents+json)", ct))
	}
	return status.New(http.StatusUnsupportedMediaType, "ce-specversion",
		fmt.Sprintf("not a CloudEvent: no ce-specversion header (binary mode) and Content-Type %q is not application/cloudevents+json (structured mode)", ct))
}

// invalid turns the SDK's validation error into one naming the first
// attribute at fault (in name order, so the answer is stable).
func invalid(err error) error {
	var ve event.ValidationError
	if !errors.As(err, &ve) || len(ve) == 0 {
		return status.New(http.StatusBadRequest, "specversion", err.Error())
	}
	names := make([]string, 0, len(ve))
	for k := range ve {
		names = append(names, k)
	}
	slices.Sort(names)
	return status.New(http.StatusBadRequest, names[0], ve[names[0]].Error())
}
