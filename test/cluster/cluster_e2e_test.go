//go:build e2e

package cluster_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	v1 "github.com/tektoncd/pipeline/pkg/apis/pipeline/v1"
	"github.com/tektoncd/pipeline/pkg/client/clientset/versioned"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	"knative.dev/pkg/apis"

	"github.com/boomerang-io/flow-tekton-handler/test/cluster"
	"github.com/boomerang-io/flow-tekton-handler/test/wait"
)

// helperEnv makes the test binary a harness that starts a cluster in the
// given run directory and waits for a signal (see TestInterrupt).
const helperEnv = "CLUSTER_E2E_HELPER_DIR"

func TestMain(m *testing.M) {
	if dir := os.Getenv(helperEnv); dir != "" {
		os.Exit(helper(dir))
	}
	cluster.Main(m, cluster.Options{Users: map[string][]string{"viewer": {"viewers"}}})
}

// helper starts a cluster in dir, marks it ready and blocks; the package's
// signal handler stops it.
func helper(dir string) int {
	c, err := cluster.Start(context.Background(), cluster.Options{RunDir: dir, Progress: os.Stderr})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if err := os.WriteFile(filepath.Join(dir, "ready"), []byte(c.Kubeconfig()), 0o644); err != nil {
		fmt.Fprintln(os.Stderr, err)
		_ = c.Stop()
		return 1
	}
	select {}
}

const resultMessage = `[{"key":"digest","value":"sha256:abc","type":1}]`

func TestTaskRuns(t *testing.T) {
	t.Parallel()
	c := cluster.ForTest(t)
	tekton := versioned.NewForConfigOrDie(c.RESTConfig())
	ns := c.Namespace(t)
	tests := []struct {
		name        string
		labels      map[string]string
		annotations map[string]string
		results     []string
		wantStatus  corev1.ConditionStatus
		wantReason  string
		wantResults []v1.TaskRunResult
	}{
		{name: "ok", wantStatus: corev1.ConditionTrue, wantReason: "Succeeded"},
		{name: "fail", labels: map[string]string{cluster.OutcomeLabel: cluster.OutcomeFail},
			wantStatus: corev1.ConditionFalse, wantReason: "StepFailed"},
		{name: "result", annotations: map[string]string{cluster.TerminationMessageAnnotation: resultMessage},
			results: []string{"digest"}, wantStatus: corev1.ConditionTrue, wantReason: "Succeeded",
			wantResults: []v1.TaskRunResult{{Name: "digest", Type: v1.ResultsTypeString, Value: *v1.NewStructuredValues("sha256:abc")}}},
		{name: "result-labels", labels: map[string]string{"ktest.dev/result-name": "digest", "ktest.dev/result-value": "abc"},
			results: []string{"digest"}, wantStatus: corev1.ConditionTrue, wantReason: "Succeeded",
			wantResults: []v1.TaskRunResult{{Name: "digest", Type: v1.ResultsTypeString, Value: *v1.NewStructuredValues("abc")}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			start := time.Now()
			tr := taskRun(ns, tc.name, tc.labels, tc.annotations, tc.results...)
			if _, err := tekton.TektonV1().TaskRuns(ns).Create(ctx, tr, metav1.CreateOptions{}); err != nil {
				t.Fatal(err)
			}
			got, cond := waitTaskRun(ctx, t, tekton, ns, tc.name)
			t.Logf("%s/%s: %s %s after %s", ns, tc.name, cond.Status, cond.Reason, time.Since(start).Round(time.Millisecond))
			if cond.Status != tc.wantStatus || cond.Reason != tc.wantReason {
				t.Errorf("Succeeded condition = %s %s (%s), want %s %s", cond.Status, cond.Reason, cond.Message, tc.wantStatus, tc.wantReason)
			}
			if diff := cmp.Diff(tc.wantResults, got.Status.Results); diff != "" {
				t.Errorf("results (-want +got):\n%s", diff)
			}
		})
	}
}

