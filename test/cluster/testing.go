package cluster

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
)

// SkipEnv is the environment variable that, set to 1, skips every test that
// needs the cluster (loudly: each says so on stderr and in its skip reason).
const SkipEnv = "E2E_SKIP"

// shared is the one cluster of a test binary (see Main and ForTest).
var shared struct {
	once    sync.Once
	main    bool // Main was called
	opts    Options
	cluster *Cluster
	err     error
}

// Main runs a test binary's tests (call it from TestMain) and then stops
// the cluster that ForTest started, if any. When a test failed it first
// prints the end of every process log and keeps the run directory. It
// exits the process with the tests' status.
func Main(m *testing.M, opts Options) {
	shared.main = true
	shared.opts = opts
	if skip() {
		fmt.Fprintf(os.Stderr, "\n!!! %s=1: SKIPPING every end-to-end test of %s (they need the local control plane) !!!\n\n", SkipEnv, filepath.Base(os.Args[0]))
	}
	code := m.Run()
	if c := shared.cluster; c != nil {
		if code != 0 {
			c.removeRunDir = false
			fmt.Fprintf(os.Stderr, "cluster: tests failed; run directory kept: %s\n%s", c.RunDir(), c.Tails(40))
		}
		if err := c.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			if code == 0 {
				code = 1
			}
		}
	}
	os.Exit(code)
}

// ForTest returns the test binary's cluster, building and starting it on
// first use with the Options given to Main (progress goes to stderr). It
// skips t when E2E_SKIP=1 and fails t if the cluster cannot start or Main
// was not called from TestMain.
func ForTest(t testing.TB) *Cluster {
	t.Helper()
	if skip() {
		msg := fmt.Sprintf("%s=1: SKIPPING end-to-end test %s (needs the local control plane)", SkipEnv, t.Name())
		fmt.Fprintln(os.Stderr, msg)
		t.Skip(msg)
	}
	if !shared.main {
		t.Fatal("cluster.ForTest needs TestMain to call cluster.Main, which stops the cluster")
	}
	shared.once.Do(func() {
		opts := shared.opts
		if opts.Progress == nil {
			opts.Progress = os.Stderr
		}
		if opts.RunDir == "" {
			dir, err := os.MkdirTemp("", "cluster-")
			if err != nil {
				shared.err = err
				return
			}
			opts.RunDir = dir
		}
		c, err := Start(context.Background(), opts)
		if err != nil {
			shared.err = err
			return
		}
		if shared.opts.RunDir == "" {
			c.removeRunDir = true // Main keeps it when a test fails
		}
		shared.cluster = c
	})
	if shared.err != nil {
		t.Fatalf("local control plane: %v", shared.err)
	}
	return shared.cluster
}

// skip reports whether E2E_SKIP asks to skip end-to-end tests.
func skip() bool { return os.Getenv(SkipEnv) == "1" }
