package storcon

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"math/bits"
	"slices"

	"github.com/stratadb/strata/clock"
	"github.com/stratadb/strata/engine/placement"
	"github.com/stratadb/strata/engine/shard"
	"github.com/stratadb/strata/nodes/pageserver/pageapi"
	"github.com/stratadb/strata/nodes/storcon/persist"
	"github.com/stratadb/strata/nodes/storcon/storconapi"
)

// ErrSplitRolledBack wraps the error of a shard split that failed after it
// began and was rolled back: the tenant has its shards of before (the API
// answers 503 when the cause may pass, else 500, naming the cause).
var ErrSplitRolledBack = errors.New("storcon: shard split rolled back")

// splitStoreAttempts bounds the attempts of one split step in the store
// (commit, abort, clearing marks) whose outcome was unknown; each is
// idempotent, so repeating one is safe. LocationConfigBackoff apart.
const splitStoreAttempts = 5

// splitParent is what a split needs of one parent shard, copied under the
// lock when the split takes the parents over.
type splitParent struct {
	id    shard.TenantShardID
	ident shard.ShardIdentity
	// node is where the parent is attached: its split runs there and its
	// children stay there.
	node   placement.NodeID
	client psClient
	// conf is what node is observed to hold: its generation is the one
	// the pageserver's children start in.
	conf     placement.LocationConf
	children []shard.TenantShardID
	// secondaries are the parent's secondary locations, detached first.
	secondaries []placement.NodeID
	secClients  map[placement.NodeID]psClient
	// stale are the clients of other nodes observed to hold (or maybe
	// hold) the parent, detached after the commit.
	stale []psClient
	// sent: the pageserver split was attempted, so the parent may be shut
	// down there and children may exist; split: it answered its children.
	sent, split bool
}

// splitPlan is one split under way.
type splitPlan struct {
	tenant               shard.TenantID
	oldCount, newCount   shard.ShardCount
	oldStripe, newStripe uint32
	parents              []*splitParent
	// rows are the children's rows (by shard number) as BeginSplit gets
	// them: each with its parent's generation, node, policies and config.
	rows []persist.TenantShard
	// begun: BeginSplit was called (its outcome may be unknown), so a
	// rollback must abort it in the store.
	begun bool
	// inFlight: the step that failed was a store write whose outcome is
	// unknown (BeginSplit, or the last attempt of CommitSplit); it may
	// still land, so the rollback waits Config.LostWriteSettle before it
	// aborts — an abort that ran first would be undone by it (a late
	// commit deleting the parents after the abort deleted the children
	// leaves the tenant with no rows).
	inFlight bool
}

func (p *splitPlan) childIDs() []shard.TenantShardID {
	out := make([]shard.TenantShardID, len(p.rows))
	for i, r := range p.rows {
		out[i] = r.ID
	}
	return out
}

func (p *splitPlan) parentOf(child shard.TenantShardID) *splitParent {
	idx := persist.ParentIndex(child.Shard, p.oldCount)
	for _, sp := range p.parents {
		if sp.id.Shard == idx {
			return sp
		}
	}
	return nil
}

func isPowerOfTwo(n uint8) bool { return n != 0 && bits.OnesCount8(n) == 1 }

