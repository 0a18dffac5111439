package storcon

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/stratadb/strata/clock"
	"github.com/stratadb/strata/engine/placement"
	"github.com/stratadb/strata/nodes/storcon/persist"
	"github.com/stratadb/strata/nodes/storcon/storconapi"
)

// nodeEntry is what the service keeps of a registered pageserver beside
// the scheduler's view (availability, policy, AZ, utilization, counts).
type nodeEntry struct {
	// row is the registry row as stored (its SchedulingPolicy is kept equal
	// to the scheduler's policy).
	row persist.Node
	// client calls the node's management API.
	client psClient
	// lastOK is the Mono time of the last successful heartbeat, or of the
	// node's last change to Active or WarmingUp (the baseline OfflineAfter
	// counts from).
	lastOK time.Duration
	// warmingSince is the Mono time of the node's last re-attach.
	warmingSince time.Duration
	// activating: a heartbeat task is reading the node's locations before
	// making it Active (one at a time).
	activating bool
	// unsure: a policy write failed with an unknown outcome and the
	// policy memory holds could not be written back yet (unsure.go).
	unsure bool
}

func (n *nodeEntry) addr() string {
	return storconapi.JoinHostPort(n.row.ListenHTTPAddr, n.row.ListenHTTPPort)
}

// sortedNodeIDs lists the registered nodes by id. Called with s.mu held.
func (st *state) sortedNodeIDs() []placement.NodeID {
	return slices.Sorted(maps.Keys(st.nodes))
}

// schedNode returns the scheduler's view of node id. Called with s.mu held.
func (st *state) schedNode(id placement.NodeID) (placement.Node, bool) {
	ns, ok := st.sched.Node(id)
	return ns.Node, ok
}

// updateNode applies fn to the scheduler's view of node id. Called with
// s.mu held.
func (st *state) updateNode(id placement.NodeID, fn func(n *placement.Node)) error {
	n, ok := st.schedNode(id)
	if !ok {
		return fmt.Errorf("%w: node %d", ErrNotFound, id)
	}
	fn(&n)
	return st.sched.UpsertNode(n)
}

func parseNodePolicy(s string) placement.NodePolicy {
	var p placement.NodePolicy
	if err := p.UnmarshalText([]byte(s)); err != nil {
		return placement.NodeActive
	}
	return p
}

// registerNode registers a pageserver (POST /control/v1/node and
// re-attach's register field): the row is persisted first, then the node
// is known in memory. A new node is Offline until its first heartbeat,
// which is sent at once. Registering again with the same fields changes
// nothing; with other addresses it updates them and keeps the policy.
func (s *Service) registerNode(ctx context.Context, req storconapi.NodeRegisterRequest) error {
	if err := req.Validate(); err != nil {
		return err
	}
	id := placement.NodeID(req.NodeID)
	row := persist.Node{
		ID:                 persist.NodeID(req.NodeID),
		SchedulingPolicy:   placement.NodeActive.String(),
		ListenHTTPAddr:     req.ListenHTTPAddr,
		ListenHTTPPort:     req.ListenHTTPPort,
		ListenPGAddr:       req.ListenPGAddr,
		ListenPGPort:       req.ListenPGPort,
		ListenGRPCAddr:     req.ListenGRPCAddr,
		ListenGRPCPort:     req.ListenGRPCPort,
		AvailabilityZoneID: req.AvailabilityZoneID,
		Lifecycle:          persist.LifecycleActive,
	}
	if err := s.nodeMu.Lock(ctx); err != nil {
		return err
	}
	defer s.nodeMu.Unlock()
	s.lock()
	if old := s.state.nodes[id]; old != nil {
		row.SchedulingPolicy = old.row.SchedulingPolicy
		if old.row == row {
			s.mu.Unlock()
			return nil
		}
	}
	s.mu.Unlock()
	if err := persist.ValidateNode(row); err != nil {
		return fmt.Errorf("%w: %w", storconapi.ErrBadRequest, err)
	}
	if err := s.store.UpsertNode(ctx, row); err != nil {
		return err
	}
	s.lock()
	defer s.mu.Unlock()
	e := s.state.nodes[id]
	if e == nil {
		e = &nodeEntry{}
		s.state.nodes[id] = e
		if err := s.state.sched.UpsertNode(placement.Node{ID: id, Availability: placement.Offline,
			Policy: parseNodePolicy(row.SchedulingPolicy), AZ: placement.AZ(row.AvailabilityZoneID)}); err != nil {
			return err
		}
	} else if err := s.state.updateNode(id, func(n *placement.Node) { n.AZ = placement.AZ(row.AvailabilityZoneID) }); err != nil {
		return err
	}
	e.row = row
	e.client = psClient{s: s, id: id, hc: s.dial(e.addr())}
	s.log.Info("node registered", "node_id", id, "addr", e.addr(), "az", row.AvailabilityZoneID)
	s.refreshGauges()
	s.spawn(fmt.Sprintf("heartbeat node %d", id), func(ctx context.Context) { s.heartbeatNode(ctx, id) })
	return nil
}

