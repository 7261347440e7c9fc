package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/boomerang-io/flow-tekton-handler/internal/contract"
)

func TestPercentile(t *testing.T) {
	t.Parallel()
	ms := func(v ...int) []time.Duration {
		var out []time.Duration
		for _, x := range v {
			out = append(out, time.Duration(x)*time.Millisecond)
		}
		return out
	}
	hundred := make([]int, 100)
	for i := range hundred {
		hundred[i] = 100 - i // descending: percentile must sort
	}
	cases := []struct {
		name string
		d    []time.Duration
		p    float64
		want time.Duration
	}{
		{"empty", nil, 50, 0},
		{"one", ms(7), 99, 7 * time.Millisecond},
		{"p50 of odd", ms(3, 1, 2), 50, 2 * time.Millisecond},
		{"p50 of 100 is the 50th", ms(hundred...), 50, 50 * time.Millisecond},
		{"p99 of 100 is the 99th", ms(hundred...), 99, 99 * time.Millisecond},
		{"p100 is the max", ms(hundred...), 100, 100 * time.Millisecond},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := percentile(tc.d, tc.p); got != tc.want {
				t.Errorf("percentile(%v) = %v, want %v", tc.p, got, tc.want)
			}
		})
	}
}

func TestRuns(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name       string
		r          runs
		prec       int
		sign       bool
		wantMedian float64
		wantFormat string
	}{
		{"odd", runs{3, 1, 2}, 1, false, 2, "2.0 (1.0…3.0)"},
		{"even takes the mean of the middle", runs{4, 1, 2, 3}, 2, false, 2.5, "2.50 (1.00…4.00)"},
		{"all equal shows one value", runs{100, 100, 100}, 0, false, 100, "100"},
		{"signed", runs{-1.5, 2, 4}, 1, true, 2, "+2.0 (-1.5…+4.0)"},
		{"empty", nil, 1, false, math.NaN(), "n/a"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := tc.r.median(); got != tc.wantMedian && !(math.IsNaN(got) && math.IsNaN(tc.wantMedian)) {
				t.Errorf("median = %v, want %v", got, tc.wantMedian)
			}
			if got := tc.r.format(tc.prec, tc.sign); got != tc.wantFormat {
				t.Errorf("format = %q, want %q", got, tc.wantFormat)
			}
		})
	}
}

func TestRatiosAndDiffsPairRuns(t *testing.T) {
	t.Parallel()
	a, b := runs{10, 20, 30}, runs{5, 10}
	if diff := cmp.Diff(runs{2, 2}, ratios(a, b)); diff != "" {
		t.Errorf("ratios (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(runs{5, 10}, diffs(a, b)); diff != "" {
		t.Errorf("diffs (-want +got):\n%s", diff)
	}
}

func TestLatencyRow(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name      string
		ours, flr runs
		wantMet   bool
		wantRatio string
	}{
		{"within budget", runs{6, 7, 8}, runs{4, 4, 4}, true, "1.75× (1.50…2.00), +3.0 ms (+2.0…+4.0)"},
		{"over budget", runs{12, 13, 14}, runs{4, 4, 4}, false, "3.25× (3.00…3.50), +9.0 ms (+8.0…+10.0)"},
		{"exactly the budget meets it", runs{9}, runs{4}, true, "2.25×, +5.0 ms"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := latencyRow("m", tc.ours, tc.flr, 5, "")
			if r.met != tc.wantMet {
				t.Errorf("met = %v, want %v", r.met, tc.wantMet)
			}
			if r.ratio != tc.wantRatio {
				t.Errorf("ratio = %q, want %q", r.ratio, tc.wantRatio)
			}
			if r.target != "added ≤ 5 ms" {
				t.Errorf("target = %q", r.target)
			}
		})
	}
}

func TestRenderTable(t *testing.T) {
	t.Parallel()
	got := renderTable([]row{
		{metric: "a | b", ours: "1", floor: "2", ratio: "0.50×", target: "≥ 0.9×", met: false},
		{metric: "c", ours: "3\n", target: "t", met: true},
	})
	want := tableHeader +
		"| a \\| b | 1 | 2 | 0.50× | ≥ 0.9× | no |\n" +
		"| c | 3 | – | – | t | yes |\n"
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("table (-want +got):\n%s", diff)
	}
}

