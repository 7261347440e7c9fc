package deploy

import (
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	tektonconfig "github.com/tektoncd/pipeline/pkg/apis/config"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"sigs.k8s.io/yaml"

	"github.com/boomerang-io/flow-tekton-handler/internal/config"
	"github.com/boomerang-io/flow-tekton-handler/internal/contract"
)

var configDir = filepath.Join(root, "config")

// loadBase reads the documents of every file config/kustomization.yaml
// lists, without kustomize (the end-to-end tests render it for real).
func loadBase(t *testing.T) []Document {
	t.Helper()
	return loadKustomization(t, configDir)
}

// loadKustomization reads the documents of every file dir's
// kustomization.yaml lists.
func loadKustomization(t *testing.T, dir string) []Document {
	t.Helper()
	var k struct {
		Resources []string `json:"resources"`
	}
	b, err := os.ReadFile(filepath.Join(dir, "kustomization.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, &k); err != nil {
		t.Fatal(err)
	}
	var docs []Document
	for _, r := range k.Resources {
		b, err := os.ReadFile(filepath.Join(dir, r))
		if err != nil {
			t.Fatal(err)
		}
		d, err := SplitDocuments(b)
		if err != nil {
			t.Fatalf("%s: %v", r, err)
		}
		docs = append(docs, d...)
	}
	return docs
}

// find returns the document of that kind and name.
func find(t *testing.T, docs []Document, kind, name string) Document {
	t.Helper()
	for _, d := range docs {
		if d.Kind == kind && d.Metadata.Name == name {
			return d
		}
	}
	t.Fatalf("config/ has no %s/%s", kind, name)
	return Document{}
}

// decodeOne strictly decodes the document of that kind and name into a
// complete Go type.
func decodeOne(t *testing.T, docs []Document, kind, name string, into any) {
	t.Helper()
	if err := yaml.UnmarshalStrict(find(t, docs, kind, name).YAML, into); err != nil {
		t.Fatalf("%s/%s: %v", kind, name, err)
	}
}

func TestBaseIsNamespaceAgnostic(t *testing.T) {
	t.Parallel()
	for _, d := range loadBase(t) {
		if d.Metadata.Namespace != "" {
			t.Errorf("%s sets namespace %q; the base must take the namespace it is applied to", d.ID(), d.Metadata.Namespace)
		}
		if strings.HasPrefix(d.Kind, "Cluster") {
			t.Errorf("%s is cluster-scoped; the functions get namespaced Roles only", d.ID())
		}
	}
}

// TestRoles pins each Role to exactly what the code calls (internal/kube and
// its callers); the end-to-end RBAC test checks what the API server makes of
// them.
func TestRoles(t *testing.T) {
	t.Parallel()
	docs := loadBase(t)
	for _, tc := range []struct {
		name string
		want []rbacv1.PolicyRule
		// pods: what the role may do with Pods and their logs (pods/log,
		// the one subresource any function uses), by resource; nothing
		// else of Pods.
		pods map[string][]string
	}{
		{"flow-tekton-handler", []rbacv1.PolicyRule{
			{APIGroups: []string{"tekton.dev"}, Resources: []string{"taskruns"}, Verbs: []string{"create", "get", "patch"}},
			{APIGroups: []string{""}, Resources: []string{"configmaps"}, Verbs: []string{"create", "get", "patch", "delete"}},
			{APIGroups: []string{""}, Resources: []string{"persistentvolumeclaims"}, Verbs: []string{"create", "get", "list", "delete"}},
		}, nil},
		{"flow-tekton-sink", []rbacv1.PolicyRule{
			{APIGroups: []string{"tekton.dev"}, Resources: []string{"taskruns"}, Verbs: []string{"get", "list", "watch", "patch", "delete"}},
			{APIGroups: []string{""}, Resources: []string{"configmaps"}, Verbs: []string{"get", "patch", "delete"}},
			{APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: []string{"list", "watch"}},
		}, map[string][]string{"pods": {"list", "watch"}}},
		{"flow-tekton-logs", []rbacv1.PolicyRule{
			{APIGroups: []string{"tekton.dev"}, Resources: []string{"taskruns"}, Verbs: []string{"get"}},
			{APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: []string{"get"}},
			{APIGroups: []string{""}, Resources: []string{"pods/log"}, Verbs: []string{"get"}},
		}, map[string][]string{"pods": {"get"}, "pods/log": {"get"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var role rbacv1.Role
			decodeOne(t, docs, "Role", tc.name, &role)
			for i, r := range role.Rules {
				for _, list := range [][]string{r.APIGroups, r.Resources, r.Verbs, r.ResourceNames} {
					if slices.Contains(list, "*") {
						t.Errorf("rules[%d] has a wildcard: %+v", i, r)
					}
				}
				for _, res := range r.Resources {
					switch {
					case res == "secrets":
						t.Errorf("rules[%d] grants secrets; no function touches Secrets", i)
					case tc.pods[res] != nil:
						if !slices.Equal(r.Verbs, tc.pods[res]) {
							t.Errorf("rules[%d] grants %v on %s; want %v: the logs role gets a Pod and its logs by name, the sink watches Pods", i, r.Verbs, res, tc.pods[res])
						}
					case res == "pods" || strings.Contains(res, "/"):
						t.Errorf("rules[%d] grants %s; only the logs role reads Pods (and pods/log) and the sink watches them, and no function uses another subresource", i, res)
					}
				}
			}
			if diff := cmp.Diff(tc.want, role.Rules); diff != "" {
				t.Errorf("Role %s rules (-want +got):\n%s", tc.name, diff)
			}

			var sa corev1.ServiceAccount
			decodeOne(t, docs, "ServiceAccount", tc.name, &sa)
			var rb rbacv1.RoleBinding
			decodeOne(t, docs, "RoleBinding", tc.name, &rb)
			wantRB := rbacv1.RoleBinding{
				RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: tc.name},
				Subjects: []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: tc.name}},
			}
			if diff := cmp.Diff(wantRB.RoleRef, rb.RoleRef); diff != "" {
				t.Errorf("RoleBinding %s roleRef (-want +got):\n%s", tc.name, diff)
			}
			if diff := cmp.Diff(wantRB.Subjects, rb.Subjects); diff != "" {
				t.Errorf("RoleBinding %s subjects (-want +got):\n%s", tc.name, diff)
			}
		})
	}
}