// splitTenant is PUT /control/v1/tenant/{id}/shard_split: every shard of
// the tenant (the parents) is split into the shards of NewShardCount (the
// children), each parent's children staying on its node:
//
//  1. checks: a tenant whose split is running (or left marked by a
//     rollback the store did not take) is 409; a count that is not a
//     larger power-of-two multiple of the current one, or a stripe change
//     once sharded, is 400; the current count again, once the tenant has
//     it, is a repeat answered with the shards (nothing is done);
//  2. under the tenant's operation lock the parents are taken over (no
//     reconcile runs on them until the split ends), once attached in
//     place, and their secondaries detached;
//  3. one store transaction marks the parents splitting and inserts the
//     children, marked, each with its parent's generation and node;
//  4. every parent's pageserver splits it (concurrently);
//  5. one store transaction deletes the parents and clears the marks —
//     the split has happened from here on;
//  6. the children replace the parents in memory, attached and observed
//     where the parents were with the parents' generation (nothing for a
//     reconcile to do there), the scheduler's counts moved shard by shard;
//     their secondaries are scheduled per the policy and reconciled;
//  7. the parents are detached from their pageservers;
//  8. compute is told the new map (count and stripe).
//
// A failure in steps 2-5 rolls back (rollbackSplit). With the planted bug
// Bugs.CommitSplitEarly step 5 runs before step 4, so a pageserver split
// that fails can no longer be rolled back.
func (s *Service) splitTenant(ctx context.Context, t shard.TenantID, req storconapi.ShardSplitRequest) (storconapi.ShardSplitResponse, error) {
	var resp storconapi.ShardSplitResponse
	if req.NewStripeSize != nil && *req.NewStripeSize == 0 {
		return resp, fmt.Errorf("%w: new_stripe_size 0", storconapi.ErrBadRequest)
	}
	// A split in progress answers a concurrent request at once rather than
	// queueing it behind the operation lock for the split's whole length.
	s.lock()
	running := s.splitRunningLocked(t)
	s.mu.Unlock()
	if running {
		return resp, fmt.Errorf("%w: tenant %s is being split", ErrConflict, t)
	}
	unlock, err := s.lockTenant(ctx, t)
	if err != nil {
		return resp, err
	}
	defer unlock()

	s.lock()
	plan, repeat, err := s.checkSplitLocked(t, req)
	s.mu.Unlock()
	if err != nil {
		return resp, err
	}
	if repeat != nil {
		s.log.Info("shard split repeated: the tenant has that count already", "tenant_id", t, "shard_count", req.NewShardCount)
		return storconapi.ShardSplitResponse{NewShards: repeat}, nil
	}
	if err := s.takeParents(ctx, plan); err != nil {
		return resp, err
	}
	s.metrics.splits.WithLabelValues("started").Inc()
	s.log.Info("shard split started", "tenant_id", t, "from", plan.oldCount, "to", plan.newCount,
		"stripe", plan.oldStripe, "new_stripe", plan.newStripe)

	if err := s.detachParentSecondaries(ctx, plan); err != nil {
		return resp, s.rollbackSplit(ctx, plan, err)
	}
	plan.begun = true
	if err := s.store.BeginSplit(ctx, t, plan.oldCount, plan.rows); err != nil {
		err = fmt.Errorf("begin split in the store: %w", err)
		if persistArgumentError(err) {
			// Refused, nothing stored (a conflict is 409): only memory to
			// undo.
			plan.begun = false
			_ = s.rollbackSplit(ctx, plan, err)
			return resp, err
		}
		plan.inFlight = unknownOutcome(err)
		return resp, s.rollbackSplit(ctx, plan, err)
	}
	if s.cfg.Bugs.CommitSplitEarly {
		if err := s.commitSplitStore(ctx, plan); err != nil {
			return resp, s.rollbackSplit(ctx, plan, err)
		}
	}
	if err := s.splitOnPageservers(ctx, plan); err != nil {
		return resp, s.rollbackSplit(ctx, plan, err)
	}
	if err := s.commitSplitStore(ctx, plan); err != nil {
		plan.inFlight = unknownOutcome(err)
		if err := s.rollbackSplit(ctx, plan, err); err != nil {
			return resp, err
		}
		// The rollback found the commit landed and finished the split.
		return storconapi.ShardSplitResponse{NewShards: plan.childIDs()}, nil
	}
	return s.finishSplit(ctx, plan), nil
}

// splitRunningLocked reports whether a split of t runs now: its shards are
// owned by it (splitting and reconciling). Called with s.mu held.
func (s *Service) splitRunningLocked(t shard.TenantID) bool {
	te := s.state.tenants[t]
	if te == nil {
		return false
	}
	for _, e := range te.shards {
		if e.splitting && e.reconciling {
			return true
		}
	}
	return false
}

