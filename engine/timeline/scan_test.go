package timeline

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"testing"

	"github.com/stratadb/strata/engine/keys"
	"github.com/stratadb/strata/engine/lsn"
	"github.com/stratadb/strata/engine/walrec"
	"github.com/stratadb/strata/sim/simdisk"
)

var (
	scanRelB = keys.RelTag{SpcNode: 1663, DbNode: 5, RelNode: 16390, ForkNum: keys.ForkFSM}
	scanRelC = keys.RelTag{SpcNode: 1663, DbNode: 7, RelNode: 16400}
)

type kv struct {
	k keys.Key
	v []byte
}

func (e kv) String() string { return fmt.Sprintf("%s=%d bytes", e.k, len(e.v)) }

// collect scans r at at and copies what it returns.
func collect(tl *Timeline, r keys.Range, at lsn.LSN) ([]kv, error) {
	var out []kv
	err := tl.ScanRange(r, at, func(k keys.Key, v []byte) error {
		out = append(out, kv{k, bytes.Clone(v)})
		return nil
	})
	return out, err
}

// expect is what a scan must return, by the read path: every key of the
// universe in r that GetPage answers at at, in key order.
func expect(t *testing.T, tl *Timeline, universe []keys.Key, r keys.Range, at lsn.LSN) []kv {
	t.Helper()
	var out []kv
	for _, k := range universe {
		if !r.Contains(k) {
			continue
		}
		v, err := tl.GetPage(k, at)
		if errors.Is(err, ErrNotFound) {
			continue
		}
		if err != nil {
			t.Fatalf("GetPage(%s, %s): %v", k, at, err)
		}
		out = append(out, kv{k, v})
	}
	return out
}

func sameKVs(a, b []kv) bool {
	return slices.EqualFunc(a, b, func(x, y kv) bool { return x.k == y.k && bytes.Equal(x.v, y.v) })
}

// scanFixture writes relation pages and sizes, a dropped relation, SLRU
// and metadata keys (through IngestValues) at known LSNs, and returns the
// keys written, sorted.
func scanFixture(t *testing.T, tl *Timeline, base lsn.LSN) []keys.Key {
	t.Helper()
	at := base
	next := func() lsn.LSN { at += 0x10; return at }
	var ks []keys.Key
	for blk := uint32(0); blk < 4; blk++ {
		mustIngest(t, tl, next(), walrec.FullPageImage{Rel: rel, Blk: blk, Page: page(byte(0x10 + blk))})
		ks = append(ks, keys.RelBlockKey(rel, blk))
	}
	mustIngest(t, tl, next(), walrec.PageWrite{Rel: rel, Blk: 1, Offset: 9, Data: []byte("delta")})
	mustIngest(t, tl, next(), walrec.RelSizeChange{Rel: rel, NBlocks: 4})
	mustIngest(t, tl, next(), walrec.FullPageImage{Rel: scanRelB, Blk: 0, Page: page(0x20)})
	mustIngest(t, tl, next(), walrec.RelSizeChange{Rel: scanRelB, NBlocks: 1})
	mustIngest(t, tl, next(), walrec.FullPageImage{Rel: scanRelC, Blk: 2, Page: page(0x30)})
	mustIngest(t, tl, next(), walrec.RelSizeChange{Rel: scanRelC, NBlocks: 3})
	ks = append(ks, keys.RelSizeKey(rel), keys.RelBlockKey(scanRelB, 0), keys.RelSizeKey(scanRelB), keys.RelBlockKey(scanRelC, 2), keys.RelSizeKey(scanRelC))
	meta := []walrec.KeyValue{
		{Key: keys.ControlFileKey(), Value: walrec.Image([]byte("control"))},
		{Key: keys.CheckpointKey(), Value: walrec.Image([]byte("checkpoint"))},
		{Key: keys.SlruBlockKey(keys.SlruClog, 0, 0), Value: walrec.Image(page(0x40))},
		{Key: keys.SlruBlockKey(keys.SlruClog, 0, 1), Value: walrec.Image(page(0x41))},
		{Key: keys.SlruSizeKey(keys.SlruClog, 0), Value: walrec.SizeImage(2)},
		{Key: keys.RelDirKey(1663, 5), Value: walrec.Image([]byte("reldir"))},
	}
	if err := tl.IngestValues(next(), meta); err != nil {
		t.Fatal(err)
	}
	for _, m := range meta {
		ks = append(ks, m.Key)
	}
	// Drop B: its size key becomes a tombstone; its block stays.
	mustIngest(t, tl, next(), walrec.RelDrop{Rel: scanRelB})
	slices.SortFunc(ks, keys.Key.Compare)
	return slices.Compact(ks)
}

