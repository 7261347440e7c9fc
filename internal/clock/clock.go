// Package clock holds the one way the functions wait.
package clock

import (
	"context"
	"time"
)

// Sleep waits d and returns nil, or returns ctx's error as soon as ctx
// ends.
func Sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
