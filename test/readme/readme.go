// Package readme reads the shell blocks of the project's README, for the
// tests that run or check what it shows, so that the README and the tests
// cannot drift apart.
package readme

import (
	"fmt"
	"os"
	"strings"
)

// Block returns the first ```sh fenced block after the line heading (e.g.
// "### Trying the handler by hand") of the Markdown file at path, without
// its fences.
func Block(path, heading string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	_, after, ok := strings.Cut("\n"+string(b), "\n"+heading+"\n")
	if !ok {
		return "", fmt.Errorf("%s: no line %q", path, heading)
	}
	_, after, ok = strings.Cut(after, "\n```sh\n")
	if !ok {
		return "", fmt.Errorf("%s: no ```sh block after %q", path, heading)
	}
	block, _, ok := strings.Cut(after, "\n```\n")
	if !ok {
		return "", fmt.Errorf("%s: the ```sh block after %q does not end", path, heading)
	}
	return block + "\n", nil
}
