package pageclient

import (
	"errors"
	"fmt"
	"strings"

	"github.com/stratadb/strata/engine/keys"
	"github.com/stratadb/strata/engine/shard"
)

// Errors of shard maps.
var (
	// ErrShardMap: a map that is not valid on its own.
	ErrShardMap = errors.New("pageclient: invalid shard map")
	// ErrShardMapUpdate: a valid map that may not replace the current one
	// (a shrinking count, a stripe change once sharded).
	ErrShardMapUpdate = errors.New("pageclient: shard map update refused")
)

// ShardMap says where a tenant's shards are: Addrs[n] serves shard n.
// Count 0 is the legacy unsharded tenant (one address, no stripe needed);
// count 1 is one shard addressed as 0001. A map for count >= 1 needs a
// stripe size and exactly Count addresses.
type ShardMap struct {
	Count shard.ShardCount
	// StripeSize is the stripe in pages (ignored when Count is 0).
	StripeSize uint32
	Addrs      []string
}

// Validate reports a map that cannot route: missing or extra shards, an
// empty address, a sharded map without a stripe.
func (m ShardMap) Validate() error {
	want := max(int(m.Count), 1)
	switch {
	case len(m.Addrs) != want:
		return fmt.Errorf("%w: %d addresses for count %d (want %d: one per shard)", ErrShardMap, len(m.Addrs), m.Count, want)
	case m.Count >= 1 && m.StripeSize == 0:
		return fmt.Errorf("%w: count %d without a stripe size", ErrShardMap, m.Count)
	}
	for i, a := range m.Addrs {
		if strings.TrimSpace(a) == "" {
			return fmt.Errorf("%w: shard %d has no address", ErrShardMap, i)
		}
	}
	return nil
}

// CheckUpdate reports whether next may replace m: it must be valid, its
// count may not be smaller (a split only grows it; count 0 is the smallest),
// and once m has two or more shards the stripe may not change (the keys'
// placement depends on it).
func (m ShardMap) CheckUpdate(next ShardMap) error {
	if err := next.Validate(); err != nil {
		return err
	}
	if next.Count < m.Count {
		return fmt.Errorf("%w: shard count %d -> %d shrinks", ErrShardMapUpdate, m.Count, next.Count)
	}
	if m.Count >= 2 && next.StripeSize != m.StripeSize {
		return fmt.Errorf("%w: stripe %d -> %d on a tenant of %d shards", ErrShardMapUpdate, m.StripeSize, next.StripeSize, m.Count)
	}
	return nil
}

// Shards is how many shards the map routes to (1 for unsharded).
func (m ShardMap) Shards() int { return max(int(m.Count), 1) }

// Index is shard n's index in this map (what the neon-shard-id header
// carries: 0000 when unsharded).
func (m ShardMap) Index(n shard.ShardNumber) shard.ShardIndex {
	return shard.ShardIndex{Number: n, Count: m.Count}
}

// ShardOf is the shard that owns block blk of rel: engine/shard's mapping
// with the map's count and stripe, the same one the pageserver checks and
// `strata key explain --count --stripe` prints.
func (m ShardMap) ShardOf(rel keys.RelTag, blk uint32) shard.ShardNumber {
	return shard.KeyToShard(keys.RelBlockKey(rel, blk), m.Count, m.StripeSize)
}

func (m ShardMap) String() string {
	if m.Count == 0 {
		return "unsharded@" + m.Addrs[0]
	}
	return fmt.Sprintf("%d shards/stripe %d@%s", m.Count, m.StripeSize, strings.Join(m.Addrs, ","))
}

func (m ShardMap) clone() ShardMap {
	m.Addrs = append([]string(nil), m.Addrs...)
	return m
}
