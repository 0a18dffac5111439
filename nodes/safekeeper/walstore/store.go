package walstore

import (
	"errors"
	"fmt"
	"io"
	"path"
	"strconv"
	"strings"

	"github.com/stratadb/strata/disk"
	"github.com/stratadb/strata/engine/lsn"
	"github.com/stratadb/strata/engine/skproto"
	"github.com/stratadb/strata/nodes/safekeeper/skapi"
)

const (
	controlName   = "safekeeper.control"
	walDir        = "wal"
	partialSuffix = ".partial"
)

// MaxSegmentBytes bounds the segment size (a segment is read whole for
// offload).
const MaxSegmentBytes = 1 << 30

// Store is one timeline's durable state. It is not safe for concurrent use;
// the safekeeper serialises access per timeline.
type Store struct {
	fs      disk.FS
	dir     string
	ctl     Control
	flush   lsn.LSN
	partial disk.File // open handle on the segment holding flush
	partSeg uint64
	dirty   bool // written since the last Sync
	// walDirDirty and ctlDirDirty: an entry of wal/ (a segment created,
	// sealed or removed) or of the timeline directory (the control file
	// replaced) may not be durable yet, because the directory sync that
	// should follow it failed or has not run. Sync and PersistControl sync
	// the directory first, so nothing acknowledged can rest on an entry a
	// crash would drop.
	walDirDirty, ctlDirDirty bool
	// unchecked is the planted sk-serve-unchecked bug: ReadFrames cuts on
	// declared frame lengths without verifying checksums.
	unchecked bool
}

// SetUncheckedReads switches on the planted sk-serve-unchecked bug (only
// the simulator does): ReadFrames no longer verifies frame checksums.
func (s *Store) SetUncheckedReads(on bool) { s.unchecked = on }

// framePrefix is ValidPrefix, or with the planted bug the prefix of whole
// frames by declared length alone.
func (s *Store) framePrefix(b []byte) int {
	if !s.unchecked {
		return skproto.ValidPrefix(b)
	}
	off := 0
	for off < len(b) {
		n, ok := skproto.PeekFrameLen(b[off:])
		if !ok || off+n > len(b) {
			break
		}
		off += n
	}
	return off
}

// SegmentName is the file name of segment segno (without .partial); the
// offloaded object has the same name (skapi.RemoteSegmentKey).
func SegmentName(segno uint64) string { return skapi.SegmentName(segno) }

// Create makes a new timeline directory with control c and an empty WAL at
// c.Acceptor.StartLSN, all durable.
func Create(fsys disk.FS, dir string, c Control) (*Store, error) {
	if c.SegmentBytes <= 0 || c.SegmentBytes > MaxSegmentBytes {
		return nil, fmt.Errorf("walstore: segment size %d out of (0, %d]", c.SegmentBytes, MaxSegmentBytes)
	}
	if err := disk.MkdirAllDurable(fsys, path.Join(dir, walDir)); err != nil {
		return nil, fmt.Errorf("walstore: create %s: %w", dir, err)
	}
	c.Acceptor.CommitLSN = max(c.Acceptor.CommitLSN, c.Acceptor.StartLSN)
	s := &Store{fs: fsys, dir: dir, ctl: c, flush: c.Acceptor.StartLSN}
	if err := s.openPartial(s.segno(s.flush), true); err != nil {
		return nil, err
	}
	if err := s.syncWalDir(); err != nil {
		return nil, err
	}
	if err := s.PersistControl(c); err != nil {
		return nil, err
	}
	return s, nil
}

// Exists reports whether dir holds a timeline.
func Exists(fsys disk.FS, dir string) (bool, error) {
	_, err := fsys.Stat(path.Join(dir, controlName))
	if errors.Is(err, disk.ErrNotExist) {
		return false, nil
	}
	return err == nil, err
}

