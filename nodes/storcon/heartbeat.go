package storcon

import (
	"context"
	"fmt"

	"github.com/stratadb/strata/clock"
	"github.com/stratadb/strata/engine/placement"
	"github.com/stratadb/strata/engine/shard"
	"github.com/stratadb/strata/nodes/pageserver/pageapi"
)

// heartbeatLoop calls every node's GET /v1/utilization each
// HeartbeatInterval until ctx ends.
func (s *Service) heartbeatLoop(ctx context.Context) {
	for {
		if err := clock.Sleep(ctx, s.clk, s.cfg.HeartbeatInterval); err != nil {
			return
		}
		s.heartbeatRound(ctx)
	}
}

// heartbeatRound heartbeats every node concurrently and returns when all
// answered or timed out (each is bounded by HeartbeatTimeout).
func (s *Service) heartbeatRound(ctx context.Context) {
	s.lock()
	ids := s.state.sortedNodeIDs()
	s.mu.Unlock()
	g := clock.NewGroup(s.clk, ctx)
	for _, id := range ids {
		g.Go(fmt.Sprintf("heartbeat node %d", id), func(ctx context.Context) error {
			s.heartbeatNode(ctx, id)
			return nil
		})
	}
	_ = g.Wait()
}

// heartbeatNode sends one heartbeat to node id and applies the answer:
// utilization to the scheduler; WarmingUp → Active; Offline → Active
// after reading the node's locations; Active → Offline once OfflineAfter
// passed without success; WarmingUp → Offline once WarmingUpTimeout passed.
func (s *Service) heartbeatNode(ctx context.Context, id placement.NodeID) {
	s.lock()
	e := s.state.nodes[id]
	s.mu.Unlock()
	if e == nil {
		return
	}
	u, err := e.client.utilization(ctx)
	if ctx.Err() != nil {
		return // shutting down: not the node's fault
	}
	now := s.clk.Mono()
	s.lock()
	if s.state.nodes[id] != e {
		s.mu.Unlock()
		return
	}
	n, _ := s.state.schedNode(id)
	if err != nil {
		switch {
		case n.Availability == placement.Active && now-e.lastOK >= s.cfg.OfflineAfter:
			s.log.Warn("node offline: no heartbeat", "node_id", id, "for", now-e.lastOK, "err", err)
			s.markOfflineLocked(id)
		case n.Availability == placement.WarmingUp && now-e.warmingSince >= s.cfg.WarmingUpTimeout:
			s.log.Warn("node offline: still warming up", "node_id", id, "since", now-e.warmingSince, "err", err)
			s.markOfflineLocked(id)
		}
		s.mu.Unlock()
		return
	}
	util := placement.Utilization{Score: u.UtilizationScore, MaxShardCount: u.MaxShardCount}
	switch n.Availability {
	case placement.Offline:
		s.mu.Unlock()
		// The node may hold anything: read what, before trusting it.
		if err := s.activateNode(ctx, id); err != nil {
			s.log.Info("node answers heartbeats but its locations could not be read", "node_id", id, "err", err)
		}
		s.lock()
		_ = s.state.updateNode(id, func(n *placement.Node) { n.Utilization = util })
		s.mu.Unlock()
		return
	case placement.WarmingUp:
		e.lastOK = now
		_ = s.state.updateNode(id, func(n *placement.Node) { n.Availability = placement.Active; n.Utilization = util })
		s.log.Info("node active", "node_id", id)
		s.afterAvailabilityChangeLocked()
	default:
		e.lastOK = now
		_ = s.state.updateNode(id, func(n *placement.Node) { n.Utilization = util })
	}
	s.mu.Unlock()
}

// activateNode makes an Offline (or operator-set) node Active: its
// locations are read first and replace whatever the controller believed
// it held (while it was unreachable anything may have happened there);
// then every shard is scheduled and reconciled against the new
// availability.
func (s *Service) activateNode(ctx context.Context, id placement.NodeID) error {
	s.lock()
	e := s.state.nodes[id]
	if e == nil {
		s.mu.Unlock()
		return fmt.Errorf("%w: node %d", ErrNotFound, id)
	}
	if e.activating {
		s.mu.Unlock()
		return nil
	}
	e.activating = true
	s.mu.Unlock()
	locs, err := e.client.listLocations(ctx, s.cfg.StartupNodeTimeout)
	s.lock()
	defer s.mu.Unlock()
	e.activating = false
	if err != nil || s.state.nodes[id] != e {
		return err
	}
	s.applyListingLocked(id, locs)
	e.lastOK = s.clk.Mono()
	if err := s.state.updateNode(id, func(n *placement.Node) { n.Availability = placement.Active }); err != nil {
		return err
	}
	s.log.Info("node active", "node_id", id, "locations", len(locs))
	s.afterAvailabilityChangeLocked()
	return nil
}

// applyListingLocked replaces what every shard is believed to hold on node
// id with the node's own listing. Shards the controller does not manage
// are left alone (not ours to remove). Called with s.mu held.
func (s *Service) applyListingLocked(id placement.NodeID, locs map[shard.TenantShardID]*pageapi.LocationConfig) {
	for _, sid := range s.state.sortedShardIDs() {
		e := s.state.shards[sid]
		conf, listed := locs[sid]
		if !listed {
			e.st.ClearObserved(id)
			continue
		}
		if conf == nil {
			e.st.SetObservedUnknown(id)
			continue
		}
		c, err := fromPageAPI(conf)
		if err != nil {
			e.st.SetObservedUnknown(id)
			continue
		}
		e.st.SetObserved(id, c)
	}
}

// markOfflineLocked makes node id Offline: every location on it becomes
// unknown and shards attached there move (to a warm secondary if there is
// one); shards that found no other node are retried by reconcile_all.
// Called with s.mu held.
func (s *Service) markOfflineLocked(id placement.NodeID) {
	if err := s.state.updateNode(id, func(n *placement.Node) { n.Availability = placement.Offline }); err != nil {
		return
	}
	for _, sid := range s.state.sortedShardIDs() {
		e := s.state.shards[sid]
		_, held := e.st.Observed(id)
		if !held && !e.st.InIntent(id) {
			continue
		}
		if err := e.st.NodeOffline(s.state.sched, id); err != nil {
			s.log.Warn("shard not moved off an offline node", "tenant_shard_id", sid, "node_id", id, "err", err)
		}
		s.scheduleReconcileLocked(e, true)
	}
	s.refreshGauges()
}

// afterAvailabilityChangeLocked places what found no room before and
// reconciles every shard that now can be (a node became available).
// Called with s.mu held.
func (s *Service) afterAvailabilityChangeLocked() {
	s.scheduleAllLocked()
	s.refreshGauges()
}
