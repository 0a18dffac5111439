package storcon

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/stratadb/strata/clock"
	"github.com/stratadb/strata/engine/lsn"
	"github.com/stratadb/strata/engine/placement"
	"github.com/stratadb/strata/engine/shard"
	"github.com/stratadb/strata/nodes/pageserver/pageapi"
	"github.com/stratadb/strata/nodes/storcon/computehook"
)

// migrate is PUT /control/v1/tenant/{tsid}/migrate: move the shard's
// attachment to dest by live migration.
func (s *Service) migrate(ctx context.Context, id shard.TenantShardID, dest placement.NodeID) error {
	unlock, err := s.lockTenant(ctx, id.TenantID)
	if err != nil {
		return err
	}
	defer unlock()
	return s.migrateShard(ctx, id, dest, false)
}

// migrateShard moves shard id's attachment from its current node (the
// origin) to dest without a gap in service, Neon's nine steps:
//
//  1. origin → AttachedStale (it stops deleting and uploading; it keeps
//     serving reads);
//  2. read the origin's timelines' last_record_lsn;
//  3. if dest is observed as a Secondary location, it downloads the
//     heatmap's layers first (POST …/secondary/download?wait_ms=, asked
//     again while it answers 202, bounded by MigrationSecondaryDownload;
//     past that, or on an error, the migration proceeds cold with a
//     warning: warmSecondary);
//  4. a new generation for dest, persisted before anything is sent;
//  5. dest → AttachedMulti with it;
//  6. wait (MigrationLSNWait) until dest's timelines reach those LSNs —
//     on a timeout or a timeline dest does not have yet, continue with a
//     warning (remote storage, which would bring the timeline over, is a
//     later issue);
//  7. tell compute the shard is on dest, retried (MigrationNotifyBackoff)
//     within the migration's time; if compute cannot be told, the
//     migration stops here, before the origin is demoted;
//  8. origin → Secondary (warm);
//  9. dest → AttachedSingle.
//
// Then the policy decides whether the origin stays as a secondary; the
// reconcile that follows detaches it if not. The shard is owned
// (reconciling) for the whole migration, so no reconcile interleaves. If a
// step fails, intent already names dest and the reconciler finishes the
// move the ordinary way; the error is returned. With the planted bug
// DrainDetachFirst a drain's migration detaches the origin first.
// Called with the tenant's op lock held.
func (s *Service) migrateShard(ctx context.Context, id shard.TenantShardID, dest placement.NodeID, drain bool) error {
	ctx, cancel := clock.WithTimeout(s.clk, ctx, s.cfg.MigrationTimeout)
	defer cancel()

	s.lock()
	var e *shardEntry
	for {
		e = s.state.shards[id]
		switch {
		case e == nil || e.creating:
			s.mu.Unlock()
			return fmt.Errorf("%w: shard %s", ErrNotFound, id)
		case s.state.nodes[dest] == nil:
			s.mu.Unlock()
			return fmt.Errorf("%w: node %d", ErrNotFound, dest)
		case !s.state.sched.MaySchedule(dest):
			n, _ := s.state.schedNode(dest)
			s.mu.Unlock()
			return fmt.Errorf("%w: node %d may not take shards (%s, policy %s)", ErrPrecondition, dest, n.Availability, n.Policy)
		case e.st.Policy.Kind != placement.PolicyAttached:
			s.mu.Unlock()
			return fmt.Errorf("%w: shard %s has policy %s: nothing to migrate", ErrPrecondition, id, e.st.Policy)
		}
		if !e.reconciling {
			break
		}
		if err := s.changed.Wait(ctx); err != nil {
			s.mu.Unlock()
			return fmt.Errorf("%w: shard %s stays busy: %w", ErrTimeout, id, err)
		}
	}
	origin := e.st.Attached()
	if origin == dest {
		k := s.requestReconcileLocked(e, true)
		s.mu.Unlock()
		return s.waitReconciled(ctx, id, k.seq)
	}
	if err := e.st.MoveAttached(s.state.sched, dest); err != nil {
		s.mu.Unlock()
		return err
	}
	e.reconciling = true
	e.runs++
	s.state.running++
	s.state.started++
	oo, _ := e.st.Observed(origin)
	live := origin != placement.NoNode && s.state.sched.Available(origin) && oo.Known && oo.Conf.Mode.Attached()
	od, _ := e.st.Observed(dest)
	warm := od.Known && od.Conf.Mode == placement.ModeSecondary
	job := s.jobLocked(e)
	var originC psClient
	if ne := s.state.nodes[origin]; ne != nil {
		originC = ne.client
	}
	destC := s.state.nodes[dest].client
	s.mu.Unlock()
	s.log.Info("migration started", "tenant_shard_id", id, "from", origin, "to", dest, "live", live)

	err := s.liveMigrate(ctx, job, origin, dest, originC, destC, oo.Conf, live, drain, warm)

	s.lock()
	s.state.running--
	e = s.state.shards[id]
	var seq uint64
	if e != nil {
		e.reconciling = false
		// The policy decides whether the origin stays as a secondary.
		if serr := e.st.Schedule(s.state.sched); serr != nil {
			s.log.Warn("shard not fully placed after migration", "tenant_shard_id", id, "err", serr)
		}
		e.st.BumpSequence()
		s.scheduleReconcileLocked(e, true)
		seq = e.st.Sequence()
	}
	s.changed.Broadcast()
	s.refreshGauges()
	s.mu.Unlock()
	if err != nil {
		s.log.Warn("migration failed; the reconciler completes the move", "tenant_shard_id", id, "to", dest, "err", err)
		return err
	}
	if e == nil {
		return fmt.Errorf("%w: shard %s", ErrNotFound, id)
	}
	if err := s.waitReconciled(ctx, id, seq); err != nil {
		return err
	}
	s.log.Info("migration done", "tenant_shard_id", id, "from", origin, "to", dest)
	return nil
}

