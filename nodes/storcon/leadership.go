package storcon

import (
	"context"
	"fmt"
	"time"

	"github.com/stratadb/strata/clock"
	"github.com/stratadb/strata/engine/layer"
	"github.com/stratadb/strata/engine/shard"
	"github.com/stratadb/strata/net"
	"github.com/stratadb/strata/net/jwtauth"
	"github.com/stratadb/strata/nodes/storcon/persist"
	"github.com/stratadb/strata/nodes/storcon/storconapi"
)

// Leadership hand-over. When a new controller process replaces a running
// one (a deployment, a move to another host) and both share one database,
// the new one's first act is to ask the old one to step down (PUT
// /control/v1/step_down). From then on the old one changes nothing: it
// answers 503 to every scoped call (pageservers' upcalls included, so they
// retry and reach the new one), starts no reconcile, and refuses every
// call to the store, the pageservers and the compute hook; before it
// answers, the calls it had under way have ended, so the new controller
// reads a store and pageservers the old one no longer moves. A predecessor
// that cannot be reached (down, or cut off) is given up on after
// Config.StepDownTimeout: it may still run with memory that falls behind
// what the new controller stores — which is why validate reads the store
// (upcalls.go) — until it is stopped.

// ErrSteppedDown: the controller handed over to another and serves
// nothing but its status (503, as when shutting down).
var ErrSteppedDown = fmt.Errorf("%w: stepped down, another controller leads", ErrShuttingDown)

// StepDownRetry is the pause between attempts to reach the predecessor.
const StepDownRetry = 500 * time.Millisecond

// leadership is the controller's part in a hand-over; guarded by
// Service.mu.
type leadership struct {
	steppedDown bool
	// outbound counts the calls under way to the store, the pageservers
	// and the compute hook (through the fenced clients below).
	outbound int
}

// stopErr is the error of a call refused because the service stopped.
func (s *Service) stopErr() error {
	s.lock()
	defer s.mu.Unlock()
	if s.lead.steppedDown {
		return ErrSteppedDown
	}
	return ErrShuttingDown
}

// beginOutbound admits one call to the store, a pageserver or the hook,
// unless the controller stepped down; endOutbound ends it.
func (s *Service) beginOutbound() error {
	s.lock()
	defer s.mu.Unlock()
	if s.lead.steppedDown {
		return ErrSteppedDown
	}
	s.lead.outbound++
	return nil
}

func (s *Service) endOutbound() {
	s.lock()
	defer s.mu.Unlock()
	s.lead.outbound--
	if s.lead.outbound == 0 {
		s.changed.Broadcast()
	}
}

// stepDown is PUT /control/v1/step_down: stop changing anything (as
// Shutdown does, but the process keeps answering its status and 503s),
// wait — at most half of StepDownTimeout — for the calls under way to
// end, then stop the background tasks. Asking again answers again.
func (s *Service) stepDown(ctx context.Context) (storconapi.StepDownResponse, error) {
	s.lock()
	first := !s.lead.steppedDown
	s.lead.steppedDown = true
	s.state.shuttingDown = true // nothing new starts; waiters end
	s.changed.Broadcast()
	s.mu.Unlock()
	if first {
		s.log.Warn("stepping down: another controller takes over")
	}
	wctx, cancel := clock.WithTimeout(s.clk, ctx, s.cfg.StepDownTimeout/2)
	defer cancel()
	s.lock()
	defer s.mu.Unlock()
	for s.lead.outbound > 0 {
		if err := s.changed.Wait(wctx); err != nil {
			return storconapi.StepDownResponse{}, fmt.Errorf("%w: %d calls to the store, pageservers or compute hook still under way: %w",
				ErrTimeout, s.lead.outbound, err)
		}
	}
	s.tasks.Cancel()
	return storconapi.StepDownResponse{Shards: len(s.state.shards), Nodes: len(s.state.nodes)}, nil
}

