package remote

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/stratadb/strata/engine/layer"
	"github.com/stratadb/strata/engine/lsn"
	"github.com/stratadb/strata/engine/shard"
)

// MetadataForm says how an index carried its metadata.
type MetadataForm uint8

// The metadata forms.
const (
	// MetadataObject: the JSON object (version 7 on, and what Encode
	// writes).
	MetadataObject MetadataForm = iota + 1
	// MetadataLegacyBinary: the 512-byte binary block as a JSON array.
	MetadataLegacyBinary
)

func (f MetadataForm) String() string {
	switch f {
	case MetadataObject:
		return "object"
	case MetadataLegacyBinary:
		return "legacy-binary"
	}
	return fmt.Sprintf("form(%d)", uint8(f))
}

// Notes says how an index was spelled, beyond its content: what an
// operator inspecting a file wants to know and a loader may log.
type Notes struct {
	// MetadataForm and MetadataKey ("metadata_bytes", or the older alias
	// "metadata") say where and how the metadata was found.
	MetadataForm MetadataForm
	MetadataKey  string
	// SkippedBackups lists layer_metadata keys that named backup files
	// ("….old") rather than layers; they are dropped, in file order. The
	// objects they name are left in storage (a leak, never a wrong delete).
	SkippedBackups []string
	// Ignored lists the top-level fields Strata does not read, in file
	// order.
	Ignored []string
}

// Parse reads an index_part.json of any version from MinVersion to
// MaxVersion. See ParseNotes.
func Parse(data []byte) (IndexPart, error) {
	ip, _, err := ParseNotes(data)
	return ip, err
}

// The top-level fields Parse reads.
const (
	fieldVersion           = "version"
	fieldLayerMetadata     = "layer_metadata"
	fieldDiskConsistentLSN = "disk_consistent_lsn"
	fieldMetadataBytes     = "metadata_bytes"
	fieldMetadataAlias     = "metadata"
	fieldDeletedAt         = "deleted_at"
	fieldArchivedAt        = "archived_at"
	fieldLineage           = "lineage"
	fieldGCBlocking        = "gc_blocking"
)

// ParseNotes reads an index_part.json and says how it was spelled. Field
// names match exactly (case matters), a field given twice is an error,
// unknown fields are ignored, null counts as absent for optional fields,
// and every integer is read from its digits (never through a float64), so
// a file size above 2^53 stays exact. The version is checked first, so a
// newer file fails with ErrUnsupportedVersion rather than with whatever
// changed in it. Every other rejection wraps ErrCorrupt.
func ParseNotes(data []byte) (IndexPart, Notes, error) {
	var notes Notes
	raw := map[string]json.RawMessage{}
	err := decodeObject(data, true, func(key string, val json.RawMessage) error {
		switch key {
		case fieldVersion, fieldLayerMetadata, fieldDiskConsistentLSN, fieldMetadataBytes, fieldMetadataAlias,
			fieldDeletedAt, fieldArchivedAt, fieldLineage, fieldGCBlocking:
			raw[key] = val
		default:
			notes.Ignored = append(notes.Ignored, key)
		}
		return nil
	})
	if err != nil {
		return IndexPart{}, Notes{}, fmt.Errorf("%w: %w", ErrCorrupt, err)
	}
	ip, err := parseFields(raw, &notes)
	if err != nil {
		return IndexPart{}, Notes{}, err
	}
	return ip, notes, nil
}

