package tekton

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/util/validation"
)

// shortHash is the hash Name and LabelValue append for s.
func shortHash(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])[:hashLen]
}

// checkName fails unless name is a DNS-1123 label of at most 63 characters.
func checkName(t testing.TB, name string) {
	t.Helper()
	if errs := validation.IsDNS1123Label(name); len(errs) > 0 {
		t.Errorf("%q is not a DNS-1123 label: %v", name, errs)
	}
}

func TestName(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("a", 100)
	tests := []struct {
		name, prefix, kind, id string
		want                   string
	}{
		{name: "engine id unchanged", prefix: "bmrg-flow", kind: "task", id: "65a1f1a0e4b0a1b2c3d4e610", want: "bmrg-flow-task-65a1f1a0e4b0a1b2c3d4e610"},
		{name: "short id unchanged", prefix: "bmrg-flow", kind: "cfg", id: "x", want: "bmrg-flow-cfg-x"},
		{name: "exactly 63 unchanged", prefix: "bmrg-flow", kind: "task", id: strings.Repeat("b", 63-len("bmrg-flow-task-")),
			want: "bmrg-flow-task-" + strings.Repeat("b", 63-len("bmrg-flow-task-"))},
		{name: "64 truncated", prefix: "bmrg-flow", kind: "task", id: strings.Repeat("b", 64-len("bmrg-flow-task-")),
			want: ("bmrg-flow-task-" + strings.Repeat("b", 64))[:52] + "-" + shortHash("bmrg-flow-task-"+strings.Repeat("b", 64-len("bmrg-flow-task-")))},
		{name: "long truncated", prefix: "bmrg-flow", kind: "task", id: long,
			want: ("bmrg-flow-task-" + long)[:52] + "-" + shortHash("bmrg-flow-task-"+long)},
		{name: "uppercase lowered", prefix: "bmrg-flow", kind: "task", id: "ABC", want: "bmrg-flow-task-abc-" + shortHash("bmrg-flow-task-ABC")},
		{name: "underscore", prefix: "bmrg-flow", kind: "task", id: "a_b", want: "bmrg-flow-task-a-b-" + shortHash("bmrg-flow-task-a_b")},
		{name: "unicode", prefix: "bmrg-flow", kind: "task", id: "tâche-日本", want: "bmrg-flow-task-t-che-" + shortHash("bmrg-flow-task-tâche-日本")},
		{name: "dots and slashes", prefix: "bmrg-flow", kind: "task", id: "a.b/c", want: "bmrg-flow-task-a-b-c-" + shortHash("bmrg-flow-task-a.b/c")},
		{name: "empty id", prefix: "bmrg-flow", kind: "task", id: "", want: "bmrg-flow-task-" + shortHash("bmrg-flow-task-")},
		{name: "trailing dash", prefix: "bmrg-flow", kind: "task", id: "abc-", want: "bmrg-flow-task-abc-" + shortHash("bmrg-flow-task-abc-")},
		{name: "nothing usable", prefix: "", kind: "", id: "", want: "x-" + shortHash("--")},
		{name: "uppercase prefix", prefix: "BMRG", kind: "task", id: "1", want: "bmrg-task-1-" + shortHash("BMRG-task-1")},
		{name: "truncation ending in dash", prefix: "bmrg-flow", kind: "task", id: strings.Repeat("a", 36) + "-" + strings.Repeat("c", 30),
			want: "bmrg-flow-task-" + strings.Repeat("a", 36) + "-" + shortHash("bmrg-flow-task-"+strings.Repeat("a", 36)+"-"+strings.Repeat("c", 30))},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got := Name(tc.prefix, tc.kind, tc.id)
			if got != tc.want {
				t.Errorf("Name(%q, %q, %q) = %q, want %q", tc.prefix, tc.kind, tc.id, got, tc.want)
			}
			checkName(t, got)
			if again := Name(tc.prefix, tc.kind, tc.id); again != got {
				t.Errorf("not deterministic: %q then %q", got, again)
			}
		})
	}
}

func TestNameHelpers(t *testing.T) {
	t.Parallel()
	tests := []struct{ name, got, want string }{
		{"TaskRunName", TaskRunName("bmrg-flow", "65a1f1a0e4b0a1b2c3d4e611"), "bmrg-flow-task-65a1f1a0e4b0a1b2c3d4e611"},
		{"ConfigMapName", ConfigMapName("bmrg-flow", "65a1f1a0e4b0a1b2c3d4e611"), "bmrg-flow-cfg-65a1f1a0e4b0a1b2c3d4e611"},
		{"PVCName workflow", PVCName("bmrg-flow", "workflow", "65a1f0c2e4b0a1b2c3d4e5f6"), "bmrg-flow-pvc-workflow-65a1f0c2e4b0a1b2c3d4e5f6"},
		{"PVCName workflowrun", PVCName("bmrg-flow", "workflowrun", "65a1f0d9e4b0a1b2c3d4e601"), "bmrg-flow-pvc-workflowrun-65a1f0d9e4b0a1b2c3d4e601"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if tc.got != tc.want {
				t.Errorf("got %q, want %q", tc.got, tc.want)
			}
		})
	}
}