// checkSplitLocked validates a split request against tenant t and returns
// the plan (without parents yet), or the tenant's shards when the request
// is a repeat of a split that is done. Called with s.mu held.
func (s *Service) checkSplitLocked(t shard.TenantID, req storconapi.ShardSplitRequest) (*splitPlan, []shard.TenantShardID, error) {
	shards, err := s.tenantShardsLocked(t)
	if err != nil {
		return nil, nil, err
	}
	first := shards[0].st.Identity
	count, stripe := first.Count, first.StripeSize
	for _, e := range shards {
		if e.splitting {
			return nil, nil, fmt.Errorf("%w: tenant %s is mid-split (shard %s is marked splitting; a controller restart rolls it back)", ErrConflict, t, e.st.ID)
		}
		if e.st.Identity.Count != count {
			return nil, nil, fmt.Errorf("%w: tenant %s has shards of counts %d and %d", ErrConflict, t, count, e.st.Identity.Count)
		}
	}
	n := req.NewShardCount
	if n == count && count > 1 {
		if req.NewStripeSize != nil && *req.NewStripeSize != stripe {
			return nil, nil, fmt.Errorf("%w: tenant %s has %d shards of stripe %d; a sharded tenant keeps its stripe", storconapi.ErrBadRequest, t, count, stripe)
		}
		ids := make([]shard.TenantShardID, len(shards))
		for i, e := range shards {
			ids[i] = e.st.ID
		}
		return nil, ids, nil
	}
	old := max(uint8(count), 1)
	switch {
	case uint8(n) <= old:
		return nil, nil, fmt.Errorf("%w: tenant %s has %d shard(s): new_shard_count %d is not an increase", storconapi.ErrBadRequest, t, count, n)
	case uint8(n)%old != 0 || !isPowerOfTwo(uint8(n)/old):
		return nil, nil, fmt.Errorf("%w: tenant %s: %d shards into %d (the new count must be the old times a power of two)", storconapi.ErrBadRequest, t, old, n)
	case req.NewStripeSize != nil && *req.NewStripeSize != stripe && count > 1:
		return nil, nil, fmt.Errorf("%w: tenant %s is sharded (%d shards): its stripe %d cannot change", storconapi.ErrBadRequest, t, count, stripe)
	}
	plan := &splitPlan{tenant: t, oldCount: count, newCount: n, oldStripe: stripe, newStripe: stripe}
	if req.NewStripeSize != nil {
		plan.newStripe = *req.NewStripeSize
	}
	return plan, nil, nil
}

// takeParents waits (ReconcileWait) until every parent is attached in
// place with no reconcile running, then takes them over for the split:
// they are marked reconciling (no reconcile or migration starts on them)
// and splitting, and their secondaries leave intent. It fills the plan's
// parents and children rows.
func (s *Service) takeParents(ctx context.Context, plan *splitPlan) error {
	wctx, cancel := s.reconcileWait(ctx)
	defer cancel()
	t := plan.tenant
	for {
		if _, err := s.attachedTargets(wctx, t); err != nil {
			return err
		}
		s.lock()
		for {
			shards, err := s.tenantShardsLocked(t)
			if err != nil {
				s.mu.Unlock()
				return err
			}
			if !slices.ContainsFunc(shards, func(e *shardEntry) bool { return e.reconciling }) {
				break
			}
			if err := s.changed.Wait(wctx); err != nil {
				s.mu.Unlock()
				return fmt.Errorf("%w: tenant %s: reconciles keep running: %w", ErrTimeout, t, err)
			}
		}
		shards, _ := s.tenantShardsLocked(t)
		if !slices.ContainsFunc(shards, func(e *shardEntry) bool { return !s.attachedReadyLocked(e) }) {
			s.takeParentsLocked(plan, shards)
			s.mu.Unlock()
			return nil
		}
		s.mu.Unlock()
		// An attachment changed after attachedTargets saw it in place.
		if clock.Sleep(wctx, s.clk, s.cfg.LocationConfigBackoff) != nil {
			return fmt.Errorf("%w: tenant %s is not attached in place", ErrTimeout, t)
		}
	}
}

