package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The index fixtures live with the parser.
func indexFixture(name string) string {
	return filepath.Join("..", "..", "engine", "remote", "testdata", name)
}

func TestIndexExplainText(t *testing.T) {
	k0, kF := strings.Repeat("0", 36), strings.Repeat("F", 36)
	tests := []struct {
		file string
		want []string
	}{
		{"v1-legacy-binary.json", []string{
			"version                 1 (Strata reads 1 to 15, writes 15)",
			`metadata                legacy-binary, under "metadata_bytes"`,
			"  disk_consistent_lsn   0/2A3B4C8",
			"  prev_record_lsn       0/2A3B450",
			"  ancestor              none",
			"  pg_version            15",
			"layers                  2 (1 image, 1 delta), 9007199268700161 bytes",
			"image layers (1):",
			"  " + k0 + "  000000067F00004005000060000000000100  0/2A3B4C8  9007199254740993  none        unsharded",
			"delta layers (1):",
			"  " + k0 + "  " + kF + "  0/14EE4B8  0/2A3B4C9  13959168  none        unsharded",
			"skipped backup entries",
			"fields Strata does not read: timeline_layers, missing_layers",
		}},
		{"v7-object.json", []string{
			`metadata                object, under "metadata"`,
			"deleted_at              2023-07-31T09:00:00.123Z",
			"4 (00000004)  0102",
			"3 (00000003)  unsharded",
		}},
		{"v5-legacy-ancestor.json", []string{"  ancestor              9e4c2b7a5d3f41e8b06a1c2d3e4f5a6b at 0/2A3B4C8", "  prev_record_lsn       none"}},
		{"v15-all-fields.json", []string{
			"18446744073709551615  4294967295 (ffffffff)  0304",
			"18455751272964292608 bytes",
			"lineage                 reparented from [1f2e3d4c5b6a79880796a5b4c3d2e1f0, 00112233445566778899aabbccddeeff] (truncated)",
			"  detached from         a1b2c3d4e5f60718293a4b5c6d7e8f90 at 0/2A3B4C8 on 2024-05-07T18:52:36.322Z",
			"gc_blocking             since 2024-07-19T09:00:00Z: Manual, DetachAncestor",
			"archived_at             2024-02-29T23:59:59.987654321Z",
		}},
	}
	for _, tc := range tests {
		t.Run(tc.file, func(t *testing.T) {
			code, out, errOut := runCLI(t, "index", "explain", indexFixture(tc.file))
			if code != 0 {
				t.Fatalf("exit %d: %s", code, errOut)
			}
			for _, w := range tc.want {
				if !strings.Contains(out, w) {
					t.Errorf("output lacks %q:\n%s", w, out)
				}
			}
			if strings.Contains(out, "PROBLEM") {
				t.Errorf("a valid index reported a problem:\n%s", out)
			}
		})
	}
}

