//go:build e2e

package e2e

import (
	"fmt"
	"io"
	"log"
	"net/http/httptest"
	"strings"

	ggcrname "github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// workerImage is an image with an entrypoint in a registry on loopback.
// Tekton looks a step's entrypoint up in the registry when the step has no
// command or script (template tasks); nothing else is ever pulled.
var workerImage string

// startRegistry serves an in-memory OCI registry on loopback holding one
// image whose config names an entrypoint, and returns its reference.
func startRegistry() (ref string, stop func(), err error) {
	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	host := strings.TrimPrefix(srv.URL, "http://")
	img, err := random.Image(64, 1)
	if err != nil {
		srv.Close()
		return "", nil, err
	}
	img, err = mutate.Config(img, v1.Config{Entrypoint: []string{"/usr/local/bin/worker"}})
	if err != nil {
		srv.Close()
		return "", nil, err
	}
	ref = host + "/boomerangio/slack-worker:3.1.0"
	tag, err := ggcrname.ParseReference(ref, ggcrname.Insecure)
	if err != nil {
		srv.Close()
		return "", nil, err
	}
	if err := remote.Write(tag, img); err != nil {
		srv.Close()
		return "", nil, fmt.Errorf("push %s: %w", ref, err)
	}
	return ref, srv.Close, nil
}

// withImage sets a task event's image.
func withImage(image string) func(map[string]any) {
	return func(d map[string]any) {
		d["spec"].(map[string]any)["image"] = image
	}
}
