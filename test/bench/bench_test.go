package bench

import (
	"testing"

	"github.com/boomerang-io/flow-tekton-handler/function"
	"github.com/boomerang-io/flow-tekton-handler/internal/config"
	"github.com/boomerang-io/flow-tekton-handler/internal/contract"
	"github.com/boomerang-io/flow-tekton-handler/internal/outcome"
	"github.com/boomerang-io/flow-tekton-handler/internal/tekton"
	"github.com/boomerang-io/flow-tekton-handler/test/fixtures"
)

// options are the builders' options with every default, as a handler in
// namespace flow loads them.
func options(tb testing.TB) tekton.Options {
	tb.Setenv("ENGINE_URL", "http://127.0.0.1:7701")
	tb.Setenv("NAMESPACE", "flow")
	cfg, err := config.Load()
	if err != nil {
		tb.Fatal(err)
	}
	return function.TektonOptions(cfg)
}

// BenchmarkDecodeBuild is the handler's pure work per task event: decode
// the data and build the TaskRun and its ConfigMap.
func BenchmarkDecodeBuild(b *testing.B) {
	opts := options(b)
	for _, fx := range []string{"engine-taskrun-custom-ready.json", "engine-taskrun-template-ready.json", "engine-taskrun-script-ready.json"} {
		data := fixtures.Data(b, fx)
		b.Run(fx[len("engine-taskrun-"):len(fx)-len("-ready.json")], func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(data)))
			for b.Loop() {
				t, err := contract.DecodeTaskRun(data)
				if err != nil {
					b.Fatal(err)
				}
				task, err := tekton.BuildTask(t, nil, "", opts)
				if err != nil || task.TaskRun == nil || task.ConfigMap == nil {
					b.Fatalf("build: %v", err)
				}
			}
		})
	}
}

// BenchmarkOutcomeDecode is the sink's pure work per Tekton event: decode
// the TaskRun it carries, and decide the end call.
func BenchmarkOutcomeDecode(b *testing.B) {
	data := fixtures.Data(b, "tekton-taskrun-successful-two-results.json")
	b.Run("decode", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(data)))
		for b.Loop() {
			if _, err := outcome.Decode(data); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("decode+decide", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(data)))
		for b.Loop() {
			tr, err := outcome.Decode(data)
			if err != nil {
				b.Fatal(err)
			}
			if d, _, _ := outcome.Decide(tr, "bmrg-flow"); d != outcome.ReportEnd {
				b.Fatalf("decision %v, want %v", d, outcome.ReportEnd)
			}
		}
	})
}
