package cluster

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"sync"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	k8syaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/yaml"
)

// Tekton objects the cluster configures.
const (
	tektonNamespace     = "tekton-pipelines"
	configEvents        = "config-events"
	configObservability = "config-observability"
	// eventsFormat is the only CloudEvents format Tekton supports.
	eventsFormat = "tektonv1"
	// fieldManager owns what the cluster applies.
	fieldManager = "flow-tekton-handler-cluster"
)

// tektonFiles returns the Tekton config files copied by Build, in apply
// order: namespace, CRDs, ConfigMaps.
func tektonFiles(binDir string) ([]string, error) {
	dir := filepath.Join(binDir, shareTekton)
	var files []string
	for _, pattern := range []string{"100-namespace/*.yaml", "300-crds/*.yaml", "config-*.yaml"} {
		m, err := filepath.Glob(filepath.Join(dir, pattern))
		if err != nil {
			return nil, err
		}
		if len(m) == 0 {
			return nil, fmt.Errorf("no %s in %s", pattern, dir)
		}
		sort.Strings(m)
		files = append(files, m...)
	}
	return files, nil
}

// readTektonObjects reads files and prepares them with tektonObjects.
func readTektonObjects(files []string, sink string, wh webhookServer) ([]*unstructured.Unstructured, error) {
	var docs [][]byte
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		d, err := splitYAML(b)
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", f, err)
		}
		docs = append(docs, d...)
	}
	return tektonObjects(docs, sink, wh)
}

// tektonObjects turns Tekton's config YAML documents into the objects to
// apply: CRDs that convert through Tekton's webhook call it at wh (upstream
// names a Service), config-observability exports no metrics or traces, and
// config-events sends CloudEvents in Tekton's format to sink (none if empty).
func tektonObjects(docs [][]byte, sink string, wh webhookServer) ([]*unstructured.Unstructured, error) {
	var objs []*unstructured.Unstructured
	seen := map[string]bool{}
	for _, d := range docs {
		js, err := yaml.YAMLToJSON(d)
		if err != nil {
			return nil, err
		}
		if bytes.Equal(bytes.TrimSpace(js), []byte("null")) {
			continue // comments only
		}
		u := &unstructured.Unstructured{}
		if err := u.UnmarshalJSON(js); err != nil {
			return nil, err
		}
		if _, _, err := resourceFor(u); err != nil {
			return nil, err
		}
		switch {
		case u.GetKind() == "CustomResourceDefinition":
			if s, _, _ := unstructured.NestedString(u.Object, "spec", "conversion", "strategy"); s == "Webhook" {
				versions, _, _ := unstructured.NestedSlice(u.Object, "spec", "conversion", "webhook", "conversionReviewVersions")
				if err := unstructured.SetNestedMap(u.Object, conversionWebhook(wh, versions), "spec", "conversion"); err != nil {
					return nil, err
				}
			}
		case u.GetKind() == "ConfigMap" && u.GetName() == configObservability:
			setData(u, map[string]string{"metrics-protocol": "none", "tracing-protocol": "none"})
		case u.GetKind() == "ConfigMap" && u.GetName() == configEvents:
			setData(u, map[string]string{"sink": sink, "formats": eventsFormat})
		}
		seen[u.GetKind()+"/"+u.GetName()] = true
		objs = append(objs, u)
	}
	for _, want := range []string{"Namespace/" + tektonNamespace, "ConfigMap/" + configEvents, "ConfigMap/" + configObservability} {
		if !seen[want] {
			return nil, fmt.Errorf("tekton config has no %s", want)
		}
	}
	return objs, nil
}

// setData sets keys in a ConfigMap's data.
func setData(u *unstructured.Unstructured, kv map[string]string) {
	data, _, _ := unstructured.NestedStringMap(u.Object, "data")
	if data == nil {
		data = map[string]string{}
	}
	for k, v := range kv {
		data[k] = v
	}
	_ = unstructured.SetNestedStringMap(u.Object, data, "data")
}

