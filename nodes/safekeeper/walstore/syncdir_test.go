package walstore

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"path"
	"testing"

	"github.com/stratadb/strata/disk"
	"github.com/stratadb/strata/engine/lsn"
	"github.com/stratadb/strata/engine/skproto"
	"github.com/stratadb/strata/sim/simdisk"
)

// failSyncDir is the simulated disk with injected directory-sync
// failures: after letting skip SyncDir calls on dir pass, it fails the
// next fail ones with disk.ErrIO (the entries stay as they were: in the
// page cache, not durable).
type failSyncDir struct {
	*simdisk.FS
	dir        string
	skip, fail int
	failed     int
}

func (f *failSyncDir) SyncDir(name string) error {
	if name == f.dir {
		switch {
		case f.skip > 0:
			f.skip--
		case f.fail > 0:
			f.fail--
			f.failed++
			return fmt.Errorf("%w: injected syncdir %s", disk.ErrIO, name)
		}
	}
	return f.FS.SyncDir(name)
}

// crashAndOpen crashes the disk (no torn writes: only what was made
// durable counts) and opens the timeline as the next incarnation would.
func crashAndOpen(t *testing.T, fsys *simdisk.FS) *Store {
	t.Helper()
	fsys.Crash(rand.New(rand.NewPCG(1, 1)), false)
	s, err := Open(fsys, testDir)
	if err != nil {
		t.Fatalf("open after the crash: %v", err)
	}
	return s
}

func checkWAL(t *testing.T, s *Store, want []byte) {
	t.Helper()
	if s.FlushLSN() != lsn.LSN(len(want)) {
		t.Fatalf("after the crash the WAL ends at %s, %d bytes were synced", s.FlushLSN(), len(want))
	}
	got, err := s.Read(0, s.FlushLSN())
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("after the crash the WAL differs (%v)", err)
	}
}

// TestSealReusedAfterFailedDirSync: the directory sync after sealing a
// segment (rename to its sealed name, new .partial) fails; the same store
// goes on writing into the new .partial and Sync succeeds. Everything
// Sync acknowledged must survive a crash: Sync syncs wal/ first.
func TestSealReusedAfterFailedDirSync(t *testing.T) {
	fsys := simdisk.New(simdisk.Options{})
	f := &failSyncDir{FS: fsys}
	s, err := Create(f, testDir, newControl(256, 0))
	if err != nil {
		t.Fatal(err)
	}
	wal := frames(8, 5) // 420 bytes: crosses one segment end, ends in the next
	f.dir, f.fail = path.Join(testDir, walDir), 1
	if err := s.Write(0, wal); err == nil {
		t.Fatal("Write across a segment end did not report the failed directory sync")
	}
	if f.failed != 1 {
		t.Fatalf("injected %d failures, want 1", f.failed)
	}
	at := s.FlushLSN() // the next write carries on from where this one stopped
	if err := s.Write(at, wal[at:]); err != nil {
		t.Fatal(err)
	}
	if err := s.Sync(); err != nil {
		t.Fatal(err)
	}
	_ = s.Close()
	checkWAL(t, crashAndOpen(t, fsys), wal)
}

// TestControlReusedAfterFailedDirSync: the control file is renamed into
// place but the directory sync after it fails (when the timeline is
// created, and when the control file is replaced). The next incarnation
// (or the safekeeper's reload in place, which is the same Open) uses that
// control file and acknowledges WAL on it; after a crash the control file
// it used must still be there.
func TestControlReusedAfterFailedDirSync(t *testing.T) {
	for _, tc := range []struct {
		name string
		// skip: directory syncs of the timeline directory before the one
		// that fails (Create syncs it once in MkdirAllDurable before the
		// control file's).
		skip    int
		replace bool
	}{
		{"created", 1, false},
		{"replaced", 2, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fsys := simdisk.New(simdisk.Options{})
			f := &failSyncDir{FS: fsys, dir: testDir, skip: tc.skip, fail: 1}
			ctl := newControl(256, 0)
			s, err := Create(f, testDir, ctl)
			if tc.replace {
				if err != nil {
					t.Fatal(err)
				}
				ctl.Acceptor.Term = 7
				err = s.PersistControl(ctl)
			}
			if err == nil || f.failed != 1 {
				t.Fatalf("control file written despite the failed directory sync (err %v, %d injected)", err, f.failed)
			}
			if s != nil {
				_ = s.Close()
			}
			// The next incarnation (no crash in between) finds the control
			// file and acknowledges WAL on it.
			s, err = Open(fsys.View(), testDir)
			if err != nil {
				t.Fatal(err)
			}
			if got := s.Control().Acceptor.Term; got != ctl.Acceptor.Term {
				t.Fatalf("reopened with term %d, want %d", got, ctl.Acceptor.Term)
			}
			wal := frames(4, 9)
			if err := s.Write(0, wal); err != nil {
				t.Fatal(err)
			}
			if err := s.Sync(); err != nil {
				t.Fatal(err)
			}
			_ = s.Close()
			s = crashAndOpen(t, fsys)
			if got := s.Control().Acceptor.Term; got != ctl.Acceptor.Term {
				t.Fatalf("after the crash the control file has term %d, the one the WAL was acknowledged on has %d", got, ctl.Acceptor.Term)
			}
			checkWAL(t, s, wal)
		})
	}
}

