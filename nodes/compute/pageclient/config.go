package pageclient

import (
	"errors"
	"fmt"
	"time"

	"github.com/stratadb/strata/engine/shard"
)

// ErrConfig is wrapped by every error Config.Validate returns.
var ErrConfig = errors.New("pageclient: invalid config")

// Defaults of Config. The pool shape and the timeouts follow Neon's compute
// page client (docs/page-client.md); pipelining and the back-off are
// Strata's.
const (
	// DefaultClientsPerConn: clients (HTTP/2 streams: a GetPages stream
	// or a unary call) sharing one connection of the normal pool.
	DefaultClientsPerConn = 64
	// DefaultBulkClientsPerConn: the same for the bulk pool, whose large
	// responses would otherwise hold up small ones on a shared connection.
	DefaultBulkClientsPerConn = 16
	// DefaultMaxConnsPerShard bounds each pool's connections to one shard.
	DefaultMaxConnsPerShard = 16
	// DefaultStreamsPerShard bounds the normal pool's GetPages streams to
	// one shard.
	DefaultStreamsPerShard = 64
	// DefaultBulkStreamsPerShard bounds the bulk pool's streams to one
	// shard.
	DefaultBulkStreamsPerShard = 16
	// DefaultInflightPerStream bounds the requests sent on one stream and
	// not yet answered (the pageserver's own bound is 64).
	DefaultInflightPerStream = 4
	// DefaultBulkThreshold: a request part of at least this many blocks
	// goes to the bulk pool.
	DefaultBulkThreshold = 5
	// DefaultMaxBlocksPerRequest: a part with more blocks is sent as
	// several requests (the pageserver refuses more than 256 by default).
	DefaultMaxBlocksPerRequest = 256
	// DefaultIdleTimeout: an idle stream or connection is closed after it.
	DefaultIdleTimeout = 180 * time.Second
	// DefaultAttemptTimeout bounds one attempt of a call.
	DefaultAttemptTimeout = 10 * time.Second
	// DefaultCallTimeout bounds a whole call, retries included.
	DefaultCallTimeout = 60 * time.Second
	// DefaultBackoffBase is the first retry's back-off (before jitter);
	// each further retry doubles it up to DefaultBackoffMax.
	DefaultBackoffBase = 5 * time.Millisecond
	// DefaultBackoffMax caps the back-off.
	DefaultBackoffMax = 5 * time.Second
	// DefaultMaxAttempts bounds the attempts of one request (the call
	// timeout usually ends a call first).
	DefaultMaxAttempts = 64
)

// Config configures a Client. Zero fields take the defaults above;
// Validate refuses negative or inconsistent values.
type Config struct {
	// Tenant and Timeline are what every request is addressed to (the
	// shard index comes from the shard map).
	Tenant   shard.TenantID
	Timeline shard.TimelineID
	// Token, when not empty, is sent as "authorization: Bearer <Token>".
	Token string

	ClientsPerConn      int
	BulkClientsPerConn  int
	MaxConnsPerShard    int
	StreamsPerShard     int
	BulkStreamsPerShard int
	InflightPerStream   int
	BulkThreshold       int
	MaxBlocksPerRequest int
	IdleTimeout         time.Duration
	AttemptTimeout      time.Duration
	CallTimeout         time.Duration
	BackoffBase         time.Duration
	BackoffMax          time.Duration
	MaxAttempts         int

	// Bugs are planted for the simulator to prove its checkers; all off
	// in real use.
	Bugs Bugs
}

// Bugs are the client's planted bugs.
type Bugs struct {
	// ReassembleOutOfOrder puts a split request's answers back in the
	// order of its parts (shard order) instead of at each block's request
	// position.
	ReassembleOutOfOrder bool
	// RetryInternal retries an attempt that failed with Internal, which
	// may never heal and must reach the caller.
	RetryInternal bool
}

func (c Config) withDefaults() Config {
	def := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	defD := func(v *time.Duration, d time.Duration) {
		if *v == 0 {
			*v = d
		}
	}
	def(&c.ClientsPerConn, DefaultClientsPerConn)
	def(&c.BulkClientsPerConn, DefaultBulkClientsPerConn)
	def(&c.MaxConnsPerShard, DefaultMaxConnsPerShard)
	def(&c.StreamsPerShard, DefaultStreamsPerShard)
	def(&c.BulkStreamsPerShard, DefaultBulkStreamsPerShard)
	def(&c.InflightPerStream, DefaultInflightPerStream)
	def(&c.BulkThreshold, DefaultBulkThreshold)
	def(&c.MaxBlocksPerRequest, DefaultMaxBlocksPerRequest)
	def(&c.MaxAttempts, DefaultMaxAttempts)
	defD(&c.IdleTimeout, DefaultIdleTimeout)
	defD(&c.AttemptTimeout, DefaultAttemptTimeout)
	defD(&c.CallTimeout, DefaultCallTimeout)
	defD(&c.BackoffBase, DefaultBackoffBase)
	defD(&c.BackoffMax, DefaultBackoffMax)
	return c
}

// Validate reports a configuration the client cannot use. It does not
// change c.
func (c Config) Validate() error {
	c = c.withDefaults()
	for _, v := range []struct {
		name string
		n    int
	}{{"ClientsPerConn", c.ClientsPerConn}, {"BulkClientsPerConn", c.BulkClientsPerConn}, {"MaxConnsPerShard", c.MaxConnsPerShard},
		{"StreamsPerShard", c.StreamsPerShard}, {"BulkStreamsPerShard", c.BulkStreamsPerShard}, {"InflightPerStream", c.InflightPerStream},
		{"BulkThreshold", c.BulkThreshold}, {"MaxBlocksPerRequest", c.MaxBlocksPerRequest}, {"MaxAttempts", c.MaxAttempts}} {
		if v.n < 1 {
			return fmt.Errorf("%w: %s %d < 1", ErrConfig, v.name, v.n)
		}
	}
	for _, v := range []struct {
		name string
		d    time.Duration
	}{{"IdleTimeout", c.IdleTimeout}, {"AttemptTimeout", c.AttemptTimeout}, {"CallTimeout", c.CallTimeout},
		{"BackoffBase", c.BackoffBase}, {"BackoffMax", c.BackoffMax}} {
		if v.d < 0 {
			return fmt.Errorf("%w: %s %v < 0", ErrConfig, v.name, v.d)
		}
	}
	switch {
	case c.AttemptTimeout > c.CallTimeout:
		return fmt.Errorf("%w: AttemptTimeout %v > CallTimeout %v", ErrConfig, c.AttemptTimeout, c.CallTimeout)
	case c.BackoffBase > c.BackoffMax:
		return fmt.Errorf("%w: BackoffBase %v > BackoffMax %v", ErrConfig, c.BackoffBase, c.BackoffMax)
	case c.MaxBlocksPerRequest > maxBlocksPerMessage:
		return fmt.Errorf("%w: MaxBlocksPerRequest %d > %d (a response must fit one message)", ErrConfig, c.MaxBlocksPerRequest, maxBlocksPerMessage)
	}
	return nil
}
