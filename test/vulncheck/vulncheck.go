// Package vulncheck runs govulncheck on Go code with the Go vulnerability
// database built locally from the golang.org/x/vulndb module.
//
// govulncheck reads its database from https://vuln.go.dev by default; where
// only the Go module proxy is reachable (this project's machines and CI), the
// same reports come from the vulndb module itself: its data/osv directory
// holds every entry, and its cmd/indexdb writes the v1 database layout that
// govulncheck reads with -db file://. The database is built once per vulndb
// version and cached under ${XDG_CACHE_HOME:-~/.cache}/flow-tekton-handler.
package vulncheck

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/boomerang-io/flow-tekton-handler/test/cache"
)

// Versions of the scanner and of the database it reads. DatabaseVersion is
// a golang.org/x/vulndb module version; "latest" asks the module proxy for
// its newest snapshot (`make vulncheck VULNDB=latest`). Pinning keeps a
// clean build clean until the pin is moved on purpose; move it with the
// version `make vulncheck VULNDB=latest` prints.
const (
	GovulncheckVersion = "v1.9.0"
	DatabaseVersion    = "v0.0.0-20261105234957-e22db6528018"
	databaseModule     = "golang.org/x/vulndb"
)

// Database returns the directory of a govulncheck database (v1 layout) built
// from golang.org/x/vulndb@version, and the module version it resolved to.
// Concurrent callers, processes too, build it once.
func Database(ctx context.Context, version string, progress io.Writer) (dir, resolved string, err error) {
	if progress == nil {
		progress = io.Discard
	}
	out, err := goCmd(ctx, os.TempDir(), "mod", "download", "-json", databaseModule+"@"+version)
	if err != nil {
		return "", "", err
	}
	var mod struct{ Version, Dir, Error string }
	if err := json.Unmarshal(out, &mod); err != nil {
		return "", "", fmt.Errorf("go mod download %s@%s: %w", databaseModule, version, err)
	}
	if mod.Error != "" || mod.Dir == "" {
		return "", "", fmt.Errorf("go mod download %s@%s: %s", databaseModule, version, mod.Error)
	}
	dir, err = cache.Dir(ctx, "vulndb", mod.Version, progress, func(ctx context.Context, dir string) error {
		fmt.Fprintf(progress, "vulncheck: building the vulnerability database from %s@%s\n", databaseModule, mod.Version)
		start := time.Now()
		if _, err := goCmd(ctx, os.TempDir(), "run", databaseModule+"/cmd/indexdb@"+mod.Version,
			"-vulns", filepath.Join(mod.Dir, "data", "osv"), "-out", dir); err != nil {
			return err
		}
		fmt.Fprintf(progress, "vulncheck: database ready in %s\n", time.Since(start).Round(time.Second))
		return nil
	})
	return dir, mod.Version, err
}

// Level says how far a vulnerability reaches into the scanned code, as
// govulncheck decides it.
type Level int

// Levels, weakest first.
const (
	Required Level = iota // a required module has it; no package of it is imported
	Imported              // an imported package has it; nothing vulnerable is called
	Called                // the scanned code calls a vulnerable function
)

func (l Level) String() string {
	return [...]string{"required", "imported", "called"}[l]
}

// Finding is one vulnerability found by a scan.
type Finding struct {
	ID      string
	Summary string
	Level   Level
	// Module and Version name where it was found ("stdlib" for Go itself);
	// Fixed is the first version without it, empty when there is none.
	Module, Version, Fixed string
	// Trace is one call path for a Called finding, from the scanned code to
	// the vulnerable function.
	Trace string
}

// Report is what a scan found.
type Report struct {
	Scanner   string // govulncheck version
	GoVersion string // the Go version the standard library was checked at
	Findings  []Finding
}

// Scan runs govulncheck with the database in db on the packages matched by
// patterns in the module at dir.
func Scan(ctx context.Context, db, dir string, patterns ...string) (Report, error) {
	abs, err := filepath.Abs(db)
	if err != nil {
		return Report{}, err
	}
	args := append([]string{"run", "golang.org/x/vuln/cmd/govulncheck@" + GovulncheckVersion,
		"-db", "file://" + abs, "-format", "json"}, patterns...)
	out, err := goCmd(ctx, dir, args...)
	if err != nil {
		return Report{}, err
	}
	return Parse(bytes.NewReader(out))
}