// takeParentsLocked takes the parents over. Called with s.mu held.
func (s *Service) takeParentsLocked(plan *splitPlan, shards []*shardEntry) {
	for _, e := range shards {
		a := e.st.Attached()
		o, _ := e.st.Observed(a)
		sp := &splitParent{
			id: e.st.ID, ident: e.st.Identity, node: a, client: s.state.nodes[a].client, conf: o.Conf,
			secondaries: e.st.Secondaries(), secClients: map[placement.NodeID]psClient{},
		}
		sp.children, _ = e.st.ID.SplitChildren(plan.newCount) // checkSplitLocked validated the counts
		for _, id := range sp.secondaries {
			if err := e.st.RemoveSecondary(s.state.sched, id); err != nil {
				s.log.Error("shard split: secondary not removed from intent", "tenant_shard_id", e.st.ID, "node_id", id, "err", err)
			}
		}
		// Any other location a node may hold (an old attachment a
		// migration left, a stale generation on a node that was away) is
		// detached after the commit, best effort: once the parent's row
		// is gone no reconcile would ever clean it up.
		for _, ol := range e.st.ObservedLocations() {
			if ne := s.state.nodes[ol.Node]; ne != nil && ol.Node != a && !slices.Contains(sp.secondaries, ol.Node) {
				sp.stale = append(sp.stale, ne.client)
			}
		}
		for _, id := range sp.secondaries {
			if ne := s.state.nodes[id]; ne != nil && s.state.sched.Available(id) {
				sp.secClients[id] = ne.client
			}
		}
		e.reconciling, e.again, e.splitting = true, false, true
		e.runs++
		s.state.running++
		s.state.started++
		parentRow := shardRow(e)
		parentRow.Splitting = false
		for _, c := range sp.children {
			row := parentRow
			row.ID, row.StripeSize = c, plan.newStripe
			plan.rows = append(plan.rows, row)
		}
		plan.parents = append(plan.parents, sp)
	}
	slices.SortFunc(plan.rows, func(a, b persist.TenantShard) int { return a.ID.Compare(b.ID) })
	s.refreshGauges()
}

// detachParentSecondaries detaches every parent's secondary locations (a
// secondary of a parent would be a location of a shard that no longer
// exists once the split commits). Unavailable nodes are skipped: their
// re-attach drops what the controller no longer lists.
func (s *Service) detachParentSecondaries(ctx context.Context, plan *splitPlan) error {
	for _, sp := range plan.parents {
		for _, id := range sp.secondaries {
			c, ok := sp.secClients[id]
			if !ok {
				continue
			}
			conf := detachedConf(sp.ident)
			err := c.locationConfig(ctx, sp.id, conf)
			s.applyObserved(&reconcileJob{id: sp.id}, id, conf, err)
			if err != nil {
				return fmt.Errorf("detach secondary of %s on node %d: %w", sp.id, id, err)
			}
		}
	}
	return nil
}

// splitOnPageservers calls every parent's pageserver split concurrently
// and checks each answers exactly the parent's children.
func (s *Service) splitOnPageservers(ctx context.Context, plan *splitPlan) error {
	req := pageapi.ShardSplitRequest{NewShardCount: plan.newCount}
	if plan.newStripe != plan.oldStripe {
		stripe := plan.newStripe
		req.NewStripeSize = &stripe
	}
	errs := make([]error, len(plan.parents))
	g := clock.NewGroup(s.clk, ctx)
	for i, sp := range plan.parents {
		sp.sent = true
		g.Go("shard split "+sp.id.String(), func(ctx context.Context) error {
			resp, err := sp.client.shardSplit(ctx, sp.id, req)
			switch {
			case err != nil:
				errs[i] = err
			case !slices.Equal(resp.NewShards, sp.children):
				errs[i] = fmt.Errorf("%w: node %d split %s into %v, want %v", ErrPageserver, sp.node, sp.id, resp.NewShards, sp.children)
			default:
				sp.split = true
			}
			return nil
		})
	}
	_ = g.Wait()
	return errors.Join(errs...)
}

// persistArgumentError reports whether a store error is one of the
// argument classes, which change nothing; any other leaves the outcome
// unknown.
func persistArgumentError(err error) bool {
	return errors.Is(err, persist.ErrNotFound) || errors.Is(err, persist.ErrExists) || errors.Is(err, persist.ErrConflict) ||
		errors.Is(err, persist.ErrInvalid) || errors.Is(err, persist.ErrGenerationExhausted)
}

// storeStep runs an idempotent store step, repeating it (at most
// splitStoreAttempts, LocationConfigBackoff apart) while its outcome is
// unknown.
func (s *Service) storeStep(ctx context.Context, what string, fn func(ctx context.Context) error) error {
	var err error
	for attempt := range splitStoreAttempts {
		if attempt > 0 {
			if serr := clock.Sleep(ctx, s.clk, s.cfg.LocationConfigBackoff); serr != nil {
				return errors.Join(err, serr)
			}
		}
		if err = fn(ctx); err == nil || persistArgumentError(err) {
			return err
		}
		s.log.Warn("shard split: store step failed; retrying", "step", what, "attempt", attempt+1, "err", err)
	}
	return err
}

