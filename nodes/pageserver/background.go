package pageserver

import (
	"context"
	"errors"
	"time"

	"github.com/stratadb/strata/clock"
	"github.com/stratadb/strata/engine/lsn"
	"github.com/stratadb/strata/engine/shard"
	"github.com/stratadb/strata/engine/timeline"
	"github.com/stratadb/strata/nodes/pageserver/pageapi"
)

// Defaults of the per-timeline background work (tenant_conf overrides them).
const (
	DefaultCheckpointTimeout = 10 * time.Minute
	DefaultCompactionPeriod  = 20 * time.Second
	DefaultGCPeriod          = time.Hour
	DefaultLSNLeaseLength    = 10 * time.Minute
)

// schedule is when a timeline's background work runs.
type schedule struct {
	checkpointTimeout time.Duration
	compactionPeriod  time.Duration
	gcPeriod          time.Duration // 0: GC off
	leaseLength       time.Duration
}

// scheduleOf reads the periods of tc (validated before it was accepted).
func scheduleOf(tc *pageapi.TenantConf) schedule {
	s := schedule{DefaultCheckpointTimeout, DefaultCompactionPeriod, DefaultGCPeriod, DefaultLSNLeaseLength}
	if tc == nil {
		return s
	}
	d, _ := tc.Durations()
	if v, ok := d["checkpoint_timeout"]; ok && v > 0 {
		s.checkpointTimeout = v
	}
	if v, ok := d["compaction_period"]; ok && v > 0 {
		s.compactionPeriod = v
	}
	if v, ok := d["gc_period"]; ok {
		s.gcPeriod = v
	}
	if v, ok := d["lsn_lease_length"]; ok && v > 0 {
		s.leaseLength = v
	}
	return s
}

// background is a timeline's loop of flush-on-timeout, compaction (with
// image creation) and GC. Each kind of work is bounded across the node by
// its own semaphore, so a node with many timelines never runs more than
// Config.MaxConcurrentBackground of each at once. It ends when ctx does
// (the timeline, tenant or node shutting down).
func (m *tenantManager) background(ctx context.Context, id shard.TenantShardID, st *shardTimeline, sc schedule) {
	clk := m.clk
	tick := min(sc.checkpointTimeout, sc.compactionPeriod)
	if sc.gcPeriod > 0 {
		tick = min(tick, sc.gcPeriod)
	}
	lastFlush, lastCompact, lastGC := clk.Mono(), clk.Mono(), clk.Mono()
	log := m.log.With("tenant_shard_id", id.String(), "timeline_id", shard.TimelineID(st.tl.ID()).String())
	run := func(sem *clock.Semaphore, what string, fn func() error) {
		if err := sem.Acquire(ctx, 1); err != nil {
			return
		}
		defer sem.Release(1)
		if err := fn(); err != nil && !errors.Is(err, timeline.ErrClosed) && ctx.Err() == nil {
			log.Warn("background "+what+" failed", "err", err)
		}
	}
	for {
		if err := clock.Sleep(ctx, clk, tick); err != nil {
			return
		}
		now := clk.Mono()
		if now-lastFlush >= sc.checkpointTimeout {
			lastFlush = now
			if st.tl.LastRecordLSN() > st.tl.DiskConsistentLSN() {
				run(m.flushSem, "flush", st.tl.Flush)
			}
		}
		if now-lastCompact >= sc.compactionPeriod {
			lastCompact = now
			run(m.compactSem, "compaction", func() error { _, err := st.tl.Compact(); return err })
		}
		if sc.gcPeriod > 0 && now-lastGC >= sc.gcPeriod {
			lastGC = now
			run(m.gcSem, "gc", func() error { return m.gc(ctx, st) })
		}
	}
}

// gc moves the timeline's cutoff to its horizon, held back by unexpired
// LSN leases (branch points are kept by the engine itself).
func (m *tenantManager) gc(ctx context.Context, st *shardTimeline) error {
	if err := st.gcMu.Lock(ctx); err != nil {
		return err
	}
	defer st.gcMu.Unlock()
	last := st.tl.LastRecordLSN()
	var cutoff lsn.LSN
	if h := lsn.LSN(st.horizonBytes); last > h {
		cutoff = last - h
	}
	if l, ok := st.leases.min(m.clk.Mono()); ok && l < cutoff {
		cutoff = l
	}
	if cutoff <= st.tl.GCCutoff() {
		return nil
	}
	_, err := st.tl.GCAt(cutoff)
	return err
}
