package disk_test

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/stratadb/strata/disk"
	"github.com/stratadb/strata/sim/simdisk"
)

// failSyncDir is a disk whose next SyncDir of dir fails with EIO, without
// effect: the entry changes it should have made durable stay visible, and a
// crash undoes them.
type failSyncDir struct {
	disk.FS
	dir   string
	armed bool
}

func (d *failSyncDir) SyncDir(name string) error {
	if d.armed && name == d.dir {
		d.armed = false
		return fmt.Errorf("test: syncdir %q: %w", name, disk.ErrIO)
	}
	return d.FS.SyncDir(name)
}

func crash(d *simdisk.FS) { d.Crash(rand.New(rand.NewPCG(1, 1)), false) }

// TestMkdirAllDurableRetryAfterFailedDirSync pins that MkdirAllDurable,
// called again after a directory sync failed (the directories exist now,
// their entries are not durable), syncs every ancestor anyway: it does not
// take an existing directory for a durable one.
func TestMkdirAllDurableRetryAfterFailedDirSync(t *testing.T) {
	for _, failing := range []string{".", "a", "a/b"} {
		t.Run(failing, func(t *testing.T) {
			sd := simdisk.New(simdisk.Options{})
			fsys := &failSyncDir{FS: sd, dir: failing, armed: true}
			if err := disk.MkdirAllDurable(fsys, "a/b/c"); !errors.Is(err, disk.ErrIO) {
				t.Fatalf("first call with a failing sync of %q: %v, want ErrIO", failing, err)
			}
			if err := disk.MkdirAllDurable(fsys, "a/b/c"); err != nil {
				t.Fatal(err)
			}
			crash(sd)
			if st, err := sd.Stat("a/b/c"); err != nil || !st.IsDir() {
				t.Fatalf("after crash a/b/c: %v, %v", st, err)
			}
		})
	}
}

// TestWriteFileAtomicRetryAfterFailedDirSync pins that WriteFileAtomic
// reports a failed directory sync (its rename is visible but a crash may
// undo it), leaves the file old-or-new across a crash, and that a retry
// makes the new content durable.
func TestWriteFileAtomicRetryAfterFailedDirSync(t *testing.T) {
	for _, retry := range []bool{false, true} {
		t.Run(fmt.Sprint("retry=", retry), func(t *testing.T) {
			sd := simdisk.New(simdisk.Options{})
			fsys := &failSyncDir{FS: sd, dir: "d"}
			if err := disk.MkdirAllDurable(fsys, "d"); err != nil {
				t.Fatal(err)
			}
			if err := disk.WriteFileAtomic(fsys, "d/ctl", []byte("v1")); err != nil {
				t.Fatal(err)
			}
			fsys.armed = true
			if err := disk.WriteFileAtomic(fsys, "d/ctl", []byte("v2")); !errors.Is(err, disk.ErrIO) {
				t.Fatalf("with a failing directory sync: %v, want ErrIO", err)
			}
			if got, err := disk.ReadFile(fsys, "d/ctl"); err != nil || string(got) != "v2" {
				t.Fatalf("before the crash: %q, %v (the rename took effect)", got, err)
			}
			want := "v1"
			if retry {
				if err := disk.WriteFileAtomic(fsys, "d/ctl", []byte("v2")); err != nil {
					t.Fatal(err)
				}
				want = "v2"
			}
			crash(sd)
			if got, err := disk.ReadFile(sd, "d/ctl"); err != nil || string(got) != want {
				t.Fatalf("after crash: %q, %v; want %q", got, err, want)
			}
			ents, err := sd.ReadDir("d")
			if err != nil || len(ents) != 1 {
				t.Fatalf("after crash d holds %d entries (%v), want ctl only", len(ents), err)
			}
		})
	}
}
