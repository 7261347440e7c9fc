package wait

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"
)

// fakeT records Fatalf and ends its goroutine, as testing.T does.
type fakeT struct {
	testing.TB
	failed string
}

func (f *fakeT) Helper() {}

func (f *fakeT) Fatalf(format string, args ...any) {
	f.failed = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

// run calls f with a fakeT on its own goroutine and returns the failure.
func run(f func(t testing.TB)) string {
	ft := &fakeT{}
	done := make(chan struct{})
	go func() {
		defer close(done)
		f(ft)
	}()
	<-done
	return ft.failed
}

func TestEventuallyHolds(t *testing.T) {
	calls := 0
	failed := run(func(ft testing.TB) {
		Eventually(ft, 5*time.Second, "third call", func() (bool, error) {
			calls++
			return calls == 3, errors.New("not yet")
		})
	})
	if failed != "" || calls != 3 {
		t.Errorf("failed %q after %d calls, want success after 3", failed, calls)
	}
}

func TestEventuallyTimesOut(t *testing.T) {
	calls := 0
	began := time.Now()
	failed := run(func(ft testing.TB) {
		Eventually(ft, 200*time.Millisecond, "never", func() (bool, error) {
			calls++
			if calls == 1 {
				return false, errors.New("first")
			}
			return false, fmt.Errorf("call %d", calls)
		})
	})
	took := time.Since(began)
	if !strings.HasPrefix(failed, "waiting for never: timed out after 200ms (last error: call ") {
		t.Errorf("failure %q", failed)
	}
	if strings.Contains(failed, "first") {
		t.Errorf("failure %q reports an earlier call's error", failed)
	}
	if took < 200*time.Millisecond || took > 2*time.Second {
		t.Errorf("gave up after %s, want about 200ms", took)
	}
	if calls < 2 {
		t.Errorf("%d calls, want several", calls)
	}
}

func TestUntilContextEnds(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	calls := 0
	failed := run(func(ft testing.TB) {
		Until(ctx, ft, "nothing", func() (bool, error) { calls++; return false, nil })
	})
	if failed != "waiting for nothing: context canceled (last error: <nil>)" || calls != 1 {
		t.Errorf("failure %q after %d calls", failed, calls)
	}
}
