package pageapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/stratadb/strata/engine/lsn"
	"github.com/stratadb/strata/engine/shard"
)

// The pageserver's management API (HTTP/JSON), as the storage controller,
// operators and `strata` use it. Shapes follow Neon's (docs/neon-compat.md,
// Pageserver management API); the routes are the Route* patterns below.
const (
	RouteLocationConfig     = "PUT /v1/tenant/{tenant_shard_id}/location_config"
	RouteLocationConfigList = "GET /v1/location_config"
	RouteTimelineCreate     = "POST /v1/tenant/{tenant_shard_id}/timeline"
	RouteTimelineList       = "GET /v1/tenant/{tenant_shard_id}/timeline"
	RouteTimelineDelete     = "DELETE /v1/tenant/{tenant_shard_id}/timeline/{timeline_id}"
	RouteUtilization        = "GET /v1/utilization"
	RouteWaitLSN            = "POST /v1/tenant/{tenant_shard_id}/wait_lsn"
	RouteDebugTasks         = "GET /v1/debug/tasks"
	RouteShardSplit         = "PUT /v1/tenant/{tenant_shard_id}/shard_split"
)

// LocationMode is how a pageserver holds a tenant shard.
type LocationMode string

// The attachment modes.
const (
	// ModeAttachedSingle: the one attached location; uploads and deletes.
	ModeAttachedSingle LocationMode = "AttachedSingle"
	// ModeAttachedMulti: attached while another location may be too (during
	// a migration); uploads, never deletes.
	ModeAttachedMulti LocationMode = "AttachedMulti"
	// ModeAttachedStale: attached with a generation known to be old;
	// neither uploads nor deletes.
	ModeAttachedStale LocationMode = "AttachedStale"
	// ModeSecondary: a warm standby that never serves.
	ModeSecondary LocationMode = "Secondary"
	// ModeDetached: not here; local data removed.
	ModeDetached LocationMode = "Detached"
)

// Attached reports whether m serves pages (one of the three attached modes).
func (m LocationMode) Attached() bool {
	return m == ModeAttachedSingle || m == ModeAttachedMulti || m == ModeAttachedStale
}

// Valid reports whether m is a known mode.
func (m LocationMode) Valid() bool { return m.Attached() || m == ModeSecondary || m == ModeDetached }

// SecondaryConf configures a secondary location.
type SecondaryConf struct {
	Warm bool `json:"warm"`
}

// TenantConf is a tenant's page-engine policy. Absent fields take the
// pageserver's defaults; `{}` means all defaults.
type TenantConf struct {
	// CheckpointDistance: bytes of WAL in the open layer before it is
	// flushed to an L0 delta.
	CheckpointDistance *int64 `json:"checkpoint_distance,omitempty"`
	// CheckpointTimeout: flush the open layer at least this often (Go
	// duration text, e.g. "10m").
	CheckpointTimeout *string `json:"checkpoint_timeout,omitempty"`
	// CompactionThreshold: L0 deltas that trigger compaction.
	CompactionThreshold *int `json:"compaction_threshold,omitempty"`
	// CompactionPeriod: how often compaction and image creation run.
	CompactionPeriod *string `json:"compaction_period,omitempty"`
	// ImageCreationThreshold: deltas above an image that trigger a new one.
	ImageCreationThreshold *int `json:"image_creation_threshold,omitempty"`
	// GCHorizon: bytes of WAL below last_record_lsn that GC keeps.
	GCHorizon *uint64 `json:"gc_horizon,omitempty"`
	// GCPeriod: how often GC runs ("0s" turns it off).
	GCPeriod *string `json:"gc_period,omitempty"`
	// PITRInterval: history GC keeps by time, on top of GCHorizon.
	PITRInterval *string `json:"pitr_interval,omitempty"`
	// LSNLeaseLength: how long a LeaseLsn lease lasts.
	LSNLeaseLength *string `json:"lsn_lease_length,omitempty"`
}

// ErrBadConfig is wrapped by validation errors of the types here.
var ErrBadConfig = errors.New("pageapi: invalid request")

// Durations parses the duration fields; a malformed one is an error naming
// the field.
func (c TenantConf) Durations() (map[string]time.Duration, error) {
	out := map[string]time.Duration{}
	for _, f := range []struct {
		name string
		v    *string
	}{{"checkpoint_timeout", c.CheckpointTimeout}, {"compaction_period", c.CompactionPeriod},
		{"gc_period", c.GCPeriod}, {"pitr_interval", c.PITRInterval}, {"lsn_lease_length", c.LSNLeaseLength}} {
		if f.v == nil {
			continue
		}
		d, err := time.ParseDuration(*f.v)
		if err != nil || d < 0 {
			return nil, fmt.Errorf("%w: tenant_conf.%s %q is not a non-negative duration", ErrBadConfig, f.name, *f.v)
		}
		out[f.name] = d
	}
	return out, nil
}

