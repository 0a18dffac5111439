package detlint_test

import (
	"slices"
	"strings"
	"testing"

	"golang.org/x/tools/go/packages"

	"github.com/stratadb/strata/sim/detlint"
)

// layerRules is the import table of docs/architecture.md ("Layout"): for
// each top-level folder, the module packages its non-test code may import
// besides its own folder. A rule ending in "/..." allows the whole tree;
// otherwise exactly that package (so engine/ may use the disk seam but not
// a conformance suite or a real adapter). Folders absent here (sim, fuzz,
// cmd) may import anything.
var layerRules = map[string][]string{
	"clock":  {},
	"net":    {"clock"},
	"disk":   {"clock"},
	"engine": {"clock", "disk", "disk/objstore"},
	"nodes":  {"engine/...", "clock", "net", "disk", "disk/objstore"},
}

func allowedImport(rules []string, imp string) bool {
	for _, r := range rules {
		if tree, ok := strings.CutSuffix(r, "/..."); ok {
			if imp == tree || strings.HasPrefix(imp, tree+"/") {
				return true
			}
		} else if imp == r {
			return true
		}
	}
	return false
}

// TestLayering checks every non-test package of the module against
// layerRules, so the seams stay the only way from the deterministic core to
// the world.
func TestLayering(t *testing.T) {
	recordSources(t)
	cfg := &packages.Config{Mode: packages.NeedName | packages.NeedImports, Dir: "."}
	pkgs, err := packages.Load(cfg, detlint.Module+"/...")
	if err != nil {
		t.Fatal(err)
	}
	if len(pkgs) == 0 {
		t.Fatal("no packages loaded")
	}
	checked := 0
	for _, p := range pkgs {
		rel, ok := strings.CutPrefix(p.PkgPath, detlint.Module+"/")
		if !ok {
			continue
		}
		top, _, _ := strings.Cut(rel, "/")
		rules, ruled := layerRules[top]
		if !ruled {
			continue
		}
		checked++
		imps := make([]string, 0, len(p.Imports))
		for imp := range p.Imports {
			imps = append(imps, imp)
		}
		slices.Sort(imps)
		for _, imp := range imps {
			irel, ok := strings.CutPrefix(imp, detlint.Module+"/")
			if !ok {
				continue // standard library or third party
			}
			if itop, _, _ := strings.Cut(irel, "/"); itop == top {
				continue
			}
			if !allowedImport(rules, irel) {
				t.Errorf("%s imports %s: %s/ may import only %v of this module (docs/architecture.md, Layout)", rel, irel, top, rules)
			}
		}
	}
	if checked == 0 {
		t.Fatal("no package of clock/, net/, disk/, engine/ or nodes/ was checked")
	}
}

func TestAllowedImport(t *testing.T) {
	tests := []struct {
		rules []string
		imp   string
		want  bool
	}{
		{[]string{"engine/..."}, "engine", true},
		{[]string{"engine/..."}, "engine/keys", true},
		{[]string{"engine/..."}, "enginex", false},
		{[]string{"disk"}, "disk", true},
		{[]string{"disk"}, "disk/disktest", false},
		{[]string{"disk", "disk/objstore"}, "disk/objstore", true},
		{[]string{}, "clock", false},
	}
	for _, tt := range tests {
		if got := allowedImport(tt.rules, tt.imp); got != tt.want {
			t.Errorf("allowedImport(%v, %q) = %v, want %v", tt.rules, tt.imp, got, tt.want)
		}
	}
}
