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

const testDir = "t1/tl1"

func newControl(seg int64, start lsn.LSN) Control {
	return Control{TenantID: "t1", TimelineID: "tl1", SegmentBytes: seg,
		Acceptor: skproto.AcceptorState{Term: 1, History: skproto.TermHistory{{Term: 1, LSN: start}}, StartLSN: start}}
}

// frames builds n frames of varying sizes.
func frames(n, seed int) []byte {
	var b []byte
	for i := 0; i < n; i++ {
		b = skproto.AppendFrame(b, bytes.Repeat([]byte{byte(seed + i)}, 5+(i*37)%90))
	}
	return b
}

type fsCase struct {
	name string
	fs   func(t *testing.T) disk.FS
}

var fsCases = []fsCase{
	{"os", func(t *testing.T) disk.FS { return disk.Dir(t.TempDir()) }},
	{"sim", func(t *testing.T) disk.FS { return simdisk.New(simdisk.Options{}) }},
}

func TestWriteReopenRead(t *testing.T) {
	for _, fc := range fsCases {
		for _, start := range []lsn.LSN{0, 100, 256} {
			t.Run(fmt.Sprintf("%s/start=%d", fc.name, start), func(t *testing.T) {
				fsys := fc.fs(t)
				s, err := Create(fsys, testDir, newControl(256, start))
				if err != nil {
					t.Fatal(err)
				}
				wal := frames(40, 1) // several segments of 256 bytes
				// Write in uneven pieces cut on frame boundaries.
				for off := 0; off < len(wal); {
					n, _ := skproto.FrameLen(wal[off:])
					if err := s.Write(start+lsn.LSN(off), wal[off:off+n]); err != nil {
						t.Fatal(err)
					}
					off += n
				}
				if err := s.Sync(); err != nil {
					t.Fatal(err)
				}
				end := start + lsn.LSN(len(wal))
				if s.FlushLSN() != end {
					t.Fatalf("flush %s want %s", s.FlushLSN(), end)
				}
				_ = s.Close()
				s, err = Open(fsys, testDir)
				if err != nil {
					t.Fatal(err)
				}
				if s.FlushLSN() != end {
					t.Fatalf("after reopen flush %s want %s", s.FlushLSN(), end)
				}
				got, err := s.Read(start, end)
				if err != nil || !bytes.Equal(got, wal) {
					t.Fatalf("read back differs (err %v)", err)
				}
				ents, err := fsys.ReadDir(path.Join(testDir, walDir))
				if err != nil {
					t.Fatal(err)
				}
				last := uint64(end) / 256
				for _, e := range ents {
					var n uint64
					fmt.Sscanf(e.Name()[:16], "%X", &n)
					wantPartial := n == last
					if isPartial := len(e.Name()) > 16; isPartial != wantPartial {
						t.Errorf("segment %s: partial=%t want %t", e.Name(), isPartial, wantPartial)
					}
				}
				seg, err := s.ReadSegment(1)
				if err != nil || len(seg) != 256 {
					t.Fatalf("ReadSegment: %d bytes, %v", len(seg), err)
				}
				if _, err := s.ReadSegment(last); !errors.Is(err, ErrRange) {
					t.Fatalf("ReadSegment of partial: %v", err)
				}
			})
		}
	}
}

func TestTruncate(t *testing.T) {
	for _, fc := range fsCases {
		t.Run(fc.name, func(t *testing.T) {
			fsys := fc.fs(t)
			s, err := Create(fsys, testDir, newControl(128, 0))
			if err != nil {
				t.Fatal(err)
			}
			keep := frames(3, 1)
			tail := frames(20, 50)
			if err := s.Write(0, keep); err != nil {
				t.Fatal(err)
			}
			if err := s.Write(lsn.LSN(len(keep)), tail); err != nil {
				t.Fatal(err)
			}
			if err := s.Sync(); err != nil {
				t.Fatal(err)
			}
			if err := s.Truncate(lsn.LSN(len(keep))); err != nil {
				t.Fatal(err)
			}
			// New, shorter frames over the truncated region must not let
			// old frames reappear behind them.
			next := frames(1, 99)
			if err := s.Write(lsn.LSN(len(keep)), next); err != nil {
				t.Fatal(err)
			}
			if err := s.Sync(); err != nil {
				t.Fatal(err)
			}
			_ = s.Close()
			s, err = Open(fsys, testDir)
			if err != nil {
				t.Fatal(err)
			}
			want := lsn.LSN(len(keep) + len(next))
			if s.FlushLSN() != want {
				t.Fatalf("flush %s want %s", s.FlushLSN(), want)
			}
			if err := s.Truncate(want + 1); !errors.Is(err, ErrRange) {
				t.Fatalf("truncate beyond flush: %v", err)
			}
		})
	}
}

