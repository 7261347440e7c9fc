package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/boomerang-io/flow-tekton-handler/internal/contract"
	"github.com/boomerang-io/flow-tekton-handler/internal/kube"
)

// protocol is the second floor: the contract's own calls for a new task,
// made by hand one after the other with raw client-go and net/http, with
// objects built beforehand. They are the calls the design cannot do
// without: ask the Engine whether the task is pending, create the params
// ConfigMap under a claim, start the task in the Engine, create the
// TaskRun. The workflow run's claims are known (read once per run).
type protocol struct {
	*floor
	engine string
	http   *http.Client
}

// newProtocol returns a protocol floor in a new namespace.
func (b *bench) newProtocol(ctx context.Context, prefix string) (*protocol, error) {
	f, err := b.newFloor(ctx, prefix, b.o.qps, b.o.burst)
	if err != nil {
		return nil, err
	}
	// The Engine client's pool (internal/engine): connections kept for every
	// concurrent call, not net/http's default two per host, which would
	// dial anew for most calls above c=2.
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConnsPerHost = t.MaxIdleConns
	return &protocol{floor: f, engine: b.engine.URL(), http: &http.Client{Transport: t, Timeout: b.o.timeout}}, nil
}

// do makes the calls of one task; t is built, and claimed here.
func (p *protocol) do(ctx context.Context, id string, t built) error {
	if err := p.call(ctx, http.MethodGet, "/api/v1/taskrun/"+id, nil); err != nil {
		return err
	}
	opts := metav1.CreateOptions{FieldManager: kube.FieldManager}
	metav1.SetMetaDataAnnotation(&t.ConfigMap.ObjectMeta, contract.AnnotationClaimed, contract.ClaimValue(time.Now()))
	if _, err := p.kube.CoreV1().ConfigMaps(p.ns).Create(ctx, t.ConfigMap, opts); err != nil {
		return fmt.Errorf("create configmap %s/%s: %w", p.ns, t.ConfigMap.Name, err)
	}
	if err := p.call(ctx, http.MethodPut, "/api/v1/taskrun/"+id+"/start", []byte("{}")); err != nil {
		return err
	}
	if _, err := p.tekton.TektonV1().TaskRuns(p.ns).Create(ctx, t.run, opts); err != nil {
		return fmt.Errorf("create taskrun %s/%s: %w", p.ns, t.TaskRun.Name, err)
	}
	return nil
}

// call makes one request to the Engine stand-in and wants a 2xx.
func (p *protocol) call(ctx context.Context, method, path string, body []byte) error {
	req, err := http.NewRequestWithContext(ctx, method, p.engine+path, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := p.http.Do(req)
	if err != nil {
		return fmt.Errorf("engine %s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	answer, _ := io.ReadAll(resp.Body)
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("engine %s %s: %d %s", method, path, resp.StatusCode, answer)
	}
	return nil
}

// protocolRun makes the calls of n distinct tasks at concurrency conc.
func (b *bench) protocolRun(ctx context.Context, conc, n int) (result, error) {
	p, err := b.newProtocol(ctx, fmt.Sprintf("protocol-c%d", conc))
	if err != nil {
		return result{}, err
	}
	warm := b.ids.newTasks(warmups)
	tasks := b.ids.newTasks(n)
	built, err := p.build(append(warm, tasks...))
	if err != nil {
		return result{}, err
	}
	for i := range warm {
		if err := p.do(ctx, warm[i].id, built[i]); err != nil {
			return result{}, err
		}
	}
	built = built[warmups:]
	return b.floorMeasure(ctx, "protocol floor", n, conc, func(ctx context.Context, i int) error { return p.do(ctx, tasks[i].id, built[i]) })
}
