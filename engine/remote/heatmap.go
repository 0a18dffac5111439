package remote

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/stratadb/strata/engine/layer"
	"github.com/stratadb/strata/engine/shard"
)

// ErrCorruptHeatmap: a heatmap-v1.json that is not a well-formed heatmap.
var ErrCorruptHeatmap = errors.New("remote: corrupt heatmap")

// Heatmap is a tenant shard's heatmap (docs/remote-storage.md, Heatmaps):
// the layers its attached location holds, per timeline, with when each
// was last used. The attached location uploads it (HeatmapKey); a
// secondary location downloads the layers it names to stay warm.
type Heatmap struct {
	// Generation is the uploader's. Not needed for correctness: a hint
	// that two attached locations upload conflicting heatmaps.
	Generation layer.Generation
	// Timelines are sorted by id, each id once.
	Timelines []HeatmapTimeline
	// UploadPeriod is how often the uploader means to upload (0: not
	// said); a secondary may check about as often.
	UploadPeriod time.Duration
}

// HeatmapTimeline is one timeline's layers in a heatmap.
type HeatmapTimeline struct {
	ID shard.TimelineID
	// Layers are sorted by bare layer name, each name once (as in an
	// index).
	Layers []HeatmapLayer
}

// HeatmapLayer is one layer of a heatmap: the object (with the
// generation and shard that wrote it) and its size, as an index names it,
// plus its last access.
type HeatmapLayer struct {
	Layer
	// AccessTime is the last access, whole seconds (the wire holds Unix
	// seconds).
	AccessTime time.Time
	// Cold says the attached location does not expect the layer to be
	// read; a secondary may leave it.
	Cold bool
}

// Bytes is the sum of the layers' sizes.
func (t HeatmapTimeline) Bytes() uint64 {
	var n uint64
	for _, l := range t.Layers {
		n += l.FileSize
	}
	return n
}

type (
	wireHeatmap struct {
		Generation     uint32          `json:"generation"`
		Timelines      []wireHeatmapTL `json:"timelines"`
		UploadPeriodMS *uint64         `json:"upload_period_ms,omitempty"`
	}
	wireHeatmapTL struct {
		TimelineID shard.TimelineID   `json:"timeline_id"`
		Layers     []wireHeatmapLayer `json:"layers"`
	}
	wireHeatmapLayer struct {
		Name       string          `json:"name"`
		Metadata   json.RawMessage `json:"metadata"`
		AccessTime int64           `json:"access_time"`
		Cold       bool            `json:"cold"`
	}
)

// Validate checks what EncodeHeatmap relies on: valid layer names and
// shards, timelines sorted and unique by id, layers sorted and unique by
// bare name, no negative upload period.
func (h *Heatmap) Validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrCorruptHeatmap, fmt.Sprintf(format, args...))
	}
	if h.UploadPeriod < 0 {
		return bad("upload period %v < 0", h.UploadPeriod)
	}
	for i, t := range h.Timelines {
		if i > 0 && strings.Compare(h.Timelines[i-1].ID.String(), t.ID.String()) >= 0 {
			return bad("timelines not sorted and unique at %s", t.ID)
		}
		for j, l := range t.Layers {
			if err := l.Name.Validate(); err != nil {
				return bad("timeline %s layer %d: %v", t.ID, j, err)
			}
			if err := l.Shard.Validate(); err != nil {
				return bad("timeline %s layer %s: %v", t.ID, l.Name, err)
			}
			if j > 0 && compareLayers(t.Layers[j-1].Layer, l.Layer) >= 0 {
				return bad("timeline %s: layers not sorted and unique by name at %s", t.ID, l.Name.LayerName())
			}
		}
	}
	return nil
}