// Open loads a timeline: it verifies the control file, finds the end of the
// valid WAL by scanning frames from the persisted commit LSN, and cuts the
// files back to exactly that end.
func Open(fsys disk.FS, dir string) (*Store, error) {
	b, err := disk.ReadFile(fsys, path.Join(dir, controlName))
	if errors.Is(err, disk.ErrNotExist) {
		return nil, fmt.Errorf("%w: %s", ErrNotFound, dir)
	}
	if err != nil {
		return nil, fmt.Errorf("walstore: read control %s: %w", dir, err)
	}
	c, err := DecodeControl(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", dir, err)
	}
	if c.HorizonLSN > max(c.Acceptor.CommitLSN, c.Acceptor.StartLSN) {
		return nil, fmt.Errorf("%w: %s: removal horizon %s above the commit LSN %s", ErrCorrupt, dir, c.HorizonLSN, c.Acceptor.CommitLSN)
	}
	s := &Store{fs: fsys, dir: dir, ctl: c}
	// The control file may have been renamed into place by an incarnation
	// whose directory sync then failed: it is used from now on, so its
	// entry must be durable first (normalize does the same for wal/).
	if err := fsys.SyncDir(dir); err != nil {
		return nil, fmt.Errorf("walstore: sync %s: %w", dir, err)
	}
	segs, err := s.listSegments()
	if err != nil {
		return nil, err
	}
	if err := s.checkCommittedPresent(segs); err != nil {
		return nil, err
	}
	scanFrom := max(c.Acceptor.CommitLSN, s.base())
	end := scanFrom
	if len(segs) > 0 {
		last := segs[len(segs)-1]
		end = max(end, lsn.LSN((last.segno+1)*uint64(c.SegmentBytes)))
	}
	data, err := s.readRaw(segs, scanFrom, end)
	if err != nil {
		return nil, err
	}
	s.flush = scanFrom + lsn.LSN(skproto.ValidPrefix(data))
	if s.flush < c.Acceptor.CommitLSN {
		return nil, fmt.Errorf("%w: %s: WAL ends at %s below committed %s", ErrCorrupt, dir, s.flush, c.Acceptor.CommitLSN)
	}
	if err := s.normalize(segs); err != nil {
		return nil, err
	}
	// The scan may have accepted frames that reached the page cache but
	// were never synced (a write that failed after it was applied, say):
	// they are part of the flushed WAL now, so make them durable.
	for _, sf := range segs {
		if sf.segno >= s.segno(scanFrom) && sf.segno < s.segno(s.flush) {
			if err := s.syncSegment(sf.segno); err != nil {
				return nil, err
			}
		}
	}
	return s, nil
}

func (s *Store) syncSegment(segno uint64) error {
	f, err := s.fs.OpenRW(s.segPath(segno, false))
	if err != nil {
		return fmt.Errorf("walstore: open segment %s: %w", SegmentName(segno), err)
	}
	defer f.Close()
	if err := f.Sync(); err != nil {
		return fmt.Errorf("walstore: sync segment %s: %w", SegmentName(segno), err)
	}
	return nil
}

// checkCommittedPresent verifies that every segment holding committed WAL
// from the base (start or removal horizon) exists and that the last one
// reaches the commit LSN: scanning starts at the commit LSN, so a lost file
// below it would otherwise go unnoticed. Segments wholly below the removal
// horizon are legitimately absent.
func (s *Store) checkCommittedPresent(segs []segFile) error {
	start, commit := s.base(), s.ctl.Acceptor.CommitLSN
	if commit <= start {
		return nil
	}
	have := map[uint64]segFile{}
	for _, sf := range segs {
		have[sf.segno] = sf
	}
	last := s.segno(commit - 1)
	for n := s.segno(start); n <= last; n++ {
		if _, ok := have[n]; !ok {
			return fmt.Errorf("%w: %s: segment %s holding committed WAL is missing", ErrCorrupt, s.dir, SegmentName(n))
		}
	}
	fi, err := s.fs.Stat(path.Join(s.dir, walDir, have[last].name))
	if err != nil {
		return fmt.Errorf("walstore: stat segment: %w", err)
	}
	if need := int64(commit-1)%s.ctl.SegmentBytes + 1; fi.Size() < need {
		return fmt.Errorf("%w: %s: segment %s is %d bytes, committed WAL needs %d", ErrCorrupt, s.dir, SegmentName(last), fi.Size(), need)
	}
	return nil
}

type segFile struct {
	segno   uint64
	partial bool
	name    string
}

