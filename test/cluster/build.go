package cluster

import (
	"bytes"
	"context"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"golang.org/x/mod/modfile"

	"github.com/boomerang-io/flow-tekton-handler/test/cache"
)

// Programs in a bin directory made by Build.
const (
	binEtcd             = "etcd"
	binAPIServer        = "kube-apiserver"
	binScheduler        = "kube-scheduler"
	binKubectl          = "kubectl"
	binKwok             = "kwok"
	binTektonController = "tekton-controller"
	binTektonEvents     = "tekton-events"
	binTektonWebhook    = "tekton-webhook"
)

// buildRevision names the build recipe; bump it when the recipe changes in a
// way the versions do not show.
const buildRevision = "r1"

// mainsFS holds the sources of our three Tekton programs. They are text files
// so that the repository's `go build ./...` does not compile them (they need
// a module that requires Tekton's full dependency tree).
//
//go:embed mains/*.go.txt
var mainsFS embed.FS

// kwokStages are kwok's own stages, as paths inside the kwok module, that
// the cluster uses besides stages/pod-complete.yaml.
var kwokStages = []string{
	"kustomize/stage/node/fast/node-initialize.yaml",
	"kustomize/stage/node/heartbeat/node-heartbeat.yaml",
	"kustomize/stage/pod/fast/pod-ready.yaml",
	"kustomize/stage/pod/fast/pod-delete.yaml",
}

// Directories under a bin directory with the files Start needs besides the
// programs: kwok stages and Tekton's config/ (namespace, CRDs, ConfigMaps).
const (
	shareKwok   = "share/kwok"
	shareTekton = "share/tekton"
)

// Build builds the control plane programs once per machine and returns the
// directory holding them. The directory is
// ${XDG_CACHE_HOME:-$HOME/.cache}/flow-tekton-handler/controlplane/<key>,
// where the key names every version, the Go version and a hash of our Tekton
// programs' sources. Concurrent callers (processes too) wait on a file lock
// and build once. A cold build takes 20-25 minutes on 2 cores; with a warm Go
// build cache it mostly relinks. Progress lines go to progress (may be nil).
func Build(ctx context.Context, progress io.Writer) (string, error) {
	if progress == nil {
		progress = io.Discard
	}
	goVersion, err := goOutput(ctx, "", "env", "GOVERSION")
	if err != nil {
		return "", fmt.Errorf("build control plane: %w", err)
	}
	key, err := cacheKey(strings.TrimSpace(goVersion), mainsFS)
	if err != nil {
		return "", fmt.Errorf("build control plane: %w", err)
	}
	dir, err := cache.Dir(ctx, "controlplane", key, progress, func(ctx context.Context, dir string) error {
		return build(ctx, dir, progress)
	})
	if err != nil {
		return "", fmt.Errorf("build control plane: %w", err)
	}
	return dir, nil
}

// cacheKey names a build: versions, the build recipe, the Go version and a
// hash of the Tekton programs' sources.
func cacheKey(goVersion string, mains fs.FS) (string, error) {
	if goVersion == "" {
		return "", errors.New("empty Go version")
	}
	names, err := fs.Glob(mains, "mains/*")
	if err != nil {
		return "", err
	}
	sort.Strings(names)
	h := sha256.New()
	for _, n := range names {
		b, err := fs.ReadFile(mains, n)
		if err != nil {
			return "", err
		}
		fmt.Fprintf(h, "%s\x00%d\x00", n, len(b))
		h.Write(b)
	}
	return fmt.Sprintf("k8s-%s.etcd-%s.kwok-%s.tekton-%s.%s.%s.%s",
		kubernetesVersion, etcdVersion, kwokVersion, tektonVersion, goVersion, buildRevision,
		hex.EncodeToString(h.Sum(nil))[:12]), nil
}