// authDelegated are the ServiceAccounts config/auth binds to
// system:auth-delegator, for AUTH=token: the handler's and the sink's. Not
// the logs role's, which gets nothing beyond its Role
// (config/rbac-logs.yaml).
var authDelegated = []string{"flow-tekton-handler", "flow-tekton-sink"}

// TestAuthBinding pins config/auth to one ClusterRoleBinding of the
// built-in system:auth-delegator to exactly authDelegated, in the namespace
// config/tekton assumes (default).
func TestAuthBinding(t *testing.T) {
	t.Parallel()
	docs := loadKustomization(t, filepath.Join(configDir, "auth"))
	if len(docs) != 1 {
		t.Fatalf("config/auth has %d documents, want one ClusterRoleBinding", len(docs))
	}
	var crb rbacv1.ClusterRoleBinding
	decodeOne(t, docs, "ClusterRoleBinding", "flow-tekton-auth-delegator", &crb)
	want := rbacv1.ClusterRoleBinding{
		RoleRef: rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "system:auth-delegator"},
	}
	for _, sa := range authDelegated {
		want.Subjects = append(want.Subjects, rbacv1.Subject{Kind: rbacv1.ServiceAccountKind, Name: sa, Namespace: "default"})
	}
	if diff := cmp.Diff(want.RoleRef, crb.RoleRef); diff != "" {
		t.Errorf("roleRef (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(want.Subjects, crb.Subjects); diff != "" {
		t.Errorf("subjects (-want +got):\n%s", diff)
	}
	base := loadBase(t)
	for _, s := range crb.Subjects {
		find(t, base, "ServiceAccount", s.Name)
	}
}

// envNames lists the environment variables config.Config reads.
func envNames() map[string]bool {
	names := map[string]bool{}
	ct := reflect.TypeOf(config.Config{})
	for i := range ct.NumField() {
		if n := ct.Field(i).Tag.Get("envconfig"); n != "" {
			names[n] = true
		}
	}
	return names
}

// checkSettings checks the settings ConfigMap's data: only variables the
// functions read, none of those set elsewhere, and a configuration that
// loads for every role.
func checkSettings(t *testing.T, data map[string]string) error {
	t.Helper()
	known := envNames()
	for k := range data {
		switch {
		case !known[k]:
			return fmt.Errorf("key %s is not a variable internal/config reads", k)
		case k == "FUNCTION" || k == "ENGINE_TOKEN" || k == "ENGINE_TOKEN_FILE" || k == "KUBECONFIG":
			return fmt.Errorf("key %s does not belong in the shared ConfigMap", k)
		}
	}
	for _, role := range []string{config.RoleHandler, config.RoleSink, config.RoleLogs} {
		for k := range known {
			t.Setenv(k, "")
			os.Unsetenv(k)
		}
		for k, v := range data {
			t.Setenv(k, v)
		}
		t.Setenv("FUNCTION", role)
		if _, err := config.Load(); err != nil {
			return fmt.Errorf("as %s: %w", role, err)
		}
	}
	return nil
}

// TestSettings loads the real ConfigMap as every role would, and makes
// sure a bad key or value would be caught. It sets env vars: not parallel.
func TestSettings(t *testing.T) {
	var cm corev1.ConfigMap
	decodeOne(t, loadBase(t), "ConfigMap", "flow-tekton-handler", &cm)
	if err := checkSettings(t, cm.Data); err != nil {
		t.Fatalf("config/settings.yaml: %v", err)
	}
	if cm.Data["ENGINE_URL"] == "" {
		t.Error("ENGINE_URL is required and must be in the ConfigMap")
	}
	for _, tc := range []struct {
		name, key, value string
	}{
		{"misspelt key", "ENGINE_URLL", "http://engine:7701"},
		{"role in shared settings", "FUNCTION", "sink"},
		{"token in a ConfigMap", "ENGINE_TOKEN", "secret"},
		{"invalid value", "DELETION_POLICY", "Sometimes"},
		{"not a URL", "ENGINE_URL", "engine:7701"},
		{"auth mode unknown", "AUTH", "oidc"},
		{"allow list without auth", "AUTH_ALLOW", "flow:sender"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			data := map[string]string{}
			for k, v := range cm.Data {
				data[k] = v
			}
			data[tc.key] = tc.value
			if err := checkSettings(t, data); err == nil {
				t.Errorf("%s=%q was accepted", tc.key, tc.value)
			}
		})
	}
}

