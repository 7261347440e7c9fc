package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	pipelinev1 "github.com/tektoncd/pipeline/pkg/apis/pipeline/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"knative.dev/pkg/apis"

	"github.com/boomerang-io/flow-tekton-handler/function/logs"
	"github.com/boomerang-io/flow-tekton-handler/internal/config"
	"github.com/boomerang-io/flow-tekton-handler/internal/contract"
	"github.com/boomerang-io/flow-tekton-handler/internal/tekton"
	"github.com/boomerang-io/flow-tekton-handler/test/cluster"
	"github.com/boomerang-io/flow-tekton-handler/test/fnproc"
)

// The log stream's figures.
const (
	smallLogBytes   = 2 << 10    // the finished task's log of the first-byte row
	bigLogBytes     = 12_000_000 // the finished task's log of the throughput row (12 MB)
	ttfbRequests    = 15         // first-byte requests per run and side; a run's figure is their median
	bigRequests     = 3          // whole-log transfers per run and side; a run's figure is their median
	logsTTFBAddedMs = 10.0       // ours, not the issue's
	logsTputTarget  = throughputTarget
	logStep         = "task"              // the TaskRuns' one step
	logContainer    = "step-" + logStep   // its container
	logsWaitDone    = 2 * time.Minute     // for a TaskRun to finish
	logsRequestWait = 2 * time.Minute     // for one request
	logsBigFile     = "task-log-12mb.txt" // in b.tmp
	logsKubectl     = "kubectl"           // in the control plane's bin directory
)

// logTask is a finished TaskRun made for the log stream, with the Engine
// references the logs role finds it by.
type logTask struct {
	workflow, workflowRun, task string
	name, pod                   string
}

// query is the logs role's request for t's log.
func (t logTask) query() string {
	return logs.Target(t.workflow, t.workflowRun, t.task)
}

// logText returns n bytes of varied printable ASCII lines ending in a
// newline, as a build step might print them; seed picks the text.
func logText(n int, seed uint64) []byte {
	const chars = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 .,:;-_/=+()[]"
	r := rand.New(rand.NewPCG(seed, 0x6c6f6773))
	out := make([]byte, 0, n)
	for line := 1; len(out) < n; line++ {
		out = fmt.Appendf(out, "[%06d] step %d: ", line, r.IntN(16))
		for range 20 + r.IntN(100) {
			out = append(out, chars[r.IntN(len(chars))])
		}
		out = append(out, '\n')
	}
	out = out[:n]
	out[n-1] = '\n'
	return out
}

// logsEnv is the environment of the logs role in namespace ns: the
// handler's without ENGINE_URL, which the role does not use.
func (b *bench) logsEnv(ns string) map[string]string {
	env := b.env(ns, b.o.qps, b.o.burst)
	env["FUNCTION"] = config.RoleLogs
	delete(env, "ENGINE_URL")
	return env
}

