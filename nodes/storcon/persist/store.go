package persist

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"
	"unicode/utf8"

	"github.com/stratadb/strata/engine/layer"
	"github.com/stratadb/strata/engine/shard"
)

// Error classes. Every implementation wraps exactly these (with %w), so the
// controller tests the class with errors.Is whichever store it runs on.
var (
	// ErrNotFound: the node, shard or tenant named does not exist.
	ErrNotFound = errors.New("persist: not found")
	// ErrExists: an insert names a row that exists (or names it twice).
	ErrExists = errors.New("persist: already exists")
	// ErrConflict: the rows exist but are not in the state the call needs
	// (a split of a tenant already splitting, a generation set lower than
	// the stored one).
	ErrConflict = errors.New("persist: conflict")
	// ErrInvalid: the call's arguments are malformed (an invalid shard id,
	// a node id of 0, a JSON column that is not JSON, a value over a limit).
	ErrInvalid = errors.New("persist: invalid argument")
	// ErrGenerationExhausted: a generation would pass the largest value a
	// layer.Generation holds. The whole call fails; nothing changes.
	ErrGenerationExhausted = errors.New("persist: generation exhausted")
	// ErrClosed: the store was closed.
	ErrClosed = errors.New("persist: closed")
	// ErrFailed: an earlier write of the embedded store failed, so its log
	// may end in a partial record; every later call fails until the store
	// is reopened, which recovers from what is durable.
	ErrFailed = errors.New("persist: store failed, reopen it")
	// ErrCorrupt: durable state fails its checksum or does not decode, other
	// than the torn tail of the log that a crash leaves.
	ErrCorrupt = errors.New("persist: corrupt")
	// ErrConfig: a Config field is out of range.
	ErrConfig = errors.New("persist: invalid config")
)

// Limits on what one row or call may hold. They keep one transaction's log
// record bounded (see MaxRecordBytes) and are checked identically by every
// implementation, so a call that one store refuses the other refuses too.
const (
	// MaxTextBytes bounds a text column (a policy name, an address, an
	// availability zone).
	MaxTextBytes = 1024
	// MaxJSONBytes bounds a JSON text column (placement policy, config).
	MaxJSONBytes = 16 << 10
	// MaxBatchShards bounds the rows one insert or split may carry; a tenant
	// has at most 255 shards.
	MaxBatchShards = 256
)

// NodeID is a pageserver's node id. 0 means "none" and is never a node; ids
// above math.MaxInt64 are refused (the database column is a signed BIGINT).
type NodeID uint64

// Lifecycle is a node row's lifecycle: a deleted node keeps its row as a
// tombstone until an operator drops it.
type Lifecycle string

const (
	LifecycleActive  Lifecycle = "active"
	LifecycleDeleted Lifecycle = "deleted"
)

// Node is one row of the node registry.
type Node struct {
	ID NodeID `json:"node_id"`
	// SchedulingPolicy is the controller's name for the node's policy
	// (Active, Filling, Pause, PauseForRestart, Draining, Deleting); the
	// store keeps it as text and does not interpret it.
	SchedulingPolicy   string    `json:"scheduling_policy"`
	ListenHTTPAddr     string    `json:"listen_http_addr"`
	ListenHTTPPort     uint16    `json:"listen_http_port"`
	ListenPGAddr       string    `json:"listen_pg_addr"`
	ListenPGPort       uint16    `json:"listen_pg_port"`
	ListenGRPCAddr     string    `json:"listen_grpc_addr"`
	ListenGRPCPort     uint16    `json:"listen_grpc_port"`
	AvailabilityZoneID string    `json:"availability_zone_id"`
	Lifecycle          Lifecycle `json:"lifecycle"`
}

// TenantShard is one row of tenant_shards: the durable part of a shard.
type TenantShard struct {
	ID         shard.TenantShardID `json:"tenant_shard_id"`
	StripeSize uint32              `json:"shard_stripe_size"`
	// Generation is the latest generation issued for the shard;
	// layer.GenerationNone (0) if none was ever issued. It only increases.
	Generation layer.Generation `json:"generation"`
	// GenerationNode is the node Generation was issued to (0: none); a
	// re-attach of that node increments the generation again.
	GenerationNode NodeID `json:"generation_pageserver"`
	// PlacementPolicy and Config are JSON text the controller encodes; the
	// store checks only that they are JSON.
	PlacementPolicy string `json:"placement_policy"`
	Config          string `json:"config"`
	// Splitting marks a shard taking part in a split that has not
	// committed: start-up finds these rows (ListSplitting) and rolls back.
	Splitting        bool   `json:"splitting"`
	SchedulingPolicy string `json:"scheduling_policy"`
	// PreferredAZ is the availability zone the shard prefers ("": none).
	PreferredAZ string `json:"preferred_az_id"`
}

