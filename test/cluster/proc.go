package cluster

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// pidsFile, in a run directory, lists one "pid name" line per started
// process, in start order.
const pidsFile = "pids"

// Process is one program of a running stack, as recorded in the run
// directory's pids file.
type Process struct {
	// Name is the program name (etcd, kube-apiserver, ...).
	Name string
	// PID is its process id; it also leads its own process group.
	PID int
}

// Processes returns the processes recorded in runDir's pids file, in start
// order. It lets another process (a CLI, a test) check what a stack started.
func Processes(runDir string) ([]Process, error) {
	f, err := os.Open(filepath.Join(runDir, pidsFile))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var ps []Process
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) != 2 {
			continue
		}
		pid, err := strconv.Atoi(fields[0])
		if err != nil || pid <= 0 {
			return nil, fmt.Errorf("read %s: bad line %q", f.Name(), sc.Text())
		}
		ps = append(ps, Process{Name: fields[1], PID: pid})
	}
	return ps, sc.Err()
}

// proc is a child process started by a Cluster.
type proc struct {
	Process
	cmd  *exec.Cmd
	log  string        // path of its combined stdout/stderr
	done chan struct{} // closed when it has exited and been reaped
	err  error         // exit error, set before done is closed
}

// startProc starts bin with args in its own process group, with output
// appended to logPath, and returns once the child Runs as name (or has
// exited). On Linux the child gets SIGKILL when the spawning thread (and so
// this process) dies.
func startProc(name, bin string, args, env []string, dir, logPath string) (*proc, error) {
	out, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
	if err != nil {
		return nil, err
	}
	defer out.Close() // the child has its own copy
	cmd := exec.Command(bin, args...)
	cmd.Env = env
	cmd.Dir = dir
	cmd.Stdout = out
	cmd.Stderr = out
	cmd.SysProcAttr = sysProcAttr()
	if err := spawn(cmd); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &proc{Process: Process{Name: name, PID: cmd.Process.Pid}, cmd: cmd, log: logPath, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	// Start returns once the child has exec'd, but Linux fills in the new
	// program's /proc cmdline a moment later. Wait for it, so that Running
	// names the program from the moment startProc returns.
	for deadline := time.Now().Add(2 * time.Second); !p.Running() && !p.exited() && time.Now().Before(deadline); {
		time.Sleep(time.Millisecond)
	}
	return p, nil
}

// exited reports whether p has exited.
func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop sends SIGTERM to p's process group, then SIGKILL after grace.
func (p *proc) stop(grace time.Duration) error {
	if !p.exited() {
		_ = syscall.Kill(-p.PID, syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(grace):
		}
	}
	// Also reaps anything the program left in its group.
	_ = syscall.Kill(-p.PID, syscall.SIGKILL)
	select {
	case <-p.done:
		return nil
	case <-time.After(10 * time.Second):
		return fmt.Errorf("%s (pid %d) did not exit after SIGKILL", p.Name, p.PID)
	}
}

// exitError describes how p ended, with the end of its log.
func (p *proc) exitError() error {
	return fmt.Errorf("%s exited (%v); end of %s:\n%s", p.Name, p.err, p.log, logTail(p.log, 30))
}

// logTail returns the last n lines of the file at path.
func logTail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	return tail(string(b), n)
}

// spawnRequest asks the spawner thread to start cmd.
type spawnRequest struct {
	cmd  *exec.Cmd
	done chan error
}

var (
	spawnOnce     sync.Once
	spawnRequests chan spawnRequest
)

// spawn starts cmd from one dedicated OS thread that lives as long as the
// process. Linux sends a child's Pdeathsig when the thread that forked it
// exits, not the process; Go may end an unlocked thread at any time, which
// would kill the child early.
func spawn(cmd *exec.Cmd) error {
	spawnOnce.Do(func() {
		spawnRequests = make(chan spawnRequest)
		go func() {
			runtime.LockOSThread() // never unlocked: the thread lives until exit
			for r := range spawnRequests {
				r.done <- r.cmd.Start()
			}
		}()
	})
	r := spawnRequest{cmd: cmd, done: make(chan error, 1)}
	spawnRequests <- r
	return <-r.done
}
