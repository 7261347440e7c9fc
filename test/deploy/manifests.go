package deploy

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"sigs.k8s.io/yaml"

	"github.com/boomerang-io/flow-tekton-handler/test/cache"
)

// KnativeVersion is the version of knative.dev/eventing and
// knative.dev/serving whose CRDs and Go types the manifests are checked
// against; the checker is built in a module of its own. Serving is only
// downloaded. Eventing at this version is also a test dependency in go.mod
// (the end-to-end tests deliver with its dispatcher); TestKnativeVersion
// keeps the two in step.
const KnativeVersion = "v0.46.0"

// KnativeCRDFiles are the CRDs the manifests use, by module.
var KnativeCRDFiles = map[string][]string{
	"knative.dev/eventing": {
		"config/core/resources/broker.yaml",
		"config/core/resources/trigger.yaml",
		"config/core/resources/pingsource.yaml",
	},
	"knative.dev/serving": {
		"config/core/300-resources/service.yaml",
		"config/core/300-resources/configuration.yaml",
		"config/core/300-resources/route.yaml",
		"config/core/300-resources/revision.yaml",
	},
}

// Object is what the tests need of a manifest: its type and identity.
type Object struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Metadata   struct {
		Name      string `json:"name"`
		Namespace string `json:"namespace,omitempty"`
	} `json:"metadata"`
}

// ID is "Kind/name".
func (o Object) ID() string { return o.Kind + "/" + o.Metadata.Name }

// Document is one YAML document of a stream and the object it holds.
type Document struct {
	Object
	YAML []byte
}

// SplitDocuments cuts a YAML stream into its non-empty documents.
func SplitDocuments(b []byte) ([]Document, error) {
	var docs []Document
	var cur bytes.Buffer
	flush := func() error {
		defer cur.Reset()
		if !hasContent(cur.Bytes()) {
			return nil
		}
		d := Document{YAML: append([]byte(nil), cur.Bytes()...)}
		if err := yaml.Unmarshal(d.YAML, &d.Object); err != nil {
			return fmt.Errorf("document %d: %w", len(docs), err)
		}
		docs = append(docs, d)
		return nil
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "---") && strings.TrimSpace(line[3:]) == "" {
			if err := flush(); err != nil {
				return nil, err
			}
			continue
		}
		cur.WriteString(line)
		cur.WriteByte('\n')
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	return docs, flush()
}

// JoinDocuments writes documents back into one YAML stream.
func JoinDocuments(docs []Document) []byte {
	var b bytes.Buffer
	for _, d := range docs {
		b.WriteString("---\n")
		b.Write(d.YAML)
	}
	return b.Bytes()
}

func hasContent(b []byte) bool {
	for _, l := range strings.Split(string(b), "\n") {
		if t := strings.TrimSpace(l); t != "" && !strings.HasPrefix(t, "#") {
			return true
		}
	}
	return false
}

// Kustomize renders the kustomization in dir with kubectl.
func Kustomize(ctx context.Context, kubectl, dir string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, kubectl, "kustomize", dir)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("kubectl kustomize %s: %w: %s", dir, err, stderr.Bytes())
	}
	return out, nil
}

// ModuleDir downloads module@version into the module cache, outside any
// module so that no go.mod changes, and returns its directory.
func ModuleDir(ctx context.Context, module, version string) (string, error) {
	cmd := exec.CommandContext(ctx, goTool(), "mod", "download", "-json", module+"@"+version)
	cmd.Dir = os.TempDir()
	cmd.Env = append(os.Environ(), "GOWORK=off", "GOFLAGS=")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("go mod download %s@%s: %w: %s%s", module, version, err, stderr.Bytes(), out)
	}
	var info struct{ Dir, Error string }
	if err := json.Unmarshal(out, &info); err != nil {
		return "", fmt.Errorf("go mod download %s@%s: %w", module, version, err)
	}
	if info.Error != "" || info.Dir == "" {
		return "", fmt.Errorf("go mod download %s@%s: %s", module, version, info.Error)
	}
	return info.Dir, nil
}

