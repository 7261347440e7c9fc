//go:build e2e

package vulncheck

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// database builds (or finds) the pinned database; the first build takes
// about two minutes.
func database(t *testing.T) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	db, _, err := Database(ctx, DatabaseVersion, testWriter{t})
	if err != nil {
		t.Fatalf("vulnerability database: %v", err)
	}
	return db
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// TestProject is govulncheck on the whole module: no called vulnerability
// outside Accepted, and every accepted one still found.
func TestProject(t *testing.T) {
	db := database(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	rep, err := Scan(ctx, db, "../..", "./...")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range rep.Findings {
		t.Logf("%s %s %s@%s (fixed %q)", f.Level, f.ID, f.Module, f.Version, f.Fixed)
	}
	if err := Check(rep, Accepted); err != nil {
		t.Fatalf("govulncheck %s, standard library %s: %v", rep.Scanner, rep.GoVersion, err)
	}
}

// TestFindsCalledVulnerability shows the scan can fail: a module calling
// golang.org/x/text/language.Parse at v0.3.5 (GO-2021-0113, fixed in
// v0.3.7) fails Check, naming the call; at v0.3.7 it passes.
func TestFindsCalledVulnerability(t *testing.T) {
	db := database(t)
	for _, tc := range []struct {
		version string
		want    string // in Check's error; empty for none
	}{
		{"v0.3.5", "GO-2021-0113"},
		{"v0.3.7", ""},
	} {
		t.Run(tc.version, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
			defer cancel()
			dir := t.TempDir()
			files := map[string]string{
				"go.mod":  "module example.com/app\n\ngo 1.24\n\nrequire golang.org/x/text " + tc.version + "\n",
				"main.go": "package main\n\nimport \"golang.org/x/text/language\"\n\nfunc main() {\n\t_, _ = language.Parse(\"en\")\n}\n",
			}
			for name, content := range files {
				if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			tidy := exec.CommandContext(ctx, "go", "mod", "tidy")
			tidy.Dir = dir
			tidy.Env = append(os.Environ(), "GOWORK=off", "GOFLAGS=")
			if out, err := tidy.CombinedOutput(); err != nil {
				t.Fatalf("go mod tidy: %v: %s", err, out)
			}
			rep, err := Scan(ctx, db, dir, "./...")
			if err != nil {
				t.Fatal(err)
			}
			err = Check(rep, nil)
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("x/text %s: %v", tc.version, err)
			case tc.want != "" && err == nil:
				t.Fatalf("x/text %s: Check passed; want %s (findings %+v)", tc.version, tc.want, rep.Findings)
			case tc.want != "" && !strings.Contains(err.Error(), tc.want) || tc.want != "" && !strings.Contains(err.Error(), "example.com/app.main"):
				t.Fatalf("x/text %s: error does not name %s called from example.com/app.main: %v", tc.version, tc.want, err)
			}
		})
	}
}