func TestMissedText(t *testing.T) {
	t.Parallel()
	sat := saturationWhy(32, runs{200}, runs{180}, runs{90}, runs{100})
	cases := []struct {
		name string
		rows []row
		want string
	}{
		{"all met", []row{{metric: "a", met: true}}, ""},
		{"own why", []row{{metric: "a", met: true}, {metric: "b | c", why: "because"}}, "- **b \\| c**: because\n"},
		{"no why of its own", []row{{metric: "d"}}, "- **d**: " + noWhy + "\n"},
		{"saturation", []row{{metric: "e", why: sat}}, "- **e**: " + sat + "\n"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if diff := cmp.Diff(tc.want, missedText(tc.rows)); diff != "" {
				t.Errorf("missed (-want +got):\n%s", diff)
			}
		})
	}
}

func TestSaturationWhy(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name                           string
		ours, floor, oursTput, flrTput runs
		want                           []string
	}{
		// 180 ms × (100/90 − 1) = 20 ms: all of the added latency.
		{"slower by its throughput", runs{200}, runs{180}, runs{90}, runs{100},
			[]string{"32 events in flight", "latency = 32 / throughput", "at 0.90× the floor's", "accounts for +20.0 ms of added latency, against +20.0 ms measured"}},
		// Run by run, then the median: implied +20, +0, -10 ms.
		{"three runs", runs{200, 100, 90}, runs{180, 100, 100}, runs{90, 50, 110}, runs{100, 50, 100},
			[]string{"at 1.00× (0.90…1.10) the floor's", "accounts for +0.0 ms (-9.1…+20.0) of added latency, against +0.0 ms (-10.0…+20.0) measured"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got := saturationWhy(32, tc.ours, tc.floor, tc.oursTput, tc.flrTput)
			for _, w := range tc.want {
				if !strings.Contains(got, w) {
					t.Errorf("saturationWhy = %q, want it to contain %q", got, w)
				}
			}
		})
	}
}

func TestParseStatus(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name    string
		in      string
		want    memory
		wantErr bool
	}{
		{"all", "Name:\thandler\nVmHWM:\t   51200 kB\nVmRSS:\t   40960 kB\nRssAnon:\t   30000 kB\nRssFile:\t   10960 kB\nThreads:\t9\n",
			memory{rss: 40960 * 1024, peak: 51200 * 1024, anon: 30000 * 1024, file: 10960 * 1024}, false},
		{"without the breakdown", "VmHWM:\t   2 kB\nVmRSS:\t   1 kB\n", memory{rss: 1024, peak: 2048}, false},
		{"missing VmHWM", "VmRSS:\t 1 kB\n", memory{}, true},
		{"bad unit", "VmRSS:\t 1 MB\nVmHWM:\t 1 kB\n", memory{}, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := parseStatus([]byte(tc.in))
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tc.wantErr)
			}
			if err == nil && got != tc.want {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestParseSwitches(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name    string
		in      string
		want    int64
		wantErr bool
	}{
		{"both", "Name:\thandler\nThreads:\t9\nvoluntary_ctxt_switches:\t1200\nnonvoluntary_ctxt_switches:\t34\n", 1234, false},
		{"one missing", "voluntary_ctxt_switches:\t1200\n", 0, true},
		{"not a number", "voluntary_ctxt_switches:\tx\nnonvoluntary_ctxt_switches:\t1\n", 0, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := parseSwitches([]byte(tc.in))
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tc.wantErr)
			}
			if got != tc.want {
				t.Errorf("got %d, want %d", got, tc.want)
			}
		})
	}
}

