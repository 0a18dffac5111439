package pageserver

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/stratadb/strata/clock"
	"github.com/stratadb/strata/disk"
	"github.com/stratadb/strata/engine/layer"
	"github.com/stratadb/strata/engine/layercache"
	"github.com/stratadb/strata/engine/lsn"
	"github.com/stratadb/strata/engine/remote"
	"github.com/stratadb/strata/engine/shard"
	"github.com/stratadb/strata/engine/timeline"
	"github.com/stratadb/strata/nodes/broker/brokerapi"
	"github.com/stratadb/strata/nodes/pageserver/pageapi"
)

// Errors of the tenant manager.
var (
	// ErrBroken: the tenant shard failed to load; it is never served.
	ErrBroken = errors.New("pageserver: tenant shard is broken")
	// ErrNotAttached: the shard is here but not in an attached mode.
	ErrNotAttached = errors.New("pageserver: tenant shard is not attached here")
	// ErrAttaching: the shard is attached but still loading (its engine
	// not open yet). It wraps ErrNotAttached; the page service answers it
	// Unavailable, since the shard serves in a moment and the client
	// should retry, not give up as on NotFound.
	ErrAttaching = fmt.Errorf("%w: still attaching", ErrNotAttached)
	// ErrStaleGeneration: a location config with a generation below the
	// one this pageserver already holds for the shard.
	ErrStaleGeneration = errors.New("pageserver: generation goes backwards")
	// ErrLimit: a named limit (tenant shards, timelines) is reached.
	ErrLimit = errors.New("pageserver: limit reached")
	// ErrTimelineExists: a timeline with that id exists.
	ErrTimelineExists = errors.New("pageserver: timeline exists")
)

const (
	tenantsDir   = "tenants"
	locationFile = "location.json"
	// deletingSuffix marks a tenant directory being removed: renamed first
	// (durably) so a crash mid-removal leaves a name start-up removes, never
	// a half-deleted tenant that looks attachable.
	deletingSuffix = ".deleting"
)

// tenantShard is one tenant shard on this node: its location config as
// persisted, and, while attached, the engine tenant and its timelines.
type tenantShard struct {
	id shard.TenantShardID
	// op serializes the shard's configuration changes and timeline
	// creation, which do disk I/O; readers never take it.
	op *clock.Mutex

	mu        sync.Mutex // guards the fields below; held briefly, never across I/O
	conf      pageapi.LocationConfig
	broken    error
	engine    *timeline.Tenant
	timelines map[shard.TimelineID]*shardTimeline
	// assigned is the storage controller's re-attach answer for the shard,
	// still to be applied to its location file (reattach.go); nil once
	// applied, and always without a controller.
	assigned *pageapi.LocationConfig
	// remote is the attachment's remote storage (upload queues); nil
	// without an object store or while not attached.
	remote *remoteTenant
	// split is the shard's committed split (split.go): set, the shard no
	// longer serves and requests for it are routed to its children.
	split *splitRecord
	// splitFrom is the parent a split made this shard from (nil if none).
	splitFrom *shard.TenantShardID
	// secondary downloads the heatmap's layers while the shard is
	// Secondary (secondary.go); nil otherwise.
	secondary *secondaryTenant
}

func (ts *tenantShard) dir() string { return tenantsDir + "/" + ts.id.String() }

// tenantManager holds the node's tenant shards. The map is guarded by mu;
// each shard's changes are serialized by the shard's op lock.
type tenantManager struct {
	clk   clock.Clock
	fs    disk.FS
	log   *slog.Logger
	cfg   Config
	node  uint64
	tasks *taskRegistry
	// WAL receivers: the node's network and clock, metrics, and the broker
	// client (nil: no receivers run).
	wal        walEnv
	walMetrics *walMetrics
	broker     *brokerapi.Client
	// Background work is bounded across the node, per kind.
	flushSem, compactSem, gcSem *clock.Semaphore
	// layers is the node's open-file cache, shared by every shard's engine
	// (Config.MaxOpenLayerFiles).
	layers *layercache.Cache
	// remote is the node's object storage side; nil without env.Store.
	remote *remoteStorage
	// splitMetrics count shard splits (nil in tests that build a manager
	// without a node).
	splitMetrics *splitMetrics
	// splitHook, if set (tests only), is called at the named points of a
	// split (split.go), from the split's task: a test crashes the node
	// there.
	splitHook func(point string)

	mu     sync.Mutex
	shards map[shard.TenantShardID]*tenantShard
	closed bool
}

func newTenantManager(clk clock.Clock, fs disk.FS, log *slog.Logger, tasks *taskRegistry, cfg Config) *tenantManager {
	n := int64(cfg.MaxConcurrentBackground)
	return &tenantManager{clk: clk, fs: fs, log: log, cfg: cfg, node: cfg.NodeID, tasks: tasks,
		flushSem: clock.NewSemaphore(clk, n), compactSem: clock.NewSemaphore(clk, n), gcSem: clock.NewSemaphore(clk, n),
		shards: map[shard.TenantShardID]*tenantShard{}}
}

