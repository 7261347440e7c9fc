package tekton

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"

	"github.com/boomerang-io/flow-tekton-handler/internal/contract"
	"github.com/boomerang-io/flow-tekton-handler/test/fixtures"
)

// validTraceparent is a W3C trace context header.
const validTraceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

// TestGoldenFixtureTasks renders the TaskRun and owned ConfigMap of every
// ready taskrun fixture with testOptions.
func TestGoldenFixtureTasks(t *testing.T) {
	t.Parallel()
	for _, name := range fixtures.Glob(t, "engine-taskrun-*-ready.json") {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			o := testOptions()
			task := build(t, fixtureTaskRun(t, name), nil, "", o)
			golden(t, strings.TrimSuffix(name, ".json"), renderYAML(t, task.Dropped, task.TaskRun, ownedConfigMap(task)))
		})
	}
}

// TestGoldenFixturePVCs renders the claims of every workflowrun fixture.
func TestGoldenFixturePVCs(t *testing.T) {
	t.Parallel()
	for _, name := range fixtures.Glob(t, "engine-workflowrun-*.json") {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			o := testOptions()
			pvcs, dropped := PVCs(fixtureWorkflowRun(t, name), o)
			if len(pvcs) == 0 {
				t.Fatal("no claims built")
			}
			checkPVCs(t, pvcs, o)
			objs := make([]any, len(pvcs))
			for i, p := range pvcs {
				objs[i] = p
			}
			golden(t, strings.TrimSuffix(name, ".json"), renderYAML(t, dropped, objs...))
		})
	}
}

// TestGoldenTaskCases renders tasks built from the template fixture with
// claims and options the fixtures do not exercise.
func TestGoldenTaskCases(t *testing.T) {
	t.Parallel()
	const fixture = "engine-taskrun-template-ready.json"
	tests := []struct {
		name        string
		edit        func(*contract.TaskRun)
		claims      []Claim
		options     func(*Options)
		traceparent string
	}{{
		// The workflow claim brings its own mount path; the event's
		// workspace overrides the run claim's; a repeated scope and an
		// unknown scope are ignored.
		name: "claims-attached",
		edit: func(tr *contract.TaskRun) {
			tr.Workspaces = []contract.TaskWorkspace{{Name: "run", Type: "WorkflowRun", MountPath: "/workspace/run"}}
		},
		claims: []Claim{
			{Scope: "workflowrun", ClaimName: "bmrg-flow-pvc-workflowrun-65a1f0d9e4b0a1b2c3d4e601", MountPath: "/workspace/build"},
			{Scope: "Workflow", ClaimName: "bmrg-flow-pvc-workflow-65a1f0c2e4b0a1b2c3d4e5f6", MountPath: "/workspace/shared"},
			{Scope: "workflow", ClaimName: "second-workflow-claim"},
			{Scope: "task", ClaimName: "unknown-scope"},
		},
	}, {
		name:   "claims-default-mount-paths",
		claims: []Claim{{Scope: "workflow", ClaimName: "wf-claim"}, {Scope: "workflowrun", ClaimName: "run-claim"}},
	}, {
		name: "proxy-enabled",
		options: func(o *Options) {
			o.ProxyHost, o.ProxyPort, o.ProxyIgnore = "proxy.example.com", "3128", "localhost,.svc,.cluster.local"
		},
	}, {
		name: "pod-template",
		options: func(o *Options) {
			o.NodeSelector = map[string]string{"kubernetes.io/os": "linux", "node-role.kubernetes.io/worker": ""}
			o.Tolerations = []corev1.Toleration{{Key: "dedicated", Operator: corev1.TolerationOpEqual, Value: "flow", Effect: corev1.TaintEffectNoSchedule}}
			o.HostAliases = []corev1.HostAlias{{IP: "10.0.0.10", Hostnames: []string{"registry.internal"}}}
			o.ServiceAccount = "bmrg-flow-worker"
			o.ImagePullSecret = "bmrg-flow-registry"
		},
	}, {
		name: "data-memory",
		edit: func(tr *contract.TaskRun) {
			tr.Params = append(tr.Params, contract.Param{Name: "worker.storage.data.memory", Value: []byte("true")})
		},
		options: func(o *Options) { o.DataMemory = true },
	}, {
		name:        "traceparent",
		traceparent: validTraceparent,
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			o := testOptions()
			if tc.options != nil {
				tc.options(&o)
			}
			tr := fixtureTaskRun(t, fixture)
			if tc.edit != nil {
				tc.edit(tr)
			}
			task := build(t, tr, tc.claims, tc.traceparent, o)
			golden(t, "task-"+tc.name, renderYAML(t, task.Dropped, task.TaskRun, ownedConfigMap(task)))
		})
	}
}

// TestGoldenPVCCases renders claims for workspaces the fixtures do not
// exercise.
func TestGoldenPVCCases(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		data    string
		options func(*Options)
	}{{
		// Both scopes, scope names in mixed case, a bare-number size, no
		// class (so storageClassName stays unset), invalid Engine labels,
		// a relative mount path (not recorded) and a workspace without spec.
		name: "both-scopes",
		data: `{"id":"65a1f0d9e4b0a1b2c3d4e601","status":"ready","phase":"pending","workflowRef":"65a1f0c2e4b0a1b2c3d4e5f6",
			"labels":{"team":"platform","bad key":"x","boomerang.io/tier":"task"},
			"workspaces":[
				{"name":"cache","type":"Workflow","spec":{"size":5,"mountPath":"/cache"}},
				{"name":"scratch","type":"WorkflowRun","spec":{"size":"500Mi","accessMode":"ReadWriteOnce","mountPath":"relative"}},
				{"name":"nospec","type":"workflowrun"}]}`,
	}, {
		// Wrong-typed specs and spec fields: each is noted by its path and
		// its default applies; both claims are built.
		name: "wrong-types",
		data: `{"id":"65a1f0d9e4b0a1b2c3d4e601","status":"ready","phase":"pending","workflowRef":"65a1f0c2e4b0a1b2c3d4e5f6",
			"workspaces":[
				{"name":"cache","type":"workflow","spec":{"accessMode":5,"className":true,"mountPath":["/cache"],"size":{"gi":2}}},
				{"name":"scratch","type":"workflowrun","spec":"x"}]}`,
	}, {
		name:    "configured-class",
		data:    `{"id":"65a1f0d9e4b0a1b2c3d4e601","workflowRef":"65a1f0c2e4b0a1b2c3d4e5f6","workspaces":[{"name":"cache","type":"workflow","spec":{}}]}`,
		options: func(o *Options) { o.StorageClass = "fast-rwx" },
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			o := testOptions()
			if tc.options != nil {
				tc.options(&o)
			}
			w, err := contract.DecodeWorkflowRun([]byte(tc.data))
			if err != nil {
				t.Fatalf("decode: %v", err)
			}
			pvcs, dropped := PVCs(w, o)
			checkPVCs(t, pvcs, o)
			objs := make([]any, len(pvcs))
			for i, p := range pvcs {
				objs[i] = p
			}
			golden(t, "pvcs-"+tc.name, renderYAML(t, dropped, objs...))
		})
	}
}