// TestParseCPU covers both CPU time parsers: a process's
// (/proc/<pid>/stat) and the machine's (/proc/stat).
func TestParseCPU(t *testing.T) {
	t.Parallel()
	machine := func(b []byte) (time.Duration, error) { return parseProcStat(b, "cpu") }
	cpu1 := func(b []byte) (time.Duration, error) { return parseProcStat(b, "cpu1") }
	cases := []struct {
		name    string
		parse   func([]byte) (time.Duration, error)
		in      string
		want    time.Duration
		wantErr bool
	}{
		{"process", parseStat, "42 (handler) S 1 42 42 0 -1 4194560 100 0 0 0 25 7 0 0 20 0 9 0 1000 1 1", 320 * time.Millisecond, false},
		{"process name with spaces and parens", parseStat, "42 (a (b) c) R 1 42 42 0 -1 0 0 0 0 0 3 4 0 0", 70 * time.Millisecond, false},
		{"process short", parseStat, "42 (x) S 1 2", 0, true},
		{"process no name", parseStat, "42 x S", 0, true},
		// user 100 + nice 1 + system 20 + irq 2 + softirq 3 + steal 4; idle and iowait left out.
		{"machine busy time", machine, "cpu  100 1 20 9000 50 2 3 4 0 0\ncpu0 50 0 10 4500 25 1 1 2 0 0\n", 130 * clockTick, false},
		{"one cpu's busy time", cpu1, "cpu  100 1 20 9000 50 2 3 4 0 0\ncpu0 50 0 10 4500 25 1 1 2 0 0\ncpu1 50 1 10 4500 25 1 2 2 0 0\n", 66 * clockTick, false},
		{"cpu10 is not cpu1", cpu1, "cpu  1 2 3 4 5 6 7 8 9\ncpu10 1 2 3 4 5 6 7 8 9\n", 0, true},
		{"machine no cpu line", machine, "cpu0 1 2 3 4 5 6 7 8\n", 0, true},
		{"machine short", machine, "cpu  1 2 3\n", 0, true},
		{"machine bad number", machine, "cpu  1 x 3 4 5 6 7 8 9 10\n", 0, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := tc.parse([]byte(tc.in))
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tc.wantErr)
			}
			if got != tc.want {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
}

func TestRotate(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		rep   int
		kinds int
		want  string
	}{
		{0, 2, "ab"}, {1, 2, "ba"}, {2, 2, "ab"},
		{0, 3, "abc"}, {1, 3, "bca"}, {2, 3, "cab"}, {3, 3, "abc"},
	} {
		var got string
		var runs []func() error
		for i := range tc.kinds {
			runs = append(runs, func() error { got += string(rune('a' + i)); return nil })
		}
		if err := rotate(tc.rep, runs...); err != nil || got != tc.want {
			t.Errorf("rotate(%d, %d runs) ran %q, %v; want %q", tc.rep, tc.kinds, got, err, tc.want)
		}
	}
	// A run that fails ends the rotation.
	var ran []int
	err := rotate(1, func() error { ran = append(ran, 0); return nil }, func() error { ran = append(ran, 1); return errors.New("boom") })
	if err == nil || len(ran) != 1 || ran[0] != 1 {
		t.Errorf("rotate after a failure ran %v, %v; want only run 1 and its error", ran, err)
	}
}