// registerLeadershipAPI adds PUT /control/v1/step_down (scope admin). It
// answers while the service is stopping, unlike every other scoped route:
// a successor whose first answer was lost asks again.
func (s *Service) registerLeadershipAPI() {
	route(s, storconapi.RouteStepDown, jwtauth.ScopeAdmin, 200, func(ctx context.Context, _ *net.HTTPRequest, _ none) (storconapi.StepDownResponse, error) {
		return s.stepDown(ctx)
	})
}

// stepDownPredecessor asks Config.Predecessor to step down, retrying every
// StepDownRetry within StepDownTimeout; past it (the predecessor is gone
// or cut off) start-up proceeds without it.
func (s *Service) stepDownPredecessor(ctx context.Context) {
	if s.cfg.Predecessor == nil {
		return
	}
	s.lock()
	s.state.startupMsg = "asking the previous controller to step down"
	s.mu.Unlock()
	cli := storconapi.Client{HTTP: s.cfg.Predecessor, Token: s.cfg.PredecessorToken}
	ctx, cancel := clock.WithTimeout(s.clk, ctx, s.cfg.StepDownTimeout)
	defer cancel()
	for attempt := 1; ; attempt++ {
		resp, err := cli.StepDown(ctx)
		if err == nil {
			s.log.Info("the previous controller stepped down", "controller", fmt.Sprint(s.cfg.Predecessor),
				"shards", resp.Shards, "nodes", resp.Nodes, "attempts", attempt)
			return
		}
		switch net.CodeOf(err) {
		case net.InvalidArgument, net.Unauthenticated, net.PermissionDenied, net.NotFound, net.Unimplemented:
			s.log.Error("the previous controller refuses to step down; proceeding without it", "controller", fmt.Sprint(s.cfg.Predecessor), "err", err)
			return
		}
		if clock.Sleep(ctx, s.clk, StepDownRetry) != nil {
			s.log.Warn("the previous controller did not step down; proceeding without it (it may still run with stale memory until it is stopped)",
				"controller", fmt.Sprint(s.cfg.Predecessor), "attempts", attempt, "err", err)
			return
		}
	}
}

// fencedHTTP is a client to a pageserver or the compute hook that refuses
// every call once the controller stepped down, and counts those under way.
type fencedHTTP struct {
	s     *Service
	inner net.HTTPClient
}

func (c fencedHTTP) Do(ctx context.Context, req *net.HTTPRequest, in, out any) (int, error) {
	if err := c.s.beginOutbound(); err != nil {
		return 0, err
	}
	defer c.s.endOutbound()
	return c.inner.Do(ctx, req, in, out)
}

func (c fencedHTTP) String() string { return fmt.Sprint(c.inner) }

// fencedStore is the store, refusing every call once the controller
// stepped down and counting those under way. It names every method (no
// embedding), so a method added to persist.Store cannot slip past it.
type fencedStore struct {
	s     *Service
	inner persist.Store
}

var _ persist.Store = fencedStore{}

func (f fencedStore) enter() error { return f.s.beginOutbound() }
func (f fencedStore) exit()        { f.s.endOutbound() }

func (f fencedStore) UpsertNode(ctx context.Context, n persist.Node) error {
	if err := f.enter(); err != nil {
		return err
	}
	defer f.exit()
	return f.inner.UpsertNode(ctx, n)
}

func (f fencedStore) SetNodeSchedulingPolicy(ctx context.Context, id persist.NodeID, policy string) error {
	if err := f.enter(); err != nil {
		return err
	}
	defer f.exit()
	return f.inner.SetNodeSchedulingPolicy(ctx, id, policy)
}

func (f fencedStore) SetNodeAvailabilityZone(ctx context.Context, id persist.NodeID, az string) error {
	if err := f.enter(); err != nil {
		return err
	}
	defer f.exit()
	return f.inner.SetNodeAvailabilityZone(ctx, id, az)
}

func (f fencedStore) MarkNodeDeleted(ctx context.Context, id persist.NodeID) error {
	if err := f.enter(); err != nil {
		return err
	}
	defer f.exit()
	return f.inner.MarkNodeDeleted(ctx, id)
}

