package timeline

import (
	"errors"
	"fmt"
)

// deletingSuffix marks a timeline directory being deleted: the directory
// is renamed to it (durably) before anything in it is removed, so a crash
// mid-deletion leaves either the whole timeline under its own name or a
// directory that Open removes, never a timeline with files missing.
const deletingSuffix = ".___deleting"

// ErrHasChildren reports deleting a timeline that other timelines branch
// from (or that a branch being created has reserved a branch point on).
var ErrHasChildren = errors.New("timeline: timeline has child timelines")

// Delete removes timeline id and its files. A timeline with children is
// refused with ErrHasChildren (delete the children first); an unknown id is
// ErrUnknown, so a repeated Delete fails the same way.
//
// It waits for a running flush, compaction or GC of the timeline to end and
// then, holding them off and the layer-set writer too, renames the
// directory to <id>.___deleting and syncs the timelines directory: that is
// the commit point. Only after it are the timeline dropped from memory (its
// reads and ingest fail with ErrClosed from then on; reads already running
// finish on the versions they pinned), its branch point on the parent
// released (so the parent's GC may free what only it needed) and the files
// removed. If the rename fails nothing changed. If the sync fails, Delete
// returns the error with the timeline already out of memory and its files
// kept: a crash may take the rename back (the timeline reloads whole) or
// not (Open removes the directory). A failed removal afterwards is logged,
// not returned: the deletion is durable and Open removes the rest.
//
// Delete runs one at a time with Create and Branch.
func (tn *Tenant) Delete(id ID) error {
	lock(tn.createMu)
	defer tn.createMu.Unlock()
	t, err := tn.Get(id)
	if err != nil {
		return err
	}
	// A flush or compaction writes files into the directory before its
	// edit: let the running ones finish and keep new ones (and every other
	// edit) out until the directory is renamed.
	lock(t.flushMu)
	defer t.flushMu.Unlock()
	lock(t.compactMu)
	defer t.compactMu.Unlock()
	lock(t.gcMu)
	defer t.gcMu.Unlock()
	lock(t.writer)
	defer t.writer.Unlock()
	t.mu.Lock()
	cur := t.cur
	var points int
	if cur != nil {
		points = len(cur.branchPoints)
	}
	t.mu.Unlock()
	switch {
	case cur == nil:
		return fmt.Errorf("%w: timeline %s", ErrClosed, id)
	case points > 0:
		// Every child holds a branch point, and so does a Branch between
		// its reservation and its directory: both must block the delete
		// (a child created after its parent is gone could not be opened).
		return fmt.Errorf("%w: %s has %d branch point(s) (children, or branches being created)", ErrHasChildren, id, points)
	}
	root := tn.timelinesDir()
	gone := t.dir + deletingSuffix
	// A leftover of an earlier delete of the same id whose removal failed.
	if err := tn.fs.RemoveAll(gone); err != nil {
		return fmt.Errorf("timeline: clear %s: %w", gone, err)
	}
	if err := tn.fs.Rename(t.dir, gone); err != nil {
		return fmt.Errorf("timeline: delete %s: rename: %w", id, err)
	}
	// The directory is no longer where the timeline writes: from here it
	// is gone for this process, whatever the sync below says.
	t.mu.Lock()
	t.cur = nil
	t.deleted = true
	t.mu.Unlock()
	tn.mu.Lock()
	delete(tn.timelines, id)
	tn.mu.Unlock()
	// Close the files no running read holds (deleted: none is removed one
	// by one; the directory goes as a whole).
	cur.release()
	if err := tn.fs.SyncDir(root); err != nil {
		return fmt.Errorf("timeline: delete %s: sync %s: %w", id, root, err)
	}
	if a := t.ancestor; a != nil {
		if err := a.apply(&versionEdit{kind: editUnbranch, branchPoint: t.ancestorLSN}); err != nil {
			t.log.Warn("releasing the branch point of a deleted timeline failed; the parent's GC keeps its layers until restart", "at", t.ancestorLSN, "err", err)
		}
	}
	if err := tn.fs.RemoveAll(gone); err != nil {
		t.log.Warn("removing a deleted timeline's files failed; the next open removes them", "dir", gone, "err", err)
	} else if err := tn.fs.SyncDir(root); err != nil {
		t.log.Warn("syncing after removing a deleted timeline failed; the next open removes what is left", "err", err)
	}
	t.log.Info("timeline deleted")
	return nil
}
