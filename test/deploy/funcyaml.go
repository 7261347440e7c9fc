// Package deploy checks what deploys the functions: the func.yaml files,
// the Knative Services func makes of them, and the kustomize base in config/.
// The unit tests decode every file strictly against the schemas it is read
// with; the end-to-end tests (build tag e2e) send the rendered objects to a
// real API server with the Knative and Tekton CRDs, decode them strictly into
// the Knative and Kubernetes Go types, and ask the API server what each
// ServiceAccount may do.
package deploy

import (
	"errors"
	"fmt"
	"os"
	"regexp"
	"time"

	"k8s.io/apimachinery/pkg/api/resource"
	"sigs.k8s.io/yaml"
)

// Function mirrors func's func.yaml schema (knative/func
// schema/func_yaml-schema.json, specVersion 0.36.0): every property of every
// object, nothing else, so a strict decode rejects what func would not read.
type Function struct {
	SpecVersion      string      `json:"specVersion"`
	Name             string      `json:"name,omitempty"`
	Domain           string      `json:"domain,omitempty"`
	Runtime          string      `json:"runtime,omitempty"`
	Registry         string      `json:"registry,omitempty"`
	RegistryInsecure bool        `json:"registryInsecure,omitempty"`
	Image            string      `json:"image,omitempty"`
	Namespace        string      `json:"namespace,omitempty"`
	Deployer         string      `json:"deployer,omitempty"`
	Created          string      `json:"created"`
	Invoke           string      `json:"invoke,omitempty"`
	Build            *BuildSpec  `json:"build,omitempty"`
	Run              *RunSpec    `json:"run,omitempty"`
	Deploy           *DeploySpec `json:"deploy,omitempty"`
}

// BuildSpec is func.yaml's build section.
type BuildSpec struct {
	Git                *Git              `json:"git,omitempty"`
	BuilderImages      map[string]string `json:"builderImages,omitempty"`
	Buildpacks         []string          `json:"buildpacks,omitempty"`
	Builder            string            `json:"builder,omitempty"`
	BuildEnvs          []Env             `json:"buildEnvs,omitempty"`
	PVCSize            string            `json:"pvcSize,omitempty"`
	RemoteStorageClass string            `json:"remoteStorageClass,omitempty"`
	BaseImage          string            `json:"baseImage,omitempty"`
	Volumes            []MountSpec       `json:"volumes,omitempty"`
}

// Git is build.git.
type Git struct {
	URL        string `json:"url,omitempty"`
	Revision   string `json:"revision,omitempty"`
	ContextDir string `json:"contextDir,omitempty"`
}

// MountSpec is one of build.volumes.
type MountSpec struct {
	HostPath string `json:"hostPath"`
	Path     string `json:"path"`
}

// RunSpec is func.yaml's run section.
type RunSpec struct {
	Volumes      []Volume     `json:"volumes,omitempty"`
	Envs         []Env        `json:"envs,omitempty"`
	StartTimeout *int64       `json:"startTimeout,omitempty"`
	Kafka        *KafkaConfig `json:"kafka,omitempty"`
}

// KafkaConfig is run.kafka.
type KafkaConfig struct {
	Brokers       string `json:"brokers"`
	Topic         string `json:"topic"`
	ConsumerGroup string `json:"consumerGroup"`
}

// Env is one of run.envs or build.buildEnvs.
type Env struct {
	Name  *string `json:"name,omitempty"`
	Value *string `json:"value,omitempty"`
}

// Volume is one of run.volumes.
type Volume struct {
	Secret                *string                `json:"secret,omitempty"`
	ConfigMap             *string                `json:"configMap,omitempty"`
	PersistentVolumeClaim *PersistentVolumeClaim `json:"persistentVolumeClaim,omitempty"`
	EmptyDir              *EmptyDir              `json:"emptyDir,omitempty"`
	Path                  *string                `json:"path,omitempty"`
}

// PersistentVolumeClaim is a volume's persistentVolumeClaim.
type PersistentVolumeClaim struct {
	ClaimName *string `json:"claimName,omitempty"`
	ReadOnly  bool    `json:"readOnly,omitempty"`
}

