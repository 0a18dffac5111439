package main

import (
	"encoding/json"
	"fmt"
	"testing"

	"github.com/stratadb/strata/engine/keys"
	"github.com/stratadb/strata/engine/shard"
	"github.com/stratadb/strata/nodes/compute/pageclient"
)

// TestKeyExplainAgreesWithPageClient: for stripe sizes 1 and 2048 and
// counts 2, 4 and 8, `strata key explain --count --stripe --json` names
// the same shard for a relation block as the page client routes it to,
// and the client's splitter puts the block in that shard's part. The keys
// cover several relations, forks (the init fork is a shard-0 key) and
// blocks across many stripes.
func TestKeyExplainAgreesWithPageClient(t *testing.T) {
	rels := []keys.RelTag{
		{SpcNode: 1663, DbNode: 5, RelNode: 16384},
		{SpcNode: 1663, DbNode: 5, RelNode: 16385, ForkNum: keys.ForkVM},
		{SpcNode: 1664, DbNode: 1, RelNode: 1259, ForkNum: keys.ForkInit},
		{SpcNode: 1663, DbNode: 16400, RelNode: 4000000000},
	}
	for _, stripe := range []uint32{1, 2048} {
		blocks := []uint32{0, 1, stripe - 1, stripe, 3*stripe + 1, 7*stripe + stripe/2, 100 * stripe, keys.MaxBlockNumber - 1}
		for _, count := range []shard.ShardCount{2, 4, 8} {
			m := pageclient.ShardMap{Count: count, StripeSize: stripe}
			for n := range int(count) {
				m.Addrs = append(m.Addrs, fmt.Sprintf("ps-%d:6400", n))
			}
			spread := map[shard.ShardNumber]bool{}
			for _, rel := range rels {
				parts := pageclient.Split(m, rel, blocks, 256)
				for _, blk := range blocks {
					k := keys.RelBlockKey(rel, blk)
					code, out, errOut := runCLI(t, "key", "explain", "--count", fmt.Sprint(count), "--stripe", fmt.Sprint(stripe), "--json", k.String())
					if code != 0 {
						t.Fatalf("key explain %s: exit %d: %s", k, code, errOut)
					}
					var got keyExplainOutput
					if err := json.Unmarshal([]byte(out), &got); err != nil || got.Shard == nil {
						t.Fatalf("key explain %s: %v\n%s", k, err, out)
					}
					routed := m.ShardOf(rel, blk)
					spread[routed] = true
					if shard.ShardNumber(*got.Shard) != routed {
						t.Errorf("count %d stripe %d: key explain puts block %d of %v on shard %d, the page client on %d", count, stripe, blk, rel, *got.Shard, routed)
					}
					inPart := false
					for _, p := range parts {
						for _, b := range p.Blocks {
							inPart = inPart || (b == blk && p.Shard == routed)
						}
					}
					if !inPart {
						t.Errorf("count %d stripe %d: block %d of %v not in the part of shard %d", count, stripe, blk, rel, routed)
					}
				}
			}
			if len(spread) < 2 {
				t.Errorf("count %d stripe %d: every key on one shard: the table proves little", count, stripe)
			}
		}
	}
}