// TestEvents checks that Tekton's events controller sends TaskRun
// CloudEvents to the sink set at run time.
func TestEvents(t *testing.T) {
	c := cluster.ForTest(t)
	tekton := versioned.NewForConfigOrDie(c.RESTConfig())
	ns := c.Namespace(t)

	type event struct{ typ, subject, source string }
	var mu sync.Mutex
	var got []event
	sink := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		mu.Lock()
		got = append(got, event{r.Header.Get("Ce-Type"), r.Header.Get("Ce-Subject"), r.Header.Get("Ce-Source")})
		mu.Unlock()
		w.WriteHeader(http.StatusAccepted)
	}))
	defer sink.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := c.SetEventsSink(ctx, sink.URL); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := c.SetEventsSink(context.Background(), ""); err != nil {
			t.Error(err)
		}
	})

	want := map[string]string{ // TaskRun -> terminal event type
		"ev-ok":   "dev.tekton.event.taskrun.successful.v1",
		"ev-fail": "dev.tekton.event.taskrun.failed.v1",
	}
	for name := range want {
		var labels map[string]string
		if name == "ev-fail" {
			labels = map[string]string{cluster.OutcomeLabel: cluster.OutcomeFail}
		}
		if _, err := tekton.TektonV1().TaskRuns(ns).Create(ctx, taskRun(ns, name, labels, nil), metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	seen := func() map[string][]string {
		mu.Lock()
		defer mu.Unlock()
		types := map[string][]string{}
		for _, e := range got {
			if strings.Contains(e.source, "/namespaces/"+ns+"/") {
				types[e.subject] = append(types[e.subject], e.typ)
			}
		}
		return types
	}
	wait.Until(ctx, t, "terminal CloudEvents", func() (bool, error) {
		s := seen()
		for name, typ := range want {
			if !contains(s[name], typ) {
				return false, nil
			}
		}
		return true, nil
	})
	for name, types := range seen() {
		t.Logf("%s: %v", name, types)
	}
}

// TestVolumes checks the claim binder that stands in for the controller
// manager: a claim gets Bound to a volume, and a deleted claim goes away.
func TestVolumes(t *testing.T) {
	t.Parallel()
	c := cluster.ForTest(t)
	ns := c.Namespace(t)
	kube := kubernetes.NewForConfigOrDie(c.RESTConfig())
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	pvc := &corev1.PersistentVolumeClaim{
		ObjectMeta: metav1.ObjectMeta{Name: "ws"},
		Spec: corev1.PersistentVolumeClaimSpec{
			AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			Resources:   corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")}},
		},
	}
	if _, err := kube.CoreV1().PersistentVolumeClaims(ns).Create(ctx, pvc, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	wait.Until(ctx, t, "claim bound", func() (bool, error) {
		got, err := kube.CoreV1().PersistentVolumeClaims(ns).Get(ctx, "ws", metav1.GetOptions{})
		return err == nil && got.Status.Phase == corev1.ClaimBound && got.Spec.VolumeName != "", err
	})
	if err := kube.CoreV1().PersistentVolumeClaims(ns).Delete(ctx, "ws", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	wait.Until(ctx, t, "claim deleted", func() (bool, error) {
		_, err := kube.CoreV1().PersistentVolumeClaims(ns).Get(ctx, "ws", metav1.GetOptions{})
		return apierrors.IsNotFound(err), nil
	})
}

// TestRBAC checks that Options.Users are real, unprivileged users.
func TestRBAC(t *testing.T) {
	t.Parallel()
	c := cluster.ForTest(t)
	ns := c.Namespace(t)
	cfg, err := c.UserConfig("viewer")
	if err != nil {
		t.Fatal(err)
	}
	viewer := kubernetes.NewForConfigOrDie(cfg)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := viewer.CoreV1().ConfigMaps(ns).List(ctx, metav1.ListOptions{}); !apierrors.IsForbidden(err) {
		t.Errorf("viewer lists configmaps before any binding: %v, want Forbidden", err)
	}
	admin := kubernetes.NewForConfigOrDie(c.RESTConfig())
	role := &rbacv1.Role{
		ObjectMeta: metav1.ObjectMeta{Name: "cm-reader"},
		Rules:      []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"configmaps"}, Verbs: []string{"list"}}},
	}
	if _, err := admin.RbacV1().Roles(ns).Create(ctx, role, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	binding := &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "cm-reader"},
		RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: "cm-reader"},
		Subjects:   []rbacv1.Subject{{APIGroup: "rbac.authorization.k8s.io", Kind: "Group", Name: "viewers"}},
	}
	if _, err := admin.RbacV1().RoleBindings(ns).Create(ctx, binding, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	wait.Until(ctx, t, "viewer allowed to list configmaps", func() (bool, error) {
		_, err := viewer.CoreV1().ConfigMaps(ns).List(ctx, metav1.ListOptions{})
		return err == nil, err
	})
	if _, err := viewer.CoreV1().Secrets(ns).List(ctx, metav1.ListOptions{}); !apierrors.IsForbidden(err) {
		t.Errorf("viewer lists secrets: %v, want Forbidden", err)
	}
	if _, err := c.UserConfig("nobody"); err == nil {
		t.Error("UserConfig of an unknown user succeeded")
	}
}

