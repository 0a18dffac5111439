package storcon

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/stratadb/strata/clock"
	"github.com/stratadb/strata/engine/layer"
	"github.com/stratadb/strata/engine/placement"
	"github.com/stratadb/strata/engine/shard"
	"github.com/stratadb/strata/nodes/storcon/persist"
)

// Store writes whose outcome is unknown.
//
// A tenant write to the store (a policy, a config, a delete) that fails
// without a definite answer — the connection to a shared database broke
// after the request went out, the embedded store failed mid-write — may
// have taken effect. Memory changes only after a write succeeds, so such a
// write can leave the store ahead of memory: a policy stored but not
// applied, or a tenant's rows deleted while memory still manages it, every
// later write then answering "not found" and the tenant never converging.
//
// So memory is brought back to the store: after such a write, and once
// Config.LostWriteSettle has passed — the write may still be on its way to
// the database and land after a read made at once — the tenant's rows are
// read back (retried, with the call's own bound, not the caller's context:
// the broken connection often ended the caller's request too) and adopted
// (resolveTenant). Rows gone means the delete happened:
// the tenant is forgotten. If the store cannot be read either, the tenant
// is marked unsure: its next operation resolves it first (and answers
// ErrUnresolved while it cannot), and the background reconcile loop keeps
// trying. A write answered "not found" for a tenant memory holds is the
// same divergence seen later, and is resolved the same way.
//
// A node's scheduling policy is the other way round: a policy write that
// failed did not change memory, and the node lock (nodeMu) keeps memory's
// policy from changing meanwhile, so memory's policy is written back
// (afterNodeWrite); a node whose write-back fails too is unsure, and the
// background loop writes it back later.

// ErrUnresolved: a store write for the tenant failed with an unknown
// outcome and its rows could not be read back yet; the call may be
// retried (503).
var ErrUnresolved = errors.New("storcon: the tenant's stored state is unknown after a failed store write; retry")

// Bounds of resolving a tenant after a write with an unknown outcome.
const (
	// ResolveTimeout bounds one resolution (every read attempt of it).
	ResolveTimeout = 10 * time.Second
	// resolveRetry is the pause between read attempts.
	resolveRetry = 250 * time.Millisecond
	// maxResolveBatch bounds how many unsure tenants one background round
	// resolves.
	maxResolveBatch = 64
)

// unknownOutcome reports whether a store write that answered err may
// nevertheless have taken effect: every error but the store's definite
// refusals.
func unknownOutcome(err error) bool {
	if err == nil {
		return false
	}
	for _, definite := range []error{
		persist.ErrNotFound, persist.ErrExists, persist.ErrConflict, persist.ErrInvalid,
		persist.ErrGenerationExhausted, persist.ErrConfig, ErrSteppedDown,
	} {
		if errors.Is(err, definite) {
			return false
		}
	}
	return true
}

// afterTenantWrite is called, with tenant t's operation lock held, after a
// write of t's rows answered err. When err leaves memory possibly apart
// from the store (an unknown outcome, or "not found" for a tenant memory
// holds) t is resolved within its own bound — under the service's
// context, not the caller's: the broken connection that lost the answer
// often ended the caller's request too; if that fails t is marked
// unsure. It returns whether t is gone (the store has no rows for it, and
// memory forgot it).
func (s *Service) afterTenantWrite(t shard.TenantID, err error) (gone bool) {
	if !unknownOutcome(err) && !errors.Is(err, persist.ErrNotFound) || s.cfg.Bugs.IgnoreLostWrites {
		return false
	}
	rctx, cancel := clock.WithTimeout(s.clk, s.tasks.Context(), s.cfg.LostWriteSettle+ResolveTimeout)
	defer cancel()
	gone, rerr := s.settleThen(rctx, err, func() (bool, error) { return s.resolveTenant(rctx, t) })
	if rerr != nil {
		s.lock()
		if te := s.state.tenants[t]; te != nil && len(te.shards) > 0 {
			te.unsure = true
		}
		s.mu.Unlock()
		s.metrics.storeUnknown.WithLabelValues("deferred").Inc()
		s.log.Error("tenant write outcome unknown and its rows unreadable; resolving later",
			"tenant_id", t, "err", err, "read_err", rerr)
		return false
	}
	result := "adopted"
	if gone {
		result = "forgotten"
	}
	s.metrics.storeUnknown.WithLabelValues(result).Inc()
	s.log.Warn("tenant write failed; memory brought back to the store", "tenant_id", t, "err", err, "gone", gone)
	return gone
}

