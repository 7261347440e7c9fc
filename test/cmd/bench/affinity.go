package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	"golang.org/x/sys/unix"

	"github.com/boomerang-io/flow-tekton-handler/test/cluster"
)

// The throughput and storm stages split the CPUs, as production's nodes
// do: the control plane's processes run on one part (kube-apiserver, etcd
// and Tekton's webhook on their own nodes) and this process, with the
// functions it starts from then on, on the other (the functions and the
// Engine on worker nodes). Sharing every CPU, as the other stages do,
// would charge ours' handler CPU to the apiserver's throughput, which no
// production cluster does; the handler's CPU per event has its own row.

// splitCPUs divides the CPUs this process may use: the control plane
// gets the first half, rounded up, and the clients the rest. Fewer than
// two CPUs cannot be split (ok false).
func splitCPUs(cpus []int) (plane, clients []int, ok bool) {
	if len(cpus) < 2 {
		return nil, nil, false
	}
	half := len(cpus) - len(cpus)/2
	return cpus[:half], cpus[half:], true
}

// allowedCPUs returns the CPUs this process may use, in order.
func allowedCPUs() ([]int, error) {
	var set unix.CPUSet
	if err := unix.SchedGetaffinity(0, &set); err != nil {
		return nil, fmt.Errorf("sched_getaffinity: %w", err)
	}
	var cpus []int
	for i := range len(set) * 64 {
		if set.IsSet(i) {
			cpus = append(cpus, i)
		}
	}
	return cpus, nil
}

// pin keeps every thread of process pid on cpus; threads it starts later
// inherit the set from the thread that starts them, and so do the
// processes they start. A thread started during a pass by one not yet
// pinned is found by the next: pin passes over the threads until one
// finds them all pinned.
func pin(pid int, cpus []int) error {
	var want unix.CPUSet
	for _, c := range cpus {
		want.Set(c)
	}
	for {
		tasks, err := os.ReadDir(filepath.Join("/proc", strconv.Itoa(pid), "task"))
		if err != nil {
			return err
		}
		changed := false
		for _, t := range tasks {
			tid, err := strconv.Atoi(t.Name())
			if err != nil {
				continue
			}
			var got unix.CPUSet
			if err := unix.SchedGetaffinity(tid, &got); err == nil && got == want {
				continue
			}
			if err := unix.SchedSetaffinity(tid, &want); err != nil && !errors.Is(err, unix.ESRCH) {
				return fmt.Errorf("pin thread %d of %d to CPUs %v: %w", tid, pid, cpus, err)
			}
			changed = true
		}
		if !changed {
			return nil
		}
	}
}

// split puts the control plane's processes on the first part of the CPUs
// (splitCPUs) and this process on the rest, and returns the control
// plane's CPUs (none when they cannot be split) and the function that
// gives every process all of them again.
func split(plane []cluster.Process) (planeCPUs []int, undo func() error, err error) {
	all, err := allowedCPUs()
	if err != nil {
		return nil, nil, err
	}
	pl, clients, ok := splitCPUs(all)
	if !ok {
		return nil, func() error { return nil }, nil
	}
	undo = func() error {
		errs := []error{pin(os.Getpid(), all)}
		for _, p := range plane {
			errs = append(errs, pin(p.PID, all))
		}
		return errors.Join(errs...)
	}
	for _, p := range plane {
		if err := pin(p.PID, pl); err != nil {
			return nil, nil, errors.Join(fmt.Errorf("control plane process %s: %w", p.Name, err), undo())
		}
	}
	if err := pin(os.Getpid(), clients); err != nil {
		return nil, nil, errors.Join(err, undo())
	}
	return pl, undo, nil
}
