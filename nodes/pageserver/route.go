package pageserver

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/stratadb/strata/engine/keys"
	"github.com/stratadb/strata/engine/lsn"
	"github.com/stratadb/strata/engine/shard"
	"github.com/stratadb/strata/engine/timeline"
	"github.com/stratadb/strata/nodes/pageserver/pageapi"
)

// Server-side routing (docs/pageserver.md, "Routing to children"). A
// compute learns of a split only after the controller commits it, so for
// a while it still addresses the parent shard, which no longer serves
// (split here, or already detached). The tenant manager's Resolve then
// answers with a routedTimeline over the parent's local children: each
// block is read from the child that owns it (by the children's count and
// stripe), so a batch straddling children is split and its pages come
// back in request order; relation size, database size, SLRU and base
// backup requests, which only shard 0 answers, go to child shard 0. When
// the children are not all here (moved away since) the request fails with
// ErrChildrenNotLocal: Unavailable, which ends the stream so that the
// client retries on its new shard map.

// routedTimeline serves a timeline of a split parent from its children.
type routedTimeline struct {
	// parent is the addressed shard's identity; parentStripe its own
	// stripe, which routing must not use (the children's may differ).
	parent       shard.ShardIdentity
	parentStripe uint32
	// children by shard number, of count and stripe.
	children map[shard.ShardNumber]*shardTimeline
	count    shard.ShardCount
	stripe   uint32
	scopes   []taskScope
	bugs     Bugs
}

var _ scanTimeline = (*routedTimeline)(nil)

// descends reports whether shard c is a descendant of shard p by splits.
func descends(c, p shard.ShardIndex) bool {
	old := max(uint8(p.Count), 1)
	return uint8(c.Count) > old && uint8(c.Count)%old == 0 && uint8(c.Number)%old == uint8(p.Number)
}

// route finds the local children serving timeline t.Timeline of split
// (or absent) shard t.Shard: the largest count whose children are all
// here and serving. parent is the shard if it is still here (split),
// nil if gone. Nothing descending from it here: ErrUnknownTenant (or
// ErrChildrenNotLocal if the parent is here, split).
func (m *tenantManager) route(t pageapi.Target, parent *tenantShard) (*routedTimeline, error) {
	m.mu.Lock()
	counts := map[shard.ShardCount]bool{}
	for id := range m.shards { //strata:nondeterministic collecting a set; sorted below
		if id.TenantID == t.Shard.TenantID && descends(id.Shard, t.Shard.Shard) {
			counts[id.Shard.Count] = true
		}
	}
	m.mu.Unlock()
	if len(counts) == 0 {
		if parent != nil {
			return nil, fmt.Errorf("%w: %s, and none of its children is here", ErrChildrenNotLocal, t.Shard)
		}
		return nil, fmt.Errorf("%w: %s", ErrUnknownTenant, t.Shard)
	}
	for _, c := range slices.Backward(slices.Sorted(maps.Keys(counts))) {
		kids, err := t.Shard.SplitChildren(c)
		if err != nil {
			continue
		}
		rt := &routedTimeline{children: map[shard.ShardNumber]*shardTimeline{}, count: c, bugs: m.cfg.Bugs}
		complete := true
		for _, k := range kids {
			ts, err := m.get(k)
			if err != nil {
				complete = false
				break
			}
			st, err := ts.lookup(t.Timeline)
			if errors.Is(err, ErrUnknownTimeline) {
				return nil, err
			}
			if err != nil {
				complete = false
				break
			}
			rt.children[k.Shard.Number] = st
			rt.stripe = st.ident.StripeSize
			rt.scopes = append(rt.scopes, timelineScope(k, t.Timeline))
		}
		if !complete {
			continue
		}
		// A parent of two shards or more had the children's stripe (it
		// cannot change once sharded); a smaller one's is its own
		// location's, or the default once it is gone.
		rt.parent = shard.ShardIdentity{Number: t.Shard.Shard.Number, Count: t.Shard.Shard.Count, StripeSize: rt.stripe}
		rt.parentStripe = shard.DefaultStripeSize
		if t.Shard.Shard.Count >= 2 {
			rt.parentStripe = rt.stripe
		}
		if parent != nil {
			parent.mu.Lock()
			rt.parentStripe = parent.conf.Identity().StripeSize
			parent.mu.Unlock()
		}
		if t.Shard.Shard.Count < 2 {
			rt.parent.StripeSize = rt.parentStripe
		}
		return rt, nil
	}
	return nil, fmt.Errorf("%w: %s (children here at counts %v, none complete)", ErrChildrenNotLocal, t.Shard, slices.Sorted(maps.Keys(counts)))
}