// build builds every program into dir, which is empty.
func build(ctx context.Context, dir string, progress io.Writer) error {
	work, err := os.MkdirTemp("", "cluster-build-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)

	start := time.Now()
	fmt.Fprintf(progress, "cluster build: building the control plane into %s (the first build takes 20-25 minutes; later ones reuse the Go build cache)\n", dir)
	steps := []struct {
		name string
		run  func(context.Context, string, string) error
	}{
		{"etcd", buildEtcd},
		{"kube-apiserver, kube-scheduler, kubectl", buildKubernetes},
		{"kwok", buildKwok},
		{"tekton-controller, tekton-events, tekton-webhook", buildTekton},
	}
	for _, s := range steps {
		t := time.Now()
		fmt.Fprintf(progress, "cluster build: %s ...\n", s.name)
		stepDir := filepath.Join(work, strings.Trim(strings.Fields(s.name)[0], ","))
		if err := os.MkdirAll(stepDir, 0o755); err != nil {
			return err
		}
		if err := s.run(ctx, stepDir, dir); err != nil {
			return fmt.Errorf("%s: %w", s.name, err)
		}
		fmt.Fprintf(progress, "cluster build: %s done in %s (total %s)\n", s.name, since(t), since(start))
	}
	for _, b := range []string{binEtcd, binAPIServer, binScheduler, binKubectl, binKwok, binTektonController, binTektonEvents, binTektonWebhook} {
		if _, err := os.Stat(filepath.Join(dir, b)); err != nil {
			return fmt.Errorf("missing program: %w", err)
		}
	}
	fmt.Fprintf(progress, "cluster build: done in %s\n", since(start))
	return nil
}

// buildEtcd builds etcd. go.etcd.io/etcd/server/v3 has replace directives,
// so `go install ...@version` refuses it; a throwaway module requires it.
func buildEtcd(ctx context.Context, work, bin string) error {
	gomod := fmt.Sprintf("module local/etcdbuild\n\ngo %s\n\nrequire go.etcd.io/etcd/server/v3 %s\n", etcdGoLine, etcdVersion)
	tools := toolsGo("go.etcd.io/etcd/server/v3")
	if err := writeModule(ctx, work, gomod, map[string]string{"tools.go": tools}); err != nil {
		return err
	}
	_, err := goOutput(ctx, work, "build", "-trimpath", "-o", filepath.Join(bin, binEtcd), "go.etcd.io/etcd/server/v3")
	return err
}

// buildKubernetes builds kube-apiserver, kube-scheduler and kubectl from a
// module that pins every staging module k8s.io/kubernetes requires at v0.0.0.
func buildKubernetes(ctx context.Context, work, bin string) error {
	info, err := download(ctx, work, "k8s.io/kubernetes@"+kubernetesVersion)
	if err != nil {
		return err
	}
	upstream, err := os.ReadFile(info.GoMod)
	if err != nil {
		return err
	}
	gomod, err := kubernetesGoMod(upstream)
	if err != nil {
		return err
	}
	cmds := []string{binAPIServer, binScheduler, binKubectl}
	var pkgs []string
	for _, c := range cmds {
		pkgs = append(pkgs, "k8s.io/kubernetes/cmd/"+c)
	}
	if err := writeModule(ctx, work, gomod, map[string]string{"tools.go": toolsGo(pkgs...)}); err != nil {
		return err
	}
	for i, c := range cmds {
		if _, err := goOutput(ctx, work, "build", "-trimpath", "-ldflags", kubernetesLDFlags(kubernetesVersion),
			"-o", filepath.Join(bin, c), pkgs[i]); err != nil {
			return err
		}
	}
	return nil
}

// kubernetesGoMod returns the throwaway module's go.mod for building
// k8s.io/kubernetes commands, given k8s.io/kubernetes's own go.mod.
func kubernetesGoMod(upstream []byte) (string, error) {
	f, err := modfile.ParseLax("go.mod", upstream, nil)
	if err != nil {
		return "", fmt.Errorf("parse k8s.io/kubernetes go.mod: %w", err)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "module local/k8sbuild\n\ngo %s\n\nrequire k8s.io/kubernetes %s\n\nreplace (\n", k8sGoLine, kubernetesVersion)
	n := 0
	for _, r := range f.Require {
		if strings.HasPrefix(r.Mod.Path, "k8s.io/") && r.Mod.Version == "v0.0.0" {
			fmt.Fprintf(&b, "\t%s => %s %s\n", r.Mod.Path, r.Mod.Path, stagingVersion)
			n++
		}
	}
	if n == 0 {
		return "", errors.New("k8s.io/kubernetes go.mod requires no staging module at v0.0.0")
	}
	b.WriteString(")\n")
	return b.String(), nil
}

// kubernetesLDFlags sets the version the Kubernetes programs report; without
// it they say v0.0.0-master and Knative's minimum version check fails.
func kubernetesLDFlags(version string) string {
	v := strings.TrimPrefix(version, "v")
	parts := strings.SplitN(v, ".", 3)
	minor := ""
	if len(parts) > 1 {
		minor = parts[1]
	}
	return strings.Join([]string{
		"-X k8s.io/component-base/version.gitVersion=" + version,
		"-X k8s.io/component-base/version.gitMajor=" + parts[0],
		"-X k8s.io/component-base/version.gitMinor=" + minor,
		"-X k8s.io/component-base/version.gitTreeState=clean",
	}, " ")
}

// buildKwok installs kwok and copies kwok's own stages into bin.
func buildKwok(ctx context.Context, work, bin string) error {
	if _, err := goOutputEnv(ctx, work, []string{"GOBIN=" + bin}, "install", "sigs.k8s.io/kwok/cmd/kwok@"+kwokVersion); err != nil {
		return err
	}
	info, err := download(ctx, work, "sigs.k8s.io/kwok@"+kwokVersion)
	if err != nil {
		return err
	}
	for _, s := range kwokStages {
		if err := copyFile(filepath.Join(info.Dir, s), filepath.Join(bin, shareKwok, filepath.Base(s))); err != nil {
			return err
		}
	}
	return nil
}

// tektonPrograms maps each of our Tekton programs to its main file in
// mains/; each is built from it and mains/run.go.txt.
var tektonPrograms = map[string]string{
	binTektonController: "controller.go.txt",
	binTektonEvents:     "events.go.txt",
	binTektonWebhook:    "webhook.go.txt",
}

// buildTekton builds our Tekton programs and copies the Tekton module's
// config (namespace, CRDs, config-*.yaml ConfigMaps) into bin.
func buildTekton(ctx context.Context, work, bin string) error {
	files := map[string]string{}
	for prog, main := range tektonPrograms {
		for dst, src := range map[string]string{"main.go": main, "run.go": "run.go.txt"} {
			b, err := mainsFS.ReadFile("mains/" + src)
			if err != nil {
				return err
			}
			files[filepath.Join("cmd", prog, dst)] = string(b)
		}
	}
	gomod := fmt.Sprintf("module local/tektonbuild\n\ngo %s\n\nrequire github.com/tektoncd/pipeline %s\n", tektonGoLine, tektonVersion)
	if err := writeModule(ctx, work, gomod, files); err != nil {
		return err
	}
	for prog := range tektonPrograms {
		if _, err := goOutput(ctx, work, "build", "-trimpath", "-o", filepath.Join(bin, prog), "./cmd/"+prog); err != nil {
			return err
		}
	}
	info, err := download(ctx, work, "github.com/tektoncd/pipeline@"+tektonVersion)
	if err != nil {
		return err
	}
	config := filepath.Join(info.Dir, "config")
	var srcs []string
	for _, pattern := range []string{"100-namespace/*.yaml", "300-crds/*.yaml", "config-*.yaml"} {
		m, err := filepath.Glob(filepath.Join(config, pattern))
		if err != nil {
			return err
		}
		if len(m) == 0 {
			return fmt.Errorf("no %s in %s", pattern, config)
		}
		srcs = append(srcs, m...)
	}
	for _, src := range srcs {
		rel, err := filepath.Rel(config, src)
		if err != nil {
			return err
		}
		if err := copyFile(src, filepath.Join(bin, shareTekton, rel)); err != nil {
			return err
		}
	}
	return nil
}

// toolsGo returns a tools.go importing pkgs, so that go mod tidy keeps them.
func toolsGo(pkgs ...string) string {
	var b strings.Builder
	b.WriteString("//go:build tools\n\npackage tools\n\nimport (\n")
	for _, p := range pkgs {
		fmt.Fprintf(&b, "\t_ %q\n", p)
	}
	b.WriteString(")\n")
	return b.String()
}

// writeModule writes a throwaway module (go.mod plus files) into dir and
// runs go mod tidy there.
func writeModule(ctx context.Context, dir, gomod string, files map[string]string) error {
	files["go.mod"] = gomod
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			return err
		}
	}
	_, err := goOutput(ctx, dir, "mod", "tidy")
	return err
}

