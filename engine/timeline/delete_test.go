package timeline

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/stratadb/strata/clock"
	"github.com/stratadb/strata/disk"
	"github.com/stratadb/strata/engine/keys"
	"github.com/stratadb/strata/engine/lsn"
	"github.com/stratadb/strata/engine/walrec"
	"github.com/stratadb/strata/sim"
	"github.com/stratadb/strata/sim/simdisk"
)

// TestDelete: a deleted timeline is gone from the tenant, from disk and
// after a reopen; its handle fails with ErrClosed; a second delete is
// ErrUnknown; its id can be created again, empty.
func TestDelete(t *testing.T) {
	fs := simdisk.New(simdisk.Options{})
	tn := openTenant(t, fs, Config{})
	tl, err := tn.Create(ID{1}, 0)
	if err != nil {
		t.Fatal(err)
	}
	keep, err := tn.Create(ID{2}, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, x := range []*Timeline{tl, keep} {
		mustIngest(t, x, 0x10, walrec.FullPageImage{Rel: rel, Blk: 0, Page: page(1)})
		if err := x.Flush(); err != nil {
			t.Fatal(err)
		}
		mustIngest(t, x, 0x20, walrec.FullPageImage{Rel: rel, Blk: 1, Page: page(2)}) // in memory only
	}
	if err := tn.Delete(ID{1}); err != nil {
		t.Fatal(err)
	}
	if _, err := tn.Get(ID{1}); !errors.Is(err, ErrUnknown) {
		t.Fatalf("get after delete: %v", err)
	}
	if ids := tn.Timelines(); len(ids) != 1 || ids[0] != (ID{2}) {
		t.Fatalf("timelines after delete: %v", ids)
	}
	if _, err := tl.GetPage(keys.RelBlockKey(rel, 0), 0x10); !errors.Is(err, ErrClosed) {
		t.Fatalf("read through a deleted timeline's handle: %v", err)
	}
	if err := tl.Ingest(0x30, walrec.FullPageImage{Rel: rel, Blk: 0, Page: page(3)}); !errors.Is(err, ErrClosed) {
		t.Fatalf("ingest into a deleted timeline: %v", err)
	}
	if err := tl.Flush(); !errors.Is(err, ErrClosed) {
		t.Fatalf("flush of a deleted timeline: %v", err)
	}
	if err := tn.Delete(ID{1}); !errors.Is(err, ErrUnknown) {
		t.Fatalf("second delete: %v", err)
	}
	if names := dirNames(t, fs, "tenant/timelines"); len(names) != 1 || !names[ID{2}.String()] {
		t.Fatalf("timelines directory after delete: %v", names)
	}
	wantPage(t, keep, 1, 0x20, page(2))
	// Durable: a crash does not bring it back.
	tn.Close()
	fs.Crash(rand.New(rand.NewPCG(1, 2)), true)
	tn = openTenant(t, fs, Config{})
	defer tn.Close()
	if ids := tn.Timelines(); len(ids) != 1 || ids[0] != (ID{2}) {
		t.Fatalf("timelines after a crash: %v", ids)
	}
	again, err := tn.Create(ID{1}, 0x40)
	if err != nil {
		t.Fatalf("create a deleted id again: %v", err)
	}
	if _, err := again.GetPage(keys.RelBlockKey(rel, 0), 0x40); !errors.Is(err, ErrNotFound) {
		t.Fatalf("the re-created timeline reads an old page: %v", err)
	}
}

// TestDeleteRefusesParent: a timeline with a child is refused with
// ErrHasChildren and left whole; once the child is deleted, the parent's
// GC frees what only the child's branch point needed, and the parent can
// be deleted.
func TestDeleteRefusesParent(t *testing.T) {
	fs := simdisk.New(simdisk.Options{})
	tn, parent, at := gcFixture(t, Options{FS: fs})
	defer tn.Close()
	if _, err := tn.Branch(ID{1}, ID{2}, 8); err != nil {
		t.Fatal(err)
	}
	if err := tn.Delete(ID{1}); !errors.Is(err, ErrHasChildren) {
		t.Fatalf("delete of a parent: %v", err)
	}
	wantPage(t, parent, 0, at, page(3))
	// GC keeps what reads at the child's branch point need...
	gst, err := parent.GCAt(at)
	if err != nil {
		t.Fatal(err)
	}
	if gst, err = parent.GCAt(at); err != nil || gst.LayersRemoved != 0 {
		t.Fatalf("second gc with a child at 8: %+v %v", gst, err)
	}
	if err := tn.Delete(ID{2}); err != nil {
		t.Fatal(err)
	}
	if got := parent.peek().branchPoints; len(got) != 0 {
		t.Fatalf("parent's branch points after its child's delete: %v", got)
	}
	// ... and frees it once the child is gone.
	if gst, err = parent.GCAt(at); err != nil || gst.LayersRemoved == 0 {
		t.Fatalf("gc after the child's delete: %+v %v", gst, err)
	}
	if err := tn.Delete(ID{1}); err != nil {
		t.Fatalf("delete of the parent once childless: %v", err)
	}
	if ids := tn.Timelines(); len(ids) != 0 {
		t.Fatalf("timelines left: %v", ids)
	}
}

// dyingFS is a disk.FS whose process dies after a number of changes
// (renames, removes, directory syncs, creates): every later call fails, as
// if the process had stopped there, leaving what a crash then keeps. Its
// RemoveAll removes one entry at a time, as an operating system does, so
// a death may leave a directory half emptied.
type dyingFS struct {
	disk.FS
	left int
}

var errDied = fmt.Errorf("injected: process died: %w", disk.ErrIO)

func (f *dyingFS) step() error {
	if f.left <= 0 {
		return errDied
	}
	f.left--
	return nil
}

func (f *dyingFS) Rename(o, n string) error {
	if err := f.step(); err != nil {
		return err
	}
	return f.FS.Rename(o, n)
}

func (f *dyingFS) Remove(name string) error {
	if err := f.step(); err != nil {
		return err
	}
	return f.FS.Remove(name)
}

func (f *dyingFS) SyncDir(name string) error {
	if err := f.step(); err != nil {
		return err
	}
	return f.FS.SyncDir(name)
}

func (f *dyingFS) Create(name string) (disk.File, error) {
	if err := f.step(); err != nil {
		return nil, err
	}
	return f.FS.Create(name)
}

func (f *dyingFS) RemoveAll(name string) error {
	if f.left <= 0 {
		return errDied
	}
	st, err := f.FS.Stat(name)
	if errors.Is(err, disk.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if st.IsDir() {
		ents, err := f.FS.ReadDir(name)
		if err != nil {
			return err
		}
		for _, e := range ents {
			if err := f.RemoveAll(name + "/" + e.Name()); err != nil {
				return err
			}
		}
	}
	return f.Remove(name)
}

// TestDeleteCrashAtEveryStep kills the process after each step of a
// Delete in turn (with RemoveAll removing file by file), crashes the disk
// with and without torn unsynced state, and reopens: Open must succeed, the
// timeline must be either whole (every page readable) or gone, and no
// leftover directory may survive the open. Both outcomes must occur.
func TestDeleteCrashAtEveryStep(t *testing.T) {
	outcomes := map[string]int{}
	for steps := 0; ; steps++ {
		done := false
		for _, tear := range []bool{false, true} {
			for seed := uint64(1); seed <= 3; seed++ {
				fs := simdisk.New(simdisk.Options{})
				tn := openTenant(t, fs, Config{})
				tl, err := tn.Create(ID{1}, 0)
				if err != nil {
					t.Fatal(err)
				}
				for i := range 3 {
					mustIngest(t, tl, lsn.LSN(0x10*(i+1)), walrec.FullPageImage{Rel: rel, Blk: uint32(i), Page: page(byte(i + 1))})
					if err := tl.Flush(); err != nil {
						t.Fatal(err)
					}
				}
				if _, err := tn.Create(ID{2}, 0); err != nil {
					t.Fatal(err)
				}
				tn.Close()
				dying := &dyingFS{FS: fs, left: steps}
				dtn, err := Open(Options{FS: fs, Clock: clock.NewReal(), Dir: "tenant", Generation: 1})
				if err != nil {
					t.Fatal(err)
				}
				dtn.fs = dying // only Delete's own steps count
				derr := dtn.Delete(ID{1})
				done = done || derr == nil && dying.left > 0
				fs.Crash(rand.New(rand.NewPCG(seed, uint64(steps))), tear)
				rtn, err := Open(Options{FS: fs, Clock: clock.NewReal(), Dir: "tenant", Generation: 1})
				if err != nil {
					t.Fatalf("steps %d tear %v seed %d: open after a crash mid-delete (%v): %v", steps, tear, seed, derr, err)
				}
				for name := range dirNames(t, fs, "tenant/timelines") {
					if strings.HasSuffix(name, deletingSuffix) || strings.HasSuffix(name, tempSuffix) {
						t.Fatalf("steps %d: %s left after open", steps, name)
					}
				}
				if _, err := rtn.Get(ID{2}); err != nil {
					t.Fatalf("steps %d: the other timeline: %v", steps, err)
				}
				if back, err := rtn.Get(ID{1}); err == nil {
					for i := range 3 {
						wantPage(t, back, uint32(i), 0x30, page(byte(i+1)))
					}
					outcomes["whole"]++
				} else {
					outcomes["gone"]++
				}
				rtn.Close()
			}
		}
		if done {
			break
		}
		if steps > 50 {
			t.Fatal("delete never completed")
		}
	}
	if outcomes["whole"] == 0 || outcomes["gone"] == 0 {
		t.Fatalf("outcomes %v: both must occur", outcomes)
	}
	t.Logf("outcomes: %v", outcomes)
}

// TestDeleteRacingBranch runs a Branch of a timeline beside its Delete on
// the simulator: either the branch wins (the delete is refused with
// ErrHasChildren and the child reads the parent) or the delete wins (the
// branch fails); never a child of a deleted parent, which no Open could
// load.
func TestDeleteRacingBranch(t *testing.T) {
	wins := map[string]int{}
	for seed := uint64(1); seed <= 30; seed++ {
		err := runWorld(seed, func(w *sim.World) error {
			fs := simDisk(w)
			tn, err := Open(Options{FS: fs, Clock: w.Clock(), Dir: "tenant", Generation: 1})
			if err != nil {
				return err
			}
			tl, err := tn.Create(ID{1}, 0)
			if err != nil {
				return err
			}
			if err := tl.Ingest(0x10, walrec.FullPageImage{Rel: rel, Blk: 0, Page: page(1)}); err != nil {
				return err
			}
			if err := tl.Flush(); err != nil {
				return err
			}
			var berr, derr error
			wait := tasks(w, map[string]func() error{
				"branch": func() error {
					w.Sleep(time.Duration(w.Rand().IntN(6000)) * time.Microsecond)
					_, berr = tn.Branch(ID{1}, ID{2}, 0x10)
					return nil
				},
				"delete": func() error {
					w.Sleep(time.Duration(w.Rand().IntN(6000)) * time.Microsecond)
					derr = tn.Delete(ID{1})
					return nil
				},
			})
			if err := wait(); err != nil {
				return err
			}
			switch {
			case berr == nil && errors.Is(derr, ErrHasChildren):
				wins["branch"]++
			case derr == nil && berr != nil:
				wins["delete"]++
			default:
				return fmt.Errorf("branch: %v, delete: %v", berr, derr)
			}
			tn.Close()
			tn, err = Open(Options{FS: fs, Clock: w.Clock(), Dir: "tenant", Generation: 1})
			if err != nil {
				return fmt.Errorf("reopen: %w", err)
			}
			defer tn.Close()
			if berr == nil {
				child, err := tn.Get(ID{2})
				if err != nil {
					return err
				}
				if p, err := child.GetPage(keys.RelBlockKey(rel, 0), 0x10); err != nil || p[0] != 1 {
					return fmt.Errorf("child read: %v", err)
				}
			}
			return nil
		})
		if err != nil {
			t.Fatalf("seed %d: %v", seed, err)
		}
	}
	if wins["branch"] == 0 || wins["delete"] == 0 {
		t.Fatalf("outcomes %v: both orders must occur", wins)
	}
	t.Logf("outcomes: %v", wins)
}
