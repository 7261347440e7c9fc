package contract

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/boomerang-io/flow-tekton-handler/test/fixtures"
)

// fixtureData returns the data of every Engine event fixture.
func fixtureData(t testing.TB) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	for _, name := range fixtures.Glob(t, "engine-*.json") {
		if data := fixtures.Data(t, name); len(data) > 0 {
			out[name] = data
		}
	}
	return out
}

func TestParseType(t *testing.T) {
	t.Parallel()
	cases := []struct {
		in   string
		want EventType
		ok   bool
	}{
		{"io.boomerang.event.status.taskrun", TypeTaskRun, true},
		{"io.boomerang.event.status.TaskRun", TypeTaskRun, true},
		{"io.boomerang.event.status.workflowrun", TypeWorkflowRun, true},
		{"io.boomerang.event.status.workflow", TypeWorkflow, true},
		{"io.boomerang.event.status.approval", TypePrefix + "approval", true},
		{"io.boomerang.event.status.", TypePrefix, true},
		{"io.boomerang.event.taskrun", "", false},
		{"dev.tekton.event.taskrun.successful.v1", "", false},
	}
	for _, tc := range cases {
		got, ok := ParseType(tc.in)
		if got != tc.want || ok != tc.ok {
			t.Errorf("ParseType(%q) = %q, %v; want %q, %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
}

func TestFixtureActions(t *testing.T) {
	t.Parallel()
	want := map[string]Action{
		"engine-taskrun-template-ready.json":           Execute,
		"engine-taskrun-script-ready.json":             Execute,
		"engine-taskrun-custom-ready.json":             Execute,
		"engine-taskrun-completed-cancelled.json":      Cancel,
		"engine-taskrun-completed-timedout.json":       Cancel,
		"engine-workflowrun-ready-with-workspace.json": StartWorkflowRun,
		"engine-workflowrun-completed.json":            FinalizeWorkflowRun,
	}
	for name, data := range fixtureData(t) {
		var got Action
		if strings.Contains(name, "workflowrun") {
			w, err := DecodeWorkflowRun(data)
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			got = w.Action()
		} else if strings.Contains(name, "taskrun") {
			tr, err := DecodeTaskRun(data)
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			got = tr.Action()
		} else {
			continue
		}
		if got != want[name] {
			t.Errorf("%s: action %s, want %s", name, got, want[name])
		}
	}
}

func TestTaskRunActions(t *testing.T) {
	t.Parallel()
	cases := []struct {
		typ, status, phase string
		want               Action
	}{
		{"script", "ready", "pending", Execute},
		{"Template", "READY", "Pending", Execute},
		{"custom", "timedout", "completed", Cancel},
		{"custom", "succeeded", "completed", Ignore},
		{"generic", "ready", "pending", Ignore},
		{"approval", "cancelled", "completed", Ignore},
		{"script", "running", "running", Ignore},
		{"script", "brand-new", "pending", Ignore},
	}
	for _, tc := range cases {
		tr := &TaskRun{Type: tc.typ, Status: tc.status, Phase: tc.phase}
		if got := tr.Action(); got != tc.want {
			t.Errorf("%s/%s/%s: %s, want %s", tc.typ, tc.status, tc.phase, got, tc.want)
		}
	}
}

func TestDecodeRejects(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name, data, field string
	}{
		{"empty", ``, "data"},
		{"null", `null`, "data"},
		{"array", `[]`, "data"},
		{"string", `"x"`, "data"},
		{"truncated", `{"id":"a","type":"script","phase":"pen`, "data"},
		{"missing id", `{"type":"script","status":"ready","phase":"pending"}`, "data.id"},
		{"id number", `{"id":1,"type":"script","phase":"pending"}`, "data.id"},
		{"id with slash", `{"id":"a/b","type":"script","phase":"pending"}`, "data.id"},
		{"id too long", `{"id":"` + strings.Repeat("a", 200) + `","type":"script","phase":"pending"}`, "data.id"},
		{"timeout string", `{"id":"a","type":"script","phase":"pending","timeout":"5"}`, "data.timeout"},
		{"timeout fractional", `{"id":"a","type":"script","phase":"pending","timeout":1.5}`, "data.timeout"},
		{"labels array", `{"id":"a","type":"script","phase":"pending","labels":["x"]}`, "data.labels"},
		{"params object", `{"id":"a","type":"script","phase":"pending","params":{"a":1}}`, "data.params"},
		{"spec image number", `{"id":"a","type":"script","phase":"pending","spec":{"image":5}}`, "data.spec.image"},
		{"invalid utf8", "{\"id\":\"a\xff\",\"type\":\"script\",\"phase\":\"pending\"}", "data"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := DecodeTaskRun([]byte(tc.data))
			var fe *FieldError
			if !errors.As(err, &fe) || !errors.Is(err, ErrInvalid) {
				t.Fatalf("want a FieldError, got %v", err)
			}
			if fe.Field != tc.field {
				t.Fatalf("field %q, want %q (%v)", fe.Field, tc.field, err)
			}
		})
	}
}

// TestDecodeWorkflowRunRejects: apart from the workspaces' spec, a
// workflow run's fields of the wrong type are refused with the field named.
func TestDecodeWorkflowRunRejects(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name, data, field string
	}{
		{"missing id", `{"status":"ready","phase":"pending"}`, "data.id"},
		{"id number", `{"id":1,"status":"ready","phase":"pending"}`, "data.id"},
		{"status number", `{"id":"r","status":1,"phase":"pending"}`, "data.status"},
		{"workflowRef object", `{"id":"r","workflowRef":{}}`, "data.workflowRef"},
		{"labels array", `{"id":"r","labels":["x"]}`, "data.labels"},
		{"workspaces object", `{"id":"r","workspaces":{}}`, "data.workspaces"},
		{"workspace string", `{"id":"r","workspaces":["x"]}`, "data.workspaces"},
		{"workspace name number", `{"id":"r","workspaces":[{"name":1,"type":"workflowrun","spec":{}}]}`, "data.workspaces.name"},
		{"workspace type boolean", `{"id":"r","workspaces":[{"name":"w","type":true,"spec":{}}]}`, "data.workspaces.type"},
		{"workspace optional string", `{"id":"r","workspaces":[{"name":"w","type":"workflowrun","optional":"no"}]}`, "data.workspaces.optional"},
		{"spec truncated", `{"id":"r","workspaces":[{"name":"w","type":"workflowrun","spec":{"size":`, "data"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := DecodeWorkflowRun([]byte(tc.data))
			var fe *FieldError
			if !errors.As(err, &fe) || !errors.Is(err, ErrInvalid) {
				t.Fatalf("%s: want a FieldError, got %v", tc.name, err)
			}
			if fe.Field != tc.field {
				t.Fatalf("%s: field %q, want %q (%v)", tc.name, fe.Field, tc.field, err)
			}
		})
	}
}

