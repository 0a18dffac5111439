package layer

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"

	"github.com/stratadb/strata/engine/keys"
	"github.com/stratadb/strata/engine/lsn"
	"github.com/stratadb/strata/engine/walrec"
)

// Errors of layer files.
var (
	// ErrCorrupt reports a layer file that fails a checksum or a structural
	// check. The file must not be used; re-download or rebuild it.
	ErrCorrupt = errors.New("layer: corrupt layer file")
	// ErrInvalid reports contents a writer refuses: unsorted or duplicate
	// entries, entries outside the layer's ranges, values over the limits.
	ErrInvalid = errors.New("layer: invalid layer contents")
	// ErrClosed reports use of a closed reader.
	ErrClosed = errors.New("layer: reader closed")
)

// File-format constants (docs/layer-files.md). Changing any of them
// changes the format: bump formatVersion.
const (
	magic         = "STRATALY"
	formatVersion = 1
	// headerSize is the fixed summary header at offset 0, in bytes.
	headerSize = 128
	// headerCRCOff is where the header's own crc32c sits (it covers
	// bytes [0, headerCRCOff)).
	headerCRCOff = headerSize - 4
	// blockEntrySize is one block-table row: offset u64, compressed length
	// u32, raw length u32, crc32c of the compressed bytes u32.
	blockEntrySize = 20
	// indexEntrySize is one index row: key [18], LSN u64, block u32, offset
	// u32, length u32.
	indexEntrySize = keys.Size + 8 + 4 + 4 + 4
	// BlockTargetSize is the raw size at which the writer closes a data
	// block, in bytes (64 KiB: 8 pages, or many small deltas). A single
	// value larger than this gets a block of its own.
	BlockTargetSize = 64 << 10
	// maxValueSize bounds one stored value: an encoded delta value or an
	// image.
	maxValueSize = walrec.MaxRecordSize + 1
	// maxBlockRawSize bounds a block's raw size, so a corrupt length can
	// never make a reader allocate without limit.
	maxBlockRawSize = BlockTargetSize + maxValueSize
	// maxBlockCompressedSize bounds a block's compressed size (zstd's
	// worst case expansion is small; this is generous).
	maxBlockCompressedSize = maxBlockRawSize + maxBlockRawSize/8 + 1024
	// maxCachedBlocks bounds the decompressed blocks a reader keeps.
	maxCachedBlocks = 8
)

// castagnoli returns the crc32c table (the standard library builds it once
// and caches it).
func castagnoli() *crc32.Table { return crc32.MakeTable(crc32.Castagnoli) }

func crc(b []byte) uint32 { return crc32.Checksum(b, castagnoli()) }

// Summary describes a layer file; it is the decoded header.
type Summary struct {
	Kind     Kind
	KeyRange keys.Range
	// LSNRange is [start, end) for a delta layer and [lsn, lsn+1) for an
	// image layer, as in Name.
	LSNRange lsn.Range
	// Entries is the number of (key, LSN) values stored.
	Entries uint64
	// Blocks is the number of compressed data blocks.
	Blocks uint32
	// FileSizeBytes is the size of the whole file.
	FileSizeBytes int64
}

// Name is the layer name this summary describes (no generation).
func (s Summary) Name() Name {
	return Name{Kind: s.Kind, KeyRange: s.KeyRange, LSNRange: s.LSNRange}
}

// header is the on-disk summary header plus the section locations.
type header struct {
	Summary
	metaOff uint64
	metaLen uint64
	metaCRC uint32
}

func (h header) encode() []byte {
	b := make([]byte, headerSize)
	copy(b, magic)
	binary.LittleEndian.PutUint16(b[8:], formatVersion)
	b[10] = byte(h.Kind)
	ks, ke := h.KeyRange.Start.Bytes(), h.KeyRange.End.Bytes()
	copy(b[16:], ks[:])
	copy(b[34:], ke[:])
	binary.LittleEndian.PutUint64(b[52:], uint64(h.LSNRange.Start))
	binary.LittleEndian.PutUint64(b[60:], uint64(h.LSNRange.End))
	binary.LittleEndian.PutUint64(b[68:], h.Entries)
	binary.LittleEndian.PutUint32(b[76:], h.Blocks)
	binary.LittleEndian.PutUint64(b[80:], h.metaOff)
	binary.LittleEndian.PutUint64(b[88:], h.metaLen)
	binary.LittleEndian.PutUint32(b[96:], h.metaCRC)
	binary.LittleEndian.PutUint64(b[100:], uint64(h.FileSizeBytes))
	binary.LittleEndian.PutUint32(b[headerCRCOff:], crc(b[:headerCRCOff]))
	return b
}

func corruptf(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrCorrupt, fmt.Sprintf(format, args...))
}

