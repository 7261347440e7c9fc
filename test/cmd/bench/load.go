package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// taskData is the data of an Engine task event (the custom task of the
// contract fixture engine-taskrun-custom-ready.json); %s is the task id.
const taskData = `{"id":"%s","type":"custom","name":"Curl Health Check","status":"ready","phase":"pending",` +
	`"creationDate":1741056060123,"duration":0,"labels":{},"params":[{"name":"url","value":"https://example.org/health"}],` +
	`"annotations":{},"results":[],"workspaces":[],` +
	`"spec":{"image":"curlimages/curl:8.9.1","command":["curl"],"arguments":["-fsS","--max-time","10","https://example.org/health"],"envs":[],"debug":false},` +
	`"taskRef":"65a1e0aae4b0a1b2c3d4e500","taskVersion":3,"workflowRef":"65a1f0c2e4b0a1b2c3d4e5f6",` +
	`"workflowRevisionRef":"65a1f0c2e4b0a1b2c3d4e5f7","workflowRunRef":"65a1f0d9e4b0a1b2c3d4e601","workflowName":"build-and-notify"}`

// taskEvent is a structured-mode Engine task event around data: CloudEvent
// id, subject task id, data.
const taskEvent = `{"specversion":"1.0","id":"%s","source":"/apis/v1/events","type":"io.boomerang.event.status.taskrun",` +
	`"subject":"/taskrun/%s/status/ready","time":"2025-03-04T02:41:07.512Z","datacontenttype":"application/json","data":%s}`

// ids hands out task ids: 24 hex characters like the Engine's ObjectIds,
// distinct within a run and, through a random prefix, across runs.
type ids struct {
	prefix string
	n      atomic.Uint64
	// know, when set, is given each new task's event: the Engine stand-in
	// knows the tasks the Engine sent events for.
	know func(event []byte) bool
}

func newIDs() (*ids, error) {
	b := make([]byte, 4)
	if _, err := rand.Read(b); err != nil {
		return nil, err
	}
	return &ids{prefix: hex.EncodeToString(b)}, nil
}

// next returns a new task id.
func (g *ids) next() string { return fmt.Sprintf("%s%016x", g.prefix, g.n.Add(1)) }

// task is one Engine task event.
type task struct {
	id   string
	data []byte // the event's data
	body []byte // the whole structured-mode event
}

// newTask makes the event of a new task.
func (g *ids) newTask() task {
	id := g.next()
	data := fmt.Appendf(nil, taskData, id)
	t := task{id: id, data: data, body: fmt.Appendf(nil, taskEvent, "ce-"+id, id, data)}
	if g.know != nil {
		g.know(t.body)
	}
	return t
}

// newTasks makes n task events.
func (g *ids) newTasks(n int) []task {
	out := make([]task, n)
	for i := range out {
		out[i] = g.newTask()
	}
	return out
}

// sender POSTs events to functions the way a Broker's dispatcher does: a
// connection per concurrent request and a timeout per request. It only
// sends: nothing else goes to a function while a run's requests are out,
// so a request the function does not answer in time is a failure.
type sender struct {
	client  *http.Client
	timeout time.Duration
}

