package deploy

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/yaml"
)

// Built is the value KnativeService gives the BUILT env var; func sets the
// deploy time there.
const Built = "20261125T000000"

// Knative Service as func's Knative deployer writes it (knative/func
// pkg/knative/deployer.go generateNewService, setServiceOptions;
// pkg/k8s/deployer.go ProcessEnvs, SetHealthEndpoints, SetSecurityContext;
// pkg/deployer/common.go). Only the fields func sets.
type knativeService struct {
	APIVersion string     `json:"apiVersion"`
	Kind       string     `json:"kind"`
	Metadata   objectMeta `json:"metadata"`
	Spec       struct {
		Template struct {
			Metadata objectMeta   `json:"metadata"`
			Spec     revisionSpec `json:"spec"`
		} `json:"template"`
	} `json:"spec"`
}

type objectMeta struct {
	Name        string            `json:"name,omitempty"`
	Labels      map[string]string `json:"labels,omitempty"`
	Annotations map[string]string `json:"annotations,omitempty"`
}

type revisionSpec struct {
	ContainerConcurrency *int64                        `json:"containerConcurrency,omitempty"`
	ServiceAccountName   string                        `json:"serviceAccountName,omitempty"`
	ImagePullSecrets     []corev1.LocalObjectReference `json:"imagePullSecrets,omitempty"`
	Containers           []corev1.Container            `json:"containers"`
}

// KnativeService renders the serving.knative.dev/v1 Service that
// `func deploy --image image` creates for f, as YAML. Settings func would
// take from the local machine (env interpolation) or that this project does
// not use (volumes, Kafka, subscriptions) are errors, so the rendering never
// silently differs from func's.
func KnativeService(f Function, image string) ([]byte, error) {
	if f.Run != nil && (len(f.Run.Volumes) > 0 || f.Run.Kafka != nil) {
		return nil, errors.New("run.volumes and run.kafka are not rendered")
	}
	if f.Deploy == nil {
		f.Deploy = &DeploySpec{}
	}
	if len(f.Deploy.Subscriptions) > 0 {
		return nil, errors.New("deploy.subscriptions are not rendered")
	}

	labels := map[string]string{
		"function.knative.dev/name":    f.Name,
		"function.knative.dev/runtime": f.Runtime,
	}
	for _, l := range f.Deploy.Labels {
		v := ""
		if l.Value != nil {
			if strings.HasPrefix(*l.Value, "{{") {
				return nil, fmt.Errorf("label %s: local env values are not rendered", *l.Key)
			}
			v = *l.Value
		}
		labels[*l.Key] = v
	}
	labels["boson.dev/function"] = "true"
	annotations := map[string]string{"function.knative.dev/deployer": "knative"}
	for k, v := range f.Deploy.Annotations {
		annotations[k] = v
	}

	c := corev1.Container{Image: image}
	c.SecurityContext = &corev1.SecurityContext{
		RunAsNonRoot:             ptr(true),
		AllowPrivilegeEscalation: ptr(false),
		Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
		SeccompProfile:           &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
	}
	liveness, readiness := "/health/liveness", "/health/readiness"
	if h := f.Deploy.HealthEndpoints; h != nil {
		if h.Liveness != "" {
			liveness = h.Liveness
		}
		if h.Readiness != "" {
			readiness = h.Readiness
		}
	}
	c.LivenessProbe = &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: liveness, Port: intstr.FromInt32(8080)}}}
	c.ReadinessProbe = &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: readiness, Port: intstr.FromInt32(8080)}}}

	var err error
	if c.Env, c.EnvFrom, err = processEnvs(f); err != nil {
		return nil, err
	}

	var s knativeService
	s.APIVersion, s.Kind = "serving.knative.dev/v1", "Service"
	s.Metadata = objectMeta{Name: f.Name, Labels: labels, Annotations: annotations}
	tmpl := &s.Spec.Template
	tmpl.Metadata = objectMeta{Labels: copyMap(labels), Annotations: copyMap(annotations)}
	tmpl.Spec.ServiceAccountName = f.Deploy.ServiceAccountName
	if f.Deploy.ImagePullSecret != "" {
		tmpl.Spec.ImagePullSecrets = []corev1.LocalObjectReference{{Name: f.Deploy.ImagePullSecret}}
	}
	if err := setOptions(tmpl.Metadata.Annotations, &c, &tmpl.Spec, f.Deploy.Options); err != nil {
		return nil, err
	}
	tmpl.Spec.Containers = []corev1.Container{c}
	return yaml.Marshal(s)
}

