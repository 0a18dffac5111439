package pageserver

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/stratadb/strata/clock"

	"github.com/stratadb/strata/engine/shard"
	"github.com/stratadb/strata/engine/timeline"
	"github.com/stratadb/strata/net"
	"github.com/stratadb/strata/net/jwtauth"
	"github.com/stratadb/strata/nodes/pageserver/pageapi"
)

// mgmtStatus maps the management API's errors to status codes (and so
// HTTP statuses: 400, 401/403, 404, 408, 409, 412, 429, 503, 500). A
// timeline with children cannot be deleted: 412, as Neon answers.
func mgmtStatus(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, pageapi.ErrBadConfig), errors.Is(err, timeline.ErrFutureLSN):
		return net.Wrap(net.InvalidArgument, err)
	case errors.Is(err, ErrTimelineExists), errors.Is(err, ErrStaleGeneration), errors.Is(err, ErrSplitConflict):
		return net.Wrap(net.AlreadyExists, err)
	case errors.Is(err, ErrNotAttached), errors.Is(err, ErrBroken), errors.Is(err, timeline.ErrHasChildren), errors.Is(err, ErrShardSplit):
		return net.Wrap(net.FailedPrecondition, err)
	case errors.Is(err, ErrLimit):
		return net.Wrap(net.ResourceExhausted, err)
	}
	return StatusOf(err)
}

// authorize checks the management API's token when auth is on.
func (n *Node) authorize(r *net.HTTPRequest) error {
	if n.auth == nil {
		return nil
	}
	c, err := n.auth.VerifyHeader(r.Authorization)
	if err == nil {
		err = jwtauth.Authorize(c, jwtauth.ScopePageServerAPI, "")
	}
	return err
}

func tenantShardParam(r *net.HTTPRequest) (shard.TenantShardID, error) {
	id, err := shard.ParseTenantShardID(r.Param("tenant_shard_id"))
	if err != nil {
		return id, fmt.Errorf("%w: %v", pageapi.ErrBadConfig, err)
	}
	return id, nil
}

// mgmtRoute wraps a JSON route with authentication and the error mapping.
func mgmtRoute[Req, Resp any](n *Node, pattern string, ok int, fn func(ctx context.Context, r *net.HTTPRequest, req Req) (Resp, error)) {
	net.HandleJSON(n.router, pattern, ok, func(ctx context.Context, r *net.HTTPRequest, req Req) (Resp, error) {
		if err := n.authorize(r); err != nil {
			var zero Resp
			return zero, jwtauth.StatusOf(err)
		}
		resp, err := fn(ctx, r, req)
		return resp, mgmtStatus(err)
	})
}

