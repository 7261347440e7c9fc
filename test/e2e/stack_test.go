//go:build e2e

// Package e2e runs bin/handler and bin/sink as real processes against the
// embedded control plane (real kube-apiserver, Tekton controller and events
// controller, kwok nodes) with a recording Engine.
package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	pipelinev1 "github.com/tektoncd/pipeline/pkg/apis/pipeline/v1"
	"github.com/tektoncd/pipeline/pkg/client/clientset/versioned"
	authv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/clientcmd"
	"knative.dev/pkg/apis"

	"github.com/boomerang-io/flow-tekton-handler/test/cluster"
	"github.com/boomerang-io/flow-tekton-handler/test/enginestub"
	"github.com/boomerang-io/flow-tekton-handler/test/fixtures"
	"github.com/boomerang-io/flow-tekton-handler/test/fnproc"
	"github.com/boomerang-io/flow-tekton-handler/test/fnserve"
	"github.com/boomerang-io/flow-tekton-handler/test/funcbuild"
	"github.com/boomerang-io/flow-tekton-handler/test/wait"
)

// binDir holds bin/handler, bin/sink and bin/logs built for this test
// binary.
var binDir string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binDir = dir
	if os.Getenv(cluster.SkipEnv) != "1" {
		// The functions are built exactly as func's Go builder builds them.
		if err := funcbuild.Build(context.Background(), filepath.Join("..", ".."), filepath.Join(dir, "handler")); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		for _, role := range []string{"sink", "logs"} {
			if err := os.Link(filepath.Join(dir, "handler"), filepath.Join(dir, role)); err != nil {
				fmt.Fprintln(os.Stderr, err)
				os.Exit(1)
			}
		}
	}
	ref, stopRegistry, err := startRegistry()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	workerImage = ref
	defer stopRegistry()
	defer os.RemoveAll(dir)
	cluster.Main(m, cluster.Options{})
}

// stack is one test's namespace with its Engine stand-in and functions.
type stack struct {
	t       *testing.T
	c       *cluster.Cluster
	ns      string
	engine  *enginestub.Server
	handler *fnproc.Service
	sink    *fnproc.Service
	kube    kubernetes.Interface
	tekton  versioned.Interface
	env     map[string]string
}

// newStack makes a namespace, an Engine stand-in and the handler; extra env
// is added to both functions' environment.
func newStack(t *testing.T, env map[string]string) *stack {
	t.Helper()
	c := cluster.ForTest(t)
	s := &stack{t: t, c: c, ns: c.Namespace(t)}
	var err error
	if s.kube, err = kubernetes.NewForConfig(c.RESTConfig()); err != nil {
		t.Fatal(err)
	}
	if s.tekton, err = versioned.NewForConfig(c.RESTConfig()); err != nil {
		t.Fatal(err)
	}
	if s.engine, err = enginestub.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.engine.Close() })
	s.tellEngine()
	s.applyRBAC()
	s.env = map[string]string{
		"NAMESPACE":  s.ns,
		"ENGINE_URL": s.engine.URL(),
		"DEBUG":      "true",
	}
	for k, v := range env {
		s.env[k] = v
	}
	s.handler = s.start("handler")
	t.Cleanup(func() {
		// Every test ends with the Engine's contract kept, whether it
		// checks on its own or not.
		s.noViolations()
		if t.Failed() {
			t.Logf("Engine calls:\n%s", enginestub.Table(s.engine.Calls()))
		}
	})
	return s
}

// Replicas of each function, as Knative runs several: copies of an event
// sent at once and a sender's retries reach different processes.
const (
	handlerReplicas = 3
	sinkReplicas    = 2
	logsReplicas    = 2
)

// start runs the replicas of bin/<role> behind one address, with the
// stack's environment, as the role's own ServiceAccount
// (config/rbac-<role>.yaml), not as an admin.
func (s *stack) start(role string) *fnproc.Service {
	s.t.Helper()
	n := map[string]int{"handler": handlerReplicas, "sink": sinkReplicas, "logs": logsReplicas}[role]
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	env := map[string]string{"KUBECONFIG": s.serviceAccountKubeconfig("flow-tekton-" + role)}
	for k, v := range s.env {
		env[k] = v
	}
	svc, err := fnproc.StartService(ctx, filepath.Join(binDir, role), env, n)
	if err != nil {
		s.t.Fatal(err)
	}
	s.t.Cleanup(func() {
		_ = svc.Close(10 * time.Second)
		if s.t.Failed() {
			s.t.Logf("%s log:\n%s", role, svc.Logs())
		}
	})
	return svc
}

