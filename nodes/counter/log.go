package counter

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"path"
	"sort"
	"strings"

	"github.com/stratadb/strata/disk"
)

// RecordBytes is the size of one log record.
const RecordBytes = 16

// Record is one applied increment.
type Record struct {
	Client uint32
	Seq    uint64
}

func (r Record) String() string { return fmt.Sprintf("client-%d#%d", r.Client, r.Seq) }

// Error classes of the log.
var (
	// ErrCorrupt: a record that is not the torn tail of the last segment
	// fails its checksum.
	ErrCorrupt = errors.New("counter: corrupt log")
	// ErrBadName: a file in the log directory is not a segment.
	ErrBadName = errors.New("counter: unexpected file in log directory")
)

func crc(b []byte) uint32 { return crc32.Checksum(b, crc32.MakeTable(crc32.Castagnoli)) }

// encodeRecord writes r into b[:RecordBytes].
func encodeRecord(b []byte, r Record) {
	binary.LittleEndian.PutUint32(b[0:4], r.Client)
	binary.LittleEndian.PutUint64(b[4:12], r.Seq)
	binary.LittleEndian.PutUint32(b[12:16], crc(b[:12]))
}

// DecodeSegment parses a segment's bytes. It returns the records of the
// longest valid prefix and its length in bytes; valid < len(b) means the
// rest is a torn or corrupt tail. A record with seq 0 is invalid (seqs start
// at 1), so zero-filled sectors never parse as records.
func DecodeSegment(b []byte) (recs []Record, valid int) {
	for off := 0; off+RecordBytes <= len(b); off += RecordBytes {
		p := b[off : off+RecordBytes]
		if binary.LittleEndian.Uint32(p[12:16]) != crc(p[:12]) {
			break
		}
		r := Record{Client: binary.LittleEndian.Uint32(p[0:4]), Seq: binary.LittleEndian.Uint64(p[4:12])}
		if r.Seq == 0 {
			break
		}
		recs = append(recs, r)
		valid = off + RecordBytes
	}
	return recs, valid
}

// segmentName is the file name of segment i (fixed width, so lexical order
// is numeric order).
func segmentName(i int) string { return fmt.Sprintf("seg-%08d", i) }

func parseSegmentName(name string) (int, error) {
	var i int
	if !strings.HasPrefix(name, "seg-") || len(name) != 12 {
		return 0, fmt.Errorf("%w: %q", ErrBadName, name)
	}
	if _, err := fmt.Sscanf(name[4:], "%08d", &i); err != nil || segmentName(i) != name {
		return 0, fmt.Errorf("%w: %q", ErrBadName, name)
	}
	return i, nil
}

// segment is one log file as read at start-up.
type segment struct {
	index int
	name  string
	recs  []Record
	size  int64 // bytes in the file
	valid int64 // bytes of whole, valid records
}

// readSegments reads every segment under dir in order. Only the last one may
// have an invalid tail; an invalid record anywhere else is ErrCorrupt.
func readSegments(fsys disk.FS, dir string) ([]segment, error) {
	ents, err := fsys.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("counter: read log directory: %w", err)
	}
	var segs []segment
	for _, e := range ents {
		i, err := parseSegmentName(e.Name())
		if err != nil {
			return nil, err
		}
		segs = append(segs, segment{index: i, name: path.Join(dir, e.Name())})
	}
	sort.Slice(segs, func(a, b int) bool { return segs[a].index < segs[b].index })
	for k := range segs {
		s := &segs[k]
		b, err := readFile(fsys, s.name)
		if err != nil {
			return nil, err
		}
		recs, valid := DecodeSegment(b)
		s.recs, s.size, s.valid = recs, int64(len(b)), int64(valid)
		if valid != len(b) && k != len(segs)-1 {
			return nil, fmt.Errorf("%w: %s: invalid record at offset %d of %d", ErrCorrupt, s.name, valid, len(b))
		}
	}
	return segs, nil
}

func readFile(fsys disk.FS, name string) ([]byte, error) {
	f, err := fsys.Open(name)
	if err != nil {
		return nil, fmt.Errorf("counter: open %s: %w", name, err)
	}
	defer f.Close()
	size, err := f.Size()
	if err != nil {
		return nil, fmt.Errorf("counter: size %s: %w", name, err)
	}
	b := make([]byte, size)
	if _, err := f.ReadAt(b, 0); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("counter: read %s: %w", name, err)
	}
	return b, nil
}

// ReadLog returns every valid record in the log under dir, in order (a torn
// tail is ignored). The simulator's checker uses it on a crashed server's
// disk to learn the durable state.
func ReadLog(fsys disk.FS, dir string) ([]Record, error) {
	segs, err := readSegments(fsys, dir)
	if errors.Is(err, disk.ErrNotExist) {
		return nil, nil // never created: an empty log
	}
	if err != nil {
		return nil, err
	}
	var out []Record
	for _, s := range segs {
		out = append(out, s.recs...)
	}
	return out, nil
}
