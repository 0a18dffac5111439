package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestBenchPageClientBadFlags: each out-of-bounds flag is refused before
// anything starts.
func TestBenchPageClientBadFlags(t *testing.T) {
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	runCases(t, []string{"bench", "pageclient"}, []cliCase{
		{name: "duration 0", args: []string{"--duration", "0s"}, want: "--duration 0s not in"},
		{name: "rounds 0", args: []string{"--rounds", "0"}, want: "--rounds 0 not in"},
		{name: "pages 0", args: []string{"--pages", "0"}, want: "--pages 0 not in"},
		{name: "stripe 0", args: []string{"--stripe", "0"}, want: "--stripe 0 not in"},
		{name: "callers 0", args: []string{"--callers", "0"}, want: "--callers 0 not in"},
		{name: "batch over the request limit", args: []string{"--batch", "257"}, want: "--batch 257 not in [1, 256]"},
		{name: "batch callers", args: []string{"--batch-callers", "0"}, want: "--batch-callers 0 not in"},
		{name: "dir is a file", args: []string{"--dir", file}, want: "is not a directory"},
	})
}

// TestBenchPageClientRuns: a short run prints every figure on the three
// sides with both ratios, and removes its files.
func TestBenchPageClientRuns(t *testing.T) {
	dir := t.TempDir()
	code, out, errOut := runCLINoPanic(t, "bench", "pageclient", "--dir", dir, "--duration", "100ms", "--rounds", "1", "--pages", "64",
		"--callers", "4", "--batch", "8", "--batch-callers", "2")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	for _, want := range []string{"1 block, 1 caller: pages/s", "1 block, 1 caller: p50", "1 block, 1 caller: p99", "1 block, 4 callers: pages/s",
		"1 block, 4 callers: p99", "8 blocks, 2 callers: pages/s", "8 blocks, 2 callers: p99", "client, 1 shard", "client, 4 shards", "µs", "pages/s"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	// Every row has a figure on each side and two ratios.
	row := regexp.MustCompile(`(?m)^\d+ blocks?, \d+ callers?: \S+ +[\d.]+ \S+ +[\d.]+ \S+ +[\d.]+x +[\d.]+ \S+ +[\d.]+x$`)
	if n := len(row.FindAllString(out, -1)); n != 7 {
		t.Errorf("%d complete rows, want 7:\n%s", n, out)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Errorf("--dir not left empty: %v", ents)
	}
}
