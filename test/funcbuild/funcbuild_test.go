package funcbuild

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/mod/modfile"
)

// Scaffold writes what func's Go host builder writes: a main importing the
// root package by module path, a go.mod replacing that module with the
// linked source and carrying its requirements, and the source's go.sum.
func TestScaffold(t *testing.T) {
	src := t.TempDir()
	gomod := "module example.com/fn\n\ngo 1.26.4\n\ntoolchain go1.26.11\n\nrequire (\n\tknative.dev/func-go v0.22.0\n\tgithub.com/google/uuid v1.6.0 // indirect\n)\n"
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
	if mod.Go == nil || mod.Go.Version != "1.26.4" || mod.Toolchain == nil || mod.Toolchain.Name != "go1.26.11" {
		t.Errorf("go.mod go/toolchain lines %+v %+v, want the source's 1.26.4 and go1.26.11", mod.Go, mod.Toolchain)
	}
	reqs := map[string]bool{}
	for _, r := range mod.Require {
		reqs[r.Mod.Path] = true
	}
	for _, want := range []string{"example.com/fn", "knative.dev/func-go", "github.com/google/uuid"} {
		if !reqs[want] {
			t.Errorf("go.mod lacks require %s", want)
		}
	}
	if link, err := os.Readlink(filepath.Join(dir, "f")); err != nil || link != filepath.Join("..", "..") {
		t.Errorf("f links to %q (%v), want the source", link, err)
	}
	if sum, _ := os.ReadFile(filepath.Join(dir, "go.sum")); string(sum) != "sum-lines\n" {
		t.Errorf("go.sum not copied")
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
