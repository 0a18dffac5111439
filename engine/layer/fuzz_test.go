package layer

import (
	"bytes"
	"encoding/binary"
	"errors"
	"reflect"
	"slices"
	"testing"

	"github.com/stratadb/strata/engine/keys"
	"github.com/stratadb/strata/engine/lsn"
	"github.com/stratadb/strata/engine/walrec"
)

// refreshCRCs recomputes every checksum of a (possibly mangled) layer file
// wherever its structure allows, so fuzzing reaches the structural checks
// behind the checksums instead of stopping at the first crc.
func refreshCRCs(b []byte) {
	if len(b) < headerSize {
		return
	}
	metaOff := binary.LittleEndian.Uint64(b[80:])
	metaLen := binary.LittleEndian.Uint64(b[88:])
	nblocks := uint64(binary.LittleEndian.Uint32(b[76:]))
	if metaOff <= uint64(len(b)) && metaLen <= uint64(len(b))-metaOff {
		meta := b[metaOff : metaOff+metaLen]
		for i := uint64(0); i < nblocks && (i+1)*blockEntrySize <= uint64(len(meta)); i++ {
			r := meta[i*blockEntrySize:]
			off, n := binary.LittleEndian.Uint64(r), uint64(binary.LittleEndian.Uint32(r[8:]))
			if off <= uint64(len(b)) && n <= uint64(len(b))-off {
				binary.LittleEndian.PutUint32(r[16:], crc(b[off:off+n]))
			}
		}
		binary.LittleEndian.PutUint32(b[96:], crc(meta))
	}
	binary.LittleEndian.PutUint32(b[headerCRCOff:], crc(b[:headerCRCOff]))
}

// FuzzImageStructure mangles a valid image file at fuzz-chosen positions,
// repairs the checksums, and requires the reader to either reject the file
// with ErrCorrupt or serve only pages it can vouch for, without panicking.
func FuzzImageStructure(f *testing.F) {
	fsys := newMemFS()
	if _, err := WriteImage(fsys, "i", fullRange, 0x10, sampleImages(3)); err != nil {
		f.Fatal(err)
	}
	seed := fsys.bytes("i")
	f.Add(uint32(76), []byte{2})                 // block count
	f.Add(uint32(68), []byte{200})               // entry count
	f.Add(uint32(len(seed)-4), []byte{0xFF})     // last index length
	f.Add(uint32(len(seed)-38), []byte{0, 0, 1}) // last index key
	f.Fuzz(func(t *testing.T, at uint32, patch []byte) {
		b := append([]byte(nil), seed...)
		for i, p := range patch {
			if int(at)+i < len(b) {
				b[int(at)+i] ^= p
			}
		}
		refreshCRCs(b)
		fsys := newMemFS()
		fsys.put("x", b)
		m, err := OpenImage(fsys, "x")
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("unclassified %v", err)
			}
			return
		}
		defer m.Close()
		for e, err := range m.All() {
			if err != nil {
				if !errors.Is(err, ErrCorrupt) {
					t.Fatalf("unclassified %v", err)
				}
				return
			}
			if !m.Summary().KeyRange.Contains(e.Key) {
				t.Fatalf("key %v outside the layer", e.Key)
			}
		}
	})
}

// FuzzDeltaRoundTrip builds entries from fuzz bytes, writes a delta layer
// and requires reading it back to return exactly those entries.
func FuzzDeltaRoundTrip(f *testing.F) {
	f.Add([]byte{1, 2, 3, 4, 5, 6, 7, 8, 9})
	f.Add(bytes.Repeat([]byte{0xAB, 3, 0, 9}, 40))
	f.Fuzz(func(t *testing.T, data []byte) {
		rel := keys.RelTag{SpcNode: 1, DbNode: 2, RelNode: 3}
		var entries []DeltaEntry
		for len(data) >= 4 {
			blk, l, op, n := uint32(data[0]%8), lsn.LSN(0x100+uint64(data[1])), data[2], int(data[3])
			data = data[4:]
			var v walrec.Value
			switch op % 3 {
			case 0:
				v = walrec.Delta(walrec.PageWrite{Rel: rel, Blk: blk, Offset: uint16(n), Data: bytes.Repeat([]byte{op}, n%32+1)})
			case 1:
				v = walrec.Image(bytes.Repeat([]byte{op}, walrec.PageSize))
			default:
				v = walrec.SizeImage(uint32(n))
			}
			entries = append(entries, DeltaEntry{Key: keys.RelBlockKey(rel, blk), LSN: l, Value: v})
		}
		slices.SortStableFunc(entries, func(a, b DeltaEntry) int {
			if c := a.Key.Compare(b.Key); c != 0 {
				return c
			}
			return int(a.LSN) - int(b.LSN)
		})
		entries = slices.CompactFunc(entries, func(a, b DeltaEntry) bool { return a.Key == b.Key && a.LSN == b.LSN })
		fsys := newMemFS()
		if _, err := WriteDelta(fsys, "d", fullRange, lsn.Range{Start: 0x100, End: 0x200}, entries); err != nil {
			t.Fatal(err)
		}
		d, err := OpenDelta(fsys, "d")
		if err != nil {
			t.Fatal(err)
		}
		defer d.Close()
		var got []DeltaEntry
		for e, err := range d.All() {
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, e)
		}
		if len(got) != len(entries) || len(got) > 0 && !reflect.DeepEqual(got, entries) {
			t.Fatalf("read back %d entries, wrote %d (or contents differ)", len(got), len(entries))
		}
	})
}
