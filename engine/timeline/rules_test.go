package timeline

import (
	"errors"
	"testing"

	"github.com/stratadb/strata/clock"
	"github.com/stratadb/strata/disk"
	"github.com/stratadb/strata/engine/keys"
	"github.com/stratadb/strata/engine/lsn"
	"github.com/stratadb/strata/engine/walrec"
	"github.com/stratadb/strata/sim/simdisk"
)

func dirNames(t *testing.T, fs disk.FS, dir string) map[string]bool {
	t.Helper()
	ents, err := fs.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	for _, e := range ents {
		out[e.Name()] = true
	}
	return out
}

func TestBranchChecks(t *testing.T) {
	fs := simdisk.New(simdisk.Options{})
	tn := openTenant(t, fs, Config{})
	parent := ID{1}
	tl, err := tn.Create(parent, 0)
	if err != nil {
		t.Fatal(err)
	}
	for i := lsn.LSN(1); i <= 5; i++ {
		mustIngest(t, tl, i*10, walrec.FullPageImage{Rel: rel, Blk: 0, Page: page(byte(i))})
	}
	if _, err := tl.GCAt(30); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name   string
		parent ID
		child  ID
		at     lsn.LSN
		want   error
	}{
		{"above last record", parent, ID{2}, 60, ErrFutureLSN},
		{"below gc cutoff", parent, ID{2}, 20, ErrBelowGCCutoff},
		{"at zero", parent, ID{2}, 0, ErrInvalidLSN},
		{"unknown parent", ID{9}, ID{2}, 40, ErrUnknown},
		{"child id taken", parent, parent, 40, ErrExists},
		{"valid", parent, ID{2}, 40, nil},
	}
	for _, c := range cases {
		_, err := tn.Branch(c.parent, c.child, c.at)
		if !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", c.name, err, c.want)
		}
		if c.want != nil && dirNames(t, fs, "tenant/timelines")[c.child.String()] && c.child != parent {
			t.Errorf("%s: a refused branch left a directory", c.name)
		}
	}
	child, err := tn.Get(ID{2})
	if err != nil {
		t.Fatal(err)
	}
	wantPage(t, child, 0, 40, page(4))
	if _, err := child.GetPage(keys.RelBlockKey(rel, 0), 35); !errors.Is(err, ErrBelowGCCutoff) {
		t.Fatalf("child read below its branch point: %v", err)
	}
	mustIngest(t, child, 45, walrec.FullPageImage{Rel: rel, Blk: 0, Page: page(0x77)})
	wantPage(t, child, 0, 45, page(0x77))
	wantPage(t, tl, 0, 50, page(5)) // the parent does not see the child's write
	if id, at, ok := child.Ancestor(); !ok || id != parent || at != 40 {
		t.Fatalf("ancestor: %s %s %v", id, at, ok)
	}
}

func TestOpenCleansLeftovers(t *testing.T) {
	fs := simdisk.New(simdisk.Options{})
	tn := openTenant(t, fs, Config{})
	tl, err := tn.Create(ID{1}, 0)
	if err != nil {
		t.Fatal(err)
	}
	mustIngest(t, tl, 8, walrec.FullPageImage{Rel: rel, Blk: 0, Page: page(1)})
	if err := tl.Flush(); err != nil {
		t.Fatal(err)
	}
	tn.Close()
	// What crashes leave: a half-made timeline, an unlisted layer file, a
	// metadata temp file.
	if err := fs.MkdirAll("tenant/timelines/" + ID{7}.String() + tempSuffix); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"000000000000000000000000000000000000-FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF__0000000000000009-0000000000000010-00000001", "metadata.tmp"} {
		f, err := fs.Create(tl.dir + "/" + name)
		if err != nil {
			t.Fatal(err)
		}
		_ = f.Close()
	}
	tn2 := openTenant(t, fs, Config{})
	if ids := tn2.Timelines(); len(ids) != 1 || ids[0] != (ID{1}) {
		t.Fatalf("timelines after open: %v", ids)
	}
	names := dirNames(t, fs, tl.dir)
	if len(names) != 2 || !names[metadataName] {
		t.Fatalf("timeline dir after open: %v", names)
	}
	tl2, _ := tn2.Get(ID{1})
	wantPage(t, tl2, 0, 8, page(1))
	tn2.Close()

	// A listed layer that is missing fails the open.
	for n := range names {
		if n != metadataName {
			if err := fs.Remove(tl.dir + "/" + n); err != nil {
				t.Fatal(err)
			}
		}
	}
	if _, err := Open(Options{FS: fs, Clock: clock.NewReal(), Dir: "tenant"}); !errors.Is(err, disk.ErrNotExist) {
		t.Fatalf("open with a missing layer: %v", err)
	}
}

