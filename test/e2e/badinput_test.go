//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	pipelinev1 "github.com/tektoncd/pipeline/pkg/apis/pipeline/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/boomerang-io/flow-tekton-handler/internal/engine"
	"github.com/boomerang-io/flow-tekton-handler/test/enginestub"
)

// badCase is one request the handler must refuse without side effects.
type badCase struct {
	name      string
	ctype     string
	headers   map[string]string
	body      []byte
	wantCode  int
	wantField string // the field or attribute the JSON error body names
}

var ceHeaders = map[string]string{"ce-specversion": "1.0", "ce-id": "bad-1", "ce-source": "/apis/v1/events", "ce-type": "io.boomerang.event.status.taskrun"}

func headersWithout(drop string, extra map[string]string) map[string]string {
	h := map[string]string{}
	for k, v := range ceHeaders {
		if k != drop {
			h[k] = v
		}
	}
	for k, v := range extra {
		h[k] = v
	}
	return h
}

// structured returns a structured-mode event with the given data (raw JSON).
func structuredEvent(ceType, data string) []byte {
	return fmt.Appendf(nil, `{"specversion":"1.0","id":"bad-1","source":"/apis/v1/events","type":%q,"datacontenttype":"application/json","data":%s}`, ceType, data)
}

func task(fields string) string {
	return `{"id":"65a1f1a0e4b0a1b2c3d4e699","type":"script","status":"ready","phase":"pending","spec":{"image":"alpine","script":"true"}` + fields + `}`
}

