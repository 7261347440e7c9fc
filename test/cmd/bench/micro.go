package main

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// The targets for the handler's pure work per event.
const (
	decodeBuildTargetUs     = 100
	decodeBuildTargetAllocs = 200
)

// microRows adds a row per BenchmarkDecodeBuild case of the micro-benchmarks'
// output: its time and allocations per event, median of the -count runs.
func (b *bench) microRows(out string) {
	ns, allocs := map[string]runs{}, map[string]runs{}
	var names []string
	for _, line := range strings.Split(out, "\n") {
		name, t, a, ok := parseBenchLine(line, "BenchmarkDecodeBuild/")
		if !ok {
			continue
		}
		if _, seen := ns[name]; !seen {
			names = append(names, name)
		}
		ns[name] = append(ns[name], t/1000)
		allocs[name] = append(allocs[name], a)
	}
	for _, name := range names {
		us, al := ns[name], allocs[name]
		b.rows = append(b.rows, row{
			metric: fmt.Sprintf("decode + build per event, micro-benchmark (fixture engine-taskrun-%s-ready.json): µs and allocations", name),
			ours:   us.format(1, false) + " µs, " + al.format(0, false) + " allocs",
			target: fmt.Sprintf("≤ %d µs and ≤ %d allocs", decodeBuildTargetUs, decodeBuildTargetAllocs),
			met:    us.median() <= decodeBuildTargetUs && al.median() <= decodeBuildTargetAllocs,
		})
	}
}

// parseBenchLine reads a go test -bench line of a benchmark under prefix:
// its case name (without the -GOMAXPROCS suffix), ns/op and allocs/op.
func parseBenchLine(line, prefix string) (string, float64, float64, bool) {
	f := strings.Fields(line)
	if len(f) < 4 || !strings.HasPrefix(f[0], prefix) {
		return "", 0, 0, false
	}
	name := strings.TrimPrefix(f[0], prefix)
	if i := strings.LastIndexByte(name, '-'); i > 0 {
		name = name[:i]
	}
	value := func(unit string) (float64, bool) {
		i := slices.Index(f, unit)
		if i < 1 {
			return 0, false
		}
		v, err := strconv.ParseFloat(f[i-1], 64)
		return v, err == nil
	}
	t, ok1 := value("ns/op")
	a, ok2 := value("allocs/op")
	return name, t, a, ok1 && ok2
}
