package pipelinev1

import (
	"maps"
	"slices"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// SchemeGroupVersion is Tekton's tekton.dev/v1.
var SchemeGroupVersion = schema.GroupVersion{Group: "tekton.dev", Version: "v1"}

// AddToScheme registers TaskRun and TaskRunList under SchemeGroupVersion,
// with the meta kinds (options, WatchEvent) a REST client of the group
// needs.
func AddToScheme(s *runtime.Scheme) error {
	s.AddKnownTypes(SchemeGroupVersion, &TaskRun{}, &TaskRunList{})
	metav1.AddToGroupVersion(s, SchemeGroupVersion)
	return nil
}

var (
	_ runtime.Object = (*TaskRun)(nil)
	_ runtime.Object = (*TaskRunList)(nil)
)

// DeepCopyObject returns a deep copy of tr.
func (tr *TaskRun) DeepCopyObject() runtime.Object {
	if c := tr.DeepCopy(); c != nil {
		return c
	}
	return nil
}

// DeepCopyObject returns a deep copy of l.
func (l *TaskRunList) DeepCopyObject() runtime.Object {
	if c := l.DeepCopy(); c != nil {
		return c
	}
	return nil
}

// DeepCopy returns a copy of l that shares no memory with it.
func (l *TaskRunList) DeepCopy() *TaskRunList {
	if l == nil {
		return nil
	}
	out := *l
	l.ListMeta.DeepCopyInto(&out.ListMeta)
	out.Items = each(l.Items, func(tr TaskRun) TaskRun { return *tr.DeepCopy() })
	return &out
}

// DeepCopy returns a copy of tr that shares no memory with it.
func (tr *TaskRun) DeepCopy() *TaskRun {
	if tr == nil {
		return nil
	}
	out := *tr
	tr.ObjectMeta.DeepCopyInto(&out.ObjectMeta)
	out.Spec.Params = each(tr.Spec.Params, Param.deepCopy)
	out.Spec.TaskSpec = tr.Spec.TaskSpec.deepCopy()
	out.Spec.Timeout = ptr(tr.Spec.Timeout)
	out.Spec.PodTemplate = tr.Spec.PodTemplate.deepCopy()
	out.Spec.Workspaces = each(tr.Spec.Workspaces, func(w WorkspaceBinding) WorkspaceBinding {
		w.PersistentVolumeClaim = ptr(w.PersistentVolumeClaim)
		return w
	})
	out.Status.Conditions = slices.Clone(tr.Status.Conditions)
	out.Status.Results = each(tr.Status.Results, func(r TaskRunResult) TaskRunResult {
		r.Value = r.Value.deepCopy()
		return r
	})
	out.Status.TaskSpec = tr.Status.TaskSpec.deepCopy()
	return &out
}

func (p Param) deepCopy() Param {
	p.Value = p.Value.deepCopy()
	return p
}

func (v ParamValue) deepCopy() ParamValue {
	v.ArrayVal, v.ObjectVal = slices.Clone(v.ArrayVal), maps.Clone(v.ObjectVal)
	return v
}

func (s *TaskSpec) deepCopy() *TaskSpec {
	if s == nil {
		return nil
	}
	out := *s
	out.Params = slices.Clone(s.Params)
	out.Steps = each(s.Steps, Step.deepCopy)
	out.Volumes = each(s.Volumes, deep[corev1.Volume])
	out.Workspaces = slices.Clone(s.Workspaces)
	out.Results = slices.Clone(s.Results)
	return &out
}

func (s Step) deepCopy() Step {
	s.Command, s.Args = slices.Clone(s.Command), slices.Clone(s.Args)
	s.Env = each(s.Env, deep[corev1.EnvVar])
	s.VolumeMounts = each(s.VolumeMounts, deep[corev1.VolumeMount])
	return s
}

func (p *PodTemplate) deepCopy() *PodTemplate {
	if p == nil {
		return nil
	}
	return &PodTemplate{
		NodeSelector:     maps.Clone(p.NodeSelector),
		Tolerations:      each(p.Tolerations, deep[corev1.Toleration]),
		ImagePullSecrets: slices.Clone(p.ImagePullSecrets),
		HostAliases:      each(p.HostAliases, deep[corev1.HostAlias]),
	}
}

// each returns s with every element copied by cp; nil stays nil.
func each[T any](s []T, cp func(T) T) []T {
	if s == nil {
		return nil
	}
	out := make([]T, len(s))
	for i, v := range s {
		out[i] = cp(v)
	}
	return out
}

// deep copies a Kubernetes API value with its generated DeepCopy.
func deep[T any, P interface {
	*T
	DeepCopy() *T
}](v T) T {
	return *P(&v).DeepCopy()
}

// ptr copies what p points to, for types without pointers, slices or maps.
func ptr[T any](p *T) *T {
	if p == nil {
		return nil
	}
	v := *p
	return &v
}