// EmptyDir is a volume's emptyDir.
type EmptyDir struct {
	Medium    string  `json:"medium,omitempty"`
	SizeLimit *string `json:"sizeLimit,omitempty"`
}

// DeploySpec is func.yaml's deploy section.
type DeploySpec struct {
	Namespace          string                `json:"namespace,omitempty"`
	Image              string                `json:"image,omitempty"`
	Annotations        map[string]string     `json:"annotations,omitempty"`
	Options            *Options              `json:"options,omitempty"`
	Labels             []Label               `json:"labels,omitempty"`
	HealthEndpoints    *HealthEndpoints      `json:"healthEndpoints,omitempty"`
	ServiceAccountName string                `json:"serviceAccountName,omitempty"`
	ImagePullSecret    string                `json:"imagePullSecret,omitempty"`
	Deployer           string                `json:"deployer,omitempty"`
	Subscriptions      []KnativeSubscription `json:"subscriptions,omitempty"`
	ManagementDisabled bool                  `json:"managementDisabled,omitempty"`
}

// Options is deploy.options.
type Options struct {
	Scale     *ScaleOptions     `json:"scale,omitempty"`
	Resources *ResourcesOptions `json:"resources,omitempty"`
}

// ScaleOptions is deploy.options.scale.
type ScaleOptions struct {
	Min         *int64   `json:"min,omitempty"`
	Max         *int64   `json:"max,omitempty"`
	Metric      *string  `json:"metric,omitempty"`
	Target      *float64 `json:"target,omitempty"`
	Utilization *float64 `json:"utilization,omitempty"`
}

// ResourcesOptions is deploy.options.resources.
type ResourcesOptions struct {
	Requests *ResourcesRequestsOptions `json:"requests,omitempty"`
	Limits   *ResourcesLimitsOptions   `json:"limits,omitempty"`
}

// ResourcesRequestsOptions is deploy.options.resources.requests.
type ResourcesRequestsOptions struct {
	CPU    *string `json:"cpu,omitempty"`
	Memory *string `json:"memory,omitempty"`
}

// ResourcesLimitsOptions is deploy.options.resources.limits.
type ResourcesLimitsOptions struct {
	CPU         *string `json:"cpu,omitempty"`
	Memory      *string `json:"memory,omitempty"`
	Concurrency *int64  `json:"concurrency,omitempty"`
}

// Label is one of deploy.labels.
type Label struct {
	Key   *string `json:"key,omitempty"`
	Value *string `json:"value,omitempty"`
}

// HealthEndpoints is deploy.healthEndpoints.
type HealthEndpoints struct {
	Liveness  string `json:"liveness,omitempty"`
	Readiness string `json:"readiness,omitempty"`
}

// KnativeSubscription is one of deploy.subscriptions.
type KnativeSubscription struct {
	Source  string            `json:"source"`
	Filters map[string]string `json:"filters,omitempty"`
}

// Patterns and enums of the schema, and func's env value forms
// (knative/func pkg/functions/function.go, function_envs.go).
var (
	namePattern       = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)
	envNamePattern    = regexp.MustCompile(`^[-._a-zA-Z][-._a-zA-Z0-9]*$`)
	labelKeyPattern   = regexp.MustCompile(`^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$`)
	labelValuePattern = regexp.MustCompile(`^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$`)
	quantityPattern   = regexp.MustCompile(`^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$`)

	wholeSecret      = regexp.MustCompile(`^{{\s*secret:((?:\w|['-]\w)+)\s*}}$`)
	keyFromSecret    = regexp.MustCompile(`^{{\s*secret:((?:\w|['-]\w)+):([-._a-zA-Z0-9]+)\s*}}$`)
	wholeConfigMap   = regexp.MustCompile(`^{{\s*configMap:((?:\w|['-]\w)+)\s*}}$`)
	keyFromConfigMap = regexp.MustCompile(`^{{\s*configMap:((?:\w|['-]\w)+):([-._a-zA-Z0-9]+)\s*}}$`)
	localEnv         = regexp.MustCompile(`^{{\s*env:(\w+)\s*}}$`)
)

// builders func accepts. The schema's enum says pack and s2i only; func's
// build command also offers host (knative/func cmd/build.go), the builder
// this project uses.
var builders = map[string]bool{"": true, "pack": true, "s2i": true, "host": true}

