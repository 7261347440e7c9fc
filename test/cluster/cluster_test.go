package cluster

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/x509"
	"encoding/csv"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"testing/fstest"
	"text/template"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/mod/modfile"
	"sigs.k8s.io/yaml"

	"github.com/boomerang-io/flow-tekton-handler/test/wait"
)

func TestWritePKI(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	keys, err := writePKI(dir, map[string][]string{"alice": {"dev", "qa"}, "bob": nil}, now)
	if err != nil {
		t.Fatal(err)
	}

	ca := readCert(t, filepath.Join(dir, pkiCACert))
	if !ca.IsCA {
		t.Error("CA certificate is not a CA")
	}
	if !bytes.Equal(keys.caPEM, mustRead(t, filepath.Join(dir, pkiCACert))) {
		t.Error("returned CA PEM differs from ca.crt")
	}
	srv := readCert(t, filepath.Join(dir, pkiServerCert))
	roots := x509.NewCertPool()
	roots.AddCert(ca)
	for _, name := range []string{"127.0.0.1", "localhost", "kubernetes.default.svc"} {
		if _, err := srv.Verify(x509.VerifyOptions{DNSName: name, Roots: roots, CurrentTime: now,
			KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
			t.Errorf("apiserver certificate for %s: %v", name, err)
		}
	}
	if _, err := srv.Verify(x509.VerifyOptions{DNSName: "example.com", Roots: roots, CurrentTime: now}); err == nil {
		t.Error("apiserver certificate verifies for example.com")
	}
	srvKey := readKey(t, filepath.Join(dir, pkiServerKey))
	if !srvKey.(*ecdsa.PrivateKey).PublicKey.Equal(srv.PublicKey) {
		t.Error("apiserver key does not match its certificate")
	}
	wh := readCert(t, filepath.Join(dir, pkiWebhookCert))
	if _, err := wh.Verify(x509.VerifyOptions{DNSName: "127.0.0.1", Roots: roots, CurrentTime: now,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
		t.Errorf("tekton-webhook certificate for 127.0.0.1: %v", err)
	}
	if !readKey(t, filepath.Join(dir, pkiWebhookKey)).(*ecdsa.PrivateKey).PublicKey.Equal(wh.PublicKey) {
		t.Error("tekton-webhook key does not match its certificate")
	}

	saKey := readKey(t, filepath.Join(dir, pkiSAKey)).(*rsa.PrivateKey)
	block, _ := pem.Decode(mustRead(t, filepath.Join(dir, pkiSAPub)))
	saPub, err := x509.ParsePKIXPublicKey(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	if !saKey.PublicKey.Equal(saPub) {
		t.Error("sa.pub does not match sa.key")
	}

	r := csv.NewReader(bytes.NewReader(mustRead(t, filepath.Join(dir, pkiTokens))))
	r.FieldsPerRecord = -1 // the groups column is optional
	rows, err := r.ReadAll()
	if err != nil {
		t.Fatalf("tokens.csv is not CSV: %v", err)
	}
	got := map[string][]string{}
	for _, r := range rows {
		if keys.tokens[r[1]] != r[0] || len(r[0]) != 32 {
			t.Errorf("token of %s: file %q, returned %q", r[1], r[0], keys.tokens[r[1]])
		}
		got[r[1]] = r[2:]
	}
	want := map[string][]string{
		"admin": {"admin", "system:masters"},
		"alice": {"alice", "dev,qa"},
		"bob":   {"bob"},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("tokens.csv users (-want +got):\n%s", diff)
	}
	if keys.tokens["alice"] == keys.tokens["admin"] {
		t.Error("two users share a token")
	}
}

func TestWritePKIRejects(t *testing.T) {
	t.Parallel()
	for name, users := range map[string]map[string][]string{
		"admin is reserved":  {"admin": nil},
		"comma in user":      {"a,b": nil},
		"quote in group":     {"a": {`x"y`}},
		"empty group":        {"a": {""}},
		"newline in a group": {"a": {"x\ny"}},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			if _, err := writePKI(t.TempDir(), users, time.Now()); err == nil {
				t.Errorf("writePKI(%q) succeeded", users)
			}
		})
	}
}

func TestTokenFile(t *testing.T) {
	t.Parallel()
	got := tokenFile(
		map[string]string{"admin": "t1", "zed": "t3", "bob": "t2"},
		map[string][]string{"admin": {"system:masters"}, "zed": {"a", "b"}},
	)
	want := "t1,admin,admin,\"system:masters\"\nt2,bob,bob\nt3,zed,zed,\"a,b\"\n"
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("tokenFile (-want +got):\n%s", diff)
	}
}

