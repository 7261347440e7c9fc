//go:build !linux

package cluster

import "syscall"

// sysProcAttr puts a child in its own process group. Outside Linux there is
// no Pdeathsig: children outlive a harness killed with SIGKILL.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}

// Running reports whether p's pid still exists.
func (p Process) Running() bool {
	return syscall.Kill(p.PID, 0) == nil
}
