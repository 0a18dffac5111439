package storcon

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/stratadb/strata/engine/placement"
	"github.com/stratadb/strata/engine/shard"
	"github.com/stratadb/strata/nodes/storcon/persist"
	"github.com/stratadb/strata/nodes/storcon/storconapi"
)

var (
	// ErrInconsistent: the consistency check found differences (each is
	// named in the error).
	ErrInconsistent = errors.New("storcon: inconsistent")
	// ErrBusy: the consistency check was refused because reconciles or
	// operations that change the store are running.
	ErrBusy = errors.New("storcon: busy")
)

// beginWrite marks an API operation that changes the store (and then
// memory) as in flight; the returned func ends it. The consistency check
// refuses to run while any is in flight, and notices one that ran while it
// read the store.
func (s *Service) beginWrite() func() {
	s.lock()
	s.state.writes++
	s.mu.Unlock()
	return func() {
		s.lock()
		s.state.writes--
		s.state.epoch++
		s.mu.Unlock()
	}
}

// quietLocked reports whether nothing runs that changes the store or the
// shards' intent and generations. Called with s.mu held.
func (s *Service) quietLocked() error {
	st := &s.state
	switch {
	case !st.ready:
		return fmt.Errorf("%w: start-up not finished", ErrBusy)
	case st.running > 0:
		return fmt.Errorf("%w: %d reconciles running", ErrBusy, st.running)
	case len(st.delayed) > 0:
		return fmt.Errorf("%w: %d reconciles waiting", ErrBusy, len(st.delayed))
	case st.writes > 0:
		return fmt.Errorf("%w: %d operations changing the store", ErrBusy, st.writes)
	case len(st.nodeOps) > 0:
		return fmt.Errorf("%w: %d drains or fills running", ErrBusy, len(st.nodeOps))
	}
	return nil
}

// consistencyCheck is POST /debug/v1/consistency_check: refused (503)
// while reconciles or store-changing operations run; otherwise it recounts
// the scheduler's per-node counts from every intent and compares every
// node and shard in memory with the store, naming every difference.
func (s *Service) consistencyCheck(ctx context.Context) (storconapi.ConsistencyReport, error) {
	var report storconapi.ConsistencyReport
	s.lock()
	if err := s.quietLocked(); err != nil {
		s.mu.Unlock()
		return report, err
	}
	started, epoch := s.state.started, s.state.epoch
	var diffs []string
	all := make([]*placement.ShardState, 0, len(s.state.shards))
	memShards := map[shard.TenantShardID]persist.TenantShard{}
	for _, sid := range s.state.sortedShardIDs() {
		e := s.state.shards[sid]
		all = append(all, e.st)
		if !e.creating {
			memShards[sid] = shardRow(e)
		}
	}
	if err := s.state.sched.Check(all); err != nil {
		diffs = append(diffs, err.Error())
	}
	memNodes := map[persist.NodeID]persist.Node{}
	for _, id := range s.state.sortedNodeIDs() {
		e := s.state.nodes[id]
		n, _ := s.state.schedNode(id)
		if p := n.Policy.String(); p != e.row.SchedulingPolicy {
			diffs = append(diffs, fmt.Sprintf("node %d: scheduler policy %s, registry row %s", id, p, e.row.SchedulingPolicy))
		}
		if string(n.AZ) != e.row.AvailabilityZoneID {
			diffs = append(diffs, fmt.Sprintf("node %d: scheduler AZ %q, registry row %q", id, n.AZ, e.row.AvailabilityZoneID))
		}
		memNodes[persist.NodeID(id)] = e.row
	}
	s.mu.Unlock()

	storeNodes, err := s.store.ListNodes(ctx)
	if err != nil {
		return report, err
	}
	storeShards, err := s.store.ListTenantShards(ctx)
	if err != nil {
		return report, err
	}
	s.lock()
	err = s.quietLocked()
	if err == nil && (s.state.started != started || s.state.epoch != epoch) {
		err = fmt.Errorf("%w: state changed during the check", ErrBusy)
	}
	s.mu.Unlock()
	if err != nil {
		return report, err
	}

	// Nodes.
	seen := map[persist.NodeID]bool{}
	for _, r := range storeNodes {
		seen[r.ID] = true
		m, inMem := memNodes[r.ID]
		switch {
		case r.Lifecycle == persist.LifecycleDeleted && inMem:
			diffs = append(diffs, fmt.Sprintf("node %d: deleted in the store, known in memory", r.ID))
		case r.Lifecycle == persist.LifecycleDeleted:
		case !inMem:
			diffs = append(diffs, fmt.Sprintf("node %d: in the store, not in memory", r.ID))
		default:
			diffs = append(diffs, nodeDiffs(m, r)...)
		}
	}
	for _, id := range slices.Sorted(maps.Keys(memNodes)) {
		if !seen[id] {
			diffs = append(diffs, fmt.Sprintf("node %d: in memory, not in the store", id))
		}
	}
	// Shards.
	seenShards := map[shard.TenantShardID]bool{}
	for _, r := range storeShards {
		seenShards[r.ID] = true
		m, ok := memShards[r.ID]
		if !ok {
			diffs = append(diffs, fmt.Sprintf("shard %s: in the store, not in memory", r.ID))
			continue
		}
		diffs = append(diffs, shardDiffs(m, r)...)
	}
	for _, id := range slices.SortedFunc(maps.Keys(memShards), compareShardIDs) {
		if !seenShards[id] {
			diffs = append(diffs, fmt.Sprintf("shard %s: in memory, not in the store", id))
		}
	}
	report.Nodes, report.Shards = len(memNodes), len(memShards)
	if len(diffs) > 0 {
		return report, fmt.Errorf("%w: %d differences: %s", ErrInconsistent, len(diffs), strings.Join(diffs, "; "))
	}
	return report, nil
}