func TestCacheKey(t *testing.T) {
	t.Parallel()
	mains := fstest.MapFS{"mains/a.go.txt": {Data: []byte("package main")}}
	base, err := cacheKey("go1.26.8", mains)
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range []string{kubernetesVersion, etcdVersion, kwokVersion, tektonVersion, "go1.26.8", buildRevision} {
		if !strings.Contains(base, v) {
			t.Errorf("key %q does not name %s", base, v)
		}
	}
	tests := []struct {
		name      string
		goVersion string
		mains     fstest.MapFS
		same      bool
	}{
		{"same inputs", "go1.26.8", fstest.MapFS{"mains/a.go.txt": {Data: []byte("package main")}}, true},
		{"other Go", "go1.26.9", mains, false},
		{"edited main", "go1.26.8", fstest.MapFS{"mains/a.go.txt": {Data: []byte("package main // x")}}, false},
		{"renamed main", "go1.26.8", fstest.MapFS{"mains/b.go.txt": {Data: []byte("package main")}}, false},
		{"added main", "go1.26.8", fstest.MapFS{"mains/a.go.txt": {Data: []byte("package main")}, "mains/b.go.txt": {}}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := cacheKey(tc.goVersion, tc.mains)
			if err != nil {
				t.Fatal(err)
			}
			if (got == base) != tc.same {
				t.Errorf("cacheKey = %q, base %q, want same=%v", got, base, tc.same)
			}
		})
	}
	if _, err := cacheKey("", mains); err == nil {
		t.Error("cacheKey with an empty Go version succeeded")
	}
	// The real embedded sources are part of the key.
	if _, err := cacheKey("go1.26.8", mainsFS); err != nil {
		t.Error(err)
	}
}

func TestKubernetesGoMod(t *testing.T) {
	t.Parallel()
	upstream := `module k8s.io/kubernetes

go 1.26.0

require (
	github.com/blang/semver/v4 v4.0.0
	k8s.io/api v0.0.0
	k8s.io/client-go v0.0.0
	k8s.io/kube-openapi v0.0.0-20250910181357-589584f1c912
	k8s.io/utils v0.0.0-20251002143259-bc988d571ff4
)

require k8s.io/cri-client v0.0.0 // indirect

replace (
	k8s.io/api => ./staging/src/k8s.io/api
	k8s.io/client-go => ./staging/src/k8s.io/client-go
)
`
	got, err := kubernetesGoMod([]byte(upstream))
	if err != nil {
		t.Fatal(err)
	}
	want := "module local/k8sbuild\n\ngo " + k8sGoLine + "\n\nrequire k8s.io/kubernetes " + kubernetesVersion + "\n\nreplace (\n" +
		"\tk8s.io/api => k8s.io/api " + stagingVersion + "\n" +
		"\tk8s.io/client-go => k8s.io/client-go " + stagingVersion + "\n" +
		"\tk8s.io/cri-client => k8s.io/cri-client " + stagingVersion + "\n)\n"
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("kubernetesGoMod (-want +got):\n%s", diff)
	}
	if _, err := modfile.Parse("go.mod", []byte(got), nil); err != nil {
		t.Errorf("result does not parse: %v", err)
	}
	if _, err := kubernetesGoMod([]byte("module k8s.io/kubernetes\n\nrequire k8s.io/utils v0.0.0-20251002143259-bc988d571ff4\n")); err == nil {
		t.Error("kubernetesGoMod without staging modules succeeded")
	}
}

