package timeline

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stratadb/strata/clock"
	"github.com/stratadb/strata/disk"
	"github.com/stratadb/strata/engine/layer"
	"github.com/stratadb/strata/engine/layercache"
	"github.com/stratadb/strata/engine/lsn"
	"github.com/stratadb/strata/sim"
	"github.com/stratadb/strata/sim/simdisk"
)

// memSource is a LayerSource over copies of layer files kept in memory
// (object storage in miniature). It counts fetches per layer and can
// fail, corrupt or slow them.
type memSource struct {
	fs disk.FS

	mu      sync.Mutex
	files   map[string][]byte // by layer file name
	fetches map[string]int
	fail    error
	corrupt bool
	delay   func() // runs inside every fetch (the sim tests sleep there)
}

func newMemSource(fs disk.FS) *memSource {
	return &memSource{fs: fs, files: map[string][]byte{}, fetches: map[string]int{}}
}

// keep copies every layer file of tl into the source.
func (s *memSource) keep(t *testing.T, tl *Timeline) {
	t.Helper()
	for _, f := range tl.peek().fileLayers() {
		b, err := disk.ReadFile(s.fs, f.path)
		if err != nil {
			t.Fatal(err)
		}
		s.mu.Lock()
		s.files[f.name.String()] = b
		s.mu.Unlock()
	}
}

func (s *memSource) Has(_ ID, name layer.Name) (int64, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	b, ok := s.files[name.String()]
	return int64(len(b)), ok
}

func (s *memSource) Fetch(ctx context.Context, _ ID, name layer.Name, path string) error {
	if s.delay != nil {
		s.delay()
	}
	s.mu.Lock()
	s.fetches[name.String()]++
	b, ok := s.files[name.String()]
	fail, corrupt := s.fail, s.corrupt
	s.mu.Unlock()
	if fail != nil {
		return fail
	}
	if !ok {
		return fmt.Errorf("mem source: %s: %w", name, disk.ErrNotExist)
	}
	if corrupt {
		b = append([]byte(nil), b...)
		b[len(b)/2] ^= 0xFF
		b[3] ^= 0xFF // the header's magic: caught at open
	}
	f, err := s.fs.Create(path)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		_ = f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		_ = f.Close()
		return err
	}
	return f.Close()
}

func (s *memSource) total() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, c := range s.fetches {
		n += c
	}
	return n
}

// remoteFixture writes a timeline of several L0 layers (patchModel, so a
// late read walks every layer), keeps its files in a memSource, closes the
// tenant and removes every layer file from the local disk: the state of a
// tenant attached from object storage before any read.
func remoteFixture(t *testing.T, fs disk.FS) (*memSource, *patchModel, []lsn.LSN, lsn.LSN) {
	t.Helper()
	tn, err := Open(Options{FS: fs, Clock: clock.NewReal(), Dir: "tenant", Generation: 1})
	if err != nil {
		t.Fatal(err)
	}
	tl, err := tn.Create(ID{1}, 0x10)
	if err != nil {
		t.Fatal(err)
	}
	m := &patchModel{}
	var ats []lsn.LSN
	at := lsn.LSN(0x10)
	for i := range 5 {
		for blk := uint32(0); blk < 3; blk++ {
			at += 0x10
			if err := m.add(tl, at, blk, i == 0); err != nil {
				t.Fatal(err)
			}
		}
		ats = append(ats, at)
		if err := tl.Flush(); err != nil {
			t.Fatal(err)
		}
	}
	src := newMemSource(fs)
	src.keep(t, tl)
	for _, f := range tl.peek().fileLayers() {
		defer func(p string) {
			if err := fs.Remove(p); err != nil {
				t.Fatal(err)
			}
		}(f.path)
	}
	tn.Close()
	return src, m, ats, ats[0]
}

