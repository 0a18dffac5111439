package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// runCLINoPanic is runCLI, with a panic reported as a test failure
// instead of killing the test binary.
func runCLINoPanic(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	defer func() {
		if p := recover(); p != nil {
			t.Fatalf("%v panicked: %v", args, p)
		}
	}()
	return runCLI(t, args...)
}

// TestBenchWALBadFlags: every out-of-bounds flag value is rejected before
// anything runs, with the flag named, a non-zero exit, no panic, no
// measurement printed, and a missing --dir is not created.
func TestBenchWALBadFlags(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "no", "such", "dir")
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"batch 0", []string{"--batch", "0"}, "--batch 0 not in [9, "},
		{"batch -1", []string{"--batch", "-1"}, "--batch -1 not in"},
		{"batch header only", []string{"--batch", "8"}, "--batch 8 not in"},
		{"batch over a frame", []string{"--batch", "4194313"}, "--batch 4194313 not in"},
		{"record 0", []string{"--record", "0"}, "--record 0 not in"},
		{"record -5", []string{"--record", "-5"}, "--record -5 not in"},
		{"duration 0", []string{"--duration", "0"}, "--duration 0s not in"},
		{"duration negative", []string{"--duration", "-1s"}, "--duration -1s not in"},
		{"duration over an hour", []string{"--duration", "2h"}, "--duration 2h0m0s not in"},
		{"dir missing", []string{"--dir", missing}, "--dir " + missing + ": "},
		{"dir is a file", []string{"--dir", file}, "is not a directory"},
		{"extra argument", []string{"now"}, `unknown command "now"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errOut := runCLINoPanic(t, append([]string{"bench", "wal", "--duration", "10ms"}, tc.args...)...)
			if code == 0 {
				t.Fatalf("exit 0, want an error; stdout:\n%s", out)
			}
			if !strings.Contains(errOut, tc.want) {
				t.Errorf("stderr %q lacks %q", errOut, tc.want)
			}
			if out != "" {
				t.Errorf("printed measurements despite the error:\n%s", out)
			}
		})
	}
	if _, err := os.Stat(filepath.Dir(filepath.Dir(missing))); !os.IsNotExist(err) {
		t.Errorf("bench wal created (part of) the missing --dir: %v", err)
	}
}

// TestBenchWALCleansUp: a short run with the smallest batch and record
// prints its four measurements and leaves --dir as it found it.
func TestBenchWALCleansUp(t *testing.T) {
	dir := t.TempDir()
	keep := filepath.Join(dir, "operator-file")
	if err := os.WriteFile(keep, []byte("mine"), 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := runCLINoPanic(t, "bench", "wal", "--dir", dir, "--duration", "20ms", "--batch", "9", "--record", "9")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	for _, name := range []string{"store-append", "1sk-append", "3sk-commit-latency", "3sk-throughput"} {
		if !strings.Contains(out, name) {
			t.Errorf("output lacks %s:\n%s", name, out)
		}
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(ents) != 1 || ents[0].Name() != "operator-file" {
		var names []string
		for _, e := range ents {
			names = append(names, e.Name())
		}
		t.Fatalf("--dir holds %v after the benchmark, want only operator-file", names)
	}
}