func TestKubernetesLDFlags(t *testing.T) {
	t.Parallel()
	got := kubernetesLDFlags("v1.37.2")
	want := "-X k8s.io/component-base/version.gitVersion=v1.37.2 -X k8s.io/component-base/version.gitMajor=1 " +
		"-X k8s.io/component-base/version.gitMinor=37 -X k8s.io/component-base/version.gitTreeState=clean"
	if got != want {
		t.Errorf("kubernetesLDFlags = %q, want %q", got, want)
	}
}

// TestTektonVersion keeps versions.go and the repository's go.mod in step:
// tests compile Tekton's client at the go.mod version against a controller
// built at tektonVersion.
func TestTektonVersion(t *testing.T) {
	t.Parallel()
	f, err := modfile.Parse("go.mod", mustRead(t, filepath.Join("..", "..", "go.mod")), nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range f.Require {
		if r.Mod.Path == "github.com/tektoncd/pipeline" {
			if r.Mod.Version != tektonVersion {
				t.Errorf("go.mod requires tektoncd/pipeline %s, versions.go builds %s", r.Mod.Version, tektonVersion)
			}
			return
		}
	}
	t.Error("go.mod does not require github.com/tektoncd/pipeline")
}

// TestPodCompleteStages checks which of our stages matches a pod by its
// outcome label, and renders their status templates with the template
// functions kwok provides (Quote is kwok's JSON quoting).
func TestPodCompleteStages(t *testing.T) {
	t.Parallel()
	docs, err := splitYAML(podCompleteStages)
	if err != nil {
		t.Fatal(err)
	}
	type expression struct {
		Key, Operator string
		Values        []string
	}
	type stage struct {
		Metadata struct{ Name string }
		Spec     struct {
			Selector struct{ MatchExpressions []expression }
			Next     struct{ StatusTemplate string }
		}
	}
	stages := map[string]stage{}
	for _, d := range docs {
		var s stage
		if err := yaml.Unmarshal(d, &s); err != nil {
			t.Fatal(err)
		}
		stages[s.Metadata.Name] = s
	}
	if len(stages) != 2 {
		t.Fatalf("stages %v, want pod-complete-succeeded and pod-complete-failed", stages)
	}

	// matching returns the stages whose outcome-label expression matches a
	// pod with that label value ("" = no label; NotIn matches a missing label).
	outcomeKey := `.metadata.labels["` + OutcomeLabel + `"]`
	matching := func(outcome string) []string {
		var names []string
		for _, name := range []string{"pod-complete-failed", "pod-complete-succeeded"} {
			match := true
			for _, e := range stages[name].Spec.Selector.MatchExpressions {
				if e.Key != outcomeKey {
					continue
				}
				in := outcome != "" && slices.Contains(e.Values, outcome)
				switch e.Operator {
				case "In":
					match = match && in
				case "NotIn":
					match = match && !in
				default:
					t.Fatalf("%s: operator %s on the outcome label", name, e.Operator)
				}
			}
			if match {
				names = append(names, name)
			}
		}
		return names
	}
	for outcome, want := range map[string][]string{
		"":          {"pod-complete-succeeded"},
		"other":     {"pod-complete-succeeded"},
		OutcomeFail: {"pod-complete-failed"},
		"hang":      nil,
	} {
		if diff := cmp.Diff(want, matching(outcome)); diff != "" {
			t.Errorf("stages for outcome %q (-want +got):\n%s", outcome, diff)
		}
	}

	msg := `[{"key":"digest","value":"sha256:abc","type":1}]` + "\nline \"two\" \u00fcn\u00ef"
	type ctr struct {
		Name  string
		State struct {
			Terminated struct {
				ExitCode int
				Reason   string
				Message  string
			}
		}
	}
	tests := []struct {
		name        string
		stage       string
		labels      map[string]any
		annotations map[string]any
		wantPhase   string
		wantExit    int
		wantMessage string
	}{
		{name: "success, no annotations", stage: "pod-complete-succeeded", wantPhase: "Succeeded"},
		{name: "success, message", stage: "pod-complete-succeeded", annotations: map[string]any{TerminationMessageAnnotation: msg},
			wantPhase: "Succeeded", wantMessage: msg},
		{name: "success, other annotation", stage: "pod-complete-succeeded", annotations: map[string]any{"x": "y"}, wantPhase: "Succeeded"},
		{name: "success, result labels", stage: "pod-complete-succeeded",
			labels:    map[string]any{"ktest.dev/result-name": "digest", "ktest.dev/result-value": "abc"},
			wantPhase: "Succeeded", wantMessage: `[{"key":"digest","value":"abc","type":1}]`},
		{name: "failure, no annotations", stage: "pod-complete-failed", wantPhase: "Failed", wantExit: 1},
		{name: "failure, message", stage: "pod-complete-failed", annotations: map[string]any{TerminationMessageAnnotation: msg},
			wantPhase: "Failed", wantExit: 1, wantMessage: msg},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			metadata := map[string]any{"name": "p"}
			if tc.annotations != nil {
				metadata["annotations"] = tc.annotations
			}
			if tc.labels != nil {
				metadata["labels"] = tc.labels
			}
			pod := map[string]any{
				"metadata": metadata,
				"spec": map[string]any{"containers": []any{
					map[string]any{"name": "step-a", "image": "busybox"},
					map[string]any{"name": "step-b", "image": "busybox"},
				}},
			}
			out := renderKwokTemplate(t, stages[tc.stage].Spec.Next.StatusTemplate, pod)
			var status struct {
				Phase             string
				ContainerStatuses []ctr
			}
			if err := yaml.Unmarshal(out, &status); err != nil {
				t.Fatalf("rendered status is not YAML: %v\n%s", err, out)
			}
			if status.Phase != tc.wantPhase {
				t.Errorf("phase = %q, want %q", status.Phase, tc.wantPhase)
			}
			if len(status.ContainerStatuses) != 2 {
				t.Fatalf("%d container statuses, want 2:\n%s", len(status.ContainerStatuses), out)
			}
			for _, c := range status.ContainerStatuses {
				term := c.State.Terminated
				if term.ExitCode != tc.wantExit || term.Message != tc.wantMessage || term.Reason == "" {
					t.Errorf("container %s terminated = %+v, want exit %d, message %q", c.Name, term, tc.wantExit, tc.wantMessage)
				}
			}
		})
	}
}

