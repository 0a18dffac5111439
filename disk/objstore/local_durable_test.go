package objstore_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/stratadb/strata/disk"
	"github.com/stratadb/strata/disk/objstore"
	"github.com/stratadb/strata/disk/objstore/objstoretest"
	"github.com/stratadb/strata/sim/simdisk"
)

// dirSyncFails is a disk whose SyncDir of the directory holding keys
// "a/..." (Local root "o") fails with EIO, without effect, while fail is
// set: the entry changes it should have made durable stay visible, and a
// crash undoes them.
type dirSyncFails struct {
	disk.FS
	fail bool
	// afterSync, if set, runs once right after a successful sync of that
	// directory, before the caller sees the result.
	afterSync func()
}

func (d *dirSyncFails) SyncDir(name string) error {
	if name != "o/da" {
		return d.FS.SyncDir(name)
	}
	if d.fail {
		return fmt.Errorf("test: syncdir %q: %w", name, disk.ErrIO)
	}
	err := d.FS.SyncDir(name)
	if hook := d.afterSync; hook != nil && err == nil {
		d.afterSync = nil
		hook()
	}
	return err
}

// failedDirSync sets up the hole every test below probes: fn's entry
// change is made, but its directory sync fails (fn must then report a
// transient error), so the change is visible yet undone by a crash.
func failedDirSync(t *testing.T, fsys *dirSyncFails, what string, fn func() error) {
	t.Helper()
	fsys.fail = true
	err := fn()
	fsys.fail = false
	objstoretest.WantClass(t, what+" with a failing directory sync", err, objstore.ErrTransient)
}

func crashAndReopen(t *testing.T, sd *simdisk.FS) *objstore.Local {
	t.Helper()
	sd.Crash(rand.New(rand.NewPCG(1, 1)), false)
	return newLocal(t, sd, "o", objstore.LocalOptions{})
}