func newSender(timeout time.Duration) *sender {
	return &sender{
		timeout: timeout,
		client: &http.Client{Transport: &http.Transport{
			DialContext:         (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
			MaxIdleConns:        512,
			MaxIdleConnsPerHost: 512,
			IdleConnTimeout:     90 * time.Second,
			DisableCompression:  true,
		}},
	}
}

// closeIdle closes the connections no request is using. The transport may
// have dialled some that never carried a request; a server shutting down
// waits up to 5 s for those (net/http, issue 22682).
func (s *sender) closeIdle() { s.client.CloseIdleConnections() }

// statusError is an answer other than 200.
type statusError struct {
	url    string
	status int
	body   string
}

func (e *statusError) Error() string {
	return fmt.Sprintf("POST %s: %d %s", e.url, e.status, e.body)
}

// answered reports whether err is an answer other than 200, as opposed to
// no answer within the timeout (or a connection that failed).
func answered(err error) bool {
	var se *statusError
	return errors.As(err, &se)
}

// post sends one structured-mode event to url and fails unless it is
// answered 200 within the timeout.
func (s *sender) post(ctx context.Context, url string, body []byte) error {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/cloudevents+json")
	resp, err := s.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	msg, err := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if err != nil {
		return fmt.Errorf("POST %s: read the answer: %w", url, err)
	}
	if resp.StatusCode != http.StatusOK {
		return &statusError{url: url, status: resp.StatusCode, body: string(bytes.TrimSpace(msg))}
	}
	return nil
}

// maxFailed is how many failed calls a run records before it gives up: a
// few are figures worth reporting, more mean the run measures nothing.
const maxFailed = 10

// calls is the outcome of the calls of one run.
type calls struct {
	lat    []time.Duration // of each call that succeeded
	ends   []time.Duration // when each call that succeeded ended, from the start
	failed []error         // of each call that failed
	wall   time.Duration   // of all, failed ones included
}

// doneBy counts the calls that succeeded by t from the start.
func (c calls) doneBy(t time.Duration) int {
	n := 0
	for _, e := range c.ends {
		if e <= t {
			n++
		}
	}
	return n
}

// drive runs do(i) for every i in [0, n) on conc workers. A failed call is
// recorded and the others go on, up to maxFailed failures; then, or when
// ctx ends, drive stops and returns an error.
func drive(ctx context.Context, n, conc int, do func(ctx context.Context, i int) error) (calls, error) {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var (
		next atomic.Int64
		wg   sync.WaitGroup
		mu   sync.Mutex
		c    calls
	)
	began := time.Now()
	for range min(conc, n) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				t0 := time.Now()
				err := do(ctx, i)
				d := time.Since(t0)
				if err != nil && ctx.Err() != nil {
					return // stopped under it: not the call's failure
				}
				mu.Lock()
				if err == nil {
					c.lat = append(c.lat, d)
					c.ends = append(c.ends, time.Since(began))
				} else {
					c.failed = append(c.failed, fmt.Errorf("call %d of %d: %w", i+1, n, err))
					if len(c.failed) >= maxFailed {
						cancel(fmt.Errorf("%d calls failed, the first: %w", len(c.failed), c.failed[0]))
					}
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	c.wall = time.Since(began)
	if err := context.Cause(ctx); err != nil {
		return c, err
	}
	return c, nil
}

// together runs do(ctx, j) for j in [0, copies) at the same moment (all
// released at once), waits for all and returns the errors of those that
// failed.
func together(ctx context.Context, copies int, do func(ctx context.Context, j int) error) []error {
	start := make(chan struct{})
	errs := make([]error, copies)
	var wg sync.WaitGroup
	for j := range copies {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			errs[j] = do(ctx, j)
		}()
	}
	close(start)
	wg.Wait()
	var failed []error
	for _, err := range errs {
		if err != nil {
			failed = append(failed, err)
		}
	}
	return failed
}

// tally counts the requests a function was sent in measured runs and those
// it did not answer 200 within the request timeout.
type tally struct {
	sent       int
	unanswered int   // no answer in time, or the connection failed
	rejected   int   // answered other than 200
	first      error // the first failure
}

// add counts sent requests of which failed failed.
func (t *tally) add(sent int, failed []error) {
	t.sent += sent
	for _, err := range failed {
		if answered(err) {
			t.rejected++
		} else {
			t.unanswered++
		}
		if t.first == nil {
			t.first = err
		}
	}
}

func (t *tally) failed() int { return t.unanswered + t.rejected }

// failures renders the failed requests of a run for a progress line: ""
// for none.
func failures(failed []error) string {
	if len(failed) == 0 {
		return ""
	}
	return fmt.Sprintf(", %d FAILED (the first: %v)", len(failed), failed[0])
}
