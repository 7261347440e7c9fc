// Package cluster runs a real, local Kubernetes control plane with Tekton
// for end-to-end tests: etcd, kube-apiserver, kube-scheduler, kwok (a fake
// node whose pods complete by themselves), Tekton Pipelines' controller,
// events controller and admission webhook (defaulting, validation and
// conversion of every Tekton object, as in production), with Tekton's CRDs
// and ConfigMaps applied. Everything is built from Go modules (see Build)
// and listens on 127.0.0.1 only, on free ports, so several stacks can run
// side by side.
//
// Pods never run: kwok makes them Running, then Succeeded, or Failed when
// the pod has the label ktest.dev/outcome=fail. The pod annotation
// ktest.dev/termination-message becomes every container's termination
// message, which Tekton parses for step results. Tekton copies a TaskRun's
// labels and annotations to its pod, so tests set them on the TaskRun.
//
// Child processes never outlive the harness: Stop ends them, SIGINT and
// SIGTERM stop every running cluster before the process exits, and on Linux
// the children get SIGKILL if the harness dies.
package cluster

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// Labels and annotations that drive kwok's pod-complete stages.
const (
	// OutcomeLabel set to OutcomeFail on a pod (or TaskRun) makes its
	// containers exit 1 and the pod fail.
	OutcomeLabel = "ktest.dev/outcome"
	// OutcomeFail is the OutcomeLabel value for failure.
	OutcomeFail = "fail"
	// TerminationMessageAnnotation on a pod (or TaskRun) is copied into
	// every container's terminated.message, e.g.
	// `[{"key":"digest","value":"sha256:abc","type":1}]` for a result.
	TerminationMessageAnnotation = "ktest.dev/termination-message"
)

// NodeName is the kwok node pods are scheduled to.
const NodeName = "kwok-node-0"

// Layout of a run directory.
const (
	runKubeconfig = "admin.kubeconfig"
	runPKI        = "pki"
	runEtcdData   = "etcd-data"
	runLogs       = "logs"
	runStages     = "kwok-stages.yaml"
)

// stopGrace is how long Stop waits after SIGTERM before SIGKILL.
const stopGrace = 5 * time.Second

// Options configures Start. The zero value builds if needed and runs in a
// temporary directory.
type Options struct {
	// BinDir holds the programs made by Build; empty means Build(ctx, Progress).
	BinDir string
	// RunDir receives the PKI, the etcd data (reset on every Start), the
	// admin kubeconfig, one log per process under logs/, and the pids file
	// (see Processes). Empty means a new temporary directory that Stop removes.
	RunDir string
	// EventsSink is the URL Tekton's events controller sends CloudEvents
	// to (config-events sink); empty sends none. See Cluster.SetEventsSink.
	EventsSink string
	// Users are extra static-token users, name to groups, for RBAC tests;
	// they have no permissions until bound. See Cluster.UserConfig.
	Users map[string][]string
	// Progress receives build and start-up progress lines; nil discards them.
	Progress io.Writer
}

// Cluster is a running local control plane. Its methods are safe for
// concurrent use.
type Cluster struct {
	binDir, runDir string
	removeRunDir   bool
	host           string
	caPEM          []byte
	tokens         map[string]string
	kube           kubernetes.Interface
	kubelet        *kubeletLogs // the node's kubelet endpoint, set by Start

	mu         sync.Mutex
	procs      []*proc // in start order
	stopBinder context.CancelFunc
}