var allRange = keys.Range{Start: keys.Min, End: keys.Max}

// TestScanRange checks scans against the read path over every layer shape
// (open layer only, flushed L0s, L1s and images after compaction, and after
// a reopen), at every LSN the fixture wrote, over ranges that cut through
// relations, SLRUs and metadata; and pins a few answers by hand.
func TestScanRange(t *testing.T) {
	shapes := []struct {
		name string
		prep func(t *testing.T, tn **Tenant, fs *simdisk.FS, tl **Timeline)
	}{
		{"open layer", func(*testing.T, **Tenant, *simdisk.FS, **Timeline) {}},
		{"flushed", func(t *testing.T, _ **Tenant, _ *simdisk.FS, tl **Timeline) {
			if err := (*tl).Flush(); err != nil {
				t.Fatal(err)
			}
		}},
		{"compacted with images", func(t *testing.T, _ **Tenant, _ *simdisk.FS, tl **Timeline) {
			for i := range 3 {
				mustIngest(t, *tl, 0x1000+lsn.LSN(i), walrec.PageWrite{Rel: rel, Blk: 3, Offset: uint16(i), Data: []byte{0xAB}})
				if err := (*tl).Flush(); err != nil {
					t.Fatal(err)
				}
			}
			st, err := (*tl).Compact()
			if err != nil || st.L1Written == 0 || st.ImagesWritten == 0 {
				t.Fatalf("compact: %+v %v", st, err)
			}
		}},
		{"reopened", func(t *testing.T, tn **Tenant, fs *simdisk.FS, tl **Timeline) {
			if err := (*tl).Flush(); err != nil {
				t.Fatal(err)
			}
			(*tn).Close()
			*tn = openTenant(t, fs, Config{CompactionThreshold: 2, ImageCreationThreshold: 1, CompactionTargetSizeBytes: 16 << 10})
			var err error
			if *tl, err = (*tn).Get(ID{1}); err != nil {
				t.Fatal(err)
			}
		}},
	}
	ranges := []keys.Range{
		allRange,
		keys.RelKeyRange(rel),
		{Start: keys.RelBlockKey(rel, 1), End: keys.RelBlockKey(rel, 3)},    // end excluded
		{Start: keys.RelSizeKey(rel), End: keys.SlruDirKey(keys.SlruClog)},  // the other relations
		{Start: keys.SlruDirKey(keys.SlruClog), End: keys.ControlFileKey()}, // SLRU
		{Start: keys.ControlFileKey(), End: keys.Max},                       // metadata
		{Start: keys.RelBlockKey(rel, 2), End: keys.RelBlockKey(rel, 2)},    // empty
		{Start: keys.ControlFileKey(), End: keys.RelBlockKey(rel, 0)},       // inverted: empty
		{Start: keys.RelBlockKey(rel, 4), End: keys.RelSizeKey(rel)},        // nothing there
	}
	for _, sh := range shapes {
		t.Run(sh.name, func(t *testing.T) {
			fs := simdisk.New(simdisk.Options{})
			tn := openTenant(t, fs, Config{CompactionThreshold: 2, ImageCreationThreshold: 1, CompactionTargetSizeBytes: 16 << 10})
			defer func() { tn.Close() }()
			tl, err := tn.Create(ID{1}, 0)
			if err != nil {
				t.Fatal(err)
			}
			universe := scanFixture(t, tl, 0)
			last := tl.LastRecordLSN()
			sh.prep(t, &tn, fs, &tl)
			for at := lsn.LSN(0x10); at <= last; at += 0x10 {
				for _, r := range ranges {
					got, err := collect(tl, r, at)
					if err != nil {
						t.Fatalf("scan %s at %s: %v", r, at, err)
					}
					if want := expect(t, tl, universe, r, at); !sameKVs(got, want) {
						t.Fatalf("scan %s at %s:\n got %v\nwant %v", r, at, got, want)
					}
				}
			}
			// By hand, at the last LSN: 4+1 blocks and sizes of rel, B's
			// block (B's size is a tombstone), C's block and size, the
			// reldir, 2 SLRU blocks and its size, control and checkpoint.
			got, err := collect(tl, allRange, last)
			if err != nil || len(got) != 14 {
				t.Fatalf("full scan at %s: %d keys %v, %v", last, len(got), got, err)
			}
			for _, e := range got {
				if e.k == keys.RelSizeKey(scanRelB) {
					t.Fatalf("the dropped relation's size key was returned")
				}
			}
			// The relation directory (relnode 0) sorts before the relations.
			if got[0].k != keys.RelDirKey(1663, 5) || got[2].k != keys.RelBlockKey(rel, 1) || !bytes.Equal(got[2].v, patched(page(0x11), 9, []byte("delta"))) {
				t.Fatalf("first keys: %v", got[:3])
			}
			// Before the drop B's size is there.
			before, err := collect(tl, keys.RelKeyRange(scanRelB), last-0x10)
			if err != nil || len(before) != 2 || before[1].k != keys.RelSizeKey(scanRelB) {
				t.Fatalf("B before its drop: %v %v", before, err)
			}
		})
	}
}

