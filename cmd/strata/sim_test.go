package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestSimList(t *testing.T) {
	code, out, errOut := runCLI(t, "sim", "--list", "--json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	var lo listOutput
	if err := json.Unmarshal([]byte(out), &lo); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	found := false
	for _, sc := range lo.Scenarios {
		if sc.Name == "counter" {
			found = strings.Join(sc.Bugs, ",") == "counter-ack-before-sync,counter-no-dir-sync,counter-no-dedup"
		}
	}
	if !found {
		t.Fatalf("counter and its bugs not listed: %s", out)
	}
}

func TestSimSeedJSON(t *testing.T) {
	code, out, errOut := runCLI(t, "sim", "--scenario", "counter", "--seeds", "7..8", "--json", "-j", "2")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 2 {
		t.Fatalf("want 2 JSON lines, got:\n%s", out)
	}
	for i, line := range lines {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatal(err)
		}
		for _, k := range []string{"seed", "scenario", "result", "trace_hash", "events", "sim_seconds", "wall_seconds", "failure", "repro", "params"} {
			if _, ok := m[k]; !ok {
				t.Errorf("line %d lacks %q: %s", i, k, line)
			}
		}
		if m["result"] != "pass" || m["seed"] != float64(7+i) {
			t.Errorf("line %d: %s", i, line)
		}
	}
	if !strings.Contains(errOut, "2 seeds, 2 passed") {
		t.Errorf("summary missing from stderr: %q", errOut)
	}
}

func TestSimPlantedBugFailsWithRepro(t *testing.T) {
	dir := t.TempDir()
	trace := filepath.Join(dir, "trace.txt")
	code, out, errOut := runCLI(t, "sim", "--scenario", "counter", "--seed", "1", "--bug", "counter-no-dir-sync", "--trace", trace)
	if code == 0 {
		t.Fatalf("planted bug passed:\n%s", out)
	}
	for _, want := range []string{"seed 1: FAIL", "lost acknowledged increment", "reproduce: strata sim --scenario counter --seed 1 --bug counter-no-dir-sync"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s\n%s", want, out, errOut)
		}
	}
	b, err := os.ReadFile(trace)
	if err != nil || !strings.Contains(string(b), "resume") {
		t.Errorf("trace file: %v, %.200s", err, b)
	}
}

func TestSimCheckDeterminism(t *testing.T) {
	code, out, errOut := runCLI(t, "sim", "--scenario", "counter", "--seed", "7", "--check-determinism")
	if code != 0 || !strings.Contains(out, "seed 7: pass (checked twice)") {
		t.Fatalf("exit %d:\n%s\n%s", code, out, errOut)
	}
}

func TestSimBadArguments(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"sim", "--seed", "1"}, "--scenario is required"},
		{[]string{"sim", "--scenario", "nope", "--seed", "1"}, "unknown scenario"},
		{[]string{"sim", "--scenario", "counter"}, "--seed N or --seeds A..B is required"},
		{[]string{"sim", "--scenario", "counter", "--seed", "1", "--seeds", "1..2"}, "not both"},
		{[]string{"sim", "--scenario", "counter", "--seeds", "5..1"}, "bad seed range"},
		{[]string{"sim", "--scenario", "counter", "--seed", "1", "--bug", "nope"}, "unknown bug"},
		{[]string{"sim", "--scenario", "counter", "--seeds", "1..2", "--trace", "x"}, "single seed"},
		{[]string{"sim", "--scenario", "counter", "--seed", "1", "-j", "0"}, "-j 0"},
	} {
		code, _, errOut := runCLI(t, tc.args...)
		if code == 0 || !strings.Contains(errOut, tc.want) {
			t.Errorf("%v: exit %d, stderr %q, want %q", tc.args, code, errOut, tc.want)
		}
	}
}
