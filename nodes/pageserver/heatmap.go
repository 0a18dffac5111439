package pageserver

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/stratadb/strata/clock"
	"github.com/stratadb/strata/disk/objstore"
	"github.com/stratadb/strata/engine/layer"
	"github.com/stratadb/strata/engine/remote"
	"github.com/stratadb/strata/engine/shard"
	"github.com/stratadb/strata/nodes/pageserver/pageapi"
)

// Heatmaps (docs/remote-storage.md, "Heatmaps and secondary locations").
// An attached location with remote storage uploads its tenant shard's
// heatmap (remote.Heatmap at Layout.HeatmapKey): every timeline's layers
// that are in object storage, with when this attachment first saw each.
// Secondary locations (secondary.go) download what it names. The rules:
//
//   - Only AttachedSingle and AttachedMulti upload (the modes that upload
//     layers and indexes, upload_queue.go); AttachedStale never does, so a
//     location that knows it is stale never overwrites the current
//     owner's heatmap.
//   - The first heatmap of an attachment goes out as soon as it attached;
//     then every Secondaries.HeatmapUploadPeriod if it changed, and after
//     an index upload (the layers changed) once
//     Secondaries.HeatmapMinUploadInterval has passed since the last one.
//   - A heatmap names only layers whose upload completed: a secondary never
//     looks for an object that is not there yet.

// ErrNoHeatmapUpload: the location does not upload heatmaps (it is not
// AttachedSingle or AttachedMulti, or has no remote storage).
var ErrNoHeatmapUpload = errors.New("pageserver: location does not upload heatmaps")

// SecondaryConfig configures heatmap uploads (attached locations) and
// secondary downloads (Secondary locations). Zero fields take the
// defaults named beside them; Validate rejects negative ones.
type SecondaryConfig struct {
	// HeatmapUploadPeriod: an attached location checks this often whether
	// its heatmap changed and uploads it if so. Default
	// DefaultHeatmapUploadPeriod.
	HeatmapUploadPeriod time.Duration
	// HeatmapMinUploadInterval: after an index upload the heatmap goes
	// out at once unless one went out less than this long ago (then when
	// this has passed). Default DefaultHeatmapMinUploadInterval.
	HeatmapMinUploadInterval time.Duration
	// DownloadPeriod: a Secondary location reads the heatmap and
	// downloads what it lacks this often (and at once on POST
	// …/secondary/download). Default DefaultSecondaryDownloadPeriod.
	DownloadPeriod time.Duration
	// MaxConcurrentDownloads bounds one Secondary location's layer
	// downloads at once (the node's RemoteStorage.MaxConcurrentDownloads
	// bounds them all). Default DefaultSecondaryMaxConcurrentDownloads.
	MaxConcurrentDownloads int
}

// Defaults of SecondaryConfig.
const (
	DefaultHeatmapUploadPeriod             = 60 * time.Second
	DefaultHeatmapMinUploadInterval        = 10 * time.Second
	DefaultSecondaryDownloadPeriod         = 60 * time.Second
	DefaultSecondaryMaxConcurrentDownloads = 4
	// MaxSecondaryDownloadWait caps (and, when absent, is) the wait_ms of
	// POST …/secondary/download.
	MaxSecondaryDownloadWait = 5 * time.Minute
)

func (c SecondaryConfig) withDefaults() SecondaryConfig {
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	def(&c.HeatmapUploadPeriod, DefaultHeatmapUploadPeriod)
	def(&c.HeatmapMinUploadInterval, DefaultHeatmapMinUploadInterval)
	def(&c.DownloadPeriod, DefaultSecondaryDownloadPeriod)
	if c.MaxConcurrentDownloads == 0 {
		c.MaxConcurrentDownloads = DefaultSecondaryMaxConcurrentDownloads
	}
	return c
}

