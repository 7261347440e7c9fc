package fnproc

import (
	"sync"
	"testing"
)

// FreeAddr never returns an address twice, even to callers at the same
// time: each port a caller closes is free for the kernel to hand out
// again, so 500 calls without that memory repeat one almost surely.
func TestFreeAddrNeverRepeats(t *testing.T) {
	t.Parallel()
	const n = 500
	addrs := make([]string, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			a, err := FreeAddr()
			if err != nil {
				t.Error(err)
			}
			addrs[i] = a
		})
	}
	wg.Wait()
	seen := map[string]bool{}
	for _, a := range addrs {
		if seen[a] {
			t.Fatalf("%s handed out twice", a)
		}
		seen[a] = true
	}
}
