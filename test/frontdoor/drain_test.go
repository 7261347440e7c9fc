package frontdoor

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/boomerang-io/flow-tekton-handler/function"
	"github.com/boomerang-io/flow-tekton-handler/internal/status"
	"github.com/boomerang-io/flow-tekton-handler/test/wait"
)

// hangingAPIServer answers no request until the test ends and records the
// TaskRuns it was asked for.
type hangingAPIServer struct {
	*httptest.Server
	mu       sync.Mutex
	taskRuns map[string]bool
	release  chan struct{}
}

func newHangingAPIServer(t *testing.T) *hangingAPIServer {
	a := &hangingAPIServer{taskRuns: map[string]bool{}, release: make(chan struct{})}
	a.Server = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if i := strings.Index(r.URL.Path, "/taskruns/"); i >= 0 {
			a.mu.Lock()
			a.taskRuns[r.URL.Path[i+len("/taskruns/"):]] = true
			a.mu.Unlock()
		}
		select {
		case <-a.release:
		case <-r.Context().Done():
		}
		http.Error(w, "released", http.StatusServiceUnavailable)
	}))
	t.Cleanup(func() { close(a.release); a.Close() })
	return a
}

func (a *hangingAPIServer) held() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.taskRuns)
}

// SIGTERM while events wait on an apiserver that does not answer: each is
// answered 503 (the sender retries) once function.DrainGrace has passed,
// and the process exits right after.
func TestSIGTERMCutsStuckWorkAfterGrace(t *testing.T) {
	if testing.Short() {
		t.Skip("process test")
	}
	api := newHangingAPIServer(t)
	kubeconfig := filepath.Join(t.TempDir(), "kubeconfig")
	cfg := strings.Replace(unreachableKubeconfig, "server: https://127.0.0.1:9", "server: "+api.URL+"\n    insecure-skip-tls-verify: true", 1)
	if err := os.WriteFile(kubeconfig, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	p := start(t, modeFunction, map[string]string{"KUBECONFIG": kubeconfig, "KUBE_TIMEOUT": "60s"})

	const n = 8
	type answer struct {
		code int
		body string
		err  error
	}
	answers := make([]answer, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			body := fmt.Sprintf(`{"specversion":"1.0","id":"drain-%d","source":"/test","type":"io.boomerang.event.status.taskrun","datacontenttype":"application/json",`+
				`"data":{"id":"65a1f1a0e4b0a1b2c3d4e7%02x","type":"script","status":"ready","phase":"pending","spec":{"image":"alpine","script":"true"}}}`, i, i)
			resp, err := (&http.Client{Timeout: time.Minute}).Post(p.URL, "application/cloudevents+json", bytes.NewReader([]byte(body)))
			if err != nil {
				answers[i].err = err
				return
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			answers[i] = answer{code: resp.StatusCode, body: string(b)}
		}()
	}
	wait.Eventually(t, 30*time.Second, fmt.Sprintf("the %d events to reach the apiserver", n), func() (bool, error) {
		select {
		case <-p.Done():
			t.Fatalf("the function exited:\n%s", p.Logs())
		default:
		}
		held := api.held()
		return held >= n, fmt.Errorf("only %d of %d did", held, n)
	})
	began := time.Now()
	if err := p.Stop(function.DrainGrace + 10*time.Second); err != nil {
		t.Fatalf("stop: %v\n%s", err, p.Logs())
	}
	took := time.Since(began)
	wg.Wait()
	if took < function.DrainGrace || took > function.DrainGrace+3*time.Second {
		t.Errorf("SIGTERM to exit %s, want between the grace %s and 3 s more", took.Round(time.Millisecond), function.DrainGrace)
	}
	for i, a := range answers {
		if a.err != nil || a.code != status.Transient || !strings.Contains(a.body, `"error":"Service Unavailable"`) {
			t.Errorf("event %d: %d %q %v, want %d with a JSON body", i, a.code, a.body, a.err, status.Transient)
		}
	}
	t.Logf("%d stuck events answered %d; SIGTERM to exit %s", n, status.Transient, took.Round(time.Millisecond))
}