// Validate reports settings that cannot be applied. It does not change c.
func (c SecondaryConfig) Validate() error {
	c = c.withDefaults()
	for _, f := range []struct {
		name string
		v    int64
	}{
		{"HeatmapUploadPeriod", int64(c.HeatmapUploadPeriod)},
		{"HeatmapMinUploadInterval", int64(c.HeatmapMinUploadInterval)},
		{"DownloadPeriod", int64(c.DownloadPeriod)},
		{"MaxConcurrentDownloads", int64(c.MaxConcurrentDownloads)},
	} {
		if f.v < 1 {
			return fmt.Errorf("%w: RemoteStorage.Secondaries.%s %d < 1", ErrConfig, f.name, f.v)
		}
	}
	return nil
}

// secondaryMetrics count heatmap uploads and secondary downloads
// (docs/pageserver.md, Metrics).
type secondaryMetrics struct {
	heatmapUploads   prometheus.Counter
	heatmapFailures  prometheus.Counter
	downloads        prometheus.Counter
	downloadBytes    prometheus.Counter
	evicted          prometheus.Counter
	evictedBytes     prometheus.Counter
	warmUsed         prometheus.Counter
	warmUsedBytes    prometheus.Counter
	downloadPasses   *prometheus.CounterVec
	secondaryHeld    prometheus.Gauge
	secondaryPending prometheus.Gauge
}

func newSecondaryMetrics(reg prometheus.Registerer) (*secondaryMetrics, error) {
	c := func(name, help string) prometheus.Counter {
		return prometheus.NewCounter(prometheus.CounterOpts{Name: name, Help: help})
	}
	m := &secondaryMetrics{
		heatmapUploads:  c("strata_pageserver_heatmap_uploads_total", "Heatmaps uploaded by attached locations."),
		heatmapFailures: c("strata_pageserver_heatmap_upload_failures_total", "Heatmap uploads that failed after the retry policy (the next check tries again)."),
		downloads:       c("strata_pageserver_secondary_layer_downloads_total", "Layer files Secondary locations downloaded (also counted in strata_pageserver_remote_layer_downloads_total)."),
		downloadBytes:   c("strata_pageserver_secondary_download_bytes_total", "Bytes of layer files Secondary locations downloaded."),
		evicted:         c("strata_pageserver_secondary_layers_removed_total", "Layer files Secondary locations removed because the heatmap no longer names them."),
		evictedBytes:    c("strata_pageserver_secondary_removed_bytes_total", "Bytes of layer files Secondary locations removed because the heatmap no longer names them."),
		warmUsed:        c("strata_pageserver_secondary_warm_layers_used_total", "Layer files an attach took from local disk (a secondary's or an earlier attachment's) instead of downloading."),
		warmUsedBytes:   c("strata_pageserver_secondary_warm_bytes_used_total", "Bytes of layer files an attach took from local disk instead of downloading."),
		downloadPasses: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "strata_pageserver_secondary_download_passes_total",
			Help: "Secondary download passes (read the heatmap, download what is missing), by result (complete, failed, no_heatmap)."}, []string{"result"}),
		secondaryHeld: prometheus.NewGauge(prometheus.GaugeOpts{Name: "strata_pageserver_secondary_resident_bytes",
			Help: "Bytes of heatmap layers Secondary locations hold on local disk, as of their last pass."}),
		secondaryPending: prometheus.NewGauge(prometheus.GaugeOpts{Name: "strata_pageserver_secondary_pending_bytes",
			Help: "Bytes of heatmap layers Secondary locations still lack, as of their last pass."}),
	}
	for _, col := range []prometheus.Collector{m.heatmapUploads, m.heatmapFailures, m.downloads, m.downloadBytes, m.evicted, m.evictedBytes,
		m.warmUsed, m.warmUsedBytes, m.downloadPasses, m.secondaryHeld, m.secondaryPending} {
		if err := reg.Register(col); err != nil {
			return nil, fmt.Errorf("pageserver: register metrics: %w", err)
		}
	}
	return m, nil
}

