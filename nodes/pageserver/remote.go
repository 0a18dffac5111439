package pageserver

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/stratadb/strata/clock"
	"github.com/stratadb/strata/disk"
	"github.com/stratadb/strata/disk/objstore"
	"github.com/stratadb/strata/engine/layer"
	"github.com/stratadb/strata/engine/remote"
	"github.com/stratadb/strata/engine/shard"
	"github.com/stratadb/strata/engine/timeline"
	"github.com/stratadb/strata/nodes/pageserver/pageapi"
	"github.com/stratadb/strata/nodes/storcon/storconapi"
)

// Remote storage (docs/remote-storage.md, "The pageserver's side"): with
// an object store in its Env the node uploads every layer file its engines
// write and then each timeline's index (upload_queue.go), validates its
// generations with the storage controller before remote_consistent_lsn is
// reported and before anything is deleted (remote_validate.go), deletes
// through a persisted deletion queue (deletion_queue.go), attaches a
// tenant shard whose local state is missing or behind from object storage
// (remote_attach.go) with its layers downloaded on demand (ondemand.go),
// and keeps the local layer files within a disk budget (eviction.go).

// Task kinds of remote storage.
const (
	taskUpload   taskKind = "upload"   // one upload of a timeline's queue
	taskDownload taskKind = "download" // an attach's downloads
	taskRemote   taskKind = "remote"   // the node's validator and deletion executor
)

// remoteStorage is the node's object-storage side; nil without env.Store.
type remoteStorage struct {
	clk     clock.Clock
	fs      disk.FS
	log     *slog.Logger
	store   objstore.Store
	layout  remote.Layout
	cfg     RemoteStorageConfig
	retrier *remote.Retrier
	metrics *remoteMetrics
	tasks   *taskRegistry
	// downloads bounds the node's concurrent layer downloads;
	// background those of the eager background downloads (ondemand.go).
	downloads, background *clock.Semaphore
	// res are the residency metrics (ondemand.go); evict is the node's
	// evictor (eviction.go), nil until startRemote.
	res       *residencyMetrics
	evict     *evictor
	validator *validator
	deletions *deletionQueue
	// sec counts heatmap uploads and secondary downloads (heatmap.go).
	sec *secondaryMetrics
	// bugs are the planted defects of remote storage (Config.Bugs).
	bugs Bugs
}

// newRemoteStorage sets up remote storage over store (wrapped by
// objstore.NewFailFirst when cfg.TestFailures is set). ctl is the storage
// controller's client, nil without one.
func newRemoteStorage(clk clock.Clock, fs disk.FS, log *slog.Logger, reg prometheus.Registerer, tasks *taskRegistry,
	store objstore.Store, cfg RemoteStorageConfig, ctl *storconapi.Client) (*remoteStorage, error) {
	layout, err := remote.NewLayout(cfg.Prefix)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrConfig, err)
	}
	if cfg.TestFailures > 0 {
		if store, err = objstore.NewFailFirst(store, cfg.TestFailures); err != nil {
			return nil, fmt.Errorf("%w: %v", ErrConfig, err)
		}
		log.Warn("remote storage: every operation fails its first attempts (RemoteStorage.TestFailures)", "failures", cfg.TestFailures)
	}
	rlog := log.With("component", "remote")
	retrier, err := remote.NewRetrier(clk, rlog, cfg.Download)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrConfig, err)
	}
	metrics, err := newRemoteMetrics(reg)
	if err != nil {
		return nil, err
	}
	rs := &remoteStorage{clk: clk, fs: fs, log: rlog, store: store, layout: layout, cfg: cfg, retrier: retrier,
		metrics: metrics, tasks: tasks, downloads: clock.NewSemaphore(clk, int64(cfg.MaxConcurrentDownloads)),
		background: clock.NewSemaphore(clk, int64(cfg.BackgroundDownloads))}
	if rs.sec, err = newSecondaryMetrics(reg); err != nil {
		return nil, err
	}
	rs.deletions = newDeletionQueue(rs)
	rs.validator = newValidator(rs, ctl)
	return rs, nil
}

// remoteMetrics are remote storage's metrics (docs/pageserver.md,
// Metrics).
type remoteMetrics struct {
	uploads        *prometheus.CounterVec // by kind (layer, index), completed
	uploadBytes    prometheus.Counter
	uploadFailures *prometheus.CounterVec // by kind: each failed attempt (then retried)
	downloads      prometheus.Counter     // layer files downloaded
	downloadBytes  prometheus.Counter
	indexes        prometheus.Counter // index_part.json downloaded
	deleted        prometheus.Counter // objects deleted by the deletion queue
	deleteDropped  prometheus.Counter // objects not deleted: their generation did not validate (a leak)
	deleteFailures prometheus.Counter // failed delete calls (retried)
	validations    *prometheus.CounterVec
	rclLag         *prometheus.GaugeVec // disk_consistent_lsn - visible remote_consistent_lsn, by timeline
}

