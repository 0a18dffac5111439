package timeline

import (
	"errors"
	"math/rand/v2"
	"testing"

	"github.com/stratadb/strata/clock"
	"github.com/stratadb/strata/disk"
	"github.com/stratadb/strata/engine/layer"
	"github.com/stratadb/strata/engine/lsn"
	"github.com/stratadb/strata/engine/walrec"
	"github.com/stratadb/strata/sim/simdisk"
)

// failSyncAfterRename is a disk.FS that fails, once, the SyncDir that
// follows a Rename onto target: the rename is done (and visible) but not
// durable, which is how a failed directory sync leaves it.
type failSyncAfterRename struct {
	disk.FS
	target  string
	renamed bool
	fired   bool
	// dies makes every call after the failed sync fail too, as if the
	// process died right there (so it cleans nothing up).
	dies bool
}

func (f *failSyncAfterRename) dead() bool { return f.dies && f.fired }

func (f *failSyncAfterRename) RemoveAll(name string) error {
	if f.dead() {
		return disk.ErrIO
	}
	return f.FS.RemoveAll(name)
}

func (f *failSyncAfterRename) Remove(name string) error {
	if f.dead() {
		return disk.ErrIO
	}
	return f.FS.Remove(name)
}

func (f *failSyncAfterRename) Rename(oldname, newname string) error {
	err := f.FS.Rename(oldname, newname)
	if err == nil && newname == f.target && !f.fired {
		f.renamed = true
	}
	return err
}

func (f *failSyncAfterRename) SyncDir(name string) error {
	if f.renamed && disk.Parent(f.target) == name {
		f.renamed, f.fired = false, true
		return &errSyncDir{name}
	}
	return f.FS.SyncDir(name)
}

type errSyncDir struct{ name string }

func (e *errSyncDir) Error() string { return "injected: syncdir " + e.name + ": " + disk.ErrIO.Error() }
func (e *errSyncDir) Unwrap() error { return disk.ErrIO }

func openOn(t *testing.T, fsys disk.FS) *Tenant {
	t.Helper()
	tn, err := Open(Options{FS: fsys, Clock: clock.NewReal(), Dir: "tenant", Generation: 1})
	if err != nil {
		t.Fatal(err)
	}
	return tn
}

// TestOpenSyncsMetadataOfFailedDirSync: a flush renames its metadata into
// place but the directory sync fails; the process exits (keeping every
// unsynced entry) and the next incarnation loads that metadata and reports
// its disk_consistent_lsn. A crash must not take that back: Open syncs the
// timeline directory of every timeline it loads.
func TestOpenSyncsMetadataOfFailedDirSync(t *testing.T) {
	fs := simdisk.New(simdisk.Options{})
	tn := openOn(t, fs)
	tl, err := tn.Create(ID{1}, 0)
	if err != nil {
		t.Fatal(err)
	}
	mustIngest(t, tl, 0x10, walrec.FullPageImage{Rel: rel, Blk: 0, Page: page(1)})
	if err := tl.Flush(); err != nil {
		t.Fatal(err)
	}
	tn.Close()
	faulty := &failSyncAfterRename{FS: fs, target: tl.dir + "/" + metadataName}
	tn = openOn(t, faulty)
	tl, _ = tn.Get(ID{1})
	mustIngest(t, tl, 0x20, walrec.FullPageImage{Rel: rel, Blk: 0, Page: page(2)})
	if err := tl.Flush(); !errors.Is(err, disk.ErrIO) || !faulty.fired {
		t.Fatalf("flush with the metadata's directory sync failing: %v", err)
	}
	fs.Exit() // the process exits: unsynced entries stay
	tn = openOn(t, fs)
	tl, _ = tn.Get(ID{1})
	reported := tl.DiskConsistentLSN()
	if reported != 0x20 {
		t.Fatalf("disk_consistent_lsn %s after the restart, want 0/20 (the renamed metadata)", reported)
	}
	fs.Crash(rand.New(rand.NewPCG(1, 1)), false)
	tn = openOn(t, fs)
	defer tn.Close()
	tl, _ = tn.Get(ID{1})
	if got := tl.DiskConsistentLSN(); got < reported {
		t.Fatalf("disk_consistent_lsn went back from %s to %s across a crash", reported, got)
	}
	wantPage(t, tl, 0, 0x20, page(2))
}

