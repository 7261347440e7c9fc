// Package contract defines the Workflow Engine's events as the handler reads
// them: the CloudEvent types, the TaskRun and WorkflowRun payloads, lenient
// decoding with field-naming errors, the decision of what an event asks for,
// and the label and annotation keys shared by the handler and the sink.
package contract

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// EventType is a CloudEvent type sent by the Engine.
type EventType string

// The Engine's event types and their common prefix.
const (
	TypePrefix                = "io.boomerang.event.status."
	TypeTaskRun     EventType = TypePrefix + "taskrun"
	TypeWorkflowRun EventType = TypePrefix + "workflowrun"
	TypeWorkflow    EventType = TypePrefix + "workflow"
)

// EventTypes are the event types the handler acts on; config/ has one
// Trigger for each.
var EventTypes = []EventType{TypeTaskRun, TypeWorkflowRun, TypeWorkflow}

// Label and annotation keys written on the objects the handler creates and
// read by the sink.
const (
	LabelProduct      = "boomerang.io/product"
	LabelTier         = "boomerang.io/tier"
	LabelWorkflowRef  = "boomerang.io/workflow-ref"
	LabelWorkflowRun  = "boomerang.io/workflowrun-ref"
	LabelTaskRunRef   = "boomerang.io/taskrun-ref"
	LabelTaskRef      = "boomerang.io/task-ref"
	LabelWorkspaceRef = "boomerang.io/workspace-ref"
	LabelWorkspaceTyp = "boomerang.io/workspace-type"
	LabelName         = "app.kubernetes.io/name"
	LabelInstance     = "app.kubernetes.io/instance"
	LabelManagedBy    = "app.kubernetes.io/managed-by"
	LabelPartOf       = "app.kubernetes.io/part-of"
	LabelReported     = "boomerang.io/reported"
	// LabelDeleteDue marks a reported TaskRun that its deletion policy
	// deletes, until it is gone: a failed deletion is retried by the sweep.
	LabelDeleteDue = "boomerang.io/delete"

	AnnotationWorkflowRef = "boomerang.io/workflow-ref"
	AnnotationSelector    = "boomerang.io/selector"
	AnnotationDeletion    = "boomerang.io/deletion"
	AnnotationCancelled   = "boomerang.io/cancelled"
	AnnotationClaimed     = "boomerang.io/claimed"
	AnnotationReporting   = "boomerang.io/reporting"
	AnnotationReported    = "boomerang.io/reported"
	AnnotationWorkspaceRf = "boomerang.io/workspace-ref"
	AnnotationWorkspaceTy = "boomerang.io/workspace-type"
	AnnotationSpanContext = "tekton.dev/taskrunSpanContext"

	// FinalizerReport keeps a TaskRun of ours until the sink has reported
	// it: one deleted while it runs is still read, reported failed, and
	// then released.
	FinalizerReport = "boomerang.io/report"

	// ManagedBy is the value of LabelManagedBy on everything we create.
	ManagedBy = "flow-tekton-handler"
	TierTask  = "task"
	TierSpace = "workspace"
)

// Deletion policies for finished TaskRuns: the values of AnnotationDeletion
// and of the sink's DELETION_POLICY.
const (
	DeletionNever     = "Never"
	DeletionOnSuccess = "OnSuccess"
	DeletionAlways    = "Always"
)

// DeletionPolicy returns the deletion policy s names, compared
// case-insensitively and spelt as above, or "" when it names none.
func DeletionPolicy(s string) string {
	for _, p := range []string{DeletionNever, DeletionOnSuccess, DeletionAlways} {
		if strings.EqualFold(s, p) {
			return p
		}
	}
	return ""
}

// Workspace scopes.
const (
	ScopeWorkflow    = "workflow"
	ScopeWorkflowRun = "workflowrun"
)

// ErrInvalid marks an event whose envelope or data cannot be acted on. It is
// permanent: redelivering the same event cannot help.
var ErrInvalid = errors.New("invalid event")