func badCases() []badCase {
	const tr = "io.boomerang.event.status.taskrun"
	const wr = "io.boomerang.event.status.workflowrun"
	deep := strings.Repeat("[", 100000) + strings.Repeat("]", 100000)
	cases := []badCase{
		// Envelope problems, answered by the front door.
		{name: "plain text body", ctype: "text/plain", body: []byte("hello"), wantCode: 415, wantField: "ce-specversion"},
		{name: "empty body no headers", ctype: "application/json", body: nil, wantCode: 415, wantField: "ce-specversion"},
		{name: "binary without ce-id", ctype: "application/json", headers: headersWithout("ce-id", nil), body: []byte(task("")), wantCode: 400, wantField: "id"},
		{name: "binary without ce-source", ctype: "application/json", headers: headersWithout("ce-source", nil), body: []byte(task("")), wantCode: 400, wantField: "source"},
		{name: "binary without ce-type", ctype: "application/json", headers: headersWithout("ce-type", nil), body: []byte(task("")), wantCode: 400, wantField: "type"},
		{name: "binary unknown specversion", ctype: "application/json", headers: headersWithout("", map[string]string{"ce-specversion": "9.9"}), body: []byte(task("")), wantCode: 400, wantField: "ce-specversion"},
		{name: "binary bad ce-time", ctype: "application/json", headers: headersWithout("", map[string]string{"ce-time": "yesterday"}), body: []byte(task("")), wantCode: 400, wantField: "headers"},
		{name: "structured without id", ctype: "application/cloudevents+json", body: []byte(`{"specversion":"1.0","source":"/s","type":"` + tr + `","data":{}}`), wantCode: 400, wantField: "id"},
		{name: "structured body not JSON", ctype: "application/cloudevents+json", body: []byte(`hello`), wantCode: 400, wantField: "body"},
		{name: "structured body truncated", ctype: "application/cloudevents+json", body: structuredEvent(tr, task(""))[:60], wantCode: 400, wantField: "body"},
		{name: "batch mode", ctype: "application/cloudevents-batch+json", body: []byte("[" + string(structuredEvent(tr, task(""))) + "]"), wantCode: 415, wantField: "content-type"},
		// Type outside the Engine's prefix.
		{name: "foreign type", ctype: "application/cloudevents+json", body: structuredEvent("com.example.build", task("")), wantCode: 422, wantField: "type"},
		{name: "tekton type at the handler", ctype: "application/cloudevents+json", body: structuredEvent("dev.tekton.event.taskrun.successful.v1", `{}`), wantCode: 422, wantField: "type"},
		{name: "prefix without dot", ctype: "application/cloudevents+json", body: structuredEvent("io.boomerang.event.statustaskrun", task("")), wantCode: 422, wantField: "type"},
		// Data problems, answered by the handler with the field.
		{name: "null data", ctype: "application/cloudevents+json", body: structuredEvent(tr, `null`), wantCode: 400, wantField: "data"},
		{name: "data array", ctype: "application/cloudevents+json", body: structuredEvent(tr, `[1,2]`), wantCode: 400, wantField: "data"},
		{name: "data string", ctype: "application/cloudevents+json", body: structuredEvent(tr, `"x"`), wantCode: 400, wantField: "data"},
		{name: "data number", ctype: "application/cloudevents+json", body: structuredEvent(tr, `42`), wantCode: 400, wantField: "data"},
		{name: "empty binary data", ctype: "application/json", headers: ceHeaders, body: []byte(``), wantCode: 400, wantField: "data"},
		{name: "truncated binary data", ctype: "application/json", headers: ceHeaders, body: []byte(task("")[:40]), wantCode: 400, wantField: "data"},
		{name: "invalid utf-8", ctype: "application/json", headers: ceHeaders, body: []byte("{\"id\":\"a\xff\xfe\",\"type\":\"script\",\"phase\":\"pending\"}"), wantCode: 400, wantField: "data"},
		{name: "deep nesting", ctype: "application/json", headers: ceHeaders, body: []byte(`{"id":"a","type":"script","phase":"pending","params":[{"name":"p","value":` + deep + `}]}`), wantCode: 400, wantField: "data"},
		{name: "missing id", ctype: "application/cloudevents+json", body: structuredEvent(tr, `{"type":"script","status":"ready","phase":"pending","spec":{"image":"a"}}`), wantCode: 400, wantField: "data.id"},
		{name: "empty id", ctype: "application/cloudevents+json", body: structuredEvent(tr, `{"id":"","type":"script","status":"ready","phase":"pending"}`), wantCode: 400, wantField: "data.id"},
		{name: "id number", ctype: "application/cloudevents+json", body: structuredEvent(tr, `{"id":7,"type":"script","status":"ready","phase":"pending"}`), wantCode: 400, wantField: "data.id"},
		{name: "id with slash", ctype: "application/cloudevents+json", body: structuredEvent(tr, `{"id":"../../etc","type":"script","status":"ready","phase":"pending"}`), wantCode: 400, wantField: "data.id"},
		{name: "id too long", ctype: "application/cloudevents+json", body: structuredEvent(tr, `{"id":"`+strings.Repeat("f", 300)+`","type":"script","status":"ready","phase":"pending"}`), wantCode: 400, wantField: "data.id"},
		{name: "type number", ctype: "application/cloudevents+json", body: structuredEvent(tr, `{"id":"a","type":5,"status":"ready","phase":"pending"}`), wantCode: 400, wantField: "data.type"},
		{name: "timeout string", ctype: "application/cloudevents+json", body: structuredEvent(tr, task(`,"timeout":"30"`)), wantCode: 400, wantField: "data.timeout"},
		{name: "timeout fractional", ctype: "application/cloudevents+json", body: structuredEvent(tr, task(`,"timeout":1.5`)), wantCode: 400, wantField: "data.timeout"},
		{name: "labels array", ctype: "application/cloudevents+json", body: structuredEvent(tr, task(`,"labels":["a"]`)), wantCode: 400, wantField: "data.labels"},
		{name: "label value object", ctype: "application/cloudevents+json", body: structuredEvent(tr, task(`,"labels":{"a":{"b":1}}`)), wantCode: 400, wantField: "data.labels"},
		{name: "params object", ctype: "application/cloudevents+json", body: structuredEvent(tr, task(`,"params":{"a":1}`)), wantCode: 400, wantField: "data.params"},
		{name: "param name number", ctype: "application/cloudevents+json", body: structuredEvent(tr, task(`,"params":[{"name":1,"value":"x"}]`)), wantCode: 400, wantField: "data.params.name"},
		{name: "results string", ctype: "application/cloudevents+json", body: structuredEvent(tr, task(`,"results":"ts"`)), wantCode: 400, wantField: "data.results"},
		{name: "spec array", ctype: "application/cloudevents+json", body: structuredEvent(tr, `{"id":"a","type":"script","status":"ready","phase":"pending","spec":[]}`), wantCode: 400, wantField: "data.spec"},
		{name: "image number", ctype: "application/cloudevents+json", body: structuredEvent(tr, `{"id":"a","type":"script","status":"ready","phase":"pending","spec":{"image":1}}`), wantCode: 400, wantField: "data.spec.image"},
		{name: "command string", ctype: "application/cloudevents+json", body: structuredEvent(tr, `{"id":"a","type":"script","status":"ready","phase":"pending","spec":{"image":"a","command":"ls"}}`), wantCode: 400, wantField: "data.spec.command"},
		{name: "envs object", ctype: "application/cloudevents+json", body: structuredEvent(tr, `{"id":"a","type":"script","status":"ready","phase":"pending","spec":{"image":"a","envs":{"A":"1"}}}`), wantCode: 400, wantField: "data.spec.envs"},
		{name: "debug string", ctype: "application/cloudevents+json", body: structuredEvent(tr, `{"id":"a","type":"script","status":"ready","phase":"pending","spec":{"image":"a","debug":"yes"}}`), wantCode: 400, wantField: "data.spec.debug"},
		{name: "workflowrun without id", ctype: "application/cloudevents+json", body: structuredEvent(wr, `{"status":"ready","phase":"pending"}`), wantCode: 400, wantField: "data.id"},
		{name: "workflowrun workspaces object", ctype: "application/cloudevents+json", body: structuredEvent(wr, `{"id":"r","status":"ready","phase":"pending","workspaces":{}}`), wantCode: 400, wantField: "data.workspaces"},
		{name: "xml data", ctype: "application/cloudevents+json", body: []byte(`{"specversion":"1.0","id":"x","source":"/s","type":"` + tr + `","datacontenttype":"application/xml","data":"<a/>"}`), wantCode: 415, wantField: "datacontenttype"},
		{name: "binary xml data", ctype: "application/xml", headers: ceHeaders, body: []byte(`<a/>`), wantCode: 415, wantField: "datacontenttype"},
		{name: "10 MB body", ctype: "application/json", headers: ceHeaders, body: []byte(task(`,"name":"` + strings.Repeat("x", 10<<20) + `"`)), wantCode: 413, wantField: "data"},
	}
	return cases
}