func newRemoteMetrics(reg prometheus.Registerer) (*remoteMetrics, error) {
	m := &remoteMetrics{
		uploads: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "strata_pageserver_remote_uploads_total",
			Help: "Uploads to object storage completed, by kind (layer, index)."}, []string{"kind"}),
		uploadBytes: prometheus.NewCounter(prometheus.CounterOpts{Name: "strata_pageserver_remote_upload_bytes_total",
			Help: "Bytes uploaded to object storage (layers and indexes)."}),
		uploadFailures: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "strata_pageserver_remote_upload_retries_total",
			Help: "Failed upload attempts, each retried, by kind (layer, index)."}, []string{"kind"}),
		downloads: prometheus.NewCounter(prometheus.CounterOpts{Name: "strata_pageserver_remote_layer_downloads_total",
			Help: "Layer files downloaded from object storage."}),
		downloadBytes: prometheus.NewCounter(prometheus.CounterOpts{Name: "strata_pageserver_remote_download_bytes_total",
			Help: "Bytes of layer files downloaded from object storage."}),
		indexes: prometheus.NewCounter(prometheus.CounterOpts{Name: "strata_pageserver_remote_index_downloads_total",
			Help: "Timeline indexes (index_part.json) downloaded."}),
		deleted: prometheus.NewCounter(prometheus.CounterOpts{Name: "strata_pageserver_remote_deletions_executed_total",
			Help: "Objects deleted by the deletion queue after their generation validated."}),
		deleteDropped: prometheus.NewCounter(prometheus.CounterOpts{Name: "strata_pageserver_remote_deletions_dropped_total",
			Help: "Objects the deletion queue did not delete because their generation did not validate (leaked, never wrongly deleted)."}),
		deleteFailures: prometheus.NewCounter(prometheus.CounterOpts{Name: "strata_pageserver_remote_delete_retries_total",
			Help: "Failed delete calls of the deletion queue, each retried."}),
		validations: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "strata_pageserver_remote_validations_total",
			Help: "Generations validated, by result (valid, invalid, error: the call failed)."}, []string{"result"}),
		rclLag: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "strata_pageserver_remote_consistent_lsn_lag_bytes",
			Help: "disk_consistent_lsn minus the visible remote_consistent_lsn, per timeline."}, []string{"tenant_shard_id", "timeline_id"}),
	}
	for _, c := range []prometheus.Collector{m.uploads, m.uploadBytes, m.uploadFailures, m.downloads, m.downloadBytes, m.indexes,
		m.deleted, m.deleteDropped, m.deleteFailures, m.validations, m.rclLag} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("pageserver: register metrics: %w", err)
		}
	}
	return m, nil
}

// remoteTenant is one attachment of a tenant shard to remote storage: its
// generation (fixed for the attachment: a new generation reopens the
// shard), its mode (which a location config may change in place) and its
// timelines' upload queues.
type remoteTenant struct {
	rs  *remoteStorage
	id  shard.TenantShardID
	gen layer.Generation

	// ctx ends the attachment's layer downloads (cancelled by stopRemote);
	// start are the indexes its attach loaded, by timeline (the source of
	// remote layers until each timeline has its upload queue).
	ctx    context.Context
	cancel context.CancelFunc
	start  map[shard.TimelineID]*remote.IndexPart

	mu     sync.Mutex
	mode   pageapi.LocationMode
	queues map[shard.TimelineID]*uploadQueue
	// heat uploads the attachment's heatmap (heatmap.go); nil until the
	// attach completed.
	heat *heatmapUploader
}

func newRemoteTenant(rs *remoteStorage, id shard.TenantShardID, gen layer.Generation, mode pageapi.LocationMode) *remoteTenant {
	ctx, cancel := clock.WithCancel(context.Background())
	return &remoteTenant{rs: rs, id: id, gen: gen, mode: mode, ctx: ctx, cancel: cancel, queues: map[shard.TimelineID]*uploadQueue{}}
}

// currentMode returns the attachment's mode now.
func (rt *remoteTenant) currentMode() pageapi.LocationMode {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	return rt.mode
}

// setMode changes the mode in place (AttachedSingle, AttachedMulti,
// AttachedStale) and lets every queue act on it: uploads resume or pause,
// held deletions go out once the mode allows them.
func (rt *remoteTenant) setMode(mode pageapi.LocationMode) {
	rt.mu.Lock()
	changed := rt.mode != mode
	rt.mode = mode
	qs := rt.sortedQueues()
	rt.mu.Unlock()
	if !changed {
		return
	}
	for _, q := range qs {
		q.kick()
	}
}

