package layers

import (
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
)

const module = "github.com/hanode/hanode"

// exact places named packages; prefixes place the rest of a subtree.
// A package in neither is an error: it must be placed deliberately.
var exact = map[string]int{
	"scripts/netlab":                  1,
	"replicator/redisstore/redistest": 1,
	"internal/testutil":               0,
	"internal/layers":                 0,
	"internal/hlc":                    0,
	"internal/subs":                   0,
	"internal/wire":                   0,
	"internal/packet":                 0,
	"scripts":                         0,
	"multicast":                       1,
	"membership":                      1,
	"replicator":                      2,
	"internal/buildinfo":              2,
	"httpsession/sessiontest":         3,
	"httpsession":                     4,
	"scripts/bench":                   6,
}

var prefixes = []struct {
	prefix string
	layer  int
}{
	{"replicator/", 3},
	{"httpsession/", 5},
	{"cmd/", 7},
	{"scripts/bench/cmd/", 7},
}

// layerOf returns the layer of a package path relative to the module, and
// false when the table does not place it.
func layerOf(rel string) (int, bool) {
	if l, ok := exact[rel]; ok {
		return l, true
	}
	best, layer := -1, 0
	for _, p := range prefixes {
		if strings.HasPrefix(rel, p.prefix) && len(p.prefix) > best {
			best, layer = len(p.prefix), p.layer
		}
	}
	return layer, best >= 0
}

// check returns one problem per upward (or sideways) import in imports,
// a map from a package (relative path) to the hanode packages it imports.
func check(imports map[string][]string) []string {
	var problems []string
	for pkg, deps := range imports {
		from, ok := layerOf(pkg)
		if !ok {
			problems = append(problems, pkg+": not placed in a layer (add it to layerOf's table and doc.go)")
			continue
		}
		for _, dep := range deps {
			to, ok := layerOf(dep)
			if !ok {
				problems = append(problems, dep+": not placed in a layer (imported by "+pkg+")")
				continue
			}
			if to >= from {
				problems = append(problems, pkg+" (layer "+strconv.Itoa(from)+") imports "+dep+" (layer "+strconv.Itoa(to)+")")
			}
		}
	}
	sort.Strings(problems)
	return problems
}

// productImports reads the non-test Go files of every package under root
// (nested modules included, testdata excluded) and returns, per package,
// the hanode packages they import. Every file counts, whatever its build
// constraints.
func productImports(t *testing.T, root string) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	fset := token.NewFileSet()
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			name := d.Name()
			if path != root && (name == "testdata" || name == "vendor" || name == "node_modules" || strings.HasPrefix(name, ".") || strings.HasPrefix(name, "_")) {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, parser.ImportsOnly)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, filepath.Dir(path))
		rel = filepath.ToSlash(rel)
		if _, seen := out[rel]; !seen {
			out[rel] = nil
		}
		for _, imp := range f.Imports {
			p, _ := strconv.Unquote(imp.Path.Value)
			if dep, ok := strings.CutPrefix(p, module+"/"); ok && !slices.Contains(out[rel], dep) {
				out[rel] = append(out[rel], dep)
			} else if p == module {
				t.Errorf("%s imports the module root", path)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestImportsPointDown fails when a package imports a package of its own
// or a higher layer (see doc.go), or when a package is in no layer.
func TestImportsPointDown(t *testing.T) {
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatal(err)
	}
	imports := productImports(t, root)
	for _, pkg := range []string{"multicast", "replicator", "replicator/cluster", "httpsession", "httpsession/hanode", "cmd/hanode"} {
		if _, ok := imports[pkg]; !ok {
			t.Fatalf("package %s not found under %s: the walk is broken", pkg, root)
		}
	}
	for _, p := range check(imports) {
		t.Error(p)
	}
}

// The rule itself: an upward, a sideways and an unplaced import are
// reported; downward ones are not.
func TestCheckReportsUpwardImports(t *testing.T) {
	got := check(map[string][]string{
		"replicator":         {"replicator/cluster"},
		"multicast":          {"membership"},
		"httpsession/hanode": {"httpsession", "replicator/cluster", "multicast"},
		"cmd/hanode":         {"httpsession/hanode", "mystery"},
		"newthing":           nil,
	})
	want := []string{
		"multicast (layer 1) imports membership (layer 1)",
		"mystery: not placed in a layer (imported by cmd/hanode)",
		"newthing: not placed in a layer (add it to layerOf's table and doc.go)",
		"replicator (layer 2) imports replicator/cluster (layer 3)",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("check reported\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
