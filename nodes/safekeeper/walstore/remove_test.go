package walstore

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"path"
	"testing"

	"github.com/stratadb/strata/disk"
	"github.com/stratadb/strata/engine/lsn"
	"github.com/stratadb/strata/engine/skproto"
	"github.com/stratadb/strata/sim/simdisk"
)

// boundaryAtOrBelow is the last frame boundary of wal (written at start)
// at or below at.
func boundaryAtOrBelow(t *testing.T, wal []byte, start, at lsn.LSN) lsn.LSN {
	t.Helper()
	pos := start
	for off := 0; off < len(wal); {
		n, ok := skproto.PeekFrameLen(wal[off:])
		if !ok || pos+lsn.LSN(n) > at {
			break
		}
		off += n
		pos += lsn.LSN(n)
	}
	return pos
}

// writeCommitted writes wal at start, syncs and persists a control file
// with everything committed.
func writeCommitted(t *testing.T, s *Store, start lsn.LSN, wal []byte) Control {
	t.Helper()
	if err := s.Write(start, wal); err != nil {
		t.Fatal(err)
	}
	if err := s.Sync(); err != nil {
		t.Fatal(err)
	}
	c := s.Control()
	c.Acceptor.CommitLSN = start + lsn.LSN(len(wal))
	if err := s.PersistControl(c); err != nil {
		t.Fatal(err)
	}
	return c
}

func segmentNames(t *testing.T, fsys disk.FS) []string {
	t.Helper()
	ents, err := fsys.ReadDir(path.Join(testDir, walDir))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		out = append(out, e.Name())
	}
	return out
}

// TestRemoveBelow: segments wholly below the horizon go, the one holding it
// stays; reads below it are ErrRemoved, above it read as before; a reopen
// accepts the missing prefix, and the horizon never moves back.
func TestRemoveBelow(t *testing.T) {
	for _, fc := range fsCases {
		t.Run(fc.name, func(t *testing.T) {
			fsys := fc.fs(t)
			const start = lsn.LSN(100)
			s, err := Create(fsys, testDir, newControl(256, start))
			if err != nil {
				t.Fatal(err)
			}
			wal := frames(60, 1) // about 12 segments
			end := start + lsn.LSN(len(wal))
			c := writeCommitted(t, s, start, wal)
			h := boundaryAtOrBelow(t, wal, start, 5*256+40)
			hseg := uint64(h) / 256
			if hseg < 4 {
				t.Fatalf("layout: horizon %s in segment %d", h, hseg)
			}
			c.HorizonLSN = h
			n, err := s.RemoveBelow(c)
			if err != nil || n != int(hseg) {
				t.Fatalf("removed %d segments (%v), want %d", n, err, hseg)
			}
			names := segmentNames(t, fsys)
			if names[0] != SegmentName(hseg) {
				t.Fatalf("first segment left is %s, want %s", names[0], SegmentName(hseg))
			}
			check := func(s *Store) {
				t.Helper()
				if _, err := s.Read(h-1, end); !errors.Is(err, ErrRemoved) {
					t.Fatalf("read below the horizon: %v, want ErrRemoved", err)
				}
				if _, err := s.ReadFrames(start, end, 1000); !errors.Is(err, ErrRemoved) {
					t.Fatalf("ReadFrames below the horizon: %v, want ErrRemoved", err)
				}
				if _, err := s.ReadSegment(hseg - 1); !errors.Is(err, ErrRemoved) {
					t.Fatalf("ReadSegment below the horizon: %v, want ErrRemoved", err)
				}
				got, err := s.Read(h, end)
				if err != nil || !bytes.Equal(got, wal[h-start:]) {
					t.Fatalf("read from the horizon differs (%v)", err)
				}
				if _, err := s.ReadSegment(hseg); err != nil {
					t.Fatalf("segment holding the horizon: %v", err)
				}
			}
			check(s)
			_ = s.Close()
			s, err = Open(fsys, testDir)
			if err != nil {
				t.Fatalf("reopen after removal: %v", err)
			}
			if s.FlushLSN() != end || s.HorizonLSN() != h {
				t.Fatalf("reopened at flush %s horizon %s, want %s and %s", s.FlushLSN(), s.HorizonLSN(), end, h)
			}
			check(s)
			back := s.Control()
			back.HorizonLSN = h - 1
			if _, err := s.RemoveBelow(back); !errors.Is(err, ErrRange) {
				t.Fatalf("horizon moved back: %v, want ErrRange", err)
			}
			above := s.Control()
			above.HorizonLSN = end + 1
			if _, err := s.RemoveBelow(above); !errors.Is(err, ErrRange) {
				t.Fatalf("horizon above commit: %v, want ErrRange", err)
			}
			// Writing on after removal, and a truncation above the
			// horizon, work as before.
			more := frames(3, 90)
			if err := s.Write(end, more); err != nil {
				t.Fatal(err)
			}
			if err := s.Truncate(end); err != nil {
				t.Fatal(err)
			}
			if err := s.Truncate(h - 1); !errors.Is(err, ErrRange) {
				t.Fatalf("truncate below the horizon: %v", err)
			}
		})
	}
}

// TestRemoveCrashSafe: the horizon is durable before any segment goes. A
// crash right after the control file was replaced leaves segments below
// the horizon behind, which Open removes; a segment missing above the
// horizon is still corruption.
func TestRemoveCrashSafe(t *testing.T) {
	fsys := simdisk.New(simdisk.Options{})
	s, err := Create(fsys, testDir, newControl(256, 0))
	if err != nil {
		t.Fatal(err)
	}
	wal := frames(60, 3)
	c := writeCommitted(t, s, 0, wal)
	h := boundaryAtOrBelow(t, wal, 0, 3*256+10)
	// What RemoveBelow does first: persist the horizon. Then crash.
	c.HorizonLSN = h
	if err := s.PersistControl(c); err != nil {
		t.Fatal(err)
	}
	fsys.Crash(rand.New(rand.NewPCG(1, 0)), true)
	s, err = Open(fsys, testDir)
	if err != nil {
		t.Fatal(err)
	}
	hseg := uint64(h) / 256
	if names := segmentNames(t, fsys); hseg == 0 || names[0] != SegmentName(hseg) {
		t.Fatalf("segments after reopen start at %s, want %s (leftovers removed)", names[0], SegmentName(hseg))
	}
	_ = s.Close()
	// A segment the horizon does not account for is missing: corrupt.
	if err := fsys.Remove(path.Join(testDir, walDir, SegmentName(hseg+1))); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(fsys, testDir); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("open with a committed segment missing above the horizon: %v, want ErrCorrupt", err)
	}
}

// TestRemoveHorizonAboveCommitIsCorrupt: a control file whose horizon is
// above its commit LSN cannot have been written by RemoveBelow.
func TestRemoveHorizonAboveCommitIsCorrupt(t *testing.T) {
	fsys := simdisk.New(simdisk.Options{})
	s, err := Create(fsys, testDir, newControl(256, 0))
	if err != nil {
		t.Fatal(err)
	}
	c := writeCommitted(t, s, 0, frames(20, 1))
	c.HorizonLSN = c.Acceptor.CommitLSN + 1
	if err := s.PersistControl(c); err != nil {
		t.Fatal(err)
	}
	_ = s.Close()
	if _, err := Open(fsys, testDir); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("open: %v, want ErrCorrupt", err)
	}
}
