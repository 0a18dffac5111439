package storcon

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"

	"github.com/stratadb/strata/clock"
	"github.com/stratadb/strata/engine/layer"
	"github.com/stratadb/strata/engine/placement"
	"github.com/stratadb/strata/engine/shard"
	"github.com/stratadb/strata/net"
	"github.com/stratadb/strata/nodes/pageserver/pageapi"
	"github.com/stratadb/strata/nodes/storcon/persist"
	"github.com/stratadb/strata/nodes/storcon/storconapi"
)

func persistNode(id placement.NodeID) persist.NodeID { return persist.NodeID(id) }

func policyJSON(p placement.Policy) string {
	b, err := json.Marshal(p)
	if err != nil {
		return `{"Attached":0}` // Validate passed before any policy is stored
	}
	return string(b)
}

// shardRow is the durable part of a shard, as the store holds it.
func shardRow(e *shardEntry) persist.TenantShard {
	st := e.st
	g, gn := st.Generation()
	row := persist.TenantShard{
		ID:               st.ID,
		StripeSize:       st.Identity.StripeSize,
		PlacementPolicy:  policyJSON(st.Policy),
		Config:           st.TenantConf,
		Splitting:        e.splitting,
		SchedulingPolicy: st.SchedulingPolicy.String(),
		PreferredAZ:      string(st.PreferredAZ()),
	}
	if g.Valid {
		row.Generation, row.GenerationNode = layer.Generation(g.N), persistNode(gn)
	}
	return row
}

// shardFromRow rebuilds a shard's state from its row (start-up).
func shardFromRow(r persist.TenantShard) (*shardEntry, error) {
	var p placement.Policy
	if err := json.Unmarshal([]byte(r.PlacementPolicy), &p); err != nil {
		return nil, fmt.Errorf("storcon: shard %s placement policy: %w", r.ID, err)
	}
	ident := shard.ShardIdentity{Number: r.ID.Shard.Number, Count: r.ID.Shard.Count, StripeSize: r.StripeSize}
	st := placement.NewShardState(r.ID, ident, p)
	if err := st.SchedulingPolicy.UnmarshalText([]byte(r.SchedulingPolicy)); err != nil {
		return nil, fmt.Errorf("storcon: shard %s: %w", r.ID, err)
	}
	st.TenantConf = r.Config
	st.SetPreferredAZ(placement.AZ(r.PreferredAZ))
	if r.Generation != layer.GenerationNone {
		if err := st.SetGeneration(placement.Gen(uint32(r.Generation)), placement.NodeID(r.GenerationNode)); err != nil {
			return nil, err
		}
	}
	return &shardEntry{st: st, splitting: r.Splitting}, nil
}

// waitReady waits (at most StartupWait) for start-up to finish: tenant
// calls made before then would act on intent that is not built yet.
func (s *Service) waitReady(ctx context.Context) error {
	ctx, cancel := clock.WithTimeout(s.clk, ctx, s.cfg.StartupWait)
	defer cancel()
	s.lock()
	defer s.mu.Unlock()
	for !s.state.ready {
		if s.state.shuttingDown {
			return ErrShuttingDown
		}
		if err := s.changed.Wait(ctx); err != nil {
			return fmt.Errorf("%w: %w", ErrNotReady, ErrTimeout)
		}
	}
	if s.state.shuttingDown {
		return ErrShuttingDown
	}
	return nil
}

// lockTenant waits for start-up, then takes tenant t's operation lock.
func (s *Service) lockTenant(ctx context.Context, t shard.TenantID) (unlock func(), err error) {
	if err := s.waitReady(ctx); err != nil {
		return nil, err
	}
	s.lock()
	te := s.tenantLocked(t)
	te.refs++
	s.mu.Unlock()
	release := func() {
		s.lock()
		te.refs--
		s.dropTenantIfUnusedLocked(t)
		s.mu.Unlock()
	}
	if err := te.op.Lock(ctx); err != nil {
		release()
		return nil, fmt.Errorf("%w: tenant %s is busy: %w", ErrTimeout, t, err)
	}
	unlock = func() {
		te.op.Unlock()
		release()
	}
	if err := s.resolveIfUnsure(ctx, t); err != nil {
		unlock()
		return nil, err
	}
	return unlock, nil
}

// tenantShardsLocked lists tenant t's shards by index; ErrNotFound if it
// has none. Called with s.mu held.
func (s *Service) tenantShardsLocked(t shard.TenantID) ([]*shardEntry, error) {
	te := s.state.tenants[t]
	if te == nil || len(te.shards) == 0 {
		return nil, fmt.Errorf("%w: tenant %s", ErrNotFound, t)
	}
	return slices.Clone(te.shards), nil
}

