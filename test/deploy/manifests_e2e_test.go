//go:build e2e

package deploy

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// manifestSet is a group of documents applied together, the way the README
// applies them.
type manifestSet struct {
	name string
	docs []Document
	// serverSide applies with server-side apply (config/tekton's documented
	// command) instead of kubectl's client-side apply (`kubectl apply -k`),
	// into the namespace the documents name rather than the test's.
	serverSide bool
}

// renderSets renders every manifest the project deploys: the config/ base,
// the base with the dead-letter Component, config/tekton, config/auth, and
// the Knative Services func deploy makes of the func.yaml files.
func renderSets(ctx context.Context, t *testing.T, e env) []manifestSet {
	t.Helper()
	render := func(dir string) []Document {
		t.Helper()
		out, err := Kustomize(ctx, e.kubectl, dir)
		if err != nil {
			t.Fatal(err)
		}
		docs, err := SplitDocuments(out)
		if err != nil {
			t.Fatal(err)
		}
		return docs
	}
	// An overlay as a user would write it; kustomize wants relative paths.
	overlay := t.TempDir()
	abs, err := filepath.Abs(configDir)
	if err != nil {
		t.Fatal(err)
	}
	rel, err := filepath.Rel(overlay, abs)
	if err != nil {
		t.Fatal(err)
	}
	kustomization := "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n" +
		"resources:\n- " + rel + "\ncomponents:\n- " + filepath.Join(rel, "dead-letter") + "\n"
	if err := os.WriteFile(filepath.Join(overlay, "kustomization.yaml"), []byte(kustomization), 0o644); err != nil {
		t.Fatal(err)
	}
	var ksvcs []Document
	for _, g := range ksvcGoldens {
		b, err := os.ReadFile(g.golden)
		if err != nil {
			t.Fatal(err)
		}
		d, err := SplitDocuments(b)
		if err != nil {
			t.Fatal(err)
		}
		ksvcs = append(ksvcs, d...)
	}
	sets := []manifestSet{
		{name: "config", docs: render(configDir)},
		{name: "config+dead-letter", docs: render(overlay)},
		{name: "config/tekton", docs: render(filepath.Join(configDir, "tekton")), serverSide: true},
		{name: "config/auth", docs: render(filepath.Join(configDir, "auth"))},
		{name: "knative-services", docs: ksvcs},
	}
	// The dead-letter Component must change every Trigger.
	n, triggers := 0, 0
	for _, d := range sets[1].docs {
		if d.Kind == "Trigger" {
			triggers++
			if strings.Contains(string(d.YAML), "deadLetterSink:") {
				n++
			}
		}
	}
	if n != triggers || n == 0 {
		t.Fatalf("the dead-letter Component added deadLetterSink to %d of %d Triggers", n, triggers)
	}
	return sets
}

// dryRun sends the documents to the API server with server-side dry run and
// strict field validation.
func (e env) dryRun(ctx context.Context, ns string, s manifestSet) error {
	args := []string{"apply", "--dry-run=server", "--validate=strict", "-f", "-"}
	if s.serverSide {
		args = append(args, "--server-side", "--force-conflicts", "--field-manager=flow-tekton-handler")
	} else {
		args = append(args, "-n", ns)
	}
	_, err := e.run(ctx, JoinDocuments(s.docs), args...)
	return err
}

