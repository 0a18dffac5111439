package timeline

import (
	"bytes"
	"syscall"
	"testing"
	"time"

	"github.com/stratadb/strata/clock"
	"github.com/stratadb/strata/disk"
	"github.com/stratadb/strata/engine/keys"
	"github.com/stratadb/strata/engine/lsn"
	"github.com/stratadb/strata/engine/walrec"
	"github.com/stratadb/strata/sim/simdisk"
)

// cpuTime is the process's CPU time (user and system). The machine these
// benchmarks run on is shared and oversubscribed, so wall time per op
// overstates the cost; cpu-ns/op (which includes GC work) is the figure to
// compare with the aims.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// measureCPU starts measuring; the returned func reports cpu-ns/op and, if
// bytesPerOp > 0, cpu-MB/s.
func measureCPU(b *testing.B, bytesPerOp int64) func() {
	start := cpuTime()
	return func() {
		d := cpuTime() - start
		if b.N == 0 || d <= 0 {
			return
		}
		b.ReportMetric(float64(d.Nanoseconds())/float64(b.N), "cpu-ns/op")
		if bytesPerOp > 0 {
			b.ReportMetric(float64(bytesPerOp)*float64(b.N)/d.Seconds()/1e6, "cpu-MB/s")
		}
	}
}

// benchTimeline opens a tenant with one root timeline on fsys.
func benchTimeline(b *testing.B, fsys disk.FS, cfg Config) *Timeline {
	return benchTimelineID(b, fsys, cfg, ID{0xBE})
}

func benchTimelineID(b *testing.B, fsys disk.FS, cfg Config, id ID) *Timeline {
	b.Helper()
	tn, err := Open(Options{FS: fsys, Clock: clock.NewReal(), Dir: "bench", Config: cfg, Generation: 1})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(tn.Close)
	tl, err := tn.Create(id, 0)
	if err != nil {
		b.Fatal(err)
	}
	return tl
}