// Start builds the programs if needed and starts the control plane, and
// returns once Tekton's controllers have synced their informers and the API
// server sends Tekton's objects through Tekton's webhook (about ten
// seconds). On error, whatever was started is stopped again.
func Start(ctx context.Context, opts Options) (*Cluster, error) {
	progress := opts.Progress
	if progress == nil {
		progress = io.Discard
	}
	binDir := opts.BinDir
	if binDir == "" {
		var err error
		if binDir, err = Build(ctx, progress); err != nil {
			return nil, fmt.Errorf("start cluster: %w", err)
		}
	}
	c := &Cluster{binDir: binDir, runDir: opts.RunDir}
	if c.runDir == "" {
		dir, err := os.MkdirTemp("", "cluster-")
		if err != nil {
			return nil, fmt.Errorf("start cluster: %w", err)
		}
		c.runDir, c.removeRunDir = dir, true
	}
	if abs, err := filepath.Abs(c.runDir); err == nil {
		c.runDir = abs
	}
	register(c)
	if err := c.start(ctx, opts, progress); err != nil {
		_ = c.Stop()
		return nil, fmt.Errorf("start cluster in %s: %w", c.runDir, err)
	}
	return c, nil
}

// start starts every component in order and waits for each to be ready.
// The scheduler, kwok and Tekton's webhook start while Tekton's objects are
// applied, and are waited for after; Tekton's controllers start last.
func (c *Cluster) start(ctx context.Context, opts Options, progress io.Writer) error {
	t0 := time.Now()
	step := func(what string) { fmt.Fprintf(progress, "cluster: %s (+%s)\n", what, since(t0)) }

	l, err := c.prepare(opts.Users)
	if err != nil {
		return err
	}
	if err := c.startEtcd(ctx, l); err != nil {
		return err
	}
	step("etcd ready")
	if err := c.startAPIServer(ctx, l); err != nil {
		return err
	}
	step("kube-apiserver ready")
	schedReady, err := c.startScheduler(ctx, l)
	if err != nil {
		return err
	}
	kwokReady, err := c.startKwok(ctx, l)
	if err != nil {
		return err
	}
	crdsReady, err := c.applyTekton(ctx, l, opts.EventsSink)
	if err != nil {
		return err
	}
	step("tekton CRDs and ConfigMaps applied")
	webhookReady, err := c.startTektonWebhook(ctx, l)
	if err != nil {
		return err
	}
	for _, ready := range []ready{schedReady, kwokReady, crdsReady} {
		if err := ready(); err != nil {
			return err
		}
	}
	step("kube-scheduler, kwok node and CRDs ready")
	if err := c.startTektonControllers(ctx, l); err != nil {
		return err
	}
	if err := webhookReady(); err != nil {
		return err
	}
	step("tekton controller, events controller and webhook ready")
	return nil
}

// ready waits until a component that was started is ready.
type ready func() error

// layout is what start settles before it runs anything and the components
// share: ports, paths and the admin's clients.
type layout struct {
	etcdURL, peerURL                string
	apiPort, schedPort, kwokPort    int
	pkiDir, kubeconfig, webhookAddr string
	wh                              webhookServer
	cfg                             *rest.Config
	dyn                             dynamic.Interface
}

// prepare resets the run directory (etcd data, logs, pids file), picks the
// ports, writes the PKI and the admin kubeconfig, and makes the admin's
// clients.
func (c *Cluster) prepare(users map[string][]string) (*layout, error) {
	if err := os.RemoveAll(filepath.Join(c.runDir, runEtcdData)); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Join(c.runDir, runLogs), 0o755); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(c.runDir, pidsFile), nil, 0o644); err != nil {
		return nil, err
	}
	ports, err := freePorts(6)
	if err != nil {
		return nil, err
	}
	etcdPort, peerPort, apiPort, schedPort, kwokPort, webhookPort := ports[0], ports[1], ports[2], ports[3], ports[4], ports[5]
	l := &layout{
		etcdURL:     "http://127.0.0.1:" + strconv.Itoa(etcdPort),
		peerURL:     "http://127.0.0.1:" + strconv.Itoa(peerPort),
		apiPort:     apiPort,
		schedPort:   schedPort,
		kwokPort:    kwokPort,
		pkiDir:      filepath.Join(c.runDir, runPKI),
		kubeconfig:  c.Kubeconfig(),
		webhookAddr: "127.0.0.1:" + strconv.Itoa(webhookPort),
	}
	keys, err := writePKI(l.pkiDir, users, time.Now())
	if err != nil {
		return nil, fmt.Errorf("write pki: %w", err)
	}
	c.host = "https://127.0.0.1:" + strconv.Itoa(apiPort)
	c.caPEM, c.tokens = keys.caPEM, keys.tokens
	l.wh = webhookServer{url: "https://" + l.webhookAddr, caPEM: keys.caPEM}
	if err := writeKubeconfig(l.kubeconfig, c.host, c.caPEM, c.tokens[adminUser]); err != nil {
		return nil, err
	}
	l.cfg = c.RESTConfig()
	if c.kube, err = kubernetes.NewForConfig(l.cfg); err != nil {
		return nil, err
	}
	if l.dyn, err = dynamic.NewForConfig(l.cfg); err != nil {
		return nil, err
	}
	return l, nil
}