func openWithSource(t *testing.T, fs disk.FS, src LayerSource, cache *layercache.Cache, c clock.Clock) *Tenant {
	t.Helper()
	tn, err := Open(Options{FS: fs, Clock: c, Dir: "tenant", Generation: 1, Source: src, LayerCache: cache})
	if err != nil {
		t.Fatal(err)
	}
	return tn
}

// TestRemoteLayersDownloadOnFirstRead: a timeline whose layer files are
// all missing locally opens (with a source; without one it does not),
// every layer remote; a read downloads only the layers it needs, each
// once; reads at every LSN agree with the model; resident bytes count
// what was downloaded; a download a crash left behind is removed at Open.
func TestRemoteLayersDownloadOnFirstRead(t *testing.T) {
	fs := simdisk.New(simdisk.Options{})
	src, m, ats, first := remoteFixture(t, fs)
	if _, err := Open(Options{FS: fs, Clock: clock.NewReal(), Dir: "tenant", Generation: 1}); err == nil {
		t.Fatal("without a source a timeline missing its layer files opened")
	}
	// A download cut short by a crash: the temporary file is never read
	// and goes at Open.
	var some layer.Name
	for n := range src.files {
		some, _ = layer.ParseName(n)
		break
	}
	partial := "tenant/timelines/" + ID{1}.String() + "/" + some.String() + downloadSuffix
	if err := disk.WriteFileAtomic(fs, partial, []byte("half a layer")); err != nil {
		t.Fatal(err)
	}
	tn := openWithSource(t, fs, src, nil, clock.NewReal())
	defer tn.Close()
	if _, err := fs.Stat(partial); !errors.Is(err, disk.ErrNotExist) {
		t.Fatalf("a partial download survived Open: %v", err)
	}
	tl, err := tn.Get(ID{1})
	if err != nil {
		t.Fatal(err)
	}
	infos, err := tl.Layers()
	if err != nil {
		t.Fatal(err)
	}
	if len(infos) != 5 || tn.ResidentBytes() != 0 {
		t.Fatalf("%d layers, %d resident bytes: want 5 remote layers", len(infos), tn.ResidentBytes())
	}
	for _, li := range infos {
		if li.Resident || li.Size == 0 {
			t.Fatalf("layer %s: %+v, want remote with its size", li.Name, li)
		}
	}
	// A read at the first flush's LSN needs the first layer only.
	if err := m.checkAll(tl, 3, []lsn.LSN{first}); err != nil {
		t.Fatal(err)
	}
	if n := src.total(); n != 1 {
		t.Fatalf("a read of the oldest layer downloaded %d layers, want 1", n)
	}
	if err := m.checkAll(tl, 3, ats); err != nil {
		t.Fatal(err)
	}
	var sum int64
	for name, c := range src.fetches {
		if c != 1 {
			t.Errorf("%s downloaded %d times", name, c)
		}
		sum += int64(len(src.files[name]))
	}
	if len(src.fetches) != 5 || tn.ResidentBytes() != sum {
		t.Fatalf("%d layers downloaded, %d resident bytes; want 5 and %d", len(src.fetches), tn.ResidentBytes(), sum)
	}
	for _, li := range mustLayers(t, tl) {
		if !li.Resident {
			t.Fatalf("layer %s still remote after every read", li.Name)
		}
	}
}

func mustLayers(t *testing.T, tl *Timeline) []LayerInfo {
	t.Helper()
	ls, err := tl.Layers()
	if err != nil {
		t.Fatal(err)
	}
	return ls
}

