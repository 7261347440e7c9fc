//go:build e2e

package deploy

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/boomerang-io/flow-tekton-handler/test/cluster"
)

func TestMain(m *testing.M) { cluster.Main(m, cluster.Options{}) }

// env is what the end-to-end tests share: the cluster with the Knative CRDs
// installed, kubectl, and the manifest checker.
type env struct {
	c          *cluster.Cluster
	kubectl    string
	kubeconfig string
	checker    string
}

var shared struct {
	once sync.Once
	env  env
	err  error
}

// setup starts (once) the cluster, installs the Knative CRDs and builds the
// manifest checker.
func setup(t *testing.T) env {
	t.Helper()
	c := cluster.ForTest(t)
	shared.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
		defer cancel()
		e := env{c: c, kubectl: filepath.Join(c.BinDir(), "kubectl"), kubeconfig: c.Kubeconfig()}
		crds, err := KnativeCRDs(ctx)
		if err != nil {
			shared.err = err
			return
		}
		if _, err := e.run(ctx, crds, "apply", "--server-side", "--field-manager=flow-tekton-handler-test", "-f", "-"); err != nil {
			shared.err = err
			return
		}
		if _, err := e.run(ctx, nil, "wait", "--for=condition=Established", "crd", "--all", "--timeout=60s"); err != nil {
			shared.err = err
			return
		}
		if e.checker, err = Checker(ctx, filepath.Join("testdata", "manifestcheck", "main.go"), func(s string) {
			os.Stderr.WriteString("deploy: " + s + "\n")
		}); err != nil {
			shared.err = err
			return
		}
		shared.env = e
	})
	if shared.err != nil {
		t.Fatalf("setup: %v", shared.err)
	}
	return shared.env
}

// run runs kubectl with the admin kubeconfig and stdin, returning its
// combined output.
func (e env) run(ctx context.Context, stdin []byte, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, e.kubectl, append([]string{"--kubeconfig=" + e.kubeconfig}, args...)...)
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), &cmdError{args: args, err: err, out: strings.TrimSpace(string(out))}
	}
	return string(out), nil
}

type cmdError struct {
	args []string
	err  error
	out  string
}

func (e *cmdError) Error() string {
	return "kubectl " + strings.Join(e.args, " ") + ": " + e.err.Error() + ": " + e.out
}