// Every bad request gets a 4xx naming the problem, the Engine is not
// called, and nothing is created on the apiserver.
func TestBadInput(t *testing.T) {
	s := newStack(t, nil)
	cases := badCases()
	if len(cases) < 40 {
		t.Fatalf("only %d bad-input cases", len(cases))
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			req, err := http.NewRequest(http.MethodPost, s.handler.URL, bytes.NewReader(tc.body))
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Content-Type", tc.ctype)
			for k, v := range tc.headers {
				req.Header.Set(k, v)
			}
			resp, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.wantCode {
				t.Fatalf("status %d (%s), want %d", resp.StatusCode, body, tc.wantCode)
			}
			// Every refusal is ours: JSON naming the field or attribute.
			if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
				t.Fatalf("answer %q has Content-Type %q, want application/json", body, ct)
			}
			var b struct{ Error, Field, Reason string }
			if err := json.Unmarshal(body, &b); err != nil {
				t.Fatalf("error body is not JSON: %s", body)
			}
			if b.Field != tc.wantField || b.Reason == "" || b.Error != http.StatusText(tc.wantCode) {
				t.Fatalf("error %q names field %q (%q), want %q", b.Error, b.Field, b.Reason, tc.wantField)
			}
		})
	}
	if n := len(s.engine.Calls()); n != 0 {
		t.Errorf("the Engine was called %d times for bad input", n)
	}
	ctx := context.Background()
	trs, _ := s.tekton.TektonV1().TaskRuns(s.ns).List(ctx, metav1.ListOptions{})
	cms, _ := s.kube.CoreV1().ConfigMaps(s.ns).List(ctx, metav1.ListOptions{})
	pvcs, _ := s.kube.CoreV1().PersistentVolumeClaims(s.ns).List(ctx, metav1.ListOptions{})
	if n := len(trs.Items) + len(pvcs.Items) + countOurs(cms.Items); n != 0 {
		t.Errorf("%d objects created by bad input", n)
	}
	t.Logf("%d bad-input cases refused, nothing created, Engine not called", len(cases))
}