// TestEvictLayer: eviction refuses a layer the source does not hold and
// one a read holds; an idle layer's file is removed and its next read
// downloads it again (and reads right); Download brings a layer back
// without a read.
func TestEvictLayer(t *testing.T) {
	fs := simdisk.New(simdisk.Options{})
	src, m, ats, _ := remoteFixture(t, fs)
	tn := openWithSource(t, fs, src, nil, clock.NewReal())
	defer tn.Close()
	tl, _ := tn.Get(ID{1})
	if err := m.checkAll(tl, 3, ats); err != nil {
		t.Fatal(err)
	}
	full := tn.ResidentBytes()
	f := tl.peek().fileLayers()[0]
	// Not in the source (not yet uploaded): never evicted.
	src.mu.Lock()
	kept := src.files[f.name.String()]
	delete(src.files, f.name.String())
	src.mu.Unlock()
	if _, err := tl.Evict(f.name); !errors.Is(err, ErrNotRemote) {
		t.Fatalf("evicting a layer the source lacks: %v, want ErrNotRemote", err)
	}
	src.mu.Lock()
	src.files[f.name.String()] = kept
	src.mu.Unlock()
	// Held by a read: refused, and the file stays.
	if _, _, err := f.acquire(); err != nil {
		t.Fatal(err)
	}
	if _, err := tl.Evict(f.name); !errors.Is(err, ErrLayerBusy) {
		t.Fatalf("evicting a layer a read holds: %v, want ErrLayerBusy", err)
	}
	f.release()
	freed, err := tl.Evict(f.name)
	if err != nil || freed != int64(len(kept)) {
		t.Fatalf("evict: %d bytes, %v; want %d", freed, err, len(kept))
	}
	if _, err := fs.Stat(f.path); !errors.Is(err, disk.ErrNotExist) {
		t.Fatalf("evicted file still on disk: %v", err)
	}
	if tn.ResidentBytes() != full-freed {
		t.Fatalf("resident %d after evicting %d of %d", tn.ResidentBytes(), freed, full)
	}
	if again, err := tl.Evict(f.name); err != nil || again != 0 {
		t.Fatalf("evicting a remote layer again: %d, %v", again, err)
	}
	before := src.total()
	if err := m.checkAll(tl, 3, ats); err != nil {
		t.Fatal(err)
	}
	if src.total() != before+1 || tn.ResidentBytes() != full {
		t.Fatalf("after reading the evicted layer: %d downloads (was %d), resident %d of %d", src.total(), before, tn.ResidentBytes(), full)
	}
	// Download without a read.
	if _, err := tl.Evict(f.name); err != nil {
		t.Fatal(err)
	}
	if n, err := tl.Download(context.Background(), f.name); err != nil || n != int64(len(kept)) {
		t.Fatalf("download: %d, %v", n, err)
	}
	if n, err := tl.Download(context.Background(), f.name); err != nil || n != 0 {
		t.Fatalf("download of a resident layer: %d, %v", n, err)
	}
}

// TestDownloadFailures: a failing source fails the read with
// ErrLayerDownload and leaves nothing at the layer's name or the
// temporary one; a corrupt download fails with ErrCorrupt too and is
// never renamed into place; once the source recovers the read succeeds.
func TestDownloadFailures(t *testing.T) {
	fs := simdisk.New(simdisk.Options{})
	src, m, ats, _ := remoteFixture(t, fs)
	tn := openWithSource(t, fs, src, nil, clock.NewReal())
	defer tn.Close()
	tl, _ := tn.Get(ID{1})
	dir := "tenant/timelines/" + ID{1}.String()
	nothingVisible := func() {
		t.Helper()
		ents, err := fs.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range ents {
			if e.Name() != metadataName {
				t.Fatalf("%s left on disk by a failed download", e.Name())
			}
		}
	}
	src.fail = errors.New("object storage unreachable")
	if err := m.checkAll(tl, 3, ats[:1]); !errors.Is(err, ErrLayerDownload) || !strings.Contains(err.Error(), "unreachable") {
		t.Fatalf("read with a failing source: %v, want ErrLayerDownload with the cause", err)
	}
	nothingVisible()
	src.fail, src.corrupt = nil, true
	err := m.checkAll(tl, 3, ats[:1])
	if !errors.Is(err, ErrLayerDownload) || !errors.Is(err, layer.ErrCorrupt) {
		t.Fatalf("read of a corrupt download: %v, want ErrLayerDownload and layer.ErrCorrupt", err)
	}
	nothingVisible()
	src.corrupt = false
	if err := m.checkAll(tl, 3, ats); err != nil {
		t.Fatal(err)
	}
}