// TestManifests sends every manifest to the API server (dry run, strict
// validation, real Knative and Tekton CRDs) and decodes it strictly into
// the Knative and Kubernetes Go types with Knative's validation.
func TestManifests(t *testing.T) {
	t.Parallel()
	e := setup(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	ns := e.c.Namespace(t)
	for _, s := range renderSets(ctx, t, e) {
		t.Run(s.name, func(t *testing.T) {
			if len(s.docs) == 0 {
				t.Fatal("nothing rendered")
			}
			if err := e.dryRun(ctx, ns, s); err != nil {
				t.Errorf("server-side dry run: %v", err)
			}
			report, err := Check(ctx, e.checker, JoinDocuments(s.docs))
			if err != nil {
				t.Errorf("strict decode: %v", err)
			} else {
				t.Logf("checker:\n%s", report)
			}
		})
	}
}

// TestManifestsRejectMistakes mutates one valid document at a time and
// expects the mistake to be caught, and by the layer that should catch it:
// the API server (schema, strict field validation, built-in validation) or
// the checker (strict Go types, Knative webhook validation). Rows caught
// only by the checker are the API server's blind spots: the Knative CRDs
// keep unknown fields and no Knative webhook runs here.
func TestManifestsRejectMistakes(t *testing.T) {
	t.Parallel()
	e := setup(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	ns := e.c.Namespace(t)
	sets := map[string]manifestSet{}
	for _, s := range renderSets(ctx, t, e) {
		sets[s.name] = s
	}
	const subscriber = "  subscriber:\n    ref:\n      apiVersion: serving.knative.dev/v1\n      kind: Service\n      name: flow-tekton-handler\n"
	for _, tc := range []struct {
		name     string
		set, doc string // set name, Kind/name
		old, new string
		// Which layer must reject it.
		apiServer, checker bool
	}{
		{"trigger broker misspelt", "config", "Trigger/flow-tekton-handler-taskrun",
			"  broker: default", "  brokr: default", false, true},
		{"trigger without subscriber", "config", "Trigger/flow-tekton-handler-taskrun",
			subscriber, "", false, true},
		{"trigger subscriber ref misspelt", "config", "Trigger/flow-tekton-handler-workflowrun",
			"    ref:\n", "    reff:\n", true, true},
		{"trigger filter misspelt", "config", "Trigger/flow-tekton-handler-taskrun",
			"    attributes:", "    atributes:", true, true},
		{"trigger backoffDelay not ISO 8601", "config", "Trigger/flow-tekton-handler-taskrun",
			"backoffDelay: PT1S", "backoffDelay: 1s", false, true},
		{"trigger backoffPolicy unknown", "config", "Trigger/flow-tekton-handler-taskrun",
			"backoffPolicy: exponential", "backoffPolicy: exponentail", false, true},
		{"trigger timeout not ISO 8601", "config", "Trigger/flow-tekton-handler-workflowrun",
			"timeout: PT30S", "timeout: 30s", false, true},
		{"dead letter sink misspelt", "config+dead-letter", "Trigger/flow-tekton-handler-taskrun",
			"    deadLetterSink:", "    deadLeterSink:", false, true},
		{"pingsource schedule invalid", "config", "PingSource/flow-tekton-sink-sweep",
			"schedule: '*/5 * * * *'", "schedule: every 5 minutes", false, true},
		{"pingsource sink misspelt", "config", "PingSource/flow-tekton-sink-sweep",
			"  sink:", "  snk:", true, true},
		{"role rules resources misspelt", "config", "Role/flow-tekton-handler",
			"  resources:", "  resource:", true, true},
		{"role verbs not a list", "config", "Role/flow-tekton-sink",
			"  verbs:\n  - get\n", "  verbs: get\n  verbz:\n  - get\n", true, true},
		{"rolebinding roleRef without name", "config", "RoleBinding/flow-tekton-handler",
			"  name: flow-tekton-handler\nsubjects:", "subjects:", true, true},
		{"rolebinding roleRef kind unknown", "config", "RoleBinding/flow-tekton-sink",
			"  kind: Role\n", "  kind: Rolle\n", true, false},
		{"clusterrolebinding subject without namespace", "config/auth", "ClusterRoleBinding/flow-tekton-auth-delegator",
			"  namespace: default\n", "", true, false},
		{"clusterrolebinding roleRef misspelt", "config/auth", "ClusterRoleBinding/flow-tekton-auth-delegator",
			"roleRef:", "roleRf:", true, true},
		{"serviceaccount field misspelt", "config", "ServiceAccount/flow-tekton-sink",
			"metadata:", "automountServiceAccountTokn: false\nmetadata:", true, true},
		{"configmap data misspelt", "config", "ConfigMap/flow-tekton-handler",
			"data:", "dat:", true, true},
		{"config-events data misspelt", "config/tekton", "ConfigMap/config-events",
			"data:", "dta:", true, true},
		{"ksvc container field misspelt", "knative-services", "Service/flow-tekton-handler",
			"        image:", "        imagePullPolicyy: Always\n        image:", true, true},
		{"ksvc containerConcurrency not a number", "knative-services", "Service/flow-tekton-sink",
			"containerConcurrency: 20", "containerConcurrency: twenty", true, true},
		{"ksvc serviceAccountName misspelt", "knative-services", "Service/flow-tekton-sink",
			"      serviceAccountName:", "      serviceAcountName:", true, true},
		{"ksvc without image", "knative-services", "Service/flow-tekton-handler",
			"        image: " + Image + "\n", "", false, true},
		{"ksvc envFrom source misspelt", "knative-services", "Service/flow-tekton-logs",
			"        - configMapRef:", "        - configMapReff:", true, true},
		{"role pods/log verbs misspelt", "config", "Role/flow-tekton-logs",
			"  - pods/log\n  verbs:", "  - pods/log\n  verbz:", true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, ok := sets[tc.set]
			if !ok {
				t.Fatalf("no set %q", tc.set)
			}
			var doc *Document
			for i := range s.docs {
				if s.docs[i].ID() == tc.doc {
					doc = &s.docs[i]
				}
			}
			if doc == nil {
				t.Fatalf("set %s has no %s", tc.set, tc.doc)
			}
			if !strings.Contains(string(doc.YAML), tc.old) {
				t.Fatalf("%s no longer contains %q; update the case:\n%s", tc.doc, tc.old, doc.YAML)
			}
			// The document alone, before and after the mistake: the valid one
			// must pass both layers, so the rejection is the mistake's.
			one := func(y []byte) (manifestSet, []byte) {
				d := *doc
				d.YAML = y
				m := manifestSet{name: s.name, docs: []Document{d}, serverSide: s.serverSide}
				return m, JoinDocuments(m.docs)
			}
			valid, validStream := one(doc.YAML)
			if err := e.dryRun(ctx, ns, valid); err != nil {
				t.Fatalf("the valid %s fails the API server: %v", tc.doc, err)
			}
			if _, err := Check(ctx, e.checker, validStream); err != nil {
				t.Fatalf("the valid %s fails the checker: %v", tc.doc, err)
			}

			mutated, mutatedStream := one([]byte(strings.Replace(string(doc.YAML), tc.old, tc.new, 1)))
			apiErr := e.dryRun(ctx, ns, mutated)
			_, checkErr := Check(ctx, e.checker, mutatedStream)
			if apiErr == nil && checkErr == nil {
				t.Fatalf("the mistake passed every check")
			}
			if got := apiErr != nil; got != tc.apiServer {
				t.Errorf("API server rejected it: %v, want %v (error: %v)", got, tc.apiServer, apiErr)
			}
			if got := checkErr != nil; got != tc.checker {
				t.Errorf("checker rejected it: %v, want %v (error: %v)", got, tc.checker, checkErr)
			}
			t.Logf("API server: %v\nchecker: %v", apiErr, checkErr)
		})
	}
}