func countOurs[T any](items []T) int {
	n := 0
	for _, it := range items {
		if strings.Contains(fmt.Sprint(it), "bmrg-flow") {
			n++
		}
	}
	return n
}

// A task the Engine can identify but that cannot be built is reported to
// the Engine as failed (after its start), answered 2xx, and creates nothing.
func TestUnbuildableTaskReported(t *testing.T) {
	s := newStack(t, nil)
	s.mustPost(s.known(structuredEvent("io.boomerang.event.status.taskrun",
		`{"id":"65a1f1a0e4b0a1b2c3d4e698","type":"custom","status":"ready","phase":"pending","spec":{"command":["true"]}}`)))
	var calls []enginestub.Call
	for _, c := range s.engine.CallsFor("65a1f1a0e4b0a1b2c3d4e698") {
		if c.Kind != enginestub.KindTaskRunGet { // reads of the task may come between
			calls = append(calls, c)
		}
	}
	if len(calls) != 2 || calls[0].Kind != enginestub.KindTaskRunStart || calls[1].Kind != enginestub.KindTaskRunEnd {
		t.Fatalf("want start then end, got %d calls", len(calls))
	}
	if e := calls[1].End; e.Status != engine.StatusFailed || !strings.Contains(e.StatusMessage, "NO_TASK_IMAGE") {
		t.Fatalf("end %+v", e)
	}
	if n := len(s.taskRuns()); n != 0 {
		t.Fatalf("%d TaskRuns for an unbuildable task", n)
	}
	s.noViolations()
}

// A task whose references the handler cannot vouch for is judged by
// Tekton's admission webhook in a dry run: one the webhook refuses is
// reported failed as INVALID_TASK (after its start) with nothing created,
// one it admits runs to its end.
func TestUnvouchedTaskJudgedByTekton(t *testing.T) {
	s := newStack(t, nil)
	refused, admitted := "65a1f1a0e4b0a1b2c3d4e697", "65a1f1a0e4b0a1b2c3d4e696"
	task := func(id, script string) []byte {
		return s.known(structuredEvent("io.boomerang.event.status.taskrun",
			`{"id":"`+id+`","type":"script","status":"ready","phase":"pending","spec":{"image":"alpine","script":"`+script+`"}}`))
	}
	s.mustPost(task(refused, "echo $(params.nope)"))
	if end := s.waitEnd(refused, time.Minute); end.Status != engine.StatusFailed ||
		!strings.Contains(end.StatusMessage, "INVALID_TASK") || !strings.Contains(end.StatusMessage, "params.nope") {
		t.Fatalf("end %+v, want failed with INVALID_TASK naming $(params.nope)", end)
	}
	if n := len(s.taskRuns()); n != 0 {
		t.Fatalf("%d TaskRuns for a task Tekton refuses", n)
	}
	s.mustPost(task(admitted, "echo $(context.pipelineRun.name)"))
	s.waitDone(name(admitted), time.Minute)
	s.noViolations()
}

