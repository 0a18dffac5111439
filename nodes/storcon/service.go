package storcon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/stratadb/strata/clock"
	"github.com/stratadb/strata/engine/placement"
	"github.com/stratadb/strata/engine/shard"
	"github.com/stratadb/strata/net"
	"github.com/stratadb/strata/net/jwtauth"
	"github.com/stratadb/strata/nodes/node"
	"github.com/stratadb/strata/nodes/storcon/computehook"
	"github.com/stratadb/strata/nodes/storcon/persist"
	"github.com/stratadb/strata/nodes/storcon/storconapi"
)

// Error classes of the service; the API maps them to status codes at the
// edge (api.go).
var (
	// ErrNotFound: the node, tenant or shard named is not known.
	ErrNotFound = errors.New("storcon: not found")
	// ErrConflict: the request conflicts with the current state (a tenant
	// that exists with other parameters, a node with shards, an operation
	// already running).
	ErrConflict = errors.New("storcon: conflict")
	// ErrPrecondition: the state does not allow the request yet (a node
	// that is not available, a shard that is not attached).
	ErrPrecondition = errors.New("storcon: precondition failed")
	// ErrTimeout: a bounded wait ended (start-up, a reconcile).
	ErrTimeout = errors.New("storcon: timed out")
	// ErrShuttingDown: the service is stopping.
	ErrShuttingDown = errors.New("storcon: shutting down")
	// ErrNotReady: start-up has not finished.
	ErrNotReady = errors.New("storcon: start-up not finished")
)

// notifier is what the service needs of the compute hook
// (computehook.Notifier).
type notifier interface {
	Notify(ctx context.Context, req storconapi.NotifyAttachRequest) error
	Forget(t shard.TenantID)
}

// Service is a running storage controller.
type Service struct {
	env      node.Env
	clk      clock.Clock
	log      *slog.Logger
	cfg      Config
	store    persist.Store // instrumented (database_query_latency)
	ownStore persist.Store // the store Start opened, closed by Shutdown
	auth     *jwtauth.Verifier
	router   *net.Router
	lis      net.Listener
	hook     notifier // nil: no compute hook
	metrics  *metrics
	tasks    *clock.Group // every task the service starts

	// slots bound the reconciles running at once: normal work first,
	// priority work may also take a priority slot.
	slots, prioSlots *clock.Semaphore

	// nodeMu serializes changes to the node registry (register, policy,
	// delete, drop, re-attach, drain/fill start and end), store write
	// included, so memory and store change in the same order. Taken before
	// mu, never while holding it.
	nodeMu *clock.Mutex

	mu *clock.Mutex // guards state; never held across I/O
	// changed is broadcast whenever a reconcile ends or start-up finishes:
	// waiters re-check their condition.
	changed *clock.Cond
	state   state
	lead    leadership // guarded by mu (leadership.go)
}

// Start opens the store (unless cfg.Store is set), builds the API and, if
// cfg.ListenAddr is set, serves it over the seam. Start-up reconcile runs
// in a task: Start returns at once and Ready turns true when it is done.
func Start(env node.Env, cfg Config) (*Service, error) {
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	s := &Service{env: env, clk: env.Clock, log: env.Log, cfg: cfg, router: net.NewRouter()}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	s.mu = clock.NewMutex(env.Clock)
	s.nodeMu = clock.NewMutex(env.Clock)
	s.changed = clock.NewCond(s.mu)
	s.state = newState()
	s.slots = clock.NewSemaphore(env.Clock, int64(cfg.MaxConcurrentReconciles))
	s.prioSlots = clock.NewSemaphore(env.Clock, int64(cfg.MaxPriorityReconciles))
	m, err := newMetrics(env.Metrics)
	if err != nil {
		return nil, err
	}
	s.metrics = m
	if len(cfg.AuthKeys) > 0 {
		v, err := jwtauth.NewVerifier(cfg.AuthKeys, env.Clock.Now)
		if err != nil {
			return nil, err
		}
		s.auth = v
	}
	store := cfg.Store
	if store == nil {
		ds, err := persist.OpenDisk(env.Clock, env.Disk, cfg.DataDir, persist.DiskConfig{})
		if err != nil {
			return nil, fmt.Errorf("storcon: open store in %s: %w", cfg.DataDir, err)
		}
		store, s.ownStore = ds, ds
	}
	s.store = &timedStore{Store: fencedStore{s: s, inner: store}, clk: env.Clock, m: m, failed: s.storeFailed}
	if cfg.ComputeHook != nil {
		n, err := computehook.New(env.Clock, s.log, env.Metrics, fencedHTTP{s: s, inner: cfg.ComputeHook}, cfg.ComputeHookToken, computehook.Config{
			Timeout: cfg.ComputeHookTimeout, MaxRetries: cfg.ComputeHookRetries, BusyWait: cfg.ComputeHookBusyWait,
		})
		if err != nil {
			s.closeStore()
			return nil, err
		}
		s.hook = n
	}
	s.tasks = clock.NewGroup(env.Clock, context.Background())
	s.registerAPI()
	if cfg.ListenAddr != "" {
		mux := net.NewMux()
		s.router.Register(mux)
		if s.lis, err = env.Net.Listen(cfg.ListenAddr, mux); err != nil {
			s.closeStore()
			return nil, fmt.Errorf("storcon: listen %s: %w", cfg.ListenAddr, err)
		}
	}
	s.tasks.Go("startup", func(ctx context.Context) error {
		s.startup(ctx)
		return nil
	})
	s.log.Info("storage controller started", "listen", s.Addr())
	return s, nil
}

