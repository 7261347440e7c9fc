package deploy

import (
	"bufio"
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/boomerang-io/flow-tekton-handler/test/funcbuild"
	"github.com/boomerang-io/flow-tekton-handler/test/readme"
)

// invocation is one line of the stand-ins' log (test/cmd/deploystub).
type invocation struct {
	Argv    []string `json:"argv"`
	Err     string   `json:"err"`
	GOFLAGS string   `json:"goflags"`
}

func (i invocation) String() string {
	s := strings.Join(i.Argv, " ")
	if i.GOFLAGS != "" {
		s = "GOFLAGS='" + i.GOFLAGS + "' " + s
	}
	if i.Err != "" {
		s += "  => " + i.Err
	}
	return s
}

// deployRun is one `make deploy` and what it must run, in order. In want,
// {image} stands for the deploy.image func wrote to func.yaml.
type deployRun struct {
	name    string
	vars    []string // make command-line variables
	wantErr bool
	want    []string
	readme  bool // the README's account of make deploy must match this run
}

// TestMakeDeploy runs the Makefile's deploy target against stand-ins for
// func and kubectl (test/cmd/deploystub) that refuse what func and kubectl
// refuse (no build or push with an image digest, no registry, Secret or
// ServiceAccount missing, ...) and record every command, so the recipe
// cannot rot without a real cluster.
func TestMakeDeploy(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("make"); err != nil {
		t.Fatalf("make deploy needs make: %v", err)
	}
	bin := t.TempDir()
	if out, err := exec.Command("go", "build", "-o", filepath.Join(bin, "func"), "../cmd/deploystub").CombinedOutput(); err != nil {
		t.Fatalf("build the stand-ins: %v\n%s", err, out)
	}
	if err := os.Link(filepath.Join(bin, "func"), filepath.Join(bin, "kubectl")); err != nil {
		t.Fatal(err)
	}

	const registry = "registry.example.com/boomerang"
	// Only the deploy that builds needs the build flags.
	build := "GOFLAGS='" + funcbuild.GOFLAGS + "' func deploy --path ."
	sink := "func deploy --path function/sink --build=false --push=false --image {image}"
	logs := "func deploy --path function/logs --build=false --push=false --image {image}"
	tekton := "kubectl apply --server-side --force-conflicts --field-manager=flow-tekton-handler -k config/tekton"
	for _, tc := range []struct {
		name string
		runs []deployRun
	}{
		{"first deploy, then a redeploy", []deployRun{
			{
				name: "first", vars: []string{"FUNC_REGISTRY=" + registry}, readme: true,
				want: []string{
					"kubectl get secret flow-tekton-engine  => secrets \"flow-tekton-engine\" not found",
					"kubectl create secret generic flow-tekton-engine",
					"kubectl apply -k config",
					build + " --registry " + registry,
					sink, logs, tekton,
				},
			},
			{
				// The registry is the one func recorded in func.yaml; the
				// sink and the logs Service get the new build's digest.
				name: "again",
				want: []string{
					"kubectl get secret flow-tekton-engine",
					"kubectl apply -k config",
					build,
					sink, logs, tekton,
				},
			},
		}},
		{"no registry", []deployRun{{
			name: "first", wantErr: true,
			want: []string{
				"kubectl get secret flow-tekton-engine  => secrets \"flow-tekton-engine\" not found",
				"kubectl create secret generic flow-tekton-engine",
				"kubectl apply -k config",
				build + "  => registry required to build function, please set with `--registry` or the FUNC_REGISTRY environment variable",
			},
		}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			work, state := t.TempDir(), t.TempDir()
			copyDeployFiles(t, work)
			env := []string{"PATH=" + bin + string(os.PathListSeparator) + os.Getenv("PATH"), "DEPLOYSTUB_DIR=" + state}
			for _, kv := range os.Environ() {
				k, _, _ := strings.Cut(kv, "=")
				if k != "PATH" && k != "GOFLAGS" && !strings.HasPrefix(k, "FUNC_") && !strings.HasPrefix(k, "MAKE") && k != "MFLAGS" {
					env = append(env, kv)
				}
			}
			seen := 0
			images := map[string]bool{}
			for _, r := range tc.runs {
				cmd := exec.Command("make", append([]string{"--no-print-directory", "deploy"}, r.vars...)...)
				cmd.Dir, cmd.Env = work, env
				out, err := cmd.CombinedOutput()
				if (err != nil) != r.wantErr {
					t.Fatalf("%s: make deploy: err = %v, want error %v\n%s", r.name, err, r.wantErr, out)
				}
				log := readStubLog(t, state)[seen:]
				seen += len(log)
				image := funcYAMLImage(t, filepath.Join(work, "func.yaml"))
				if !r.wantErr {
					if image == "" || images[image] {
						t.Errorf("%s: func.yaml deploy.image = %q, want a new digest", r.name, image)
					}
					images[image] = true
					for _, fn := range []string{"sink", "logs"} {
						if got := funcYAMLImage(t, filepath.Join(work, "function", fn, "func.yaml")); got != image {
							t.Errorf("%s: function/%s runs %q, want the handler's %q", r.name, fn, got, image)
						}
					}
				}
				var got []string
				for _, inv := range log {
					got = append(got, inv.String())
				}
				want := make([]string, len(r.want))
				for i, w := range r.want {
					want[i] = strings.ReplaceAll(w, "{image}", image)
				}
				if strings.Join(got, "\n") != strings.Join(want, "\n") {
					t.Errorf("%s: make deploy ran\n  %s\nwant\n  %s\nmake's output:\n%s", r.name,
						strings.Join(got, "\n  "), strings.Join(want, "\n  "), out)
				}
				if r.readme {
					checkReadmeDeploy(t, log)
				}
			}
			// func found .func ignored in every function and left .gitignore alone.
			for _, gi := range []string{".gitignore", filepath.Join("function", "sink", ".gitignore"), filepath.Join("function", "logs", ".gitignore")} {
				before, _ := os.ReadFile(filepath.Join(root, gi))
				after, _ := os.ReadFile(filepath.Join(work, gi))
				if !bytes.Equal(before, after) {
					t.Errorf("func changed %s to register .func:\n%s", gi, after)
				}
			}
		})
	}
}