// Content of an otherwise good task that Kubernetes or Tekton would refuse
// (label keys and values, param, result and env names) is left out, not a
// reason to lose the task: the TaskRun is created on the real apiserver
// without it, and the handler's log line for the event names each part it
// dropped. An id in any script is just an id.
func TestInvalidContentLeftOut(t *testing.T) {
	s := newStack(t, nil)
	for i, tc := range []struct {
		name string
		id   string
		edit func(d map[string]any)
		// want are the dropped notes the log must hold.
		want []string
		// check inspects the TaskRun made.
		check func(tr *pipelinev1.TaskRun) error
	}{
		{name: "label key with a space", edit: withLabels(map[string]string{"my label": "x", "team": "a"}),
			want: []string{`label \"my label\": invalid key`},
			check: func(tr *pipelinev1.TaskRun) error {
				if tr.Labels["team"] != "a" || tr.Labels["my label"] != "" {
					return fmt.Errorf("labels %v, want team=a and no \"my label\"", tr.Labels)
				}
				return nil
			}},
		{name: "label value too long", edit: withLabels(map[string]string{"note": strings.Repeat("n", 64)}),
			want: []string{`label \"note\": invalid value`}, check: labelNot("note", strings.Repeat("n", 64))},
		{name: "unicode label value", edit: withLabels(map[string]string{"owner": "zoë"}),
			want: []string{`label \"owner\": invalid value`}, check: labelNot("owner", "zoë")},
		{name: "reserved label", edit: withLabels(map[string]string{"tekton.dev/task": "other"}),
			want: []string{`label \"tekton.dev/task\": reserved`}, check: labelNot("tekton.dev/task", "other")},
		{name: "invalid param name", edit: func(d map[string]any) {
			d["params"] = []any{map[string]any{"name": "bad name!", "value": "x"}, map[string]any{"name": "url", "value": "y"}}
		}, want: []string{`param \"bad name!\": invalid name`},
			check: func(tr *pipelinev1.TaskRun) error {
				if len(tr.Spec.Params) != 1 || tr.Spec.Params[0].Name != "url" {
					return fmt.Errorf("params %+v, want only url", tr.Spec.Params)
				}
				return nil
			}},
		{name: "invalid result name", edit: func(d map[string]any) {
			d["results"] = []any{map[string]any{"name": "bad/result"}, map[string]any{"name": "ok"}}
		}, want: []string{`result \"bad/result\": invalid or repeated name`},
			check: func(tr *pipelinev1.TaskRun) error {
				if rs := tr.Spec.TaskSpec.Results; len(rs) != 1 || rs[0].Name != "ok" {
					return fmt.Errorf("results %+v, want only ok", rs)
				}
				return nil
			}},
		{name: "invalid env name", edit: func(d map[string]any) {
			d["spec"].(map[string]any)["envs"] = []any{map[string]any{"name": "1BAD", "value": "x"}, map[string]any{"name": "GOOD", "value": "y"}}
		}, want: []string{`env \"1BAD\": invalid name`},
			check: func(tr *pipelinev1.TaskRun) error {
				for _, e := range tr.Spec.TaskSpec.Steps[0].Env {
					if e.Name == "1BAD" {
						return fmt.Errorf("env 1BAD kept")
					}
				}
				return nil
			}},
		{name: "unicode id", id: "tâche-ünïcode-✓"},
	} {
		id := tc.id
		if id == "" {
			id = taskID(0x900 + i)
		}
		edits := []func(map[string]any){withID(id)}
		if tc.edit != nil {
			edits = append(edits, tc.edit)
		}
		if code, body := s.post(event(t, "engine-taskrun-custom-ready.json", edits...)); code != http.StatusOK {
			t.Errorf("%s: status %d %s, want 200", tc.name, code, body)
			continue
		}
		tr, err := s.taskRun(name(id))
		if err != nil {
			t.Errorf("%s: TaskRun %s: %v", tc.name, name(id), err)
			continue
		}
		if tc.check != nil {
			if err := tc.check(tr); err != nil {
				t.Errorf("%s: %v", tc.name, err)
			}
		}
		if n := len(s.calls(enginestub.KindTaskRunStart, id)); n != 1 {
			t.Errorf("%s: %d starts, want 1", tc.name, n)
		}
		logs := s.handler.Logs()
		for _, w := range tc.want {
			if !strings.Contains(logs, w) {
				t.Errorf("%s: handler log does not name what it dropped (%s)", tc.name, w)
			}
		}
	}
	s.noViolations()
}

