package remote

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/stratadb/strata/engine/layer"
	"github.com/stratadb/strata/engine/shard"
)

var (
	testTenant   = shard.TenantID{0x3a, 0xa8, 15: 0x01}
	testTimeline = shard.TimelineID{0x0f, 15: 0x02}
	unsharded    = shard.UnshardedID(testTenant)
	shard1of2    = shard.TenantShardID{TenantID: testTenant, Shard: shard.ShardIndex{Number: 1, Count: 2}}
)

func TestLayoutKeys(t *testing.T) {
	ts, tl := testTenant.String(), testTimeline.String()
	plain := Layout{}
	pre, err := NewLayout("bucket-prefix/pageserver")
	if err != nil {
		t.Fatal(err)
	}
	name := delta(t, fxK0, fxKF, 0x10, 0x20, 0xa)
	tests := []struct{ got, want string }{
		{plain.IndexKey(unsharded, testTimeline, 5), "tenants/" + ts + "/timelines/" + tl + "/index_part.json-00000005"},
		{plain.IndexKey(shard1of2, testTimeline, 0xdeadbeef), "tenants/" + ts + "-0102/timelines/" + tl + "/index_part.json-deadbeef"},
		{plain.IndexKey(unsharded, testTimeline, layer.GenerationNone), "tenants/" + ts + "/timelines/" + tl + "/index_part.json"},
		{pre.IndexKey(unsharded, testTimeline, 1), "bucket-prefix/pageserver/tenants/" + ts + "/timelines/" + tl + "/index_part.json-00000001"},
		{plain.HeatmapKey(shard1of2), "tenants/" + ts + "-0102/heatmap-v1.json"},
		{pre.HeatmapKey(unsharded), "bucket-prefix/pageserver/tenants/" + ts + "/heatmap-v1.json"},
		// A layer lives under the shard that wrote it, whatever index names it.
		{plain.LayerKey(testTenant, testTimeline, LayerID{Name: name}), "tenants/" + ts + "/timelines/" + tl + "/" + fxK0 + "-" + fxKF + "__0000000000000010-0000000000000020-0000000a"},
		{plain.LayerKey(testTenant, testTimeline, LayerID{Name: name, Shard: shard1of2.Shard}), "tenants/" + ts + "-0102/timelines/" + tl + "/" + name.String()},
		{plain.LayerKey(testTenant, testTimeline, LayerID{Name: name.WithGeneration(layer.GenerationNone)}), "tenants/" + ts + "/timelines/" + tl + "/" + name.LayerName()},
		{plain.TimelinePrefix(shard1of2, testTimeline), "tenants/" + ts + "-0102/timelines/" + tl + "/"},
	}
	for _, tc := range tests {
		if tc.got != tc.want {
			t.Errorf("got  %s\nwant %s", tc.got, tc.want)
		}
	}
	for _, bad := range []string{"/a", "a/", "a//b", ".", "a/../b", "/"} {
		if _, err := NewLayout(bad); !errors.Is(err, ErrBadPrefix) {
			t.Errorf("NewLayout(%q) = %v, want ErrBadPrefix", bad, err)
		}
	}
}

func TestParseIndexKey(t *testing.T) {
	l := Layout{}
	base := l.IndexListPrefix(unsharded, testTimeline)
	tests := []struct {
		key  string
		gen  layer.Generation
		isIx bool
	}{
		{base, layer.GenerationNone, true},
		{base + "-00000001", 1, true},
		{base + "-ffffffff", 0xffffffff, true},
		{base + "-00000000", 0, false},  // 0 is never issued
		{base + "-0000000A", 0, false},  // upper case: not Strata's spelling
		{base + "-0000001", 0, false},   // 7 digits
		{base + "-000000001", 0, false}, // 9 digits
		{base + ".old", 0, false},
		{base + "-00000001.old", 0, false},
		{base + "-00000001.tmp", 0, false},
		{l.IndexKey(shard1of2, testTimeline, 1), 0, false}, // another shard's
		{l.TimelinePrefix(unsharded, testTimeline) + fxK0 + "-" + fxKF + "__0000000000000010", 0, false},
	}
	for _, tc := range tests {
		g, ok := l.ParseIndexKey(unsharded, testTimeline, tc.key)
		if ok != tc.isIx || g != tc.gen {
			t.Errorf("ParseIndexKey(%q) = %v, %v; want %v, %v", tc.key, g, ok, tc.gen, tc.isIx)
		}
		if ok && l.IndexKey(unsharded, testTimeline, g) != tc.key {
			t.Errorf("IndexKey(%v) does not give back %q", g, tc.key)
		}
	}
}