// TestDecodeWorkflowRunKeepsSpecRaw: a workspace's spec of any type, or
// with fields of any type, decodes and is kept as sent, for tekton.PVCs to
// read field by field.
func TestDecodeWorkflowRunKeepsSpecRaw(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		spec string // the spec's JSON; "" leaves it out
		want string // the raw spec decoded; "" for none
	}{
		{name: "absent"},
		{name: "null", spec: `null`, want: `null`},
		{name: "valid", spec: `{"accessMode":"ReadWriteOnce","className":"standard","mountPath":"/w","size":"2Gi"}`,
			want: `{"accessMode":"ReadWriteOnce","className":"standard","mountPath":"/w","size":"2Gi"}`},
		{name: "access mode number", spec: `{"accessMode":5}`, want: `{"accessMode":5}`},
		{name: "class boolean", spec: `{"className":true}`, want: `{"className":true}`},
		{name: "mount path array", spec: `{"mountPath":["/w"]}`, want: `{"mountPath":["/w"]}`},
		{name: "size object", spec: `{"size":{"gi":2}}`, want: `{"size":{"gi":2}}`},
		{name: "string", spec: `"x"`, want: `"x"`},
		{name: "empty array", spec: `[]`, want: `[]`},
		{name: "number", spec: `5`, want: `5`},
		{name: "boolean", spec: `false`, want: `false`},
		{name: "spaced", spec: `{ "accessMode" : 5 }`, want: `{ "accessMode" : 5 }`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ws := `{"name":"w","type":"workflowrun"}`
			if tc.spec != "" {
				ws = `{"name":"w","type":"workflowrun","spec":` + tc.spec + `}`
			}
			w, err := DecodeWorkflowRun([]byte(`{"id":"r","status":"ready","phase":"pending","workspaces":[` + ws + `]}`))
			if err != nil {
				t.Fatalf("%s: %v", tc.name, err)
			}
			if w.Action() != StartWorkflowRun || len(w.Workspaces) != 1 || w.Workspaces[0].Name != "w" {
				t.Fatalf("%s: decoded %+v", tc.name, w)
			}
			if got := string(w.Workspaces[0].Spec); got != tc.want {
				t.Errorf("%s: spec %q, want %q", tc.name, got, tc.want)
			}
		})
	}
}

func TestDecodeIsLenient(t *testing.T) {
	t.Parallel()
	data := `{"id":"a1","type":"script","status":"ready","phase":"pending","newField":{"x":[1]},
		"spec":{"image":"alpine","extra":"flattened","envs":[{"name":"A","value":"1","secret":true}]},
		"params":[{"name":"p","value":{"deep":[1,2,{"x":null}]}}],"workspaces":[{"name":"w","type":"workflow","optional":true,"future":1}]}`
	tr, err := DecodeTaskRun([]byte(data))
	if err != nil {
		t.Fatal(err)
	}
	if tr.Action() != Execute || tr.Spec.Envs[0].Name != "A" || ParamString(tr.Params[0].Value) != `{"deep":[1,2,{"x":null}]}` {
		t.Fatalf("decoded %+v", tr)
	}
}