// heatmapUploader uploads one attachment's heatmap (see above); it runs as
// a task of the tenant shard, so it stops with the attachment.
type heatmapUploader struct {
	rs  *remoteStorage
	rt  *remoteTenant
	cfg SecondaryConfig
	log *slog.Logger

	// up serializes uploads (the loop's and POST heatmap_upload's) and
	// guards last and seen.
	up *clock.Mutex
	// last is the heatmap last uploaded, encoded (nil: none yet).
	last []byte
	// seen is when this attachment first saw each layer: its access time
	// in the heatmap (the engine does not track reads per layer).
	seen map[shard.TimelineID]map[layer.Name]time.Time

	mu    *clock.Mutex
	cond  *clock.Cond
	dirty bool          // an index upload changed what the heatmap would say
	at    time.Duration // clk.Mono() of the last upload
	any   bool          // an upload happened (at is meaningful)
}

func newHeatmapUploader(rs *remoteStorage, rt *remoteTenant) *heatmapUploader {
	mu := clock.NewMutex(rs.clk)
	return &heatmapUploader{rs: rs, rt: rt, cfg: rs.cfg.Secondaries, up: clock.NewMutex(rs.clk),
		seen: map[shard.TimelineID]map[layer.Name]time.Time{}, mu: mu, cond: clock.NewCond(mu),
		log: rs.log.With("tenant_shard_id", rt.id.String())}
}

// startHeatmapUploader starts the heatmap uploads of shard ts's new
// attachment rt (the end of attach).
func (m *tenantManager) startHeatmapUploader(ts *tenantShard, rt *remoteTenant) {
	h := newHeatmapUploader(m.remote, rt)
	rt.mu.Lock()
	rt.heat = h
	rt.mu.Unlock()
	m.tasks.spawn(context.Background(), taskRemote, tenantScope(ts.id), "heatmap "+ts.id.String(), h.run)
}

// heatmapChanged is called after an index upload of the attachment: the
// layers may have changed (upload_queue.go).
func (rt *remoteTenant) heatmapChanged() {
	rt.mu.Lock()
	h := rt.heat
	rt.mu.Unlock()
	if h == nil {
		return
	}
	_ = h.mu.Lock(context.Background())
	h.dirty = true
	h.cond.Broadcast()
	h.mu.Unlock()
}

// run is the uploader's loop: a check at once, then every
// HeatmapUploadPeriod, or after an index upload once
// HeatmapMinUploadInterval has passed since the last upload.
func (h *heatmapUploader) run(ctx context.Context) {
	clk := h.rs.clk
	next := clk.Mono()
	for {
		if err := h.mu.Lock(ctx); err != nil {
			return
		}
		for {
			now := clk.Mono()
			due := next
			if h.dirty {
				soon := now
				if h.any {
					soon = h.at + h.cfg.HeatmapMinUploadInterval
				}
				due = min(due, soon)
			}
			if now >= due {
				break
			}
			wctx, cancel := clock.WithTimeout(clk, ctx, due-now)
			_ = h.cond.Wait(wctx)
			cancel()
			if ctx.Err() != nil {
				h.mu.Unlock()
				return
			}
		}
		h.dirty = false
		h.mu.Unlock()
		if _, err := h.upload(ctx, false); err != nil && ctx.Err() == nil && !errors.Is(err, ErrNoHeatmapUpload) {
			h.log.Warn("heatmap upload failed; the next check retries", "err", err)
		}
		if ctx.Err() != nil {
			return
		}
		next = clk.Mono() + h.cfg.HeatmapUploadPeriod
	}
}

