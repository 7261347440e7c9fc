package pipelinev1

import (
	"encoding/json"
	"fmt"
)

// ParamType is the type of a parameter's or result's value.
type ParamType string

// The types of values.
const (
	ParamTypeString ParamType = "string"
	ParamTypeArray  ParamType = "array"
	ParamTypeObject ParamType = "object"
)

// ParamValue holds a string, an array of strings or a map of strings, as
// Type says; in JSON it is the bare value.
type ParamValue struct {
	Type      ParamType
	StringVal string
	ArrayVal  []string
	ObjectVal map[string]string
}

// NewStructuredValues returns a string value, or an array value when given
// more than one string. As Tekton's (pkg/apis/pipeline/v1/param_types.go).
func NewStructuredValues(value string, values ...string) *ParamValue {
	if len(values) > 0 {
		return &ParamValue{Type: ParamTypeArray, ArrayVal: append([]string{value}, values...)}
	}
	return &ParamValue{Type: ParamTypeString, StringVal: value}
}

// UnmarshalJSON reads an array of strings as an array, an object of strings
// as an object, and anything else as a string: a JSON string's value, or
// the raw JSON text of other values (a number, a nested array). As
// Tekton's (pkg/apis/pipeline/v1/param_types.go).
func (v *ParamValue) UnmarshalJSON(value []byte) error {
	// Results are ParamValues too, and may be empty.
	if len(value) == 0 {
		v.Type = ParamTypeString
		return nil
	}
	if value[0] == '[' {
		var a []string
		if err := json.Unmarshal(value, &a); err == nil {
			v.Type, v.ArrayVal = ParamTypeArray, a
			return nil
		}
	}
	if value[0] == '{' {
		var m map[string]string
		if err := json.Unmarshal(value, &m); err == nil {
			v.Type, v.ObjectVal = ParamTypeObject, m
			return nil
		}
	}
	v.Type = ParamTypeString
	if err := json.Unmarshal(value, &v.StringVal); err != nil {
		v.StringVal = string(value)
	}
	return nil
}

// MarshalJSON writes the value Type says; a value without a known type is
// an error. As Tekton's (pkg/apis/pipeline/v1/param_types.go).
func (v ParamValue) MarshalJSON() ([]byte, error) {
	switch v.Type {
	case ParamTypeString:
		return json.Marshal(v.StringVal)
	case ParamTypeArray:
		return json.Marshal(v.ArrayVal)
	case ParamTypeObject:
		return json.Marshal(v.ObjectVal)
	}
	return []byte{}, fmt.Errorf("impossible ParamValues.Type: %q", v.Type)
}
