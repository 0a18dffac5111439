package persist

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/stratadb/strata/engine/layer"
	"github.com/stratadb/strata/engine/shard"
	"github.com/stratadb/strata/net"
)

// The remote store's protocol: one POST route per Store method, a JSON
// body in and a JSON body out (net.Router patterns, served by Server and
// called by Remote).
const (
	RouteUpsertNode              = "POST /persist/v1/upsert_node"
	RouteSetNodeSchedulingPolicy = "POST /persist/v1/set_node_scheduling_policy"
	RouteSetNodeAvailabilityZone = "POST /persist/v1/set_node_availability_zone"
	RouteMarkNodeDeleted         = "POST /persist/v1/mark_node_deleted"
	RouteDeleteNode              = "POST /persist/v1/delete_node"
	RouteListNodes               = "POST /persist/v1/list_nodes"
	RouteInsertTenantShards      = "POST /persist/v1/insert_tenant_shards"
	RouteDeleteTenant            = "POST /persist/v1/delete_tenant"
	RouteListTenantShards        = "POST /persist/v1/list_tenant_shards"
	RouteTenantShards            = "POST /persist/v1/tenant_shards"
	RouteUpdateTenantShards      = "POST /persist/v1/update_tenant_shards"
	RouteIncrementGeneration     = "POST /persist/v1/increment_generation"
	RouteReAttach                = "POST /persist/v1/re_attach"
	RouteGeneration              = "POST /persist/v1/generation"
	RouteSetSplitting            = "POST /persist/v1/set_splitting"
	RouteListSplitting           = "POST /persist/v1/list_splitting"
	RouteBeginSplit              = "POST /persist/v1/begin_split"
	RouteCommitSplit             = "POST /persist/v1/commit_split"
	RouteAbortSplit              = "POST /persist/v1/abort_split"
)

// remoteClass is an error class that crosses the wire as its own status
// code.
type remoteClass struct {
	class error
	code  net.Code
}

// remoteClasses are the classes that cross the wire. Only the argument
// classes among them mean "nothing changed" (see Store); every other
// failure reaches the caller as ErrUnreachable.
func remoteClasses() []remoteClass {
	return []remoteClass{
		{ErrNotFound, net.NotFound},
		{ErrExists, net.AlreadyExists},
		{ErrConflict, net.FailedPrecondition},
		{ErrInvalid, net.InvalidArgument},
		{ErrGenerationExhausted, net.OutOfRange},
		{ErrCorrupt, net.DataLoss},
	}
}

// wireError is the server's side of the mapping: a class keeps its code and
// the store's message (which names the class); a store that is closed or
// failed (the server reopens it) is Unavailable; anything else Internal.
func wireError(err error) error {
	for _, c := range remoteClasses() {
		if errors.Is(err, c.class) {
			return net.Errorf(c.code, "%s", err.Error())
		}
	}
	switch {
	case errors.Is(err, ErrClosed), errors.Is(err, ErrFailed):
		return net.Errorf(net.Unavailable, "%s", err.Error())
	case net.CodeOf(err) != net.Unknown:
		return err
	}
	return net.Errorf(net.Internal, "%s", err.Error())
}

// remoteError is a class error as the client rebuilds it: the server's
// message, and the class for errors.Is.
type remoteError struct {
	class error
	msg   string
}

func (e *remoteError) Error() string { return e.msg }
func (e *remoteError) Unwrap() error { return e.class }

// fromWire is the client's side: an answer whose code is a class's and
// whose message names that class (so a router's own NotFound, say, is not
// taken for a missing row) becomes that class; every other failure — no
// answer, a timeout, a broken connection, a server error — leaves the
// outcome unknown and wraps ErrUnreachable (with the transport's status
// still reachable for net.CodeOf).
func fromWire(op string, err error) error {
	var st *net.Status
	if errors.As(err, &st) {
		for _, c := range remoteClasses() {
			if st.Code == c.code && strings.Contains(st.Msg, c.class.Error()) {
				return &remoteError{class: c.class, msg: st.Msg}
			}
		}
	}
	return fmt.Errorf("%w: %s: %w", ErrUnreachable, op, err)
}

