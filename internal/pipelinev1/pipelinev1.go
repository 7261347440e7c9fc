// Package pipelinev1 is the subset of Tekton Pipelines' v1 API
// (tekton.dev/v1) that this project reads and writes, JSON-compatible with
// it, so the program does not link Tekton's API package and its
// dependencies (OpenTelemetry, gRPC, Prometheus, CEL), whose package
// initialisation cost several milliseconds of every cold start.
//
// Names, JSON keys and omitempty follow tektoncd/pipeline v1.15.0
// (pkg/apis/pipeline/v1, pkg/apis/pipeline/pod). A field exists here only
// when the program reads or writes it: a TaskRun decoded into these types
// drops the rest, so it must never be written back whole (the program
// only creates TaskRuns and patches them). The package's tests check the
// types against Tekton's own.
package pipelinev1

import (
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TaskRun is one run of a Task: the program creates TaskRuns with an inline
// TaskSpec and reads their status.
type TaskRun struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   TaskRunSpec   `json:"spec,omitempty"`
	Status TaskRunStatus `json:"status,omitempty"`
}

// TaskRunList is a list of TaskRuns, as the apiserver lists them.
type TaskRunList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []TaskRun `json:"items"`
}

// TaskRunSpec is the desired state of a TaskRun.
type TaskRunSpec struct {
	Params Params `json:"params,omitempty"`
	// ServiceAccountName has no omitempty in Tekton either.
	ServiceAccountName string                   `json:"serviceAccountName"`
	TaskSpec           *TaskSpec                `json:"taskSpec,omitempty"`
	Status             TaskRunSpecStatus        `json:"status,omitempty"`
	StatusMessage      TaskRunSpecStatusMessage `json:"statusMessage,omitempty"`
	Timeout            *metav1.Duration         `json:"timeout,omitempty"`
	PodTemplate        *PodTemplate             `json:"podTemplate,omitempty"`
	Workspaces         []WorkspaceBinding       `json:"workspaces,omitempty"`
}

// TaskRunSpecStatus is the state a user asks a TaskRun to be in.
type TaskRunSpecStatus string

// TaskRunSpecStatusMessage says why a TaskRun was asked to change state.
type TaskRunSpecStatusMessage string

// The states a TaskRun can be asked to be in (untyped, as in Tekton).
const (
	// TaskRunSpecStatusCancelled asks Tekton to cancel the TaskRun.
	TaskRunSpecStatusCancelled = "TaskRunCancelled"
	// TaskRunSpecStatusPending asks Tekton not to start the TaskRun yet.
	TaskRunSpecStatusPending = "TaskRunPending"
)

// TaskRunReason is a reason Tekton gives on a TaskRun's Succeeded
// condition.
type TaskRunReason string

// TaskRunReasonCancelled is the reason of a TaskRun cancelled by its spec.
const TaskRunReasonCancelled TaskRunReason = "TaskRunCancelled"

// String returns the reason as Tekton writes it on the condition.
func (t TaskRunReason) String() string { return string(t) }

// TaskSpec is the Task a TaskRun runs, inline.
type TaskSpec struct {
	Params     []ParamSpec            `json:"params,omitempty"`
	Steps      []Step                 `json:"steps,omitempty"`
	Volumes    []corev1.Volume        `json:"volumes,omitempty"`
	Workspaces []WorkspaceDeclaration `json:"workspaces,omitempty"`
	Results    []TaskResult           `json:"results,omitempty"`
}

// Step is one container of a Task.
type Step struct {
	Name            string               `json:"name"`
	Image           string               `json:"image,omitempty"`
	Command         []string             `json:"command,omitempty"`
	Args            []string             `json:"args,omitempty"`
	WorkingDir      string               `json:"workingDir,omitempty"`
	Env             []corev1.EnvVar      `json:"env,omitempty"`
	VolumeMounts    []corev1.VolumeMount `json:"volumeMounts,omitempty"`
	ImagePullPolicy corev1.PullPolicy    `json:"imagePullPolicy,omitempty"`
	Script          string               `json:"script,omitempty"`
}

// ParamSpec declares a Task's parameter.
type ParamSpec struct {
	Name string    `json:"name"`
	Type ParamType `json:"type,omitempty"`
}

// Param is a value given to a parameter.
type Param struct {
	Name  string     `json:"name"`
	Value ParamValue `json:"value"`
}

// Params is a list of Params.
type Params []Param

// TaskResult declares a result a Task writes.
type TaskResult struct {
	Name        string      `json:"name"`
	Type        ResultsType `json:"type,omitempty"`
	Description string      `json:"description,omitempty"`
}

// TaskRunResult is a result a TaskRun wrote.
type TaskRunResult struct {
	Name  string      `json:"name"`
	Type  ResultsType `json:"type,omitempty"`
	Value ResultValue `json:"value"`
}

// ResultValue is the value of a result, of any ParamType.
type ResultValue = ParamValue

// ResultsType is the type of a result.
type ResultsType string

// ResultsTypeString is a result holding a string.
const ResultsTypeString ResultsType = "string"

// ResultNameFormat is Tekton's pattern for result names.
const ResultNameFormat = `^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$`

// WorkspaceDeclaration declares a volume a Task mounts.
type WorkspaceDeclaration struct {
	Name      string `json:"name"`
	MountPath string `json:"mountPath,omitempty"`
}

// WorkspaceBinding binds a declared workspace of a TaskRun to a volume.
type WorkspaceBinding struct {
	Name                  string                                    `json:"name"`
	PersistentVolumeClaim *corev1.PersistentVolumeClaimVolumeSource `json:"persistentVolumeClaim,omitempty"`
}

// PodTemplate is the pod settings of a TaskRun (Tekton's pod.Template).
type PodTemplate struct {
	NodeSelector     map[string]string             `json:"nodeSelector,omitempty"`
	Tolerations      []corev1.Toleration           `json:"tolerations,omitempty"`
	ImagePullSecrets []corev1.LocalObjectReference `json:"imagePullSecrets,omitempty"`
	HostAliases      []corev1.HostAlias            `json:"hostAliases,omitempty"`
}

// TaskRunStatus is the observed state of a TaskRun. Tekton inlines
// knative's duckv1.Status, whose conditions these are.
type TaskRunStatus struct {
	Conditions []Condition `json:"conditions,omitempty"`
	// PodName has no omitempty in Tekton either.
	PodName string          `json:"podName"`
	Results []TaskRunResult `json:"results,omitempty"`
	// TaskSpec is the Task the TaskRun ran, as Tekton resolved it.
	TaskSpec *TaskSpec `json:"taskSpec,omitempty"`
}

// IsDone reports whether the TaskRun's Succeeded condition is set and not
// Unknown. As Tekton's (pkg/apis/pipeline/v1/taskrun_types.go).
func (tr *TaskRun) IsDone() bool {
	return !tr.Status.GetCondition(ConditionSucceeded).IsUnknown()
}

// IsCancelled reports whether the TaskRun's spec asks for it to be
// cancelled. As Tekton's (pkg/apis/pipeline/v1/taskrun_types.go).
func (tr *TaskRun) IsCancelled() bool {
	return tr.Spec.Status == TaskRunSpecStatusCancelled
}

// IsPending reports whether the TaskRun's spec holds it pending. As
// Tekton's (pkg/apis/pipeline/v1/taskrun_types.go).
func (tr *TaskRun) IsPending() bool {
	return tr.Spec.Status == TaskRunSpecStatusPending
}