// TestListeners checks that every listening socket of the stack is on
// 127.0.0.1 and that Tekton's programs listen on nothing but the webhook's
// one HTTPS port. It logs each program's resident memory.
func TestListeners(t *testing.T) {
	c := cluster.ForTest(t)
	procs, err := cluster.Processes(c.RunDir())
	if err != nil {
		t.Fatal(err)
	}
	if len(procs) != 7 {
		t.Errorf("%d processes, want 7: %v", len(procs), procs)
	}
	listeners, err := listening()
	if err != nil {
		t.Fatal(err)
	}
	var total int
	for _, p := range procs {
		addrs, err := socketsOf(p.PID, listeners)
		if err != nil {
			t.Fatal(err)
		}
		for _, a := range addrs {
			if !strings.HasPrefix(a, "127.0.0.1:") {
				t.Errorf("%s listens on %s", p.Name, a)
			}
		}
		switch {
		case p.Name == "tekton-webhook" && len(addrs) != 1:
			t.Errorf("%s listens on %v, want one address", p.Name, addrs)
		case p.Name != "tekton-webhook" && strings.HasPrefix(p.Name, "tekton-") && len(addrs) > 0:
			t.Errorf("%s listens on %v, want nothing", p.Name, addrs)
		}
		rss := rssKB(p.PID)
		total += rss
		t.Logf("%-17s pid %-7d rss %4d MB listens %v", p.Name, p.PID, rss/1024, addrs)
	}
	t.Logf("total rss %d MB", total/1024)
}

