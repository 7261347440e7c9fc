//go:build e2e

package e2e

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/boomerang-io/flow-tekton-handler/internal/tekton"
	"github.com/boomerang-io/flow-tekton-handler/test/cluster"
	"github.com/boomerang-io/flow-tekton-handler/test/readme"
	"github.com/boomerang-io/flow-tekton-handler/test/wait"
)

// The developer loop of the README's "Trying the handler by hand", run as
// written: its shell block, read from README.md, runs in bash in a fresh
// copy of the repository (the files a clone of the work tree would have),
// so the README cannot drift from what works. `make up` there starts the
// control plane, the handler run by hand turns the fixture into a TaskRun
// that succeeds, the Engine stand-in gets the start, and afterwards nothing
// the block started still runs.
func TestUpHandlerDown(t *testing.T) {
	if os.Getenv(cluster.SkipEnv) == "1" {
		t.Skipf("%s=1: SKIPPING end-to-end test %s", cluster.SkipEnv, t.Name())
	}
	const heading = "### Trying the handler by hand"
	repo, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	block, err := readme.Block(filepath.Join(repo, "README.md"), heading)
	if err != nil {
		t.Fatal(err)
	}
	// The block's addresses are fixed; say so rather than fail obscurely.
	for _, addr := range []string{"127.0.0.1:7701", "127.0.0.1:8080"} {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			t.Fatalf("README %q uses %s, which is taken: %v", heading, addr, err)
		}
		ln.Close()
	}
	work := freshCopy(t, repo)

	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if k != "KUBECONFIG" && k != "MAKEFLAGS" && k != "MFLAGS" && k != "MAKELEVEL" {
			env = append(env, kv)
		}
	}
	ctx, cancel := context.WithTimeout(t.Context(), 15*time.Minute)
	defer cancel()
	outPath := filepath.Join(t.TempDir(), "output")
	out, err := os.Create(outPath)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	// Its own process group: the block's background jobs are in it, and
	// are killed with it if the block fails before it stops them.
	cmd := exec.CommandContext(ctx, "bash", "-e", "-o", "pipefail", "-c", block)
	cmd.Dir, cmd.Env, cmd.Stdout, cmd.Stderr = work, env, out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	defer func() {
		if cmd.Process != nil {
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		}
		down := exec.Command("make", "-s", "down")
		down.Dir, down.Env = work, env
		if b, err := down.CombinedOutput(); err != nil {
			t.Errorf("make down after the test: %v\n%s", err, b)
		}
	}()
	runErr := cmd.Run()
	b, err := os.ReadFile(outPath)
	if err != nil {
		t.Fatal(err)
	}
	output := string(b)
	if runErr != nil {
		t.Fatalf("README %q failed: %v\noutput:\n%s", heading, runErr, tail(output, 12000))
	}
	t.Logf("README %q ran; output:\n%s", heading, tail(output, 12000))

	name := tekton.TaskRunName("bmrg-flow", customID)
	lines := strings.Split(output, "\n")
	for _, want := range []struct {
		what string
		ok   func(string) bool
	}{
		{"make up names make down", func(l string) bool { return strings.Contains(l, "stop it with `make down`") }},
		{"curl got 200", func(l string) bool { return l == "200" }},
		{"the Engine stand-in printed the start", func(l string) bool {
			return l == "engine: PUT /api/v1/taskrun/"+customID+"/start -> 200"
		}},
		{"kubectl lists the TaskRun as succeeded", func(l string) bool {
			f := strings.Fields(l)
			return len(f) > 1 && f[0] == name && f[1] == "True"
		}},
	} {
		found := false
		for _, l := range lines {
			found = found || want.ok(l)
		}
		if !found {
			t.Errorf("no line shows that %s; output:\n%s", want.what, tail(output, 12000))
		}
	}
	if strings.Contains(output, "VIOLATES CONTRACT") {
		t.Errorf("the Engine stand-in saw contract violations:\n%s", output)
	}

	// Nothing the block started runs on: not the control plane `make down`
	// stopped, not the jobs it killed.
	procs, err := cluster.Processes(filepath.Join(work, ".run", "cluster"))
	if err != nil || len(procs) == 0 {
		t.Fatalf("no control plane processes recorded in %s: %v", work, err)
	}
	for _, p := range procs {
		if p.Running() {
			t.Errorf("%s (pid %d) still running after make down", p.Name, p.PID)
		}
	}
	wait.Eventually(t, 10*time.Second, fmt.Sprintf("the processes the block started in the background (process group %d) to end", cmd.Process.Pid), func() (bool, error) {
		return syscall.Kill(-cmd.Process.Pid, 0) != nil, nil
	})
}

// freshCopy copies the files a clone of repo's work tree would have (git's
// tracked files and the untracked ones it does not ignore, as they are in
// the work tree) to a new directory, and returns it.
func freshCopy(t *testing.T, repo string) string {
	t.Helper()
	list, err := exec.Command("git", "-C", repo, "ls-files", "-z", "--cached", "--others", "--exclude-standard").Output()
	if err != nil {
		t.Fatalf("list the repository's files: %v", err)
	}
	dst := t.TempDir()
	for _, f := range strings.Split(strings.TrimRight(string(list), "\x00"), "\x00") {
		src, to := filepath.Join(repo, f), filepath.Join(dst, f)
		fi, err := os.Lstat(src)
		if errors.Is(err, os.ErrNotExist) {
			continue // deleted in the work tree
		}
		if err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(filepath.Dir(to), 0o755); err != nil {
			t.Fatal(err)
		}
		if fi.Mode()&os.ModeSymlink != 0 {
			target, err := os.Readlink(src)
			if err == nil {
				err = os.Symlink(target, to)
			}
			if err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := copyFile(src, to, fi.Mode().Perm()); err != nil {
			t.Fatal(err)
		}
	}
	return dst
}

func copyFile(src, dst string, perm os.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_EXCL|os.O_WRONLY, perm)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// tail is the end of s, at most n bytes.
func tail(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}