// reference is a Knative destination's ref.
type reference struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Name       string `json:"name"`
}

func TestWiring(t *testing.T) {
	t.Parallel()
	docs := loadBase(t)
	handler := mustLoadFunction(t, handlerFuncYAML)
	sink := mustLoadFunction(t, sinkFuncYAML)
	logs := mustLoadFunction(t, logsFuncYAML)
	ksvc := func(name string) reference {
		return reference{APIVersion: "serving.knative.dev/v1", Kind: "Service", Name: name}
	}

	var types []string
	for _, d := range docs {
		if d.Kind != "Trigger" {
			continue
		}
		var tr struct {
			Spec struct {
				Broker string `json:"broker"`
				Filter struct {
					Attributes map[string]string `json:"attributes"`
				} `json:"filter"`
				Subscriber struct {
					Ref reference `json:"ref"`
				} `json:"subscriber"`
			} `json:"spec"`
		}
		if err := yaml.Unmarshal(d.YAML, &tr); err != nil {
			t.Fatal(err)
		}
		if tr.Spec.Broker != "default" {
			t.Errorf("%s: broker %q, want default", d.ID(), tr.Spec.Broker)
		}
		if diff := cmp.Diff(ksvc(handler.Name), tr.Spec.Subscriber.Ref); diff != "" {
			t.Errorf("%s: subscriber is not the handler's Service (-want +got):\n%s", d.ID(), diff)
		}
		types = append(types, tr.Spec.Filter.Attributes["type"])
	}
	slices.Sort(types)
	// One Trigger for each event type the handler acts on.
	var want []string
	for _, typ := range contract.EventTypes {
		want = append(want, string(typ))
	}
	slices.Sort(want)
	if diff := cmp.Diff(want, types); diff != "" {
		t.Errorf("Trigger filter types (-want +got):\n%s", diff)
	}

	var ps struct {
		Spec struct {
			Schedule string `json:"schedule"`
			Sink     struct {
				Ref reference `json:"ref"`
			} `json:"sink"`
		} `json:"spec"`
	}
	if err := yaml.Unmarshal(find(t, docs, "PingSource", "flow-tekton-sink-sweep").YAML, &ps); err != nil {
		t.Fatal(err)
	}
	if ps.Spec.Schedule != "*/5 * * * *" {
		t.Errorf("PingSource schedule %q, want every 5 minutes", ps.Spec.Schedule)
	}
	if diff := cmp.Diff(ksvc(sink.Name), ps.Spec.Sink.Ref); diff != "" {
		t.Errorf("PingSource sink is not the sink's Service (-want +got):\n%s", diff)
	}

	var cm corev1.ConfigMap
	decodeOne(t, docs, "ConfigMap", "flow-tekton-handler", &cm)
	for _, f := range []Function{handler, sink, logs} {
		if !slices.Contains(f.ImportedConfigMaps(), cm.Name) {
			t.Errorf("%s does not import ConfigMap %s", f.Name, cm.Name)
		}
	}
}

// TestTektonConfigEvents parses config/tekton's ConfigMap with Tekton's own
// parser and checks it points at the sink's Service.
func TestTektonConfigEvents(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile(filepath.Join(configDir, "tekton", "config-events.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var cm corev1.ConfigMap
	if err := yaml.UnmarshalStrict(b, &cm); err != nil {
		t.Fatal(err)
	}
	if cm.Name != "config-events" || cm.Namespace != "tekton-pipelines" {
		t.Errorf("got %s/%s, want tekton-pipelines/config-events", cm.Namespace, cm.Name)
	}
	for k := range cm.Data {
		if k != "sink" && k != "formats" {
			t.Errorf("key %q: only sink and formats are ours to set", k)
		}
	}
	ev, err := tektonconfig.NewEventsFromConfigMap(&cm)
	if err != nil {
		t.Fatalf("Tekton rejects config-events: %v", err)
	}
	if !ev.Formats.Equals(tektonconfig.EventFormats{tektonconfig.FormatTektonV1: struct{}{}}) {
		t.Errorf("formats = %v, want tektonv1", ev.Formats)
	}
	sink := mustLoadFunction(t, sinkFuncYAML)
	u, err := url.Parse(ev.Sink)
	if err != nil || u.Scheme != "http" || !strings.HasPrefix(u.Host, sink.Name+".") || !strings.HasSuffix(u.Host, ".svc.cluster.local") {
		t.Errorf("sink %q is not http://%s.<namespace>.svc.cluster.local", ev.Sink, sink.Name)
	}
}