func TestCompactionAndGC(t *testing.T) {
	fs := simdisk.New(simdisk.Options{})
	tn := openTenant(t, fs, Config{CompactionThreshold: 3, ImageCreationThreshold: 2, CompactionTargetSizeBytes: 16 << 10})
	tl, err := tn.Create(ID{1}, 0)
	if err != nil {
		t.Fatal(err)
	}
	// Five blocks, each flushed round writing every block.
	at := lsn.LSN(0)
	want := map[lsn.LSN][5][]byte{}
	var cur [5][]byte
	var total CompactStats
	for round := 0; round < 6; round++ {
		for blk := uint32(0); blk < 5; blk++ {
			at += 8
			var rec walrec.Record
			if round == 0 {
				rec = walrec.FullPageImage{Rel: rel, Blk: blk, Page: page(byte(blk))}
				cur[blk] = page(byte(blk))
			} else {
				d := []byte{byte(round), byte(blk)}
				rec = walrec.PageWrite{Rel: rel, Blk: blk, Offset: uint16(round * 10), Data: d}
				cur[blk] = patched(cur[blk], round*10, d)
			}
			mustIngest(t, tl, at, rec)
		}
		want[at] = cur
		if err := tl.Flush(); err != nil {
			t.Fatal(err)
		}
		st, err := tl.Compact()
		if err != nil {
			t.Fatal(err)
		}
		total.L0Merged += st.L0Merged
		total.L1Written += st.L1Written
		total.ImagesWritten += st.ImagesWritten
		if round == 2 {
			// Branch at the end of round 2: GC must keep what it needs.
			if _, err := tn.Branch(ID{1}, ID{2}, at); err != nil {
				t.Fatal(err)
			}
		}
	}
	if total.L0Merged != 6 || total.L1Written < 2 || total.ImagesWritten < 1 {
		t.Fatalf("compaction: %+v", total)
	}
	for _, l := range tl.snapshot().Historic() {
		if isL0(l.Desc()) {
			t.Fatalf("L0 %s left after compaction", l.Desc())
		}
	}
	check := func(tl *Timeline, at lsn.LSN) {
		t.Helper()
		for blk, p := range want[at] {
			wantPage(t, tl, uint32(blk), at, p)
		}
	}
	for l := range want {
		check(tl, l)
	}
	gst, err := tl.GCAt(at)
	if err != nil {
		t.Fatal(err)
	}
	// The L1 deltas of rounds 0-2 and the image of round 1 are superseded
	// at the cutoff by the image of round 3, but the branch point at the end
	// of round 2 still needs them; everything newer is needed at the cutoff.
	if gst.LayersRemoved != 0 {
		t.Fatalf("gc removed %d layers the branch point needs", gst.LayersRemoved)
	}
	child, _ := tn.Get(ID{2})
	check(child, 120)
	check(tl, at)
	if _, err := tl.GetPage(keys.RelBlockKey(rel, 0), at-1); !errors.Is(err, ErrBelowGCCutoff) {
		t.Fatalf("read below cutoff: %v", err)
	}
	// A timeline without children frees its superseded layers.
	fs2 := simdisk.New(simdisk.Options{})
	tn2 := openTenant(t, fs2, Config{CompactionThreshold: 3, ImageCreationThreshold: 2})
	solo, _ := tn2.Create(ID{3}, 0)
	at = 0
	for round := 0; round < 4; round++ {
		at += 8
		mustIngest(t, solo, at, walrec.FullPageImage{Rel: rel, Blk: 0, Page: page(byte(round))})
		if err := solo.Flush(); err != nil {
			t.Fatal(err)
		}
		if _, err := solo.Compact(); err != nil {
			t.Fatal(err)
		}
	}
	before := len(solo.snapshot().Historic())
	gst, err = solo.GCAt(at)
	if err != nil {
		t.Fatal(err)
	}
	if gst.LayersRemoved == 0 || len(solo.snapshot().Historic()) != before-gst.LayersRemoved {
		t.Fatalf("gc without children: %+v, %d layers before", gst, before)
	}
	wantPage(t, solo, 0, at, page(3))
	if names := dirNames(t, fs2, solo.dir); len(names) != len(solo.files)+1 {
		t.Fatalf("files on disk %v, listed %v", names, solo.files)
	}
}

