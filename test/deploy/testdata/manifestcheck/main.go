// Command manifestcheck reads YAML documents on stdin and decodes each one
// strictly (unknown and duplicate fields are errors) into the Go type its
// apiVersion and kind name: Kubernetes, Knative Serving or Knative Eventing.
// Knative objects are then defaulted and validated as Knative's admission
// webhooks would on create, and a few required references are checked again
// explicitly. It prints one line per document and exits 1 if any failed.
//
// It is built at test time in its own module (see package deploy), because
// the Knative modules cannot share a module graph with Tekton's.
package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	eventingv1 "knative.dev/eventing/pkg/apis/eventing/v1"
	"knative.dev/eventing/pkg/apis/feature"
	sourcesv1 "knative.dev/eventing/pkg/apis/sources/v1"
	"knative.dev/pkg/apis"
	duckv1 "knative.dev/pkg/apis/duck/v1"
	servingv1 "knative.dev/serving/pkg/apis/serving/v1"
	"sigs.k8s.io/yaml"
)

// namespace stands in for the namespace the API server would set.
const namespace = "manifestcheck"

type object interface {
	GetName() string
	GetNamespace() string
	SetNamespace(string)
}

func newObject(apiVersion, kind string) (object, error) {
	switch apiVersion + " " + kind {
	case "v1 ServiceAccount":
		return &corev1.ServiceAccount{}, nil
	case "v1 ConfigMap":
		return &corev1.ConfigMap{}, nil
	case "v1 Secret":
		return &corev1.Secret{}, nil
	case "v1 Service":
		return &corev1.Service{}, nil
	case "rbac.authorization.k8s.io/v1 Role":
		return &rbacv1.Role{}, nil
	case "rbac.authorization.k8s.io/v1 RoleBinding":
		return &rbacv1.RoleBinding{}, nil
	case "rbac.authorization.k8s.io/v1 ClusterRole":
		return &rbacv1.ClusterRole{}, nil
	case "rbac.authorization.k8s.io/v1 ClusterRoleBinding":
		return &rbacv1.ClusterRoleBinding{}, nil
	case "eventing.knative.dev/v1 Trigger":
		return &eventingv1.Trigger{}, nil
	case "eventing.knative.dev/v1 Broker":
		return &eventingv1.Broker{}, nil
	case "sources.knative.dev/v1 PingSource":
		return &sourcesv1.PingSource{}, nil
	case "serving.knative.dev/v1 Service":
		return &servingv1.Service{}, nil
	}
	return nil, fmt.Errorf("no Go type known for apiVersion %q kind %q", apiVersion, kind)
}

func main() {
	in, err := io.ReadAll(os.Stdin)
	if err != nil {
		fmt.Fprintln(os.Stderr, "manifestcheck:", err)
		os.Exit(2)
	}
	failed := false
	for i, doc := range split(in) {
		name, err := check(doc)
		if err != nil {
			failed = true
			fmt.Printf("FAIL document %d %s: %v\n", i, name, err)
			continue
		}
		fmt.Printf("ok   document %d %s\n", i, name)
	}
	if failed {
		os.Exit(1)
	}
}

// split cuts a YAML stream at "---" lines and drops empty documents.
func split(b []byte) [][]byte {
	var docs [][]byte
	var cur bytes.Buffer
	flush := func() {
		if len(bytes.TrimSpace(stripComments(cur.Bytes()))) > 0 {
			docs = append(docs, append([]byte(nil), cur.Bytes()...))
		}
		cur.Reset()
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "---") && strings.TrimSpace(strings.TrimPrefix(line, "---")) == "" {
			flush()
			continue
		}
		cur.WriteString(line)
		cur.WriteByte('\n')
	}
	flush()
	return docs
}

func stripComments(b []byte) []byte {
	var out bytes.Buffer
	for _, l := range strings.Split(string(b), "\n") {
		if !strings.HasPrefix(strings.TrimSpace(l), "#") {
			out.WriteString(l + "\n")
		}
	}
	return out.Bytes()
}

func check(doc []byte) (string, error) {
	var tm struct {
		APIVersion string `json:"apiVersion"`
		Kind       string `json:"kind"`
		Metadata   struct {
			Name string `json:"name"`
		} `json:"metadata"`
	}
	if err := yaml.Unmarshal(doc, &tm); err != nil {
		return "?", fmt.Errorf("not YAML: %w", err)
	}
	name := tm.Kind + "/" + tm.Metadata.Name
	obj, err := newObject(tm.APIVersion, tm.Kind)
	if err != nil {
		return name, err
	}
	if err := yaml.UnmarshalStrict(doc, obj); err != nil {
		return name, fmt.Errorf("strict decode into %T: %w", obj, err)
	}
	if obj.GetName() == "" {
		return name, errors.New("metadata.name is required")
	}
	if obj.GetNamespace() == "" {
		obj.SetNamespace(namespace)
	}
	if err := required(obj); err != nil {
		return name, err
	}
	// The webhook's context: on create, with Knative Eventing's default
	// features (config-features unset), which allow delivery.timeout.
	ctx := apis.WithinCreate(feature.ToContext(context.Background(), feature.FromContextOrDefaults(context.Background())))
	if d, ok := obj.(apis.Defaultable); ok {
		d.SetDefaults(ctx)
	}
	if v, ok := obj.(apis.Validatable); ok {
		if fe := v.Validate(ctx); fe != nil {
			return name, fmt.Errorf("knative validation: %v", fe)
		}
	}
	return name, nil
}

// required checks the references the functions depend on, whatever the
// webhook validation would say about them.
func required(obj object) error {
	switch o := obj.(type) {
	case *eventingv1.Trigger:
		if o.Spec.Broker == "" && o.Spec.BrokerRef == nil {
			return errors.New("trigger: spec.broker is required")
		}
		return destination("trigger: spec.subscriber", o.Spec.Subscriber)
	case *sourcesv1.PingSource:
		if o.Spec.Schedule == "" {
			return errors.New("pingsource: spec.schedule is required")
		}
		return destination("pingsource: spec.sink", o.Spec.Sink)
	case *servingv1.Service:
		if len(o.Spec.Template.Spec.Containers) == 0 || o.Spec.Template.Spec.Containers[0].Image == "" {
			return errors.New("service: spec.template.spec.containers[0].image is required")
		}
	case *rbacv1.RoleBinding:
		if o.RoleRef.Name == "" || o.RoleRef.Kind == "" {
			return errors.New("rolebinding: roleRef.kind and roleRef.name are required")
		}
	}
	return nil
}

func destination(field string, d duckv1.Destination) error {
	if d.Ref == nil && d.URI == nil {
		return fmt.Errorf("%s needs ref or uri", field)
	}
	if r := d.Ref; r != nil && (r.Name == "" || r.Kind == "" || r.APIVersion == "") {
		return fmt.Errorf("%s.ref needs apiVersion, kind and name", field)
	}
	return nil
}