// TestNameDistinct checks that identities differing only past the
// truncation point, or only in case or punctuation, keep distinct names.
func TestNameDistinct(t *testing.T) {
	t.Parallel()
	base := strings.Repeat("0123456789", 10)
	groups := []struct {
		name string
		ids  []string
	}{
		{"differ past truncation", []string{base + "a", base + "b", base + "ab", base}},
		{"differ in case", []string{"abc", "ABC", "Abc"}},
		{"differ in punctuation", []string{"a_b", "a.b", "a/b", "a-b", "a b"}},
		{"long engine-like ids", []string{strings.Repeat("65a1f1a0e4b0a1b2c3d4e610", 3), strings.Repeat("65a1f1a0e4b0a1b2c3d4e611", 3)}},
	}
	for _, g := range groups {
		t.Run(g.name, func(t *testing.T) {
			t.Parallel()
			seen := map[string]string{}
			for _, id := range g.ids {
				n := Name("bmrg-flow", "task", id)
				checkName(t, n)
				if prev, ok := seen[n]; ok {
					t.Errorf("ids %q and %q share the name %q", prev, id, n)
				}
				seen[n] = id
			}
		})
	}
}

func TestLabelValue(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("v", 64)
	tests := []struct{ name, in, want string }{
		{"engine id unchanged", "65a1f1a0e4b0a1b2c3d4e610", "65a1f1a0e4b0a1b2c3d4e610"},
		{"empty unchanged", "", ""},
		{"punctuation unchanged", "A.b_c-D", "A.b_c-D"},
		{"63 unchanged", long[:63], long[:63]},
		{"64 truncated", long, long[:52] + "-" + shortHash(long)},
		{"space", "has space", "has-space-" + shortHash("has space")},
		{"leading dash", "-lead", "lead-" + shortHash("-lead")},
		{"unicode", "ünï", "n-" + shortHash("ünï")},
		{"nothing usable", "!!!", shortHash("!!!")},
		{"json", `{"a":1}`, "a-1-" + shortHash(`{"a":1}`)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got := LabelValue(tc.in)
			if got != tc.want {
				t.Errorf("LabelValue(%q) = %q, want %q", tc.in, got, tc.want)
			}
			if errs := validation.IsValidLabelValue(got); len(errs) > 0 {
				t.Errorf("%q is not a label value: %v", got, errs)
			}
			if again := LabelValue(tc.in); again != got {
				t.Errorf("not deterministic: %q then %q", got, again)
			}
		})
	}
}

// FuzzName checks that Name always gives a deterministic DNS-1123 label
// of at most 63 characters, the identity itself when that is one, else a
// name ending in the identity's hash.
func FuzzName(f *testing.F) {
	for _, s := range [][3]string{
		{"bmrg-flow", "task", "65a1f1a0e4b0a1b2c3d4e610"},
		{"bmrg-flow", "cfg", strings.Repeat("a", 80)},
		{"bmrg-flow", "pvc-workflowrun", "ABC_def.ghi"},
		{"", "", ""},
		{"-", "-", "-"},
		{"bmrg-flow", "task", "tâche-日本"},
	} {
		f.Add(s[0], s[1], s[2])
	}
	f.Fuzz(func(t *testing.T, prefix, kind, id string) {
		got := Name(prefix, kind, id)
		checkName(t, got)
		if again := Name(prefix, kind, id); again != got {
			t.Fatalf("not deterministic: %q then %q", got, again)
		}
		full := prefix + "-" + kind + "-" + id
		if len(validation.IsDNS1123Label(full)) == 0 {
			if got != full {
				t.Fatalf("valid identity %q renamed to %q", full, got)
			}
			return
		}
		if !strings.HasSuffix(got, "-"+shortHash(full)) {
			t.Fatalf("Name(%q) = %q does not end in the identity's hash", full, got)
		}
	})
}

// FuzzLabelValue checks that LabelValue always gives a deterministic valid
// label value, the input itself when that is one.
func FuzzLabelValue(f *testing.F) {
	for _, s := range []string{"65a1f1a0e4b0a1b2c3d4e610", "", "has space", strings.Repeat("v", 70), "ünï", "!!!"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		got := LabelValue(v)
		if errs := validation.IsValidLabelValue(got); len(errs) > 0 {
			t.Fatalf("LabelValue(%q) = %q is not a label value: %v", v, got, errs)
		}
		if len(validation.IsValidLabelValue(v)) == 0 && got != v {
			t.Fatalf("valid value %q changed to %q", v, got)
		}
		if again := LabelValue(v); again != got {
			t.Fatalf("not deterministic: %q then %q", got, again)
		}
	})
}