// listNodes describes every node, by id.
func (s *Service) listNodes() []storconapi.NodeDescribe {
	s.lock()
	defer s.mu.Unlock()
	out := make([]storconapi.NodeDescribe, 0, len(s.state.nodes))
	for _, id := range s.state.sortedNodeIDs() {
		e := s.state.nodes[id]
		ns, _ := s.state.sched.Node(id)
		out = append(out, storconapi.NodeDescribe{
			ID: uint64(id), Availability: ns.Availability, Scheduling: ns.Policy,
			AvailabilityZoneID: e.row.AvailabilityZoneID,
			ListenHTTPAddr:     e.row.ListenHTTPAddr, ListenHTTPPort: e.row.ListenHTTPPort,
			ListenPGAddr: e.row.ListenPGAddr, ListenPGPort: e.row.ListenPGPort,
			ListenGRPCAddr: e.row.ListenGRPCAddr, ListenGRPCPort: e.row.ListenGRPCPort,
			UtilizationScore: ns.Utilization.Score, Shards: ns.Shards, AttachedShards: ns.Attached,
		})
	}
	return out
}

// setNodePolicy persists a node's scheduling policy, then applies it.
// Called with s.nodeMu held.
func (s *Service) setNodePolicy(ctx context.Context, id placement.NodeID, p placement.NodePolicy) error {
	s.lock()
	e := s.state.nodes[id]
	s.mu.Unlock()
	if e == nil {
		return fmt.Errorf("%w: node %d", ErrNotFound, id)
	}
	if err := s.store.SetNodeSchedulingPolicy(ctx, persist.NodeID(id), p.String()); err != nil {
		s.afterNodeWrite(id, err)
		return err
	}
	s.lock()
	defer s.mu.Unlock()
	e = s.state.nodes[id]
	if e == nil {
		return fmt.Errorf("%w: node %d", ErrNotFound, id)
	}
	e.unsure = false
	e.row.SchedulingPolicy = p.String()
	if err := s.state.updateNode(id, func(n *placement.Node) { n.Policy = p }); err != nil {
		return err
	}
	s.log.Info("node scheduling policy", "node_id", id, "policy", p)
	// A node that may take shards again can place what found no room.
	s.scheduleAllLocked()
	return nil
}

// nodeConfig is PUT /control/v1/node/{id}/config: an operator sets a
// node's scheduling policy and/or availability. Setting Offline runs the
// offline handling at once; setting Active reads the node's locations
// first (as a heartbeat would).
func (s *Service) nodeConfig(ctx context.Context, id placement.NodeID, req storconapi.NodeConfigRequest) error {
	if req.Scheduling != nil {
		if !req.Scheduling.Valid() {
			return fmt.Errorf("%w: scheduling policy %d", storconapi.ErrBadRequest, *req.Scheduling)
		}
		if err := s.nodeMu.Lock(ctx); err != nil {
			return err
		}
		err := s.setNodePolicy(ctx, id, *req.Scheduling)
		s.nodeMu.Unlock()
		if err != nil {
			return err
		}
	}
	if req.Availability == nil {
		return nil
	}
	switch *req.Availability {
	case placement.Offline:
		s.lock()
		defer s.mu.Unlock()
		if s.state.nodes[id] == nil {
			return fmt.Errorf("%w: node %d", ErrNotFound, id)
		}
		s.markOfflineLocked(id)
		return nil
	case placement.Active:
		return s.activateNode(ctx, id)
	}
	return fmt.Errorf("%w: availability %s cannot be set by an operator", storconapi.ErrBadRequest, *req.Availability)
}

