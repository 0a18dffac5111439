package placement

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"

	"github.com/stratadb/strata/engine/shard"
)

// Errors. ErrNoSchedulableNode is the one an API maps to 409 Conflict.
var (
	ErrNoSchedulableNode = errors.New("placement: no schedulable node")
	ErrUnknownNode       = errors.New("placement: unknown node")
	ErrNodeInUse         = errors.New("placement: node is referenced by intent")
	ErrInvalid           = errors.New("placement: invalid value")
	ErrIntentConflict    = errors.New("placement: conflicting intent")
)

// NodeID names a pageserver. NoNode (0) means "none": registered nodes have
// ids from 1.
type NodeID uint64

// NoNode is the absent node id.
const NoNode NodeID = 0

// AZ is an availability zone id; "" means unknown.
type AZ string

// Availability is what the controller's heartbeats say about a node.
type Availability uint8

// Node availabilities. Offline is the zero value: a node is offline until a
// heartbeat or re-attach proves otherwise.
const (
	Offline Availability = iota
	// WarmingUp: the node re-attached and has not yet answered a heartbeat.
	WarmingUp
	// Active: heartbeats succeed.
	Active
)

func (a Availability) String() string {
	switch a {
	case Offline:
		return "Offline"
	case WarmingUp:
		return "WarmingUp"
	case Active:
		return "Active"
	}
	return "Availability(" + strconv.Itoa(int(a)) + ")"
}

// Valid reports whether a is one of the three availabilities.
func (a Availability) Valid() bool { return a <= Active }

// MarshalText implements encoding.TextMarshaler.
func (a Availability) MarshalText() ([]byte, error) { return marshalEnum(a, a.Valid()) }

// UnmarshalText implements encoding.TextUnmarshaler.
func (a *Availability) UnmarshalText(b []byte) error {
	return unmarshalEnum(a, b, "availability", Offline, WarmingUp, Active)
}

// NodePolicy is a node's scheduling policy, set by operators and by the
// drain and fill workflows.
type NodePolicy uint8

// Node scheduling policies. Active is the zero value.
const (
	NodeActive NodePolicy = iota
	// NodeFilling: attached shards are being moved onto the node; it takes
	// new shards.
	NodeFilling
	// NodePause: takes no new shards.
	NodePause
	// NodePauseForRestart: takes no new shards; the node is about to
	// restart.
	NodePauseForRestart
	// NodeDraining: attached shards are being moved off the node; it takes
	// no new shards.
	NodeDraining
	// NodeDeleting: the node is being removed; it takes no new shards.
	NodeDeleting
)

func (p NodePolicy) String() string {
	switch p {
	case NodeActive:
		return "Active"
	case NodeFilling:
		return "Filling"
	case NodePause:
		return "Pause"
	case NodePauseForRestart:
		return "PauseForRestart"
	case NodeDraining:
		return "Draining"
	case NodeDeleting:
		return "Deleting"
	}
	return "NodePolicy(" + strconv.Itoa(int(p)) + ")"
}

// Valid reports whether p is a known policy.
func (p NodePolicy) Valid() bool { return p <= NodeDeleting }

// MarshalText implements encoding.TextMarshaler.
func (p NodePolicy) MarshalText() ([]byte, error) { return marshalEnum(p, p.Valid()) }

// UnmarshalText implements encoding.TextUnmarshaler.
func (p *NodePolicy) UnmarshalText(b []byte) error {
	return unmarshalEnum(p, b, "node scheduling policy",
		NodeActive, NodeFilling, NodePause, NodePauseForRestart, NodeDraining, NodeDeleting)
}

// Utilization is what a node last reported on GET /v1/utilization, as far
// as scheduling needs it.
type Utilization struct {
	// Score is max(wanted·10⁶/usable, shards·10⁶/max_shards): 10⁶ is full,
	// OverloadedScore or more is overloaded.
	Score uint64 `json:"utilization_score"`
	// MaxShardCount is the node's max_shard_count; 0 if unknown. With it the
	// scheduler raises Score for shards it placed since the report (see
	// Scheduler).
	MaxShardCount uint64 `json:"max_shard_count"`
}

// FullScore is the utilization score of a full node; OverloadedScore and
// above are overloaded: used only when nothing else fits.
const (
	FullScore       uint64 = 1_000_000
	OverloadedScore uint64 = 2 * FullScore
)

// Node is what the scheduler knows about a pageserver.
type Node struct {
	ID           NodeID       `json:"node_id"`
	Availability Availability `json:"availability"`
	Policy       NodePolicy   `json:"scheduling"`
	AZ           AZ           `json:"availability_zone_id"`
	Utilization  Utilization  `json:"utilization"`
}

// Available reports whether the controller may send the node requests (and
// so whether its locations count in the dirty test): only Active nodes.
func (n Node) Available() bool { return n.Availability == Active }

// MaySchedule reports whether the node may take new shards: Active, and its
// policy Active or Filling.
func (n Node) MaySchedule() bool {
	return n.Availability == Active && (n.Policy == NodeActive || n.Policy == NodeFilling)
}

