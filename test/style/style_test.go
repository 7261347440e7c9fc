// Package style checks rules of the house style that a linter does not.
package style

import (
	"bytes"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode"
)

// maxLines bounds a product function: longer ones are split into named
// steps (builders, checks), as the anchors do.
const maxLines = 60

// minBlock is the shortest block of kept lines that product code may not
// repeat: a repeated block is a helper waiting to be named.
const minBlock = 6

// goFiles returns the module's Go files whose slash-separated path from
// the root keep accepts (hidden directories and bin/ left out), failing
// the test when fewer than least are found: a wrong root.
func goFiles(t *testing.T, least int, keep func(rel string) bool) []string {
	t.Helper()
	root := filepath.Join("..", "..")
	var files []string
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		rel = filepath.ToSlash(rel)
		switch {
		case d.IsDir() && (strings.HasPrefix(d.Name(), ".") && rel != "." || rel == "bin"):
			return filepath.SkipDir
		case !d.IsDir() && strings.HasSuffix(rel, ".go") && keep(rel):
			files = append(files, path)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < least {
		t.Fatalf("found only %d files: wrong root?", len(files))
	}
	return files
}

// productFiles returns the product code: function.go at the root and the
// non-test Go files of function/ and internal/.
func productFiles(t *testing.T) []string {
	return goFiles(t, 15, func(rel string) bool {
		return rel == "function.go" || !strings.HasSuffix(rel, "_test.go") &&
			(strings.HasPrefix(rel, "function/") || strings.HasPrefix(rel, "internal/"))
	})
}

// Product code (the root package, function/ and internal/) has no function
// over maxLines lines; tests and test programs may have long tables.
func TestProductFunctionsAreShort(t *testing.T) {
	t.Parallel()
	fset := token.NewFileSet()
	for _, path := range productFiles(t) {
		f, err := parser.ParseFile(fset, path, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range f.Decls {
			fd, ok := d.(*ast.FuncDecl)
			if !ok || fd.Body == nil {
				continue
			}
			if n := fset.Position(fd.End()).Line - fset.Position(fd.Pos()).Line + 1; n > maxLines {
				t.Errorf("%s: %s is %d lines, more than %d", fset.Position(fd.Pos()), fd.Name.Name, n, maxLines)
			}
		}
	}
}

// Product code repeats no block of minBlock or more kept lines, in one file
// or across files. Blank, comment and punctuation-only lines and the import
// declaration are passed over; lines compare with whitespace trimmed and
// folded.
func TestNoRepeatedBlocks(t *testing.T) {
	t.Parallel()
	type place struct{ file, at int } // indexes into kept and kept[file]
	type repeat struct {
		first, again place
		n            int // kept lines
	}
	var kept [][]line
	var repeats []repeat
	seen := map[string]place{} // a window's text -> where it first appears
	for fi, path := range productFiles(t) {
		lines := keptLines(t, path)
		kept = append(kept, lines)
		none := place{-1, -1}
		last := none // where the previous window first appears, if a repeat
		for i := 0; i+minBlock <= len(lines); i++ {
			key := texts(lines[i : i+minBlock])
			first, ok := seen[key]
			if !ok {
				seen[key] = place{fi, i}
			}
			if !ok || first.file == fi && i-first.at < minBlock { // new, or overlapping itself
				last = none
				continue
			}
			if last == (place{first.file, first.at - 1}) {
				repeats[len(repeats)-1].n++
			} else {
				repeats = append(repeats, repeat{first, place{fi, i}, minBlock})
			}
			last = first
		}
	}
	for _, r := range repeats {
		t.Errorf("%s and %s repeat %d lines:\n%s", kept[r.first.file][r.first.at].pos,
			kept[r.again.file][r.again.at].pos, r.n, texts(kept[r.again.file][r.again.at:r.again.at+r.n]))
	}
}

// line is a kept line of a product file: its place and normalised text.
type line struct{ pos, text string }

// keptLines returns the lines of the file at path that TestNoRepeatedBlocks
// compares.
func keptLines(t *testing.T, path string) []line {
	t.Helper()
	src, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, path, src, parser.ParseComments)
	if err != nil {
		t.Fatal(err)
	}
	// Blank out comments and the import declaration, keeping the newlines, so
	// that lines holding nothing else come out empty.
	code := bytes.Clone(src)
	blank := func(n ast.Node) {
		for i := fset.Position(n.Pos()).Offset; i < fset.Position(n.End()).Offset; i++ {
			if code[i] != '\n' {
				code[i] = ' '
			}
		}
	}
	for _, c := range f.Comments {
		blank(c)
	}
	for _, d := range f.Decls {
		if g, ok := d.(*ast.GenDecl); ok && g.Tok == token.IMPORT {
			blank(g)
		}
	}
	srcLines := strings.Split(string(src), "\n")
	var lines []line
	for i, c := range strings.Split(string(code), "\n") {
		if strings.IndexFunc(c, func(r rune) bool { return !unicode.IsPunct(r) && !unicode.IsSpace(r) }) >= 0 {
			lines = append(lines, line{fmt.Sprintf("%s:%d", path, i+1), strings.Join(strings.Fields(srcLines[i]), " ")})
		}
	}
	return lines
}

// texts joins the texts of lines, one a line.
func texts(lines []line) string {
	var b strings.Builder
	for _, l := range lines {
		b.WriteString(l.text + "\n")
	}
	return b.String()
}

// testFiles returns the Go files of the tests: every _test.go file in the
// module and every file under test/, but those under the directories skip
// names.
func testFiles(t *testing.T, skip ...string) []string {
	return goFiles(t, 40, func(rel string) bool {
		for _, dir := range skip {
			if strings.HasPrefix(rel, dir+"/") {
				return false
			}
		}
		return strings.HasSuffix(rel, "_test.go") || strings.HasPrefix(rel, "test/")
	})
}

// Tests read fixtures through package test/fixtures and poll through
// package test/wait: no other test file names a fixture path, and no test
// sleeps in a loop of its own (a goroutine's body inside a loop is its
// own; test programs, which have no *testing.T, may).
func TestOneHomeForTestHelpers(t *testing.T) {
	t.Parallel()
	fset := token.NewFileSet()
	for _, path := range testFiles(t, "test/fixtures", "test/wait", "test/style") {
		isTest := strings.HasSuffix(path, "_test.go")
		f, err := parser.ParseFile(fset, path, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range f.Decls {
			if g, ok := d.(*ast.GenDecl); ok && g.Tok == token.IMPORT {
				continue
			}
			ast.Inspect(d, func(n ast.Node) bool {
				switch n := n.(type) {
				case *ast.BasicLit:
					if n.Kind == token.STRING && (strings.Contains(n.Value, "fixtures/") || n.Value == `"fixtures"`) {
						t.Errorf("%s: %s names a fixture path: read it through test/fixtures", fset.Position(n.Pos()), n.Value)
					}
				case *ast.ForStmt:
					if isTest {
						sleepsIn(t, fset, n.Body)
					}
				case *ast.RangeStmt:
					if isTest {
						sleepsIn(t, fset, n.Body)
					}
				}
				return true
			})
		}
	}
}

// sleepsIn reports a time.Sleep or clock.Sleep in body, outside function
// literals.
func sleepsIn(t *testing.T, fset *token.FileSet, body *ast.BlockStmt) {
	ast.Inspect(body, func(n ast.Node) bool {
		if _, ok := n.(*ast.FuncLit); ok {
			return false
		}
		if c, ok := n.(*ast.CallExpr); ok {
			if sel, ok := c.Fun.(*ast.SelectorExpr); ok && sel.Sel.Name == "Sleep" {
				if x, ok := sel.X.(*ast.Ident); ok && (x.Name == "time" || x.Name == "clock") {
					t.Errorf("%s: a loop that sleeps: poll with wait.Eventually", fset.Position(c.Pos()))
				}
			}
		}
		return true
	})
}