func nodeDiffs(m, r persist.Node) []string {
	var out []string
	add := func(field string, mem, store any) {
		out = append(out, fmt.Sprintf("node %d: %s %v in memory, %v in the store", r.ID, field, mem, store))
	}
	if m.SchedulingPolicy != r.SchedulingPolicy {
		add("scheduling policy", m.SchedulingPolicy, r.SchedulingPolicy)
	}
	if m.ListenHTTPAddr != r.ListenHTTPAddr || m.ListenHTTPPort != r.ListenHTTPPort {
		add("http address", storconapi.JoinHostPort(m.ListenHTTPAddr, m.ListenHTTPPort), storconapi.JoinHostPort(r.ListenHTTPAddr, r.ListenHTTPPort))
	}
	if m.ListenPGAddr != r.ListenPGAddr || m.ListenPGPort != r.ListenPGPort {
		add("pg address", storconapi.JoinHostPort(m.ListenPGAddr, m.ListenPGPort), storconapi.JoinHostPort(r.ListenPGAddr, r.ListenPGPort))
	}
	if m.ListenGRPCAddr != r.ListenGRPCAddr || m.ListenGRPCPort != r.ListenGRPCPort {
		add("grpc address", storconapi.JoinHostPort(m.ListenGRPCAddr, m.ListenGRPCPort), storconapi.JoinHostPort(r.ListenGRPCAddr, r.ListenGRPCPort))
	}
	if m.AvailabilityZoneID != r.AvailabilityZoneID {
		add("availability zone", m.AvailabilityZoneID, r.AvailabilityZoneID)
	}
	return out
}

func shardDiffs(m, r persist.TenantShard) []string {
	var out []string
	add := func(field string, mem, store any) {
		out = append(out, fmt.Sprintf("shard %s: %s %v in memory, %v in the store", r.ID, field, mem, store))
	}
	if m.Generation != r.Generation {
		add("generation", uint32(m.Generation), uint32(r.Generation))
	}
	if m.GenerationNode != r.GenerationNode {
		add("generation node", m.GenerationNode, r.GenerationNode)
	}
	if m.PlacementPolicy != r.PlacementPolicy {
		add("placement policy", m.PlacementPolicy, r.PlacementPolicy)
	}
	if m.SchedulingPolicy != r.SchedulingPolicy {
		add("scheduling policy", m.SchedulingPolicy, r.SchedulingPolicy)
	}
	if m.StripeSize != r.StripeSize {
		add("stripe size", m.StripeSize, r.StripeSize)
	}
	if m.Config != r.Config {
		add("config", m.Config, r.Config)
	}
	if m.PreferredAZ != r.PreferredAZ {
		add("preferred AZ", m.PreferredAZ, r.PreferredAZ)
	}
	if m.Splitting != r.Splitting {
		add("splitting", m.Splitting, r.Splitting)
	}
	return out
}
