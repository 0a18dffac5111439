package timeline

import (
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
// record LSN]. The new cutoff refuses reads below it at once (reads that
// pinned an older version finish on it); the layers it frees leave the
// layer set only once metadata without them is durable, and their files
// are deleted when the last read holding them lets go. GCs of one timeline
// run one at a time.
func (t *Timeline) GCAt(cutoff lsn.LSN) (GCStats, error) {
	lock(t.gcMu)
	defer t.gcMu.Unlock()
	// First raise the cutoff (in memory): from here on reads and branches
	// below it are refused, even if the metadata write below fails.
	if err := t.apply(&versionEdit{kind: editCutoff, gcCutoff: min(cutoff, t.LastRecordLSN())}); err != nil {
		return GCStats{}, err
	}
	base, _, err := t.acquire()
	if err != nil {
		return GCStats{}, err
	}
	defer base.release()
	st := GCStats{Cutoff: base.gcCutoff}
	gone := asFiles(base.layers.Removable(base.gcCutoff, base.branchPoints))
	e := &versionEdit{kind: editGC, base: base.seq, gcCutoff: base.gcCutoff, remove: gone}
	if err := t.apply(e); err != nil {
		return st, err
	}
	st.LayersRemoved = len(e.remove)
	if len(e.remove) > 0 {
		t.log.Info("gc removed layers", "cutoff", st.Cutoff, "removed", len(e.remove), "retain", base.branchPoints)
	}
	return st, nil
}