// logTaskRun creates a TaskRun of one step whose log env is env, labelled
// with new Engine references, and waits until it has finished.
func (b *bench) logTaskRun(ctx context.Context, ns, prefix string, env corev1.EnvVar) (logTask, error) {
	t := logTask{workflow: b.ids.next(), workflowRun: b.ids.next(), task: b.ids.next()}
	t.name = tekton.TaskRunName(prefix, t.task)
	tr := &pipelinev1.TaskRun{
		ObjectMeta: metav1.ObjectMeta{Name: t.name, Labels: map[string]string{
			contract.LabelProduct:     prefix,
			contract.LabelWorkflowRef: t.workflow,
			contract.LabelWorkflowRun: t.workflowRun,
			contract.LabelTaskRunRef:  t.task,
		}},
		Spec: pipelinev1.TaskRunSpec{TaskSpec: &pipelinev1.TaskSpec{Steps: []pipelinev1.Step{{
			Name: logStep, Image: "alpine", Command: []string{"true"}, Env: []corev1.EnvVar{env},
		}}}},
	}
	if _, err := b.tekton.TektonV1().TaskRuns(ns).Create(ctx, tr, metav1.CreateOptions{}); err != nil {
		return t, fmt.Errorf("create taskrun %s/%s: %w", ns, t.name, err)
	}
	ctx, cancel := context.WithTimeout(ctx, logsWaitDone)
	defer cancel()
	for {
		got, err := b.tekton.TektonV1().TaskRuns(ns).Get(ctx, t.name, metav1.GetOptions{})
		if err != nil {
			return t, fmt.Errorf("get taskrun %s/%s: %w", ns, t.name, err)
		}
		if c := got.Status.GetCondition(apis.ConditionSucceeded); c != nil && !c.IsUnknown() {
			if !c.IsTrue() || got.Status.PodName == "" {
				return t, fmt.Errorf("taskrun %s/%s finished %s (%s: %s) with pod %q", ns, t.name, c.Status, c.Reason, c.Message, got.Status.PodName)
			}
			t.pod = got.Status.PodName
			return t, nil
		}
		select {
		case <-ctx.Done():
			return t, fmt.Errorf("taskrun %s/%s not finished within %s", ns, t.name, logsWaitDone)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// logStreams measures the logs role's stream of a finished task's log
// against the apiserver's pods/log of the same pod: the time to the first
// byte of a small log (the floor client-go's stream) and the throughput of
// a 12 MB one (the floor kubectl logs).
func (b *bench) logStreams(ctx context.Context) error {
	ns, err := b.namespace(ctx, "logs")
	if err != nil {
		return err
	}
	cfg, err := loadConfig(b.logsEnv(ns))
	if err != nil {
		return err
	}
	prefix := cfg.ProductPrefix
	small := logText(smallLogBytes, 1)
	big := logText(bigLogBytes, 2)
	bigPath := filepath.Join(b.tmp, logsBigFile)
	if err := os.WriteFile(bigPath, big, 0o644); err != nil {
		return err
	}
	defer os.Remove(bigPath)
	want := sha256.Sum256(big)
	smallT, err := b.logTaskRun(ctx, ns, prefix, corev1.EnvVar{Name: cluster.LogEnv, Value: string(small)})
	if err != nil {
		return err
	}
	bigT, err := b.logTaskRun(ctx, ns, prefix, corev1.EnvVar{Name: cluster.LogFileEnv, Value: bigPath})
	if err != nil {
		return err
	}
	kubectl := filepath.Join(b.cluster.BinDir(), logsKubectl)
	if _, err := os.Stat(kubectl); err != nil {
		return fmt.Errorf("kubectl of the control plane: %w", err)
	}
	kube, _, err := b.clients(b.o.qps, b.o.burst)
	if err != nil {
		return err
	}
	checkBig := func(who string, n int64, sum []byte) error {
		if n != int64(len(big)) || !bytes.Equal(sum, want[:]) {
			return fmt.Errorf("%s: %d bytes with sha256 %x, want the file's %d bytes with sha256 %x", who, n, sum, len(big), want)
		}
		return nil
	}
	checkSmall := func(who string, got []byte) error {
		if !bytes.Equal(got, small) {
			return fmt.Errorf("%s: %d bytes %.60q…, want the task's %d bytes %.60q…", who, len(got), got, len(small), small)
		}
		return nil
	}

	var oursTTFB, floorTTFB, oursTput, floorTput, rawTput runs
	for rep := range b.o.reps {
		err := rotate(rep, func() error {
			return retried("logs run", func() error {
				ttfb, tput, err := b.oursLogsRun(ctx, ns, smallT, bigT, checkSmall, checkBig)
				if err != nil {
					return err
				}
				say("rep %d logs role: first byte %.1f ms, 12 MB at %.1f MB/s", rep+1, ttfb, tput)
				oursTTFB, oursTput = append(oursTTFB, ttfb), append(oursTput, tput)
				return nil
			})
		}, func() error {
			var ds []time.Duration
			for i := -1; i < ttfbRequests; i++ { // i -1 warms up
				d, body, err := firstByte(ctx, func(ctx context.Context) (io.ReadCloser, error) {
					return podLog(ctx, kube, ns, smallT.pod)
				})
				if err != nil {
					return fmt.Errorf("pods/log of %s/%s: %w", ns, smallT.pod, err)
				}
				if err := checkSmall("pods/log", body); err != nil {
					return err
				}
				if i >= 0 {
					ds = append(ds, d)
				}
			}
			var tk, tr []time.Duration
			for i := -1; i < bigRequests; i++ {
				d, n, sum, err := kubectlLogs(ctx, kubectl, b.cluster.Kubeconfig(), ns, bigT.pod)
				if err != nil {
					return err
				}
				if err := checkBig("kubectl logs", n, sum); err != nil {
					return err
				}
				dr, n, sum, err := whole(ctx, func(ctx context.Context) (io.ReadCloser, error) {
					return podLog(ctx, kube, ns, bigT.pod)
				})
				if err != nil {
					return fmt.Errorf("pods/log of %s/%s: %w", ns, bigT.pod, err)
				}
				if err := checkBig("pods/log", n, sum); err != nil {
					return err
				}
				if i >= 0 {
					tk, tr = append(tk, d), append(tr, dr)
				}
			}
			ttfb := ms(percentile(ds, 50))
			tput, raw := mbps(bigLogBytes, percentile(tk, 50)), mbps(bigLogBytes, percentile(tr, 50))
			say("rep %d logs floor: pods/log first byte %.1f ms; kubectl logs 12 MB at %.1f MB/s, client-go stream at %.1f MB/s", rep+1, ttfb, tput, raw)
			floorTTFB, floorTput, rawTput = append(floorTTFB, ttfb), append(floorTput, tput), append(rawTput, raw)
			return nil
		})
		if err != nil {
			return err
		}
	}
	r := ratios(oursTput, floorTput)
	b.rows = append(b.rows,
		latencyRow("task log, finished task, time to first byte (ms)", oursTTFB, floorTTFB, logsTTFBAddedMs, " †"),
		row{
			metric: "task log, 12 MB finished task log: throughput (MB/s)",
			ours:   oursTput.format(1, false),
			floor:  floorTput.format(1, false),
			ratio:  ratioText(r),
			target: fmt.Sprintf("≥ %g× †", logsTputTarget),
			met:    r.median() >= logsTputTarget,
		})
	b.note("Log stream of a finished task: the first-byte figures are each run's median of %d GETs of a %d-byte log (after one warm-up); the throughput figures each run's median of %d transfers of the 12 MB log, every one checked byte for byte (size and sha256). kubectl logs' time includes its start and its copy to stdout one line (one write) at a time (kubectl's DefaultConsumeRequest); client-go's own pods/log stream of the 12 MB log, which kubectl logs and the logs role both read through, ran at %s MB/s (ratio of ours to it %s).",
		ttfbRequests, smallLogBytes, bigRequests, rawTput.format(1, false), ratioText(ratios(oursTput, rawTput)))
	return nil
}

// oursLogsRun starts the logs role in ns and returns its median time to the
// first byte of smallT's log (ms) and its median throughput of bigT's log
// (MB/s).
func (b *bench) oursLogsRun(ctx context.Context, ns string, smallT, bigT logTask,
	checkSmall func(string, []byte) error, checkBig func(string, int64, []byte) error) (ttfb, tput float64, err error) {
	p, err := fnproc.Start(ctx, filepath.Join(b.o.bin, config.RoleHandler), b.logsEnv(ns))
	if err != nil {
		return 0, 0, err
	}
	defer stop(p)
	client := &http.Client{Transport: &http.Transport{
		DialContext:        (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
		DisableCompression: true,
	}}
	defer client.CloseIdleConnections() // first: p then drains at once
	defer func() {
		if err != nil {
			err = died(fmt.Errorf("%w\n%s", err, tail(p.Logs(), 5)), p)
		}
	}()
	get := func(t logTask) func(ctx context.Context) (io.ReadCloser, error) {
		return func(ctx context.Context) (io.ReadCloser, error) { return getLog(ctx, client, p.URL+t.query()) }
	}
	var ds []time.Duration
	for i := -1; i < ttfbRequests; i++ { // i -1 warms up
		d, body, err := firstByte(ctx, get(smallT))
		if err != nil {
			return 0, 0, err
		}
		if err := checkSmall("logs role", body); err != nil {
			return 0, 0, err
		}
		if i >= 0 {
			ds = append(ds, d)
		}
	}
	var ts []time.Duration
	for i := -1; i < bigRequests; i++ {
		d, n, sum, err := whole(ctx, get(bigT))
		if err != nil {
			return 0, 0, err
		}
		if err := checkBig("logs role", n, sum); err != nil {
			return 0, 0, err
		}
		if i >= 0 {
			ts = append(ts, d)
		}
	}
	return ms(percentile(ds, 50)), mbps(bigLogBytes, percentile(ts, 50)), nil
}

// getLog GETs a log stream of the logs role; anything but 200 fails.
func getLog(ctx context.Context, client *http.Client, u string) (io.ReadCloser, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		resp.Body.Close()
		return nil, fmt.Errorf("GET %s: %d %s", u, resp.StatusCode, strings.TrimSpace(string(msg)))
	}
	return resp.Body, nil
}

// podLog opens pods/log of the step container of pod, as client-go does.
func podLog(ctx context.Context, kube kubernetes.Interface, ns, pod string) (io.ReadCloser, error) {
	return kube.CoreV1().Pods(ns).GetLogs(pod, &corev1.PodLogOptions{Container: logContainer}).Stream(ctx)
}

// firstByte opens a stream and returns the time from the open until the
// first byte of its body arrived, and the whole body.
func firstByte(ctx context.Context, open func(context.Context) (io.ReadCloser, error)) (time.Duration, []byte, error) {
	ctx, cancel := context.WithTimeout(ctx, logsRequestWait)
	defer cancel()
	began := time.Now()
	body, err := open(ctx)
	if err != nil {
		return 0, nil, err
	}
	defer body.Close()
	buf := make([]byte, 32<<10)
	var n int
	for n == 0 {
		if n, err = body.Read(buf); n == 0 && err != nil {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return 0, nil, fmt.Errorf("no byte: %w", err)
		}
	}
	d := time.Since(began)
	rest, err := io.ReadAll(body)
	if err != nil {
		return 0, nil, err
	}
	return d, append(buf[:n], rest...), nil
}

// whole opens a stream and reads it to the end, returning the time from
// the open to the end, the bytes and their sha256.
func whole(ctx context.Context, open func(context.Context) (io.ReadCloser, error)) (time.Duration, int64, []byte, error) {
	ctx, cancel := context.WithTimeout(ctx, logsRequestWait)
	defer cancel()
	began := time.Now()
	body, err := open(ctx)
	if err != nil {
		return 0, 0, nil, err
	}
	defer body.Close()
	h := sha256.New()
	n, err := io.Copy(h, body)
	d := time.Since(began)
	if err != nil {
		return 0, 0, nil, err
	}
	return d, n, h.Sum(nil), nil
}

// kubectlLogs runs kubectl logs of pod's step container and reads its
// output to the end, returning the time from exec to the output's end, the
// bytes and their sha256.
func kubectlLogs(ctx context.Context, kubectl, kubeconfig, ns, pod string) (time.Duration, int64, []byte, error) {
	ctx, cancel := context.WithTimeout(ctx, logsRequestWait)
	defer cancel()
	cmd := exec.CommandContext(ctx, kubectl, "logs", pod, "-c", logContainer, "-n", ns, "--kubeconfig", kubeconfig)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return 0, 0, nil, err
	}
	began := time.Now()
	if err := cmd.Start(); err != nil {
		return 0, 0, nil, fmt.Errorf("start kubectl: %w", err)
	}
	h := sha256.New()
	n, err := io.Copy(h, out)
	d := time.Since(began)
	if werr := cmd.Wait(); err == nil {
		err = werr
	}
	if err != nil {
		return 0, 0, nil, fmt.Errorf("kubectl logs %s -c %s -n %s: %w\n%s", pod, logContainer, ns, err, stderr.String())
	}
	return d, n, h.Sum(nil), nil
}

// mbps is n bytes in d as megabytes (10^6) per second.
func mbps(n int64, d time.Duration) float64 { return mb(n) / d.Seconds() }
