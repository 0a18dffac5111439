package layer

import (
	"testing"

	"github.com/stratadb/strata/engine/keys"
	"github.com/stratadb/strata/engine/lsn"
)

// BenchmarkImageGetWarm reads pages of a 64-page image layer whose blocks
// are all in the reader's cache (8 blocks of 8 pages).
func BenchmarkImageGetWarm(b *testing.B) {
	fsys := newMemFS()
	if _, err := WriteImage(fsys, "i", fullRange, 0x10, sampleImages(64)); err != nil {
		b.Fatal(err)
	}
	m, err := OpenImage(fsys, "i")
	if err != nil {
		b.Fatal(err)
	}
	defer m.Close()
	for blk := uint32(0); blk < 64; blk++ {
		if _, _, err := m.Get(keys.RelBlockKey(rel, blk)); err != nil {
			b.Fatal(err)
		}
	}
	b.SetBytes(8192)
	b.ReportAllocs()
	blk := uint32(0)
	for b.Loop() {
		if _, found, err := m.Get(keys.RelBlockKey(rel, blk%64)); err != nil || !found {
			b.Fatal(found, err)
		}
		blk++
	}
}

// BenchmarkImageGetCold reads a page from a fresh reader: one block read,
// checksum and zstd decompression.
func BenchmarkImageGetCold(b *testing.B) {
	fsys := newMemFS()
	if _, err := WriteImage(fsys, "i", fullRange, 0x10, sampleImages(64)); err != nil {
		b.Fatal(err)
	}
	m, err := OpenImage(fsys, "i")
	if err != nil {
		b.Fatal(err)
	}
	defer m.Close()
	k := keys.RelBlockKey(rel, 9)
	b.ReportAllocs()
	for b.Loop() {
		m.r.mu.Lock()
		clear(m.r.cache)
		m.r.order = m.r.order[:0]
		m.r.mu.Unlock()
		if _, _, err := m.Get(k); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDeltaGet reads all 5 entries of one key from a warm delta layer.
func BenchmarkDeltaGet(b *testing.B) {
	fsys := newMemFS()
	if _, err := WriteDelta(fsys, "d", fullRange, deltaLSNs, sampleDeltas(20, 5)); err != nil {
		b.Fatal(err)
	}
	d, err := OpenDelta(fsys, "d")
	if err != nil {
		b.Fatal(err)
	}
	defer d.Close()
	all := lsn.Range{Start: 0, End: lsn.Max}
	b.ReportAllocs()
	blk := uint32(0)
	for b.Loop() {
		es, err := d.Get(keys.RelBlockKey(rel, blk%20), all)
		if err != nil || len(es) != 5 {
			b.Fatal(len(es), err)
		}
		blk++
	}
}

// BenchmarkWriteImage writes a 64-page image layer to memory.
func BenchmarkWriteImage(b *testing.B) {
	fsys := newMemFS()
	entries := sampleImages(64)
	b.SetBytes(64 * 8192)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := WriteImage(fsys, "i", fullRange, 0x10, entries); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkImageViewWarm is BenchmarkImageGetWarm without the copy: a view
// into the cached block.
func BenchmarkImageViewWarm(b *testing.B) {
	fsys := newMemFS()
	if _, err := WriteImage(fsys, "i", fullRange, 0x10, sampleImages(64)); err != nil {
		b.Fatal(err)
	}
	m, err := OpenImage(fsys, "i")
	if err != nil {
		b.Fatal(err)
	}
	defer m.Close()
	for blk := uint32(0); blk < 64; blk++ {
		if _, _, err := m.View(keys.RelBlockKey(rel, blk)); err != nil {
			b.Fatal(err)
		}
	}
	b.SetBytes(8192)
	b.ReportAllocs()
	blk := uint32(0)
	for b.Loop() {
		if _, found, err := m.View(keys.RelBlockKey(rel, blk%64)); err != nil || !found {
			b.Fatal(found, err)
		}
		blk++
	}
}

// BenchmarkDeltaAppendGet is BenchmarkDeltaGet appending into a reused
// slice: warm reads share the cached decoded values.
func BenchmarkDeltaAppendGet(b *testing.B) {
	fsys := newMemFS()
	if _, err := WriteDelta(fsys, "d", fullRange, deltaLSNs, sampleDeltas(20, 5)); err != nil {
		b.Fatal(err)
	}
	d, err := OpenDelta(fsys, "d")
	if err != nil {
		b.Fatal(err)
	}
	defer d.Close()
	all := lsn.Range{Start: 0, End: lsn.Max}
	var es []DeltaEntry
	b.ReportAllocs()
	blk := uint32(0)
	for b.Loop() {
		if es, err = d.AppendGet(es[:0], keys.RelBlockKey(rel, blk%20), all); err != nil || len(es) != 5 {
			b.Fatal(len(es), err)
		}
		blk++
	}
}