// startEtcd starts etcd, with its data in the run directory, and waits
// until it is healthy.
func (c *Cluster) startEtcd(ctx context.Context, l *layout) error {
	etcd, err := c.run(binEtcd, nil,
		"--data-dir="+filepath.Join(c.runDir, runEtcdData), "--unsafe-no-fsync",
		"--listen-client-urls="+l.etcdURL, "--advertise-client-urls="+l.etcdURL,
		"--listen-peer-urls="+l.peerURL, "--initial-advertise-peer-urls="+l.peerURL,
		"--initial-cluster=default="+l.peerURL)
	if err != nil {
		return err
	}
	plain := &http.Client{Timeout: 2 * time.Second}
	return waitFor(ctx, "etcd", etcd, time.Minute, func(ctx context.Context) (bool, error) {
		return httpOK(ctx, plain, l.etcdURL+"/health", "")
	})
}

// startAPIServer starts kube-apiserver and waits until it is ready and
// serves the default namespace.
func (c *Cluster) startAPIServer(ctx context.Context, l *layout) error {
	pki := func(name string) string { return filepath.Join(l.pkiDir, name) }
	api, err := c.run(binAPIServer, nil,
		"--etcd-servers="+l.etcdURL,
		"--bind-address=127.0.0.1", "--advertise-address=127.0.0.1", "--secure-port="+strconv.Itoa(l.apiPort),
		"--tls-cert-file="+pki(pkiServerCert), "--tls-private-key-file="+pki(pkiServerKey),
		"--client-ca-file="+pki(pkiCACert),
		"--kubelet-certificate-authority="+pki(pkiCACert),
		"--token-auth-file="+pki(pkiTokens), "--authorization-mode=Node,RBAC",
		"--service-account-issuer="+Issuer,
		"--service-account-key-file="+pki(pkiSAPub),
		"--service-account-signing-key-file="+pki(pkiSAKey),
		"--service-cluster-ip-range=10.96.0.0/16", "--endpoint-reconciler-type=none",
		"--disable-admission-plugins=ServiceAccount,TaintNodesByCondition",
		"--allow-privileged=true", "--profiling=false")
	if err != nil {
		return err
	}
	tlsClient, err := rest.HTTPClientFor(l.cfg)
	if err != nil {
		return err
	}
	return waitFor(ctx, "kube-apiserver", api, time.Minute, func(ctx context.Context) (bool, error) {
		if ok, err := httpOK(ctx, tlsClient, c.host+"/readyz", ""); !ok {
			return false, err
		}
		_, err := c.kube.CoreV1().Namespaces().Get(ctx, "default", metav1.GetOptions{})
		return err == nil, err
	})
}

// startScheduler starts kube-scheduler; its ready waits for its readyz.
func (c *Cluster) startScheduler(ctx context.Context, l *layout) (ready, error) {
	sched, err := c.run(binScheduler, nil,
		"--kubeconfig="+l.kubeconfig, "--authentication-kubeconfig="+l.kubeconfig, "--authorization-kubeconfig="+l.kubeconfig,
		"--leader-elect=false", "--bind-address=127.0.0.1", "--secure-port="+strconv.Itoa(l.schedPort))
	if err != nil {
		return nil, err
	}
	return func() error {
		insecure := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{
			TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, // the scheduler's self-signed loopback cert
		}}
		return waitFor(ctx, "kube-scheduler", sched, time.Minute, func(ctx context.Context) (bool, error) {
			return httpOK(ctx, insecure, "https://127.0.0.1:"+strconv.Itoa(l.schedPort)+"/readyz", "")
		})
	}, nil
}