// applyRBAC creates the functions' ServiceAccounts, Roles and RoleBindings
// from config/ in the test namespace.
func (s *stack) applyRBAC() {
	s.t.Helper()
	ctx := context.Background()
	for _, file := range []string{"rbac-handler.yaml", "rbac-sink.yaml", "rbac-logs.yaml"} {
		b, err := os.ReadFile(filepath.Join("..", "..", "config", file))
		if err != nil {
			s.t.Fatal(err)
		}
		for _, doc := range strings.Split(string(b), "\n---") {
			obj, _, err := scheme.Codecs.UniversalDeserializer().Decode([]byte(doc), nil, nil)
			if err != nil {
				s.t.Fatalf("%s: %v", file, err)
			}
			switch o := obj.(type) {
			case *corev1.ServiceAccount:
				_, err = s.kube.CoreV1().ServiceAccounts(s.ns).Create(ctx, o, metav1.CreateOptions{})
			case *rbacv1.Role:
				_, err = s.kube.RbacV1().Roles(s.ns).Create(ctx, o, metav1.CreateOptions{})
			case *rbacv1.RoleBinding:
				for i := range o.Subjects {
					o.Subjects[i].Namespace = s.ns
				}
				_, err = s.kube.RbacV1().RoleBindings(s.ns).Create(ctx, o, metav1.CreateOptions{})
			default:
				err = fmt.Errorf("unexpected %T", obj)
			}
			if err != nil {
				s.t.Fatalf("%s: %v", file, err)
			}
		}
	}
}

// serviceAccountKubeconfig writes a kubeconfig that authenticates with a
// token of the namespace's ServiceAccount sa.
func (s *stack) serviceAccountKubeconfig(sa string) string {
	s.t.Helper()
	expiry := int64(3600)
	tok, err := s.kube.CoreV1().ServiceAccounts(s.ns).CreateToken(context.Background(), sa,
		&authv1.TokenRequest{Spec: authv1.TokenRequestSpec{ExpirationSeconds: &expiry}}, metav1.CreateOptions{})
	if err != nil {
		s.t.Fatalf("token for %s: %v", sa, err)
	}
	cfg, err := clientcmd.LoadFromFile(s.c.Kubeconfig())
	if err != nil {
		s.t.Fatal(err)
	}
	for _, ai := range cfg.AuthInfos {
		ai.Token = tok.Status.Token
	}
	path := filepath.Join(s.t.TempDir(), sa+".kubeconfig")
	if err := clientcmd.WriteToFile(*cfg, path); err != nil {
		s.t.Fatal(err)
	}
	return path
}

// startSink runs bin/sink's replicas and points Tekton's events at them.
func (s *stack) startSink() *fnproc.Service {
	s.t.Helper()
	s.sink = s.start("sink")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.c.SetEventsSink(ctx, s.sink.URL); err != nil {
		s.t.Fatal(err)
	}
	s.t.Cleanup(func() { _ = s.c.SetEventsSink(context.Background(), "") })
	s.waitEventsSink(s.sink)
	return s.sink
}

// waitEventsSink waits until Tekton's events controller sends to p. It
// reads config-events asynchronously, and after an apiserver restart only
// once its informers' backoff allows (up to a minute): until then a test's
// events would go to the previous sink. The probe is a TaskRun in a
// namespace of its own, so no test counts it; the sink logs the event it
// skips with the TaskRun's name. A probe can finish before the controller
// reads the new sink, and then none of its events ever reach it, so a new
// probe is made every few seconds.
func (s *stack) waitEventsSink(p *fnproc.Service) {
	s.t.Helper()
	ns := s.c.Namespace(s.t)
	probe := &pipelinev1.TaskRun{
		ObjectMeta: metav1.ObjectMeta{GenerateName: "events-probe-", Namespace: ns},
		Spec: pipelinev1.TaskRunSpec{TaskSpec: &pipelinev1.TaskSpec{
			Steps: []pipelinev1.Step{{Name: "probe", Image: "alpine", Command: []string{"true"}}}}},
	}
	var probes []string
	last := time.Time{}
	wait.Eventually(s.t, 2*time.Minute, "Tekton's events to reach the new sink", func() (bool, error) {
		for _, name := range probes {
			if len(p.LogLines(name)) > 0 {
				return true, nil
			}
		}
		if time.Since(last) > 5*time.Second {
			tr, err := s.tekton.TektonV1().TaskRuns(ns).Create(context.Background(), probe, metav1.CreateOptions{})
			if err != nil {
				return false, err
			}
			probes, last = append(probes, tr.Name), time.Now()
		}
		return false, nil
	})
}

// event reads a fixture and applies edits to its data; the Engine
// stand-in of t's stack knows the run the event is about (engine_test.go).
// Template fixtures get the loopback registry's image, whose entrypoint
// Tekton looks up.
func event(t *testing.T, name string, edits ...func(data map[string]any)) []byte {
	t.Helper()
	b := fixtures.Read(t, name)
	if strings.Contains(name, "template") {
		edits = append([]func(map[string]any){withImage(workerImage)}, edits...)
	}
	if len(edits) == 0 {
		return known(t, b)
	}
	var doc map[string]any
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	for _, edit := range edits {
		edit(doc["data"].(map[string]any))
	}
	out, err := json.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	return known(t, out)
}