// commitSplitStore deletes the parents' rows and clears the marks.
func (s *Service) commitSplitStore(ctx context.Context, plan *splitPlan) error {
	err := s.storeStep(ctx, "commit", func(ctx context.Context) error {
		return s.store.CommitSplit(ctx, plan.tenant, plan.oldCount)
	})
	if err != nil {
		return fmt.Errorf("commit split in the store: %w", err)
	}
	return nil
}

// finishSplit is the split after its commit in the store: the children
// replace the parents in memory, the parents are detached from their
// pageservers, compute is told. Nothing here can fail the split (it has
// happened); what does not succeed is logged and left to reconciles.
func (s *Service) finishSplit(ctx context.Context, plan *splitPlan) storconapi.ShardSplitResponse {
	// What the store holds: a re-attach between begin and commit may have
	// issued the children newer generations than their parents'.
	stored := map[shard.TenantShardID]persist.TenantShard{}
	if rows, err := s.store.TenantShards(ctx, plan.tenant); err == nil {
		for _, r := range rows {
			stored[r.ID] = r
		}
	} else {
		s.log.Warn("shard split: children's rows unreadable after commit; using the parents' generations", "tenant_id", plan.tenant, "err", err)
	}
	s.lock()
	for _, sp := range plan.parents {
		s.state.running--
		if e := s.state.shards[sp.id]; e != nil {
			if err := e.st.ClearIntent(s.state.sched); err != nil {
				s.log.Error("shard split: parent's intent not cleared", "tenant_shard_id", sp.id, "err", err)
			}
			s.removeShardLocked(sp.id)
		}
	}
	for _, row := range plan.rows {
		r, ok := stored[row.ID]
		if !ok {
			r = row
		}
		r.Splitting = false
		e, err := shardFromRow(r)
		if err != nil {
			s.log.Error("shard split: child row unusable", "tenant_shard_id", row.ID, "err", err)
			continue
		}
		sp := plan.parentOf(row.ID)
		if s.state.sched.Has(sp.node) {
			if err := e.st.SetAttached(s.state.sched, sp.node); err != nil {
				s.log.Error("shard split: child not attached in intent", "tenant_shard_id", row.ID, "node_id", sp.node, "err", err)
			}
		}
		g, _ := e.st.Generation()
		if sp.split && sp.conf.Mode.Attached() && g == sp.conf.Generation {
			// What the pageserver's split left there: the child attached
			// in its parent's generation.
			e.st.SetObserved(sp.node, placement.LocationConf{
				Mode: placement.ModeAttachedSingle, Generation: g, Shard: e.st.Identity, TenantConf: e.st.TenantConf,
			})
		} else {
			// Its split did not answer, or a newer generation was issued:
			// a reconcile reads the node and attaches as needed.
			e.st.SetObservedUnknown(sp.node)
		}
		s.addShardLocked(e)
		if err := e.st.Schedule(s.state.sched); err != nil {
			s.log.Warn("shard split: child not fully placed", "tenant_shard_id", row.ID, "err", err)
		}
		s.requestReconcileLocked(e, true)
	}
	s.changed.Broadcast()
	s.refreshGauges()
	s.mu.Unlock()
	s.metrics.splits.WithLabelValues("committed").Inc()
	s.log.Info("shard split committed", "tenant_id", plan.tenant, "from", plan.oldCount, "to", plan.newCount, "stripe", plan.newStripe)

	for _, sp := range plan.parents {
		if err := sp.client.locationConfig(ctx, sp.id, detachedConf(sp.ident)); err != nil {
			s.log.Warn("shard split: parent not detached from its pageserver (it drops it at its next re-attach)",
				"tenant_shard_id", sp.id, "node_id", sp.node, "err", err)
		}
		for _, c := range sp.stale {
			if err := c.locationConfig(ctx, sp.id, detachedConf(sp.ident)); err != nil {
				s.log.Warn("shard split: parent's stale location not detached (its pageserver drops it at its next re-attach)",
					"tenant_shard_id", sp.id, "err", err)
			}
		}
	}
	nctx, cancel := clock.WithTimeout(s.clk, ctx, s.cfg.ReconcileNotifyTimeout)
	if err := s.notifyTenant(nctx, plan.tenant); err != nil {
		s.log.Warn("shard split: compute not told yet; a reconcile retries", "tenant_id", plan.tenant, "err", err)
	}
	cancel()
	return storconapi.ShardSplitResponse{NewShards: plan.childIDs()}
}