// TestScanRefusals: the read checks of GetPage apply; an error from the
// callback stops the scan and comes back as it is.
func TestScanRefusals(t *testing.T) {
	fs := simdisk.New(simdisk.Options{})
	tn := openTenant(t, fs, Config{})
	defer tn.Close()
	tl, err := tn.Create(ID{1}, 0)
	if err != nil {
		t.Fatal(err)
	}
	scanFixture(t, tl, 0)
	last := tl.LastRecordLSN()
	if err := tl.Flush(); err != nil {
		t.Fatal(err)
	}
	if _, err := tl.GCAt(0x40); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		at   lsn.LSN
		want error
	}{{0, ErrInvalidLSN}, {0x3F, ErrBelowGCCutoff}, {last + 1, ErrFutureLSN}} {
		if _, err := collect(tl, allRange, c.at); !errors.Is(err, c.want) {
			t.Errorf("scan at %s: %v, want %v", c.at, err, c.want)
		}
	}
	stop := errors.New("enough")
	calls := 0
	err = tl.ScanRange(allRange, last, func(keys.Key, []byte) error {
		calls++
		if calls == 3 {
			return stop
		}
		return nil
	})
	if err != stop || calls != 3 {
		t.Fatalf("callback error: %v after %d calls", err, calls)
	}
}

// TestScanBranch: a child's scan sees the parent's keys as of the branch
// point (not the parent's later writes) and its own above it, whether the
// parent's keys are in memory or in its layer files.
func TestScanBranch(t *testing.T) {
	for _, flushed := range []bool{false, true} {
		t.Run(fmt.Sprintf("parent flushed %v", flushed), func(t *testing.T) {
			fs := simdisk.New(simdisk.Options{})
			tn := openTenant(t, fs, Config{})
			defer tn.Close()
			parent, err := tn.Create(ID{1}, 0)
			if err != nil {
				t.Fatal(err)
			}
			universe := scanFixture(t, parent, 0)
			branchAt := parent.LastRecordLSN()
			if flushed {
				if err := parent.Flush(); err != nil {
					t.Fatal(err)
				}
			}
			// The parent moves on after the branch point.
			mustIngest(t, parent, branchAt+0x10, walrec.FullPageImage{Rel: rel, Blk: 0, Page: page(0xEE)})
			mustIngest(t, parent, branchAt+0x20, walrec.FullPageImage{Rel: rel, Blk: 7, Page: page(0xEF)})
			child, err := tn.Branch(ID{1}, ID{2}, branchAt)
			if err != nil {
				t.Fatal(err)
			}
			mustIngest(t, child, branchAt+0x30, walrec.FullPageImage{Rel: rel, Blk: 2, Page: page(0xC2)})
			mustIngest(t, child, branchAt+0x40, walrec.RelDrop{Rel: scanRelC})
			universe = append(universe, keys.RelBlockKey(rel, 7))
			slices.SortFunc(universe, keys.Key.Compare)
			for _, at := range []lsn.LSN{branchAt, branchAt + 0x30, branchAt + 0x40} {
				got, err := collect(child, allRange, at)
				if err != nil {
					t.Fatal(err)
				}
				if want := expect(t, child, universe, allRange, at); !sameKVs(got, want) {
					t.Fatalf("child scan at %s:\n got %v\nwant %v", at, got, want)
				}
				for _, e := range got {
					if e.k == keys.RelBlockKey(rel, 7) || e.k == keys.RelBlockKey(rel, 0) && e.v[0] == 0xEE {
						t.Fatalf("child at %s sees the parent's write after the branch point: %v", at, e)
					}
				}
			}
			got, _ := collect(child, keys.RelKeyRange(rel), branchAt+0x40)
			if len(got) != 5 || got[2].v[0] != 0xC2 {
				t.Fatalf("child's own write: %v", got)
			}
			if _, err := collect(child, allRange, branchAt-1); !errors.Is(err, ErrBelowGCCutoff) {
				t.Fatalf("child scan below its branch point: %v", err)
			}
		})
	}
}

