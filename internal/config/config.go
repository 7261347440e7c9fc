// Package config loads and validates the functions' configuration from the
// environment. It is the only package that reads environment variables.
package config

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/kelseyhightower/envconfig"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/boomerang-io/flow-tekton-handler/internal/contract"
	"github.com/boomerang-io/flow-tekton-handler/internal/tekton"
)

// Roles a process can run.
const (
	RoleHandler = "handler"
	RoleSink    = "sink"
	RoleLogs    = "logs"
)

// Sender authentication modes (AUTH).
const (
	AuthNone  = "none"
	AuthToken = "token"
)

// namespaceFile holds the pod's namespace when running in a cluster.
const namespaceFile = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"

// Config is every setting of both functions. Field tags name the environment
// variables; the README's configuration table lists the same.
type Config struct {
	// Function selects the role: handler, sink or logs. Empty means the
	// program's name picks it (RoleFromProgram).
	Function string `envconfig:"FUNCTION"`

	Namespace     string        `envconfig:"NAMESPACE"`
	ProductPrefix string        `envconfig:"PRODUCT_PREFIX" default:"bmrg-flow"`
	Instance      string        `envconfig:"INSTANCE" default:"bmrg-flow"`
	Kubeconfig    string        `envconfig:"KUBECONFIG"`
	KubeQPS       float32       `envconfig:"KUBE_QPS" default:"-1"`
	KubeBurst     int           `envconfig:"KUBE_BURST" default:"100"`
	KubeTimeout   time.Duration `envconfig:"KUBE_TIMEOUT" default:"10s"`

	EngineURL         string        `envconfig:"ENGINE_URL"`
	EngineToken       string        `envconfig:"ENGINE_TOKEN"`
	EngineTokenFile   string        `envconfig:"ENGINE_TOKEN_FILE"`
	EngineTimeout     time.Duration `envconfig:"ENGINE_TIMEOUT" default:"5s"`
	EngineRetryBudget time.Duration `envconfig:"ENGINE_RETRY_BUDGET" default:"20s"`

	DefaultTimeout   time.Duration `envconfig:"DEFAULT_TIMEOUT" default:"60m"`
	ImagePullPolicy  string        `envconfig:"IMAGE_PULL_POLICY" default:"IfNotPresent"`
	ImagePullSecret  string        `envconfig:"IMAGE_PULL_SECRET"`
	ServiceAccount   string        `envconfig:"SERVICE_ACCOUNT"`
	NodeSelectorJSON string        `envconfig:"NODE_SELECTOR"`
	TolerationsJSON  string        `envconfig:"TOLERATIONS"`
	HostAliasesJSON  string        `envconfig:"HOST_ALIASES"`
	DataMemory       bool          `envconfig:"DATA_MEMORY"`
	Debug            bool          `envconfig:"DEBUG"`

	ProxyHost   string `envconfig:"PROXY_HOST"`
	ProxyPort   string `envconfig:"PROXY_PORT"`
	ProxyIgnore string `envconfig:"PROXY_IGNORE"`

	StorageClass      string `envconfig:"STORAGE_CLASS"`
	StorageSize       string `envconfig:"STORAGE_SIZE" default:"1Gi"`
	StorageAccessMode string `envconfig:"STORAGE_ACCESS_MODE" default:"ReadWriteMany"`

	MaxEventBytes  int64  `envconfig:"MAX_EVENT_BYTES" default:"1048576"`
	DeletionPolicy string `envconfig:"DELETION_POLICY" default:"Never"`

	SweepLimit    int           `envconfig:"SWEEP_LIMIT" default:"50"`
	SweepInterval time.Duration `envconfig:"SWEEP_INTERVAL" default:"0s"`

	// LogsWait bounds each wait of the logs role for a task's pod, or a
	// step, to start; a stream whose wait runs out ends.
	LogsWait time.Duration `envconfig:"LOGS_WAIT" default:"2m"`

	// Auth is none (anyone who reaches the Service may send) or token
	// (a Kubernetes bearer token for AuthAudience, checked by TokenReview).
	Auth          string `envconfig:"AUTH" default:"none"`
	AuthAudience  string `envconfig:"AUTH_AUDIENCE"`
	AuthAllowList string `envconfig:"AUTH_ALLOW"`
	// KService is the Knative Service's name, which Knative Serving sets
	// in every container; it names the default AuthAudience.
	KService string `envconfig:"K_SERVICE"`

	// Parsed forms of the JSON settings, filled by Validate.
	NodeSelector map[string]string   `ignored:"true"`
	Tolerations  []corev1.Toleration `ignored:"true"`
	HostAliases  []corev1.HostAlias  `ignored:"true"`
	// AuthAllow is AUTH_ALLOW as "namespace:serviceaccount" entries.
	AuthAllow []string `ignored:"true"`
}