// text is a string on the wire, byte for byte: a JSON string when it is
// valid UTF-8, otherwise {"base64": …} — encoding/json would replace the
// invalid bytes, and the store must see (and refuse) exactly what the
// caller passed.
type text string

type rawText struct {
	Base64 []byte `json:"base64"`
}

func (t text) MarshalJSON() ([]byte, error) {
	if utf8.ValidString(string(t)) {
		return json.Marshal(string(t))
	}
	return json.Marshal(rawText{Base64: []byte(t)})
}

func (t *text) UnmarshalJSON(b []byte) error {
	if len(b) > 0 && b[0] == '{' {
		var r rawText
		if err := json.Unmarshal(b, &r); err != nil {
			return err
		}
		*t = text(r.Base64)
		return nil
	}
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	*t = text(s)
	return nil
}

func textPtr(p *string) *text {
	if p == nil {
		return nil
	}
	t := text(*p)
	return &t
}

func stringPtr(p *text) *string {
	if p == nil {
		return nil
	}
	s := string(*p)
	return &s
}

// wireIndex and wireShardID spell a shard out field by field, so that any
// value — an invalid one the store must refuse included — survives the
// trip (the text form of a shard id only holds valid ones).
type wireIndex struct {
	Number shard.ShardNumber `json:"shard_number"`
	Count  shard.ShardCount  `json:"shard_count"`
}

type wireShardID struct {
	Tenant shard.TenantID `json:"tenant_id"`
	wireIndex
}

func toWireID(id shard.TenantShardID) wireShardID {
	return wireShardID{Tenant: id.TenantID, wireIndex: wireIndex{Number: id.Shard.Number, Count: id.Shard.Count}}
}

func (w wireShardID) id() shard.TenantShardID {
	return shard.TenantShardID{TenantID: w.Tenant, Shard: shard.ShardIndex{Number: w.Number, Count: w.Count}}
}

type wireNode struct {
	ID                 NodeID `json:"node_id"`
	SchedulingPolicy   text   `json:"scheduling_policy"`
	ListenHTTPAddr     text   `json:"listen_http_addr"`
	ListenHTTPPort     uint16 `json:"listen_http_port"`
	ListenPGAddr       text   `json:"listen_pg_addr"`
	ListenPGPort       uint16 `json:"listen_pg_port"`
	ListenGRPCAddr     text   `json:"listen_grpc_addr"`
	ListenGRPCPort     uint16 `json:"listen_grpc_port"`
	AvailabilityZoneID text   `json:"availability_zone_id"`
	Lifecycle          text   `json:"lifecycle"`
}

func toWireNode(n Node) wireNode {
	return wireNode{ID: n.ID, SchedulingPolicy: text(n.SchedulingPolicy),
		ListenHTTPAddr: text(n.ListenHTTPAddr), ListenHTTPPort: n.ListenHTTPPort,
		ListenPGAddr: text(n.ListenPGAddr), ListenPGPort: n.ListenPGPort,
		ListenGRPCAddr: text(n.ListenGRPCAddr), ListenGRPCPort: n.ListenGRPCPort,
		AvailabilityZoneID: text(n.AvailabilityZoneID), Lifecycle: text(n.Lifecycle)}
}

func (w wireNode) node() Node {
	return Node{ID: w.ID, SchedulingPolicy: string(w.SchedulingPolicy),
		ListenHTTPAddr: string(w.ListenHTTPAddr), ListenHTTPPort: w.ListenHTTPPort,
		ListenPGAddr: string(w.ListenPGAddr), ListenPGPort: w.ListenPGPort,
		ListenGRPCAddr: string(w.ListenGRPCAddr), ListenGRPCPort: w.ListenGRPCPort,
		AvailabilityZoneID: string(w.AvailabilityZoneID), Lifecycle: Lifecycle(w.Lifecycle)}
}

type wireShard struct {
	ID               wireShardID      `json:"id"`
	StripeSize       uint32           `json:"shard_stripe_size"`
	Generation       layer.Generation `json:"generation"`
	GenerationNode   NodeID           `json:"generation_pageserver"`
	PlacementPolicy  text             `json:"placement_policy"`
	Config           text             `json:"config"`
	Splitting        bool             `json:"splitting"`
	SchedulingPolicy text             `json:"scheduling_policy"`
	PreferredAZ      text             `json:"preferred_az_id"`
}

