package frontdoor

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptrace"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/boomerang-io/flow-tekton-handler/test/fnproc"
)

// phases are the front-door load: a burst with a third of the requests
// abandoned by the client right after sending (as a Broker's delivery
// timeout does), then a burst with none abandoned.
var phases = []phase{
	{events: 3000, concurrency: 64, abandonEvery: 3},
	{events: 2000, concurrency: 32},
}

const (
	// answerWithin bounds every request that was not abandoned.
	answerWithin = 2 * time.Second
	// exitWithin bounds SIGTERM to exit, right after the load.
	exitWithin = 5 * time.Second
)

type phase struct {
	events, concurrency int
	abandonEvery        int // 0: none abandoned
}

// report is what one server did under the load.
type report struct {
	sent, abandoned, ok int
	failed              []string // requests not abandoned that were not answered 2xx in time
	exit                time.Duration
	exitErr             error
}

func (r report) String() string {
	return fmt.Sprintf("%d sent, %d abandoned, %d answered 2xx, %d not answered 2xx within %s, SIGTERM to exit %s (%v)",
		r.sent, r.abandoned, r.ok, len(r.failed), answerWithin, r.exit.Round(time.Millisecond), r.exitErr)
}

// healthy reports whether the server met the bar.
func (r report) healthy() bool {
	return len(r.failed) == 0 && r.exitErr == nil && r.exit <= exitWithin
}

// Every request is answered by the function's own front door, promptly, and
// SIGTERM after the load stops the process within a few seconds.
func TestNoRequestLeftBehind(t *testing.T) {
	if testing.Short() {
		t.Skip("stress test")
	}
	r := stress(t, modeFunction)
	t.Logf("front door: %s", r)
	if !r.healthy() {
		t.Errorf("front door failed the load: %s; first failures: %v", r, first(r.failed, 5))
	}
}

// The control: the same load against func-go's CloudEvents middleware,
// whose receiver (sdk-go's NewHTTPReceiveHandler) pairs requests with
// handlers through one shared channel (cloudevents/sdk-go#1224, #1332).
// It must show the stall, or the test above could not detect one. The
// stall is a race, so the control runs the load up to three times.
func TestControlShowsTheStall(t *testing.T) {
	if testing.Short() {
		t.Skip("stress test")
	}
	for try := 1; try <= 3; try++ {
		r := stress(t, modeCloudEvents)
		t.Logf("func-go CloudEvents middleware, try %d: %s", try, r)
		if !r.healthy() {
			return
		}
	}
	t.Fatal("the control never stalled: the stress test cannot tell a stalling receiver from a good one")
}

func first(s []string, n int) []string { return s[:min(n, len(s))] }

// stress starts a server in mode, runs the phases, and stops it.
func stress(t *testing.T, mode string) report {
	t.Helper()
	p := serve(t, mode)
	var r report
	// Abandoned requests get connections of their own: in a shared pool,
	// a dial a cancelled request started can be handed to another request
	// and fail it with the first one's "context canceled".
	clients := clients{
		keep:    &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 128, MaxConnsPerHost: 0}},
		abandon: &http.Client{Transport: &http.Transport{DisableKeepAlives: true}},
	}
	defer clients.keep.CloseIdleConnections()
	for _, ph := range phases {
		run(p.URL, clients, ph, &r)
	}
	began := time.Now()
	r.exitErr = p.Stop(exitWithin + 10*time.Second)
	r.exit = time.Since(began)
	return r
}

// clients send the requests answered (keep) and the abandoned ones.
type clients struct{ keep, abandon *http.Client }

// run sends one phase and adds its counts to r.
func run(url string, c clients, ph phase, r *report) {
	var mu sync.Mutex
	var next atomic.Int64
	var wg sync.WaitGroup
	for range ph.concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1))
				if i > ph.events {
					return
				}
				abandon := ph.abandonEvery > 0 && i%ph.abandonEvery == 0
				client := c.keep
				if abandon {
					client = c.abandon
				}
				err := send(client, url, i, abandon)
				mu.Lock()
				r.sent++
				switch {
				case abandon:
					r.abandoned++
				case err == nil:
					r.ok++
				default:
					r.failed = append(r.failed, fmt.Sprintf("event %d: %v", i, err))
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
}

// eventData is the data of a binary-mode workflow event whose status asks for nothing: the
// function decodes it and skips it without calling anything.
const eventData = `{"id":"65a1f0c2e4b0a1b2c3d4e5f6","status":"active"}`

// send POSTs event i. An abandoned request is cancelled as soon as it has
// been written; any other must be answered 2xx within answerWithin.
func send(client *http.Client, url string, i int, abandon bool) error {
	ctx, cancel := context.WithTimeout(context.Background(), answerWithin)
	defer cancel()
	if abandon {
		ctx = httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{WroteRequest: func(httptrace.WroteRequestInfo) { cancel() }})
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, strings.NewReader(eventData))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Ce-Specversion", "1.0")
	req.Header.Set("Ce-Id", fmt.Sprintf("stress-%d", i))
	req.Header.Set("Ce-Source", "/stress")
	req.Header.Set("Ce-Type", "io.boomerang.event.status.workflow")
	resp, err := client.Do(req)
	if err != nil {
		if abandon && errors.Is(err, context.Canceled) {
			return nil
		}
		return err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("answered %d", resp.StatusCode)
	}
	return nil
}

// serve runs this test binary as the server in mode (see TestMain) against
// an apiserver nobody listens on, and waits until it is ready.
func serve(t *testing.T, mode string) *fnproc.Proc {
	t.Helper()
	kubeconfig := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(kubeconfig, []byte(unreachableKubeconfig), 0o600); err != nil {
		t.Fatal(err)
	}
	return start(t, mode, map[string]string{"KUBECONFIG": kubeconfig})
}

// start runs this test binary as the server in mode with env added to the
// handler's settings, and waits until it is ready.
func start(t *testing.T, mode string, env map[string]string) *fnproc.Proc {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	all := map[string]string{
		serveMode:    mode,
		"FUNCTION":   "handler",
		"ENGINE_URL": "http://127.0.0.1:9", // never reached in these tests
		"NAMESPACE":  "default",
	}
	for k, v := range env {
		all[k] = v
	}
	p, err := fnproc.Start(ctx, os.Args[0], all)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = p.Kill()
		if t.Failed() {
			t.Logf("%s log:\n%s", mode, p.Logs())
		}
	})
	return p
}

// unreachableKubeconfig names an apiserver nobody listens on: the clients
// are built at start, and a skipped event never calls them.
const unreachableKubeconfig = `apiVersion: v1
kind: Config
clusters:
- name: none
  cluster:
    server: https://127.0.0.1:9
contexts:
- name: none
  context:
    cluster: none
    user: none
current-context: none
users:
- name: none
  user:
    token: none
`
