package storconapi

import (
	"context"
	"strconv"
	"strings"

	"github.com/stratadb/strata/engine/shard"
	"github.com/stratadb/strata/net"
	"github.com/stratadb/strata/nodes/pageserver/pageapi"
)

// Client calls a storage controller through any net.HTTPClient. Token, if
// set, is sent as "Authorization: Bearer <Token>". Errors are *net.Status
// with the code the controller answered (net.CodeOf classifies them).
type Client struct {
	HTTP  net.HTTPClient
	Token string
}

// route fills a pattern's {params} in order and returns the request.
func (c Client) route(pattern string, params ...string) *net.HTTPRequest {
	method, path, _ := strings.Cut(pattern, " ")
	for _, p := range params {
		i := strings.IndexByte(path, '{')
		j := strings.IndexByte(path, '}')
		if i < 0 || j < i {
			break
		}
		path = path[:i] + p + path[j+1:]
	}
	r := &net.HTTPRequest{Method: method, Path: path}
	if c.Token != "" {
		r.Authorization = "Bearer " + c.Token
	}
	return r
}

func call[Resp any](ctx context.Context, c Client, r *net.HTTPRequest, in any) (Resp, error) {
	var out Resp
	_, err := c.HTTP.Do(ctx, r, in, &out)
	return out, err
}

func node(id uint64) string { return strconv.FormatUint(id, 10) }

// RegisterNode registers (or updates) a pageserver.
func (c Client) RegisterNode(ctx context.Context, req NodeRegisterRequest) error {
	_, err := call[struct{}](ctx, c, c.route(RouteNodeRegister), req)
	return err
}

// ListNodes lists the registered pageservers in id order.
func (c Client) ListNodes(ctx context.Context) ([]NodeDescribe, error) {
	return call[[]NodeDescribe](ctx, c, c.route(RouteNodeList), nil)
}

// NodeConfig sets a node's availability and/or scheduling policy.
func (c Client) NodeConfig(ctx context.Context, id uint64, req NodeConfigRequest) error {
	_, err := call[struct{}](ctx, c, c.route(RouteNodeConfig, node(id)), req)
	return err
}

// DeleteNode removes a node gracefully (its shards move first).
func (c Client) DeleteNode(ctx context.Context, id uint64) error {
	_, err := call[struct{}](ctx, c, c.route(RouteNodeDelete, node(id)), nil)
	return err
}

// Drain starts (stop=false) or cancels (stop=true) draining a node.
func (c Client) Drain(ctx context.Context, id uint64, stop bool) error {
	p := RouteNodeDrain
	if stop {
		p = RouteNodeDrainStop
	}
	_, err := call[struct{}](ctx, c, c.route(p, node(id)), nil)
	return err
}

// Fill starts (stop=false) or cancels (stop=true) filling a node.
func (c Client) Fill(ctx context.Context, id uint64, stop bool) error {
	p := RouteNodeFill
	if stop {
		p = RouteNodeFillStop
	}
	_, err := call[struct{}](ctx, c, c.route(p, node(id)), nil)
	return err
}

// CreateTenant creates a tenant with all its shards, or nothing.
func (c Client) CreateTenant(ctx context.Context, req TenantCreateRequest) (TenantCreateResponse, error) {
	return call[TenantCreateResponse](ctx, c, c.route(RouteTenantCreate), req)
}

// DeleteTenant deletes a tenant from every pageserver, then forgets it.
func (c Client) DeleteTenant(ctx context.Context, t shard.TenantID) error {
	_, err := call[struct{}](ctx, c, c.route(RouteTenantDelete, t.String()), nil)
	return err
}

// LocationConfig is the pageserver-compatible location_config passthrough
// (onboarding): the controller takes the shard under management.
func (c Client) LocationConfig(ctx context.Context, id shard.TenantShardID, conf pageapi.LocationConfig) (*pageapi.LocationConfigResponse, error) {
	return call[*pageapi.LocationConfigResponse](ctx, c, c.route(RouteLocationConfig, id.String()), conf)
}

