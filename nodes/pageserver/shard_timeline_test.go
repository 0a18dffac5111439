package pageserver

import (
	"errors"
	"testing"

	"github.com/stratadb/strata/engine/keys"
	"github.com/stratadb/strata/engine/shard"
	"github.com/stratadb/strata/engine/timeline"
	"github.com/stratadb/strata/engine/walrec"
)

// A shard stores only its own blocks and the global keys; records for
// other shards' blocks still move last_record_lsn.
func TestShardKeepsOnlyItsKeys(t *testing.T) {
	const stripe = 8
	idents := []shard.ShardIdentity{{Number: 0, Count: 2, StripeSize: stripe}, {Number: 1, Count: 2, StripeSize: stripe}}
	runFixture(t, PageServiceConfig{}, false, idents, func(f *fixture) {
		owner := map[uint32]shard.ShardNumber{}
		for blk := uint32(0); blk < 64; blk += stripe {
			owner[blk] = idents[0].ShardOf(keys.RelBlockKey(testRel, blk))
		}
		for _, id := range idents {
			at := uint64(0x10)
			for blk := uint32(0); blk < 64; blk += stripe {
				f.ingest(t, id.Index(), lsnOf(at), walrec.FullPageImage{Rel: testRel, Blk: blk, Page: testPage(byte(blk))})
				at++
			}
			f.ingest(t, id.Index(), lsnOf(at), walrec.RelSizeChange{Rel: testRel, NBlocks: 64})
			st := f.tls[f.target(id.Index())]
			if st.LastRecordLSN() != lsnOf(at) {
				t.Fatalf("shard %s: last_record_lsn %s, want %s", id.Index(), st.LastRecordLSN(), lsnOf(at))
			}
			for blk, o := range owner {
				_, err := st.tl.GetPage(keys.RelBlockKey(testRel, blk), lsnOf(at))
				if o == id.Number && err != nil {
					t.Errorf("shard %s lost its block %d: %v", id.Index(), blk, err)
				}
				if o != id.Number && !errors.Is(err, timeline.ErrNotFound) {
					t.Errorf("shard %s stored block %d of shard %d: %v", id.Index(), blk, o, err)
				}
			}
			if n, err := st.tl.RelSize(testRel, lsnOf(at)); err != nil || n != 64 {
				t.Errorf("shard %s: relation size %d, %v (global keys live on every shard)", id.Index(), n, err)
			}
		}
	})
}