// startTimeline wraps an engine timeline of an attached shard and starts
// its background work.
func (m *tenantManager) startTimeline(ts *tenantShard, tl *timeline.Timeline) *shardTimeline {
	conf := engineConfig(ts.conf.TenantConf)
	horizon := conf.GCHorizonBytes
	if horizon == 0 {
		horizon = timeline.DefaultGCHorizonBytes
	}
	st := newShardTimeline(m.clk, ts.conf.Identity(), tl, horizon)
	st.leaseLength = scheduleOf(ts.conf.TenantConf).leaseLength
	tid := shard.TimelineID(tl.ID())
	ts.mu.Lock()
	st.fromSplit = ts.splitFrom != nil
	if rt := ts.remote; rt != nil {
		st.remote = rt.queue(tid)
	}
	ts.mu.Unlock()
	m.tasks.spawn(context.Background(), taskBackground, timelineScope(ts.id, tid), ts.id.String()+"/"+tid.String(),
		func(ctx context.Context) { m.background(ctx, ts.id, st, scheduleOf(ts.conf.TenantConf)) })
	if m.broker != nil {
		r := &walReceiver{env: m.wal, cfg: m.cfg.WALReceiver, id: ts.id, tid: tid, st: st, metrics: m.walMetrics,
			broker: m.broker, bugs: m.cfg.Bugs, sel: newSelector(m.cfg.WALReceiver), nodeID: fmt.Sprintf("ps-%d", m.cfg.NodeID), tasks: m.tasks,
			log: m.log.With("tenant_shard_id", ts.id.String(), "timeline_id", tid.String())}
		m.tasks.spawn(context.Background(), taskWALReceiver, timelineScope(ts.id, tid), ts.id.String()+"/"+tid.String(), r.run)
	}
	return st
}

// load reads every shard's location config from disk and loads the
// attached ones. With a storage controller (Config.ControlPlane) the
// controller's re-attach answer is applied first (reattach.go): it fails
// load when the controller cannot be reached. A shard that fails to load
// is kept as broken with the reason; the node still starts.
func (m *tenantManager) load() error {
	if err := disk.MkdirAllDurable(m.fs, tenantsDir); err != nil {
		return fmt.Errorf("pageserver: create %s: %w", tenantsDir, err)
	}
	// An earlier process's change whose directory sync failed is visible,
	// but a crash can still undo it: sync before trusting what is listed
	// and read, or a location config acted on now (a mode, a generation)
	// could go backwards at the next crash.
	if err := m.fs.SyncDir(tenantsDir); err != nil {
		return fmt.Errorf("pageserver: sync %s: %w", tenantsDir, err)
	}
	ents, err := m.fs.ReadDir(tenantsDir)
	if err != nil {
		return fmt.Errorf("pageserver: list %s: %w", tenantsDir, err)
	}
	removed := false
	var shards []*tenantShard
	for _, e := range ents {
		name := e.Name()
		// A staging directory of a split that did not finish goes like
		// a deleting one.
		if strings.HasSuffix(name, deletingSuffix) || strings.HasSuffix(name, splitStagingSuffix) {
			if err := m.fs.RemoveAll(tenantsDir + "/" + name); err != nil {
				return fmt.Errorf("pageserver: remove %s: %w", name, err)
			}
			removed = true
			continue
		}
		id, err := shard.ParseTenantShardID(name)
		if err != nil {
			m.log.Warn("ignoring unexpected entry in tenants directory", "name", name)
			continue
		}
		shards = append(shards, &tenantShard{id: id, op: clock.NewMutex(m.clk)})
	}
	if removed {
		if err := m.fs.SyncDir(tenantsDir); err != nil {
			return fmt.Errorf("pageserver: sync %s: %w", tenantsDir, err)
		}
	}
	// The children of a split that did not commit go before anything
	// else sees them (split.go).
	shards = m.loadSplits(shards)
	if m.cfg.ControlPlane != nil {
		// Before any engine opens: the controller decides which shards
		// stay, in which mode, with which generation.
		if shards, err = m.reAttach(shards); err != nil {
			return err
		}
	}
	for _, ts := range shards {
		id := ts.id
		m.shards[id] = ts
		if ts.broken != nil {
			continue // refused by the re-attach or the split markers (logged there)
		}
		if err := m.startLocation(ts); err != nil {
			ts.broken = fmt.Errorf("%w: location config: %v", ErrBroken, err)
			m.log.Error("tenant shard broken", "tenant_shard_id", id, "err", ts.broken)
			if transient(err) {
				m.retryAttach(ts)
			}
			continue
		}
		if err := m.loadSplitMarker(ts); err != nil {
			ts.broken = fmt.Errorf("%w: split marker: %v", ErrBroken, err)
			m.log.Error("tenant shard broken", "tenant_shard_id", id, "err", ts.broken)
			continue
		}
		m.setSecondary(ts, ts.conf.Mode == pageapi.ModeSecondary)
		if ts.conf.Mode.Attached() && ts.split == nil {
			if err := m.attach(ts); err != nil {
				ts.broken = fmt.Errorf("%w: %v", ErrBroken, err)
				m.log.Error("tenant shard broken", "tenant_shard_id", id, "err", ts.broken)
				if transient(err) {
					m.retryAttach(ts)
				}
			}
		}
	}
	return nil
}