func (s *Store) listSegments() ([]segFile, error) {
	ents, err := s.fs.ReadDir(path.Join(s.dir, walDir))
	if err != nil {
		return nil, fmt.Errorf("walstore: list %s: %w", s.dir, err)
	}
	var out []segFile
	for _, e := range ents {
		name := e.Name()
		base, partial := strings.CutSuffix(name, partialSuffix)
		n, err := strconv.ParseUint(base, 16, 64)
		if err != nil || len(base) != 16 {
			continue // temp files and strangers are ignored
		}
		if len(out) > 0 && out[len(out)-1].segno == n {
			// Both "n" and "n.partial": a crash between rename steps;
			// the sealed one is the complete copy.
			if !partial {
				out[len(out)-1] = segFile{segno: n, name: name}
			}
			continue
		}
		out = append(out, segFile{segno: n, partial: partial, name: name})
	}
	return out, nil
}

func (s *Store) segno(l lsn.LSN) uint64 { return uint64(l) / uint64(s.ctl.SegmentBytes) }

// base is where the WAL held starts: the timeline's start LSN, or the
// removal horizon once WAL below it was removed.
func (s *Store) base() lsn.LSN { return max(s.ctl.Acceptor.StartLSN, s.ctl.HorizonLSN) }

// checkReadFrom refuses a read starting below the WAL held: ErrRemoved
// below the removal horizon, ErrRange below the start LSN.
func (s *Store) checkReadFrom(from, to lsn.LSN) error {
	if h := s.ctl.HorizonLSN; from < h {
		return fmt.Errorf("%w: read from %s below the removal horizon %s (the WAL is offloaded to object storage)", ErrRemoved, from, h)
	}
	if from > to || from < s.ctl.Acceptor.StartLSN {
		return fmt.Errorf("%w: read %s..%s, WAL is [%s, %s)", ErrRange, from, to, s.ctl.Acceptor.StartLSN, s.flush)
	}
	return nil
}

func (s *Store) segPath(segno uint64, partial bool) string {
	name := SegmentName(segno)
	if partial {
		name += partialSuffix
	}
	return path.Join(s.dir, walDir, name)
}

// readRaw reads [from, to) from the segment files, stopping early (without
// error) at the first missing segment or short file.
func (s *Store) readRaw(segs []segFile, from, to lsn.LSN) ([]byte, error) {
	byNo := map[uint64]segFile{}
	for _, sf := range segs {
		byNo[sf.segno] = sf
	}
	var out []byte
	for pos := from; pos < to; {
		n := s.segno(pos)
		sf, ok := byNo[n]
		if !ok {
			break
		}
		segEnd := lsn.LSN((n + 1) * uint64(s.ctl.SegmentBytes))
		want := min(to, segEnd) - pos
		f, err := s.fs.Open(path.Join(s.dir, walDir, sf.name))
		if err != nil {
			return nil, fmt.Errorf("walstore: open segment %s: %w", sf.name, err)
		}
		buf := make([]byte, want)
		k, err := f.ReadAt(buf, int64(pos)%s.ctl.SegmentBytes)
		_ = f.Close()
		out = append(out, buf[:k]...)
		if k < int(want) {
			if err != nil && !isEOF(err) {
				return nil, fmt.Errorf("walstore: read segment %s: %w", sf.name, err)
			}
			break
		}
		pos += want
	}
	return out, nil
}

func isEOF(err error) bool { return errors.Is(err, io.EOF) }

