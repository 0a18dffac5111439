package timeline

import (
	"fmt"

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
// with a metadata write. Flushes of one timeline run one at a time.
func (t *Timeline) Flush() error {
	lock(t.flushMu)
	defer t.flushMu.Unlock()
	last := t.LastRecordLSN()
	if err := t.apply(&versionEdit{kind: editFreeze}); err != nil {
		return err
	}
	// Records ingested between reading last and the freeze are frozen
	// (and so flushed) too: Flush promises DCL >= last, not == last.
	for {
		v := t.peek()
		if v == nil {
			return fmt.Errorf("%w: timeline %s", ErrClosed, t.id)
		}
		fr := v.layers.Frozen()
		if len(fr) == 0 {
			break
		}
		// Only this flush drops frozen layers, so fr[0] stays the oldest.
		if err := t.flushFrozen(fr[0]); err != nil {
			return err
		}
	}
	if t.DiskConsistentLSN() >= last {
		return nil
	}
	// Only records that change no page since the last layer remain (the
	// open layer held none when it was frozen above): nothing to write,
	// but the consistent LSN moves up, and an empty open layer restarts
	// above it.
	if err := t.apply(&versionEdit{kind: editDCL, dcl: last}); err != nil {
		return err
	}
	return t.apply(&versionEdit{kind: editReopen, reopenAbove: last})
}

// flushFrozen writes frozen layer f (the oldest) to an L0 delta file and
// applies the edit that replaces f by it.
func (t *Timeline) flushFrozen(f *inmem.Layer[walrec.Value]) error {
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
	if t.tenant.bugs.DCLBeforeLayerSync {
		if err := t.writeUnsynced(name, lr, entries); err != nil {
			return fmt.Errorf("timeline %s: flush %s: %w", t.id, name, err)
		}
	} else if _, err := layer.WriteDelta(t.tenant.fs, t.dir+"/"+name.String(), allKeys(), lr, entries); err != nil {
		return fmt.Errorf("timeline %s: flush %s: %w", t.id, name, err)
	}
	fl, err := openFileLayer(t, name)
	if err != nil {
		return err
	}
	dcl := f.End() - 1
	if err := t.apply(&versionEdit{kind: editFlush, flushed: f, add: []*fileLayer{fl}, dcl: dcl}); err != nil {
		_ = fl.close()
		return err
	}
	t.log.Debug("flushed", "layer", name.String(), "entries", len(entries), "disk_consistent_lsn", dcl)
	return nil
}

// writeUnsynced is the planted bug DCLBeforeLayerSync's flush: the layer
// file is written but neither it nor its directory is synced.
func (t *Timeline) writeUnsynced(name layer.Name, lr lsn.Range, entries []layer.DeltaEntry) error {
	data, _, err := layer.EncodeDelta(allKeys(), lr, entries)
	if err != nil {
		return err
	}
	f, err := t.tenant.fs.Create(t.dir + "/" + name.String())
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		_ = f.Close()
		return err
	}
	return f.Close()
}
