package persist

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/stratadb/strata/clock"
	"github.com/stratadb/strata/engine/layer"
	"github.com/stratadb/strata/engine/shard"
	"github.com/stratadb/strata/net"
)

// ErrUnreachable: a remote store call got no usable answer — the server
// could not be reached, did not answer in time, broke the connection, or
// failed in a way that is not one of the argument classes. The request may
// have been applied or not: the outcome is unknown, as after a lost
// database commit acknowledgement.
var ErrUnreachable = errors.New("persist: remote store unreachable, outcome unknown")

// DefaultRemoteCallTimeout bounds one remote call when RemoteConfig leaves
// it zero.
const DefaultRemoteCallTimeout = 10 * time.Second

// RemoteConfig configures a Remote.
type RemoteConfig struct {
	// CallTimeout bounds one call: the request, the store's work and the
	// answer. Default DefaultRemoteCallTimeout.
	CallTimeout time.Duration
}

func (c RemoteConfig) withDefaults() RemoteConfig {
	if c.CallTimeout == 0 {
		c.CallTimeout = DefaultRemoteCallTimeout
	}
	return c
}

// Validate checks c (after filling defaults in a copy).
func (c RemoteConfig) Validate() error {
	c = c.withDefaults()
	if c.CallTimeout < 0 {
		return fmt.Errorf("%w: CallTimeout %v is negative", ErrConfig, c.CallTimeout)
	}
	return nil
}

// Remote is a Store whose state lives in a Server reached over the net
// seam: several controller processes can share one, as they share one
// PostgreSQL database in production. Each call is one request (never
// retried: an increment sent twice would issue two generations), bounded
// by RemoteConfig.CallTimeout and not by the caller's context once sent;
// the argument classes come back as themselves, anything else as
// ErrUnreachable. Safe for concurrent use.
type Remote struct {
	clk clock.Clock
	hc  net.HTTPClient
	cfg RemoteConfig

	mu     sync.Mutex
	closed bool
}

var _ Store = (*Remote)(nil)

// NewRemote returns a store that calls the Server behind hc.
func NewRemote(clk clock.Clock, hc net.HTTPClient, cfg RemoteConfig) (*Remote, error) {
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if hc == nil {
		return nil, fmt.Errorf("%w: a remote store needs an HTTP client", ErrConfig)
	}
	return &Remote{clk: clk, hc: hc, cfg: cfg}, nil
}

// String names the server for logs.
func (r *Remote) String() string { return fmt.Sprintf("remote store (%v)", r.hc) }

// call sends one request on route and decodes the answer into out.
func (r *Remote) call(ctx context.Context, route string, in, out any) error {
	r.mu.Lock()
	closed := r.closed
	r.mu.Unlock()
	if closed {
		return fmt.Errorf("%w: remote store", ErrClosed)
	}
	if err := ctx.Err(); err != nil {
		return err // nothing was sent
	}
	// Once sent, a call runs to its answer (within CallTimeout) even if
	// the caller's context ends meanwhile: abandoning it would turn a
	// definite outcome into an unknown one, and the embedded store, too,
	// finishes a write it has started.
	ctx, cancel := clock.WithTimeout(r.clk, context.WithoutCancel(ctx), r.cfg.CallTimeout)
	defer cancel()
	method, path, _ := strings.Cut(route, " ")
	if _, err := r.hc.Do(ctx, &net.HTTPRequest{Method: method, Path: path}, in, out); err != nil {
		return fromWire(path, err)
	}
	return nil
}

func (r *Remote) UpsertNode(ctx context.Context, n Node) error {
	return r.call(ctx, RouteUpsertNode, toWireNode(n), nil)
}

func (r *Remote) SetNodeSchedulingPolicy(ctx context.Context, id NodeID, policy string) error {
	return r.call(ctx, RouteSetNodeSchedulingPolicy, nodeTextArg{Node: id, Value: text(policy)}, nil)
}

func (r *Remote) SetNodeAvailabilityZone(ctx context.Context, id NodeID, az string) error {
	return r.call(ctx, RouteSetNodeAvailabilityZone, nodeTextArg{Node: id, Value: text(az)}, nil)
}

func (r *Remote) MarkNodeDeleted(ctx context.Context, id NodeID) error {
	return r.call(ctx, RouteMarkNodeDeleted, nodeArg{Node: id}, nil)
}

func (r *Remote) DeleteNode(ctx context.Context, id NodeID) error {
	return r.call(ctx, RouteDeleteNode, nodeArg{Node: id}, nil)
}