// TestReadersShareDownloadsAndRaceEvictions: in a simulated world with
// slow downloads, many readers of the same remote layers cause one
// download per layer; then readers race an evictor that evicts every
// layer again and again: every read is right, no file is removed while a
// read uses it (the disk fails reads of a removed file), and the resident
// bytes always match the files on disk.
func TestReadersShareDownloadsAndRaceEvictions(t *testing.T) {
	for seed := uint64(1); seed <= 8; seed++ {
		err := runWorld(seed, func(w *sim.World) error {
			base := simDisk(w)
			src, m, ats, _ := remoteFixture(t, base)
			fs := &unlinkCheckFS{FS: base, gen: map[string]int{}, open: map[string]int{}}
			src.fs = fs
			rng := w.NewRand("test")
			src.delay = func() { w.Sleep(time.Duration(5+rng.IntN(10)) * time.Millisecond) }
			cache, err := layercache.New(layercache.Config{MaxOpenFiles: 2})
			if err != nil {
				return err
			}
			tn := openWithSource(t, fs, src, cache, w.Clock())
			defer tn.Close()
			tl, _ := tn.Get(ID{1})
			readers := map[string]func() error{}
			for i := range 6 {
				readers[fmt.Sprintf("reader-%d", i)] = func() error { return m.checkAll(tl, 3, ats[len(ats)-1:]) }
			}
			if err := tasks(w, readers)(); err != nil {
				return err
			}
			if n := src.total(); n != 5 {
				return fmt.Errorf("6 concurrent readers of 5 remote layers: %d downloads, want 5", n)
			}
			// Readers against an evictor.
			stop := false
			evictions, busy := 0, 0
			fns := map[string]func() error{
				"evictor": func() error {
					for i := 0; i < 40; i++ {
						ls := mustLayers(t, tl)
						n, err := tl.Evict(ls[rng.IntN(len(ls))].Name)
						switch {
						case errors.Is(err, ErrLayerBusy):
							busy++
						case err != nil:
							return err
						case n > 0:
							evictions++
						}
						w.Sleep(time.Duration(rng.IntN(3)) * time.Millisecond)
					}
					stop = true
					return nil
				},
			}
			for i := range 3 {
				fns[fmt.Sprintf("reader-%d", i)] = func() error {
					for !stop {
						at := ats[rng.IntN(len(ats))]
						if err := m.checkAll(tl, 3, []lsn.LSN{at}); err != nil {
							return err
						}
						w.Sleep(time.Duration(rng.IntN(2)) * time.Millisecond)
					}
					return nil
				}
			}
			if err := tasks(w, fns)(); err != nil {
				return err
			}
			if evictions == 0 {
				return fmt.Errorf("nothing evicted (%d busy)", busy)
			}
			var onDisk int64
			for _, li := range mustLayers(t, tl) {
				fi, err := fs.Stat("tenant/timelines/" + ID{1}.String() + "/" + li.Name.String())
				if li.Resident != (err == nil) {
					return fmt.Errorf("layer %s: resident %v, stat %v", li.Name, li.Resident, err)
				}
				if err == nil {
					onDisk += fi.Size()
				}
			}
			if tn.ResidentBytes() != onDisk {
				return fmt.Errorf("resident bytes %d, files on disk %d", tn.ResidentBytes(), onDisk)
			}
			t.Logf("seed %d: %d evictions, %d refused as busy, %d downloads", seed, evictions, busy, src.total())
			return nil
		})
		if err != nil {
			t.Fatalf("seed %d: %v", seed, err)
		}
	}
}

// unlinkCheckFS refuses to remove a file that is open and fails reads of
// a file whose name was removed after it was opened: an eviction must
// close the reader first, and a read must never use a file an eviction
// deleted (POSIX keeps it readable; the engine must not rely on that).
type unlinkCheckFS struct {
	disk.FS
	mu   sync.Mutex
	gen  map[string]int
	open map[string]int
}

