package cluster

import (
	"fmt"
	"os"
	"os/signal"
	"sync"
	"syscall"
)

// running tracks the clusters of this process, so that SIGINT and SIGTERM
// stop them before the process exits.
var running struct {
	sync.Mutex
	clusters map[*Cluster]bool
	signals  chan os.Signal
}

// register adds c to the running clusters and catches SIGINT and SIGTERM
// while any cluster runs.
func register(c *Cluster) {
	running.Lock()
	defer running.Unlock()
	if running.clusters == nil {
		running.clusters = map[*Cluster]bool{}
		running.signals = make(chan os.Signal, 1)
		go onSignal(running.signals)
	}
	if len(running.clusters) == 0 {
		signal.Notify(running.signals, syscall.SIGINT, syscall.SIGTERM)
	}
	running.clusters[c] = true
}

// deregister removes c; with no cluster left, signals get their default
// behaviour back.
func deregister(c *Cluster) {
	running.Lock()
	defer running.Unlock()
	delete(running.clusters, c)
	if len(running.clusters) == 0 && running.signals != nil {
		signal.Stop(running.signals)
	}
}

// onSignal stops every running cluster on a signal and exits like the
// signal would have (128+signal).
func onSignal(signals <-chan os.Signal) {
	for sig := range signals {
		running.Lock()
		var cs []*Cluster
		for c := range running.clusters {
			cs = append(cs, c)
		}
		running.Unlock()
		if len(cs) == 0 {
			continue
		}
		fmt.Fprintf(os.Stderr, "cluster: %v: stopping %d local control plane(s)\n", sig, len(cs))
		for _, c := range cs {
			if err := c.Stop(); err != nil {
				fmt.Fprintln(os.Stderr, err)
			}
		}
		code := 1
		if s, ok := sig.(syscall.Signal); ok {
			code = 128 + int(s)
		}
		os.Exit(code)
	}
}
