package timeline

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/stratadb/strata/engine/inmem"
	"github.com/stratadb/strata/engine/invariants"
	"github.com/stratadb/strata/engine/layermap"
	"github.com/stratadb/strata/engine/lsn"
	"github.com/stratadb/strata/engine/walrec"
)

// Errors of the layer-set writer.
var (
	// ErrConflict reports an edit that cannot be applied to the current
	// version, even rebased (e.g. a flush of a frozen layer that is no
	// longer the oldest). Nothing was changed.
	ErrConflict = errors.New("timeline: edit conflicts with the current layer set")
	// ErrClosed reports use of a timeline after its tenant was closed.
	ErrClosed = errors.New("timeline: tenant closed")
)

// Bugs are deliberate defects a test plants to prove that its checks can
// fail. Production code always passes the zero value.
type Bugs struct {
	// DeleteReplacedEarly closes and deletes a layer file as soon as an
	// edit removes it from the layer set, instead of when the last version
	// holding it is released: a read that pinned an older version then
	// finds its layer closed under it.
	DeleteReplacedEarly bool
	// DCLBeforeLayerSync writes a flushed layer file without syncing it or
	// its directory, then makes the metadata that lists it (and the
	// advanced disk_consistent_lsn) durable: a crash can take the layer
	// away while the metadata says its records are on disk (the pageserver
	// scenario's ps-dcl-before-layer-sync).
	DCLBeforeLayerSync bool
}

// version is an immutable snapshot of a timeline's layer set and of what is
// persisted with it (see the package doc, "Versions and edits"). The layer
// map's open in-memory layer keeps taking ingest (it only grows, in LSN
// order); everything else in a version never changes.
type version struct {
	tl     *Timeline
	seq    uint64 // one more than the version it replaced
	layers *layerMap
	// files are the physical names of the historic layers, sorted: what the
	// metadata lists.
	files    []string
	dcl      lsn.LSN // disk_consistent_lsn
	gcCutoff lsn.LSN
	// branchPoints are the branch points of the children (and of branches
	// being created), sorted, one entry per child: GC keeps what reads at
	// them need. Rebuilt at Open; not persisted by this timeline.
	branchPoints []lsn.LSN

	refs int // guarded by tl.mu: the timeline's current pointer and readers
}

// fileLayers returns the version's layer files.
func (v *version) fileLayers() []*fileLayer {
	h := v.layers.Historic()
	out := make([]*fileLayer, len(h))
	for i, l := range h {
		out[i] = l.(*fileLayer)
	}
	return out
}

// editKind says what an edit does, and so how it is rebased.
type editKind uint8

const (
	// In memory only (not persisted): applied under the timeline's mutex
	// too, because ingest writes into the open layer.
	editFreeze   editKind = iota + 1 // the open layer joins the frozen ones
	editReopen                       // an empty open layer restarts above DCL
	editCutoff                       // GC raises the cutoff before it frees anything
	editBranch                       // reserve a branch point (refused below the cutoff)
	editUnbranch                     // release a branch point (its branch failed)
	// Persisted (the metadata is rewritten before the version is installed).
	editFlush   // the oldest frozen layer became an L0 file; DCL advances
	editDCL     // DCL advances past records that changed no page
	editCompact // L0 inputs replaced by L1 outputs
	editImages  // image layers added
	editGC      // layers no read at or above the cutoff needs are removed
)

func (k editKind) String() string {
	switch k {
	case editFreeze:
		return "freeze"
	case editReopen:
		return "reopen"
	case editCutoff:
		return "cutoff"
	case editBranch:
		return "branch"
	case editUnbranch:
		return "unbranch"
	case editFlush:
		return "flush"
	case editDCL:
		return "dcl"
	case editCompact:
		return "compact"
	case editImages:
		return "images"
	case editGC:
		return "gc"
	}
	return fmt.Sprintf("edit(%d)", uint8(k))
}

func (k editKind) persisted() bool { return k >= editFlush }