// TestPartialReusedAfterFailedDirSyncAtCreate: Create's first .partial is
// created but wal/'s sync fails, so Create fails before any control file
// exists; the safekeeper then creates the timeline again (a timeline
// without a control file does not exist), which recreates and syncs the
// .partial. Nothing needed fixing on this path; the test keeps it so.
func TestPartialReusedAfterFailedDirSyncAtCreate(t *testing.T) {
	fsys := simdisk.New(simdisk.Options{})
	f := &failSyncDir{FS: fsys, dir: path.Join(testDir, walDir), fail: 1}
	if _, err := Create(f, testDir, newControl(256, 0)); err == nil || f.failed != 1 {
		t.Fatalf("Create despite the failed directory sync: %v", err)
	}
	if ok, err := Exists(fsys, testDir); ok || err != nil {
		t.Fatalf("a timeline whose creation failed exists: %t, %v", ok, err)
	}
	s, err := Create(fsys, testDir, newControl(256, 0))
	if err != nil {
		t.Fatal(err)
	}
	wal := frames(4, 3)
	if err := s.Write(0, wal); err != nil {
		t.Fatal(err)
	}
	if err := s.Sync(); err != nil {
		t.Fatal(err)
	}
	_ = s.Close()
	checkWAL(t, crashAndOpen(t, fsys), wal)
}

// TestTruncateReusedAfterFailedDirSync: Truncate removes a later segment
// and renames, then wal/'s sync fails; the same store writes new WAL within
// the same segment (no seal to sync wal/ again) and syncs. After a crash
// the WAL is the new one: the removed segment's stale frames never come
// back behind it (the start-up scan stops at the short segment, and Sync
// now syncs wal/ anyway). A regression test: this path had no hole.
func TestTruncateReusedAfterFailedDirSync(t *testing.T) {
	fsys := simdisk.New(simdisk.Options{})
	f := &failSyncDir{FS: fsys}
	s, err := Create(f, testDir, newControl(256, 0))
	if err != nil {
		t.Fatal(err)
	}
	old := frames(12, 1)
	if err := s.Write(0, old); err != nil {
		t.Fatal(err)
	}
	if err := s.Sync(); err != nil {
		t.Fatal(err)
	}
	cut, _ := frameBoundaryBelow(old, 300)
	f.dir, f.fail = path.Join(testDir, walDir), 1
	if err := s.Truncate(cut); err == nil || f.failed != 1 {
		t.Fatalf("Truncate despite the failed directory sync: %v", err)
	}
	fresh := frames(2, 100) // 66 bytes: stays in the segment cut is in
	if int(cut)%256+len(fresh) >= 256 {
		t.Fatalf("fresh WAL at %s would seal the segment", cut)
	}
	if err := s.Write(cut, fresh); err != nil {
		t.Fatal(err)
	}
	if err := s.Sync(); err != nil {
		t.Fatal(err)
	}
	_ = s.Close()
	checkWAL(t, crashAndOpen(t, fsys), append(bytes.Clone(old[:cut]), fresh...))
}

// frameBoundaryBelow returns the last frame boundary of wal at or below at.
func frameBoundaryBelow(wal []byte, at int) (lsn.LSN, error) {
	off := 0
	for off < len(wal) {
		n, ok := skproto.PeekFrameLen(wal[off:])
		if !ok || off+n > at {
			break
		}
		off += n
	}
	if off == 0 {
		return 0, errors.New("no frame boundary")
	}
	return lsn.LSN(off), nil
}