// registerMgmt adds the management API's routes.
func (n *Node) registerMgmt() {
	mgmtRoute(n, pageapi.RouteLocationConfig, 200, func(ctx context.Context, r *net.HTTPRequest, req pageapi.LocationConfig) (*pageapi.LocationConfigResponse, error) {
		id, err := tenantShardParam(r)
		if err != nil {
			return nil, err
		}
		conf, err := n.tenants.setLocation(ctx, id, req)
		if err != nil || conf == nil {
			return nil, err
		}
		resp := &pageapi.LocationConfigResponse{Shards: []pageapi.ShardLocation{{ShardID: id.String(), NodeID: n.cfg.NodeID}}}
		if conf.Mode.Attached() && conf.ShardCount > 1 {
			s := conf.ShardStripeSize
			resp.StripeSize = &s
		}
		return resp, nil
	})
	mgmtRoute(n, pageapi.RouteLocationConfigList, 200, func(ctx context.Context, r *net.HTTPRequest, _ struct{}) (pageapi.LocationConfigList, error) {
		return pageapi.LocationConfigList{TenantShards: n.tenants.locations()}, nil
	})
	mgmtRoute(n, pageapi.RouteTimelineCreate, 201, func(ctx context.Context, r *net.HTTPRequest, req pageapi.TimelineCreateRequest) (pageapi.TimelineInfo, error) {
		id, err := tenantShardParam(r)
		if err != nil {
			return pageapi.TimelineInfo{}, err
		}
		return n.tenants.createTimeline(ctx, id, req)
	})
	mgmtRoute(n, pageapi.RouteTimelineList, 200, func(ctx context.Context, r *net.HTTPRequest, _ struct{}) ([]pageapi.TimelineInfo, error) {
		id, err := tenantShardParam(r)
		if err != nil {
			return nil, err
		}
		return n.tenants.listTimelines(id)
	})
	// Timeline delete answers 200 once the deletion is durable (Neon: 202,
	// deleting in the background); a timeline with children is 412, as in
	// Neon; an unknown one 404.
	mgmtRoute(n, pageapi.RouteTimelineDelete, 200, func(ctx context.Context, r *net.HTTPRequest, _ struct{}) (struct{}, error) {
		id, err := tenantShardParam(r)
		if err != nil {
			return struct{}{}, err
		}
		tid, err := shard.ParseTimelineID(r.Param("timeline_id"))
		if err != nil {
			return struct{}{}, fmt.Errorf("%w: %v", pageapi.ErrBadConfig, err)
		}
		return struct{}{}, n.tenants.deleteTimeline(ctx, id, tid)
	})
	mgmtRoute(n, pageapi.RouteWaitLSN, 200, func(ctx context.Context, r *net.HTTPRequest, req pageapi.WaitLSNRequest) (struct{}, error) {
		id, err := tenantShardParam(r)
		if err != nil {
			return struct{}{}, err
		}
		return struct{}{}, n.waitLSN(ctx, id, req)
	})
	// Shard split (split.go): 200 with the children, also for a repeat
	// of a split already done; 400 for a split that cannot be (a shrink,
	// a ratio that is not a power of two, a stripe change once sharded),
	// 404 for an unknown shard, 409 for a conflicting earlier split.
	mgmtRoute(n, pageapi.RouteShardSplit, 200, func(ctx context.Context, r *net.HTTPRequest, req pageapi.ShardSplitRequest) (pageapi.ShardSplitResponse, error) {
		id, err := tenantShardParam(r)
		if err != nil {
			return pageapi.ShardSplitResponse{}, err
		}
		kids, err := n.tenants.split(ctx, id, req)
		return pageapi.ShardSplitResponse{NewShards: kids}, err
	})
	mgmtRoute(n, pageapi.RouteDebugTasks, 200, func(ctx context.Context, r *net.HTTPRequest, _ struct{}) ([]pageapi.TaskInfo, error) {
		return n.tasks.list(), nil
	})
	mgmtRoute(n, pageapi.RouteUtilization, 200, func(ctx context.Context, r *net.HTTPRequest, _ struct{}) (pageapi.Utilization, error) {
		return n.utilization(), nil
	})
	n.registerSecondary()
}

// utilization measures the node for the controller's scheduler.
func (n *Node) utilization() pageapi.Utilization {
	free, _ := n.env.Disk.FreeSpace()
	shards := uint64(n.tenants.count())
	maxShards := uint64(n.cfg.MaxTenantShards)
	capped := func(v uint64) uint64 { return min(v, 1<<63-1) }
	u := pageapi.Utilization{
		FreeSpaceBytes: capped(free),
		DiskUsablePct:  50,
		ShardCount:     shards,
		MaxShardCount:  maxShards,
		CapturedAt:     n.env.Clock.Now().UTC().Format("2006-01-02T15:04:05.000000Z"),
	}
	u.UtilizationScore = pageapi.UtilizationScore(u.DiskWantedBytes, capped(free/2), shards, maxShards)
	return u
}

// MaxWaitLSNTimeout bounds the timeout a wait_lsn request may ask for.
const MaxWaitLSNTimeout = 5 * time.Minute

// waitLSN waits until each named timeline has ingested its LSN, or the
// request's timeout (default and cap MaxWaitLSNTimeout) ends: DeadlineExceeded
// (HTTP 408) then.
func (n *Node) waitLSN(ctx context.Context, id shard.TenantShardID, req pageapi.WaitLSNRequest) error {
	d := req.Timeout
	if d <= 0 || d > MaxWaitLSNTimeout {
		d = MaxWaitLSNTimeout
	}
	ctx, cancel := clock.WithTimeout(n.env.Clock, ctx, d)
	defer cancel()
	ids := slices.SortedFunc(maps.Keys(req.LSNs), compareTimelineID)
	for _, tid := range ids {
		tl, err := n.tenants.Resolve(pageapi.Target{Shard: id, Timeline: tid})
		if err != nil {
			return err
		}
		if err := tl.WaitLSN(ctx, req.LSNs[tid]); err != nil {
			if errors.Is(err, context.DeadlineExceeded) {
				return net.Errorf(net.DeadlineExceeded, "timeline %s did not reach %s within %v (at %s)", tid, req.LSNs[tid], d, tl.LastRecordLSN())
			}
			return err
		}
	}
	return nil
}
