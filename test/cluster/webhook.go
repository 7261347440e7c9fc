package cluster

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
)

// Tekton's admission webhooks, as upstream's config/500-webhooks.yaml names
// them (cmd/webhook's defaults), and the paths our tekton-webhook program
// serves them on (upstream's).
const (
	webhookDefaulting = "webhook.pipeline.tekton.dev"
	webhookValidation = "validation.webhook.pipeline.tekton.dev"
	webhookConfig     = "config.webhook.pipeline.tekton.dev"

	pathDefaulting       = "/defaulting"
	pathValidation       = "/resource-validation"
	pathConfigValidation = "/config-validation"
	pathConversion       = "/resource-conversion"
)

// WebhookDenied starts the message of every request Tekton's validating
// webhook refuses; Tekton's own message follows ("validation failed: ...").
const WebhookDenied = `admission webhook "` + webhookValidation + `" denied the request`

// webhookServer is where the API server reaches Tekton's webhook program.
type webhookServer struct {
	url   string // https://127.0.0.1:<port>, no trailing slash
	caPEM []byte // CA of its serving certificate
}

// tektonKinds are the resources of the kinds upstream cmd/webhook's types
// map defaults and validates, by API group and version (plural, lower
// case, as knative's reconcilers derive them).
var tektonKinds = []struct {
	group, version string
	resources      []string
}{
	{"resolution.tekton.dev", "v1alpha1", []string{"resolutionrequests"}},
	{"resolution.tekton.dev", "v1beta1", []string{"resolutionrequests"}},
	{"tekton.dev", "v1", []string{"pipelineruns", "pipelines", "taskruns", "tasks"}},
	{"tekton.dev", "v1alpha1", []string{"stepactions", "verificationpolicies"}},
	{"tekton.dev", "v1beta1", []string{"customruns", "pipelineruns", "pipelines", "stepactions", "taskruns", "tasks"}},
}

// webhookConfigurations returns the configurations that put Tekton's
// webhook in the API server's path, as knative's reconcilers in upstream's
// webhook make them from config/500-webhooks.yaml, except for the client
// config: a URL instead of a Service reference. Every Tekton kind is
// defaulted and validated on CREATE and UPDATE, of the object and of its
// status; UPDATE requests carry the old object, which Tekton's validation
// compares with ("Once the TaskRun is complete, no updates are allowed").
// (Upstream also validates DELETE of VerificationPolicies, and lets it
// through; left out.) Tekton's ConfigMaps are validated on CREATE and
// UPDATE.
func webhookConfigurations(s webhookServer) (*admissionregistrationv1.MutatingWebhookConfiguration, []*admissionregistrationv1.ValidatingWebhookConfiguration) {
	var rules []admissionregistrationv1.RuleWithOperations
	for _, k := range tektonKinds {
		for _, r := range k.resources {
			rules = append(rules, admissionregistrationv1.RuleWithOperations{
				Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create, admissionregistrationv1.Update},
				Rule: admissionregistrationv1.Rule{
					APIGroups:   []string{k.group},
					APIVersions: []string{k.version},
					Resources:   []string{r, r + "/status"},
				},
			})
		}
	}
	fail := admissionregistrationv1.Fail
	none := admissionregistrationv1.SideEffectClassNone
	ifNeeded := admissionregistrationv1.IfNeededReinvocationPolicy
	namespaced := admissionregistrationv1.NamespacedScope
	notExcluded := &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{
		Key: "webhooks.knative.dev/exclude", Operator: metav1.LabelSelectorOpDoesNotExist,
	}}}
	client := func(path string) admissionregistrationv1.WebhookClientConfig {
		url := s.url + path
		return admissionregistrationv1.WebhookClientConfig{URL: &url, CABundle: s.caPEM}
	}
	meta := func(name string) metav1.ObjectMeta {
		return metav1.ObjectMeta{Name: name, Labels: map[string]string{
			"app.kubernetes.io/component": "webhook",
			"app.kubernetes.io/instance":  "default",
			"app.kubernetes.io/part-of":   "tekton-pipelines",
		}}
	}
	mutating := &admissionregistrationv1.MutatingWebhookConfiguration{
		ObjectMeta: meta(webhookDefaulting),
		Webhooks: []admissionregistrationv1.MutatingWebhook{{
			Name:                    webhookDefaulting,
			ClientConfig:            client(pathDefaulting),
			Rules:                   rules,
			FailurePolicy:           &fail,
			SideEffects:             &none,
			AdmissionReviewVersions: []string{"v1"},
			NamespaceSelector:       notExcluded,
			ReinvocationPolicy:      &ifNeeded,
		}},
	}
	validating := []*admissionregistrationv1.ValidatingWebhookConfiguration{{
		ObjectMeta: meta(webhookValidation),
		Webhooks: []admissionregistrationv1.ValidatingWebhook{{
			Name:                    webhookValidation,
			ClientConfig:            client(pathValidation),
			Rules:                   rules,
			FailurePolicy:           &fail,
			SideEffects:             &none,
			AdmissionReviewVersions: []string{"v1"},
			NamespaceSelector:       notExcluded,
		}},
	}, {
		ObjectMeta: meta(webhookConfig),
		Webhooks: []admissionregistrationv1.ValidatingWebhook{{
			Name:         webhookConfig,
			ClientConfig: client(pathConfigValidation),
			Rules: []admissionregistrationv1.RuleWithOperations{{
				Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create, admissionregistrationv1.Update},
				Rule: admissionregistrationv1.Rule{
					APIGroups: []string{""}, APIVersions: []string{"v1"}, Resources: []string{"configmaps/*"}, Scope: &namespaced,
				},
			}},
			FailurePolicy:           &fail,
			SideEffects:             &none,
			AdmissionReviewVersions: []string{"v1"},
			ObjectSelector:          &metav1.LabelSelector{MatchLabels: map[string]string{"app.kubernetes.io/part-of": "tekton-pipelines"}},
		}},
	}}
	return mutating, validating
}

