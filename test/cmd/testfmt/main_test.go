package main

import (
	"bytes"
	"strings"
	"testing"
)

// A passing test shows its result and its t.Log lines; a failing one shows
// everything it printed, continuation lines included; a package that fails
// outside its tests shows all its output.
func TestFormat(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name       string
		in         string
		want       []string
		notWant    []string
		wantFailed bool
	}{
		{
			name: "pass shows results and logs only",
			in: `{"Action":"run","Package":"p","Test":"TestA"}
{"Action":"output","Package":"p","Test":"TestA","Output":"=== RUN   TestA\n"}
{"Action":"output","Package":"p","Test":"TestA","Output":"    a_test.go:10: counted 3\n"}
{"Action":"output","Package":"p","Test":"TestA","Output":"        a continuation line\n"}
{"Action":"output","Package":"p","Test":"TestA","Output":"--- PASS: TestA (0.01s)\n"}
{"Action":"pass","Package":"p","Test":"TestA"}
{"Action":"output","Package":"p","Output":"cluster: etcd ready\n"}
{"Action":"output","Package":"p","Output":"ok  \tp\t0.02s\n"}
{"Action":"pass","Package":"p"}
`,
			want:    []string{"a_test.go:10: counted 3", "--- PASS: TestA", "ok  \tp"},
			notWant: []string{"=== RUN", "a continuation line", "cluster: etcd ready"},
		},
		{
			name: "fail shows the whole output",
			in: `{"Action":"output","Package":"p","Test":"TestB","Output":"=== RUN   TestB\n"}
{"Action":"output","Package":"p","Test":"TestB","Output":"    b_test.go:20: Engine calls:\n"}
{"Action":"output","Package":"p","Test":"TestB","Output":"        | 1 | taskrun-start |\n"}
{"Action":"output","Package":"p","Test":"TestB","Output":"--- FAIL: TestB (1.00s)\n"}
{"Action":"fail","Package":"p","Test":"TestB"}
{"Action":"output","Package":"p","Output":"FAIL\tp\t1.1s\n"}
{"Action":"fail","Package":"p"}
`,
			want:       []string{"b_test.go:20: Engine calls:", "| 1 | taskrun-start |", "--- FAIL: TestB", "FAIL\tp"},
			notWant:    []string{"=== RUN"},
			wantFailed: true,
		},
		{
			name: "a package that fails outside its tests shows all its output",
			in: `{"Action":"output","Package":"p","Output":"panic: test timed out after 30m0s\n"}
{"Action":"output","Package":"p","Output":"goroutine 1 [running]:\n"}
{"Action":"fail","Package":"p"}
`,
			want:       []string{"panic: test timed out", "goroutine 1 [running]:"},
			wantFailed: true,
		},
		{
			// What go test -json printed for a goroutine's panic in
			// TestPanics: the panic belongs to the test, which never gets
			// a fail event of its own.
			name: "a panic in a running test shows the test's output",
			in: `{"Action":"start","Package":"panicpkg"}
{"Action":"run","Package":"panicpkg","Test":"TestPanics"}
{"Action":"output","Package":"panicpkg","Test":"TestPanics","Output":"=== RUN   TestPanics\n"}
{"Action":"output","Package":"panicpkg","Test":"TestPanics","Output":"    p_test.go:3: before the panic\n"}
{"Action":"output","Package":"panicpkg","Test":"TestPanics","Output":"panic: boom\n"}
{"Action":"output","Package":"panicpkg","Test":"TestPanics","Output":"goroutine 19 [running]:\n"}
{"Action":"output","Package":"panicpkg","Output":"FAIL\tpanicpkg\t0.005s\n"}
{"Action":"fail","Package":"panicpkg","Elapsed":0.006}
`,
			want:       []string{"p_test.go:3: before the panic", "panic: boom", "goroutine 19 [running]:", "FAIL\tpanicpkg"},
			notWant:    []string{"=== RUN"},
			wantFailed: true,
		},
		{
			name: "input that ends early shows what it has and fails",
			in: `{"Action":"output","Package":"p","Test":"TestC","Output":"    c_test.go:5: waiting\n"}
`,
			want:       []string{"c_test.go:5: waiting"},
			wantFailed: true,
		},
		{
			name: "build errors are shown",
			in: `{"ImportPath":"p","Action":"build-output","Output":"p/a.go:3:1: syntax error\n"}
{"ImportPath":"p","Action":"build-fail"}
# a line that is not an event
`,
			want:       []string{"p/a.go:3:1: syntax error", "# a line that is not an event"},
			wantFailed: true,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var out bytes.Buffer
			failed := format(strings.NewReader(tc.in), &out)
			if failed != tc.wantFailed {
				t.Errorf("failed = %v, want %v", failed, tc.wantFailed)
			}
			for _, w := range tc.want {
				if !strings.Contains(out.String(), w) {
					t.Errorf("output lacks %q:\n%s", w, out.String())
				}
			}
			for _, w := range tc.notWant {
				if strings.Contains(out.String(), w) {
					t.Errorf("output has %q:\n%s", w, out.String())
				}
			}
		})
	}
}