// liveMigrate runs the migration's steps (see migrateShard). Without a
// live origin (offline, or not observed attached) there is nothing to
// hand over from: the reconcile that follows attaches dest. warm: dest
// is observed as a Secondary location (step 3 warms it).
func (s *Service) liveMigrate(ctx context.Context, j *reconcileJob, origin, dest placement.NodeID, originC, destC psClient,
	originConf placement.LocationConf, live, drain, warm bool) error {
	if !live {
		return nil
	}
	id := j.id
	detachFirst := drain && s.cfg.Bugs.DrainDetachFirst
	var lsns map[shard.TimelineID]lsn.LSN
	if detachFirst {
		// Planted bug: the origin is gone before dest holds anything.
		conf := detachedConf(originConf.Shard)
		err := originC.locationConfig(ctx, id, conf)
		s.applyObserved(j, origin, conf, err)
		if err != nil {
			return err
		}
	} else {
		// 1. Origin → AttachedStale.
		stale := originConf
		stale.Mode = placement.ModeAttachedStale
		err := originC.locationConfig(ctx, id, stale)
		s.applyObserved(j, origin, stale, err)
		if err != nil {
			return fmt.Errorf("migration step 1 (origin stale): %w", err)
		}
		// 2. The origin's LSNs.
		tls, err := originC.listTimelines(ctx, id)
		if err != nil {
			s.log.Warn("migration: origin timelines unreadable; not waiting for LSNs", "tenant_shard_id", id, "err", err)
		}
		lsns = make(map[shard.TimelineID]lsn.LSN, len(tls))
		for _, tl := range tls {
			lsns[tl.TimelineID] = tl.LastRecordLSN
		}
	}
	// 3. A secondary at dest downloads the heatmap's layers.
	if warm {
		if err := s.warmSecondary(ctx, id, dest, destC); err != nil {
			return fmt.Errorf("migration step 3 (secondary download): %w", err)
		}
	}
	// 4. New generation for dest, durable first.
	gen, err := s.issueGeneration(ctx, id, dest)
	if err != nil {
		return fmt.Errorf("migration step 4 (generation): %w", err)
	}
	// 5. Dest → AttachedMulti.
	multi := j.wantAttached
	multi.Mode, multi.Generation = placement.ModeAttachedMulti, gen
	err = destC.locationConfig(ctx, id, multi)
	s.applyObserved(j, dest, multi, err)
	if err != nil {
		return fmt.Errorf("migration step 5 (destination attached multi): %w", err)
	}
	// 6. Wait for dest to catch up.
	if len(lsns) > 0 {
		err := destC.waitLSN(ctx, id, pageapi.WaitLSNRequest{LSNs: lsns, Timeout: s.cfg.MigrationLSNWait})
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			s.log.Warn("migration: destination did not catch up; continuing", "tenant_shard_id", id, "err", err)
		}
	}
	// 7. Compute follows dest — before the origin stops serving: retried
	// until it succeeds, is refused (fatal) or the migration's time is up.
	// On a failure the origin is left as it is (the pending flag stays for
	// the reconciler).
	if err := s.notifyForMigration(ctx, id.TenantID); err != nil {
		return fmt.Errorf("migration step 7 (notify compute): %w", err)
	}
	// 8. Origin → warm Secondary.
	if !detachFirst {
		sec := j.wantSecondary
		err := originC.locationConfig(ctx, id, sec)
		s.applyObserved(j, origin, sec, err)
		if err != nil {
			s.log.Warn("migration: origin not made secondary; the reconciler retries", "tenant_shard_id", id, "err", err)
		}
	}
	// 9. Dest → AttachedSingle.
	single := j.wantAttached
	single.Generation = gen
	err = destC.locationConfig(ctx, id, single)
	s.applyObserved(j, dest, single, err)
	if err != nil {
		return fmt.Errorf("migration step 9 (destination attached single): %w", err)
	}
	return nil
}

