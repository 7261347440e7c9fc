package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/mod/modfile"

	"github.com/boomerang-io/flow-tekton-handler/test/fnproc"
	"github.com/boomerang-io/flow-tekton-handler/test/funcbuild"
)

// coldStartTimeout bounds one cold start.
const coldStartTimeout = 20 * time.Second

// coldStart runs bin with env and returns the time from exec until
// /health/readiness first answers 200, polling every 200 µs (fnproc polls
// every 5 ms, too coarse for starts of a few tens of milliseconds), and
// what the process printed. The process is killed before coldStart returns.
func coldStart(ctx context.Context, bin string, env map[string]string) (time.Duration, string, error) {
	addr, err := fnproc.FreeAddr()
	if err != nil {
		return 0, "", err
	}
	cmd := exec.Command(bin)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME"), "LISTEN_ADDRESS=" + addr}
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	done := make(chan struct{})
	began := time.Now()
	if err := cmd.Start(); err != nil {
		return 0, "", fmt.Errorf("start %s: %w", bin, err)
	}
	go func() {
		_ = cmd.Wait()
		close(done)
	}()
	d, err := waitReady(ctx, "http://"+addr+"/health/readiness", began, done)
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	<-done
	if err != nil {
		return 0, "", fmt.Errorf("%s: %w\n%s", bin, err, out.String())
	}
	return d, out.String(), nil
}

// waitReady polls url until it answers 200 and returns the time since
// began; done closing means the process exited.
func waitReady(ctx context.Context, url string, began time.Time, done <-chan struct{}) (time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, coldStartTimeout)
	defer cancel()
	client := &http.Client{Timeout: time.Second}
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return 0, err
		}
		if resp, err := client.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return time.Since(began), nil
			}
		}
		select {
		case <-ctx.Done():
			return 0, fmt.Errorf("not ready: %w", ctx.Err())
		case <-done:
			return 0, errors.New("exited before it was ready")
		case <-time.After(200 * time.Microsecond):
		}
	}
}

// memory is what /proc/<pid>/status says of a process's memory, in bytes.
type memory struct {
	rss  int64 // VmRSS: resident now
	peak int64 // VmHWM: resident at most, since exec
	anon int64 // RssAnon: the resident heap, stacks and other private memory
	file int64 // RssFile: resident pages of mapped files (the binary)
}

// readMemory reads the memory of process pid.
func readMemory(pid int) (memory, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return memory{}, err
	}
	return parseStatus(b)
}

// parseStatus reads VmRSS, VmHWM, RssAnon and RssFile from the content of
// /proc/<pid>/status; the first two must be there.
func parseStatus(b []byte) (memory, error) {
	var m memory
	fields := map[string]*int64{"VmRSS": &m.rss, "VmHWM": &m.peak, "RssAnon": &m.anon, "RssFile": &m.file}
	found := 0
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		key, val, ok := strings.Cut(sc.Text(), ":")
		dst := fields[key]
		if !ok || dst == nil {
			continue
		}
		f := strings.Fields(val)
		if len(f) != 2 || f[1] != "kB" {
			return m, fmt.Errorf("status line %q: want '<n> kB'", sc.Text())
		}
		n, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			return m, fmt.Errorf("status line %q: %w", sc.Text(), err)
		}
		*dst = n * 1024
		if key == "VmRSS" || key == "VmHWM" {
			found++
		}
	}
	if found != 2 {
		return m, errors.New("status has no VmRSS and VmHWM")
	}
	return m, nil
}

// readSwitches returns the context switches the threads of process pid
// have made (a process's own status counts its first thread's only).
func readSwitches(pid int) (int64, error) {
	tasks, err := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/status", pid))
	if err != nil || len(tasks) == 0 {
		return 0, fmt.Errorf("threads of %d: %v", pid, err)
	}
	var total int64
	for _, path := range tasks {
		b, err := os.ReadFile(path)
		if errors.Is(err, fs.ErrNotExist) {
			continue // the thread exited
		}
		if err != nil {
			return 0, err
		}
		n, err := parseSwitches(b)
		if err != nil {
			return 0, fmt.Errorf("%s: %w", path, err)
		}
		total += n
	}
	return total, nil
}