// Validate checks the id and the enums.
func (n Node) Validate() error {
	switch {
	case n.ID == NoNode:
		return fmt.Errorf("%w: node id 0", ErrInvalid)
	case !n.Availability.Valid():
		return fmt.Errorf("%w: node %d availability %d", ErrInvalid, n.ID, n.Availability)
	case !n.Policy.Valid():
		return fmt.Errorf("%w: node %d scheduling policy %d", ErrInvalid, n.ID, n.Policy)
	}
	return nil
}

// PolicyKind distinguishes the three placement policies.
type PolicyKind uint8

// Placement policy kinds. Attached is the zero value, so Policy{} is
// Attached with no secondaries, Neon's default.
const (
	PolicyAttached PolicyKind = iota
	PolicySecondary
	PolicyDetached
)

// MaxSecondaries bounds Attached{n}: more warm standbys than this is a
// mistake, not a policy.
const MaxSecondaries = 16

// Policy is a shard's placement policy. JSON: {"Attached":n} (one attached
// location and n secondaries), "Secondary" (one secondary, no attachment),
// "Detached" (no location).
type Policy struct {
	Kind PolicyKind
	// Secondaries is n of Attached{n}; zero for the other kinds.
	Secondaries int
}

// Attached returns the policy Attached{n}.
func Attached(n int) Policy { return Policy{Kind: PolicyAttached, Secondaries: n} }

// Secondary returns the policy Secondary.
func Secondary() Policy { return Policy{Kind: PolicySecondary} }

// Detached returns the policy Detached.
func Detached() Policy { return Policy{Kind: PolicyDetached} }

// Validate checks the kind and 0 <= n <= MaxSecondaries.
func (p Policy) Validate() error {
	switch {
	case p.Kind > PolicyDetached:
		return fmt.Errorf("%w: placement policy kind %d", ErrInvalid, p.Kind)
	case p.Kind != PolicyAttached && p.Secondaries != 0:
		return fmt.Errorf("%w: placement policy %d with %d secondaries", ErrInvalid, p.Kind, p.Secondaries)
	case p.Secondaries < 0 || p.Secondaries > MaxSecondaries:
		return fmt.Errorf("%w: Attached{%d}: secondaries must be within 0..%d", ErrInvalid, p.Secondaries, MaxSecondaries)
	}
	return nil
}

func (p Policy) String() string {
	switch p.Kind {
	case PolicyAttached:
		return "Attached{" + strconv.Itoa(p.Secondaries) + "}"
	case PolicySecondary:
		return "Secondary"
	case PolicyDetached:
		return "Detached"
	}
	return "Policy(" + strconv.Itoa(int(p.Kind)) + ")"
}

// MarshalJSON encodes Neon's externally tagged form.
func (p Policy) MarshalJSON() ([]byte, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	switch p.Kind {
	case PolicySecondary:
		return []byte(`"Secondary"`), nil
	case PolicyDetached:
		return []byte(`"Detached"`), nil
	}
	return []byte(`{"Attached":` + strconv.Itoa(p.Secondaries) + `}`), nil
}

// UnmarshalJSON decodes {"Attached":n}, "Secondary" or "Detached".
func (p *Policy) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		switch s {
		case "Secondary":
			*p = Secondary()
			return nil
		case "Detached":
			*p = Detached()
			return nil
		}
		return fmt.Errorf("%w: placement policy %q", ErrInvalid, s)
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(b, &obj); err != nil || len(obj) != 1 || obj["Attached"] == nil {
		return fmt.Errorf("%w: placement policy %s, want {\"Attached\":n}, \"Secondary\" or \"Detached\"", ErrInvalid, b)
	}
	var n int
	if err := json.Unmarshal(obj["Attached"], &n); err != nil {
		return fmt.Errorf("%w: placement policy %s: %v", ErrInvalid, b, err)
	}
	q := Attached(n)
	if err := q.Validate(); err != nil {
		return err
	}
	*p = q
	return nil
}

// ShardSchedulingPolicy lets an operator hold back the controller's
// automatic changes to one shard.
type ShardSchedulingPolicy uint8

// Shard scheduling policies. Active is the zero value.
const (
	// ShardActive: schedule and reconcile freely.
	ShardActive ShardSchedulingPolicy = iota
	// ShardEssential: only changes needed for availability (failover when a
	// node goes offline, filling a policy); this package makes no others
	// (no optimisation), so it schedules as Active.
	ShardEssential
	// ShardPause: intent is frozen (Schedule and NodeOffline change
	// nothing); reconciles still run towards the frozen intent.
	ShardPause
	// ShardStop: intent frozen and no reconciles.
	ShardStop
)

func (p ShardSchedulingPolicy) String() string {
	switch p {
	case ShardActive:
		return "Active"
	case ShardEssential:
		return "Essential"
	case ShardPause:
		return "Pause"
	case ShardStop:
		return "Stop"
	}
	return "ShardSchedulingPolicy(" + strconv.Itoa(int(p)) + ")"
}

