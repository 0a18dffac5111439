package remote

import (
	"errors"
	"fmt"
	"hash/crc32"
	"reflect"
	"strings"
	"testing"

	"github.com/stratadb/strata/engine/layer"
	"github.com/stratadb/strata/engine/lsn"
	"github.com/stratadb/strata/engine/shard"
)

// versionShape builds an index of version v in the shape writers of that
// version produced: timeline_layers up to version 3, the legacy binary
// metadata up to 6, then the object (under "metadata" for 7, as the first
// writers of the object did, "metadata_bytes" after), and each version's
// new field from where it appeared.
func versionShape(t *testing.T, v int) string {
	layerName := fxK0 + "-" + fxKF + "__00000000014EE4B8-0000000002A3B4C9"
	m := Metadata{DiskConsistentLSN: 0x2A3B4C8, PrevRecordLSN: ptrLSN(0x2A3B450), LatestGCCutoffLSN: 0x1F00000, InitdbLSN: 0x14EE4B8, PGVersion: 15}
	fields := []string{fmt.Sprintf(`"version":%d`, v)}
	if v <= 3 {
		fields = append(fields, `"timeline_layers":["`+layerName+`"]`)
	}
	fields = append(fields, `"layer_metadata":{"`+layerName+`":{"file_size":9007199254740993}}`, `"disk_consistent_lsn":"0/2A3B4C8"`)
	switch {
	case v <= 6:
		fields = append(fields, `"metadata_bytes":`+byteArray(m.MarshalLegacy()))
	default:
		key := "metadata_bytes"
		if v == 7 {
			key = "metadata"
		}
		fields = append(fields, `"`+key+`":{"disk_consistent_lsn":"0/2A3B4C8","prev_record_lsn":"0/2A3B450","ancestor_timeline":null,"ancestor_lsn":"0/0","latest_gc_cutoff_lsn":"0/1F00000","initdb_lsn":"0/14EE4B8","pg_version":15}`)
	}
	add := func(from int, f string) {
		if v >= from {
			fields = append(fields, f)
		}
	}
	add(2, `"deleted_at":"2023-07-31T09:00:00.123"`)
	add(5, `"lineage":{"reparenting_history":["00112233445566778899aabbccddeeff"]}`)
	add(6, `"last_aux_file_policy":"V2"`)
	add(8, `"archived_at":"2023-08-01T00:00:00"`)
	add(9, `"gc_blocking":{"started_at":"2024-07-19T09:00:00.123","reasons":["DetachAncestor"]}`)
	add(10, `"import_pgdata":{"V1":{"InProgress":{"idempotency_key":"k","started_at":"2024-11-13T09:23:42.123","jobs":3}}}`)
	add(11, `"rel_size_migration":"migrating"`)
	add(12, `"l2_lsn":"0/1F00000"`)
	add(13, `"gc_compaction":{"last_completed_lsn":"0/1F00000"}`)
	add(14, `"marked_invisible_at":"2024-12-01T00:00:00.5"`)
	add(15, `"rel_size_migrated_at":"0/1F00000"`)
	return "{" + strings.Join(fields, ",") + "}"
}

func byteArray(b []byte) string {
	parts := make([]string, len(b))
	for i, x := range b {
		parts[i] = fmt.Sprint(x)
	}
	return "[" + strings.Join(parts, ",") + "]"
}