// FieldError names the offending field of an invalid event. It matches
// ErrInvalid with errors.Is.
type FieldError struct {
	Field  string
	Reason string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Reason }

// Is reports whether target is ErrInvalid.
func (e *FieldError) Is(target error) bool { return target == ErrInvalid }

func invalid(field, format string, args ...any) error {
	return &FieldError{Field: field, Reason: fmt.Sprintf(format, args...)}
}

// ParseType returns the Engine event type a CloudEvent type names, its
// part after TypePrefix lower-cased (the Engine's enums are lower-case; a
// type sent otherwise is read the same), and whether it carries the
// Engine's prefix at all. A type of the Engine's that the handler does not
// act on comes back too: it is none of EventTypes.
func ParseType(ceType string) (EventType, bool) {
	rest, ok := strings.CutPrefix(ceType, TypePrefix)
	if !ok {
		return "", false
	}
	return EventType(TypePrefix + strings.ToLower(rest)), true
}

// Action is what an event asks the handler to do.
type Action int

// Actions.
const (
	Ignore Action = iota
	Execute
	Cancel
	StartWorkflowRun
	FinalizeWorkflowRun
	DeleteWorkflow
)

func (a Action) String() string {
	return [...]string{"ignore", "execute", "cancel", "start-workflowrun", "finalize-workflowrun", "delete-workflow"}[a]
}

// Param is one Engine run parameter; its value is any JSON.
type Param struct {
	Name  string          `json:"name"`
	Value json.RawMessage `json:"value"`
}

// Result is a result the task declares.
type Result struct {
	Name        string `json:"name"`
	Description string `json:"description,omitempty"`
}

// EnvVar is one environment variable of the task's step.
type EnvVar struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// TaskWorkspace is a workspace a task event names.
type TaskWorkspace struct {
	Name      string `json:"name"`
	Type      string `json:"type"`
	Optional  bool   `json:"optional"`
	MountPath string `json:"mountPath,omitempty"`
}

// TaskSpec is the task's container definition.
type TaskSpec struct {
	Image      string   `json:"image"`
	Command    []string `json:"command"`
	Script     string   `json:"script"`
	Arguments  []string `json:"arguments"`
	Envs       []EnvVar `json:"envs"`
	WorkingDir string   `json:"workingDir"`
	Debug      bool     `json:"debug"`
	Deletion   string   `json:"deletion"`
}

// TaskRun is the data of an io.boomerang.event.status.taskrun event.
type TaskRun struct {
	ID             string            `json:"id"`
	Type           string            `json:"type"`
	Name           string            `json:"name"`
	Status         string            `json:"status"`
	Phase          string            `json:"phase"`
	Labels         map[string]string `json:"labels"`
	Params         []Param           `json:"params"`
	Results        []Result          `json:"results"`
	Workspaces     []TaskWorkspace   `json:"workspaces"`
	Timeout        int64             `json:"timeout"`
	Spec           TaskSpec          `json:"spec"`
	TaskRef        string            `json:"taskRef"`
	WorkflowRef    string            `json:"workflowRef"`
	WorkflowRunRef string            `json:"workflowRunRef"`
}

// WorkflowWorkspace is a workspace of a WorkflowRun. Spec, the storage the
// workspace asks for ({"accessMode", "className", "mountPath", "size"}), is
// kept raw: it is read field by field when the claim is built
// (tekton.PVCs), so that a field of the wrong type falls back to its
// default instead of leaving the run unstarted. Absent or null, the
// workspace asks for no storage.
type WorkflowWorkspace struct {
	Name        string          `json:"name"`
	Description string          `json:"description"`
	Type        string          `json:"type"`
	Optional    bool            `json:"optional"`
	Spec        json.RawMessage `json:"spec"`
}

// WorkflowRun is the data of an io.boomerang.event.status.workflowrun event.
type WorkflowRun struct {
	ID          string              `json:"id"`
	Status      string              `json:"status"`
	Phase       string              `json:"phase"`
	WorkflowRef string              `json:"workflowRef"`
	Labels      map[string]string   `json:"labels"`
	Workspaces  []WorkflowWorkspace `json:"workspaces"`
}