// Selector picks the shards an update applies to: every shard of Tenant, or
// the one shard Tenant/Shard.
type Selector struct {
	Tenant    shard.TenantID
	AllShards bool
	Shard     shard.ShardIndex
}

// WholeTenant selects every shard of t.
func WholeTenant(t shard.TenantID) Selector { return Selector{Tenant: t, AllShards: true} }

// OneShard selects the shard id.
func OneShard(id shard.TenantShardID) Selector {
	return Selector{Tenant: id.TenantID, Shard: id.Shard}
}

func (s Selector) String() string {
	if s.AllShards {
		return "tenant " + s.Tenant.String()
	}
	return "shard " + shard.TenantShardID{TenantID: s.Tenant, Shard: s.Shard}.String()
}

// Matches reports whether the selector picks id.
func (s Selector) Matches(id shard.TenantShardID) bool {
	return id.TenantID == s.Tenant && (s.AllShards || id.Shard == s.Shard)
}

// ShardUpdate names the columns an update sets; nil fields stay as they are.
// All selected rows change in one transaction.
type ShardUpdate struct {
	PlacementPolicy  *string
	Config           *string
	SchedulingPolicy *string
	// PreferredAZ sets the preferred availability zone; "" clears it.
	PreferredAZ *string
	// Generation sets the generation without issuing a new one: onboarding
	// a tenant whose generation was issued elsewhere. It must not be lower
	// than any selected row's generation (ErrConflict); equal is a no-op.
	Generation *layer.Generation
	// ClearGenerationNode forgets the node the generation was issued to,
	// so that node's re-attach no longer increments it (the shard is being
	// detached or made secondary-only).
	ClearGenerationNode bool
}

func (u ShardUpdate) empty() bool {
	return u.PlacementPolicy == nil && u.Config == nil && u.SchedulingPolicy == nil &&
		u.PreferredAZ == nil && u.Generation == nil && !u.ClearGenerationNode
}

// SplitOutcome is what AbortSplit found.
type SplitOutcome int

const (
	// SplitAborted: the children were deleted and the parents' splitting
	// marks cleared; the tenant is as before BeginSplit.
	SplitAborted SplitOutcome = iota + 1
	// SplitCommitted: the parents were already gone, so the split had
	// committed and cannot be undone; CommitSplit finishes it (it clears any
	// splitting mark left on the children).
	SplitCommitted
)

func (o SplitOutcome) String() string {
	switch o {
	case SplitAborted:
		return "aborted"
	case SplitCommitted:
		return "committed"
	}
	return fmt.Sprintf("SplitOutcome(%d)", int(o))
}