// withID gives an event's data another id.
func withID(id string) func(map[string]any) {
	return func(d map[string]any) { d["id"] = id }
}

// withLabels adds Engine labels to a task event's data.
func withLabels(labels map[string]string) func(map[string]any) {
	return func(d map[string]any) {
		l, _ := d["labels"].(map[string]any)
		if l == nil {
			l = map[string]any{}
		}
		for k, v := range labels {
			l[k] = v
		}
		d["labels"] = l
	}
}

// client bounds every direct request, as a Broker's delivery timeout does,
// so a request left unanswered fails the test instead of hanging it.
var client = fnserve.Client(30 * time.Second)

// post delivers a structured CloudEvent to the handler as the Broker would
// (delivery_test.go): through Knative's dispatcher with its Trigger's
// delivery spec. It returns the handler's final answer, also when the
// event was dead-lettered (the test then fails at its end unless it takes
// the letter), or 0 and the error when the delivery did not complete.
func (s *stack) post(body []byte) (int, string) {
	s.t.Helper()
	d := s.deliver(body)
	if d.err != nil {
		return 0, d.err.Error()
	}
	return d.code, d.body
}

// mustPost delivers like post and fails the test unless the handler's final
// answer is 2xx and the event was not dead-lettered.
func (s *stack) mustPost(body []byte) {
	s.t.Helper()
	switch d := s.deliver(body); {
	case d.err != nil:
		s.t.Fatalf("delivery failed: %v", d.err)
	case d.deadLetter:
		s.t.Fatalf("event dead-lettered; the handler's last answer: %d %s", d.code, d.body)
	case d.code/100 != 2:
		s.t.Fatalf("handler answered %d: %s", d.code, d.body)
	}
}

// postDirect sends a structured CloudEvent to the handler in one plain HTTP
// request, without retries, and returns its raw answer: for the tests that
// need one attempt's answer (delivery_test.go lists them).
func (s *stack) postDirect(body []byte) (int, string) {
	s.t.Helper()
	resp, err := client.Post(s.handler.URL, "application/cloudevents+json", bytes.NewReader(body))
	if err != nil {
		return 0, err.Error() // no answer in time
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func (s *stack) taskRun(name string) (*pipelinev1.TaskRun, error) {
	return s.tekton.TektonV1().TaskRuns(s.ns).Get(context.Background(), name, metav1.GetOptions{})
}

func (s *stack) taskRuns() []pipelinev1.TaskRun {
	s.t.Helper()
	l, err := s.tekton.TektonV1().TaskRuns(s.ns).List(context.Background(), metav1.ListOptions{})
	if err != nil {
		s.t.Fatal(err)
	}
	return l.Items
}

// waitDone waits until the TaskRun has a final Succeeded condition and
// returns it.
func (s *stack) waitDone(name string, timeout time.Duration) *pipelinev1.TaskRun {
	s.t.Helper()
	var tr *pipelinev1.TaskRun
	wait.Eventually(s.t, timeout, "taskrun "+name+" to finish", func() (bool, error) {
		var err error
		tr, err = s.taskRun(name)
		if err != nil {
			return false, err
		}
		c := tr.Status.GetCondition(apis.ConditionSucceeded)
		return c != nil && !c.IsUnknown(), nil
	})
	return tr
}

// waitGone waits until the TaskRun of the task id no longer exists.
func (s *stack) waitGone(id, what string, timeout time.Duration) {
	s.t.Helper()
	wait.Eventually(s.t, timeout, what, func() (bool, error) {
		_, err := s.taskRun(name(id))
		return apierrors.IsNotFound(err), nil
	})
}

// waitRunning waits until Tekton runs the TaskRun (reason Running) and
// returns it.
func (s *stack) waitRunning(name string) *pipelinev1.TaskRun {
	s.t.Helper()
	var tr *pipelinev1.TaskRun
	wait.Eventually(s.t, time.Minute, "taskrun "+name+" to run", func() (bool, error) {
		var err error
		if tr, err = s.taskRun(name); err != nil {
			return false, err
		}
		_, reason, _ := condition(tr)
		return reason == "Running", nil
	})
	return tr
}

func condition(tr *pipelinev1.TaskRun) (corev1.ConditionStatus, string, string) {
	c := tr.Status.GetCondition(apis.ConditionSucceeded)
	if c == nil {
		return "", "", ""
	}
	return c.Status, c.Reason, c.Message
}

// calls returns the accepted Engine calls of a kind for id.
func (s *stack) calls(kind, id string) []enginestub.Call {
	var out []enginestub.Call
	for _, c := range s.engine.CallsFor(id) {
		if c.Kind == kind && c.Status/100 == 2 {
			out = append(out, c)
		}
	}
	return out
}

func (s *stack) noViolations() {
	s.t.Helper()
	if v := s.engine.Violations(); len(v) > 0 {
		s.t.Errorf("Engine contract violations:\n%s", strings.Join(v, "\n"))
	}
}
