package pageserver

import (
	"crypto/ed25519"
	"fmt"
	"time"

	"github.com/stratadb/strata/net"
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
	// ControlPlane, if set, is the storage controller: Start calls its
	// re-attach upcall before loading anything and makes the local tenant
	// shards match the answer (reattach.go). Nil: no controller, the local
	// location files are authoritative.
	ControlPlane net.HTTPClient
	// ControlPlaneToken is sent to the controller as a Bearer token (a JWT
	// of scope generations_api); "" sends none.
	ControlPlaneToken string
	// AdvertiseHTTPAddr and AdvertisePageAddr ("host:port") are registered
	// with the controller as where the management API and the page service
	// are reached. They default to HTTPAddr and PageAddr; with ControlPlane
	// set both must end up concrete (a host other than 0.0.0.0 or ::, a
	// port other than 0).
	AdvertiseHTTPAddr, AdvertisePageAddr string
	// ReAttachRetries bounds the retries of a failed re-attach call (after
	// the first attempt); when they run out Start fails. Default 30.
	ReAttachRetries int
	// ReAttachBackoff is the wait before the first retry, doubling up to
	// ReAttachBackoffMax. Defaults 1s and 10s.
	ReAttachBackoff, ReAttachBackoffMax time.Duration
	// ReAttachTimeout bounds one re-attach call. Default 30s.
	ReAttachTimeout time.Duration
	// RemoteStorage configures uploads to and downloads from the object
	// store the node is given (env.Store; nil: no remote storage, the
	// local disk is all there is). docs/remote-storage.md, "The
	// pageserver's side".
	RemoteStorage RemoteStorageConfig
	// ShardSplitTimeout bounds the waits of one shard split: for the
	// parent's uploads to drain and for the children's ingest to reach the
	// parent's last record LSN (split.go). Default 60s.
	ShardSplitTimeout time.Duration
	// Bugs plants deliberate defects; only the simulator sets it.
	Bugs Bugs
}

// Defaults of Config.
const (
	DefaultMaxTenantShards         = 1000
	DefaultMaxTimelinesPerTenant   = 1000
	DefaultMaxConcurrentBackground = 4
	DefaultMaxOpenLayerFiles       = 1000
	DefaultReAttachRetries         = 30
	DefaultReAttachBackoff         = time.Second
	DefaultReAttachBackoffMax      = 10 * time.Second
	DefaultReAttachTimeout         = 30 * time.Second
	DefaultShardSplitTimeout       = 60 * time.Second
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
	c.RemoteStorage = c.RemoteStorage.withDefaults()
	if c.ReAttachRetries == 0 {
		c.ReAttachRetries = DefaultReAttachRetries
	}
	if c.ReAttachBackoff == 0 {
		c.ReAttachBackoff = DefaultReAttachBackoff
	}
	if c.ReAttachBackoffMax == 0 {
		c.ReAttachBackoffMax = max(DefaultReAttachBackoffMax, c.ReAttachBackoff)
	}
	if c.ReAttachTimeout == 0 {
		c.ReAttachTimeout = DefaultReAttachTimeout
	}
	if c.ShardSplitTimeout == 0 {
		c.ShardSplitTimeout = DefaultShardSplitTimeout
	}
	if c.AdvertiseHTTPAddr == "" {
		c.AdvertiseHTTPAddr = c.HTTPAddr
	}
	if c.AdvertisePageAddr == "" {
		c.AdvertisePageAddr = c.PageAddr
	}
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
	case c.ShardSplitTimeout < 0:
		return fmt.Errorf("%w: ShardSplitTimeout %v < 0", ErrConfig, c.ShardSplitTimeout)
	}
	if err := c.validateReAttach(); err != nil {
		return err
	}
	if err := c.WALReceiver.Validate(); err != nil {
		return err
	}
	if err := c.RemoteStorage.Validate(); err != nil {
		return err
	}
	return c.PageService.Validate()
}
