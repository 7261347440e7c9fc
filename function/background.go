package function

import (
	"sync"
	"time"
)

// BackgroundWait is how long a started function waits for its first
// readiness check or request before it starts its role's background work
// (the sink's watches and sweeps) anyway.
const BackgroundWait = time.Second

// background is a role's background work, started once: when the function
// is first seen ready (a readiness check or a request that finds it
// started) or after a wait, whichever comes first, and never after stop.
// Until then the process spends its CPU on becoming ready: the watches'
// first requests (a TLS handshake and a list, on the apiserver too) would
// otherwise race the first readiness check. Knative's queue-proxy and the
// kubelet check readiness from the container's start, so in a cluster the
// work starts at once after the first check that finds the role ready.
type background struct {
	once  sync.Once
	run   func()
	timer *time.Timer
}

// newBackground returns run, to be started once; the wait starts now.
func newBackground(run func(), wait time.Duration) *background {
	b := &background{run: run}
	b.timer = time.AfterFunc(wait, b.start)
	return b
}

// start runs the work unless it has run or stop came first.
func (b *background) start() { b.once.Do(b.run) }

// stop keeps the work from starting. When it returns, a run that had begun
// has returned too (the work itself runs on in goroutines it started, which
// the role's own Stop ends).
func (b *background) stop() {
	b.timer.Stop()
	b.once.Do(func() {})
}
