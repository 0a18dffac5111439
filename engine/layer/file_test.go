package layer

import (
	"bytes"
	"errors"
	"fmt"
	"reflect"
	"testing"

	"github.com/stratadb/strata/disk"
	"github.com/stratadb/strata/engine/keys"
	"github.com/stratadb/strata/engine/lsn"
	"github.com/stratadb/strata/engine/walrec"
)

var rel = keys.RelTag{SpcNode: 1663, DbNode: 5, RelNode: 16384}

var fullRange = keys.Range{Start: keys.Min, End: keys.Max}

// testPage is a deterministic, compressible but key-specific page.
func testPage(blk uint32, salt byte) []byte {
	p := make([]byte, walrec.PageSize)
	for i := range p {
		p[i] = byte(i/64) ^ byte(blk) ^ salt
	}
	return p
}

// sampleDeltas returns entries for nblk blocks with per blocks writes each,
// at LSNs 0x100 + 0x10*j, in (key, LSN) order; plus a size key image.
func sampleDeltas(nblk, per int) []DeltaEntry {
	var out []DeltaEntry
	for b := 0; b < nblk; b++ {
		k := keys.RelBlockKey(rel, uint32(b))
		out = append(out, DeltaEntry{Key: k, LSN: 0x100, Value: walrec.Image(testPage(uint32(b), 1))})
		for j := 1; j < per; j++ {
			w := walrec.PageWrite{Rel: rel, Blk: uint32(b), Offset: uint16(j * 8), Data: []byte(fmt.Sprintf("w%d-%d", b, j))}
			out = append(out, DeltaEntry{Key: k, LSN: lsn.LSN(0x100 + 0x10*j), Value: walrec.Delta(w)})
		}
	}
	out = append(out, DeltaEntry{Key: keys.RelSizeKey(rel), LSN: 0x100, Value: walrec.SizeImage(uint32(nblk))})
	return out
}

func sampleImages(n int) []ImageEntry {
	var out []ImageEntry
	for b := 0; b < n; b++ {
		out = append(out, ImageEntry{Key: keys.RelBlockKey(rel, uint32(b)), Page: testPage(uint32(b), 2)})
	}
	out = append(out, ImageEntry{Key: keys.RelSizeKey(rel), Page: walrec.SizeImage(uint32(n)).Image})
	return out
}

var deltaLSNs = lsn.Range{Start: 0x100, End: 0x1000}

func TestDeltaRoundTrip(t *testing.T) {
	for _, fsName := range []string{"mem", "os"} {
		t.Run(fsName, func(t *testing.T) {
			var fsys disk.FS = newMemFS()
			if fsName == "os" {
				fsys = disk.Dir(t.TempDir())
			}
			entries := sampleDeltas(20, 5) // > BlockTargetSize: several blocks
			sum, err := WriteDelta(fsys, "d.layer", fullRange, deltaLSNs, entries)
			if err != nil {
				t.Fatal(err)
			}
			if sum.Entries != uint64(len(entries)) || sum.Blocks < 2 || sum.Kind != KindDelta {
				t.Fatalf("summary %+v", sum)
			}
			d, err := OpenDelta(fsys, "d.layer")
			if err != nil {
				t.Fatal(err)
			}
			defer d.Close()
			if !reflect.DeepEqual(d.Summary(), sum) {
				t.Fatalf("reader summary %+v, writer %+v", d.Summary(), sum)
			}
			var all []DeltaEntry
			for e, err := range d.All() {
				if err != nil {
					t.Fatal(err)
				}
				all = append(all, e)
			}
			if !reflect.DeepEqual(all, entries) {
				t.Fatal("All() differs from what was written")
			}
			k := keys.RelBlockKey(rel, 7)
			got, err := d.Get(k, lsn.Range{Start: 0x110, End: 0x130})
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != 2 || got[0].LSN != 0x110 || got[1].LSN != 0x120 {
				t.Fatalf("Get in [0x110,0x130) = %+v", got)
			}
			if got, _ := d.Get(k, lsn.Range{Start: 0, End: lsn.Max}); len(got) != 5 {
				t.Fatalf("Get of all LSNs = %d entries", len(got))
			}
			if got, _ := d.Get(keys.RelBlockKey(rel, 999), lsn.Range{Start: 0, End: lsn.Max}); len(got) != 0 {
				t.Fatalf("absent key gave %d entries", len(got))
			}
			if n := len(d.Keys()); n != 21 {
				t.Fatalf("Keys() = %d, want 21", n)
			}
			// The file name under which it was written was renamed into place.
			if fsName == "mem" {
				if _, err := fsys.Open("d.layer.tmp"); err == nil {
					t.Fatal("temp file left behind")
				}
			}
		})
	}
}