// TestParseEveryVersion: each version's shape parses to the same layers and
// metadata, with the fields that version has.
func TestParseEveryVersion(t *testing.T) {
	name := delta(t, fxK0, fxKF, 0x14EE4B8, 0x2A3B4C9, layer.GenerationNone)
	for v := MinVersion; v <= MaxVersion; v++ {
		t.Run(fmt.Sprint(v), func(t *testing.T) {
			ip, notes, err := ParseNotes([]byte(versionShape(t, v)))
			if err != nil {
				t.Fatal(err)
			}
			if ip.Version != v {
				t.Errorf("version %d", ip.Version)
			}
			if len(ip.Layers) != 1 || ip.Layers[0].Name != name || ip.Layers[0].FileSize != 9007199254740993 {
				t.Errorf("layers %v", ip.Layers)
			}
			if ip.Metadata.DiskConsistentLSN != 0x2A3B4C8 || *ip.Metadata.PrevRecordLSN != 0x2A3B450 || ip.Metadata.PGVersion != 15 {
				t.Errorf("metadata %+v", ip.Metadata)
			}
			wantForm := MetadataObject
			if v <= 6 {
				wantForm = MetadataLegacyBinary
			}
			if notes.MetadataForm != wantForm {
				t.Errorf("metadata form %v, want %v", notes.MetadataForm, wantForm)
			}
			if (ip.DeletedAt != nil) != (v >= 2) || (ip.ArchivedAt != nil) != (v >= 8) || (ip.GCBlocking != nil) != (v >= 9) || (len(ip.Lineage.ReparentingHistory) == 1) != (v >= 5) {
				t.Errorf("optional fields of version %d: %+v", v, ip)
			}
		})
	}
	for _, v := range []string{"0", "16", "4294967296", "99999999999999999999999"} {
		_, err := Parse([]byte(strings.Replace(versionShape(t, 15), `"version":15`, `"version":`+v, 1)))
		if v == "99999999999999999999999" {
			if !errors.Is(err, ErrCorrupt) {
				t.Errorf("version %s: %v, want ErrCorrupt", v, err)
			}
			continue
		}
		if !errors.Is(err, ErrUnsupportedVersion) {
			t.Errorf("version %s: %v, want ErrUnsupportedVersion", v, err)
		}
	}
	// The version is checked before anything else: a newer file whose
	// other fields changed shape still reports the version.
	if _, err := Parse([]byte(`{"version":16,"layer_metadata":"a new shape"}`)); !errors.Is(err, ErrUnsupportedVersion) {
		t.Errorf("newer version with a new shape: %v, want ErrUnsupportedVersion", err)
	}
}

