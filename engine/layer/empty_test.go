package layer

import (
	"bytes"
	"encoding/binary"
	"errors"
	"reflect"
	"testing"

	"github.com/stratadb/strata/engine/keys"
	"github.com/stratadb/strata/engine/walrec"
)

// imagesWithEmpties returns sampleImages(n) with the pages of the blocks in
// empty replaced by empty values (tombstones).
func imagesWithEmpties(n int, empty ...int) []ImageEntry {
	es := sampleImages(n)
	for _, i := range empty {
		es[i].Page = []byte{}
	}
	return es
}

// TestEmptyValuesRoundTrip is the regression test for image layers whose
// values are all empty (a layer holding one tombstone was written but then
// refused by OpenImage) and for empty values among others: at the start,
// in the middle, right after a block was sealed, and last.
func TestEmptyValuesRoundTrip(t *testing.T) {
	sizeKey := keys.RelSizeKey(rel)
	tests := []struct {
		name    string
		entries []ImageEntry
	}{
		{"one tombstone", []ImageEntry{{Key: sizeKey, Page: []byte{}}}},
		{"only tombstones", []ImageEntry{{Key: keys.RelBlockKey(rel, 1), Page: nil}, {Key: keys.RelBlockKey(rel, 2), Page: []byte{}}, {Key: sizeKey, Page: []byte{}}}},
		{"first", imagesWithEmpties(3, 0)},
		{"middle", imagesWithEmpties(3, 1)},
		{"last", imagesWithEmpties(3, 3)},
		// 8 pages fill a block: entry 8 comes right after a seal, so it
		// would point at a block that is never written.
		{"after a sealed block", imagesWithEmpties(8, 8)},
		{"after a sealed block, then more", imagesWithEmpties(12, 8, 9)},
		{"all but one", imagesWithEmpties(4, 0, 1, 2, 4)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fsys := newMemFS()
			if _, err := WriteImage(fsys, "i", fullRange, 0x10, tc.entries); err != nil {
				t.Fatal(err)
			}
			m, err := OpenImage(fsys, "i")
			if err != nil {
				t.Fatalf("OpenImage: %v", err)
			}
			defer m.Close()
			for _, e := range tc.entries {
				for _, get := range []func(keys.Key) ([]byte, bool, error){m.Get, m.View} {
					p, found, err := get(e.Key)
					if err != nil || !found || !bytes.Equal(p, e.Page) || p == nil {
						t.Fatalf("%v: %d bytes, found %v, %v; want %d bytes", e.Key, len(p), found, err, len(e.Page))
					}
				}
			}
			n := 0
			for e, err := range m.All() {
				if err != nil || !bytes.Equal(e.Page, tc.entries[n].Page) {
					t.Fatalf("All entry %d: %v", n, err)
				}
				n++
			}
			if n != len(tc.entries) {
				t.Fatalf("All yielded %d entries, want %d", n, len(tc.entries))
			}
			// Every byte of such a file is still under a checksum.
			orig := fsys.bytes("i")
			for i := range orig {
				c := append([]byte(nil), orig...)
				c[i] ^= 0x08
				fsys.put("x", c)
				if err := checkImageFile(t, fsys, "x", tc.entries); !errors.Is(err, ErrCorrupt) {
					t.Fatalf("flip of byte %d: %v, want ErrCorrupt", i, err)
				}
			}
		})
	}

	// Delta layers store an encoded value, never empty: tombstones alone or
	// among other values round-trip.
	deltaTests := []struct {
		name    string
		entries []DeltaEntry
	}{
		{"only a tombstone", []DeltaEntry{{Key: sizeKey, LSN: 0x100, Value: walrec.Tombstone()}}},
		{"tombstones among others", []DeltaEntry{
			{Key: keys.RelBlockKey(rel, 1), LSN: 0x100, Value: walrec.Image(testPage(1, 0))},
			{Key: keys.RelBlockKey(rel, 1), LSN: 0x110, Value: walrec.Tombstone()},
			{Key: sizeKey, LSN: 0x100, Value: walrec.SizeImage(3)},
			{Key: sizeKey, LSN: 0x120, Value: walrec.Tombstone()},
			{Key: sizeKey, LSN: 0x130, Value: walrec.SizeImage(1)},
		}},
	}
	for _, tc := range deltaTests {
		t.Run("delta "+tc.name, func(t *testing.T) {
			fsys := newMemFS()
			if _, err := WriteDelta(fsys, "d", fullRange, deltaLSNs, tc.entries); err != nil {
				t.Fatal(err)
			}
			d, err := OpenDelta(fsys, "d")
			if err != nil {
				t.Fatalf("OpenDelta: %v", err)
			}
			defer d.Close()
			var got []DeltaEntry
			for e, err := range d.All() {
				if err != nil {
					t.Fatal(err)
				}
				got = append(got, e)
			}
			if !reflect.DeepEqual(got, tc.entries) {
				t.Fatalf("read back %v, want %v", got, tc.entries)
			}
		})
	}
}