// sortedQueues lists the queues by timeline id; rt.mu is held.
func (rt *remoteTenant) sortedQueues() []*uploadQueue {
	ids := slices.SortedFunc(maps.Keys(rt.queues), compareTimelineID)
	out := make([]*uploadQueue, len(ids))
	for i, id := range ids {
		out[i] = rt.queues[id]
	}
	return out
}

func (rt *remoteTenant) queue(id shard.TimelineID) *uploadQueue {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	return rt.queues[id]
}

func (rt *remoteTenant) addQueue(q *uploadQueue) {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	rt.queues[q.tid] = q
}

func (rt *remoteTenant) removeQueue(id shard.TimelineID) *uploadQueue {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	q := rt.queues[id]
	delete(rt.queues, id)
	return q
}

// queues lists every queue, sorted by timeline id.
func (rt *remoteTenant) allQueues() []*uploadQueue {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	return rt.sortedQueues()
}

// onEdit is the engine's observer (timeline.Options.OnEdit): it schedules
// the edit's uploads on the timeline's queue.
func (rt *remoteTenant) onEdit(e timeline.Edit) {
	q := rt.queue(shard.TimelineID(e.Timeline))
	if q == nil {
		// Every timeline gets its queue before anything can edit it; a
		// missing one would leave object storage behind for good.
		rt.rs.log.Error("edit of a timeline without an upload queue", "tenant_shard_id", rt.id, "timeline_id", shard.TimelineID(e.Timeline), "kind", e.Kind)
		return
	}
	q.scheduleEdit(e)
}

// startRemote sets up the node's remote storage over env.Store: the
// deletion queue's lists left by a previous process are read back, and
// the validator and the deletion executor start (node tasks).
func (n *Node) startRemote() error {
	var ctl *storconapi.Client
	if n.cfg.ControlPlane != nil {
		ctl = &storconapi.Client{HTTP: n.cfg.ControlPlane, Token: n.cfg.ControlPlaneToken}
	}
	rs, err := newRemoteStorage(n.env.Clock, n.env.Disk, n.env.Log, n.env.Metrics, n.tasks, n.env.Store, n.cfg.RemoteStorage, ctl)
	if err != nil {
		return err
	}
	rs.validator.localGen = n.tenants.localGen
	rs.bugs = n.cfg.Bugs
	if err := rs.deletions.load(); err != nil {
		return err
	}
	n.tenants.remote = rs
	n.tasks.spawn(context.Background(), taskRemote, nodeScope(), "validator", rs.validator.run)
	n.tasks.spawn(context.Background(), taskRemote, nodeScope(), "deletion queue", rs.deletions.run)
	if rs.res, err = newResidencyMetrics(n.env.Metrics, n.tenants); err != nil {
		return err
	}
	rs.evict = newEvictor(n.tenants)
	n.tasks.spawn(context.Background(), taskRemote, nodeScope(), "evictor", rs.evict.run)
	return nil
}

// localGen reports the generation shard id is attached with here (ok
// false if it is not attached).
func (m *tenantManager) localGen(id shard.TenantShardID) (layer.Generation, bool) {
	m.mu.Lock()
	ts := m.shards[id]
	m.mu.Unlock()
	if ts == nil {
		return 0, false
	}
	ts.mu.Lock()
	defer ts.mu.Unlock()
	if ts.remote == nil || !ts.conf.Mode.Attached() {
		return 0, false
	}
	return ts.remote.gen, true
}

// drainUploads waits, at a clean shutdown, until every upload queue has
// uploaded what was scheduled (bounded by ShutdownUploadTimeout), and
// writes the deletion queue's pending keys to a list, so that a restart
// neither starts from an older index than needed nor loses deletions.
func (m *tenantManager) drainUploads(ctx context.Context) {
	rs := m.remote
	if rs == nil {
		return
	}
	ctx, cancel := clock.WithTimeout(m.clk, ctx, rs.cfg.ShutdownUploadTimeout)
	defer cancel()
	m.mu.Lock()
	shards := make([]*tenantShard, 0, len(m.shards))
	for _, id := range slices.SortedFunc(maps.Keys(m.shards), shard.TenantShardID.Compare) {
		shards = append(shards, m.shards[id])
	}
	m.mu.Unlock()
	for _, ts := range shards {
		ts.mu.Lock()
		rt := ts.remote
		ts.mu.Unlock()
		if rt == nil {
			continue
		}
		if mode := rt.currentMode(); mode != pageapi.ModeAttachedSingle && mode != pageapi.ModeAttachedMulti {
			continue // uploads are suspended: nothing would drain
		}
		for _, q := range rt.allQueues() {
			if err := q.barrier(ctx); err != nil {
				m.log.Warn("uploads unfinished at shutdown; a restart uploads them again", "tenant_shard_id", ts.id, "timeline_id", q.tid, "err", err)
			}
		}
	}
	rs.deletions.persistPending()
}
