package detlint_test

import (
	"fmt"
	"maps"
	"path"
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
	"nodes":  {"engine/...", "clock", "net", "net/jwtauth", "disk", "disk/objstore"},
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

// isAPIPackage reports whether a package of nodes/ is a service's API
// package: one whose last path element ends in "api" (nodes/broker/brokerapi,
// nodes/safekeeper/skapi, nodes/pageserver/pageapi). It holds what clients
// need — wire messages, method names, conversions, client helpers — and
// nothing of the server.
func isAPIPackage(rel string) bool {
	return strings.HasSuffix(path.Base(rel), "api")
}

// serviceOf returns the service a package of nodes/ belongs to: the folder
// right under nodes/ ("nodes/safekeeper/walstore" → "safekeeper").
func serviceOf(rel string) string {
	svc, _, _ := strings.Cut(strings.TrimPrefix(rel, "nodes/"), "/")
	return svc
}

// nodesImportAllowed is the rule inside nodes/ (docs/architecture.md,
// Layout): a service's packages may import their own service's packages,
// nodes/node and other services' API packages; an API package may import
// only nodes/node and API packages, so that a client importing it never
// compiles in a server. Both arguments are module-relative paths under nodes/.
func nodesImportAllowed(from, imp string) bool {
	switch {
	case imp == "nodes/node" || isAPIPackage(imp):
		return true
	case isAPIPackage(from):
		return false
	}
	return serviceOf(from) == serviceOf(imp)
}

// layeringViolations checks an import graph (module-relative package path →
// the module-relative paths it imports) against layerRules and, inside
// nodes/, nodesImportAllowed. It returns one line per forbidden import,
// sorted, and how many packages fell under a rule.
func layeringViolations(graph map[string][]string) (violations []string, checked int) {
	for _, rel := range slices.Sorted(maps.Keys(graph)) {
		top, _, _ := strings.Cut(rel, "/")
		rules, ruled := layerRules[top]
		if !ruled {
			continue
		}
		checked++
		imps := slices.Sorted(slices.Values(graph[rel]))
		for _, irel := range imps {
			itop, _, _ := strings.Cut(irel, "/")
			switch {
			case itop == top && top == "nodes":
				if !nodesImportAllowed(rel, irel) {
					violations = append(violations, fmt.Sprintf("%s imports %s: a service may import only its own packages, nodes/node and other services' API packages (a package whose name ends in \"api\"); an API package only nodes/node and API packages (docs/architecture.md, Layout)", rel, irel))
				}
			case itop == top:
			case !allowedImport(rules, irel):
				violations = append(violations, fmt.Sprintf("%s imports %s: %s/ may import only %v of this module (docs/architecture.md, Layout)", rel, irel, top, rules))
			}
		}
	}
	return violations, checked
}

// TestLayering checks every non-test package of the module against
// layerRules and the rule inside nodes/, so the seams stay the only way from
// the deterministic core to the world and no client compiles in a server.
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
	graph := map[string][]string{}
	for _, p := range pkgs {
		rel, ok := strings.CutPrefix(p.PkgPath, detlint.Module+"/")
		if !ok {
			continue
		}
		imps := []string{}
		for imp := range p.Imports {
			if irel, ok := strings.CutPrefix(imp, detlint.Module+"/"); ok {
				imps = append(imps, irel) // the standard library and third parties are not ruled here
			}
		}
		graph[rel] = imps
	}
	violations, checked := layeringViolations(graph)
	for _, v := range violations {
		t.Error(v)
	}
	if checked == 0 {
		t.Fatal("no package of clock/, net/, disk/, engine/ or nodes/ was checked")
	}
	// The rule inside nodes/ must have something to rule: at least one
	// service that uses another's API package.
	if !slices.Contains(graph["nodes/compute/walproposer"], "nodes/safekeeper/skapi") {
		t.Fatalf("nodes/compute/walproposer no longer imports nodes/safekeeper/skapi; update this check (imports: %v)", graph["nodes/compute/walproposer"])
	}
}

// TestLayeringNodesRule feeds layeringViolations synthetic import graphs:
// a client importing another service's server package, or an API package
// importing a server package, must be reported; API packages and nodes/node
// must not.
func TestLayeringNodesRule(t *testing.T) {
	tests := []struct {
		name  string
		graph map[string][]string
		want  []string // "from imports imp" prefixes of the expected violations
	}{
		{"clean", map[string][]string{
			"nodes/compute/walproposer": {"nodes/node", "nodes/safekeeper/skapi", "engine/skproto", "net"},
			"nodes/safekeeper":          {"nodes/node", "nodes/safekeeper/walstore", "nodes/safekeeper/skapi", "nodes/broker/brokerapi"},
			"nodes/safekeeper/skapi":    {"engine/skproto", "net", "clock"},
			"nodes/broker":              {"nodes/broker/brokerapi", "nodes/node"},
		}, nil},
		{"client imports a server", map[string][]string{
			"nodes/compute/walproposer": {"nodes/node", "nodes/safekeeper"},
		}, []string{"nodes/compute/walproposer imports nodes/safekeeper:"}},
		{"service imports another's internal package", map[string][]string{
			"nodes/compute/walproposer": {"nodes/safekeeper/walstore"},
			"nodes/safekeeper":          {"nodes/broker"},
		}, []string{"nodes/compute/walproposer imports nodes/safekeeper/walstore:", "nodes/safekeeper imports nodes/broker:"}},
		{"API package imports its own server", map[string][]string{
			"nodes/safekeeper/skapi": {"nodes/safekeeper/walstore", "nodes/broker/brokerapi"},
		}, []string{"nodes/safekeeper/skapi imports nodes/safekeeper/walstore:"}},
		{"outer rule still applies", map[string][]string{
			"nodes/broker": {"sim/simnet"},
		}, []string{"nodes/broker imports sim/simnet:"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, _ := layeringViolations(tt.graph)
			if len(got) != len(tt.want) {
				t.Fatalf("violations = %q, want %d starting %q", got, len(tt.want), tt.want)
			}
			for i := range got {
				if !strings.HasPrefix(got[i], tt.want[i]) {
					t.Errorf("violation %d = %q, want prefix %q", i, got[i], tt.want[i])
				}
			}
		})
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
