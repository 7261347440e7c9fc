package pipelinev1

import (
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// ConditionType names a condition.
type ConditionType string

// ConditionSucceeded is the condition of a finished (or finishing) run.
const ConditionSucceeded ConditionType = "Succeeded"

// Condition is knative's apis.Condition (knative.dev/pkg/apis), which
// Tekton's status carries, declared here because knative's package brings
// go-cmp and apimachinery's validation with it. LastTransitionTime is
// knative's VolatileTime, which marshals as the metav1.Time it wraps.
type Condition struct {
	Type               ConditionType          `json:"type"`
	Status             corev1.ConditionStatus `json:"status"`
	Severity           string                 `json:"severity,omitempty"`
	LastTransitionTime metav1.Time            `json:"lastTransitionTime,omitempty"`
	Reason             string                 `json:"reason,omitempty"`
	Message            string                 `json:"message,omitempty"`
}

// GetCondition returns a copy of the condition of type t, or nil when there
// is none. As Tekton's, through knative's ConditionSet
// (knative.dev/pkg/apis/condition_set.go).
func (s *TaskRunStatus) GetCondition(t ConditionType) *Condition {
	for _, c := range s.Conditions {
		if c.Type == t {
			return &c
		}
	}
	return nil
}

// IsTrue reports whether c is set and True. As knative's
// (knative.dev/pkg/apis/condition_types.go).
func (c *Condition) IsTrue() bool {
	return c != nil && c.Status == corev1.ConditionTrue
}

// IsUnknown reports whether c is unset or Unknown. As knative's
// (knative.dev/pkg/apis/condition_types.go).
func (c *Condition) IsUnknown() bool {
	return c == nil || c.Status == corev1.ConditionUnknown
}