// readLocation reads a shard's location config at start-up: the shard
// directory is synced first, so a config whose directory sync failed in an
// earlier process is durable before it is trusted.
func (m *tenantManager) readLocation(ts *tenantShard) error {
	conf, err := m.readLocationFile(ts)
	if err != nil {
		return err
	}
	ts.mu.Lock()
	ts.conf = conf
	ts.mu.Unlock()
	return nil
}

// readLocationFile reads and validates the shard's location file, after
// syncing its directory (see readLocation).
func (m *tenantManager) readLocationFile(ts *tenantShard) (pageapi.LocationConfig, error) {
	var conf pageapi.LocationConfig
	if err := m.fs.SyncDir(ts.dir()); err != nil {
		return conf, err
	}
	b, err := disk.ReadFile(m.fs, ts.dir()+"/"+locationFile)
	if err != nil {
		return conf, err
	}
	if err := json.Unmarshal(b, &conf); err != nil {
		return conf, err
	}
	return conf, conf.Validate(ts.id)
}

// persistLocation writes the shard's location config crash-safely: its
// directory created durably, the file replaced atomically.
func (m *tenantManager) persistLocation(ts *tenantShard, conf pageapi.LocationConfig) error {
	b, err := json.Marshal(conf)
	if err != nil {
		return err
	}
	if err := disk.MkdirAllDurable(m.fs, ts.dir()); err != nil {
		return fmt.Errorf("pageserver: create %s: %w", ts.dir(), err)
	}
	if err := disk.WriteFileAtomic(m.fs, ts.dir()+"/"+locationFile, b); err != nil {
		return fmt.Errorf("pageserver: persist location of %s: %w", ts.id, err)
	}
	return nil
}

// engineConfig turns a tenant_conf into the page engine's policy.
func engineConfig(tc *pageapi.TenantConf) timeline.Config {
	var c timeline.Config
	if tc == nil {
		return c
	}
	if tc.CheckpointDistance != nil {
		c.CheckpointDistanceBytes = *tc.CheckpointDistance
	}
	if tc.CompactionThreshold != nil {
		c.CompactionThreshold = *tc.CompactionThreshold
	}
	if tc.ImageCreationThreshold != nil {
		c.ImageCreationThreshold = *tc.ImageCreationThreshold
	}
	if tc.GCHorizon != nil {
		c.GCHorizonBytes = *tc.GCHorizon
	}
	return c
}

// attach opens the engine tenant of an attached shard and wraps its
// timelines. Called with ts.op held (or during load, before serving).
// With remote storage, the shard's timelines are first brought in line
// with object storage (remote_attach.go) and each gets its upload queue
// before anything can edit it.
func (m *tenantManager) attach(ts *tenantShard) error {
	gen := layer.Generation(*ts.conf.Generation)
	opts := timeline.Options{
		FS: m.fs, Dir: ts.dir(), Clock: m.clk, Config: engineConfig(ts.conf.TenantConf),
		Generation: gen, Bugs: m.cfg.Bugs.Engine, LayerCache: m.layers,
		Log: m.log.With("tenant_shard_id", ts.id.String()),
	}
	if ident := ts.conf.Identity(); ident.Count >= 2 {
		// A shard keeps only its own keys (and the global ones): a split
		// child's layers, its parent's, lose the others in compaction.
		opts.KeepKey = ident.IsKeyLocal
	}
	var rt *remoteTenant
	var indexes map[shard.TimelineID]*remote.IndexPart
	var deleted []shard.TimelineID
	if m.remote != nil {
		ctx, done := m.tasks.register(context.Background(), taskDownload, tenantScope(ts.id), "attach "+ts.id.String())
		var err error
		indexes, deleted, err = m.prepareRemote(ctx, ts, gen)
		done()
		if err != nil {
			return err
		}
		rt = newRemoteTenant(m.remote, ts.id, gen, ts.conf.Mode)
		rt.start = indexes
		opts.OnEdit = rt.onEdit
		opts.Source = rt // layers not on local disk download on demand (ondemand.go)
	}
	eng, err := timeline.Open(opts)
	if err != nil {
		return err
	}
	if err := m.removeDeleted(ts, eng, deleted); err != nil {
		eng.Close()
		return err
	}
	ids := eng.Timelines()
	if len(ids) > m.cfg.MaxTimelinesPerTenant {
		eng.Close()
		return fmt.Errorf("%w: %d timelines, limit %d", ErrLimit, len(ids), m.cfg.MaxTimelinesPerTenant)
	}
	ts.mu.Lock()
	ts.remote = rt
	ts.mu.Unlock()
	tls := map[shard.TimelineID]*shardTimeline{}
	for _, id := range ids {
		tl, err := eng.Get(id)
		if err == nil && rt != nil {
			err = m.addUploadQueue(ts, rt, tl, indexes[shard.TimelineID(id)])
		}
		if err != nil {
			m.stopRemote(ts)
			m.tasks.stop(context.Background(), tenantScope(ts.id))
			eng.Close()
			return err
		}
		tls[shard.TimelineID(id)] = m.startTimeline(ts, tl)
	}
	ts.mu.Lock()
	ts.engine, ts.timelines, ts.broken = eng, tls, nil
	ts.mu.Unlock()
	m.startBackgroundDownload(ts, eng)
	if rt != nil {
		m.startHeatmapUploader(ts, rt)
		m.dropWarm(ts)
	}
	return nil
}

