// Command testfmt prints `go test -json` the way `make test` shows it: each
// test's result as it ends, with the lines a passing test logs (t.Log), a
// failing test's whole output (multi-line logs, process logs and panics
// included), and each package's result; a package that fails outside its
// tests (a build error, a timeout) shows all its output. It exits 1 when
// anything failed, so a pipeline fails with go test.
//
//	go test -json ./... | go run ./test/cmd/testfmt
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"regexp"
	"strings"
)

// event is one line of `go test -json` (cmd/test2json).
type event struct {
	Action  string
	Package string
	Test    string
	Output  string
}

// passing are the lines of a passing test or package that are shown.
var passing = regexp.MustCompile(`^\s*--- (PASS|SKIP)|_test\.go:[0-9]+:|^(ok|PASS)\b|SKIPPING`)

func main() {
	if failed := format(os.Stdin, os.Stdout); failed {
		os.Exit(1)
	}
}

// format copies r's events to w and reports whether anything failed.
func format(r io.Reader, w io.Writer) (failed bool) {
	out := map[string][]string{} // buffered output by package and test
	var order []string           // the keys of out, first seen first
	show := func(key string, keep func(string) bool) {
		for _, l := range out[key] {
			if keep(l) {
				fmt.Fprint(w, l)
			}
		}
		delete(out, key)
	}
	notRun := func(l string) bool { return !strings.HasPrefix(l, "=== ") }
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	for sc.Scan() {
		line := sc.Text()
		var e event
		if json.Unmarshal([]byte(line), &e) != nil || e.Action == "" {
			fmt.Fprintln(w, line) // not an event: go's own messages
			continue
		}
		key := e.Package + "\x00" + e.Test
		switch e.Action {
		case "output", "build-output":
			if e.Action == "build-output" || e.Package == "" {
				fmt.Fprint(w, e.Output)
				continue
			}
			if _, seen := out[key]; !seen {
				order = append(order, key)
			}
			out[key] = append(out[key], e.Output)
		case "pass", "skip":
			show(key, passing.MatchString)
		case "fail", "build-fail":
			failed = true
			if e.Test == "" {
				// A panic or a timeout ends the package without a fail
				// event for the tests still running: show theirs first.
				for _, k := range order {
					if pkg, _, _ := strings.Cut(k, "\x00"); pkg == e.Package && k != key {
						show(k, notRun)
					}
				}
			}
			show(key, notRun)
		}
	}
	for _, k := range order { // the input ended early
		if len(out[k]) > 0 {
			failed = true
			show(k, notRun)
		}
	}
	if err := sc.Err(); err != nil {
		fmt.Fprintf(w, "testfmt: %v\n", err)
		return true
	}
	return failed
}
