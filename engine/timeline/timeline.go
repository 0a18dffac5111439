package timeline

import (
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"

	"github.com/stratadb/strata/engine/keys"
	"github.com/stratadb/strata/engine/layermap"
	"github.com/stratadb/strata/engine/lsn"
	"github.com/stratadb/strata/engine/walrec"
)

// Errors of timelines.
var (
	// ErrBelowGCCutoff reports a read or a branch below the timeline's
	// latest GC cutoff: the history there may be gone, so it is refused
	// rather than answered wrongly.
	ErrBelowGCCutoff = errors.New("timeline: LSN below the GC cutoff")
	// ErrFutureLSN reports a read or branch above what was ingested.
	ErrFutureLSN = errors.New("timeline: LSN not yet ingested")
	// ErrNotFound reports a key with no value at the LSN (never written, or
	// dropped).
	ErrNotFound = errors.New("timeline: key not found")
	// ErrOutOfOrder reports a WAL record whose LSN is not above the last.
	ErrOutOfOrder = errors.New("timeline: WAL record out of order")
	// ErrInvalidLSN reports LSN 0 where a record or read LSN is required.
	ErrInvalidLSN = errors.New("timeline: invalid LSN")
	// ErrExists reports creating a timeline whose id is taken.
	ErrExists = errors.New("timeline: timeline exists")
	// ErrUnknown reports a timeline id that is not in the tenant.
	ErrUnknown = errors.New("timeline: no such timeline")
	// ErrFlushFailed reports that a record was ingested but the flush it
	// triggered failed: do not re-send the record; retry Flush (or restart
	// and re-ingest above DiskConsistentLSN).
	ErrFlushFailed = errors.New("timeline: record ingested, flush failed")
)

type layerMap = layermap.Map[walrec.Value]

// Timeline is one branch of a tenant's history: its own layers above its
// init LSN (the branch point, for a child) and, below that, its ancestor's.
//
// Concurrency: reads (GetPage, GetPages, RelSize and the LSN getters) are
// safe from any task at any time. Writes (Ingest, Flush, Compact, GC and the
// Tenant's Create and Branch) must come from one task at a time per tenant.
type Timeline struct {
	tenant      *Tenant
	id          ID
	dir         string
	ancestor    *Timeline
	ancestorLSN lsn.LSN // branch point; 0 without an ancestor
	initLSN     lsn.LSN // own records are above it
	log         *slog.Logger

	mu                sync.Mutex // guards the fields below; never held across I/O
	layers            *layerMap
	lastRecordLSN     lsn.LSN
	diskConsistentLSN lsn.LSN
	gcCutoff          lsn.LSN
	files             []string // physical names of the layer files, sorted
}

// ID returns the timeline's id.
func (t *Timeline) ID() ID { return t.id }

// Ancestor returns the parent's id and the branch LSN; ok is false for a
// root timeline.
func (t *Timeline) Ancestor() (id ID, at lsn.LSN, ok bool) {
	if t.ancestor == nil {
		return ID{}, 0, false
	}
	return t.ancestor.id, t.ancestorLSN, true
}

// InitLSN is where the timeline's own WAL starts: its records are above it.
func (t *Timeline) InitLSN() lsn.LSN { return t.initLSN }

// LastRecordLSN is the LSN of the newest record ingested (InitLSN if none).
func (t *Timeline) LastRecordLSN() lsn.LSN {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.lastRecordLSN
}

// DiskConsistentLSN is the LSN up to which everything is durably in layer
// files: after a crash the timeline reopens here, and the caller must
// re-ingest the WAL above it.
func (t *Timeline) DiskConsistentLSN() lsn.LSN {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.diskConsistentLSN
}

// GCCutoff is the latest GC cutoff: reads below it are refused.
func (t *Timeline) GCCutoff() lsn.LSN {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.gcCutoff
}

func (t *Timeline) snapshot() *layerMap {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.layers
}