// addUploadQueue gives timeline tl of an attachment its upload queue,
// starting from the index the attachment loaded for it (nil: none).
func (m *tenantManager) addUploadQueue(ts *tenantShard, rt *remoteTenant, tl *timeline.Timeline, idx *remote.IndexPart) error {
	st, err := tl.State()
	if err != nil {
		return err
	}
	tid := shard.TimelineID(tl.ID())
	q := newUploadQueue(rt, tid, ts.dir()+"/timelines/"+tid.String(), st, idx)
	rt.addQueue(q)
	q.begin()
	return nil
}

// stopRemote stops the shard's upload queues and forgets its attachment
// to remote storage (their running uploads end with the shard's tasks).
func (m *tenantManager) stopRemote(ts *tenantShard) {
	ts.mu.Lock()
	rt := ts.remote
	ts.remote = nil
	ts.mu.Unlock()
	if rt == nil {
		return
	}
	rt.cancel() // its downloads end
	for _, q := range rt.allQueues() {
		q.stop()
	}
}

// detachEngine stops serving the shard's timelines, stops every task of
// the shard (its streams, WAL receivers, background work) and closes its
// engine. Called with ts.op held.
func (m *tenantManager) detachEngine(ts *tenantShard) {
	ts.mu.Lock()
	eng, tls := ts.engine, ts.timelines
	ts.engine, ts.timelines = nil, nil
	ts.mu.Unlock()
	for _, id := range slices.SortedFunc(maps.Keys(tls), compareTimelineID) {
		tls[id].shutdown()
	}
	m.setSecondary(ts, false)
	m.stopRemote(ts)
	if left := m.tasks.stop(context.Background(), tenantScope(ts.id)); len(left) > 0 {
		m.log.Error("tasks outlived their tenant's shutdown", "tenant_shard_id", ts.id, "tasks", left)
	}
	if eng != nil {
		eng.Close()
	}
}

func compareTimelineID(a, b shard.TimelineID) int { return strings.Compare(a.String(), b.String()) }

// get returns the shard, or ErrUnknownTenant.
func (m *tenantManager) get(id shard.TenantShardID) (*tenantShard, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil, ErrShuttingDown
	}
	ts := m.shards[id]
	if ts == nil {
		return nil, fmt.Errorf("%w: %s", ErrUnknownTenant, id)
	}
	return ts, nil
}

// servingLocked reports why the shard does not serve (nil if it does).
func (ts *tenantShard) servingLocked() error {
	switch {
	case ts.broken != nil:
		return ts.broken
	case ts.split != nil:
		return fmt.Errorf("%w: %s into %d shards", ErrShardSplit, ts.id, ts.split.NewShardCount)
	case !ts.conf.Mode.Attached():
		return fmt.Errorf("%w: %s is %s", ErrNotAttached, ts.id, ts.conf.Mode)
	case ts.engine == nil:
		return fmt.Errorf("%w: %s is %s", ErrAttaching, ts.id, ts.conf.Mode)
	}
	return nil
}

// attached returns the shard's engine and its timelines sorted by id if it
// serves, or why not. The slice is the caller's.
func (ts *tenantShard) attached() (*timeline.Tenant, []*shardTimeline, error) {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	if err := ts.servingLocked(); err != nil {
		return nil, nil, err
	}
	ids := slices.SortedFunc(maps.Keys(ts.timelines), compareTimelineID)
	out := make([]*shardTimeline, len(ids))
	for i, id := range ids {
		out[i] = ts.timelines[id]
	}
	return ts.engine, out, nil
}

