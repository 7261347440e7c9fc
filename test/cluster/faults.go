package cluster

import (
	"context"
	"fmt"
	"slices"
	"syscall"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
)

// StopAPIServer stops kube-apiserver (SIGTERM, then SIGKILL) for a fault
// test and returns the function that starts it again with the same flags
// and waits until it serves. Everything else keeps running and reconnects.
func (c *Cluster) StopAPIServer() (start func(context.Context) error, err error) {
	c.mu.Lock()
	i := slices.IndexFunc(c.procs, func(p *proc) bool { return p.Name == binAPIServer })
	var p *proc
	if i >= 0 {
		p = c.procs[i]
		c.procs = slices.Delete(c.procs, i, i+1)
	}
	c.mu.Unlock()
	if p == nil {
		return nil, fmt.Errorf("stop kube-apiserver: not running")
	}
	args := p.cmd.Args[1:]
	if err := p.stop(stopGrace); err != nil {
		return nil, err
	}
	return func(ctx context.Context) error {
		np, err := c.run(binAPIServer, nil, args...)
		if err != nil {
			return err
		}
		client, err := rest.HTTPClientFor(c.RESTConfig())
		if err != nil {
			return err
		}
		return waitFor(ctx, binAPIServer, np, time.Minute, func(ctx context.Context) (bool, error) {
			if ok, err := httpOK(ctx, client, c.host+"/readyz", ""); !ok {
				return false, err
			}
			_, err := c.kube.CoreV1().Namespaces().Get(ctx, "default", metav1.GetOptions{})
			return err == nil, err
		})
	}, nil
}

// PauseTekton stops Tekton's controller (SIGSTOP), for a test that needs
// a TaskRun's pod to change while Tekton does not act on it, and returns
// the function that lets it go on (SIGCONT); its watches then catch up.
// Keep the pause short where the controller must work after it: it renews
// its leases on resuming, and a long pause lets them lapse (the bench
// pauses it for its last stages and then stops the control plane).
func (c *Cluster) PauseTekton() (resume func() error, err error) {
	c.mu.Lock()
	i := slices.IndexFunc(c.procs, func(p *proc) bool { return p.Name == binTektonController })
	var pid int
	if i >= 0 {
		pid = c.procs[i].PID
	}
	c.mu.Unlock()
	if pid == 0 {
		return nil, fmt.Errorf("pause %s: not running", binTektonController)
	}
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		return nil, fmt.Errorf("pause %s: %w", binTektonController, err)
	}
	return func() error { return syscall.Kill(pid, syscall.SIGCONT) }, nil
}