// splitYAML splits a multi-document YAML stream.
func splitYAML(b []byte) ([][]byte, error) {
	r := k8syaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(b)))
	var docs [][]byte
	for {
		d, err := r.Read()
		if errors.Is(err, io.EOF) {
			return docs, nil
		}
		if err != nil {
			return nil, err
		}
		if len(bytes.TrimSpace(d)) > 0 {
			docs = append(docs, d)
		}
	}
}

// resourceFor maps the kinds the Tekton config holds to their resources.
func resourceFor(u *unstructured.Unstructured) (schema.GroupVersionResource, bool, error) {
	switch u.GroupVersionKind() {
	case schema.GroupVersionKind{Version: "v1", Kind: "Namespace"}:
		return schema.GroupVersionResource{Version: "v1", Resource: "namespaces"}, false, nil
	case schema.GroupVersionKind{Version: "v1", Kind: "ConfigMap"}:
		return schema.GroupVersionResource{Version: "v1", Resource: "configmaps"}, true, nil
	case schema.GroupVersionKind{Group: "apiextensions.k8s.io", Version: "v1", Kind: "CustomResourceDefinition"}:
		return schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}, false, nil
	}
	return schema.GroupVersionResource{}, false, fmt.Errorf("unexpected %s %s in tekton config", u.GroupVersionKind(), u.GetName())
}

// applyObjects server-side applies objs: Namespaces first, then the rest
// concurrently (the CRDs are large; this saves seconds).
func applyObjects(ctx context.Context, dyn dynamic.Interface, objs []*unstructured.Unstructured) error {
	var namespaces, rest []*unstructured.Unstructured
	for _, u := range objs {
		if u.GetKind() == "Namespace" {
			namespaces = append(namespaces, u)
		} else {
			rest = append(rest, u)
		}
	}
	for _, u := range namespaces {
		if err := applyObject(ctx, dyn, u); err != nil {
			return err
		}
	}
	errs := make([]error, len(rest))
	var wg sync.WaitGroup
	sem := make(chan struct{}, 4)
	for i, u := range rest {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			errs[i] = applyObject(ctx, dyn, u)
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// applyObject server-side applies u.
func applyObject(ctx context.Context, dyn dynamic.Interface, u *unstructured.Unstructured) error {
	gvr, namespaced, err := resourceFor(u)
	if err != nil {
		return err
	}
	var ri dynamic.ResourceInterface = dyn.Resource(gvr)
	if namespaced {
		ri = dyn.Resource(gvr).Namespace(u.GetNamespace())
	}
	if _, err := ri.Apply(ctx, u.GetName(), u, metav1.ApplyOptions{FieldManager: fieldManager, Force: true}); err != nil {
		return fmt.Errorf("apply %s %s: %w", u.GetKind(), u.GetName(), err)
	}
	return nil
}

// crdsEstablished reports whether every CRD in objs is Established.
func crdsEstablished(ctx context.Context, dyn dynamic.Interface, objs []*unstructured.Unstructured) (bool, error) {
	gvr := schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}
	for _, u := range objs {
		if u.GetKind() != "CustomResourceDefinition" {
			continue
		}
		got, err := dyn.Resource(gvr).Get(ctx, u.GetName(), metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		conds, _, _ := unstructured.NestedSlice(got.Object, "status", "conditions")
		established := false
		for _, c := range conds {
			m, _ := c.(map[string]any)
			if m["type"] == "Established" && m["status"] == "True" {
				established = true
			}
		}
		if !established {
			return false, nil
		}
	}
	return true, nil
}

// setEventsSink points Tekton's config-events at sink.
func setEventsSink(ctx context.Context, kube kubernetes.Interface, sink string) error {
	patch, err := json.Marshal(map[string]any{"data": map[string]string{"sink": sink, "formats": eventsFormat}})
	if err != nil {
		return err
	}
	_, err = kube.CoreV1().ConfigMaps(tektonNamespace).Patch(ctx, configEvents, types.MergePatchType, patch, metav1.PatchOptions{FieldManager: fieldManager})
	if err != nil {
		return fmt.Errorf("patch configmap %s/%s: %w", tektonNamespace, configEvents, err)
	}
	return nil
}