// Store is the storage controller's durable state. Every mutating call
// either takes effect completely and durably before it returns nil, or
// returns an error; an error other than the argument classes (ErrNotFound,
// ErrExists, ErrConflict, ErrInvalid, ErrGenerationExhausted) leaves the
// outcome unknown — the change may or may not have been made — as a lost
// database commit acknowledgement does. Lists are sorted (nodes by id,
// shards by shard.TenantShardID.Compare). Safe for concurrent use.
type Store interface {
	// UpsertNode registers n: inserts it, or replaces every column of an
	// existing row. The stored lifecycle is LifecycleActive whatever
	// n.Lifecycle says: registering a deleted node brings it back.
	UpsertNode(ctx context.Context, n Node) error
	// SetNodeSchedulingPolicy sets a node's scheduling policy.
	SetNodeSchedulingPolicy(ctx context.Context, id NodeID, policy string) error
	// SetNodeAvailabilityZone sets a node's availability zone.
	SetNodeAvailabilityZone(ctx context.Context, id NodeID, az string) error
	// MarkNodeDeleted sets a node's lifecycle to LifecycleDeleted; the row
	// stays (ListNodes shows it) until DeleteNode.
	MarkNodeDeleted(ctx context.Context, id NodeID) error
	// DeleteNode removes a node's row (an operator's drop).
	DeleteNode(ctx context.Context, id NodeID) error
	// ListNodes lists every node row, deleted ones included.
	ListNodes(ctx context.Context) ([]Node, error)

	// InsertTenantShards inserts rows in one transaction: all of them or,
	// on any error (a row that exists, the same id twice), none.
	InsertTenantShards(ctx context.Context, shards []TenantShard) error
	// DeleteTenant deletes every shard of a tenant (ErrNotFound if it has
	// none).
	DeleteTenant(ctx context.Context, tenant shard.TenantID) error
	// ListTenantShards lists every shard row.
	ListTenantShards(ctx context.Context) ([]TenantShard, error)
	// TenantShards lists one tenant's shards (empty if it has none).
	TenantShards(ctx context.Context, tenant shard.TenantID) ([]TenantShard, error)
	// UpdateTenantShards applies u to every shard sel selects, in one
	// transaction (ErrNotFound if it selects none).
	UpdateTenantShards(ctx context.Context, sel Selector, u ShardUpdate) error

	// IncrementGeneration issues the shard's next generation to node in
	// one atomic step (generation + 1, generation node := node) and returns
	// it once durable. It is strictly greater than any generation the
	// shard had before, across restarts.
	IncrementGeneration(ctx context.Context, id shard.TenantShardID, node NodeID) (layer.Generation, error)
	// ReAttach increments, in one step, the generation of every shard whose
	// generation node is node, and returns those rows after the increment
	// (empty if none). The node need not have a row.
	ReAttach(ctx context.Context, node NodeID) ([]TenantShard, error)
	// Generation reads a shard's generation and the node it was issued to,
	// for the pageserver's validate call.
	Generation(ctx context.Context, id shard.TenantShardID) (layer.Generation, NodeID, error)

	// SetSplitting marks (or clears) every shard of a tenant as splitting.
	SetSplitting(ctx context.Context, tenant shard.TenantID, splitting bool) error
	// ListSplitting lists the rows still marked splitting: the splits that
	// start-up must roll back (AbortSplit) or finish (CommitSplit).
	ListSplitting(ctx context.Context) ([]TenantShard, error)
	// BeginSplit, in one transaction, marks every parent (the tenant's
	// shards with count oldCount) splitting and inserts children (all the
	// shards of the new count), marked splitting, each with its parent's
	// generation. ErrNotFound without parents; ErrConflict if a parent is
	// missing or already splitting; ErrExists if a child exists.
	BeginSplit(ctx context.Context, tenant shard.TenantID, oldCount shard.ShardCount, children []TenantShard) error
	// CommitSplit, in one transaction, deletes the parents (count
	// oldCount) and clears the splitting mark of the tenant's other rows.
	// Repeating it is harmless; ErrNotFound if the tenant has no rows.
	CommitSplit(ctx context.Context, tenant shard.TenantID, oldCount shard.ShardCount) error
	// AbortSplit, in one transaction, deletes the children (count newCount)
	// and clears the parents' splitting marks — unless the parents are
	// gone, in which case it changes nothing and reports SplitCommitted.
	AbortSplit(ctx context.Context, tenant shard.TenantID, newCount shard.ShardCount) (SplitOutcome, error)

	// Close releases the store; every later call fails with ErrClosed.
	Close() error
}

// ValidateNode checks a node row against the limits every store applies.
func ValidateNode(n Node) error {
	if err := validateNodeID("node id", n.ID); err != nil {
		return err
	}
	for _, f := range []struct{ name, v string }{
		{"scheduling policy", n.SchedulingPolicy},
		{"listen http addr", n.ListenHTTPAddr},
		{"listen pg addr", n.ListenPGAddr},
		{"listen grpc addr", n.ListenGRPCAddr},
		{"availability zone", n.AvailabilityZoneID},
	} {
		if err := validateText(f.name, f.v); err != nil {
			return fmt.Errorf("node %d: %w", n.ID, err)
		}
	}
	if n.SchedulingPolicy == "" {
		return fmt.Errorf("%w: node %d: empty scheduling policy", ErrInvalid, n.ID)
	}
	switch n.Lifecycle {
	case LifecycleActive, LifecycleDeleted:
	default:
		return fmt.Errorf("%w: node %d: lifecycle %q", ErrInvalid, n.ID, n.Lifecycle)
	}
	return nil
}

// ValidateTenantShard checks a shard row against the limits every store
// applies.
func ValidateTenantShard(s TenantShard) error {
	if err := s.ID.Shard.Validate(); err != nil {
		return fmt.Errorf("%w: shard %s: %w", ErrInvalid, s.ID, err)
	}
	if s.GenerationNode != 0 {
		if err := validateNodeID("generation node", s.GenerationNode); err != nil {
			return fmt.Errorf("shard %s: %w", s.ID, err)
		}
	}
	if err := validateJSON("placement policy", s.PlacementPolicy); err != nil {
		return fmt.Errorf("shard %s: %w", s.ID, err)
	}
	if err := validateJSON("config", s.Config); err != nil {
		return fmt.Errorf("shard %s: %w", s.ID, err)
	}
	if err := validateText("scheduling policy", s.SchedulingPolicy); err != nil {
		return fmt.Errorf("shard %s: %w", s.ID, err)
	}
	if s.SchedulingPolicy == "" {
		return fmt.Errorf("%w: shard %s: empty scheduling policy", ErrInvalid, s.ID)
	}
	if err := validateText("preferred az", s.PreferredAZ); err != nil {
		return fmt.Errorf("shard %s: %w", s.ID, err)
	}
	return nil
}