func parseFields(raw map[string]json.RawMessage, notes *Notes) (IndexPart, error) {
	corrupt := func(field string, err error) error {
		return fmt.Errorf("%w: %s: %w", ErrCorrupt, field, err)
	}
	var ip IndexPart
	v, ok := raw[fieldVersion]
	if !ok || isNull(v) {
		return IndexPart{}, fmt.Errorf("%w: no %q field", ErrCorrupt, fieldVersion)
	}
	version, err := decodeUint(v, 64)
	if err != nil {
		return IndexPart{}, corrupt(fieldVersion, err)
	}
	if version < MinVersion || version > MaxVersion {
		return IndexPart{}, fmt.Errorf("%w: version %d (Strata reads %d to %d)", ErrUnsupportedVersion, version, MinVersion, MaxVersion)
	}
	ip.Version = int(version)

	lm, ok := raw[fieldLayerMetadata]
	if !ok || isNull(lm) {
		return IndexPart{}, fmt.Errorf("%w: no %q field", ErrCorrupt, fieldLayerMetadata)
	}
	if ip.Layers, notes.SkippedBackups, err = parseLayers(lm); err != nil {
		return IndexPart{}, corrupt(fieldLayerMetadata, err)
	}

	dclRaw, ok := raw[fieldDiskConsistentLSN]
	if !ok || isNull(dclRaw) {
		return IndexPart{}, fmt.Errorf("%w: no %q field", ErrCorrupt, fieldDiskConsistentLSN)
	}
	dcl, err := decodeLSN(dclRaw)
	if err != nil {
		return IndexPart{}, corrupt(fieldDiskConsistentLSN, err)
	}

	mb, hasBytes := raw[fieldMetadataBytes]
	ma, hasAlias := raw[fieldMetadataAlias]
	switch {
	case hasBytes && hasAlias:
		return IndexPart{}, fmt.Errorf("%w: both %q and its alias %q", ErrCorrupt, fieldMetadataBytes, fieldMetadataAlias)
	case hasBytes:
		notes.MetadataKey = fieldMetadataBytes
	case hasAlias:
		notes.MetadataKey, mb = fieldMetadataAlias, ma
	default:
		return IndexPart{}, fmt.Errorf("%w: no %q (or %q) field", ErrCorrupt, fieldMetadataBytes, fieldMetadataAlias)
	}
	switch firstByte(mb) {
	case '[':
		notes.MetadataForm = MetadataLegacyBinary
		var b []byte
		if b, err = decodeByteArray(mb); err != nil {
			return IndexPart{}, corrupt(notes.MetadataKey, err)
		}
		if ip.Metadata, err = parseLegacyMetadata(notes.MetadataKey, b); err != nil {
			return IndexPart{}, err // wraps ErrCorrupt and names the field
		}
	case '{':
		notes.MetadataForm = MetadataObject
		if ip.Metadata, err = parseMetadataObject(mb); err != nil {
			return IndexPart{}, corrupt(notes.MetadataKey, err)
		}
	default:
		return IndexPart{}, corrupt(notes.MetadataKey, errors.New("want the 512-byte array or the metadata object"))
	}
	if dcl != ip.Metadata.DiskConsistentLSN {
		return IndexPart{}, fmt.Errorf("%w: disk_consistent_lsn %s differs from the metadata's %s", ErrCorrupt, dcl, ip.Metadata.DiskConsistentLSN)
	}

	if ip.DeletedAt, err = decodeOptTimestamp(raw[fieldDeletedAt]); err != nil {
		return IndexPart{}, corrupt(fieldDeletedAt, err)
	}
	if ip.ArchivedAt, err = decodeOptTimestamp(raw[fieldArchivedAt]); err != nil {
		return IndexPart{}, corrupt(fieldArchivedAt, err)
	}
	if ip.Lineage, err = parseLineage(raw[fieldLineage]); err != nil {
		return IndexPart{}, corrupt(fieldLineage, err)
	}
	if ip.GCBlocking, err = parseGCBlocking(raw[fieldGCBlocking]); err != nil {
		return IndexPart{}, corrupt(fieldGCBlocking, err)
	}
	return ip, nil
}