// TestParseRejects: malformed indexes fail with ErrCorrupt and an error
// that says what is wrong.
func TestParseRejects(t *testing.T) {
	base := versionShape(t, 15)
	layerName := fxK0 + "-" + fxKF + "__00000000014EE4B8-0000000002A3B4C9"
	sub := func(old, new string) string {
		if !strings.Contains(base, old) {
			t.Fatalf("base lacks %q", old)
		}
		return strings.Replace(base, old, new, 1)
	}
	tests := []struct {
		name, input, want string
	}{
		{"empty", "", "bad JSON"},
		{"array", "[]", "want a JSON object"},
		{"trailing text", base + " {}", "after the object"},
		{"truncated", base[:len(base)-1], "bad JSON"},
		{"duplicate field", sub(`"version":15`, `"version":15,"version":14`), `"version" given twice`},
		{"duplicate layer", sub(`{"file_size":9007199254740993}`, `{"file_size":1},"`+layerName+`":{"file_size":2}`), "given twice"},
		{"no version", sub(`"version":15,`, ``), `no "version"`},
		{"version as string", sub(`"version":15`, `"version":"15"`), "want an unsigned integer"},
		{"no layer_metadata", sub(`"layer_metadata":{"`+layerName+`":{"file_size":9007199254740993}},`, ``), `no "layer_metadata"`},
		{"bad layer name", sub(layerName, "nonsense"), "malformed layer name"},
		{"generation in the key", sub(layerName+`"`, layerName+`-00000001"`), "carries a generation suffix"},
		{"no file_size", sub(`{"file_size":9007199254740993}`, `{"generation":1}`), "no file_size"},
		{"float file_size", sub(`9007199254740993`, `9007199254740993.0`), "want an unsigned integer"},
		{"exponent file_size", sub(`9007199254740993`, `9e15`), "want an unsigned integer"},
		{"negative file_size", sub(`9007199254740993`, `-1`), "want an unsigned integer"},
		{"file_size above u64", sub(`9007199254740993`, `18446744073709551616`), "does not fit 64 bits"},
		{"generation above u32", sub(`{"file_size":9007199254740993}`, `{"file_size":1,"generation":4294967296}`), "does not fit 32 bits"},
		{"generation 0", sub(`{"file_size":9007199254740993}`, `{"file_size":1,"generation":0}`), "generation 0"},
		{"bad shard", sub(`{"file_size":9007199254740993}`, `{"file_size":1,"shard":"0202"}`), "shard 2 of 2"},
		{"shard not a string", sub(`{"file_size":9007199254740993}`, `{"file_size":1,"shard":258}`), "want a string"},
		{"no disk_consistent_lsn", sub(`"disk_consistent_lsn":"0/2A3B4C8",`, ``), `no "disk_consistent_lsn"`},
		{"bad lsn", sub(`"disk_consistent_lsn":"0/2A3B4C8",`, `"disk_consistent_lsn":"0x2A3B4C8",`), "malformed LSN"},
		{"lsn mismatch", sub(`"disk_consistent_lsn":"0/2A3B4C8",`, `"disk_consistent_lsn":"0/2A3B4C0",`), "differs from the metadata's"},
		{"no metadata", sub(`"metadata_bytes":`, `"unrelated":`), `no "metadata_bytes"`},
		{"both metadata keys", sub(`"metadata_bytes":`, `"metadata":[1],"metadata_bytes":`), "both"},
		{"metadata a string", sub(`"metadata_bytes":{`, `"metadata_bytes":"x","x":{`), "want the 512-byte array or the metadata object"},
		{"metadata lacks pg_version", sub(`,"pg_version":15`, ``), `no "pg_version"`},
		{"pg_version negative", sub(`"pg_version":15`, `"pg_version":-15`), "want an unsigned integer"},
		{"bad ancestor", sub(`"ancestor_timeline":null`, `"ancestor_timeline":"zz"`), "timeline id"},
		{"zone in deleted_at", sub(`"2023-07-31T09:00:00.123"`, `"2023-07-31T09:00:00.123Z"`), "no zone"},
		{"offset in archived_at", sub(`"2023-08-01T00:00:00"`, `"2023-08-01T00:00:00+01:00"`), "no zone"},
		{"no such day", sub(`"2023-08-01T00:00:00"`, `"2023-02-29T00:00:00"`), "no such day"},
		{"lineage history not ids", sub(`["00112233445566778899aabbccddeeff"]`, `[1]`), "want a string"},
		{"original ancestor pair", sub(`"lineage":{`, `"lineage":{"original_ancestor":["00112233445566778899aabbccddeeff","0/1"],`), "want [timeline id, lsn, timestamp]"},
		{"gc_blocking without reasons", sub(`,"reasons":["DetachAncestor"]`, ``), "want started_at and reasons"},
		{"gc_blocking reason a number", sub(`["DetachAncestor"]`, `[1]`), "want a string"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.input))
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("Parse = %v, want ErrCorrupt", err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q lacks %q", err, tc.want)
			}
		})
	}
}

// TestParseLenient: what Parse accepts beyond the current form.
func TestParseLenient(t *testing.T) {
	base := versionShape(t, 15)
	for name, input := range map[string]string{
		"unknown fields everywhere": strings.NewReplacer(
			`{"file_size":`, `{"x":{"y":[1.5]},"file_size":`,
			`"pg_version":15`, `"pg_version":15,"new":null`,
			`"version":15`, `"version":15,"Version":99,"next":[true]`).Replace(base),
		"null optional fields":     strings.Replace(base, `"deleted_at":"2023-07-31T09:00:00.123"`, `"deleted_at":null,"gc_blocking_x":null`, 1),
		"whitespace":               strings.ReplaceAll(base, ",", " ,\n\t"),
		"shard 0000 is unsharded":  strings.Replace(base, `{"file_size":9007199254740993}`, `{"file_size":9007199254740993,"shard":"0000"}`, 1),
		"upper-case timeline ids":  strings.Replace(base, `00112233445566778899aabbccddeeff`, `00112233445566778899AABBCCDDEEFF`, 1),
		"metadata without options": strings.Replace(base, `"prev_record_lsn":"0/2A3B450","ancestor_timeline":null,`, `"prev_record_lsn":"0/2A3B450",`, 1),
	} {
		t.Run(name, func(t *testing.T) {
			want, err := Parse([]byte(base))
			if err != nil {
				t.Fatal(err)
			}
			got, err := Parse([]byte(input))
			if err != nil {
				t.Fatal(err)
			}
			if name == "null optional fields" {
				want.DeletedAt = nil
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("got\n%+v\nwant\n%+v", got, want)
			}
		})
	}
}

