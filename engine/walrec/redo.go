package walrec

import (
	"fmt"
	"slices"

	"github.com/stratadb/strata/engine/keys"
)

// KeyValue is one key's new value produced by a record.
type KeyValue struct {
	Key   keys.Key
	Value Value
}

// Decompose lists the (key, value) pairs rec changes, in key order:
//
//   - FullPageImage → (RelBlockKey, Image(page))
//   - PageWrite → (RelBlockKey, Delta(rec))
//   - RelSizeChange → (RelSizeKey, SizeImage(n))
//   - RelDrop → (RelSizeKey, Tombstone); the blocks are left in place and
//     are unreachable through the size key, as in Neon, where dropped
//     blocks are cleaned up by compaction and GC rather than by ingest.
//   - LogicalMessage → nothing: it is opaque payload for ingest benchmarks
//     and the WAL stream itself, and maps to no page.
//
// Decompose trusts rec to be valid (Validate); the returned slices share
// memory with rec.
func Decompose(rec Record) []KeyValue {
	switch r := rec.(type) {
	case FullPageImage:
		return []KeyValue{{keys.RelBlockKey(r.Rel, r.Blk), Image(r.Page)}}
	case PageWrite:
		return []KeyValue{{keys.RelBlockKey(r.Rel, r.Blk), Delta(r)}}
	case RelSizeChange:
		return []KeyValue{{keys.RelSizeKey(r.Rel), SizeImage(r.NBlocks)}}
	case RelDrop:
		return []KeyValue{{keys.RelSizeKey(r.Rel), Tombstone()}}
	}
	return nil
}

// targetKey is the key a delta record applies to.
func targetKey(rec Record) (keys.Key, bool) {
	switch r := rec.(type) {
	case FullPageImage:
		return keys.RelBlockKey(r.Rel, r.Blk), true
	case PageWrite:
		return keys.RelBlockKey(r.Rel, r.Blk), true
	case RelSizeChange:
		return keys.RelSizeKey(r.Rel), true
	case RelDrop:
		return keys.RelSizeKey(r.Rel), true
	}
	return keys.Key{}, false
}

// Redo rebuilds key's value from base (the newest image older than every
// delta; nil if there is none) and deltas (oldest first). Each Image value
// replaces the current value; each Delta applies its record:
//
//   - PageWrite patches a copy of the current page. With no current page it
//     starts from an all-zero page, which is what Postgres sees when it
//     extends a relation with a new block. Applying it to a tombstone or to
//     an image that is not PageSize bytes is ErrMismatch.
//   - FullPageImage, RelSizeChange and RelDrop as deltas set the value as
//     Decompose's images would.
//   - A delta whose record targets another key is ErrMismatch; a
//     LogicalMessage never applies (ErrMismatch).
//
// With no base and no values at all there is nothing to return: ErrNoBase.
// Redo neither modifies nor returns its arguments' memory.
func Redo(key keys.Key, base []byte, deltas []Value) ([]byte, error) {
	out, err := AppendRedo(nil, key, base, deltas)
	if err == nil && out == nil {
		out = []byte{} // a tombstone: empty, but a value
	}
	return out, err
}

// AppendRedo is Redo appending the value to dst and returning the extended
// slice (dst unchanged on error). A page patched by PageWrite is built in
// dst's tail, so a caller reusing dst rebuilds a page from deltas without
// allocating, and a copied page is copied once, without first clearing it.
func AppendRedo(dst []byte, key keys.Key, base []byte, deltas []Value) ([]byte, error) {
	if base == nil && len(deltas) == 0 {
		return dst, fmt.Errorf("%w: key %v has no value", ErrNoBase, key)
	}
	n := len(dst)
	cur := base
	inDst := false // whether cur is dst[n:], ours to patch in place
	for i, v := range deltas {
		switch v.Kind {
		case ValueImage:
			cur, inDst = v.Image, false
		case ValueDelta:
			target, ok := targetKey(v.Rec)
			if !ok || target != key {
				return dst[:n], fmt.Errorf("%w: delta %d (%v) for key %v", ErrMismatch, i, typeOf(v.Rec), key)
			}
			switch r := v.Rec.(type) {
			case FullPageImage:
				cur, inDst = r.Page, false
			case RelSizeChange:
				cur, inDst = SizeImage(r.NBlocks).Image, false
			case RelDrop:
				cur, inDst = []byte{}, false
			case PageWrite:
				switch {
				case cur == nil:
					// A new block reads as zeroes: grow dst by a
					// cleared page.
					dst = slices.Grow(dst[:n], PageSize)[:n+PageSize]
					clear(dst[n:])
				case len(cur) != PageSize:
					return dst[:n], fmt.Errorf("%w: page write %d on a %d-byte value of key %v", ErrMismatch, i, len(cur), key)
				case !inDst:
					// cur is never dst's own tail here (values do not
					// alias dst), so this copies without clearing first.
					dst = append(dst[:n], cur...)
				}
				cur, inDst = dst[n:], true
				if int(r.Offset)+len(r.Data) > PageSize {
					return dst[:n], fmt.Errorf("%w: page write %d past the page end", ErrInvalid, i)
				}
				copy(cur[r.Offset:], r.Data)
			}
		default:
			return dst[:n], fmt.Errorf("%w: value %d has kind %d", ErrInvalid, i, uint8(v.Kind))
		}
	}
	if inDst {
		return dst, nil
	}
	return append(dst[:n], cur...), nil
}

func typeOf(rec Record) string {
	if rec == nil {
		return "nil record"
	}
	return rec.Type().String()
}