// labelNot fails a TaskRun whose label key has value.
func labelNot(key, value string) func(tr *pipelinev1.TaskRun) error {
	return func(tr *pipelinev1.TaskRun) error {
		if tr.Labels[key] == value {
			return fmt.Errorf("label %s=%q kept: %v", key, value, tr.Labels)
		}
		return nil
	}
}

// An event that asks for another namespace, another ServiceAccount, a
// privileged container, host namespaces and a host path gets none of them:
// the TaskRun is made in the handler's namespace and the Pod Tekton runs for
// it is an ordinary one, with the namespace's default ServiceAccount.
func TestInputPolicyOnCluster(t *testing.T) {
	s := newStack(t, nil)
	const id = "65a1f1a0e4b0a1b2c3d4e610"
	s.mustPost(s.known(structuredEvent("io.boomerang.event.status.taskrun", `{"id":"`+id+`","type":"custom","status":"ready","phase":"pending",
		"namespace":"kube-system","serviceAccountName":"cluster-admin","metadata":{"namespace":"kube-system"},
		"podTemplate":{"hostNetwork":true,"securityContext":{"runAsUser":0}},
		"spec":{"image":"alpine","command":["true"],"serviceAccountName":"cluster-admin","securityContext":{"privileged":true},
			"hostNetwork":true,"hostPID":true,"hostIPC":true,"volumes":[{"name":"root","hostPath":{"path":"/"}}],
			"podTemplate":{"securityContext":{"runAsUser":0}},"runtimeClassName":"x","namespace":"kube-system"}}`)))
	tr := s.waitDone(name(id), time.Minute)
	// "default" is Tekton's webhook defaulting (config-defaults), as in production.
	if tr.Namespace != s.ns || tr.Spec.ServiceAccountName != "default" || tr.Spec.PodTemplate != nil {
		t.Errorf("TaskRun in %q with serviceAccountName %q and pod template %+v", tr.Namespace, tr.Spec.ServiceAccountName, tr.Spec.PodTemplate)
	}
	ctx := context.Background()
	if l, err := s.tekton.TektonV1().TaskRuns("kube-system").List(ctx, metav1.ListOptions{}); err != nil || len(l.Items) != 0 {
		t.Errorf("TaskRuns in kube-system: %v %v", l, err)
	}
	pods, err := s.kube.CoreV1().Pods(s.ns).List(ctx, metav1.ListOptions{LabelSelector: "tekton.dev/taskRun=" + name(id)})
	if err != nil || len(pods.Items) != 1 {
		t.Fatalf("pods for %s: %v (%v)", name(id), pods, err)
	}
	p := pods.Items[0].Spec
	if p.HostNetwork || p.HostPID || p.HostIPC || p.RuntimeClassName != nil || p.ServiceAccountName != "default" {
		t.Errorf("pod host namespaces %v/%v/%v, runtimeClass %v, serviceAccount %q", p.HostNetwork, p.HostPID, p.HostIPC, p.RuntimeClassName, p.ServiceAccountName)
	}
	if p.SecurityContext != nil && p.SecurityContext.RunAsUser != nil {
		t.Errorf("pod runAsUser %d from the event", *p.SecurityContext.RunAsUser)
	}
	for _, v := range p.Volumes {
		if v.HostPath != nil {
			t.Errorf("pod volume %s is a host path %s", v.Name, v.HostPath.Path)
		}
	}
	for _, c := range append(p.InitContainers, p.Containers...) {
		if sc := c.SecurityContext; sc != nil && sc.Privileged != nil && *sc.Privileged {
			t.Errorf("container %s is privileged", c.Name)
		}
	}
	s.noViolations()
}