// TestInterrupt checks that no process of a stack outlives its harness:
// stopped by a signal handler (SIGINT), by Pdeathsig (SIGKILL), or by the
// cluster command's down.
func TestInterrupt(t *testing.T) {
	if testing.Short() {
		t.Skip("starts three more stacks")
	}
	cluster.ForTest(t) // skips on E2E_SKIP and makes sure the programs are built
	for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGKILL} {
		t.Run(sig.String(), func(t *testing.T) {
			dir := t.TempDir()
			cmd := exec.Command(os.Args[0], "-test.run=^$")
			cmd.Env = append(os.Environ(), helperEnv+"="+dir)
			var out bytes.Buffer
			cmd.Stdout, cmd.Stderr = &out, &out
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			exited := make(chan error, 1)
			go func() { exited <- cmd.Wait() }()
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
			defer cancel()
			start := time.Now()
			wait.Until(ctx, t, "helper cluster ready", func() (bool, error) {
				select {
				case err := <-exited:
					t.Fatalf("helper exited early (%v):\n%s", err, out.String())
				default:
				}
				_, err := os.Stat(filepath.Join(dir, "ready"))
				return err == nil, err
			})
			t.Logf("helper cluster ready in %s", time.Since(start).Round(time.Millisecond))
			procs := running(t, dir, 7)
			if err := cmd.Process.Signal(sig); err != nil {
				t.Fatal(err)
			}
			select {
			case err := <-exited:
				t.Logf("helper: %v", err)
			case <-ctx.Done():
				_ = cmd.Process.Kill()
				t.Fatalf("helper did not exit after %v:\n%s", sig, out.String())
			}
			waitGone(t, procs)
		})
	}

	t.Run("up-down", func(t *testing.T) {
		dir := t.TempDir()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		cli := filepath.Join(dir, "cluster")
		build := exec.CommandContext(ctx, "go", "build", "-o", cli, "github.com/boomerang-io/flow-tekton-handler/test/cmd/cluster")
		if out, err := build.CombinedOutput(); err != nil {
			t.Fatalf("go build: %v\n%s", err, out)
		}
		run := filepath.Join(dir, "run")
		var stdout, stderr bytes.Buffer
		up := exec.CommandContext(ctx, cli, "up", "-dir", run)
		up.Stdout, up.Stderr = &stdout, &stderr
		start := time.Now()
		if err := up.Run(); err != nil {
			t.Fatalf("up: %v\n%s", err, stderr.String())
		}
		t.Logf("up in %s", time.Since(start).Round(time.Millisecond))
		want := "KUBECONFIG=" + filepath.Join(run, "admin.kubeconfig") + "\n"
		if stdout.String() != want {
			t.Errorf("up printed %q, want %q", stdout.String(), want)
		}
		procs := running(t, run, 7)
		cfg, err := clientcmd.BuildConfigFromFlags("", filepath.Join(run, "admin.kubeconfig"))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := kubernetes.NewForConfigOrDie(cfg).CoreV1().Nodes().Get(ctx, cluster.NodeName, metav1.GetOptions{}); err != nil {
			t.Errorf("get node through the printed kubeconfig: %v", err)
		}
		serve := serveProcess(t, run)
		down := exec.CommandContext(ctx, cli, "down", "-dir", run)
		if out, err := down.CombinedOutput(); err != nil {
			t.Fatalf("down: %v\n%s", err, out)
		}
		waitGone(t, append(procs, serve))
	})
}

// running returns the processes recorded in dir, failing t unless there
// are n and all run.
func running(t *testing.T, dir string, n int) []cluster.Process {
	t.Helper()
	procs, err := cluster.Processes(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(procs) != n {
		t.Fatalf("%d processes recorded, want %d: %v", len(procs), n, procs)
	}
	for _, p := range procs {
		if !p.Running() {
			t.Errorf("%s (pid %d) is not running", p.Name, p.PID)
		}
	}
	return procs
}

// waitGone fails t unless every process in procs is gone within 30s.
func waitGone(t *testing.T, procs []cluster.Process) {
	t.Helper()
	start := time.Now()
	wait.Eventually(t, 30*time.Second, "processes gone", func() (bool, error) {
		for _, p := range procs {
			if p.Running() {
				return false, fmt.Errorf("%s (pid %d) still runs", p.Name, p.PID)
			}
		}
		return true, nil
	})
	t.Logf("%d processes gone %s after the signal", len(procs), time.Since(start).Round(time.Millisecond))
}

// serveProcess reads the serve process from the cluster command's state file.
func serveProcess(t *testing.T, dir string) cluster.Process {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "serve.json"))
	if err != nil {
		t.Fatal(err)
	}
	var st struct{ Serve cluster.Process }
	if err := json.Unmarshal(b, &st); err != nil {
		t.Fatal(err)
	}
	if !st.Serve.Running() {
		t.Fatalf("serve process %+v is not running", st.Serve)
	}
	return st.Serve
}

