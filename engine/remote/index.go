package remote

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/stratadb/strata/engine/layer"
	"github.com/stratadb/strata/engine/lsn"
	"github.com/stratadb/strata/engine/shard"
)

// Index versions (docs/remote-storage.md, index_part.json). Parse reads
// versions 1 to MaxVersion; Encode writes CurrentVersion.
const (
	MinVersion     = 1
	MaxVersion     = 15
	CurrentVersion = 15
)

// IndexPart is a timeline's remote index: the layers that make up the
// timeline, each with the generation and shard that wrote it, and the
// timeline's durable state.
type IndexPart struct {
	// Version is the version the index was read with (informational);
	// Encode ignores it and writes CurrentVersion.
	Version int
	// Layers is sorted by bare layer name (layer.Name.LayerName), each name
	// at most once.
	Layers   []Layer
	Metadata Metadata
	// DeletedAt and ArchivedAt (UTC, nil when absent) mark a timeline
	// being deleted or archived.
	DeletedAt  *time.Time
	ArchivedAt *time.Time
	Lineage    Lineage
	// GCBlocking, when set, says GC is held off and why.
	GCBlocking *GCBlocking
}

// Layer is one entry of the index: a layer object and its size.
type Layer struct {
	LayerID
	// FileSize in bytes; it may exceed 2^53 and is kept exact.
	FileSize uint64
}

// String is the object's name and size, for logs and test failures.
func (l Layer) String() string { return fmt.Sprintf("%s (%d bytes)", l.LayerID, l.FileSize) }

// Lineage records the timeline's earlier ancestors.
type Lineage struct {
	// ReparentingHistoryTruncated says ReparentingHistory lost its oldest
	// entries.
	ReparentingHistoryTruncated bool
	// ReparentingHistory lists earlier ancestors, oldest first (nil when
	// empty).
	ReparentingHistory []shard.TimelineID
	// OriginalAncestor is the ancestor the timeline was detached from.
	OriginalAncestor *OriginalAncestor
}

// IsZero reports whether l records nothing.
func (l Lineage) IsZero() bool {
	return !l.ReparentingHistoryTruncated && len(l.ReparentingHistory) == 0 && l.OriginalAncestor == nil
}

// OriginalAncestor is where a detached timeline branched from, and when it
// was detached.
type OriginalAncestor struct {
	Timeline   shard.TimelineID
	LSN        lsn.LSN
	DetachedAt time.Time
}

// GCBlocking says GC of the timeline is held off since StartedAt, for the
// named reasons (Neon's "Manual", "DetachAncestor"; nil when none).
type GCBlocking struct {
	StartedAt time.Time
	Reasons   []string
}

// compareLayers orders layers by bare layer name, the key of the index's
// JSON map.
func compareLayers(a, b Layer) int { return strings.Compare(a.Name.LayerName(), b.Name.LayerName()) }

// Find returns the entry for name (its generation is ignored: the index
// holds each bare layer name once).
func (ip *IndexPart) Find(name layer.Name) (Layer, bool) {
	want := name.LayerName()
	i, ok := slices.BinarySearchFunc(ip.Layers, want, func(l Layer, w string) int { return strings.Compare(l.Name.LayerName(), w) })
	if !ok {
		return Layer{}, false
	}
	return ip.Layers[i], true
}

// SortLayers puts Layers in the order the type requires.
func (ip *IndexPart) SortLayers() { slices.SortFunc(ip.Layers, compareLayers) }

// Validate checks the invariants Encode relies on: every layer name and
// shard valid, layers sorted and unique by bare name, and the index not
// empty (ErrEmptyIndex: no layers and no ancestor).
func (ip *IndexPart) Validate() error {
	for i, l := range ip.Layers {
		if err := l.Name.Validate(); err != nil {
			return fmt.Errorf("%w: layer %d: %w", ErrInvalidIndex, i, err)
		}
		if err := l.Shard.Validate(); err != nil {
			return fmt.Errorf("%w: layer %s: %w", ErrInvalidIndex, l.Name, err)
		}
		if i > 0 && compareLayers(ip.Layers[i-1], l) >= 0 {
			return fmt.Errorf("%w: layers not sorted and unique by name at %s (after %s)", ErrInvalidIndex, l.Name.LayerName(), ip.Layers[i-1].Name.LayerName())
		}
	}
	if len(ip.Layers) == 0 && ip.Metadata.AncestorTimeline == nil {
		return ErrEmptyIndex
	}
	return nil
}

