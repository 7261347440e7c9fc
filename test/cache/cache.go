// Package cache keeps what the tests build once per machine (the control
// plane, the manifest checker, the vulnerability database) under
// ${XDG_CACHE_HOME:-~/.cache}/flow-tekton-handler/<kind>/<key>.
//
// A directory is complete when its marker file exists; it is written last,
// so an interrupted build is redone. Builders of one directory, in any
// process, take turns on a file lock beside it and build once.
package cache

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

// Marker is the file, inside a directory, that says it is complete.
const Marker = ".complete"

// Root is the directory every kind lives under.
func Root() (string, error) {
	dir, err := os.UserCacheDir()
	if err != nil {
		return "", err
	}
	return filepath.Join(dir, "flow-tekton-handler"), nil
}

// Dir returns the complete directory kind/key, calling build with it (new
// and empty) when it is not complete yet. progress, when not nil, hears
// about a wait for another builder.
func Dir(ctx context.Context, kind, key string, progress io.Writer, build func(ctx context.Context, dir string) error) (string, error) {
	root, err := Root()
	if err != nil {
		return "", err
	}
	dir := filepath.Join(root, kind, key)
	if Complete(dir) {
		return dir, nil
	}
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return "", err
	}
	unlock, err := lock(ctx, dir+".lock", progress)
	if err != nil {
		return "", err
	}
	defer unlock()
	if Complete(dir) { // built by whoever held the lock
		return dir, nil
	}
	if err := os.RemoveAll(dir); err != nil {
		return "", err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	if err := build(ctx, dir); err != nil {
		return "", fmt.Errorf("build %s: %w", dir, err)
	}
	if err := os.WriteFile(filepath.Join(dir, Marker), nil, 0o644); err != nil {
		return "", err
	}
	return dir, nil
}

// Complete reports whether dir holds a finished build.
func Complete(dir string) bool {
	_, err := os.Stat(filepath.Join(dir, Marker))
	return err == nil
}

// lock takes an exclusive flock on path, polling so that ctx can end the wait.
func lock(ctx context.Context, path string, progress io.Writer) (func(), error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, err
	}
	said := false
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return func() {
				_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
				_ = f.Close()
			}, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			_ = f.Close()
			return nil, fmt.Errorf("lock %s: %w", path, err)
		}
		if !said && progress != nil {
			fmt.Fprintf(progress, "waiting for another build of %s (lock %s)\n", filepath.Base(path[:len(path)-len(".lock")]), path)
			said = true
		}
		select {
		case <-ctx.Done():
			_ = f.Close()
			return nil, fmt.Errorf("lock %s: %w", path, ctx.Err())
		case <-time.After(500 * time.Millisecond):
		}
	}
}
