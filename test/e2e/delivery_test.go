//go:build e2e

package e2e

// How the tests deliver Engine events to the handler.
//
// Through a Broker, as in production: s.post and s.mustPost (stack_test.go)
// send with knative.dev/eventing's own dispatcher (pkg/kncloudevents), in
// binary mode, with the retry, backoff and timeout of the
// config/trigger-*.yaml Trigger that filters for the event's type (only the
// backoff delay shrunk), and a dead-letter sink per stack. An event the
// dispatcher gives up on goes to that sink; the test fails at its end for
// any dead letter it did not take with s.takeDeadLetters, so a test that
// expects one says so. Every other test posts Engine events this way.
//
// Direct HTTP, one request and its raw answer (s.postDirect, or the test's
// own client), where a Broker would never deliver the request as it is or
// the test is about one attempt's answer:
//   - badinput_test.go TestBadInput: malformed requests, refused at once;
//   - auth_test.go postAs: a chosen Authorization header on each request;
//   - updown_test.go TestUpHandlerDown: the README's curl, as written;
//   - faults_test.go TestAPIServerDownDuringBurst (the 5xx of each attempt
//     during the outage, then redelivery by hand), TestSIGTERMDrainsInFlight
//     (the answer to the attempt in flight) and the flood helper (hundreds
//     of parallel copies, each to be answered 200 in time);
//   - Tekton's events to the sink, which reach it without a Broker.

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	cloudevents "github.com/cloudevents/sdk-go/v2"
	cehttp "github.com/cloudevents/sdk-go/v2/protocol/http"
	"github.com/cloudevents/sdk-go/v2/types"
	eventingduckv1 "knative.dev/eventing/pkg/apis/duck/v1"
	"knative.dev/eventing/pkg/eventingtls"
	"knative.dev/eventing/pkg/kncloudevents"
	"knative.dev/eventing/pkg/kncloudevents/attributes"
	"knative.dev/pkg/apis"
	duckv1 "knative.dev/pkg/apis/duck/v1"
	"sigs.k8s.io/yaml"

	"github.com/boomerang-io/flow-tekton-handler/internal/contract"
	"github.com/boomerang-io/flow-tekton-handler/internal/status"
	"github.com/boomerang-io/flow-tekton-handler/test/wait"

	// The dispatcher reads the system namespace (knative.dev/pkg/system)
	// when it dead-letters an event, and panics when SYSTEM_NAMESPACE is
	// unset; this sets it for the test binary.
	_ "knative.dev/pkg/system/testing"
)

// backoffShrink divides the Triggers' backoff delay, the one delivery
// setting the tests change, so that retries take seconds, not minutes. The
// backoff is divided rather than the delay rewritten because Knative's
// ISO 8601 parser keeps only tenths of a second; both policies scale with
// the delay (linear: delay × n, exponential: delay × 2ⁿ).
const backoffShrink = 100

// dispatcher is Knative's event sender, as the Broker's filter uses it.
var dispatcher = kncloudevents.NewDispatcher(eventingtls.ClientConfig{}, nil)

// triggerDelivery reads the delivery spec of each config/trigger-*.yaml
// Trigger by the event type it filters for.
func triggerDelivery() (map[string]eventingduckv1.DeliverySpec, error) {
	files, err := filepath.Glob(filepath.Join("..", "..", "config", "trigger-*.yaml"))
	if err != nil || len(files) == 0 {
		return nil, fmt.Errorf("no config/trigger-*.yaml (%v)", err)
	}
	specs := map[string]eventingduckv1.DeliverySpec{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		var tr struct {
			Spec struct {
				Filter struct {
					Attributes map[string]string `json:"attributes"`
				} `json:"filter"`
				Delivery *eventingduckv1.DeliverySpec `json:"delivery"`
			} `json:"spec"`
		}
		if err := yaml.Unmarshal(b, &tr); err != nil {
			return nil, fmt.Errorf("%s: %w", f, err)
		}
		typ := tr.Spec.Filter.Attributes["type"]
		if _, dup := specs[typ]; dup || typ == "" || tr.Spec.Delivery == nil {
			return nil, fmt.Errorf("%s: want one Trigger with spec.delivery per event type, got type %q", f, typ)
		}
		specs[typ] = *tr.Spec.Delivery
	}
	return specs, nil
}

var triggers = sync.OnceValues(triggerDelivery)

