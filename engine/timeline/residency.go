package timeline

import (
	"context"
	"errors"
	"fmt"

	"github.com/stratadb/strata/disk"
	"github.com/stratadb/strata/engine/layer"
)

// Resident and remote layers (see the package doc, "Layer residency").

// Errors of layer residency.
var (
	// ErrLayerDownload reports a read (or a Download) that needed a remote
	// layer whose download failed: the source's error (object storage
	// unreachable through its retries, the object gone) or a downloaded
	// file that fails its checks (then it also wraps ErrCorrupt or
	// layer.ErrCorrupt). Nothing partial is left visible.
	ErrLayerDownload = errors.New("timeline: layer download failed")
	// ErrLayerBusy reports an eviction of a layer a read holds now (or is
	// opening): it stays resident.
	ErrLayerBusy = errors.New("timeline: layer in use")
	// ErrNotRemote reports an eviction of a layer the source does not
	// hold durably (not yet uploaded): evicting it would lose it.
	ErrNotRemote = errors.New("timeline: layer not durable in the layer source")
	// ErrNoLayer reports a layer name the timeline's current version does
	// not hold.
	ErrNoLayer = errors.New("timeline: no such layer")
)

// downloadSuffix marks a layer file being downloaded: written, synced,
// checked and only then renamed to the layer's name. Open removes any a
// crash left (the metadata never lists one), so a partial download is
// never read.
const downloadSuffix = ".___download"

// LayerSource is where a tenant's layer files can be fetched from when
// they are not on the local disk (Options.Source): the pageserver's
// object storage. Its methods are called from reads and from the tasks of
// Download and Evict, concurrently.
type LayerSource interface {
	// Has reports whether layer name of timeline id is durably in the
	// source, so its local file may be absent (at Open) or removed
	// (Evict) and fetched again; size is its file size.
	Has(id ID, name layer.Name) (size int64, ok bool)
	// Fetch writes the layer's file to path and syncs it. The engine
	// checks the file (the layer format's checksums, the name and size)
	// before it renames it into place, and removes it if Fetch fails.
	// ctx is the caller's of Download, context.Background() for a read.
	Fetch(ctx context.Context, id ID, name layer.Name, path string) error
}

// LayerInfo describes one layer of a timeline's current version.
type LayerInfo struct {
	Name layer.Name
	// Resident: the file is on the local disk. Size is its size (for a
	// remote layer, the source's).
	Resident bool
	Size     int64
	// LastUse orders the layers of every tenant sharing an open-file
	// cache by their last read (larger is more recent; 0 never read).
	LastUse uint64
}

// Layers describes the layers of the timeline's current version, in
// search order (newest LSNs first).
func (t *Timeline) Layers() ([]LayerInfo, error) {
	v, _, err := t.acquire()
	if err != nil {
		return nil, err
	}
	defer v.release()
	fs := v.fileLayers()
	out := make([]LayerInfo, len(fs))
	for i, f := range fs {
		out[i] = LayerInfo{Name: f.name, Resident: f.resident.Load(), Size: f.size.Load()}
		if f.h != nil {
			out[i].LastUse = f.h.LastUse()
		}
	}
	return out, nil
}

// ResidentBytes is the size of the tenant's layer files on the local disk
// (those its timelines' versions hold).
func (tn *Tenant) ResidentBytes() int64 { return tn.resident.Load() }

// find returns the layer of v named name, or nil.
func (v *version) find(name layer.Name) *fileLayer {
	for _, f := range v.fileLayers() {
		if f.name == name {
			return f
		}
	}
	return nil
}

// Download makes layer name of the current version resident, downloading
// it from the source unless it is already local (or a download under way
// finishes first: concurrent callers and reads share one download). It
// reports the bytes it downloaded (0 if it did not). ctx ends the wait and
// is handed to the source.
func (t *Timeline) Download(ctx context.Context, name layer.Name) (int64, error) {
	v, _, err := t.acquire()
	if err != nil {
		return 0, err
	}
	defer v.release()
	f := v.find(name)
	if f == nil {
		return 0, fmt.Errorf("%w: %s in timeline %s", ErrNoLayer, name, t.id)
	}
	return f.download(ctx)
}

