package remote

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/stratadb/strata/engine/keys"
	"github.com/stratadb/strata/engine/layer"
	"github.com/stratadb/strata/engine/lsn"
	"github.com/stratadb/strata/engine/shard"
)

// Keys and ids the fixtures under testdata/ use.
const (
	fxK0 = "000000000000000000000000000000000000"
	fxKF = "FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF"
	fxKA = "000000067F00004005000060000000000000"
	fxKB = "000000067F00004005000060000000000100"
	fxKS = "010000000000000001000000000000000000"
)

func mustKey(t testing.TB, s string) keys.Key {
	t.Helper()
	k, err := keys.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func mustTL(t testing.TB, s string) shard.TimelineID {
	t.Helper()
	id, err := shard.ParseTimelineID(s)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func delta(t testing.TB, k0, k1 string, l0, l1 lsn.LSN, gen layer.Generation) layer.Name {
	return layer.DeltaName(keys.Range{Start: mustKey(t, k0), End: mustKey(t, k1)}, lsn.Range{Start: l0, End: l1}).WithGeneration(gen)
}

func image(t testing.TB, k0, k1 string, l lsn.LSN, gen layer.Generation) layer.Name {
	return layer.ImageName(keys.Range{Start: mustKey(t, k0), End: mustKey(t, k1)}, l).WithGeneration(gen)
}

func ptrLSN(l lsn.LSN) *lsn.LSN { return &l }

func ptrTime(t time.Time) *time.Time { return &t }

func readFixture(t testing.TB, name string) []byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func utc(y int, mo time.Month, d, h, mi, s, ns int) time.Time {
	return time.Date(y, mo, d, h, mi, s, ns, time.UTC)
}

// fixtures is what each hand-written file under testdata/ must parse to.
func fixtures(t testing.TB) []struct {
	file  string
	want  IndexPart
	notes Notes
} {
	anc := mustTL(t, "9e4c2b7a5d3f41e8b06a1c2d3e4f5a6b")
	return []struct {
		file  string
		want  IndexPart
		notes Notes
	}{
		{
			// Version 1: legacy binary metadata with prev_record_lsn and no
			// ancestor, the timeline_layers and missing_layers lists of the
			// time, a size above 2^53, and a backup entry to skip.
			file: "v1-legacy-binary.json",
			want: IndexPart{
				Version: 1,
				Layers: []Layer{
					{LayerID{Name: image(t, fxK0, fxKB, 0x2A3B4C8, layer.GenerationNone)}, 9007199254740993},
					{LayerID{Name: delta(t, fxK0, fxKF, 0x14EE4B8, 0x2A3B4C9, layer.GenerationNone)}, 13959168},
				},
				Metadata: Metadata{DiskConsistentLSN: 0x2A3B4C8, PrevRecordLSN: ptrLSN(0x2A3B450), LatestGCCutoffLSN: 0x1F00000, InitdbLSN: 0x14EE4B8, PGVersion: 15},
			},
			notes: Notes{
				MetadataForm:   MetadataLegacyBinary,
				MetadataKey:    "metadata_bytes",
				SkippedBackups: []string{fxK0 + "-" + fxKF + "__00000000014EE4B8-0000000002A3B4C9.1.old"},
				Ignored:        []string{"timeline_layers", "missing_layers"},
			},
		},
		{
			// Version 5: legacy binary metadata with an ancestor and no
			// prev_record_lsn (each option's "none" is its tag byte alone),
			// an empty lineage.
			file: "v5-legacy-ancestor.json",
			want: IndexPart{
				Version: 5,
				Layers: []Layer{
					{LayerID{Name: delta(t, fxKA, fxKB, 0x2A3B4C8, 0x3000029, layer.GenerationNone)}, 262144},
				},
				Metadata: Metadata{DiskConsistentLSN: 0x3000028, AncestorTimeline: &anc, AncestorLSN: 0x2A3B4C8, LatestGCCutoffLSN: 0x2A3B4C8, InitdbLSN: 0x14EE4B8, PGVersion: 16},
			},
			notes: Notes{MetadataForm: MetadataLegacyBinary, MetadataKey: "metadata_bytes"},
		},
		{
			// Version 7: the metadata object under the older key "metadata",
			// generations and a shard on layers (null ones count as absent),
			// a zone-less timestamp with milliseconds.
			file: "v7-object.json",
			want: IndexPart{
				Version: 7,
				Layers: []Layer{
					{LayerID{Name: delta(t, fxK0, fxKA, 0x14EE4B8, 0x2A3B4C9, 3)}, 25600000},
					{LayerID{Name: image(t, fxK0, fxKF, 0x2A3B4C8, 4), Shard: shard.ShardIndex{Number: 1, Count: 2}}, 9007199254740993},
					{LayerID{Name: delta(t, fxKA, fxKF, 0x2A3B4C9, 0x3000029, layer.GenerationNone)}, 8192},
				},
				Metadata:  Metadata{DiskConsistentLSN: 0x3000028, PrevRecordLSN: ptrLSN(0x3000000), LatestGCCutoffLSN: 0x2A3B4C8, InitdbLSN: 0x14EE4B8, PGVersion: 16},
				DeletedAt: ptrTime(utc(2023, 7, 31, 9, 0, 0, 123_000_000)),
			},
			notes: Notes{MetadataForm: MetadataObject, MetadataKey: "metadata"},
		},
		{
			// Version 15 with every optional field, the largest u64 size and
			// generation, fields Strata ignores (at the top, in a layer
			// entry, in the metadata), timestamps with 0, 3, 6 and 9
			// fraction digits.
			file: "v15-all-fields.json",
			want: IndexPart{
				Version: 15,
				Layers: []Layer{
					{LayerID{Name: image(t, fxK0, fxKS, 0x4000000, 0xFFFFFFFF), Shard: shard.ShardIndex{Number: 3, Count: 4}}, 18446744073709551615},
					{LayerID{Name: delta(t, fxKS, fxKF, 0x3000029, 0x4000001, 7), Shard: shard.ShardIndex{Number: 0, Count: 4}}, 9007199254740993},
				},
				Metadata: Metadata{
					DiskConsistentLSN: 0x1_04000000, PrevRecordLSN: ptrLSN(0x1_03FFFFC8), AncestorTimeline: &anc, AncestorLSN: 0x3000028,
					LatestGCCutoffLSN: 0x3800000, InitdbLSN: 0x14EE4B8, PGVersion: 17,
				},
				DeletedAt:  ptrTime(utc(2024, 1, 2, 3, 4, 5, 123_456_000)),
				ArchivedAt: ptrTime(utc(2024, 2, 29, 23, 59, 59, 987_654_321)),
				Lineage: Lineage{
					ReparentingHistoryTruncated: true,
					ReparentingHistory:          []shard.TimelineID{mustTL(t, "1f2e3d4c5b6a79880796a5b4c3d2e1f0"), mustTL(t, "00112233445566778899aabbccddeeff")},
					OriginalAncestor:            &OriginalAncestor{Timeline: mustTL(t, "a1b2c3d4e5f60718293a4b5c6d7e8f90"), LSN: 0x2A3B4C8, DetachedAt: utc(2024, 5, 7, 18, 52, 36, 322_000_000)},
				},
				GCBlocking: &GCBlocking{StartedAt: utc(2024, 7, 19, 9, 0, 0, 0), Reasons: []string{"Manual", "DetachAncestor"}},
			},
			notes: Notes{
				MetadataForm: MetadataObject, MetadataKey: "metadata_bytes",
				Ignored: []string{"marked_invisible_at", "last_aux_file_policy", "import_pgdata", "rel_size_migration", "l2_lsn", "gc_compaction", "rel_size_migrated_at"},
			},
		},
	}
}

func TestParseFixtures(t *testing.T) {
	for _, fx := range fixtures(t) {
		t.Run(fx.file, func(t *testing.T) {
			got, notes, err := ParseNotes(readFixture(t, fx.file))
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, fx.want) {
				t.Errorf("parsed\n%+v\nwant\n%+v", got, fx.want)
			}
			if !reflect.DeepEqual(notes, fx.notes) {
				t.Errorf("notes %+v, want %+v", notes, fx.notes)
			}
			if err := got.Validate(); err != nil {
				t.Errorf("Validate: %v", err)
			}
		})
	}
}

// TestFixtureObjectKeys: the remote object a fixture's layer names is the
// layer name with its generation, under the writing shard's prefix.
func TestFixtureObjectKeys(t *testing.T) {
	ip, err := Parse(readFixture(t, "v7-object.json"))
	if err != nil {
		t.Fatal(err)
	}
	tenant := shard.TenantID{0x3a, 0xa8}
	tl := mustTL(t, "0f0e0d0c0b0a09080706050403020100")
	var got []string
	for _, l := range ip.Layers {
		got = append(got, Layout{}.LayerKey(tenant, tl, l.LayerID))
	}
	ts := tenant.String()
	want := []string{
		"tenants/" + ts + "/timelines/" + tl.String() + "/" + fxK0 + "-" + fxKA + "__00000000014EE4B8-0000000002A3B4C9-00000003",
		"tenants/" + ts + "-0102/timelines/" + tl.String() + "/" + fxK0 + "-" + fxKF + "__0000000002A3B4C8-00000004",
		"tenants/" + ts + "/timelines/" + tl.String() + "/" + fxKA + "-" + fxKF + "__0000000002A3B4C9-0000000003000029",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("keys\n%q\nwant\n%q", got, want)
	}
}

func TestParseCorruptFixtures(t *testing.T) {
	tests := []struct {
		file     string
		want     []error
		wantText string
	}{
		{"corrupt-bad-json.json", []error{ErrCorrupt}, "bad JSON"},
		{"corrupt-metadata-checksum.json", []error{ErrCorrupt, ErrMetadataChecksum}, "remote: corrupt index_part: metadata_bytes: remote: metadata checksum mismatch: header says 5a3db62b, body of 46 bytes sums to 24c93dfa"},
		{"corrupt-metadata-length.json", []error{ErrCorrupt, ErrMetadataLength}, "remote: corrupt index_part: metadata_bytes: remote: metadata length is wrong: 511 bytes, want 512"},
		{"corrupt-version-16.json", []error{ErrUnsupportedVersion}, "version 16 (Strata reads 1 to 15)"},
	}
	for _, tc := range tests {
		t.Run(tc.file, func(t *testing.T) {
			_, err := Parse(readFixture(t, tc.file))
			if err == nil {
				t.Fatal("parsed")
			}
			for _, w := range tc.want {
				if !errors.Is(err, w) {
					t.Errorf("error %v is not %v", err, w)
				}
			}
			if !strings.Contains(err.Error(), tc.wantText) {
				t.Errorf("error %q lacks %q", err, tc.wantText)
			}
			if errors.Is(err, ErrUnsupportedVersion) == errors.Is(err, ErrCorrupt) {
				t.Errorf("error %v must be exactly one of corrupt or unsupported", err)
			}
		})
	}
}

// equalModuloVersion compares a parsed re-encoding with the original: Encode
// always writes CurrentVersion.
func equalModuloVersion(a, b IndexPart) bool {
	a.Version, b.Version = 0, 0
	return reflect.DeepEqual(a, b)
}

func TestRoundTripFixtures(t *testing.T) {
	for _, fx := range fixtures(t) {
		t.Run(fx.file, func(t *testing.T) {
			ip, err := Parse(readFixture(t, fx.file))
			if err != nil {
				t.Fatal(err)
			}
			enc, err := Encode(&ip)
			if err != nil {
				t.Fatal(err)
			}
			again, notes, err := ParseNotes(enc)
			if err != nil {
				t.Fatalf("re-parse: %v\n%s", err, enc)
			}
			if again.Version != CurrentVersion {
				t.Errorf("re-parsed version %d, want %d", again.Version, CurrentVersion)
			}
			if !equalModuloVersion(again, ip) {
				t.Errorf("round trip\n%+v\nwant\n%+v", again, ip)
			}
			if notes.MetadataForm != MetadataObject || notes.MetadataKey != "metadata_bytes" || len(notes.Ignored) != 0 || len(notes.SkippedBackups) != 0 {
				t.Errorf("Encode's output is not in the current form: %+v", notes)
			}
			enc2, err := Encode(&again)
			if err != nil || !bytes.Equal(enc, enc2) {
				t.Errorf("Encode not deterministic:\n%s\n%s (%v)", enc, enc2, err)
			}
		})
	}
}

// TestEncodeCurrentForm pins the exact bytes Encode writes for a small
// index, so a change of the written form is a deliberate one.
func TestEncodeCurrentForm(t *testing.T) {
	ip := IndexPart{
		Layers: []Layer{
			{LayerID{Name: image(t, fxK0, fxKF, 0x2A3B4C8, 2), Shard: shard.ShardIndex{Number: 1, Count: 2}}, 9007199254740993},
			{LayerID{Name: delta(t, fxKA, fxKF, 0x14EE4B8, 0x2A3B4C9, layer.GenerationNone)}, 8192},
		},
		Metadata:   Metadata{DiskConsistentLSN: 0x2A3B4C8, LatestGCCutoffLSN: 0x1000000, InitdbLSN: 0x14EE4B8, PGVersion: 16},
		ArchivedAt: ptrTime(utc(2024, 1, 2, 3, 4, 5, 600_000_000)),
		GCBlocking: &GCBlocking{StartedAt: utc(2024, 1, 2, 3, 4, 5, 7)},
	}
	got, err := Encode(&ip)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"version":15,"archived_at":"2024-01-02T03:04:05.600","layer_metadata":{` +
		`"` + fxK0 + "-" + fxKF + `__0000000002A3B4C8":{"file_size":9007199254740993,"generation":2,"shard":"0102"},` +
		`"` + fxKA + "-" + fxKF + `__00000000014EE4B8-0000000002A3B4C9":{"file_size":8192}},` +
		`"disk_consistent_lsn":"0/2A3B4C8","metadata_bytes":{"disk_consistent_lsn":"0/2A3B4C8","prev_record_lsn":null,"ancestor_timeline":null,` +
		`"ancestor_lsn":"0/0","latest_gc_cutoff_lsn":"0/1000000","initdb_lsn":"0/14EE4B8","pg_version":16},"lineage":{},` +
		`"gc_blocking":{"started_at":"2024-01-02T03:04:05.000000007","reasons":[]}}`
	if string(got) != want {
		t.Errorf("Encode =\n%s\nwant\n%s", got, want)
	}
}

// TestEncodeConvertsToUTC: a time in another zone is written as its UTC
// wall time (the format has no zone) and reads back equal.
func TestEncodeConvertsToUTC(t *testing.T) {
	zone := time.FixedZone("UTC+2", 2*3600)
	at := time.Date(2024, 3, 1, 1, 30, 0, 0, zone)
	ip := IndexPart{Layers: []Layer{{LayerID{Name: delta(t, fxK0, fxKF, 1, 2, 1)}, 1}}, Metadata: Metadata{DiskConsistentLSN: 2}, DeletedAt: &at}
	data, err := Encode(&ip)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(data), `"deleted_at":"2024-02-29T23:30:00"`) {
		t.Errorf("Encode = %s", data)
	}
	got, err := Parse(data)
	if err != nil || !got.DeletedAt.Equal(at) {
		t.Errorf("read back %v, %v; want %v", got.DeletedAt, err, at)
	}
}

func TestEncodeRefusesEmptyIndex(t *testing.T) {
	ip := IndexPart{Metadata: Metadata{DiskConsistentLSN: 0x100, InitdbLSN: 0x100, PGVersion: 16}}
	if _, err := Encode(&ip); !errors.Is(err, ErrEmptyIndex) {
		t.Fatalf("Encode of an index with no layers and no ancestor: %v, want ErrEmptyIndex", err)
	}
	// A fresh branch has no layers of its own but an ancestor: valid.
	anc := shard.TimelineID{1}
	ip.Metadata.AncestorTimeline = &anc
	if _, err := Encode(&ip); err != nil {
		t.Fatalf("Encode of a branch without layers: %v", err)
	}
	// Parse reads such an index (it is well-formed) but Validate says what
	// is wrong with it.
	ip.Metadata.AncestorTimeline = nil
	data := []byte(`{"version":15,"layer_metadata":{},"disk_consistent_lsn":"0/100","metadata_bytes":{"disk_consistent_lsn":"0/100","ancestor_lsn":"0/0","latest_gc_cutoff_lsn":"0/0","initdb_lsn":"0/100","pg_version":16}}`)
	got, err := Parse(data)
	if err != nil {
		t.Fatal(err)
	}
	if err := got.Validate(); !errors.Is(err, ErrEmptyIndex) {
		t.Fatalf("Validate = %v, want ErrEmptyIndex", err)
	}
}

func TestEncodeRefusesInvalidIndex(t *testing.T) {
	a := Layer{LayerID{Name: delta(t, fxK0, fxKA, 1, 2, 1)}, 1}
	b := Layer{LayerID{Name: delta(t, fxKA, fxKF, 1, 2, 1)}, 1}
	meta := Metadata{DiskConsistentLSN: 2}
	for name, ip := range map[string]IndexPart{
		"unsorted":       {Layers: []Layer{b, a}, Metadata: meta},
		"duplicate name": {Layers: []Layer{a, {LayerID{Name: a.Name.WithGeneration(2)}, 5}}, Metadata: meta},
		"bad name":       {Layers: []Layer{{LayerID{Name: layer.Name{Kind: layer.KindDelta}}, 1}}, Metadata: meta},
		"bad shard":      {Layers: []Layer{{LayerID{Name: a.Name, Shard: shard.ShardIndex{Number: 2, Count: 2}}, 1}}, Metadata: meta},
	} {
		if _, err := Encode(&ip); !errors.Is(err, ErrInvalidIndex) {
			t.Errorf("%s: Encode = %v, want ErrInvalidIndex", name, err)
		}
	}
	far := utc(10000, 1, 1, 0, 0, 0, 0)
	for name, ip := range map[string]IndexPart{
		"year 10000":        {Layers: []Layer{a}, Metadata: meta, DeletedAt: &far},
		"negative year":     {Layers: []Layer{a}, Metadata: meta, GCBlocking: &GCBlocking{StartedAt: utc(-1, 1, 1, 0, 0, 0, 0)}},
		"reason not UTF-8":  {Layers: []Layer{a}, Metadata: meta, GCBlocking: &GCBlocking{Reasons: []string{"\xff"}}},
		"detached in 10000": {Layers: []Layer{a}, Metadata: meta, Lineage: Lineage{OriginalAncestor: &OriginalAncestor{DetachedAt: far}}},
	} {
		if _, err := Encode(&ip); !errors.Is(err, ErrInvalidIndex) {
			t.Errorf("%s: Encode = %v, want ErrInvalidIndex", name, err)
		}
	}
	ip := IndexPart{Layers: []Layer{a, b}, Metadata: meta}
	if got, ok := ip.Find(b.Name.WithGeneration(layer.GenerationNone)); !ok || got != b {
		t.Errorf("Find = %v, %v", got, ok)
	}
	if _, ok := ip.Find(delta(t, fxK0, fxKF, 1, 2, 1)); ok {
		t.Error("Find of an absent name succeeded")
	}
}
