package timeline

import (
	"fmt"
	"slices"

	"github.com/stratadb/strata/engine/lsn"
)

// GCStats says what one GC did.
type GCStats struct {
	Cutoff        lsn.LSN // the cutoff now in force
	LayersRemoved int
}

// GC moves the cutoff to last_record_lsn - GCHorizonBytes (never backwards)
// and removes the layers that no read at or above it, nor at a child's
// branch point, needs.
func (t *Timeline) GC() (GCStats, error) {
	last := t.LastRecordLSN()
	var c lsn.LSN
	if h := lsn.LSN(t.tenant.cfg.GCHorizonBytes); last > h {
		c = last - h
	}
	return t.GCAt(c)
}

// GCAt is GC with an explicit cutoff, clamped to [current cutoff, last
// record LSN]. The new cutoff refuses reads below it at once; the layer
// files go only after the metadata that no longer lists them is durable.
func (t *Timeline) GCAt(cutoff lsn.LSN) (GCStats, error) {
	t.mu.Lock()
	cutoff = max(min(cutoff, t.lastRecordLSN), t.gcCutoff)
	t.gcCutoff = cutoff
	m, files, dcl := t.layers, t.files, t.diskConsistentLSN
	t.mu.Unlock()
	st := GCStats{Cutoff: cutoff}
	retain := t.tenant.branchPoints(t.id)
	gone := m.Removable(cutoff, retain)
	newFiles := slices.Clone(files)
	for _, l := range gone {
		n := l.(*fileLayer).name.String()
		newFiles = slices.DeleteFunc(newFiles, func(s string) bool { return s == n })
	}
	nm, err := m.Replace(nil, gone, 0)
	if err != nil {
		return st, fmt.Errorf("timeline %s: gc: %w", t.id, err)
	}
	if err := t.persist(newFiles, dcl, cutoff); err != nil {
		return st, err
	}
	t.mu.Lock()
	t.layers, t.files = nm, newFiles
	t.mu.Unlock()
	st.LayersRemoved = len(gone)
	if len(gone) > 0 {
		t.log.Info("gc removed layers", "cutoff", cutoff, "removed", len(gone), "retain", retain)
	}
	return st, t.removeFiles(gone)
}