// settleThen runs fn once Config.LostWriteSettle has passed, when err
// leaves a write's outcome unknown (a write answered "not found" has
// nothing in flight, and fn runs at once).
func (s *Service) settleThen(ctx context.Context, err error, fn func() (bool, error)) (bool, error) {
	if unknownOutcome(err) {
		if serr := clock.Sleep(ctx, s.clk, s.cfg.LostWriteSettle); serr != nil {
			return false, serr
		}
	}
	return fn()
}

// resolveIfUnsure resolves tenant t if it is marked unsure; called with
// its operation lock held, before the operation acts.
func (s *Service) resolveIfUnsure(ctx context.Context, t shard.TenantID) error {
	s.lock()
	te := s.state.tenants[t]
	unsure := te != nil && te.unsure
	s.mu.Unlock()
	if !unsure {
		return nil
	}
	rctx, cancel := clock.WithTimeout(s.clk, ctx, ResolveTimeout)
	defer cancel()
	if _, err := s.resolveTenant(rctx, t); err != nil {
		return fmt.Errorf("%w: tenant %s: %w", ErrUnresolved, t, err)
	}
	return nil
}

// resolveTenant reads tenant t's rows (readRows) and adopts them
// (adoptTenantRows). Called with t's operation lock held.
func (s *Service) resolveTenant(ctx context.Context, t shard.TenantID) (gone bool, err error) {
	rows, err := s.readRows(ctx, t)
	if err != nil {
		return false, err
	}
	return s.adoptTenantRows(t, rows)
}

// readRows reads tenant t's rows (none: nil), retrying every resolveRetry
// while the answer is not definite, until ctx ends.
func (s *Service) readRows(ctx context.Context, t shard.TenantID) ([]persist.TenantShard, error) {
	for {
		rows, err := s.store.TenantShards(ctx, t)
		if errors.Is(err, persist.ErrNotFound) {
			return nil, nil
		}
		if err == nil {
			return rows, nil
		}
		if !unknownOutcome(err) || ctx.Err() != nil {
			return nil, err
		}
		if serr := clock.Sleep(ctx, s.clk, resolveRetry); serr != nil {
			return nil, errors.Join(err, serr)
		}
	}
}

// adoptTenantRows makes memory's tenant t match its stored rows: no rows
// and t is forgotten; a tenant memory has no shards of (a create whose
// outcome stayed unknown) is taken under management from its rows;
// otherwise every shard in memory takes its row's policies and config, and
// its generation when the row's is higher (or equal, for the node: a
// policy without an attachment clears it). A shard whose policy changed is
// rescheduled and reconciled. Rows memory lacks beside shards it has, or
// memory's shards without a row (only while a split is resolved), are
// logged and left: start-up resolves those.
func (s *Service) adoptTenantRows(t shard.TenantID, rows []persist.TenantShard) (gone bool, err error) {
	if len(rows) == 0 {
		s.lock()
		te := s.state.tenants[t]
		had := te != nil && len(te.shards) > 0
		if te != nil {
			te.unsure = false
		}
		s.mu.Unlock()
		if had {
			s.forgetTenant(t)
			s.log.Warn("tenant has no rows in the store; forgotten", "tenant_id", t)
		}
		return true, nil
	}
	byID := make(map[shard.TenantShardID]persist.TenantShard, len(rows))
	for _, r := range rows {
		byID[r.ID] = r
	}
	s.lock()
	defer s.mu.Unlock()
	te := s.tenantLocked(t)
	if len(te.shards) == 0 {
		te.unsure = false
		return false, s.adoptCreatedLocked(t, rows)
	}
	var errs []error
	for _, e := range slices.Clone(te.shards) {
		r, ok := byID[e.st.ID]
		if !ok {
			s.log.Warn("shard in memory has no row in the store", "tenant_shard_id", e.st.ID)
			continue
		}
		delete(byID, e.st.ID)
		if err := s.adoptRowLocked(e, r); err != nil {
			errs = append(errs, err)
		}
	}
	if len(byID) > 0 {
		s.log.Warn("tenant has rows in the store that memory lacks", "tenant_id", t, "rows", len(byID))
	}
	te.unsure = false
	s.refreshGauges()
	return false, errors.Join(errs...)
}