// processEnvs follows func's ProcessEnvs: BUILT first, then the entries in
// order, then ADDRESS=0.0.0.0 unless set; unnamed entries become envFrom.
func processEnvs(f Function) ([]corev1.EnvVar, []corev1.EnvFromSource, error) {
	var envs []Env
	if f.Run != nil {
		envs = f.Run.Envs
	}
	env := []corev1.EnvVar{{Name: "BUILT", Value: Built}}
	envFrom := []corev1.EnvFromSource{}
	hasAddress := false
	for _, e := range envs {
		if e.Value == nil {
			return nil, nil, errors.New("env entry without a value")
		}
		v := *e.Value
		if e.Name == nil {
			if m := wholeConfigMap.FindStringSubmatch(v); m != nil {
				envFrom = append(envFrom, corev1.EnvFromSource{ConfigMapRef: &corev1.ConfigMapEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: m[1]}}})
				continue
			}
			if m := wholeSecret.FindStringSubmatch(v); m != nil {
				envFrom = append(envFrom, corev1.EnvFromSource{SecretRef: &corev1.SecretEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: m[1]}}})
				continue
			}
			return nil, nil, fmt.Errorf("env entry %q", v)
		}
		name := *e.Name
		hasAddress = hasAddress || name == "ADDRESS"
		switch m1, m2 := keyFromConfigMap.FindStringSubmatch(v), keyFromSecret.FindStringSubmatch(v); {
		case m1 != nil:
			env = append(env, corev1.EnvVar{Name: name, ValueFrom: &corev1.EnvVarSource{ConfigMapKeyRef: &corev1.ConfigMapKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: m1[1]}, Key: m1[2]}}})
		case m2 != nil:
			env = append(env, corev1.EnvVar{Name: name, ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: m2[1]}, Key: m2[2]}}})
		case strings.HasPrefix(v, "{{"):
			return nil, nil, fmt.Errorf("env %s: %q is not rendered", name, v)
		default:
			env = append(env, corev1.EnvVar{Name: name, Value: v})
		}
	}
	if !hasAddress {
		env = append(env, corev1.EnvVar{Name: "ADDRESS", Value: "0.0.0.0"})
	}
	return env, envFrom, nil
}

// setOptions follows func's setServiceOptions: autoscaling annotations on
// the revision template, resources and containerConcurrency.
func setOptions(annotations map[string]string, c *corev1.Container, spec *revisionSpec, o *Options) error {
	if o == nil {
		return nil
	}
	if s := o.Scale; s != nil {
		if s.Min != nil {
			annotations["autoscaling.knative.dev/min-scale"] = strconv.FormatInt(*s.Min, 10)
		}
		if s.Max != nil {
			annotations["autoscaling.knative.dev/max-scale"] = strconv.FormatInt(*s.Max, 10)
		}
		if s.Metric != nil {
			annotations["autoscaling.knative.dev/metric"] = *s.Metric
		}
		if s.Target != nil {
			annotations["autoscaling.knative.dev/target"] = fmt.Sprintf("%f", *s.Target)
		}
		if s.Utilization != nil {
			annotations["autoscaling.knative.dev/target-utilization-percentage"] = fmt.Sprintf("%f", *s.Utilization)
		}
	}
	r := o.Resources
	if r == nil {
		return nil
	}
	set := func(list *corev1.ResourceList, name corev1.ResourceName, q *string) error {
		if q == nil {
			return nil
		}
		v, err := resource.ParseQuantity(*q)
		if err != nil {
			return fmt.Errorf("resources %s %q: %w", name, *q, err)
		}
		(*list)[name] = v
		return nil
	}
	if q := r.Requests; q != nil {
		c.Resources.Requests = corev1.ResourceList{}
		if err := errors.Join(set(&c.Resources.Requests, corev1.ResourceCPU, q.CPU), set(&c.Resources.Requests, corev1.ResourceMemory, q.Memory)); err != nil {
			return err
		}
	}
	if l := r.Limits; l != nil {
		c.Resources.Limits = corev1.ResourceList{}
		if err := errors.Join(set(&c.Resources.Limits, corev1.ResourceCPU, l.CPU), set(&c.Resources.Limits, corev1.ResourceMemory, l.Memory)); err != nil {
			return err
		}
		spec.ContainerConcurrency = l.Concurrency
	}
	return nil
}

func ptr[T any](v T) *T { return &v }

func copyMap(m map[string]string) map[string]string {
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}
