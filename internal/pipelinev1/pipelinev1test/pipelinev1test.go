// Package pipelinev1test converts between package pipelinev1's TaskRuns and
// Tekton's own, for tests: to check the mirror against Tekton's validation
// and to run the kube client over Tekton's fake clientset.
package pipelinev1test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"

	tektonconfig "github.com/tektoncd/pipeline/pkg/apis/config"
	tektonv1 "github.com/tektoncd/pipeline/pkg/apis/pipeline/v1"
	tektonclient "github.com/tektoncd/pipeline/pkg/client/clientset/versioned/typed/pipeline/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"knative.dev/pkg/apis"

	pipelinev1 "github.com/boomerang-io/flow-tekton-handler/internal/pipelinev1"
)

// ToTekton returns tr as Tekton's TaskRun, through its JSON. It fails
// unless Tekton's type reads every field of that JSON and writes the same
// JSON back, but for empty objects (such as a step's computeResources)
// that Tekton's type always writes and the mirror does not declare: the
// two types then mean the same TaskRun.
func ToTekton(tr *pipelinev1.TaskRun) (*tektonv1.TaskRun, error) {
	raw, err := json.Marshal(tr)
	if err != nil {
		return nil, fmt.Errorf("marshal taskrun: %w", err)
	}
	d := json.NewDecoder(bytes.NewReader(raw))
	d.DisallowUnknownFields()
	out := &tektonv1.TaskRun{}
	if err := d.Decode(out); err != nil {
		return nil, fmt.Errorf("decode as tekton's taskrun: %w", err)
	}
	back, err := json.Marshal(out)
	if err != nil {
		return nil, fmt.Errorf("marshal tekton's taskrun: %w", err)
	}
	var ours, theirs any
	if err := errors.Join(json.Unmarshal(raw, &ours), json.Unmarshal(back, &theirs)); err != nil {
		return nil, err
	}
	if err := Contained("", ours, theirs, emptyObject); err != nil {
		return nil, fmt.Errorf("tekton's taskrun differs: %w", err)
	}
	return out, nil
}

// Contained reports where decoded JSON part is not part of full, at path:
// every key of an object of part must be in full's, with a value contained
// in it, and arrays and other values equal but for that. A key of full's
// that part lacks is allowed when extra says so of its value.
func Contained(path string, part, full any, extra func(v any) bool) error {
	switch p := part.(type) {
	case map[string]any:
		f, ok := full.(map[string]any)
		if !ok {
			return fmt.Errorf("%s: %v, tekton's %v", path, part, full)
		}
		for k, v := range f {
			if _, in := p[k]; !in && !extra(v) {
				return fmt.Errorf("%s.%s: missing, tekton's %v", path, k, v)
			}
		}
		for k, v := range p {
			if err := Contained(path+"."+k, v, f[k], extra); err != nil {
				return err
			}
		}
		return nil
	case []any:
		f, ok := full.([]any)
		if !ok || len(f) != len(p) {
			return fmt.Errorf("%s: %v, tekton's %v", path, part, full)
		}
		for i := range p {
			if err := Contained(fmt.Sprintf("%s[%d]", path, i), p[i], f[i], extra); err != nil {
				return err
			}
		}
		return nil
	}
	if !reflect.DeepEqual(part, full) {
		return fmt.Errorf("%s: %v, tekton's %v", path, part, full)
	}
	return nil
}

// emptyObject reports whether a decoded JSON value is {}.
func emptyObject(v any) bool { return reflect.DeepEqual(v, map[string]any{}) }

// FromTekton returns Tekton's TaskRun tr as the mirror's, through its JSON,
// as the program would read it from the apiserver: fields the mirror does
// not declare are dropped.
func FromTekton(tr *tektonv1.TaskRun) (*pipelinev1.TaskRun, error) {
	return fromTekton[pipelinev1.TaskRun](tr)
}

func fromTekton[T any](in any) (*T, error) {
	raw, err := json.Marshal(in)
	if err != nil {
		return nil, fmt.Errorf("marshal %T: %w", in, err)
	}
	out := new(T)
	if err := json.Unmarshal(raw, out); err != nil {
		return nil, fmt.Errorf("decode as %T: %w", out, err)
	}
	return out, nil
}