// rollbackSplit undoes a split that failed before its commit and returns
// the error to answer (wrapping ErrSplitRolledBack and cause):
//
//  1. the store: children deleted, the parents' marks cleared (one
//     transaction), after Config.LostWriteSettle when a store write of the
//     split may still be in flight; if the store finds the split committed
//     already (such a write landed, or the planted bug commits early), the
//     split is finished instead;
//  2. the children are detached from the parents' pageservers;
//  3. the parents are released to the reconciler; one whose pageserver
//     split was attempted may have been shut down there, so it is attached
//     again (with a new generation: generations never go down).
//
// It runs to its end even when the caller has gone (ShardSplitTimeout
// bounds it); a store that cannot abort keeps the marks, which keep the
// tenant from another split until start-up rolls it back.
func (s *Service) rollbackSplit(ctx context.Context, plan *splitPlan, cause error) error {
	ctx, cancel := clock.WithTimeout(s.clk, context.WithoutCancel(ctx), s.cfg.ShardSplitTimeout)
	defer cancel()
	t := plan.tenant
	s.log.Warn("shard split failed; rolling back", "tenant_id", t, "from", plan.oldCount, "to", plan.newCount, "err", cause)
	marked := false
	if plan.begun && plan.inFlight {
		if err := clock.Sleep(ctx, s.clk, s.cfg.LostWriteSettle); err != nil {
			s.log.Error("shard split: rollback ended while waiting for a store write in flight", "tenant_id", t, "err", err)
		}
	}
	if plan.begun {
		var outcome persist.SplitOutcome
		err := s.storeStep(ctx, "abort", func(ctx context.Context) error {
			var err error
			outcome, err = s.store.AbortSplit(ctx, t, plan.newCount)
			return err
		})
		switch {
		case err == nil && outcome == persist.SplitCommitted:
			s.log.Error("shard split: the store had committed the split already; finishing it", "tenant_id", t, "cause", cause)
			if err := s.commitSplitStore(ctx, plan); err != nil {
				s.log.Error("shard split: clearing the children's marks failed; start-up finishes it", "tenant_id", t, "err", err)
			}
			s.finishSplit(ctx, plan)
			return nil
		case err != nil:
			marked = true
			s.log.Error("shard split: the store did not roll back; the marks stay until a restart rolls them back", "tenant_id", t, "err", err)
		}
	}
	for _, sp := range plan.parents {
		if !sp.sent {
			continue
		}
		for _, c := range sp.children {
			ident := shard.ShardIdentity{Number: c.Shard.Number, Count: c.Shard.Count, StripeSize: plan.newStripe}
			if err := sp.client.locationConfig(ctx, c, detachedConf(ident)); err != nil {
				s.log.Warn("shard split rollback: child not detached (its pageserver drops it at its next re-attach)",
					"tenant_shard_id", c, "node_id", sp.node, "err", err)
			}
		}
	}
	s.lock()
	keys := make([]shardKey, 0, len(plan.parents))
	for _, sp := range plan.parents {
		s.state.running--
		e := s.state.shards[sp.id]
		if e == nil {
			continue
		}
		e.reconciling, e.again, e.splitting = false, false, marked
		if sp.sent {
			e.st.ClearObserved(sp.node)
		}
		if err := e.st.Schedule(s.state.sched); err != nil {
			s.log.Warn("shard split rollback: parent not fully placed", "tenant_shard_id", sp.id, "err", err)
		}
		keys = append(keys, s.requestReconcileLocked(e, true))
	}
	s.changed.Broadcast()
	s.refreshGauges()
	s.mu.Unlock()
	wctx, wcancel := s.reconcileWait(ctx)
	if err := s.waitAll(wctx, keys); err != nil {
		s.log.Warn("shard split rollback: parents not reconciled yet", "tenant_id", t, "err", err)
	}
	wcancel()
	s.metrics.splits.WithLabelValues("rolled_back").Inc()
	s.log.Info("shard split rolled back", "tenant_id", t, "from", plan.oldCount, "to", plan.newCount, "store_marks_left", marked)
	return fmt.Errorf("%w: tenant %s, %d into %d shards: %w", ErrSplitRolledBack, t, plan.oldCount, plan.newCount, cause)
}

