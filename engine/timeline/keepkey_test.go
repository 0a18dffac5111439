package timeline

import (
	"testing"

	"github.com/stratadb/strata/clock"
	"github.com/stratadb/strata/engine/keys"
	"github.com/stratadb/strata/engine/lsn"
	"github.com/stratadb/strata/engine/walrec"
	"github.com/stratadb/strata/sim/simdisk"
)

// TestKeepKeyDropsOtherKeysInCompaction: with Options.KeepKey (a shard made
// by a split keeping only the keys it owns), compaction's L1 deltas and the
// images hold only kept keys, while kept keys read as before.
func TestKeepKeyDropsOtherKeysInCompaction(t *testing.T) {
	for _, tc := range []struct {
		name string
		keep func(keys.Key) bool
		want int // keys a full scan finds after compaction
	}{
		{"keep all (nil)", nil, 8},
		{"keep even blocks", func(k keys.Key) bool { return !k.IsRelBlock() || k.Field6%2 == 0 }, 4},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fs := simdisk.New(simdisk.Options{})
			tn, err := Open(Options{FS: fs, Clock: clock.NewReal(), Dir: "tenant", Generation: 1, KeepKey: tc.keep,
				Config: Config{CompactionThreshold: 2, ImageCreationThreshold: 1}})
			if err != nil {
				t.Fatal(err)
			}
			defer tn.Close()
			tl, err := tn.Create(ID{1}, 0x10)
			if err != nil {
				t.Fatal(err)
			}
			at := lsn.LSN(0x10)
			for round := range 2 {
				for blk := range uint32(8) {
					at += 0x10
					mustIngest(t, tl, at, walrec.FullPageImage{Rel: rel, Blk: blk, Page: page(byte(round*16) + byte(blk))})
				}
				if err := tl.Flush(); err != nil {
					t.Fatal(err)
				}
			}
			st, err := tl.Compact()
			if err != nil {
				t.Fatal(err)
			}
			if st.L0Merged != 2 || st.ImagesWritten == 0 || st.ImageKeysTotal != tc.want {
				t.Fatalf("compaction %+v: want 2 L0s merged, images of %d keys", st, tc.want)
			}
			n := 0
			err = tl.ScanRange(keys.Range{Start: keys.Min, End: keys.Max}, at, func(k keys.Key, _ []byte) error {
				if k.IsRelBlock() {
					n++
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if n != tc.want {
				t.Errorf("scan after compaction finds %d blocks, want %d", n, tc.want)
			}
			for blk := uint32(0); blk < 8; blk++ {
				if tc.keep == nil || tc.keep(keys.RelBlockKey(rel, blk)) {
					wantPage(t, tl, blk, at, page(16+byte(blk)))
				}
			}
		})
	}
}
