package deploy

import (
	"flag"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden.yaml from the current func.yaml files")

// Image is the image every Service runs in the fixtures: the root's build,
// by digest, as `make deploy` passes it to the sink and the logs Service.
const Image = "registry.example.com/boomerang/flow-tekton-handler@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

// ksvcGoldens maps each func.yaml to the Knative Service func deploy makes
// of it; the end-to-end tests send these files to the API server.
var ksvcGoldens = []struct{ funcYAML, golden string }{
	{handlerFuncYAML, filepath.Join("testdata", "ksvc-handler.golden.yaml")},
	{sinkFuncYAML, filepath.Join("testdata", "ksvc-sink.golden.yaml")},
	{logsFuncYAML, filepath.Join("testdata", "ksvc-logs.golden.yaml")},
}

func TestKnativeServiceGolden(t *testing.T) {
	t.Parallel()
	for _, g := range ksvcGoldens {
		t.Run(filepath.Base(g.golden), func(t *testing.T) {
			t.Parallel()
			got, err := KnativeService(mustLoadFunction(t, g.funcYAML), Image)
			if err != nil {
				t.Fatal(err)
			}
			if *update {
				if err := os.WriteFile(g.golden, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(g.golden)
			if err != nil {
				t.Fatalf("%v (run go test ./test/deploy -update)", err)
			}
			if diff := cmp.Diff(string(want), string(got)); diff != "" {
				t.Errorf("Knative Service of %s differs from %s (-want +got); review, then -update:\n%s", g.funcYAML, g.golden, diff)
			}
		})
	}
}
