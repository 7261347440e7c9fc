package config

import (
	"os"
	"strings"
	"testing"
	"time"
)

// setenv sets the minimal valid environment plus overrides.
func setenv(t *testing.T, env map[string]string) {
	t.Helper()
	base := map[string]string{"ENGINE_URL": "http://engine:7701", "NAMESPACE": "flow", "K_SERVICE": ""}
	for k, v := range env {
		base[k] = v
	}
	for k, v := range base {
		t.Setenv(k, v)
	}
}

func TestLoadDefaults(t *testing.T) {
	setenv(t, nil)
	c, err := Load()
	if err != nil {
		t.Fatal(err)
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"PRODUCT_PREFIX", c.ProductPrefix, "bmrg-flow"},
		{"DEFAULT_TIMEOUT", c.DefaultTimeout, 60 * time.Minute},
		{"IMAGE_PULL_POLICY", c.ImagePullPolicy, "IfNotPresent"},
		{"STORAGE_SIZE", c.StorageSize, "1Gi"},
		{"STORAGE_ACCESS_MODE", c.StorageAccessMode, "ReadWriteMany"},
		{"MAX_EVENT_BYTES", c.MaxEventBytes, int64(1 << 20)},
		{"DELETION_POLICY", c.DeletionPolicy, "Never"},
		{"KUBE_QPS", c.KubeQPS, float32(-1)},
		{"KUBE_BURST", c.KubeBurst, 100},
		{"AUTH", c.Auth, "none"},
		{"tolerations", len(c.Tolerations), 0},
	}
	for _, ck := range checks {
		if ck.got != ck.want {
			t.Errorf("%s = %v, want %v", ck.name, ck.got, ck.want)
		}
	}
}

func TestLoadNamespaceDefault(t *testing.T) {
	setenv(t, map[string]string{"NAMESPACE": ""})
	c, err := Load()
	if err != nil {
		t.Fatal(err)
	}
	if c.Namespace != "default" {
		t.Errorf("outside a cluster NAMESPACE defaults to default, got %q", c.Namespace)
	}
}

func TestLoadParsesJSON(t *testing.T) {
	setenv(t, map[string]string{
		"NODE_SELECTOR": `{"kubernetes.io/os":"linux"}`,
		"TOLERATIONS":   `[{"key":"dedicated","operator":"Equal","value":"flow","effect":"NoSchedule"},{"operator":"Exists"}]`,
		"HOST_ALIASES":  `[{"ip":"10.0.0.1","hostnames":["git.local"]}]`,
	})
	c, err := Load()
	if err != nil {
		t.Fatal(err)
	}
	if c.NodeSelector["kubernetes.io/os"] != "linux" || len(c.Tolerations) != 2 || c.HostAliases[0].Hostnames[0] != "git.local" {
		t.Fatalf("parsed wrongly: %+v %+v %+v", c.NodeSelector, c.Tolerations, c.HostAliases)
	}
}

func TestLoadTokenFile(t *testing.T) {
	f := t.TempDir() + "/token"
	if err := writeFile(f, "s3cret\n"); err != nil {
		t.Fatal(err)
	}
	setenv(t, map[string]string{"ENGINE_TOKEN_FILE": f})
	c, err := Load()
	if err != nil {
		t.Fatal(err)
	}
	if c.EngineToken != "s3cret" {
		t.Fatalf("token from file = %q", c.EngineToken)
	}
}

