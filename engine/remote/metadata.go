package remote

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"

	"github.com/stratadb/strata/engine/lsn"
	"github.com/stratadb/strata/engine/shard"
)

// Metadata is a timeline's durable state as its index records it
// (index_part's metadata_bytes).
type Metadata struct {
	// DiskConsistentLSN: everything below it is in the index's layers.
	DiskConsistentLSN lsn.LSN
	// PrevRecordLSN is the start of the last record before
	// DiskConsistentLSN, when known (nil: unknown).
	PrevRecordLSN *lsn.LSN
	// AncestorTimeline is the timeline this one branched from (nil: none),
	// at AncestorLSN.
	AncestorTimeline *shard.TimelineID
	AncestorLSN      lsn.LSN
	// LatestGCCutoffLSN: reads below it may no longer be served.
	LatestGCCutoffLSN lsn.LSN
	// InitdbLSN is where the timeline's history starts.
	InitdbLSN lsn.LSN
	// PGVersion is the Postgres major version of the timeline's data.
	PGVersion uint32
}

// The legacy binary metadata (docs/remote-storage.md, Legacy binary
// metadata): a block of LegacyMetadataSize bytes, a big-endian header
// (crc32c of the body, size = header + body, format version) and the body,
// zero padded.
const (
	LegacyMetadataSize        = 512
	legacyHeaderSize          = 8
	LegacyMetadataFormat      = 4
	legacyOptionNone     byte = 0
	legacyOptionSome     byte = 1
)

// castagnoli is the crc32c table; the standard library builds it once, so
// no package-level variable is needed.
func castagnoli() *crc32.Table { return crc32.MakeTable(crc32.Castagnoli) }

// MarshalLegacy encodes m in the legacy 512-byte binary form that index
// versions before 7 carry. Strata never writes it into an index; it exists
// so tests can build the indexes older writers left behind.
func (m Metadata) MarshalLegacy() []byte {
	out := make([]byte, LegacyMetadataSize)
	b := out[legacyHeaderSize:legacyHeaderSize]
	b = binary.BigEndian.AppendUint64(b, uint64(m.DiskConsistentLSN))
	if m.PrevRecordLSN != nil {
		b = append(b, legacyOptionSome)
		b = binary.BigEndian.AppendUint64(b, uint64(*m.PrevRecordLSN))
	} else {
		b = append(b, legacyOptionNone)
	}
	if m.AncestorTimeline != nil {
		b = append(b, legacyOptionSome)
		b = append(b, m.AncestorTimeline[:]...)
	} else {
		b = append(b, legacyOptionNone)
	}
	b = binary.BigEndian.AppendUint64(b, uint64(m.AncestorLSN))
	b = binary.BigEndian.AppendUint64(b, uint64(m.LatestGCCutoffLSN))
	b = binary.BigEndian.AppendUint64(b, uint64(m.InitdbLSN))
	b = binary.BigEndian.AppendUint32(b, m.PGVersion)
	// b shares out's array (the body is at most 62 bytes), so the body is
	// already in place; only the header is left.
	size := legacyHeaderSize + len(b)
	binary.BigEndian.PutUint32(out[0:], crc32.Checksum(out[legacyHeaderSize:size], castagnoli()))
	binary.BigEndian.PutUint16(out[4:], uint16(size))
	binary.BigEndian.PutUint16(out[6:], LegacyMetadataFormat)
	return out
}

// parseLegacyMetadata decodes the legacy binary form: the header's size
// bounds the body, whose crc32c must match; an optional field is a tag byte
// (0 none, 1 some) followed by the value only when some; the body must end
// exactly at size. The padding after it is not covered by the checksum and
// not read.
func parseLegacyMetadata(field string, b []byte) (Metadata, error) {
	if len(b) != LegacyMetadataSize {
		return Metadata{}, fmt.Errorf("%w: %s: %w: %d bytes, want %d", ErrCorrupt, field, ErrMetadataLength, len(b), LegacyMetadataSize)
	}
	sum := binary.BigEndian.Uint32(b[0:])
	size := int(binary.BigEndian.Uint16(b[4:]))
	format := binary.BigEndian.Uint16(b[6:])
	if size < legacyHeaderSize || size > LegacyMetadataSize {
		return Metadata{}, fmt.Errorf("%w: %s: %w: header size %d outside [%d, %d]", ErrCorrupt, field, ErrMetadataLength, size, legacyHeaderSize, LegacyMetadataSize)
	}
	if got := crc32.Checksum(b[legacyHeaderSize:size], castagnoli()); got != sum {
		return Metadata{}, fmt.Errorf("%w: %s: %w: header says %08x, body of %d bytes sums to %08x", ErrCorrupt, field, ErrMetadataChecksum, sum, size-legacyHeaderSize, got)
	}
	if format != LegacyMetadataFormat {
		return Metadata{}, fmt.Errorf("%w: %s: legacy metadata format version %d, only %d is supported", ErrCorrupt, field, format, LegacyMetadataFormat)
	}
	d := legacyDecoder{b: b[legacyHeaderSize:size]}
	var m Metadata
	m.DiskConsistentLSN = lsn.LSN(d.u64("disk_consistent_lsn"))
	if d.option("prev_record_lsn") {
		l := lsn.LSN(d.u64("prev_record_lsn"))
		m.PrevRecordLSN = &l
	}
	if d.option("ancestor_timeline") {
		var id shard.TimelineID
		copy(id[:], d.take("ancestor_timeline", len(id)))
		m.AncestorTimeline = &id
	}
	m.AncestorLSN = lsn.LSN(d.u64("ancestor_lsn"))
	m.LatestGCCutoffLSN = lsn.LSN(d.u64("latest_gc_cutoff_lsn"))
	m.InitdbLSN = lsn.LSN(d.u64("initdb_lsn"))
	m.PGVersion = binary.BigEndian.Uint32(d.take("pg_version", 4))
	if d.err == nil && len(d.b) != 0 {
		d.err = fmt.Errorf("%d bytes after pg_version inside the header's size", len(d.b))
	}
	if d.err != nil {
		return Metadata{}, fmt.Errorf("%w: %s: legacy metadata body: %w", ErrCorrupt, field, d.err)
	}
	return m, nil
}

// legacyDecoder reads the big-endian body; after the first error every
// read returns zeros and the error stays.
type legacyDecoder struct {
	b   []byte
	err error
}

func (d *legacyDecoder) take(field string, n int) []byte {
	if d.err != nil {
		return make([]byte, n)
	}
	if len(d.b) < n {
		d.err = fmt.Errorf("truncated at %s: %d bytes left, want %d", field, len(d.b), n)
		return make([]byte, n)
	}
	v := d.b[:n]
	d.b = d.b[n:]
	return v
}

func (d *legacyDecoder) u64(field string) uint64 { return binary.BigEndian.Uint64(d.take(field, 8)) }

func (d *legacyDecoder) option(field string) bool {
	switch tag := d.take(field, 1)[0]; {
	case d.err != nil:
		return false
	case tag == legacyOptionSome:
		return true
	case tag == legacyOptionNone:
		return false
	default:
		d.err = fmt.Errorf("%s: option tag %d, want 0 or 1", field, tag)
		return false
	}
}
