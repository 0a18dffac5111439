package remote

import (
	"context"
	"errors"
	"fmt"

	"github.com/stratadb/strata/disk/objstore"
	"github.com/stratadb/strata/engine/layer"
	"github.com/stratadb/strata/engine/shard"
)

// MaxIndexListPages bounds the listing DownloadIndex falls back to: a
// timeline keeps a handful of index objects (one per generation that
// uploaded, until they are cleaned up), so 100 pages of 1000 keys is far
// beyond any real count and a runaway listing is an error, not a hang.
const MaxIndexListPages = 100

// PickIndex chooses, among listed keys, the index a location attached with
// generation our loads: the one of the highest generation not above our,
// else the legacy index without generation. Keys that are not exactly an
// index key of the timeline (Layout.ParseIndexKey: layers, backup or
// temporary files such as "index_part.json.old", a malformed suffix) are
// ignored. An index of a generation above ours belongs to a newer
// attachment and is never chosen: loading it would let a stale location
// act on the new owner's state. ok is false when nothing qualifies.
func PickIndex(l Layout, id shard.TenantShardID, tl shard.TimelineID, our layer.Generation, listed []string) (key string, gen layer.Generation, ok bool) {
	for _, k := range listed {
		g, isIndex := l.ParseIndexKey(id, tl, k)
		if !isIndex || g > our {
			continue
		}
		if !ok || g > gen {
			key, gen, ok = k, g, true
		}
	}
	return key, gen, ok
}

// IndexFastPath lists the generations whose indexes to try before
// listing, in order: our own (a restart of the same attachment), then the
// one before it (the usual previous owner). For generation 1 the one
// before is the legacy index; for GenerationNone there is only the legacy
// index.
func IndexFastPath(our layer.Generation) []layer.Generation {
	if our.IsNone() {
		return []layer.Generation{layer.GenerationNone}
	}
	return []layer.Generation{our, our - 1}
}

// DownloadIndex loads the index a location attached with generation our
// starts from (docs/remote-storage.md, Choosing the index): the fast path's
// keys, then a listing and PickIndex. Every request goes through r; not
// found ends a probe at once and moves on. It returns the index and the
// generation it was uploaded under; ErrNoIndex (which also wraps
// objstore.ErrNotFound) when there is none. A corrupt index is an error,
// never a reason to fall back to an older one.
func DownloadIndex(ctx context.Context, r *Retrier, store objstore.Store, l Layout, id shard.TenantShardID, tl shard.TimelineID, our layer.Generation) (IndexPart, layer.Generation, error) {
	get := func(g layer.Generation) (IndexPart, error) {
		key := l.IndexKey(id, tl, g)
		var data []byte
		err := r.Do(ctx, "get "+key, NotFoundFinal, func(ctx context.Context) (err error) {
			data, err = store.Get(ctx, key)
			return err
		})
		if err != nil {
			return IndexPart{}, err
		}
		ip, err := Parse(data)
		if err != nil {
			return IndexPart{}, fmt.Errorf("%s: %w", key, err)
		}
		return ip, nil
	}
	for _, g := range IndexFastPath(our) {
		ip, err := get(g)
		if err == nil {
			return ip, g, nil
		}
		if !isNotFound(err) {
			return IndexPart{}, 0, err
		}
	}
	prefix := l.IndexListPrefix(id, tl)
	var keys []string
	opts := objstore.ListOptions{}
	for page := 0; ; page++ {
		if page == MaxIndexListPages {
			return IndexPart{}, 0, fmt.Errorf("remote: listing %s: more than %d pages of index objects", prefix, MaxIndexListPages)
		}
		var p objstore.Page
		err := r.Do(ctx, "list "+prefix, NotFoundFinal, func(ctx context.Context) (err error) {
			p, err = store.List(ctx, prefix, opts)
			return err
		})
		if err != nil {
			return IndexPart{}, 0, err
		}
		for _, o := range p.Objects {
			keys = append(keys, o.Key)
		}
		if p.NextStartAfter == "" {
			break
		}
		opts.StartAfter = p.NextStartAfter
	}
	_, g, ok := PickIndex(l, id, tl, our, keys)
	if !ok {
		return IndexPart{}, 0, fmt.Errorf("%w %s under %s (%d keys listed): %w", ErrNoIndex, our, prefix, len(keys), objstore.ErrNotFound)
	}
	ip, err := get(g)
	if err != nil {
		return IndexPart{}, 0, err
	}
	return ip, g, nil
}

func isNotFound(err error) bool { return errors.Is(err, objstore.ErrNotFound) }
