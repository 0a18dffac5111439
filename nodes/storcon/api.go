package storcon

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/stratadb/strata/engine/placement"
	"github.com/stratadb/strata/engine/shard"
	"github.com/stratadb/strata/net"
	"github.com/stratadb/strata/net/jwtauth"
	"github.com/stratadb/strata/nodes/pageserver/pageapi"
	"github.com/stratadb/strata/nodes/storcon/persist"
	"github.com/stratadb/strata/nodes/storcon/storconapi"
)

// apiStatus maps the service's errors to status codes at the API edge:
// bad input 400, unknown names 404, conflicts and unschedulable requests
// 409, unmet preconditions 412, bounded waits that ended 408, a busy or
// stopping controller, a store that is closed, failed or unreachable, a
// tenant whose stored state is not resolved yet (unsure.go) and a shard
// that changed under a reconcile (retry) 503. An error that already carries a
// code (a pageserver's answer, the transport's) keeps it — except a
// pageserver's 401 or 403, which is the controller's own token being
// refused: passed through, the caller would think its token bad, so it is
// 500 naming the pageserver.
func apiStatus(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, ErrPageserver) && (net.CodeOf(err) == net.Unauthenticated || net.CodeOf(err) == net.PermissionDenied):
		return net.Errorf(net.Internal, "the controller's pageserver token was refused: %w", err)
	case errors.Is(err, ErrSplitRolledBack):
		// The tenant is as before the split; the cause says whether trying
		// again may succeed (its own code would misname the tenant: a
		// pageserver's 404 is not "no such tenant").
		if retryable(err) || errors.Is(err, persist.ErrFailed) || errors.Is(err, persist.ErrClosed) || errors.Is(err, persist.ErrUnreachable) {
			return net.Wrap(net.Unavailable, err)
		}
		return net.Wrap(net.Internal, err)
	case errors.Is(err, errStale), errors.Is(err, persist.ErrFailed), errors.Is(err, persist.ErrClosed), errors.Is(err, ErrUnresolved),
		errors.Is(err, persist.ErrUnreachable):
		return net.Wrap(net.Unavailable, err)
	case errors.Is(err, storconapi.ErrBadRequest), errors.Is(err, pageapi.ErrBadConfig),
		errors.Is(err, placement.ErrInvalid), errors.Is(err, persist.ErrInvalid), errors.Is(err, shard.ErrInvalid):
		return net.Wrap(net.InvalidArgument, err)
	case errors.Is(err, ErrNotFound), errors.Is(err, persist.ErrNotFound):
		return net.Wrap(net.NotFound, err)
	case errors.Is(err, ErrConflict), errors.Is(err, placement.ErrNoSchedulableNode),
		errors.Is(err, persist.ErrExists), errors.Is(err, persist.ErrConflict):
		return net.Wrap(net.AlreadyExists, err)
	case errors.Is(err, ErrPrecondition):
		return net.Wrap(net.FailedPrecondition, err)
	case errors.Is(err, ErrShuttingDown), errors.Is(err, ErrBusy):
		return net.Wrap(net.Unavailable, err)
	case errors.Is(err, ErrTimeout), errors.Is(err, context.DeadlineExceeded):
		return net.Wrap(net.DeadlineExceeded, err)
	case errors.Is(err, ErrInconsistent):
		return net.Wrap(net.Internal, err)
	case net.CodeOf(err) != net.Unknown:
		return err
	}
	return net.Wrap(net.Internal, err)
}

// authorize checks the request's token for scope when auth is on ("" =
// an open route).
func (s *Service) authorize(r *net.HTTPRequest, scope jwtauth.Scope) error {
	if s.auth == nil || scope == "" {
		return nil
	}
	c, err := s.auth.VerifyHeader(r.Authorization)
	if err == nil {
		err = jwtauth.Authorize(c, scope, "")
	}
	return err
}