func benchIngest(b *testing.B, tl *Timeline, at lsn.LSN, rec walrec.Record) {
	if err := tl.Ingest(at, rec); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkGetPageInMemImage reads a page whose newest value is a full-page
// image in the open in-memory layer.
func BenchmarkGetPageInMemImage(b *testing.B) {
	tl := benchTimeline(b, simdisk.New(simdisk.Options{}), Config{})
	for blk := uint32(0); blk < 1000; blk++ {
		benchIngest(b, tl, lsn.LSN(blk+1)*8, walrec.FullPageImage{Rel: rel, Blk: blk, Page: page(byte(blk))})
	}
	key, at := keys.RelBlockKey(rel, 500), tl.LastRecordLSN()
	b.ReportAllocs()
	defer measureCPU(b, 0)()
	for b.Loop() {
		if _, err := tl.GetPage(key, at); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkAppendPageInMemImage is BenchmarkGetPageInMemImage reading into
// a reused buffer: the one copy of the page and no allocation.
func BenchmarkAppendPageInMemImage(b *testing.B) {
	tl := benchTimeline(b, simdisk.New(simdisk.Options{}), Config{})
	for blk := uint32(0); blk < 1000; blk++ {
		benchIngest(b, tl, lsn.LSN(blk+1)*8, walrec.FullPageImage{Rel: rel, Blk: blk, Page: page(byte(blk))})
	}
	key, at := keys.RelBlockKey(rel, 500), tl.LastRecordLSN()
	buf := make([]byte, 0, walrec.PageSize)
	b.ReportAllocs()
	defer measureCPU(b, 0)()
	for b.Loop() {
		var err error
		if buf, err = tl.AppendPage(buf[:0], key, at); err != nil {
			b.Fatal(err)
		}
	}
}

// layeredTimeline builds, on a real directory, nkeys pages each with an image
// in an image layer and then ndeltas delta layers holding one small page
// write per key each, and warms the layer block caches.
func layeredTimeline(b *testing.B, nkeys, ndeltas int) (*Timeline, []keys.Key) {
	b.Helper()
	tl := benchTimeline(b, disk.Dir(b.TempDir()), Config{CompactionThreshold: 1000, MaxL0Merge: 1000, ImageCreationThreshold: 1})
	at := lsn.LSN(0)
	var ks []keys.Key
	for i := 0; i < nkeys; i++ {
		at += 8
		benchIngest(b, tl, at, walrec.FullPageImage{Rel: rel, Blk: uint32(i), Page: page(byte(i))})
		ks = append(ks, keys.RelBlockKey(rel, uint32(i)))
	}
	if err := tl.Flush(); err != nil {
		b.Fatal(err)
	}
	if st, err := tl.Compact(); err != nil || st.ImagesWritten == 0 {
		b.Fatalf("compact: %+v, %v", st, err)
	}
	for d := 0; d < ndeltas; d++ {
		for i := 0; i < nkeys; i++ {
			at += 8
			benchIngest(b, tl, at, walrec.PageWrite{Rel: rel, Blk: uint32(i), Offset: uint16(64 * d), Data: bytes.Repeat([]byte{byte(d)}, 64)})
		}
		if err := tl.Flush(); err != nil {
			b.Fatal(err)
		}
	}
	if n := len(tl.snapshot().Historic()); n != ndeltas+2 {
		b.Fatalf("%d historic layers, want %d", n, ndeltas+2)
	}
	if _, err := tl.GetPages(ks, at); err != nil { // warm the caches
		b.Fatal(err)
	}
	return tl, ks
}

// BenchmarkGetPageImagePlus16Deltas reads a page reconstructed from an image
// layer plus one page write in each of 16 delta layers, on disk, warm.
func BenchmarkGetPageImagePlus16Deltas(b *testing.B) {
	tl, ks := layeredTimeline(b, 64, 16)
	at := tl.LastRecordLSN()
	b.ReportAllocs()
	defer measureCPU(b, 0)()
	for b.Loop() {
		if _, err := tl.GetPage(ks[7], at); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkAppendPageImagePlus16Deltas is BenchmarkGetPageImagePlus16Deltas
// into a reused buffer: the page is rebuilt in it (walrec.AppendRedo).
func BenchmarkAppendPageImagePlus16Deltas(b *testing.B) {
	tl, ks := layeredTimeline(b, 64, 16)
	at := tl.LastRecordLSN()
	buf := make([]byte, 0, walrec.PageSize)
	b.ReportAllocs()
	defer measureCPU(b, 0)()
	for b.Loop() {
		var err error
		if buf, err = tl.AppendPage(buf[:0], ks[7], at); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkGetPages32 is a vectored read of 32 keys, each an image plus 4
// deltas on disk, warm.
func BenchmarkGetPages32(b *testing.B) {
	tl, ks := layeredTimeline(b, 32, 4)
	at := tl.LastRecordLSN()
	b.ReportAllocs()
	defer measureCPU(b, 0)()
	for b.Loop() {
		if _, err := tl.GetPages(ks, at); err != nil {
			b.Fatal(err)
		}
	}
}

// benchIngestWAL decodes and ingests a stream of encoded records, reporting
// WAL bytes per second. The in-memory layer is replaced (outside the timer)
// every batch records so memory stays bounded.
func benchIngestWAL(b *testing.B, mk func(i int) walrec.Record) {
	const batch = 1 << 14
	var wal []byte
	for i := 0; i < batch; i++ {
		wal = append(wal, walrec.Encode(mk(i))...)
	}
	perOp := int64(len(wal) / batch)
	b.SetBytes(perOp)
	fsys := simdisk.New(simdisk.Options{})
	cfg := Config{CheckpointDistanceBytes: 1 << 40}
	tl := benchTimeline(b, fsys, cfg)
	at := lsn.LSN(0)
	s := walrec.NewStream(wal)
	round := 0
	b.ReportAllocs()
	b.ResetTimer()
	defer measureCPU(b, perOp)()
	for i := 0; i < b.N; i++ {
		rec, err := s.Next()
		if err != nil {
			b.StopTimer()
			s = walrec.NewStream(wal)
			round++
			tl = benchTimelineID(b, simdisk.New(simdisk.Options{}), cfg, ID{byte(round), byte(round >> 8)})
			at = 0
			b.StartTimer()
			if rec, err = s.Next(); err != nil {
				b.Fatal(err)
			}
		}
		at += 64
		if err := tl.Ingest(at, rec); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkIngestPageWrites ingests 100-byte page writes spread over 4096
// blocks.
func BenchmarkIngestPageWrites(b *testing.B) {
	data := bytes.Repeat([]byte{0x5A}, 100)
	benchIngestWAL(b, func(i int) walrec.Record {
		return walrec.PageWrite{Rel: rel, Blk: uint32(i % 4096), Offset: uint16(i % 8000), Data: data}
	})
}

// BenchmarkIngestFullPageImages ingests 8 KiB full-page images.
func BenchmarkIngestFullPageImages(b *testing.B) {
	p := page(0xC3)
	benchIngestWAL(b, func(i int) walrec.Record {
		return walrec.FullPageImage{Rel: rel, Blk: uint32(i % 4096), Page: p}
	})
}

// BenchmarkBaselineCopyPage allocates and copies one 8 KiB page: the floor
// under every page read (each returns a fresh page). Compare the read
// benchmarks with it to see the engine's own overhead on a loaded machine.
func BenchmarkBaselineCopyPage(b *testing.B) {
	p := page(1)
	var sink []byte
	defer measureCPU(b, 0)()
	for b.Loop() {
		sink = bytes.Clone(p)
	}
	_ = sink
}
