// Command demo runs the whole system on one machine: the embedded control
// plane (etcd, kube-apiserver, kube-scheduler, kwok, Tekton controller and
// events controller), bin/handler, bin/sink and bin/logs as local processes
// with Tekton's events pointed at the sink, and an Engine stand-in that
// records and checks every callback. It sends a small workflow as the
// Engine would (a workflow run with a workspace and three tasks: a script
// that writes results, a command, and one that fails), shows each event and
// each TaskRun phase change, ends with a table of what the Engine received
// and prints the script task's log as the Engine reads it from the logs
// role. It exits 0 when everything is as expected, and stops all it started.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/tektoncd/pipeline/pkg/client/clientset/versioned"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"knative.dev/pkg/apis"

	flowlogs "github.com/boomerang-io/flow-tekton-handler/function/logs"
	"github.com/boomerang-io/flow-tekton-handler/internal/contract"
	"github.com/boomerang-io/flow-tekton-handler/internal/engine"
	"github.com/boomerang-io/flow-tekton-handler/test/cluster"
	"github.com/boomerang-io/flow-tekton-handler/test/enginestub"
	"github.com/boomerang-io/flow-tekton-handler/test/fnproc"
)

const namespace = "flow-demo"

// The workflow: ids as the Engine would send them.
const (
	workflowRef = "65a1f0c2e4b0a1b2c3d4e5f6"
	runID       = "65a1f0d9e4b0a1b2c3d4e601"
	scriptTask  = "65a1f1a0e4b0a1b2c3d4e701"
	commandTask = "65a1f1a0e4b0a1b2c3d4e702"
	failingTask = "65a1f1a0e4b0a1b2c3d4e703"
)

func main() {
	bin := flag.String("bin", "bin", "directory with handler, sink and logs")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	began := time.Now()
	err := run(ctx, *bin)
	if err != nil {
		fmt.Fprintf(os.Stderr, "\ndemo FAILED after %s: %v\n", time.Since(began).Round(time.Second), err)
		os.Exit(1)
	}
	fmt.Printf("\ndemo OK in %s\n", time.Since(began).Round(time.Second))
}

func say(format string, args ...any) {
	fmt.Printf("%s  %s\n", time.Now().Format("15:04:05.000"), fmt.Sprintf(format, args...))
}