func TestImageRoundTrip(t *testing.T) {
	fsys := newMemFS()
	entries := sampleImages(30)
	sum, err := WriteImage(fsys, "i.layer", fullRange, 0x500, entries)
	if err != nil {
		t.Fatal(err)
	}
	m, err := OpenImage(fsys, "i.layer")
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if m.LSN() != 0x500 || sum.LSNRange != (lsn.Range{Start: 0x500, End: 0x501}) || sum.Name().Kind != KindImage {
		t.Fatalf("summary %+v", sum)
	}
	for _, e := range entries {
		p, found, err := m.Get(e.Key)
		if err != nil || !found || !bytes.Equal(p, e.Page) {
			t.Fatalf("Get(%v) = found %v, err %v, equal %v", e.Key, found, err, bytes.Equal(p, e.Page))
		}
		p[0] ^= 0xFF // the caller owns the copy; the next read is unaffected
	}
	if p, _, _ := m.Get(entries[0].Key); !bytes.Equal(p, entries[0].Page) {
		t.Fatal("Get returned cache memory")
	}
	if _, found, err := m.Get(keys.RelBlockKey(rel, 31)); found || err != nil {
		t.Fatalf("absent key: found %v err %v", found, err)
	}
	i := 0
	for e, err := range m.All() {
		if err != nil || e.Key != entries[i].Key || !bytes.Equal(e.Page, entries[i].Page) {
			t.Fatalf("All()[%d] differs (%v)", i, err)
		}
		i++
	}
	if i != len(entries) {
		t.Fatalf("All() yielded %d", i)
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	if _, _, err := m.Get(entries[0].Key); !errors.Is(err, ErrClosed) {
		t.Fatalf("Get after Close = %v", err)
	}
	if err := m.Close(); !errors.Is(err, ErrClosed) {
		t.Fatalf("double Close = %v", err)
	}
}

func TestEmptyLayers(t *testing.T) {
	fsys := newMemFS()
	if _, err := WriteImage(fsys, "i", fullRange, 1, nil); err != nil {
		t.Fatal(err)
	}
	m, err := OpenImage(fsys, "i")
	if err != nil {
		t.Fatal(err)
	}
	if _, found, err := m.Get(keys.Min); found || err != nil {
		t.Fatal("empty image layer found a key")
	}
	if _, err := WriteDelta(fsys, "d", fullRange, deltaLSNs, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenDelta(fsys, "d"); err != nil {
		t.Fatal(err)
	}
}

func TestWriteRejectsBadContents(t *testing.T) {
	k1, k2 := keys.RelBlockKey(rel, 1), keys.RelBlockKey(rel, 2)
	img := walrec.Image(testPage(0, 0))
	tests := []struct {
		name    string
		kr      keys.Range
		lr      lsn.Range
		entries []DeltaEntry
	}{
		{"unsorted keys", fullRange, deltaLSNs, []DeltaEntry{{k2, 0x100, img}, {k1, 0x100, img}}},
		{"unsorted lsns", fullRange, deltaLSNs, []DeltaEntry{{k1, 0x200, img}, {k1, 0x100, img}}},
		{"duplicate", fullRange, deltaLSNs, []DeltaEntry{{k1, 0x100, img}, {k1, 0x100, img}}},
		{"key outside", keys.Range{Start: k2, End: keys.Max}, deltaLSNs, []DeltaEntry{{k1, 0x100, img}}},
		{"lsn at end", fullRange, deltaLSNs, []DeltaEntry{{k1, deltaLSNs.End, img}}},
		{"bad value", fullRange, deltaLSNs, []DeltaEntry{{k1, 0x100, walrec.Value{}}}},
		{"empty lsn range", fullRange, lsn.Range{Start: 5, End: 5}, nil},
		{"empty key range", keys.Range{Start: k1, End: k1}, deltaLSNs, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fsys := newMemFS()
			if _, err := WriteDelta(fsys, "d", tc.kr, tc.lr, tc.entries); !errors.Is(err, ErrInvalid) {
				t.Fatalf("WriteDelta = %v, want ErrInvalid", err)
			}
			if fsys.bytes("d") != nil {
				t.Fatal("a rejected layer was written")
			}
		})
	}
	fsys := newMemFS()
	if _, err := WriteImage(fsys, "i", fullRange, 1, []ImageEntry{{k2, nil}, {k1, nil}}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("unsorted images: %v", err)
	}
	if _, err := WriteImage(fsys, "i", fullRange, 1, []ImageEntry{{k1, make([]byte, walrec.MaxImageSize+1)}}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("oversized image: %v", err)
	}
}

func TestOpenWrongKind(t *testing.T) {
	fsys := newMemFS()
	if _, err := WriteImage(fsys, "i", fullRange, 1, sampleImages(1)); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenDelta(fsys, "i"); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("OpenDelta(image) = %v", err)
	}
	if _, err := OpenImage(fsys, "missing"); !errors.Is(err, disk.ErrNotExist) {
		t.Fatalf("OpenImage(missing) = %v", err)
	}
}

// readAllImage opens an image file and reads every expected key, returning
// the first error; a read that succeeds must return the exact page.
func checkImageFile(t *testing.T, fsys disk.FS, name string, want []ImageEntry) error {
	t.Helper()
	m, err := OpenImage(fsys, name)
	if err != nil {
		return err
	}
	defer m.Close()
	var firstErr error
	for _, e := range want {
		p, found, err := m.Get(e.Key)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("Get(%v): unclassified error %v", e.Key, err)
			}
			if firstErr == nil {
				firstErr = err
			}
			continue
		}
		if !found || !bytes.Equal(p, e.Page) {
			t.Fatalf("Get(%v) returned a wrong page (found=%v) instead of an error", e.Key, found)
		}
	}
	return firstErr
}