// Shard is the addressed parent's identity: the page service checks the
// blocks asked for against it, as if the parent still served.
func (r *routedTimeline) Shard() shard.ShardIdentity { return r.parent }

// owner is the child that answers key k.
func (r *routedTimeline) owner(k keys.Key) (*shardTimeline, error) {
	stripe := r.stripe
	if r.bugs.RouteWithParentStripe {
		stripe = r.parentStripe
	}
	n := shard.KeyToShard(k, r.count, stripe)
	st := r.children[n]
	if st == nil {
		return nil, fmt.Errorf("%w: key %s routes to shard %s, not a child of %s", ErrWrongShard, k,
			shard.ShardIndex{Number: n, Count: r.count}, r.parent.Index())
	}
	return st, nil
}

// shard0 is child shard 0, for the requests only shard 0 answers.
func (r *routedTimeline) shard0() (*shardTimeline, error) {
	if st := r.children[0]; st != nil {
		return st, nil
	}
	return nil, fmt.Errorf("%w: %s has no child shard 0", ErrNotShard0, r.parent.Index())
}

func (r *routedTimeline) sorted() []*shardTimeline {
	out := make([]*shardTimeline, 0, len(r.children))
	for _, n := range slices.Sorted(maps.Keys(r.children)) {
		out = append(out, r.children[n])
	}
	return out
}

// LastRecordLSN is the lowest of the children's: every child can answer
// at it.
func (r *routedTimeline) LastRecordLSN() lsn.LSN {
	var low lsn.LSN
	for i, st := range r.sorted() {
		if l := st.LastRecordLSN(); i == 0 || l < low {
			low = l
		}
	}
	return low
}

// WaitLSN waits until every child has ingested l.
func (r *routedTimeline) WaitLSN(ctx context.Context, l lsn.LSN) error {
	for _, st := range r.sorted() {
		if err := st.WaitLSN(ctx, l); err != nil {
			return err
		}
	}
	return nil
}

// AppendPage reads k from the child that owns it; a child never answers a
// key it does not own.
func (r *routedTimeline) AppendPage(dst []byte, k keys.Key, at lsn.LSN) ([]byte, error) {
	st, err := r.owner(k)
	if err != nil {
		return nil, err
	}
	if !st.ident.Owns(k) && !r.bugs.ChildServesUnownedKey {
		return nil, fmt.Errorf("%w: routed key %s to child %s, which does not own it", ErrWrongShard, k, st.ident.Index())
	}
	return closedAsShutdown(st.AppendPage(dst, k, at))
}

// closedAsShutdown reports a child closed under a read (detached, moved
// away) as ErrShuttingDown: the stream ends Unavailable and the client
// retries, rather than an internal error.
func closedAsShutdown(b []byte, err error) ([]byte, error) {
	if errors.Is(err, timeline.ErrClosed) {
		return nil, fmt.Errorf("%w: %v", ErrShuttingDown, err)
	}
	return b, err
}

// RelSize asks child shard 0.
func (r *routedTimeline) RelSize(rel keys.RelTag, at lsn.LSN) (uint32, error) {
	st, err := r.shard0()
	if err != nil {
		return 0, err
	}
	return st.RelSize(rel, at)
}

// Scan scans child shard 0 (the metadata requests).
func (r *routedTimeline) Scan(rg keys.Range, at lsn.LSN) (*timeline.Scanner, error) {
	st, err := r.shard0()
	if err != nil {
		return nil, err
	}
	return st.Scan(rg, at)
}

// Lease leases l on every child: each keeps what reads at l need.
func (r *routedTimeline) Lease(ctx context.Context, l lsn.LSN) (time.Duration, error) {
	var d time.Duration
	for i, st := range r.sorted() {
		got, err := st.Lease(ctx, l)
		if err != nil {
			return 0, err
		}
		if i == 0 || got < d {
			d = got
		}
	}
	return d, nil
}