func TestLoadRejects(t *testing.T) {
	cases := []struct {
		name string
		env  map[string]string
		want string // the variable the message must name
	}{
		{"missing engine url", map[string]string{"ENGINE_URL": ""}, "ENGINE_URL"},
		{"engine url not http", map[string]string{"ENGINE_URL": "ftp://x"}, "ENGINE_URL"},
		{"bad function", map[string]string{"FUNCTION": "both"}, "FUNCTION"},
		{"sink without engine url", map[string]string{"FUNCTION": "sink", "ENGINE_URL": ""}, "ENGINE_URL"},
		{"logs wait", map[string]string{"LOGS_WAIT": "0s"}, "LOGS_WAIT"},
		{"bad namespace", map[string]string{"NAMESPACE": "Not_Valid"}, "NAMESPACE"},
		{"bad prefix", map[string]string{"PRODUCT_PREFIX": "UPPER"}, "PRODUCT_PREFIX"},
		{"long prefix", map[string]string{"PRODUCT_PREFIX": strings.Repeat("a", 21)}, "PRODUCT_PREFIX"},
		{"bad timeout", map[string]string{"DEFAULT_TIMEOUT": "soon"}, "DEFAULT_TIMEOUT"},
		{"zero timeout", map[string]string{"DEFAULT_TIMEOUT": "0s"}, "DEFAULT_TIMEOUT"},
		{"pull policy", map[string]string{"IMAGE_PULL_POLICY": "Sometimes"}, "IMAGE_PULL_POLICY"},
		{"node selector json", map[string]string{"NODE_SELECTOR": `{"a":`}, "NODE_SELECTOR"},
		{"node selector label", map[string]string{"NODE_SELECTOR": `{"a b":"c"}`}, "NODE_SELECTOR"},
		{"empty toleration", map[string]string{"TOLERATIONS": `[{}]`}, "TOLERATIONS"},
		{"toleration unknown field", map[string]string{"TOLERATIONS": `[{"kee":"a","operator":"Exists"}]`}, "TOLERATIONS"},
		{"toleration bad operator", map[string]string{"TOLERATIONS": `[{"key":"a","operator":"Near"}]`}, "TOLERATIONS"},
		{"host alias ip", map[string]string{"HOST_ALIASES": `[{"ip":"host","hostnames":["a"]}]`}, "HOST_ALIASES"},
		{"storage size", map[string]string{"STORAGE_SIZE": "big"}, "STORAGE_SIZE"},
		{"access mode", map[string]string{"STORAGE_ACCESS_MODE": "RWX"}, "STORAGE_ACCESS_MODE"},
		{"deletion", map[string]string{"DELETION_POLICY": "Sometimes"}, "DELETION_POLICY"},
		{"max bytes", map[string]string{"MAX_EVENT_BYTES": "0"}, "MAX_EVENT_BYTES"},
		{"zero qps", map[string]string{"KUBE_QPS": "0"}, "KUBE_QPS"},
		{"qps without burst", map[string]string{"KUBE_QPS": "20", "KUBE_BURST": "0"}, "KUBE_BURST"},
		{"proxy port", map[string]string{"PROXY_HOST": "proxy"}, "PROXY_PORT"},
		{"retry budget", map[string]string{"ENGINE_RETRY_BUDGET": "1m"}, "ENGINE_RETRY_BUDGET"},
		{"service account", map[string]string{"SERVICE_ACCOUNT": "Bad Name"}, "SERVICE_ACCOUNT"},
		{"token file missing", map[string]string{"ENGINE_TOKEN_FILE": "/nonexistent/token"}, "ENGINE_TOKEN_FILE"},
		{"auth mode", map[string]string{"AUTH": "oidc"}, "AUTH"},
		{"auth mode case", map[string]string{"AUTH": "Token"}, "AUTH"},
		{"auth token without audience", map[string]string{"AUTH": "token"}, "AUTH_AUDIENCE"},
		{"auth allow without auth", map[string]string{"AUTH_ALLOW": "flow:sender"}, "AUTH_ALLOW"},
		{"auth allow no colon", map[string]string{"AUTH": "token", "AUTH_AUDIENCE": "a", "AUTH_ALLOW": "sender"}, "AUTH_ALLOW"},
		{"auth allow bad namespace", map[string]string{"AUTH": "token", "AUTH_AUDIENCE": "a", "AUTH_ALLOW": "Flow:sender"}, "AUTH_ALLOW"},
		{"auth allow bad name", map[string]string{"AUTH": "token", "AUTH_AUDIENCE": "a", "AUTH_ALLOW": "flow:sender:x"}, "AUTH_ALLOW"},
		{"auth allow empty entry", map[string]string{"AUTH": "token", "AUTH_AUDIENCE": "a", "AUTH_ALLOW": "flow:a,,flow:b"}, "AUTH_ALLOW"},
		{"auth allow user", map[string]string{"AUTH": "token", "AUTH_AUDIENCE": "a", "AUTH_ALLOW": "system:serviceaccount:flow:a"}, "AUTH_ALLOW"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			setenv(t, tc.env)
			_, err := Load()
			if err == nil {
				t.Fatal("Load accepted an invalid configuration")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q does not name %s", err, tc.want)
			}
		})
	}
}

