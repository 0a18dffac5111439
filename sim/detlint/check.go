package detlint

import (
	"cmp"
	"errors"
	"fmt"
	"path/filepath"
	"slices"

	"golang.org/x/tools/go/analysis"
	"golang.org/x/tools/go/analysis/checker"
	"golang.org/x/tools/go/packages"
)

// RepoPatterns returns the package patterns the repository lint covers.
func RepoPatterns() []string {
	return []string{Module + "/engine/...", Module + "/nodes/..."}
}

// ErrLoad reports that the packages to lint could not be loaded or
// type-checked, so the lint cannot vouch for them.
var ErrLoad = errors.New("detlint: cannot load packages")

// Finding is one diagnostic, positioned relative to the module root.
type Finding struct {
	File    string // slash-separated, relative to the module root when known
	Line    int
	Column  int
	Message string
}

// String is the "path/file.go:LINE: message" form editors and CI logs link.
func (f Finding) String() string {
	return fmt.Sprintf("%s:%d: %s", f.File, f.Line, f.Message)
}

// Report is the outcome of linting a set of packages.
type Report struct {
	// Packages lists the import paths that were analysed, sorted.
	Packages []string
	// Findings are sorted by file and line.
	Findings []Finding
	// Escapes are every escape comment with a reason, sorted by position.
	Escapes []Escape
}

// Check loads the packages matching patterns (resolved from dir, which must
// lie inside the module) once, runs the Analyzer on each, and returns the
// findings.
//
// Only non-test files are loaded. The rules protect code that runs under the
// simulator; tests are drivers around it and may legitimately use real time
// (deadlines on a real-clock conformance run, t.Parallel, timeouts guarding a
// hang) or ranges over maps whose order they do not observe. Loading test
// variants would also roughly double the packages type-checked, and the lint
// must stay fast inside `go test ./...`.
func Check(dir string, patterns ...string) (*Report, error) {
	cfg := &packages.Config{
		Mode: packages.NeedName | packages.NeedFiles | packages.NeedCompiledGoFiles |
			packages.NeedImports | packages.NeedTypes | packages.NeedTypesSizes |
			packages.NeedSyntax | packages.NeedTypesInfo | packages.NeedModule,
		Dir:   dir,
		Tests: false,
	}
	pkgs, err := packages.Load(cfg, patterns...)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrLoad, err)
	}
	var loadErrs []error
	for _, p := range pkgs {
		for _, e := range p.Errors {
			loadErrs = append(loadErrs, fmt.Errorf("%s: %s", p.PkgPath, e))
		}
	}
	if len(loadErrs) > 0 {
		return nil, fmt.Errorf("%w: %w", ErrLoad, errors.Join(loadErrs...))
	}

	graph, err := checker.Analyze([]*analysis.Analyzer{Analyzer}, pkgs, nil)
	if err != nil {
		return nil, fmt.Errorf("detlint: analyze: %w", err)
	}
	rep := &Report{}
	for _, act := range graph.Roots {
		if act.Err != nil {
			return nil, fmt.Errorf("detlint: %s: %w", act.Package.PkgPath, act.Err)
		}
		root := ""
		if act.Package.Module != nil {
			root = act.Package.Module.Dir
		}
		rep.Packages = append(rep.Packages, act.Package.PkgPath)
		for _, d := range act.Diagnostics {
			pos := act.Package.Fset.Position(d.Pos)
			rep.Findings = append(rep.Findings, Finding{
				File: relative(root, pos.Filename), Line: pos.Line, Column: pos.Column, Message: d.Message,
			})
		}
		if res, ok := act.Result.(*Result); ok {
			for _, e := range res.Escapes {
				e.Pos.Filename = relative(root, e.Pos.Filename)
				rep.Escapes = append(rep.Escapes, e)
			}
		}
	}
	slices.Sort(rep.Packages)
	slices.SortFunc(rep.Findings, func(a, b Finding) int {
		return cmp.Or(cmp.Compare(a.File, b.File), cmp.Compare(a.Line, b.Line), cmp.Compare(a.Column, b.Column))
	})
	slices.SortFunc(rep.Escapes, func(a, b Escape) int {
		return cmp.Or(cmp.Compare(a.Pos.Filename, b.Pos.Filename), cmp.Compare(a.Pos.Line, b.Pos.Line))
	})
	return rep, nil
}

func relative(root, file string) string {
	if root != "" {
		if rel, err := filepath.Rel(root, file); err == nil {
			return filepath.ToSlash(rel)
		}
	}
	return filepath.ToSlash(file)
}
