package layer_test

import (
	"errors"
	"math/rand/v2"
	"reflect"
	"testing"

	"github.com/stratadb/strata/disk"
	"github.com/stratadb/strata/engine/keys"
	"github.com/stratadb/strata/engine/layer"
	"github.com/stratadb/strata/engine/lsn"
	"github.com/stratadb/strata/engine/walrec"
	"github.com/stratadb/strata/sim/simdisk"
)

// TestWriteIsAtomicAcrossCrashes writes a layer under injected I/O faults,
// then crashes the simulated disk (tearing unsynced writes): a write that
// returned nil must survive complete, and whatever survives under the name
// must read back exactly — never a partial or torn layer.
func TestWriteIsAtomicAcrossCrashes(t *testing.T) {
	rel := keys.RelTag{SpcNode: 1, DbNode: 2, RelNode: 3}
	var entries []layer.DeltaEntry
	for b := uint32(0); b < 12; b++ {
		p := make([]byte, walrec.PageSize)
		for i := range p {
			p[i] = byte(i) ^ byte(b)
		}
		entries = append(entries, layer.DeltaEntry{Key: keys.RelBlockKey(rel, b), LSN: 0x10, Value: walrec.Image(p)})
	}
	kr := keys.Range{Start: keys.Min, End: keys.Max}
	lr := lsn.Range{Start: 0x10, End: 0x20}
	survived, acked := 0, 0
	for seed := uint64(0); seed < 60; seed++ {
		rng := rand.New(rand.NewPCG(seed, 7))
		fsys := simdisk.New(simdisk.Options{})
		if err := disk.MkdirAllDurable(fsys, "tl"); err != nil {
			t.Fatal(err)
		}
		fsys.SetFaults(rng, simdisk.Faults{WriteEIO: 0.2, SyncEIO: 0.2})
		_, werr := layer.WriteDelta(fsys, "tl/a", kr, lr, entries)
		fsys.SetFaults(rng, simdisk.Faults{})
		fsys.Crash(rng, true)
		if werr == nil {
			acked++
		}
		d, err := layer.OpenDelta(fsys, "tl/a")
		if err != nil {
			if werr == nil {
				t.Fatalf("seed %d: acknowledged layer lost: %v", seed, err)
			}
			if !errors.Is(err, disk.ErrNotExist) {
				t.Fatalf("seed %d: a failed write left a damaged layer: %v", seed, err)
			}
			continue
		}
		survived++
		var got []layer.DeltaEntry
		for e, err := range d.All() {
			if err != nil {
				t.Fatalf("seed %d: surviving layer unreadable: %v", seed, err)
			}
			got = append(got, e)
		}
		d.Close()
		if !reflect.DeepEqual(got, entries) {
			t.Fatalf("seed %d: surviving layer differs", seed)
		}
	}
	if acked == 0 || acked == 60 {
		t.Fatalf("fault rates gave %d/60 successful writes: the test exercises nothing", acked)
	}
	t.Logf("%d/60 writes acknowledged, %d layers survived", acked, survived)
}
