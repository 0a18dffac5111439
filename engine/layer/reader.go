package layer

import (
	"errors"
	"fmt"
	"io"
	"iter"
	"slices"
	"sync"

	"github.com/klauspost/compress/zstd"

	"github.com/stratadb/strata/disk"
	"github.com/stratadb/strata/engine/keys"
	"github.com/stratadb/strata/engine/lsn"
	"github.com/stratadb/strata/engine/walrec"
)

// reader is the part shared by DeltaReader and ImageReader: the open file,
// its checked header and metadata, and a small cache of decompressed
// blocks.
type reader struct {
	f    disk.File
	path string
	h    header
	meta
	dec *zstd.Decoder

	// mu guards the cache and closed; it is never held across file I/O
	// or decompression.
	mu     sync.Mutex
	closed bool
	cache  map[uint32]*cachedBlock
	order  []uint32 // cache insertion order, oldest first (FIFO eviction)
}

// cachedBlock is one decompressed, checked block. raw is never written
// after the block is cached and never reused once evicted (eviction only
// drops the reference), which is what lets the read APIs hand out views of
// it.
type cachedBlock struct {
	raw []byte
	// vals are the decoded delta values of the block's entries
	// (blockFirst[b] onwards), filled lazily under reader.mu; Kind 0 marks
	// one not decoded yet. Nil for image layers.
	vals []walrec.Value
}

func open(fsys disk.FS, path string, want Kind) (*reader, error) {
	f, err := fsys.Open(path)
	if err != nil {
		return nil, fmt.Errorf("layer: open %s: %w", path, err)
	}
	r, err := load(f, path, want)
	if err != nil {
		_ = f.Close()
		return nil, err
	}
	return r, nil
}

func load(f disk.File, path string, want Kind) (*reader, error) {
	size, err := f.Size()
	if err != nil {
		return nil, fmt.Errorf("layer: %s: size: %w", path, err)
	}
	if size < headerSize {
		return nil, fmt.Errorf("layer: %s: %w", path, corruptf("file of %d bytes is shorter than the %d-byte header", size, headerSize))
	}
	hb := make([]byte, headerSize)
	if err := readAt(f, hb, 0); err != nil {
		return nil, fmt.Errorf("layer: %s: %w", path, err)
	}
	h, err := decodeHeader(hb, size)
	if err != nil {
		return nil, fmt.Errorf("layer: %s: %w", path, err)
	}
	if h.Kind != want {
		return nil, fmt.Errorf("layer: %s: %w", path, corruptf("file holds a %v layer, opened as %v", h.Kind, want))
	}
	mb := make([]byte, h.metaLen)
	if err := readAt(f, mb, int64(h.metaOff)); err != nil {
		return nil, fmt.Errorf("layer: %s: %w", path, err)
	}
	m, err := decodeMeta(h, mb)
	if err != nil {
		return nil, fmt.Errorf("layer: %s: %w", path, err)
	}
	// Concurrency 1 keeps DecodeAll synchronous (no decoder goroutines);
	// the memory cap bounds what a corrupt frame can make it allocate.
	dec, err := zstd.NewReader(nil, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxMemory(maxBlockRawSize))
	if err != nil {
		return nil, fmt.Errorf("layer: zstd decoder: %w", err)
	}
	return &reader{f: f, path: path, h: h, meta: m, dec: dec, cache: make(map[uint32]*cachedBlock, maxCachedBlocks)}, nil
}

func readAt(f disk.File, p []byte, off int64) error {
	n, err := f.ReadAt(p, off)
	if n == len(p) {
		return nil
	}
	if err == nil || errors.Is(err, io.EOF) {
		return corruptf("short read of %d bytes at %d: got %d", len(p), off, n)
	}
	return err
}

// Summary describes the file (its header).
func (r *reader) Summary() Summary { return r.h.Summary }

// Close releases the file and the decoder. Further calls fail with
// ErrClosed.
func (r *reader) Close() error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return ErrClosed
	}
	r.closed = true
	r.cache = nil
	r.mu.Unlock()
	r.dec.Close()
	return r.f.Close()
}