// copyDeployFiles copies what make deploy reads to dir.
func copyDeployFiles(t *testing.T, dir string) {
	t.Helper()
	for _, f := range []string{"Makefile", "go.mod", "func.yaml", ".gitignore",
		filepath.Join("function", "sink", "func.yaml"), filepath.Join("function", "sink", ".gitignore"),
		filepath.Join("function", "logs", "func.yaml"), filepath.Join("function", "logs", ".gitignore")} {
		b, err := os.ReadFile(filepath.Join(root, f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, f)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, f), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.CopyFS(filepath.Join(dir, "config"), os.DirFS(filepath.Join(root, "config"))); err != nil {
		t.Fatal(err)
	}
}

func readStubLog(t *testing.T, state string) []invocation {
	t.Helper()
	f, err := os.Open(filepath.Join(state, "log"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []invocation
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var inv invocation
		if err := json.Unmarshal(sc.Bytes(), &inv); err != nil {
			t.Fatalf("stand-in log: %v", err)
		}
		out = append(out, inv)
	}
	return out
}

// funcYAMLImage is deploy.image of a func.yaml, "" when it has none.
func funcYAMLImage(t *testing.T, path string) string {
	t.Helper()
	f, err := LoadFunction(path)
	if err != nil {
		t.Fatal(err)
	}
	if f.Deploy == nil {
		return ""
	}
	return f.Deploy.Image
}

// readmePlaceholder is a <…> word of the README's account of make deploy;
// it stands for any one argument.
var readmePlaceholder = regexp.MustCompile(`^<[^>]*>$`)

// checkReadmeDeploy compares the commands the README says make deploy runs
// (the "#   " lines after "# runs:" in the first sh block of "## Deploying")
// with what it ran.
func checkReadmeDeploy(t *testing.T, ran []invocation) {
	t.Helper()
	block, err := readme.Block(filepath.Join(root, "README.md"), "## Deploying")
	if err != nil {
		t.Fatal(err)
	}
	var said [][]string
	in := false
	for _, line := range strings.Split(block, "\n") {
		switch {
		case strings.TrimSpace(line) == "# runs:":
			in = true
		case in && strings.HasPrefix(line, "#   "):
			cmd, _, _ := strings.Cut(strings.TrimPrefix(line, "#   "), "  ")
			said = append(said, readmeWords(cmd))
		}
	}
	if len(said) != len(ran) {
		t.Fatalf("README.md says make deploy runs %d commands, it ran %d:\n%q\n%v", len(said), len(ran), said, ran)
	}
	for i, words := range said {
		got := ran[i].Argv
		ok := len(words) == len(got)
		for j := 0; ok && j < len(words); j++ {
			ok = words[j] == got[j] || readmePlaceholder.MatchString(words[j])
		}
		if !ok {
			t.Errorf("README.md: make deploy's command %d is %q, it runs %q", i+1, strings.Join(words, " "), strings.Join(got, " "))
		}
	}
}

// readmeWords splits a command at spaces, keeping each <…> one word.
func readmeWords(s string) []string {
	var words []string
	for s = strings.TrimSpace(s); s != ""; s = strings.TrimSpace(s) {
		end := strings.IndexByte(s, ' ')
		if s[0] == '<' {
			end = strings.IndexByte(s, '>') + 1
		}
		if end <= 0 {
			end = len(s)
		}
		words = append(words, s[:end])
		s = s[end:]
	}
	return words
}