// versionEdit is one change of a timeline's layer set. Edits carry what
// changes, never a whole layer set: apply rebases each onto the current
// version by the rules of its kind, so edits computed concurrently (a
// flush and a GC, say) both take effect. A new kind adds its fields and a
// case in timeline.next.
type versionEdit struct {
	kind editKind
	// base is the seq of the version the edit was computed against (0:
	// none, the edit is computed from state its kind's own lock keeps
	// stable); apply rebases when it is not the current one.
	base uint64

	add    []*fileLayer // new layer files, durable before the edit is applied
	remove []*fileLayer // layer files to drop; apply narrows this to what it removed
	// flushed is the frozen layer add[0] holds (editFlush): it must still
	// be the oldest frozen layer.
	flushed *inmem.Layer[walrec.Value]

	dcl         lsn.LSN // new disk_consistent_lsn; never moves it back
	gcCutoff    lsn.LSN // new GC cutoff; never moves it back
	branchPoint lsn.LSN // editBranch, editUnbranch
	reopenAbove lsn.LSN // editReopen: the DCL the empty open layer restarts above
}

// acquire pins t's current version for a read (or for an edit computed
// from it) and returns it with the last record LSN at that instant: every
// record at or below it is in the version. The caller must release it.
func (t *Timeline) acquire() (*version, lsn.LSN, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	v := t.cur
	if v == nil {
		return nil, 0, fmt.Errorf("%w: timeline %s", ErrClosed, t.id)
	}
	v.refs++
	return v, t.lastRecordLSN, nil
}

// release drops one reference to v. When the last goes, every file only v
// still held is closed, and deleted if an edit had removed it.
func (v *version) release() {
	t := v.tl
	t.mu.Lock()
	v.refs--
	if v.refs < 0 { // (checked first: the arguments would cost the read path an allocation)
		invariants.Check(false, "timeline %s: version %d released more often than acquired", t.id, v.seq)
	}
	var done []*fileLayer
	if v.refs == 0 {
		for _, f := range v.fileLayers() {
			f.refs--
			if f.refs == 0 && !f.disposed {
				f.disposed = true
				done = append(done, f)
			}
		}
	}
	t.mu.Unlock()
	t.dispose(done)
}

// dispose closes layer files no version holds any more and deletes those an
// installed edit removed (whose removal the metadata already made
// durable). A failed delete leaves a file the metadata does not list, which
// the next Open removes; so it is logged, not returned.
func (t *Timeline) dispose(fs []*fileLayer) {
	for _, f := range fs {
		local := f.resident.Load() // an evicted or never downloaded file is not on disk
		_ = f.close()
		t.mu.Lock()
		deleted := t.deleted
		t.mu.Unlock()
		if !f.obsolete || deleted || !local {
			continue
		}
		name := f.name.String()
		if err := t.tenant.fs.Remove(t.dir + "/" + name); err != nil {
			t.log.Warn("removing a replaced layer file failed; the next open removes it", "layer", name, "err", err)
		}
		t.mu.Lock()
		delete(t.doomed, name)
		t.mu.Unlock()
	}
}

