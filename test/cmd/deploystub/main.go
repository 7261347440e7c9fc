// Command deploystub stands in for func and kubectl in the test of
// `make deploy` (test/deploy, TestMakeDeploy); it is the program of both,
// and acts as the one its name (os.Args[0]) says.
//
// As func it knows `func deploy` and refuses it where func does: the checks
// of knative/func cmd/deploy.go (deployConfig.Validate: no --build and no
// --push with an image digest, --build is auto or a boolean), cmd/build.go
// (buildConfig.Validate: not both --image and --registry), a registry or an
// image when it builds (pkg/functions/function.go ImageName: "registry
// required"), a func.yaml at --path, and, as func's deployer does
// (pkg/k8s/deployer.go CheckResourcesArePresent), the Secrets the func.yaml
// imports and the ServiceAccounts and ConfigMap applied from config/. It is
// stricter than func in one way: flags are read as func's (pflag) are, where
// a boolean's value needs "=" (--push false is the flag --push and an
// argument func ignores), and it refuses arguments.
// On success it writes func.yaml as func does: registry, deploy.image (the
// pushed image by digest) and no comments, and keeps .func/ and .gitignore
// the way func's ensureRunDataDir does.
//
// As kubectl it knows `get secret`, `create secret generic`, and `apply -k`
// of a directory with a kustomization.yaml.
//
// Both append each invocation, with its error if any, to the JSON lines
// file log in $DEPLOYSTUB_DIR, where they also keep the cluster's state.
package main

import (
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	"sigs.k8s.io/yaml"
)

// StateEnv names the directory holding the log and the stand-in cluster.
const StateEnv = "DEPLOYSTUB_DIR"

// LogFile, in the state directory, has one Invocation per line.
const LogFile = "log"

// Invocation is one run of the stand-in.
type Invocation struct {
	Argv []string `json:"argv"` // program name first
	Dir  string   `json:"dir"`  // working directory
	Err  string   `json:"err,omitempty"`
	// GOFLAGS is func's GOFLAGS: its Go host builder passes its
	// environment to go build.
	GOFLAGS string `json:"goflags,omitempty"`
}

func main() {
	name := filepath.Base(os.Args[0])
	state := os.Getenv(StateEnv)
	wd, _ := os.Getwd()
	var err error
	switch {
	case state == "":
		err = fmt.Errorf("%s is not set", StateEnv)
	case name == "func":
		err = Func(os.Args[1:], os.Getenv, wd, state)
	case name == "kubectl":
		err = Kubectl(os.Args[1:], wd, state)
	default:
		err = fmt.Errorf("run as func or kubectl, not %s", name)
	}
	if state != "" {
		inv := Invocation{Argv: append([]string{name}, os.Args[1:]...), Dir: wd}
		if name == "func" {
			inv.GOFLAGS = os.Getenv("GOFLAGS")
		}
		if err != nil {
			inv.Err = err.Error()
		}
		if lerr := appendLog(state, inv); lerr != nil && err == nil {
			err = lerr
		}
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "Error: %v\n", err)
		os.Exit(1)
	}
}

