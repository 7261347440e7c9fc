package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
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
	return task{id: id, data: data, body: fmt.Appendf(nil, taskEvent, "ce-"+id, id, data)}
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
// connection per concurrent request and a timeout per request.
//
// It also nudges: while the last requests of a run are out, it sends an
// event the functions ignore every nudgeEvery. func-go's CloudEvents
// receiver (cloudevents/sdk-go NewHTTPReceiveHandler, v2.16.2) hands each
// request to a consumer over one shared unbuffered channel; under load a
// consumer can leave without taking a message, and from then on every
// request is served by the consumer of the next one (cloudevents/sdk-go
// issues 1224 and 1332). Under steady traffic that costs one arrival gap;
// the last request of a run would wait forever. A nudge is that next
// arrival.
type sender struct {
	client  *http.Client
	timeout time.Duration
	nudges  atomic.Int64
}

// nudgeEvery is the gap between nudges.
const nudgeEvery = 20 * time.Millisecond

// nudgeEvent is a workflow event whose status asks for nothing: the handler
// decodes it and skips it, the bare function ignores it like any other.
const nudgeEvent = `{"specversion":"1.0","id":"nudge-%d","source":"/bench","type":"io.boomerang.event.status.workflow",` +
	`"datacontenttype":"application/json","data":{"id":"65a1f0c2e4b0a1b2c3d4e5f6","status":"active"}}`

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

// post sends one structured-mode event to url and fails unless it is
// answered 200 within the timeout.
func (s *sender) post(ctx context.Context, url string, body []byte) error {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	return s.attempt(ctx, url, body)
}

// nudger returns a function that nudges url until done is closed.
func (s *sender) nudger(url string) func(done <-chan struct{}) {
	return func(done <-chan struct{}) {
		t := time.NewTicker(nudgeEvery)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				n := s.nudges.Add(1)
				go func() {
					ctx, cancel := context.WithTimeout(context.Background(), time.Second)
					defer cancel()
					_ = s.attempt(ctx, url, fmt.Appendf(nil, nudgeEvent, n))
				}()
			}
		}
	}
}

func (s *sender) attempt(ctx context.Context, url string, body []byte) error {
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
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("POST %s: %d %s", url, resp.StatusCode, bytes.TrimSpace(msg))
	}
	return nil
}

// drive runs do(i) for every i in [0, n) on conc workers and returns the
// latency of each call and the wall time of all. It stops at the first
// error. tail, when not nil, runs from the moment the last call starts
// until every call has returned.
func drive(ctx context.Context, n, conc int, do func(ctx context.Context, i int) error, tail func(done <-chan struct{})) ([]time.Duration, time.Duration, error) {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	lat := make([]time.Duration, n)
	var next atomic.Int64
	var wg sync.WaitGroup
	done := make(chan struct{})
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
				if i == n-1 && tail != nil {
					go tail(done)
				}
				t0 := time.Now()
				if err := do(ctx, i); err != nil {
					cancel(fmt.Errorf("call %d of %d: %w", i+1, n, err))
					return
				}
				lat[i] = time.Since(t0)
			}
		}()
	}
	wg.Wait()
	wall := time.Since(began)
	close(done)
	if err := context.Cause(ctx); err != nil {
		return nil, 0, err
	}
	return lat, wall, nil
}

// together runs do(ctx, j) for j in [0, copies) at the same moment (all
// released at once) and waits for all; it returns the first error. tail,
// when not nil, runs until all have returned.
func together(ctx context.Context, copies int, do func(ctx context.Context, j int) error, tail func(done <-chan struct{})) error {
	start := make(chan struct{})
	errs := make(chan error, copies)
	var wg sync.WaitGroup
	for j := range copies {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			errs <- do(ctx, j)
		}()
	}
	close(start)
	done := make(chan struct{})
	if tail != nil {
		go tail(done)
	}
	wg.Wait()
	close(done)
	close(errs)
	for err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}