func TestMachineWhy(t *testing.T) {
	t.Parallel()
	run := func(machine, bench, function, apiserver, webhook, etcd time.Duration) snapshot {
		return snapshot{cpu: map[string]time.Duration{"machine": machine, "bench": bench, "function": function,
			planeKey("kube-apiserver"): apiserver, planeKey("tekton-webhook"): webhook, planeKey("etcd"): etcd}, allReqs: 900}
	}
	// 100 events: ours 22 ms of machine CPU per event, 1.5 of them the
	// handler's, 1.0 the bench's, 7.0 the apiserver's, 3.2 the webhook's
	// and 0.6 etcd's; the floor 20 ms, 0.8 of them the bench's, 6.8 the
	// apiserver's, 3.2 the webhook's and 0.7 etcd's. So the control plane
	// spent 0.2 + 0 - 0.1 = 0.1 ms more, and the rest of the machine
	// 2 - 1.5 - 0.2 - 0.1 = 0.2 ms.
	ms := time.Millisecond
	measured := func(busy float64, s snapshot) *series { return &series{busy: runs{busy}, use: []snapshot{s}} }
	o := measured(0.98, run(2200*ms, 100*ms, 150*ms, 700*ms, 320*ms, 60*ms))
	f := measured(0.97, run(2000*ms, 80*ms, 0, 680*ms, 320*ms, 70*ms))
	breakdown := []string{"Of the +2.0 ms the whole machine spent more per event with ours, the handler process spent 1.50 ms, this bench process +0.20 ms more",
		"the control plane's processes +0.10 ms (kube-apiserver +0.20, etcd -0.10)", "and any other process) +0.20 ms.", "served 9.0 requests per event during ours against 9.0"}
	for _, tc := range []struct {
		name string
		o, f *series
		want []string
	}{
		{"shared CPUs, saturated", o, f, append([]string{"CPUs, which the control plane and the clients shared, were 98% busy during ours and 97% during the floor",
			"It spent 22.0 ms of CPU per event with ours against 20.0 ms", "ratio, 0.91×, is the throughput ratio saturated CPUs allow"}, breakdown...)},
		{"shared CPUs, not saturated", measured(0.80, o.use[0]), f, []string{"ratio, 0.91×, would bound the throughput ratio if those CPUs were saturated; they were not"}},
		// Split: the control plane's 10.8 ms against the floor's 10.7 bound
		// the ratio; the machine's CPU does not.
		{"split, saturated", onItsOwn(o, 0.99), onItsOwn(f, 0.96), append([]string{"the 1 of the machine's",
			"CPUs the control plane had to itself (the clients had the others) were 99% busy during ours and 96% during the floor",
			"Its processes spent 10.8 ms of CPU per event with ours against 10.7 ms with the floor, whose ratio, 0.99×, is the throughput ratio saturated CPUs allow"}, breakdown...)},
		{"split, not saturated", onItsOwn(o, 0.70), onItsOwn(f, 0.96), []string{"ratio, 0.99×, would bound the throughput ratio if those CPUs were saturated; they were not"}},
	} {
		got := machineWhy(100, tc.o, tc.f)
		for _, w := range tc.want {
			if !strings.Contains(got, w) {
				t.Errorf("%s: machineWhy = %q, want it to contain %q", tc.name, got, w)
			}
		}
	}
}

// onItsOwn returns s as measured with the control plane on 1 CPU of its own,
// that CPU busy as given.
func onItsOwn(s *series, busy float64) *series {
	c := *s
	c.planeBusy = runs{busy}
	c.use = []snapshot{s.use[0]}
	c.use[0].planeCPUs = 1
	return &c
}

func TestParseInitTrace(t *testing.T) {
	t.Parallel()
	out := strings.Join([]string{
		"init internal/bytealg @0.008 ms, 0 ms clock, 0 bytes, 0 allocs",
		"init k8s.io/client-go/kubernetes/scheme @3.1 ms, 4.5 ms clock, 1000 bytes, 10 allocs",
		`{"level":"info","msg":"started"}`,
		"init github.com/tektoncd/pipeline/pkg/apis/pipeline/v1 @9 ms, 1.25 ms clock, 10 bytes, 1 allocs",
	}, "\n")
	total, n, top := parseInitTrace(out)
	if total != 5.75 || n != 3 {
		t.Errorf("total %v in %d packages, want 5.75 in 3", total, n)
	}
	want := []string{"k8s.io/client-go/kubernetes/scheme 4.50 ms", "github.com/tektoncd/pipeline/pkg/apis/pipeline/v1 1.25 ms", "internal/bytealg 0.00 ms"}
	if diff := cmp.Diff(want, top); diff != "" {
		t.Errorf("top (-want +got):\n%s", diff)
	}
}