// startKwok starts kwok with the pod stages and the node's stand-ins
// (serveNode); its ready waits for the node to be Ready.
//
// The node's kubelet endpoint (InternalIP 127.0.0.1, daemonEndpoints port,
// set by kwok's node-initialize stage from --node-ip and --node-port) is
// our kubeletLogs server, where the API server sends pods/log; kwok's own
// server stays on --server-address.
func (c *Cluster) startKwok(ctx context.Context, l *layout) (ready, error) {
	stages := filepath.Join(c.runDir, runStages)
	if err := writeStages(stages, filepath.Join(c.binDir, shareKwok)); err != nil {
		return nil, err
	}
	kubeletCert, err := tls.LoadX509KeyPair(filepath.Join(l.pkiDir, pkiKubeletCert), filepath.Join(l.pkiDir, pkiKubeletKey))
	if err != nil {
		return nil, err
	}
	kubeletLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	kwok, err := c.run(binKwok, nil,
		"--kubeconfig="+l.kubeconfig, "--config="+stages, "--manage-all-nodes=false",
		"--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake",
		"--server-address=127.0.0.1:"+strconv.Itoa(l.kwokPort),
		"--node-ip=127.0.0.1", "--node-port="+strconv.Itoa(kubeletLn.Addr().(*net.TCPAddr).Port))
	if err != nil {
		kubeletLn.Close()
		return nil, err
	}
	if err := c.serveNode(ctx, kubeletLn, kubeletCert); err != nil {
		return nil, err
	}
	return func() error {
		return waitFor(ctx, "node "+NodeName, kwok, time.Minute, func(ctx context.Context) (bool, error) {
			return nodeReady(ctx, c.kube)
		})
	}, nil
}

// serveNode starts what stands in for the node beside kwok, until Stop:
// the kubelet log server on ln, the Node object and the volume binder.
func (c *Cluster) serveNode(ctx context.Context, ln net.Listener, cert tls.Certificate) error {
	binderCtx, stopBinder := context.WithCancel(context.WithoutCancel(ctx))
	c.stopBinder = stopBinder
	c.kubelet = serveKubeletLogs(binderCtx, ln, cert, c.kube)
	if err := createNode(ctx, c.kube); err != nil {
		return err
	}
	go bindVolumes(binderCtx, c.kube)
	return nil
}

// applyTekton applies Tekton's CRDs and ConfigMaps, with the events sink
// and webhook l.wh; its ready waits for the CRDs to be established.
func (c *Cluster) applyTekton(ctx context.Context, l *layout, eventsSink string) (ready, error) {
	files, err := tektonFiles(c.binDir)
	if err != nil {
		return nil, err
	}
	objs, err := readTektonObjects(files, eventsSink, l.wh)
	if err != nil {
		return nil, err
	}
	if err := applyObjects(ctx, l.dyn, objs); err != nil {
		return nil, err
	}
	return func() error {
		return waitFor(ctx, "tekton CRDs", nil, time.Minute, func(ctx context.Context) (bool, error) {
			return crdsEstablished(ctx, l.dyn, objs)
		})
	}, nil
}

