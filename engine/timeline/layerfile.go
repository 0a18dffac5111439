package timeline

import (
	"context"
	"fmt"
	"io"
	"sync/atomic"

	"github.com/stratadb/strata/clock"
	"github.com/stratadb/strata/disk"
	"github.com/stratadb/strata/engine/inmem"
	"github.com/stratadb/strata/engine/keys"
	"github.com/stratadb/strata/engine/layer"
	"github.com/stratadb/strata/engine/layercache"
	"github.com/stratadb/strata/engine/layermap"
	"github.com/stratadb/strata/engine/lsn"
	"github.com/stratadb/strata/engine/walrec"
)

// fileLayer adapts a layer file to the layer map's Layer. Its reader lives
// in the tenant's open-file cache (engine/layercache): it may be closed
// while the layer is idle and is reopened, and checked again, on demand.
// Every use of the reader is bracketed by acquire and release, so the cache
// never closes it under a read.
//
// With a layer source (Options.Source) the file may also be absent from
// the local disk: the layer is known (its name places it in the layer
// map) but remote, and the first use downloads it (residency.go).
type fileLayer struct {
	name layer.Name // with generation: the file name
	desc layermap.Desc
	// sum is what the first open found; a reopen must find the same. Set
	// before anyone else knows the layer, or (for a layer first seen
	// remote) by its first download, under fetchMu.
	sum layer.Summary
	h   *layercache.Handle // nil only for layers a test builds by hand

	tn   *Tenant
	tid  ID
	path string
	// fetchMu serializes the downloads and evictions of the file, and
	// every open of it (so an open never finds it half evicted); nil
	// without a layer source: the file is always local.
	fetchMu *clock.Mutex
	// resident: the file is on the local disk (always, without a
	// source). size is its size in bytes when resident, else what the
	// source says it is.
	resident atomic.Bool
	size     atomic.Int64

	// Guarded by the timeline's mu.
	refs     int  // versions holding the file
	obsolete bool // an installed edit removed it: delete it once refs is 0
	disposed bool // closed (and, if obsolete, being deleted)
}

// newFileLayer makes the layer of file name in t's directory, known to
// the tenant's open-file cache; nothing is opened.
func newFileLayer(t *Timeline, name layer.Name) *fileLayer {
	tn := t.tenant
	f := &fileLayer{name: name, tn: tn, tid: t.id, path: t.dir + "/" + name.String()}
	if name.IsDelta() {
		f.desc = layermap.DeltaDesc(name.KeyRange, name.LSNRange.Start, name.LSNRange.End)
	} else {
		f.desc = layermap.ImageDesc(name.KeyRange, name.LSN())
	}
	if tn.source != nil {
		f.fetchMu = clock.NewMutex(tn.clk)
	}
	f.h = tn.cache.Add(f.opener)
	return f
}

// openFileLayer adds a local layer file of t to the tenant's open-file
// cache and opens it once, so a missing or damaged file fails now (Open,
// flush, compaction) rather than at its first read.
func openFileLayer(t *Timeline, name layer.Name) (*fileLayer, error) {
	f := newFileLayer(t, name)
	f.resident.Store(true)
	r, err := f.h.Acquire()
	if err != nil {
		f.resident.Store(false)
		_ = f.h.Remove()
		return nil, err
	}
	// Only this task knows f yet: the first summary is recorded here,
	// before any reopen compares with it.
	f.sum = summaryOf(r)
	f.h.Release()
	f.size.Store(f.sum.FileSizeBytes)
	t.tenant.resident.Add(f.sum.FileSizeBytes)
	return f, nil
}

// remoteFileLayer is a layer of t whose file is not on the local disk but
// in the tenant's layer source, size bytes: its first use downloads it.
func remoteFileLayer(t *Timeline, name layer.Name, size int64) *fileLayer {
	f := newFileLayer(t, name)
	f.size.Store(size)
	return f
}

// opener is the open-file cache's Opener of the layer: with a layer
// source it holds fetchMu, so it never opens a file being evicted, and
// downloads the file first if it is not resident (an eviction between
// acquire's download and this open).
func (f *fileLayer) opener() (io.Closer, error) {
	if f.fetchMu == nil {
		return f.open(f.tn.fs, f.path)
	}
	lock(f.fetchMu)
	defer f.fetchMu.Unlock()
	if !f.resident.Load() {
		if err := f.fetchLocked(context.Background()); err != nil {
			return nil, err
		}
	}
	return f.open(f.tn.fs, f.path)
}

// open opens the file's reader and checks it: the layer package checks the
// header and metadata checksums, and the header must describe the layer
// the name says (and, on a reopen, be the header the first open read).
func (f *fileLayer) open(fsys disk.FS, path string) (io.Closer, error) {
	var r io.Closer
	if f.name.IsDelta() {
		d, err := layer.OpenDelta(fsys, path)
		if err != nil {
			return nil, fmt.Errorf("timeline: open %s: %w", path, err)
		}
		r = d
	} else {
		m, err := layer.OpenImage(fsys, path)
		if err != nil {
			return nil, fmt.Errorf("timeline: open %s: %w", path, err)
		}
		r = m
	}
	sum := summaryOf(r)
	if got, want := sum.Name(), f.name.WithGeneration(layer.GenerationNone); got != want {
		_ = r.Close()
		return nil, fmt.Errorf("%w: file %s describes itself as %s", ErrCorrupt, path, got)
	}
	if f.sum != (layer.Summary{}) && sum != f.sum {
		_ = r.Close()
		return nil, fmt.Errorf("%w: file %s changed since it was first opened (%+v, was %+v)", ErrCorrupt, path, sum, f.sum)
	}
	return r, nil
}

