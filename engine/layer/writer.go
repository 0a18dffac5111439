package layer

import (
	"fmt"

	"github.com/klauspost/compress/zstd"

	"github.com/stratadb/strata/disk"
	"github.com/stratadb/strata/engine/keys"
	"github.com/stratadb/strata/engine/lsn"
	"github.com/stratadb/strata/engine/walrec"
)

// DeltaEntry is one value of a delta layer: key's value at LSN.
type DeltaEntry struct {
	Key   keys.Key
	LSN   lsn.LSN
	Value walrec.Value
}

// ImageEntry is one value of an image layer: key's image at the layer's
// LSN (a page, an encoded size, a metadata blob).
type ImageEntry struct {
	Key  keys.Key
	Page []byte
}

// WriteDelta writes a delta layer file holding entries, which must be
// sorted by key then LSN without duplicates, with keys in keyRange and LSNs
// in lsnRange. The file is written whole to path+".tmp", synced, renamed to
// path and the directory synced (disk.WriteFileAtomic): after a crash path
// is either absent (or its old content) or complete. The parent directory
// must exist.
func WriteDelta(fsys disk.FS, path string, keyRange keys.Range, lsnRange lsn.Range, entries []DeltaEntry) (Summary, error) {
	data, sum, err := EncodeDelta(keyRange, lsnRange, entries)
	if err != nil {
		return Summary{}, err
	}
	return sum, write(fsys, path, data)
}