func (f fencedStore) DeleteNode(ctx context.Context, id persist.NodeID) error {
	if err := f.enter(); err != nil {
		return err
	}
	defer f.exit()
	return f.inner.DeleteNode(ctx, id)
}

func (f fencedStore) ListNodes(ctx context.Context) ([]persist.Node, error) {
	if err := f.enter(); err != nil {
		return nil, err
	}
	defer f.exit()
	return f.inner.ListNodes(ctx)
}

func (f fencedStore) InsertTenantShards(ctx context.Context, shards []persist.TenantShard) error {
	if err := f.enter(); err != nil {
		return err
	}
	defer f.exit()
	return f.inner.InsertTenantShards(ctx, shards)
}

func (f fencedStore) DeleteTenant(ctx context.Context, tenant shard.TenantID) error {
	if err := f.enter(); err != nil {
		return err
	}
	defer f.exit()
	return f.inner.DeleteTenant(ctx, tenant)
}

func (f fencedStore) ListTenantShards(ctx context.Context) ([]persist.TenantShard, error) {
	if err := f.enter(); err != nil {
		return nil, err
	}
	defer f.exit()
	return f.inner.ListTenantShards(ctx)
}

func (f fencedStore) TenantShards(ctx context.Context, tenant shard.TenantID) ([]persist.TenantShard, error) {
	if err := f.enter(); err != nil {
		return nil, err
	}
	defer f.exit()
	return f.inner.TenantShards(ctx, tenant)
}

func (f fencedStore) UpdateTenantShards(ctx context.Context, sel persist.Selector, u persist.ShardUpdate) error {
	if err := f.enter(); err != nil {
		return err
	}
	defer f.exit()
	return f.inner.UpdateTenantShards(ctx, sel, u)
}

func (f fencedStore) IncrementGeneration(ctx context.Context, id shard.TenantShardID, node persist.NodeID) (layer.Generation, error) {
	if err := f.enter(); err != nil {
		return 0, err
	}
	defer f.exit()
	return f.inner.IncrementGeneration(ctx, id, node)
}

func (f fencedStore) ReAttach(ctx context.Context, node persist.NodeID) ([]persist.TenantShard, error) {
	if err := f.enter(); err != nil {
		return nil, err
	}
	defer f.exit()
	return f.inner.ReAttach(ctx, node)
}

func (f fencedStore) Generation(ctx context.Context, id shard.TenantShardID) (layer.Generation, persist.NodeID, error) {
	if err := f.enter(); err != nil {
		return 0, 0, err
	}
	defer f.exit()
	return f.inner.Generation(ctx, id)
}

func (f fencedStore) SetSplitting(ctx context.Context, tenant shard.TenantID, splitting bool) error {
	if err := f.enter(); err != nil {
		return err
	}
	defer f.exit()
	return f.inner.SetSplitting(ctx, tenant, splitting)
}

func (f fencedStore) ListSplitting(ctx context.Context) ([]persist.TenantShard, error) {
	if err := f.enter(); err != nil {
		return nil, err
	}
	defer f.exit()
	return f.inner.ListSplitting(ctx)
}

func (f fencedStore) BeginSplit(ctx context.Context, tenant shard.TenantID, oldCount shard.ShardCount, children []persist.TenantShard) error {
	if err := f.enter(); err != nil {
		return err
	}
	defer f.exit()
	return f.inner.BeginSplit(ctx, tenant, oldCount, children)
}

func (f fencedStore) CommitSplit(ctx context.Context, tenant shard.TenantID, oldCount shard.ShardCount) error {
	if err := f.enter(); err != nil {
		return err
	}
	defer f.exit()
	return f.inner.CommitSplit(ctx, tenant, oldCount)
}

func (f fencedStore) AbortSplit(ctx context.Context, tenant shard.TenantID, newCount shard.ShardCount) (persist.SplitOutcome, error) {
	if err := f.enter(); err != nil {
		return 0, err
	}
	defer f.exit()
	return f.inner.AbortSplit(ctx, tenant, newCount)
}

// Close closes the store itself: it is the process's to close, stepped
// down or not.
func (f fencedStore) Close() error { return f.inner.Close() }
