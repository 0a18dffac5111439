package timeline

import (
	"bytes"
	"errors"
	"slices"
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
	if names := dirNames(t, fs2, solo.dir); len(names) != len(solo.listedFiles())+1 {
		t.Fatalf("files on disk %v, listed %v", names, solo.listedFiles())
	}
}

// gcFixture is a root timeline with four flushed and compacted rounds
// each writing block 0 as an image, so that a GC at the last record frees
// the older layers.
func gcFixture(t *testing.T, o Options) (*Tenant, *Timeline, lsn.LSN) {
	t.Helper()
	o.Config = Config{CompactionThreshold: 3, ImageCreationThreshold: 2}
	o.Clock, o.Dir, o.Generation = clock.NewReal(), "tenant", 1
	tn, err := Open(o)
	if err != nil {
		t.Fatal(err)
	}
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
	return tn, tl, at
}

// TestReadPinnedAcrossGC is a read that pinned its version just before a GC
// raised the cutoff past it and freed the layers it needs: it finishes on
// its version and returns the right page, the freed files stay on disk
// until it lets go, and a read that starts after the GC is refused.
func TestReadPinnedAcrossGC(t *testing.T) {
	fs := simdisk.New(simdisk.Options{})
	_, tl, at := gcFixture(t, Options{FS: fs})
	key := keys.RelBlockKey(rel, 0)
	s, err := tl.beginRead(8) // the read starts before GC
	if err != nil {
		t.Fatal(err)
	}
	gst, err := tl.GCAt(at)
	if err != nil || gst.LayersRemoved == 0 {
		t.Fatalf("gc: %+v, %v", gst, err)
	}
	listed := len(tl.listedFiles())
	if n := len(dirNames(t, fs, tl.dir)); n != listed+1+gst.LayersRemoved {
		t.Fatalf("%d files on disk while a read holds the %d freed layers, want %d", n, gst.LayersRemoved, listed+1+gst.LayersRemoved)
	}
	got, err := appendPage(nil, key, 8, s)
	if err != nil || !bytes.Equal(got, page(0)) {
		t.Fatalf("pinned read at 8 across a GC to %s: %d bytes, %v; want page 0", at, len(got), err)
	}
	tl.endRead(s)
	if n := len(dirNames(t, fs, tl.dir)); n != listed+1 {
		t.Fatalf("%d files on disk after the last reader let go, want %d", n, listed+1)
	}
	if _, err := tl.GetPage(key, 8); !errors.Is(err, ErrBelowGCCutoff) {
		t.Fatalf("read at 8 after the GC: %v; want ErrBelowGCCutoff", err)
	}
	wantPage(t, tl, 0, at, page(3))
}

// TestBranchRacingGC is a Branch whose branch point is reserved just before
// a GC of the parent moves the cutoff past it: the GC must keep what the
// child reads at its branch point, so the child's first read is the
// parent's page there. A reservation below the cutoff is refused, and a
// branch that fails releases its reservation.
func TestBranchRacingGC(t *testing.T) {
	tn, tl, at := gcFixture(t, Options{FS: simdisk.New(simdisk.Options{})})
	parent := ID{1}
	// Branch(parent, child, 8), interleaved with GC: reserve, GC, then
	// create.
	if err := tl.apply(&versionEdit{kind: editBranch, branchPoint: 8}); err != nil {
		t.Fatal(err)
	}
	if _, err := tl.GCAt(at); err != nil {
		t.Fatal(err)
	}
	child, err := tn.create(ID{2}, branchMetadata(parent, 8), tl)
	if err != nil {
		t.Fatal(err)
	}
	wantPage(t, child, 0, 8, page(0))
	// The reservation is the child's branch point from now on.
	if _, err := tl.GCAt(at); err != nil {
		t.Fatal(err)
	}
	wantPage(t, child, 0, 8, page(0))
	if err := tl.apply(&versionEdit{kind: editBranch, branchPoint: 16}); !errors.Is(err, ErrBelowGCCutoff) {
		t.Fatalf("reserving a branch point below the cutoff: %v", err)
	}
	if _, err := tn.Branch(parent, ID{2}, at); !errors.Is(err, ErrExists) {
		t.Fatalf("branch onto a taken id: %v", err)
	}
	if bp := tl.peek().branchPoints; !slices.Equal(bp, []lsn.LSN{8}) {
		t.Fatalf("branch points %v, want [8]", bp)
	}
}