// EncodeDelta returns the bytes of the delta layer file WriteDelta would
// write, without writing it (for callers that store it elsewhere).
func EncodeDelta(keyRange keys.Range, lsnRange lsn.Range, entries []DeltaEntry) ([]byte, Summary, error) {
	name := DeltaName(keyRange, lsnRange)
	if err := name.Validate(); err != nil {
		return nil, Summary{}, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	b := newBuilder(name)
	defer b.close()
	var val []byte
	for i, e := range entries {
		if err := b.check(i, e.Key, e.LSN); err != nil {
			return nil, Summary{}, err
		}
		var err error
		if val, err = walrec.AppendEncodeValue(val[:0], e.Value); err != nil {
			return nil, Summary{}, fmt.Errorf("%w: entry %d (%v@%v): %w", ErrInvalid, i, e.Key, e.LSN, err)
		}
		b.add(e.Key, e.LSN, val)
	}
	return b.finish()
}

// write durably writes a built layer file (disk.WriteFileAtomic).
func write(fsys disk.FS, path string, data []byte) error {
	if err := disk.WriteFileAtomic(fsys, path, data); err != nil {
		return fmt.Errorf("layer: write %s: %w", path, err)
	}
	return nil
}

// WriteImage writes an image layer file at LSN l holding entries, which
// must be sorted by key without duplicates, with keys in keyRange. Pages
// are at most walrec.MaxImageSize bytes. Durability as in WriteDelta.
func WriteImage(fsys disk.FS, path string, keyRange keys.Range, l lsn.LSN, entries []ImageEntry) (Summary, error) {
	name := ImageName(keyRange, l)
	if err := name.Validate(); err != nil {
		return Summary{}, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	b := newBuilder(name)
	defer b.close()
	for i, e := range entries {
		if err := b.check(i, e.Key, l); err != nil {
			return Summary{}, err
		}
		if len(e.Page) > walrec.MaxImageSize {
			return Summary{}, fmt.Errorf("%w: entry %d (%v): image of %d bytes, max %d", ErrInvalid, i, e.Key, len(e.Page), walrec.MaxImageSize)
		}
		b.add(e.Key, l, e.Page)
	}
	data, sum, err := b.finish()
	if err != nil {
		return Summary{}, err
	}
	return sum, write(fsys, path, data)
}

// builder assembles a layer file in memory: layers are bounded in size by
// the callers' flush and compaction targets and their entries are already
// in memory, so one buffer and one write is simplest and lets the atomic
// write helper do the durability dance.
type builder struct {
	name    Name
	enc     *zstd.Encoder
	err     error
	file    []byte
	raw     []byte // the open block's raw bytes
	blocks  []blockInfo
	index   []indexEntry
	hasPrev bool
	prevKey keys.Key
	prevLSN lsn.LSN
}

func newBuilder(name Name) *builder {
	// Concurrency 1 and EncodeAll keep the encoder synchronous: no
	// goroutines are started on our behalf.
	enc, err := zstd.NewWriter(nil, zstd.WithEncoderConcurrency(1), zstd.WithEncoderLevel(zstd.SpeedDefault))
	b := &builder{name: name, enc: enc, err: err}
	b.file = make([]byte, headerSize, headerSize+BlockTargetSize)
	return b
}

func (b *builder) close() {
	if b.enc != nil {
		_ = b.enc.Close()
	}
}

func (b *builder) check(i int, k keys.Key, l lsn.LSN) error {
	if !b.name.KeyRange.Contains(k) {
		return fmt.Errorf("%w: entry %d key %v outside %v", ErrInvalid, i, k, b.name.KeyRange)
	}
	if !b.name.LSNRange.Contains(l) {
		return fmt.Errorf("%w: entry %d LSN %v outside %v", ErrInvalid, i, l, b.name.LSNRange)
	}
	if b.hasPrev && !entryLess(b.prevKey, b.prevLSN, k, l) {
		return fmt.Errorf("%w: entry %d (%v@%v) not after (%v@%v): entries must be sorted by key then LSN, without duplicates", ErrInvalid, i, k, l, b.prevKey, b.prevLSN)
	}
	b.hasPrev, b.prevKey, b.prevLSN = true, k, l
	return nil
}

func (b *builder) add(k keys.Key, l lsn.LSN, val []byte) {
	if len(val) == 0 {
		// An empty value (an image-layer tombstone) lives in no block: it
		// is recorded canonically as block 0, offset 0, length 0, which
		// needs no block to exist (a layer of only tombstones has none).
		b.index = append(b.index, indexEntry{key: k, lsn: l})
		return
	}
	b.index = append(b.index, indexEntry{key: k, lsn: l, block: uint32(len(b.blocks)), off: uint32(len(b.raw)), len: uint32(len(val))})
	b.raw = append(b.raw, val...)
	if len(b.raw) >= BlockTargetSize {
		b.seal()
	}
}

// seal compresses the open block and appends it to the file.
func (b *builder) seal() {
	if len(b.raw) == 0 || b.err != nil {
		return
	}
	start := len(b.file)
	b.file = b.enc.EncodeAll(b.raw, b.file)
	comp := b.file[start:]
	b.blocks = append(b.blocks, blockInfo{off: uint64(start), compLen: uint32(len(comp)), rawLen: uint32(len(b.raw)), crc: crc(comp)})
	b.raw = b.raw[:0]
}

func (b *builder) finish() ([]byte, Summary, error) {
	b.seal()
	if b.err != nil {
		return nil, Summary{}, fmt.Errorf("layer: zstd encoder: %w", b.err)
	}
	metaOff := len(b.file)
	for _, bi := range b.blocks {
		b.file = appendBlockInfo(b.file, bi)
	}
	for _, e := range b.index {
		b.file = appendIndexEntry(b.file, e)
	}
	meta := b.file[metaOff:]
	h := header{
		Summary: Summary{
			Kind:          b.name.Kind,
			KeyRange:      b.name.KeyRange,
			LSNRange:      b.name.LSNRange,
			Entries:       uint64(len(b.index)),
			Blocks:        uint32(len(b.blocks)),
			FileSizeBytes: int64(len(b.file)),
		},
		metaOff: uint64(metaOff),
		metaLen: uint64(len(meta)),
		metaCRC: crc(meta),
	}
	copy(b.file, h.encode())
	return b.file, h.Summary, nil
}
