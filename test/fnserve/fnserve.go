// Package fnserve serves a role in tests the way the deployed function
// does: func-go's http middleware (its mux, timeouts and health endpoints)
// in front of the front door of package receive.
package fnserve

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	fhttp "knative.dev/func-go/http"

	"github.com/boomerang-io/flow-tekton-handler/function"
	"github.com/boomerang-io/flow-tekton-handler/internal/receive"
)

// instance is a func-go http instance serving one http.Handler.
type instance struct{ http.Handler }

func (i instance) Handle(w http.ResponseWriter, r *http.Request) { i.ServeHTTP(w, r) }

// Serve starts a server for h reading event data of at most maxEvent bytes
// and returns its URL; the server closes when the test ends.
func Serve(t testing.TB, h receive.Handler, maxEvent int64) string {
	t.Helper()
	svc := fhttp.New(instance{receive.New(h, receive.Options{MaxBodyBytes: function.BodyLimit(maxEvent)})})
	srv := httptest.NewUnstartedServer(svc.Handler)
	srv.Config = &svc.Server
	srv.Start()
	t.Cleanup(srv.Close)
	return srv.URL
}

// Client returns an HTTP client for tests with a transport of its own:
// httptest.Server.Close closes http.DefaultTransport's idle connections,
// which breaks the request of another parallel test that is just taking
// one of them ("http: CloseIdleConnections called").
func Client(timeout time.Duration) *http.Client {
	return &http.Client{Timeout: timeout, Transport: http.DefaultTransport.(*http.Transport).Clone()}
}
