package timeline

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"

	"github.com/stratadb/strata/clock"

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
// safe from any task at any time; each pins the current version for its
// whole run. Ingest must come from one task at a time (it is the WAL
// stream). Flush, Compact, GC and the Tenant's Create and Branch may run
// from any tasks concurrently: each turns its result into an edit of the
// layer set, applied by the timeline's one serialized writer (see the
// package doc).
type Timeline struct {
	tenant      *Tenant
	id          ID
	dir         string
	ancestor    *Timeline
	ancestorLSN lsn.LSN // branch point; 0 without an ancestor
	initLSN     lsn.LSN // own records are above it
	log         *slog.Logger

	// writer serializes edits of the layer set: it is held from computing
	// the next version through its metadata write to installing it. A
	// clock.Mutex, because it is held across I/O.
	writer *clock.Mutex
	// flushMu, compactMu and gcMu make each of those one at a time per
	// timeline (two flushes would write the same frozen layer, two
	// compactions merge the same L0s); different kinds run side by side.
	flushMu, compactMu, gcMu *clock.Mutex

	mu            sync.Mutex // guards the fields below and refcounts; never held across I/O
	cur           *version   // nil once the tenant is closed
	lastRecordLSN lsn.LSN
	// doomed are the names of layer files an installed edit removed that
	// are not deleted yet (a reader still holds them).
	doomed map[string]bool
	// rebased counts edits applied to a newer version than their base.
	rebased int
	// deleted: Tenant.Delete renamed the directory away, so a replaced
	// file is not removed on its own when its last reader lets go.
	deleted bool
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

// peek returns the current version without pinning it: for the LSN getters
// and for fields a caller's own serialization keeps stable. Nil once the
// tenant is closed.
func (t *Timeline) peek() *version {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.cur
}

// DiskConsistentLSN is the LSN up to which everything is durably in layer
// files: after a crash the timeline reopens here, and the caller must
// re-ingest the WAL above it.
func (t *Timeline) DiskConsistentLSN() lsn.LSN {
	if v := t.peek(); v != nil {
		return v.dcl
	}
	return 0
}

// GCCutoff is the latest GC cutoff: reads below it are refused.
func (t *Timeline) GCCutoff() lsn.LSN {
	if v := t.peek(); v != nil {
		return v.gcCutoff
	}
	return 0
}

// lock takes one of the timeline's clock mutexes (the context never ends,
// so it cannot fail).
func lock(m *clock.Mutex) { _ = m.Lock(context.Background()) }

// Ingest adds one WAL record at LSN at, which must be above the last record's.
// The record's memory is kept (not copied) until it is flushed: the caller
// must not reuse it. When the open layer reaches the checkpoint distance it is
// flushed before Ingest returns; if that flush fails the record is still
// ingested and the error wraps ErrFlushFailed.
func (t *Timeline) Ingest(at lsn.LSN, rec walrec.Record) error {
	return t.IngestValues(at, walrec.Decompose(rec))
}

// IngestValues is Ingest of a record already decomposed into key values
// (walrec.Decompose's output; no values at all is a record that changes
// no key): for keys no walrec record produces yet (SLRU segments, the
// control file, directories), which a future import or decoder writes, and
// for tests. The same rules apply: at must be above the last record, the
// values' memory is kept, and a flush it triggers may fail with
// ErrFlushFailed after the values are in.
func (t *Timeline) IngestValues(at lsn.LSN, kvs []walrec.KeyValue) error {
	if at == lsn.Max {
		return fmt.Errorf("%w: %s", ErrInvalidLSN, at)
	}
	// mu is held while the record goes into the open layer, so a flush
	// cannot freeze that layer half-way through the record.
	t.mu.Lock()
	if t.cur == nil {
		t.mu.Unlock()
		return fmt.Errorf("%w: timeline %s", ErrClosed, t.id)
	}
	if last := t.lastRecordLSN; at <= last {
		t.mu.Unlock()
		return fmt.Errorf("%w: %s at or below last record %s", ErrOutOfOrder, at, last)
	}
	open := t.cur.layers.Open()
	for _, kv := range kvs {
		if err := open.Put(kv.Key, at, kv.Value); err != nil {
			t.mu.Unlock()
			return fmt.Errorf("timeline %s: ingest at %s: %w", t.id, at, err)
		}
	}
	t.lastRecordLSN = at
	size := open.SizeBytes()
	t.mu.Unlock()
	if size >= t.tenant.cfg.CheckpointDistanceBytes {
		if err := t.Flush(); err != nil {
			return fmt.Errorf("%w: at %s: %w", ErrFlushFailed, at, err)
		}
	}
	return nil
}

// pinned is one version a read holds: the timeline's or an ancestor's, with
// the timeline's last record LSN when it was pinned.
type pinned struct {
	v    *version
	last lsn.LSN
}

// pin appends to dst the current versions of t and of each ancestor, t's
// first. On error nothing stays pinned.
func (t *Timeline) pin(dst []pinned) ([]pinned, error) {
	for tl := t; tl != nil; tl = tl.ancestor {
		v, last, err := tl.acquire()
		if err != nil {
			unpin(dst)
			return dst[:0], err
		}
		dst = append(dst, pinned{v, last})
	}
	return dst, nil
}

// unpin releases what pin pinned.
func unpin(chain []pinned) {
	for i := range chain {
		chain[i].v.release()
		chain[i] = pinned{}
	}
}

// checkRead validates a read at LSN at on the pinned chain: the cutoff and
// last record of the timeline, and that each ancestor reached the branch
// point.
func checkRead(chain []pinned, at lsn.LSN) error {
	if at == lsn.Invalid {
		return fmt.Errorf("%w: read at 0", ErrInvalidLSN)
	}
	t, cutoff, last := chain[0].v.tl, chain[0].v.gcCutoff, chain[0].last
	if at < cutoff {
		return fmt.Errorf("%w: read at %s, cutoff %s (timeline %s)", ErrBelowGCCutoff, at, cutoff, t.id)
	}
	if at > last {
		return fmt.Errorf("%w: read at %s, last record %s (timeline %s)", ErrFutureLSN, at, last, t.id)
	}
	for i := 1; i < len(chain); i++ {
		c := chain[i-1].v.tl
		if l := chain[i].last; l < c.ancestorLSN {
			return fmt.Errorf("%w: ancestor %s is at %s, below the branch point %s", ErrFutureLSN, c.ancestor.id, l, c.ancestorLSN)
		}
	}
	return nil
}

// search collects key's values for a read at LSN at into r, walking the
// pinned versions of the timeline and then of its ancestors below each
// branch point.
func search(chain []pinned, key keys.Key, at lsn.LSN, r *layermap.Result[walrec.Value]) error {
	r.Reset(at)
	for i := range chain {
		tl := chain[i].v.tl
		if err := chain[i].v.layers.Search(key, r); err != nil {
			return fmt.Errorf("timeline %s: %w", tl.id, err)
		}
		if r.Done || tl.ancestor == nil {
			return nil
		}
		r.Cont = min(r.Cont, tl.ancestorLSN+1)
	}
	return nil
}

// keysAt lists every key that may have a value at or below at in the
// pinned chain (the timeline's own layers and its ancestors' below the
// branch point), sorted and without duplicates.
func keysAt(chain []pinned, at lsn.LSN) ([]keys.Key, error) {
	var all []keys.Key
	bound := at
	for i := range chain {
		v := chain[i].v
		m := v.layers
		for _, l := range m.Historic() {
			if l.Desc().LSNs.Start <= bound {
				ks, err := l.(*fileLayer).keys()
				if err != nil {
					return nil, err
				}
				all = append(all, ks...)
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
		bound = min(bound, v.tl.ancestorLSN)
	}
	slices.SortFunc(all, keys.Key.Compare)
	return slices.Compact(all), nil
}