func appendLog(state string, inv Invocation) error {
	b, err := json.Marshal(inv)
	if err != nil {
		return err
	}
	f, err := os.OpenFile(filepath.Join(state, LogFile), os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = f.Write(append(b, '\n'))
	return err
}

// flagKind is how pflag reads a flag's value.
type flagKind int

const (
	stringFlag flagKind = iota // --x v, --x=v
	boolFlag                   // --x (true), --x=v
	optFlag                    // --x (NoOptDefVal "true"), --x=v
)

type flagDef struct {
	short string
	kind  flagKind
}

// deployFlags are func deploy's flags (knative/func cmd/deploy.go
// NewDeployCmd and the shared ones of cmd/root.go).
var deployFlags = map[string]flagDef{
	"builder": {"b", stringFlag}, "deployer": {"", stringFlag}, "registry": {"r", stringFlag},
	"registry-insecure": {"", boolFlag}, "registry-authfile": {"", stringFlag},
	"builder-image": {"", stringFlag}, "base-image": {"", stringFlag}, "image": {"i", stringFlag},
	"env": {"e", stringFlag}, "domain": {"", stringFlag}, "git-url": {"g", stringFlag},
	"git-branch": {"t", stringFlag}, "git-dir": {"d", stringFlag}, "remote": {"R", boolFlag},
	"remote-storage-class": {"", stringFlag}, "pvc-size": {"", stringFlag},
	"service-account": {"", stringFlag}, "image-pull-secret": {"", stringFlag},
	"build": {"", optFlag}, "push": {"u", boolFlag}, "platform": {"", stringFlag},
	"username": {"", stringFlag}, "password": {"", stringFlag}, "token": {"", stringFlag},
	"build-timestamp": {"", boolFlag}, "management-disabled": {"", boolFlag},
	"namespace": {"n", stringFlag}, "confirm": {"c", boolFlag}, "path": {"p", stringFlag},
	"verbose": {"v", boolFlag},
}

// parseFlags reads args as pflag does for defs; it returns the flags set on
// the command line (the last value of each) and the other arguments.
func parseFlags(args []string, defs map[string]flagDef) (map[string]string, []string, error) {
	shorts := map[string]string{}
	for name, d := range defs {
		if d.short != "" {
			shorts[d.short] = name
		}
	}
	set := map[string]string{}
	var rest []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			rest = append(rest, args[i+1:]...)
			break
		}
		var name, value string
		var hasValue bool
		switch {
		case strings.HasPrefix(a, "--"):
			name, value, hasValue = strings.Cut(a[2:], "=")
		case strings.HasPrefix(a, "-") && len(a) > 1:
			s := a[1:2]
			long, ok := shorts[s]
			if !ok {
				return nil, nil, fmt.Errorf("unknown shorthand flag: %q in %s", s, a)
			}
			name = long
			if tail := a[2:]; tail != "" {
				value, hasValue = strings.TrimPrefix(tail, "="), true
			}
		default:
			rest = append(rest, a)
			continue
		}
		d, ok := defs[name]
		if !ok {
			return nil, nil, fmt.Errorf("unknown flag: --%s", name)
		}
		if !hasValue {
			switch d.kind {
			case boolFlag, optFlag:
				value = "true"
			default:
				if i+1 >= len(args) {
					return nil, nil, fmt.Errorf("flag needs an argument: --%s", name)
				}
				i++
				value = args[i]
			}
		}
		if d.kind == boolFlag {
			if _, err := strconv.ParseBool(value); err != nil {
				return nil, nil, fmt.Errorf("invalid argument %q for --%s: %w", value, name, err)
			}
		}
		set[name] = value
	}
	return set, rest, nil
}

// digestRef is an image reference by digest, as go-containerregistry's
// name.ParseReference returns a name.Digest for (func's isDigested).
var digestRef = regexp.MustCompile(`^[^@\s]+@sha256:[0-9a-f]{64}$`)