// route registers one JSON route: the token is checked first (so a
// request without one is 401 whatever its body), then the body decoded
// strictly, then fn runs; its error is mapped at the edge, and the answer
// is counted in http_request_status and http_request_latency by the
// route's pattern (not the concrete path: bounded labels).
func route[Req, Resp any](s *Service, pattern string, scope jwtauth.Scope, ok int, fn func(ctx context.Context, r *net.HTTPRequest, req Req) (Resp, error)) {
	method, path, _ := strings.Cut(pattern, " ")
	s.router.Handle(pattern, func(ctx context.Context, r *net.HTTPRequest) (*net.HTTPResponse, error) {
		start := s.clk.Mono()
		resp, err := func() (*net.HTTPResponse, error) {
			if err := s.authorize(r, scope); err != nil {
				return nil, jwtauth.StatusOf(err)
			}
			if scope != "" && s.stopping() && pattern != storconapi.RouteStepDown {
				return nil, apiStatus(s.stopErr())
			}
			var req Req
			if len(strings.TrimSpace(string(r.Body))) > 0 {
				if err := net.DecodeJSON(strings.NewReader(string(r.Body)), &req); err != nil {
					return nil, err
				}
			}
			out, err := fn(ctx, r, req)
			if err != nil {
				return nil, apiStatus(err)
			}
			b, err := json.Marshal(out)
			if err != nil {
				return nil, net.Errorf(net.Internal, "encode response: %v", err)
			}
			return &net.HTTPResponse{Status: ok, Body: b}, nil
		}()
		s.metrics.httpStatus.WithLabelValues(method, path, strconv.Itoa(httpStatusOf(err, ok))).Inc()
		s.metrics.httpLatency.WithLabelValues(method, path).Observe(float64(s.clk.Mono()-start) / 1e9)
		return resp, err
	})
}

func tenantParam(r *net.HTTPRequest) (shard.TenantID, error) {
	t, err := shard.ParseTenantID(r.Param("tenant_id"))
	if err != nil {
		return t, fmt.Errorf("%w: %v", storconapi.ErrBadRequest, err)
	}
	return t, nil
}

func tenantShardParam(r *net.HTTPRequest) (shard.TenantShardID, error) {
	id, err := shard.ParseTenantShardID(r.Param("tenant_shard_id"))
	if err != nil {
		return id, fmt.Errorf("%w: %v", storconapi.ErrBadRequest, err)
	}
	return id, nil
}

func nodeParam(r *net.HTTPRequest) (placement.NodeID, error) {
	n, err := strconv.ParseUint(r.Param("node_id"), 10, 63)
	if err != nil || n == 0 {
		return 0, fmt.Errorf("%w: node id %q", storconapi.ErrBadRequest, r.Param("node_id"))
	}
	return placement.NodeID(n), nil
}

type none = struct{}