func TestCrashKeepsSynced(t *testing.T) {
	for seed := uint64(1); seed <= 20; seed++ {
		for _, tear := range []bool{false, true} {
			fsys := simdisk.New(simdisk.Options{})
			s, err := Create(fsys, testDir, newControl(200, 0))
			if err != nil {
				t.Fatal(err)
			}
			synced := frames(10, 1)
			if err := s.Write(0, synced); err != nil {
				t.Fatal(err)
			}
			if err := s.Sync(); err != nil {
				t.Fatal(err)
			}
			unsynced := frames(10, 70)
			if err := s.Write(lsn.LSN(len(synced)), unsynced); err != nil {
				t.Fatal(err)
			}
			fsys.Crash(rand.New(rand.NewPCG(seed, 0)), tear)
			s, err = Open(fsys, testDir)
			if err != nil {
				t.Fatalf("seed %d tear %t: %v", seed, tear, err)
			}
			f := s.FlushLSN()
			if f < lsn.LSN(len(synced)) {
				t.Fatalf("seed %d: lost synced WAL: flush %s", seed, f)
			}
			all := append(bytes.Clone(synced), unsynced...)
			got, err := s.Read(0, f)
			if err != nil || !bytes.Equal(got, all[:f]) {
				t.Fatalf("seed %d: WAL after crash differs (err %v)", seed, err)
			}
		}
	}
}

func TestCorruptionDetected(t *testing.T) {
	for _, tc := range []struct {
		name  string
		apply func(fsys *simdisk.FS)
	}{
		{"control bit flip", func(fsys *simdisk.FS) { fsys.Corrupt(path.Join(testDir, controlName), 20) }},
		{"committed segment missing", func(fsys *simdisk.FS) {
			_ = fsys.Remove(path.Join(testDir, walDir, SegmentName(0)+partialSuffix))
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fsys := simdisk.New(simdisk.Options{})
			ctl := newControl(1024, 0)
			s, err := Create(fsys, testDir, ctl)
			if err != nil {
				t.Fatal(err)
			}
			wal := frames(5, 1)
			if err := s.Write(0, wal); err != nil {
				t.Fatal(err)
			}
			if err := s.Sync(); err != nil {
				t.Fatal(err)
			}
			ctl.Acceptor.CommitLSN = lsn.LSN(len(wal))
			if err := s.PersistControl(ctl); err != nil {
				t.Fatal(err)
			}
			_ = s.Close()
			tc.apply(fsys)
			if _, err := Open(fsys, testDir); !errors.Is(err, ErrCorrupt) {
				t.Fatalf("Open = %v, want ErrCorrupt", err)
			}
		})
	}
}

func TestReadDetectsBitRot(t *testing.T) {
	t.Run("open", testBitRotAtOpen)
	t.Run("read", testBitRotAtRead)
}

func testBitRotAtRead(t *testing.T) {
	fsys := simdisk.New(simdisk.Options{})
	s, err := Create(fsys, testDir, newControl(1024, 0))
	if err != nil {
		t.Fatal(err)
	}
	wal := frames(5, 1)
	if err := s.Write(0, wal); err != nil {
		t.Fatal(err)
	}
	if err := s.Sync(); err != nil {
		t.Fatal(err)
	}
	if err := fsys.Corrupt(path.Join(testDir, walDir, SegmentName(0)+partialSuffix), 12); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Read(0, lsn.LSN(len(wal))); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Read = %v, want ErrCorrupt", err)
	}
}

