package pagecheck

import (
	"context"
	"fmt"
	"time"

	"github.com/stratadb/strata/clock"
	"github.com/stratadb/strata/engine/shard"
	"github.com/stratadb/strata/net"
	"github.com/stratadb/strata/nodes/node"
	"github.com/stratadb/strata/nodes/pageserver/pageapi"
	"github.com/stratadb/strata/nodes/storcon/storconapi"
)

// Operator is a client node's access to a cluster under the storage
// controller: calls to the controller with retries, and the pageservers'
// management API for what the liveness checks look at.
type Operator struct {
	Env node.Env
	API storconapi.Client
	// Sleep waits in the world's time (sim.World.Sleep).
	Sleep     func(time.Duration)
	OpTimeout time.Duration
}

// Call runs fn with a timeout until it succeeds, answers AlreadyExists
// (an earlier try whose answer was lost took effect), or tries runs out.
func (o Operator) Call(what string, tries int, fn func(ctx context.Context) error) error {
	var err error
	for range tries {
		ctx, cancel := clock.WithTimeout(o.Env.Clock, context.Background(), o.OpTimeout)
		err = fn(ctx)
		cancel()
		if err == nil || net.CodeOf(err) == net.AlreadyExists {
			return nil
		}
		o.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("%s: %w", what, err)
}

// CreateTenant creates the tenant and its timeline through the
// controller, retrying until both exist (at most tries calls each).
func (o Operator) CreateTenant(req storconapi.TenantCreateRequest, tl pageapi.TimelineCreateRequest, tries int) error {
	// 409 is also the answer while no node can take a shard yet: the
	// tenant exists only if the controller describes it.
	if err := o.Call("create tenant", tries, func(ctx context.Context) error {
		_, err := o.API.CreateTenant(ctx, req)
		if net.CodeOf(err) == net.AlreadyExists {
			if td, derr := o.API.DescribeTenant(ctx, req.NewTenantID); derr != nil || len(td.Shards) == 0 {
				return net.Errorf(net.Unavailable, "not created yet: %v (describe: %v)", err, derr)
			}
		}
		return err
	}); err != nil {
		return err
	}
	return o.Call("create timeline", tries, func(ctx context.Context) error {
		_, err := o.API.CreateTimeline(ctx, req.NewTenantID, tl)
		return err
	})
}

// Timelines lists a tenant shard's timelines on the pageserver whose
// management API is at httpAddr.
func (o Operator) Timelines(httpAddr string, id shard.TenantShardID) ([]pageapi.TimelineInfo, error) {
	ctx, cancel := clock.WithTimeout(o.Env.Clock, context.Background(), o.OpTimeout)
	defer cancel()
	var list []pageapi.TimelineInfo
	_, err := net.DialHTTP{Net: o.Env.Net, Addr: httpAddr}.Do(ctx,
		&net.HTTPRequest{Method: "GET", Path: "/v1/tenant/" + id.String() + "/timeline"}, nil, &list)
	return list, err
}

// Locations lists the location configs of the pageserver whose management
// API is at httpAddr.
func (o Operator) Locations(httpAddr string) (pageapi.LocationConfigList, error) {
	ctx, cancel := clock.WithTimeout(o.Env.Clock, context.Background(), o.OpTimeout)
	defer cancel()
	var list pageapi.LocationConfigList
	_, err := net.DialHTTP{Net: o.Env.Net, Addr: httpAddr}.Do(ctx, &net.HTTPRequest{Method: "GET", Path: "/v1/location_config"}, nil, &list)
	return list, err
}
