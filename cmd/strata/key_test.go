package main

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestKeyExplain(t *testing.T) {
	const relBlk = "000000067F00000005000040000000000007"
	tests := []struct {
		name     string
		args     []string
		wantCode int
		wantOut  []string
		wantErr  string
	}{
		{"rel block text", []string{"key", "explain", relBlk}, 0, []string{"class   rel-block", "rel     1663/5/16384", "block   7"}, ""},
		{"checkpoint", []string{"key", "explain", "030000000000000000000000000000000001"}, 0, []string{"class   checkpoint"}, ""},
		{"lower-case accepted", []string{"key", "explain", strings.ToLower("000000067F000000050000400000FFFFFFFF")}, 0, []string{"class   rel-size"}, ""},
		{"shard text", []string{"key", "explain", "--count", "10", "--stripe", "32768", "000000067F000000050000400C0000007D06"}, 0, []string{"shard   8 of 10"}, ""},
		{"malformed key", []string{"key", "explain", "XYZ"}, 1, nil, "malformed key"},
		{"short key", []string{"key", "explain", "00"}, 1, nil, "malformed key"},
		{"bad count", []string{"key", "explain", "--count", "300", relBlk}, 1, nil, "--count 300"},
		{"bad stripe", []string{"key", "explain", "--count", "2", "--stripe", "0", relBlk}, 1, nil, "--stripe 0"},
		{"no arg", []string{"key", "explain"}, 1, nil, "accepts 1 arg"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errOut := runCLI(t, tc.args...)
			if code != tc.wantCode {
				t.Fatalf("exit %d, want %d; stderr %q", code, tc.wantCode, errOut)
			}
			for _, w := range tc.wantOut {
				if !strings.Contains(out, w) {
					t.Errorf("stdout lacks %q:\n%s", w, out)
				}
			}
			if tc.wantErr != "" && !strings.Contains(errOut, tc.wantErr) {
				t.Errorf("stderr %q lacks %q", errOut, tc.wantErr)
			}
		})
	}
}

func TestKeyExplainJSON(t *testing.T) {
	// Neon's spot check: this key is shard 8 of 10 with a 32768-page stripe.
	code, out, errOut := runCLI(t, "key", "explain", "--count", "10", "--stripe", "32768", "--json", "000000067F000000050000400C0000007D06")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	var got map[string]any
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, out)
	}
	if got["shard"] != float64(8) || got["class"] != "rel-block" || got["block"] != float64(0x7d06) || got["shard_count"] != float64(10) {
		t.Fatalf("JSON = %v", got)
	}
	rel, _ := got["rel"].(map[string]any)
	if rel["relnode"] != float64(0x400c) || rel["spcnode"] != float64(0x67f) {
		t.Fatalf("rel = %v", rel)
	}
	// Without --count there is no shard field.
	_, out, _ = runCLI(t, "key", "explain", "--json", "030000000000000000000000000000000000")
	got = nil
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatal(err)
	}
	if _, ok := got["shard"]; ok || got["class"] != "control-file" {
		t.Fatalf("JSON without --count = %v", got)
	}
}