func TestParseRequests(t *testing.T) {
	t.Parallel()
	metrics := strings.Join([]string{
		"# TYPE apiserver_request_total counter",
		`apiserver_request_total{code="201",component="apiserver",dry_run="",group="tekton.dev",resource="taskruns",scope="resource",subresource="",verb="POST",version="v1"} 500`,
		`apiserver_request_total{code="409",component="apiserver",dry_run="",group="tekton.dev",resource="taskruns",scope="resource",subresource="",verb="POST",version="v1"} 3`,
		`apiserver_request_total{code="200",component="apiserver",dry_run="",group="tekton.dev",resource="taskruns",scope="resource",subresource="status",verb="PUT",version="v1"} 80`,
		`apiserver_request_total{code="200",component="apiserver",dry_run="",group="",resource="persistentvolumeclaims",scope="namespace",subresource="",verb="LIST",version="v1"} 12`,
		`apiserver_request_total{code="200",component="apiserver",dry_run="",group="tekton.dev",resource="taskruns",scope="resource",subresource="",verb="PATCH",version="v1"} 7`,
		`apiserver_request_total{code="201",component="apiserver",dry_run="",group="",resource="pods",scope="resource",subresource="",verb="POST",version="v1"} 99`,
		`apiserver_request_total{code="200",component="apiserver",dry_run="",group="",resource="pods",scope="resource",subresource="",verb="WATCH",version="v1"} 40`,
	}, "\n")
	want := map[string]float64{"POST taskruns": 503, "LIST persistentvolumeclaims": 12, "PATCH taskruns": 7}
	got, all := parseRequests([]byte(metrics))
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("requests (-want +got):\n%s", diff)
	}
	// Every line but the WATCH: 500 + 3 + 80 + 12 + 7 + 99.
	if all != 701 {
		t.Errorf("all requests = %g, want 701", all)
	}
}

func TestTerminalType(t *testing.T) {
	t.Parallel()
	for typ, want := range map[string]bool{
		"dev.tekton.event.taskrun.successful.v1": true,
		"dev.tekton.event.taskrun.failed.v1":     true,
		"dev.tekton.event.taskrun.running.v1":    false,
		"dev.tekton.event.pipelinerun.failed.v1": false,
	} {
		if got := terminalType(typ); got != want {
			t.Errorf("terminalType(%q) = %v, want %v", typ, got, want)
		}
	}
}

func TestTaskEventsAreDistinctValidJSON(t *testing.T) {
	t.Parallel()
	g, err := newIDs()
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, tk := range g.newTasks(50) {
		if len(tk.id) != 24 || strings.Trim(tk.id, "0123456789abcdef") != "" {
			t.Fatalf("id %q is not 24 hex characters", tk.id)
		}
		if seen[tk.id] {
			t.Fatalf("id %q handed out twice", tk.id)
		}
		seen[tk.id] = true
		if !json.Valid(tk.body) {
			t.Fatalf("event is not JSON: %s", tk.body)
		}
		task, err := contract.DecodeTaskRun(tk.data)
		if err != nil {
			t.Fatal(err)
		}
		if task.ID != tk.id || task.Action() != contract.Execute {
			t.Fatalf("data decodes to id %q action %v, want %q execute", task.ID, task.Action(), tk.id)
		}
	}
}

func TestSenderFailsUnlessAnswered200InTime(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/ok":
			w.WriteHeader(http.StatusOK)
		case "/reject":
			http.Error(w, "bad event", http.StatusBadRequest)
		case "/hang":
			<-release // answers only when the test is over
		}
	}))
	defer srv.Close()
	defer close(release) // before srv.Close, which waits for the handler
	s := newSender(200 * time.Millisecond)
	cases := []struct {
		path         string
		wantErr      bool
		wantAnswered bool
	}{
		{"/ok", false, false},
		{"/reject", true, true},
		{"/hang", true, false},
	}
	var tl tally
	var failed []error
	for _, tc := range cases {
		t.Run(tc.path, func(t *testing.T) {
			err := s.post(context.Background(), srv.URL+tc.path, []byte("{}"))
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tc.wantErr)
			}
			if err == nil {
				return
			}
			failed = append(failed, err)
			if got := answered(err); got != tc.wantAnswered {
				t.Errorf("answered(%v) = %v, want %v", err, got, tc.wantAnswered)
			}
			if tc.path == "/hang" && !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("err = %v, want a deadline", err)
			}
		})
	}
	tl.add(len(cases), failed)
	if tl.sent != 3 || tl.unanswered != 1 || tl.rejected != 1 || tl.failed() != 2 || tl.first != failed[0] {
		t.Errorf("tally = %+v", tl)
	}
}