// CreateTimeline creates a timeline on every shard of a tenant; the answer
// is shard 0's.
func (c Client) CreateTimeline(ctx context.Context, t shard.TenantID, req pageapi.TimelineCreateRequest) (pageapi.TimelineInfo, error) {
	return call[pageapi.TimelineInfo](ctx, c, c.route(RouteTimelineCreate, t.String()), req)
}

// DeleteTimeline deletes a timeline from every shard, shard 0 last.
func (c Client) DeleteTimeline(ctx context.Context, t shard.TenantID, tl shard.TimelineID) error {
	_, err := call[struct{}](ctx, c, c.route(RouteTimelineDelete, t.String(), tl.String()), nil)
	return err
}

// SetTenantConfig replaces a tenant's config on every shard.
func (c Client) SetTenantConfig(ctx context.Context, req TenantConfigRequest) error {
	_, err := call[struct{}](ctx, c, c.route(RouteTenantConfigSet), req)
	return err
}

// ListTenants describes every tenant, in id order.
func (c Client) ListTenants(ctx context.Context) ([]TenantDescribe, error) {
	return call[[]TenantDescribe](ctx, c, c.route(RouteTenantList), nil)
}

// DescribeTenant describes one tenant's shards: intent, observed,
// generation.
func (c Client) DescribeTenant(ctx context.Context, t shard.TenantID) (TenantDescribe, error) {
	return call[TenantDescribe](ctx, c, c.route(RouteTenantDescribe, t.String()), nil)
}

// SetTenantPolicy changes a tenant's placement and/or scheduling policy.
func (c Client) SetTenantPolicy(ctx context.Context, t shard.TenantID, req TenantPolicyRequest) error {
	_, err := call[struct{}](ctx, c, c.route(RouteTenantPolicy, t.String()), req)
	return err
}

// Migrate moves a shard's attachment to a node (live migration).
func (c Client) Migrate(ctx context.Context, id shard.TenantShardID, nodeID uint64) error {
	_, err := call[struct{}](ctx, c, c.route(RouteShardMigrate, id.String()), MigrateRequest{NodeID: nodeID})
	return err
}

// ShardSplit splits every shard of a tenant into req.NewShardCount shards
// and answers the children; repeated once the split is done, it answers
// the same children.
func (c Client) ShardSplit(ctx context.Context, t shard.TenantID, req ShardSplitRequest) (ShardSplitResponse, error) {
	return call[ShardSplitResponse](ctx, c, c.route(RouteShardSplit, t.String()), req)
}

// ReAttach is the pageserver's start-up upcall.
func (c Client) ReAttach(ctx context.Context, req ReAttachRequest) (ReAttachResponse, error) {
	return call[ReAttachResponse](ctx, c, c.route(RouteReAttach), req)
}

// Validate asks which generations are still current.
func (c Client) Validate(ctx context.Context, req ValidateRequest) (ValidateResponse, error) {
	return call[ValidateResponse](ctx, c, c.route(RouteValidate), req)
}

// ConsistencyCheck compares memory, the scheduler's counts and the store.
func (c Client) ConsistencyCheck(ctx context.Context) (ConsistencyReport, error) {
	return call[ConsistencyReport](ctx, c, c.route(RouteConsistencyCheck), nil)
}

// ReconcileAll starts a reconcile of every dirty shard.
func (c Client) ReconcileAll(ctx context.Context) (ReconcileAllResponse, error) {
	return call[ReconcileAllResponse](ctx, c, c.route(RouteReconcileAll), nil)
}

// DropNode forgets a node without moving its shards (operators only).
func (c Client) DropNode(ctx context.Context, id uint64) error {
	_, err := call[struct{}](ctx, c, c.route(RouteNodeDrop, node(id)), nil)
	return err
}

// DropTenant forgets a tenant without touching pageservers (operators only).
func (c Client) DropTenant(ctx context.Context, t shard.TenantID) error {
	_, err := call[struct{}](ctx, c, c.route(RouteTenantDrop, t.String()), nil)
	return err
}

// Ready reports whether start-up reconcile finished (GET /ready answers 200).
func (c Client) Ready(ctx context.Context) (Status, error) {
	return call[Status](ctx, c, c.route(RouteReady), nil)
}
