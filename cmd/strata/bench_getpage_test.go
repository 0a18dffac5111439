package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestBenchGetPageBadFlags: each out-of-bounds flag is refused before
// anything starts.
func TestBenchGetPageBadFlags(t *testing.T) {
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	runCases(t, []string{"bench", "getpage"}, []cliCase{
		{name: "duration 0", args: []string{"--duration", "0s"}, want: "--duration 0s not in"},
		{name: "pages 0", args: []string{"--pages", "0"}, want: "--pages 0 not in"},
		{name: "ingest 0", args: []string{"--ingest-mib", "0"}, want: "--ingest-mib 0 not in"},
		{name: "write bytes", args: []string{"--write-bytes", "9000"}, want: "--write-bytes 9000 not in"},
		{name: "inflight over the stream limit", args: []string{"--inflight", "65"}, want: "--inflight 65 not in [1, 64]"},
		{name: "batch over the request limit", args: []string{"--batch", "257"}, want: "--batch 257 not in [1, 256]"},
		{name: "batch inflight", args: []string{"--batch-inflight", "0"}, want: "--batch-inflight 0 not in"},
		{name: "safekeepers", args: []string{"--safekeepers", "6"}, want: "--safekeepers 6 not in"},
		{name: "rounds", args: []string{"--rounds", "0"}, want: "--rounds 0 not in"},
		{name: "dir is a file", args: []string{"--dir", file}, want: "is not a directory"},
	})
}

// TestBenchGetPageRuns: a short run prints every measurement with the
// echo's figure and the ratio, and removes its files.
func TestBenchGetPageRuns(t *testing.T) {
	dir := t.TempDir()
	code, out, errOut := runCLINoPanic(t, "bench", "getpage", "--dir", dir, "--duration", "100ms", "--rounds", "1", "--pages", "64", "--ingest-mib", "1")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	for _, want := range []string{"serial GetPage p50", "serial GetPage p99", "pipelined, 32 in flight", "batches of 32, 4 in flight",
		"ingest 64-byte page writes", "µs", "pages/s", "MiB/s", "x  "} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Errorf("--dir not left empty: %v", ents)
	}
}

// TestMedianRound: each figure is the median over the rounds on its own,
// so one disturbed round moves none of them.
func TestMedianRound(t *testing.T) {
	got := medianRound([]measured{{p50: 50, p99: 900, rate: 10}, {p50: 40, p99: 100, rate: 30_000}, {p50: 45, p99: 120, rate: 31_000}})
	if got.p50 != 45 || got.p99 != 120 || got.rate != 30_000 {
		t.Fatalf("median %+v, want p50 45, p99 120, rate 30000", got)
	}
}
