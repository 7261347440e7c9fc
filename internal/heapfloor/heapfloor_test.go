package heapfloor

import (
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"runtime/metrics"
	"strings"
	"testing"
	"time"

	"github.com/boomerang-io/flow-tekton-handler/test/wait"
)

func TestPercent(t *testing.T) {
	for _, tc := range []struct {
		name        string
		live, floor uint64
		want        int
	}{
		{"nothing marked yet: the minimum heap becomes the floor", 0, 16 << 20, 400},
		{"below the runtime's minimum", 1 << 20, 16 << 20, 400},
		{"small live heap", 8 << 20, 16 << 20, 200},
		{"rounded up, never below the floor", 6 << 20, 16 << 20, 267},
		{"live heap at the floor: GOGC=100", 16 << 20, 16 << 20, 100},
		{"live heap past the floor: GOGC=100", 1 << 30, 16 << 20, 100},
		{"a floor below the minimum changes nothing", 0, 1 << 20, 100},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := Percent(tc.live, tc.floor); got != tc.want {
				t.Fatalf("Percent(%d, %d) = %d, want %d", tc.live, tc.floor, got, tc.want)
			}
		})
	}
}

// Start follows the live heap collection after collection, and leaves a
// GOGC from the environment alone. A started tuner runs for the rest of
// its process, so TestStartInProcess runs in a process of its own.
func TestStart(t *testing.T) {
	cmd := exec.Command(os.Args[0], "-test.run=^TestStartInProcess$", "-test.count=1", "-test.v")
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "GOGC=") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, inProcess+"=1")
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "--- PASS: TestStartInProcess") {
		t.Fatalf("TestStartInProcess did not pass: %v\n%s", err, out)
	}
}

// inProcess marks the process TestStart runs TestStartInProcess in.
const inProcess = "HEAPFLOOR_TEST_PROCESS"

func TestStartInProcess(t *testing.T) {
	if os.Getenv(inProcess) == "" {
		t.Skip("run by TestStart in a process of its own")
	}
	t.Setenv("GOGC", "100")
	Start(Floor)
	if got := gogc(t); got != 100 {
		t.Fatalf("with GOGC in the environment, GOGC = %d after Start, want 100", got)
	}
	os.Unsetenv("GOGC")

	Start(Floor)
	if got := gogc(t); got < 200 {
		t.Fatalf("GOGC = %d after Start with a live heap of %d bytes, want the floor's (%d)", got, live(t), Percent(live(t), Floor))
	}
	big := make([]byte, 4*Floor)
	waitGOGC(t, func(p int) bool { return p == 100 }, "100 with four floors live")
	runtime.KeepAlive(big)
	waitGOGC(t, func(p int) bool { return p >= 200 }, "the floor's again once they are garbage")
}

// waitGOGC collects until GOGC satisfies ok: each collection's cleanup sets
// it from the live heap that collection marked.
func waitGOGC(t *testing.T, ok func(int) bool, want string) {
	t.Helper()
	wait.Eventually(t, 10*time.Second, "GOGC "+want, func() (bool, error) {
		if p := gogc(t); !ok(p) {
			runtime.GC()
			return false, fmt.Errorf("GOGC %d with a live heap of %d bytes", p, live(t))
		}
		return true, nil
	})
}

func gogc(t *testing.T) int { return int(read(t, "/gc/gogc:percent")) }

func live(t *testing.T) uint64 { return read(t, "/gc/heap/live:bytes") }

func read(t *testing.T, name string) uint64 {
	t.Helper()
	s := []metrics.Sample{{Name: name}}
	metrics.Read(s)
	if s[0].Value.Kind() != metrics.KindUint64 {
		t.Fatalf("runtime/metrics has no %s", name)
	}
	return s[0].Value.Uint64()
}