// registerWebhooks creates the webhook configurations for s.
func registerWebhooks(ctx context.Context, kube kubernetes.Interface, s webhookServer) error {
	mutating, validating := webhookConfigurations(s)
	opts := metav1.CreateOptions{FieldManager: fieldManager}
	if _, err := kube.AdmissionregistrationV1().MutatingWebhookConfigurations().Create(ctx, mutating, opts); err != nil {
		return fmt.Errorf("create mutatingwebhookconfiguration %s: %w", mutating.Name, err)
	}
	for _, v := range validating {
		if _, err := kube.AdmissionregistrationV1().ValidatingWebhookConfigurations().Create(ctx, v, opts); err != nil {
			return fmt.Errorf("create validatingwebhookconfiguration %s: %w", v.Name, err)
		}
	}
	return nil
}

// conversionWebhook returns a CRD's spec.conversion for Tekton's
// conversion webhook at s, keeping upstream's conversionReviewVersions.
func conversionWebhook(s webhookServer, reviewVersions []any) map[string]any {
	return map[string]any{
		"strategy": "Webhook",
		"webhook": map[string]any{
			"conversionReviewVersions": reviewVersions,
			"clientConfig": map[string]any{
				"url":      s.url + pathConversion,
				"caBundle": base64.StdEncoding.EncodeToString(s.caPEM),
			},
		},
	}
}

// webhookProbe is a TaskRun that Tekton's validation refuses: its step
// has no image.
var webhookProbe = &unstructured.Unstructured{Object: map[string]any{
	"apiVersion": "tekton.dev/v1",
	"kind":       "TaskRun",
	"metadata":   map[string]any{"name": "webhook-probe", "namespace": "default"},
	"spec": map[string]any{"taskSpec": map[string]any{
		"steps": []any{map[string]any{"name": "probe", "script": "true"}},
	}},
}}

// webhookServing reports whether the API server sends TaskRuns through
// Tekton's webhooks: a dry-run create of webhookProbe is refused by
// Tekton's validation (after the defaulting webhook let it through).
func webhookServing(ctx context.Context, dyn dynamic.Interface) (bool, error) {
	gvr := schema.GroupVersionResource{Group: "tekton.dev", Version: "v1", Resource: "taskruns"}
	_, err := dyn.Resource(gvr).Namespace("default").Create(ctx, webhookProbe.DeepCopy(), metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
	switch {
	case err == nil:
		return false, errors.New("dry-run create of an invalid TaskRun succeeded: no validating webhook in the path")
	case strings.Contains(err.Error(), WebhookDenied):
		return true, nil
	default:
		return false, err
	}
}