// LoadFunction reads and decodes the func.yaml at path.
func LoadFunction(path string) (Function, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return Function{}, err
	}
	f, err := DecodeFunction(b)
	if err != nil {
		return f, fmt.Errorf("%s: %w", path, err)
	}
	return f, nil
}

// DecodeFunction decodes a func.yaml strictly (unknown or duplicate fields
// are errors) and validates it against the schema's constraints and func's
// own rules for envs.
func DecodeFunction(b []byte) (Function, error) {
	var f Function
	if err := yaml.UnmarshalStrict(b, &f); err != nil {
		return f, fmt.Errorf("decode func.yaml: %w", err)
	}
	return f, f.Validate()
}

// Validate checks the schema's required properties, patterns and enums, and
// the env and label forms func accepts. All problems are reported at once.
func (f Function) Validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }

	if f.SpecVersion == "" {
		bad("specVersion is required")
	}
	if _, err := time.Parse(time.RFC3339, f.Created); err != nil {
		bad("created %q is not a date-time", f.Created)
	}
	if f.Name != "" && !namePattern.MatchString(f.Name) {
		bad("name %q does not match %s", f.Name, namePattern)
	}
	if !oneOf(f.Invoke, "", "http", "cloudevent") {
		bad("invoke %q is not http or cloudevent", f.Invoke)
	}
	if !oneOf(f.Deployer, "", "knative", "raw", "keda") {
		bad("deployer %q is not knative, raw or keda", f.Deployer)
	}
	if b := f.Build; b != nil {
		if !builders[b.Builder] {
			bad("build.builder %q is not pack, s2i or host", b.Builder)
		}
		for i, e := range b.BuildEnvs {
			if e.Name == nil || e.Value == nil {
				bad("build.buildEnvs[%d] needs a name and a value", i)
			}
		}
	}
	if r := f.Run; r != nil {
		errs = append(errs, validateEnvs(r.Envs)...)
		for i, v := range r.Volumes {
			n := 0
			for _, set := range []bool{v.Secret != nil, v.ConfigMap != nil, v.PersistentVolumeClaim != nil, v.EmptyDir != nil} {
				if set {
					n++
				}
			}
			if n != 1 || v.Path == nil {
				bad("run.volumes[%d] needs exactly one source and a path", i)
			}
		}
		if k := r.Kafka; k != nil && (k.Brokers == "" || k.Topic == "" || k.ConsumerGroup == "") {
			bad("run.kafka needs brokers, topic and consumerGroup")
		}
	}
	if d := f.Deploy; d != nil {
		if !oneOf(d.Deployer, "", "knative", "raw", "keda") {
			bad("deploy.deployer %q is not knative, raw or keda", d.Deployer)
		}
		for i, l := range d.Labels {
			switch {
			case l.Key == nil || !labelKeyPattern.MatchString(*l.Key):
				bad("deploy.labels[%d]: invalid key", i)
			case l.Value != nil && !labelValuePattern.MatchString(*l.Value) && !localEnv.MatchString(*l.Value):
				bad("deploy.labels[%d]: invalid value %q", i, *l.Value)
			}
		}
		for i, s := range d.Subscriptions {
			if s.Source == "" {
				bad("deploy.subscriptions[%d].source is required", i)
			}
		}
		if o := d.Options; o != nil {
			errs = append(errs, validateOptions(o)...)
		}
	}
	return errors.Join(errs...)
}

