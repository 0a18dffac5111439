package safekeeper

import (
	"errors"
	"fmt"
	"time"

	"github.com/stratadb/strata/engine/skproto"
	"github.com/stratadb/strata/nodes/safekeeper/walstore"
)

// Config configures a Safekeeper.
type Config struct {
	// NodeID names this safekeeper (in greetings, broker entries, logs).
	NodeID string
	// ListenAddr is where the service listens.
	ListenAddr string
	// AdvertiseAddr is the address published to the broker; defaults to
	// the bound listen address.
	AdvertiseAddr string
	// BrokerAddr is the broker's address; empty disables publishing and
	// offload coordination (this safekeeper then offloads on its own).
	BrokerAddr string
	// SegmentBytes is the WAL segment size for new timelines. Default 16 MiB.
	SegmentBytes int64
	// PublishInterval is how often timeline state goes to the broker.
	// Default 1s.
	PublishInterval time.Duration
	// OffloadInterval is how often sealed segments are considered for
	// upload. Default 1s; 0 with Offload false disables offload.
	OffloadInterval time.Duration
	// Offload enables offload to env.Store (which must be set).
	Offload bool
	// OffloadRetries bounds attempts per segment upload on retryable
	// errors. Default 5.
	OffloadRetries int
	// OffloadBackoff is the first retry delay, doubled up to 32×. Default
	// 100ms.
	OffloadBackoff time.Duration
	// PeerLiveness: a broker entry older than this is a dead peer.
	// Default 3 × PublishInterval.
	PeerLiveness time.Duration
	// MaxReadBytes bounds one WAL read response or stream chunk. Default
	// 1 MiB (a single larger frame is still sent whole).
	MaxReadBytes int
	// MaxTimelines bounds the timelines one safekeeper holds. Default 10000.
	MaxTimelines int
	// CallTimeout bounds calls to the broker and the object store.
	// Default 5s.
	CallTimeout time.Duration
	// OnFatal, if set, is called when a failpoint asks the process to die
	// (the simulator crashes the node; daemons leave it nil).
	OnFatal func(error)
	// Bugs plants deliberate defects; only the simulator sets it.
	Bugs skproto.Bugs
}

// Validate fills defaults and rejects inconsistent settings.
func (c *Config) Validate() error {
	if c.NodeID == "" {
		return errors.New("safekeeper: NodeID is required")
	}
	if c.ListenAddr == "" {
		return errors.New("safekeeper: ListenAddr is required")
	}
	if c.SegmentBytes == 0 {
		c.SegmentBytes = 16 << 20
	}
	if c.SegmentBytes < 64 || c.SegmentBytes > walstore.MaxSegmentBytes {
		return fmt.Errorf("safekeeper: SegmentBytes %d out of [64, %d]", c.SegmentBytes, walstore.MaxSegmentBytes)
	}
	if c.PublishInterval <= 0 {
		c.PublishInterval = time.Second
	}
	if c.OffloadInterval <= 0 {
		c.OffloadInterval = time.Second
	}
	if c.OffloadRetries <= 0 {
		c.OffloadRetries = 5
	}
	if c.OffloadBackoff <= 0 {
		c.OffloadBackoff = 100 * time.Millisecond
	}
	if c.PeerLiveness <= 0 {
		c.PeerLiveness = 3 * c.PublishInterval
	}
	if c.PeerLiveness < c.PublishInterval {
		return fmt.Errorf("safekeeper: PeerLiveness %v below PublishInterval %v", c.PeerLiveness, c.PublishInterval)
	}
	if c.MaxReadBytes <= 0 {
		c.MaxReadBytes = 1 << 20
	}
	if c.MaxTimelines <= 0 {
		c.MaxTimelines = 10000
	}
	if c.CallTimeout <= 0 {
		c.CallTimeout = 5 * time.Second
	}
	return nil
}