// TestEveryByteFlipIsCaught flips each byte of a small image and delta file
// in turn: every open or read either fails with ErrCorrupt or returns the
// exact original value, and every flip is caught by some read.
func TestEveryByteFlipIsCaught(t *testing.T) {
	fsys := newMemFS()
	imgs := sampleImages(3)
	if _, err := WriteImage(fsys, "i", fullRange, 0x10, imgs); err != nil {
		t.Fatal(err)
	}
	orig := fsys.bytes("i")
	for i := range orig {
		c := append([]byte(nil), orig...)
		c[i] ^= 0x40
		fsys.put("x", c)
		if err := checkImageFile(t, fsys, "x", imgs); err == nil {
			t.Fatalf("image: flip of byte %d went unnoticed", i)
		} else if !errors.Is(err, ErrCorrupt) {
			t.Fatalf("image: flip of byte %d: unclassified %v", i, err)
		}
	}

	deltas := sampleDeltas(2, 3)
	if _, err := WriteDelta(fsys, "d", fullRange, deltaLSNs, deltas); err != nil {
		t.Fatal(err)
	}
	orig = fsys.bytes("d")
	for i := range orig {
		c := append([]byte(nil), orig...)
		c[i] ^= 0x01
		fsys.put("x", c)
		d, err := OpenDelta(fsys, "x")
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("delta: flip %d: unclassified %v", i, err)
			}
			continue
		}
		var got []DeltaEntry
		var rerr error
		for e, err := range d.All() {
			if err != nil {
				rerr = err
				break
			}
			got = append(got, e)
		}
		d.Close()
		if rerr == nil {
			t.Fatalf("delta: flip of byte %d went unnoticed", i)
		}
		if !errors.Is(rerr, ErrCorrupt) {
			t.Fatalf("delta: flip %d: unclassified %v", i, rerr)
		}
		if len(got) > 0 && !reflect.DeepEqual(got, deltas[:len(got)]) {
			t.Fatalf("delta: flip %d: entries before the error differ", i)
		}
	}
	// Truncation and extension are caught too.
	for _, c := range [][]byte{orig[:len(orig)-1], orig[:headerSize], orig[:10], append(append([]byte(nil), orig...), 0)} {
		fsys.put("x", c)
		if _, err := OpenDelta(fsys, "x"); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("resized file (%d bytes): %v", len(c), err)
		}
	}
}

// FuzzImageReader: any bytes as an image file never panic the reader; a
// read either fails with ErrCorrupt or returns a page, and if the file is
// the untouched seed every page is right.
func FuzzImageReader(f *testing.F) {
	fsys := newMemFS()
	if _, err := WriteImage(fsys, "i", fullRange, 0x10, sampleImages(2)); err != nil {
		f.Fatal(err)
	}
	f.Add(fsys.bytes("i"))
	f.Add([]byte("STRATALY"))
	// Empty values: a layer of only tombstones (no blocks at all) and one
	// with a tombstone after a sealed block.
	for i, es := range [][]ImageEntry{{{Key: keys.RelSizeKey(rel), Page: []byte{}}}, imagesWithEmpties(8, 8)} {
		name := fmt.Sprintf("e%d", i)
		if _, err := WriteImage(fsys, name, fullRange, 0x10, es); err != nil {
			f.Fatal(err)
		}
		f.Add(fsys.bytes(name))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
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
		for _, k := range m.Keys() {
			if _, found, err := m.Get(k); err != nil && !errors.Is(err, ErrCorrupt) || err == nil && !found {
				t.Fatalf("Get(%v): found %v err %v", k, found, err)
			}
		}
		for _, err := range m.All() {
			if err != nil && !errors.Is(err, ErrCorrupt) {
				t.Fatalf("All: unclassified %v", err)
			}
		}
	})
}

// FuzzDeltaReader: as FuzzImageReader for delta files.
func FuzzDeltaReader(f *testing.F) {
	fsys := newMemFS()
	if _, err := WriteDelta(fsys, "d", fullRange, deltaLSNs, sampleDeltas(2, 3)); err != nil {
		f.Fatal(err)
	}
	f.Add(fsys.bytes("d"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		fsys := newMemFS()
		fsys.put("x", b)
		d, err := OpenDelta(fsys, "x")
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("unclassified %v", err)
			}
			return
		}
		defer d.Close()
		for _, k := range d.Keys() {
			if _, err := d.Get(k, lsn.Range{Start: 0, End: lsn.Max}); err != nil && !errors.Is(err, ErrCorrupt) {
				t.Fatalf("Get(%v): unclassified %v", k, err)
			}
		}
		for e, err := range d.All() {
			if err != nil && !errors.Is(err, ErrCorrupt) {
				t.Fatalf("All: unclassified %v", err)
			}
			if err == nil && e.Value.Validate() != nil {
				t.Fatalf("All yielded an invalid value")
			}
		}
	})
}