// block returns block i decompressed and checked, from the cache if it is
// there. The block is shared: callers must not modify raw.
func (r *reader) block(i uint32) (*cachedBlock, error) {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil, ErrClosed
	}
	if b, ok := r.cache[i]; ok {
		r.mu.Unlock()
		return b, nil
	}
	r.mu.Unlock()

	bi := r.blocks[i]
	comp := make([]byte, bi.compLen)
	if err := readAt(r.f, comp, int64(bi.off)); err != nil {
		return nil, fmt.Errorf("layer: %s: block %d: %w", r.path, i, err)
	}
	if got := crc(comp); got != bi.crc {
		return nil, fmt.Errorf("layer: %s: block %d: %w", r.path, i, corruptf("crc32c %08x, stored %08x", got, bi.crc))
	}
	raw, err := r.dec.DecodeAll(comp, make([]byte, 0, bi.rawLen))
	if err != nil {
		return nil, fmt.Errorf("layer: %s: block %d: %w", r.path, i, corruptf("zstd: %v", err))
	}
	if len(raw) != int(bi.rawLen) {
		return nil, fmt.Errorf("layer: %s: block %d: %w", r.path, i, corruptf("decompressed to %d bytes, want %d", len(raw), bi.rawLen))
	}
	cb := &cachedBlock{raw: raw}
	if r.h.Kind == KindDelta {
		end := len(r.index)
		if int(i)+1 < len(r.blockFirst) {
			end = r.blockFirst[i+1]
		}
		cb.vals = make([]walrec.Value, end-r.blockFirst[i])
	}

	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return nil, ErrClosed
	}
	if b, ok := r.cache[i]; ok {
		return b, nil // another reader cached it meanwhile: share theirs
	}
	if len(r.order) >= maxCachedBlocks {
		delete(r.cache, r.order[0])
		r.order = r.order[1:]
	}
	r.cache[i] = cb
	r.order = append(r.order, i)
	return cb, nil
}

// value returns the stored bytes of index entry e: a read-only view of a
// cached block (see cachedBlock), or an empty slice for an empty value.
func (r *reader) value(e indexEntry) ([]byte, error) {
	if e.len == 0 {
		// Stored in no block (see decodeMeta); the index that says so is
		// under the metadata checksum.
		r.mu.Lock()
		closed := r.closed
		r.mu.Unlock()
		if closed {
			return nil, ErrClosed
		}
		return []byte{}, nil
	}
	b, err := r.block(e.block)
	if err != nil {
		return nil, err
	}
	return b.raw[e.off : e.off+e.len : e.off+e.len], nil
}

// keyStart is the position of the first index entry with key >= k.
func (r *reader) keyStart(k keys.Key) int {
	i, _ := slices.BinarySearchFunc(r.index, k, func(e indexEntry, k keys.Key) int { return e.key.Compare(k) })
	return i
}

// seekKey returns the smallest key at or after k that the index holds.
func (r *reader) seekKey(k keys.Key) (keys.Key, bool) {
	if i := r.keyStart(k); i < len(r.index) {
		return r.index[i].key, true
	}
	return keys.Key{}, false
}

// DeltaReader reads a delta layer file. It is safe for concurrent use.
type DeltaReader struct{ r *reader }

// OpenDelta opens and checks the header and index of a delta layer file.
// A damaged file gives ErrCorrupt (here, or from a later read of a damaged
// block).
func OpenDelta(fsys disk.FS, path string) (*DeltaReader, error) {
	r, err := open(fsys, path, KindDelta)
	if err != nil {
		return nil, err
	}
	return &DeltaReader{r: r}, nil
}

// Summary describes the file.
func (d *DeltaReader) Summary() Summary { return d.r.Summary() }

// Close releases the reader.
func (d *DeltaReader) Close() error { return d.r.Close() }

// Get returns key's entries with LSN in lsns, oldest first (the order Redo
// wants them). No entries is not an error. The values are shared with the
// reader's cache (see Entry): do not modify them.
func (d *DeltaReader) Get(key keys.Key, lsns lsn.Range) ([]DeltaEntry, error) {
	return d.AppendGet(nil, key, lsns)
}

// AppendGet is Get appending to dst, so a caller reusing dst reads without
// allocating once the block is cached.
func (d *DeltaReader) AppendGet(dst []DeltaEntry, key keys.Key, lsns lsn.Range) ([]DeltaEntry, error) {
	lo, hi := d.Find(key, lsns)
	for i := lo; i < hi; i++ {
		de, err := d.Entry(i)
		if err != nil {
			return dst, err
		}
		dst = append(dst, de)
	}
	return dst, nil
}

// Find returns the positions [lo, hi) of key's entries with LSN in lsns,
// oldest first, for Entry. It reads only the index (no block), so a caller
// wanting the newest entries first can walk hi-1 down to lo and stop early.
func (d *DeltaReader) Find(key keys.Key, lsns lsn.Range) (lo, hi int) {
	idx := d.r.index
	lo = d.r.keyStart(key)
	for lo < len(idx) && idx[lo].key == key && idx[lo].lsn < lsns.Start {
		lo++
	}
	hi = lo
	for hi < len(idx) && idx[hi].key == key && idx[hi].lsn < lsns.End {
		hi++
	}
	return lo, hi
}

