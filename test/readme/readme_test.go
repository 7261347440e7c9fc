package readme

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestBlock(t *testing.T) {
	t.Parallel()
	const doc = "# T\n\n## A\n\ntext\n\n```go\nnot this\n```\n\n```sh\nmake up\n# comment\n```\n\n## B\n\n```sh\nmake down\n```\n"
	path := filepath.Join(t.TempDir(), "README.md")
	if err := os.WriteFile(path, []byte(doc), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		heading, want, wantErr string
	}{
		{"## A", "make up\n# comment\n", ""},
		{"## B", "make down\n", ""},
		{"## C", "", `no line "## C"`},
		{"# T", "make up\n# comment\n", ""},
		{"text", "make up\n# comment\n", ""},
	} {
		got, err := Block(path, tc.heading)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("%q: err = %v, want %q", tc.heading, err, tc.wantErr)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("%q: Block = %q, %v; want %q", tc.heading, got, err, tc.want)
		}
	}
	if _, err := Block(filepath.Join(t.TempDir(), "none.md"), "## A"); err == nil {
		t.Error("a missing file gave no error")
	}
}

// TestProjectREADME checks that the blocks the tests run are there.
func TestProjectREADME(t *testing.T) {
	t.Parallel()
	for _, heading := range []string{"### Trying the handler by hand", "## Deploying"} {
		if b, err := Block(filepath.Join("..", "..", "README.md"), heading); err != nil || strings.TrimSpace(b) == "" {
			t.Errorf("%s: %q, %v", heading, b, err)
		}
	}
}
