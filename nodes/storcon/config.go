package storcon

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"time"

	"github.com/stratadb/strata/net"
	"github.com/stratadb/strata/nodes/storcon/persist"
)

// ErrConfig is wrapped by Validate's errors.
var ErrConfig = errors.New("storcon: invalid config")

// Config configures the storage controller. Zero fields take the defaults
// named beside them; Validate rejects negative and inconsistent values.
type Config struct {
	// ListenAddr, if set, serves the API over the seam (simulator). A
	// daemon leaves it empty and serves Service.Router() over real HTTP
	// itself.
	ListenAddr string
	// Store is the persistence; nil opens the embedded DiskStore in
	// DataDir on env.Disk (and Shutdown closes it).
	Store persist.Store
	// DataDir is the embedded store's directory. Default "storcon".
	DataDir string
	// DialPageserver returns a client for a pageserver's management API
	// "host:port"; nil = net.DialHTTP{Net: env.Net, Addr: addr}.
	DialPageserver func(addr string) net.HTTPClient
	// PageserverToken is the JWT sent to pageservers (scope
	// pageserverapi); "" sends none.
	PageserverToken string
	// AuthKeys verify incoming tokens; empty turns auth off.
	AuthKeys []ed25519.PublicKey
	// ComputeHook, if set, receives notify-attach requests
	// (storconapi.NotifyAttachPath); nil = no compute hook.
	ComputeHook net.HTTPClient
	// ComputeHookToken is sent as the hook's bearer token.
	ComputeHookToken string

	// HeartbeatInterval is how often every node's GET /v1/utilization is
	// called. Default 5s.
	HeartbeatInterval time.Duration
	// HeartbeatTimeout bounds one heartbeat. Default 1s.
	HeartbeatTimeout time.Duration
	// OfflineAfter: a node without a successful heartbeat for this long is
	// Offline. Default 30s.
	OfflineAfter time.Duration
	// WarmingUpTimeout: a node still WarmingUp (re-attached, no heartbeat
	// answered) this long after its re-attach is Offline. Default 300s.
	WarmingUpTimeout time.Duration

	// MaxConcurrentReconciles bounds the reconciles running at once.
	// Default 128.
	MaxConcurrentReconciles int
	// MaxPriorityReconciles bounds the extra reconciles that may run for
	// priority work (failover after a node went offline, API calls waiting
	// on the result) when the normal slots are full. Default 256.
	MaxPriorityReconciles int
	// MaxDelayedReconciles bounds the queue of reconciles waiting for a
	// slot; beyond it they are dropped (and counted) for the next
	// reconcile_all to pick up. Default 10000.
	MaxDelayedReconciles int
	// LocationConfigRetries bounds the attempts of one location_config
	// call. Default 3.
	LocationConfigRetries int
	// LocationConfigTimeout bounds each attempt. Default 25s.
	LocationConfigTimeout time.Duration
	// LocationConfigBackoff is the pause between attempts. Default 1s.
	LocationConfigBackoff time.Duration
	// PageserverTimeout bounds other calls to a pageserver (location
	// listing, timeline create/list/delete). Default 30s.
	PageserverTimeout time.Duration
	// ReconcileAllInterval is how often every shard that needs it is
	// reconciled in the background. Default 20s.
	ReconcileAllInterval time.Duration
	// ReconcileWait bounds how long an API call waits for the reconciles
	// it started (tenant create, policy change, location_config). Default
	// 30s.
	ReconcileWait time.Duration

	// StartupBudget bounds start-up once the store has been read (reading
	// it is retried until it succeeds); reading the nodes' locations may
	// take half of it. Default 30s.
	StartupBudget time.Duration
	// StartupNodeTimeout bounds one node's location listing at start-up.
	// Default 5s.
	StartupNodeTimeout time.Duration
	// StartupNodeRetries bounds the attempts per node at start-up.
	// Default 3.
	StartupNodeRetries int
	// StartupWait bounds how long tenant-scoped calls wait for start-up
	// before answering 408. Default 30s.
	StartupWait time.Duration

	// ComputeHookTimeout bounds one notify-attach attempt. Default 10s.
	ComputeHookTimeout time.Duration
	// ComputeHookRetries bounds the retries of one notification. Default
	// 10.
	ComputeHookRetries int
	// ComputeHookBusyWait is the wait after a 429. Default 5s.
	ComputeHookBusyWait time.Duration
	// ReconcileNotifyTimeout bounds the compute notification a reconcile
	// sends (all its attempts): a hook that keeps failing must not hold a
	// reconcile slot for minutes; the pending flag makes a later reconcile
	// try again. Default 15s.
	ReconcileNotifyTimeout time.Duration
	// MaxConcurrentNotifications bounds the notifications start-up sends
	// at once. Default 16.
	MaxConcurrentNotifications int

	// MigrationLSNWait bounds a live migration's wait for the destination
	// to catch up with the origin's LSNs (step 6); past it the migration
	// proceeds with a warning. Default 30s.
	MigrationLSNWait time.Duration
	// MigrationTimeout bounds one live migration. Default 5m.
	MigrationTimeout time.Duration
	// MigrationSecondaryDownload bounds step 3 of a live migration: a
	// destination that is a secondary downloads the heatmap's layers,
	// asked again while it answers 202; past it the migration proceeds
	// with a warning (a cold destination is slower, not wrong). Default
	// 2m.
	MigrationSecondaryDownload time.Duration
	// MigrationSecondaryDownloadWait is how long one such request waits
	// on the pageserver (its wait_ms). Default 20s.
	MigrationSecondaryDownloadWait time.Duration
	// DrainFillConcurrency bounds the migrations a drain or fill runs at
	// once. Default 4.
	DrainFillConcurrency int
	// DrainFillTimeout bounds one drain or fill; one that has not finished
	// by then ends with its node's policy Active (as if stopped). Default
	// 30m.
	DrainFillTimeout time.Duration
	// NodeDeleteTimeout bounds a graceful node delete (moving its shards
	// away). Default 10m.
	NodeDeleteTimeout time.Duration

	// ShardSplitTimeout bounds one attempt of a pageserver's shard split
	// (it waits for the children to catch up with the parent). Default 2m.
	ShardSplitTimeout time.Duration
	// ShardSplitRetries bounds the attempts of one pageserver shard split
	// (only failures that may pass are retried). Default 3.
	ShardSplitRetries int

	// Predecessor, if set, is the controller this one takes over from (a
	// leadership hand-over): start-up asks it to step down (PUT
	// /control/v1/step_down, with PredecessorToken, scope admin) before
	// reading the store, and proceeds without it after StepDownTimeout.
	Predecessor      net.HTTPClient
	PredecessorToken string
	// StepDownTimeout bounds asking the predecessor to step down; a
	// controller asked to step down waits at most half of it for its calls
	// under way to end. Default 10s.
	StepDownTimeout time.Duration

	// LostWriteSettle is how long the controller waits, after a store
	// write whose outcome is unknown, before it reads the outcome back
	// (unsure.go): a write whose connection broke may still be on its way
	// to the database, or queued there, and a read made before it lands
	// would miss it. It must exceed the longest a sent statement can take
	// to run — the PostgreSQL store bounds that with its statement timeout
	// (storconpg.DefaultStatementTimeout, 5s). Default 6s.
	LostWriteSettle time.Duration

	// Bugs plants deliberate defects; only the simulator sets it.
	Bugs Bugs
}