// normalize makes the files match the flush LSN exactly: earlier segments
// sealed, the flush segment partial and cut at flush, later ones removed;
// segments wholly below the removal horizon that a crash left behind
// (RemoveBelow persists the horizon first) are removed too.
func (s *Store) normalize(segs []segFile) error {
	s.walDirDirty = true // removes and renames below
	fseg := s.segno(s.flush)
	hseg := s.segno(s.ctl.HorizonLSN)
	for _, sf := range segs {
		switch {
		case sf.segno < hseg:
			if err := s.fs.Remove(s.segPath(sf.segno, sf.partial)); err != nil {
				return fmt.Errorf("walstore: remove segment %s below the horizon: %w", sf.name, err)
			}
		case sf.segno > fseg:
			if err := s.fs.Remove(s.segPath(sf.segno, sf.partial)); err != nil {
				return fmt.Errorf("walstore: remove stale segment %s: %w", sf.name, err)
			}
		case sf.segno < fseg && sf.partial:
			if err := s.fs.Rename(s.segPath(sf.segno, true), s.segPath(sf.segno, false)); err != nil {
				return fmt.Errorf("walstore: seal segment %s: %w", sf.name, err)
			}
		case sf.segno == fseg && !sf.partial:
			if err := s.fs.Rename(s.segPath(sf.segno, false), s.segPath(sf.segno, true)); err != nil {
				return fmt.Errorf("walstore: reopen segment %s: %w", sf.name, err)
			}
		}
	}
	if err := s.openPartial(fseg, false); err != nil {
		return err
	}
	if err := s.partial.Truncate(int64(s.flush) % s.ctl.SegmentBytes); err != nil {
		return fmt.Errorf("walstore: cut WAL at %s: %w", s.flush, err)
	}
	if err := s.partial.Sync(); err != nil {
		return fmt.Errorf("walstore: sync: %w", err)
	}
	return s.syncWalDir()
}

// syncWalDir makes wal/'s entries durable and clears walDirDirty.
func (s *Store) syncWalDir() error {
	if err := s.fs.SyncDir(path.Join(s.dir, walDir)); err != nil {
		return fmt.Errorf("walstore: sync %s/%s: %w", s.dir, walDir, err)
	}
	s.walDirDirty = false
	return nil
}

// syncDirs syncs the directories whose entries changed without a
// successful sync since.
func (s *Store) syncDirs() error {
	if s.walDirDirty {
		if err := s.syncWalDir(); err != nil {
			return err
		}
	}
	if s.ctlDirDirty {
		if err := s.fs.SyncDir(s.dir); err != nil {
			return fmt.Errorf("walstore: sync %s: %w", s.dir, err)
		}
		s.ctlDirDirty = false
	}
	return nil
}

// openPartial opens (creating if needed) segment segno as the partial one.
func (s *Store) openPartial(segno uint64, create bool) error {
	if s.partial != nil {
		_ = s.partial.Close()
		s.partial = nil
	}
	name := s.segPath(segno, true)
	f, err := s.fs.OpenRW(name)
	if errors.Is(err, disk.ErrNotExist) || create {
		s.walDirDirty = true
		f, err = s.fs.Create(name)
	}
	if err != nil {
		return fmt.Errorf("walstore: open %s: %w", name, err)
	}
	s.partial, s.partSeg = f, segno
	return nil
}

// Control returns the last persisted control state.
func (s *Store) Control() Control {
	c := s.ctl
	c.Acceptor = c.Acceptor.Clone()
	return c
}

// FlushLSN is the end of the WAL written (durable after Sync).
func (s *Store) FlushLSN() lsn.LSN { return s.flush }

// SegmentBytes is the segment size.
func (s *Store) SegmentBytes() int64 { return s.ctl.SegmentBytes }

// PersistControl durably replaces the control file.
func (s *Store) PersistControl(c Control) error {
	b, err := EncodeControl(c)
	if err != nil {
		return err
	}
	if err := s.syncDirs(); err != nil {
		return err
	}
	// Dirty until WriteFileAtomic's own directory sync succeeds: if it
	// fails after the rename, the new file is what every reader sees.
	s.ctlDirDirty = true
	if err := disk.WriteFileAtomic(s.fs, path.Join(s.dir, controlName), b); err != nil {
		return fmt.Errorf("walstore: persist control: %w", err)
	}
	s.ctlDirDirty = false
	s.ctl = c
	s.ctl.Acceptor = c.Acceptor.Clone()
	return nil
}

// Write appends data at the flush LSN. It is durable only after Sync.
// Crossing a segment end seals the full segment (synced, renamed) and
// starts the next.
func (s *Store) Write(at lsn.LSN, data []byte) error {
	if at != s.flush {
		return fmt.Errorf("%w: write at %s, WAL ends at %s", ErrRange, at, s.flush)
	}
	for len(data) > 0 {
		off := int64(s.flush) % s.ctl.SegmentBytes
		n := min(int64(len(data)), s.ctl.SegmentBytes-off)
		if _, err := s.partial.WriteAt(data[:n], off); err != nil {
			return fmt.Errorf("walstore: write at %s: %w", s.flush, err)
		}
		s.dirty = true
		s.flush += lsn.LSN(n)
		data = data[n:]
		if off+n == s.ctl.SegmentBytes {
			if err := s.seal(); err != nil {
				return err
			}
		}
	}
	return nil
}