// warmSecondary is step 3: ask dest's Secondary location to download the
// heatmap's layers, waiting MigrationSecondaryDownloadWait per request,
// again while it answers 202, until MigrationSecondaryDownload has
// passed. A failed request or the bound ends it with a warning: the
// migration proceeds (attach downloads what is missing). It fails only
// when ctx ends.
func (s *Service) warmSecondary(ctx context.Context, id shard.TenantShardID, dest placement.NodeID, c psClient) error {
	start := s.clk.Mono()
	for requests := 1; ; requests++ {
		sent := s.clk.Mono()
		left := s.cfg.MigrationSecondaryDownload - (sent - start)
		wait := min(s.cfg.MigrationSecondaryDownloadWait, max(left, 0))
		p, done, err := c.secondaryDownload(ctx, id, wait)
		took := s.clk.Mono() - start
		switch {
		case ctx.Err() != nil:
			return ctx.Err()
		case err != nil:
			s.metrics.secondaryWarmups.WithLabelValues("failed").Inc()
			s.log.Warn("migration: secondary download failed; proceeding cold", "tenant_shard_id", id, "node", dest, "requests", requests, "err", err)
			return nil
		case done:
			s.metrics.secondaryWarmups.WithLabelValues("complete").Inc()
			s.log.Info("migration: secondary download complete", "tenant_shard_id", id, "node", dest, "requests", requests, "took", took,
				"layers", p.LayersTotal, "bytes", p.BytesTotal)
			return nil
		case took >= s.cfg.MigrationSecondaryDownload:
			s.metrics.secondaryWarmups.WithLabelValues("timeout").Inc()
			s.log.Warn("migration: secondary download not complete in time; proceeding", "tenant_shard_id", id, "node", dest, "requests", requests,
				"took", took, "layers_downloaded", p.LayersDownloaded, "layers_total", p.LayersTotal, "bytes_downloaded", p.BytesDownloaded, "bytes_total", p.BytesTotal)
			return nil
		}
		s.log.Info("migration: secondary still downloading", "tenant_shard_id", id, "node", dest, "layers_downloaded", p.LayersDownloaded,
			"layers_total", p.LayersTotal, "bytes_downloaded", p.BytesDownloaded, "bytes_total", p.BytesTotal)
		// A 202 sooner than the wait asked for (a pageserver that does not
		// hold the request) must not make this a busy loop.
		if early := wait - (s.clk.Mono() - sent); early > 0 {
			if err := clock.Sleep(ctx, s.clk, early); err != nil {
				return err
			}
		}
	}
}