// ValidateInsert checks InsertTenantShards's rows: at most MaxBatchShards,
// each valid. Every row is checked before any is looked up, so a batch with
// both an invalid and an existing row fails as invalid in every store.
func ValidateInsert(rows []TenantShard) error {
	if len(rows) > MaxBatchShards {
		return fmt.Errorf("%w: %d shards in one insert (limit MaxBatchShards = %d)", ErrInvalid, len(rows), MaxBatchShards)
	}
	for _, s := range rows {
		if err := ValidateTenantShard(s); err != nil {
			return err
		}
	}
	return nil
}

// ValidateUpdate checks an update's values (not whether rows match it).
func ValidateUpdate(u ShardUpdate) error {
	if u.empty() {
		return fmt.Errorf("%w: an update that sets nothing", ErrInvalid)
	}
	if u.PlacementPolicy != nil {
		if err := validateJSON("placement policy", *u.PlacementPolicy); err != nil {
			return err
		}
	}
	if u.Config != nil {
		if err := validateJSON("config", *u.Config); err != nil {
			return err
		}
	}
	if u.SchedulingPolicy != nil {
		if err := validateText("scheduling policy", *u.SchedulingPolicy); err != nil {
			return err
		}
		if *u.SchedulingPolicy == "" {
			return fmt.Errorf("%w: empty scheduling policy", ErrInvalid)
		}
	}
	if u.PreferredAZ != nil {
		if err := validateText("preferred az", *u.PreferredAZ); err != nil {
			return err
		}
	}
	return nil
}

// ValidateSplit checks BeginSplit's arguments: children are exactly the
// shards of one new count, a larger multiple of the old one, of tenant.
// It returns the new count.
func ValidateSplit(tenant shard.TenantID, oldCount shard.ShardCount, children []TenantShard) (shard.ShardCount, error) {
	if len(children) == 0 {
		return 0, fmt.Errorf("%w: split of %s without children", ErrInvalid, tenant)
	}
	newCount := children[0].ID.Shard.Count
	old := max(uint8(oldCount), 1)
	if uint8(newCount) <= old || uint8(newCount)%old != 0 {
		return 0, fmt.Errorf("%w: split of %s from %d into %d shards (want a larger multiple)", ErrInvalid, tenant, oldCount, newCount)
	}
	if len(children) != int(newCount) {
		return 0, fmt.Errorf("%w: split of %s into %d shards names %d children", ErrInvalid, tenant, newCount, len(children))
	}
	seen := make([]bool, int(newCount))
	for _, c := range children {
		if c.ID.TenantID != tenant || c.ID.Shard.Count != newCount {
			return 0, fmt.Errorf("%w: split of %s into %d shards names child %s", ErrInvalid, tenant, newCount, c.ID)
		}
		if err := ValidateTenantShard(c); err != nil {
			return 0, err
		}
		if seen[c.ID.Shard.Number] {
			return 0, fmt.Errorf("%w: split of %s names child %s twice", ErrInvalid, tenant, c.ID)
		}
		seen[c.ID.Shard.Number] = true
	}
	return newCount, nil
}

// ParentIndex is the index of the parent (of count oldCount) of the child
// shard with index c in a split.
func ParentIndex(c shard.ShardIndex, oldCount shard.ShardCount) shard.ShardIndex {
	old := max(uint8(oldCount), 1)
	return shard.ShardIndex{Number: shard.ShardNumber(uint8(c.Number) % old), Count: oldCount}
}

func validateNodeID(what string, id NodeID) error {
	if id == 0 || uint64(id) > math.MaxInt64 {
		return fmt.Errorf("%w: %s %d (want 1..%d)", ErrInvalid, what, uint64(id), int64(math.MaxInt64))
	}
	return nil
}

// ValidateNodeID checks a node id argument.
func ValidateNodeID(id NodeID) error { return validateNodeID("node id", id) }

func validateText(what, v string) error {
	if len(v) > MaxTextBytes {
		return fmt.Errorf("%w: %s of %d bytes (limit %d)", ErrInvalid, what, len(v), MaxTextBytes)
	}
	return validateChars(what, v)
}

func validateJSON(what, v string) error {
	if len(v) > MaxJSONBytes {
		return fmt.Errorf("%w: %s of %d bytes (limit %d)", ErrInvalid, what, len(v), MaxJSONBytes)
	}
	if !json.Valid([]byte(v)) {
		return fmt.Errorf("%w: %s %q is not JSON", ErrInvalid, what, v)
	}
	return validateChars(what, v)
}

// validateChars refuses what a PostgreSQL text column cannot hold: invalid
// UTF-8 and NUL bytes.
func validateChars(what, v string) error {
	if !utf8.ValidString(v) {
		return fmt.Errorf("%w: %s is not UTF-8", ErrInvalid, what)
	}
	if strings.IndexByte(v, 0) >= 0 {
		return fmt.Errorf("%w: %s holds a NUL byte", ErrInvalid, what)
	}
	return nil
}