// TestPickIndex: the newest index at or below our generation, never one
// above, the legacy one last; anything that is not an index key is ignored.
func TestPickIndex(t *testing.T) {
	l := Layout{}
	ix := func(g layer.Generation) string { return l.IndexKey(unsharded, testTimeline, g) }
	legacy := ix(layer.GenerationNone)
	tests := []struct {
		name    string
		our     layer.Generation
		listed  []string
		wantGen layer.Generation
		wantOK  bool
	}{
		{"own generation", 5, []string{ix(3), ix(5)}, 5, true},
		{"previous owner", 5, []string{ix(3), ix(4)}, 4, true},
		{"gap", 5, []string{ix(2), ix(3)}, 3, true},
		{"newer ones ignored", 5, []string{ix(3), ix(6), ix(0xffffffff)}, 3, true},
		{"only newer", 5, []string{ix(6), ix(7)}, 0, false},
		{"legacy when nothing else", 5, []string{legacy, ix(6)}, layer.GenerationNone, true},
		{"numbered beats legacy", 5, []string{legacy, ix(1)}, 1, true},
		{"no generation loads only legacy", layer.GenerationNone, []string{ix(1), legacy}, layer.GenerationNone, true},
		{"no generation, no legacy", layer.GenerationNone, []string{ix(1)}, 0, false},
		{"max generation", 0xffffffff, []string{ix(0xfffffffe), ix(0xffffffff)}, 0xffffffff, true},
		{"order does not matter", 9, []string{ix(8), ix(2), ix(7)}, 8, true},
		{"backup and junk ignored", 5, []string{legacy + ".old", ix(4) + ".old", ix(3), legacy + "-0000000A", legacy + "-00000000", "tenants/other/index_part.json-00000004"}, 3, true},
		{"other shard ignored", 5, []string{l.IndexKey(shard1of2, testTimeline, 4), ix(2)}, 2, true},
		{"nothing listed", 5, nil, 0, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			key, g, ok := PickIndex(l, unsharded, testTimeline, tc.our, tc.listed)
			if ok != tc.wantOK || g != tc.wantGen {
				t.Fatalf("PickIndex = %q, %v, %v; want %v, %v", key, g, ok, tc.wantGen, tc.wantOK)
			}
			if ok && key != ix(g) {
				t.Errorf("key %q is not the index of %v", key, g)
			}
			if ok && g > tc.our {
				t.Errorf("picked %v above our %v", g, tc.our)
			}
		})
	}
	if got := IndexFastPath(1); fmt.Sprint(got) != "[00000001 none]" {
		t.Errorf("fast path of 1 = %v", got)
	}
	if got := IndexFastPath(layer.GenerationNone); fmt.Sprint(got) != "[none]" {
		t.Errorf("fast path of none = %v", got)
	}
}

func TestTimestamps(t *testing.T) {
	tests := []struct {
		in   string
		want time.Time
		out  string // "" = in
	}{
		{"2023-07-31T09:00:00.123", utc(2023, 7, 31, 9, 0, 0, 123_000_000), ""},
		{"2024-01-02T03:04:05.123456", utc(2024, 1, 2, 3, 4, 5, 123_456_000), ""},
		{"2024-01-02T03:04:05.123456789", utc(2024, 1, 2, 3, 4, 5, 123_456_789), ""},
		{"2024-01-02T03:04:05", utc(2024, 1, 2, 3, 4, 5, 0), ""},
		{"2024-01-02T03:04:05.5", utc(2024, 1, 2, 3, 4, 5, 500_000_000), "2024-01-02T03:04:05.500"},
		{"2024-01-02T03:04:05.000000000", utc(2024, 1, 2, 3, 4, 5, 0), "2024-01-02T03:04:05"},
		{"2024-01-02T03:04:05.0000001", utc(2024, 1, 2, 3, 4, 5, 100), "2024-01-02T03:04:05.000000100"},
		{"2024-02-29T23:59:59.999", utc(2024, 2, 29, 23, 59, 59, 999_000_000), ""},
		{"0001-01-01T00:00:00", utc(1, 1, 1, 0, 0, 0, 0), ""},
	}
	for _, tc := range tests {
		got, err := parseTimestamp(tc.in)
		if err != nil || !got.Equal(tc.want) || got.Location() != time.UTC {
			t.Errorf("parseTimestamp(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
			continue
		}
		out := tc.out
		if out == "" {
			out = tc.in
		}
		if f := formatTimestamp(got); f != out {
			t.Errorf("formatTimestamp(%v) = %q, want %q", got, f, out)
		}
	}
	for _, bad := range []string{
		"", "2023-07-31", "2023-07-31 09:00:00", "2023-07-31T09:00:00Z", "2023-07-31T09:00:00.123Z",
		"2023-07-31T09:00:00+00:00", "2023-07-31T09:00:00.", "2023-07-31T09:00:00.1234567890",
		"2023-13-01T00:00:00", "2023-02-30T00:00:00", "2023-01-00T00:00:00", "2023-01-01T24:00:00",
		"2023-01-01T00:60:00", "2023-01-01T00:00:60", "+023-01-01T00:00:00", "2023-01-01T00:00:0x",
	} {
		if _, err := parseTimestamp(bad); err == nil {
			t.Errorf("parseTimestamp(%q) accepted", bad)
		}
	}
}