// reconcileWait bounds an API call's wait for its reconciles.
func (s *Service) reconcileWait(ctx context.Context) (context.Context, context.CancelFunc) {
	return clock.WithTimeout(s.clk, ctx, s.cfg.ReconcileWait)
}

// createTenant is POST /v1/tenant: all of the tenant's shards, or none.
// Every shard is scheduled in memory first; if any finds no node, the
// placement is undone and nothing is stored (409). Then all rows are
// inserted in one transaction, the shards reconciled, and the call waits
// (ReconcileWait) until they are attached. Creating a tenant that exists
// with the same shard count answers its shards (a retried create); with
// another count it is a conflict.
func (s *Service) createTenant(ctx context.Context, req storconapi.TenantCreateRequest) (storconapi.TenantCreateResponse, error) {
	var resp storconapi.TenantCreateResponse
	if req.NewTenantID == (shard.TenantID{}) {
		// An empty body would otherwise create the all-zero tenant.
		return resp, fmt.Errorf("%w: new_tenant_id is required", storconapi.ErrBadRequest)
	}
	count := shard.ShardCount(req.ShardParameters.Count)
	stripe := req.ShardParameters.StripeSize
	if stripe == 0 {
		stripe = shard.DefaultStripeSize
	}
	policy := placement.Attached(0)
	if req.PlacementPolicy != nil {
		policy = *req.PlacementPolicy
	}
	if err := policy.Validate(); err != nil {
		return resp, fmt.Errorf("%w: %w", storconapi.ErrBadRequest, err)
	}
	if req.Config != nil {
		if _, err := req.Config.Durations(); err != nil {
			return resp, err
		}
	}
	conf := canonicalTenantConf(req.Config)
	t := req.NewTenantID
	unlock, err := s.lockTenant(ctx, t)
	if err != nil {
		return resp, err
	}
	defer unlock()

	s.lock()
	if existing := s.state.tenants[t]; existing != nil && len(existing.shards) > 0 {
		if existing.shards[0].st.Identity.Count != count {
			s.mu.Unlock()
			return resp, fmt.Errorf("%w: tenant %s exists with %d shards", ErrConflict, t, existing.shards[0].st.Identity.Count)
		}
		var keys []shardKey
		for _, e := range existing.shards {
			keys = append(keys, s.requestReconcileLocked(e, true))
		}
		s.mu.Unlock()
		return s.awaitCreated(ctx, t, keys)
	}
	n := max(int(count), 1)
	entries := make([]*shardEntry, 0, n)
	undo := func() {
		for _, e := range entries {
			_ = e.st.ClearIntent(s.state.sched)
			s.removeShardLocked(e.st.ID)
		}
	}
	for i := range n {
		ident := shard.ShardIdentity{Number: shard.ShardNumber(i), Count: count, StripeSize: stripe}
		if err := ident.Validate(); err != nil {
			undo()
			s.mu.Unlock()
			return resp, fmt.Errorf("%w: %w", storconapi.ErrBadRequest, err)
		}
		id := shard.TenantShardID{TenantID: t, Shard: ident.Index()}
		st := placement.NewShardState(id, ident, policy)
		st.TenantConf = conf
		st.SetPreferredAZ(placement.AZ(req.PreferredAZ))
		e := &shardEntry{st: st, creating: true}
		s.addShardLocked(e)
		entries = append(entries, e)
		if err := st.Schedule(s.state.sched); err != nil {
			undo()
			s.mu.Unlock()
			return resp, fmt.Errorf("tenant %s: %w", t, err)
		}
	}
	rows := make([]persist.TenantShard, len(entries))
	for i, e := range entries {
		rows[i] = shardRow(e)
	}
	s.mu.Unlock()

	stored, err := s.insertShardRows(ctx, t, rows)
	if err != nil {
		s.lock()
		undo()
		if errors.Is(err, errInsertUnresolved) {
			// The rows may be stored: the tenant is resolved later
			// (unsure.go), by its next operation or in the background.
			s.tenantLocked(t).unsure = true
			s.metrics.storeUnknown.WithLabelValues("deferred").Inc()
		}
		s.mu.Unlock()
		return resp, err
	}
	s.lock()
	keys := make([]shardKey, len(entries))
	for i, e := range entries {
		if err := adoptGeneration(e, stored[i]); err != nil {
			undo()
			s.mu.Unlock()
			return resp, err
		}
		e.creating = false
		s.scheduleReconcileLocked(e, true)
		keys[i] = shardKey{e.st.ID, e.st.Sequence()}
	}
	s.refreshGauges()
	s.mu.Unlock()
	s.log.Info("tenant created", "tenant_id", t, "shards", n, "policy", policy)
	return s.awaitCreated(ctx, t, keys)
}

// errInsertUnresolved: an insert's outcome is unknown and its rows could
// not be read back within ResolveTimeout.
var errInsertUnresolved = errors.New("storcon: insert outcome unknown, rows unreadable")

