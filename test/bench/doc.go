// Package bench holds the Go micro-benchmarks of the pure, per-event work
// (run them with go test -bench . ./test/bench). RESULTS.md beside it is
// written by make bench (test/cmd/bench), which measures the functions as
// processes on the embedded control plane and includes these benchmarks.
package bench
