package storcon

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/stratadb/strata/clock"
	"github.com/stratadb/strata/engine/placement"
	"github.com/stratadb/strata/engine/shard"
)

// DrainPasses bounds how often a drain looks for shards still attached to
// its node (a shard that failed to move, or one attached there meanwhile
// by a failover).
const DrainPasses = 3

// nodeOp is a drain or fill in progress.
type nodeOp struct {
	kind   string // "drain" or "fill"
	cancel context.CancelFunc
}

// startNodeOp registers a drain or fill of node id and sets the node's
// policy; only one operation per node runs at a time. The node must be
// Active (availability) with policy Active.
func (s *Service) startNodeOp(ctx context.Context, id placement.NodeID, kind string, policy placement.NodePolicy,
	run func(ctx context.Context) bool, after placement.NodePolicy) error {
	if err := s.waitReady(ctx); err != nil {
		return err
	}
	if err := s.nodeMu.Lock(ctx); err != nil {
		return err
	}
	defer s.nodeMu.Unlock()
	s.lock()
	if s.state.nodes[id] == nil {
		s.mu.Unlock()
		return fmt.Errorf("%w: node %d", ErrNotFound, id)
	}
	if op := s.state.nodeOps[id]; op != nil {
		s.mu.Unlock()
		return fmt.Errorf("%w: node %d: a %s is in progress", ErrConflict, id, op.kind)
	}
	n, _ := s.state.schedNode(id)
	if n.Availability != placement.Active || n.Policy != placement.NodeActive {
		s.mu.Unlock()
		return fmt.Errorf("%w: node %d is %s with policy %s (want Active, Active)", ErrPrecondition, id, n.Availability, n.Policy)
	}
	// The operation is registered before its policy is stored and stays
	// registered until the policy it ends with is stored: the consistency
	// check refuses to run while it is (memory and store differ between a
	// store write and its application to memory).
	opCtx, cancel := clock.WithTimeout(s.clk, s.tasks.Context(), s.cfg.DrainFillTimeout)
	op := &nodeOp{kind: kind, cancel: cancel}
	s.state.nodeOps[id] = op
	s.mu.Unlock()
	if err := s.setNodePolicy(ctx, id, policy); err != nil {
		s.lock()
		delete(s.state.nodeOps, id)
		s.mu.Unlock()
		cancel()
		return err
	}
	s.log.Info(kind+" started", "node_id", id)
	s.spawn(fmt.Sprintf("%s node %d", kind, id), func(context.Context) {
		defer cancel()
		done := run(opCtx)
		// The operation ends with the node's policy: after (or Active if it
		// did not finish) — unless it was cancelled, whose canceller set it.
		if err := s.nodeMu.Lock(context.Background()); err != nil {
			return
		}
		defer s.nodeMu.Unlock()
		s.lock()
		mine := s.state.nodeOps[id] == op
		s.mu.Unlock()
		defer func() {
			if mine {
				s.lock()
				delete(s.state.nodeOps, id)
				s.mu.Unlock()
			}
		}()
		// Cancelled (stopped, re-attached, shutting down): whoever
		// cancelled it set the policy. Timed out (DrainFillTimeout): it
		// did not finish, the node goes back to Active.
		if !mine || errors.Is(opCtx.Err(), context.Canceled) {
			return
		}
		p := after
		if !done || opCtx.Err() != nil {
			p = placement.NodeActive
			if opCtx.Err() != nil {
				s.log.Warn(kind+" timed out", "node_id", id, "after", s.cfg.DrainFillTimeout)
			}
		}
		if err := s.setNodePolicy(s.tasks.Context(), id, p); err != nil {
			s.log.Error(kind+": node policy not set", "node_id", id, "policy", p, "err", err)
		}
		s.log.Info(kind+" finished", "node_id", id, "complete", done, "policy", p)
	})
	return nil
}

// stopNodeOp is DELETE …/drain|fill: the operation is cancelled and the
// node's policy goes back to Active. Migrations in flight end at their
// next step; the reconciler completes them. A node left Draining or
// Filling with no operation running (one that ended without resetting it)
// is set Active too.
func (s *Service) stopNodeOp(ctx context.Context, id placement.NodeID, kind string) error {
	if err := s.nodeMu.Lock(ctx); err != nil {
		return err
	}
	defer s.nodeMu.Unlock()
	s.lock()
	op := s.state.nodeOps[id]
	if op == nil || op.kind != kind {
		n, known := s.state.schedNode(id)
		s.mu.Unlock()
		if op == nil && known && n.Policy == nodeOpPolicy(kind) {
			s.log.Info(kind+" stopped: none running, policy reset", "node_id", id)
			return s.setNodePolicy(ctx, id, placement.NodeActive)
		}
		return fmt.Errorf("%w: no %s of node %d in progress", ErrPrecondition, kind, id)
	}
	delete(s.state.nodeOps, id)
	s.mu.Unlock()
	op.cancel()
	s.log.Info(kind+" cancelled", "node_id", id)
	return s.setNodePolicy(ctx, id, placement.NodeActive)
}