// insertShardRows inserts tenant t's rows in one transaction and returns
// them as stored. An error other than the store's argument classes leaves
// the outcome unknown (the commit may have happened, its answer lost), and
// ErrExists may be such an earlier attempt's rows: either way the tenant's
// rows are read back, and if every row is stored as asked (its generation
// at least the one asked for) the insert counts as done. Rows that exist
// with other values are a conflict; rows that are not there return the
// insert's error. The read-back decides what memory holds, so it does not
// depend on the caller: a broken connection that lost the insert's answer
// often ended the caller's request too. It waits Config.LostWriteSettle
// first (the insert may still be on its way) and is bounded by
// ResolveTimeout (and the service's life); rows that stay unreadable are
// errInsertUnresolved, and the tenant is resolved later (unsure.go).
func (s *Service) insertShardRows(ctx context.Context, t shard.TenantID, rows []persist.TenantShard) ([]persist.TenantShard, error) {
	err := s.store.InsertTenantShards(ctx, rows)
	switch {
	case err == nil:
		return rows, nil
	case errors.Is(err, persist.ErrInvalid), errors.Is(err, persist.ErrConflict), errors.Is(err, persist.ErrGenerationExhausted):
		return nil, err
	}
	rctx, cancel := clock.WithTimeout(s.clk, s.tasks.Context(), s.cfg.LostWriteSettle+ResolveTimeout)
	defer cancel()
	if !errors.Is(err, persist.ErrExists) {
		// The insert may still be on its way (Config.LostWriteSettle).
		if serr := clock.Sleep(rctx, s.clk, s.cfg.LostWriteSettle); serr != nil {
			return nil, err
		}
	}
	have, rerr := s.readRows(rctx, t)
	if rerr != nil {
		s.log.Error("insert outcome unknown and the rows unreadable; resolving later", "tenant_id", t, "err", err, "read_err", rerr)
		return nil, fmt.Errorf("%w: %w", errInsertUnresolved, err)
	}
	byID := make(map[shard.TenantShardID]persist.TenantShard, len(have))
	for _, r := range have {
		byID[r.ID] = r
	}
	out := make([]persist.TenantShard, len(rows))
	missing := 0
	for i, want := range rows {
		got, ok := byID[want.ID]
		if !ok {
			missing++
			continue
		}
		a, b := got, want
		a.Generation, a.GenerationNode, b.Generation, b.GenerationNode = 0, 0, 0, 0
		if a != b || got.Generation < want.Generation {
			return nil, fmt.Errorf("%w: shard %s exists with other parameters: %w", ErrConflict, want.ID, persist.ErrExists)
		}
		out[i] = got
	}
	switch {
	case missing == len(rows) && !errors.Is(err, persist.ErrExists):
		return nil, err // not inserted
	case missing > 0:
		return nil, fmt.Errorf("%w: tenant %s: %d of %d shards stored: %w", ErrConflict, t, len(rows)-missing, len(rows), err)
	}
	s.log.Warn("insert answered an error but its rows are stored; adopted", "tenant_id", t, "shards", len(rows), "err", err)
	return out, nil
}

// adoptGeneration takes a stored row's generation (and its node) into e
// when it is ahead of e's (rows adopted by insertShardRows). Called with
// s.mu held.
func adoptGeneration(e *shardEntry, row persist.TenantShard) error {
	g, _ := e.st.Generation()
	if row.Generation == layer.GenerationNone || g.Valid && uint32(row.Generation) <= g.N {
		return nil
	}
	return e.st.SetGeneration(placement.Gen(uint32(row.Generation)), placement.NodeID(row.GenerationNode))
}

// awaitCreated waits for a new tenant's shards to be attached and answers
// where. A reconcile that could not reach the attached node (unavailable:
// nothing to do until it is back) ends without an error, so each shard is
// checked: one not attached in place yet is ErrTimeout — the tenant is
// stored, and a retried create waits again.
func (s *Service) awaitCreated(ctx context.Context, t shard.TenantID, keys []shardKey) (storconapi.TenantCreateResponse, error) {
	var resp storconapi.TenantCreateResponse
	wctx, cancel := s.reconcileWait(ctx)
	defer cancel()
	if err := s.waitAll(wctx, keys); err != nil {
		return resp, err
	}
	s.lock()
	defer s.mu.Unlock()
	shards, err := s.tenantShardsLocked(t)
	if err != nil {
		return resp, err
	}
	for _, e := range shards {
		if e.st.Policy.Kind == placement.PolicyAttached && !s.attachedReadyLocked(e) {
			return resp, fmt.Errorf("%w: tenant %s is stored but shard %s is not attached yet (node %d unavailable)",
				ErrTimeout, t, e.st.ID, e.st.Attached())
		}
	}
	for _, e := range shards {
		resp.Shards = append(resp.Shards, pageapi.ShardLocation{ShardID: e.st.ID.String(), NodeID: uint64(e.st.Attached())})
	}
	return resp, nil
}

