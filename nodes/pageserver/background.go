package pageserver

import (
	"context"
	"errors"
	"sync"
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
	pitr              time.Duration // 0: no time window, the horizon alone
}

// scheduleOf reads the periods of tc (validated before it was accepted).
func scheduleOf(tc *pageapi.TenantConf) schedule {
	s := schedule{DefaultCheckpointTimeout, DefaultCompactionPeriod, DefaultGCPeriod, DefaultLSNLeaseLength, 0}
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
	if v, ok := d["pitr_interval"]; ok {
		s.pitr = v
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
		st.history.record(now, st.tl.LastRecordLSN())
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
			run(m.gcSem, "gc", func() error { return m.gc(ctx, st, sc.pitr) })
		}
	}
}

// gc moves the timeline's cutoff to its horizon, held back by the PITR
// window (the newest LSN ingested at least pitr ago; nothing is collected
// while the timeline is younger than the window) and by unexpired LSN
// leases (branch points are kept by the engine itself).
func (m *tenantManager) gc(ctx context.Context, st *shardTimeline, pitr time.Duration) error {
	if err := st.gcMu.Lock(ctx); err != nil {
		return err
	}
	defer st.gcMu.Unlock()
	last := st.tl.LastRecordLSN()
	var cutoff lsn.LSN
	if h := lsn.LSN(st.horizonBytes); last > h {
		cutoff = last - h
	}
	if pitr > 0 {
		cutoff = min(cutoff, st.history.lsnAt(m.clk.Mono()-pitr))
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

// maxLSNSamples bounds a timeline's LSN history: one sample per background
// tick (a second or so), thinned to every other one when full, so it spans
// any PITR window at a coarser grain as the window grows.
const maxLSNSamples = 4096

type lsnSample struct {
	at  time.Duration // monotonic
	lsn lsn.LSN
}

// lsnHistory remembers which LSN was ingested when, for the PITR window.
type lsnHistory struct {
	mu      sync.Mutex
	samples []lsnSample
}

func (h *lsnHistory) record(now time.Duration, l lsn.LSN) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.samples) >= maxLSNSamples {
		kept := h.samples[:0]
		for i := 0; i < len(h.samples); i += 2 {
			kept = append(kept, h.samples[i])
		}
		h.samples = kept
	}
	h.samples = append(h.samples, lsnSample{at: now, lsn: l})
}

// lsnAt returns the newest LSN sampled at or before t (0 if none: nothing
// is known to be that old, so nothing may be collected).
func (h *lsnHistory) lsnAt(t time.Duration) lsn.LSN {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out lsn.LSN
	for _, s := range h.samples {
		if s.at > t {
			break
		}
		out = s.lsn
	}
	return out
}