// decodeHeader parses and checks the header of a file of fileSize bytes.
func decodeHeader(b []byte, fileSize int64) (header, error) {
	var h header
	if len(b) != headerSize {
		return h, corruptf("file of %d bytes is shorter than the %d-byte header", len(b), headerSize)
	}
	if got, want := crc(b[:headerCRCOff]), binary.LittleEndian.Uint32(b[headerCRCOff:]); got != want {
		return h, corruptf("header crc32c %08x, stored %08x", got, want)
	}
	if string(b[:8]) != magic {
		return h, corruptf("bad magic %q", b[:8])
	}
	if v := binary.LittleEndian.Uint16(b[8:]); v != formatVersion {
		return h, corruptf("format version %d, want %d", v, formatVersion)
	}
	h.Kind = Kind(b[10])
	for i, c := range b[11:16] {
		if c != 0 {
			return h, corruptf("reserved header byte %d is %d", 11+i, c)
		}
	}
	for i, c := range b[108:headerCRCOff] {
		if c != 0 {
			return h, corruptf("reserved header byte %d is %d", 108+i, c)
		}
	}
	var err error
	if h.KeyRange.Start, err = keys.FromBytes(b[16:34]); err != nil {
		return h, corruptf("key start: %v", err)
	}
	if h.KeyRange.End, err = keys.FromBytes(b[34:52]); err != nil {
		return h, corruptf("key end: %v", err)
	}
	h.LSNRange = lsn.Range{Start: lsn.LSN(binary.LittleEndian.Uint64(b[52:])), End: lsn.LSN(binary.LittleEndian.Uint64(b[60:]))}
	h.Entries = binary.LittleEndian.Uint64(b[68:])
	h.Blocks = binary.LittleEndian.Uint32(b[76:])
	h.metaOff = binary.LittleEndian.Uint64(b[80:])
	h.metaLen = binary.LittleEndian.Uint64(b[88:])
	h.metaCRC = binary.LittleEndian.Uint32(b[96:])
	h.FileSizeBytes = int64(binary.LittleEndian.Uint64(b[100:]))
	if err := h.Name().Validate(); err != nil {
		return h, corruptf("header ranges: %v", err)
	}
	if h.FileSizeBytes != fileSize {
		return h, corruptf("file is %d bytes, header says %d", fileSize, h.FileSizeBytes)
	}
	// Bound the counts by the file size before multiplying, so the
	// arithmetic below cannot overflow.
	if h.Entries > uint64(fileSize)/indexEntrySize || uint64(h.Blocks) > uint64(fileSize)/blockEntrySize {
		return h, corruptf("%d entries and %d blocks cannot fit in %d bytes", h.Entries, h.Blocks, fileSize)
	}
	if want := uint64(h.Blocks)*blockEntrySize + h.Entries*indexEntrySize; h.metaLen != want {
		return h, corruptf("metadata of %d bytes, want %d", h.metaLen, want)
	}
	if h.metaOff < headerSize || h.metaOff > uint64(fileSize) || uint64(fileSize)-h.metaOff != h.metaLen {
		return h, corruptf("metadata at [%d,+%d) does not end the %d-byte file", h.metaOff, h.metaLen, fileSize)
	}
	return h, nil
}

// blockInfo is one block-table row.
type blockInfo struct {
	off     uint64
	compLen uint32
	rawLen  uint32
	crc     uint32
}

// indexEntry is one index row: where the value of (key, lsn) lives.
type indexEntry struct {
	key   keys.Key
	lsn   lsn.LSN
	block uint32
	off   uint32
	len   uint32
}

func appendBlockInfo(dst []byte, bi blockInfo) []byte {
	dst = binary.LittleEndian.AppendUint64(dst, bi.off)
	dst = binary.LittleEndian.AppendUint32(dst, bi.compLen)
	dst = binary.LittleEndian.AppendUint32(dst, bi.rawLen)
	return binary.LittleEndian.AppendUint32(dst, bi.crc)
}

func appendIndexEntry(dst []byte, e indexEntry) []byte {
	kb := e.key.Bytes()
	dst = append(dst, kb[:]...)
	dst = binary.LittleEndian.AppendUint64(dst, uint64(e.lsn))
	dst = binary.LittleEndian.AppendUint32(dst, e.block)
	dst = binary.LittleEndian.AppendUint32(dst, e.off)
	return binary.LittleEndian.AppendUint32(dst, e.len)
}

// meta is a file's decoded block table and index.
type meta struct {
	blocks []blockInfo
	index  []indexEntry
	// blockFirst[b] is the index of the first entry stored in block b: the
	// non-empty values of block b are entries blockFirst[b] up to the next
	// block's first (contiguous, see decodeMeta's layout check).
	blockFirst []int
}

