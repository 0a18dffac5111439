package objstore_test

import (
	"context"
	"errors"
	"io/fs"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/stratadb/strata/disk"
	"github.com/stratadb/strata/disk/objstore"
	"github.com/stratadb/strata/disk/objstore/objstoretest"
	"github.com/stratadb/strata/sim/simdisk"
)

func newLocal(t *testing.T, fsys disk.FS, root string, opts objstore.LocalOptions) *objstore.Local {
	t.Helper()
	s, err := objstore.NewLocal(fsys, root, opts)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestLocalOnDirConformance(t *testing.T) {
	objstoretest.Run(t, func(t *testing.T) objstore.Store {
		return newLocal(t, disk.Dir(t.TempDir()), "objects", objstore.LocalOptions{})
	})
}

func TestLocalOnSimdiskConformance(t *testing.T) {
	objstoretest.Run(t, func(t *testing.T) objstore.Store {
		return newLocal(t, simdisk.New(simdisk.Options{}), ".", objstore.LocalOptions{})
	})
}

func TestLocalLastModifiedFromClock(t *testing.T) {
	stamp := time.Date(2026, 11, 21, 12, 0, 0, 123, time.UTC)
	s := newLocal(t, simdisk.New(simdisk.Options{}), "o", objstore.LocalOptions{Now: func() time.Time { return stamp }})
	ctx := context.Background()
	if err := s.Put(ctx, "k", []byte("x"), objstore.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	info, err := s.Head(ctx, "k")
	if err != nil {
		t.Fatal(err)
	}
	if !info.LastModified.Equal(stamp) {
		t.Fatalf("LastModified = %v, want %v", info.LastModified, stamp)
	}
	// Without a clock the stamp is the zero time.
	s2 := newLocal(t, simdisk.New(simdisk.Options{}), "o", objstore.LocalOptions{})
	if err := s2.Put(ctx, "k", []byte("x"), objstore.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	if info, _ := s2.Head(ctx, "k"); !info.LastModified.IsZero() {
		t.Fatalf("LastModified without clock = %v", info.LastModified)
	}
}

// TestLocalDurableAcrossCrash checks that a Put that returned is complete
// after a crash of the underlying disk, even with tearing, and that a Put
// interrupted by a crash leaves the old object or nothing.
func TestLocalDurableAcrossCrash(t *testing.T) {
	ctx := context.Background()
	for seed := uint64(0); seed < 16; seed++ {
		d := simdisk.New(simdisk.Options{})
		s := newLocal(t, d, "store", objstore.LocalOptions{})
		keys := []string{"tenants/t1/timelines/l1/layer-1", "tenants/t1/timelines/l1/index", "a"}
		for _, k := range keys {
			if err := s.Put(ctx, k, []byte("durable "+k), objstore.PutOptions{}); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.Delete(ctx, []string{"a"}); err != nil {
			t.Fatal(err)
		}
		d.Crash(rand.New(rand.NewPCG(seed, 1)), true)
		s = newLocal(t, d, "store", objstore.LocalOptions{})
		for _, k := range keys[:2] {
			got, err := s.Get(ctx, k)
			if err != nil || string(got) != "durable "+k {
				t.Fatalf("seed %d: after crash Get(%q) = %q, %v", seed, k, got, err)
			}
		}
		if _, err := s.Get(ctx, "a"); !errors.Is(err, objstore.ErrNotFound) {
			t.Fatalf("seed %d: deleted key after crash: %v", seed, err)
		}
	}
}

func TestLocalDiskErrorsClassified(t *testing.T) {
	ctx := context.Background()
	d := simdisk.New(simdisk.Options{CapacityBytes: 100})
	s := newLocal(t, d, "o", objstore.LocalOptions{})
	err := s.Put(ctx, "big", make([]byte, 200), objstore.PutOptions{})
	objstoretest.WantClass(t, "Put on a full disk", err, objstore.ErrTransient)
	if !errors.Is(err, disk.ErrNoSpace) {
		t.Fatalf("error %v lost its disk cause", err)
	}
	// The failed Put left no temp file behind.
	ents, err := d.ReadDir("o")
	if err != nil {
		t.Fatal(err)
	}
	if len(ents) != 0 {
		t.Fatalf("failed Put left %d entries", len(ents))
	}
	if _, err := objstore.NewLocal(d, "../escape", objstore.LocalOptions{}); !errors.Is(err, objstore.ErrPermanent) || !errors.Is(err, fs.ErrInvalid) {
		t.Fatalf("NewLocal with a bad root: %v", err)
	}
	ctxDone, cancel := context.WithCancel(ctx)
	cancel()
	_, err = s.Get(ctxDone, "k")
	objstoretest.WantClass(t, "Get with a done context", err, objstore.ErrTransient)
}

func TestLocalDeletePrunesDirectories(t *testing.T) {
	ctx := context.Background()
	d := simdisk.New(simdisk.Options{})
	s := newLocal(t, d, "o", objstore.LocalOptions{})
	if err := s.Put(ctx, "x/y/z/k", []byte("v"), objstore.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(ctx, []string{"x/y/z/k"}); err != nil {
		t.Fatal(err)
	}
	ents, err := d.ReadDir("o")
	if err != nil {
		t.Fatal(err)
	}
	if len(ents) != 0 {
		t.Fatalf("Delete left %d empty directories under the root", len(ents))
	}
}

// TestLocalSweepTempAfterCrash crashes the disk between a Put's temp-file
// sync and its rename (the temp file survives, the object does not), then
// checks that SweepTemp on the restarted instance removes exactly its own
// leftovers: objects and another instance's temp files stay.
func TestLocalSweepTempAfterCrash(t *testing.T) {
	ctx := context.Background()
	fsys := simdisk.New(simdisk.Options{})
	s := newLocal(t, fsys, "o", objstore.LocalOptions{InstanceID: "a"})
	if err := s.Put(ctx, "t/x", []byte("kept"), objstore.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	// What a crash after the temp file's Sync and before the Rename leaves:
	// durable temp files of instance "a" (the next Put reuses sequence
	// numbers from 1, so use higher ones), and one of instance "a-1", whose
	// name also starts with "ta-" and must survive.
	leftovers := []string{"o/dt/ta-7", "o/ta-8", "o/dt/ta-1-3"}
	for _, name := range leftovers {
		f, err := fsys.Create(name)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.WriteAt([]byte("SOB1partial"), 0); err != nil {
			t.Fatal(err)
		}
		if err := f.Sync(); err != nil {
			t.Fatal(err)
		}
		f.Close()
		if err := fsys.SyncDir(disk.Parent(name)); err != nil {
			t.Fatal(err)
		}
	}
	fsys.Crash(rand.New(rand.NewPCG(1, 2)), false)
	s = newLocal(t, fsys, "o", objstore.LocalOptions{InstanceID: "a"})
	n, err := s.SweepTemp(ctx)
	if err != nil || n != 2 {
		t.Fatalf("SweepTemp = %d, %v; want 2 removed", n, err)
	}
	for name, want := range map[string]bool{"o/dt/ta-7": false, "o/ta-8": false, "o/dt/ta-1-3": true, "o/dt/ox": true} {
		_, err := fsys.Stat(name)
		if got := err == nil; got != want {
			t.Errorf("%s exists = %v (%v), want %v", name, got, err, want)
		}
	}
	if got, err := s.Get(ctx, "t/x"); err != nil || string(got) != "kept" {
		t.Fatalf("Get after sweep = %q, %v", got, err)
	}
	if n, err := s.SweepTemp(ctx); err != nil || n != 0 {
		t.Fatalf("second SweepTemp = %d, %v; want 0", n, err)
	}
}
