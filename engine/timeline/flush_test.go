package timeline

import (
	"math/rand/v2"
	"testing"

	"github.com/stratadb/strata/engine/keys"
	"github.com/stratadb/strata/engine/lsn"
	"github.com/stratadb/strata/engine/walrec"
	"github.com/stratadb/strata/sim/simdisk"
)

// TestFlushCoversLogicalRecordsAfterFailedFlush is the regression test for
// a case the rapid model found: a flush fails (its frozen layer stays), then
// only a logical message arrives, then a flush succeeds. disk_consistent_lsn
// must reach the last record, not stop at the frozen layer's end, and stay
// there across a reopen.
func TestFlushCoversLogicalRecordsAfterFailedFlush(t *testing.T) {
	fs := simdisk.New(simdisk.Options{})
	tn := openTenant(t, fs, Config{})
	tl, err := tn.Create(ID{1}, 0)
	if err != nil {
		t.Fatal(err)
	}
	mustIngest(t, tl, 1, walrec.RelSizeChange{Rel: rel, NBlocks: 2})
	fs.SetFaults(rand.New(rand.NewPCG(1, 1)), simdisk.Faults{WriteEIO: 1, NoSpace: 1})
	if err := tl.Flush(); err == nil {
		t.Fatal("flush succeeded with every write failing")
	}
	fs.SetFaults(nil, simdisk.Faults{})
	mustIngest(t, tl, 2, walrec.LogicalMessage{Prefix: "p", Payload: []byte("x")})
	if err := tl.Flush(); err != nil {
		t.Fatal(err)
	}
	if got := tl.DiskConsistentLSN(); got != 2 {
		t.Fatalf("disk_consistent_lsn %s after flush, want 0/2", got)
	}
	// The timeline goes on as usual above it.
	mustIngest(t, tl, 3, walrec.RelSizeChange{Rel: rel, NBlocks: 5})
	if err := tl.Flush(); err != nil {
		t.Fatal(err)
	}
	tn.Close()
	tn = openTenant(t, fs, Config{})
	defer tn.Close()
	tl, err = tn.Get(ID{1})
	if err != nil {
		t.Fatal(err)
	}
	if got := tl.DiskConsistentLSN(); got != 3 {
		t.Fatalf("disk_consistent_lsn %s after reopen, want 0/3", got)
	}
	for _, c := range []struct {
		at   lsn.LSN
		want uint32
	}{{1, 2}, {2, 2}, {3, 5}} {
		if n, err := tl.RelSize(rel, c.at); err != nil || n != c.want {
			t.Fatalf("size at %s: %d, %v; want %d", c.at, n, err, c.want)
		}
	}
	if _, err := tl.GetPage(keys.RelSizeKey(rel), 3); err != nil {
		t.Fatal(err)
	}
}