// Router is the whole API, /status, /live and /ready included (not
// /metrics: the daemon serves env.Metrics).
func (s *Service) Router() *net.Router { return s.router }

// Addr is the bound seam address ("" when the daemon serves the Router
// itself).
func (s *Service) Addr() string {
	if s.lis == nil {
		return ""
	}
	return s.lis.Addr()
}

// Ready reports whether start-up reconcile has finished (and the store
// has not failed since: see storeFailed).
func (s *Service) Ready() bool {
	s.lock()
	defer s.mu.Unlock()
	return s.state.ready && s.state.storeFailed == nil
}

// Shutdown stops the service: new API calls are refused (503), every task
// (reconciles, heartbeats, drains) is cancelled and awaited until ctx ends,
// the listener is closed and the store, if Start opened it, closed.
func (s *Service) Shutdown(ctx context.Context) {
	s.lock()
	s.state.shuttingDown = true
	s.changed.Broadcast()
	s.mu.Unlock()
	s.tasks.Cancel()
	done := clock.NewWaitGroup(s.clk)
	done.Add(1)
	s.clk.Go(context.Background(), "storcon shutdown wait", func(context.Context) {
		defer done.Done()
		_ = s.tasks.Wait()
	})
	if err := done.Wait(ctx); err != nil {
		s.log.Error("storage controller tasks still running after shutdown", "err", err)
	}
	if s.lis != nil {
		s.lis.Close()
	}
	s.closeStore()
	s.log.Info("storage controller stopped")
}

// storeFailed records that the store broke (persist.ErrFailed): the
// controller goes unready, so an orchestrator restarts it (which reopens
// the store), instead of serving 200 on /ready while every change fails.
func (s *Service) storeFailed(err error) {
	s.lock()
	first := s.state.storeFailed == nil
	if first {
		s.state.storeFailed = err
	}
	s.mu.Unlock()
	if first {
		s.log.Error("store failed: nothing can change until the controller is restarted; /ready answers 503", "err", err)
	}
}

func (s *Service) closeStore() {
	if s.ownStore != nil {
		if err := s.ownStore.Close(); err != nil {
			s.log.Error("close store", "err", err)
		}
	}
}

// lock takes the state lock. It is never held across I/O, so waiting for
// it is short and needs no context.
func (s *Service) lock() { _ = s.mu.Lock(context.Background()) }

// spawn starts a task of the service; it is not started once Shutdown
// began.
func (s *Service) spawn(name string, fn func(ctx context.Context)) {
	s.tasks.Go(name, func(ctx context.Context) error {
		fn(ctx)
		return nil
	})
}

// state is everything the service knows, owned by Service.mu. Maps are
// keyed by id, and every iteration over them is in sorted order
// (sortedShards, sortedNodes).
type state struct {
	sched   *placement.Scheduler
	shards  map[shard.TenantShardID]*shardEntry
	nodes   map[placement.NodeID]*nodeEntry
	tenants map[shard.TenantID]*tenantEntry

	// delayed are shards waiting for a reconcile slot, oldest first; at
	// most Config.MaxDelayedReconciles.
	delayed []shard.TenantShardID
	// running counts reconciles and migrations in flight (the consistency
	// check refuses while any runs).
	running int
	// started counts reconciles and migrations ever started, and
	// writes the API operations that change the store in flight; epoch
	// counts those that finished. The consistency check compares them
	// before and after it reads the store (consistency.go).
	started, epoch uint64
	writes         int

	// nodeOps are the drains and fills in progress, by node.
	nodeOps map[placement.NodeID]*nodeOp

	ready        bool
	startupMsg   string
	shuttingDown bool
	// storeFailed: the store answered persist.ErrFailed (a write or sync
	// failed; it must be reopened). Nothing can change until the
	// controller restarts, so /ready answers 503 from then on.
	storeFailed error
}

func newState() state {
	return state{
		sched:   placement.NewScheduler(),
		shards:  map[shard.TenantShardID]*shardEntry{},
		nodes:   map[placement.NodeID]*nodeEntry{},
		tenants: map[shard.TenantID]*tenantEntry{},
		nodeOps: map[placement.NodeID]*nodeOp{},
	}
}
