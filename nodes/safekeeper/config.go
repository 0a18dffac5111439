package safekeeper

import (
	"errors"
	"fmt"
	"time"

	"github.com/stratadb/strata/engine/skproto"
	"github.com/stratadb/strata/nodes/safekeeper/walstore"
)

// Config configures a Safekeeper. Zero fields take the defaults below
// (withDefaults); negative ones are refused by Validate.
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
	// SegmentBytes is the WAL segment size for new timelines, in
	// [MinSegmentBytes, walstore.MaxSegmentBytes]. Default 16 MiB.
	SegmentBytes int64
	// PublishInterval is how often timeline state goes to the broker.
	// Default 1s.
	PublishInterval time.Duration
	// PublishFailureThreshold: once broker publication has failed for this
	// long without a success, Ready reports the safekeeper not ready. At
	// least PublishInterval. Default 10 × PublishInterval.
	PublishFailureThreshold time.Duration
	// OffloadInterval is how often sealed segments are considered for
	// upload (with Offload). Default 1s.
	OffloadInterval time.Duration
	// Offload enables offload to env.Store (which must be set).
	Offload bool
	// OffloadRetries bounds attempts per segment upload on retryable
	// errors. Default 5.
	OffloadRetries int
	// OffloadBackoff is the first retry delay, doubled up to 32×. Default
	// 100ms.
	OffloadBackoff time.Duration
	// PeerLiveness: a broker entry older than this is a dead peer; at
	// least PublishInterval. Default 3 × PublishInterval.
	PeerLiveness time.Duration
	// MaxReadBytes bounds one WAL read response or stream chunk. Default
	// 1 MiB (a single larger frame is still sent whole).
	MaxReadBytes int
	// MaxTimelines bounds the timelines one safekeeper holds. Default 10000.
	MaxTimelines int
	// CallTimeout bounds calls to the broker and the object store.
	// Default 5s.
	CallTimeout time.Duration
	// DisableWALRemoval keeps every segment. By default a safekeeper that
	// offloads removes the sealed segments below what every pageserver has
	// made remote and what is offloaded (docs/wal-service.md, WAL
	// removal); without Offload nothing is ever removed.
	DisableWALRemoval bool
	// RemovalInterval is how often WAL removal runs. Default 10s.
	RemovalInterval time.Duration
	// FeedbackExpiry: a pageserver's remote_consistent_lsn (reported
	// directly, or published by a peer) holds WAL back only until it has
	// not been renewed for this long, so a detached pageserver cannot pin
	// WAL forever. For as long after Start nothing is removed (the
	// pageservers that reported before a restart have not reported again
	// yet). Default 10m.
	FeedbackExpiry time.Duration
	// OnFatal, if set, is called when a failpoint asks the process to die
	// (the simulator crashes the node; daemons leave it nil).
	OnFatal func(error)
	// Bugs plants deliberate defects; only the simulator sets it.
	Bugs Bugs
}

// Defaults and limits of Config.
const (
	DefaultSegmentBytes    = 16 << 20
	MinSegmentBytes        = 64
	DefaultPublishInterval = time.Second
	DefaultOffloadInterval = time.Second
	DefaultOffloadRetries  = 5
	DefaultOffloadBackoff  = 100 * time.Millisecond
	// DefaultPeerLivenessIntervals × PublishInterval is the default
	// PeerLiveness.
	DefaultPeerLivenessIntervals = 3
	// DefaultPublishFailureIntervals × PublishInterval is the default
	// PublishFailureThreshold.
	DefaultPublishFailureIntervals = 10
	DefaultMaxReadBytes            = 1 << 20
	DefaultMaxTimelines            = 10000
	DefaultCallTimeout             = 5 * time.Second
	DefaultRemovalInterval         = 10 * time.Second
	DefaultFeedbackExpiry          = 10 * time.Minute
)

// ErrConfig is wrapped by every error Config.Validate returns.
var ErrConfig = errors.New("safekeeper: invalid config")

