// Command vulncheck runs govulncheck on this module with the vulnerability
// database built from the golang.org/x/vulndb module (see package
// test/vulncheck) and fails when the code calls a vulnerability that is not
// accepted.
//
//	vulncheck [-db-version V] [packages]   (default ./...)
package main

import (
	"context"
	"flag"
	"fmt"
	"os"

	"github.com/boomerang-io/flow-tekton-handler/test/vulncheck"
)

func main() {
	version := flag.String("db-version", vulncheck.DatabaseVersion, "golang.org/x/vulndb module version, or latest")
	flag.Parse()
	patterns := flag.Args()
	if len(patterns) == 0 {
		patterns = []string{"./..."}
	}
	if err := run(context.Background(), *version, patterns); err != nil {
		fmt.Fprintln(os.Stderr, "vulncheck:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, version string, patterns []string) error {
	db, resolved, err := vulncheck.Database(ctx, version, os.Stderr)
	if err != nil {
		return err
	}
	rep, err := vulncheck.Scan(ctx, db, ".", patterns...)
	if err != nil {
		return err
	}
	fmt.Printf("govulncheck %s, database golang.org/x/vulndb@%s, standard library %s\n", rep.Scanner, resolved, rep.GoVersion)
	for _, f := range rep.Findings {
		note := ""
		if why := vulncheck.Accepted[f.ID]; why != "" && f.Level == vulncheck.Called {
			note = " [accepted: " + why + "]"
		}
		fmt.Printf("  %-8s %s %s@%s fixed=%q%s\n", f.Level, f.ID, f.Module, f.Version, f.Fixed, note)
	}
	if err := vulncheck.Check(rep, vulncheck.Accepted); err != nil {
		return err
	}
	fmt.Println("vulncheck: no called vulnerability outside the accepted list")
	return nil
}