// lookup returns one timeline of a serving shard.
func (ts *tenantShard) lookup(tid shard.TimelineID) (*shardTimeline, error) {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	if err := ts.servingLocked(); err != nil {
		return nil, err
	}
	if st := ts.timelines[tid]; st != nil {
		return st, nil
	}
	return nil, fmt.Errorf("%w: %s/%s", ErrUnknownTimeline, ts.id, tid)
}

// Resolve implements Resolver for the page service: only attached,
// healthy shards serve.
// A shard split here, or not here at all, is served by its local children
// if they are all here (route.go).
func (m *tenantManager) Resolve(t pageapi.Target) (Timeline, error) {
	ts, err := m.get(t.Shard)
	if err != nil && !errors.Is(err, ErrUnknownTenant) {
		return nil, err
	}
	if ts != nil {
		tl, err := ts.lookup(t.Timeline)
		switch {
		case err == nil:
			return tl, nil
		case errors.Is(err, ErrAttaching):
			return nil, err
		case errors.Is(err, ErrNotAttached):
			return nil, fmt.Errorf("%w: %v", ErrUnknownTenant, err)
		case !errors.Is(err, ErrShardSplit):
			return nil, err
		}
	}
	return m.route(t, ts)
}

// setLocation applies a location config: persisted first, then acted on.
// It returns the config now in force (nil once detached).
func (m *tenantManager) setLocation(ctx context.Context, id shard.TenantShardID, conf pageapi.LocationConfig) (*pageapi.LocationConfig, error) {
	if err := conf.Validate(id); err != nil {
		return nil, err
	}
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return nil, ErrShuttingDown
	}
	ts := m.shards[id]
	if ts == nil {
		if conf.Mode == pageapi.ModeDetached {
			m.mu.Unlock()
			return nil, nil // idempotent
		}
		if len(m.shards) >= m.cfg.MaxTenantShards {
			m.mu.Unlock()
			return nil, fmt.Errorf("%w: %d tenant shards, limit %d", ErrLimit, len(m.shards), m.cfg.MaxTenantShards)
		}
		ts = &tenantShard{id: id, op: clock.NewMutex(m.clk)}
		m.shards[id] = ts
	}
	m.mu.Unlock()
	if err := ts.op.Lock(ctx); err != nil {
		return nil, err
	}
	defer ts.op.Unlock()

	ts.mu.Lock()
	old, wasBroken := ts.conf, ts.broken != nil
	ts.mu.Unlock()
	if conf.Mode == pageapi.ModeDetached {
		return nil, m.detach(ts)
	}
	if old.Generation != nil && conf.Generation != nil && *conf.Generation < *old.Generation && !wasBroken {
		return nil, fmt.Errorf("%w: %s holds generation %d, asked for %d", ErrStaleGeneration, id, *old.Generation, *conf.Generation)
	}
	if old.Mode != "" && old.Identity() != conf.Identity() {
		return nil, fmt.Errorf("%w: shard identity %+v cannot change to %+v (split the tenant instead)", ErrBadRequest, old.Identity(), conf.Identity())
	}
	if err := m.persistLocation(ts, conf); err != nil {
		return nil, err
	}
	// A location config for a split parent is the controller taking the
	// parent back (a rolled-back split): it serves again.
	if err := m.clearSplit(ts); err != nil {
		return nil, err
	}
	reopen := !conf.Mode.Attached() || old.Generation == nil || conf.Generation == nil || *old.Generation != *conf.Generation ||
		!tenantConfEqual(old.TenantConf, conf.TenantConf) || wasBroken
	ts.mu.Lock()
	ts.conf = conf
	ts.assigned = nil // a location config supersedes the re-attach answer
	running := ts.engine != nil
	rt := ts.remote
	ts.mu.Unlock()
	if running && reopen {
		m.detachEngine(ts)
		running = false
	}
	if running && rt != nil {
		// Same generation, another attached mode: uploads and deletions
		// follow it at once.
		rt.setMode(conf.Mode)
	}
	// Secondary downloads run only while Secondary (stopped before an
	// attach, which takes their copies: secondary.go).
	m.setSecondary(ts, conf.Mode == pageapi.ModeSecondary)
	if conf.Mode.Attached() && !running {
		if err := m.attach(ts); err != nil {
			ts.mu.Lock()
			ts.broken = fmt.Errorf("%w: %v", ErrBroken, err)
			ts.mu.Unlock()
			m.log.Error("tenant shard broken", "tenant_shard_id", id, "err", err)
			return nil, ts.broken
		}
	}
	m.log.Info("location config applied", "tenant_shard_id", id, "mode", conf.Mode, "generation", generationText(conf.Generation))
	return &conf, nil
}

func generationText(g *uint32) string {
	if g == nil {
		return "none"
	}
	return fmt.Sprint(*g)
}