// Workflow is the data of an io.boomerang.event.status.workflow event.
type Workflow struct {
	ID     string `json:"id"`
	Status string `json:"status"`
}

// executable task types: only these run as Tekton TaskRuns.
var executable = map[string]bool{"template": true, "custom": true, "script": true}

// Action decides what a TaskRun event asks for.
func (t *TaskRun) Action() Action {
	if !executable[strings.ToLower(t.Type)] {
		return Ignore
	}
	status, phase := strings.ToLower(t.Status), strings.ToLower(t.Phase)
	switch {
	case phase == "pending" && status == "ready":
		return Execute
	case phase == "completed" && (status == "cancelled" || status == "timedout"):
		return Cancel
	}
	return Ignore
}

// Action decides what a WorkflowRun event asks for.
func (w *WorkflowRun) Action() Action {
	status, phase := strings.ToLower(w.Status), strings.ToLower(w.Phase)
	switch {
	case phase == "pending" && status == "ready":
		return StartWorkflowRun
	case phase == "completed":
		return FinalizeWorkflowRun
	}
	return Ignore
}

// Action decides what a Workflow event asks for.
func (w *Workflow) Action() Action {
	if strings.ToLower(w.Status) == "deleted" {
		return DeleteWorkflow
	}
	return Ignore
}

// DecodeTaskRun decodes and checks a TaskRun event's data. Unknown fields
// are ignored; a wrong type or a missing id is an error naming the field.
// Data without type or phase (the Engine's mislabelled workflow events) is
// returned as is and decides to Ignore. A timeout of zero or less means the
// default (the builder's), as an absent one does.
func DecodeTaskRun(data []byte) (*TaskRun, error) {
	return decodeChecked(data, func(t *TaskRun) error {
		if t.Type == "" || t.Phase == "" {
			return nil
		}
		return CheckID("data.id", t.ID)
	})
}

// DecodeWorkflowRun decodes and checks a WorkflowRun event's data.
func DecodeWorkflowRun(data []byte) (*WorkflowRun, error) {
	return decodeChecked(data, func(w *WorkflowRun) error { return CheckID("data.id", w.ID) })
}

// DecodeWorkflow decodes and checks a Workflow event's data.
func DecodeWorkflow(data []byte) (*Workflow, error) {
	return decodeChecked(data, func(w *Workflow) error { return CheckID("data.id", w.ID) })
}

// decodeChecked decodes event data into a T and returns it when check
// passes.
func decodeChecked[T any](data []byte, check func(*T) error) (*T, error) {
	var v T
	if err := decode(data, &v); err != nil {
		return nil, err
	}
	if err := check(&v); err != nil {
		return nil, err
	}
	return &v, nil
}

// maxIDLen bounds identifiers: the Engine's are 24-character ObjectIds.
const maxIDLen = 128

// CheckID checks an Engine reference: present, bounded, valid UTF-8, and
// free of '/' and NUL. field names it in the FieldError.
func CheckID(field, id string) error {
	switch {
	case id == "":
		return invalid(field, "is required")
	case len(id) > maxIDLen:
		return invalid(field, "is longer than %d characters", maxIDLen)
	case !utf8.ValidString(id):
		return invalid(field, "is not valid UTF-8")
	case strings.ContainsAny(id, "/\x00"):
		return invalid(field, "must not contain '/' or NUL")
	}
	return nil
}

