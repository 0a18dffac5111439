package storconapi

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/stratadb/strata/engine/placement"
	"github.com/stratadb/strata/engine/shard"
	"github.com/stratadb/strata/nodes/pageserver/pageapi"
)

// ErrBadRequest is the class of request bodies the controller refuses (400).
var ErrBadRequest = errors.New("storconapi: bad request")

// NodeRegisterRequest is the body of POST /control/v1/node (and the
// optional register field of re-attach). Registering an existing node with
// the same fields is a no-op; with different addresses it updates them.
type NodeRegisterRequest struct {
	NodeID             uint64 `json:"node_id"`
	ListenHTTPAddr     string `json:"listen_http_addr"`
	ListenHTTPPort     uint16 `json:"listen_http_port"`
	ListenPGAddr       string `json:"listen_pg_addr"`
	ListenPGPort       uint16 `json:"listen_pg_port"`
	ListenGRPCAddr     string `json:"listen_grpc_addr,omitempty"`
	ListenGRPCPort     uint16 `json:"listen_grpc_port,omitempty"`
	AvailabilityZoneID string `json:"availability_zone_id"`
}

// Validate refuses a request without a node id or an HTTP address.
func (r NodeRegisterRequest) Validate() error {
	switch {
	case r.NodeID == 0:
		return fmt.Errorf("%w: node_id is required", ErrBadRequest)
	case r.NodeID > 1<<63-1:
		return fmt.Errorf("%w: node_id %d is above 2^63-1", ErrBadRequest, r.NodeID)
	case r.ListenHTTPAddr == "" || r.ListenHTTPPort == 0:
		return fmt.Errorf("%w: listen_http_addr and listen_http_port are required", ErrBadRequest)
	}
	return nil
}

// HTTPHostPort is the node's management API address, "host:port".
func (r NodeRegisterRequest) HTTPHostPort() string {
	return JoinHostPort(r.ListenHTTPAddr, r.ListenHTTPPort)
}

// JoinHostPort renders "host:port" ("[host]:port" for an IPv6 host).
func JoinHostPort(host string, port uint16) string {
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	return host + ":" + strconv.Itoa(int(port))
}

// SplitHostPort splits "host:port" into the register request's pair.
func SplitHostPort(addr string) (string, uint16, error) {
	i := strings.LastIndexByte(addr, ':')
	if i <= 0 {
		return "", 0, fmt.Errorf("%w: address %q is not host:port", ErrBadRequest, addr)
	}
	h := strings.TrimSuffix(strings.TrimPrefix(addr[:i], "["), "]")
	n, err := strconv.ParseUint(addr[i+1:], 10, 16)
	if err != nil || n == 0 {
		return "", 0, fmt.Errorf("%w: address %q: bad port", ErrBadRequest, addr)
	}
	return h, uint16(n), nil
}

// NodeDescribe is one node of GET /control/v1/node.
type NodeDescribe struct {
	ID                 uint64                 `json:"id"`
	Availability       placement.Availability `json:"availability"`
	Scheduling         placement.NodePolicy   `json:"scheduling"`
	AvailabilityZoneID string                 `json:"availability_zone_id"`
	ListenHTTPAddr     string                 `json:"listen_http_addr"`
	ListenHTTPPort     uint16                 `json:"listen_http_port"`
	ListenPGAddr       string                 `json:"listen_pg_addr"`
	ListenPGPort       uint16                 `json:"listen_pg_port"`
	ListenGRPCAddr     string                 `json:"listen_grpc_addr,omitempty"`
	ListenGRPCPort     uint16                 `json:"listen_grpc_port,omitempty"`
	// UtilizationScore is the last reported score (0 before the first).
	UtilizationScore uint64 `json:"utilization_score"`
	// Shards and AttachedShards count the intents naming the node.
	Shards         int `json:"shard_count"`
	AttachedShards int `json:"attached_shard_count"`
}

// NodeConfigRequest is the body of PUT /control/v1/node/{id}/config: either
// field may be omitted.
type NodeConfigRequest struct {
	Availability *placement.Availability `json:"availability,omitempty"`
	Scheduling   *placement.NodePolicy   `json:"scheduling,omitempty"`
}

// ShardParameters says how a new tenant is sharded: count 0 is unsharded,
// stripe 0 the default stripe size.
type ShardParameters struct {
	Count      uint8  `json:"count"`
	StripeSize uint32 `json:"stripe_size"`
}

