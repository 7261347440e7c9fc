package funcbuild

import (
	"github.com/google/go-cmp/cmp"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"golang.org/x/mod/modfile"
)

// Scaffold writes what func's Go host builder writes: a main importing the
// root package by module path, a go.mod replacing that module with the
// linked source and carrying its requirements, and the source's go.sum.
func TestScaffold(t *testing.T) {
	src := t.TempDir()
	gomod := "module example.com/fn\n\ngo 1.26.4\n\ntoolchain go1.26.11\n\nrequire (\n\tknative.dev/func-go v0.22.0\n\tgolang.org/x/sys v0.49.0\n\tgithub.com/google/uuid v1.6.0 // indirect\n)\n"
	if err := os.WriteFile(filepath.Join(src, "go.mod"), []byte(gomod), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(src, "go.sum"), []byte("sum-lines\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	dir, err := Scaffold(src)
	if err != nil {
		t.Fatal(err)
	}
	main, _ := os.ReadFile(filepath.Join(dir, "main.go"))
	if !strings.Contains(string(main), `f "example.com/fn"`) || !strings.Contains(string(main), `"knative.dev/func-go/http"`) || !strings.Contains(string(main), "http.Start(f.New())") {
		t.Errorf("main.go does not serve the root package's New():\n%s", main)
	}
	b, _ := os.ReadFile(filepath.Join(dir, "go.mod"))
	mod, err := modfile.Parse("go.mod", b, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(mod.Replace) != 1 || mod.Replace[0].Old.Path != "example.com/fn" || mod.Replace[0].New.Path != "./f" {
		t.Errorf("replace %+v, want example.com/fn => ./f", mod.Replace)
	}
	// func takes the source's go line when it is newer than the template's,
	// never its toolchain line.
	if mod.Go == nil || mod.Go.Version != "1.26.4" || mod.Toolchain != nil {
		t.Errorf("go.mod go/toolchain lines %+v %+v, want the source's go 1.26.4 and no toolchain", mod.Go, mod.Toolchain)
	}
	// The template's pins win over the source's requirements of the same
	// modules; the source's others are added.
	reqs := map[string]string{}
	for _, r := range mod.Require {
		reqs[r.Mod.Path] = r.Mod.Version
	}
	want := map[string]string{"example.com/fn": "v0.0.0-00010101000000-000000000000", "knative.dev/func-go": "v0.22.0",
		"github.com/google/uuid": "v1.6.0", "golang.org/x/sys": "v0.47.0", "github.com/rs/zerolog": "v1.35.1",
		"github.com/mattn/go-colorable": "v0.1.15", "github.com/mattn/go-isatty": "v0.0.23"}
	if diff := cmp.Diff(want, reqs); diff != "" {
		t.Errorf("go.mod requires (-want +got):\n%s", diff)
	}
	if link, err := os.Readlink(filepath.Join(dir, "f")); err != nil || link != filepath.Join("..", "..") {
		t.Errorf("f links to %q (%v), want the source", link, err)
	}
	if sum, _ := os.ReadFile(filepath.Join(dir, "go.sum")); string(sum) != string(templateGoSum)+"sum-lines\n" {
		t.Errorf("go.sum is not the template's with the source's appended:\n%s", sum)
	}
}

func TestScaffoldNeedsFuncGo(t *testing.T) {
	src := t.TempDir()
	_ = os.WriteFile(filepath.Join(src, "go.mod"), []byte("module example.com/fn\n\ngo 1.26\n"), 0o644)
	_ = os.WriteFile(filepath.Join(src, "go.sum"), nil, 0o644)
	if _, err := Scaffold(src); err == nil {
		t.Fatal("a module without func-go scaffolded")
	}
}

// The Makefile gives func's build the same flags Build does.
func TestMakefileGivesFuncTheFlags(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "..", "Makefile"))
	if err != nil {
		t.Fatal(err)
	}
	want := "FUNC_GOFLAGS  := " + GOFLAGS + "\n"
	if !strings.Contains(string(b), want) {
		t.Errorf("Makefile lacks %q", want)
	}
	if !strings.Contains(string(b), "GOFLAGS='$(FUNC_GOFLAGS)' func deploy --path . ") {
		t.Error("make deploy does not give func deploy FUNC_GOFLAGS")
	}
}

// buildEnv pegs what func pegs and sets GOFLAGS, keeping the rest.
func TestBuildEnv(t *testing.T) {
	got := buildEnv([]string{"HOME=/h", "GOFLAGS=-race", "CGO_ENABLED=1", "GOOS=plan9", "GOPROXY=off"})
	want := []string{"CGO_ENABLED=0", "GOOS=" + runtime.GOOS, "GOARCH=" + runtime.GOARCH, "GOFLAGS=" + GOFLAGS, "HOME=/h", "GOPROXY=off"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("buildEnv = %q, want %q", got, want)
	}
}
