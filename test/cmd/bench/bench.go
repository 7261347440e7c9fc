package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/tektoncd/pipeline/pkg/client/clientset/versioned"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/boomerang-io/flow-tekton-handler/internal/config"
	"github.com/boomerang-io/flow-tekton-handler/test/cluster"
	"github.com/boomerang-io/flow-tekton-handler/test/enginestub"
	"github.com/boomerang-io/flow-tekton-handler/test/fnproc"
)

// bench is one run of every measurement.
type bench struct {
	o     options
	root  string // module root
	tmp   string // scratch directory
	hello string // the bare function's binary
	ids   *ids
	send  *sender

	cluster *cluster.Cluster
	plane   []cluster.Process // the control plane's processes, read once
	// planeCPUs are the CPUs the control plane has to itself while the
	// paused stages run (split); none before, or where they cannot split.
	planeCPUs []int
	kube      kubernetes.Interface
	tekton    versioned.Interface
	engine    *enginestub.Server

	// oursSent and helloSent count the events of the measured runs sent to
	// the handler and to the bare function, and those not answered 200.
	oursSent, helloSent tally

	// settled are the seconds each measured run waited for the machine to
	// settle (settledSnap); unsettled counts the runs that began without.
	settled   runs
	unsettled int

	rows  []row
	notes []string
	load  []string // /proc/loadavg when the measurements began and ended
}

// note adds a line under the table.
func (b *bench) note(format string, args ...any) {
	b.notes = append(b.notes, fmt.Sprintf(format, args...))
}