func summaryOf(r io.Closer) layer.Summary {
	if d, ok := r.(*layer.DeltaReader); ok {
		return d.Summary()
	}
	return r.(*layer.ImageReader).Summary()
}

// acquire pins the file's reader (opening it if the cache closed it, and
// downloading it first if it is remote): one of delta and image is set.
// The caller must release.
func (f *fileLayer) acquire() (*layer.DeltaReader, *layer.ImageReader, error) {
	if f.fetchMu != nil && !f.resident.Load() {
		// Downloaded before the cache counts an open file for it (the
		// opener would download too, holding a slot of the open-file
		// limit for the whole download).
		if _, err := f.download(context.Background()); err != nil {
			return nil, nil, err
		}
	}
	r, err := f.h.Acquire()
	if err != nil {
		return nil, nil, fmt.Errorf("timeline: layer %s: %w", f.name, err)
	}
	if d, ok := r.(*layer.DeltaReader); ok {
		return d, nil, nil
	}
	return nil, r.(*layer.ImageReader), nil
}

func (f *fileLayer) release() { f.h.Release() }

func (f *fileLayer) Desc() layermap.Desc { return f.desc }

// Collect appends key's values in [lo, hi) newest first. Values are shared
// with the layer readers' caches (layer.ImageReader.View,
// layer.DeltaReader.Entry) and never modified on the read path: Redo
// copies what it returns. They stay valid after the reader is closed (the
// layer package never reuses a block's memory).
func (f *fileLayer) Collect(key keys.Key, lo, hi lsn.LSN, dst []inmem.Entry[walrec.Value]) ([]inmem.Entry[walrec.Value], bool, error) {
	delta, image, err := f.acquire()
	if err != nil {
		return dst, false, err
	}
	defer f.release()
	if image != nil {
		page, found, err := image.View(key)
		if err != nil || !found {
			// Not found in an image that covers the key: it did not exist.
			return dst, true, err
		}
		return append(dst, inmem.Entry[walrec.Value]{LSN: f.desc.LSNs.Start, WillInit: true, Value: walrec.Image(page)}), true, nil
	}
	first, end := delta.Find(key, lsn.Range{Start: lo, End: hi})
	for i := end - 1; i >= first; i-- {
		e, err := delta.Entry(i)
		if err != nil {
			return dst, false, err
		}
		wi := e.Value.WillInit()
		dst = append(dst, inmem.Entry[walrec.Value]{LSN: e.LSN, WillInit: wi, Value: e.Value})
		if wi {
			return dst, true, nil
		}
	}
	return dst, false, nil
}

// keys lists the keys the file holds, in order.
func (f *fileLayer) keys() ([]keys.Key, error) {
	delta, image, err := f.acquire()
	if err != nil {
		return nil, err
	}
	defer f.release()
	if image != nil {
		return image.Keys(), nil
	}
	return delta.Keys(), nil
}

// seekKey returns the smallest key at or after k that the file holds.
func (f *fileLayer) seekKey(k keys.Key) (keys.Key, bool, error) {
	delta, image, err := f.acquire()
	if err != nil {
		return keys.Key{}, false, err
	}
	defer f.release()
	if image != nil {
		key, ok := image.SeekKey(k)
		return key, ok, nil
	}
	key, ok := delta.SeekKey(k)
	return key, ok, nil
}

// appendAll appends every entry of a delta file to dst, in (key, LSN)
// order, holding its reader for the whole pass.
func (f *fileLayer) appendAll(dst []layer.DeltaEntry) ([]layer.DeltaEntry, error) {
	delta, _, err := f.acquire()
	if err != nil {
		return dst, err
	}
	defer f.release()
	if delta == nil {
		return dst, fmt.Errorf("timeline: layer %s is not a delta layer", f.name)
	}
	for e, err := range delta.All() {
		if err != nil {
			return dst, err
		}
		dst = append(dst, e)
	}
	return dst, nil
}

// close drops the file from the open-file cache, closing its reader (at
// once, or when the read holding it lets go). Call it before deleting the
// file; the layer is never read again.
func (f *fileLayer) close() error {
	if f.h == nil {
		return nil
	}
	if f.resident.Swap(false) {
		// No longer the tenant's: its file is deleted, or stays behind a
		// closed tenant.
		f.tn.resident.Add(-f.size.Load())
	}
	return f.h.Remove()
}

// valueInfo tells the in-memory layer whether a value initialises its page
// and how many bytes it holds.
func valueInfo(v walrec.Value) (bool, int) {
	if v.Kind == walrec.ValueImage {
		return true, len(v.Image)
	}
	switch r := v.Rec.(type) {
	case walrec.PageWrite:
		return false, len(r.Data) + 8
	case walrec.FullPageImage:
		return true, len(r.Page)
	}
	return v.WillInit(), 16
}
