// Package wait is the tests' one polling helper: it calls a condition until
// it holds and fails the test, with the condition's last error, when the
// time runs out.
package wait

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// Interval is how long Eventually and Until wait between two calls of the
// condition.
const Interval = 50 * time.Millisecond

// Cond reports whether what a test waits for holds. An error means "not
// yet": polling goes on, and the last call's error is reported if the time
// runs out. A condition that sees the wait is hopeless fails the test itself
// (t.Fatal); it runs on the test's goroutine.
type Cond func() (bool, error)

// Eventually calls cond every Interval until it reports true, and fails t
// with what and cond's last error once timeout has passed.
func Eventually(t testing.TB, timeout time.Duration, what string, cond Cond) {
	t.Helper()
	ctx, cancel := context.WithTimeoutCause(context.Background(), timeout, fmt.Errorf("timed out after %s", timeout))
	defer cancel()
	Until(ctx, t, what, cond)
}

// Until calls cond every Interval until it reports true, and fails t with
// what, ctx's cause and cond's last error once ctx ends: for waits that
// share one deadline.
func Until(ctx context.Context, t testing.TB, what string, cond Cond) {
	t.Helper()
	tick := time.NewTicker(Interval)
	defer tick.Stop()
	var last error
	for {
		ok, err := cond()
		if ok {
			return
		}
		last = err
		select {
		case <-ctx.Done():
			t.Fatalf("waiting for %s: %v (last error: %v)", what, context.Cause(ctx), last)
			return
		case <-tick.C:
		}
	}
}
