package pageserver

import (
	"context"
	"errors"
	"slices"
	"strings"
	"time"

	"github.com/stratadb/strata/clock"
	"github.com/stratadb/strata/engine/shard"
	"github.com/stratadb/strata/engine/timeline"
)

// Eviction (docs/remote-storage.md, "Disk budget and eviction"): with
// RemoteStorage.MaxLocalLayerBytes set, the local disk is a cache of
// object storage. A node task checks the resident layer bytes of the
// attached shards every RemoteStorage.EvictionInterval and after every
// on-demand download; above the budget it evicts layers, least recently
// used first across the node (engine/layercache's LastUse order), until
// it is within the budget again. A layer is evicted only if:
//
//   - the newest index its timeline's attachment uploaded (or started
//     from) names it: its object is in object storage and a restart finds
//     it there (Has; never a layer not yet uploaded, whose only copy is
//     the local file);
//   - no read holds or is opening it (timeline.Timeline.Evict refuses
//     with ErrLayerBusy: the next pass may take it).
//
// An evicted layer stays in the layer map as remote and is downloaded
// again by the next read that needs it. The budget is soft: layers not
// yet uploaded and layers in use stay whatever it says (a warning names
// the excess).

// evictor is the node's eviction task.
type evictor struct {
	m    *tenantManager
	kick func()
	recv *clock.Chan[struct{}]
	// warned: the last pass could not get within the budget (logged once
	// until a pass succeeds).
	warned bool
}

func newEvictor(m *tenantManager) *evictor {
	ch := clock.NewChan[struct{}](m.clk, 1)
	return &evictor{m: m, recv: ch, kick: func() { ch.TrySend(struct{}{}) }}
}

// run checks the budget on every interval and kick until ctx ends.
func (e *evictor) run(ctx context.Context) {
	rs := e.m.remote
	if rs.cfg.MaxLocalLayerBytes == 0 {
		return // unlimited
	}
	t := clock.NewTimer(e.m.clk, rs.cfg.EvictionInterval)
	defer t.Stop()
	for {
		var v struct{}
		var at time.Time
		switch clock.Select(e.m.clk, clock.DoneCase(ctx), e.recv.RecvCase(&v), t.C.RecvCase(&at)) {
		case 0:
			return
		case 2:
			t.Reset(rs.cfg.EvictionInterval)
		}
		e.pass(ctx)
	}
}

// evictCandidate is one resident layer that may be evicted.
type evictCandidate struct {
	ts  *tenantShard
	tl  *timeline.Timeline
	tid shard.TimelineID
	li  timeline.LayerInfo
}

// pass evicts until the resident bytes are within the budget (see above).
func (e *evictor) pass(ctx context.Context) {
	m, rs := e.m, e.m.remote
	budget := rs.cfg.MaxLocalLayerBytes
	total := m.residentBytes()
	if total <= budget {
		e.warned = false
		return
	}
	var cs []evictCandidate
	for _, ts := range m.sortedShards() {
		ts.mu.Lock()
		eng, rt := ts.engine, ts.remote
		ts.mu.Unlock()
		if eng == nil || rt == nil {
			continue
		}
		for _, id := range eng.Timelines() {
			tl, err := eng.Get(id)
			if err != nil {
				continue
			}
			ls, err := tl.Layers()
			if err != nil {
				continue
			}
			tid := shard.TimelineID(id)
			for _, li := range ls {
				if _, ok := rt.Has(id, li.Name); li.Resident && ok {
					cs = append(cs, evictCandidate{ts, tl, tid, li})
				}
			}
		}
	}
	slices.SortStableFunc(cs, func(a, b evictCandidate) int {
		switch {
		case a.li.LastUse != b.li.LastUse:
			if a.li.LastUse < b.li.LastUse {
				return -1
			}
			return 1
		case a.ts.id != b.ts.id:
			return a.ts.id.Compare(b.ts.id)
		case a.tid != b.tid:
			return compareTimelineID(a.tid, b.tid)
		}
		return strings.Compare(a.li.Name.String(), b.li.Name.String())
	})
	evicted, busy := 0, 0
	var freed int64
	for _, c := range cs {
		if total <= budget || ctx.Err() != nil {
			break
		}
		n, err := c.tl.Evict(c.li.Name)
		switch {
		case errors.Is(err, timeline.ErrLayerBusy):
			busy++
			continue
		case errors.Is(err, timeline.ErrNotRemote), errors.Is(err, timeline.ErrNoLayer), errors.Is(err, timeline.ErrClosed):
			continue // uploaded no longer, removed, or its shard went away since the listing
		case err != nil:
			rs.log.Warn("layer eviction failed", "tenant_shard_id", c.ts.id, "timeline_id", c.tid, "layer", c.li.Name.String(), "err", err)
			continue
		case n == 0:
			continue
		}
		total -= n
		freed += n
		evicted++
		rs.res.evictions.Inc()
		rs.res.evictedBytes.Add(float64(n))
		rs.log.Debug("layer evicted", "tenant_shard_id", c.ts.id, "timeline_id", c.tid, "layer", c.li.Name.String(), "size", n)
	}
	if evicted > 0 {
		rs.log.Info("layers evicted to stay within the disk budget", "layers", evicted, "bytes", freed, "resident_bytes", total,
			"budget_bytes", budget, "busy", busy)
	}
	if total > budget && !e.warned {
		e.warned = true
		rs.log.Warn("resident layers above the disk budget: the rest are in use or not yet uploaded", "resident_bytes", total,
			"budget_bytes", budget, "busy", busy)
	} else if total <= budget {
		e.warned = false
	}
}