func TestDrive(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name       string
		n, conc    int
		fail       func(i int) bool
		wantOK     int
		wantFailed int
		wantErr    bool
	}{
		{"all succeed", 50, 8, func(int) bool { return false }, 50, 0, false},
		{"failures are counted and the run goes on", 50, 8, func(i int) bool { return i%10 == 3 }, 45, 5, false},
		{"one short of the limit", 50, 1, func(i int) bool { return i < maxFailed-1 }, 50 - maxFailed + 1, maxFailed - 1, false},
		{"the limit ends the run", 50, 4, func(int) bool { return true }, 0, 0, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c, err := drive(context.Background(), tc.n, tc.conc, func(_ context.Context, i int) error {
				if tc.fail(i) {
					return fmt.Errorf("event %d", i)
				}
				return nil
			})
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tc.wantErr)
			}
			if err != nil {
				return
			}
			if len(c.lat) != tc.wantOK || len(c.failed) != tc.wantFailed {
				t.Errorf("%d succeeded and %d failed, want %d and %d", len(c.lat), len(c.failed), tc.wantOK, tc.wantFailed)
			}
			if c.wall <= 0 {
				t.Errorf("wall = %v", c.wall)
			}
		})
	}
}

func TestTogetherReturnsEveryFailure(t *testing.T) {
	t.Parallel()
	errs := together(context.Background(), 32, func(_ context.Context, j int) error {
		if j%8 == 0 {
			return fmt.Errorf("copy %d", j)
		}
		return nil
	})
	if len(errs) != 4 {
		t.Errorf("got %d failures (%v), want 4", len(errs), errs)
	}
}

func TestParseBenchLine(t *testing.T) {
	t.Parallel()
	tests := []struct {
		line, name string
		ns, allocs float64
		ok         bool
	}{
		{"BenchmarkDecodeBuild/script-2         	   35002	     40571 ns/op	  34.19 MB/s	   16054 B/op	     154 allocs/op", "script", 40571, 154, true},
		{"BenchmarkDecodeBuild/custom-12 	 100	 28280 ns/op	 7681 B/op	 84 allocs/op", "custom", 28280, 84, true},
		{"BenchmarkOutcomeDecode/decode-2 	 9565	 110820 ns/op	 16921 B/op	 189 allocs/op", "", 0, 0, false},
		{"BenchmarkDecodeBuild/script-2 	 100	 40571 ns/op", "", 0, 0, false},
		{"PASS", "", 0, 0, false},
	}
	for _, tc := range tests {
		name, ns, allocs, ok := parseBenchLine(tc.line, "BenchmarkDecodeBuild/")
		if ok != tc.ok || ok && (name != tc.name || ns != tc.ns || allocs != tc.allocs) {
			t.Errorf("parseBenchLine(%q) = %q, %g, %g, %v; want %q, %g, %g, %v", tc.line, name, ns, allocs, ok, tc.name, tc.ns, tc.allocs, tc.ok)
		}
	}
}

func TestPprofTop(t *testing.T) {
	t.Parallel()
	out := "File: bench\nType: cpu\nShowing nodes accounting for 3.78s, 82.53% of 4.58s total\n      flat  flat%   sum%        cum   cum%\n     0.26s  5.68%  5.68%      0.57s 12.45%  encoding/json.checkValid\n     0.18s  3.93%  9.61%      0.50s 10.92%  regexp.(*Regexp).tryBacktrack\n         0     0%  9.61%      0.10s  2.00%  k.createOrAdopt[go.shape.struct { X int },go.shape.*T]\n         0     0%  9.61%      0.10s  2.00%  k.resource[go.shape.struct { Y []int },go.shape.*T].Create\n"
	want := "flat  flat%   sum%        cum   cum%\n0.26s  5.68%  5.68%      0.57s 12.45%  encoding/json.checkValid\n0.18s  3.93%  9.61%      0.50s 10.92%  regexp.(*Regexp).tryBacktrack\n0     0%  9.61%      0.10s  2.00%  k.createOrAdopt[…]\n0     0%  9.61%      0.10s  2.00%  k.resource[…].Create\n"
	if got := pprofTop(out); got != want {
		t.Errorf("pprofTop =\n%s\nwant\n%s", got, want)
	}
}