// deleteTenant is DELETE /v1/tenant/{id}: every location is detached, then
// the rows are deleted and the tenant forgotten. The detached policy is
// stored first (and the generation's node cleared, so a re-attach no
// longer hands the shard back), so a delete that fails part-way leaves a
// consistent, detached tenant that a retry finishes. Locations on
// unavailable nodes are left: those nodes drop them at their next
// re-attach, which no longer lists the tenant.
func (s *Service) deleteTenant(ctx context.Context, t shard.TenantID) error {
	unlock, err := s.lockTenant(ctx, t)
	if err != nil {
		return err
	}
	defer unlock()
	s.lock()
	if _, err := s.tenantShardsLocked(t); err != nil {
		s.mu.Unlock()
		return err
	}
	s.mu.Unlock()
	detached, active := policyJSON(placement.Detached()), placement.ShardActive.String()
	if err := s.store.UpdateTenantShards(ctx, persist.WholeTenant(t), persist.ShardUpdate{
		PlacementPolicy: &detached, SchedulingPolicy: &active, ClearGenerationNode: true,
	}); err != nil {
		if s.afterTenantWrite(t, err) {
			return nil // an earlier delete's rows are gone: it is done
		}
		return err
	}
	s.lock()
	shards, err := s.tenantShardsLocked(t)
	if err != nil {
		s.mu.Unlock()
		return err
	}
	keys := make([]shardKey, 0, len(shards))
	for _, e := range shards {
		e.st.Policy, e.st.SchedulingPolicy = placement.Detached(), placement.ShardActive
		if err := e.st.ClearIntent(s.state.sched); err != nil {
			s.mu.Unlock()
			return err
		}
		g, _ := e.st.Generation()
		if g.Valid {
			_ = e.st.SetGeneration(g, placement.NoNode)
		}
		e.st.BumpSequence()
		s.scheduleReconcileLocked(e, true)
		keys = append(keys, shardKey{e.st.ID, e.st.Sequence()})
	}
	s.mu.Unlock()
	wctx, cancel := s.reconcileWait(ctx)
	defer cancel()
	if err := s.waitAll(wctx, keys); err != nil {
		return err
	}
	if err := s.store.DeleteTenant(ctx, t); err != nil && !errors.Is(err, persist.ErrNotFound) {
		if s.afterTenantWrite(t, err) {
			s.log.Info("tenant deleted (its rows found gone after the delete's answer was lost)", "tenant_id", t)
			return nil
		}
		return err
	}
	s.forgetTenant(t)
	s.log.Info("tenant deleted", "tenant_id", t)
	return nil
}

// forgetTenant removes tenant t from memory (its rows are gone).
func (s *Service) forgetTenant(t shard.TenantID) {
	s.lock()
	if te := s.state.tenants[t]; te != nil {
		for _, e := range slices.Clone(te.shards) {
			_ = e.st.ClearIntent(s.state.sched)
			s.removeShardLocked(e.st.ID)
		}
	}
	s.refreshGauges()
	s.mu.Unlock()
	if s.hook != nil {
		s.hook.Forget(t)
	}
}

// dropTenant is the operator's POST /debug/v1/tenant/{id}/drop: forget the
// tenant without touching any pageserver.
func (s *Service) dropTenant(ctx context.Context, t shard.TenantID) error {
	unlock, err := s.lockTenant(ctx, t)
	if err != nil {
		return err
	}
	defer unlock()
	s.lock()
	_, err = s.tenantShardsLocked(t)
	s.mu.Unlock()
	if err != nil {
		return err
	}
	if err := s.store.DeleteTenant(ctx, t); err != nil && !errors.Is(err, persist.ErrNotFound) {
		if s.afterTenantWrite(t, err) {
			s.log.Info("tenant dropped (its rows found gone after the delete's answer was lost)", "tenant_id", t)
			return nil
		}
		return err
	}
	s.forgetTenant(t)
	s.log.Info("tenant dropped", "tenant_id", t)
	return nil
}

// shardTarget is a shard and the client of the node it is attached to.
type shardTarget struct {
	id     shard.TenantShardID
	client psClient
}