// Func runs `func args...` in wd against the stand-in cluster in state.
func Func(args []string, getenv func(string) string, wd, state string) error {
	if len(args) == 0 || args[0] != "deploy" {
		return fmt.Errorf("the stand-in knows only func deploy, not %q", args)
	}
	set, rest, err := parseFlags(args[1:], deployFlags)
	if err != nil {
		return err
	}
	if len(rest) > 0 {
		return fmt.Errorf("func deploy takes no arguments, got %q (a boolean flag's value needs =, e.g. --push=false)", rest)
	}
	// A flag not on the command line comes from FUNC_<NAME> (viper), else
	// its default.
	value := func(name, def string) string {
		if v, ok := set[name]; ok {
			return v
		}
		if v := getenv("FUNC_" + strings.ToUpper(strings.ReplaceAll(name, "-", "_"))); v != "" {
			return v
		}
		return def
	}
	truthy := func(s string) bool { b, _ := strconv.ParseBool(s); return b }

	root := value("path", ".")
	if !filepath.IsAbs(root) {
		root = filepath.Join(wd, root)
	}
	f, err := readFunction(root)
	if err != nil {
		return err
	}

	// buildConfig.Validate
	if b := value("builder", f.str("build", "builder")); b != "" && b != "host" && b != "pack" && b != "s2i" {
		return fmt.Errorf("invalid builder %q", b)
	}
	_, image := set["image"]
	_, registry := set["registry"]
	if image && registry {
		return errors.New("both --image and --registry flags provided")
	}
	// deployConfig.Validate
	img := value("image", f.str("image"))
	digest := false
	if img != "" {
		if strings.Contains(img, "@") && !digestRef.MatchString(img) {
			return fmt.Errorf("could not parse reference: %s", img)
		}
		digest = digestRef.MatchString(img)
	}
	build := value("build", "auto")
	if build != "auto" {
		if _, err := strconv.ParseBool(build); err != nil {
			return fmt.Errorf("unrecognized value for --build '%v'.  Accepts 'auto', 'true' or 'false' (or similarly truthy value)", build)
		}
	}
	push := truthy(value("push", "true"))
	if digest && truthy(build) {
		return errors.New("building can not be enabled when using an image with digest")
	}
	if digest && push {
		return errors.New("pushing is not valid when specifying an image with digest")
	}
	if !truthy(value("remote", "false")) {
		for _, g := range []string{"git-url", "git-dir", "git-branch"} {
			if _, ok := set[g]; ok {
				return errors.New("git settings (--git-url --git-dir and --git-branch) are only applicable when triggering remote deployments (--remote)")
			}
		}
	}

	reg := value("registry", f.str("registry"))
	if reg != "" {
		f.set(reg, "registry")
	}
	deployed := img
	if !digest {
		built, err := os.ReadFile(filepath.Join(root, ".func", "built-image"))
		if build == "auto" || truthy(build) {
			// ImageName: the image, else registry/name:latest.
			name := img
			if name == "" {
				if reg == "" {
					return errors.New("registry required to build function, please set with `--registry` or the FUNC_REGISTRY environment variable")
				}
				name = strings.Trim(reg, "/") + "/" + f.str("name") + ":latest"
			}
			n, err := nextBuild(state)
			if err != nil {
				return err
			}
			sum := sha256.Sum256([]byte(fmt.Sprintf("%s %d", name, n)))
			built = []byte(withoutTag(name) + "@sha256:" + fmt.Sprintf("%x", sum))
		} else if err != nil {
			return errors.New("not built")
		}
		if !push {
			return errors.New("the stand-in deploys only pushed images")
		}
		deployed = string(built)
		if err := os.MkdirAll(filepath.Join(root, ".func"), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(root, ".func", "built-image"), built, 0o644); err != nil {
			return err
		}
	}

	// The deployer: what the func.yaml references must exist.
	for _, s := range f.importedSecrets() {
		if _, err := os.Stat(filepath.Join(state, "secrets", s)); err != nil {
			return fmt.Errorf("referenced Secret %q is not present in namespace", s)
		}
	}
	if _, err := os.Stat(filepath.Join(state, "applied", "config")); err != nil {
		return fmt.Errorf("referenced ServiceAccount %q and ConfigMaps are not present in namespace (kubectl apply -k config has not run)", f.str("deploy", "serviceAccountName"))
	}
	f.set(deployed, "deploy", "image")
	fmt.Printf("✅ Function deployed: %s (image %s)\n", f.str("name"), deployed)
	return f.write(root)
}

// withoutTag strips a :tag from the last path element of an image name.
func withoutTag(image string) string {
	slash := strings.LastIndex(image, "/")
	if colon := strings.LastIndex(image, ":"); colon > slash {
		return image[:colon]
	}
	return image
}

func nextBuild(state string) (int, error) {
	p := filepath.Join(state, "builds")
	n := 0
	if b, err := os.ReadFile(p); err == nil {
		n, _ = strconv.Atoi(string(b))
	}
	n++
	return n, os.WriteFile(p, []byte(strconv.Itoa(n)), 0o644)
}

// function is a func.yaml as a generic document.
type function map[string]any

func readFunction(root string) (function, error) {
	b, err := os.ReadFile(filepath.Join(root, "func.yaml"))
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("no function found at %s; create one with func init", root)
	}
	if err != nil {
		return nil, err
	}
	var f function
	if err := yaml.Unmarshal(b, &f); err != nil {
		return nil, fmt.Errorf("func.yaml: %w", err)
	}
	if f == nil {
		f = function{}
	}
	return f, nil
}

func (f function) str(path ...string) string {
	var cur any = map[string]any(f)
	for _, p := range path {
		m, ok := cur.(map[string]any)
		if !ok {
			return ""
		}
		cur = m[p]
	}
	s, _ := cur.(string)
	return s
}

