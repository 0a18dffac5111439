package timeline

import (
	"errors"
	"reflect"
	"slices"
	"testing"

	"github.com/stratadb/strata/clock"
	"github.com/stratadb/strata/disk"
	"github.com/stratadb/strata/engine/layer"
	"github.com/stratadb/strata/engine/lsn"
	"github.com/stratadb/strata/engine/walrec"
	"github.com/stratadb/strata/sim/simdisk"
)

// TestOnEditReportsPersistedEdits: the observer hears of every persisted
// edit in order — each flush's new L0, a compaction's L1s replacing the
// L0s, a GC's cutoff — and each report's State is what the metadata now
// holds (ReadState) and what State() says.
func TestOnEditReportsPersistedEdits(t *testing.T) {
	fs := simdisk.New(simdisk.Options{})
	var edits []Edit
	tn, err := Open(Options{FS: fs, Clock: clock.NewReal(), Dir: "tenant", Generation: 3,
		Config: Config{CompactionThreshold: 2, MaxL0Merge: 2},
		OnEdit: func(e Edit) { edits = append(edits, e) }})
	if err != nil {
		t.Fatal(err)
	}
	defer tn.Close()
	id := ID{1}
	tl, err := tn.Create(id, 0x10)
	if err != nil {
		t.Fatal(err)
	}
	if len(edits) != 0 {
		t.Fatalf("create reported %d edits, want none (the caller knows it created the timeline)", len(edits))
	}
	for i, at := range []lsn.LSN{0x20, 0x30} {
		mustIngest(t, tl, at, walrec.FullPageImage{Rel: rel, Blk: uint32(i), Page: page(byte(i + 1))})
		if err := tl.Flush(); err != nil {
			t.Fatal(err)
		}
	}
	if len(edits) != 2 {
		t.Fatalf("%d edits after two flushes, want 2: %+v", len(edits), edits)
	}
	for i, e := range edits {
		if e.Kind != "flush" || e.Timeline != id || len(e.Added) != 1 || len(e.Removed) != 0 || e.Added[0].Generation != 3 {
			t.Errorf("edit %d: %+v, want a flush adding one generation-3 layer", i, e)
		}
		if len(e.State.Layers) != i+1 || !slices.Contains(e.State.Layers, e.Added[0]) {
			t.Errorf("edit %d: state layers %v do not hold the new %v", i, e.State.Layers, e.Added[0])
		}
	}
	if got := edits[1].State.DiskConsistentLSN; got != 0x30 {
		t.Errorf("second flush reports disk_consistent_lsn %s, want 0/30", got)
	}
	st, err := tl.Compact()
	if err != nil || st.L0Merged != 2 {
		t.Fatalf("compact: %+v, %v", st, err)
	}
	c := edits[2]
	if c.Kind != "compact" || len(c.Removed) != 2 || len(c.Added) != st.L1Written {
		t.Fatalf("compaction reported %+v", c)
	}
	for _, r := range c.Removed {
		if slices.Contains(c.State.Layers, r) {
			t.Errorf("state after compaction still lists %s", r)
		}
	}
	mustIngest(t, tl, 0x40, walrec.FullPageImage{Rel: rel, Blk: 0, Page: page(9)})
	if _, err := tl.GCAt(0x30); err != nil {
		t.Fatal(err)
	}
	last := edits[len(edits)-1]
	if last.Kind != "gc" || last.State.GCCutoff != 0x30 {
		t.Fatalf("gc reported %+v", last)
	}
	now, err := tl.State()
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(now, last.State) {
		t.Errorf("State() %+v differs from the last report %+v", now, last.State)
	}
	onDisk, err := ReadState(fs, "tenant", id)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(onDisk, now) {
		t.Errorf("ReadState %+v differs from State() %+v", onDisk, now)
	}
	if _, err := ReadState(fs, "tenant", ID{9}); !errors.Is(err, disk.ErrNotExist) {
		t.Errorf("ReadState of a missing timeline: %v, want ErrNotExist", err)
	}
}

// TestInstallFromFetchedFiles: a timeline's layer files copied into a
// staging directory of another tenant directory, plus its state, open as
// the same timeline (same pages); Install replaces an existing timeline
// of that id; a state naming a file that was not staged is refused and
// leaves the old timeline in place.
func TestInstallFromFetchedFiles(t *testing.T) {
	fs := simdisk.New(simdisk.Options{})
	src := openTenant(t, fs, Config{})
	parent, child := ID{1}, ID{2}
	tl, err := src.Create(parent, 0x10)
	if err != nil {
		t.Fatal(err)
	}
	mustIngest(t, tl, 0x20, walrec.FullPageImage{Rel: rel, Blk: 0, Page: page(0xAA)})
	if err := tl.Flush(); err != nil {
		t.Fatal(err)
	}
	ch, err := src.Branch(parent, child, 0x20)
	if err != nil {
		t.Fatal(err)
	}
	mustIngest(t, ch, 0x30, walrec.FullPageImage{Rel: rel, Blk: 0, Page: page(0xBB)})
	if err := ch.Flush(); err != nil {
		t.Fatal(err)
	}
	states := map[ID]State{}
	for _, id := range []ID{parent, child} {
		x, _ := src.Get(id)
		if states[id], err = x.State(); err != nil {
			t.Fatal(err)
		}
	}
	src.Close()

	// The destination already holds an unrelated timeline under the
	// parent's id: Install replaces it.
	dst := openTenant2(t, fs, "other")
	if _, err := dst.Create(parent, 0x500); err != nil {
		t.Fatal(err)
	}
	dst.Close()
	install := func(id ID, st State, skip string) error {
		dir, err := Stage(fs, "other", id)
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range st.Layers {
			if n.String() == skip {
				continue
			}
			b, err := disk.ReadFile(fs, "tenant/timelines/"+id.String()+"/"+n.String())
			if err != nil {
				t.Fatal(err)
			}
			if err := disk.WriteFileAtomic(fs, dir+"/"+n.String(), b); err != nil {
				t.Fatal(err)
			}
		}
		return Install(fs, "other", id, st)
	}
	if err := install(parent, states[parent], states[parent].Layers[0].String()); !errors.Is(err, ErrMissingLayer) {
		t.Fatalf("install with a file missing: %v, want ErrMissingLayer", err)
	}
	if st, err := ReadState(fs, "other", parent); err != nil || st.InitLSN != 0x500 {
		t.Fatalf("after a refused install the old timeline must stay: %+v, %v", st, err)
	}
	for _, id := range []ID{child, parent} { // order does not matter on disk
		if err := install(id, states[id], ""); err != nil {
			t.Fatalf("install %s: %v", id, err)
		}
	}
	dst = openTenant2(t, fs, "other")
	defer dst.Close()
	for id, want := range states {
		x, err := dst.Get(id)
		if err != nil {
			t.Fatal(err)
		}
		got, _ := x.State()
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s: installed state %+v, want %+v", id, got, want)
		}
	}
	c, _ := dst.Get(child)
	wantPage(t, c, 0, 0x20, page(0xAA))
	wantPage(t, c, 0, 0x30, page(0xBB))
}

func openTenant2(t *testing.T, fs *simdisk.FS, dir string) *Tenant {
	t.Helper()
	tn, err := Open(Options{FS: fs, Clock: clock.NewReal(), Dir: dir, Generation: layer.Generation(2)})
	if err != nil {
		t.Fatal(err)
	}
	return tn
}