// deleteNode is DELETE /control/v1/node/{id}: graceful removal. The node
// takes no new shards (policy Deleting), its attached shards move away by
// live migration and its secondaries are placed elsewhere, reconciles
// detach what it held, and only then is it marked deleted in the store and
// forgotten. Bounded by NodeDeleteTimeout; on failure the node stays
// Deleting and a retry continues.
func (s *Service) deleteNode(ctx context.Context, id placement.NodeID) error {
	ctx, cancel := clock.WithTimeout(s.clk, ctx, s.cfg.NodeDeleteTimeout)
	defer cancel()
	if err := s.nodeMu.Lock(ctx); err != nil {
		return err
	}
	err := s.setNodePolicy(ctx, id, placement.NodeDeleting)
	s.nodeMu.Unlock()
	if err != nil {
		return err
	}
	if err := s.moveShardsOff(ctx, id); err != nil {
		return err
	}
	if err := s.nodeMu.Lock(ctx); err != nil {
		return err
	}
	defer s.nodeMu.Unlock()
	s.lock()
	if n, _ := s.state.sched.Node(id); n.Shards > 0 {
		s.mu.Unlock()
		return fmt.Errorf("%w: node %d still holds %d shards", ErrConflict, id, n.Shards)
	}
	s.mu.Unlock()
	if err := s.store.MarkNodeDeleted(ctx, persist.NodeID(id)); err != nil {
		return err
	}
	s.lock()
	defer s.mu.Unlock()
	return s.forgetNodeLocked(id)
}

// moveShardsOff empties node id's intent: every shard attached there is
// migrated (live) to the best other node, every secondary there is placed
// elsewhere, and the reconciles that detach it are awaited.
func (s *Service) moveShardsOff(ctx context.Context, id placement.NodeID) error {
	s.lock()
	var attached []shardKey
	for _, sid := range s.state.sortedShardIDs() {
		e := s.state.shards[sid]
		if e.st.Attached() == id {
			attached = append(attached, shardKey{sid, e.st.Sequence()})
		}
	}
	s.mu.Unlock()
	if err := s.migrateAway(ctx, attached, id, false); err != nil {
		return err
	}
	s.lock()
	var wait []shardKey
	for _, sid := range s.state.sortedShardIDs() {
		e := s.state.shards[sid]
		if !e.st.InIntent(id) {
			if _, held := e.st.Observed(id); !held {
				continue
			}
		} else {
			if e.st.Attached() == id {
				s.mu.Unlock()
				return fmt.Errorf("%w: shard %s is still attached to node %d", ErrConflict, sid, id)
			}
			if err := e.st.RemoveSecondary(s.state.sched, id); err != nil {
				s.mu.Unlock()
				return err
			}
			if err := e.st.Schedule(s.state.sched); err != nil {
				s.log.Warn("secondary of a deleted node not replaced", "tenant_shard_id", sid, "err", err)
			}
		}
		wait = append(wait, s.requestReconcileLocked(e, true))
	}
	s.mu.Unlock()
	return s.waitAll(ctx, wait)
}

// forgetNodeLocked removes node id from memory: every shard forgets what it
// held there (intent must not name it). Called with s.mu held.
func (s *Service) forgetNodeLocked(id placement.NodeID) error {
	for _, sid := range s.state.sortedShardIDs() {
		s.state.shards[sid].st.ClearObserved(id)
	}
	if err := s.state.sched.RemoveNode(id); err != nil {
		return err
	}
	delete(s.state.nodes, id)
	s.forgetNodeGauges(id)
	s.refreshGauges()
	s.log.Info("node forgotten", "node_id", id)
	return nil
}

// dropNode is the operator's POST /debug/v1/node/{id}/drop: forget the
// node without touching any pageserver. Shards that named it are placed
// elsewhere (a shard attached there gets a new generation on its new node
// as usual).
func (s *Service) dropNode(ctx context.Context, id placement.NodeID) error {
	if err := s.nodeMu.Lock(ctx); err != nil {
		return err
	}
	defer s.nodeMu.Unlock()
	s.lock()
	if s.state.nodes[id] == nil {
		s.mu.Unlock()
		return fmt.Errorf("%w: node %d", ErrNotFound, id)
	}
	s.mu.Unlock()
	if err := s.store.DeleteNode(ctx, persist.NodeID(id)); err != nil && !errors.Is(err, persist.ErrNotFound) {
		return err
	}
	s.lock()
	defer s.mu.Unlock()
	if s.state.nodes[id] == nil {
		return nil
	}
	var touched []*shardEntry
	for _, sid := range s.state.sortedShardIDs() {
		e := s.state.shards[sid]
		if !e.st.InIntent(id) {
			continue
		}
		if e.st.Attached() == id {
			if err := e.st.SetAttached(s.state.sched, placement.NoNode); err != nil {
				return err
			}
		}
		if err := e.st.RemoveSecondary(s.state.sched, id); err != nil {
			return err
		}
		touched = append(touched, e)
	}
	if err := s.forgetNodeLocked(id); err != nil {
		return err
	}
	for _, e := range touched {
		if err := e.st.Schedule(s.state.sched); err != nil {
			s.log.Warn("shard of a dropped node not placed", "tenant_shard_id", e.st.ID, "err", err)
		}
		s.scheduleReconcileLocked(e, true)
	}
	return nil
}
