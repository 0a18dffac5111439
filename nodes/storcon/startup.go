package storcon

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/stratadb/strata/clock"
	"github.com/stratadb/strata/engine/placement"
	"github.com/stratadb/strata/engine/shard"
	"github.com/stratadb/strata/nodes/pageserver/pageapi"
	"github.com/stratadb/strata/nodes/storcon/persist"
)

// The pause between attempts to read the store at start-up doubles from
// StartupStoreRetry up to StartupStoreMaxRetry. The controller cannot serve
// before it has read the store, so it keeps trying (logging each failure)
// until it succeeds or the service shuts down.
const (
	StartupStoreRetry    = time.Second
	StartupStoreMaxRetry = 30 * time.Second
)

// startup rebuilds the controller's memory and then opens it for business:
//
//  0. with Config.Predecessor, ask the controller this one takes over from
//     to step down (leadership.go), so that nothing moves the store or
//     the pageservers while they are read;
//  1. load the node registry and the shard rows (policies, generations),
//     retried with back-off until it succeeds (StartupBudget counts from
//     then), rolling back first every shard split still marked in the
//     store (split.go); every node starts Offline;
//  2. read every node's locations concurrently — each node
//     StartupNodeTimeout per attempt, StartupNodeRetries attempts, all
//     within half of StartupBudget; stragglers are ignored (they are read
//     again when their heartbeats return);
//  3. nodes that answered are Active, and their answers are the shards'
//     observed state; a heartbeat round fills their utilization; children
//     of rolled-back splits are detached where listed;
//  4. intent from observed (attached where the highest generation is),
//     then Schedule fills what is missing;
//  5. compute is told where every fully attached tenant is;
//  6. Ready: /ready answers 200, tenant calls proceed, heartbeats and
//     reconcile_all start; locations left unknown are cleaned up by
//     ordinary reconciles.
func (s *Service) startup(ctx context.Context) {
	begin := s.clk.Mono()
	s.stepDownPredecessor(ctx)
	nodes, rows, rolled, err := s.loadStoreResolvingSplits(ctx)
	if err != nil {
		s.failStartup(ctx, "store unreadable")
		return
	}
	ctx, cancel := clock.WithTimeout(s.clk, ctx, s.cfg.StartupBudget)
	defer cancel()
	s.lock()
	for _, r := range nodes {
		if r.Lifecycle == persist.LifecycleDeleted {
			continue
		}
		id := placement.NodeID(r.ID)
		e := &nodeEntry{row: r}
		e.client = psClient{s: s, id: id, hc: s.dial(e.addr())}
		s.state.nodes[id] = e
		if err := s.state.sched.UpsertNode(placement.Node{ID: id, Availability: placement.Offline,
			Policy: parseNodePolicy(r.SchedulingPolicy), AZ: placement.AZ(r.AvailabilityZoneID)}); err != nil {
			s.log.Error("start-up: node row unusable", "node_id", id, "err", err)
		}
	}
	for _, r := range rows {
		e, err := shardFromRow(r)
		if err != nil {
			s.log.Error("start-up: shard row unusable", "tenant_shard_id", r.ID, "err", err)
			continue
		}
		s.addShardLocked(e)
	}
	ids := s.state.sortedNodeIDs()
	clients := make([]psClient, len(ids))
	for i, id := range ids {
		clients[i] = s.state.nodes[id].client
	}
	s.mu.Unlock()
	s.endInterruptedNodeOps(ctx)

	// 2. Read every node's locations.
	lists := s.readLocations(ctx, clients)
	answered := slices.Sorted(maps.Keys(lists))

	// 3. Observed state and availability.
	s.lock()
	now := s.clk.Mono()
	for _, id := range answered {
		s.applyListingLocked(id, lists[id])
		s.state.nodes[id].lastOK = now
		_ = s.state.updateNode(id, func(n *placement.Node) { n.Availability = placement.Active })
	}
	s.mu.Unlock()
	s.startupHeartbeats(ctx, answered)
	reattach := s.undoSplitsOnNodes(ctx, rolled, lists)

	// 4. Intent.
	s.lock()
	unplaced := 0
	for _, sid := range s.state.sortedShardIDs() {
		e := s.state.shards[sid]
		if err := e.st.IntentFromObserved(s.state.sched); err != nil {
			s.log.Error("start-up: intent from observed", "tenant_shard_id", sid, "err", err)
		}
		if n, ok := reattach[sid]; ok && e.st.Attached() == n {
			// A parent of a rolled-back split, shut down there by its
			// split: attach it again (with a new generation).
			e.st.ClearObserved(n)
		}
		if err := e.st.Schedule(s.state.sched); err != nil {
			unplaced++
		}
	}
	tenants := slices.SortedFunc(maps.Keys(s.state.tenants), func(a, b shard.TenantID) int { return bytes.Compare(a[:], b[:]) })
	s.mu.Unlock()

	// 5. Compute.
	s.startupNotify(ctx, tenants)

	// 6. Ready.
	s.lock()
	s.state.ready = true
	s.state.startupMsg = fmt.Sprintf("ready after %v: %d of %d nodes answered, %d shards, %d not fully placed",
		s.clk.Mono()-begin, len(answered), len(ids), len(s.state.shards), unplaced)
	s.log.Info("start-up reconcile done", "took", s.clk.Mono()-begin, "nodes", len(ids), "answered", len(answered),
		"shards", len(s.state.shards), "unplaced", unplaced)
	s.changed.Broadcast()
	s.scheduleAllLocked()
	s.mu.Unlock()
	s.spawn("heartbeats", s.heartbeatLoop)
	s.spawn("reconcile_all", s.reconcileLoop)
	s.spawn("resolve unsure tenants", s.resolveLoop)
}

