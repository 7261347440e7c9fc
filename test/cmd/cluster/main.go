// Command cluster builds, starts and stops the local control plane of
// package cluster (etcd, kube-apiserver, kube-scheduler, kwok, Tekton).
//
//	cluster build          build if needed; print the bin directory
//	cluster up [-dir D]    start it in the background; print KUBECONFIG=<path>
//	cluster down [-dir D]  stop it and wait until every process is gone
//
// D defaults to .run/cluster at the module root. `up` re-runs this program
// as `serve` in a new session; serve owns the processes and writes
// D/serve.json once the stack is ready. Progress goes to stderr; serve logs
// to D/serve.log and each process to D/logs/.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/boomerang-io/flow-tekton-handler/test/cluster"
)

// stateFile, in the run directory, describes the serve process.
const stateFile = "serve.json"

// state is the content of stateFile.
type state struct {
	Serve      cluster.Process `json:"serve"`
	Kubeconfig string          `json:"kubeconfig"`
}

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	cmd, args := os.Args[1], os.Args[2:]
	fs := flag.NewFlagSet(cmd, flag.ExitOnError)
	dir := fs.String("dir", "", "run directory (default .run/cluster at the module root)")
	bin := fs.String("bin", "", "bin directory (serve only)")
	_ = fs.Parse(args)
	ctx := context.Background()
	var err error
	switch cmd {
	case "build":
		var b string
		if b, err = cluster.Build(ctx, os.Stderr); err == nil {
			fmt.Println(b)
		}
	case "up":
		err = up(ctx, runDir(*dir), stopHint(*dir))
	case "down":
		err = down(runDir(*dir))
	case "serve":
		err = serve(ctx, runDir(*dir), *bin)
	default:
		usage()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "cluster "+cmd+":", err)
		os.Exit(1)
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: cluster build | up [-dir D] | down [-dir D]")
	os.Exit(2)
}

// runDir returns dir, or .run/cluster at the module root, as an absolute path.
func runDir(dir string) string {
	if dir == "" {
		dir = filepath.Join(moduleRoot(), ".run", "cluster")
	}
	if abs, err := filepath.Abs(dir); err == nil {
		return abs
	}
	return dir
}

// moduleRoot is the nearest directory at or above the working directory
// with a go.mod, else the working directory.
func moduleRoot() string {
	wd, err := os.Getwd()
	if err != nil {
		return "."
	}
	for d := wd; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return d
		}
		if filepath.Dir(d) == d {
			return wd
		}
	}
}

// stopHint is the command that stops what `up -dir dir` starts: `make down`
// for the default directory, the one `make up` uses.
func stopHint(dir string) string {
	if dir == "" {
		return "make down"
	}
	return "go run ./test/cmd/cluster down -dir " + dir
}

// up starts serve in the background and prints KUBECONFIG=<path> once the
// stack is ready. If it already runs, it prints the line again. stop is the
// command to name for stopping it.
func up(ctx context.Context, dir, stop string) error {
	if st, err := readState(dir); err == nil && st.Serve.Running() {
		fmt.Fprintf(os.Stderr, "cluster: already running (pid %d); stop it with `%s`\n", st.Serve.PID, stop)
		fmt.Println("KUBECONFIG=" + st.Kubeconfig)
		return nil
	}
	bin, err := cluster.Build(ctx, os.Stderr)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	_ = os.Remove(filepath.Join(dir, stateFile))
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	logPath := filepath.Join(dir, "serve.log")
	log, err := os.Create(logPath)
	if err != nil {
		return err
	}
	defer log.Close()
	cmd := exec.Command(exe, "serve", "-dir", dir, "-bin", bin)
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true} // outlives this process and its terminal
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start serve: %w", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	deadline := time.After(3 * time.Minute)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		if st, err := readState(dir); err == nil && st.Serve.PID == cmd.Process.Pid {
			fmt.Fprintf(os.Stderr, "cluster: up (serve pid %d, logs in %s); stop it with `%s`\n", st.Serve.PID, dir, stop)
			fmt.Println("KUBECONFIG=" + st.Kubeconfig)
			return nil
		}
		select {
		case err := <-exited:
			return fmt.Errorf("serve exited (%v); see %s:\n%s", err, logPath, tailFile(logPath))
		case <-deadline:
			_ = cmd.Process.Signal(syscall.SIGTERM)
			return fmt.Errorf("not ready after 3 minutes; see %s:\n%s", logPath, tailFile(logPath))
		case <-tick.C:
		}
	}
}