// Bugs are deliberate defects the simulator plants to prove its checkers
// can fail (the storcon scenario's planted bugs). Production code always
// passes the zero value.
type Bugs struct {
	// GenerationPersistAfterAttach bumps the generation in memory, sends
	// the attach, and persists afterwards.
	GenerationPersistAfterAttach bool
	// ReAttachNoBump answers re-attach with the stored generation without
	// incrementing it.
	ReAttachNoBump bool
	// ValidateMemoryOnly trusts memory in validate, never the store.
	ValidateMemoryOnly bool
	// NotifyBeforeAllShards notifies compute as soon as any shard of a
	// tenant is attached.
	NotifyBeforeAllShards bool
	// DrainDetachFirst: a drain detaches the old location before the new
	// one is attached.
	DrainDetachFirst bool
	// CommitSplitEarly commits a shard split in the store (parents
	// deleted, children kept) before every parent's pageserver split has
	// returned: a pageserver split that then fails cannot be rolled back.
	CommitSplitEarly bool
	// IgnoreLostWrites treats a store write whose outcome is unknown as
	// not done: memory is never brought back to the store (unsure.go).
	IgnoreLostWrites bool
}

// Defaults of Config.
const (
	DefaultDataDir                    = "storcon"
	DefaultHeartbeatInterval          = 5 * time.Second
	DefaultHeartbeatTimeout           = time.Second
	DefaultOfflineAfter               = 30 * time.Second
	DefaultWarmingUpTimeout           = 300 * time.Second
	DefaultMaxConcurrentReconciles    = 128
	DefaultMaxPriorityReconciles      = 256
	DefaultMaxDelayedReconciles       = 10_000
	DefaultLocationConfigRetries      = 3
	DefaultLocationConfigTimeout      = 25 * time.Second
	DefaultLocationConfigBackoff      = time.Second
	DefaultPageserverTimeout          = 30 * time.Second
	DefaultReconcileAllInterval       = 20 * time.Second
	DefaultReconcileWait              = 30 * time.Second
	DefaultStartupBudget              = 30 * time.Second
	DefaultStartupNodeTimeout         = 5 * time.Second
	DefaultStartupNodeRetries         = 3
	DefaultStartupWait                = 30 * time.Second
	DefaultComputeHookTimeout         = 10 * time.Second
	DefaultComputeHookRetries         = 10
	DefaultComputeHookBusyWait        = 5 * time.Second
	DefaultMaxConcurrentNotifications = 16
	DefaultReconcileNotifyTimeout     = 15 * time.Second
	DefaultMigrationLSNWait           = 30 * time.Second
	DefaultMigrationTimeout           = 5 * time.Minute
	// DefaultMigrationSecondaryDownload and
	// DefaultMigrationSecondaryDownloadWait: Config's step 3 bounds.
	DefaultMigrationSecondaryDownload     = 2 * time.Minute
	DefaultMigrationSecondaryDownloadWait = 20 * time.Second
	DefaultDrainFillConcurrency           = 4
	DefaultNodeDeleteTimeout              = 10 * time.Minute
	DefaultDrainFillTimeout               = 30 * time.Minute
	DefaultShardSplitTimeout              = 2 * time.Minute
	DefaultShardSplitRetries              = 3
	DefaultStepDownTimeout                = 10 * time.Second
	DefaultLostWriteSettle                = 6 * time.Second
)

