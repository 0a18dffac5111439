package persist

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/stratadb/strata/clock"
	"github.com/stratadb/strata/net"
)

// Server serves a Store to Remote clients over a net.Router: the routes of
// remote_wire.go, one per Store method. It opens the store with open on
// first use, and again after the store broke (ErrFailed: the embedded
// store must be reopened to recover from what is durable), so one failed
// write does not take the shared store down for every client.
type Server struct {
	log  *slog.Logger
	open func() (Store, error)

	// mu serializes opening and closing (held across the store's I/O).
	mu     *clock.Mutex
	store  Store // nil: not open (yet, or again after a failure)
	closed bool
}

// NewServer returns a server of the store open returns; it opens nothing
// until the first call (or Open).
func NewServer(clk clock.Clock, log *slog.Logger, open func() (Store, error)) *Server {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Server{log: log, open: open, mu: clock.NewMutex(clk)}
}

// Open opens the store now (a server's start-up, so that a store it cannot
// open fails the start rather than every later call).
func (s *Server) Open(ctx context.Context) error {
	_, err := s.get(ctx)
	return err
}

func (s *Server) get(ctx context.Context) (Store, error) {
	if err := s.mu.Lock(ctx); err != nil {
		return nil, err
	}
	defer s.mu.Unlock()
	switch {
	case s.closed:
		return nil, fmt.Errorf("%w: store server", ErrClosed)
	case s.store != nil:
		return s.store, nil
	}
	st, err := s.open()
	if err != nil {
		s.log.Error("store server: open store", "err", err)
		return nil, err
	}
	s.store = st
	return st, nil
}

// drop closes st after it failed, if it is still the open store, so the
// next call reopens it.
func (s *Server) drop(st Store, cause error) {
	_ = s.mu.Lock(context.Background())
	defer s.mu.Unlock()
	if s.store != st {
		return
	}
	s.log.Error("store server: store failed; reopening it on the next call", "err", cause)
	s.store = nil
	if err := st.Close(); err != nil {
		s.log.Error("store server: close failed store", "err", err)
	}
}

// Close closes the store; later calls answer Unavailable.
func (s *Server) Close() error {
	_ = s.mu.Lock(context.Background())
	defer s.mu.Unlock()
	s.closed = true
	if s.store == nil {
		return nil
	}
	st := s.store
	s.store = nil
	return st.Close()
}

// serve registers one route: the body decodes strictly into Req, fn runs on
// the open store, and its error is mapped for the wire (wireError).
func serve[Req, Resp any](s *Server, rt *net.Router, route string, fn func(ctx context.Context, st Store, req Req) (Resp, error)) {
	net.HandleJSON(rt, route, 200, func(ctx context.Context, _ *net.HTTPRequest, req Req) (Resp, error) {
		var zero Resp
		st, err := s.get(ctx)
		if err != nil {
			return zero, wireError(err)
		}
		resp, err := fn(ctx, st, req)
		if err != nil {
			if errors.Is(err, ErrFailed) {
				s.drop(st, err)
			}
			return zero, wireError(err)
		}
		return resp, nil
	})
}