// KnativeCRDs returns the Knative CRDs of KnativeCRDFiles as one YAML
// stream. Conversion webhooks are replaced by strategy None: no Knative
// webhook runs, and the manifests use the storage versions only.
func KnativeCRDs(ctx context.Context) ([]byte, error) {
	var out bytes.Buffer
	for _, module := range []string{"knative.dev/eventing", "knative.dev/serving"} {
		dir, err := ModuleDir(ctx, module, KnativeVersion)
		if err != nil {
			return nil, err
		}
		for _, f := range KnativeCRDFiles[module] {
			b, err := os.ReadFile(filepath.Join(dir, f))
			if err != nil {
				return nil, err
			}
			out.WriteString("---\n")
			out.Write(WithoutConversionWebhook(b))
		}
	}
	return out.Bytes(), nil
}

// WithoutConversionWebhook replaces a CRD's top-level `conversion:` block,
// which these files end with, by `conversion: {strategy: None}`.
func WithoutConversionWebhook(crd []byte) []byte {
	lines := strings.Split(string(crd), "\n")
	for i, l := range lines {
		if strings.HasPrefix(l, "  conversion:") {
			return []byte(strings.Join(lines[:i], "\n") + "\n  conversion:\n    strategy: None\n")
		}
	}
	return crd
}

// goTool is the go command that runs the tests.
func goTool() string {
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	return "go"
}

// checkerGoMod is the throwaway module the manifest checker is built in.
const checkerGoMod = `module manifestcheck

go 1.24

require (
	knative.dev/eventing ` + KnativeVersion + `
	knative.dev/serving ` + KnativeVersion + `
)
`

// Checker returns the manifest checker built from src (the main.go of
// testdata/manifestcheck) in a throwaway module, building it on first use
// and caching it under ${XDG_CACHE_HOME:-~/.cache}/flow-tekton-handler/
// keyed by its source, the Knative version and the Go version. The first
// build takes minutes; log, if not nil, hears about it.
func Checker(ctx context.Context, src string, log func(string)) (string, error) {
	code, err := os.ReadFile(src)
	if err != nil {
		return "", err
	}
	goVersion, err := exec.CommandContext(ctx, goTool(), "env", "GOVERSION").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOVERSION: %w", err)
	}
	h := sha256.New()
	for _, part := range [][]byte{code, []byte(checkerGoMod), bytes.TrimSpace(goVersion)} {
		h.Write(part)
		h.Write([]byte{0})
	}
	key := hex.EncodeToString(h.Sum(nil))[:16]
	dir, err := cache.Dir(ctx, "manifestcheck", key, nil, func(ctx context.Context, dir string) error {
		if log != nil {
			log("building the manifest checker (knative.dev/eventing and serving " + KnativeVersion + "); the first build takes several minutes")
		}
		work, err := os.MkdirTemp("", "manifestcheck-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(work)
		if err := os.WriteFile(filepath.Join(work, "go.mod"), []byte(checkerGoMod), 0o644); err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(work, "main.go"), code, 0o644); err != nil {
			return err
		}
		for _, args := range [][]string{{"mod", "tidy"}, {"build", "-o", filepath.Join(dir, "manifestcheck"), "."}} {
			cmd := exec.CommandContext(ctx, goTool(), args...)
			cmd.Dir = work
			cmd.Env = append(os.Environ(), "GOWORK=off", "GOFLAGS=-mod=mod")
			if out, err := cmd.CombinedOutput(); err != nil {
				return fmt.Errorf("go %s in %s: %w: %s", strings.Join(args, " "), work, err, out)
			}
		}
		return nil
	})
	if err != nil {
		return "", err
	}
	return filepath.Join(dir, "manifestcheck"), nil
}

// Check runs the checker on a YAML stream and returns its report; err is
// set when any document failed.
func Check(ctx context.Context, checker string, stream []byte) (string, error) {
	cmd := exec.CommandContext(ctx, checker)
	cmd.Stdin = bytes.NewReader(stream)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("manifestcheck: %w:\n%s", err, out)
	}
	return string(out), nil
}