// renderKwokTemplate renders a kwok status template with stand-ins for the
// functions it uses.
func renderKwokTemplate(t *testing.T, text string, data any) []byte {
	t.Helper()
	funcs := template.FuncMap{
		"Now": func() string { return "2026-01-02T03:04:05Z" },
		"Quote": func(s any) string {
			b, err := json.Marshal(s)
			if err != nil {
				return strconv.Quote(fmt.Sprint(s))
			}
			if len(b) > 0 && b[0] == '"' {
				return string(b)
			}
			return strconv.Quote(string(b))
		},
		"dict": func(kv ...any) map[string]any {
			m := map[string]any{}
			for i := 0; i+1 < len(kv); i += 2 {
				m[fmt.Sprint(kv[i])] = kv[i+1]
			}
			return m
		},
	}
	tmpl, err := template.New("status").Funcs(funcs).Parse(text)
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := tmpl.Execute(&b, data); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func TestJoinYAML(t *testing.T) {
	t.Parallel()
	got := string(joinYAML([][]byte{[]byte("a: 1"), []byte("b: 2\n"), []byte("c: 3\n")}))
	want := "a: 1\n---\nb: 2\n---\nc: 3\n"
	if got != want {
		t.Errorf("joinYAML = %q, want %q", got, want)
	}
	docs, err := splitYAML([]byte(got))
	if err != nil || len(docs) != 3 {
		t.Errorf("splitYAML(joinYAML) = %d docs, %v; want 3", len(docs), err)
	}
}

func TestTektonObjects(t *testing.T) {
	t.Parallel()
	namespace := "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: tekton-pipelines\n"
	crd := `# comment
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: tasks.tekton.dev
spec:
  group: tekton.dev
  conversion:
    strategy: Webhook
    webhook:
      conversionReviewVersions: ["v1beta1", "v1"]
      clientConfig:
        service: {name: tekton-pipelines-webhook, namespace: tekton-pipelines}
`
	plainCRD := "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata:\n  name: customruns.tekton.dev\nspec:\n  group: tekton.dev\n"
	events := "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: config-events\n  namespace: tekton-pipelines\ndata:\n  _example: x\n"
	obs := "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: config-observability\n  namespace: tekton-pipelines\ndata:\n  metrics-protocol: prometheus\n"
	other := "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: feature-flags\n  namespace: tekton-pipelines\n"
	comments := "# only a comment\n"

	wh := webhookServer{url: "https://127.0.0.1:4321", caPEM: []byte("CA")}
	objs, err := tektonObjects([][]byte{[]byte(namespace), []byte(crd), []byte(plainCRD), []byte(comments), []byte(events), []byte(obs), []byte(other)}, "http://127.0.0.1:1234", wh)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	got := map[string]any{}
	for _, o := range objs {
		names = append(names, o.GetKind()+"/"+o.GetName())
		got[o.GetName()] = o.Object
	}
	wantNames := []string{"Namespace/tekton-pipelines", "CustomResourceDefinition/tasks.tekton.dev",
		"CustomResourceDefinition/customruns.tekton.dev", "ConfigMap/config-events", "ConfigMap/config-observability", "ConfigMap/feature-flags"}
	if diff := cmp.Diff(wantNames, names); diff != "" {
		t.Errorf("objects (-want +got):\n%s", diff)
	}
	want := map[string]any{
		"tasks.tekton.dev": map[string]any{
			"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
			"metadata": map[string]any{"name": "tasks.tekton.dev"},
			"spec": map[string]any{"group": "tekton.dev", "conversion": map[string]any{
				"strategy": "Webhook",
				"webhook": map[string]any{
					"conversionReviewVersions": []any{"v1beta1", "v1"},
					"clientConfig":             map[string]any{"url": "https://127.0.0.1:4321/resource-conversion", "caBundle": "Q0E="},
				},
			}},
		},
		"customruns.tekton.dev": map[string]any{
			"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
			"metadata": map[string]any{"name": "customruns.tekton.dev"},
			"spec":     map[string]any{"group": "tekton.dev"},
		},
		"config-events": map[string]any{
			"apiVersion": "v1", "kind": "ConfigMap",
			"metadata": map[string]any{"name": "config-events", "namespace": "tekton-pipelines"},
			"data":     map[string]any{"_example": "x", "sink": "http://127.0.0.1:1234", "formats": "tektonv1"},
		},
		"config-observability": map[string]any{
			"apiVersion": "v1", "kind": "ConfigMap",
			"metadata": map[string]any{"name": "config-observability", "namespace": "tekton-pipelines"},
			"data":     map[string]any{"metrics-protocol": "none", "tracing-protocol": "none"},
		},
	}
	for name, w := range want {
		if diff := cmp.Diff(w, got[name]); diff != "" {
			t.Errorf("%s (-want +got):\n%s", name, diff)
		}
	}

	errTests := []struct {
		name string
		docs []string
	}{
		{"unexpected kind", []string{namespace, events, obs, "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: x\n"}},
		{"no config-events", []string{namespace, obs}},
		{"no config-observability", []string{namespace, events}},
		{"no namespace", []string{events, obs}},
	}
	for _, tc := range errTests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var docs [][]byte
			for _, d := range tc.docs {
				docs = append(docs, []byte(d))
			}
			if _, err := tektonObjects(docs, "", webhookServer{}); err == nil {
				t.Error("tektonObjects succeeded")
			}
		})
	}
}

