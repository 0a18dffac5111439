package remote

import (
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/stratadb/strata/engine/invariants"
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
// shard valid, layers sorted and unique by bare name, timestamps within the
// four-digit years the text form holds, GC reasons in UTF-8, and the index
// not empty (ErrEmptyIndex: no layers and no ancestor).
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
	for _, ts := range ip.timestamps() {
		if y := ts.t.UTC().Year(); y < 0 || y > 9999 {
			return fmt.Errorf("%w: %s %v is outside years 0000 to 9999", ErrInvalidIndex, ts.field, ts.t)
		}
	}
	if gb := ip.GCBlocking; gb != nil {
		for _, r := range gb.Reasons {
			if !utf8.ValidString(r) {
				return fmt.Errorf("%w: gc_blocking reason %q is not UTF-8", ErrInvalidIndex, r)
			}
		}
	}
	if len(ip.Layers) == 0 && ip.Metadata.AncestorTimeline == nil {
		return ErrEmptyIndex
	}
	return nil
}

type namedTime struct {
	field string
	t     time.Time
}

// timestamps lists the index's timestamps that are set.
func (ip *IndexPart) timestamps() []namedTime {
	var out []namedTime
	if ip.DeletedAt != nil {
		out = append(out, namedTime{"deleted_at", *ip.DeletedAt})
	}
	if ip.ArchivedAt != nil {
		out = append(out, namedTime{"archived_at", *ip.ArchivedAt})
	}
	if oa := ip.Lineage.OriginalAncestor; oa != nil {
		out = append(out, namedTime{"lineage.original_ancestor", oa.DetachedAt})
	}
	if gb := ip.GCBlocking; gb != nil {
		out = append(out, namedTime{"gc_blocking.started_at", gb.StartedAt})
	}
	return out
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
		Metadata:          wireMetadataOut(m),
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
	data, err := json.Marshal(out)
	if err != nil {
		return nil, err
	}
	if invariants.Enabled {
		// What we upload must read back as what we meant: a writer bug
		// here would surface only when another pageserver attaches.
		again, perr := Parse(data)
		again.Version = ip.Version
		if err := invariants.Check(perr == nil && reflect.DeepEqual(again, normalized(*ip)), "remote: encoded index does not read back: %v\n%s", perr, data); err != nil {
			return nil, err
		}
	}
	return data, nil
}

// normalized is ip as Parse returns it: empty lists are nil and times UTC.
func normalized(ip IndexPart) IndexPart {
	utc := func(t *time.Time) *time.Time {
		if t == nil {
			return nil
		}
		u := t.UTC()
		return &u
	}
	ip.DeletedAt, ip.ArchivedAt = utc(ip.DeletedAt), utc(ip.ArchivedAt)
	if len(ip.Layers) == 0 {
		ip.Layers = nil
	}
	if len(ip.Lineage.ReparentingHistory) == 0 {
		ip.Lineage.ReparentingHistory = nil
	}
	if oa := ip.Lineage.OriginalAncestor; oa != nil {
		c := *oa
		c.DetachedAt = c.DetachedAt.UTC()
		ip.Lineage.OriginalAncestor = &c
	}
	if gb := ip.GCBlocking; gb != nil {
		c := *gb
		c.StartedAt = c.StartedAt.UTC()
		if len(c.Reasons) == 0 {
			c.Reasons = nil
		}
		ip.GCBlocking = &c
	}
	return ip
}