// TestValueLayoutChecked mangles the index of valid files (checksums
// repaired) so values overlap, leave gaps, or an empty value points
// somewhere: OpenImage/OpenDelta must refuse them with ErrCorrupt.
func TestValueLayoutChecked(t *testing.T) {
	// Index entry i of a file with nb blocks: offsets of its block,
	// offset and length fields.
	field := func(b []byte, i, which int) int {
		nb := int(binary.LittleEndian.Uint32(b[76:]))
		metaOff := int(binary.LittleEndian.Uint64(b[80:]))
		return metaOff + nb*blockEntrySize + i*indexEntrySize + keys.Size + 8 + 4*which
	}
	const blockF, offF, lenF = 0, 1, 2
	set := func(b []byte, i, which int, v uint32) {
		binary.LittleEndian.PutUint32(b[field(b, i, which):], v)
	}
	get := func(b []byte, i, which int) uint32 {
		return binary.LittleEndian.Uint32(b[field(b, i, which):])
	}
	tests := []struct {
		name   string
		delta  bool
		images []ImageEntry
		mangle func(b []byte)
	}{
		{"empty value at offset 5", false, imagesWithEmpties(3, 1), func(b []byte) { set(b, 1, offF, 5) }},
		{"empty value in block 1", false, imagesWithEmpties(3, 1), func(b []byte) { set(b, 1, blockF, 1) }},
		{"value shortened (gap)", false, sampleImages(3), func(b []byte) { set(b, 0, lenF, get(b, 0, lenF)-1) }},
		{"value shortened to empty", false, sampleImages(3), func(b []byte) { set(b, 0, lenF, 0) }},
		{"values overlap", false, sampleImages(3), func(b []byte) { set(b, 1, offF, get(b, 1, offF)-1) }},
		{"value moved past a full block", false, sampleImages(9), func(b []byte) { set(b, 8, blockF, 0) }},
		{"delta value made empty", true, nil, func(b []byte) { set(b, 0, lenF, 0) }},
		{"last value shortened", true, nil, func(b []byte) {
			n := int(binary.LittleEndian.Uint64(b[68:]))
			set(b, n-1, lenF, get(b, n-1, lenF)-1)
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fsys := newMemFS()
			var err error
			if tc.delta {
				_, err = WriteDelta(fsys, "f", fullRange, deltaLSNs, sampleDeltas(2, 3))
			} else {
				_, err = WriteImage(fsys, "f", fullRange, 0x10, tc.images)
			}
			if err != nil {
				t.Fatal(err)
			}
			b := fsys.bytes("f")
			tc.mangle(b)
			refreshCRCs(b)
			fsys.put("f", b)
			if tc.delta {
				_, err = OpenDelta(fsys, "f")
			} else {
				_, err = OpenImage(fsys, "f")
			}
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("open = %v, want ErrCorrupt", err)
			}
		})
	}
}