// upload builds the heatmap and uploads it if it differs from the last
// one uploaded (always with force), retried by the download retry policy.
// It reports whether it uploaded; ErrNoHeatmapUpload if the mode does not
// upload.
func (h *heatmapUploader) upload(ctx context.Context, force bool) (bool, error) {
	if err := h.up.Lock(ctx); err != nil {
		return false, err
	}
	defer h.up.Unlock()
	// The mode is checked again before every attempt: none starts once
	// the location was told it is stale.
	allowed := func() error {
		if mode := h.rt.currentMode(); mode != pageapi.ModeAttachedSingle && mode != pageapi.ModeAttachedMulti {
			return fmt.Errorf("%w: %s is %s", ErrNoHeatmapUpload, h.rt.id, mode)
		}
		return nil
	}
	if err := allowed(); err != nil {
		return false, err
	}
	hm := h.build()
	data, err := remote.EncodeHeatmap(&hm)
	if err != nil {
		return false, err // a bug: the layers come from indexes we wrote
	}
	if !force && bytes.Equal(data, h.last) {
		return false, nil
	}
	key := h.rs.layout.HeatmapKey(h.rt.id)
	err = h.rs.retrier.Do(ctx, "put "+key, remote.NotFoundFinal, func(ctx context.Context) error {
		if err := allowed(); err != nil {
			return err // not retryable: the retrier returns it at once
		}
		return h.rs.store.Put(ctx, key, data, objstore.PutOptions{})
	})
	if errors.Is(err, ErrNoHeatmapUpload) {
		return false, err
	}
	if err != nil {
		h.rs.sec.heatmapFailures.Inc()
		h.markDirty() // retried at the next check
		return false, err
	}
	h.last = data
	_ = h.mu.Lock(context.Background())
	h.at, h.any = h.rs.clk.Mono(), true
	h.mu.Unlock()
	h.rs.sec.heatmapUploads.Inc()
	layers, total := 0, uint64(0)
	for _, t := range hm.Timelines {
		layers += len(t.Layers)
		total += t.Bytes()
	}
	h.log.Info("heatmap uploaded", "generation", hm.Generation, "timelines", len(hm.Timelines), "layers", layers,
		"layer_bytes", total, "size", len(data))
	return true, nil
}

func (h *heatmapUploader) markDirty() {
	_ = h.mu.Lock(context.Background())
	h.dirty = true
	h.mu.Unlock()
}

// build is the attachment's heatmap now: for each timeline with an upload
// queue, the layers of its newest state whose upload is done. h.up is
// held.
func (h *heatmapUploader) build() remote.Heatmap {
	now := h.rs.clk.Now().UTC().Truncate(time.Second)
	hm := remote.Heatmap{Generation: h.rt.gen, UploadPeriod: h.cfg.HeatmapUploadPeriod}
	seen := map[shard.TimelineID]map[layer.Name]time.Time{}
	for _, q := range h.rt.allQueues() { // sorted by timeline id
		layers := q.uploadedLayers()
		if len(layers) == 0 {
			continue // nothing a secondary could fetch
		}
		old := h.seen[q.tid]
		cur := make(map[layer.Name]time.Time, len(layers))
		t := remote.HeatmapTimeline{ID: q.tid}
		for _, l := range layers {
			at, ok := old[l.Name]
			if !ok {
				at = now
			}
			cur[l.Name] = at
			t.Layers = append(t.Layers, remote.HeatmapLayer{Layer: l, AccessTime: at})
		}
		seen[q.tid] = cur
		hm.Timelines = append(hm.Timelines, t)
	}
	h.seen = seen // forget layers no longer there
	return hm
}

// uploadedLayers lists the layers of the queue's newest state that are in
// object storage, sorted by name (as an index is).
func (q *uploadQueue) uploadedLayers() []remote.Layer {
	_ = q.mu.Lock(context.Background())
	defer q.mu.Unlock()
	ip := remote.IndexPart{}
	for _, n := range q.latest.Layers {
		if l, ok := q.known[n]; ok {
			ip.Layers = append(ip.Layers, l)
		}
	}
	ip.SortLayers()
	return ip.Layers
}

// uploadHeatmap is POST …/heatmap_upload: upload the attached shard's
// heatmap now.
func (m *tenantManager) uploadHeatmap(ctx context.Context, id shard.TenantShardID) error {
	ts, err := m.get(id)
	if err != nil {
		return err
	}
	ts.mu.Lock()
	serr := ts.servingLocked()
	rt := ts.remote
	ts.mu.Unlock()
	if serr != nil {
		return serr
	}
	if rt == nil {
		return fmt.Errorf("%w: %s: no remote storage", ErrNoHeatmapUpload, id)
	}
	rt.mu.Lock()
	h := rt.heat
	rt.mu.Unlock()
	if h == nil {
		return fmt.Errorf("%w: %s is still attaching", ErrNotAttached, id)
	}
	_, err = h.upload(ctx, true)
	return err
}
