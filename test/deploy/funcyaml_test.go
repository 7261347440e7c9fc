package deploy

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/boomerang-io/flow-tekton-handler/internal/config"
)

// root is the repository root, seen from this package's directory.
var root = filepath.Join("..", "..")

var (
	handlerFuncYAML = filepath.Join(root, "func.yaml")
	sinkFuncYAML    = filepath.Join(root, "function", "sink", "func.yaml")
	logsFuncYAML    = filepath.Join(root, "function", "logs", "func.yaml")
)

func mustLoadFunction(t *testing.T, path string) Function {
	t.Helper()
	f, err := LoadFunction(path)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func TestFunctionInvariants(t *testing.T) {
	t.Parallel()
	handler := mustLoadFunction(t, handlerFuncYAML)
	sink := mustLoadFunction(t, sinkFuncYAML)
	logs := mustLoadFunction(t, logsFuncYAML)

	type want struct {
		name, function, serviceAccount string
		// secrets are the Secrets imported whole: the Engine token's for
		// the roles that call the Engine, none for the logs role, which
		// must not get ENGINE_TOKEN.
		secrets []string
	}
	engineSecret := []string{"flow-tekton-engine"}
	cases := []struct {
		file string
		f    Function
		want want
	}{
		{handlerFuncYAML, handler, want{"flow-tekton-handler", config.RoleHandler, "flow-tekton-handler", engineSecret}},
		{sinkFuncYAML, sink, want{"flow-tekton-sink", config.RoleSink, "flow-tekton-sink", engineSecret}},
		{logsFuncYAML, logs, want{"flow-tekton-logs", config.RoleLogs, "flow-tekton-logs", nil}},
	}
	for _, tc := range cases {
		t.Run(tc.want.function, func(t *testing.T) {
			t.Parallel()
			f := tc.f
			if f.Name != tc.want.name {
				t.Errorf("%s: name = %q, want %q", tc.file, f.Name, tc.want.name)
			}
			if f.Runtime != "go" || f.Invoke != "http" {
				t.Errorf("%s: runtime/invoke = %q/%q, want go/http", tc.file, f.Runtime, f.Invoke)
			}
			if f.Build == nil || f.Build.Builder != "host" {
				t.Errorf("%s: build.builder must be host", tc.file)
			}
			if v, _ := f.Env("FUNCTION"); v != tc.want.function {
				t.Errorf("%s: FUNCTION = %q, want %q", tc.file, v, tc.want.function)
			}
			if f.Deploy == nil {
				t.Fatalf("%s: no deploy section", tc.file)
			}
			if f.Deploy.ServiceAccountName != tc.want.serviceAccount {
				t.Errorf("%s: serviceAccountName = %q, want %q", tc.file, f.Deploy.ServiceAccountName, tc.want.serviceAccount)
			}
			visibility := ""
			for _, l := range f.Deploy.Labels {
				if l.Key != nil && *l.Key == "networking.knative.dev/visibility" && l.Value != nil {
					visibility = *l.Value
				}
			}
			if visibility != "cluster-local" {
				t.Errorf("%s: label networking.knative.dev/visibility = %q, want cluster-local (no Service is called from outside the cluster)", tc.file, visibility)
			}
			if o := f.Deploy.Options; o == nil || o.Scale == nil || o.Scale.Min == nil || *o.Scale.Min != 0 {
				t.Errorf("%s: deploy.options.scale.min must be 0 (scale to zero)", tc.file)
			}
			if o := f.Deploy.Options; o == nil || o.Scale == nil || o.Scale.Max == nil || *o.Scale.Max < 1 {
				t.Errorf("%s: deploy.options.scale.max must be set", tc.file)
			}
			if o := f.Deploy.Options; o == nil || o.Resources == nil || o.Resources.Requests == nil || o.Resources.Limits == nil ||
				o.Resources.Limits.Memory == nil || o.Resources.Limits.Concurrency == nil || *o.Resources.Limits.Concurrency < 1 {
				t.Errorf("%s: deploy.options.resources needs requests, a memory limit and a concurrency", tc.file)
			}
			if f.Image != "" || f.Deploy.Image != "" || f.Namespace != "" || f.Deploy.Namespace != "" {
				t.Errorf("%s: image and namespace are chosen at deploy time, not committed", tc.file)
			}
			if got := f.ImportedConfigMaps(); !slices.Equal(got, []string{"flow-tekton-handler"}) {
				t.Errorf("%s: imported ConfigMaps = %q, want the settings ConfigMap", tc.file, got)
			}
			if got := f.ImportedSecrets(); !slices.Equal(got, tc.want.secrets) {
				t.Errorf("%s: imported Secrets = %q, want %q", tc.file, got, tc.want.secrets)
			}
			// Nor a key of a Secret, one by one or as a volume.
			if r := f.Run; r != nil {
				for _, e := range r.Envs {
					if e.Name != nil && e.Value != nil && keyFromSecret.MatchString(*e.Value) {
						t.Errorf("%s: %s = %s; Secrets are imported whole, or not at all", tc.file, *e.Name, *e.Value)
					}
				}
				for _, v := range r.Volumes {
					if v.Secret != nil {
						t.Errorf("%s: mounts Secret %s", tc.file, *v.Secret)
					}
				}
			}
		})
	}

	for _, tc := range cases[1:] {
		f := tc.f
		if handler.Runtime != f.Runtime || handler.Invoke != f.Invoke {
			t.Errorf("runtime/invoke differ: handler %s/%s, %s %s/%s", handler.Runtime, handler.Invoke, tc.want.function, f.Runtime, f.Invoke)
		}
		// Not a build root: func drops replace lines and needs go.mod next
		// to func.yaml, so a go.mod here would make a second module.
		if _, err := os.Stat(filepath.Join(filepath.Dir(tc.file), "go.mod")); err == nil {
			t.Errorf("%s has a go.mod beside it; the %s must deploy the root's image", tc.file, tc.want.function)
		}
	}
	accounts := map[string]string{} // ServiceAccount -> role
	for _, tc := range cases {
		if tc.f.Deploy == nil {
			continue // its subtest reports it
		}
		sa := tc.f.Deploy.ServiceAccountName
		if other, ok := accounts[sa]; ok {
			t.Errorf("%s and %s share ServiceAccount %q; each needs its own Role", other, tc.want.function, sa)
		}
		accounts[sa] = tc.want.function
	}
}

// TestDecodeFunctionRejects mutates the real handler func.yaml and expects
// every mistake to be caught.
func TestDecodeFunctionRejects(t *testing.T) {
	t.Parallel()
	valid, err := os.ReadFile(handlerFuncYAML)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := DecodeFunction(valid); err != nil {
		t.Fatalf("the valid file fails: %v", err)
	}
	for _, tc := range []struct {
		name, old, new string
	}{
		{"misspelt top-level field", "runtime: go", "runtme: go"},
		{"misspelt deploy field", "serviceAccountName:", "servicAccountName:"},
		{"misspelt options field", "concurrency: 50", "concurency: 50"},
		{"field in the wrong section", "  builder: host", "  builder: host\n  serviceAccountName: x"},
		{"invoke not in enum", "invoke: http", "invoke: https"},
		{"unknown builder", "builder: host", "builder: hots"},
		{"negative min scale", "min: 0", "min: -1"},
		{"min above max", "min: 0", "min: 11"},
		{"quantity not a quantity", "memory: 64Mi", "memory: 64 megs"},
		{"env source in wrong case", "{{ configMap:flow-tekton-handler }}", "{{ configmap:flow-tekton-handler }}"},
		{"named env with a whole-object source", "  - name: FUNCTION\n    value: handler", "  - name: FUNCTION\n    value: '{{ secret:x }}'"},
		{"duplicate env name", "  - name: FUNCTION\n    value: handler", "  - name: FUNCTION\n    value: handler\n  - name: FUNCTION\n    value: sink"},
		{"missing created", "created: 2026-11-25T00:00:00Z\n", ""},
		{"missing specVersion", "specVersion: 0.36.0\n", ""},
		{"invalid name", "name: flow-tekton-handler", "name: Flow_Tekton"},
		{"invalid label key", "key: app.kubernetes.io/component", "key: -bad"},
		{"string where an integer belongs", "max: 10", "max: ten"},
		{"duplicate key", "runtime: go", "runtime: go\nruntime: go"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if !strings.Contains(string(valid), tc.old) {
				t.Fatalf("func.yaml no longer contains %q; update the case", tc.old)
			}
			mutated := strings.Replace(string(valid), tc.old, tc.new, 1)
			if _, err := DecodeFunction([]byte(mutated)); err == nil {
				t.Errorf("replacing %q by %q was accepted", tc.old, tc.new)
			} else {
				t.Logf("rejected: %v", err)
			}
		})
	}
}
