package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
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

// TestSimQuiet: --quiet prints failing seeds and the summary only.
func TestSimQuiet(t *testing.T) {
	code, out, errOut := runCLI(t, "sim", "--scenario", "counter", "--seeds", "1..4", "-j", "2", "--quiet")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 1 || !strings.HasPrefix(lines[0], "counter: 4 seeds, 4 passed, 0 failed") {
		t.Fatalf("--quiet on passing seeds printed:\n%s", out)
	}
	code, out, _ = runCLI(t, "sim", "--scenario", "counter", "--seeds", "1..2", "--bug", "counter-no-dir-sync", "-q")
	if code == 0 || !strings.Contains(out, "seed 1: FAIL") || !strings.Contains(out, "reproduce: ") ||
		!strings.Contains(out, "counter: 2 seeds") || strings.Contains(out, ": pass ") {
		t.Fatalf("--quiet with failures: exit %d\n%s", code, out)
	}
	code, out, errOut = runCLI(t, "sim", "--scenario", "counter", "--seeds", "1..3", "--json", "--quiet")
	if code != 0 || strings.TrimSpace(out) != "" || !strings.Contains(errOut, "3 seeds, 3 passed") {
		t.Fatalf("--json --quiet on passing seeds: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
}

// summaryRE picks the figures out of a sweep's summary line.
var summaryRE = regexp.MustCompile(`; ([0-9.]+) virtual s in ([0-9.]+) s elapsed with -j (\d+) \((\d+)x\); seed wall time summed over workers ([0-9.]+) s \((\d+)x per worker\)`)

// TestSimSummaryElapsedAndWorkerSum: the summary reports the sweep's
// elapsed time (not the per-seed wall times summed over -j workers, which
// exceed it) and the per-worker sum separately, each with its ratio.
func TestSimSummaryElapsedAndWorkerSum(t *testing.T) {
	start := time.Now()
	code, out, errOut := runCLI(t, "sim", "--scenario", "counter", "--seeds", "1..12", "-j", "2", "--quiet")
	measured := time.Since(start).Seconds()
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	m := summaryRE.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("summary %q does not match %v", out, summaryRE)
	}
	num := func(i int) float64 {
		v, err := strconv.ParseFloat(m[i], 64)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	virtual, elapsed, workers, perElapsed, seedWall, perWorker := num(1), num(2), num(3), num(4), num(5), num(6)
	if workers != 2 {
		t.Errorf("workers %v, want 2", workers)
	}
	// Printed with two decimals: allow their rounding.
	if elapsed > measured+0.01 {
		t.Errorf("elapsed %.2f s exceeds the %.2f s the sweep took", elapsed, measured)
	}
	if seedWall > workers*elapsed+0.05 {
		t.Errorf("seed wall sum %.2f s exceeds %v workers × %.2f s elapsed", seedWall, workers, elapsed)
	}
	ratio := func(wall float64) float64 { return math.Round(virtual / wall) }
	if elapsed > 0.05 && math.Abs(perElapsed-ratio(elapsed)) > 0.06*perElapsed+1 {
		t.Errorf("virtual/elapsed printed %vx, figures give %vx", perElapsed, ratio(elapsed))
	}
	if seedWall > 0.05 && math.Abs(perWorker-ratio(seedWall)) > 0.06*perWorker+1 {
		t.Errorf("per-worker ratio printed %vx, figures give %vx", perWorker, ratio(seedWall))
	}
}

func TestSweepSummaryFigures(t *testing.T) {
	s := sweepStats{passed: 3, failed: 1, simSec: 400, seedWallSec: 4, elapsed: 2, workers: 2}
	want := "wal: 4 seeds, 3 passed, 1 failed; 400.0 virtual s in 2.00 s elapsed with -j 2 (200x); " +
		"seed wall time summed over workers 4.00 s (100x per worker)"
	if got := s.summary("wal"); got != want {
		t.Fatalf("summary\n got %q\nwant %q", got, want)
	}
}

// TestSimReproUsesInvocation: the reproduce line (text and JSON) starts
// with the invocation the CLI was started with.
func TestSimReproUsesInvocation(t *testing.T) {
	for _, inv := range []string{"go run ./cmd/strata", "./strata", "'/opt/my tools/strata'"} {
		var out, errb bytes.Buffer
		run(context.Background(), inv, []string{"sim", "--scenario", "counter", "--seed", "1", "--bug", "counter-no-dir-sync"}, &out, &errb)
		want := "reproduce: " + inv + " sim --scenario counter --seed 1 --bug counter-no-dir-sync\n"
		if !strings.Contains(out.String(), want) {
			t.Errorf("invocation %q: output lacks %q:\n%s", inv, want, out.String())
		}
		out.Reset()
		run(context.Background(), inv, []string{"sim", "--scenario", "counter", "--seed", "1", "--bug", "counter-no-dir-sync", "--json"}, &out, &errb)
		var r struct{ Repro string }
		if err := json.Unmarshal(out.Bytes(), &r); err != nil || !strings.HasPrefix(r.Repro, inv+" sim --scenario counter") {
			t.Errorf("invocation %q: JSON repro %q, %v", inv, r.Repro, err)
		}
	}
}

func TestInvocation(t *testing.T) {
	for _, tc := range []struct{ argv0, exe, want string }{
		// go run, first build: the go command's temporary work directory.
		{"/tmp/go-build2434996146/b001/exe/strata", "/tmp/go-build2434996146/b001/exe/strata", "go run ./cmd/strata"},
		// go run, cached executable in the default build cache.
		{"/root/.cache/go-build/89/89f84b7224dc695a591327f818e8e9225f4c2a59bed77a43029b8ce65c0f21da-d/strata",
			"/root/.cache/go-build/89/89f84b7224dc695a591327f818e8e9225f4c2a59bed77a43029b8ce65c0f21da-d/strata", "go run ./cmd/strata"},
		// go run with GOCACHE elsewhere.
		{"/cache/89/89f84b7224dc695a591327f818e8e9225f4c2a59bed77a43029b8ce65c0f21da-d/strata",
			"/cache/89/89f84b7224dc695a591327f818e8e9225f4c2a59bed77a43029b8ce65c0f21da-d/strata", "go run ./cmd/strata"},
		// An installed or built binary: argv[0] as typed.
		{"strata", "/root/go/bin/strata", "strata"},
		{"./strata", "/work/main/strata", "./strata"},
		{"/tmp/x/strata", "/tmp/x/strata", "/tmp/x/strata"},
		{"/opt/my tools/strata", "/opt/my tools/strata", "'/opt/my tools/strata'"},
		{"", "", "strata"},
		// A directory merely named like a hash is not a build cache.
		{"/srv/89f84b72/strata", "/srv/89f84b72/strata", "/srv/89f84b72/strata"},
	} {
		if got := invocation(tc.argv0, tc.exe); got != tc.want {
			t.Errorf("invocation(%q, %q) = %q, want %q", tc.argv0, tc.exe, got, tc.want)
		}
	}
}

// TestReproUnderGoRun runs the CLI the way the README does, with `go run`,
// and checks that a failing seed's reproduce line is a command that works
// from the repository root.
func TestReproUnderGoRun(t *testing.T) {
	cmd := exec.Command("go", "run", ".", "sim", "--scenario", "counter", "--seed", "1", "--bug", "counter-no-dir-sync")
	out, err := cmd.Output()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 {
		t.Fatalf("go run: %v (want exit 1 for the planted bug)\n%s", err, out)
	}
	want := "reproduce: go run ./cmd/strata sim --scenario counter --seed 1 --bug counter-no-dir-sync\n"
	if !strings.Contains(string(out), want) {
		t.Fatalf("output lacks %q:\n%s", want, out)
	}
}