// Bugs are the safekeeper's planted defects: the simulator switches them on
// to prove its checkers catch them; production passes the zero value.
type Bugs struct {
	// Acceptor holds the bugs of the engine/skproto acceptor each timeline
	// runs (VoteWithoutPersist, TruncateCommitted).
	Acceptor skproto.Bugs
	// AckBeforeFsync: a proposer's appends are acknowledged before the WAL
	// is synced (sk-ack-before-fsync).
	AckBeforeFsync bool
	// ServeUnchecked: the read path (ReadWal, StreamWal, offload) cuts WAL
	// on frame lengths without checking the frames' checksums, so damaged
	// bytes are served (sk-serve-unchecked).
	ServeUnchecked bool
	// TrimAboveRemoteConsistent: WAL removal ignores the pageservers'
	// remote_consistent_lsn (and whether any reported at all) and removes
	// up to the commit LSN, bounded only by offload and the peers' flush
	// (sk-trim-above-remote-consistent). A pageserver that must ingest
	// again from its remote_consistent_lsn then finds that WAL gone.
	TrimAboveRemoteConsistent bool
}

// withDefaults fills zero fields with the defaults.
func (c Config) withDefaults() Config {
	if c.SegmentBytes == 0 {
		c.SegmentBytes = DefaultSegmentBytes
	}
	if c.PublishInterval == 0 {
		c.PublishInterval = DefaultPublishInterval
	}
	if c.OffloadInterval == 0 {
		c.OffloadInterval = DefaultOffloadInterval
	}
	if c.OffloadRetries == 0 {
		c.OffloadRetries = DefaultOffloadRetries
	}
	if c.OffloadBackoff == 0 {
		c.OffloadBackoff = DefaultOffloadBackoff
	}
	if c.PeerLiveness == 0 {
		c.PeerLiveness = DefaultPeerLivenessIntervals * c.PublishInterval
	}
	if c.PublishFailureThreshold == 0 {
		c.PublishFailureThreshold = DefaultPublishFailureIntervals * c.PublishInterval
	}
	if c.MaxReadBytes == 0 {
		c.MaxReadBytes = DefaultMaxReadBytes
	}
	if c.MaxTimelines == 0 {
		c.MaxTimelines = DefaultMaxTimelines
	}
	if c.CallTimeout == 0 {
		c.CallTimeout = DefaultCallTimeout
	}
	if c.RemovalInterval == 0 {
		c.RemovalInterval = DefaultRemovalInterval
	}
	if c.FeedbackExpiry == 0 {
		c.FeedbackExpiry = DefaultFeedbackExpiry
	}
	return c
}

// Validate checks the configuration with the defaults applied (to its own
// copy: c is not changed).
func (c Config) Validate() error {
	c = c.withDefaults()
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: "+format, append([]any{ErrConfig}, args...)...)
	}
	switch {
	case c.NodeID == "":
		return bad("NodeID is required")
	case c.ListenAddr == "":
		return bad("ListenAddr is required")
	case c.SegmentBytes < MinSegmentBytes || c.SegmentBytes > walstore.MaxSegmentBytes:
		return bad("SegmentBytes %d out of [%d, %d]", c.SegmentBytes, MinSegmentBytes, walstore.MaxSegmentBytes)
	case c.PublishInterval < 0:
		return bad("PublishInterval %v is negative", c.PublishInterval)
	case c.OffloadInterval < 0:
		return bad("OffloadInterval %v is negative", c.OffloadInterval)
	case c.OffloadRetries < 0:
		return bad("OffloadRetries %d is negative", c.OffloadRetries)
	case c.OffloadBackoff < 0:
		return bad("OffloadBackoff %v is negative", c.OffloadBackoff)
	case c.PeerLiveness < c.PublishInterval:
		return bad("PeerLiveness %v below PublishInterval %v", c.PeerLiveness, c.PublishInterval)
	case c.PublishFailureThreshold < c.PublishInterval:
		return bad("PublishFailureThreshold %v below PublishInterval %v", c.PublishFailureThreshold, c.PublishInterval)
	case c.MaxReadBytes < 0:
		return bad("MaxReadBytes %d is negative", c.MaxReadBytes)
	case c.MaxTimelines < 0:
		return bad("MaxTimelines %d is negative", c.MaxTimelines)
	case c.CallTimeout < 0:
		return bad("CallTimeout %v is negative", c.CallTimeout)
	case c.RemovalInterval < 0:
		return bad("RemovalInterval %v is negative", c.RemovalInterval)
	case c.FeedbackExpiry < 0:
		return bad("FeedbackExpiry %v is negative", c.FeedbackExpiry)
	}
	return nil
}