func testBitRotAtOpen(t *testing.T) {
	fsys := simdisk.New(simdisk.Options{})
	s, err := Create(fsys, testDir, newControl(1024, 0))
	if err != nil {
		t.Fatal(err)
	}
	wal := frames(5, 1)
	if err := s.Write(0, wal); err != nil {
		t.Fatal(err)
	}
	if err := s.Sync(); err != nil {
		t.Fatal(err)
	}
	_ = s.Close()
	if err := fsys.Corrupt(path.Join(testDir, walDir, SegmentName(0)+partialSuffix), 12); err != nil {
		t.Fatal(err)
	}
	// Commit was never persisted, so Open scans from the start and stops
	// at the damage; reads of what was there are refused either way.
	s, err = Open(fsys, testDir)
	if err != nil {
		t.Fatal(err)
	}
	if s.FlushLSN() != 0 {
		t.Fatalf("flush %s: damaged frame accepted", s.FlushLSN())
	}
	if _, err := s.Read(0, lsn.LSN(len(wal))); !errors.Is(err, ErrRange) {
		t.Fatalf("Read past the damage = %v, want ErrRange", err)
	}
}

func TestControlRoundTrip(t *testing.T) {
	c := newControl(4096, 77)
	c.BackupLSN = 4096
	b, err := EncodeControl(c)
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodeControl(b)
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(got) != fmt.Sprint(c) {
		t.Fatalf("round trip: %+v != %+v", got, c)
	}
	for i := range b {
		m := bytes.Clone(b)
		m[i] ^= 0x10
		if _, err := DecodeControl(m); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("flip at %d not detected: %v", i, err)
		}
	}
}

func FuzzDecodeControl(f *testing.F) {
	b, _ := EncodeControl(newControl(4096, 0))
	f.Add(b)
	f.Add([]byte("SKCF"))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := DecodeControl(b)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error not classified: %v", err)
			}
			return
		}
		re, err := EncodeControl(c)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := DecodeControl(re); err != nil {
			t.Fatalf("re-encoded control does not decode: %v", err)
		}
	})
}

func TestReadFrames(t *testing.T) {
	fsys := simdisk.New(simdisk.Options{})
	s, err := Create(fsys, testDir, newControl(256, 0))
	if err != nil {
		t.Fatal(err)
	}
	wal := frames(30, 3)
	if err := s.Write(0, wal); err != nil {
		t.Fatal(err)
	}
	var got []byte
	for pos := lsn.LSN(0); pos < lsn.LSN(len(wal)); {
		b, err := s.ReadFrames(pos, lsn.LSN(len(wal)), 100)
		if err != nil {
			t.Fatal(err)
		}
		if len(b) == 0 {
			t.Fatalf("no progress at %s", pos)
		}
		if skproto.ValidPrefix(b) != len(b) {
			t.Fatal("partial frame returned")
		}
		got = append(got, b...)
		pos += lsn.LSN(len(b))
	}
	if !bytes.Equal(got, wal) {
		t.Fatal("chunks differ from WAL")
	}
}

// TestOpenMakesScannedWALDurable: frames that reached the page cache but
// were never synced (a write that failed after it was applied) are accepted
// by the start-up scan, so Open must make them durable before anyone can
// acknowledge WAL after them — including a segment it seals because the
// accepted frame ends exactly at the segment's end.
func TestOpenMakesScannedWALDurable(t *testing.T) {
	fsys := simdisk.New(simdisk.Options{})
	s, err := Create(fsys, testDir, newControl(256, 0))
	if err != nil {
		t.Fatal(err)
	}
	first := skproto.AppendFrame(nil, bytes.Repeat([]byte{1}, 100))
	if err := s.Write(0, first); err != nil {
		t.Fatal(err)
	}
	if err := s.Sync(); err != nil {
		t.Fatal(err)
	}
	_ = s.Close()
	// The applied-but-failed write: a frame that fills segment 0 exactly,
	// in the page cache only.
	fill := skproto.AppendFrame(nil, bytes.Repeat([]byte{2}, 256-len(first)-skproto.FrameHeaderBytes))
	f, err := fsys.OpenRW(path.Join(testDir, walDir, SegmentName(0)+partialSuffix))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt(fill, int64(len(first))); err != nil {
		t.Fatal(err)
	}
	_ = f.Close()
	s, err = Open(fsys, testDir)
	if err != nil {
		t.Fatal(err)
	}
	if s.FlushLSN() != 256 {
		t.Fatalf("open accepted %s, want 0/100", s.FlushLSN())
	}
	_ = s.Close()
	fsys.Crash(rand.New(rand.NewPCG(1, 1)), false)
	s, err = Open(fsys, testDir)
	if err != nil {
		t.Fatal(err)
	}
	if s.FlushLSN() != 256 {
		t.Fatalf("WAL accepted at open lost in a crash: flush now %s", s.FlushLSN())
	}
}

