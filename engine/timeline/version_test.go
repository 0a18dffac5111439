package timeline

import (
	"errors"
	"fmt"
	"testing"

	"github.com/stratadb/strata/engine/invariants"
	"github.com/stratadb/strata/engine/layer"
	"github.com/stratadb/strata/engine/layermap"
	"github.com/stratadb/strata/engine/lsn"
	"github.com/stratadb/strata/engine/walrec"
	"github.com/stratadb/strata/sim/simdisk"
)

// TestEditCheckedAgainstLayerMapInvariants: an edit whose result breaks the
// layer map's invariants (here a delta overlapping a flushed L0) is caught
// by the layer map's Check that runs after every edit, before anything is
// persisted or installed.
func TestEditCheckedAgainstLayerMapInvariants(t *testing.T) {
	tn := openTenant(t, simdisk.New(simdisk.Options{}), Config{})
	defer tn.Close()
	tl, err := tn.Create(ID{1}, 0)
	if err != nil {
		t.Fatal(err)
	}
	mustIngest(t, tl, 0x10, walrec.FullPageImage{Rel: rel, Blk: 0, Page: page(1)})
	if err := tl.Flush(); err != nil {
		t.Fatal(err)
	}
	before := tl.peek()
	lr := lsn.Range{Start: 5, End: 0x11}
	bad := &fileLayer{name: layer.DeltaName(allKeys(), lr).WithGeneration(1), desc: layermap.DeltaDesc(allKeys(), lr.Start, lr.End)}
	err = func() (err error) {
		defer func() {
			if r := recover(); r != nil {
				err = fmt.Errorf("panic: %v", r)
				if re, ok := r.(error); ok {
					err = re
				}
			}
		}()
		return tl.apply(&versionEdit{kind: editImages, add: []*fileLayer{bad}})
	}()
	if !errors.Is(err, invariants.ErrViolated) || !errors.Is(err, layermap.ErrOverlap) {
		t.Fatalf("edit adding an overlapping delta: %v; want an invariant violation (layermap overlap)", err)
	}
	if tl.peek() != before {
		t.Fatal("the bad edit was installed")
	}
}

// TestGCEditRebasedOntoBranchPoint: a GC edit computed before a branch point
// was reserved is rebased onto the version holding it: the layers a read at
// the branch point needs stay, though the edit listed them.
func TestGCEditRebasedOntoBranchPoint(t *testing.T) {
	tn, tl, at := gcFixture(t, Options{FS: simdisk.New(simdisk.Options{})})
	defer tn.Close()
	base, _, err := tl.acquire()
	if err != nil {
		t.Fatal(err)
	}
	gone := asFiles(base.layers.Removable(at, base.branchPoints))
	base.release()
	if len(gone) == 0 {
		t.Fatal("nothing removable at the cutoff: the test exercises nothing")
	}
	if err := tl.apply(&versionEdit{kind: editBranch, branchPoint: 8}); err != nil {
		t.Fatal(err)
	}
	e := &versionEdit{kind: editGC, base: base.seq, gcCutoff: at, remove: gone}
	if err := tl.apply(e); err != nil {
		t.Fatal(err)
	}
	if len(e.remove) >= len(gone) {
		t.Fatalf("the rebased GC removed %d of the %d layers it listed; the branch point at 8 needs some", len(e.remove), len(gone))
	}
	child, err := tn.create(ID{2}, branchMetadata(ID{1}, 8), tl)
	if err != nil {
		t.Fatal(err)
	}
	wantPage(t, child, 0, 8, page(0))
}

// TestEditsNeverMoveBack: disk_consistent_lsn and the cutoff only go up,
// whatever an edit computed from an older version carries; and a flush of
// a layer that is not the oldest frozen one is refused, not installed.
func TestEditsNeverMoveBack(t *testing.T) {
	tn, tl, at := gcFixture(t, Options{FS: simdisk.New(simdisk.Options{})})
	defer tn.Close()
	if _, err := tl.GCAt(at - 4); err != nil {
		t.Fatal(err)
	}
	v := tl.peek()
	for _, e := range []*versionEdit{
		{kind: editDCL, dcl: v.dcl - 1},
		{kind: editCutoff, gcCutoff: v.gcCutoff - 1},
		{kind: editGC, base: 1, gcCutoff: 1},
	} {
		if err := tl.apply(e); err != nil {
			t.Fatalf("%s edit: %v", e.kind, err)
		}
		if n := tl.peek(); n.dcl != v.dcl || n.gcCutoff != v.gcCutoff {
			t.Fatalf("%s edit moved dcl %s→%s, cutoff %s→%s", e.kind, v.dcl, n.dcl, v.gcCutoff, n.gcCutoff)
		}
	}
	mustIngest(t, tl, at+1, walrec.FullPageImage{Rel: rel, Blk: 1, Page: page(9)})
	stale := tl.peek().layers.Open() // not frozen: no flush can name it
	if err := tl.apply(&versionEdit{kind: editFlush, flushed: stale, dcl: at + 1}); !errors.Is(err, ErrConflict) {
		t.Fatalf("flush of a layer that is not the oldest frozen one: %v", err)
	}
	if got := tl.DiskConsistentLSN(); got != v.dcl {
		t.Fatalf("refused flush moved disk_consistent_lsn to %s", got)
	}
}
