package layers

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"strings"
	"testing"
)

// undocumentedFields returns "file:line Type.Field" for every exported
// field of an exported struct type in src that has no comment of its own
// (above or after it) and is not named by the comment of the field group
// it belongs to (consecutive lines after a commented field).
func undocumentedFields(fset *token.FileSet, f *ast.File, name string) []string {
	var out []string
	ast.Inspect(f, func(x ast.Node) bool {
		ts, ok := x.(*ast.TypeSpec)
		if !ok || !ts.Name.IsExported() {
			return true
		}
		st, ok := ts.Type.(*ast.StructType)
		if !ok {
			return true
		}
		groupDoc, lastLine := "", -1
		for _, fl := range st.Fields.List {
			line := fset.Position(fl.Pos()).Line
			if line != lastLine+1 {
				groupDoc = ""
			}
			lastLine = fset.Position(fl.End()).Line
			if fl.Doc != nil {
				groupDoc = fl.Doc.Text()
			}
			if fl.Doc != nil || fl.Comment != nil {
				continue
			}
			for _, nm := range fl.Names {
				if nm.IsExported() && !strings.Contains(groupDoc, nm.Name) {
					out = append(out, name+":"+itoa(line)+" "+ts.Name.Name+"."+nm.Name)
				}
			}
		}
		return true
	})
	return out
}

func itoa(i int) string {
	if i < 10 {
		return string(rune('0' + i))
	}
	return itoa(i/10) + string(rune('0'+i%10))
}

// TestExportedFieldsDocumented: every exported field of an exported struct
// in a library package says what it holds (CONVENTIONS.md).
func TestExportedFieldsDocumented(t *testing.T) {
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	files := 0
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			n := d.Name()
			if path != root && (n == "testdata" || n == "node_modules" || strings.HasPrefix(n, ".") || strings.HasPrefix(n, "_")) {
				return filepath.SkipDir
			}
			return nil
		}
		rel, _ := filepath.Rel(root, path)
		rel = filepath.ToSlash(rel)
		if !strings.HasSuffix(rel, ".go") || strings.HasSuffix(rel, "_test.go") ||
			strings.HasPrefix(rel, "cmd/") || strings.HasPrefix(rel, "scripts/") || strings.HasPrefix(rel, "internal/") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, parser.ParseComments)
		if err != nil {
			return err
		}
		if f.Name.Name == "main" {
			return nil
		}
		files++
		for _, p := range undocumentedFields(fset, f, rel) {
			t.Errorf("undocumented field %s", p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if files < 50 {
		t.Fatalf("read %d files: the walk is broken", files)
	}
}

func TestUndocumentedFieldsFound(t *testing.T) {
	const src = `package p
type T struct {
	// A is documented.
	A int
	B int // so is B
	// C and D share this comment.
	C, D int
	E int
	F int

	// G alone.
	G int
	H int
	x int
}
type u struct{ Z int }
`
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, "p.go", src, parser.ParseComments)
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Join(undocumentedFields(fset, f, "p.go"), "; ")
	if want := "p.go:8 T.E; p.go:9 T.F; p.go:13 T.H"; got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
}