// LocationConfig is the body of PUT location_config.
type LocationConfig struct {
	Mode            LocationMode   `json:"mode"`
	Generation      *uint32        `json:"generation"`
	SecondaryConf   *SecondaryConf `json:"secondary_conf"`
	ShardNumber     uint8          `json:"shard_number"`
	ShardCount      uint8          `json:"shard_count"`
	ShardStripeSize uint32         `json:"shard_stripe_size"`
	TenantConf      *TenantConf    `json:"tenant_conf"`
}

// Identity is the shard identity the config describes. An unsharded
// tenant may leave the stripe 0: it takes the default (it never matters
// with fewer than two shards).
func (c LocationConfig) Identity() shard.ShardIdentity {
	id := shard.ShardIdentity{Number: shard.ShardNumber(c.ShardNumber), Count: shard.ShardCount(c.ShardCount), StripeSize: c.ShardStripeSize}
	if id.StripeSize == 0 && id.Count < 2 {
		id.StripeSize = shard.DefaultStripeSize
	}
	return id
}

// Validate checks c for the shard id it is sent to: attached modes need a
// generation, Secondary forbids one, tenant_conf must be an object, and the
// shard fields must match the id.
func (c LocationConfig) Validate(id shard.TenantShardID) error {
	switch {
	case !c.Mode.Valid():
		return fmt.Errorf("%w: mode %q", ErrBadConfig, c.Mode)
	case c.Mode.Attached() && c.Generation == nil:
		return fmt.Errorf("%w: mode %s needs a generation", ErrBadConfig, c.Mode)
	case c.Mode == ModeSecondary && c.Generation != nil:
		return fmt.Errorf("%w: a Secondary location has no generation", ErrBadConfig)
	case c.Mode != ModeDetached && c.TenantConf == nil:
		return fmt.Errorf("%w: tenant_conf must be an object ({} for defaults)", ErrBadConfig)
	case c.Mode == ModeDetached:
		return nil
	}
	ident := c.Identity()
	if ident.Count > 0 && ident.StripeSize == 0 {
		return fmt.Errorf("%w: shard_stripe_size 0", ErrBadConfig)
	}
	if err := ident.Validate(); err != nil {
		return fmt.Errorf("%w: %v", ErrBadConfig, err)
	}
	if ident.Index() != id.Shard {
		return fmt.Errorf("%w: shard %s in the body, %s in the path", ErrBadConfig, ident.Index(), id.Shard)
	}
	if c.TenantConf != nil {
		if _, err := c.TenantConf.Durations(); err != nil {
			return err
		}
	}
	return nil
}

// ShardLocation names where a shard is attached.
type ShardLocation struct {
	ShardID string `json:"shard_id"`
	NodeID  uint64 `json:"node_id"`
}

// LocationConfigResponse answers an attached or secondary PUT
// location_config (Detached answers null).
type LocationConfigResponse struct {
	Shards     []ShardLocation `json:"shards"`
	StripeSize *uint32         `json:"stripe_size"`
}

// TenantShardLocation is one entry of the location list, encoded as the
// pair [tenant_shard_id, config|null].
type TenantShardLocation struct {
	ID     string
	Config *LocationConfig
}

// MarshalJSON encodes the pair form.
func (l TenantShardLocation) MarshalJSON() ([]byte, error) {
	return json.Marshal([]any{l.ID, l.Config})
}

// UnmarshalJSON decodes the pair form.
func (l *TenantShardLocation) UnmarshalJSON(b []byte) error {
	var pair []json.RawMessage
	if err := json.Unmarshal(b, &pair); err != nil {
		return err
	}
	if len(pair) != 2 {
		return fmt.Errorf("%w: location entry has %d elements, want 2", ErrBadConfig, len(pair))
	}
	if err := json.Unmarshal(pair[0], &l.ID); err != nil {
		return err
	}
	return json.Unmarshal(pair[1], &l.Config)
}

// LocationConfigList answers GET /v1/location_config.
type LocationConfigList struct {
	TenantShards []TenantShardLocation `json:"tenant_shards"`
}

// ShardSplitRequest is the body of PUT …/shard_split: split the addressed
// (parent) shard into its children of NewShardCount. NewStripeSize may
// change the stripe only when the tenant is unsharded (count 0 or 1);
// nil keeps the parent's.
type ShardSplitRequest struct {
	NewShardCount shard.ShardCount `json:"new_shard_count"`
	NewStripeSize *uint32          `json:"new_stripe_size,omitempty"`
}

// ShardSplitResponse answers a split with the children now attached on
// this pageserver, in shard-number order.
type ShardSplitResponse struct {
	NewShards []shard.TenantShardID `json:"new_shards"`
}