func (s *Store) seal() error {
	if err := s.partial.Sync(); err != nil {
		return fmt.Errorf("walstore: sync segment: %w", err)
	}
	_ = s.partial.Close()
	s.partial = nil
	done := s.partSeg
	s.walDirDirty = true
	if err := s.fs.Rename(s.segPath(done, true), s.segPath(done, false)); err != nil {
		return fmt.Errorf("walstore: seal segment %s: %w", SegmentName(done), err)
	}
	if err := s.openPartial(done+1, true); err != nil {
		return err
	}
	return s.syncWalDir()
}

// Sync makes every Write durable, and every directory entry they rest on
// (a segment created or sealed even by a Write whose directory sync
// failed).
func (s *Store) Sync() error {
	if err := s.syncDirs(); err != nil {
		return err
	}
	if !s.dirty {
		return nil
	}
	if err := s.partial.Sync(); err != nil {
		return fmt.Errorf("walstore: sync: %w", err)
	}
	s.dirty = false
	return nil
}

// Truncate durably cuts the WAL back to to (≤ flush).
func (s *Store) Truncate(to lsn.LSN) error {
	if to > s.flush || to < s.base() {
		return fmt.Errorf("%w: truncate to %s, WAL is [%s, %s)", ErrRange, to, s.base(), s.flush)
	}
	segs, err := s.listSegments()
	if err != nil {
		return err
	}
	s.flush = to
	s.dirty = false
	return s.normalize(segs)
}

// Read returns WAL [from, to), which must lie within the flushed WAL and
// start on a frame boundary; damaged frames are reported as ErrCorrupt.
func (s *Store) Read(from, to lsn.LSN) ([]byte, error) {
	if err := s.checkReadFrom(from, to); err != nil {
		return nil, err
	}
	if to > s.flush {
		return nil, fmt.Errorf("%w: read %s..%s, WAL is [%s, %s)", ErrRange, from, to, s.base(), s.flush)
	}
	segs, err := s.listSegments()
	if err != nil {
		return nil, err
	}
	data, err := s.readRaw(segs, from, to)
	if err != nil {
		return nil, err
	}
	if len(data) != int(to-from) || skproto.ValidPrefix(data) != len(data) {
		return nil, fmt.Errorf("%w: %s: WAL %s..%s fails its frame checks", ErrCorrupt, s.dir, from, to)
	}
	return data, nil
}

// ReadSegment returns the whole of sealed segment segno (for offload).
func (s *Store) ReadSegment(segno uint64) ([]byte, error) {
	if segno >= s.segno(s.flush) {
		return nil, fmt.Errorf("%w: segment %s is not sealed", ErrRange, SegmentName(segno))
	}
	if segno < s.segno(s.ctl.HorizonLSN) {
		return nil, fmt.Errorf("%w: segment %s is below the removal horizon %s", ErrRemoved, SegmentName(segno), s.ctl.HorizonLSN)
	}
	b, err := disk.ReadFile(s.fs, s.segPath(segno, false))
	if err != nil {
		return nil, fmt.Errorf("walstore: read segment %s: %w", SegmentName(segno), err)
	}
	if int64(len(b)) != s.ctl.SegmentBytes {
		return nil, fmt.Errorf("%w: segment %s has %d bytes", ErrCorrupt, SegmentName(segno), len(b))
	}
	return b, nil
}

// Close releases the open segment.
func (s *Store) Close() error {
	if s.partial == nil {
		return nil
	}
	err := s.partial.Close()
	s.partial = nil
	return err
}