// MigrationNotifyBackoff is the pause between a live migration's attempts
// to tell compute about the destination (each attempt is the compute
// hook's own bounded retries); MigrationTimeout bounds them all.
const MigrationNotifyBackoff = time.Second

// notifyForMigration is step 7: notifyTenant until it succeeds, compute
// refuses it (computehook.ErrFatal) or ctx ends.
func (s *Service) notifyForMigration(ctx context.Context, t shard.TenantID) error {
	for {
		err := s.notifyTenant(ctx, t)
		if err == nil || errors.Is(err, computehook.ErrFatal) || ctx.Err() != nil {
			return err
		}
		s.log.Warn("migration: compute not told yet; retrying", "tenant_id", t, "err", err)
		if serr := clock.Sleep(ctx, s.clk, MigrationNotifyBackoff); serr != nil {
			return errors.Join(err, serr)
		}
	}
}

// migrateAway migrates the shards keys names off node from (a drain or a
// node delete), DrainFillConcurrency at a time, each to the best other
// node: a schedulable secondary if the shard has one, else a fresh node.
// Shards no longer attached there are skipped. It stops early when ctx
// ends and joins the errors.
func (s *Service) migrateAway(ctx context.Context, keys []shardKey, from placement.NodeID, drain bool) error {
	return s.migrateEach(ctx, keys, func(ctx context.Context, id shard.TenantShardID) error {
		unlock, err := s.lockTenant(ctx, id.TenantID)
		if err != nil {
			return err
		}
		defer unlock()
		s.lock()
		e := s.state.shards[id]
		if e == nil || e.st.Attached() != from {
			s.mu.Unlock()
			return nil
		}
		dest, err := s.chooseDestinationLocked(e, from)
		s.mu.Unlock()
		if err != nil {
			return err
		}
		return s.migrateShard(ctx, id, dest, drain)
	})
}

// migrateEach runs fn for every shard of keys, DrainFillConcurrency at a
// time.
func (s *Service) migrateEach(ctx context.Context, keys []shardKey, fn func(ctx context.Context, id shard.TenantShardID) error) error {
	sem := clock.NewSemaphore(s.clk, int64(s.cfg.DrainFillConcurrency))
	g := clock.NewGroup(s.clk, ctx)
	errs := make([]error, len(keys))
	for i, k := range keys {
		if err := sem.Acquire(ctx, 1); err != nil {
			errs[i] = err
			break
		}
		g.Go("migrate "+k.id.String(), func(ctx context.Context) error {
			defer sem.Release(1)
			errs[i] = fn(ctx, k.id)
			return nil
		})
	}
	_ = g.Wait()
	return errors.Join(errs...)
}

// chooseDestinationLocked picks where shard e's attachment goes when it
// leaves node from: its schedulable secondary with the fewest attached
// shards (lowest id on a tie), else the scheduler's choice. Called with
// s.mu held.
func (s *Service) chooseDestinationLocked(e *shardEntry, from placement.NodeID) (placement.NodeID, error) {
	best, bestAttached := placement.NoNode, 0
	for _, id := range e.st.Secondaries() {
		if id == from || !s.state.sched.MaySchedule(id) {
			continue
		}
		n, _ := s.state.sched.Node(id)
		if best == placement.NoNode || n.Attached < bestAttached {
			best, bestAttached = id, n.Attached
		}
	}
	if best != placement.NoNode {
		return best, nil
	}
	exclude := append(e.st.IntentNodes(), from)
	return s.state.sched.ScheduleAttached(e.st.ID.TenantID, e.st.PreferredAZ(), exclude)
}