// download makes f resident (see Download). A version holding f is
// pinned by the caller, so f is not disposed meanwhile.
func (f *fileLayer) download(ctx context.Context) (int64, error) {
	if f.fetchMu == nil || f.resident.Load() {
		return 0, nil
	}
	if err := f.fetchMu.Lock(ctx); err != nil {
		return 0, fmt.Errorf("%w: timeline %s layer %s: %w", ErrLayerDownload, f.tid, f.name, err)
	}
	defer f.fetchMu.Unlock()
	if f.resident.Load() {
		return 0, nil // another task's download, which this one waited for
	}
	if err := f.fetchLocked(ctx); err != nil {
		return 0, err
	}
	return f.size.Load(), nil
}

// fetchLocked downloads f's file: the source writes and syncs it under a
// temporary name, the file is opened and checked (header and metadata
// checksums, the name, the summary of an earlier open, the source's
// size), and only then renamed into place. f.fetchMu is held.
func (f *fileLayer) fetchLocked(ctx context.Context) error {
	tn := f.tn
	fail := func(err error) error {
		if rerr := tn.fs.Remove(f.path + downloadSuffix); rerr != nil && !errors.Is(rerr, disk.ErrNotExist) {
			tn.log.Warn("removing a failed download failed; the next open removes it", "layer", f.name.String(), "err", rerr)
		}
		return fmt.Errorf("%w: timeline %s layer %s: %w", ErrLayerDownload, f.tid, f.name, err)
	}
	tmp := f.path + downloadSuffix
	if err := tn.source.Fetch(ctx, f.tid, f.name, tmp); err != nil {
		return fail(err)
	}
	r, err := f.open(tn.fs, tmp)
	if err != nil {
		return fail(fmt.Errorf("downloaded file: %w", err))
	}
	sum := summaryOf(r)
	_ = r.Close()
	if want := f.size.Load(); want > 0 && sum.FileSizeBytes != want {
		return fail(fmt.Errorf("%w: downloaded file of %d bytes, the source says %d", ErrCorrupt, sum.FileSizeBytes, want))
	}
	if err := tn.fs.Rename(tmp, f.path); err != nil {
		return fail(err)
	}
	if f.sum == (layer.Summary{}) {
		f.sum = sum // its first open: reopens compare with it
	}
	f.size.Store(sum.FileSizeBytes)
	f.resident.Store(true)
	tn.resident.Add(sum.FileSizeBytes)
	return nil
}

// Evict removes the local file of layer name of the current version, which
// stays in the layer map as remote: its next use downloads it again. Only
// a layer the source holds durably is evicted (else ErrNotRemote), never
// one a read holds, is opening or is downloading (ErrLayerBusy). It
// reports the bytes freed (0 for a layer already remote, or about to be
// deleted because an edit removed it).
func (t *Timeline) Evict(name layer.Name) (int64, error) {
	tn := t.tenant
	if tn.source == nil {
		return 0, fmt.Errorf("%w: timeline %s has no layer source to download %s from again", ErrNotRemote, t.id, name)
	}
	v, _, err := t.acquire()
	if err != nil {
		return 0, err
	}
	defer v.release()
	f := v.find(name)
	if f == nil {
		return 0, fmt.Errorf("%w: %s in timeline %s", ErrNoLayer, name, t.id)
	}
	if _, ok := tn.source.Has(t.id, name); !ok {
		return 0, fmt.Errorf("%w: %s in timeline %s", ErrNotRemote, name, t.id)
	}
	if !f.fetchMu.TryLock() {
		// Being downloaded, opened or evicted by another task.
		return 0, fmt.Errorf("%w: %s in timeline %s", ErrLayerBusy, name, t.id)
	}
	defer f.fetchMu.Unlock()
	if !f.resident.Load() {
		return 0, nil
	}
	t.mu.Lock()
	gone := f.obsolete || f.disposed
	t.mu.Unlock()
	if gone {
		return 0, nil
	}
	// With fetchMu held no open can start after this (the opener waits
	// for it), so the file is unused until it is gone.
	if !f.h.CloseIfIdle() {
		return 0, fmt.Errorf("%w: %s in timeline %s", ErrLayerBusy, name, t.id)
	}
	if err := tn.fs.Remove(f.path); err != nil {
		if _, serr := tn.fs.Stat(f.path); serr == nil || !errors.Is(serr, disk.ErrNotExist) {
			return 0, fmt.Errorf("timeline %s: evict %s: %w", t.id, name, err)
		}
		// The remove took effect although it failed: the file is gone.
	}
	size := f.size.Load()
	f.resident.Store(false)
	tn.resident.Add(-size)
	return size, nil
}