// adoptCreatedLocked takes tenant t, which memory does not hold, under
// management from its stored rows: a create whose insert was stored
// although its outcome stayed unknown. Called with s.mu held.
func (s *Service) adoptCreatedLocked(t shard.TenantID, rows []persist.TenantShard) error {
	entries := make([]*shardEntry, 0, len(rows))
	for _, r := range rows {
		e, err := shardFromRow(r)
		if err != nil {
			return err
		}
		entries = append(entries, e)
	}
	for _, e := range entries {
		s.addShardLocked(e)
		if err := e.st.Schedule(s.state.sched); err != nil {
			s.log.Warn("adopted shard not fully placed", "tenant_shard_id", e.st.ID, "err", err)
		}
		s.scheduleReconcileLocked(e, true)
	}
	s.refreshGauges()
	s.log.Warn("tenant found stored after a create with an unknown outcome; adopted", "tenant_id", t, "shards", len(rows))
	return nil
}

// adoptRowLocked applies row r to shard e (see adoptTenantRows). Called
// with s.mu held.
func (s *Service) adoptRowLocked(e *shardEntry, r persist.TenantShard) error {
	st := e.st
	var p placement.Policy
	if err := json.Unmarshal([]byte(r.PlacementPolicy), &p); err != nil {
		return fmt.Errorf("storcon: shard %s placement policy: %w", r.ID, err)
	}
	var sp placement.ShardSchedulingPolicy
	if err := sp.UnmarshalText([]byte(r.SchedulingPolicy)); err != nil {
		return fmt.Errorf("storcon: shard %s: %w", r.ID, err)
	}
	changed := p != st.Policy || sp != st.SchedulingPolicy || r.Config != st.TenantConf
	st.Policy, st.SchedulingPolicy, st.TenantConf = p, sp, r.Config
	g, gn := st.Generation()
	if r.Generation != layer.GenerationNone {
		rg, rn := uint32(r.Generation), placement.NodeID(r.GenerationNode)
		if !g.Valid || rg > g.N || rg == g.N && rn != gn {
			if err := st.SetGeneration(placement.Gen(rg), rn); err != nil {
				return err
			}
			changed = true
		}
	}
	if !changed {
		return nil
	}
	if err := st.Schedule(s.state.sched); err != nil {
		s.log.Warn("adopted shard not fully placed", "tenant_shard_id", st.ID, "err", err)
	}
	st.BumpSequence()
	s.scheduleReconcileLocked(e, true)
	return nil
}

// resolveLoop runs resolveUnsure every ReconcileAllInterval.
func (s *Service) resolveLoop(ctx context.Context) {
	for {
		s.resolveUnsure(ctx)
		if err := clock.Sleep(ctx, s.clk, s.cfg.ReconcileAllInterval); err != nil {
			return
		}
	}
}