// taskRun returns a TaskRun with one script step.
func taskRun(ns, name string, labels, annotations map[string]string, results ...string) *v1.TaskRun {
	spec := &v1.TaskSpec{Steps: []v1.Step{{Name: "build", Image: "busybox", Script: "echo hi"}}}
	for _, r := range results {
		spec.Results = append(spec.Results, v1.TaskResult{Name: r})
	}
	return &v1.TaskRun{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: labels, Annotations: annotations},
		Spec:       v1.TaskRunSpec{TaskSpec: spec},
	}
}

// waitTaskRun polls until the TaskRun's Succeeded condition is terminal.
func waitTaskRun(ctx context.Context, t *testing.T, tekton versioned.Interface, ns, name string) (*v1.TaskRun, apis.Condition) {
	t.Helper()
	var tr *v1.TaskRun
	var cond apis.Condition
	wait.Until(ctx, t, "taskrun "+ns+"/"+name+" done", func() (bool, error) {
		var err error
		tr, err = tekton.TektonV1().TaskRuns(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		c := tr.Status.GetCondition(apis.ConditionSucceeded)
		if c == nil || c.IsUnknown() {
			return false, nil
		}
		cond = *c
		return true, nil
	})
	return tr, cond
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// listening returns the local address of every listening TCP socket, by
// socket inode.
func listening() (map[string]string, error) {
	out := map[string]string{}
	for _, f := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		file, err := os.Open(f)
		if err != nil {
			return nil, err
		}
		sc := bufio.NewScanner(file)
		sc.Scan() // header
		for sc.Scan() {
			fields := strings.Fields(sc.Text())
			if len(fields) < 10 || fields[3] != "0A" { // 0A: LISTEN
				continue
			}
			addr, err := procNetAddr(fields[1])
			if err != nil {
				file.Close()
				return nil, err
			}
			out[fields[9]] = addr
		}
		file.Close()
		if err := sc.Err(); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// procNetAddr decodes a /proc/net/tcp{,6} address (hex IP in host byte
// order per 32-bit word, hex port).
func procNetAddr(s string) (string, error) {
	ipHex, portHex, ok := strings.Cut(s, ":")
	if !ok {
		return "", errors.New("bad address " + s)
	}
	raw := make([]byte, len(ipHex)/2)
	for i := range raw {
		b, err := strconv.ParseUint(ipHex[2*i:2*i+2], 16, 8)
		if err != nil {
			return "", err
		}
		raw[i] = byte(b)
	}
	for i := 0; i+4 <= len(raw); i += 4 { // each 32-bit word is little-endian
		raw[i], raw[i+1], raw[i+2], raw[i+3] = raw[i+3], raw[i+2], raw[i+1], raw[i]
	}
	port, err := strconv.ParseUint(portHex, 16, 16)
	if err != nil {
		return "", err
	}
	ip := net.IP(raw)
	if v4 := ip.To4(); v4 != nil {
		ip = v4
	}
	return net.JoinHostPort(ip.String(), strconv.FormatUint(port, 10)), nil
}

// socketsOf returns the listening addresses among pid's open sockets.
func socketsOf(pid int, listeners map[string]string) ([]string, error) {
	dir := filepath.Join("/proc", strconv.Itoa(pid), "fd")
	fds, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var addrs []string
	for _, fd := range fds {
		link, err := os.Readlink(filepath.Join(dir, fd.Name()))
		if err != nil {
			continue // closed meanwhile
		}
		if inode, ok := strings.CutPrefix(link, "socket:["); ok {
			if a, ok := listeners[strings.TrimSuffix(inode, "]")]; ok {
				addrs = append(addrs, a)
			}
		}
	}
	return addrs, nil
}

// rssKB returns a process's resident set size in kB (0 if unknown).
func rssKB(pid int) int {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "status"))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			n, _ := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")))
			return n
		}
	}
	return 0
}
