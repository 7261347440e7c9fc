//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tektoncd/pipeline/pkg/client/clientset/versioned"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	"knative.dev/pkg/apis"

	"github.com/boomerang-io/flow-tekton-handler/internal/tekton"
	"github.com/boomerang-io/flow-tekton-handler/test/cluster"
	"github.com/boomerang-io/flow-tekton-handler/test/enginestub"
	"github.com/boomerang-io/flow-tekton-handler/test/fnproc"
)

// The developer loop the README shows: `make up` prints KUBECONFIG=…, the
// handler run by hand against it creates a TaskRun that succeeds, and
// `make down` leaves nothing running.
func TestUpHandlerDown(t *testing.T) {
	if os.Getenv(cluster.SkipEnv) == "1" {
		t.Skipf("%s=1: SKIPPING end-to-end test %s", cluster.SkipEnv, t.Name())
	}
	cli := filepath.Join(t.TempDir(), "cluster")
	if out, err := exec.Command("go", "build", "-o", cli, "../cmd/cluster").CombinedOutput(); err != nil {
		t.Fatalf("build the cluster command: %v\n%s", err, out)
	}
	dir := t.TempDir()
	var stdout, stderr bytes.Buffer
	up := exec.Command(cli, "up", "-dir", dir)
	up.Stdout, up.Stderr = &stdout, &stderr
	if err := up.Run(); err != nil {
		t.Fatalf("cluster up: %v\n%s", err, stderr.String())
	}
	stopped := false
	down := func() {
		if stopped {
			return
		}
		stopped = true
		if out, err := exec.Command(cli, "down", "-dir", dir).CombinedOutput(); err != nil {
			t.Errorf("cluster down: %v\n%s", err, out)
		}
	}
	defer down()
	line := strings.TrimSpace(stdout.String())
	kubeconfig, ok := strings.CutPrefix(line, "KUBECONFIG=")
	if !ok || strings.Contains(line, "\n") {
		t.Fatalf("up printed %q, want exactly one KUBECONFIG=<path> line", line)
	}

	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	kube := kubernetes.NewForConfigOrDie(cfg)
	tkn := versioned.NewForConfigOrDie(cfg)
	ctx := context.Background()
	if _, err := kube.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "by-hand"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := kube.CoreV1().ServiceAccounts("by-hand").Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "default"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	eng, err := enginestub.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close()
	startCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	h, err := fnproc.Start(startCtx, filepath.Join(binDir, "handler"), map[string]string{
		"KUBECONFIG": kubeconfig, "NAMESPACE": "by-hand", "ENGINE_URL": eng.URL(),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Stop(10 * time.Second)
	resp, err := http.Post(h.URL, "application/cloudevents+json", bytes.NewReader(event(t, "engine-taskrun-custom-ready.json")))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("handler answered %d", resp.StatusCode)
	}
	name := tekton.TaskRunName("bmrg-flow", customID)
	deadline := time.Now().Add(time.Minute)
	for {
		tr, err := tkn.TektonV1().TaskRuns("by-hand").Get(ctx, name, metav1.GetOptions{})
		if err == nil && tr.Status.GetCondition(apis.ConditionSucceeded).IsTrue() {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("TaskRun %s did not succeed: %v", name, err)
		}
		time.Sleep(100 * time.Millisecond)
	}

	procs, err := cluster.Processes(dir)
	if err != nil || len(procs) == 0 {
		t.Fatalf("no processes recorded in %s: %v", dir, err)
	}
	down()
	for _, p := range procs {
		if p.Running() {
			t.Errorf("%s (pid %d) still running after down", p.Name, p.PID)
		}
	}
}