func tenantConfEqual(a, b *pageapi.TenantConf) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return string(x) == string(y)
}

// detach stops the shard and removes its local data: the directory is
// renamed to a .deleting name durably first, so a crash mid-removal never
// leaves a partial tenant that start-up would load. Called with ts.op held.
func (m *tenantManager) detach(ts *tenantShard) error {
	m.detachEngine(ts)
	dir, gone := ts.dir(), ts.dir()+deletingSuffix
	if _, err := m.fs.Stat(dir); err == nil {
		if err := m.fs.RemoveAll(gone); err != nil {
			return fmt.Errorf("pageserver: clear %s: %w", gone, err)
		}
		if err := m.fs.Rename(dir, gone); err != nil {
			return fmt.Errorf("pageserver: detach %s: %w", ts.id, err)
		}
		if err := m.fs.SyncDir(tenantsDir); err != nil {
			return fmt.Errorf("pageserver: detach %s: sync: %w", ts.id, err)
		}
		if err := m.fs.RemoveAll(gone); err != nil {
			return fmt.Errorf("pageserver: remove %s: %w", gone, err)
		}
		if err := m.fs.SyncDir(tenantsDir); err != nil {
			return fmt.Errorf("pageserver: detach %s: sync: %w", ts.id, err)
		}
	} else if !errors.Is(err, disk.ErrNotExist) {
		return fmt.Errorf("pageserver: stat %s: %w", dir, err)
	}
	m.mu.Lock()
	if m.shards[ts.id] == ts {
		delete(m.shards, ts.id)
	}
	m.mu.Unlock()
	m.log.Info("tenant shard detached", "tenant_shard_id", ts.id)
	return nil
}

// locations lists every shard's config, sorted by id (nil config for a
// broken one).
func (m *tenantManager) locations() []pageapi.TenantShardLocation {
	m.mu.Lock()
	ids := slices.SortedFunc(maps.Keys(m.shards), shard.TenantShardID.Compare)
	shards := make([]*tenantShard, len(ids))
	for i, id := range ids {
		shards[i] = m.shards[id]
	}
	m.mu.Unlock()
	out := make([]pageapi.TenantShardLocation, 0, len(ids))
	for _, ts := range shards {
		ts.mu.Lock()
		var c *pageapi.LocationConfig
		if ts.broken == nil {
			conf := ts.conf
			c = &conf
		}
		ts.mu.Unlock()
		out = append(out, pageapi.TenantShardLocation{ID: ts.id.String(), Config: c})
	}
	return out
}

// createTimeline creates a root timeline or a branch on an attached shard.
func (m *tenantManager) createTimeline(ctx context.Context, id shard.TenantShardID, req pageapi.TimelineCreateRequest) (pageapi.TimelineInfo, error) {
	ts, err := m.get(id)
	if err != nil {
		return pageapi.TimelineInfo{}, err
	}
	if err := ts.op.Lock(ctx); err != nil {
		return pageapi.TimelineInfo{}, err
	}
	defer ts.op.Unlock()
	eng, tls, err := ts.attached()
	if err != nil {
		return pageapi.TimelineInfo{}, err
	}
	if _, err := ts.lookup(req.NewTimelineID); err == nil {
		return pageapi.TimelineInfo{}, fmt.Errorf("%w: %s", ErrTimelineExists, req.NewTimelineID)
	}
	if len(tls) >= m.cfg.MaxTimelinesPerTenant {
		return pageapi.TimelineInfo{}, fmt.Errorf("%w: %d timelines, limit %d", ErrLimit, len(tls), m.cfg.MaxTimelinesPerTenant)
	}
	var tl *timeline.Timeline
	if req.AncestorTimelineID == nil {
		init := lsn.Invalid
		if req.InitLSN != nil {
			init = *req.InitLSN
		}
		tl, err = eng.Create(timeline.ID(req.NewTimelineID), init)
	} else {
		parent, perr := ts.lookup(*req.AncestorTimelineID)
		if perr != nil {
			return pageapi.TimelineInfo{}, fmt.Errorf("ancestor: %w", perr)
		}
		at := parent.LastRecordLSN()
		if req.AncestorStartLSN != nil {
			at = *req.AncestorStartLSN
		}
		tl, err = eng.Branch(timeline.ID(*req.AncestorTimelineID), timeline.ID(req.NewTimelineID), at)
	}
	if err != nil {
		if errors.Is(err, timeline.ErrExists) {
			return pageapi.TimelineInfo{}, fmt.Errorf("%w: %v", ErrTimelineExists, err)
		}
		return pageapi.TimelineInfo{}, err
	}
	ts.mu.Lock()
	rt := ts.remote
	ts.mu.Unlock()
	if rt != nil {
		// Its first index (a branch's names its ancestor; a new root
		// timeline's, with no layers yet, is not uploaded).
		if err := m.addUploadQueue(ts, rt, tl, nil); err != nil {
			return pageapi.TimelineInfo{}, err
		}
	}
	st := m.startTimeline(ts, tl)
	ts.mu.Lock()
	ts.timelines[req.NewTimelineID] = st
	ts.mu.Unlock()
	m.log.Info("timeline created", "tenant_shard_id", id, "timeline_id", req.NewTimelineID)
	return timelineInfo(id, st), nil
}