func TestMislabelledWorkflowEventIgnored(t *testing.T) {
	t.Parallel()
	tr, err := DecodeTaskRun([]byte(`{"id":"w1","name":"My workflow","status":"deleted"}`))
	if err != nil || tr.Action() != Ignore {
		t.Fatalf("%v %v", tr, err)
	}
}

func TestParamString(t *testing.T) {
	t.Parallel()
	cases := map[string]string{
		`"1.4.2"`:              "1.4.2",
		`3`:                    "3",
		`2.50`:                 "2.50",
		`false`:                "false",
		`null`:                 "",
		``:                     "",
		`{"os": "linux"}`:      `{"os":"linux"}`,
		`[ "amd64", "arm64" ]`: `["amd64","arm64"]`,
		`"héllo ✓ <b>&"`:       "héllo ✓ <b>&",
		`{"a":"<b>&é"}`:        `{"a":"<b>&é"}`,
		`"line1\nline2"`:       "line1\nline2",
		// Objects and arrays in one canonical form, whatever the escapes.
		`{"a":"\u00e9\u2713 \u003cb\u003e"}`:                       `{"a":"é✓ <b>"}`,
		`["\/path", "tab\there", "\u0001", "q\"\\"]`:               `["/path","tab\there","\u0001","q\"\\"]`,
		`{ "z": 1, "a": [ 1.50, -2e3, true, null, {} ], "m": [] }`: `{"z":1,"a":[1.50,-2e3,true,null,{}],"m":[]}`,
		`{"\u006b":"v"}`: `{"k":"v"}`,
	}
	for in, want := range cases {
		if got := ParamString(json.RawMessage(in)); got != want {
			t.Errorf("ParamString(%s) = %q, want %q", in, got, want)
		}
	}
}

// FuzzDecode: any input either is rejected with a FieldError or decodes,
// and a decoded execute event has a usable id.
func FuzzDecode(f *testing.F) {
	for _, d := range fixtureData(f) {
		f.Add(d)
	}
	f.Add([]byte(`{"id":"a","type":"script","status":"ready","phase":"pending"}`))
	f.Add([]byte(`{"id":"r","status":"ready","phase":"pending","workspaces":[{"name":"w","type":"workflowrun","spec":{"accessMode":5,"className":true}},{"type":"workflow","spec":"x"}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		tr, err := DecodeTaskRun(data)
		if err != nil {
			var fe *FieldError
			if !errors.As(err, &fe) || fe.Field == "" {
				t.Fatalf("error without a field: %v", err)
			}
		} else if tr.Action() != Ignore {
			if tr.ID == "" || len(tr.ID) > maxIDLen || !utf8.ValidString(tr.ID) || strings.ContainsAny(tr.ID, "/\x00") {
				t.Fatalf("actionable event with id %q", tr.ID)
			}
		}
		if _, err := DecodeWorkflowRun(data); err != nil {
			var fe *FieldError
			if !errors.As(err, &fe) || !errors.Is(err, ErrInvalid) {
				t.Fatalf("workflowrun error not a FieldError: %v", err)
			}
			// A workspace's spec is kept raw: its type never refuses a run.
			if strings.HasPrefix(fe.Field, "data.workspaces.spec") {
				t.Fatalf("workflowrun refused for its workspace spec: %v", err)
			}
		}
	})
}

// FuzzCompactJSON: any JSON value re-encodes to JSON with the same meaning,
// and re-encoding that changes nothing.
func FuzzCompactJSON(f *testing.F) {
	for _, s := range []string{`{"a":[1,"\u00e9",{"b":null}]}`, `"x"`, `[true,false,1e3]`, `{"\u006b":"\/"}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var in any
		if err := unmarshalNumbers(data, &in); err != nil {
			return
		}
		out, err := CompactJSON(data)
		if err != nil {
			t.Fatalf("CompactJSON(%q): %v", data, err)
		}
		var back any
		if err := unmarshalNumbers([]byte(out), &back); err != nil || !reflect.DeepEqual(in, back) {
			t.Fatalf("CompactJSON(%q) = %q: meaning changed (%v)", data, out, err)
		}
		if again, err := CompactJSON([]byte(out)); err != nil || again != out {
			t.Fatalf("CompactJSON is not stable: %q then %q (%v)", out, again, err)
		}
	})
}

func unmarshalNumbers(data []byte, v *any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if _, err := dec.Token(); err != io.EOF {
		return errors.New("trailing data")
	}
	return nil
}