// --- start-up ---

// rolledBackSplit is a split start-up rolled back in the store: its
// children may still be on the parents' pageservers, and the parents may
// be shut down there.
type rolledBackSplit struct {
	parents, children []persist.TenantShard
}

// loadStoreResolvingSplits is loadStore, after rolling back every split
// still marked in the store: one whose parents exist is aborted (children
// deleted, marks cleared), one whose parents are gone had committed and
// its marks are cleared. A failure is retried with loadStore's back-off
// until it succeeds or ctx ends: the controller cannot serve a tenant that
// is half split.
func (s *Service) loadStoreResolvingSplits(ctx context.Context) ([]persist.Node, []persist.TenantShard, []rolledBackSplit, error) {
	pause := StartupStoreRetry
	for attempt := 1; ; attempt++ {
		nodes, rows, err := s.loadStore(ctx)
		if err != nil || !slices.ContainsFunc(rows, func(r persist.TenantShard) bool { return r.Splitting }) {
			return nodes, rows, nil, err
		}
		rolled, err := s.resolveSplits(ctx, rows)
		if err == nil {
			nodes, rows, err = s.loadStore(ctx)
			return nodes, rows, rolled, err
		}
		s.log.Error("start-up: rolling back splits; retrying", "attempt", attempt, "retry_in", pause, "err", err)
		if serr := clock.Sleep(ctx, s.clk, pause); serr != nil {
			return nil, nil, nil, errors.Join(err, serr)
		}
		pause = min(2*pause, StartupStoreMaxRetry)
	}
}

// resolveSplits settles every tenant with rows marked splitting.
func (s *Service) resolveSplits(ctx context.Context, rows []persist.TenantShard) ([]rolledBackSplit, error) {
	byTenant := map[shard.TenantID][]persist.TenantShard{}
	marked := map[shard.TenantID]bool{}
	for _, r := range rows {
		byTenant[r.ID.TenantID] = append(byTenant[r.ID.TenantID], r)
		marked[r.ID.TenantID] = marked[r.ID.TenantID] || r.Splitting
	}
	var out []rolledBackSplit
	for _, t := range slices.SortedFunc(maps.Keys(marked), func(a, b shard.TenantID) int { return bytes.Compare(a[:], b[:]) }) {
		if !marked[t] {
			continue
		}
		trows := byTenant[t]
		newCount := trows[0].ID.Shard.Count
		for _, r := range trows {
			newCount = max(newCount, r.ID.Shard.Count)
		}
		if !slices.ContainsFunc(trows, func(r persist.TenantShard) bool { return r.ID.Shard.Count != newCount }) {
			// One count only: the split had committed (or never inserted
			// children); only the marks are left.
			if err := s.storeStep(ctx, "clear marks", func(ctx context.Context) error { return s.store.SetSplitting(ctx, t, false) }); err != nil {
				return nil, fmt.Errorf("tenant %s: clear splitting marks: %w", t, err)
			}
			s.log.Warn("start-up: splitting marks cleared (the split had committed)", "tenant_id", t, "shard_count", newCount)
			continue
		}
		var outcome persist.SplitOutcome
		err := s.storeStep(ctx, "abort", func(ctx context.Context) error {
			var err error
			outcome, err = s.store.AbortSplit(ctx, t, newCount)
			return err
		})
		if err != nil {
			return nil, fmt.Errorf("tenant %s: roll back split into %d: %w", t, newCount, err)
		}
		if outcome == persist.SplitCommitted {
			continue // the parents vanished meanwhile: nothing of ours runs, so never
		}
		rb := rolledBackSplit{}
		for _, r := range trows {
			if r.ID.Shard.Count == newCount {
				rb.children = append(rb.children, r)
			} else {
				rb.parents = append(rb.parents, r)
			}
		}
		out = append(out, rb)
		s.metrics.splits.WithLabelValues("rolled_back").Inc()
		s.log.Warn("start-up: split rolled back", "tenant_id", t, "to", newCount, "parents", len(rb.parents), "children", len(rb.children))
	}
	return out, nil
}