// ReadFrames returns whole frames of flushed WAL from from (a frame
// boundary) towards to, at most maxBytes unless the first frame alone is
// larger. A frame that to (or maxBytes) cuts is left out: to need not be a
// frame boundary, and an empty result means no whole frame fits. Damaged
// frames are reported as ErrCorrupt, never returned.
func (s *Store) ReadFrames(from, to lsn.LSN, maxBytes int) ([]byte, error) {
	to = min(to, s.flush)
	if err := s.checkReadFrom(from, to); err != nil {
		return nil, err
	}
	// At least a frame header, so that the first frame's length is known.
	want := min(to, from+lsn.LSN(max(maxBytes, skproto.FrameHeaderBytes)))
	segs, err := s.listSegments()
	if err != nil {
		return nil, err
	}
	data, err := s.readRaw(segs, from, want)
	if err != nil {
		return nil, err
	}
	if len(data) > 0 {
		if fl, ok := skproto.PeekFrameLen(data); ok && fl > len(data) && from+lsn.LSN(fl) <= to {
			if data, err = s.readRaw(segs, from, from+lsn.LSN(fl)); err != nil {
				return nil, err
			}
			want = from + lsn.LSN(fl)
		}
	}
	n := s.framePrefix(data)
	if len(data) != int(want-from) || (n < len(data) && !s.cutTail(data[n:], from, from+lsn.LSN(n), want, to)) {
		return nil, fmt.Errorf("%w: %s: WAL at %s fails its frame checks", ErrCorrupt, s.dir, from+lsn.LSN(n))
	}
	return data[:n], nil
}

// cutTail reports whether tail, the bytes [at, want) after the whole valid
// frames of a read [from, to), is a frame the read's bounds cut rather than
// damage: a frame that runs past to (its header sound and its end within
// the WAL, or its header itself cut by to), or anything after at least one
// whole frame when maxBytes cut the read. A damaged frame there is found by
// the read that starts at it.
func (s *Store) cutTail(tail []byte, from, at, want, to lsn.LSN) bool {
	if want == to {
		if len(tail) < skproto.FrameHeaderBytes {
			return true
		}
		if fl, ok := skproto.PeekFrameLen(tail); ok && fl > len(tail) && at+lsn.LSN(fl) <= s.flush {
			return true
		}
	}
	return want < to && at > from
}

// RemoveBelow durably moves the removal horizon to c.HorizonLSN (a frame
// boundary at or below c's commit LSN, never below the current horizon)
// and removes every segment wholly below it; c is the whole control state
// to persist (the caller's current acceptor state, backup LSN, ...). It
// returns the number of segments removed.
//
// Crash safety: the control file naming the new horizon is durable before
// any segment is removed, so a restart either finds the old horizon with
// every segment present, or the new one with some segments below it still
// there (Open removes them); never a missing segment the control file
// does not account for. Only sealed segments are removed: the segment
// holding the horizon is kept whole.
func (s *Store) RemoveBelow(c Control) (int, error) {
	h := c.HorizonLSN
	switch {
	case h < s.ctl.HorizonLSN:
		return 0, fmt.Errorf("%w: removal horizon %s below the current %s", ErrRange, h, s.ctl.HorizonLSN)
	case h > c.Acceptor.CommitLSN || h > s.flush:
		return 0, fmt.Errorf("%w: removal horizon %s above commit %s or flush %s", ErrRange, h, c.Acceptor.CommitLSN, s.flush)
	case c.SegmentBytes != s.ctl.SegmentBytes:
		return 0, fmt.Errorf("%w: segment size %d, store has %d", ErrRange, c.SegmentBytes, s.ctl.SegmentBytes)
	}
	segs, err := s.listSegments()
	if err != nil {
		return 0, err
	}
	if err := s.PersistControl(c); err != nil {
		return 0, err
	}
	hseg := s.segno(h)
	n := 0
	for _, sf := range segs {
		if sf.segno >= hseg {
			break // listSegments is sorted (ReadDir's order)
		}
		s.walDirDirty = true
		if err := s.fs.Remove(s.segPath(sf.segno, sf.partial)); err != nil && !errors.Is(err, disk.ErrNotExist) {
			return n, fmt.Errorf("walstore: remove segment %s: %w", sf.name, err)
		}
		n++
	}
	if n == 0 {
		return 0, nil
	}
	return n, s.syncWalDir()
}

// HorizonLSN is the removal horizon (0: nothing removed).
func (s *Store) HorizonLSN() lsn.LSN { return s.ctl.HorizonLSN }
