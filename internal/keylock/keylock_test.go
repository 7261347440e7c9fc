package keylock

import (
	"sync"
	"sync/atomic"
	"testing"
)

func TestLockSerialisesOneKey(t *testing.T) {
	t.Parallel()
	var m Map
	var inside, maxInside atomic.Int32
	var wg sync.WaitGroup
	for range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			unlock := m.Lock("a")
			n := inside.Add(1)
			for {
				old := maxInside.Load()
				if n <= old || maxInside.CompareAndSwap(old, n) {
					break
				}
			}
			inside.Add(-1)
			unlock()
		}()
	}
	wg.Wait()
	if got := maxInside.Load(); got != 1 {
		t.Fatalf("at most one holder of a key at a time, saw %d", got)
	}
	if m.Len() != 0 {
		t.Fatalf("locks left behind: %d", m.Len())
	}
}

func TestLockKeysAreIndependent(t *testing.T) {
	t.Parallel()
	var m Map
	unlockA := m.Lock("a")
	done := make(chan struct{})
	go func() {
		m.Lock("b")()
		close(done)
	}()
	<-done // would hang if "b" waited for "a"
	unlockA()
}