// parseLayers reads layer_metadata: bare layer name → {file_size,
// generation, shard}. A key that is no layer name but ends in ".old" is a
// backup file some old writers listed; it is skipped and reported.
func parseLayers(data json.RawMessage) (layers []Layer, skipped []string, err error) {
	err = decodeObject(data, false, func(key string, val json.RawMessage) error {
		name, err := layer.ParseName(key)
		if err != nil {
			if strings.HasSuffix(key, ".old") {
				skipped = append(skipped, key)
				return nil
			}
			return err
		}
		if !name.Generation.IsNone() {
			return fmt.Errorf("key %q carries a generation suffix; the index names bare layer names and keeps the generation in the entry", key)
		}
		l := Layer{LayerID: LayerID{Name: name}}
		if err := parseLayerEntry(val, &l); err != nil {
			return fmt.Errorf("%s: %w", key, err)
		}
		layers = append(layers, l)
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	// The keys are unique (decodeObject refuses a repeated key) and a name
	// has one spelling (ParseName accepts only the canonical one), so
	// sorting yields the type's order.
	slices.SortFunc(layers, compareLayers)
	return layers, skipped, nil
}

func parseLayerEntry(data json.RawMessage, l *Layer) error {
	var haveSize bool
	err := decodeObject(data, false, func(key string, val json.RawMessage) error {
		switch key {
		case "file_size":
			v, err := decodeUint(val, 64)
			if err != nil {
				return fmt.Errorf("file_size: %w", err)
			}
			l.FileSize, haveSize = v, true
		case "generation":
			if isNull(val) {
				return nil
			}
			v, err := decodeUint(val, 32)
			if err != nil {
				return fmt.Errorf("generation: %w", err)
			}
			if v == 0 {
				// Strata's layer.Generation spends 0 on "none"; the
				// controller never issues 0, so no real index holds it.
				return errors.New("generation 0 is never issued (Strata reads 0 as none)")
			}
			l.Name.Generation = layer.Generation(v)
		case "shard":
			if isNull(val) {
				return nil
			}
			s, err := decodeString(val)
			if err != nil {
				return fmt.Errorf("shard: %w", err)
			}
			if l.Shard, err = shard.ParseShardIndex(s); err != nil {
				return fmt.Errorf("shard: %w", err)
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	if !haveSize {
		return errors.New("no file_size")
	}
	return nil
}

// parseMetadataObject reads the metadata object. The four LSNs and
// pg_version are required; prev_record_lsn and ancestor_timeline may be
// null or absent.
func parseMetadataObject(data json.RawMessage) (Metadata, error) {
	var m Metadata
	seen := map[string]bool{}
	err := decodeObject(data, false, func(key string, val json.RawMessage) error {
		var err error
		switch key {
		case "disk_consistent_lsn":
			m.DiskConsistentLSN, err = decodeLSN(val)
		case "ancestor_lsn":
			m.AncestorLSN, err = decodeLSN(val)
		case "latest_gc_cutoff_lsn":
			m.LatestGCCutoffLSN, err = decodeLSN(val)
		case "initdb_lsn":
			m.InitdbLSN, err = decodeLSN(val)
		case "pg_version":
			var v uint64
			v, err = decodeUint(val, 32)
			m.PGVersion = uint32(v)
		case "prev_record_lsn":
			if !isNull(val) {
				var l lsn.LSN
				l, err = decodeLSN(val)
				m.PrevRecordLSN = &l
			}
		case "ancestor_timeline":
			if !isNull(val) {
				var id shard.TimelineID
				id, err = decodeTimelineID(val)
				m.AncestorTimeline = &id
			}
		default:
			return nil
		}
		if err != nil {
			return fmt.Errorf("%s: %w", key, err)
		}
		seen[key] = true
		return nil
	})
	if err != nil {
		return Metadata{}, err
	}
	for _, f := range []string{"disk_consistent_lsn", "ancestor_lsn", "latest_gc_cutoff_lsn", "initdb_lsn", "pg_version"} {
		if !seen[f] {
			return Metadata{}, fmt.Errorf("no %q field", f)
		}
	}
	return m, nil
}

func parseLineage(data json.RawMessage) (Lineage, error) {
	var l Lineage
	if data == nil || isNull(data) {
		return l, nil
	}
	err := decodeObject(data, false, func(key string, val json.RawMessage) error {
		switch key {
		case "reparenting_history_truncated":
			if isNull(val) {
				return nil
			}
			if err := json.Unmarshal(val, &l.ReparentingHistoryTruncated); err != nil {
				return fmt.Errorf("%s: want true or false", key)
			}
		case "reparenting_history":
			if isNull(val) {
				return nil
			}
			var ids []json.RawMessage
			if firstByte(val) != '[' || json.Unmarshal(val, &ids) != nil {
				return fmt.Errorf("%s: want an array of timeline ids", key)
			}
			for _, r := range ids {
				id, err := decodeTimelineID(r)
				if err != nil {
					return fmt.Errorf("%s: %w", key, err)
				}
				l.ReparentingHistory = append(l.ReparentingHistory, id)
			}
		case "original_ancestor":
			if isNull(val) {
				return nil
			}
			var parts []json.RawMessage
			if firstByte(val) != '[' || json.Unmarshal(val, &parts) != nil || len(parts) != 3 {
				return fmt.Errorf("%s: want [timeline id, lsn, timestamp]", key)
			}
			var oa OriginalAncestor
			var err error
			if oa.Timeline, err = decodeTimelineID(parts[0]); err != nil {
				return fmt.Errorf("%s: %w", key, err)
			}
			if oa.LSN, err = decodeLSN(parts[1]); err != nil {
				return fmt.Errorf("%s: %w", key, err)
			}
			ts, err := decodeOptTimestamp(parts[2])
			if err != nil || ts == nil {
				return fmt.Errorf("%s: detached at: %v", key, cmpErr(err, "want a timestamp"))
			}
			oa.DetachedAt = *ts
			l.OriginalAncestor = &oa
		}
		return nil
	})
	if err != nil {
		return Lineage{}, err
	}
	return l, nil
}

func parseGCBlocking(data json.RawMessage) (*GCBlocking, error) {
	if data == nil || isNull(data) {
		return nil, nil
	}
	var gb GCBlocking
	var haveStart, haveReasons bool
	err := decodeObject(data, false, func(key string, val json.RawMessage) error {
		switch key {
		case "started_at":
			ts, err := decodeOptTimestamp(val)
			if err != nil || ts == nil {
				return fmt.Errorf("%s: %v", key, cmpErr(err, "want a timestamp"))
			}
			gb.StartedAt, haveStart = *ts, true
		case "reasons":
			var rs []json.RawMessage
			if firstByte(val) != '[' || json.Unmarshal(val, &rs) != nil {
				return fmt.Errorf("%s: want an array of strings", key)
			}
			for _, r := range rs {
				s, err := decodeString(r)
				if err != nil {
					return fmt.Errorf("%s: %w", key, err)
				}
				gb.Reasons = append(gb.Reasons, s)
			}
			haveReasons = true
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if !haveStart || !haveReasons {
		return nil, errors.New("want started_at and reasons")
	}
	return &gb, nil
}

func cmpErr(err error, otherwise string) string {
	if err != nil {
		return err.Error()
	}
	return otherwise
}

// decodeObject walks one JSON object, calling f for each member in file
// order with the member's raw value. It refuses anything but an object, a
// key given twice (Go's decoder would silently keep the last), and, when
// top is set, any text after the object.
func decodeObject(data []byte, top bool, f func(key string, val json.RawMessage) error) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	tok, err := dec.Token()
	if err != nil {
		return fmt.Errorf("bad JSON: %w", err)
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return fmt.Errorf("want a JSON object, got %v", describeToken(tok))
	}
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return fmt.Errorf("bad JSON: %w", err)
		}
		key, ok := tok.(string)
		if !ok {
			return fmt.Errorf("bad JSON: want a member name, got %v", describeToken(tok))
		}
		if seen[key] {
			return fmt.Errorf("field %q given twice", key)
		}
		seen[key] = true
		var val json.RawMessage
		if err := dec.Decode(&val); err != nil {
			return fmt.Errorf("bad JSON in %q: %w", key, err)
		}
		if err := f(key, val); err != nil {
			return err
		}
	}
	if _, err := dec.Token(); err != nil { // the closing '}'
		return fmt.Errorf("bad JSON: %w", err)
	}
	if top {
		if tok, err := dec.Token(); err != io.EOF {
			if err != nil {
				return fmt.Errorf("bad JSON after the object: %w", err)
			}
			return fmt.Errorf("bad JSON: %v after the object", describeToken(tok))
		}
	}
	return nil
}

func describeToken(tok json.Token) string {
	switch t := tok.(type) {
	case json.Delim:
		return fmt.Sprintf("%q", string(t))
	case string:
		return fmt.Sprintf("string %q", t)
	case json.Number:
		return "number " + string(t)
	case nil:
		return "null"
	}
	return fmt.Sprintf("%v", tok)
}

func firstByte(raw json.RawMessage) byte {
	raw = bytes.TrimLeft(raw, " \t\r\n")
	if len(raw) == 0 {
		return 0
	}
	return raw[0]
}

func isNull(raw json.RawMessage) bool { return string(bytes.TrimSpace(raw)) == "null" }

// decodeUint reads a JSON number of digits only (no sign, fraction or
// exponent) into bits bits, exactly.
func decodeUint(raw json.RawMessage, bits int) (uint64, error) {
	s := string(bytes.TrimSpace(raw))
	if s == "" {
		return 0, errors.New("want an unsigned integer")
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, fmt.Errorf("want an unsigned integer, got %s", truncate(s))
		}
	}
	v, err := strconv.ParseUint(s, 10, bits)
	if err != nil {
		return 0, fmt.Errorf("%s does not fit %d bits", truncate(s), bits)
	}
	return v, nil
}

func decodeString(raw json.RawMessage) (string, error) {
	if firstByte(raw) != '"' {
		return "", fmt.Errorf("want a string, got %s", truncate(string(raw)))
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", err
	}
	return s, nil
}

func decodeLSN(raw json.RawMessage) (lsn.LSN, error) {
	s, err := decodeString(raw)
	if err != nil {
		return 0, err
	}
	return lsn.Parse(s)
}

func decodeTimelineID(raw json.RawMessage) (shard.TimelineID, error) {
	s, err := decodeString(raw)
	if err != nil {
		return shard.TimelineID{}, err
	}
	return shard.ParseTimelineID(s)
}

// decodeOptTimestamp reads a zone-less timestamp; absent or null is nil.
func decodeOptTimestamp(raw json.RawMessage) (*time.Time, error) {
	if raw == nil || isNull(raw) {
		return nil, nil
	}
	s, err := decodeString(raw)
	if err != nil {
		return nil, err
	}
	t, err := parseTimestamp(s)
	if err != nil {
		return nil, err
	}
	return &t, nil
}

// decodeByteArray reads a JSON array of integers 0..255.
func decodeByteArray(raw json.RawMessage) ([]byte, error) {
	var nums []json.RawMessage
	if err := json.Unmarshal(raw, &nums); err != nil {
		return nil, fmt.Errorf("want an array of bytes: %w", err)
	}
	out := make([]byte, len(nums))
	for i, n := range nums {
		v, err := decodeUint(n, 8)
		if err != nil {
			return nil, fmt.Errorf("byte %d: %w", i, err)
		}
		out[i] = byte(v)
	}
	return out, nil
}

func truncate(s string) string {
	const max = 40
	if len(s) > max {
		return strconv.Quote(s[:max]) + "…"
	}
	return strconv.Quote(s)
}
