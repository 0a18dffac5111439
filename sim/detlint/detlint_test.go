package detlint_test

import (
	"slices"
	"testing"

	"golang.org/x/tools/go/analysis/analysistest"

	"github.com/stratadb/strata/sim/detlint"
)

// TestAnalyzer checks every rule against testdata/src: engine/bad carries a
// `// want` for each construct the analyzer must report (analysistest fails on
// a missing or an unexpected diagnostic), engine/good and sim/outside the
// constructs it must accept, nodes/badnode that nodes/ is in scope.
func TestAnalyzer(t *testing.T) {
	results := analysistest.Run(t, analysistest.TestData(), detlint.Analyzer,
		"github.com/stratadb/strata/engine/bad",
		"github.com/stratadb/strata/engine/good",
		"github.com/stratadb/strata/nodes/badnode",
		"github.com/stratadb/strata/sim/outside",
	)

	// The escape comments are counted: engine/good has two, both used;
	// engine/bad has one well-formed one that suppresses nothing.
	type count struct{ total, used int }
	want := map[string]count{
		"github.com/stratadb/strata/engine/good":   {2, 2},
		"github.com/stratadb/strata/engine/bad":    {1, 0},
		"github.com/stratadb/strata/nodes/badnode": {0, 0},
	}
	seen := map[string]bool{}
	for _, r := range results {
		res, ok := r.Action.Result.(*detlint.Result)
		if !ok {
			t.Fatalf("%s: result is %T, want *detlint.Result", r.Action.Package.PkgPath, r.Action.Result)
		}
		path := r.Action.Package.PkgPath
		if path == "github.com/stratadb/strata/sim/outside" {
			if res.InScope {
				t.Errorf("%s: InScope = true, want false", path)
			}
			continue
		}
		w, ok := want[path]
		if !ok {
			continue // test variants, if any
		}
		seen[path] = true
		got := count{total: len(res.Escapes)}
		for _, e := range res.Escapes {
			if e.Used {
				got.used++
			}
			if e.Reason == "" {
				t.Errorf("%s: escape at %s has an empty reason", path, e.Pos)
			}
		}
		if got != w {
			t.Errorf("%s: escapes (total, used) = %v, want %v", path, got, w)
		}
	}
	if len(seen) != len(want) {
		t.Errorf("analysed %v, want all of %v", seen, want)
	}
}

func TestInScope(t *testing.T) {
	tests := []struct {
		path string
		want bool
	}{
		{"github.com/stratadb/strata/engine", true},
		{"github.com/stratadb/strata/engine/keys", true},
		{"github.com/stratadb/strata/engine/keys_test", true},
		{"github.com/stratadb/strata/nodes/pageserver", true},
		{"github.com/stratadb/strata/enginex", false},
		{"github.com/stratadb/strata/nodesy/a", false},
		{"github.com/stratadb/strata/clock", false},
		{"github.com/stratadb/strata/sim/engine", false},
		{"github.com/stratadb/strata/cmd/strata", false},
		{"example.com/engine/x", false},
	}
	for _, tt := range tests {
		if got := detlint.InScope(tt.path); got != tt.want {
			t.Errorf("InScope(%q) = %v, want %v", tt.path, got, tt.want)
		}
	}
	if !slices.ContainsFunc(detlint.RepoPatterns(), func(p string) bool { return detlint.InScope(p[:len(p)-len("/...")]) }) {
		t.Errorf("RepoPatterns %v are not in scope", detlint.RepoPatterns())
	}
}