// decodeMeta parses and checks the block table and index against h.
//
// Besides bounds, it checks the layout the writer produces: non-empty
// values lie back to back in index order, filling every block exactly, a
// new block starting only where the previous one is full; an empty value
// (an image-layer tombstone) is recorded as block 0, offset 0 and is
// stored in no block. So each raw byte belongs to exactly one value and the
// entries of a block form one run of the index.
func decodeMeta(h header, b []byte) (meta, error) {
	if got := crc(b); got != h.metaCRC {
		return meta{}, corruptf("metadata crc32c %08x, header says %08x", got, h.metaCRC)
	}
	blocks := make([]blockInfo, h.Blocks)
	next := uint64(headerSize)
	for i := range blocks {
		r := b[i*blockEntrySize:]
		bi := blockInfo{
			off:     binary.LittleEndian.Uint64(r),
			compLen: binary.LittleEndian.Uint32(r[8:]),
			rawLen:  binary.LittleEndian.Uint32(r[12:]),
			crc:     binary.LittleEndian.Uint32(r[16:]),
		}
		if bi.off != next {
			return meta{}, corruptf("block %d at %d, want %d", i, bi.off, next)
		}
		if bi.compLen == 0 || bi.compLen > maxBlockCompressedSize || bi.rawLen == 0 || bi.rawLen > maxBlockRawSize {
			return meta{}, corruptf("block %d sizes %d/%d out of bounds", i, bi.compLen, bi.rawLen)
		}
		next += uint64(bi.compLen)
		blocks[i] = bi
	}
	if next != h.metaOff {
		return meta{}, corruptf("blocks end at %d, metadata starts at %d", next, h.metaOff)
	}
	idx := make([]indexEntry, h.Entries)
	base := b[int(h.Blocks)*blockEntrySize:]
	var pos layoutPos
	first := make([]int, 0, len(blocks))
	for i := range idx {
		r := base[i*indexEntrySize:]
		k, err := keys.FromBytes(r[:keys.Size])
		if err != nil {
			return meta{}, corruptf("index %d: %v", i, err)
		}
		e := indexEntry{
			key:   k,
			lsn:   lsn.LSN(binary.LittleEndian.Uint64(r[keys.Size:])),
			block: binary.LittleEndian.Uint32(r[keys.Size+8:]),
			off:   binary.LittleEndian.Uint32(r[keys.Size+12:]),
			len:   binary.LittleEndian.Uint32(r[keys.Size+16:]),
		}
		if !h.KeyRange.Contains(e.key) || !h.LSNRange.Contains(e.lsn) {
			return meta{}, corruptf("index %d: %v@%v outside the layer's ranges", i, e.key, e.lsn)
		}
		if i > 0 && !entryLess(idx[i-1].key, idx[i-1].lsn, e.key, e.lsn) {
			return meta{}, corruptf("index %d: %v@%v out of order", i, e.key, e.lsn)
		}
		if err := pos.next(i, e, h.Kind, blocks); err != nil {
			return meta{}, err
		}
		if e.len > 0 && len(first) == int(e.block) {
			first = append(first, i)
		}
		idx[i] = e
	}
	if err := pos.end(blocks); err != nil {
		return meta{}, err
	}
	return meta{blocks: blocks, index: idx, blockFirst: first}, nil
}

// layoutPos tracks where the next non-empty value must start while
// decodeMeta checks the value layout.
type layoutPos struct {
	block uint32
	off   uint32
}

func (p *layoutPos) next(i int, e indexEntry, kind Kind, blocks []blockInfo) error {
	if e.len == 0 {
		if kind == KindDelta {
			// An encoded delta value always holds at least its kind byte.
			return corruptf("index %d: empty value in a delta layer", i)
		}
		if e.block != 0 || e.off != 0 {
			return corruptf("index %d: empty value recorded at block %d offset %d, want 0/0", i, e.block, e.off)
		}
		return nil
	}
	if int(e.block) >= len(blocks) || uint64(e.off)+uint64(e.len) > uint64(blocks[e.block].rawLen) {
		return corruptf("index %d: value at block %d [%d,+%d) out of bounds", i, e.block, e.off, e.len)
	}
	switch {
	case e.block == p.block && e.off == p.off:
	case e.block == p.block+1 && e.off == 0 && p.off == blocks[p.block].rawLen:
	default:
		return corruptf("index %d: value at block %d offset %d, want it right after the previous value (block %d offset %d)", i, e.block, e.off, p.block, p.off)
	}
	p.block, p.off = e.block, e.off+e.len
	return nil
}

// end checks that the values filled every block.
func (p *layoutPos) end(blocks []blockInfo) error {
	if len(blocks) == 0 {
		return nil
	}
	if last := uint32(len(blocks) - 1); p.block != last || p.off != blocks[last].rawLen {
		return corruptf("values end at block %d offset %d, but the blocks hold %d raw bytes up to block %d", p.block, p.off, blocks[last].rawLen, last)
	}
	return nil
}

// entryLess orders by key, then LSN.
func entryLess(ka keys.Key, la lsn.LSN, kb keys.Key, lb lsn.LSN) bool {
	if c := ka.Compare(kb); c != 0 {
		return c < 0
	}
	return la < lb
}