// deleteTimeline deletes a timeline of an attached shard and its local
// files. A timeline other timelines branch from is refused
// (timeline.ErrHasChildren: 412) and left serving; an unknown one is
// ErrUnknownTimeline (404), so a repeated delete answers 404. Otherwise
// the timeline stops being served (new requests: NotFound; waits for
// ingest: ErrShuttingDown), every task of it — page streams, its WAL
// receiver, its background work — is stopped, and the engine deletes it
// crash-safely (timeline.Tenant.Delete). If the engine still holds it after
// a failed delete, it is served again. Synchronous: it returns once the
// deletion is durable (Neon answers 202 and deletes in the background).
func (m *tenantManager) deleteTimeline(ctx context.Context, id shard.TenantShardID, tid shard.TimelineID) error {
	ts, err := m.get(id)
	if err != nil {
		return err
	}
	if err := ts.op.Lock(ctx); err != nil {
		return err
	}
	defer ts.op.Unlock()
	eng, sts, err := ts.attached()
	if err != nil {
		return err
	}
	st, err := ts.lookup(tid)
	if err != nil {
		return err
	}
	for _, o := range sts {
		if a, _, ok := o.tl.Ancestor(); ok && shard.TimelineID(a) == tid {
			return fmt.Errorf("%w: %s/%s is the ancestor of %s", timeline.ErrHasChildren, id, tid, shard.TimelineID(o.tl.ID()))
		}
	}
	ts.mu.Lock()
	delete(ts.timelines, tid)
	rt := ts.remote
	ts.mu.Unlock()
	st.shutdown()
	var q *uploadQueue
	if rt != nil {
		if q = rt.removeQueue(tid); q != nil {
			q.stop()
		}
	}
	if left := m.tasks.stop(ctx, timelineScope(id, tid)); len(left) > 0 {
		// The engine still waits for a flush, compaction or GC in flight
		// and refuses everything after, so deleting is safe; say so.
		m.log.Error("tasks outlived their timeline's shutdown", "tenant_shard_id", id, "timeline_id", tid, "tasks", left)
	}
	// restart serves the timeline again after a failed delete, if the
	// engine still holds it.
	restart := func() {
		tl, gerr := eng.Get(timeline.ID(tid))
		if gerr != nil {
			return
		}
		if rt != nil {
			// A new index goes up (object storage may say deleted); the
			// layers q knew are in object storage are not uploaded again.
			if qerr := m.restartUploadQueue(ts, rt, tl, q); qerr != nil {
				m.log.Error("restarting the upload queue of a timeline whose delete failed", "tenant_shard_id", id, "timeline_id", tid, "err", qerr)
			}
		}
		restarted := m.startTimeline(ts, tl)
		ts.mu.Lock()
		ts.timelines[tid] = restarted
		ts.mu.Unlock()
	}
	var drop []remote.LayerID
	if q != nil {
		// Object storage first: once its index says deleted, no later
		// attachment brings the timeline back (a local copy included).
		var err error
		if drop, err = q.markDeleted(ctx); err != nil {
			restart()
			return fmt.Errorf("delete timeline %s/%s: in object storage: %w", id, tid, err)
		}
	}
	if err := eng.Delete(timeline.ID(tid)); err != nil {
		restart()
		return fmt.Errorf("delete timeline %s/%s: %w", id, tid, err)
	}
	if len(drop) > 0 {
		m.remote.deletions.push(id, rt.gen, tid, drop)
	}
	m.log.Info("timeline deleted", "tenant_shard_id", id, "timeline_id", tid)
	return nil
}

func timelineInfo(id shard.TenantShardID, st *shardTimeline) pageapi.TimelineInfo {
	info := pageapi.TimelineInfo{
		TenantID:            id.String(),
		TimelineID:          shard.TimelineID(st.tl.ID()),
		LastRecordLSN:       st.LastRecordLSN(),
		DiskConsistentLSN:   st.tl.DiskConsistentLSN(),
		LatestGCCutoffLSN:   st.tl.GCCutoff(),
		RemoteConsistentLSN: st.remoteConsistentLSN(),
	}
	if a, at, ok := st.tl.Ancestor(); ok {
		aid := shard.TimelineID(a)
		info.AncestorTimelineID, info.AncestorLSN = &aid, &at
	}
	return info
}