// Load reads the environment into a Config, fills defaults that depend on
// the runtime (namespace, token file) and validates it.
func Load() (Config, error) {
	var c Config
	if err := envconfig.Process("", &c); err != nil {
		return c, fmt.Errorf("configuration: %w", err)
	}
	if c.Function == "" {
		c.Function = RoleFromProgram(os.Args[0])
	}
	if c.Namespace == "" {
		c.Namespace = podNamespace()
	}
	if c.Auth == AuthToken && c.AuthAudience == "" && c.KService != "" {
		c.AuthAudience = ServiceAudience(c.Namespace, c.KService)
	}
	if c.EngineToken == "" && c.EngineTokenFile != "" {
		b, err := os.ReadFile(c.EngineTokenFile)
		if err != nil {
			return c, fmt.Errorf("configuration: ENGINE_TOKEN_FILE: %w", err)
		}
		c.EngineToken = strings.TrimSpace(string(b))
	}
	if err := c.Validate(); err != nil {
		return c, fmt.Errorf("configuration: %w", err)
	}
	return c, nil
}

// ServiceAudience is the OIDC audience of the Knative Service name in
// namespace ns, in Knative Eventing's form <group>/<kind>/<namespace>/<name>
// (knative/eventing pkg/auth GetAudience): the audience an Addressable
// announces in status.address.audience and that a Trigger's dispatcher
// requests a token for.
func ServiceAudience(ns, name string) string {
	return strings.ToLower("serving.knative.dev/service/" + ns + "/" + name)
}

// RoleFromProgram picks the role from a program path: "sink" or "logs" for
// a program of that name, the handler otherwise.
func RoleFromProgram(path string) string {
	switch base := filepath.Base(path); base {
	case RoleSink, RoleLogs:
		return base
	}
	return RoleHandler
}

func podNamespace() string {
	b, err := os.ReadFile(namespaceFile)
	if err != nil || len(strings.TrimSpace(string(b))) == 0 {
		return "default"
	}
	return strings.TrimSpace(string(b))
}

// Validate checks every setting and parses the JSON ones. All problems are
// reported at once.
func (c *Config) Validate() error {
	var p problems
	c.checkIdentity(&p)
	c.checkLimits(&p)
	c.checkPodTemplate(&p)
	c.checkStorage(&p)
	c.checkHousekeeping(&p)
	c.checkAuth(&p)
	return errors.Join(p...)
}

// problems collects what Validate finds wrong, each naming its variable.
type problems []error

// add records a problem with the variable name.
func (p *problems) add(name, format string, args ...any) {
	*p = append(*p, fmt.Errorf("%s: %s", name, fmt.Sprintf(format, args...)))
}

// invalid records value of the variable name as invalid when msgs, the
// answer of a k8s.io validation function, is not empty.
func (p *problems) invalid(name, value string, msgs []string) {
	if len(msgs) > 0 {
		p.add(name, "%q: %s", value, strings.Join(msgs, "; "))
	}
}

// optionalSubdomain checks a variable that, when set, names an object.
func (p *problems) optionalSubdomain(name, value string) {
	if value != "" {
		p.invalid(name, value, validation.IsDNS1123Subdomain(value))
	}
}

