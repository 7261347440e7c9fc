// Package function wires the two roles to func-go: New makes an instance
// that cannot fail, Start loads the configuration, builds the clients and
// picks the handler or the sink, and Handle delegates to it.
package function

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sync/atomic"

	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/boomerang-io/flow-tekton-handler/function/handler"
	"github.com/boomerang-io/flow-tekton-handler/function/sink"
	"github.com/boomerang-io/flow-tekton-handler/internal/config"
	"github.com/boomerang-io/flow-tekton-handler/internal/engine"
	"github.com/boomerang-io/flow-tekton-handler/internal/kube"
	"github.com/boomerang-io/flow-tekton-handler/internal/status"
	"github.com/boomerang-io/flow-tekton-handler/internal/tekton"
)

// role is what Start picks: the handler or the sink.
type role interface {
	Handle(ctx context.Context, e event.Event) (*event.Event, error)
	Stop(ctx context.Context) error
}

// Function is the instance func-go serves. It answers 503 until Start has
// picked its role.
type Function struct {
	role atomic.Pointer[role]
}

// New returns an instance with no role yet.
func New() *Function { return &Function{} }

// Start loads the configuration and builds the role. An error stops the
// function with that one message.
func (f *Function) Start(ctx context.Context, _ map[string]string) error {
	cfg, err := config.Load()
	if err != nil {
		return err
	}
	name := cfg.Function
	if name == "" {
		name = RoleFromProgram(os.Args[0])
	}
	level := slog.LevelInfo
	if cfg.Debug {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewJSONHandler(os.Stdout, &slog.HandlerOptions{Level: level})).With("function", name)

	rc, err := kube.RESTConfig(cfg.Kubeconfig, cfg.KubeQPS, cfg.KubeBurst)
	if err != nil {
		return fmt.Errorf("start %s: %w", name, err)
	}
	kc, err := kube.NewForConfig(rc, cfg.Namespace, cfg.KubeTimeout)
	if err != nil {
		return fmt.Errorf("start %s: %w", name, err)
	}
	ec := engine.New(engine.Options{
		BaseURL:     cfg.EngineURL,
		Token:       cfg.EngineToken,
		Timeout:     cfg.EngineTimeout,
		RetryBudget: cfg.EngineRetryBudget,
	})
	opts := tekton.OptionsFrom(cfg)

	var r role
	switch name {
	case config.RoleSink:
		s := sink.New(kc, ec, sink.Options{
			Product:        opts.Prefix,
			DeletionPolicy: cfg.DeletionPolicy,
			SweepLimit:     cfg.SweepLimit,
			SweepInterval:  cfg.SweepInterval,
		}, log)
		s.Run(ctx)
		r = s
	default:
		r = handler.New(kc, ec, opts, cfg.MaxEventBytes, log)
	}
	f.role.Store(&r)
	log.Info("started", "namespace", cfg.Namespace, "engine", redact(cfg.EngineURL), "apiserver", rc.Host)
	return nil
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

// RoleFromProgram picks the role from a program path: "sink" for a program
// named sink, the handler otherwise.
func RoleFromProgram(path string) string {
	if filepath.Base(path) == config.RoleSink {
		return config.RoleSink
	}
	return config.RoleHandler
}

// Handle delegates to the role, or answers 503 while Start is still running.
func (f *Function) Handle(ctx context.Context, e event.Event) (*event.Event, error) {
	r := f.role.Load()
	if r == nil {
		return nil, status.Result(status.New(http.StatusServiceUnavailable, "", "the function is starting"))
	}
	return (*r).Handle(ctx, e)
}

// Ready reports whether Start has finished.
func (f *Function) Ready(context.Context) (bool, error) { return f.role.Load() != nil, nil }

// Alive reports that the process can serve.
func (f *Function) Alive(context.Context) (bool, error) { return true, nil }

// Stop stops the role's background work after the server has drained.
func (f *Function) Stop(ctx context.Context) error {
	r := f.role.Load()
	if r == nil {
		return nil
	}
	return errors.Join((*r).Stop(ctx))
}