// serve starts the stack in dir and keeps it running until SIGINT or
// SIGTERM, on which package cluster stops it and exits.
func serve(ctx context.Context, dir, bin string) error {
	if bin == "" {
		return errors.New("-bin is required")
	}
	c, err := cluster.Start(ctx, cluster.Options{BinDir: bin, RunDir: dir, Progress: os.Stderr})
	if err != nil {
		return err
	}
	if err := defaultServiceAccount(ctx, c); err != nil {
		_ = c.Stop()
		return err
	}
	st := state{
		Serve:      cluster.Process{Name: filepath.Base(os.Args[0]), PID: os.Getpid()},
		Kubeconfig: c.Kubeconfig(),
	}
	if err := writeState(dir, st); err != nil {
		_ = c.Stop()
		return err
	}
	select {} // until a signal
}

// defaultServiceAccount creates the ServiceAccount default/default, which
// a controller manager would (the embedded control plane runs none): Tekton
// reads a TaskRun's ServiceAccount before it makes the Pod, so a handler run
// by hand with NAMESPACE=default needs it.
func defaultServiceAccount(ctx context.Context, c *cluster.Cluster) error {
	kube, err := kubernetes.NewForConfig(c.RESTConfig())
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "default", Namespace: "default"}}
	if _, err := kube.CoreV1().ServiceAccounts("default").Create(ctx, sa, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("create serviceaccount default/default: %w", err)
	}
	return nil
}

// down stops the serve process of dir and waits until every process it
// recorded is gone, killing stragglers.
func down(dir string) error {
	st, err := readState(dir)
	if err == nil && st.Serve.Running() {
		if err := syscall.Kill(st.Serve.PID, syscall.SIGTERM); err != nil {
			return fmt.Errorf("signal serve (pid %d): %w", st.Serve.PID, err)
		}
	}
	procs, _ := cluster.Processes(dir)
	if err == nil {
		procs = append(procs, st.Serve)
	}
	left := waitGone(procs, time.Minute)
	for _, p := range left {
		fmt.Fprintf(os.Stderr, "cluster: killing %s (pid %d)\n", p.Name, p.PID)
		_ = syscall.Kill(-p.PID, syscall.SIGKILL)
		_ = syscall.Kill(p.PID, syscall.SIGKILL)
	}
	if left = waitGone(left, 10*time.Second); len(left) > 0 {
		return fmt.Errorf("still running: %v", left)
	}
	_ = os.Remove(filepath.Join(dir, stateFile))
	fmt.Fprintln(os.Stderr, "cluster: down")
	return nil
}

// waitGone waits up to timeout for procs to end and returns those still running.
func waitGone(procs []cluster.Process, timeout time.Duration) []cluster.Process {
	deadline := time.Now().Add(timeout)
	for {
		var left []cluster.Process
		for _, p := range procs {
			if p.Running() {
				left = append(left, p)
			}
		}
		if len(left) == 0 || time.Now().After(deadline) {
			return left
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func readState(dir string) (state, error) {
	var st state
	b, err := os.ReadFile(filepath.Join(dir, stateFile))
	if err != nil {
		return st, err
	}
	err = json.Unmarshal(b, &st)
	return st, err
}

// writeState writes stateFile atomically.
func writeState(dir string, st state) error {
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	tmp := filepath.Join(dir, stateFile+".tmp")
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(dir, stateFile))
}

// tailFile returns the end of a log file.
func tailFile(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}
