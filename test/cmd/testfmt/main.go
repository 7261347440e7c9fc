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
			out[key] = append(out[key], e.Output)
		case "pass", "skip":
			for _, l := range out[key] {
				if passing.MatchString(l) {
					fmt.Fprint(w, l)
				}
			}
			delete(out, key)
		case "fail", "build-fail":
			failed = true
			for _, l := range out[key] {
				if !strings.HasPrefix(l, "=== ") {
					fmt.Fprint(w, l)
				}
			}
			delete(out, key)
		}
	}
	if err := sc.Err(); err != nil {
		fmt.Fprintf(w, "testfmt: %v\n", err)
		return true
	}
	return failed
}