func TestSplitCPUs(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		cpus           []int
		plane, clients []int
		ok             bool
	}{
		{[]int{0}, nil, nil, false},
		{[]int{0, 1}, []int{0}, []int{1}, true},
		{[]int{0, 1, 2}, []int{0, 1}, []int{2}, true},
		{[]int{2, 3, 5, 7}, []int{2, 3}, []int{5, 7}, true},
	} {
		plane, clients, ok := splitCPUs(tc.cpus)
		if !slices.Equal(plane, tc.plane) || !slices.Equal(clients, tc.clients) || ok != tc.ok {
			t.Errorf("splitCPUs(%v) = %v, %v, %v; want %v, %v, %v", tc.cpus, plane, clients, ok, tc.plane, tc.clients, tc.ok)
		}
	}
}

// TestPin pins every thread of a running Go program (this test binary,
// started again to wait) to one CPU and back, as split does to the
// control plane's processes, and reads the result back from /proc.
func TestPin(t *testing.T) {
	t.Parallel()
	cmd := exec.Command(os.Args[0], "-test.run=^TestPinWaiter$")
	cmd.Env = append(os.Environ(), "BENCH_PIN_WAITER=1")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = stdin.Close(); _ = cmd.Wait() })
	// Its runtime has started its threads once its test runs.
	if line, err := bufio.NewReader(stdout).ReadString('\n'); err != nil || line != "waiting\n" {
		t.Fatalf("the waiter said %q, %v", line, err)
	}
	all, err := allowedCPUs()
	if err != nil {
		t.Fatal(err)
	}
	// allowed returns each thread's Cpus_allowed_list.
	allowed := func() []string {
		dir := fmt.Sprintf("/proc/%d/task", cmd.Process.Pid)
		tasks, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, task := range tasks {
			b, err := os.ReadFile(filepath.Join(dir, task.Name(), "status"))
			if err != nil {
				continue // exited
			}
			for line := range strings.Lines(string(b)) {
				if v, ok := strings.CutPrefix(line, "Cpus_allowed_list:"); ok {
					out = append(out, strings.TrimSpace(v))
				}
			}
		}
		return out
	}
	last := strconv.Itoa(all[len(all)-1])
	if err := pin(cmd.Process.Pid, all[len(all)-1:]); err != nil {
		t.Fatal(err)
	}
	got := allowed()
	if len(got) < 2 || slices.ContainsFunc(got, func(s string) bool { return s != last }) {
		t.Errorf("pinned to CPU %s: the threads' Cpus_allowed_list are %q, want two or more, every one %q", last, got, last)
	}
	if err := pin(cmd.Process.Pid, all); err != nil {
		t.Fatal(err)
	}
	if got := allowed(); len(all) > 1 && slices.Contains(got, last) {
		t.Errorf("pinned back to CPUs %v: the threads' Cpus_allowed_list are %q", all, got)
	}
}

// TestPinWaiter is TestPin's process to pin: it waits until its stdin
// closes.
func TestPinWaiter(t *testing.T) {
	if os.Getenv("BENCH_PIN_WAITER") != "1" {
		t.Skip("TestPin starts it")
	}
	fmt.Println("waiting")
	_, _ = io.Copy(io.Discard, os.Stdin)
}

func TestDoneBy(t *testing.T) {
	t.Parallel()
	ms := time.Millisecond
	c := calls{ends: []time.Duration{5 * ms, 10 * ms, 10 * ms, 30 * ms}}
	for _, tc := range []struct {
		by   time.Duration
		want int
	}{{0, 0}, {5 * ms, 1}, {9 * ms, 1}, {10 * ms, 3}, {time.Second, 4}} {
		if got := c.doneBy(tc.by); got != tc.want {
			t.Errorf("doneBy(%v) = %d, want %d", tc.by, got, tc.want)
		}
	}
}