// apply applies e to the current version: it takes the writer lock (one
// edit at a time per timeline), rebases e onto the current version,
// persists the result if e changes what the metadata holds, installs it,
// and releases the replaced version. On error nothing changed (though a
// metadata write that failed after its rename may have reached the disk:
// every file it lists is durable, and the next write replaces it). On
// success e.remove holds what was actually removed.
func (t *Timeline) apply(e *versionEdit) error {
	if err := t.writer.Lock(context.Background()); err != nil {
		return fmt.Errorf("timeline %s: %s edit: %w", t.id, e.kind, err)
	}
	defer t.writer.Unlock()
	t.mu.Lock()
	cur := t.cur
	if cur == nil {
		t.mu.Unlock()
		return fmt.Errorf("%w: timeline %s", ErrClosed, t.id)
	}
	if !e.kind.persisted() {
		// In-memory edits are computed and installed under mu: freezing
		// the open layer must not interleave with ingest writing to it.
		n, err := t.next(cur, e)
		if err != nil {
			t.mu.Unlock()
			return err
		}
		t.installLocked(n, nil)
		t.mu.Unlock()
		cur.release()
		return nil
	}
	for _, f := range e.add {
		// A file written under the name of a removed one still waiting for
		// its last reader would be deleted with it.
		if err := invariants.Check(!t.doomed[f.name.String()], "timeline %s: %s edit adds %s, which is still to be deleted", t.id, e.kind, f.name); err != nil {
			t.mu.Unlock()
			return err
		}
	}
	t.mu.Unlock()
	// Only this writer replaces t.cur, so cur stays current through the
	// metadata write below.
	n, err := t.next(cur, e)
	if err != nil {
		return err
	}
	if err := t.persist(n.files, n.dcl, n.gcCutoff); err != nil {
		return err
	}
	// The observer hears of the edit once it is durable and before it is
	// installed: a file the edit removes cannot be deleted (that waits
	// for the install and the last reader) before the observer knows.
	t.notify(e, n)
	t.mu.Lock()
	t.installLocked(n, e.remove)
	if e.base != 0 && e.base != cur.seq {
		t.rebased++
	}
	t.mu.Unlock()
	if t.tenant.bugs.DeleteReplacedEarly {
		t.mu.Lock()
		var early []*fileLayer
		for _, f := range e.remove {
			if !f.disposed {
				f.disposed = true
				early = append(early, f)
			}
		}
		t.mu.Unlock()
		t.dispose(early)
	}
	cur.release()
	return nil
}