// TestReadFramesChecksums: ReadFrames refuses a flipped payload byte; with
// the planted sk-serve-unchecked bug it serves it (which is what the wal
// scenario's served-WAL checker must catch).
func TestReadFramesChecksums(t *testing.T) {
	for _, tc := range []struct {
		name      string
		unchecked bool
		wantErr   error
	}{{"checked", false, ErrCorrupt}, {"planted bug", true, nil}} {
		t.Run(tc.name, func(t *testing.T) {
			fsys := simdisk.New(simdisk.Options{})
			s, err := Create(fsys, testDir, newControl(1024, 0))
			if err != nil {
				t.Fatal(err)
			}
			s.SetUncheckedReads(tc.unchecked)
			wal := frames(5, 1)
			if err := s.Write(0, wal); err != nil {
				t.Fatal(err)
			}
			if err := s.Sync(); err != nil {
				t.Fatal(err)
			}
			if err := fsys.Corrupt(path.Join(testDir, walDir, SegmentName(0)+partialSuffix), 12); err != nil {
				t.Fatal(err)
			}
			b, err := s.ReadFrames(0, lsn.LSN(len(wal)), 1<<20)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("ReadFrames = %v, want %v", err, tc.wantErr)
			}
			if tc.wantErr == nil && (len(b) != len(wal) || bytes.Equal(b, wal)) {
				t.Fatalf("unchecked read returned %d bytes, equal to the WAL: %v", len(b), bytes.Equal(b, wal))
			}
		})
	}
}

// TestReadFramesBoundsCutFrames: a read whose end falls inside a frame, or
// whose byte limit is below a frame header, returns the whole frames before
// the cut (possibly none) instead of reporting the intact WAL as corrupt —
// a client's odd bounds must never take a timeline out of service. Damage
// is still reported.
func TestReadFramesBoundsCutFrames(t *testing.T) {
	fsys := simdisk.New(simdisk.Options{})
	s, err := Create(fsys, testDir, newControl(1024, 0))
	if err != nil {
		t.Fatal(err)
	}
	wal := frames(6, 1)
	if err := s.Write(0, wal); err != nil {
		t.Fatal(err)
	}
	if err := s.Sync(); err != nil {
		t.Fatal(err)
	}
	f0, _ := skproto.PeekFrameLen(wal)
	f1, _ := skproto.PeekFrameLen(wal[f0:])
	for _, tc := range []struct {
		name     string
		from, to lsn.LSN
		max      int
		want     int // bytes returned
	}{
		{"end inside the first frame", 0, lsn.LSN(f0 - 1), 1 << 20, 0},
		{"end inside the second frame", 0, lsn.LSN(f0 + 3), 1 << 20, f0},
		{"end inside a header", 0, lsn.LSN(f0 + 2), 1 << 20, f0},
		{"limit below a header", 0, lsn.LSN(len(wal)), 3, f0},
		{"limit inside the second frame", 0, lsn.LSN(len(wal)), f0 + 1, f0},
		{"limit and end inside frames", lsn.LSN(f0), lsn.LSN(f0 + f1 + 1), 1, f1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, err := s.ReadFrames(tc.from, tc.to, tc.max)
			if err != nil {
				t.Fatalf("ReadFrames(%s, %s, %d) = %v", tc.from, tc.to, tc.max, err)
			}
			if !bytes.Equal(b, wal[tc.from:int(tc.from)+tc.want]) {
				t.Fatalf("ReadFrames(%s, %s, %d) returned %d bytes, want the %d before the cut", tc.from, tc.to, tc.max, len(b), tc.want)
			}
		})
	}
	if err := fsys.Corrupt(path.Join(testDir, walDir, SegmentName(0)+partialSuffix), int64(f0+f1+9)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ReadFrames(lsn.LSN(f0+f1), lsn.LSN(len(wal)-1), 1<<20); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("damaged frame with the end inside a later frame: %v, want ErrCorrupt", err)
	}
}