// startTektonWebhook starts Tekton's webhook, which reads the ConfigMaps
// applied before when it starts, and registers it with the API server; its
// ready waits until the API server sends Tekton's objects through it
// (webhookServing).
func (c *Cluster) startTektonWebhook(ctx context.Context, l *layout) (ready, error) {
	webhook, err := c.run(binTektonWebhook, append(tektonEnv(), "CONFIG_LEADERELECTION_NAME=config-leader-election-webhook"),
		"-kubeconfig="+l.kubeconfig, "-addr="+l.webhookAddr,
		"-tls-cert-file="+filepath.Join(l.pkiDir, pkiWebhookCert), "-tls-private-key-file="+filepath.Join(l.pkiDir, pkiWebhookKey))
	if err != nil {
		return nil, err
	}
	if err := registerWebhooks(ctx, c.kube, l.wh); err != nil {
		return nil, err
	}
	return func() error {
		return waitFor(ctx, binTektonWebhook, webhook, time.Minute, func(ctx context.Context) (bool, error) {
			return webhookServing(ctx, l.dyn)
		})
	}, nil
}

// startTektonControllers starts Tekton's controller and events controller
// and waits until every controller of theirs has started its workers.
func (c *Cluster) startTektonControllers(ctx context.Context, l *layout) error {
	img := "tekton.invalid/" // never pulled: no container runs
	ctrl, err := c.run(binTektonController, tektonEnv(),
		"-kubeconfig="+l.kubeconfig,
		"-entrypoint-image="+img+"entrypoint", "-nop-image="+img+"nop",
		"-sidecarlogresults-image="+img+"sidecarlogresults", "-workingdirinit-image="+img+"workingdirinit",
		"-shell-image="+img+"busybox", "-shell-image-win="+img+"powershell")
	if err != nil {
		return err
	}
	events, err := c.run(binTektonEvents, tektonEnv(), "-kubeconfig="+l.kubeconfig)
	if err != nil {
		return err
	}
	for _, w := range []struct {
		p     *proc
		names []string
	}{
		{ctrl, []string{"reconciler.taskrun.", "reconciler.pipelinerun.", "reconciler.resolutionrequest."}},
		{events, []string{"notifications.customrun.", "notifications.taskrun.", "notifications.pipelinerun."}},
	} {
		if err := waitFor(ctx, w.p.Name, w.p, time.Minute, func(context.Context) (bool, error) {
			return workersStarted(w.p.log, w.names)
		}); err != nil {
			return err
		}
	}
	return nil
}

// run starts a program from the bin dir, logging to logs/<name>.log, and
// records it in the pids file.
func (c *Cluster) run(name string, env []string, args ...string) (*proc, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	p, err := startProc(name, filepath.Join(c.binDir, name), args, append(baseEnv(), env...),
		c.runDir, filepath.Join(c.runDir, runLogs, name+".log"))
	if err != nil {
		return nil, err
	}
	c.procs = append(c.procs, p)
	f, err := os.OpenFile(filepath.Join(c.runDir, pidsFile), os.O_APPEND|os.O_WRONLY|os.O_CREATE, 0o644)
	if err != nil {
		return p, err
	}
	defer f.Close()
	if _, err := fmt.Fprintf(f, "%d %s\n", p.PID, p.Name); err != nil {
		return p, err
	}
	return p, nil
}

// baseEnv is what every child inherits from us: nothing that could point it
// elsewhere (KUBECONFIG, proxies).
func baseEnv() []string {
	var env []string
	for _, k := range []string{"PATH", "HOME", "TMPDIR"} {
		if v, ok := os.LookupEnv(k); ok {
			env = append(env, k+"="+v)
		}
	}
	return env
}

// tektonEnv is the environment Tekton's deployments set.
func tektonEnv() []string {
	return []string{
		"SYSTEM_NAMESPACE=" + tektonNamespace,
		"METRICS_DOMAIN=tekton.dev/pipeline",
		"KUBERNETES_MIN_VERSION=v1.28.0",
		"CONFIG_DEFAULTS_NAME=config-defaults",
		"CONFIG_LOGGING_NAME=config-logging",
		"CONFIG_OBSERVABILITY_NAME=" + configObservability,
		"CONFIG_FEATURE_FLAGS_NAME=feature-flags",
		"CONFIG_SPIRE=config-spire",
	}
}

