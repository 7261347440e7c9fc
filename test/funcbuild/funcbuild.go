// Package funcbuild builds the function the way func's Go host builder
// does (knative/func at knative-v1.23.1: pkg/scaffolding/scaffold.go and
// pkg/oci/go_builder.go). It writes func's instanced-http scaffolding under
// .func/build (scaffolding/, copied from func's templates/go/scaffolding):
// the template's go.mod with a replace of the function's module by a link
// to the source, the function's go directive when it is newer, and the
// function's requirements the template does not already pin; the
// template's go.sum with the function's appended; a main that serves the
// root package's New(). It then runs go build there as func does. If this
// builds, `func build` and `func deploy` build too (func also copies a
// certs/ directory into the build directory, which the build does not
// read).
package funcbuild

import (
	"bytes"
	"context"
	_ "embed"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"

	"golang.org/x/mod/modfile"
	"golang.org/x/mod/semver"
)

// func's scaffolding files (the .txt keeps go from reading them as a
// module or a package of ours).
var (
	//go:embed scaffolding/go.mod.txt
	templateGoMod []byte
	//go:embed scaffolding/go.sum.txt
	templateGoSum []byte
	//go:embed scaffolding/main.go.txt
	templateMain []byte
)

// funcGo is the middleware module func's scaffolding pins.
const funcGo = "knative.dev/func-go"

// GOFLAGS is what `make build` and `make deploy` give func's build (the
// Makefile's FUNC_GOFLAGS, kept equal by a test): func's Go host builder
// runs a bare `go build -o <out>` (pkg/oci/go_builder.go, goBuildCmd) and
// passes it nothing from func.yaml, only its own environment, so GOFLAGS
// there is the one way to set build flags.
//   - -mod=mod: func's scaffolding keeps the versions its template pins
//     (golang.org/x/sys v0.47.0) where the function needs newer ones (our
//     Kubernetes dependencies need v0.49.0), and go build refuses that
//     go.mod ("updates to go.mod needed") unless it may raise them.
//   - -ldflags=-s leaves out the symbol table and DWARF (-s implies -w):
//     a third of the binary, which nothing reads in production (panics and
//     pprof use the pclntab, which stays).
const GOFLAGS = "-mod=mod -trimpath -ldflags=-s"

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
	if mod.Module == nil {
		return "", fmt.Errorf("go.mod has no module line")
	}
	if !requires(mod, funcGo) {
		return "", fmt.Errorf("go.mod does not require %s", funcGo)
	}
	path := mod.Module.Mod.Path
	dir := filepath.Join(src, ".func", "build")
	if err := os.RemoveAll(dir); err != nil {
		return "", err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	formatted, err := patchGoMod(path, mod)
	if err != nil {
		return "", err
	}
	sum, err := os.ReadFile(filepath.Join(src, "go.sum"))
	if err != nil {
		return "", fmt.Errorf("read go.sum: %w", err)
	}
	main := bytes.ReplaceAll(templateMain, []byte("function"), []byte(path))
	for name, data := range map[string][]byte{"go.mod": formatted, "go.sum": append(templateGoSum[:len(templateGoSum):len(templateGoSum)], sum...), "main.go": main} {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			return "", err
		}
	}
	// f links back to the source, as func's scaffolding does.
	if err := os.Symlink(filepath.Join("..", ".."), filepath.Join(dir, "f")); err != nil {
		return "", err
	}
	return dir, nil
}

// requires reports whether mod requires path.
func requires(mod *modfile.File, path string) bool {
	for _, r := range mod.Require {
		if r.Mod.Path == path {
			return true
		}
	}
	return false
}

// patchGoMod is func's patchGoMod: the template's go.mod with the function's
// go directive when newer, module path replaced by ./f, and the function's
// requirements the template does not already have.
func patchGoMod(path string, fn *modfile.File) ([]byte, error) {
	f, err := modfile.Parse("go.mod", templateGoMod, nil)
	if err != nil {
		return nil, fmt.Errorf("parse func's scaffolding go.mod: %w", err)
	}
	if fn.Go != nil && fn.Go.Version != "" && (f.Go == nil || semver.Compare("v"+fn.Go.Version, "v"+f.Go.Version) > 0) {
		if err := f.AddGoStmt(fn.Go.Version); err != nil {
			return nil, err
		}
	}
	if err := f.DropReplace("function", ""); err != nil {
		return nil, err
	}
	if err := f.AddReplace(path, "", "./f", ""); err != nil {
		return nil, err
	}
	if err := f.DropRequire("function"); err != nil {
		return nil, err
	}
	if err := f.AddRequire(path, "v0.0.0-00010101000000-000000000000"); err != nil {
		return nil, err
	}
	existing := map[string]bool{}
	for _, r := range f.Require {
		existing[r.Mod.Path] = true
	}
	for _, r := range fn.Require {
		if !existing[r.Mod.Path] {
			if err := f.AddRequire(r.Mod.Path, r.Mod.Version); err != nil {
				return nil, err
			}
		}
	}
	return f.Format()
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
	cmd := exec.CommandContext(ctx, "go", "build", "-o", out)
	cmd.Dir = dir
	cmd.Env = buildEnv(os.Environ())
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("go build in %s: %w\n%s", dir, err, stderr.String())
	}
	return nil
}

// buildEnv is func's build environment (goBuildEnvs): CGO_ENABLED=0, GOOS
// and GOARCH pegged first, then the caller's environ without them, here
// with GOFLAGS as make sets it for func.
func buildEnv(environ []string) []string {
	env := []string{"CGO_ENABLED=0", "GOOS=" + runtime.GOOS, "GOARCH=" + runtime.GOARCH, "GOFLAGS=" + GOFLAGS}
	for _, kv := range environ {
		name, _, _ := strings.Cut(kv, "=")
		switch name {
		case "CGO_ENABLED", "GOOS", "GOARCH", "GOFLAGS":
		default:
			env = append(env, kv)
		}
	}
	return env
}
