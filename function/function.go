// Package function wires the three roles to func-go's http middleware: New
// makes an instance that cannot fail, Start loads the configuration, builds
// the clients and picks the handler, the sink or the logs role, and Handle
// serves it (the first two through the front door of package receive).
package function

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/boomerang-io/flow-tekton-handler/function/handler"
	"github.com/boomerang-io/flow-tekton-handler/function/logs"
	"github.com/boomerang-io/flow-tekton-handler/function/sink"
	"github.com/boomerang-io/flow-tekton-handler/internal/auth"
	"github.com/boomerang-io/flow-tekton-handler/internal/config"
	"github.com/boomerang-io/flow-tekton-handler/internal/engine"
	"github.com/boomerang-io/flow-tekton-handler/internal/heapfloor"
	"github.com/boomerang-io/flow-tekton-handler/internal/kube"
	"github.com/boomerang-io/flow-tekton-handler/internal/receive"
	"github.com/boomerang-io/flow-tekton-handler/internal/status"
)

// role is what Start picks: the handler, the sink or the logs role.
type role interface {
	Stop(ctx context.Context) error
}

// DrainGrace is how long events in flight when the server begins to shut
// down (SIGTERM) may go on; then their work is cancelled and they are
// answered 503, so the sender retries and the process exits promptly.
const DrainGrace = 5 * time.Second

// errDraining cancels the work of events still in flight after DrainGrace.
var errDraining = errors.New("the function is shutting down")

// Function is the instance func-go serves. It answers 503 until Start has
// picked its role.
type Function struct {
	role  atomic.Pointer[role]
	front atomic.Pointer[http.Handler]
	bg    atomic.Pointer[background] // stored before role

	// drained is cancelled DrainGrace after the server began to shut down.
	drained    context.Context
	drain      context.CancelFunc
	onShutdown sync.Once
}

// New returns an instance with no role yet.
func New() *Function {
	f := &Function{}
	f.drained, f.drain = context.WithCancel(context.Background())
	return f
}

// Start loads the configuration and builds the role. An error stops the
// function with that one message.
func (f *Function) Start(ctx context.Context, _ map[string]string) error {
	heapfloor.Start(heapfloor.Floor)
	cfg, err := config.Load()
	if err != nil {
		return err
	}
	level := slog.LevelInfo
	if cfg.Debug {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewJSONHandler(os.Stdout, &slog.HandlerOptions{Level: level})).With("function", cfg.Function)
	rc, err := kube.RESTConfig(cfg.Kubeconfig, cfg.KubeQPS, cfg.KubeBurst)
	if err != nil {
		return fmt.Errorf("start %s: %w", cfg.Function, err)
	}
	kc, err := kube.NewForConfig(rc, cfg.Namespace, cfg.KubeTimeout)
	if err != nil {
		return fmt.Errorf("start %s: %w", cfg.Function, err)
	}
	r, front := newRole(cfg, kc, log)
	if bg, ok := r.(interface{ Run(context.Context) }); ok {
		f.bg.Store(newBackground(func() { bg.Run(ctx) }, BackgroundWait))
	}
	f.front.Store(&front)
	f.role.Store(&r)
	attrs := []any{"namespace", cfg.Namespace, "apiserver", rc.Host}
	if cfg.Function != config.RoleLogs {
		attrs = append(attrs, "engine", redact(cfg.EngineURL), "auth", cfg.Auth, "audience", cfg.AuthAudience)
	}
	log.Info("started", attrs...)
	return nil
}

