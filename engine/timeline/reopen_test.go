package timeline

import (
	"testing"
	"time"

	"github.com/stratadb/strata/engine/keys"
	"github.com/stratadb/strata/engine/walrec"
	"github.com/stratadb/strata/sim"
)

// TestIngestDuringNoPageFlush: a flush that only moves
// disk_consistent_lsn past records that changed no page (logical messages,
// or a shard's records for other shards' keys) races an ingest of a page
// record. The open layer, which was empty, then holds that record but
// still starts below the new disk_consistent_lsn, and an image layer
// created at disk_consistent_lsn overlapped it (the layer map's invariant
// fired). Seen in the pageserver scenario (seeds 47 and 71).
func TestIngestDuringNoPageFlush(t *testing.T) {
	for seed := uint64(1); seed <= 20; seed++ {
		err := runWorld(seed, func(w *sim.World) error {
			tn, err := Open(Options{FS: simDisk(w), Clock: w.Clock(), Dir: "tenant", Config: Config{ImageCreationThreshold: 1}, Generation: 1})
			if err != nil {
				return err
			}
			defer tn.Close()
			tl, err := tn.Create(ID{1}, 0)
			if err != nil {
				return err
			}
			if err := tl.Ingest(0x10, walrec.FullPageImage{Rel: rel, Blk: 0, Page: page(1)}); err != nil {
				return err
			}
			if err := tl.Flush(); err != nil {
				return err
			}
			if err := tl.Ingest(0x20, walrec.LogicalMessage{}); err != nil {
				return err
			}
			wait := tasks(w, map[string]func() error{
				"flush": tl.Flush,
				"ingest": func() error {
					w.Sleep(time.Duration(w.Rand().IntN(8000)) * time.Microsecond)
					return tl.Ingest(0x30, walrec.FullPageImage{Rel: rel, Blk: 0, Page: page(3)})
				},
			})
			if err := wait(); err != nil {
				return err
			}
			if _, err := tl.Compact(); err != nil {
				return err
			}
			if err := tl.Flush(); err != nil {
				return err
			}
			got, err := tl.GetPage(keys.RelBlockKey(rel, 0), 0x30)
			if err != nil || got[0] != 3 {
				t.Errorf("seed %d: block 0 at 0/30: %v", seed, err)
			}
			return nil
		})
		if err != nil {
			t.Fatalf("seed %d: %v", seed, err)
		}
	}
}
