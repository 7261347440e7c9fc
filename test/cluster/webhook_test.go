package cluster

import (
	"path/filepath"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	"sigs.k8s.io/yaml"
)

func TestWebhookConfigurations(t *testing.T) {
	t.Parallel()
	s := webhookServer{url: "https://127.0.0.1:4321", caPEM: []byte("CA")}
	mutating, validating := webhookConfigurations(s)
	if len(mutating.Webhooks) != 1 || len(validating) != 2 {
		t.Fatalf("%d mutating webhooks and %d validating configurations, want 1 and 2", len(mutating.Webhooks), len(validating))
	}
	// The mutating webhook as a validating one: it has all the fields checked here.
	m := mutating.Webhooks[0]
	hooks := map[string]admissionregistrationv1.ValidatingWebhook{mutating.Name: {
		Name: m.Name, ClientConfig: m.ClientConfig, Rules: m.Rules, FailurePolicy: m.FailurePolicy, SideEffects: m.SideEffects,
		AdmissionReviewVersions: m.AdmissionReviewVersions, NamespaceSelector: m.NamespaceSelector, ObjectSelector: m.ObjectSelector,
	}}
	for _, v := range validating {
		if len(v.Webhooks) != 1 {
			t.Fatalf("configuration %s has %d webhooks, want 1", v.Name, len(v.Webhooks))
		}
		hooks[v.Name] = v.Webhooks[0]
	}
	createUpdate := []admissionregistrationv1.OperationType{admissionregistrationv1.Create, admissionregistrationv1.Update}
	taskRuns := admissionregistrationv1.Rule{APIGroups: []string{"tekton.dev"}, APIVersions: []string{"v1"}, Resources: []string{"taskruns", "taskruns/status"}}
	for name, path := range map[string]string{webhookDefaulting: pathDefaulting, webhookValidation: pathValidation, webhookConfig: pathConfigValidation} {
		h, ok := hooks[name]
		switch {
		case !ok || h.Name != name:
			t.Errorf("no configuration %s with a webhook of its name: %v", name, hooks)
			continue
		case h.ClientConfig.Service != nil || h.ClientConfig.URL == nil || *h.ClientConfig.URL != s.url+path || string(h.ClientConfig.CABundle) != "CA":
			t.Errorf("webhook %s client config = %+v, want URL %s and the CA", name, h.ClientConfig, s.url+path)
		case h.FailurePolicy == nil || *h.FailurePolicy != admissionregistrationv1.Fail ||
			h.SideEffects == nil || *h.SideEffects != admissionregistrationv1.SideEffectClassNone ||
			!slices.Equal(h.AdmissionReviewVersions, []string{"v1"}):
			t.Errorf("webhook %s = %+v, want failurePolicy Fail, sideEffects None, admissionReviewVersions v1", name, h)
		}
		if name == webhookConfig {
			if h.ObjectSelector == nil || h.NamespaceSelector != nil || len(h.Rules) != 1 || h.Rules[0].Resources[0] != "configmaps/*" {
				t.Errorf("webhook %s = %+v, want one rule for configmaps/* and an object selector", name, h)
			}
			continue
		}
		if h.NamespaceSelector == nil || h.ObjectSelector != nil {
			t.Errorf("webhook %s: namespace selector %v, object selector %v; want only the first", name, h.NamespaceSelector, h.ObjectSelector)
		}
		i := slices.IndexFunc(h.Rules, func(r admissionregistrationv1.RuleWithOperations) bool { return cmp.Equal(r.Rule, taskRuns) })
		if i < 0 || !slices.Equal(h.Rules[i].Operations, createUpdate) {
			t.Errorf("webhook %s has no CREATE, UPDATE rule for %v: %v", name, taskRuns, h.Rules)
		}
		if n, want := len(h.Rules), countResources(); n != want {
			t.Errorf("webhook %s has %d rules, want %d (one per kind and version)", name, n, want)
		}
	}
}

// TestTektonKinds checks tektonKinds against the Tekton release the
// cluster runs: the webhooks cover every version its CRDs serve, and no
// other (upstream's webhook handles each of them).
func TestTektonKinds(t *testing.T) {
	t.Parallel()
	info, err := download(t.Context(), "", "github.com/tektoncd/pipeline@"+tektonVersion)
	if err != nil {
		t.Fatal(err)
	}
	files, err := filepath.Glob(filepath.Join(info.Dir, "config", "300-crds", "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no CRDs in %s: %v", info.Dir, err)
	}
	var served []string
	for _, f := range files {
		docs, err := splitYAML(mustRead(t, f))
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range docs {
			var crd struct {
				Spec struct {
					Group    string
					Names    struct{ Plural string }
					Versions []struct {
						Name   string
						Served bool
					}
				}
			}
			if err := yaml.Unmarshal(d, &crd); err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			for _, v := range crd.Spec.Versions {
				if v.Served {
					served = append(served, crd.Spec.Group+"/"+v.Name+"/"+crd.Spec.Names.Plural)
				}
			}
		}
	}
	var kinds []string
	for _, k := range tektonKinds {
		for _, r := range k.resources {
			kinds = append(kinds, k.group+"/"+k.version+"/"+r)
		}
	}
	slices.Sort(served)
	slices.Sort(kinds)
	if diff := cmp.Diff(served, kinds); diff != "" {
		t.Errorf("tektonKinds (-served by the CRDs +tektonKinds):\n%s", diff)
	}
}

// countResources counts the resources in tektonKinds.
func countResources() int {
	n := 0
	for _, k := range tektonKinds {
		n += len(k.resources)
	}
	return n
}