type unlinkCheckFile struct {
	disk.File
	fs   *unlinkCheckFS
	name string
	gen  int
}

func (u *unlinkCheckFS) Open(name string) (disk.File, error) {
	f, err := u.FS.Open(name)
	if err != nil {
		return nil, err
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	u.open[name]++
	return &unlinkCheckFile{File: f, fs: u, name: name, gen: u.gen[name]}, nil
}

func (u *unlinkCheckFS) Remove(name string) error {
	u.mu.Lock()
	if n := u.open[name]; n > 0 {
		u.mu.Unlock()
		return fmt.Errorf("remove of %s, open %d times", name, n)
	}
	u.gen[name]++
	u.mu.Unlock()
	return u.FS.Remove(name)
}

func (f *unlinkCheckFile) Close() error {
	f.fs.mu.Lock()
	f.fs.open[f.name]--
	f.fs.mu.Unlock()
	return f.File.Close()
}

func (f *unlinkCheckFile) ReadAt(p []byte, off int64) (int, error) {
	f.fs.mu.Lock()
	removed := f.fs.gen[f.name] != f.gen
	f.fs.mu.Unlock()
	if removed {
		return 0, fmt.Errorf("read of %s after it was removed", f.name)
	}
	return f.File.ReadAt(p, off)
}

// TestDamagedLocalFileIsRemote: with a source that has the layer, a
// damaged local file is removed at Open and the layer read from a fresh
// download; without a source it fails Open, as ever.
func TestDamagedLocalFileIsRemote(t *testing.T) {
	fs := simdisk.New(simdisk.Options{})
	src, m, ats, _ := remoteFixture(t, fs)
	var name string
	for n := range src.files {
		name = n
		break
	}
	path := "tenant/timelines/" + ID{1}.String() + "/" + name
	if err := disk.WriteFileAtomic(fs, path, make([]byte, len(src.files[name]))); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(Options{FS: fs, Clock: clock.NewReal(), Dir: "tenant", Generation: 1}); err == nil {
		t.Fatal("without a source a damaged layer file opened")
	}
	// The other layers are missing: the source has them all.
	tn := openWithSource(t, fs, src, nil, clock.NewReal())
	defer tn.Close()
	tl, _ := tn.Get(ID{1})
	if err := m.checkAll(tl, 3, ats); err != nil {
		t.Fatal(err)
	}
	if src.fetches[name] != 1 {
		t.Fatalf("the damaged layer was downloaded %d times, want once", src.fetches[name])
	}
}

// TestRemovedRemoteLayerNotDeletedAgain: a layer GC removes while it is
// evicted has no local file: disposing of it deletes nothing (and warns
// of nothing).
func TestRemovedRemoteLayerNotDeletedAgain(t *testing.T) {
	fs := simdisk.New(simdisk.Options{})
	var logs strings.Builder
	src := newMemSource(fs)
	tn, err := Open(Options{FS: fs, Clock: clock.NewReal(), Dir: "tenant", Generation: 1, Source: src,
		Config: Config{CompactionThreshold: 2, ImageCreationThreshold: 1}, Log: slog.New(slog.NewTextHandler(&logs, nil))})
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
	for i := range 4 {
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
	if st, err := tl.Compact(); err != nil || st.ImagesWritten == 0 {
		t.Fatalf("compact: %+v %v", st, err)
	}
	src.keep(t, tl)
	for _, li := range mustLayers(t, tl) {
		if _, err := tl.Evict(li.Name); err != nil {
			t.Fatal(err)
		}
	}
	st, err := tl.GCAt(at)
	if err != nil || st.LayersRemoved == 0 {
		t.Fatalf("gc: %+v %v", st, err)
	}
	if strings.Contains(logs.String(), "failed") {
		t.Fatalf("disposing of evicted layers: %s", logs.String())
	}
	if err := m.checkAll(tl, 3, []lsn.LSN{at}); err != nil {
		t.Fatal(err)
	}
}
