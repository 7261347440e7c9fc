// Package fnproc runs bin/handler or bin/sink as a real process on a free
// loopback port, waits until func-go reports it ready, and stops it. Tests,
// the demo and the benchmarks use it.
package fnproc

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Proc is a running function.
type Proc struct {
	Name string
	URL  string // http://127.0.0.1:<port>
	Cmd  *exec.Cmd

	mu   sync.Mutex
	logs bytes.Buffer
	done chan struct{}
	err  error
}

// FreeAddr returns a loopback address with a port nobody listened on a
// moment ago, and that it has not returned before in this process: callers
// at the same time could otherwise get the same port, freed by one just
// before the other asked, and their processes race to bind it.
func FreeAddr() (string, error) {
	for range 100 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return "", err
		}
		addr := l.Addr().String()
		_ = l.Close()
		handed.Lock()
		fresh := !handed.addrs[addr]
		handed.addrs[addr] = true
		handed.Unlock()
		if fresh {
			return addr, nil
		}
	}
	return "", errors.New("no loopback port free that was not handed out before")
}

// handed holds the addresses FreeAddr has returned.
var handed = struct {
	sync.Mutex
	addrs map[string]bool
}{addrs: map[string]bool{}}

// startAttempts bounds Start's tries: a port FreeAddr found free can be
// taken by another program (an outgoing connection's local port) before
// the process binds it.
const startAttempts = 3

// Start runs bin with env (added to a minimal environment) and waits until
// its readiness endpoint answers 200 or ctx ends.
func Start(ctx context.Context, bin string, env map[string]string) (*Proc, error) {
	for attempt := 1; ; attempt++ {
		addr, err := FreeAddr()
		if err != nil {
			return nil, err
		}
		p, err := start(ctx, bin, env, addr)
		if err == nil || attempt == startAttempts || !errors.Is(err, errAddrInUse) {
			return p, err
		}
	}
}

// errAddrInUse is the error of a process that could not listen on its
// address.
var errAddrInUse = errors.New("address already in use")

// start runs bin listening on addr, as Start does.
func start(ctx context.Context, bin string, env map[string]string, addr string) (*Proc, error) {
	p := &Proc{Name: bin, URL: "http://" + addr, done: make(chan struct{})}
	cmd := exec.Command(bin)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME"), "LISTEN_ADDRESS=" + addr}
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	cmd.Stdout = (*logWriter)(p)
	cmd.Stderr = (*logWriter)(p)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	p.Cmd = cmd
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	if err := p.WaitReady(ctx); err != nil {
		_ = p.Kill()
		logs := p.Logs()
		if strings.Contains(logs, "bind: address already in use") {
			err = fmt.Errorf("%w: %w", errAddrInUse, err)
		}
		return nil, fmt.Errorf("%s not ready: %w\n%s", bin, err, logs)
	}
	return p, nil
}

// WaitReady polls the readiness endpoint until it answers 200.
func (p *Proc) WaitReady(ctx context.Context) error {
	client := &http.Client{Timeout: time.Second}
	for {
		select {
		case <-p.done:
			return fmt.Errorf("exited: %v", p.err)
		default:
		}
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, p.URL+"/health/readiness", nil)
		if resp, err := client.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-p.done:
			return fmt.Errorf("exited: %v", p.err)
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// Stop sends SIGTERM and waits for a graceful exit (func-go drains
// in-flight requests), killing the process after grace.
func (p *Proc) Stop(grace time.Duration) error {
	if p.Cmd == nil || p.Cmd.Process == nil {
		return nil
	}
	_ = p.Cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		return p.exitErr()
	case <-time.After(grace):
		_ = p.Kill()
		return fmt.Errorf("%s did not stop within %s", p.Name, grace)
	}
}

// Kill stops the process at once.
func (p *Proc) Kill() error {
	if p.Cmd == nil || p.Cmd.Process == nil {
		return nil
	}
	_ = syscall.Kill(-p.Cmd.Process.Pid, syscall.SIGKILL)
	<-p.done
	return nil
}

// Done is closed when the process has exited.
func (p *Proc) Done() <-chan struct{} { return p.done }

func (p *Proc) exitErr() error {
	var ee *exec.ExitError
	if errors.As(p.err, &ee) && ee.ExitCode() == 0 {
		return nil
	}
	return p.err
}

// Logs returns everything the process printed so far.
func (p *Proc) Logs() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.logs.String()
}

// LogLines returns the printed lines containing substr.
func (p *Proc) LogLines(substr string) []string {
	var out []string
	for _, l := range strings.Split(p.Logs(), "\n") {
		if strings.Contains(l, substr) {
			out = append(out, l)
		}
	}
	return out
}

type logWriter Proc

func (w *logWriter) Write(b []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.logs.Write(b)
}