// validateEnvs applies func's ValidateEnvs: a named entry has a plain value
// or one of the {{ env: }}, {{ secret:name:key }}, {{ configMap:name:key }}
// forms; an unnamed entry imports a whole Secret or ConfigMap.
func validateEnvs(envs []Env) []error {
	var errs []error
	seen := map[string]bool{}
	for i, e := range envs {
		switch {
		case e.Value == nil:
			errs = append(errs, fmt.Errorf("run.envs[%d] has no value", i))
		case e.Name == nil:
			if !wholeSecret.MatchString(*e.Value) && !wholeConfigMap.MatchString(*e.Value) {
				errs = append(errs, fmt.Errorf("run.envs[%d]: %q is not {{ secret:name }} or {{ configMap:name }}", i, *e.Value))
			}
		default:
			if !envNamePattern.MatchString(*e.Name) {
				errs = append(errs, fmt.Errorf("run.envs[%d]: invalid name %q", i, *e.Name))
			}
			if seen[*e.Name] {
				errs = append(errs, fmt.Errorf("run.envs[%d]: duplicate name %q", i, *e.Name))
			}
			seen[*e.Name] = true
			v := *e.Value
			if len(v) >= 2 && v[:2] == "{{" && !localEnv.MatchString(v) && !keyFromSecret.MatchString(v) && !keyFromConfigMap.MatchString(v) {
				errs = append(errs, fmt.Errorf("run.envs[%d] %s: %q is not {{ env:X }}, {{ secret:name:key }} or {{ configMap:name:key }}", i, *e.Name, v))
			}
		}
	}
	return errs
}

func validateOptions(o *Options) []error {
	var errs []error
	if s := o.Scale; s != nil {
		if s.Min != nil && *s.Min < 0 {
			errs = append(errs, fmt.Errorf("deploy.options.scale.min %d is negative", *s.Min))
		}
		if s.Max != nil && *s.Max < 0 {
			errs = append(errs, fmt.Errorf("deploy.options.scale.max %d is negative", *s.Max))
		}
		if s.Min != nil && s.Max != nil && *s.Max > 0 && *s.Min > *s.Max {
			errs = append(errs, fmt.Errorf("deploy.options.scale.min %d exceeds max %d", *s.Min, *s.Max))
		}
		if s.Metric != nil && !oneOf(*s.Metric, "concurrency", "rps") {
			errs = append(errs, fmt.Errorf("deploy.options.scale.metric %q is not concurrency or rps", *s.Metric))
		}
		if s.Target != nil && *s.Target < 0 {
			errs = append(errs, fmt.Errorf("deploy.options.scale.target is negative"))
		}
		if s.Utilization != nil && (*s.Utilization < 1 || *s.Utilization > 100) {
			errs = append(errs, fmt.Errorf("deploy.options.scale.utilization is not within 1-100"))
		}
	}
	if r := o.Resources; r != nil {
		quantity := func(name string, q *string) {
			if q == nil {
				return
			}
			if _, err := resource.ParseQuantity(*q); err != nil || !quantityPattern.MatchString(*q) {
				errs = append(errs, fmt.Errorf("deploy.options.resources.%s %q is not a quantity", name, *q))
			}
		}
		if q := r.Requests; q != nil {
			quantity("requests.cpu", q.CPU)
			quantity("requests.memory", q.Memory)
		}
		if l := r.Limits; l != nil {
			quantity("limits.cpu", l.CPU)
			quantity("limits.memory", l.Memory)
			if l.Concurrency != nil && *l.Concurrency < 0 {
				errs = append(errs, fmt.Errorf("deploy.options.resources.limits.concurrency is negative"))
			}
		}
	}
	return errs
}

// Env returns the value of the plainly named env entry, if any.
func (f Function) Env(name string) (string, bool) {
	if f.Run == nil {
		return "", false
	}
	for _, e := range f.Run.Envs {
		if e.Name != nil && *e.Name == name && e.Value != nil {
			return *e.Value, true
		}
	}
	return "", false
}

// ImportedConfigMaps and ImportedSecrets name the ConfigMaps and Secrets
// whose keys all become env vars ({{ configMap:name }}, {{ secret:name }}).
func (f Function) ImportedConfigMaps() []string { return f.imported(wholeConfigMap) }

// ImportedSecrets names the Secrets imported whole; see ImportedConfigMaps.
func (f Function) ImportedSecrets() []string { return f.imported(wholeSecret) }

func (f Function) imported(re *regexp.Regexp) []string {
	if f.Run == nil {
		return nil
	}
	var names []string
	for _, e := range f.Run.Envs {
		if e.Name == nil && e.Value != nil {
			if m := re.FindStringSubmatch(*e.Value); m != nil {
				names = append(names, m[1])
			}
		}
	}
	return names
}

func oneOf(s string, values ...string) bool {
	for _, v := range values {
		if s == v {
			return true
		}
	}
	return false
}
