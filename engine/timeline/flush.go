package timeline

import (
	"fmt"
	"slices"

	"github.com/stratadb/strata/disk"
	"github.com/stratadb/strata/engine/inmem"
	"github.com/stratadb/strata/engine/keys"
	"github.com/stratadb/strata/engine/layer"
	"github.com/stratadb/strata/engine/layermap"
	"github.com/stratadb/strata/engine/lsn"
	"github.com/stratadb/strata/engine/walrec"
)

// allKeys is the key range of an L0 delta: a flushed in-memory layer holds
// any key, so L0 deltas cover the whole key space (as in Neon); that is how
// compaction tells L0 from key-partitioned L1 deltas.
func allKeys() keys.Range { return keys.Range{Start: keys.Min, End: keys.Max} }

func isL0(d layermap.Desc) bool { return !d.Image && d.Keys == allKeys() }

// persist durably replaces the metadata file (temp, sync, rename, dir sync).
// Every layer file it lists must already be durable.
func (t *Timeline) persist(files []string, dcl, cutoff lsn.LSN) error {
	m := metadata{
		DiskConsistentLSN: dcl,
		LatestGCCutoff:    cutoff,
		InitLSN:           t.initLSN,
		Layers:            files,
	}
	if t.ancestor != nil {
		m.AncestorTimeline, m.AncestorLSN = t.ancestor.id.String(), t.ancestorLSN
	}
	if err := m.validate(); err != nil {
		return fmt.Errorf("timeline %s: refusing to write bad metadata: %w", t.id, err)
	}
	b, err := encodeMetadata(m)
	if err != nil {
		return err
	}
	if err := disk.WriteFileAtomic(t.tenant.fs, t.dir+"/"+metadataName, b); err != nil {
		return fmt.Errorf("timeline %s: write metadata: %w", t.id, err)
	}
	return nil
}

// Flush freezes the open layer and writes every frozen layer to an L0 delta
// file. disk_consistent_lsn advances past a layer only once its file and
// then the metadata listing it are durable. Records that changed no page
// (logical messages) after the last layer are covered too: once every
// frozen layer is written, disk_consistent_lsn moves up to the last record
// with a metadata write.
func (t *Timeline) Flush() error {
	t.mu.Lock()
	m, last := t.layers, t.lastRecordLSN
	if open := m.Open(); open.Len() > 0 {
		if err := open.Freeze(last + 1); err != nil {
			t.mu.Unlock()
			return fmt.Errorf("timeline %s: freeze: %w", t.id, err)
		}
		t.layers = m.FreezeOpen(inmem.New[walrec.Value](last+1, valueInfo))
	}
	t.mu.Unlock()
	for len(t.snapshot().Frozen()) > 0 {
		if err := t.flushFrozen(); err != nil {
			return err
		}
	}
	t.mu.Lock()
	if t.diskConsistentLSN >= last {
		t.mu.Unlock()
		return nil
	}
	// Only records that change no page since the last layer (the open
	// layer is empty: writes come from one task, and it was frozen above
	// if not): nothing to write, but the consistent LSN moves up, and the
	// open layer restarts above it.
	if open := t.layers.Open(); open.Len() == 0 && open.Start() <= last {
		t.layers = t.layers.WithOpen(inmem.New[walrec.Value](last+1, valueInfo))
	}
	files, cutoff := t.files, t.gcCutoff
	t.mu.Unlock()
	if err := t.persist(files, last, cutoff); err != nil {
		return err
	}
	t.mu.Lock()
	t.diskConsistentLSN = last
	t.mu.Unlock()
	return nil
}

// flushFrozen writes the oldest frozen layer to an L0 delta file.
func (t *Timeline) flushFrozen() error {
	t.mu.Lock()
	m, files, cutoff := t.layers, t.files, t.gcCutoff
	t.mu.Unlock()
	f := m.Frozen()[0]
	entries := make([]layer.DeltaEntry, 0, f.Len())
	err := f.Iterate(func(e inmem.KeyEntry[walrec.Value]) error {
		entries = append(entries, layer.DeltaEntry{Key: e.Key, LSN: e.LSN, Value: e.Value})
		return nil
	})
	if err != nil {
		return fmt.Errorf("timeline %s: flush: %w", t.id, err)
	}
	lr := lsn.Range{Start: f.Start(), End: f.End()}
	name := layer.DeltaName(allKeys(), lr).WithGeneration(t.tenant.gen)
	if _, err := layer.WriteDelta(t.tenant.fs, t.dir+"/"+name.String(), allKeys(), lr, entries); err != nil {
		return fmt.Errorf("timeline %s: flush %s: %w", t.id, name, err)
	}
	fl, err := openFileLayer(t.tenant.fs, t.dir, name)
	if err != nil {
		return err
	}
	nm, err := m.Replace([]layermap.Layer[walrec.Value]{fl}, nil, 1)
	if err != nil {
		_ = fl.close()
		return fmt.Errorf("timeline %s: flush: %w", t.id, err)
	}
	newFiles := insertSorted(files, name.String())
	dcl := f.End() - 1
	if err := t.persist(newFiles, dcl, cutoff); err != nil {
		_ = fl.close()
		return err
	}
	t.mu.Lock()
	t.layers, t.files, t.diskConsistentLSN = nm, newFiles, dcl
	t.mu.Unlock()
	t.log.Debug("flushed", "layer", name.String(), "entries", len(entries), "disk_consistent_lsn", dcl)
	return nil
}

func insertSorted(ss []string, s string) []string {
	out := slices.Clone(ss)
	i, found := slices.BinarySearch(out, s)
	if found {
		return out
	}
	return slices.Insert(out, i, s)
}
