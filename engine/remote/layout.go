package remote

import (
	"fmt"
	"strings"

	"github.com/stratadb/strata/engine/layer"
	"github.com/stratadb/strata/engine/shard"
)

// IndexFileName is the base name of a timeline's index; the object adds
// "-<generation 08x>" unless it is a legacy index without generation.
const IndexFileName = "index_part.json"

// HeatmapFileName is the name of a tenant shard's heatmap object.
const HeatmapFileName = "heatmap-v1.json"

// LayerID names one layer object in remote storage: the layer, with the
// generation that wrote the object in Name.Generation (GenerationNone for a
// legacy object without suffix), and the shard that wrote it. After a shard
// split a child's index names objects its parent wrote, so the writing
// shard is part of the identity and not implied by the index's owner. Two
// remote layers are the same object iff their LayerIDs are equal.
type LayerID struct {
	Name  layer.Name
	Shard shard.ShardIndex
}

// String names the object for logs: "<layer name>-<gen>", plus " shard
// <nncc>" for a sharded writer.
func (id LayerID) String() string {
	if id.Shard.IsUnsharded() {
		return id.Name.String()
	}
	return id.Name.String() + " shard " + id.Shard.String()
}

// Layout builds object keys (docs/remote-storage.md, Layout). Every key
// lives under an optional prefix; the zero Layout has none.
type Layout struct {
	prefix string
}

// NewLayout returns the layout under prefix: "" or '/'-separated segments,
// none empty, without a leading or trailing '/'.
func NewLayout(prefix string) (Layout, error) {
	if prefix != "" {
		for _, seg := range strings.Split(prefix, "/") {
			if seg == "" || seg == "." || seg == ".." {
				return Layout{}, fmt.Errorf("%w %q: want segments separated by single '/', no leading or trailing '/', no '.' or '..'", ErrBadPrefix, prefix)
			}
		}
	}
	return Layout{prefix: prefix}, nil
}

// Prefix is the layout's prefix ("" for none).
func (l Layout) Prefix() string { return l.prefix }

func (l Layout) root() string {
	if l.prefix == "" {
		return "tenants/"
	}
	return l.prefix + "/tenants/"
}

// TenantShardPrefix is "tenants/<tenant shard id>/", under which the
// shard's timelines and heatmap live.
func (l Layout) TenantShardPrefix(id shard.TenantShardID) string {
	return l.root() + id.String() + "/"
}

// TimelinePrefix is "tenants/<tenant shard id>/timelines/<timeline>/": the
// shard's index objects of the timeline, and the layers the shard wrote.
func (l Layout) TimelinePrefix(id shard.TenantShardID, tl shard.TimelineID) string {
	return l.TenantShardPrefix(id) + "timelines/" + tl.String() + "/"
}

// IndexKey is the key of the index the shard uploads under generation gen:
// "<timeline prefix>index_part.json-<gen 08x>", or without suffix for
// GenerationNone (a legacy index).
func (l Layout) IndexKey(id shard.TenantShardID, tl shard.TimelineID, gen layer.Generation) string {
	return l.TimelinePrefix(id, tl) + IndexFileName + genSuffix(gen)
}

// IndexListPrefix is the prefix that lists every index object of the
// timeline (and no layer: layer names start with a hex key).
func (l Layout) IndexListPrefix(id shard.TenantShardID, tl shard.TimelineID) string {
	return l.TimelinePrefix(id, tl) + IndexFileName
}

// LayerKey is the key of a layer object: under the tenant id with the
// suffix of the shard that wrote it (layer.Shard), not necessarily the
// shard whose index names it, then "<layer name>-<gen 08x>"
// (layer.Name.String).
func (l Layout) LayerKey(tenant shard.TenantID, tl shard.TimelineID, layer LayerID) string {
	return l.TimelinePrefix(shard.TenantShardID{TenantID: tenant, Shard: layer.Shard}, tl) + layer.Name.String()
}

// HeatmapKey is the key of the shard's heatmap.
func (l Layout) HeatmapKey(id shard.TenantShardID) string {
	return l.TenantShardPrefix(id) + HeatmapFileName
}

// ParseIndexKey reports the generation of key if it is exactly an index key
// of the timeline (IndexKey for some generation, in canonical spelling).
// Anything else under the prefix (a temporary or backup file such as
// "index_part.json.old", a "-00000000" or upper-case suffix) is not an
// index and reports false.
func (l Layout) ParseIndexKey(id shard.TenantShardID, tl shard.TimelineID, key string) (layer.Generation, bool) {
	rest, ok := strings.CutPrefix(key, l.IndexListPrefix(id, tl))
	if !ok {
		return 0, false
	}
	if rest == "" {
		return layer.GenerationNone, true
	}
	return parseGenSuffix(rest)
}

func genSuffix(g layer.Generation) string {
	if g.IsNone() {
		return ""
	}
	return "-" + g.String()
}

// parseGenSuffix parses "-<8 lower-case hex digits>", not zero.
func parseGenSuffix(s string) (layer.Generation, bool) {
	if len(s) != 9 || s[0] != '-' {
		return 0, false
	}
	var v uint32
	for i := 1; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= '0' && c <= '9':
			v = v<<4 | uint32(c-'0')
		case c >= 'a' && c <= 'f':
			v = v<<4 | uint32(c-'a'+10)
		default:
			return 0, false
		}
	}
	if v == 0 {
		return 0, false
	}
	return layer.Generation(v), true
}