func TestLegacyMetadata(t *testing.T) {
	anc := shard.TimelineID{0xde, 0xad, 15: 0xef}
	for _, m := range []Metadata{
		{},
		{DiskConsistentLSN: 1, PrevRecordLSN: ptrLSN(0), AncestorTimeline: &anc, AncestorLSN: 2, LatestGCCutoffLSN: 3, InitdbLSN: 4, PGVersion: 17},
		{DiskConsistentLSN: lsn.Max, PrevRecordLSN: ptrLSN(lsn.Max), AncestorLSN: lsn.Max, LatestGCCutoffLSN: lsn.Max, InitdbLSN: lsn.Max, PGVersion: ^uint32(0)},
		{DiskConsistentLSN: 5, AncestorTimeline: &anc},
	} {
		b := m.MarshalLegacy()
		if len(b) != LegacyMetadataSize {
			t.Fatalf("MarshalLegacy: %d bytes", len(b))
		}
		got, err := parseLegacyMetadata("metadata_bytes", b)
		if err != nil || !reflect.DeepEqual(got, m) {
			t.Errorf("round trip %+v: %+v, %v", m, got, err)
		}
		// The body's length follows the options: 38 bytes with both
		// absent, plus 8 for prev_record_lsn and 16 for the ancestor.
		want := 8 + 38
		if m.PrevRecordLSN != nil {
			want += 8
		}
		if m.AncestorTimeline != nil {
			want += 16
		}
		if size := int(b[4])<<8 | int(b[5]); size != want {
			t.Errorf("header size %d, want %d", size, want)
		}
		// The padding is not covered by the checksum.
		b[LegacyMetadataSize-1] = 0xff
		if _, err := parseLegacyMetadata("metadata_bytes", b); err != nil {
			t.Errorf("non-zero padding: %v", err)
		}
	}
	good := Metadata{DiskConsistentLSN: 1, PrevRecordLSN: ptrLSN(2)}.MarshalLegacy()
	mutate := func(f func(b []byte)) []byte {
		b := append([]byte(nil), good...)
		f(b)
		return b
	}
	resum := func(b []byte) {
		size := int(b[4])<<8 | int(b[5])
		c := crc32.Checksum(b[8:size], crc32.MakeTable(crc32.Castagnoli))
		b[0], b[1], b[2], b[3] = byte(c>>24), byte(c>>16), byte(c>>8), byte(c)
	}
	tests := []struct {
		name  string
		input []byte
		want  error
		text  string
	}{
		{"short", good[:100], ErrMetadataLength, "100 bytes, want 512"},
		{"long", append(append([]byte(nil), good...), 0), ErrMetadataLength, "513 bytes"},
		{"size below header", mutate(func(b []byte) { b[4], b[5] = 0, 7 }), ErrMetadataLength, "header size 7"},
		{"size above block", mutate(func(b []byte) { b[4], b[5] = 2, 1 }), ErrMetadataLength, "header size 513"},
		{"checksum", mutate(func(b []byte) { b[9] ^= 1 }), ErrMetadataChecksum, "checksum mismatch"},
		{"format", mutate(func(b []byte) { b[7] = 3 }), ErrCorrupt, "format version 3"},
		{"bad option tag", mutate(func(b []byte) { b[16] = 2; resum(b) }), ErrCorrupt, "option tag 2"},
		{"body too short", mutate(func(b []byte) { b[5]--; resum(b) }), ErrCorrupt, "truncated at pg_version"},
		{"body too long", mutate(func(b []byte) { b[5]++; resum(b) }), ErrCorrupt, "1 bytes after pg_version"},
	}
	for _, tc := range tests {
		_, err := parseLegacyMetadata("metadata_bytes", tc.input)
		if !errors.Is(err, tc.want) || !errors.Is(err, ErrCorrupt) || !strings.Contains(fmt.Sprint(err), tc.text) {
			t.Errorf("%s: %v, want %v with %q", tc.name, err, tc.want, tc.text)
		}
	}
}
