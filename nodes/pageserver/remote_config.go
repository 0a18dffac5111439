package pageserver

import (
	"fmt"
	"time"

	"github.com/stratadb/strata/engine/remote"
)

// RemoteStorageConfig configures the node's use of object storage
// (env.Store; without a store none of it applies). Zero fields take the
// defaults named beside them; Validate rejects negative ones.
type RemoteStorageConfig struct {
	// Prefix is put before every key (remote.NewLayout); "" for none.
	Prefix string
	// MaxInFlight bounds the uploads (layers and indexes) one timeline's
	// upload queue runs at once. Default DefaultUploadMaxInFlight.
	MaxInFlight int
	// MaxConcurrentDownloads bounds the layer downloads of the whole node
	// at once (on demand, in the background, a secondary's). Default
	// DefaultMaxConcurrentDownloads.
	MaxConcurrentDownloads int
	// BackgroundDownloads bounds the eager background downloads of the
	// layers an attach left remote, across the node (each also takes a
	// MaxConcurrentDownloads slot, so keep it below that: reads come
	// first). Default DefaultBackgroundDownloads. ondemand.go.
	BackgroundDownloads int
	// OnDemandOnly turns the background downloads off: a remote layer is
	// downloaded only when a read (or compaction) needs it.
	OnDemandOnly bool
	// MaxLocalLayerBytes is the node's disk budget for layer files: while
	// the resident layers of its attached shards exceed it, the least
	// recently used layers whose objects the newest uploaded index names
	// (never one not yet uploaded) and no read holds are evicted (they
	// become remote, downloaded again on use); background downloads stop
	// at it. 0 (the default): unlimited. eviction.go.
	MaxLocalLayerBytes int64
	// EvictionInterval is how often the budget is checked (also after
	// every on-demand download). Default DefaultEvictionInterval.
	EvictionInterval time.Duration
	// UploadBackoff is the wait before the second retry of a failed upload
	// or delete (the first is immediate), doubling up to
	// UploadBackoffMax. Defaults DefaultUploadBackoff and
	// DefaultUploadBackoffMax. Uploads are retried forever.
	UploadBackoff, UploadBackoffMax time.Duration
	// Download is the download retry policy (zero fields: the defaults of
	// remote.RetryConfig, 10 retries).
	Download remote.RetryConfig
	// ValidateInterval is how long the validator gathers work (uploaded
	// remote_consistent_lsn values, deletion lists) before asking the
	// controller about their generations in one call. Default
	// DefaultValidateInterval.
	ValidateInterval time.Duration
	// DeletionFlushKeys and DeletionFlushInterval: the deletion queue
	// writes its pending keys as a list on local disk once it holds this
	// many, or once the oldest has waited this long. Defaults
	// DefaultDeletionFlushKeys and DefaultDeletionFlushInterval.
	DeletionFlushKeys     int
	DeletionFlushInterval time.Duration
	// ShutdownUploadTimeout bounds how long a clean shutdown waits for the
	// upload queues to drain. Default DefaultShutdownUploadTimeout.
	ShutdownUploadTimeout time.Duration
	// Secondaries configures heatmap uploads and Secondary locations'
	// downloads (heatmap.go, secondary.go).
	Secondaries SecondaryConfig
	// TestFailures, if above 0, wraps the store so that each distinct
	// operation fails its first TestFailures attempts with a transient
	// error (objstore.NewFailFirst; tests and test deployments only).
	TestFailures int
}

// Defaults of RemoteStorageConfig.
const (
	DefaultUploadMaxInFlight      = 100
	DefaultMaxConcurrentDownloads = 16
	DefaultBackgroundDownloads    = 2
	DefaultEvictionInterval       = 10 * time.Second
	DefaultUploadBackoff          = 100 * time.Millisecond
	DefaultUploadBackoffMax       = 10 * time.Second
	DefaultValidateInterval       = time.Second
	DefaultDeletionFlushKeys      = 16384
	DefaultDeletionFlushInterval  = 10 * time.Second
	DefaultShutdownUploadTimeout  = 10 * time.Second
	// uploadWarnFailures: failures of an upload before this many are
	// logged at info (a blip), from it on at warn.
	uploadWarnFailures = 3
)