// retryConfig is the dispatcher's retry configuration for an event type:
// its Trigger's delivery spec, the backoff divided by backoffShrink.
func retryConfig(eventType string) (kncloudevents.RetryConfig, error) {
	specs, err := triggers()
	if err != nil {
		return kncloudevents.RetryConfig{}, err
	}
	spec, ok := specs[eventType]
	if !ok {
		return kncloudevents.RetryConfig{}, fmt.Errorf("no Trigger in config/ delivers type %q to the handler", eventType)
	}
	rc, err := kncloudevents.RetryConfigFromDeliverySpec(spec)
	if err != nil {
		return rc, err
	}
	backoff := rc.Backoff
	rc.Backoff = func(attempt int, resp *http.Response) time.Duration { return backoff(attempt, resp) / backoffShrink }
	return rc, nil
}

// deadLetter is an event the dispatcher gave up on, with the handler's last
// answer as the dispatcher reports it (knativeerrorcode, knativeerrordata).
type deadLetter struct {
	ID, Type string
	Code     int
	Body     string
}

// letterHeader carries the index of the letter in the dead-letter sink's
// answer, which the dispatcher returns to its caller.
const letterHeader = "X-Dead-Letter"

// deadLetterSink records the letters of one stack.
type deadLetterSink struct {
	srv     *httptest.Server
	mu      sync.Mutex
	letters []deadLetter
	taken   int // letters before this index were taken by the test
}

func (d *deadLetterSink) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	ev, err := cehttp.NewEventFromHTTPRequest(r)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	ext := ev.Extensions()
	code, _ := types.ToInteger(ext[attributes.KnativeErrorCodeExtensionKey])
	data, _ := types.ToString(ext[attributes.KnativeErrorDataExtensionKey])
	body := make([]byte, base64.StdEncoding.DecodedLen(len(data)))
	n, _ := base64.StdEncoding.Decode(body, []byte(data)) // cut at 1024 characters
	d.mu.Lock()
	d.letters = append(d.letters, deadLetter{ID: ev.ID(), Type: ev.Type(), Code: int(code), Body: string(body[:n])})
	i := len(d.letters) - 1
	d.mu.Unlock()
	w.Header().Set(letterHeader, strconv.Itoa(i))
	w.WriteHeader(http.StatusAccepted)
}

// letter returns the letter at index i.
func (d *deadLetterSink) letter(i string) (deadLetter, bool) {
	n, err := strconv.Atoi(i)
	d.mu.Lock()
	defer d.mu.Unlock()
	if err != nil || n < 0 || n >= len(d.letters) {
		return deadLetter{}, false
	}
	return d.letters[n], true
}

// take returns the letters not taken yet and marks them taken.
func (d *deadLetterSink) take() []deadLetter {
	d.mu.Lock()
	defer d.mu.Unlock()
	l := d.letters[d.taken:]
	d.taken = len(d.letters)
	return l
}

var (
	deadLetterSinksMu sync.Mutex
	deadLetterSinks   = map[*stack]*deadLetterSink{}
)

// deadLetters returns the stack's dead-letter sink, started on first use.
// When the test ends, every letter it did not take fails it: a good event
// must never be dead-lettered.
func (s *stack) deadLetters() *deadLetterSink {
	deadLetterSinksMu.Lock()
	defer deadLetterSinksMu.Unlock()
	if d := deadLetterSinks[s]; d != nil {
		return d
	}
	d := &deadLetterSink{}
	d.srv = httptest.NewServer(d)
	deadLetterSinks[s] = d
	s.t.Cleanup(func() {
		d.srv.Close()
		deadLetterSinksMu.Lock()
		delete(deadLetterSinks, s)
		deadLetterSinksMu.Unlock()
		for _, l := range d.take() {
			s.t.Errorf("event %s (%s) was dead-lettered; the handler's last answer: %d %s", l.ID, l.Type, l.Code, l.Body)
		}
	})
	return d
}

// takeDeadLetters returns the letters the dispatcher sent the stack's
// dead-letter sink since the last call; the test takes responsibility for
// them.
func (s *stack) takeDeadLetters() []deadLetter {
	return s.deadLetters().take()
}

// delivery is the outcome of one event sent through the dispatcher.
type delivery struct {
	code       int    // the handler's final answer; with err set, 0
	body       string // its body
	deadLetter bool   // the dispatcher gave up and the dead-letter sink took it
	err        error  // neither the handler nor the dead-letter sink took it
}