// checkIdentity checks the role, where the objects live, how they are named
// and where the Engine is.
func (c *Config) checkIdentity(p *problems) {
	switch c.Function {
	case "", RoleHandler, RoleSink, RoleLogs:
	default:
		p.add("FUNCTION", "%q is not handler, sink or logs", c.Function)
	}
	p.invalid("NAMESPACE", c.Namespace, validation.IsDNS1123Label(c.Namespace))
	// The prefix makes names like <prefix>-task-<24 hex>; keep room for them.
	if msgs := validation.IsDNS1123Label(c.ProductPrefix); len(msgs) > 0 || len(c.ProductPrefix) > 20 {
		p.add("PRODUCT_PREFIX", "%q must be a DNS-1123 label of at most 20 characters", c.ProductPrefix)
	}
	p.invalid("INSTANCE", c.Instance, validation.IsValidLabelValue(c.Instance))
	// The logs role never calls the Engine; the others cannot work without it.
	if u, err := url.Parse(c.EngineURL); c.Function != RoleLogs && (err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "") {
		p.add("ENGINE_URL", "%q is not an http(s) URL", c.EngineURL)
	}
}

// checkLimits checks the rates, timeouts and waits of the calls to the
// apiserver and the Engine.
func (c *Config) checkLimits(p *problems) {
	if c.LogsWait <= 0 {
		p.add("LOGS_WAIT", "must be positive, got %s", c.LogsWait)
	}
	// A negative KUBE_QPS turns client-go's own limiter off; zero would
	// mean client-go's default of 5, which no one asks for on purpose.
	if c.KubeQPS == 0 {
		p.add("KUBE_QPS", "must be positive (a limit) or negative (no client-side limit), got 0")
	}
	if c.KubeQPS > 0 && c.KubeBurst <= 0 {
		p.add("KUBE_BURST", "must be positive with a positive KUBE_QPS, got %d", c.KubeBurst)
	}
	for name, d := range map[string]time.Duration{"KUBE_TIMEOUT": c.KubeTimeout, "ENGINE_TIMEOUT": c.EngineTimeout, "DEFAULT_TIMEOUT": c.DefaultTimeout} {
		if d <= 0 {
			p.add(name, "must be positive, got %s", d)
		}
	}
	if c.EngineRetryBudget < c.EngineTimeout {
		p.add("ENGINE_RETRY_BUDGET", "%s is shorter than ENGINE_TIMEOUT %s", c.EngineRetryBudget, c.EngineTimeout)
	}
	if c.EngineRetryBudget > 25*time.Second {
		p.add("ENGINE_RETRY_BUDGET", "%s exceeds 25s; the function server answers within 30s", c.EngineRetryBudget)
	}
}

// checkPodTemplate checks the settings of the task pods and parses the JSON
// ones.
func (c *Config) checkPodTemplate(p *problems) {
	switch corev1.PullPolicy(c.ImagePullPolicy) {
	case corev1.PullAlways, corev1.PullIfNotPresent, corev1.PullNever:
	default:
		p.add("IMAGE_PULL_POLICY", "%q is not Always, IfNotPresent or Never", c.ImagePullPolicy)
	}
	p.optionalSubdomain("IMAGE_PULL_SECRET", c.ImagePullSecret)
	p.optionalSubdomain("SERVICE_ACCOUNT", c.ServiceAccount)
	c.parsePodJSON(p)
	if c.ProxyHost != "" && c.ProxyPort == "" {
		p.add("PROXY_PORT", "required when PROXY_HOST is set")
	}
}

// parsePodJSON parses and checks NODE_SELECTOR, TOLERATIONS and
// HOST_ALIASES.
func (c *Config) parsePodJSON(p *problems) {
	if err := decodeJSON(c.NodeSelectorJSON, &c.NodeSelector); err != nil {
		p.add("NODE_SELECTOR", "%v", err)
	}
	for k, v := range c.NodeSelector {
		if len(validation.IsQualifiedName(k)) > 0 || len(validation.IsValidLabelValue(v)) > 0 {
			p.add("NODE_SELECTOR", "invalid label %q=%q", k, v)
		}
	}
	if err := decodeJSON(c.TolerationsJSON, &c.Tolerations); err != nil {
		p.add("TOLERATIONS", "%v", err)
	}
	for i, t := range c.Tolerations {
		if err := validToleration(t); err != nil {
			p.add("TOLERATIONS", "[%d]: %v", i, err)
		}
	}
	if err := decodeJSON(c.HostAliasesJSON, &c.HostAliases); err != nil {
		p.add("HOST_ALIASES", "%v", err)
	}
	for i, h := range c.HostAliases {
		if len(validation.IsValidIP(nil, h.IP)) > 0 {
			p.add("HOST_ALIASES", "[%d]: %q is not an IP address", i, h.IP)
		}
	}
}