func (c Config) withDefaults() Config {
	def := func(v *time.Duration, d time.Duration) {
		if *v == 0 {
			*v = d
		}
	}
	defInt := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	if c.DataDir == "" {
		c.DataDir = DefaultDataDir
	}
	def(&c.HeartbeatInterval, DefaultHeartbeatInterval)
	def(&c.HeartbeatTimeout, DefaultHeartbeatTimeout)
	def(&c.OfflineAfter, DefaultOfflineAfter)
	def(&c.WarmingUpTimeout, DefaultWarmingUpTimeout)
	defInt(&c.MaxConcurrentReconciles, DefaultMaxConcurrentReconciles)
	defInt(&c.MaxPriorityReconciles, DefaultMaxPriorityReconciles)
	defInt(&c.MaxDelayedReconciles, DefaultMaxDelayedReconciles)
	defInt(&c.LocationConfigRetries, DefaultLocationConfigRetries)
	def(&c.LocationConfigTimeout, DefaultLocationConfigTimeout)
	def(&c.LocationConfigBackoff, DefaultLocationConfigBackoff)
	def(&c.PageserverTimeout, DefaultPageserverTimeout)
	def(&c.ReconcileAllInterval, DefaultReconcileAllInterval)
	def(&c.ReconcileWait, DefaultReconcileWait)
	def(&c.StartupBudget, DefaultStartupBudget)
	def(&c.StartupNodeTimeout, DefaultStartupNodeTimeout)
	defInt(&c.StartupNodeRetries, DefaultStartupNodeRetries)
	def(&c.StartupWait, DefaultStartupWait)
	def(&c.ComputeHookTimeout, DefaultComputeHookTimeout)
	defInt(&c.ComputeHookRetries, DefaultComputeHookRetries)
	def(&c.ComputeHookBusyWait, DefaultComputeHookBusyWait)
	defInt(&c.MaxConcurrentNotifications, DefaultMaxConcurrentNotifications)
	def(&c.ReconcileNotifyTimeout, DefaultReconcileNotifyTimeout)
	def(&c.MigrationLSNWait, DefaultMigrationLSNWait)
	def(&c.MigrationTimeout, DefaultMigrationTimeout)
	def(&c.MigrationSecondaryDownload, DefaultMigrationSecondaryDownload)
	def(&c.MigrationSecondaryDownloadWait, DefaultMigrationSecondaryDownloadWait)
	defInt(&c.DrainFillConcurrency, DefaultDrainFillConcurrency)
	def(&c.NodeDeleteTimeout, DefaultNodeDeleteTimeout)
	def(&c.DrainFillTimeout, DefaultDrainFillTimeout)
	def(&c.ShardSplitTimeout, DefaultShardSplitTimeout)
	defInt(&c.ShardSplitRetries, DefaultShardSplitRetries)
	def(&c.StepDownTimeout, DefaultStepDownTimeout)
	def(&c.LostWriteSettle, DefaultLostWriteSettle)
	return c
}

