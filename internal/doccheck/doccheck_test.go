package doccheck

import (
	"errors"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// moduleRoot walks up from the test's folder to the go.mod.
func moduleRoot(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no go.mod above the test's folder")
		}
		dir = parent
	}
}

// packageDirs returns every folder of the module, relative to root, that
// holds a non-test .go file, skipping what the go tool skips (testdata,
// folders starting with . or _) and nested modules.
func packageDirs(root string) ([]string, error) {
	var dirs []string
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			return nil
		}
		name := d.Name()
		if path != root {
			if name == "testdata" || name == "vendor" || strings.HasPrefix(name, ".") || strings.HasPrefix(name, "_") {
				return filepath.SkipDir
			}
			if _, err := os.Stat(filepath.Join(path, "go.mod")); err == nil {
				return filepath.SkipDir
			}
		}
		files, err := goFiles(path)
		if err != nil {
			return err
		}
		if len(files) > 0 {
			rel, err := filepath.Rel(root, path)
			if err != nil {
				return err
			}
			dirs = append(dirs, rel)
		}
		return nil
	})
	return dirs, err
}

// goFiles lists the non-test .go files of dir.
func goFiles(dir string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var files []string
	for _, e := range entries {
		n := e.Name()
		if !e.IsDir() && strings.HasSuffix(n, ".go") && !strings.HasSuffix(n, "_test.go") &&
			!strings.HasPrefix(n, ".") && !strings.HasPrefix(n, "_") {
			files = append(files, filepath.Join(dir, n))
		}
	}
	return files, nil
}

// docProblem returns why the package in dir lacks a proper package
// comment, or "" if it has one: some file's comment right above the
// package clause, starting "Package <name> " for a library (Go's
// convention, what go doc shows first) or anything for a command.
func docProblem(dir string) (string, error) {
	files, err := goFiles(dir)
	if err != nil {
		return "", err
	}
	fset := token.NewFileSet()
	var name string
	var docs []*ast.CommentGroup
	for _, f := range files {
		pf, err := parser.ParseFile(fset, f, nil, parser.PackageClauseOnly|parser.ParseComments)
		if err != nil {
			return "", err
		}
		name = pf.Name.Name
		if pf.Doc != nil && strings.TrimSpace(pf.Doc.Text()) != "" {
			docs = append(docs, pf.Doc)
		}
	}
	if len(docs) == 0 {
		return "no package comment in any file (add a doc.go: // Package " + name + " owns ...)", nil
	}
	if name == "main" {
		return "", nil
	}
	for _, d := range docs {
		if strings.HasPrefix(d.Text(), "Package "+name+" ") {
			return "", nil
		}
	}
	return "package comment does not start with \"Package " + name + " \"", nil
}

func TestEveryPackageHasDoc(t *testing.T) {
	root := moduleRoot(t)
	dirs, err := packageDirs(root)
	if err != nil {
		t.Fatal(err)
	}
	if len(dirs) < 3 {
		t.Fatalf("found only %d packages under %s; the walk is broken", len(dirs), root)
	}
	sort.Strings(dirs)
	for _, dir := range dirs {
		t.Run(dir, func(t *testing.T) {
			problem, err := docProblem(filepath.Join(root, dir))
			if err != nil {
				t.Fatal(err)
			}
			if problem != "" {
				t.Errorf("%s: %s", dir, problem)
			}
		})
	}
}

// TestDocProblem checks the checker on made-up packages, so a check that
// always passes would be caught.
func TestDocProblem(t *testing.T) {
	tests := []struct {
		name  string
		files map[string]string
		want  string // substring of the problem; "" for none
	}{
		{"documented", map[string]string{"a.go": "// Package p owns things.\npackage p\n"}, ""},
		{"doc in one file of two", map[string]string{"a.go": "package p\n", "doc.go": "// Package p owns things.\npackage p\n"}, ""},
		{"undocumented", map[string]string{"a.go": "package p\n\nfunc F() {}\n"}, "no package comment"},
		{"comment separated by a blank line", map[string]string{"a.go": "// Package p owns things.\n\npackage p\n"}, "no package comment"},
		{"comment naming another package", map[string]string{"a.go": "// Package q owns things.\npackage p\n"}, "does not start with"},
		{"comment not in the Package form", map[string]string{"a.go": "// This owns things.\npackage p\n"}, "does not start with"},
		{"only a test file documented", map[string]string{"a.go": "package p\n", "a_test.go": "// Package p owns things.\npackage p\n"}, "no package comment"},
		{"command with any comment", map[string]string{"main.go": "// Command tool does things.\npackage main\n"}, ""},
		{"command without comment", map[string]string{"main.go": "package main\n"}, "no package comment"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			for name, src := range tt.files {
				if err := os.WriteFile(filepath.Join(dir, name), []byte(src), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			got, err := docProblem(dir)
			if err != nil {
				t.Fatal(err)
			}
			if (tt.want == "") != (got == "") || !strings.Contains(got, tt.want) {
				t.Errorf("docProblem = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestPackageDirsSkips(t *testing.T) {
	root := t.TempDir()
	for _, p := range []string{"a/x.go", "a/testdata/y.go", ".hidden/z.go", "_skip/w.go", "nested/go.mod", "nested/v.go", "b/only_test.go", "c/d/e.go"} {
		path := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte("package x\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	got, err := packageDirs(root)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"a", filepath.Join("c", "d")}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("packageDirs = %v, want %v", got, want)
	}
	if _, err := packageDirs(filepath.Join(root, "missing")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("packageDirs(missing) = %v, want not-exist", err)
	}
}
