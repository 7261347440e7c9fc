package cache

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestLock checks that the lock excludes a second holder (even in the same
// process) until released, and that waiting honours the context.
func TestLock(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "key.lock")
	unlock, err := lock(t.Context(), path, nil)
	if err != nil {
		t.Fatal(err)
	}
	var progress bytes.Buffer
	ctx, cancel := context.WithTimeout(t.Context(), 700*time.Millisecond)
	defer cancel()
	if _, err := lock(ctx, path, &progress); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("second lock = %v, want a deadline error", err)
	}
	if !strings.Contains(progress.String(), "waiting for another build of key") {
		t.Errorf("progress %q does not say it waits", progress.String())
	}
	unlock()
	unlock2, err := lock(t.Context(), path, nil)
	if err != nil {
		t.Fatalf("lock after unlock: %v", err)
	}
	unlock2()
}

// TestDir: concurrent callers build once; a failed build leaves nothing
// complete and the next call builds again, in an empty directory.
func TestDir(t *testing.T) {
	t.Setenv("XDG_CACHE_HOME", t.TempDir())
	var builds atomic.Int32
	build := func(ctx context.Context, dir string) error {
		builds.Add(1)
		time.Sleep(100 * time.Millisecond)
		return os.WriteFile(filepath.Join(dir, "out"), []byte("x"), 0o644)
	}
	var wg sync.WaitGroup
	dirs := make([]string, 5)
	for i := range dirs {
		wg.Go(func() {
			d, err := Dir(t.Context(), "kind", "k1", nil, build)
			if err != nil {
				t.Error(err)
			}
			dirs[i] = d
		})
	}
	wg.Wait()
	if n := builds.Load(); n != 1 {
		t.Fatalf("%d builds for 5 callers, want 1", n)
	}
	root, _ := Root()
	for _, d := range dirs {
		if d != filepath.Join(root, "kind", "k1") || !Complete(d) {
			t.Fatalf("dir %q (complete %v)", d, Complete(d))
		}
	}

	failing := func(ctx context.Context, dir string) error {
		if err := os.WriteFile(filepath.Join(dir, "partial"), nil, 0o644); err != nil {
			return err
		}
		return errors.New("boom")
	}
	if _, err := Dir(t.Context(), "kind", "k2", nil, failing); err == nil || !strings.Contains(err.Error(), "boom") {
		t.Fatalf("failed build: err %v", err)
	}
	d, err := Dir(t.Context(), "kind", "k2", nil, func(ctx context.Context, dir string) error {
		if _, err := os.Stat(filepath.Join(dir, "partial")); err == nil {
			return errors.New("the failed build's files are still there")
		}
		return nil
	})
	if err != nil || !Complete(d) {
		t.Fatalf("rebuild after a failure: %q %v", d, err)
	}
}