func (c RemoteStorageConfig) withDefaults() RemoteStorageConfig {
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	if c.MaxInFlight == 0 {
		c.MaxInFlight = DefaultUploadMaxInFlight
	}
	if c.MaxConcurrentDownloads == 0 {
		c.MaxConcurrentDownloads = DefaultMaxConcurrentDownloads
	}
	if c.BackgroundDownloads == 0 {
		c.BackgroundDownloads = DefaultBackgroundDownloads
	}
	def(&c.EvictionInterval, DefaultEvictionInterval)
	def(&c.UploadBackoff, DefaultUploadBackoff)
	if c.UploadBackoffMax == 0 {
		c.UploadBackoffMax = max(DefaultUploadBackoffMax, c.UploadBackoff)
	}
	def(&c.ValidateInterval, DefaultValidateInterval)
	if c.DeletionFlushKeys == 0 {
		c.DeletionFlushKeys = DefaultDeletionFlushKeys
	}
	def(&c.DeletionFlushInterval, DefaultDeletionFlushInterval)
	def(&c.ShutdownUploadTimeout, DefaultShutdownUploadTimeout)
	c.Secondaries = c.Secondaries.withDefaults()
	return c
}

// Validate reports settings that cannot be applied. It does not change c.
func (c RemoteStorageConfig) Validate() error {
	c = c.withDefaults()
	if _, err := remote.NewLayout(c.Prefix); err != nil {
		return fmt.Errorf("%w: RemoteStorage.Prefix: %v", ErrConfig, err)
	}
	for _, f := range []struct {
		name string
		v    int64
	}{
		{"MaxInFlight", int64(c.MaxInFlight)},
		{"MaxConcurrentDownloads", int64(c.MaxConcurrentDownloads)},
		{"BackgroundDownloads", int64(c.BackgroundDownloads)},
		{"EvictionInterval", int64(c.EvictionInterval)},
		{"UploadBackoff", int64(c.UploadBackoff)},
		{"ValidateInterval", int64(c.ValidateInterval)},
		{"DeletionFlushKeys", int64(c.DeletionFlushKeys)},
		{"DeletionFlushInterval", int64(c.DeletionFlushInterval)},
		{"ShutdownUploadTimeout", int64(c.ShutdownUploadTimeout)},
	} {
		if f.v < 1 {
			return fmt.Errorf("%w: RemoteStorage.%s %d < 1", ErrConfig, f.name, f.v)
		}
	}
	switch {
	case c.UploadBackoffMax < c.UploadBackoff:
		return fmt.Errorf("%w: RemoteStorage.UploadBackoffMax %v < UploadBackoff %v", ErrConfig, c.UploadBackoffMax, c.UploadBackoff)
	case c.TestFailures < 0:
		return fmt.Errorf("%w: RemoteStorage.TestFailures %d < 0", ErrConfig, c.TestFailures)
	case c.MaxLocalLayerBytes < 0:
		return fmt.Errorf("%w: RemoteStorage.MaxLocalLayerBytes %d < 0", ErrConfig, c.MaxLocalLayerBytes)
	}
	if err := c.Download.Validate(); err != nil {
		return fmt.Errorf("%w: RemoteStorage.Download: %v", ErrConfig, err)
	}
	return c.Secondaries.Validate()
}

// backoff is the wait before the retry that follows the failures-th
// consecutive failure of an upload or delete: none after the first, then
// UploadBackoff doubling up to UploadBackoffMax.
func (c RemoteStorageConfig) backoff(failures int) time.Duration {
	if failures <= 1 {
		return 0
	}
	d := c.UploadBackoff
	for i := 2; i < failures && d < c.UploadBackoffMax; i++ {
		d *= 2
	}
	return min(d, c.UploadBackoffMax)
}