// registerAPI adds every route. Scopes per family (storconapi's doc):
// /v1/… pageserverapi, /upcall/v1/… generations_api, node register and
// list infra, the rest of /control/v1/… and /debug/v1/… admin; /status,
// /live and /ready are open.
func (s *Service) registerAPI() {
	const (
		psAPI = jwtauth.ScopePageServerAPI
		gens  = jwtauth.ScopeGenerationsAPI
		infra = jwtauth.ScopeInfra
		admin = jwtauth.ScopeAdmin
	)
	// Open.
	route(s, storconapi.RouteStatus, "", 200, func(ctx context.Context, _ *net.HTTPRequest, _ none) (storconapi.Status, error) {
		return s.status(), nil
	})
	route(s, storconapi.RouteLive, "", 200, func(ctx context.Context, _ *net.HTTPRequest, _ none) (storconapi.Status, error) {
		return s.status(), nil
	})
	route(s, storconapi.RouteReady, "", 200, func(ctx context.Context, _ *net.HTTPRequest, _ none) (storconapi.Status, error) {
		st := s.status()
		if !st.Ready {
			return st, net.Errorf(net.Unavailable, "not ready: %s", st.Startup)
		}
		return st, nil
	})

	// Pageserver-compatible.
	route(s, storconapi.RouteTenantCreate, psAPI, 201, func(ctx context.Context, _ *net.HTTPRequest, req storconapi.TenantCreateRequest) (storconapi.TenantCreateResponse, error) {
		defer s.beginWrite()()
		return s.createTenant(ctx, req)
	})
	route(s, storconapi.RouteTenantDelete, psAPI, 200, func(ctx context.Context, r *net.HTTPRequest, _ none) (none, error) {
		t, err := tenantParam(r)
		if err != nil {
			return none{}, err
		}
		defer s.beginWrite()()
		return none{}, s.deleteTenant(ctx, t)
	})
	route(s, storconapi.RouteLocationConfig, psAPI, 200, func(ctx context.Context, r *net.HTTPRequest, req pageapi.LocationConfig) (*pageapi.LocationConfigResponse, error) {
		id, err := tenantShardParam(r)
		if err != nil {
			return nil, err
		}
		defer s.beginWrite()()
		return s.tenantLocationConfig(ctx, id, req)
	})
	route(s, storconapi.RouteTimelineCreate, psAPI, 201, func(ctx context.Context, r *net.HTTPRequest, req pageapi.TimelineCreateRequest) (pageapi.TimelineInfo, error) {
		t, err := tenantParam(r)
		if err != nil {
			return pageapi.TimelineInfo{}, err
		}
		return s.createTimeline(ctx, t, req)
	})
	route(s, storconapi.RouteTimelineDelete, psAPI, 200, func(ctx context.Context, r *net.HTTPRequest, _ none) (none, error) {
		t, err := tenantParam(r)
		if err != nil {
			return none{}, err
		}
		tl, err := shard.ParseTimelineID(r.Param("timeline_id"))
		if err != nil {
			return none{}, fmt.Errorf("%w: %v", storconapi.ErrBadRequest, err)
		}
		return none{}, s.deleteTimeline(ctx, t, tl)
	})
	route(s, storconapi.RouteTenantConfigSet, psAPI, 200, func(ctx context.Context, _ *net.HTTPRequest, req storconapi.TenantConfigRequest) (none, error) {
		defer s.beginWrite()()
		return none{}, s.setTenantConfig(ctx, req)
	})

	// Upcalls.
	route(s, storconapi.RouteReAttach, gens, 200, func(ctx context.Context, _ *net.HTTPRequest, req storconapi.ReAttachRequest) (storconapi.ReAttachResponse, error) {
		defer s.beginWrite()()
		return s.reAttach(ctx, req)
	})
	route(s, storconapi.RouteValidate, gens, 200, func(ctx context.Context, _ *net.HTTPRequest, req storconapi.ValidateRequest) (storconapi.ValidateResponse, error) {
		return s.validate(ctx, req)
	})

	// Operators: nodes.
	route(s, storconapi.RouteNodeRegister, infra, 200, func(ctx context.Context, _ *net.HTTPRequest, req storconapi.NodeRegisterRequest) (none, error) {
		if err := s.waitReady(ctx); err != nil {
			return none{}, err
		}
		defer s.beginWrite()()
		return none{}, s.registerNode(ctx, req)
	})
	route(s, storconapi.RouteNodeList, infra, 200, func(ctx context.Context, _ *net.HTTPRequest, _ none) ([]storconapi.NodeDescribe, error) {
		return s.listNodes(), nil
	})
	route(s, storconapi.RouteNodeConfig, admin, 200, func(ctx context.Context, r *net.HTTPRequest, req storconapi.NodeConfigRequest) (none, error) {
		id, err := nodeParam(r)
		if err != nil {
			return none{}, err
		}
		if err := s.waitReady(ctx); err != nil {
			return none{}, err
		}
		defer s.beginWrite()()
		return none{}, s.nodeConfig(ctx, id, req)
	})
	route(s, storconapi.RouteNodeDelete, admin, 200, func(ctx context.Context, r *net.HTTPRequest, _ none) (none, error) {
		id, err := nodeParam(r)
		if err != nil {
			return none{}, err
		}
		if err := s.waitReady(ctx); err != nil {
			return none{}, err
		}
		defer s.beginWrite()()
		return none{}, s.deleteNode(ctx, id)
	})
	for _, op := range []struct {
		start, stop string
		kind        string
		run         func(context.Context, placement.NodeID) error
	}{
		{storconapi.RouteNodeDrain, storconapi.RouteNodeDrainStop, "drain", s.drain},
		{storconapi.RouteNodeFill, storconapi.RouteNodeFillStop, "fill", s.fill},
	} {
		route(s, op.start, admin, 200, func(ctx context.Context, r *net.HTTPRequest, _ none) (none, error) {
			id, err := nodeParam(r)
			if err != nil {
				return none{}, err
			}
			defer s.beginWrite()()
			return none{}, op.run(ctx, id)
		})
		route(s, op.stop, admin, 200, func(ctx context.Context, r *net.HTTPRequest, _ none) (none, error) {
			id, err := nodeParam(r)
			if err != nil {
				return none{}, err
			}
			defer s.beginWrite()()
			return none{}, s.stopNodeOp(ctx, id, op.kind)
		})
	}

	// Operators: tenants.
	route(s, storconapi.RouteTenantList, admin, 200, func(ctx context.Context, _ *net.HTTPRequest, _ none) ([]storconapi.TenantDescribe, error) {
		return s.listTenants(ctx)
	})
	route(s, storconapi.RouteTenantDescribe, admin, 200, func(ctx context.Context, r *net.HTTPRequest, _ none) (storconapi.TenantDescribe, error) {
		t, err := tenantParam(r)
		if err != nil {
			return storconapi.TenantDescribe{}, err
		}
		return s.describeTenant(ctx, t)
	})
	route(s, storconapi.RouteTenantPolicy, admin, 200, func(ctx context.Context, r *net.HTTPRequest, req storconapi.TenantPolicyRequest) (none, error) {
		t, err := tenantParam(r)
		if err != nil {
			return none{}, err
		}
		defer s.beginWrite()()
		return none{}, s.setTenantPolicy(ctx, t, req)
	})
	route(s, storconapi.RouteShardSplit, admin, 200, func(ctx context.Context, r *net.HTTPRequest, req storconapi.ShardSplitRequest) (storconapi.ShardSplitResponse, error) {
		t, err := tenantParam(r)
		if err != nil {
			return storconapi.ShardSplitResponse{}, err
		}
		defer s.beginWrite()()
		return s.splitTenant(ctx, t, req)
	})
	route(s, storconapi.RouteShardMigrate, admin, 200, func(ctx context.Context, r *net.HTTPRequest, req storconapi.MigrateRequest) (none, error) {
		id, err := tenantShardParam(r)
		if err != nil {
			return none{}, err
		}
		if req.NodeID == 0 {
			return none{}, fmt.Errorf("%w: node_id is required", storconapi.ErrBadRequest)
		}
		return none{}, s.migrate(ctx, id, placement.NodeID(req.NodeID))
	})

	// Debugging.
	route(s, storconapi.RouteConsistencyCheck, admin, 200, func(ctx context.Context, _ *net.HTTPRequest, _ none) (storconapi.ConsistencyReport, error) {
		return s.consistencyCheck(ctx)
	})
	route(s, storconapi.RouteReconcileAll, admin, 200, func(ctx context.Context, _ *net.HTTPRequest, _ none) (storconapi.ReconcileAllResponse, error) {
		if err := s.waitReady(ctx); err != nil {
			return storconapi.ReconcileAllResponse{}, err
		}
		return storconapi.ReconcileAllResponse{Spawned: s.reconcileAll()}, nil
	})
	route(s, storconapi.RouteSchedulerDump, admin, 200, func(ctx context.Context, _ *net.HTTPRequest, _ none) ([]placement.NodeState, error) {
		s.lock()
		defer s.mu.Unlock()
		return s.state.sched.Nodes(), nil
	})
	route(s, storconapi.RouteTenantDump, admin, 200, func(ctx context.Context, _ *net.HTTPRequest, _ none) ([]placement.ShardSnapshot, error) {
		s.lock()
		defer s.mu.Unlock()
		out := make([]placement.ShardSnapshot, 0, len(s.state.shards))
		for _, sid := range s.state.sortedShardIDs() {
			out = append(out, s.state.shards[sid].st.Snapshot())
		}
		return out, nil
	})
	route(s, storconapi.RouteNodeDrop, admin, 200, func(ctx context.Context, r *net.HTTPRequest, _ none) (none, error) {
		id, err := nodeParam(r)
		if err != nil {
			return none{}, err
		}
		if err := s.waitReady(ctx); err != nil {
			return none{}, err
		}
		defer s.beginWrite()()
		return none{}, s.dropNode(ctx, id)
	})
	route(s, storconapi.RouteTenantDrop, admin, 200, func(ctx context.Context, r *net.HTTPRequest, _ none) (none, error) {
		t, err := tenantParam(r)
		if err != nil {
			return none{}, err
		}
		defer s.beginWrite()()
		return none{}, s.dropTenant(ctx, t)
	})
	s.registerLeadershipAPI()
}

func (s *Service) stopping() bool {
	s.lock()
	defer s.mu.Unlock()
	return s.state.shuttingDown
}

// status answers /status, /live and /ready.
func (s *Service) status() storconapi.Status {
	s.lock()
	defer s.mu.Unlock()
	msg := s.state.startupMsg
	if msg == "" {
		msg = "start-up reconcile running"
	}
	if s.state.storeFailed != nil {
		msg = "store failed (restart the controller): " + s.state.storeFailed.Error()
	}
	if s.state.shuttingDown {
		msg = "shutting down"
		if s.lead.steppedDown {
			msg = ErrSteppedDown.Error()
		}
	}
	return storconapi.Status{Ready: s.state.ready && !s.state.shuttingDown && s.state.storeFailed == nil, Startup: msg}
}