// next builds the version that applying e to cur yields. It rebases e by
// the rules of its kind (see the package doc), so e may have been computed
// against an older version, and asserts the invariants every version keeps.
func (t *Timeline) next(cur *version, e *versionEdit) (*version, error) {
	n := &version{
		tl:           t,
		seq:          cur.seq + 1,
		layers:       cur.layers,
		files:        cur.files,
		dcl:          max(cur.dcl, e.dcl),
		gcCutoff:     max(cur.gcCutoff, e.gcCutoff),
		branchPoints: cur.branchPoints,
	}
	fail := func(format string, args ...any) error {
		return fmt.Errorf("%w: timeline %s: %s edit (base %d, current %d): %s", ErrConflict, t.id, e.kind, e.base, cur.seq, fmt.Sprintf(format, args...))
	}
	present := func(ls []*fileLayer) map[*fileLayer]bool {
		m := make(map[*fileLayer]bool, len(ls))
		for _, f := range ls {
			m[f] = true
		}
		return m
	}
	var err error
	switch e.kind {
	case editFreeze:
		open := cur.layers.Open()
		if open.Len() > 0 {
			at := t.lastRecordLSN + 1
			if err := open.Freeze(at); err != nil {
				return nil, fmt.Errorf("timeline %s: freeze: %w", t.id, err)
			}
			n.layers = cur.layers.FreezeOpen(inmem.New[walrec.Value](at, valueInfo))
		}
	case editReopen:
		// Records that changed no page moved DCL up: an empty open layer
		// restarts above it (ingest holds mu while it writes, so empty
		// stays empty until the swap).
		// If a record arrived since the DCL edit, it is above DCL (it came
		// after every record the flush covered): the open layer keeps it
		// and only raises its start, so no layer created at DCL (an image)
		// overlaps it.
		if open := cur.layers.Open(); open.Start() <= e.reopenAbove {
			if open.Len() == 0 {
				n.layers = cur.layers.WithOpen(inmem.New[walrec.Value](e.reopenAbove+1, valueInfo))
			} else if err := open.RaiseStart(e.reopenAbove + 1); err != nil {
				return nil, fmt.Errorf("timeline %s: reopen above %s: %w", t.id, e.reopenAbove, err)
			}
		}
	case editCutoff, editDCL:
		// The max above is the whole rule: neither ever moves back.
	case editBranch:
		if e.branchPoint < cur.gcCutoff {
			return nil, fmt.Errorf("%w: branch at %s, cutoff %s (timeline %s)", ErrBelowGCCutoff, e.branchPoint, cur.gcCutoff, t.id)
		}
		i, _ := slices.BinarySearch(cur.branchPoints, e.branchPoint)
		n.branchPoints = slices.Insert(slices.Clone(cur.branchPoints), i, e.branchPoint)
	case editUnbranch:
		i, ok := slices.BinarySearch(cur.branchPoints, e.branchPoint)
		if !ok {
			return nil, fail("no branch point %s", e.branchPoint)
		}
		n.branchPoints = slices.Delete(slices.Clone(cur.branchPoints), i, i+1)
	case editFlush:
		// Flushes are serialized, so the frozen layer written is still the
		// oldest; anything else is a bug in the caller.
		if fr := cur.layers.Frozen(); len(fr) == 0 || fr[0] != e.flushed {
			return nil, fail("the flushed layer is not the oldest frozen layer")
		}
		n.layers, err = cur.layers.Replace(asLayers(e.add), nil, 1)
	case editCompact:
		// Inputs a concurrent GC removed since the base are skipped: GC
		// removed them because images at or below its cutoff cover them,
		// and those images cover the outputs' copy of their records too.
		have := present(cur.fileLayers())
		e.remove = slices.DeleteFunc(e.remove, func(f *fileLayer) bool { return !have[f] })
		n.layers, err = cur.layers.Replace(asLayers(e.add), asLayers(e.remove), 0)
	case editImages:
		n.layers, err = cur.layers.Replace(asLayers(e.add), nil, 0)
	case editGC:
		// Remove only what is still present and still removable in the
		// current version: never a layer added since the base, nor one a
		// branch point reserved since the base needs.
		ok := present(asFiles(cur.layers.Removable(n.gcCutoff, cur.branchPoints)))
		e.remove = slices.DeleteFunc(e.remove, func(f *fileLayer) bool { return !ok[f] })
		n.layers, err = cur.layers.Replace(nil, asLayers(e.remove), 0)
	default:
		return nil, fail("unknown kind")
	}
	if err != nil {
		return nil, fmt.Errorf("timeline %s: %s edit: %w", t.id, e.kind, err)
	}
	if len(e.add) > 0 || len(e.remove) > 0 {
		n.files = make([]string, 0, len(n.layers.Historic()))
		for _, l := range n.layers.Historic() {
			n.files = append(n.files, l.(*fileLayer).name.String())
		}
		slices.Sort(n.files)
	}
	if invariants.Enabled {
		if err := invariants.Verify(n.layers.Check()); err != nil {
			return nil, fmt.Errorf("timeline %s: %s edit: %w", t.id, e.kind, err)
		}
	}
	return n, nil
}

// installLocked makes n the current version (its reference is the
// timeline's) and marks removed as obsolete: each is deleted when the last
// version holding it is released. The caller holds t.mu and releases the
// replaced version afterwards.
func (t *Timeline) installLocked(n *version, removed []*fileLayer) {
	cur := t.cur
	invariants.Check(n.dcl >= cur.dcl && n.gcCutoff >= cur.gcCutoff,
		"timeline %s: version %d moves disk_consistent_lsn %s→%s or the cutoff %s→%s back", t.id, n.seq, cur.dcl, n.dcl, cur.gcCutoff, n.gcCutoff)
	n.refs = 1
	for _, f := range n.fileLayers() {
		f.refs++
	}
	for _, f := range removed {
		f.obsolete = true
		t.doomed[f.name.String()] = true
	}
	t.cur = n
}

func asLayers(fs []*fileLayer) []layermap.Layer[walrec.Value] {
	out := make([]layermap.Layer[walrec.Value], len(fs))
	for i, f := range fs {
		out[i] = f
	}
	return out
}

func asFiles(ls []layermap.Layer[walrec.Value]) []*fileLayer {
	out := make([]*fileLayer, len(ls))
	for i, l := range ls {
		out[i] = l.(*fileLayer)
	}
	return out
}