// workersStarted reports whether the log at path says every controller in
// names started its workers (its informers have synced).
func workersStarted(path string, names []string) (bool, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return false, err
	}
	for _, n := range names {
		found := false
		for _, line := range strings.Split(string(b), "\n") {
			if strings.Contains(line, "Started workers") && strings.Contains(line, n) {
				found = true
				break
			}
		}
		if !found {
			return false, nil
		}
	}
	return true, nil
}

// waitFor polls check until it reports true, p (if any) exits, or timeout.
func waitFor(ctx context.Context, what string, p *proc, timeout time.Duration, check func(context.Context) (bool, error)) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	var last error
	for {
		ok, err := check(ctx)
		if ok {
			return nil
		}
		if err != nil {
			last = err
		}
		if p != nil && p.exited() {
			return fmt.Errorf("wait for %s: %w", what, p.exitError())
		}
		select {
		case <-ctx.Done():
			msg := fmt.Sprintf("wait for %s: %v (last error: %v)", what, ctx.Err(), last)
			if p != nil {
				msg += fmt.Sprintf("; end of %s:\n%s", p.log, logTail(p.log, 30))
			}
			return errors.New(msg)
		case <-tick.C:
		}
	}
}

// httpOK reports whether GET url answers 200, with an optional bearer token.
func httpOK(ctx context.Context, client *http.Client, url, token string) (bool, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return false, err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := client.Do(req)
	if err != nil {
		return false, err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	if resp.StatusCode != http.StatusOK {
		return false, fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return true, nil
}

// freePorts returns n distinct free TCP ports on 127.0.0.1.
func freePorts(n int) ([]int, error) {
	var ports []int
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("find a free port: %w", err)
		}
		defer l.Close() // held until all are picked, so they differ
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// writeKubeconfig writes a kubeconfig for host with the CA and a token.
func writeKubeconfig(path, host string, caPEM []byte, token string) error {
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["local"] = &clientcmdapi.Cluster{Server: host, CertificateAuthorityData: caPEM}
	cfg.AuthInfos[adminUser] = &clientcmdapi.AuthInfo{Token: token}
	cfg.Contexts["local"] = &clientcmdapi.Context{Cluster: "local", AuthInfo: adminUser, Namespace: "default"}
	cfg.CurrentContext = "local"
	if err := clientcmd.WriteToFile(*cfg, path); err != nil {
		return fmt.Errorf("write kubeconfig %s: %w", path, err)
	}
	return nil
}

// createNode creates the kwok node.
func createNode(ctx context.Context, kube kubernetes.Interface) error {
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{
		Name:        NodeName,
		Annotations: map[string]string{"kwok.x-k8s.io/node": "fake"},
		Labels: map[string]string{
			"kubernetes.io/hostname": NodeName, "kubernetes.io/os": "linux",
			"kubernetes.io/arch": "amd64", "type": "kwok",
		},
	}}
	if _, err := kube.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{FieldManager: fieldManager}); err != nil {
		return fmt.Errorf("create node %s: %w", NodeName, err)
	}
	return nil
}

// nodeReady reports whether the kwok node is Ready.
func nodeReady(ctx context.Context, kube kubernetes.Interface) (bool, error) {
	n, err := kube.CoreV1().Nodes().Get(ctx, NodeName, metav1.GetOptions{})
	if err != nil {
		return false, err
	}
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady && c.Status == corev1.ConditionTrue {
			return true, nil
		}
	}
	return false, nil
}

// Stop stops every process the cluster started, newest first: SIGTERM to
// its process group, SIGKILL after a grace period. It removes the etcd
// data, and the run directory if Start created it. Calling it again does
// nothing.
func (c *Cluster) Stop() error {
	c.mu.Lock()
	procs := c.procs
	c.procs = nil
	stopBinder := c.stopBinder
	c.mu.Unlock()
	if stopBinder != nil {
		stopBinder()
	}
	var errs []error
	for i := len(procs) - 1; i >= 0; i-- {
		if err := procs[i].stop(stopGrace); err != nil {
			errs = append(errs, err)
		}
	}
	deregister(c)
	if len(procs) > 0 {
		dir := filepath.Join(c.runDir, runEtcdData)
		if c.removeRunDir {
			dir = c.runDir
		}
		if err := os.RemoveAll(dir); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("stop cluster: %w", err)
	}
	return nil
}