// run measures everything and writes the results.
func run(ctx context.Context, o options) error {
	root, err := moduleRoot(ctx)
	if err != nil {
		return err
	}
	tmp, err := os.MkdirTemp("", "bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	g, err := newIDs()
	if err != nil {
		return err
	}
	if o.qps == 0 || o.burst == 0 {
		def, err := shippedConfig()
		if err != nil {
			return err
		}
		o.qps, o.burst = cmp.Or(o.qps, float64(def.KubeQPS)), cmp.Or(o.burst, def.KubeBurst)
	}
	b := &bench{o: o, root: root, tmp: tmp, ids: g, send: newSender(o.timeout)}
	if !filepath.IsAbs(b.o.bin) {
		b.o.bin = filepath.Join(root, b.o.bin)
	}

	// Compile first, while nothing is being measured.
	say("building the bare func-go function and the micro-benchmarks")
	helloDir := filepath.Join(tmp, "hello")
	if err := os.MkdirAll(helloDir, 0o755); err != nil {
		return err
	}
	if b.hello, err = buildHello(ctx, root, helloDir); err != nil {
		return err
	}
	gobench := filepath.Join(tmp, "bench.test")
	if o.gobenchCount > 0 {
		if err := goOutputErr(ctx, root, "test", "-c", "-o", gobench, "./test/bench"); err != nil {
			return err
		}
	}
	if err := b.sizes(); err != nil {
		return err
	}

	say("starting the control plane")
	c, err := cluster.Start(ctx, cluster.Options{Progress: os.Stderr})
	if err != nil {
		return err
	}
	var resumeTekton func() error // set while Tekton's controller is paused
	var unsplit func() error      // set while the CPUs are split
	stopCluster := func() {
		if unsplit != nil {
			// First: this process runs the micro-benchmarks next.
			if err := unsplit(); err != nil {
				say("%v", err)
			}
			unsplit, b.planeCPUs = nil, nil
		}
		if resumeTekton != nil {
			if err := resumeTekton(); err != nil {
				say("%v", err)
			}
			resumeTekton = nil
		}
		if c != nil {
			say("stopping the control plane")
			if err := c.Stop(); err != nil {
				say("%v", err)
			}
			c = nil
		}
	}
	defer stopCluster()
	b.cluster = c
	if b.plane, err = cluster.Processes(c.RunDir()); err != nil {
		return fmt.Errorf("control plane processes: %w", err)
	}
	if b.kube, err = kubernetes.NewForConfig(c.RESTConfig()); err != nil {
		return err
	}
	if b.tekton, err = versioned.NewForConfig(c.RESTConfig()); err != nil {
		return err
	}
	if b.engine, err = enginestub.Start("127.0.0.1:0"); err != nil {
		return err
	}
	defer b.engine.Close()
	b.ids.know = b.engine.KnowEvent

	// The stages that create thousands of TaskRuns run last, with
	// Tekton's controller paused (SIGSTOP): they measure the creates, which
	// meet the apiserver and Tekton's admission webhook, not the
	// controller. At its default client-side limit (20 requests a second)
	// it reconciles a few TaskRuns a second, so each run's would keep it
	// busy for minutes, into the runs after it, taking a share of the CPUs
	// that varies from run to run. They also split the CPUs between the
	// control plane and the clients (affinity.go).
	stages := []struct {
		key, name string
		run       func(context.Context) error
		paused    bool
	}{
		{"cold", "cold start", b.coldStarts, false},
		{"memory", "idle memory", b.idleMemory, false},
		{"completion", "completion to end call", b.completions, false},
		{"steps", "handler and sink steps", b.steps, false},
		{"logs", "task log stream", b.logStreams, false},
		{"throughput", "event to TaskRun", b.throughput, true},
		{"storm", "duplicate storm", b.storms, true},
	}
	b.load = append(b.load, loadAvg())
	for _, s := range stages {
		if len(o.stages) > 0 && !o.stages[s.key] {
			continue
		}
		if s.paused && resumeTekton == nil {
			if resumeTekton, err = c.PauseTekton(); err != nil {
				return err
			}
			if b.planeCPUs, unsplit, err = split(b.plane); err != nil {
				return err
			}
			if len(b.planeCPUs) > 0 {
				say("the control plane on CPUs %v, this bench and its functions on the others", b.planeCPUs)
			}
		}
		say("== %s", s.name)
		if err := s.run(ctx); err != nil {
			return fmt.Errorf("%s: %w\n%s", s.name, err, c.Tails(20))
		}
	}
	b.load = append(b.load, loadAvg())
	b.failureRow()
	if v := b.engine.Violations(); len(v) > 0 {
		return fmt.Errorf("the Engine stand-in saw %d contract violations, first: %s", len(v), v[0])
	}
	b.note("The Engine stand-in received %d calls and saw no contract violation (no second start before the first took effect, no end before its start took effect, no two ends in flight, no duplicate end).", len(b.engine.Calls()))
	server, err := b.kube.Discovery().ServerVersion()
	if err != nil {
		return err
	}
	stopCluster()

	var micro string
	if o.gobenchCount > 0 {
		say("== micro-benchmarks (go test -bench ./test/bench)")
		if micro, err = runGoBench(ctx, gobench, filepath.Join(root, "test", "bench"), o.gobenchCount); err != nil {
			return err
		}
		b.microRows(micro)
	}
	doc := b.document(server.GitVersion, micro)
	if err := os.WriteFile(b.outPath(), []byte(doc), 0o644); err != nil {
		return err
	}
	fmt.Print(doc)
	return nil
}

// failureRow reports the events of the measured runs that the handler and
// the bare function did not answer 200 within the request timeout.
func (b *bench) failureRow() {
	o, h := &b.oursSent, &b.helloSent
	if o.sent == 0 && h.sent == 0 {
		return
	}
	b.rows = append(b.rows, row{
		metric: fmt.Sprintf("events not answered 200 within %s, of %d sent to the handler (throughput and storm runs) and %d to the bare function", b.o.timeout, o.sent, h.sent),
		ours:   strconv.Itoa(o.failed()),
		floor:  strconv.Itoa(h.failed()),
		target: "0",
		met:    o.failed() == 0,
	})
	for _, f := range []struct {
		name string
		t    *tally
	}{{"handler", o}, {"bare function", h}} {
		if f.t.failed() > 0 {
			b.note("The %s left %d of %d events unanswered within %s (timed out, or the connection failed) and answered %d other than 200; the first failure: %v.",
				f.name, f.t.unanswered, f.t.sent, b.o.timeout, f.t.rejected, f.t.first)
		}
	}
}

func (b *bench) outPath() string {
	if filepath.IsAbs(b.o.out) {
		return b.o.out
	}
	return filepath.Join(b.root, b.o.out)
}

// moduleRoot is the directory of the repository's go.mod.
func moduleRoot(ctx context.Context) (string, error) {
	out, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", errors.New("run bench inside the repository")
	}
	return filepath.Dir(gomod), nil
}

// goOutputErr runs the go command in dir and returns its output on failure.
func goOutputErr(ctx context.Context, dir string, args ...string) error {
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go %s: %w\n%s", strings.Join(args, " "), err, out)
	}
	return nil
}

