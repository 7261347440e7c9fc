// Package frontdoor holds the stress test of the functions' receive path:
// the test binary runs itself as the server, either the function as func's
// instanced-http scaffolding serves it or, as the control, a function that
// does nothing served by func-go's CloudEvents middleware.
package frontdoor

import (
	"context"
	"fmt"
	"os"
	"testing"

	"github.com/cloudevents/sdk-go/v2/event"
	fce "knative.dev/func-go/cloudevents"
	fhttp "knative.dev/func-go/http"

	"github.com/boomerang-io/flow-tekton-handler/function"
)

// serveMode, in the environment, makes the test binary a server.
const serveMode = "FRONTDOOR_SERVE"

const (
	modeFunction    = "function"    // function.New() as func's http scaffolding serves it
	modeCloudEvents = "cloudevents" // the control: func-go's CloudEvents middleware
)

func TestMain(m *testing.M) {
	var err error
	switch os.Getenv(serveMode) {
	case "":
		os.Exit(m.Run())
	case modeFunction:
		err = fhttp.Start(function.New())
	case modeCloudEvents:
		err = fce.Start(nothing{})
	default:
		err = fmt.Errorf("unknown %s %q", serveMode, os.Getenv(serveMode))
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Exit(0)
}

// nothing is a CloudEvents function that accepts every event.
type nothing struct{}

func (nothing) Handle(context.Context, event.Event) (*event.Event, error) { return nil, nil }