// moduleInfo is the part of `go mod download -json` output we use.
type moduleInfo struct {
	Dir   string
	GoMod string
}

// download fetches a module (path@version) into the module cache, running
// the go command in dir.
func download(ctx context.Context, dir, mod string) (moduleInfo, error) {
	var info moduleInfo
	out, err := goOutput(ctx, dir, "mod", "download", "-json", mod)
	if err != nil {
		return info, err
	}
	if err := json.Unmarshal([]byte(out), &info); err != nil {
		return info, fmt.Errorf("go mod download %s: %w", mod, err)
	}
	if info.Dir == "" || info.GoMod == "" {
		return info, fmt.Errorf("go mod download %s: no Dir or GoMod in %s", mod, out)
	}
	return info, nil
}

// goOutput runs the go command in dir and returns its standard output.
func goOutput(ctx context.Context, dir string, args ...string) (string, error) {
	return goOutputEnv(ctx, dir, nil, args...)
}

// goOutputEnv runs the go command in dir with extra environment variables.
// Errors carry the end of the command's output.
func goOutputEnv(ctx context.Context, dir string, env []string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = dir
	// GOWORK=off: a go.work above the temp dir must not take part.
	cmd.Env = append(append(os.Environ(), "GOWORK=off"), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("go %s: %w\n%s", strings.Join(args, " "), err, tail(stderr.String(), 30))
	}
	return stdout.String(), nil
}

// copyFile copies src to dst, creating dst's directory.
func copyFile(src, dst string) error {
	b, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	return os.WriteFile(dst, b, 0o644)
}

// tail returns the last n lines of s.
func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// since formats the time since t for progress lines.
func since(t time.Time) time.Duration {
	return time.Since(t).Round(100 * time.Millisecond)
}
