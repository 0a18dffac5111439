package main

import (
	"encoding/json"
	"strings"
	"testing"
)

const (
	kMin = "000000000000000000000000000000000000"
	kMax = "FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF"
)

func TestLayerExplain(t *testing.T) {
	delta := kMin + "-" + kMax + "__0000000001696070-00000000016960E9"
	image := kMin + "-" + kMax + "__00000000016960E8"
	tests := []struct {
		name     string
		args     []string
		wantCode int
		wantOut  []string
		wantErr  string
	}{
		{"delta legacy", []string{"layer", "explain", delta}, 0, []string{"kind        delta", "lsn range   0/1696070 .. 0/16960E9", "generation  none"}, ""},
		{"image with gen", []string{"layer", "explain", image + "-0000000a"}, 0, []string{"kind        image", "lsn         0/16960E8", "generation  10 (0000000a)"}, ""},
		{"remote path", []string{"layer", "explain", "tenants/x/timelines/y/" + image + "-00000001"}, 0, []string{"kind        image"}, ""},
		{"neon local form", []string{"layer", "explain", "timelines/y/" + delta + "-v1-00000001"}, 0,
			[]string{"kind        delta", "lsn range   0/1696070 .. 0/16960E9", "generation  1 (00000001)", "Neon's local file name", "Strata's name: " + delta + "-00000001"}, ""},
		{"neon local image", []string{"layer", "explain", image + "-v1-0000000a"}, 0, []string{"kind        image", "lsn         0/16960E8", "generation  10 (0000000a)"}, ""},
		{"malformed", []string{"layer", "explain", "nonsense"}, 1, nil, "malformed layer name"},
		{"local form without gen", []string{"layer", "explain", image + "-v1"}, 1, nil, "malformed layer name"},
		{"bad gen", []string{"layer", "explain", image + "-00000000"}, 1, nil, "reserved"},
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

func TestLayerExplainJSON(t *testing.T) {
	tests := []struct {
		name string
		arg  string
		want map[string]any
		none []string // fields that must be absent
	}{
		{
			"delta with generation", kMin + "-" + kMax + "__0000000001696070-00000000016960E9-0000000a",
			map[string]any{"kind": "delta", "lsn_start": "0/1696070", "lsn_end": "0/16960E9", "generation": float64(10), "key_start": kMin, "key_end": kMax, "form": "generation"},
			[]string{"lsn"},
		},
		{
			"legacy image", kMin + "-" + kMax + "__00000000016960E8",
			map[string]any{"kind": "image", "lsn": "0/16960E8", "generation": nil, "form": "legacy"},
			[]string{"lsn_start", "lsn_end"},
		},
		{
			"neon local delta", kMin + "-" + kMax + "__0000000001696070-00000000016960E9-v1-00000001",
			map[string]any{"kind": "delta", "lsn_start": "0/1696070", "lsn_end": "0/16960E9", "generation": float64(1), "form": "neon-local",
				"name": kMin + "-" + kMax + "__0000000001696070-00000000016960E9-00000001"},
			[]string{"lsn"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errOut := runCLI(t, "layer", "explain", "--json", tc.arg)
			if code != 0 {
				t.Fatalf("exit %d: %s", code, errOut)
			}
			var got map[string]any
			if err := json.Unmarshal([]byte(out), &got); err != nil {
				t.Fatalf("not JSON: %v\n%s", err, out)
			}
			for k, v := range tc.want {
				gv, ok := got[k]
				if !ok || gv != v {
					t.Errorf("%s = %v (present %v), want %v", k, gv, ok, v)
				}
			}
			for _, k := range tc.none {
				if _, ok := got[k]; ok {
					t.Errorf("%s present in %v", k, got)
				}
			}
		})
	}
}