// EncodeHeatmap writes h as heatmap-v1.json: {generation, timelines:
// [{timeline_id, layers: [{name, metadata: {file_size, generation,
// shard}, access_time, cold}]}], upload_period_ms}. A layer's metadata
// is spelled as in an index (generation and shard only when set).
func EncodeHeatmap(h *Heatmap) ([]byte, error) {
	if err := h.Validate(); err != nil {
		return nil, err
	}
	out := wireHeatmap{Generation: uint32(h.Generation), Timelines: make([]wireHeatmapTL, len(h.Timelines))}
	if h.UploadPeriod > 0 {
		ms := uint64(h.UploadPeriod / time.Millisecond)
		out.UploadPeriodMS = &ms
	}
	for i, t := range h.Timelines {
		wt := wireHeatmapTL{TimelineID: t.ID, Layers: make([]wireHeatmapLayer, len(t.Layers))}
		for j, l := range t.Layers {
			m := wireLayerOut{FileSize: l.FileSize}
			if !l.Name.Generation.IsNone() {
				g := uint32(l.Name.Generation)
				m.Generation = &g
			}
			if !l.Shard.IsUnsharded() {
				m.Shard = l.Shard.String()
			}
			mb, err := json.Marshal(m)
			if err != nil {
				return nil, err
			}
			wt.Layers[j] = wireHeatmapLayer{Name: l.Name.LayerName(), Metadata: mb, AccessTime: l.AccessTime.Unix(), Cold: l.Cold}
		}
		out.Timelines[i] = wt
	}
	return json.Marshal(out)
}

// ParseHeatmap reads a heatmap-v1.json. Unknown fields are ignored; a
// layer's metadata is read as an index entry (exact sizes, generation
// absent or null for none, shard "nncc" or absent). Every rejection wraps
// ErrCorruptHeatmap. Timelines and layers come back sorted.
func ParseHeatmap(data []byte) (Heatmap, error) {
	corrupt := func(format string, args ...any) (Heatmap, error) {
		return Heatmap{}, fmt.Errorf("%w: %s", ErrCorruptHeatmap, fmt.Sprintf(format, args...))
	}
	var w struct {
		Generation     *uint32         `json:"generation"`
		Timelines      []wireHeatmapTL `json:"timelines"`
		UploadPeriodMS *uint64         `json:"upload_period_ms"`
	}
	if err := json.Unmarshal(data, &w); err != nil {
		return corrupt("%v", err)
	}
	var h Heatmap
	if w.Generation != nil {
		h.Generation = layer.Generation(*w.Generation)
	}
	if w.UploadPeriodMS != nil {
		if *w.UploadPeriodMS > uint64(time.Duration(1<<63-1)/time.Millisecond) {
			return corrupt("upload_period_ms %d out of range", *w.UploadPeriodMS)
		}
		h.UploadPeriod = time.Duration(*w.UploadPeriodMS) * time.Millisecond
	}
	for _, wt := range w.Timelines {
		t := HeatmapTimeline{ID: wt.TimelineID}
		for _, wl := range wt.Layers {
			name, err := layer.ParseName(wl.Name)
			if err != nil {
				return corrupt("timeline %s: %v", wt.TimelineID, err)
			}
			if !name.Generation.IsNone() {
				return corrupt("timeline %s: layer %q carries a generation suffix; the heatmap keeps it in the metadata", wt.TimelineID, wl.Name)
			}
			if wl.Metadata == nil || isNull(wl.Metadata) {
				return corrupt("timeline %s: layer %s: no metadata", wt.TimelineID, wl.Name)
			}
			hl := HeatmapLayer{Layer: Layer{LayerID: LayerID{Name: name}}, AccessTime: time.Unix(wl.AccessTime, 0).UTC(), Cold: wl.Cold}
			if err := parseLayerEntry(wl.Metadata, &hl.Layer); err != nil {
				return corrupt("timeline %s: layer %s: %v", wt.TimelineID, wl.Name, err)
			}
			t.Layers = append(t.Layers, hl)
		}
		slices.SortFunc(t.Layers, func(a, b HeatmapLayer) int { return compareLayers(a.Layer, b.Layer) })
		h.Timelines = append(h.Timelines, t)
	}
	slices.SortFunc(h.Timelines, func(a, b HeatmapTimeline) int { return strings.Compare(a.ID.String(), b.ID.String()) })
	if err := h.Validate(); err != nil {
		return Heatmap{}, err
	}
	return h, nil
}
