package remote

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/stratadb/strata/engine/layer"
	"github.com/stratadb/strata/engine/shard"
)

// A heatmap as Neon writes one: generation, a sharded writer, a legacy
// layer (no generation), a size above 2^53, a cold layer, and fields
// Strata does not read.
const neonHeatmap = `{
  "generation": 5,
  "timelines": [
    {"timeline_id": "bb000000000000000000000000000000", "layers": [
      {"name": "` + fxK0 + `-` + fxKF + `__0000000000000010", "metadata": {"file_size": 9007199254740993, "generation": 4, "shard": "0104"}, "access_time": 1700000000, "cold": true}
    ]},
    {"timeline_id": "aa000000000000000000000000000000", "layers": [
      {"name": "` + fxKA + `-` + fxKB + `__0000000000000001-0000000000000020", "metadata": {"file_size": 4096, "generation": null}, "access_time": 1700000123, "cold": false},
      {"name": "` + fxK0 + `-` + fxKF + `__0000000000000001-0000000000000020", "metadata": {"file_size": 8192, "generation": 5}, "access_time": 1700000100}
    ], "unknown_timeline_field": 1}
  ],
  "upload_period_ms": 60000,
  "some_future_field": {"x": [1, 2]}
}`

func TestParseHeatmap(t *testing.T) {
	hm, err := ParseHeatmap([]byte(neonHeatmap))
	if err != nil {
		t.Fatal(err)
	}
	s14, _ := shard.ParseShardIndex("0104")
	want := Heatmap{
		Generation:   5,
		UploadPeriod: time.Minute,
		Timelines: []HeatmapTimeline{
			{ID: mustTL(t, "aa000000000000000000000000000000"), Layers: []HeatmapLayer{
				// Sorted by bare name: fxK0… before fxKA….
				{Layer: Layer{LayerID: LayerID{Name: delta(t, fxK0, fxKF, 1, 0x20, 5)}, FileSize: 8192}, AccessTime: time.Unix(1700000100, 0).UTC()},
				{Layer: Layer{LayerID: LayerID{Name: delta(t, fxKA, fxKB, 1, 0x20, layer.GenerationNone)}, FileSize: 4096}, AccessTime: time.Unix(1700000123, 0).UTC()},
			}},
			{ID: mustTL(t, "bb000000000000000000000000000000"), Layers: []HeatmapLayer{
				{Layer: Layer{LayerID: LayerID{Name: image(t, fxK0, fxKF, 0x10, 4), Shard: s14}, FileSize: 1<<53 + 1}, AccessTime: time.Unix(1700000000, 0).UTC(), Cold: true},
			}},
		},
	}
	if !reflect.DeepEqual(hm, want) {
		t.Fatalf("parsed\n%+v\nwant\n%+v", hm, want)
	}
	if got := hm.Timelines[0].Bytes(); got != 8192+4096 {
		t.Errorf("Bytes %d", got)
	}
	// What Strata writes reads back as it was.
	b, err := EncodeHeatmap(&hm)
	if err != nil {
		t.Fatal(err)
	}
	again, err := ParseHeatmap(b)
	if err != nil || !reflect.DeepEqual(again, hm) {
		t.Fatalf("round trip: %v\n%s\n%+v", err, b, again)
	}
	if !strings.Contains(string(b), `"file_size":9007199254740993`) || !strings.Contains(string(b), `"shard":"0104"`) ||
		!strings.Contains(string(b), `"upload_period_ms":60000`) || strings.Contains(string(b), `"generation":null`) {
		t.Errorf("encoded form: %s", b)
	}
}

func TestParseHeatmapCorrupt(t *testing.T) {
	layerOf := func(name, meta string) string {
		return `{"generation":1,"timelines":[{"timeline_id":"aa000000000000000000000000000000","layers":[{"name":"` + name + `","metadata":` + meta + `,"access_time":1}]}]}`
	}
	d := fxK0 + "-" + fxKF + "__0000000000000001-0000000000000020"
	tl := `{"timeline_id":"aa000000000000000000000000000000","layers":[]}`
	for name, doc := range map[string]string{
		"not json":                `{"generation":`,
		"timelines not a list":    `{"generation":1,"timelines":7}`,
		"bad timeline id":         `{"timelines":[{"timeline_id":"zz","layers":[]}]}`,
		"timeline twice":          `{"timelines":[` + tl + `,` + tl + `]}`,
		"bad layer name":          layerOf("not-a-layer", `{"file_size":1}`),
		"generation in the name":  layerOf(d+"-00000001", `{"file_size":1}`),
		"no metadata":             layerOf(d, `null`),
		"no file_size":            layerOf(d, `{"generation":1}`),
		"negative file_size":      layerOf(d, `{"file_size":-1}`),
		"generation 0":            layerOf(d, `{"file_size":1,"generation":0}`),
		"bad shard":               layerOf(d, `{"file_size":1,"shard":"x"}`),
		"upload period too large": `{"timelines":[],"upload_period_ms":18446744073709551615}`,
	} {
		if _, err := ParseHeatmap([]byte(doc)); !errors.Is(err, ErrCorruptHeatmap) {
			t.Errorf("%s: %v, want ErrCorruptHeatmap", name, err)
		}
	}
}

func TestEncodeHeatmapRefusesUnsorted(t *testing.T) {
	a, b := mustTL(t, "aa000000000000000000000000000000"), mustTL(t, "bb000000000000000000000000000000")
	l1 := HeatmapLayer{Layer: Layer{LayerID: LayerID{Name: delta(t, fxK0, fxKF, 1, 2, 1)}, FileSize: 1}}
	l2 := HeatmapLayer{Layer: Layer{LayerID: LayerID{Name: delta(t, fxKA, fxKB, 1, 2, 1)}, FileSize: 1}}
	for name, hm := range map[string]Heatmap{
		"timelines unsorted": {Timelines: []HeatmapTimeline{{ID: b}, {ID: a}}},
		"layers unsorted":    {Timelines: []HeatmapTimeline{{ID: a, Layers: []HeatmapLayer{l2, l1}}}},
		"layer twice":        {Timelines: []HeatmapTimeline{{ID: a, Layers: []HeatmapLayer{l1, l1}}}},
		"negative period":    {UploadPeriod: -time.Second},
	} {
		if _, err := EncodeHeatmap(&hm); !errors.Is(err, ErrCorruptHeatmap) {
			t.Errorf("%s: %v, want a refusal", name, err)
		}
	}
	empty := Heatmap{Generation: 3}
	b2, err := EncodeHeatmap(&empty)
	if err != nil || string(b2) != `{"generation":3,"timelines":[]}` {
		t.Errorf("empty heatmap: %s %v", b2, err)
	}
}

// FuzzParseHeatmap: ParseHeatmap never panics, every rejection wraps
// ErrCorruptHeatmap, and whatever parses encodes and parses back equal.
func FuzzParseHeatmap(f *testing.F) {
	f.Add([]byte(neonHeatmap))
	f.Add([]byte(`{"generation":1,"timelines":[]}`))
	f.Add([]byte(`{}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		hm, err := ParseHeatmap(data)
		if err != nil {
			if !errors.Is(err, ErrCorruptHeatmap) {
				t.Fatalf("unclassified error: %v", err)
			}
			return
		}
		enc, err := EncodeHeatmap(&hm)
		if err != nil {
			t.Fatalf("Encode of a parsed heatmap: %v", err)
		}
		again, err := ParseHeatmap(enc)
		if err != nil || !reflect.DeepEqual(again, hm) {
			t.Fatalf("round trip: %v\n%+v\n%+v", err, hm, again)
		}
	})
}
