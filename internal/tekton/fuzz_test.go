package tekton

import (
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"

	"github.com/boomerang-io/flow-tekton-handler/internal/contract"
	"github.com/boomerang-io/flow-tekton-handler/test/fixtures"
)

// fuzzOptions are testOptions, or with mode bit 1 every optional setting:
// proxy, pod template, service account, memory /data, a storage class.
func fuzzOptions(mode uint8) Options {
	o := testOptions()
	if mode&2 != 0 {
		o.ProxyHost, o.ProxyPort, o.ProxyIgnore = "proxy.example.com", "3128", "localhost"
		o.NodeSelector = map[string]string{"kubernetes.io/os": "linux"}
		o.Tolerations = []corev1.Toleration{{Key: "dedicated", Operator: corev1.TolerationOpExists}}
		o.HostAliases = []corev1.HostAlias{{IP: "10.0.0.1", Hostnames: []string{"registry.internal"}}}
		o.ServiceAccount, o.ImagePullSecret = "bmrg-flow-worker", "bmrg-flow-registry"
		o.DataMemory = true
		o.DefaultTimeout = 90 * time.Minute
	}
	return o
}

// fuzzClaims are both scopes' claims, with mount paths, when mode bit 0 is
// set.
func fuzzClaims(mode uint8) []Claim {
	if mode&1 == 0 {
		return nil
	}
	return []Claim{
		{Scope: "workflow", ClaimName: "bmrg-flow-pvc-workflow-65a1f0c2e4b0a1b2c3d4e5f6", MountPath: "/workspace/shared"},
		{Scope: "workflowrun", ClaimName: "bmrg-flow-pvc-workflowrun-65a1f0d9e4b0a1b2c3d4e601"},
	}
}

// FuzzBuildTask checks that any taskrun data either fails to decode, is a
// *BuildError, or builds, deterministically, a TaskRun Tekton's webhook
// admits and objects whose names, labels, annotations and ConfigMap keys
// the apiserver admits, within the input policy.
func FuzzBuildTask(f *testing.F) {
	for i, name := range fixtures.Glob(f, "engine-taskrun-*.json") {
		data := fixtures.Data(f, name)
		f.Add(data, "", uint8(i%4))
		f.Add(data, validTraceparent, uint8(3))
	}
	f.Add([]byte(`{"id":"x","type":"script","status":"ready","phase":"pending","spec":{"image":""}}`), "", uint8(0))
	f.Add([]byte(`{"id":"Ünï Code/..","type":"custom","status":"ready","phase":"pending","labels":{"a b":"c"},
		"params":[{"name":"worker.storage.data.memory","value":true},{"name":"1x","value":null}],
		"results":[{"name":"a.b"}],"workspaces":[{"type":"WorkflowRun","mountPath":"/w"}],
		"spec":{"image":"i","script":" ","command":["c"],"envs":[{"name":"CI","value":"x"}],"deletion":"always"}}`), "garbage", uint8(3))
	// Tekton variables the TaskRun declares, and a workspace mount path: one
	// mutation away from references and paths Tekton refuses.
	f.Add([]byte(`{"id":"65a1f1a0e4b0a1b2c3d4e613","type":"template","status":"ready","phase":"pending","timeout":5,
		"params":[{"name":"url","value":"https://example.org"}],"results":[{"name":"out"}],
		"workspaces":[{"name":"w","type":"workflow","mountPath":"/workspace/x"}],
		"spec":{"image":"alpine","script":"echo $(params.url) > $(results.out.path)","arguments":["$(params.url)"],
		"workingDir":"/data/$(context.taskRun.name)","envs":[{"name":"U","value":"$(params.url)"}]}}`), "", uint8(1))
	// References the builder vouches for, beside lookalikes it refuses.
	f.Add([]byte(`{"id":"65a1f1a0e4b0a1b2c3d4e614","type":"script","status":"ready","phase":"pending",
		"params":[{"name":"url","value":"$(params.url)"},{"name":"sh","value":"$(id -u)"},{"name":"Sh","value":"x"}],"results":[{"name":"out"},{"name":"a.b"}],
		"spec":{"image":"alpine","script":"echo $(params.url) $(date) $(context.task.retry-count) > $(results.out.path)",
		"arguments":["$(context.taskRun.uid)","$(contextXtask.name)"],"command":["$(params.url)"],
		"envs":[{"name":"A","value":"$(results.a.b.path)"}]}}`), "", uint8(0))

	f.Fuzz(func(t *testing.T, data []byte, traceparent string, mode uint8) {
		tr, err := contract.DecodeTaskRun(data)
		if err != nil {
			return
		}
		o, claims := fuzzOptions(mode), fuzzClaims(mode)
		task, err := BuildTask(tr, claims, traceparent, o)
		if err != nil {
			var be *BuildError
			if !errors.As(err, &be) || !errors.Is(err, ErrUnbuildable) {
				t.Fatalf("BuildTask error %v is not a *BuildError", err)
			}
			if task != nil {
				t.Fatalf("BuildTask returned a task with error %v", err)
			}
			return
		}
		if task == nil || task.TaskRun == nil || task.ConfigMap == nil {
			t.Fatalf("incomplete task %+v", task)
		}
		for _, e := range taskErrors(t.Context(), task, o) {
			t.Error(e)
		}
		again, err := BuildTask(tr, claims, traceparent, o)
		if err != nil {
			t.Fatalf("second build failed: %v", err)
		}
		if d := cmp.Diff(task, again); d != "" {
			t.Fatalf("two builds differ (-first +second):\n%s", d)
		}
	})
}

// FuzzPVCs checks that any workflowrun data either fails to decode or
// builds, deterministically and without failing, claims the apiserver
// admits, whatever the types in the workspaces' specs: a spec never keeps
// the run from starting.
func FuzzPVCs(f *testing.F) {
	for i, name := range fixtures.Glob(f, "engine-workflowrun-*.json") {
		f.Add(fixtures.Data(f, name), uint8(i%4))
	}
	f.Add([]byte(`{"id":"65a1f0d9e4b0a1b2c3d4e601","workflowRef":"65a1f0c2e4b0a1b2c3d4e5f6","labels":{"team":"x"},"workspaces":[
		{"name":"a","type":"Workflow","spec":{"accessMode":5,"className":true,"mountPath":["/a"],"size":{"gi":2}}},
		{"name":"b","type":"workflowrun","spec":"x"},{"name":"c","type":"workflowrun","spec":[]}]}`), uint8(2))
	f.Add([]byte(`{"id":"r","workspaces":[{"type":"workflowrun","spec":{"size":"0.5","accessMode":"ReadWriteOncePod","className":"Bad_Class","mountPath":"/m"}}]}`), uint8(0))

	f.Fuzz(func(t *testing.T, data []byte, mode uint8) {
		w, err := contract.DecodeWorkflowRun(data)
		if err != nil {
			return
		}
		o := fuzzOptions(mode)
		if mode&1 != 0 {
			o.StorageClass = "fast-rwx"
		}
		pvcs, dropped := PVCs(w, o)
		checkPVCs(t, pvcs, o)
		again, droppedAgain := PVCs(w, o)
		if d := cmp.Diff(pvcs, again); d != "" {
			t.Fatalf("two builds differ (-first +second):\n%s", d)
		}
		if d := cmp.Diff(dropped, droppedAgain); d != "" {
			t.Fatalf("two builds drop differently (-first +second):\n%s", d)
		}
	})
}