// TimelineCreateRequest is the body of POST …/timeline. A branch names its
// ancestor and, optionally, the LSN to branch at (default: the ancestor's
// last record LSN).
type TimelineCreateRequest struct {
	NewTimelineID      shard.TimelineID  `json:"new_timeline_id"`
	AncestorTimelineID *shard.TimelineID `json:"ancestor_timeline_id,omitempty"`
	AncestorStartLSN   *lsn.LSN          `json:"ancestor_start_lsn,omitempty"`
	// InitLSN is where a root timeline's WAL starts (Strata's addition;
	// default 0/0).
	InitLSN *lsn.LSN `json:"init_lsn,omitempty"`
}

// TimelineInfo describes one timeline in the list and create answers.
type TimelineInfo struct {
	TenantID            string            `json:"tenant_id"`
	TimelineID          shard.TimelineID  `json:"timeline_id"`
	AncestorTimelineID  *shard.TimelineID `json:"ancestor_timeline_id"`
	AncestorLSN         *lsn.LSN          `json:"ancestor_lsn"`
	LastRecordLSN       lsn.LSN           `json:"last_record_lsn"`
	DiskConsistentLSN   lsn.LSN           `json:"disk_consistent_lsn"`
	RemoteConsistentLSN lsn.LSN           `json:"remote_consistent_lsn"`
	LatestGCCutoffLSN   lsn.LSN           `json:"latest_gc_cutoff_lsn"`
}

// Utilization answers GET /v1/utilization. Byte counts are capped at
// 2^63-1 on the wire.
type Utilization struct {
	DiskUsageBytes   uint64 `json:"disk_usage_bytes"`
	FreeSpaceBytes   uint64 `json:"free_space_bytes"`
	DiskWantedBytes  uint64 `json:"disk_wanted_bytes"`
	DiskUsablePct    uint64 `json:"disk_usable_pct"`
	ShardCount       uint64 `json:"shard_count"`
	MaxShardCount    uint64 `json:"max_shard_count"`
	UtilizationScore uint64 `json:"utilization_score"`
	CapturedAt       string `json:"captured_at"`
}

// UtilizationScore is max(wanted·10⁶/usable, shards·10⁶/max_shards): 10⁶
// is full, 2·10⁶ or more overloaded.
func UtilizationScore(wanted, usable, shards, maxShards uint64) uint64 {
	var a, b uint64
	if usable > 0 {
		a = uint64(float64(wanted) * 1e6 / float64(usable))
	}
	if maxShards > 0 {
		b = shards * 1_000_000 / maxShards
	}
	return max(a, b)
}

// WaitLSNRequest is the body of POST wait_lsn: each timeline's LSN to
// wait for, plus "timeout" (a Go duration, e.g. "5s"), in one flat object.
type WaitLSNRequest struct {
	LSNs    map[shard.TimelineID]lsn.LSN
	Timeout time.Duration
}

// UnmarshalJSON decodes the flat form.
func (w *WaitLSNRequest) UnmarshalJSON(b []byte) error {
	var m map[string]string
	if err := json.Unmarshal(b, &m); err != nil {
		return fmt.Errorf("%w: wait_lsn body: %v", ErrBadConfig, err)
	}
	w.LSNs = map[shard.TimelineID]lsn.LSN{}
	for k, v := range m { //strata:nondeterministic building a map from a map; order cannot matter
		if k == "timeout" {
			d, err := time.ParseDuration(v)
			if err != nil {
				ms, merr := strconv.ParseUint(v, 10, 32)
				if merr != nil {
					return fmt.Errorf("%w: wait_lsn timeout %q", ErrBadConfig, v)
				}
				d = time.Duration(ms) * time.Millisecond
			}
			w.Timeout = d
			continue
		}
		id, err := shard.ParseTimelineID(k)
		if err != nil {
			return fmt.Errorf("%w: wait_lsn key %q: %v", ErrBadConfig, k, err)
		}
		l, err := lsn.Parse(v)
		if err != nil {
			return fmt.Errorf("%w: wait_lsn %s: %v", ErrBadConfig, k, err)
		}
		w.LSNs[id] = l
	}
	return nil
}

// MarshalJSON encodes the flat form.
func (w WaitLSNRequest) MarshalJSON() ([]byte, error) {
	m := make(map[string]string, len(w.LSNs)+1)
	for id, l := range w.LSNs { //strata:nondeterministic encoding/json sorts map keys
		m[id.String()] = l.String()
	}
	if w.Timeout > 0 {
		m["timeout"] = w.Timeout.String()
	}
	return json.Marshal(m)
}

// TaskInfo is one entry of GET /v1/debug/tasks.
type TaskInfo struct {
	Name     string `json:"name"`
	Kind     string `json:"kind"`
	Tenant   string `json:"tenant_shard_id,omitempty"`
	Timeline string `json:"timeline_id,omitempty"`
	// Age is how long the task has run (Go duration text).
	Age string `json:"age"`
}