// attachedTargets returns, by shard index, each shard of t with the node it
// is attached to, waiting (ReconcileWait) for shards whose attachment is
// not in place yet.
func (s *Service) attachedTargets(ctx context.Context, t shard.TenantID) ([]shardTarget, error) {
	wctx, cancel := s.reconcileWait(ctx)
	defer cancel()
	for {
		s.lock()
		shards, err := s.tenantShardsLocked(t)
		if err != nil {
			s.mu.Unlock()
			return nil, err
		}
		out := make([]shardTarget, 0, len(shards))
		var pending []shardKey
		for _, e := range shards {
			a := e.st.Attached()
			if a == placement.NoNode {
				s.mu.Unlock()
				return nil, fmt.Errorf("%w: shard %s is not attached (policy %s)", ErrPrecondition, e.st.ID, e.st.Policy)
			}
			if !s.attachedReadyLocked(e) {
				pending = append(pending, s.requestReconcileLocked(e, true))
				continue
			}
			out = append(out, shardTarget{id: e.st.ID, client: s.state.nodes[a].client})
		}
		s.mu.Unlock()
		if len(pending) == 0 {
			return out, nil
		}
		if err := s.waitAll(wctx, pending); err != nil {
			return nil, err
		}
		// A reconcile that already finished at this sequence (its node is
		// unavailable, say) answers waitAll at once: pause before looking
		// again, or this loop never yields.
		if clock.Sleep(wctx, s.clk, s.cfg.LocationConfigBackoff) != nil {
			return nil, fmt.Errorf("%w: tenant %s is not attached", ErrTimeout, t)
		}
	}
}

// attachedReadyLocked reports whether e's attached node is available and
// observed to hold the shard attached with its current generation.
// Called with s.mu held.
func (s *Service) attachedReadyLocked(e *shardEntry) bool {
	a := e.st.Attached()
	if a == placement.NoNode || !s.state.sched.Available(a) || s.state.nodes[a] == nil {
		return false
	}
	o, ok := e.st.Observed(a)
	g, _ := e.st.Generation()
	return ok && o.Known && o.Conf.Mode.Attached() && o.Conf.Generation == g
}

// createTimeline is POST /v1/tenant/{id}/timeline: the timeline is created
// on every shard's attached node concurrently; the answer is shard 0's.
func (s *Service) createTimeline(ctx context.Context, t shard.TenantID, req pageapi.TimelineCreateRequest) (pageapi.TimelineInfo, error) {
	unlock, err := s.lockTenant(ctx, t)
	if err != nil {
		return pageapi.TimelineInfo{}, err
	}
	defer unlock()
	targets, err := s.attachedTargets(ctx, t)
	if err != nil {
		return pageapi.TimelineInfo{}, err
	}
	infos := make([]pageapi.TimelineInfo, len(targets))
	errs := make([]error, len(targets))
	g := clock.NewGroup(s.clk, ctx)
	for i, tg := range targets {
		g.Go("timeline create "+tg.id.String(), func(ctx context.Context) error {
			infos[i], errs[i] = tg.client.createTimeline(ctx, tg.id, req)
			return nil
		})
	}
	_ = g.Wait()
	if err := firstError(errs); err != nil {
		return pageapi.TimelineInfo{}, err
	}
	s.log.Info("timeline created", "tenant_id", t, "timeline_id", req.NewTimelineID, "shards", len(targets))
	return infos[0], nil
}

// deleteTimeline is DELETE /v1/tenant/{id}/timeline/{tl}: every shard but
// shard 0 concurrently, then shard 0 last (it holds what the others are
// found by). Another shard that no longer has the timeline counts as done
// (a retry after a partial delete goes on to shard 0); shard 0's answer is
// the caller's, 404 included — as from a pageserver, 404 is how a retried
// delete (or a poll) learns the timeline is gone.
func (s *Service) deleteTimeline(ctx context.Context, t shard.TenantID, tl shard.TimelineID) error {
	unlock, err := s.lockTenant(ctx, t)
	if err != nil {
		return err
	}
	defer unlock()
	targets, err := s.attachedTargets(ctx, t)
	if err != nil {
		return err
	}
	rest := targets[1:]
	errs := make([]error, len(rest))
	g := clock.NewGroup(s.clk, ctx)
	for i, tg := range rest {
		g.Go("timeline delete "+tg.id.String(), func(ctx context.Context) error {
			if err := tg.client.deleteTimeline(ctx, tg.id, tl); err != nil && net.CodeOf(err) != net.NotFound {
				errs[i] = err
			}
			return nil
		})
	}
	_ = g.Wait()
	if err := firstError(errs); err != nil {
		return err
	}
	if err := targets[0].client.deleteTimeline(ctx, targets[0].id, tl); err != nil {
		return err
	}
	s.log.Info("timeline deleted", "tenant_id", t, "timeline_id", tl)
	return nil
}