func TestIndexExplainJSON(t *testing.T) {
	code, out, errOut := runCLI(t, "index", "explain", "--json", indexFixture("v15-all-fields.json"))
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	// Decode numbers as text: the sizes must come out exact.
	dec := json.NewDecoder(strings.NewReader(out))
	dec.UseNumber()
	var got struct {
		Version      json.Number `json:"version"`
		MetadataForm string      `json:"metadata_form"`
		Metadata     map[string]any
		TotalSize    json.Number      `json:"total_size"`
		ImageLayers  []map[string]any `json:"image_layers"`
		DeltaLayers  []map[string]any `json:"delta_layers"`
		Ignored      []string         `json:"ignored_fields"`
		Problems     []string         `json:"problems"`
	}
	if err := dec.Decode(&got); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, out)
	}
	if got.Version != "15" || got.MetadataForm != "object" || got.TotalSize != "18455751272964292608" {
		t.Errorf("header fields %+v", got)
	}
	if got.Metadata["disk_consistent_lsn"] != "1/4000000" || got.Metadata["ancestor_timeline"] != "9e4c2b7a5d3f41e8b06a1c2d3e4f5a6b" || got.Metadata["pg_version"] != json.Number("17") {
		t.Errorf("metadata %v", got.Metadata)
	}
	if len(got.ImageLayers) != 1 || len(got.DeltaLayers) != 1 {
		t.Fatalf("layers %v %v", got.ImageLayers, got.DeltaLayers)
	}
	img, dl := got.ImageLayers[0], got.DeltaLayers[0]
	for k, v := range map[string]any{"file_size": json.Number("18446744073709551615"), "generation": json.Number("4294967295"), "shard": "0304", "lsn": "0/4000000"} {
		if img[k] != v {
			t.Errorf("image %s = %v, want %v", k, img[k], v)
		}
	}
	for k, v := range map[string]any{"file_size": json.Number("9007199254740993"), "generation": json.Number("7"), "lsn_start": "0/3000029", "lsn_end": "0/4000001"} {
		if dl[k] != v {
			t.Errorf("delta %s = %v, want %v", k, dl[k], v)
		}
	}
	if _, ok := img["lsn_start"]; ok {
		t.Error("image layer has lsn_start")
	}
	if !strings.HasSuffix(img["object_name"].(string), "-ffffffff") {
		t.Errorf("object name %v", img["object_name"])
	}
	if len(got.Ignored) != 7 || len(got.Problems) != 0 {
		t.Errorf("ignored %v, problems %v", got.Ignored, got.Problems)
	}
	// A legacy layer has a null generation and shard.
	_, out, _ = runCLI(t, "index", "explain", "--json", indexFixture("v1-legacy-binary.json"))
	if !strings.Contains(out, `"generation": null,`) || !strings.Contains(out, `"shard": null`) || !strings.Contains(out, `"metadata_form": "legacy-binary"`) {
		t.Errorf("legacy layer JSON:\n%s", out)
	}
}

// TestIndexExplainStdin: "-" reads standard input.
func TestIndexExplainStdin(t *testing.T) {
	f, err := os.Open(indexFixture("v7-object.json"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	saved := os.Stdin
	os.Stdin = f
	defer func() { os.Stdin = saved }()
	code, out, errOut := runCLI(t, "index", "explain", "-")
	if code != 0 || !strings.Contains(out, "layers                  3 (1 image, 2 delta)") {
		t.Fatalf("exit %d, stderr %q, stdout:\n%s", code, errOut, out)
	}
}

func TestIndexExplainErrors(t *testing.T) {
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty.json")
	if err := os.WriteFile(empty, []byte(`{"version":15,"layer_metadata":{},"disk_consistent_lsn":"0/10","metadata_bytes":{"disk_consistent_lsn":"0/10","ancestor_lsn":"0/0","latest_gc_cutoff_lsn":"0/0","initdb_lsn":"0/10","pg_version":16}}`), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		args []string
		code int
		want string // in stderr, or in stdout for exit 0
	}{
		{"bad json", []string{indexFixture("corrupt-bad-json.json")}, 1, "corrupt-bad-json.json: remote: corrupt index_part: bad JSON"},
		{"checksum", []string{indexFixture("corrupt-metadata-checksum.json")}, 1, "metadata_bytes: remote: metadata checksum mismatch"},
		{"length", []string{"--json", indexFixture("corrupt-metadata-length.json")}, 1, "remote: metadata length is wrong: 511 bytes, want 512"},
		{"version", []string{indexFixture("corrupt-version-16.json")}, 1, "remote: unsupported index_part version: version 16 (Strata reads 1 to 15)"},
		{"missing file", []string{filepath.Join(dir, "nope.json")}, 1, "no such file"},
		{"no argument", nil, 1, "accepts 1 arg"},
		{"empty index", []string{empty}, 0, "PROBLEM: names no layers and has no ancestor"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errOut := runCLI(t, append([]string{"index", "explain"}, tc.args...)...)
			if code != tc.code {
				t.Fatalf("exit %d, want %d; stderr %q", code, tc.code, errOut)
			}
			where := errOut
			if tc.code == 0 {
				where = out
			} else if out != "" {
				t.Errorf("a failed explain printed %q", out)
			}
			if !strings.Contains(where, tc.want) {
				t.Errorf("%q lacks %q", where, tc.want)
			}
		})
	}
	_, out, _ := runCLI(t, "index", "explain", "--json", empty)
	var got struct{ Problems []string }
	if err := json.NewDecoder(bytes.NewReader([]byte(out))).Decode(&got); err != nil || len(got.Problems) != 1 {
		t.Errorf("empty index JSON problems %v (%v)", got.Problems, err)
	}
}