// Ingest adds one WAL record at LSN at, which must be above the last record's.
// The record's memory is kept (not copied) until it is flushed: the caller
// must not reuse it. When the open layer reaches the checkpoint distance it is
// flushed before Ingest returns; if that flush fails the record is still
// ingested and the error wraps ErrFlushFailed.
func (t *Timeline) Ingest(at lsn.LSN, rec walrec.Record) error {
	t.mu.Lock()
	last, open := t.lastRecordLSN, t.layers.Open()
	t.mu.Unlock()
	if at <= last {
		return fmt.Errorf("%w: %s at or below last record %s", ErrOutOfOrder, at, last)
	}
	if at == lsn.Max {
		return fmt.Errorf("%w: %s", ErrInvalidLSN, at)
	}
	for _, kv := range walrec.Decompose(rec) {
		if err := open.Put(kv.Key, at, kv.Value); err != nil {
			return fmt.Errorf("timeline %s: ingest at %s: %w", t.id, at, err)
		}
	}
	t.mu.Lock()
	t.lastRecordLSN = at
	t.mu.Unlock()
	if open.SizeBytes() >= t.tenant.cfg.CheckpointDistanceBytes {
		if err := t.Flush(); err != nil {
			return fmt.Errorf("%w: at %s: %w", ErrFlushFailed, at, err)
		}
	}
	return nil
}

// checkRead validates a read at LSN at on t and, through the branch points,
// on its ancestors.
func (t *Timeline) checkRead(at lsn.LSN) error {
	if at == lsn.Invalid {
		return fmt.Errorf("%w: read at 0", ErrInvalidLSN)
	}
	t.mu.Lock()
	last, cutoff := t.lastRecordLSN, t.gcCutoff
	t.mu.Unlock()
	if at < cutoff {
		return fmt.Errorf("%w: read at %s, cutoff %s (timeline %s)", ErrBelowGCCutoff, at, cutoff, t.id)
	}
	if at > last {
		return fmt.Errorf("%w: read at %s, last record %s (timeline %s)", ErrFutureLSN, at, last, t.id)
	}
	for c := t; c.ancestor != nil; c = c.ancestor {
		if l := c.ancestor.LastRecordLSN(); l < c.ancestorLSN {
			return fmt.Errorf("%w: ancestor %s is at %s, below the branch point %s", ErrFutureLSN, c.ancestor.id, l, c.ancestorLSN)
		}
	}
	return nil
}

// search collects key's values for a read at LSN at into r, walking this
// timeline's layers and then its ancestors' below each branch point.
func (t *Timeline) search(key keys.Key, at lsn.LSN, r *layermap.Result[walrec.Value]) error {
	r.Reset(at)
	for tl := t; tl != nil; tl = tl.ancestor {
		if err := tl.snapshot().Search(key, r); err != nil {
			return fmt.Errorf("timeline %s: %w", tl.id, err)
		}
		if r.Done || tl.ancestor == nil {
			return nil
		}
		r.Cont = min(r.Cont, tl.ancestorLSN+1)
	}
	return nil
}

// keysAt lists every key that may have a value at or below at on this
// timeline (its own layers and its ancestors' below the branch point),
// sorted and without duplicates.
func (t *Timeline) keysAt(at lsn.LSN) []keys.Key {
	var all []keys.Key
	for tl, bound := t, at; tl != nil; tl, bound = tl.ancestor, min(bound, tl.ancestorLSN) {
		m := tl.snapshot()
		for _, l := range m.Historic() {
			if l.Desc().LSNs.Start <= bound {
				all = append(all, l.(*fileLayer).keys()...)
			}
		}
		for _, f := range m.Frozen() {
			if f.Start() <= bound {
				all = append(all, f.Keys()...)
			}
		}
		if o := m.Open(); o != nil && o.Start() <= bound {
			all = append(all, o.Keys()...)
		}
	}
	slices.SortFunc(all, keys.Key.Compare)
	return slices.Compact(all)
}