// message is one value of govulncheck's JSON stream (its protocol v1.0.0).
type message struct {
	Config *struct {
		ScannerVersion string `json:"scanner_version"`
		GoVersion      string `json:"go_version"`
	} `json:"config"`
	OSV *struct {
		ID      string `json:"id"`
		Summary string `json:"summary"`
	} `json:"osv"`
	Finding *struct {
		OSV          string  `json:"osv"`
		FixedVersion string  `json:"fixed_version"`
		Trace        []frame `json:"trace"`
	} `json:"finding"`
}

// frame is one step of a finding's trace; the first is the vulnerable one.
type frame struct {
	Module   string `json:"module"`
	Version  string `json:"version"`
	Package  string `json:"package"`
	Receiver string `json:"receiver"`
	Function string `json:"function"`
	Position *struct {
		Filename string `json:"filename"`
		Line     int    `json:"line"`
	} `json:"position"`
}

func (f frame) String() string {
	s := f.Package + "." + f.Function
	if f.Receiver != "" {
		s = f.Package + "." + strings.TrimPrefix(f.Receiver, "*") + "." + f.Function
	}
	if f.Position != nil {
		s += fmt.Sprintf(" (%s:%d)", f.Position.Filename, f.Position.Line)
	}
	return s
}

// Parse reads govulncheck's JSON output: one finding per vulnerability, at
// the deepest level any of its findings reached.
func Parse(r io.Reader) (Report, error) {
	var rep Report
	summaries := map[string]string{}
	byID := map[string]*Finding{}
	dec := json.NewDecoder(r)
	for {
		var m message
		if err := dec.Decode(&m); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			return Report{}, fmt.Errorf("govulncheck output: %w", err)
		}
		switch {
		case m.Config != nil:
			rep.Scanner, rep.GoVersion = m.Config.ScannerVersion, m.Config.GoVersion
		case m.OSV != nil:
			summaries[m.OSV.ID] = m.OSV.Summary
		case m.Finding != nil && len(m.Finding.Trace) > 0:
			t := m.Finding.Trace
			level := Required
			switch {
			case t[0].Function != "":
				level = Called
			case t[0].Package != "":
				level = Imported
			}
			f := byID[m.Finding.OSV]
			if f == nil {
				f = &Finding{ID: m.Finding.OSV, Module: t[0].Module, Version: t[0].Version, Fixed: m.Finding.FixedVersion, Level: -1}
				byID[f.ID] = f
			}
			if level > f.Level {
				f.Level = level
				if level == Called {
					steps := make([]string, len(t))
					for i := range t {
						steps[len(t)-1-i] = t[i].String()
					}
					f.Trace = strings.Join(steps, " → ")
				}
			}
		}
	}
	for _, f := range byID {
		f.Summary = summaries[f.ID]
		rep.Findings = append(rep.Findings, *f)
	}
	sort.Slice(rep.Findings, func(i, j int) bool {
		a, b := rep.Findings[i], rep.Findings[j]
		if a.Level != b.Level {
			return a.Level > b.Level
		}
		return a.ID < b.ID
	})
	if rep.Scanner == "" {
		return Report{}, errors.New("govulncheck output: no config message (not govulncheck's JSON?)")
	}
	return rep, nil
}

// Check fails a report when the scanned code calls a vulnerability that is
// not in accepted (ID → why it does not apply), or when an accepted one is
// no longer found at all: exceptions must not outlive their reason.
func Check(rep Report, accepted map[string]string) error {
	var problems []string
	found := map[string]bool{}
	for _, f := range rep.Findings {
		found[f.ID] = true
		if f.Level != Called || accepted[f.ID] != "" {
			continue
		}
		fix := "no fixed version"
		if f.Fixed != "" {
			fix = "fixed in " + f.Fixed
		}
		problems = append(problems, fmt.Sprintf("%s (%s): %s@%s, %s; called: %s",
			f.ID, f.Summary, f.Module, f.Version, fix, f.Trace))
	}
	var stale []string
	for id := range accepted {
		if !found[id] {
			stale = append(stale, id)
		}
	}
	sort.Strings(stale)
	for _, id := range stale {
		problems = append(problems, fmt.Sprintf("%s is accepted but no longer found: remove it from the accepted list", id))
	}
	if len(problems) > 0 {
		return fmt.Errorf("%d vulnerability problem(s):\n  %s", len(problems), strings.Join(problems, "\n  "))
	}
	return nil
}

// goCmd runs the go command outside any workspace and returns its stdout.
func goCmd(ctx context.Context, dir string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOWORK=off", "GOFLAGS=")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("go %s: %w: %s", strings.Join(args, " "), err, bytes.TrimSpace(stderr.Bytes()))
	}
	return out, nil
}