func run(ctx context.Context, bin string) error {
	say("control plane: building if needed (first time: 20-25 minutes) and starting")
	c, err := cluster.Start(ctx, cluster.Options{Progress: os.Stderr})
	if err != nil {
		return err
	}
	defer func() {
		say("stopping the control plane")
		_ = c.Stop()
	}()
	say("control plane ready: KUBECONFIG=%s", c.Kubeconfig())

	kube, err := kubernetes.NewForConfig(c.RESTConfig())
	if err != nil {
		return err
	}
	tkn, err := versioned.NewForConfig(c.RESTConfig())
	if err != nil {
		return err
	}
	if err := createNamespace(ctx, kube); err != nil {
		return err
	}

	eng, err := enginestub.Start("127.0.0.1:0")
	if err != nil {
		return err
	}
	defer eng.Close()
	say("Engine stand-in listening at %s", eng.URL())

	env := map[string]string{"KUBECONFIG": c.Kubeconfig(), "NAMESPACE": namespace, "ENGINE_URL": eng.URL(), "SWEEP_INTERVAL": "10s"}
	sink, err := fnproc.Start(ctx, filepath.Join(bin, "sink"), env)
	if err != nil {
		return err
	}
	defer stopProc("sink", sink)
	say("sink ready at %s", sink.URL)
	if err := c.SetEventsSink(ctx, sink.URL); err != nil {
		return err
	}
	say("Tekton config-events: sink=%s formats=tektonv1", sink.URL)
	handler, err := fnproc.Start(ctx, filepath.Join(bin, "handler"), env)
	if err != nil {
		return err
	}
	defer stopProc("handler", handler)
	say("handler ready at %s", handler.URL)
	logs, err := fnproc.Start(ctx, filepath.Join(bin, "logs"), map[string]string{"KUBECONFIG": c.Kubeconfig(), "NAMESPACE": namespace})
	if err != nil {
		return err
	}
	defer stopProc("logs", logs)
	say("logs ready at %s (the Engine's flow.handler.logstream.url: %s%s)", logs.URL, logs.URL, flowlogs.Path)

	watchCtx, stopWatch := context.WithCancel(ctx)
	defer stopWatch()
	go watchTaskRuns(watchCtx, tkn, eng)

	// The workflow run starts: its workspace claim first.
	if err := send(ctx, eng, handler.URL, "workflowrun", runID, "ready", workflowRun("ready", "pending")); err != nil {
		return err
	}
	// Its three tasks.
	tasks := []struct {
		id, label string
		data      map[string]any
	}{
		{scriptTask, "script writing results", task(scriptTask, "script", map[string]any{
			"image":  "alpine:3.20",
			"script": "#!/bin/sh\nset -e\nprintf ok > $(results.status.path)\n",
			// The embedded control plane's kubelet serves this as the
			// step's log (test/cluster/stages/pod-complete.yaml).
			"envs": []map[string]string{{"name": cluster.LogEnv, "value": scriptLog}},
		}, map[string]string{"ktest.dev/result-name": "status", "ktest.dev/result-value": "ok"}, []map[string]any{{"name": "status", "description": "outcome"}})},
		{commandTask, "command", task(commandTask, "custom", map[string]any{
			"image": "curlimages/curl:8.9.1", "command": []string{"curl"}, "arguments": []string{"-fsS", "https://example.org/health"},
		}, nil, nil)},
		{failingTask, "failing step", task(failingTask, "custom", map[string]any{
			"image": "boomerangio/slack-worker:3.1.0", "command": []string{"/worker"}, "arguments": []string{"slack", "sendMessage"},
		}, map[string]string{"ktest.dev/outcome": "fail"}, nil)},
	}
	for _, t := range tasks {
		say("task %s: %s", t.id, t.label)
		if err := send(ctx, eng, handler.URL, "taskrun", t.id, "ready", t.data); err != nil {
			return err
		}
	}

	say("waiting for the sink to report the three tasks")
	waitCtx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	err = eng.WaitFor(waitCtx, func(calls []enginestub.Call) bool {
		n := 0
		for _, c := range calls {
			if c.Kind == enginestub.KindTaskRunEnd && c.Status/100 == 2 {
				n++
			}
		}
		return n >= len(tasks)
	})
	if err != nil {
		return fmt.Errorf("waiting for end calls: %w\n%s", err, enginestub.Table(eng.Calls()))
	}
	if err := send(ctx, eng, handler.URL, "workflowrun", runID, "succeeded", workflowRun("succeeded", "completed")); err != nil {
		return err
	}
	time.Sleep(time.Second) // let late duplicate events arrive, to show none is reported twice
	stopWatch()

	calls := eng.Calls()
	fmt.Println()
	fmt.Println("What the Engine received:")
	fmt.Println(enginestub.Table(calls))
	if err := check(calls, eng.Violations()); err != nil {
		return err
	}
	return printLog(ctx, logs.URL, scriptTask)
}

// scriptLog is what the script task's step writes.
const scriptLog = "building 1.4.2\nwriting result status=ok\ndone\n"

// printLog prints a task's log as the Engine reads it from the logs role,
// and checks it is what the task wrote.
func printLog(ctx context.Context, base, task string) error {
	target := base + flowlogs.Target(workflowRef, runID, task)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "application/octet-stream, */*") // as the Engine asks
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	fmt.Printf("\nLog of task %s, GET %s -> %d %s:\n%s", task, strings.TrimPrefix(target, base), resp.StatusCode, resp.Header.Get("Content-Type"), body)
	if resp.StatusCode != http.StatusOK || string(body) != scriptLog {
		return fmt.Errorf("the logs role answered %d %q, want 200 and the step's log %q", resp.StatusCode, body, scriptLog)
	}
	return nil
}

func stopProc(name string, p *fnproc.Proc) {
	say("stopping %s", name)
	if err := p.Stop(10 * time.Second); err != nil {
		say("%s: %v", name, err)
	}
}

func createNamespace(ctx context.Context, kube kubernetes.Interface) error {
	if _, err := kube.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: namespace}}, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("create namespace: %w", err)
	}
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "default"}}
	if _, err := kube.CoreV1().ServiceAccounts(namespace).Create(ctx, sa, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("create serviceaccount: %w", err)
	}
	return nil
}

func workflowRun(status, phase string) map[string]any {
	return map[string]any{
		"id": runID, "status": status, "phase": phase, "workflowRef": workflowRef,
		"labels": map[string]string{"team": "platform"},
		"workspaces": []map[string]any{{
			"name": "shared", "type": "workflowrun", "optional": false,
			"spec": map[string]any{"accessMode": "ReadWriteOnce", "mountPath": "/workspace/shared", "size": 1},
		}},
	}
}

func task(id, typ string, spec map[string]any, labels map[string]string, results []map[string]any) map[string]any {
	spec["debug"] = false
	return map[string]any{
		"id": id, "type": typ, "status": "ready", "phase": "pending", "name": typ + " task",
		"labels": labels, "params": []map[string]any{{"name": "version", "value": "1.4.2"}, {"name": "retries", "value": 3}},
		"results": results, "workspaces": []any{}, "timeout": 5, "spec": spec,
		"workflowRef": workflowRef, "workflowRunRef": runID,
	}
}

