// Command funcbuild builds bin/handler, bin/sink and bin/logs through func's
// Go host builder path (see package funcbuild). All three are the same
// program, hard links of one build; each runs the role its name says.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"

	"github.com/boomerang-io/flow-tekton-handler/internal/config"
	"github.com/boomerang-io/flow-tekton-handler/test/funcbuild"
)

func main() {
	src := flag.String("src", ".", "function source (the module root)")
	bin := flag.String("bin", "bin", "output directory")
	flag.Parse()
	if err := run(*src, *bin); err != nil {
		fmt.Fprintln(os.Stderr, "funcbuild:", err)
		os.Exit(1)
	}
}

func run(src, bin string) error {
	if err := os.MkdirAll(bin, 0o755); err != nil {
		return err
	}
	handler := filepath.Join(bin, config.RoleHandler)
	if err := funcbuild.Build(context.Background(), src, handler); err != nil {
		return err
	}
	fmt.Println(handler)
	for _, role := range []string{config.RoleSink, config.RoleLogs} {
		p := filepath.Join(bin, role)
		_ = os.Remove(p)
		if err := os.Link(handler, p); err != nil {
			return fmt.Errorf("link %s: %w", p, err)
		}
		fmt.Println(p)
	}
	return nil
}