// The JSON shapes Encode writes. Parse reads more (older shapes, aliases),
// field by field, in decode.go.
type (
	wireIndexOut struct {
		Version           int                     `json:"version"`
		DeletedAt         string                  `json:"deleted_at,omitempty"`
		ArchivedAt        string                  `json:"archived_at,omitempty"`
		LayerMetadata     map[string]wireLayerOut `json:"layer_metadata"`
		DiskConsistentLSN lsn.LSN                 `json:"disk_consistent_lsn"`
		Metadata          wireMetadataOut         `json:"metadata_bytes"`
		Lineage           wireLineageOut          `json:"lineage"`
		GCBlocking        *wireGCBlockingOut      `json:"gc_blocking,omitempty"`
	}
	wireLayerOut struct {
		FileSize   uint64  `json:"file_size"`
		Generation *uint32 `json:"generation,omitempty"`
		Shard      string  `json:"shard,omitempty"`
	}
	wireMetadataOut struct {
		DiskConsistentLSN lsn.LSN           `json:"disk_consistent_lsn"`
		PrevRecordLSN     *lsn.LSN          `json:"prev_record_lsn"`
		AncestorTimeline  *shard.TimelineID `json:"ancestor_timeline"`
		AncestorLSN       lsn.LSN           `json:"ancestor_lsn"`
		LatestGCCutoffLSN lsn.LSN           `json:"latest_gc_cutoff_lsn"`
		InitdbLSN         lsn.LSN           `json:"initdb_lsn"`
		PGVersion         uint32            `json:"pg_version"`
	}
	wireLineageOut struct {
		ReparentingHistoryTruncated bool               `json:"reparenting_history_truncated,omitempty"`
		ReparentingHistory          []shard.TimelineID `json:"reparenting_history,omitempty"`
		// OriginalAncestor is the triple [timeline, lsn, detached at].
		OriginalAncestor []any `json:"original_ancestor,omitempty"`
	}
	wireGCBlockingOut struct {
		StartedAt string   `json:"started_at"`
		Reasons   []string `json:"reasons"`
	}
)

// Encode writes ip as index_part.json in the current form: version
// CurrentVersion, the metadata as an object under "metadata_bytes",
// disk_consistent_lsn repeated at the top level, a layer's generation and
// shard only when it has them, timestamps without zone. It refuses what
// Validate refuses, so an index with no layers and no ancestor is never
// written (ErrEmptyIndex).
func Encode(ip *IndexPart) ([]byte, error) {
	if err := ip.Validate(); err != nil {
		return nil, err
	}
	m := ip.Metadata
	out := wireIndexOut{
		Version:           CurrentVersion,
		LayerMetadata:     make(map[string]wireLayerOut, len(ip.Layers)),
		DiskConsistentLSN: m.DiskConsistentLSN,
		Metadata: wireMetadataOut{
			DiskConsistentLSN: m.DiskConsistentLSN,
			PrevRecordLSN:     m.PrevRecordLSN,
			AncestorTimeline:  m.AncestorTimeline,
			AncestorLSN:       m.AncestorLSN,
			LatestGCCutoffLSN: m.LatestGCCutoffLSN,
			InitdbLSN:         m.InitdbLSN,
			PGVersion:         m.PGVersion,
		},
		Lineage: wireLineageOut{
			ReparentingHistoryTruncated: ip.Lineage.ReparentingHistoryTruncated,
			ReparentingHistory:          ip.Lineage.ReparentingHistory,
		},
	}
	if ip.DeletedAt != nil {
		out.DeletedAt = formatTimestamp(*ip.DeletedAt)
	}
	if ip.ArchivedAt != nil {
		out.ArchivedAt = formatTimestamp(*ip.ArchivedAt)
	}
	if oa := ip.Lineage.OriginalAncestor; oa != nil {
		out.Lineage.OriginalAncestor = []any{oa.Timeline, oa.LSN, formatTimestamp(oa.DetachedAt)}
	}
	if gb := ip.GCBlocking; gb != nil {
		out.GCBlocking = &wireGCBlockingOut{StartedAt: formatTimestamp(gb.StartedAt), Reasons: gb.Reasons}
		if out.GCBlocking.Reasons == nil {
			out.GCBlocking.Reasons = []string{}
		}
	}
	for _, l := range ip.Layers {
		w := wireLayerOut{FileSize: l.FileSize}
		if !l.Name.Generation.IsNone() {
			g := uint32(l.Name.Generation)
			w.Generation = &g
		}
		if !l.Shard.IsUnsharded() {
			w.Shard = l.Shard.String()
		}
		out.LayerMetadata[l.Name.LayerName()] = w
	}
	return json.Marshal(out)
}
