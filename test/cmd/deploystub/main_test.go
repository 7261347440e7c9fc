package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const funcYAML = `specVersion: 0.36.0
name: fn
runtime: go
created: 2026-11-25T00:00:00Z
run:
  envs:
  - value: '{{ secret:engine }}'
deploy:
  serviceAccountName: fn
`

const digest = "registry.example.com/fn@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

// TestFunc checks that the stand-in refuses what func deploy refuses, and
// accepts what this project runs.
func TestFunc(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		args    []string
		env     map[string]string
		noState bool   // no Secret, nothing applied
		wantErr string // "" for success
		want    string // deploy.image written, "" to skip
	}{
		{name: "build and push with --registry", args: []string{"deploy", "--path", ".", "--registry", "registry.example.com/x"},
			want: "registry.example.com/x/fn@sha256:"},
		{name: "registry from FUNC_REGISTRY", args: []string{"deploy"}, env: map[string]string{"FUNC_REGISTRY": "r.example/y"},
			want: "r.example/y/fn@sha256:"},
		{name: "-r shorthand", args: []string{"deploy", "-r", "r.example/z"}, want: "r.example/z/fn@sha256:"},
		{name: "no registry", args: []string{"deploy", "--path", "."}, wantErr: "registry required"},
		{name: "digest with build and push off", args: []string{"deploy", "--build=false", "--push=false", "--image", digest}, want: digest},
		{name: "digest with build auto", args: []string{"deploy", "--push=false", "--image=" + digest}, want: digest},
		{name: "digest pushed by default", args: []string{"deploy", "--build=false", "--image", digest},
			wantErr: "pushing is not valid when specifying an image with digest"},
		{name: "digest with --push", args: []string{"deploy", "--build=false", "--push", "--image", digest},
			wantErr: "pushing is not valid"},
		{name: "digest with FUNC_PUSH", args: []string{"deploy", "--build=false", "--image", digest}, env: map[string]string{"FUNC_PUSH": "true"},
			wantErr: "pushing is not valid"},
		{name: "digest with --build", args: []string{"deploy", "--build", "--push=false", "--image", digest},
			wantErr: "building can not be enabled when using an image with digest"},
		{name: "digest with --build=1", args: []string{"deploy", "--build=1", "--push=false", "-i", digest},
			wantErr: "building can not be enabled"},
		{name: "bool value without =", args: []string{"deploy", "--build=false", "--push", "false", "--image", digest},
			wantErr: "takes no arguments"},
		{name: "build not a boolean", args: []string{"deploy", "--build=maybe", "--registry", "r.example"},
			wantErr: "unrecognized value for --build"},
		{name: "image and registry", args: []string{"deploy", "--build=false", "--push=false", "--image", digest, "--registry", "r.example"},
			wantErr: "both --image and --registry"},
		{name: "unknown flag", args: []string{"deploy", "--digest", digest}, wantErr: "unknown flag: --digest"},
		{name: "git settings without --remote", args: []string{"deploy", "--registry", "r.example", "--git-url", "https://x"},
			wantErr: "only applicable when triggering remote"},
		{name: "bad digest", args: []string{"deploy", "--push=false", "--image", "r.example/fn@sha256:abc"}, wantErr: "could not parse reference"},
		{name: "no function at path", args: []string{"deploy", "--path", "nowhere", "--registry", "r.example"}, wantErr: "no function found"},
		{name: "not func deploy", args: []string{"build"}, wantErr: "only func deploy"},
		{name: "Secret and config missing", args: []string{"deploy", "--registry", "r.example"}, noState: true,
			wantErr: `referenced Secret "engine" is not present`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			root, state := t.TempDir(), t.TempDir()
			if err := os.WriteFile(filepath.Join(root, "func.yaml"), []byte(funcYAML), 0o644); err != nil {
				t.Fatal(err)
			}
			if !tc.noState {
				if err := Kubectl([]string{"create", "secret", "generic", "engine"}, root, state); err != nil {
					t.Fatal(err)
				}
				if err := os.Mkdir(filepath.Join(root, "config"), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(filepath.Join(root, "config", "kustomization.yaml"), nil, 0o644); err != nil {
					t.Fatal(err)
				}
				if err := Kubectl([]string{"apply", "-k", "config"}, root, state); err != nil {
					t.Fatal(err)
				}
			}
			err := Func(tc.args, func(k string) string { return tc.env[k] }, root, state)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want it to say %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			f, err := readFunction(root)
			if err != nil {
				t.Fatal(err)
			}
			if got := f.str("deploy", "image"); !strings.HasPrefix(got, tc.want) || !digestRef.MatchString(got) {
				t.Errorf("deploy.image = %q, want a digest starting %q", got, tc.want)
			}
			gi, err := os.ReadFile(filepath.Join(root, ".gitignore"))
			if err != nil || !strings.Contains(string(gi), "\n/.func\n") {
				t.Errorf(".gitignore = %q, %v; want func's /.func line added", gi, err)
			}
		})
	}
}

func TestKubectl(t *testing.T) {
	t.Parallel()
	wd, state := t.TempDir(), t.TempDir()
	if err := os.MkdirAll(filepath.Join(wd, "config", "tekton"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"config", "config/tekton"} {
		if err := os.WriteFile(filepath.Join(wd, k, "kustomization.yaml"), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// In order: each step sees the state the ones before left.
	for _, tc := range []struct {
		args    string
		wantErr string
	}{
		{"get secret s", `secrets "s" not found`},
		{"create secret generic s", ""},
		{"get secret s", ""},
		{"create secret generic s", "already exists"},
		{"create secret generic t --from-literal=ENGINE_TOKEN=x", ""},
		{"create secret generic u --from-file=x", "does not know"},
		{"apply -k config", ""},
		{"apply --server-side --force-conflicts --field-manager=m -k config/tekton", ""},
		{"apply --force-conflicts -k config/tekton", "only works with --server-side"},
		{"apply -k nowhere", "no kustomization.yaml"},
		{"apply -f x.yaml", "does not know"},
		{"delete secret s", "does not know"},
	} {
		err := Kubectl(strings.Fields(tc.args), wd, state)
		if tc.wantErr == "" && err != nil || tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
			t.Errorf("kubectl %s: err = %v, want %q", tc.args, err, tc.wantErr)
		}
	}
}

func TestParseFlags(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		args     string
		want     map[string]string
		wantRest string
		wantErr  bool
	}{
		{"--path . --build=false", map[string]string{"path": ".", "build": "false"}, "", false},
		{"--build --push=0", map[string]string{"build": "true", "push": "0"}, "", false},
		{"--build false", map[string]string{"build": "true"}, "false", false},
		{"-i img -p=dir -rreg", map[string]string{"image": "img", "path": "dir", "registry": "reg"}, "", false},
		{"-- --path x", map[string]string{}, "--path x", false},
		{"--push=maybe", nil, "", true},
		{"--image", nil, "", true},
		{"-x", nil, "", true},
	} {
		set, rest, err := parseFlags(strings.Fields(tc.args), deployFlags)
		if tc.wantErr {
			if err == nil {
				t.Errorf("%q: no error", tc.args)
			}
			continue
		}
		if err != nil {
			t.Errorf("%q: %v", tc.args, err)
			continue
		}
		if len(set) != len(tc.want) || strings.Join(rest, " ") != tc.wantRest {
			t.Errorf("%q: set %v rest %q, want %v %q", tc.args, set, rest, tc.want, tc.wantRest)
		}
		for k, v := range tc.want {
			if set[k] != v {
				t.Errorf("%q: %s = %q, want %q", tc.args, k, set[k], v)
			}
		}
	}
}