func TestNamespacePrefix(t *testing.T) {
	t.Parallel()
	tests := []struct{ in, want string }{
		{"TestTaskRuns", "testtaskruns-"},
		{"TestTaskRuns/fail_label", "testtaskruns-fail-label-"},
		{"Test__x--y", "test-x-y-"},
		{"", "test-"},
		{"123", "test-123-"},
		{strings.Repeat("a", 80), strings.Repeat("a", 40) + "-"},
		{"Test" + strings.Repeat("_", 50) + "x", "test-x-"},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			t.Parallel()
			if got := namespacePrefix(tc.in); got != tc.want {
				t.Errorf("namespacePrefix(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}

func TestWorkersStarted(t *testing.T) {
	t.Parallel()
	log := filepath.Join(t.TempDir(), "x.log")
	lines := `{"message":"Started workers","knative.dev/controller":"x.reconciler.taskrun.Reconciler"}
{"message":"Starting controllers","knative.dev/controller":"x.reconciler.pipelinerun.Reconciler"}
`
	if err := os.WriteFile(log, []byte(lines), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		names []string
		want  bool
	}{
		{"started", []string{"reconciler.taskrun."}, true},
		{"other line only", []string{"reconciler.pipelinerun."}, false},
		{"one of two", []string{"reconciler.taskrun.", "reconciler.pipelinerun."}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := workersStarted(log, tc.names)
			if err != nil || got != tc.want {
				t.Errorf("workersStarted = %v, %v; want %v", got, err, tc.want)
			}
		})
	}
	if _, err := workersStarted(filepath.Join(t.TempDir(), "missing"), nil); err == nil {
		t.Error("workersStarted on a missing log succeeded")
	}
}

func TestProcesses(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	self := filepath.Base(os.Args[0])
	content := fmt.Sprintf("%d %s\n%d other-name\n", os.Getpid(), self, os.Getpid())
	if err := os.WriteFile(filepath.Join(dir, pidsFile), []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := Processes(dir)
	if err != nil {
		t.Fatal(err)
	}
	want := []Process{{Name: self, PID: os.Getpid()}, {Name: "other-name", PID: os.Getpid()}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Processes (-want +got):\n%s", diff)
	}
	if !got[0].Running() {
		t.Error("this process is not Running")
	}
	if got[1].Running() {
		t.Error("a pid running another program counts as Running")
	}
	if _, err := Processes(t.TempDir()); err == nil {
		t.Error("Processes without a pids file succeeded")
	}
}

// TestStartProcRunning starts and stops many short-lived children: each
// must be Running as soon as startProc returns, though Linux shows an
// exec'd program's cmdline a moment after exec. Before startProc waited for
// it, 15 of 20 runs of 100 starts failed here.
func TestStartProcRunning(t *testing.T) {
	t.Parallel()
	sleep := mustLookPath(t, "sleep")
	dir := t.TempDir()
	for i := range 300 {
		p, err := startProc("sleep", sleep, []string{"300"}, nil, dir, filepath.Join(dir, "sleep.log"))
		if err != nil {
			t.Fatal(err)
		}
		running := p.Running()
		if err := p.stop(5 * time.Second); err != nil {
			t.Fatal(err)
		}
		if !running {
			t.Fatalf("start %d: child is not running when startProc returns", i+1)
		}
	}
}

// TestStartProcStop starts a real child and stops it by its process group.
func TestStartProcStop(t *testing.T) {
	t.Parallel()
	sleep, err := exec.LookPath("sleep")
	if err != nil {
		t.Fatalf("need sleep: %v", err)
	}
	dir := t.TempDir()
	p, err := startProc("sleep", sleep, []string{"300"}, nil, dir, filepath.Join(dir, "sleep.log"))
	if err != nil {
		t.Fatal(err)
	}
	if !p.Running() {
		t.Fatal("child is not running")
	}
	if pgid, err := syscall.Getpgid(p.PID); err != nil || pgid != p.PID {
		t.Errorf("child process group = %d, %v; want its own (%d)", pgid, err, p.PID)
	}
	start := time.Now()
	if err := p.stop(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	if p.Running() || !p.exited() {
		t.Error("child still running after stop")
	}
	if d := time.Since(start); d > 4*time.Second {
		t.Errorf("stop took %s; SIGTERM should end sleep at once", d)
	}
}

// helperEnv makes the test binary act as a harness that starts a child and
// waits (see TestHelperHarness).
const helperEnv = "CLUSTER_UNIT_HELPER"

// TestHelperHarness is not a test: run by TestChildrenDieWithHarness in a
// child process, it starts `sleep` like a Cluster starts its programs,
// writes the pids file and waits to be signalled.
func TestHelperHarness(t *testing.T) {
	dir := os.Getenv(helperEnv)
	if dir == "" {
		t.Skip("helper process for TestChildrenDieWithHarness")
	}
	c := &Cluster{runDir: dir, binDir: filepath.Dir(mustLookPath(t, "sleep"))}
	register(c)
	if _, err := c.run("sleep", nil, "300"); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "ready"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	select {}
}

// TestChildrenDieWithHarness checks that a harness's children end with it:
// through the signal handler (SIGINT, SIGTERM) and through Pdeathsig
// (SIGKILL, which no handler sees).
func TestChildrenDieWithHarness(t *testing.T) {
	t.Parallel()
	tests := []struct {
		sig      syscall.Signal
		wantExit int // -1: killed by the signal
	}{
		{syscall.SIGINT, 128 + int(syscall.SIGINT)},
		{syscall.SIGTERM, 128 + int(syscall.SIGTERM)},
		{syscall.SIGKILL, -1},
	}
	for _, tc := range tests {
		t.Run(tc.sig.String(), func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			if err := os.MkdirAll(filepath.Join(dir, runLogs), 0o755); err != nil {
				t.Fatal(err)
			}
			cmd := exec.Command(os.Args[0], "-test.run=^TestHelperHarness$")
			cmd.Env = append(os.Environ(), helperEnv+"="+dir)
			var out bytes.Buffer
			cmd.Stdout, cmd.Stderr = &out, &out
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			exited := make(chan error, 1)
			go func() { exited <- cmd.Wait() }()
			wait.Eventually(t, 30*time.Second, "helper ready", func() (bool, error) {
				_, err := os.Stat(filepath.Join(dir, "ready"))
				return err == nil, err
			})
			procs, err := Processes(dir)
			if err != nil || len(procs) != 1 || !procs[0].Running() {
				t.Fatalf("helper children = %v, %v; want one running sleep", procs, err)
			}
			if err := cmd.Process.Signal(tc.sig); err != nil {
				t.Fatal(err)
			}
			var exitErr *exec.ExitError
			select {
			case err := <-exited:
				if !errors.As(err, &exitErr) || exitErr.ExitCode() != tc.wantExit {
					t.Errorf("helper ended with %v, want exit code %d\n%s", err, tc.wantExit, out.String())
				}
			case <-time.After(30 * time.Second):
				_ = cmd.Process.Kill()
				t.Fatal("helper did not exit")
			}
			wait.Eventually(t, 10*time.Second, "child gone", func() (bool, error) { return !procs[0].Running(), nil })
		})
	}
}

func mustLookPath(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func readCert(t *testing.T, path string) *x509.Certificate {
	t.Helper()
	block, _ := pem.Decode(mustRead(t, path))
	if block == nil || block.Type != "CERTIFICATE" {
		t.Fatalf("%s: no certificate", path)
	}
	c, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func readKey(t *testing.T, path string) any {
	t.Helper()
	block, _ := pem.Decode(mustRead(t, path))
	if block == nil {
		t.Fatalf("%s: no PEM", path)
	}
	switch block.Type {
	case "EC PRIVATE KEY":
		k, err := x509.ParseECPrivateKey(block.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		return k
	case "RSA PRIVATE KEY":
		k, err := x509.ParsePKCS1PrivateKey(block.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	t.Fatalf("%s: unexpected %s", path, block.Type)
	return nil
}