// nodeOpPolicy is the policy a drain or fill gives its node while it runs.
func nodeOpPolicy(kind string) placement.NodePolicy {
	if kind == "drain" {
		return placement.NodeDraining
	}
	return placement.NodeFilling
}

// cancelNodeOp cancels node id's operation without waiting and without
// touching its policy (the caller sets it). Called with s.nodeMu held.
func (s *Service) cancelNodeOp(id placement.NodeID) {
	s.lock()
	op := s.state.nodeOps[id]
	delete(s.state.nodeOps, id)
	s.mu.Unlock()
	if op != nil {
		op.cancel()
	}
}

// drain is PUT /control/v1/node/{id}/drain: policy Draining (no new
// shards), then every shard attached to the node moves off by live
// migration, DrainFillConcurrency at a time, for at most DrainPasses
// passes; then the node is PauseForRestart (Active again if shards
// remain).
func (s *Service) drain(ctx context.Context, id placement.NodeID) error {
	return s.startNodeOp(ctx, id, "drain", placement.NodeDraining, func(ctx context.Context) bool {
		for range DrainPasses {
			keys := s.attachedTo(id)
			if len(keys) == 0 {
				return true
			}
			if err := s.migrateAway(ctx, keys, id, true); err != nil {
				s.log.Warn("drain: some shards did not move", "node_id", id, "err", err)
			}
			if ctx.Err() != nil {
				return false
			}
		}
		return len(s.attachedTo(id)) == 0
	}, placement.NodePauseForRestart)
}

// attachedTo lists the shards intent attaches to node id.
func (s *Service) attachedTo(id placement.NodeID) []shardKey {
	s.lock()
	defer s.mu.Unlock()
	var out []shardKey
	for _, sid := range s.state.sortedShardIDs() {
		if e := s.state.shards[sid]; e.st.Attached() == id && !e.creating {
			out = append(out, shardKey{sid, e.st.Sequence()})
		}
	}
	return out
}

// fill is PUT /control/v1/node/{id}/fill: policy Filling, then attached
// shards move onto the node by live migration until it holds its share
// (the attached shards over the nodes that may take shards), shards with
// a secondary there first (they are warm), then from the nodes with the
// most attachments; then the node is Active.
func (s *Service) fill(ctx context.Context, id placement.NodeID) error {
	return s.startNodeOp(ctx, id, "fill", placement.NodeFilling, func(ctx context.Context) bool {
		keys := s.fillPlan(id)
		err := s.migrateEach(ctx, keys, func(ctx context.Context, sid shard.TenantShardID) error {
			unlock, err := s.lockTenant(ctx, sid.TenantID)
			if err != nil {
				return err
			}
			defer unlock()
			return s.migrateShard(ctx, sid, id, false)
		})
		if err != nil {
			s.log.Warn("fill: some shards did not move", "node_id", id, "err", err)
		}
		return ctx.Err() == nil
	}, placement.NodeActive)
}

// fillPlan chooses the shards a fill of node id moves there.
func (s *Service) fillPlan(id placement.NodeID) []shardKey {
	s.lock()
	defer s.mu.Unlock()
	total, schedulable := 0, 0
	attached := map[placement.NodeID]int{}
	for _, n := range s.state.sched.Nodes() {
		if n.MaySchedule() {
			schedulable++
			total += n.Attached
		}
		attached[n.ID] = n.Attached
	}
	if schedulable == 0 {
		return nil
	}
	need := total/schedulable - attached[id]
	if need <= 0 {
		return nil
	}
	type cand struct {
		key       shardKey
		warm      bool
		fromCount int
	}
	var cands []cand
	for _, sid := range s.state.sortedShardIDs() {
		e := s.state.shards[sid]
		a := e.st.Attached()
		if e.creating || a == placement.NoNode || a == id || e.st.Policy.Kind != placement.PolicyAttached {
			continue
		}
		cands = append(cands, cand{key: shardKey{sid, e.st.Sequence()}, warm: slices.Contains(e.st.Secondaries(), id), fromCount: attached[a]})
	}
	slices.SortStableFunc(cands, func(a, b cand) int {
		switch {
		case a.warm != b.warm:
			if a.warm {
				return -1
			}
			return 1
		case a.fromCount != b.fromCount:
			return b.fromCount - a.fromCount
		}
		return a.key.id.Compare(b.key.id)
	})
	// Take from a node only while it stays above the share.
	share := total / schedulable
	var out []shardKey
	for _, c := range cands {
		if len(out) >= need {
			break
		}
		from := s.state.shards[c.key.id].st.Attached()
		if attached[from] <= share {
			continue
		}
		attached[from]--
		out = append(out, c.key)
	}
	return out
}