// listTimelines describes an attached shard's timelines, sorted by id.
func (m *tenantManager) listTimelines(id shard.TenantShardID) ([]pageapi.TimelineInfo, error) {
	ts, err := m.get(id)
	if err != nil {
		return nil, err
	}
	_, sts, err := ts.attached()
	if err != nil {
		return nil, err
	}
	out := make([]pageapi.TimelineInfo, len(sts))
	for i, st := range sts {
		out[i] = timelineInfo(id, st)
	}
	return out, nil
}

// count returns the number of tenant shards here.
func (m *tenantManager) count() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.shards)
}

// close stops serving every shard (reads fail ErrShuttingDown) and closes
// the engines. Further calls fail ErrShuttingDown.
func (m *tenantManager) close() {
	m.mu.Lock()
	m.closed = true
	ids := slices.SortedFunc(maps.Keys(m.shards), shard.TenantShardID.Compare)
	shards := make([]*tenantShard, len(ids))
	for i, id := range ids {
		shards[i] = m.shards[id]
	}
	m.mu.Unlock()
	for _, ts := range shards {
		m.detachEngine(ts)
	}
}

// flushAll flushes every attached timeline (shutdown: a restart then
// resumes ingest from durable layers rather than re-reading WAL).
func (m *tenantManager) flushAll() {
	m.mu.Lock()
	ids := slices.SortedFunc(maps.Keys(m.shards), shard.TenantShardID.Compare)
	shards := make([]*tenantShard, len(ids))
	for i, id := range ids {
		shards[i] = m.shards[id]
	}
	m.mu.Unlock()
	for _, ts := range shards {
		_, sts, err := ts.attached()
		if err != nil {
			continue
		}
		for _, st := range sts {
			tid := shard.TimelineID(st.tl.ID())
			if st.tl.LastRecordLSN() == st.tl.DiskConsistentLSN() {
				continue
			}
			if err := st.tl.Flush(); err != nil {
				m.log.Warn("flush at shutdown failed; WAL above disk_consistent_lsn is re-read at start", "tenant_shard_id", ts.id, "timeline_id", tid, "err", err)
			}
		}
	}
}

// Bounds of the retries of an attach that failed on a transient disk error.
const (
	// MaxAttachRetries bounds the retries; after the last the shard stays
	// broken until a location config or a restart.
	MaxAttachRetries = 60
	attachBackoffMin = 100 * time.Millisecond
	attachBackoffMax = 10 * time.Second
)

// transient reports an error worth retrying: the device failed an
// operation (EIO, ENOSPC), which says nothing about what is on it, or
// object storage kept failing a download through the whole retry policy
// (it may be back later).
func transient(err error) bool {
	return errors.Is(err, disk.ErrIO) || errors.Is(err, disk.ErrNoSpace) || errors.Is(err, remote.ErrRetriesExhausted)
}

// retryAttach retries a shard's attach in the background after a transient
// error at start-up (a disk error, object storage failing downloads), with
// doubling back-off, until it succeeds, the
// shard's config changes, it fails for another reason, or
// MaxAttachRetries run out.
func (m *tenantManager) retryAttach(ts *tenantShard) {
	m.tasks.spawn(context.Background(), taskBackground, tenantScope(ts.id), "attach retry "+ts.id.String(), func(ctx context.Context) {
		wait := attachBackoffMin
		for attempt := 1; attempt <= MaxAttachRetries; attempt++ {
			if clock.Sleep(ctx, m.clk, wait) != nil {
				return
			}
			wait = min(2*wait, attachBackoffMax)
			if ts.op.Lock(ctx) != nil {
				return
			}
			ts.mu.Lock()
			unread := ts.conf.Mode == ""
			stillBroken := ts.broken != nil && ts.engine == nil && (unread || ts.conf.Mode.Attached())
			ts.mu.Unlock()
			if !stillBroken {
				ts.op.Unlock()
				return
			}
			var err error
			if unread {
				// Start-up could not read the location config (or apply the
				// controller's answer to it): do that first.
				if err = m.startLocation(ts); err == nil && !ts.conf.Mode.Attached() {
					ts.mu.Lock()
					ts.broken = nil
					ts.mu.Unlock()
					ts.op.Unlock()
					return
				}
			}
			if err == nil {
				err = m.attach(ts)
			}
			ts.op.Unlock()
			if err == nil {
				m.log.Info("tenant shard attached after retries", "tenant_shard_id", ts.id, "attempts", attempt)
				return
			}
			if !transient(err) {
				ts.mu.Lock()
				ts.broken = fmt.Errorf("%w: %v", ErrBroken, err)
				ts.mu.Unlock()
				m.log.Error("tenant shard broken", "tenant_shard_id", ts.id, "err", err)
				return
			}
			m.log.Warn("attach retry failed", "tenant_shard_id", ts.id, "attempt", attempt, "err", err)
		}
	})
}