// decode unmarshals data into v, turning JSON errors into field errors.
func decode(data []byte, v any) error {
	data = bytes.TrimSpace(data)
	if len(data) == 0 || bytes.Equal(data, []byte("null")) {
		return invalid("data", "is empty; a JSON object is required")
	}
	if data[0] != '{' {
		return invalid("data", "must be a JSON object")
	}
	if !utf8.Valid(data) {
		return invalid("data", "is not valid UTF-8")
	}
	if err := json.Unmarshal(data, v); err != nil {
		var typeErr *json.UnmarshalTypeError
		var syntaxErr *json.SyntaxError
		switch {
		case errors.As(err, &typeErr):
			field := "data"
			if typeErr.Field != "" {
				field += "." + typeErr.Field
			}
			return invalid(field, "must be a JSON %s, got %s", jsonKind(typeErr.Type.Kind().String()), typeErr.Value)
		case errors.As(err, &syntaxErr):
			return invalid("data", "malformed JSON at offset %d: %v", syntaxErr.Offset, syntaxErr)
		default:
			return invalid("data", "%v", err)
		}
	}
	return nil
}

func jsonKind(goKind string) string {
	switch goKind {
	case "string":
		return "string"
	case "bool":
		return "boolean"
	case "slice", "array":
		return "array"
	case "map", "struct", "ptr":
		return "object"
	default:
		return "number"
	}
}

// ParamString renders a parameter value as the string a task sees: strings
// verbatim, null as "", anything else as compact JSON written by
// CompactJSON, as the Java handler's Jackson wrote it.
func ParamString(v json.RawMessage) string {
	v = bytes.TrimSpace(v)
	if len(v) == 0 || bytes.Equal(v, []byte("null")) {
		return ""
	}
	if v[0] == '"' {
		var s string
		if err := json.Unmarshal(v, &s); err == nil {
			return s
		}
	}
	out, err := CompactJSON(v)
	if err != nil {
		return string(v)
	}
	return out
}

// CompactJSON re-encodes a JSON value compactly in one canonical form,
// whatever escapes the sender chose: object members in their order, numbers
// as written, strings in UTF-8 with only the escapes JSON requires (quote,
// backslash and control characters), as Jackson writes them.
func CompactJSON(v []byte) (string, error) {
	dec := json.NewDecoder(bytes.NewReader(v))
	dec.UseNumber()
	var b strings.Builder
	if err := writeJSONValue(dec, &b); err != nil {
		return "", err
	}
	if _, err := dec.Token(); err != io.EOF {
		return "", fmt.Errorf("more than one JSON value")
	}
	return b.String(), nil
}

// writeJSONValue copies the next value of dec to b.
func writeJSONValue(dec *json.Decoder, b *strings.Builder) error {
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	switch t := tok.(type) {
	case json.Delim: // '{' or '[': Token never returns a closing one here
		b.WriteRune(rune(t))
		for first := true; dec.More(); first = false {
			if !first {
				b.WriteByte(',')
			}
			if t == '{' {
				key, err := dec.Token()
				if err != nil {
					return err
				}
				writeJSONString(b, key.(string))
				b.WriteByte(':')
			}
			if err := writeJSONValue(dec, b); err != nil {
				return err
			}
		}
		end, err := dec.Token()
		if err != nil {
			return err
		}
		b.WriteRune(rune(end.(json.Delim)))
	case string:
		writeJSONString(b, t)
	case json.Number:
		b.WriteString(t.String())
	case bool:
		b.WriteString(strconv.FormatBool(t))
	case nil:
		b.WriteString("null")
	}
	return nil
}

// writeJSONString writes s quoted with only the escapes JSON requires.
func writeJSONString(b *strings.Builder, s string) {
	const hex = "0123456789abcdef"
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"' || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case r == '\t':
			b.WriteString(`\t`)
		case r == '\b':
			b.WriteString(`\b`)
		case r == '\f':
			b.WriteString(`\f`)
		case r < 0x20:
			b.WriteString(`\u00`)
			b.WriteByte(hex[r>>4])
			b.WriteByte(hex[r&0xf])
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
}

// ClaimValue is how a claim annotation holds its time.
func ClaimValue(at time.Time) string { return at.UTC().Format(time.RFC3339Nano) }

// ClaimTime is the time a claim annotation (AnnotationClaimed,
// AnnotationReporting) holds; zero, meaning stale, when there is none or
// it does not parse.
func ClaimTime(annotations map[string]string, key string) time.Time {
	at, _ := time.Parse(time.RFC3339Nano, annotations[key])
	return at
}
