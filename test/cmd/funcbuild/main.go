// Command funcbuild builds bin/handler and bin/sink through func's Go host
// builder path (see package funcbuild). Both are the same program; each runs
// the role its name says.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"

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
	handler := filepath.Join(bin, "handler")
	if err := funcbuild.Build(context.Background(), src, handler); err != nil {
		return err
	}
	sink := filepath.Join(bin, "sink")
	_ = os.Remove(sink)
	if err := os.Link(handler, sink); err != nil {
		return fmt.Errorf("link %s: %w", sink, err)
	}
	fmt.Println(handler)
	fmt.Println(sink)
	return nil
}
