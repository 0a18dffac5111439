package pageserver

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/stratadb/strata/clock"
	"github.com/stratadb/strata/disk"
	"github.com/stratadb/strata/engine/layer"
	"github.com/stratadb/strata/engine/remote"
	"github.com/stratadb/strata/engine/shard"
	"github.com/stratadb/strata/engine/timeline"
)

// Layers on demand (docs/remote-storage.md, "Layers on demand"). A shard
// attached from object storage is active as soon as its indexes are
// loaded: the layers its local disk does not hold are remote entries of
// the engine's layer map (engine/timeline, "Layer residency"), and the
// attachment (remoteTenant) is the engine's layer source. The first read
// that needs a remote layer downloads it: one download per layer however
// many readers wait for it, bounded by RemoteStorage.MaxConcurrentDownloads
// across the node, with the download retry policy; the engine checks the
// file and renames it into place. A failed download fails that read with
// timeline.ErrLayerDownload (Unavailable to the client: StatusOf).
//
// After an attach, a background task downloads the remaining remote
// layers, newest first (RemoteStorage.BackgroundDownloads at once across
// the node), stopping at the disk budget (RemoteStorage.MaxLocalLayerBytes)
// and ended by the shard's shutdown; reads never wait for it except for
// the one layer it is downloading.

// downloadKindKey marks the context of a background download (its
// downloads are counted apart from those reads wait for).
type downloadKindKey struct{}

// residencyMetrics count on-demand and background downloads and
// evictions (docs/pageserver.md, Metrics).
type residencyMetrics struct {
	onDemand, onDemandBytes     prometheus.Counter
	background, backgroundBytes prometheus.Counter
	failures                    prometheus.Counter // reads failed by a download
	wait                        prometheus.Histogram
	evictions, evictedBytes     prometheus.Counter
}

func newResidencyMetrics(reg prometheus.Registerer, m *tenantManager) (*residencyMetrics, error) {
	r := &residencyMetrics{
		onDemand: prometheus.NewCounter(prometheus.CounterOpts{Name: "strata_pageserver_ondemand_layer_downloads_total",
			Help: "Layer files downloaded because a read (or compaction) needed them."}),
		onDemandBytes: prometheus.NewCounter(prometheus.CounterOpts{Name: "strata_pageserver_ondemand_layer_download_bytes_total",
			Help: "Bytes of layer files downloaded on demand."}),
		background: prometheus.NewCounter(prometheus.CounterOpts{Name: "strata_pageserver_background_layer_downloads_total",
			Help: "Layer files downloaded by the background download after an attach."}),
		backgroundBytes: prometheus.NewCounter(prometheus.CounterOpts{Name: "strata_pageserver_background_layer_download_bytes_total",
			Help: "Bytes of layer files downloaded in the background."}),
		failures: prometheus.NewCounter(prometheus.CounterOpts{Name: "strata_pageserver_ondemand_layer_download_failures_total",
			Help: "On-demand layer downloads that failed (the read that needed the layer failed, Unavailable)."}),
		wait: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "strata_pageserver_ondemand_layer_download_wait_seconds",
			Help:    "Time from a read needing a remote layer to the layer being on local disk (queueing for a download slot included).",
			Buckets: prometheus.ExponentialBuckets(0.001, 4, 10)}),
		evictions: prometheus.NewCounter(prometheus.CounterOpts{Name: "strata_pageserver_resident_layer_evictions_total",
			Help: "Layer files removed from local disk to stay within MaxLocalLayerBytes (they stay in object storage)."}),
		evictedBytes: prometheus.NewCounter(prometheus.CounterOpts{Name: "strata_pageserver_resident_layer_evicted_bytes_total",
			Help: "Bytes of layer files evicted."}),
	}
	for _, c := range []prometheus.Collector{r.onDemand, r.onDemandBytes, r.background, r.backgroundBytes, r.failures, r.wait,
		r.evictions, r.evictedBytes,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "strata_pageserver_resident_layer_bytes",
			Help: "Bytes of the layer files of attached shards on local disk (bounded by MaxLocalLayerBytes when set)."},
			func() float64 { return float64(m.residentBytes()) }),
	} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("pageserver: register metrics: %w", err)
		}
	}
	return r, nil
}