// TenantCreateRequest is the body of POST /v1/tenant. Creation is
// all-or-nothing across the tenant's shards.
type TenantCreateRequest struct {
	NewTenantID     shard.TenantID    `json:"new_tenant_id"`
	ShardParameters ShardParameters   `json:"shard_parameters"`
	PlacementPolicy *placement.Policy `json:"placement_policy,omitempty"`
	// Config is the tenant_conf object passed to pageservers (nil: {}).
	Config *pageapi.TenantConf `json:"config,omitempty"`
	// PreferredAZ, if set, is where attached locations go first.
	PreferredAZ string `json:"preferred_az,omitempty"`
}

// TenantCreateResponse lists the shards and where they are attached.
type TenantCreateResponse struct {
	Shards []pageapi.ShardLocation `json:"shards"`
}

// TenantConfigRequest is the body of PUT /v1/tenant/config.
type TenantConfigRequest struct {
	TenantID shard.TenantID     `json:"tenant_id"`
	Config   pageapi.TenantConf `json:"config"`
}

// TenantPolicyRequest is the body of PUT /control/v1/tenant/{id}/policy:
// either field may be omitted.
type TenantPolicyRequest struct {
	Placement  *placement.Policy                `json:"placement,omitempty"`
	Scheduling *placement.ShardSchedulingPolicy `json:"scheduling,omitempty"`
}

// MigrateRequest is the body of PUT /control/v1/tenant/{tsid}/migrate.
type MigrateRequest struct {
	NodeID uint64 `json:"node_id"`
}

// ShardSplitRequest is the body of PUT /control/v1/tenant/{id}/shard_split:
// split every shard of the tenant so it has NewShardCount shards (a larger
// power-of-two multiple of the current count). NewStripeSize may change
// the stripe only while the tenant is unsharded (count 0 or 1); nil keeps
// it.
type ShardSplitRequest struct {
	NewShardCount shard.ShardCount `json:"new_shard_count"`
	NewStripeSize *uint32          `json:"new_stripe_size,omitempty"`
}

// ShardSplitResponse lists the tenant's shards after the split (the
// children), in shard-number order.
type ShardSplitResponse struct {
	NewShards []shard.TenantShardID `json:"new_shards"`
}

// ObservedLocation is what the controller believes a node holds of a
// shard; Conf nil means unknown.
type ObservedLocation struct {
	NodeID uint64                  `json:"node_id"`
	Conf   *placement.LocationConf `json:"conf"`
}

// ShardDescribe is one shard of a tenant description.
type ShardDescribe struct {
	TenantShardID shard.TenantShardID             `json:"tenant_shard_id"`
	Policy        placement.Policy                `json:"policy"`
	Scheduling    placement.ShardSchedulingPolicy `json:"scheduling_policy"`
	NodeAttached  *uint64                         `json:"node_attached"`
	NodeSecondary []uint64                        `json:"node_secondary"`
	PreferredAZ   string                          `json:"preferred_az_id,omitempty"`
	Generation    *uint32                         `json:"generation"`
	// GenerationNode is the node the latest generation was issued to.
	GenerationNode uint64             `json:"generation_pageserver,omitempty"`
	Observed       []ObservedLocation `json:"observed"`
	Sequence       uint64             `json:"sequence"`
	IsReconciling  bool               `json:"is_reconciling"`
	IsDirty        bool               `json:"is_dirty"`
	// PendingComputeNotification: the last notify-attach failed or was not
	// sent yet; a later reconcile sends it.
	PendingComputeNotification bool `json:"is_pending_compute_notification"`
	IsSplitting                bool `json:"is_splitting"`
}

// TenantDescribe answers GET /control/v1/tenant/{id}.
type TenantDescribe struct {
	TenantID   shard.TenantID  `json:"tenant_id"`
	ShardCount uint8           `json:"shard_count"`
	StripeSize uint32          `json:"stripe_size"`
	Shards     []ShardDescribe `json:"shards"`
}

// ConsistencyReport answers POST /debug/v1/consistency_check when memory,
// the scheduler's counts and the store agree; otherwise the call fails
// (500) with a message naming every difference.
type ConsistencyReport struct {
	Nodes  int `json:"nodes"`
	Shards int `json:"shards"`
}

// ReconcileAllResponse answers POST /debug/v1/reconcile_all.
type ReconcileAllResponse struct {
	// Spawned is how many reconciles were started (or queued).
	Spawned int `json:"spawned"`
}

// Status answers GET /status and /ready.
type Status struct {
	Ready   bool   `json:"ready"`
	Startup string `json:"startup"`
}