// deliver sends a structured CloudEvent to the handler as the Broker would.
func (s *stack) deliver(body []byte) delivery {
	var ev cloudevents.Event
	if err := json.Unmarshal(body, &ev); err != nil {
		return delivery{err: fmt.Errorf("not a structured CloudEvent: %w", err)}
	}
	rc, err := retryConfig(ev.Type())
	if err != nil {
		return delivery{err: err}
	}
	target, err := apis.ParseURL(s.handler.URL)
	if err != nil {
		return delivery{err: err}
	}
	dls := s.deadLetters()
	dlsURL, err := apis.ParseURL(dls.srv.URL)
	if err != nil {
		return delivery{err: err}
	}
	info, err := send(ev, target, rc, dlsURL)
	if err != nil {
		return delivery{err: err}
	}
	// The dispatcher returns the dead-letter sink's answer when it used it.
	if i := info.ResponseHeader.Get(letterHeader); i != "" {
		l, ok := dls.letter(i)
		if !ok {
			return delivery{err: fmt.Errorf("the dead-letter sink answered letter %q, which it does not hold", i)}
		}
		return delivery{code: l.Code, body: l.Body, deadLetter: true}
	}
	return delivery{code: info.ResponseCode, body: string(info.ResponseBody)}
}

// send is the dispatcher's SendEvent. In knative.dev/eventing v0.46.0 it
// panics when it dead-letters an answer whose body is over 768 bytes (it
// base64-encodes the body into a 1024-byte buffer): a failed delivery for
// the test, not a crash of every test.
func send(ev cloudevents.Event, target *apis.URL, rc kncloudevents.RetryConfig, dls *apis.URL) (info *kncloudevents.DispatchInfo, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("knative's dispatcher panicked: %v", r)
		}
	}()
	return dispatcher.SendEvent(context.Background(), ev, duckv1.Addressable{URL: target},
		kncloudevents.WithRetryConfig(&rc), kncloudevents.WithDeadLetterSink(&duckv1.Addressable{URL: dls}))
}

// Through the Broker's dispatcher, an event the handler refuses for good
// (400) is tried once and goes to the dead-letter sink with the handler's
// answer; one the handler cannot complete yet (503: the Engine refuses its
// token) is tried as often as its Trigger says, then dead-lettered.
func TestDeadLetters(t *testing.T) {
	s := newStack(t, nil)
	rc, err := retryConfig(string(contract.TypeTaskRun))
	if err != nil {
		t.Fatal(err)
	}
	// The handler logs one "event" line per attempt.
	attempts := func() int { return strings.Count(s.handler.Logs(), `"msg":"event"`) }
	for _, tc := range []struct {
		name     string
		data     string
		setup    func()
		code     int
		field    string
		attempts int
	}{
		{name: "refused for good", data: `{"type":"custom","status":"ready","phase":"pending","spec":{"image":"alpine"}}`,
			code: http.StatusBadRequest, field: "data.id", attempts: 1},
		{name: "engine unavailable", data: `{"id":"` + taskID(0xd00) + `","type":"custom","status":"ready","phase":"pending","spec":{"image":"alpine","command":["true"]}}`,
			setup: func() { s.engine.FailFor(time.Hour, http.StatusUnauthorized) }, code: http.StatusServiceUnavailable, attempts: rc.RetryMax + 1},
	} {
		if tc.setup != nil {
			tc.setup()
		}
		before := attempts()
		code, body := s.post(s.known(structuredEvent(string(contract.TypeTaskRun), tc.data)))
		letters := s.takeDeadLetters()
		if len(letters) != 1 || letters[0].ID != "bad-1" || letters[0].Code != tc.code || code != tc.code {
			t.Fatalf("%s: answer %d %s, dead letters %+v; want one letter for bad-1 with %d", tc.name, code, body, letters, tc.code)
		}
		var b status.Body
		if err := json.Unmarshal([]byte(letters[0].Body), &b); err != nil || b.Field != tc.field {
			t.Errorf("%s: the letter carries the answer %q, want the handler's JSON naming %q", tc.name, letters[0].Body, tc.field)
		}
		wait.Eventually(s.t, 10*time.Second, tc.name+": the handler's log of every attempt", func() (bool, error) {
			return attempts()-before >= tc.attempts, nil
		})
		if n := attempts() - before; n != tc.attempts {
			t.Errorf("%s: %d attempts, want %d", tc.name, n, tc.attempts)
		}
	}
}
