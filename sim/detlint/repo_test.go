package detlint_test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stratadb/strata/sim/detlint"
)

// TestDeterminismLint is the repository lint: it loads every non-test
// package under engine/ and nodes/ once, runs the analyzer, and fails with
// one "path/file.go:LINE: message" error per finding. Check's doc says why
// test files are not loaded.
func TestDeterminismLint(t *testing.T) {
	recordSources(t)
	rep, err := detlint.Check(".", detlint.RepoPatterns()...)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Packages) == 0 {
		t.Fatalf("no packages matched %v: the lint would pass vacuously", detlint.RepoPatterns())
	}
	for _, f := range rep.Findings {
		t.Errorf("%s", f)
	}
	used := 0
	for _, e := range rep.Escapes {
		if e.Used {
			used++
		}
	}
	t.Logf("determinism lint: %d packages, %d findings, %d %s escape comments (%d suppressing a finding)",
		len(rep.Packages), len(rep.Findings), len(rep.Escapes), detlint.Directive, used)
	for _, e := range rep.Escapes {
		t.Logf("  escape %s:%d: %s", e.Pos.Filename, e.Pos.Line, e.Reason)
	}
}

// recordSources lists every directory and stats every .go file of the
// module from inside the test process. The go command caches a passing test
// result keyed on the files and directories the test process itself opened
// or stat'ed; the packages are read by a `go list` subprocess, which that
// bookkeeping does not see. Without this walk, a violation planted in a new
// package could be answered by a cached "ok".
func recordSources(t *testing.T) {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			break
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no go.mod above the test's directory")
		}
		dir = parent
	}
	err = filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if name := d.Name(); path != dir && (strings.HasPrefix(name, ".") || name == "testdata") {
				return filepath.SkipDir
			}
			return nil
		}
		if strings.HasSuffix(path, ".go") || d.Name() == "go.mod" {
			_, err := os.Stat(path)
			return err
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestPlantedViolations is the automated form of the lint's acceptance
// check: each forbidden construct, planted in a new package under engine/ of
// a throwaway copy of the module layout, is reported at its file and line by
// the same Check the repository lint uses, and a clean package is not.
func TestPlantedViolations(t *testing.T) {
	plants := []struct {
		name, imports, body, want string
	}{
		{"timenow", `"time"`, `_ = time.Now()`, "time.Now reads the real clock"},
		{"gostmt", ``, `go func() {}()`, "go statement"},
		{"makechan", ``, `_ = make(chan int)`, "channel type"},
		{"selectstmt", ``, `select {}`, "select statement"},
		{"randintn", `"math/rand"`, `_ = rand.Intn(3)`, "math/rand.Intn uses the global random source"},
		{"osopen", `"os"`, `_, _ = os.Open("x")`, "os.Open: os reaches the host"},
	}
	const bodyLine = 6 // line of the planted statement in the file below

	dir := t.TempDir()
	write := func(rel, text string) {
		t.Helper()
		p := filepath.Join(dir, filepath.FromSlash(rel))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("go.mod", "module "+detlint.Module+"\n\ngo 1.26\n")
	write("engine/zz_clean/x.go", "package zz_clean\n\nfunc F() int { return 1 }\n")
	for _, p := range plants {
		imp := ""
		if p.imports != "" {
			imp = "import " + p.imports
		}
		// Line 6 holds the planted statement.
		write("engine/zz_plant_"+p.name+"/x.go", fmt.Sprintf("package zz_plant_%s\n\n%s\n\nfunc F() {\n\t%s\n}\n", p.name, imp, p.body))
	}

	rep, err := detlint.Check(dir, detlint.RepoPatterns()...)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := len(rep.Packages), len(plants)+1; got != want {
		t.Fatalf("analysed %d packages %v, want %d", got, rep.Packages, want)
	}
	for _, p := range plants {
		file := "engine/zz_plant_" + p.name + "/x.go"
		prefix := fmt.Sprintf("%s:%d: ", file, bodyLine)
		found := false
		for _, f := range rep.Findings {
			if strings.HasPrefix(f.String(), prefix) && strings.Contains(f.Message, p.want) {
				found = true
			}
		}
		if !found {
			t.Errorf("plant %s: no finding %q containing %q in %v", p.name, prefix, p.want, rep.Findings)
		}
	}
	for _, f := range rep.Findings {
		if strings.HasPrefix(f.File, "engine/zz_clean/") {
			t.Errorf("clean package reported: %s", f)
		}
	}
}

// TestCheckLoadError shows that a package that does not type-check is an
// error, not a silent pass.
func TestCheckLoadError(t *testing.T) {
	dir := t.TempDir()
	for rel, text := range map[string]string{
		"go.mod":             "module " + detlint.Module + "\n\ngo 1.26\n",
		"engine/broken/x.go": "package broken\n\nfunc F() int { return undefined }\n",
	} {
		p := filepath.Join(dir, filepath.FromSlash(rel))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	_, err := detlint.Check(dir, detlint.RepoPatterns()...)
	if !errors.Is(err, detlint.ErrLoad) {
		t.Fatalf("Check on a broken package: err = %v, want ErrLoad", err)
	}
}