func (f function) set(v string, path ...string) {
	m := map[string]any(f)
	for _, p := range path[:len(path)-1] {
		next, ok := m[p].(map[string]any)
		if !ok {
			next = map[string]any{}
			m[p] = next
		}
		m = next
	}
	m[path[len(path)-1]] = v
}

var wholeSecret = regexp.MustCompile(`^{{\s*secret:([-\w']+)\s*}}$`)

func (f function) importedSecrets() []string {
	run, _ := f["run"].(map[string]any)
	envs, _ := run["envs"].([]any)
	var out []string
	for _, e := range envs {
		m, _ := e.(map[string]any)
		v, _ := m["value"].(string)
		if sm := wholeSecret.FindStringSubmatch(v); sm != nil && m["name"] == nil {
			out = append(out, sm[1])
		}
	}
	return out
}

// write writes func.yaml (as func does: marshalled, so without comments)
// and .func/, registered in .gitignore as knative/func
// pkg/functions/client.go ensureRunDataDir does.
func (f function) write(root string) error {
	b, err := yaml.Marshal(map[string]any(f))
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(root, "func.yaml"), b, 0o644); err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Join(root, ".func"), 0o755); err != nil {
		return err
	}
	gi := filepath.Join(root, ".gitignore")
	cur, err := os.ReadFile(gi)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	for _, line := range strings.Split(string(cur), "\n") {
		if strings.HasPrefix(line, "# /.func") || strings.HasPrefix(line, "#/.func") || strings.HasPrefix(line, "/.func") {
			return nil
		}
	}
	a, err := os.OpenFile(gi, os.O_APPEND|os.O_WRONLY|os.O_CREATE, 0o644)
	if err != nil {
		return err
	}
	defer a.Close()
	_, err = a.WriteString("\n# Functions use the .func directory for local runtime data which should\n# generally not be tracked in source control. To instruct the system to track\n# .func in source control, comment the following line (prefix it with '# ').\n/.func\n")
	return err
}

// Kubectl runs `kubectl args...` in wd against the stand-in cluster.
func Kubectl(args []string, wd, state string) error {
	secret := func(name string) string { return filepath.Join(state, "secrets", name) }
	switch {
	case len(args) == 3 && args[0] == "get" && args[1] == "secret":
		if _, err := os.Stat(secret(args[2])); err != nil {
			return fmt.Errorf("secrets %q not found", args[2])
		}
		fmt.Printf("NAME   TYPE     DATA   AGE\n%s   Opaque   0      1s\n", args[2])
		return nil
	case len(args) >= 4 && args[0] == "create" && args[1] == "secret" && args[2] == "generic":
		for _, a := range args[4:] {
			if !strings.HasPrefix(a, "--from-literal=") {
				return fmt.Errorf("the stand-in does not know %q", a)
			}
		}
		if _, err := os.Stat(secret(args[3])); err == nil {
			return fmt.Errorf("secrets %q already exists", args[3])
		}
		if err := os.MkdirAll(filepath.Join(state, "secrets"), 0o755); err != nil {
			return err
		}
		return os.WriteFile(secret(args[3]), nil, 0o644)
	case len(args) > 0 && args[0] == "apply":
		return apply(args[1:], wd, state)
	}
	return fmt.Errorf("the stand-in does not know kubectl %q", args)
}

func apply(args []string, wd, state string) error {
	var dir string
	serverSide, force := false, false
	for i := 0; i < len(args); i++ {
		switch a := args[i]; {
		case a == "-k" && i+1 < len(args):
			i++
			dir = args[i]
		case a == "--server-side":
			serverSide = true
		case a == "--force-conflicts":
			force = true
		case strings.HasPrefix(a, "--field-manager="):
		default:
			return fmt.Errorf("the stand-in does not know kubectl apply %q", a)
		}
	}
	if dir == "" {
		return errors.New("must specify one of -f and -k")
	}
	if force && !serverSide {
		return errors.New("--force-conflicts only works with --server-side")
	}
	if _, err := os.Stat(filepath.Join(wd, dir, "kustomization.yaml")); err != nil {
		return fmt.Errorf("no kustomization.yaml in %s", dir)
	}
	if err := os.MkdirAll(filepath.Join(state, "applied"), 0o755); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(state, "applied", strings.ReplaceAll(filepath.Clean(dir), "/", "_")), nil, 0o644)
}