// parseSwitches sums voluntary_ctxt_switches and nonvoluntary_ctxt_switches
// in the content of /proc/<pid>/status; both must be there.
func parseSwitches(b []byte) (int64, error) {
	var total int64
	found := 0
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		key, val, ok := strings.Cut(sc.Text(), ":")
		if !ok || (key != "voluntary_ctxt_switches" && key != "nonvoluntary_ctxt_switches") {
			continue
		}
		n, err := strconv.ParseInt(strings.TrimSpace(val), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("status line %q: %w", sc.Text(), err)
		}
		total += n
		found++
	}
	if found != 2 {
		return 0, errors.New("status has no voluntary_ctxt_switches and nonvoluntary_ctxt_switches")
	}
	return total, nil
}

// clockTick is the unit of the CPU times in /proc/<pid>/stat (USER_HZ,
// 100 on every Linux this runs on).
const clockTick = 10 * time.Millisecond

// readCPU returns the user plus system CPU time process pid has used.
func readCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	return parseStat(b)
}

// parseStat reads utime + stime from the content of /proc/<pid>/stat.
func parseStat(b []byte) (time.Duration, error) {
	// The command name (field 2) may hold spaces; fields after it are plain.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, errors.New("stat has no command name")
	}
	f := strings.Fields(string(b[i+1:]))
	// f[0] is field 3 (state); utime and stime are fields 14 and 15.
	if len(f) < 13 {
		return 0, fmt.Errorf("stat has %d fields after the name", len(f))
	}
	var total int64
	for _, s := range f[11:13] {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("stat cpu field %q: %w", s, err)
		}
		total += n
	}
	return time.Duration(total) * clockTick, nil
}

// readMachineCPU returns the CPU time every process on the machine has
// used since boot on cpus, or on all CPUs together when cpus is empty.
func readMachineCPU(cpus ...int) (time.Duration, error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, err
	}
	return busyTime(b, cpus...)
}

// busyTime returns the busy time on cpus, or on all CPUs together when
// cpus is empty, from the content of /proc/stat.
func busyTime(b []byte, cpus ...int) (time.Duration, error) {
	if len(cpus) == 0 {
		return parseProcStat(b, "cpu")
	}
	var total time.Duration
	for _, c := range cpus {
		d, err := parseProcStat(b, "cpu"+strconv.Itoa(c))
		if err != nil {
			return 0, err
		}
		total += d
	}
	return total, nil
}

// parseProcStat reads the busy time of /proc/stat's line name ("cpu" for
// all CPUs together, "cpu0" for the first), "cpu  user nice system idle
// iowait irq softirq steal ...": all but idle and iowait (guest time is
// counted in user already).
func parseProcStat(b []byte, name string) (time.Duration, error) {
	for line := range bytes.Lines(b) {
		f := strings.Fields(string(line))
		if len(f) == 0 || f[0] != name {
			continue
		}
		if len(f) < 9 {
			return 0, fmt.Errorf("/proc/stat line %q is short", bytes.TrimSpace(line))
		}
		var total int64
		for _, i := range []int{1, 2, 3, 6, 7, 8} {
			n, err := strconv.ParseInt(f[i], 10, 64)
			if err != nil {
				return 0, fmt.Errorf("/proc/stat %s field %q: %w", name, f[i], err)
			}
			total += n
		}
		return time.Duration(total) * clockTick, nil
	}
	return 0, fmt.Errorf("/proc/stat has no %s line", name)
}

