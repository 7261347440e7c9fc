// Package heapfloor lets a function's heap grow by a fixed amount past its
// live heap before the garbage collector runs, where GOGC's proportional
// growth alone would allow less.
//
// The functions keep little live (a few MiB: clients, memos, the events in
// flight) and allocate about 100 KiB per event (the HTTP exchanges with the
// sender, the Engine and the apiserver), so with Go's default pacing the
// handler collected every 30 to 40 events, and each cycle's mark work, with
// the threads it woke while the process otherwise waited on the network, was
// about a tenth of its CPU time per event. A floor of 16 MiB makes the cycles
// five times rarer while the live heap is small, and changes nothing once the
// live heap is 16 MiB or more: a large live heap grows by itself before a
// collection, as with GOGC=100 (README, Configuration).
package heapfloor

import (
	"os"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
)

// Floor is how far the heap may grow past the live heap before a
// collection, at least.
const Floor = 16 << 20

// minimum is the runtime's heap minimum at GOGC=100: the heap goal is never
// below minimum*GOGC/100, whatever the live heap.
const minimum = 4 << 20

// Percent returns the GOGC that lets a heap of live bytes grow by at least
// floor before the next collection, and never less than GOGC=100 lets it:
// the goal is live*(1+GOGC/100), and at least minimum*GOGC/100.
func Percent(live, floor uint64) int {
	live = max(live, minimum)
	return int(max(100, (floor*100+live-1)/live))
}

// Start keeps the floor for the rest of the process: it sets GOGC for the
// heap at hand and again after every collection. A GOGC in the environment
// wins: then Start does nothing, and Go's own pacing applies.
func Start(floor uint64) {
	if _, set := os.LookupEnv("GOGC"); set {
		return
	}
	t := &tuner{floor: floor, live: []metrics.Sample{{Name: "/gc/heap/live:bytes"}}}
	t.tune()
}

// tuner sets GOGC from the live heap the last collection marked. Only one
// goroutine runs it at a time: Start, then the runtime's cleanup goroutine.
type tuner struct {
	floor   uint64
	live    []metrics.Sample
	percent int
}

// sentinel is garbage as soon as it is made: its cleanup runs after the
// next collection. It holds a pointer so that it is never one of the tiny
// objects the runtime packs together, whose cleanups may never run.
type sentinel struct{ _ *tuner }

// tune sets GOGC for the live heap and asks to run again after the next
// collection.
func (t *tuner) tune() {
	metrics.Read(t.live)
	var live uint64
	if t.live[0].Value.Kind() == metrics.KindUint64 {
		live = t.live[0].Value.Uint64()
	}
	if p := Percent(live, t.floor); p != t.percent {
		debug.SetGCPercent(p)
		t.percent = p
	}
	runtime.AddCleanup(&sentinel{}, (*tuner).tune, t)
}