// TestLocalPutRetryAfterFailedDirSync pins that a plain Put retried after
// its directory sync failed is durable once the retry returns: the retry
// renames again and syncs the directory itself.
func TestLocalPutRetryAfterFailedDirSync(t *testing.T) {
	ctx := context.Background()
	sd := simdisk.New(simdisk.Options{})
	fsys := &dirSyncFails{FS: sd}
	s := newLocal(t, fsys, "o", objstore.LocalOptions{})
	if err := s.Put(ctx, "a/k", []byte("v1"), objstore.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	failedDirSync(t, fsys, "Put", func() error { return s.Put(ctx, "a/k", []byte("v2"), objstore.PutOptions{}) })
	if err := s.Put(ctx, "a/k", []byte("v2"), objstore.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	s = crashAndReopen(t, sd)
	if got, err := s.Get(ctx, "a/k"); err != nil || string(got) != "v2" {
		t.Fatalf("after crash Get = %q, %v; want the retried Put's v2", got, err)
	}
}

// TestLocalConditionalPutRetryAfterFailedDirSync: a conditional Put whose
// directory sync failed is retried; the retry finds the name taken (by its
// own first attempt) and reports ErrPreconditionFailed, which a caller
// reads as "the object is there". It must then survive a crash.
func TestLocalConditionalPutRetryAfterFailedDirSync(t *testing.T) {
	ctx := context.Background()
	sd := simdisk.New(simdisk.Options{})
	fsys := &dirSyncFails{FS: sd}
	s := newLocal(t, fsys, "o", objstore.LocalOptions{})
	put := func() error { return s.Put(ctx, "a/k", []byte("v"), objstore.PutOptions{IfNoneMatch: true}) }
	failedDirSync(t, fsys, "conditional Put", put)
	if err := put(); !errors.Is(err, objstore.ErrPreconditionFailed) {
		t.Fatalf("retried conditional Put: %v, want ErrPreconditionFailed", err)
	}
	s = crashAndReopen(t, sd)
	if got, err := s.Get(ctx, "a/k"); err != nil || string(got) != "v" {
		t.Fatalf("reported existing, but after crash Get = %q, %v", got, err)
	}
}

// TestLocalDeleteRetryAfterFailedDirSync: a Delete whose directory sync
// failed is retried; the retry finds the object gone and succeeds. The
// deletion it acknowledges must survive a crash.
func TestLocalDeleteRetryAfterFailedDirSync(t *testing.T) {
	ctx := context.Background()
	sd := simdisk.New(simdisk.Options{})
	fsys := &dirSyncFails{FS: sd}
	s := newLocal(t, fsys, "o", objstore.LocalOptions{})
	for _, k := range []string{"a/k", "a/other"} {
		if err := s.Put(ctx, k, []byte("v"), objstore.PutOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	failedDirSync(t, fsys, "Delete", func() error { return s.Delete(ctx, []string{"a/k"}) })
	if err := s.Delete(ctx, []string{"a/k"}); err != nil {
		t.Fatal(err)
	}
	s = crashAndReopen(t, sd)
	if _, err := s.Get(ctx, "a/k"); !errors.Is(err, objstore.ErrNotFound) {
		t.Fatalf("Delete acknowledged, but after crash Get: %v", err)
	}
}

// TestLocalReadsReportOnlyDurableEntries: after a Put or Delete whose
// directory sync failed, a read by the same instance or by the next one
// (a restarted process, the disk's page cache intact) sees the change.
// Whatever a read reports must survive a crash: an object a reader saw must
// not vanish, a deleted one must not come back.
func TestLocalReadsReportOnlyDurableEntries(t *testing.T) {
	ctx := context.Background()
	reads := map[string]func(s *objstore.Local, key string) (bool, error){
		"Get": func(s *objstore.Local, key string) (bool, error) {
			_, err := s.Get(ctx, key)
			if errors.Is(err, objstore.ErrNotFound) {
				return false, nil
			}
			return err == nil, err
		},
		"Head": func(s *objstore.Local, key string) (bool, error) {
			_, err := s.Head(ctx, key)
			if errors.Is(err, objstore.ErrNotFound) {
				return false, nil
			}
			return err == nil, err
		},
		"List": func(s *objstore.Local, key string) (bool, error) {
			page, err := s.List(ctx, "a/", objstore.ListOptions{})
			for _, o := range page.Objects {
				if o.Key == key {
					return true, err
				}
			}
			return false, err
		},
	}
	for _, readName := range []string{"Get", "Head", "List"} {
		read := reads[readName]
		for _, reader := range []string{"same instance", "next instance"} {
			for _, change := range []string{"Put", "Delete"} {
				t.Run(fmt.Sprintf("%s/%s/%s", readName, reader, change), func(t *testing.T) {
					sd := simdisk.New(simdisk.Options{})
					fsys := &dirSyncFails{FS: sd}
					s := newLocal(t, fsys, "o", objstore.LocalOptions{})
					if err := s.Put(ctx, "a/other", []byte("v"), objstore.PutOptions{}); err != nil {
						t.Fatal(err)
					}
					if change == "Delete" {
						if err := s.Put(ctx, "a/k", []byte("v"), objstore.PutOptions{}); err != nil {
							t.Fatal(err)
						}
						failedDirSync(t, fsys, "Delete", func() error { return s.Delete(ctx, []string{"a/k"}) })
					} else {
						failedDirSync(t, fsys, "Put", func() error { return s.Put(ctx, "a/k", []byte("v"), objstore.PutOptions{}) })
					}
					if reader == "next instance" {
						s = newLocal(t, fsys, "o", objstore.LocalOptions{})
					}
					saw, err := read(s, "a/k")
					if err != nil {
						t.Fatal(err)
					}
					if saw != (change == "Put") {
						t.Fatalf("%s saw the object: %v", readName, saw)
					}
					s = crashAndReopen(t, sd)
					after, err := reads["Get"](s, "a/k")
					if err != nil {
						t.Fatal(err)
					}
					if after != saw {
						t.Fatalf("%s reported exists=%v before the crash, exists=%v after", readName, saw, after)
					}
				})
			}
		}
	}
}

// TestLocalSyncOverlappingAPutDoesNotCountForIt: a reader syncs a
// directory while a Put renames into it (after the sync's flush) and then
// fails its own directory sync. The reader's sync did not cover that Put,
// so a later read must not skip syncing on its account.
func TestLocalSyncOverlappingAPutDoesNotCountForIt(t *testing.T) {
	ctx := context.Background()
	sd := simdisk.New(simdisk.Options{})
	fsys := &dirSyncFails{FS: sd}
	s := newLocal(t, fsys, "o", objstore.LocalOptions{})
	if err := s.Put(ctx, "a/other", []byte("v"), objstore.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	s = newLocal(t, fsys, "o", objstore.LocalOptions{}) // knows nothing synced yet
	fsys.afterSync = func() {
		failedDirSync(t, fsys, "overlapping Put", func() error { return s.Put(ctx, "a/k", []byte("v"), objstore.PutOptions{}) })
	}
	if _, err := s.Get(ctx, "a/other"); err != nil {
		t.Fatal(err)
	}
	if fsys.afterSync != nil {
		t.Fatal("the reader's Get did not sync the directory")
	}
	if _, err := s.Get(ctx, "a/k"); err != nil {
		t.Fatalf("Get of the overlapping Put's object: %v", err)
	}
	s = crashAndReopen(t, sd)
	if _, err := s.Get(ctx, "a/k"); err != nil {
		t.Fatalf("a reader saw a/k, but after a crash: %v", err)
	}
}