// helloGo is the bare func-go function, as func's instanced-http template
// makes it: New returns an instance whose Handle answers every request 200
// with an empty body. It does not decode the CloudEvent: the floor is what
// func-go's HTTP server and the round trip cost any function.
const helloGo = `// Package hello is a bare func-go HTTP function.
package hello

import "net/http"

// Function is the function instance.
type Function struct{}

// New returns the instance func-go serves.
func New() *Function { return &Function{} }

// Handle answers every request 200 with an empty body.
func (f *Function) Handle(w http.ResponseWriter, r *http.Request) {
	w.WriteHeader(http.StatusOK)
}
`

// helloTest keeps func-go in the bare function's go.mod through go mod
// tidy: only the scaffolding's main imports func-go otherwise.
const helloTest = `package hello

import (
	"net/http"
	"net/http/httptest"
	"testing"

	fn "knative.dev/func-go/http"
)

func TestHandleAnswers200Empty(t *testing.T) {
	var f fn.Handler = New()
	w := httptest.NewRecorder()
	f.Handle(w, httptest.NewRequest(http.MethodPost, "/", nil))
	if w.Code != http.StatusOK || w.Body.Len() != 0 {
		t.Fatalf("got %d %q, want 200 and no body", w.Code, w.Body)
	}
}
`

// helloModule is the module path of the bare function.
const helloModule = "example.com/hello"

// helloRequires are the modules the bare function needs: func-go, whose
// http middleware the scaffolding's main starts, and zerolog, the one
// module that middleware imports. Their versions come from the
// repository's go.mod, so both builds use the same ones.
var helloRequires = []string{"knative.dev/func-go", "github.com/rs/zerolog"}

// buildHello writes the bare function's module into dir (go.mod with our
// go and toolchain lines, requiring helloRequires at our versions, our
// go.sum, then go mod tidy) and builds it through funcbuild, func's
// instanced-http scaffolding, the same path as bin/handler. It returns the
// binary's path.
func buildHello(ctx context.Context, root, dir string) (string, error) {
	gomod, err := os.ReadFile(filepath.Join(root, "go.mod"))
	if err != nil {
		return "", err
	}
	ours, err := modfile.Parse("go.mod", gomod, nil)
	if err != nil {
		return "", fmt.Errorf("parse go.mod: %w", err)
	}
	mod := new(modfile.File)
	if err := mod.AddModuleStmt(helloModule); err != nil {
		return "", err
	}
	if err := mod.AddGoStmt(ours.Go.Version); err != nil {
		return "", err
	}
	if ours.Toolchain != nil { // funcbuild passes it on: the same Go release builds both
		if err := mod.AddToolchainStmt(ours.Toolchain.Name); err != nil {
			return "", err
		}
	}
	for _, path := range helloRequires {
		v := ""
		for _, r := range ours.Require {
			if r.Mod.Path == path {
				v = r.Mod.Version
			}
		}
		if v == "" {
			return "", fmt.Errorf("go.mod does not require %s", path)
		}
		if err := mod.AddRequire(path, v); err != nil {
			return "", err
		}
	}
	formatted, err := mod.Format()
	if err != nil {
		return "", err
	}
	sum, err := os.ReadFile(filepath.Join(root, "go.sum"))
	if err != nil {
		return "", err
	}
	for name, content := range map[string][]byte{"go.mod": formatted, "go.sum": sum, "hello.go": []byte(helloGo), "hello_test.go": []byte(helloTest)} {
		if err := os.WriteFile(filepath.Join(dir, name), content, 0o644); err != nil {
			return "", err
		}
	}
	tidy := exec.CommandContext(ctx, "go", "mod", "tidy")
	tidy.Dir = dir
	if out, err := tidy.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go mod tidy in %s: %w\n%s", dir, err, out)
	}
	bin := filepath.Join(dir, "hello")
	if err := funcbuild.Build(ctx, dir, bin); err != nil {
		return "", fmt.Errorf("build hello: %w", err)
	}
	return bin, nil
}