func TestLoadAuth(t *testing.T) {
	for _, tc := range []struct {
		name         string
		env          map[string]string
		wantAudience string
		wantAllow    []string
	}{
		{"off by default", nil, "", nil},
		{"audience from the Knative Service", map[string]string{"AUTH": "token", "K_SERVICE": "flow-tekton-handler"},
			"serving.knative.dev/service/flow/flow-tekton-handler", nil},
		{"audience set", map[string]string{"AUTH": "token", "K_SERVICE": "flow-tekton-handler", "AUTH_AUDIENCE": "flow-handler"},
			"flow-handler", nil},
		{"allow list", map[string]string{"AUTH": "token", "AUTH_AUDIENCE": "a",
			"AUTH_ALLOW": " flow:flow-tekton-handler-taskrun-oidc-eventing.knative.dev-trigger , knative-sources:pinger"},
			"a", []string{"flow:flow-tekton-handler-taskrun-oidc-eventing.knative.dev-trigger", "knative-sources:pinger"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			setenv(t, tc.env)
			c, err := Load()
			if err != nil {
				t.Fatal(err)
			}
			if c.AuthAudience != tc.wantAudience {
				t.Errorf("AUTH_AUDIENCE = %q, want %q", c.AuthAudience, tc.wantAudience)
			}
			if strings.Join(c.AuthAllow, "|") != strings.Join(tc.wantAllow, "|") {
				t.Errorf("AUTH_ALLOW = %q, want %q", c.AuthAllow, tc.wantAllow)
			}
		})
	}
}

func TestValidateReportsAllProblems(t *testing.T) {
	setenv(t, map[string]string{"IMAGE_PULL_POLICY": "x", "DELETION_POLICY": "y"})
	_, err := Load()
	if err == nil || !strings.Contains(err.Error(), "IMAGE_PULL_POLICY") || !strings.Contains(err.Error(), "DELETION_POLICY") {
		t.Fatalf("want both problems in one message, got %v", err)
	}
}

func writeFile(path, s string) error { return os.WriteFile(path, []byte(s), 0o600) }

func TestRoleFromProgram(t *testing.T) {
	t.Parallel()
	for path, want := range map[string]string{
		"/usr/local/bin/sink":    RoleSink,
		"bin/sink":               RoleSink,
		"bin/logs":               RoleLogs,
		"/usr/local/bin/handler": RoleHandler,
		"/ko-app/flow":           RoleHandler,
		"sink.test":              RoleHandler,
	} {
		if got := RoleFromProgram(path); got != want {
			t.Errorf("RoleFromProgram(%q) = %q, want %q", path, got, want)
		}
	}
}

// The logs role never calls the Engine, so it starts without ENGINE_URL
// (its func.yaml does not import the Engine's Secret either).
func TestLogsRoleNeedsNoEngine(t *testing.T) {
	setenv(t, map[string]string{"FUNCTION": RoleLogs, "ENGINE_URL": ""})
	c, err := Load()
	if err != nil {
		t.Fatal(err)
	}
	if c.LogsWait != 2*time.Minute {
		t.Errorf("LOGS_WAIT default = %s, want 2m", c.LogsWait)
	}
}