// checkStorage checks the settings of the workspace claims.
func (c *Config) checkStorage(p *problems) {
	p.optionalSubdomain("STORAGE_CLASS", c.StorageClass)
	if q, err := resource.ParseQuantity(c.StorageSize); err != nil || q.Sign() <= 0 {
		p.add("STORAGE_SIZE", "%q is not a positive quantity such as 1Gi", c.StorageSize)
	}
	if !tekton.ValidAccessMode(corev1.PersistentVolumeAccessMode(c.StorageAccessMode)) {
		p.add("STORAGE_ACCESS_MODE", "%q is not a PersistentVolume access mode", c.StorageAccessMode)
	}
}

// checkHousekeeping checks the event size bound and how finished TaskRuns
// are deleted and swept.
func (c *Config) checkHousekeeping(p *problems) {
	if c.MaxEventBytes <= 0 {
		p.add("MAX_EVENT_BYTES", "must be positive")
	}
	if contract.DeletionPolicy(c.DeletionPolicy) != c.DeletionPolicy { // spelt exactly
		p.add("DELETION_POLICY", "%q is not Never, OnSuccess or Always", c.DeletionPolicy)
	}
	if c.SweepLimit <= 0 {
		p.add("SWEEP_LIMIT", "must be positive")
	}
	if c.SweepInterval < 0 {
		p.add("SWEEP_INTERVAL", "must not be negative")
	}
}

// checkAuth checks the sender authentication settings and parses
// AUTH_ALLOW.
func (c *Config) checkAuth(p *problems) {
	switch c.Auth {
	case AuthNone:
		if c.AuthAllowList != "" {
			p.add("AUTH_ALLOW", "is set but AUTH is none: nothing would be checked")
		}
	case AuthToken:
		if c.AuthAudience == "" {
			p.add("AUTH_AUDIENCE", "required with AUTH=token outside Knative Serving (K_SERVICE is unset)")
		}
	default:
		p.add("AUTH", "%q is not none or token", c.Auth)
	}
	allow, err := parseAllow(c.AuthAllowList)
	if err != nil {
		p.add("AUTH_ALLOW", "%v", err)
	}
	c.AuthAllow = allow
}

// parseAllow splits a comma list of namespace:serviceaccount entries.
func parseAllow(s string) ([]string, error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	var out []string
	for _, item := range strings.Split(s, ",") {
		item = strings.TrimSpace(item)
		ns, sa, ok := strings.Cut(item, ":")
		if !ok || len(validation.IsDNS1123Label(ns)) > 0 || len(validation.IsDNS1123Subdomain(sa)) > 0 {
			return nil, fmt.Errorf("%q is not namespace:serviceaccount", item)
		}
		out = append(out, item)
	}
	return out, nil
}

// decodeJSON strictly decodes s into v; an empty string leaves v unset.
func decodeJSON(s string, v any) error {
	if strings.TrimSpace(s) == "" {
		return nil
	}
	dec := json.NewDecoder(strings.NewReader(s))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("invalid JSON: %w", err)
	}
	return nil
}

// validToleration applies the rules the apiserver applies to a toleration.
func validToleration(t corev1.Toleration) error {
	if t.Key != "" {
		if msgs := validation.IsQualifiedName(t.Key); len(msgs) > 0 {
			return fmt.Errorf("key %q: %s", t.Key, strings.Join(msgs, "; "))
		}
	}
	switch t.Operator {
	case corev1.TolerationOpExists:
		if t.Value != "" {
			return fmt.Errorf("value must be empty when operator is Exists")
		}
	case corev1.TolerationOpEqual, "":
		if t.Key == "" {
			return fmt.Errorf("an empty key requires operator Exists")
		}
	default:
		return fmt.Errorf("operator %q is not Equal or Exists", t.Operator)
	}
	switch t.Effect {
	case "", corev1.TaintEffectNoSchedule, corev1.TaintEffectPreferNoSchedule, corev1.TaintEffectNoExecute:
	default:
		return fmt.Errorf("effect %q is not NoSchedule, PreferNoSchedule or NoExecute", t.Effect)
	}
	return nil
}