// endInterruptedNodeOps resets nodes whose stored policy is Draining or
// Filling to Active: the drain or fill that set it ran in a process that is
// gone, and nothing would ever end it (a new one needs policy Active, and
// stopping one needs one running). A node whose policy cannot be stored
// keeps it; the operator can set it (PUT …/config) or stop it (DELETE
// …/drain|fill).
func (s *Service) endInterruptedNodeOps(ctx context.Context) {
	if err := s.nodeMu.Lock(ctx); err != nil {
		return
	}
	defer s.nodeMu.Unlock()
	s.lock()
	var stuck []placement.NodeID
	for _, id := range s.state.sortedNodeIDs() {
		if n, _ := s.state.schedNode(id); n.Policy == placement.NodeDraining || n.Policy == placement.NodeFilling {
			stuck = append(stuck, id)
		}
	}
	s.mu.Unlock()
	for _, id := range stuck {
		if err := s.store.SetNodeSchedulingPolicy(ctx, persist.NodeID(id), placement.NodeActive.String()); err != nil {
			s.log.Error("start-up: interrupted drain or fill not ended", "node_id", id, "err", err)
			continue
		}
		s.lock()
		if e := s.state.nodes[id]; e != nil {
			n, _ := s.state.schedNode(id)
			s.log.Warn("start-up: node's drain or fill was interrupted by the restart; policy Active", "node_id", id, "was", n.Policy)
			e.row.SchedulingPolicy = placement.NodeActive.String()
			_ = s.state.updateNode(id, func(n *placement.Node) { n.Policy = placement.NodeActive })
		}
		s.mu.Unlock()
	}
}

// failStartup records that start-up could not load the store; the
// controller stays not ready.
func (s *Service) failStartup(ctx context.Context, why string) {
	s.lock()
	s.state.startupMsg = "start-up failed: " + why
	s.mu.Unlock()
	s.log.Error("start-up failed", "why", why, "err", ctx.Err())
}

// loadStore reads the node registry and every shard row, retrying with
// back-off (StartupStoreRetry doubling to StartupStoreMaxRetry) until it
// succeeds; an error only once ctx ended (shutdown).
func (s *Service) loadStore(ctx context.Context) ([]persist.Node, []persist.TenantShard, error) {
	pause := StartupStoreRetry
	for attempt := 1; ; attempt++ {
		nodes, err := s.store.ListNodes(ctx)
		if err == nil {
			var rows []persist.TenantShard
			if rows, err = s.store.ListTenantShards(ctx); err == nil {
				return nodes, rows, nil
			}
		}
		s.log.Error("start-up: reading the store; retrying", "attempt", attempt, "retry_in", pause, "err", err)
		s.lock()
		s.state.startupMsg = fmt.Sprintf("reading the store (attempt %d): %v", attempt, err)
		s.mu.Unlock()
		if serr := clock.Sleep(ctx, s.clk, pause); serr != nil {
			return nil, nil, errors.Join(err, serr)
		}
		pause = min(2*pause, StartupStoreMaxRetry)
	}
}