// undoSplitsOnNodes removes the children of splits start-up rolled back
// from the nodes that list them, and returns the parents to attach again:
// a parent whose children are on a node was split there, and the split
// shut it down. Called once the nodes' locations are read.
func (s *Service) undoSplitsOnNodes(ctx context.Context, rolled []rolledBackSplit,
	lists map[placement.NodeID]map[shard.TenantShardID]*pageapi.LocationConfig) map[shard.TenantShardID]placement.NodeID {
	force := map[shard.TenantShardID]placement.NodeID{}
	type detach struct {
		node placement.NodeID
		row  persist.TenantShard
	}
	var work []detach
	nodes := slices.Sorted(maps.Keys(lists))
	for _, rb := range rolled {
		for _, c := range rb.children {
			oldCount := shard.ShardCount(0)
			if len(rb.parents) > 0 {
				oldCount = rb.parents[0].ID.Shard.Count
			}
			parent := shard.TenantShardID{TenantID: c.ID.TenantID, Shard: persist.ParentIndex(c.ID.Shard, oldCount)}
			for _, n := range nodes {
				if _, ok := lists[n][c.ID]; ok {
					work = append(work, detach{n, c})
					force[parent] = n
				}
			}
		}
	}
	if len(work) == 0 {
		return force
	}
	s.lock()
	clients := map[placement.NodeID]psClient{}
	for _, w := range work {
		if ne := s.state.nodes[w.node]; ne != nil {
			clients[w.node] = ne.client
		}
	}
	s.mu.Unlock()
	g := clock.NewGroup(s.clk, ctx)
	for _, w := range work {
		c, ok := clients[w.node]
		if !ok {
			continue
		}
		g.Go("start-up split child detach "+w.row.ID.String(), func(ctx context.Context) error {
			ident := shard.ShardIdentity{Number: w.row.ID.Shard.Number, Count: w.row.ID.Shard.Count, StripeSize: w.row.StripeSize}
			if err := c.locationConfig(ctx, w.row.ID, detachedConf(ident)); err != nil {
				s.log.Warn("start-up: rolled-back split child not detached", "tenant_shard_id", w.row.ID, "node_id", w.node, "err", err)
			}
			return nil
		})
	}
	_ = g.Wait()
	return force
}

// --- the pageserver call and the store's latency ---

// shardSplit asks the node to split the parent id: up to ShardSplitRetries
// attempts, each bounded by ShardSplitTimeout, retrying only failures that
// may pass.
func (c psClient) shardSplit(ctx context.Context, id shard.TenantShardID, req pageapi.ShardSplitRequest) (pageapi.ShardSplitResponse, error) {
	var resp pageapi.ShardSplitResponse
	path := "/v1/tenant/" + id.String() + "/shard_split"
	var err error
	for attempt := 0; attempt < c.s.cfg.ShardSplitRetries; attempt++ {
		if attempt > 0 {
			if serr := clock.Sleep(ctx, c.s.clk, c.s.cfg.LocationConfigBackoff); serr != nil {
				return resp, errors.Join(err, serr)
			}
		}
		resp = pageapi.ShardSplitResponse{}
		err = c.timed(ctx, c.s.cfg.ShardSplitTimeout, func(ctx context.Context) error {
			return c.do(ctx, "shard_split", "PUT", path, nil, req, &resp)
		})
		if err == nil || !retryable(err) || ctx.Err() != nil {
			return resp, err
		}
	}
	return resp, err
}

func (t *timedStore) BeginSplit(ctx context.Context, tenant shard.TenantID, oldCount shard.ShardCount, children []persist.TenantShard) (err error) {
	defer t.observe("begin_split", t.now(), &err)
	return t.Store.BeginSplit(ctx, tenant, oldCount, children)
}

func (t *timedStore) CommitSplit(ctx context.Context, tenant shard.TenantID, oldCount shard.ShardCount) (err error) {
	defer t.observe("commit_split", t.now(), &err)
	return t.Store.CommitSplit(ctx, tenant, oldCount)
}

func (t *timedStore) AbortSplit(ctx context.Context, tenant shard.TenantID, newCount shard.ShardCount) (_ persist.SplitOutcome, err error) {
	defer t.observe("abort_split", t.now(), &err)
	return t.Store.AbortSplit(ctx, tenant, newCount)
}

func (t *timedStore) SetSplitting(ctx context.Context, tenant shard.TenantID, splitting bool) (err error) {
	defer t.observe("set_splitting", t.now(), &err)
	return t.Store.SetSplitting(ctx, tenant, splitting)
}