// TaskRuns is a client of the mirror's TaskRuns over a client of Tekton's
// (a fake clientset's, in tests), with the methods package kube calls.
type TaskRuns struct{ C tektonclient.TaskRunInterface }

// mirror converts a Tekton answer to the mirror's type.
func mirror[T any, R any](r *R, err error) (*T, error) {
	if err != nil {
		return nil, err
	}
	return fromTekton[T](r)
}

// Get reads the named TaskRun.
func (t TaskRuns) Get(ctx context.Context, name string, opts metav1.GetOptions) (*pipelinev1.TaskRun, error) {
	return mirror[pipelinev1.TaskRun](t.C.Get(ctx, name, opts))
}

// Create creates tr, which must convert to Tekton's type exactly. A dry
// run stores nothing and answers as Tekton's admission webhook would
// (Admit), the way a dry-run create does on an apiserver with Tekton.
func (t TaskRuns) Create(ctx context.Context, tr *pipelinev1.TaskRun, opts metav1.CreateOptions) (*pipelinev1.TaskRun, error) {
	out, err := ToTekton(tr)
	if err != nil {
		return nil, err
	}
	if len(opts.DryRun) == 0 {
		return mirror[pipelinev1.TaskRun](t.C.Create(ctx, out, opts))
	}
	if errs := Admit(ctx, out); len(errs) > 0 {
		return nil, apierrors.NewBadRequest(`admission webhook "validation.webhook.pipeline.tekton.dev" denied the request: ` + strings.Join(errs, "; "))
	}
	if _, err := t.C.Get(ctx, tr.Name, metav1.GetOptions{}); err == nil {
		return nil, apierrors.NewAlreadyExists(tektonv1.Resource("taskruns"), tr.Name)
	}
	return tr, nil
}

// Admit validates tr as Tekton's admission webhook validates a new TaskRun,
// with Tekton's own code and its default config-defaults and feature-flags:
// as sent, and defaulted (the validating webhook sees the defaulted
// object). It returns each refusal.
func Admit(ctx context.Context, tr *tektonv1.TaskRun) []string {
	ctx = apis.WithinCreate(tektonconfig.ToContext(ctx, tektonconfig.FromContextOrDefaults(ctx)))
	var errs []string
	if err := tr.Validate(ctx); err != nil {
		errs = append(errs, "as built: "+err.Error())
	}
	defaulted := tr.DeepCopy()
	defaulted.SetDefaults(ctx)
	if err := defaulted.Validate(ctx); err != nil {
		errs = append(errs, "defaulted: "+err.Error())
	}
	return errs
}

// Patch patches the named TaskRun.
func (t TaskRuns) Patch(ctx context.Context, name string, pt types.PatchType, data []byte, opts metav1.PatchOptions, sub ...string) (*pipelinev1.TaskRun, error) {
	return mirror[pipelinev1.TaskRun](t.C.Patch(ctx, name, pt, data, opts, sub...))
}

// Delete deletes the named TaskRun.
func (t TaskRuns) Delete(ctx context.Context, name string, opts metav1.DeleteOptions) error {
	return t.C.Delete(ctx, name, opts)
}

// List lists TaskRuns.
func (t TaskRuns) List(ctx context.Context, opts metav1.ListOptions) (*pipelinev1.TaskRunList, error) {
	return mirror[pipelinev1.TaskRunList](t.C.List(ctx, opts))
}

// Watch watches TaskRuns, each event's TaskRun converted to the mirror's.
func (t TaskRuns) Watch(ctx context.Context, opts metav1.ListOptions) (watch.Interface, error) {
	w, err := t.C.Watch(ctx, opts)
	if err != nil {
		return nil, err
	}
	return watch.Filter(w, func(e watch.Event) (watch.Event, bool) {
		if tr, ok := e.Object.(*tektonv1.TaskRun); ok {
			if m, err := FromTekton(tr); err == nil {
				e.Object = m
			}
		}
		return e, true
	}), nil
}
