package timeline

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"slices"

	"github.com/stratadb/strata/engine/layer"
	"github.com/stratadb/strata/engine/lsn"
)

// ErrCorrupt reports a metadata file or layer set that fails its checks. It is
// never ignored: a timeline with corrupt metadata does not open.
var ErrCorrupt = errors.New("timeline: corrupt metadata")

// Metadata file format: magic, version, body length and the body's crc32c
// (all big-endian), then the JSON body. The JSON keeps the file readable by
// an operator; the checksum makes a torn or flipped file an error, not a
// silently different timeline.
const (
	metadataMagic   = "STRATATL"
	metadataVersion = 1
	metadataHeader  = len(metadataMagic) + 4 + 4 + 4
	// maxMetadataBytes bounds the body a reader accepts (a million layers
	// of ~90-byte names).
	maxMetadataBytes = 128 << 20
	metadataName     = "metadata"
)

// castagnoli returns the crc32c table (the standard library caches it).
func castagnoli() *crc32.Table { return crc32.MakeTable(crc32.Castagnoli) }

// metadata is what a timeline persists besides its layer files: everything
// else (the in-memory layers, the layer map) is rebuilt at start-up.
type metadata struct {
	// DiskConsistentLSN: every record at or below it is in the listed layers.
	DiskConsistentLSN lsn.LSN `json:"disk_consistent_lsn"`
	// AncestorTimeline is the parent's id (empty for a root timeline).
	AncestorTimeline string `json:"ancestor_timeline,omitempty"`
	// AncestorLSN is the branch point: the child reads its parent at or
	// below it.
	AncestorLSN lsn.LSN `json:"ancestor_lsn"`
	// LatestGCCutoff: reads below it are refused.
	LatestGCCutoff lsn.LSN `json:"latest_gc_cutoff_lsn"`
	// InitLSN is where the timeline's own WAL starts (its records are above).
	InitLSN lsn.LSN `json:"init_lsn"`
	// Layers are the physical file names of the timeline's layers, sorted.
	Layers []string `json:"layers"`
}

func encodeMetadata(m metadata) ([]byte, error) {
	body, err := json.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("timeline: encode metadata: %w", err)
	}
	b := make([]byte, 0, metadataHeader+len(body))
	b = append(b, metadataMagic...)
	b = binary.BigEndian.AppendUint32(b, metadataVersion)
	b = binary.BigEndian.AppendUint32(b, uint32(len(body)))
	b = binary.BigEndian.AppendUint32(b, crc32.Checksum(body, castagnoli()))
	return append(b, body...), nil
}

func decodeMetadata(b []byte) (metadata, error) {
	var m metadata
	if len(b) < metadataHeader {
		return m, fmt.Errorf("%w: %d bytes, header is %d", ErrCorrupt, len(b), metadataHeader)
	}
	if string(b[:len(metadataMagic)]) != metadataMagic {
		return m, fmt.Errorf("%w: bad magic", ErrCorrupt)
	}
	h := b[len(metadataMagic):]
	if v := binary.BigEndian.Uint32(h); v != metadataVersion {
		return m, fmt.Errorf("%w: version %d, want %d", ErrCorrupt, v, metadataVersion)
	}
	n := binary.BigEndian.Uint32(h[4:])
	if n > maxMetadataBytes || int(n) != len(b)-metadataHeader {
		return m, fmt.Errorf("%w: body length %d, file holds %d", ErrCorrupt, n, len(b)-metadataHeader)
	}
	body := b[metadataHeader:]
	if crc32.Checksum(body, castagnoli()) != binary.BigEndian.Uint32(h[8:]) {
		return m, fmt.Errorf("%w: checksum mismatch", ErrCorrupt)
	}
	d := json.NewDecoder(bytes.NewReader(body))
	d.DisallowUnknownFields()
	if err := d.Decode(&m); err != nil {
		return m, fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	if err := m.validate(); err != nil {
		return m, err
	}
	return m, nil
}

func (m metadata) validate() error {
	if m.DiskConsistentLSN < m.InitLSN {
		return fmt.Errorf("%w: disk_consistent_lsn %s below init_lsn %s", ErrCorrupt, m.DiskConsistentLSN, m.InitLSN)
	}
	if m.LatestGCCutoff < m.InitLSN {
		return fmt.Errorf("%w: latest_gc_cutoff_lsn %s below init_lsn %s", ErrCorrupt, m.LatestGCCutoff, m.InitLSN)
	}
	if m.AncestorTimeline != "" {
		if _, err := ParseID(m.AncestorTimeline); err != nil {
			return fmt.Errorf("%w: ancestor: %v", ErrCorrupt, err)
		}
		if m.AncestorLSN != m.InitLSN {
			return fmt.Errorf("%w: ancestor_lsn %s differs from init_lsn %s", ErrCorrupt, m.AncestorLSN, m.InitLSN)
		}
	}
	if !slices.IsSorted(m.Layers) {
		return fmt.Errorf("%w: layer list not sorted", ErrCorrupt)
	}
	for i, s := range m.Layers {
		if i > 0 && m.Layers[i-1] == s {
			return fmt.Errorf("%w: layer %s listed twice", ErrCorrupt, s)
		}
		n, err := layer.ParseName(s)
		if err != nil {
			return fmt.Errorf("%w: %v", ErrCorrupt, err)
		}
		if n.LSNRange.End-1 > m.DiskConsistentLSN || n.LSNRange.Start <= m.InitLSN {
			return fmt.Errorf("%w: layer %s outside (init_lsn %s, disk_consistent_lsn %s]", ErrCorrupt, s, m.InitLSN, m.DiskConsistentLSN)
		}
	}
	return nil
}