// Has is the engine's question whether layer name of timeline id is
// durably in object storage (timeline.LayerSource): named by the newest
// index this attachment uploaded, or, before the timeline has its upload
// queue, by the index the attach loaded.
func (rt *remoteTenant) Has(id timeline.ID, name layer.Name) (int64, bool) {
	tid := shard.TimelineID(id)
	if q := rt.queue(tid); q != nil {
		l, ok := q.durable(name)
		return int64(l.FileSize), ok
	}
	if idx := rt.start[tid]; idx != nil {
		if l, ok := idx.Find(name); ok && l.Name == name {
			return int64(l.FileSize), true
		}
	}
	return 0, false
}

// remoteLayer is the object of layer name of timeline tid, as the
// attachment knows it.
func (rt *remoteTenant) remoteLayer(tid shard.TimelineID, name layer.Name) (remote.Layer, bool) {
	if q := rt.queue(tid); q != nil {
		return q.remoteLayer(name)
	}
	if idx := rt.start[tid]; idx != nil {
		if l, ok := idx.Find(name); ok && l.Name == name {
			return l, true
		}
	}
	return remote.Layer{}, false
}

// errLayerUnknown: a read needs a layer object the attachment does not
// know (a compaction removed the layer and its deletion went out while an
// older read still used it): the read is retried on the current layers.
var errLayerUnknown = errors.New("pageserver: layer not in object storage as far as this attachment knows")

// Fetch downloads layer name of timeline id to path for the engine
// (timeline.LayerSource): a read's download runs under the attachment's
// context (ended when it stops), a background download under its task's.
func (rt *remoteTenant) Fetch(ctx context.Context, id timeline.ID, name layer.Name, path string) error {
	rs := rt.rs
	tid := shard.TimelineID(id)
	background := ctx.Value(downloadKindKey{}) != nil
	if !background {
		ctx = rt.ctx
	}
	start := rs.clk.Mono()
	l, ok := rt.remoteLayer(tid, name)
	var err error
	var n int
	if !ok {
		err = fmt.Errorf("%w: %s", errLayerUnknown, name)
	} else {
		why := "on demand"
		if background {
			why = "background"
		}
		n, err = rs.fetchLayer(ctx, rt.id, tid, l, path, why)
	}
	switch {
	case err != nil && !background:
		rs.res.failures.Inc()
		rs.log.Warn("on-demand layer download failed; the read fails (Unavailable)", "tenant_shard_id", rt.id, "timeline_id", tid,
			"layer", name.String(), "err", err)
	case err != nil:
	case background:
		rs.res.background.Inc()
		rs.res.backgroundBytes.Add(float64(n))
	default:
		rs.res.onDemand.Inc()
		rs.res.onDemandBytes.Add(float64(n))
		rs.res.wait.Observe((rs.clk.Mono() - start).Seconds())
		if rs.evict != nil {
			rs.evict.kick() // the download may have taken the node over its budget
		}
	}
	return err
}

// fetchLayer downloads layer object l to path and syncs it (not renamed:
// the caller checks it first), with the download retry policy (a missing
// object is retried too: an index names it), bounded by the node's
// download slots. It checks the size against the index and returns it;
// reason (on demand, background, secondary) goes to the log line.
func (rs *remoteStorage) fetchLayer(ctx context.Context, id shard.TenantShardID, tid shard.TimelineID, l remote.Layer, path, reason string) (int, error) {
	start := rs.clk.Mono()
	if err := rs.downloads.Acquire(ctx, 1); err != nil {
		return 0, err
	}
	defer rs.downloads.Release(1)
	key := rs.layout.LayerKey(id.TenantID, tid, l.LayerID)
	var data []byte
	err := rs.retrier.Do(ctx, "get "+key, remote.NotFoundRetry, func(ctx context.Context) (err error) {
		data, err = rs.store.Get(ctx, key)
		return err
	})
	if err != nil {
		return 0, err
	}
	if uint64(len(data)) != l.FileSize {
		return 0, fmt.Errorf("%w: %s: %d bytes, the index says %d", layer.ErrCorrupt, key, len(data), l.FileSize)
	}
	if err := writeSynced(rs.fs, path, data); err != nil {
		return 0, fmt.Errorf("write %s: %w", path, err)
	}
	rs.metrics.downloads.Inc()
	rs.metrics.downloadBytes.Add(float64(len(data)))
	rs.log.Info("layer downloaded", "tenant_shard_id", id, "timeline_id", tid, "layer", l.LayerID.String(), "size", len(data),
		"took", rs.clk.Mono()-start, "reason", reason)
	return len(data), nil
}