// send POSTs one Engine event in structured mode, as the Engine does, once
// the Engine stand-in knows the run it is about.
func send(ctx context.Context, eng *enginestub.Server, url, subtype, id, status string, data map[string]any) error {
	body, err := json.Marshal(map[string]any{
		"specversion": "1.0", "id": fmt.Sprintf("demo-%s-%s-%d", subtype, status, time.Now().UnixNano()),
		"source": "/apis/v1/events", "type": "io.boomerang.event.status." + subtype,
		"subject": fmt.Sprintf("/%s/%s/status/%s", subtype, id, status), "time": time.Now().UTC().Format(time.RFC3339Nano),
		"datacontenttype": "application/json", "data": data,
	})
	if err != nil {
		return err
	}
	eng.KnowEvent(body)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/cloudevents+json")
	began := time.Now()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(resp.Body)
	say("event %-11s %s %-9s -> handler %d in %s %s", subtype, id, status, resp.StatusCode, time.Since(began).Round(time.Millisecond), strings.TrimSpace(string(msg)))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("handler answered %d: %s", resp.StatusCode, msg)
	}
	return nil
}

// watchTaskRuns prints every change of a TaskRun's Succeeded condition,
// and tells the Engine stand-in when each TaskRun was created.
func watchTaskRuns(ctx context.Context, tkn versioned.Interface, eng *enginestub.Server) {
	seen := map[string]string{}
	for ctx.Err() == nil {
		list, err := tkn.TektonV1().TaskRuns(namespace).List(ctx, metav1.ListOptions{})
		if err == nil {
			sort.Slice(list.Items, func(i, j int) bool { return list.Items[i].Name < list.Items[j].Name })
			for _, tr := range list.Items {
				phase := "Created"
				if c := tr.Status.GetCondition(apis.ConditionSucceeded); c != nil {
					phase = fmt.Sprintf("%s/%s", c.Status, c.Reason)
				}
				if tr.Labels["boomerang.io/reported"] != "" {
					phase += " reported=" + tr.Labels["boomerang.io/reported"]
				}
				if _, ok := seen[tr.Name]; !ok {
					eng.TaskRunCreated(tr.Labels[contract.LabelTaskRunRef], tr.CreationTimestamp.Time)
				}
				if seen[tr.Name] != phase {
					seen[tr.Name] = phase
					say("taskrun %s: %s", tr.Name, phase)
				}
			}
		}
		select {
		case <-ctx.Done():
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// check compares the Engine's calls with what the workflow must produce.
func check(calls []enginestub.Call, violations []string) error {
	var problems []string
	count := map[string]int{}
	ends := map[string]*engine.EndRequest{}
	for _, c := range calls {
		if c.Status/100 != 2 {
			continue
		}
		count[c.Kind+" "+c.ID]++
		if c.Kind == enginestub.KindTaskRunEnd {
			ends[c.ID] = c.End
		}
	}
	want := map[string]int{
		enginestub.KindWorkflowRunStart + " " + runID:    1,
		enginestub.KindWorkflowRunFinalize + " " + runID: 1,
	}
	for _, id := range []string{scriptTask, commandTask, failingTask} {
		want[enginestub.KindTaskRunStart+" "+id] = 1
		want[enginestub.KindTaskRunEnd+" "+id] = 1
	}
	for k, n := range want {
		if count[k] != n {
			problems = append(problems, fmt.Sprintf("%s: %d calls, want %d", k, count[k], n))
		}
	}
	if e := ends[scriptTask]; e == nil || e.Status != engine.StatusSucceeded || len(e.Results) != 1 || string(e.Results[0].Value) != `"ok"` {
		problems = append(problems, fmt.Sprintf("script task: end %+v, want succeeded with status=ok", e))
	}
	if e := ends[commandTask]; e == nil || e.Status != engine.StatusSucceeded {
		problems = append(problems, fmt.Sprintf("command task: end %+v, want succeeded", e))
	}
	if e := ends[failingTask]; e == nil || e.Status != engine.StatusFailed || !strings.Contains(e.StatusMessage, "exited with code 1") {
		problems = append(problems, fmt.Sprintf("failing task: end %+v, want failed with Tekton's message", e))
	}
	problems = append(problems, violations...)
	if len(problems) > 0 {
		return errors.New("unexpected Engine calls:\n  " + strings.Join(problems, "\n  "))
	}
	fmt.Println("All Engine calls as expected: one start and one end per task, results and failure message, workflow run started and finalized.")
	return nil
}
