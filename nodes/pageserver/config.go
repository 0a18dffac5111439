package pageserver

import (
	"crypto/ed25519"
	"fmt"
)

// Config configures a pageserver node. Zero fields take the defaults named
// beside them; Validate rejects missing and negative ones.
type Config struct {
	// NodeID is the node's numeric id (the controller's node_id). Required.
	NodeID uint64
	// PageAddr is where the page service (gRPC in real mode) listens.
	// Required.
	PageAddr string
	// HTTPAddr, if set, is where the management API is served over the
	// seam (the simulator). A daemon leaves it empty and serves
	// Node.Router() over real HTTP itself.
	HTTPAddr string
	// AvailabilityZone is reported to the controller (may be empty).
	AvailabilityZone string
	// AuthKeys, if not empty, turns on JWT checks: the page service needs
	// scope tenant for the addressed tenant, the management API scope
	// pageserverapi (admin passes both).
	AuthKeys []ed25519.PublicKey
	// MaxTenantShards bounds the tenant shards held. Default 1000.
	MaxTenantShards int
	// MaxTimelinesPerTenant bounds a shard's timelines. Default 1000.
	MaxTimelinesPerTenant int
	// MaxConcurrentBackground bounds, per kind (flush, compaction, GC),
	// the timelines doing that background work at once. Default 4.
	MaxConcurrentBackground int
	// MaxOpenLayerFiles bounds the layer files open at once across every
	// tenant shard of the node (one engine/layercache shared by all their
	// engines): beyond it the least recently used readers are closed and
	// reopened on demand. Default DefaultMaxOpenLayerFiles.
	MaxOpenLayerFiles int
	// PageService are the page service's limits.
	PageService PageServiceConfig
	// WALReceiver configures WAL ingest from the safekeepers.
	WALReceiver WALReceiverConfig
	// Bugs plants deliberate defects; only the simulator sets it.
	Bugs Bugs
}

// Defaults of Config.
const (
	DefaultMaxTenantShards         = 1000
	DefaultMaxTimelinesPerTenant   = 1000
	DefaultMaxConcurrentBackground = 4
	DefaultMaxOpenLayerFiles       = 1000
)

func (c Config) withDefaults() Config {
	if c.MaxTenantShards == 0 {
		c.MaxTenantShards = DefaultMaxTenantShards
	}
	if c.MaxTimelinesPerTenant == 0 {
		c.MaxTimelinesPerTenant = DefaultMaxTimelinesPerTenant
	}
	if c.MaxConcurrentBackground == 0 {
		c.MaxConcurrentBackground = DefaultMaxConcurrentBackground
	}
	if c.MaxOpenLayerFiles == 0 {
		c.MaxOpenLayerFiles = DefaultMaxOpenLayerFiles
	}
	c.PageService = c.PageService.withDefaults()
	c.WALReceiver = c.WALReceiver.withDefaults()
	return c
}

// Validate reports a configuration Start cannot use.
func (c Config) Validate() error {
	c = c.withDefaults()
	switch {
	case c.NodeID == 0:
		return fmt.Errorf("%w: NodeID is required", ErrConfig)
	case c.PageAddr == "":
		return fmt.Errorf("%w: PageAddr is required", ErrConfig)
	case c.MaxTenantShards < 1:
		return fmt.Errorf("%w: MaxTenantShards %d < 1", ErrConfig, c.MaxTenantShards)
	case c.MaxConcurrentBackground < 1:
		return fmt.Errorf("%w: MaxConcurrentBackground %d < 1", ErrConfig, c.MaxConcurrentBackground)
	case c.MaxTimelinesPerTenant < 1:
		return fmt.Errorf("%w: MaxTimelinesPerTenant %d < 1", ErrConfig, c.MaxTimelinesPerTenant)
	case c.MaxOpenLayerFiles < 1:
		return fmt.Errorf("%w: MaxOpenLayerFiles %d < 1", ErrConfig, c.MaxOpenLayerFiles)
	}
	if err := c.WALReceiver.Validate(); err != nil {
		return err
	}
	return c.PageService.Validate()
}