// TestOpenSyncsTimelineOfFailedDirSync: Create renames the new timeline's
// directory into place but the sync of the timelines directory fails; the
// process exits and the next incarnation loads the timeline and flushes
// into it. A crash must not make the timeline, and what was flushed into
// it, vanish: Open syncs the timelines directory.
func TestOpenSyncsTimelineOfFailedDirSync(t *testing.T) {
	fs := simdisk.New(simdisk.Options{})
	tn := openOn(t, fs)
	tn.Close()
	id := ID{1}
	faulty := &failSyncAfterRename{FS: fs, target: "tenant/timelines/" + id.String()}
	tn = openOn(t, faulty)
	if _, err := tn.Create(id, 0); !errors.Is(err, disk.ErrIO) || !faulty.fired {
		t.Fatalf("create with the directory sync failing: %v", err)
	}
	// The failed create left nothing behind that a retry trips over.
	if _, err := tn.Create(id, 0); err != nil {
		t.Fatalf("retried create: %v", err)
	}
	tn.Close()

	// Now the same with the process exiting right after the failure.
	id2 := ID{2}
	faulty = &failSyncAfterRename{FS: fs, target: "tenant/timelines/" + id2.String(), dies: true}
	tn = openOn(t, faulty)
	if _, err := tn.Create(id2, 0); !errors.Is(err, disk.ErrIO) {
		t.Fatalf("create with the directory sync failing: %v", err)
	}
	fs.Exit()
	tn = openOn(t, fs)
	tl, err := tn.Get(id2)
	if err != nil {
		t.Fatalf("the renamed timeline directory is not loaded after the exit: %v", err)
	}
	mustIngest(t, tl, 0x10, walrec.FullPageImage{Rel: rel, Blk: 0, Page: page(7)})
	if err := tl.Flush(); err != nil {
		t.Fatal(err)
	}
	flushed := tl.DiskConsistentLSN()
	fs.Crash(rand.New(rand.NewPCG(1, 1)), false)
	tn = openOn(t, fs)
	defer tn.Close()
	tl, err = tn.Get(id2)
	if err != nil {
		t.Fatalf("timeline flushed to %s lost in a crash: %v", flushed, err)
	}
	if got := tl.DiskConsistentLSN(); got < flushed {
		t.Fatalf("disk_consistent_lsn %s after the crash, flush reported %s", got, flushed)
	}
	wantPage(t, tl, 0, 0x10, page(7))
}

// TestFlushRetryAfterLayerDirSyncFails audits the layer-file path: a flush
// whose L0 file was renamed into place but whose directory sync failed is
// retried; the retry writes the file whole again (temp, sync, rename,
// directory sync), never trusting the one already there, so a crash after
// the retried flush loses nothing.
func TestFlushRetryAfterLayerDirSyncFails(t *testing.T) {
	fs := simdisk.New(simdisk.Options{})
	tn := openOn(t, fs)
	tl, err := tn.Create(ID{1}, 0)
	if err != nil {
		t.Fatal(err)
	}
	tn.Close()
	name := layer.DeltaName(allKeys(), lsn.Range{Start: 1, End: 0x11}).WithGeneration(1).String()
	faulty := &failSyncAfterRename{FS: fs, target: tl.dir + "/" + name}
	tn = openOn(t, faulty)
	tl, _ = tn.Get(ID{1})
	mustIngest(t, tl, 0x10, walrec.FullPageImage{Rel: rel, Blk: 0, Page: page(3)})
	if err := tl.Flush(); !errors.Is(err, disk.ErrIO) || !faulty.fired {
		t.Fatalf("flush with the layer's directory sync failing: %v", err)
	}
	if err := tl.Flush(); err != nil {
		t.Fatalf("retried flush: %v", err)
	}
	flushed := tl.DiskConsistentLSN()
	if flushed != 0x10 {
		t.Fatalf("disk_consistent_lsn %s, want 0/10", flushed)
	}
	fs.Crash(rand.New(rand.NewPCG(2, 2)), false)
	tn = openOn(t, fs)
	defer tn.Close()
	tl, _ = tn.Get(ID{1})
	if got := tl.DiskConsistentLSN(); got != flushed {
		t.Fatalf("disk_consistent_lsn %s after the crash, want %s", got, flushed)
	}
	wantPage(t, tl, 0, 0x10, page(3))
}
