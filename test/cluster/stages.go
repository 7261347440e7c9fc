package cluster

import (
	"bytes"
	_ "embed"
	"os"
	"path/filepath"
)

// podCompleteStages finish Running pods (see the file's comment).
//
//go:embed stages/pod-complete.yaml
var podCompleteStages []byte

// writeStages writes kwok's configuration to path: kwok's own stages (from
// kwokDir, copied there by Build) followed by ours.
func writeStages(path, kwokDir string) error {
	var docs [][]byte
	for _, s := range kwokStages {
		b, err := os.ReadFile(filepath.Join(kwokDir, filepath.Base(s)))
		if err != nil {
			return err
		}
		docs = append(docs, b)
	}
	docs = append(docs, podCompleteStages)
	return os.WriteFile(path, joinYAML(docs), 0o644)
}

// joinYAML joins YAML streams into one, separated by "---" lines.
func joinYAML(docs [][]byte) []byte {
	var b bytes.Buffer
	for i, d := range docs {
		if i > 0 {
			b.WriteString("---\n")
		}
		b.Write(d)
		if len(d) > 0 && d[len(d)-1] != '\n' {
			b.WriteByte('\n')
		}
	}
	return b.Bytes()
}