// Validate reports a configuration Start cannot use. It does not change c.
func (c Config) Validate() error {
	c = c.withDefaults()
	for _, d := range []struct {
		name string
		v    time.Duration
	}{
		{"HeartbeatInterval", c.HeartbeatInterval}, {"HeartbeatTimeout", c.HeartbeatTimeout},
		{"OfflineAfter", c.OfflineAfter}, {"WarmingUpTimeout", c.WarmingUpTimeout},
		{"LocationConfigTimeout", c.LocationConfigTimeout}, {"LocationConfigBackoff", c.LocationConfigBackoff},
		{"PageserverTimeout", c.PageserverTimeout}, {"ReconcileAllInterval", c.ReconcileAllInterval},
		{"ReconcileWait", c.ReconcileWait}, {"StartupBudget", c.StartupBudget},
		{"StartupNodeTimeout", c.StartupNodeTimeout}, {"StartupWait", c.StartupWait},
		{"ComputeHookTimeout", c.ComputeHookTimeout}, {"ComputeHookBusyWait", c.ComputeHookBusyWait},
		{"MigrationLSNWait", c.MigrationLSNWait}, {"MigrationTimeout", c.MigrationTimeout},
		{"MigrationSecondaryDownload", c.MigrationSecondaryDownload}, {"MigrationSecondaryDownloadWait", c.MigrationSecondaryDownloadWait},
		{"ReconcileNotifyTimeout", c.ReconcileNotifyTimeout},
		{"NodeDeleteTimeout", c.NodeDeleteTimeout}, {"DrainFillTimeout", c.DrainFillTimeout},
		{"ShardSplitTimeout", c.ShardSplitTimeout}, {"StepDownTimeout", c.StepDownTimeout},
		{"LostWriteSettle", c.LostWriteSettle},
	} {
		if d.v < 0 {
			return fmt.Errorf("%w: %s %v is negative", ErrConfig, d.name, d.v)
		}
	}
	for _, n := range []struct {
		name string
		v    int
	}{
		{"MaxConcurrentReconciles", c.MaxConcurrentReconciles}, {"MaxPriorityReconciles", c.MaxPriorityReconciles},
		{"MaxDelayedReconciles", c.MaxDelayedReconciles}, {"LocationConfigRetries", c.LocationConfigRetries},
		{"StartupNodeRetries", c.StartupNodeRetries}, {"ComputeHookRetries", c.ComputeHookRetries},
		{"MaxConcurrentNotifications", c.MaxConcurrentNotifications}, {"DrainFillConcurrency", c.DrainFillConcurrency},
		{"ShardSplitRetries", c.ShardSplitRetries},
	} {
		if n.v < 0 {
			return fmt.Errorf("%w: %s %d is negative", ErrConfig, n.name, n.v)
		}
	}
	switch {
	case c.HeartbeatTimeout > c.HeartbeatInterval:
		return fmt.Errorf("%w: HeartbeatTimeout %v exceeds HeartbeatInterval %v", ErrConfig, c.HeartbeatTimeout, c.HeartbeatInterval)
	case c.OfflineAfter < c.HeartbeatInterval:
		return fmt.Errorf("%w: OfflineAfter %v is shorter than HeartbeatInterval %v", ErrConfig, c.OfflineAfter, c.HeartbeatInterval)
	case c.StartupNodeTimeout > c.StartupBudget/2:
		return fmt.Errorf("%w: StartupNodeTimeout %v exceeds half of StartupBudget %v", ErrConfig, c.StartupNodeTimeout, c.StartupBudget)
	case c.Store == nil && c.DataDir == "":
		return fmt.Errorf("%w: DataDir is required without a Store", ErrConfig)
	}
	return nil
}