// newRole builds the role cfg.Function names and what serves its requests:
// the logs role itself, or the front door of package receive for the roles
// that take CloudEvents.
func newRole(cfg config.Config, kc *kube.Client, log *slog.Logger) (role, http.Handler) {
	if cfg.Function == config.RoleLogs {
		if cfg.Auth == config.AuthToken {
			log.Warn("AUTH=token does not apply to the logs role: the Engine's log client sends no token")
		}
		l := logs.New(kc, logs.Options{Product: cfg.ProductPrefix, Wait: cfg.LogsWait}, log)
		return l, l
	}
	ec := engine.New(engine.Options{
		BaseURL:     cfg.EngineURL,
		Token:       cfg.EngineToken,
		Timeout:     cfg.EngineTimeout,
		RetryBudget: cfg.EngineRetryBudget,
	})
	var r interface {
		role
		receive.Handler
	}
	limit := BodyLimit(cfg.MaxEventBytes)
	if cfg.Function == config.RoleSink {
		s := sink.New(kc, ec, sink.Options{
			Product:        cfg.ProductPrefix,
			DeletionPolicy: cfg.DeletionPolicy,
			SweepLimit:     cfg.SweepLimit,
			SweepInterval:  cfg.SweepInterval,
			ReportStale:    sink.ReportStale(cfg.EngineTimeout, cfg.EngineRetryBudget),
		}, log)
		r, limit = s, max(limit, sinkBodyLimit)
	} else {
		r = handler.New(kc, ec, TektonOptions(cfg), cfg.MaxEventBytes, log)
	}
	ro := receive.Options{MaxBodyBytes: limit, Log: log}
	if cfg.Auth == config.AuthToken {
		ro.Authorize = auth.New(kc, auth.Options{Audience: cfg.AuthAudience, Allow: cfg.AuthAllow}).Authorize
	}
	return r, receive.New(r, ro)
}

// redact drops credentials from a URL for logging.
func redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparsable)"
	}
	u.User = nil
	return u.String()
}

// BodyLimit is the largest request body read for event data of at most
// maxEvent bytes: room for base64 in structured mode and the envelope.
func BodyLimit(maxEvent int64) int64 { return maxEvent*4/3 + 64<<10 }

// sinkBodyLimit bounds the sink's requests: Tekton's event carries a whole
// TaskRun (at most etcd's 1.5 MiB), base64 in structured mode.
const sinkBodyLimit = 4 << 20

// Handle serves one request through the role's front door, or answers 503
// while Start is still running. The role's work runs with the request's
// context, cancelled too DrainGrace after the server began to shut down.
func (f *Function) Handle(w http.ResponseWriter, r *http.Request) {
	front := f.front.Load()
	if front == nil {
		status.Write(w, status.New(http.StatusServiceUnavailable, "", "the function is starting"))
		return
	}
	f.startBackground()
	f.watchShutdown(r)
	ctx, cancel := context.WithCancelCause(r.Context())
	defer cancel(nil)
	stop := context.AfterFunc(f.drained, func() { cancel(errDraining) })
	defer stop()
	(*front).ServeHTTP(w, r.WithContext(ctx))
}

// watchShutdown starts the drain clock when the server that serves r begins
// to shut down. func-go calls the instance's Stop only after the server has
// drained, so this is the one moment the function can see it coming.
func (f *Function) watchShutdown(r *http.Request) {
	srv, ok := r.Context().Value(http.ServerContextKey).(*http.Server)
	if !ok {
		return
	}
	f.onShutdown.Do(func() {
		srv.RegisterOnShutdown(func() { time.AfterFunc(DrainGrace, f.drain) })
	})
}

// Ready reports whether Start has finished. The first check that finds it
// finished starts the role's background work.
func (f *Function) Ready(context.Context) (bool, error) {
	if f.role.Load() == nil {
		return false, nil
	}
	f.startBackground()
	return true, nil
}

// startBackground starts the role's background work, if it has any and it
// has not started yet.
func (f *Function) startBackground() {
	if b := f.bg.Load(); b != nil {
		b.start()
	}
}

// Alive reports that the process can serve.
func (f *Function) Alive(context.Context) (bool, error) { return true, nil }

// Stop stops the role's background work after the server has drained.
func (f *Function) Stop(ctx context.Context) error {
	f.drain()
	if b := f.bg.Load(); b != nil {
		b.stop()
	}
	r := f.role.Load()
	if r == nil {
		return nil
	}
	return errors.Join((*r).Stop(ctx))
}