func (r *Remote) ListNodes(ctx context.Context) ([]Node, error) {
	var out []wireNode
	if err := r.call(ctx, RouteListNodes, nothing{}, &out); err != nil {
		return nil, err
	}
	return fromWireNodes(out), nil
}

func (r *Remote) InsertTenantShards(ctx context.Context, shards []TenantShard) error {
	return r.call(ctx, RouteInsertTenantShards, shardsArg{Shards: toWireShards(shards)}, nil)
}

func (r *Remote) DeleteTenant(ctx context.Context, tenant shard.TenantID) error {
	return r.call(ctx, RouteDeleteTenant, tenantArg{Tenant: tenant}, nil)
}

func (r *Remote) ListTenantShards(ctx context.Context) ([]TenantShard, error) {
	return r.shards(ctx, RouteListTenantShards, nothing{})
}

func (r *Remote) TenantShards(ctx context.Context, tenant shard.TenantID) ([]TenantShard, error) {
	return r.shards(ctx, RouteTenantShards, tenantArg{Tenant: tenant})
}

func (r *Remote) shards(ctx context.Context, route string, in any) ([]TenantShard, error) {
	var out []wireShard
	if err := r.call(ctx, route, in, &out); err != nil {
		return nil, err
	}
	return fromWireShards(out), nil
}

func (r *Remote) UpdateTenantShards(ctx context.Context, sel Selector, u ShardUpdate) error {
	arg := updateArg{
		Selector: wireSelector{Tenant: sel.Tenant, AllShards: sel.AllShards, Shard: wireIndex{Number: sel.Shard.Number, Count: sel.Shard.Count}},
		Update: wireUpdate{PlacementPolicy: textPtr(u.PlacementPolicy), Config: textPtr(u.Config),
			SchedulingPolicy: textPtr(u.SchedulingPolicy), PreferredAZ: textPtr(u.PreferredAZ),
			Generation: u.Generation, ClearGenerationNode: u.ClearGenerationNode},
	}
	return r.call(ctx, RouteUpdateTenantShards, arg, nil)
}

func (r *Remote) IncrementGeneration(ctx context.Context, id shard.TenantShardID, node NodeID) (layer.Generation, error) {
	var out generationResp
	if err := r.call(ctx, RouteIncrementGeneration, incrementArg{ID: toWireID(id), Node: node}, &out); err != nil {
		return 0, err
	}
	return out.Generation, nil
}

func (r *Remote) ReAttach(ctx context.Context, node NodeID) ([]TenantShard, error) {
	return r.shards(ctx, RouteReAttach, nodeArg{Node: node})
}

func (r *Remote) Generation(ctx context.Context, id shard.TenantShardID) (layer.Generation, NodeID, error) {
	var out generationResp
	if err := r.call(ctx, RouteGeneration, shardArg{ID: toWireID(id)}, &out); err != nil {
		return 0, 0, err
	}
	return out.Generation, out.Node, nil
}

func (r *Remote) SetSplitting(ctx context.Context, tenant shard.TenantID, splitting bool) error {
	return r.call(ctx, RouteSetSplitting, splittingArg{Tenant: tenant, Splitting: splitting}, nil)
}

func (r *Remote) ListSplitting(ctx context.Context) ([]TenantShard, error) {
	return r.shards(ctx, RouteListSplitting, nothing{})
}

func (r *Remote) BeginSplit(ctx context.Context, tenant shard.TenantID, oldCount shard.ShardCount, children []TenantShard) error {
	return r.call(ctx, RouteBeginSplit, beginSplitArg{Tenant: tenant, OldCount: oldCount, Children: toWireShards(children)}, nil)
}

func (r *Remote) CommitSplit(ctx context.Context, tenant shard.TenantID, oldCount shard.ShardCount) error {
	return r.call(ctx, RouteCommitSplit, countArg{Tenant: tenant, Count: oldCount}, nil)
}

func (r *Remote) AbortSplit(ctx context.Context, tenant shard.TenantID, newCount shard.ShardCount) (SplitOutcome, error) {
	var out outcomeResp
	if err := r.call(ctx, RouteAbortSplit, countArg{Tenant: tenant, Count: newCount}, &out); err != nil {
		return 0, err
	}
	return out.Outcome, nil
}

// Close makes every later call fail with ErrClosed; the server and its
// store are not affected (other processes may still use them).
func (r *Remote) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.closed = true
	return nil
}