// TestScanPinnedAcrossGC: a scan pins its layer set when it starts. A GC
// that raises the cutoff past the scan's LSN and frees the layers it reads
// does not disturb it: it reads every key right, the freed files stay until
// it closes, and a scan started after the GC is refused.
func TestScanPinnedAcrossGC(t *testing.T) {
	fs := simdisk.New(simdisk.Options{})
	_, tl, at := gcFixture(t, Options{FS: fs})
	sc, err := tl.Scan(allRange, 8)
	if err != nil {
		t.Fatal(err)
	}
	gst, err := tl.GCAt(at)
	if err != nil || gst.LayersRemoved == 0 {
		t.Fatalf("gc: %+v, %v", gst, err)
	}
	listed := len(tl.listedFiles())
	var got []kv
	for sc.Next() {
		got = append(got, kv{sc.Key(), bytes.Clone(sc.Value())})
		if n := len(dirNames(t, fs, tl.dir)); n != listed+1+gst.LayersRemoved {
			t.Fatalf("%d files on disk during the scan, want %d", n, listed+1+gst.LayersRemoved)
		}
	}
	if sc.Err() != nil || len(got) != 1 || got[0].k != keys.RelBlockKey(rel, 0) || !bytes.Equal(got[0].v, page(0)) {
		t.Fatalf("pinned scan at 8: %v %v", got, sc.Err())
	}
	sc.Close()
	sc.Close() // twice is fine
	if sc.Next() {
		t.Fatal("Next after Close")
	}
	if n := len(dirNames(t, fs, tl.dir)); n != listed+1 {
		t.Fatalf("%d files on disk after the scan closed, want %d", n, listed+1)
	}
	if _, err := tl.Scan(allRange, 8); !errors.Is(err, ErrBelowGCCutoff) {
		t.Fatalf("scan at 8 after the GC: %v", err)
	}
}

// TestScanSeek: Seek skips forward to the first key at or after its
// argument; backwards it does nothing; past the range it ends the scan.
func TestScanSeek(t *testing.T) {
	fs := simdisk.New(simdisk.Options{})
	tn := openTenant(t, fs, Config{})
	defer tn.Close()
	tl, err := tn.Create(ID{1}, 0)
	if err != nil {
		t.Fatal(err)
	}
	scanFixture(t, tl, 0)
	last := tl.LastRecordLSN()
	if err := tl.Flush(); err != nil {
		t.Fatal(err)
	}
	mustIngest(t, tl, last+1, walrec.FullPageImage{Rel: rel, Blk: 9, Page: page(9)}) // one key in memory too
	last++
	sc, err := tl.Scan(allRange, last)
	if err != nil {
		t.Fatal(err)
	}
	defer sc.Close()
	var seen []keys.Key
	for sc.Next() {
		seen = append(seen, sc.Key())
		if k := sc.Key(); k.IsRelBlock() {
			r, _ := k.ToRelTag()
			sc.Seek(keys.RelSizeKey(r)) // skip the relation's other blocks
			sc.Seek(keys.Min)           // backwards: nothing
		}
	}
	// Expected: every non-block key, plus the first block of each relation.
	var exp []keys.Key
	all, err := collect(tl, allRange, last)
	if err != nil {
		t.Fatal(err)
	}
	var prevRel keys.RelTag
	haveRel := false
	for _, e := range all {
		if r, ok := e.k.ToRelTag(); ok && e.k.IsRelBlock() {
			if haveRel && r == prevRel {
				continue
			}
			prevRel, haveRel = r, true
		}
		exp = append(exp, e.k)
	}
	if !slices.Equal(seen, exp) || len(seen) >= len(all) {
		t.Fatalf("skip scan:\n got %v\nwant %v (of %d)", seen, exp, len(all))
	}
	// Seeking past the end ends the scan.
	sc2, err := tl.Scan(keys.RelKeyRange(rel), last)
	if err != nil {
		t.Fatal(err)
	}
	defer sc2.Close()
	sc2.Seek(keys.ControlFileKey())
	if sc2.Next() {
		t.Fatalf("scan continued past its range: %s", sc2.Key())
	}
}