// writeSynced writes data to a new file at path and syncs it.
func writeSynced(fsys disk.FS, path string, data []byte) error {
	f, err := fsys.Create(path)
	if err != nil {
		return err
	}
	if _, err := f.WriteAt(data, 0); err != nil {
		_ = f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		_ = f.Close()
		return err
	}
	return f.Close()
}

// residentBytes is the size of the layer files the attached shards'
// engines hold on local disk.
func (m *tenantManager) residentBytes() int64 {
	var n int64
	for _, ts := range m.sortedShards() {
		ts.mu.Lock()
		eng := ts.engine
		ts.mu.Unlock()
		if eng != nil {
			n += eng.ResidentBytes()
		}
	}
	return n
}

// sortedShards lists the node's shards by id.
func (m *tenantManager) sortedShards() []*tenantShard {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]*tenantShard, 0, len(m.shards))
	for _, ts := range m.shards { //strata:nondeterministic collected, then sorted below
		out = append(out, ts)
	}
	slices.SortFunc(out, func(a, b *tenantShard) int { return a.id.Compare(b.id) })
	return out
}

// remoteEntry is one remote layer of an attached shard.
type remoteEntry struct {
	tl   *timeline.Timeline
	info timeline.LayerInfo
}

// startBackgroundDownload starts the background download of shard ts's
// remote layers (see above), a task of the shard.
func (m *tenantManager) startBackgroundDownload(ts *tenantShard, eng *timeline.Tenant) {
	rs := m.remote
	if rs == nil || rs.cfg.OnDemandOnly {
		return
	}
	var todo []remoteEntry
	for _, id := range eng.Timelines() {
		tl, err := eng.Get(id)
		if err != nil {
			continue
		}
		ls, err := tl.Layers()
		if err != nil {
			continue
		}
		for _, li := range ls { // newest first
			if !li.Resident {
				todo = append(todo, remoteEntry{tl, li})
			}
		}
	}
	if len(todo) == 0 {
		return
	}
	m.tasks.spawn(context.Background(), taskDownload, tenantScope(ts.id), "background download "+ts.id.String(), func(ctx context.Context) {
		m.backgroundDownload(ctx, ts.id, todo)
	})
}

// backgroundDownload downloads the layers of todo with at most
// RemoteStorage.BackgroundDownloads at once across the node, until done,
// the disk budget is reached, or ctx ends.
func (m *tenantManager) backgroundDownload(ctx context.Context, id shard.TenantShardID, todo []remoteEntry) {
	rs := m.remote
	start := rs.clk.Mono()
	ctx = context.WithValue(ctx, downloadKindKey{}, true)
	var mu sync.Mutex
	next, layers, failed, full := 0, 0, 0, false
	var bytes int64
	g := clock.NewGroup(m.clk, ctx)
	for w := range min(rs.cfg.BackgroundDownloads, len(todo)) {
		g.Go(fmt.Sprintf("background download %s #%d", id, w), func(ctx context.Context) error {
			for {
				mu.Lock()
				if next == len(todo) || full {
					mu.Unlock()
					return nil
				}
				e := todo[next]
				next++
				mu.Unlock()
				if budget := rs.cfg.MaxLocalLayerBytes; budget > 0 && m.residentBytes()+e.info.Size > budget {
					mu.Lock()
					full = true
					mu.Unlock()
					return nil
				}
				if err := rs.background.Acquire(ctx, 1); err != nil {
					return nil
				}
				n, err := e.tl.Download(ctx, e.info.Name)
				rs.background.Release(1)
				if ctx.Err() != nil {
					return nil
				}
				mu.Lock()
				if err != nil {
					failed++
				} else if n > 0 {
					layers++
					bytes += n
				}
				mu.Unlock()
				if err != nil && !errors.Is(err, timeline.ErrNoLayer) {
					// A read downloads it when it needs it.
					rs.log.Warn("background layer download failed", "tenant_shard_id", id, "layer", e.info.Name.String(), "err", err)
				}
			}
		})
	}
	_ = g.Wait()
	if ctx.Err() != nil {
		return
	}
	rs.log.Info("background download done", "tenant_shard_id", id, "layers", layers, "bytes", bytes, "failed", failed,
		"left_remote_at_budget", full, "took", time.Duration(rs.clk.Mono()-start))
}