// TestReadRacingGCRefused is a read that passed checkRead just before a GC
// raised the cutoff and freed the layers it needs: its search then sees
// only what GC left, and must be refused with ErrBelowGCCutoff, never
// answered (with an older page, or as not found).
func TestReadRacingGCRefused(t *testing.T) {
	tn := openTenant(t, simdisk.New(simdisk.Options{}), Config{CompactionThreshold: 3, ImageCreationThreshold: 2})
	tl, err := tn.Create(ID{1}, 0)
	if err != nil {
		t.Fatal(err)
	}
	at := lsn.LSN(0)
	for round := 0; round < 4; round++ {
		at += 8
		mustIngest(t, tl, at, walrec.FullPageImage{Rel: rel, Blk: 0, Page: page(byte(round))})
		if err := tl.Flush(); err != nil {
			t.Fatal(err)
		}
		if _, err := tl.Compact(); err != nil {
			t.Fatal(err)
		}
	}
	key := keys.RelBlockKey(rel, 0)
	if err := tl.checkRead(8); err != nil { // the read starts before GC
		t.Fatal(err)
	}
	if gst, err := tl.GCAt(at); err != nil || gst.LayersRemoved == 0 {
		t.Fatalf("gc: %+v, %v", gst, err)
	}
	s := tn.scratch.get()
	defer tn.scratch.put(s)
	if val, err := tl.appendPage(nil, key, 8, s); !errors.Is(err, ErrBelowGCCutoff) {
		t.Fatalf("read at 8 racing GC to %s: %d bytes, %v; want ErrBelowGCCutoff", at, len(val), err)
	}
	wantPage(t, tl, 0, at, page(3))
}

// TestBranchRacingGC is a Branch that passed its cutoff check just before a
// GC of the parent moved the cutoff past the branch point: the GC must keep
// what the child reads at its branch point (Branch reserves the point before
// the check), so the child's first read is the parent's page at that point.
func TestBranchRacingGC(t *testing.T) {
	tn := openTenant(t, simdisk.New(simdisk.Options{}), Config{CompactionThreshold: 3, ImageCreationThreshold: 2})
	parent := ID{1}
	tl, err := tn.Create(parent, 0)
	if err != nil {
		t.Fatal(err)
	}
	at := lsn.LSN(0)
	for round := 0; round < 4; round++ {
		at += 8
		mustIngest(t, tl, at, walrec.FullPageImage{Rel: rel, Blk: 0, Page: page(byte(round))})
		if err := tl.Flush(); err != nil {
			t.Fatal(err)
		}
		if _, err := tl.Compact(); err != nil {
			t.Fatal(err)
		}
	}
	// Branch(parent, child, 8), interleaved with GC: reserve, check, GC,
	// then create.
	release := tn.reserveBranchPoint(parent, 8)
	if tl.GCCutoff() > 8 {
		t.Fatal("cutoff check would refuse the branch")
	}
	if _, err := tl.GCAt(at); err != nil {
		t.Fatal(err)
	}
	child, err := tn.create(ID{2}, branchMetadata(parent, 8), tl)
	release()
	if err != nil {
		t.Fatal(err)
	}
	wantPage(t, child, 0, 8, page(0))
	// Once the child is registered, its branch point alone keeps the layers.
	if _, err := tl.GCAt(at); err != nil {
		t.Fatal(err)
	}
	wantPage(t, child, 0, 8, page(0))
	if len(tn.branching) != 0 {
		t.Fatalf("branch reservations left: %v", tn.branching)
	}
}