func toWireShard(s TenantShard) wireShard {
	return wireShard{ID: toWireID(s.ID), StripeSize: s.StripeSize, Generation: s.Generation,
		GenerationNode: s.GenerationNode, PlacementPolicy: text(s.PlacementPolicy), Config: text(s.Config),
		Splitting: s.Splitting, SchedulingPolicy: text(s.SchedulingPolicy), PreferredAZ: text(s.PreferredAZ)}
}

func (w wireShard) shard() TenantShard {
	return TenantShard{ID: w.ID.id(), StripeSize: w.StripeSize, Generation: w.Generation,
		GenerationNode: w.GenerationNode, PlacementPolicy: string(w.PlacementPolicy), Config: string(w.Config),
		Splitting: w.Splitting, SchedulingPolicy: string(w.SchedulingPolicy), PreferredAZ: string(w.PreferredAZ)}
}

// The lists keep nil apart from empty (JSON null and []), so a caller sees
// exactly what the store returned.
func toWireNodes(ns []Node) []wireNode {
	if ns == nil {
		return nil
	}
	out := make([]wireNode, len(ns))
	for i, n := range ns {
		out[i] = toWireNode(n)
	}
	return out
}

func fromWireNodes(ws []wireNode) []Node {
	if ws == nil {
		return nil
	}
	out := make([]Node, len(ws))
	for i, w := range ws {
		out[i] = w.node()
	}
	return out
}

func toWireShards(ss []TenantShard) []wireShard {
	if ss == nil {
		return nil
	}
	out := make([]wireShard, len(ss))
	for i, s := range ss {
		out[i] = toWireShard(s)
	}
	return out
}

func fromWireShards(ws []wireShard) []TenantShard {
	if ws == nil {
		return nil
	}
	out := make([]TenantShard, len(ws))
	for i, w := range ws {
		out[i] = w.shard()
	}
	return out
}

type wireSelector struct {
	Tenant    shard.TenantID `json:"tenant_id"`
	AllShards bool           `json:"all_shards"`
	Shard     wireIndex      `json:"shard"`
}

type wireUpdate struct {
	PlacementPolicy     *text             `json:"placement_policy,omitempty"`
	Config              *text             `json:"config,omitempty"`
	SchedulingPolicy    *text             `json:"scheduling_policy,omitempty"`
	PreferredAZ         *text             `json:"preferred_az_id,omitempty"`
	Generation          *layer.Generation `json:"generation,omitempty"`
	ClearGenerationNode bool              `json:"clear_generation_node,omitempty"`
}

// Request and response bodies.
type (
	nodeArg struct {
		Node NodeID `json:"node_id"`
	}
	nodeTextArg struct {
		Node  NodeID `json:"node_id"`
		Value text   `json:"value"`
	}
	tenantArg struct {
		Tenant shard.TenantID `json:"tenant_id"`
	}
	shardsArg struct {
		Shards []wireShard `json:"shards"`
	}
	updateArg struct {
		Selector wireSelector `json:"selector"`
		Update   wireUpdate   `json:"update"`
	}
	shardArg struct {
		ID wireShardID `json:"id"`
	}
	incrementArg struct {
		ID   wireShardID `json:"id"`
		Node NodeID      `json:"node_id"`
	}
	generationResp struct {
		Generation layer.Generation `json:"generation"`
		Node       NodeID           `json:"node_id"`
	}
	splittingArg struct {
		Tenant    shard.TenantID `json:"tenant_id"`
		Splitting bool           `json:"splitting"`
	}
	beginSplitArg struct {
		Tenant   shard.TenantID   `json:"tenant_id"`
		OldCount shard.ShardCount `json:"old_count"`
		Children []wireShard      `json:"children"`
	}
	countArg struct {
		Tenant shard.TenantID   `json:"tenant_id"`
		Count  shard.ShardCount `json:"count"`
	}
	outcomeResp struct {
		Outcome SplitOutcome `json:"outcome"`
	}
	nothing struct{}
)