func firstError(errs []error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// setTenantConfig is PUT /v1/tenant/config: stored, then sent to every
// location by reconciles (a config-only change keeps the generation).
func (s *Service) setTenantConfig(ctx context.Context, req storconapi.TenantConfigRequest) error {
	if _, err := req.Config.Durations(); err != nil {
		return err
	}
	conf := canonicalTenantConf(&req.Config)
	t := req.TenantID
	unlock, err := s.lockTenant(ctx, t)
	if err != nil {
		return err
	}
	defer unlock()
	s.lock()
	_, err = s.tenantShardsLocked(t)
	s.mu.Unlock()
	if err != nil {
		return err
	}
	if err := s.store.UpdateTenantShards(ctx, persist.WholeTenant(t), persist.ShardUpdate{Config: &conf}); err != nil {
		s.afterTenantWrite(t, err)
		return err
	}
	s.lock()
	shards, _ := s.tenantShardsLocked(t)
	keys := make([]shardKey, 0, len(shards))
	for _, e := range shards {
		e.st.TenantConf = conf
		e.st.BumpSequence()
		s.scheduleReconcileLocked(e, true)
		keys = append(keys, shardKey{e.st.ID, e.st.Sequence()})
	}
	s.mu.Unlock()
	wctx, cancel := s.reconcileWait(ctx)
	defer cancel()
	return s.waitAll(wctx, keys)
}

// setTenantPolicy is PUT /control/v1/tenant/{id}/policy: the placement
// and/or shard scheduling policy is stored, applied and scheduled; the
// reconciles run in the background, but the call waits (ReconcileWait)
// for a reconcile or live migration that was running under the earlier
// policy to end. A policy without an attachment (Secondary, Detached) also
// clears the generation's node, so that node's re-attach no longer hands
// the shard back as attached.
func (s *Service) setTenantPolicy(ctx context.Context, t shard.TenantID, req storconapi.TenantPolicyRequest) error {
	var u persist.ShardUpdate
	if req.Placement != nil {
		if err := req.Placement.Validate(); err != nil {
			return fmt.Errorf("%w: %w", storconapi.ErrBadRequest, err)
		}
		p := policyJSON(*req.Placement)
		u.PlacementPolicy = &p
		u.ClearGenerationNode = req.Placement.Kind != placement.PolicyAttached
	}
	if req.Scheduling != nil {
		if !req.Scheduling.Valid() {
			return fmt.Errorf("%w: scheduling policy %d", storconapi.ErrBadRequest, *req.Scheduling)
		}
		sp := req.Scheduling.String()
		u.SchedulingPolicy = &sp
	}
	if req.Placement == nil && req.Scheduling == nil {
		return fmt.Errorf("%w: neither placement nor scheduling is set", storconapi.ErrBadRequest)
	}
	unlock, err := s.lockTenant(ctx, t)
	if err != nil {
		return err
	}
	defer unlock()
	s.lock()
	_, err = s.tenantShardsLocked(t)
	s.mu.Unlock()
	if err != nil {
		return err
	}
	if err := s.store.UpdateTenantShards(ctx, persist.WholeTenant(t), u); err != nil {
		s.afterTenantWrite(t, err)
		return err
	}
	s.lock()
	shards, _ := s.tenantShardsLocked(t)
	var earlier []runMark
	for _, e := range shards {
		if e.reconciling {
			earlier = append(earlier, runMark{e.st.ID, e.runs})
		}
		if req.Placement != nil {
			e.st.Policy = *req.Placement
			if u.ClearGenerationNode {
				if g, _ := e.st.Generation(); g.Valid {
					_ = e.st.SetGeneration(g, placement.NoNode)
				}
			}
		}
		if req.Scheduling != nil {
			e.st.SchedulingPolicy = *req.Scheduling
		}
		if err := e.st.Schedule(s.state.sched); err != nil {
			s.log.Warn("tenant policy not fully placed", "tenant_shard_id", e.st.ID, "err", err)
		}
		e.st.BumpSequence()
		s.scheduleReconcileLocked(e, true)
	}
	s.refreshGauges()
	s.mu.Unlock()
	s.log.Info("tenant policy", "tenant_id", t, "placement", req.Placement, "scheduling", req.Scheduling)
	// A reconcile that started under the earlier policy may have sent a
	// location config already (a Secondary policy demoting the attached
	// location): it cannot be called back, so the call answers only once
	// that reconcile has ended and nothing of the earlier policy lands
	// after the new one is acknowledged. The new policy's own reconciles
	// still run in the background.
	wctx, cancel := s.reconcileWait(ctx)
	defer cancel()
	return s.waitRunsEnded(wctx, earlier)
}

// tenantLocationConfig is the pageserver-compatible PUT
// /v1/tenant/{tsid}/location_config, used to onboard a tenant (or change
// one) from a caller that speaks the pageserver's API:
//
//   - an attached mode takes the shard under management with policy
//     Attached (keeping an existing Attached{n}); a generation in the body
//     is stored (it was issued elsewhere) and the controller's first
//     attach issues the next one;
//   - Secondary (no generation) gives policy Secondary;
//   - Detached gives policy Detached (nothing for an unknown shard).
//
// The tenant config in the body becomes the shard's. The call waits
// (ReconcileWait) for the reconcile and answers where the shard is: the
// attached node, or the secondary for Secondary. It succeeds even when the
// compute hook fails (the notification stays pending).
func (s *Service) tenantLocationConfig(ctx context.Context, id shard.TenantShardID, req pageapi.LocationConfig) (*pageapi.LocationConfigResponse, error) {
	if err := req.Validate(id); err != nil {
		return nil, err
	}
	ident := req.Identity()
	conf := canonicalTenantConf(req.TenantConf)
	var policy placement.Policy
	switch {
	case req.Mode.Attached():
		policy = placement.Attached(0)
	case req.Mode == pageapi.ModeSecondary:
		policy = placement.Secondary()
	default:
		policy = placement.Detached()
	}
	unlock, err := s.lockTenant(ctx, id.TenantID)
	if err != nil {
		return nil, err
	}
	defer unlock()

	s.lock()
	e := s.state.shards[id]
	if e == nil {
		if req.Mode == pageapi.ModeDetached {
			s.mu.Unlock()
			return nil, nil
		}
		if te := s.state.tenants[id.TenantID]; te != nil && len(te.shards) > 0 && te.shards[0].st.Identity.Count != ident.Count {
			s.mu.Unlock()
			return nil, fmt.Errorf("%w: tenant %s has %d shards, not %d", ErrConflict, id.TenantID, te.shards[0].st.Identity.Count, ident.Count)
		}
		s.mu.Unlock()
		if err := s.onboardShard(ctx, id, ident, conf, policy, req.Generation); err != nil {
			return nil, err
		}
	} else {
		if e.st.Identity != ident {
			s.mu.Unlock()
			return nil, fmt.Errorf("%w: shard %s is %+v, not %+v (split the tenant instead)", ErrConflict, id, e.st.Identity, ident)
		}
		if policy.Kind == placement.PolicyAttached && e.st.Policy.Kind == placement.PolicyAttached {
			policy = e.st.Policy
		}
		cur, _ := e.st.Generation()
		s.mu.Unlock()
		p := policyJSON(policy)
		u := persist.ShardUpdate{PlacementPolicy: &p, Config: &conf, ClearGenerationNode: policy.Kind != placement.PolicyAttached}
		if req.Generation != nil && (!cur.Valid || *req.Generation > cur.N) {
			g := layer.Generation(*req.Generation)
			u.Generation, u.ClearGenerationNode = &g, true
		}
		if err := s.store.UpdateTenantShards(ctx, persist.OneShard(id), u); err != nil {
			s.afterTenantWrite(id.TenantID, err)
			return nil, err
		}
		s.lock()
		if e = s.state.shards[id]; e != nil {
			e.st.Policy, e.st.TenantConf = policy, conf
			// A reconcile may have issued a generation since cur was read
			// (before or after the store update): memory never goes below
			// it. The body's generation raises the floor only when it is
			// higher, and the node is cleared only when no generation was
			// issued meanwhile — one that was keeps the node it was issued
			// to (the store's increment set it again).
			g, gn := e.st.Generation()
			switch {
			case u.Generation != nil && (!g.Valid || g.N < uint32(*u.Generation)):
				g, gn = placement.Gen(uint32(*u.Generation)), placement.NoNode
			case u.ClearGenerationNode && g.Valid && (!cur.Valid || g.N <= cur.N):
				gn = placement.NoNode
			}
			if g.Valid {
				if err := e.st.SetGeneration(g, gn); err != nil {
					s.mu.Unlock()
					return nil, err
				}
			}
			if err := e.st.Schedule(s.state.sched); err != nil {
				s.mu.Unlock()
				return nil, fmt.Errorf("shard %s: %w", id, err)
			}
			e.st.BumpSequence()
		}
		s.mu.Unlock()
	}
	s.lock()
	e = s.state.shards[id]
	if e == nil {
		s.mu.Unlock()
		return nil, fmt.Errorf("%w: shard %s", ErrNotFound, id)
	}
	key := s.requestReconcileLocked(e, true)
	s.mu.Unlock()
	wctx, cancel := s.reconcileWait(ctx)
	defer cancel()
	if err := s.waitReconciled(wctx, key.id, key.seq); err != nil {
		return nil, err
	}
	if req.Mode == pageapi.ModeDetached {
		return nil, nil
	}
	s.lock()
	defer s.mu.Unlock()
	e = s.state.shards[id]
	if e == nil {
		return nil, fmt.Errorf("%w: shard %s", ErrNotFound, id)
	}
	resp := &pageapi.LocationConfigResponse{}
	where := e.st.Attached()
	if where == placement.NoNode {
		if secs := e.st.Secondaries(); len(secs) > 0 {
			where = secs[0]
		}
	}
	if where != placement.NoNode {
		resp.Shards = []pageapi.ShardLocation{{ShardID: id.String(), NodeID: uint64(where)}}
	}
	if e.st.Attached() != placement.NoNode && ident.Count > 1 {
		stripe := ident.StripeSize
		resp.StripeSize = &stripe
	}
	return resp, nil
}

// onboardShard takes a shard the controller does not know under
// management: scheduled in memory, its row inserted (with the generation
// the caller had, if any), then released to the reconciler. Called with
// the tenant's op lock held.
func (s *Service) onboardShard(ctx context.Context, id shard.TenantShardID, ident shard.ShardIdentity, conf string, policy placement.Policy, gen *uint32) error {
	st := placement.NewShardState(id, ident, policy)
	st.TenantConf = conf
	if gen != nil {
		if err := st.SetGeneration(placement.Gen(*gen), placement.NoNode); err != nil {
			return err
		}
	}
	e := &shardEntry{st: st, creating: true}
	s.lock()
	s.addShardLocked(e)
	if err := st.Schedule(s.state.sched); err != nil {
		_ = st.ClearIntent(s.state.sched)
		s.removeShardLocked(id)
		s.mu.Unlock()
		return fmt.Errorf("shard %s: %w", id, err)
	}
	row := shardRow(e)
	s.mu.Unlock()
	stored, err := s.insertShardRows(ctx, id.TenantID, []persist.TenantShard{row})
	s.lock()
	if err == nil {
		err = adoptGeneration(e, stored[0])
	}
	if err != nil {
		_ = st.ClearIntent(s.state.sched)
		s.removeShardLocked(id)
		s.mu.Unlock()
		return err
	}
	e.creating = false
	s.refreshGauges()
	s.mu.Unlock()
	s.log.Info("shard onboarded", "tenant_shard_id", id, "policy", policy, "generation", st.Snapshot().Generation)
	return nil
}

// describeShardLocked describes one shard. Called with s.mu held.
func (s *Service) describeShardLocked(e *shardEntry) storconapi.ShardDescribe {
	st := e.st
	d := storconapi.ShardDescribe{
		TenantShardID: st.ID, Policy: st.Policy, Scheduling: st.SchedulingPolicy,
		NodeSecondary: []uint64{}, PreferredAZ: string(st.PreferredAZ()),
		Observed: []storconapi.ObservedLocation{}, Sequence: st.Sequence(),
		IsReconciling: e.reconciling, IsDirty: st.Dirty(s.state.sched),
		PendingComputeNotification: st.PendingComputeNotification, IsSplitting: e.splitting,
	}
	if a := st.Attached(); a != placement.NoNode {
		v := uint64(a)
		d.NodeAttached = &v
	}
	for _, id := range st.Secondaries() {
		d.NodeSecondary = append(d.NodeSecondary, uint64(id))
	}
	g, gn := st.Generation()
	if g.Valid {
		n := g.N
		d.Generation = &n
		d.GenerationNode = uint64(gn)
	}
	for _, o := range st.ObservedLocations() {
		ol := storconapi.ObservedLocation{NodeID: uint64(o.Node)}
		if o.Known {
			c := o.Conf
			ol.Conf = &c
		}
		d.Observed = append(d.Observed, ol)
	}
	return d
}

func (s *Service) describeTenantLocked(t shard.TenantID) (storconapi.TenantDescribe, error) {
	shards, err := s.tenantShardsLocked(t)
	if err != nil {
		return storconapi.TenantDescribe{}, err
	}
	d := storconapi.TenantDescribe{
		TenantID: t, ShardCount: uint8(shards[0].st.Identity.Count), StripeSize: shards[0].st.Identity.StripeSize,
	}
	for _, e := range shards {
		d.Shards = append(d.Shards, s.describeShardLocked(e))
	}
	return d, nil
}

// describeTenant is GET /control/v1/tenant/{id}.
func (s *Service) describeTenant(ctx context.Context, t shard.TenantID) (storconapi.TenantDescribe, error) {
	if err := s.waitReady(ctx); err != nil {
		return storconapi.TenantDescribe{}, err
	}
	s.lock()
	defer s.mu.Unlock()
	return s.describeTenantLocked(t)
}

// listTenants is GET /control/v1/tenant: every tenant, by id.
func (s *Service) listTenants(ctx context.Context) ([]storconapi.TenantDescribe, error) {
	if err := s.waitReady(ctx); err != nil {
		return nil, err
	}
	s.lock()
	defer s.mu.Unlock()
	ids := slices.SortedFunc(maps.Keys(s.state.tenants), func(a, b shard.TenantID) int { return bytes.Compare(a[:], b[:]) })
	out := make([]storconapi.TenantDescribe, 0, len(ids))
	for _, t := range ids {
		if d, err := s.describeTenantLocked(t); err == nil {
			out = append(out, d)
		}
	}
	return out, nil
}