// resolveUnsure is one background round of resolveLoop: every
// tenant marked unsure (at most maxResolveBatch, in id order) is resolved
// under its operation lock, each within ResolveTimeout.
func (s *Service) resolveUnsure(ctx context.Context) {
	s.lock()
	var ts []shard.TenantID
	for t, te := range s.state.tenants { //strata:nondeterministic collected, then sorted below
		if te.unsure {
			ts = append(ts, t)
		}
	}
	s.mu.Unlock()
	slices.SortFunc(ts, func(a, b shard.TenantID) int { return bytes.Compare(a[:], b[:]) })
	if len(ts) > maxResolveBatch {
		ts = ts[:maxResolveBatch]
	}
	s.restoreUnsureNodes(ctx)
	for _, t := range ts {
		if ctx.Err() != nil {
			return
		}
		func() {
			rctx, cancel := clock.WithTimeout(s.clk, ctx, ResolveTimeout)
			defer cancel()
			// lockTenant resolves an unsure tenant before it answers.
			unlock, err := s.lockTenant(rctx, t)
			if err != nil {
				s.log.Info("unsure tenant not resolved yet", "tenant_id", t, "err", err)
				return
			}
			unlock()
			s.log.Info("unsure tenant resolved", "tenant_id", t)
		}()
	}
}

// afterNodeWrite is called, with s.nodeMu held, after a write of node id's
// scheduling policy answered err: when the outcome is unknown, the policy
// memory holds (the write did not change it) is written back once
// Config.LostWriteSettle has passed, retried within ResolveTimeout; if that
// fails too the node is marked unsure.
func (s *Service) afterNodeWrite(id placement.NodeID, err error) {
	if !unknownOutcome(err) || s.cfg.Bugs.IgnoreLostWrites {
		return
	}
	rctx, cancel := clock.WithTimeout(s.clk, s.tasks.Context(), s.cfg.LostWriteSettle+ResolveTimeout)
	defer cancel()
	if _, werr := s.settleThen(rctx, err, func() (bool, error) { return false, s.restoreNodePolicy(rctx, id) }); werr != nil {
		s.lock()
		if e := s.state.nodes[id]; e != nil {
			e.unsure = true
		}
		s.mu.Unlock()
		s.metrics.storeUnknown.WithLabelValues("deferred").Inc()
		s.log.Error("node policy write outcome unknown and the policy not written back; retrying later",
			"node_id", id, "err", err, "restore_err", werr)
		return
	}
	s.metrics.storeUnknown.WithLabelValues("restored").Inc()
	s.log.Warn("node policy write failed; the policy memory holds written back", "node_id", id, "err", err)
}

// restoreNodePolicy writes node id's policy as memory holds it, retrying
// until ctx ends. Called with s.nodeMu held.
func (s *Service) restoreNodePolicy(ctx context.Context, id placement.NodeID) error {
	for {
		s.lock()
		e := s.state.nodes[id]
		var policy string
		if e != nil {
			policy = e.row.SchedulingPolicy
		}
		s.mu.Unlock()
		if e == nil {
			return nil
		}
		err := s.store.SetNodeSchedulingPolicy(ctx, persist.NodeID(id), policy)
		switch {
		case err == nil:
			s.lock()
			e.unsure = false
			s.mu.Unlock()
			return nil
		case !unknownOutcome(err) || ctx.Err() != nil:
			return err
		}
		if serr := clock.Sleep(ctx, s.clk, resolveRetry); serr != nil {
			return errors.Join(err, serr)
		}
	}
}

// restoreUnsureNodes writes back the policy of every node marked unsure,
// under the node lock.
func (s *Service) restoreUnsureNodes(ctx context.Context) {
	s.lock()
	var ids []placement.NodeID
	for _, id := range s.state.sortedNodeIDs() {
		if s.state.nodes[id].unsure {
			ids = append(ids, id)
		}
	}
	s.mu.Unlock()
	if len(ids) == 0 {
		return
	}
	rctx, cancel := clock.WithTimeout(s.clk, ctx, ResolveTimeout)
	defer cancel()
	if err := s.nodeMu.Lock(rctx); err != nil {
		return
	}
	defer s.nodeMu.Unlock()
	for _, id := range ids {
		if err := s.restoreNodePolicy(rctx, id); err != nil {
			s.log.Info("unsure node policy not written back yet", "node_id", id, "err", err)
			return
		}
		s.log.Info("unsure node policy written back", "node_id", id)
	}
}