// Kubeconfig returns the path of an admin kubeconfig file (token user in
// system:masters).
func (c *Cluster) Kubeconfig() string { return filepath.Join(c.runDir, runKubeconfig) }

// RESTConfig returns a new admin client configuration.
func (c *Cluster) RESTConfig() *rest.Config {
	cfg, _ := c.UserConfig(adminUser)
	return cfg
}

// UserConfig returns a new client configuration for a static-token user
// from Options.Users (or "admin").
func (c *Cluster) UserConfig(user string) (*rest.Config, error) {
	tok, ok := c.tokens[user]
	if !ok {
		return nil, fmt.Errorf("no token user %q (add it to Options.Users)", user)
	}
	return &rest.Config{
		Host:            c.host,
		BearerToken:     tok,
		TLSClientConfig: rest.TLSClientConfig{CAData: c.caPEM},
		QPS:             50,
		Burst:           100,
	}, nil
}

// SetEventsSink points Tekton's events controller at sink (empty: no
// events). The setting is cluster-wide; the controller picks it up within
// moments, so set it before creating the runs whose events a test expects.
func (c *Cluster) SetEventsSink(ctx context.Context, sink string) error {
	return setEventsSink(ctx, c.kube, sink)
}

// Namespace creates a fresh namespace named after the test, with the
// `default` ServiceAccount (no controller manager runs to create it), and
// returns its name. Namespaces are not deleted: no namespace controller runs
// to finish a deletion.
func (c *Cluster) Namespace(t testing.TB) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	ns, err := c.kube.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{
		ObjectMeta: metav1.ObjectMeta{GenerateName: namespacePrefix(t.Name())},
	}, metav1.CreateOptions{FieldManager: fieldManager})
	if err != nil {
		t.Fatalf("create namespace: %v", err)
	}
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "default"}}
	if _, err := c.kube.CoreV1().ServiceAccounts(ns.Name).Create(ctx, sa, metav1.CreateOptions{FieldManager: fieldManager}); err != nil {
		t.Fatalf("create serviceaccount %s/default: %v", ns.Name, err)
	}
	return ns.Name
}

// namespacePrefix turns a test name into a GenerateName prefix: a lowercase
// DNS label start of at most 40 characters, ending in "-".
func namespacePrefix(testName string) string {
	var b strings.Builder
	dash := false
	for _, r := range strings.ToLower(testName) {
		if (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') {
			b.WriteRune(r)
			dash = false
		} else if !dash && b.Len() > 0 {
			b.WriteByte('-')
			dash = true
		}
		if b.Len() >= 40 {
			break
		}
	}
	s := strings.TrimRight(b.String(), "-")
	if s == "" || s[0] < 'a' || s[0] > 'z' {
		s = "test-" + s
		s = strings.TrimRight(s, "-")
	}
	return s + "-"
}

// BinDir returns the directory of the programs.
func (c *Cluster) BinDir() string { return c.binDir }

// RunDir returns the run directory (see Options.RunDir).
func (c *Cluster) RunDir() string { return c.runDir }

// LogDir returns the directory with one <program>.log per process.
func (c *Cluster) LogDir() string { return filepath.Join(c.runDir, runLogs) }

// Tails returns the last n lines of every process log, for failure reports.
func (c *Cluster) Tails(n int) string {
	ps, err := Processes(c.runDir)
	if err != nil {
		return err.Error()
	}
	var b strings.Builder
	for _, p := range ps {
		path := filepath.Join(c.LogDir(), p.Name+".log")
		fmt.Fprintf(&b, "==== %s (pid %d) %s ====\n%s\n", p.Name, p.PID, path, logTail(path, n))
	}
	return b.String()
}
