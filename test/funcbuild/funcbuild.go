// Package funcbuild builds the function the way func's Go host builder does:
// it writes scaffolding under .func/build with a generated main that imports
// the module's root package through a replace directive pointing at a link
// to the source, merges the module's requirements and go.sum, and runs go
// build there. If this builds, `func build` and `func deploy` build too.
package funcbuild

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"

	"golang.org/x/mod/modfile"
)

// funcGo is the middleware module func's scaffolding pins.
const funcGo = "knative.dev/func-go"

// mainGo is func's instanced-http scaffolding main, with the root package
// imported by module path.
const mainGo = `package main

import (
	"fmt"
	"os"

	"knative.dev/func-go/http"

	f %q
)

func main() {
	if err := http.Start(f.New()); err != nil {
		fmt.Fprintln(os.Stderr, err.Error())
		os.Exit(1)
	}
}
`

// Scaffold writes the build directory for the function whose source (go.mod
// and root package) is in src, and returns its path.
func Scaffold(src string) (string, error) {
	src, err := filepath.Abs(src)
	if err != nil {
		return "", err
	}
	gomod, err := os.ReadFile(filepath.Join(src, "go.mod"))
	if err != nil {
		return "", fmt.Errorf("read go.mod: %w", err)
	}
	mod, err := modfile.Parse("go.mod", gomod, nil)
	if err != nil {
		return "", fmt.Errorf("parse go.mod: %w", err)
	}
	path := mod.Module.Mod.Path
	dir := filepath.Join(src, ".func", "build")
	if err := os.RemoveAll(dir); err != nil {
		return "", err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	// f links back to the source, as func's scaffolding does.
	if err := os.Symlink(filepath.Join("..", ".."), filepath.Join(dir, "f")); err != nil {
		return "", err
	}

	out := new(modfile.File)
	if err := out.AddModuleStmt("s"); err != nil {
		return "", err
	}
	if err := out.AddGoStmt(mod.Go.Version); err != nil {
		return "", err
	}
	// The toolchain line too, so that the function is built with the Go
	// release the source asks for (its standard library fixes).
	if mod.Toolchain != nil {
		if err := out.AddToolchainStmt(mod.Toolchain.Name); err != nil {
			return "", err
		}
	}
	if err := out.AddRequire(path, "v0.0.0-00010101000000-000000000000"); err != nil {
		return "", err
	}
	if err := out.AddReplace(path, "", "./f", ""); err != nil {
		return "", err
	}
	hasFuncGo := false
	for _, r := range mod.Require {
		hasFuncGo = hasFuncGo || r.Mod.Path == funcGo
		out.AddNewRequire(r.Mod.Path, r.Mod.Version, r.Indirect)
	}
	if !hasFuncGo {
		return "", fmt.Errorf("go.mod does not require %s", funcGo)
	}
	out.Cleanup()
	formatted, err := out.Format()
	if err != nil {
		return "", err
	}
	if err := os.WriteFile(filepath.Join(dir, "go.mod"), formatted, 0o644); err != nil {
		return "", err
	}
	sum, err := os.ReadFile(filepath.Join(src, "go.sum"))
	if err != nil {
		return "", fmt.Errorf("read go.sum: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "go.sum"), sum, 0o644); err != nil {
		return "", err
	}
	if err := os.WriteFile(filepath.Join(dir, "main.go"), fmt.Appendf(nil, mainGo, path), 0o644); err != nil {
		return "", err
	}
	return dir, nil
}

// Build scaffolds src and builds the function binary to out.
func Build(ctx context.Context, src, out string) error {
	dir, err := Scaffold(src)
	if err != nil {
		return fmt.Errorf("scaffold: %w", err)
	}
	out, err = filepath.Abs(out)
	if err != nil {
		return err
	}
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-o", out, ".")
	cmd.Dir = dir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("go build in %s: %w\n%s", dir, err, stderr.String())
	}
	return nil
}