// Entry returns the entry at position i of the index (0 <= i < Len; see
// Find). Once its block is cached it does not allocate.
//
// Ownership: the value is decoded once and then shared by every caller
// (and kept while its block stays in the reader's cache). It never aliases
// the file's bytes and is never modified by the reader, so it may be kept
// past Close, but it must be treated as read-only: a caller that needs to
// change an image or a record's data copies it first.
func (d *DeltaReader) Entry(i int) (DeltaEntry, error) {
	r := d.r
	e := r.index[i]
	cb, err := r.block(e.block)
	if err != nil {
		return DeltaEntry{}, err
	}
	j := i - r.blockFirst[e.block]
	r.mu.Lock()
	v := cb.vals[j]
	r.mu.Unlock()
	if v.Kind == 0 {
		if v, err = walrec.DecodeValue(cb.raw[e.off : e.off+e.len]); err != nil {
			return DeltaEntry{}, fmt.Errorf("layer: %s: value %v@%v: %w: %w", r.path, e.key, e.lsn, ErrCorrupt, err)
		}
		r.mu.Lock()
		if cb.vals[j].Kind == 0 {
			cb.vals[j] = v
		} else {
			v = cb.vals[j] // decoded concurrently: share the first
		}
		r.mu.Unlock()
	}
	return DeltaEntry{Key: e.key, LSN: e.lsn, Value: v}, nil
}

// Len is the number of entries in the layer.
func (d *DeltaReader) Len() int { return len(d.r.index) }

// Keys lists the distinct keys the layer holds, in order (from the index;
// no data block is read).
func (d *DeltaReader) Keys() []keys.Key { return distinctKeys(d.r.index) }

// SeekKey returns the smallest key at or after k that the layer holds; ok
// is false if there is none. It reads only the index (no block), so a range
// scan can walk a layer's keys without listing them all.
func (d *DeltaReader) SeekKey(k keys.Key) (key keys.Key, ok bool) { return d.r.seekKey(k) }

// All yields every entry in (key, LSN) order; the values are shared, as
// from Entry (read-only). On an error it yields the error once and stops.
func (d *DeltaReader) All() iter.Seq2[DeltaEntry, error] {
	return func(yield func(DeltaEntry, error) bool) {
		for i := range d.r.index {
			de, err := d.Entry(i)
			if err != nil {
				yield(DeltaEntry{}, err)
				return
			}
			if !yield(de, nil) {
				return
			}
		}
	}
}

// ImageReader reads an image layer file. It is safe for concurrent use.
type ImageReader struct{ r *reader }

// OpenImage opens and checks the header and index of an image layer file.
func OpenImage(fsys disk.FS, path string) (*ImageReader, error) {
	r, err := open(fsys, path, KindImage)
	if err != nil {
		return nil, err
	}
	return &ImageReader{r: r}, nil
}

// Summary describes the file.
func (m *ImageReader) Summary() Summary { return m.r.Summary() }

// Close releases the reader.
func (m *ImageReader) Close() error { return m.r.Close() }

// LSN is the layer's LSN.
func (m *ImageReader) LSN() lsn.LSN { return m.r.h.LSNRange.Start }

// Get returns a copy of key's image; found is false if the layer holds
// none. A tombstone is an empty, non-nil page.
func (m *ImageReader) Get(key keys.Key) (page []byte, found bool, err error) {
	v, found, err := m.View(key)
	if err != nil || !found {
		return nil, found, err
	}
	return append(make([]byte, 0, len(v)), v...), true, nil
}

// View is Get without the copy: page is a view into the reader's cached
// block (capacity clipped to the page).
//
// Ownership: page is read-only, shared with the reader's cache and with
// every other caller. The reader never writes to a cached block nor reuses
// its memory after eviction or Close, so page stays valid and unchanged
// for as long as the caller holds it; but a caller must never modify it
// (copy first, as walrec.Redo does with an image it was given).
func (m *ImageReader) View(key keys.Key) (page []byte, found bool, err error) {
	i := m.r.keyStart(key)
	if i >= len(m.r.index) || m.r.index[i].key != key {
		return nil, false, nil
	}
	b, err := m.r.value(m.r.index[i])
	if err != nil {
		return nil, false, err
	}
	return b, true, nil
}

// SeekKey returns the smallest key at or after k that the layer holds; ok
// is false if there is none (index only, like DeltaReader.SeekKey).
func (m *ImageReader) SeekKey(k keys.Key) (key keys.Key, ok bool) { return m.r.seekKey(k) }

// Keys lists the keys the layer holds, in order.
func (m *ImageReader) Keys() []keys.Key { return distinctKeys(m.r.index) }

// All yields every entry in key order; pages are copies. On an error it
// yields the error once and stops.
func (m *ImageReader) All() iter.Seq2[ImageEntry, error] {
	return func(yield func(ImageEntry, error) bool) {
		for _, e := range m.r.index {
			b, err := m.r.value(e)
			if err != nil {
				yield(ImageEntry{}, err)
				return
			}
			if !yield(ImageEntry{Key: e.key, Page: append(make([]byte, 0, len(b)), b...)}, nil) {
				return
			}
		}
	}
}

func distinctKeys(idx []indexEntry) []keys.Key {
	var out []keys.Key
	for i, e := range idx {
		if i == 0 || idx[i-1].key != e.key {
			out = append(out, e.key)
		}
	}
	return out
}
