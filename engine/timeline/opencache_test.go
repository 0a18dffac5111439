package timeline

import (
	"bytes"
	"errors"
	"fmt"
	"path"
	"sync"
	"testing"

	"github.com/stratadb/strata/clock"
	"github.com/stratadb/strata/disk"
	"github.com/stratadb/strata/engine/keys"
	"github.com/stratadb/strata/engine/layer"
	"github.com/stratadb/strata/engine/layercache"
	"github.com/stratadb/strata/engine/lsn"
	"github.com/stratadb/strata/engine/walrec"
	"github.com/stratadb/strata/sim/simdisk"
)

// countingFS counts the layer files open for reading on it, and the most
// open at once: what the open-file cache must bound, measured on the disk
// seam rather than taken from the cache's own counters.
type countingFS struct {
	disk.FS
	mu         sync.Mutex
	open, peak int
	opens      int
}

type countedFile struct {
	disk.File
	fs     *countingFS
	closed bool
}

func (c *countingFS) Open(name string) (disk.File, error) {
	f, err := c.FS.Open(name)
	if err != nil {
		return nil, err
	}
	if _, perr := layer.ParseName(path.Base(name)); perr != nil {
		return f, nil // metadata: read and closed at once
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.open++
	c.opens++
	c.peak = max(c.peak, c.open)
	return &countedFile{File: f, fs: c}, nil
}

func (f *countedFile) Close() error {
	f.fs.mu.Lock()
	if !f.closed {
		f.closed = true
		f.fs.open--
	}
	f.fs.mu.Unlock()
	return f.File.Close()
}

func (c *countingFS) counts() (open, peak, opens int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.open, c.peak, c.opens
}

// patchModel is the expected content of a few blocks: block b starts as an
// image at the first record and is patched by every later record for it,
// so a read at a late LSN walks every delta layer back to the image.
type patchModel struct {
	recs []raceRec
}

func (m *patchModel) add(tl *Timeline, at lsn.LSN, blk uint32, first bool) error {
	r := raceRec{at: at, blk: blk}
	if first {
		r.rec = walrec.FullPageImage{Rel: rel, Blk: blk, Page: bytes.Repeat([]byte{byte(blk + 1)}, walrec.PageSize)}
	} else {
		r.rec = walrec.PageWrite{Rel: rel, Blk: blk, Offset: uint16(len(m.recs) * 8 % (walrec.PageSize - 8)), Data: []byte{byte(at), byte(at >> 8), byte(blk), 0xEE}}
	}
	m.recs = append(m.recs, r)
	return tl.Ingest(at, r.rec)
}

func (m *patchModel) page(blk uint32, at lsn.LSN) []byte {
	var p []byte
	for _, r := range m.recs {
		if r.at > at || r.blk != blk {
			continue
		}
		switch x := r.rec.(type) {
		case walrec.FullPageImage:
			p = bytes.Clone(x.Page)
		case walrec.PageWrite:
			copy(p[x.Offset:], x.Data)
		}
	}
	return p
}

// checkAll reads every block at every LSN in ats, one by one and batched,
// and compares with the model.
func (m *patchModel) checkAll(tl *Timeline, blocks uint32, ats []lsn.LSN) error {
	for _, at := range ats {
		var ks []keys.Key
		for blk := uint32(0); blk < blocks; blk++ {
			want := m.page(blk, at)
			got, err := tl.GetPage(keys.RelBlockKey(rel, blk), at)
			if want == nil && errors.Is(err, ErrNotFound) {
				continue // not written yet
			}
			ks = append(ks, keys.RelBlockKey(rel, blk))
			if err != nil {
				return fmt.Errorf("block %d at %s: %w", blk, at, err)
			}
			if !bytes.Equal(got, want) {
				return fmt.Errorf("block %d at %s differs from the model", blk, at)
			}
		}
		got, err := tl.GetPages(ks, at)
		if err != nil {
			return fmt.Errorf("batch at %s: %w", at, err)
		}
		for i, p := range got {
			if blk, _ := ks[i].BlockNumber(); !bytes.Equal(p, m.page(blk, at)) {
				return fmt.Errorf("batched block %d at %s differs from the model", blk, at)
			}
		}
	}
	return nil
}

// TestOpenLayerFilesBounded: a timeline with many more layer files than
// the open-file limit reads every page correctly at many LSNs (each read
// of a late LSN walks every layer), while the layer files open on the disk
// never exceed the limit: readers are closed least recently used first and
// reopened, checked again, on demand. Closing the tenant leaves nothing
// open or registered in the shared cache, and a reopen of the tenant stays
// within the limit too.
func TestOpenLayerFilesBounded(t *testing.T) {
	const limit, flushes, blocks = 4, 24, 5
	fs := &countingFS{FS: simdisk.New(simdisk.Options{})}
	cache, err := layercache.New(layercache.Config{MaxOpenFiles: limit})
	if err != nil {
		t.Fatal(err)
	}
	o := Options{FS: fs, Clock: clock.NewReal(), Dir: "tenant", Generation: 1, LayerCache: cache}
	tn, err := Open(o)
	if err != nil {
		t.Fatal(err)
	}
	tl, err := tn.Create(ID{1}, 0x10)
	if err != nil {
		t.Fatal(err)
	}
	var m patchModel
	var ats []lsn.LSN
	at := lsn.LSN(0x10)
	for i := 0; i < flushes; i++ {
		for blk := uint32(0); blk < blocks; blk++ {
			at += 0x10
			if err := m.add(tl, at, blk, i == 0); err != nil {
				t.Fatal(err)
			}
		}
		ats = append(ats, at-0x10*(blocks/2), at) // mid-layer and at its end
		if err := tl.Flush(); err != nil {
			t.Fatal(err)
		}
	}
	if n := len(tl.peek().fileLayers()); n != flushes {
		t.Fatalf("%d layer files, want %d", n, flushes)
	}
	if err := m.checkAll(tl, blocks, ats); err != nil {
		t.Fatal(err)
	}
	open, peak, opens := fs.counts()
	st := cache.Stats()
	t.Logf("%d layers, limit %d: peak %d open, %d opens; cache %+v", flushes, limit, peak, opens, st)
	if peak > limit || st.Peak > limit || st.OverLimit != 0 {
		t.Fatalf("up to %d layer files open at once (cache peak %d, %d opens over the limit), limit %d", peak, st.Peak, st.OverLimit, limit)
	}
	if open != st.Open || st.Pinned != 0 || st.Handles != flushes {
		t.Fatalf("%d layer files open on disk; cache %+v", open, st)
	}
	if st.Reopens == 0 || st.Evictions == 0 {
		t.Fatalf("no reader was closed and reopened: %+v", st)
	}

	// Closing the tenant drops every handle; reopening loads every layer
	// (each checked once) within the limit, and reads still agree.
	tn.Close()
	if open, _, _ := fs.counts(); open != 0 || cache.Stats().Open != 0 || cache.Stats().Handles != 0 {
		t.Fatalf("after Close: %d layer files open; cache %+v", open, cache.Stats())
	}
	if tn, err = Open(o); err != nil {
		t.Fatal(err)
	}
	defer tn.Close()
	if tl, err = tn.Get(ID{1}); err != nil {
		t.Fatal(err)
	}
	if err := m.checkAll(tl, blocks, ats); err != nil {
		t.Fatal(err)
	}
	if _, peak, _ := fs.counts(); peak > limit {
		t.Fatalf("after reopening the tenant: up to %d layer files open, limit %d", peak, limit)
	}
}

// TestCompactionDropsReplacedFromCache: the L0 files a compaction replaces
// (and GC frees) leave the open-file cache once deleted, so it holds only
// the current layers; deleting the timeline empties it.
func TestCompactionDropsReplacedFromCache(t *testing.T) {
	cache, err := layercache.New(layercache.Config{MaxOpenFiles: 3})
	if err != nil {
		t.Fatal(err)
	}
	tn, err := Open(Options{FS: simdisk.New(simdisk.Options{}), Clock: clock.NewReal(), Dir: "tenant", Generation: 1, LayerCache: cache,
		Config: Config{CompactionThreshold: 4, ImageCreationThreshold: 1}})
	if err != nil {
		t.Fatal(err)
	}
	defer tn.Close()
	tl, err := tn.Create(ID{1}, 0x10)
	if err != nil {
		t.Fatal(err)
	}
	var m patchModel
	at := lsn.LSN(0x10)
	for i := 0; i < 6; i++ {
		for blk := uint32(0); blk < 3; blk++ {
			at += 0x10
			if err := m.add(tl, at, blk, i == 0); err != nil {
				t.Fatal(err)
			}
		}
		if err := tl.Flush(); err != nil {
			t.Fatal(err)
		}
	}
	if st, err := tl.Compact(); err != nil || st.L0Merged == 0 || st.ImagesWritten == 0 {
		t.Fatalf("compact: %+v, %v", st, err)
	}
	if _, err := tl.GCAt(at); err != nil {
		t.Fatal(err)
	}
	layers := len(tl.peek().fileLayers())
	if st := cache.Stats(); st.Handles != layers || st.Open > 3 {
		t.Fatalf("%d layers in the timeline, cache %+v", layers, st)
	}
	if err := m.checkAll(tl, 3, []lsn.LSN{at}); err != nil {
		t.Fatal(err)
	}
	// Deleting the timeline drops the rest.
	if err := tn.Delete(ID{1}); err != nil {
		t.Fatal(err)
	}
	if st := cache.Stats(); st.Handles != 0 || st.Open != 0 {
		t.Fatalf("after deleting the timeline: cache %+v", st)
	}
}

// TestReopenChecksTheFile: a reader the cache closed is checked again when
// it is reopened: a layer file damaged, or replaced by another, while its
// reader was closed fails the read (ErrCorrupt) rather than answering from
// it.
func TestReopenChecksTheFile(t *testing.T) {
	for _, tc := range []struct {
		name   string
		damage func(fs *simdisk.FS, path string, name layer.Name) error
		want   error
	}{
		{"header damaged", func(fs *simdisk.FS, path string, _ layer.Name) error {
			return fs.Corrupt(path, 0)
		}, layer.ErrCorrupt},
		{"replaced by another valid layer", func(fs *simdisk.FS, path string, name layer.Name) error {
			// Same name, fewer entries: a layer file the first open
			// did not see.
			_, err := layer.WriteDelta(fs, path, name.KeyRange, name.LSNRange, []layer.DeltaEntry{
				{Key: keys.RelBlockKey(rel, 0), LSN: name.LSNRange.Start, Value: walrec.Image(page(9))},
			})
			return err
		}, ErrCorrupt},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sfs := simdisk.New(simdisk.Options{})
			cache, err := layercache.New(layercache.Config{MaxOpenFiles: 1})
			if err != nil {
				t.Fatal(err)
			}
			tn, err := Open(Options{FS: sfs, Clock: clock.NewReal(), Dir: "tenant", Generation: 1, LayerCache: cache})
			if err != nil {
				t.Fatal(err)
			}
			defer tn.Close()
			tl, err := tn.Create(ID{1}, 0x10)
			if err != nil {
				t.Fatal(err)
			}
			mustIngest(t, tl, 0x20, walrec.FullPageImage{Rel: rel, Blk: 0, Page: page(1)})
			if err := tl.Flush(); err != nil {
				t.Fatal(err)
			}
			first := tl.peek().fileLayers()[0]
			mustIngest(t, tl, 0x30, walrec.FullPageImage{Rel: rel, Blk: 1, Page: page(2)})
			if err := tl.Flush(); err != nil {
				t.Fatal(err)
			}
			wantPage(t, tl, 1, 0x30, page(2)) // the second layer is the one open
			if st := cache.Stats(); st.Open != 1 {
				t.Fatalf("cache %+v, want one file open", st)
			}
			if err := tc.damage(sfs, tl.dir+"/"+first.name.String(), first.name); err != nil {
				t.Fatal(err)
			}
			if _, err := tl.GetPage(keys.RelBlockKey(rel, 0), 0x30); !errors.Is(err, tc.want) {
				t.Fatalf("read from the damaged layer: %v, want %v", err, tc.want)
			}
			wantPage(t, tl, 1, 0x30, page(2)) // the other layer reads on
		})
	}
}