// readLocations reads every node's locations concurrently within half of
// the start-up budget; it returns the answers of the nodes that gave one.
func (s *Service) readLocations(ctx context.Context, clients []psClient) map[placement.NodeID]map[shard.TenantShardID]*pageapi.LocationConfig {
	ctx, cancel := clock.WithTimeout(s.clk, ctx, s.cfg.StartupBudget/2)
	defer cancel()
	results := make([]map[shard.TenantShardID]*pageapi.LocationConfig, len(clients))
	g := clock.NewGroup(s.clk, ctx)
	for i, c := range clients {
		g.Go(fmt.Sprintf("start-up locations node %d", c.id), func(ctx context.Context) error {
			for attempt := range s.cfg.StartupNodeRetries {
				if attempt > 0 && clock.Sleep(ctx, s.clk, s.cfg.StartupNodeTimeout/5) != nil {
					return nil
				}
				locs, err := c.listLocations(ctx, s.cfg.StartupNodeTimeout)
				if err == nil {
					results[i] = locs
					return nil
				}
				s.log.Info("start-up: node locations unreadable", "node_id", c.id, "attempt", attempt+1, "err", err)
			}
			return nil
		})
	}
	_ = g.Wait()
	out := map[placement.NodeID]map[shard.TenantShardID]*pageapi.LocationConfig{}
	for i, c := range clients {
		if results[i] != nil {
			out[c.id] = results[i]
		}
	}
	return out
}

// startupHeartbeats reads the utilization of the nodes that answered (the
// first heartbeat round), concurrently.
func (s *Service) startupHeartbeats(ctx context.Context, ids []placement.NodeID) {
	g := clock.NewGroup(s.clk, ctx)
	for _, id := range ids {
		s.lock()
		c := s.state.nodes[id].client
		s.mu.Unlock()
		g.Go(fmt.Sprintf("start-up heartbeat node %d", id), func(ctx context.Context) error {
			u, err := c.utilization(ctx)
			if err != nil {
				return nil
			}
			s.lock()
			_ = s.state.updateNode(id, func(n *placement.Node) {
				n.Utilization = placement.Utilization{Score: u.UtilizationScore, MaxShardCount: u.MaxShardCount}
			})
			s.mu.Unlock()
			return nil
		})
	}
	_ = g.Wait()
}

// startupNotify tells compute where each tenant is attached,
// MaxConcurrentNotifications at a time, within what is left of the
// start-up budget. A new process cannot know what compute last heard, so
// every tenant is first marked pending (the flag is not persisted): one
// this round does not reach (the budget ran out), whose notification fails
// or that is not fully attached yet keeps the flag, and a reconcile sends
// it once its map is complete — even when that needs no pageserver call
// (a node that did not answer start-up comes back holding what intent
// wants); only a success clears it.
func (s *Service) startupNotify(ctx context.Context, tenants []shard.TenantID) {
	if s.hook == nil {
		return
	}
	var due []shard.TenantID
	s.lock()
	for _, t := range tenants {
		te := s.state.tenants[t]
		s.setPendingLocked(te, true)
		if _, ok := s.notifyRequestLocked(te); ok {
			due = append(due, t)
		}
	}
	s.mu.Unlock()
	sem := clock.NewSemaphore(s.clk, int64(s.cfg.MaxConcurrentNotifications))
	g := clock.NewGroup(s.clk, ctx)
	for _, t := range due {
		if sem.Acquire(ctx, 1) != nil {
			break
		}
		g.Go("start-up notify "+t.String(), func(ctx context.Context) error {
			defer sem.Release(1)
			_ = s.notifyTenant(ctx, t) // a failure leaves the pending flag
			return nil
		})
	}
	_ = g.Wait()
}