// Register adds the store's routes to rt.
func (s *Server) Register(rt *net.Router) {
	serve(s, rt, RouteUpsertNode, func(ctx context.Context, st Store, n wireNode) (nothing, error) {
		return nothing{}, st.UpsertNode(ctx, n.node())
	})
	serve(s, rt, RouteSetNodeSchedulingPolicy, func(ctx context.Context, st Store, a nodeTextArg) (nothing, error) {
		return nothing{}, st.SetNodeSchedulingPolicy(ctx, a.Node, string(a.Value))
	})
	serve(s, rt, RouteSetNodeAvailabilityZone, func(ctx context.Context, st Store, a nodeTextArg) (nothing, error) {
		return nothing{}, st.SetNodeAvailabilityZone(ctx, a.Node, string(a.Value))
	})
	serve(s, rt, RouteMarkNodeDeleted, func(ctx context.Context, st Store, a nodeArg) (nothing, error) {
		return nothing{}, st.MarkNodeDeleted(ctx, a.Node)
	})
	serve(s, rt, RouteDeleteNode, func(ctx context.Context, st Store, a nodeArg) (nothing, error) {
		return nothing{}, st.DeleteNode(ctx, a.Node)
	})
	serve(s, rt, RouteListNodes, func(ctx context.Context, st Store, _ nothing) ([]wireNode, error) {
		ns, err := st.ListNodes(ctx)
		return toWireNodes(ns), err
	})
	serve(s, rt, RouteInsertTenantShards, func(ctx context.Context, st Store, a shardsArg) (nothing, error) {
		return nothing{}, st.InsertTenantShards(ctx, fromWireShards(a.Shards))
	})
	serve(s, rt, RouteDeleteTenant, func(ctx context.Context, st Store, a tenantArg) (nothing, error) {
		return nothing{}, st.DeleteTenant(ctx, a.Tenant)
	})
	serve(s, rt, RouteListTenantShards, func(ctx context.Context, st Store, _ nothing) ([]wireShard, error) {
		rows, err := st.ListTenantShards(ctx)
		return toWireShards(rows), err
	})
	serve(s, rt, RouteTenantShards, func(ctx context.Context, st Store, a tenantArg) ([]wireShard, error) {
		rows, err := st.TenantShards(ctx, a.Tenant)
		return toWireShards(rows), err
	})
	serve(s, rt, RouteUpdateTenantShards, func(ctx context.Context, st Store, a updateArg) (nothing, error) {
		sel := Selector{Tenant: a.Selector.Tenant, AllShards: a.Selector.AllShards}
		sel.Shard.Number, sel.Shard.Count = a.Selector.Shard.Number, a.Selector.Shard.Count
		u := ShardUpdate{PlacementPolicy: stringPtr(a.Update.PlacementPolicy), Config: stringPtr(a.Update.Config),
			SchedulingPolicy: stringPtr(a.Update.SchedulingPolicy), PreferredAZ: stringPtr(a.Update.PreferredAZ),
			Generation: a.Update.Generation, ClearGenerationNode: a.Update.ClearGenerationNode}
		return nothing{}, st.UpdateTenantShards(ctx, sel, u)
	})
	serve(s, rt, RouteIncrementGeneration, func(ctx context.Context, st Store, a incrementArg) (generationResp, error) {
		g, err := st.IncrementGeneration(ctx, a.ID.id(), a.Node)
		return generationResp{Generation: g, Node: a.Node}, err
	})
	serve(s, rt, RouteReAttach, func(ctx context.Context, st Store, a nodeArg) ([]wireShard, error) {
		rows, err := st.ReAttach(ctx, a.Node)
		return toWireShards(rows), err
	})
	serve(s, rt, RouteGeneration, func(ctx context.Context, st Store, a shardArg) (generationResp, error) {
		g, n, err := st.Generation(ctx, a.ID.id())
		return generationResp{Generation: g, Node: n}, err
	})
	serve(s, rt, RouteSetSplitting, func(ctx context.Context, st Store, a splittingArg) (nothing, error) {
		return nothing{}, st.SetSplitting(ctx, a.Tenant, a.Splitting)
	})
	serve(s, rt, RouteListSplitting, func(ctx context.Context, st Store, _ nothing) ([]wireShard, error) {
		rows, err := st.ListSplitting(ctx)
		return toWireShards(rows), err
	})
	serve(s, rt, RouteBeginSplit, func(ctx context.Context, st Store, a beginSplitArg) (nothing, error) {
		return nothing{}, st.BeginSplit(ctx, a.Tenant, a.OldCount, fromWireShards(a.Children))
	})
	serve(s, rt, RouteCommitSplit, func(ctx context.Context, st Store, a countArg) (nothing, error) {
		return nothing{}, st.CommitSplit(ctx, a.Tenant, a.Count)
	})
	serve(s, rt, RouteAbortSplit, func(ctx context.Context, st Store, a countArg) (outcomeResp, error) {
		o, err := st.AbortSplit(ctx, a.Tenant, a.Count)
		return outcomeResp{Outcome: o}, err
	})
}