// Valid reports whether p is a known policy.
func (p ShardSchedulingPolicy) Valid() bool { return p <= ShardStop }

// MaySchedule reports whether intent may change automatically.
func (p ShardSchedulingPolicy) MaySchedule() bool { return p == ShardActive || p == ShardEssential }

// MarshalText implements encoding.TextMarshaler.
func (p ShardSchedulingPolicy) MarshalText() ([]byte, error) { return marshalEnum(p, p.Valid()) }

// UnmarshalText implements encoding.TextUnmarshaler.
func (p *ShardSchedulingPolicy) UnmarshalText(b []byte) error {
	return unmarshalEnum(p, b, "shard scheduling policy", ShardActive, ShardEssential, ShardPause, ShardStop)
}

// Mode is how a pageserver holds a shard; the names are the pageserver
// API's location modes. Detached (the zero value) means no location.
type Mode uint8

// Location modes.
const (
	ModeDetached Mode = iota
	ModeAttachedSingle
	ModeAttachedMulti
	ModeAttachedStale
	ModeSecondary
)

func (m Mode) String() string {
	switch m {
	case ModeDetached:
		return "Detached"
	case ModeAttachedSingle:
		return "AttachedSingle"
	case ModeAttachedMulti:
		return "AttachedMulti"
	case ModeAttachedStale:
		return "AttachedStale"
	case ModeSecondary:
		return "Secondary"
	}
	return "Mode(" + strconv.Itoa(int(m)) + ")"
}

// Valid reports whether m is a known mode.
func (m Mode) Valid() bool { return m <= ModeSecondary }

// Attached reports whether m is one of the three attached modes.
func (m Mode) Attached() bool {
	return m == ModeAttachedSingle || m == ModeAttachedMulti || m == ModeAttachedStale
}

// MarshalText implements encoding.TextMarshaler.
func (m Mode) MarshalText() ([]byte, error) { return marshalEnum(m, m.Valid()) }

// UnmarshalText implements encoding.TextUnmarshaler.
func (m *Mode) UnmarshalText(b []byte) error {
	return unmarshalEnum(m, b, "location mode",
		ModeDetached, ModeAttachedSingle, ModeAttachedMulti, ModeAttachedStale, ModeSecondary)
}

// Generation is an optional generation number: the controller issues them
// (strictly increasing per shard) before attaching; a shard onboarded as a
// secondary has none.
type Generation struct {
	N     uint32
	Valid bool
}

// Gen returns the valid generation n.
func Gen(n uint32) Generation { return Generation{N: n, Valid: true} }

func (g Generation) String() string {
	if !g.Valid {
		return "none"
	}
	return strconv.FormatUint(uint64(g.N), 10)
}

// MarshalJSON encodes a number, or null for none (the API's shape).
func (g Generation) MarshalJSON() ([]byte, error) {
	if !g.Valid {
		return []byte("null"), nil
	}
	return strconv.AppendUint(nil, uint64(g.N), 10), nil
}

// UnmarshalJSON decodes a number or null.
func (g *Generation) UnmarshalJSON(b []byte) error {
	var n *uint32
	if err := json.Unmarshal(b, &n); err != nil {
		return fmt.Errorf("%w: generation %s: %v", ErrInvalid, b, err)
	}
	*g = Generation{}
	if n != nil {
		*g = Gen(*n)
	}
	return nil
}

// LocationConf is a location's configuration as the pageserver API's
// location_config carries it (the controller converts it to and from
// pageapi.LocationConfig). Two confs are the same location state exactly
// when they are ==.
type LocationConf struct {
	Mode Mode `json:"mode"`
	// Generation is set for the attached modes only.
	Generation Generation `json:"generation"`
	// Warm is secondary_conf.warm, for ModeSecondary only.
	Warm bool `json:"warm"`
	// Shard is the shard number, count and stripe size.
	Shard shard.ShardIdentity `json:"shard"`
	// TenantConf is the tenant_conf object as canonical JSON text, opaque
	// here: only compared.
	TenantConf string `json:"tenant_conf"`
}

func (c LocationConf) String() string {
	switch {
	case c.Mode.Attached():
		return fmt.Sprintf("%s@%s", c.Mode, c.Generation)
	case c.Mode == ModeSecondary && c.Warm:
		return "Secondary(warm)"
	}
	return c.Mode.String()
}

// enum is the set of small enums above, so one pair of helpers serves
// their text forms.
type enum interface {
	~uint8
	String() string
}

func marshalEnum[E enum](e E, valid bool) ([]byte, error) {
	if !valid {
		return nil, fmt.Errorf("%w: %s", ErrInvalid, e)
	}
	return []byte(e.String()), nil
}

func unmarshalEnum[E enum](dst *E, b []byte, what string, values ...E) error {
	for _, v := range values {
		if v.String() == string(b) {
			*dst = v
			return nil
		}
	}
	return fmt.Errorf("%w: %s %q", ErrInvalid, what, b)
}
