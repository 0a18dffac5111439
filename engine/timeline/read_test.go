package timeline

import (
	"bytes"
	"errors"
	"testing"

	"github.com/stratadb/strata/engine/keys"
	"github.com/stratadb/strata/engine/lsn"
	"github.com/stratadb/strata/engine/walrec"
	"github.com/stratadb/strata/sim/simdisk"
)

// readFixture builds a timeline with block 0 as an image in an image
// layer, block 1 as an image plus a page write (on disk), block 2 as a
// full-page image in the open in-memory layer, and rel's size key dropped.
func readFixture(t *testing.T) (*Timeline, lsn.LSN, map[uint32][]byte) {
	t.Helper()
	fs := simdisk.New(simdisk.Options{})
	tn := openTenant(t, fs, Config{ImageCreationThreshold: 1})
	t.Cleanup(tn.Close)
	tl, err := tn.Create(ID{1}, 0)
	if err != nil {
		t.Fatal(err)
	}
	mustIngest(t, tl, 0x10, walrec.FullPageImage{Rel: rel, Blk: 0, Page: page(1)})
	mustIngest(t, tl, 0x11, walrec.FullPageImage{Rel: rel, Blk: 1, Page: page(2)})
	mustIngest(t, tl, 0x12, walrec.RelSizeChange{Rel: rel, NBlocks: 3})
	if err := tl.Flush(); err != nil {
		t.Fatal(err)
	}
	if st, err := tl.Compact(); err != nil || st.ImagesWritten == 0 {
		t.Fatalf("compact: %+v, %v", st, err)
	}
	mustIngest(t, tl, 0x20, walrec.PageWrite{Rel: rel, Blk: 1, Offset: 10, Data: []byte("abc")})
	if err := tl.Flush(); err != nil {
		t.Fatal(err)
	}
	mustIngest(t, tl, 0x30, walrec.FullPageImage{Rel: rel, Blk: 2, Page: page(3)})
	mustIngest(t, tl, 0x31, walrec.RelDrop{Rel: rel})
	want := map[uint32][]byte{0: page(1), 1: patched(page(2), 10, []byte("abc")), 2: page(3)}
	return tl, 0x31, want
}

func TestAppendPage(t *testing.T) {
	tl, at, want := readFixture(t)
	prefix := []byte("prefix")
	for blk := uint32(0); blk < 3; blk++ {
		for _, dst := range [][]byte{nil, {}, append([]byte(nil), prefix...), make([]byte, 0, 3*walrec.PageSize)} {
			orig := append([]byte(nil), dst...)
			got, err := tl.AppendPage(dst, keys.RelBlockKey(rel, blk), at)
			if err != nil {
				t.Fatalf("block %d: %v", blk, err)
			}
			if !bytes.Equal(got[:len(orig)], orig) || !bytes.Equal(got[len(orig):], want[blk]) {
				t.Fatalf("block %d into %d-byte dst: wrong bytes", blk, len(dst))
			}
		}
	}
	// The size key is a tombstone: not found, dst untouched.
	dst := append([]byte(nil), prefix...)
	got, err := tl.AppendPage(dst, keys.RelSizeKey(rel), at)
	if !errors.Is(err, ErrNotFound) || !bytes.Equal(got, prefix) {
		t.Fatalf("dropped size key: %q, %v", got, err)
	}
	if _, err := tl.AppendPage(nil, keys.RelBlockKey(rel, 0), at+1); !errors.Is(err, ErrFutureLSN) {
		t.Fatalf("future read: %v", err)
	}
	// A returned page is the caller's: scribbling on it changes no later
	// read (block 0 comes from an image layer's cache, block 2 from the
	// in-memory layer).
	for _, blk := range []uint32{0, 2} {
		p, err := tl.GetPage(keys.RelBlockKey(rel, blk), at)
		if err != nil {
			t.Fatal(err)
		}
		clear(p)
		wantPage(t, tl, blk, at, want[blk])
	}
}

// TestAppendPageDoesNotAllocate checks the allocation-light read path: a
// page whose newest value is an image, in memory or in an image layer, or
// a page rebuilt from an image and a delta on disk (built in dst by
// walrec.AppendRedo), read into a reused buffer, does not allocate.
func TestAppendPageDoesNotAllocate(t *testing.T) {
	tl, at, want := readFixture(t)
	buf := make([]byte, 0, walrec.PageSize)
	for _, blk := range []uint32{0, 1, 2} {
		key := keys.RelBlockKey(rel, blk)
		var err error
		allocs := testing.AllocsPerRun(50, func() {
			buf, err = tl.AppendPage(buf[:0], key, at)
		})
		if err != nil || !bytes.Equal(buf, want[blk]) {
			t.Fatalf("block %d: %v", blk, err)
		}
		if allocs != 0 {
			t.Fatalf("block %d: %v allocations per read, want 0", blk, allocs)
		}
	}
}

func TestGetPagesIndependent(t *testing.T) {
	tl, at, want := readFixture(t)
	ks := []keys.Key{keys.RelBlockKey(rel, 0), keys.RelBlockKey(rel, 1), keys.RelBlockKey(rel, 2), keys.RelBlockKey(rel, 0)}
	got, err := tl.GetPages(ks, at)
	if err != nil {
		t.Fatal(err)
	}
	blks := []uint32{0, 1, 2, 0}
	for i, p := range got {
		if !bytes.Equal(p, want[blks[i]]) {
			t.Fatalf("page %d differs", i)
		}
	}
	// Pages may share a backing array but never overlap: growing or
	// changing one leaves the others alone.
	got[0] = append(got[0], 0xFF)
	clear(got[2])
	for _, j := range []int{1, 3} {
		if !bytes.Equal(got[j], want[blks[j]]) {
			t.Fatalf("page %d changed by writes to another", j)
		}
	}
	if _, err := tl.GetPages(append(ks, keys.RelSizeKey(rel)), at); !errors.Is(err, ErrNotFound) {
		t.Fatalf("batch with a dropped key: %v", err)
	}
}
