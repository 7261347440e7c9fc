package vulncheck

import (
	"os"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func parseFile(t *testing.T, name string) Report {
	t.Helper()
	f, err := os.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rep, err := Parse(f)
	if err != nil {
		t.Fatalf("Parse(%s): %v", name, err)
	}
	return rep
}

func TestParse(t *testing.T) {
	rep := parseFile(t, "testdata/stream.json")
	want := Report{Scanner: "v1.9.0", GoVersion: "go1.26.11", Findings: []Finding{
		{ID: "GO-2021-0113", Summary: "Out-of-bounds read in golang.org/x/text/language", Level: Called,
			Module: "golang.org/x/text", Version: "v0.3.5", Fixed: "v0.3.7",
			Trace: "example.com/app.main (main.go:9) → golang.org/x/text/language.Parse (language/parse.go:33)"},
		{ID: "GO-2099-0001", Summary: "Imported only", Level: Imported, Module: "example.com/lib", Version: "v1.0.0", Fixed: "v1.2.3"},
		{ID: "GO-2099-0002", Summary: "Required only", Level: Required, Module: "example.com/other", Version: "v0.1.0"},
	}}
	if diff := cmp.Diff(want, rep); diff != "" {
		t.Errorf("report (-want +got):\n%s", diff)
	}
}

func TestParseRejectsOtherOutput(t *testing.T) {
	for name, in := range map[string]string{
		"text output": "No vulnerabilities found.\n",
		"no config":   `{"osv":{"id":"GO-2021-0113"}}`,
		"truncated":   `{"config":{"scanner_version":"v1.9.0"}}{"finding":`,
	} {
		if _, err := Parse(strings.NewReader(in)); err == nil {
			t.Errorf("%s: Parse accepted %q", name, in)
		}
	}
}

func TestCheck(t *testing.T) {
	rep := parseFile(t, "testdata/stream.json")
	for _, tc := range []struct {
		name     string
		accepted map[string]string
		// wantErr lists what the error must say; none means no error.
		wantErr []string
	}{
		{name: "called and not accepted fails, naming the call", accepted: nil,
			wantErr: []string{"GO-2021-0113", "golang.org/x/text@v0.3.5", "fixed in v0.3.7", "example.com/app.main (main.go:9)"}},
		{name: "called and accepted passes", accepted: map[string]string{"GO-2021-0113": "reason"}},
		{name: "imported-only accepted is still found", accepted: map[string]string{"GO-2021-0113": "r", "GO-2099-0001": "r"}},
		{name: "accepted but gone fails", accepted: map[string]string{"GO-2021-0113": "r", "GO-2000-9999": "r"},
			wantErr: []string{"GO-2000-9999 is accepted but no longer found"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := Check(rep, tc.accepted)
			if len(tc.wantErr) == 0 {
				if err != nil {
					t.Fatalf("Check: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("Check passed; want an error")
			}
			for _, w := range tc.wantErr {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
			for _, id := range []string{"GO-2099-0001", "GO-2099-0002"} {
				if strings.Contains(err.Error(), id) {
					t.Errorf("error names %s, which is not called: %v", id, err)
				}
			}
		})
	}
}

func TestAcceptedHaveReasons(t *testing.T) {
	for id, why := range Accepted {
		if !strings.HasPrefix(id, "GO-") || len(why) < 40 {
			t.Errorf("accepted %q needs a GO- id and a reason that says why it does not apply, got %q", id, why)
		}
	}
}