// runGoBench runs the compiled micro-benchmarks in dir and returns their
// output, as benchstat reads it.
func runGoBench(ctx context.Context, bin, dir string, count int) (string, error) {
	cmd := exec.CommandContext(ctx, bin, "-test.run", "^$", "-test.bench", ".", "-test.benchmem", "-test.count", strconv.Itoa(count))
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("micro-benchmarks: %w\n%s", err, out)
	}
	return string(out), nil
}

// env is the environment of a function working in namespace ns with the
// client-side rate limit qps/burst.
func (b *bench) env(ns string, qps float64, burst int) map[string]string {
	return map[string]string{
		"KUBECONFIG": b.cluster.Kubeconfig(),
		"NAMESPACE":  ns,
		"ENGINE_URL": b.engine.URL(),
		"KUBE_QPS":   strconv.FormatFloat(qps, 'f', -1, 64),
		"KUBE_BURST": strconv.Itoa(burst),
	}
}

// shippedConfig is the configuration with every default.
func shippedConfig() (config.Config, error) {
	return loadConfig(map[string]string{"ENGINE_URL": "http://127.0.0.1:1", "NAMESPACE": "default"})
}

// loadConfig returns the configuration a function started with env would
// load: config.Load in an environment holding env only.
func loadConfig(env map[string]string) (config.Config, error) {
	saved := os.Environ()
	defer func() {
		os.Clearenv()
		for _, kv := range saved {
			k, v, _ := strings.Cut(kv, "=")
			_ = os.Setenv(k, v)
		}
	}()
	os.Clearenv()
	for k, v := range env {
		if err := os.Setenv(k, v); err != nil {
			return config.Config{}, err
		}
	}
	return config.Load()
}

// clients returns a Kubernetes and a Tekton clientset for the admin user
// with the given rate limit, sharing nothing with earlier ones.
func (b *bench) clients(qps float64, burst int) (kubernetes.Interface, versioned.Interface, error) {
	cfg := rest.CopyConfig(b.cluster.RESTConfig())
	cfg.QPS, cfg.Burst = float32(qps), burst
	cfg.UserAgent = "bench-floor"
	k, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, nil, err
	}
	t, err := versioned.NewForConfig(cfg)
	if err != nil {
		return nil, nil, err
	}
	return k, t, nil
}

// namespace creates a fresh namespace with its default ServiceAccount (no
// controller manager runs to make it). Namespaces are left behind: no
// namespace controller runs to finish a deletion.
func (b *bench) namespace(ctx context.Context, prefix string) (string, error) {
	ns, err := b.kube.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{
		ObjectMeta: metav1.ObjectMeta{GenerateName: "bench-" + prefix + "-"},
	}, metav1.CreateOptions{})
	if err != nil {
		return "", fmt.Errorf("create namespace: %w", err)
	}
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "default"}}
	if _, err := b.kube.CoreV1().ServiceAccounts(ns.Name).Create(ctx, sa, metav1.CreateOptions{}); err != nil {
		return "", fmt.Errorf("create serviceaccount %s/default: %w", ns.Name, err)
	}
	return ns.Name, nil
}

// startFunction starts bin (handler or sink) in namespace ns.
func (b *bench) startFunction(ctx context.Context, bin, ns string, qps float64, burst int) (*fnproc.Proc, error) {
	return fnproc.Start(ctx, filepath.Join(b.o.bin, bin), b.env(ns, qps, burst))
}

// errDied marks a run whose function process exited under it.
var errDied = errors.New("the function process exited during the run")

// died marks err with errDied when one of the processes has exited.
func died(err error, procs ...*fnproc.Proc) error {
	for _, p := range procs {
		select {
		case <-p.Done():
			return fmt.Errorf("%w (%s): %w", errDied, p.Name, err)
		default:
		}
	}
	return err
}

// retried runs f up to three times while it fails with errDied: on a
// shared machine something else may end our processes (a stale process
// group id of another run, say).
func retried(what string, f func() error) error {
	for try := 1; ; try++ {
		err := f()
		if err == nil || !errors.Is(err, errDied) || try == 3 {
			return err
		}
		say("%s: %v; running it again", what, err)
	}
}

// stop stops a function, killing it if it does not drain in time.
func stop(p *fnproc.Proc) {
	if err := p.Stop(2 * time.Second); err != nil {
		say("stop %s: %v", p.Name, err)
	}
}
