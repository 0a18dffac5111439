package pageserver

import (
	"context"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stratadb/strata/clock"
	"github.com/stratadb/strata/disk/objstore"
	"github.com/stratadb/strata/engine/remote"
	"github.com/stratadb/strata/engine/shard"
	"github.com/stratadb/strata/net"
	"github.com/stratadb/strata/nodes/pageserver/pageapi"
)

// gatedStore holds every Get whose key gate says so until the gate lets
// it go (a slow download), and counts the Gets of layer objects.
type gatedStore struct {
	objstore.Store
	clk clock.Clock

	mu        sync.Mutex
	gate      func(key string) bool
	layerGets int
}

func (s *gatedStore) Get(ctx context.Context, key string) ([]byte, error) {
	for {
		s.mu.Lock()
		held := s.gate != nil && s.gate(key)
		s.mu.Unlock()
		if !held {
			break
		}
		if err := clock.Sleep(ctx, s.clk, 10*time.Millisecond); err != nil {
			return nil, err
		}
	}
	if isLayerKey(key) {
		s.mu.Lock()
		s.layerGets++
		s.mu.Unlock()
	}
	return s.Store.Get(ctx, key)
}

func (s *gatedStore) setGate(g func(string) bool) {
	s.mu.Lock()
	s.gate = g
	s.mu.Unlock()
}

func (s *gatedStore) gets() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.layerGets
}

func isLayerKey(key string) bool {
	return !strings.Contains(key, remote.IndexFileName) && !strings.Contains(key, remote.HeatmapFileName)
}

// gate puts a gatedStore between the pageserver and its store.
func (f *remoteFixture) gate() *gatedStore {
	g := &gatedStore{Store: f.store.Store, clk: f.w.Clock()}
	f.store.Store = g
	return g
}

// fastHeatmaps makes heatmaps and secondary passes frequent enough for a
// test (the defaults are a minute).
func fastHeatmaps() Config {
	return Config{RemoteStorage: RemoteStorageConfig{Secondaries: SecondaryConfig{
		HeatmapUploadPeriod: 5 * time.Second, HeatmapMinUploadInterval: time.Second, DownloadPeriod: time.Hour}}}
}

// secondaryDownload calls POST …/secondary/download?wait_ms=ms.
func (f *remoteFixture) secondaryDownload(ms string) (int, pageapi.SecondaryProgress, error) {
	var p pageapi.SecondaryProgress
	r := &net.HTTPRequest{Method: "POST", Path: "/v1/tenant/" + tsidA.String() + "/secondary/download"}
	if ms != "" {
		r.Query = map[string]string{pageapi.SecondaryDownloadWaitParam: ms}
	}
	status, err := f.http.Do(f.ctx, r, nil, &p)
	return status, p, err
}

// heatmap reads tenantA's heatmap from object storage.
func (f *remoteFixture) heatmap() (remote.Heatmap, error) {
	b, err := f.w.Store().Get(f.ctx, remote.Layout{}.HeatmapKey(tsidA))
	if err != nil {
		return remote.Heatmap{}, err
	}
	return remote.ParseHeatmap(b)
}

// heatmapLayers are the layers a heatmap names for timeline tid.
func heatmapLayers(hm remote.Heatmap, tid shard.TimelineID) []remote.Layer {
	var out []remote.Layer
	for _, t := range hm.Timelines {
		if t.ID == tid {
			for _, l := range t.Layers {
				out = append(out, l.Layer)
			}
		}
	}
	return out
}

func toSecondary(f *remoteFixture) error {
	return f.do("PUT", "/v1/tenant/"+tsidA.String()+"/location_config",
		pageapi.LocationConfig{Mode: pageapi.ModeSecondary, SecondaryConf: &pageapi.SecondaryConf{Warm: true}, TenantConf: quietConf()}, nil)
}

// TestHeatmapUploadedByAttachedNotStale: an attached location uploads a
// heatmap naming exactly the layers of its uploaded indexes (with the
// writing generation and size), after an index upload changed them; an
// AttachedStale location uploads none, neither on its own nor when asked
// (412), until it is AttachedSingle again.
func TestHeatmapUploadedByAttachedNotStale(t *testing.T) {
	cfg := fastHeatmaps()
	cfg.RemoteStorage.Secondaries.HeatmapUploadPeriod = 10 * time.Minute
	cfg.RemoteStorage.Secondaries.HeatmapMinUploadInterval = 30 * time.Second
	runRemote(t, cfg, false, func(f *remoteFixture) {
		uploads := func() int { return len(f.store.putKeys(remote.HeatmapFileName)) }
		if err := f.attachA(1, pageapi.ModeAttachedSingle); err != nil {
			t.Fatal(err)
		}
		st := f.createA()
		at := f.writeFlush(st, 0x100, 0x10, 0, 1)
		at = f.writeFlush(st, at, 0x20, 2)
		f.barrier(timelineA)
		idx, err := f.index(timelineA, 1)
		if err != nil {
			t.Fatal(err)
		}
		// The index upload changed the layers: a heatmap within the
		// minimum interval, not only at the next period.
		f.eventually(time.Minute, "heatmap with the index's layers", func() bool {
			hm, err := f.heatmap()
			return err == nil && slices.Equal(heatmapLayers(hm, timelineA), idx.Layers)
		})
		hm, _ := f.heatmap()
		if hm.Generation != 1 || hm.UploadPeriod != 10*time.Minute || len(hm.Timelines) != 1 || len(idx.Layers) != 2 {
			t.Fatalf("heatmap %+v for index layers %v", hm, idx.Layers)
		}
		if n := f.metric("strata_pageserver_heatmap_uploads_total"); n < 1 || int(n) != uploads() {
			t.Errorf("heatmap uploads metric %v, %d uploads", n, uploads())
		}
		if logs := f.logs.find("heatmap uploaded"); len(logs) == 0 || logs[len(logs)-1].attrs["layers"] != "2" || logs[len(logs)-1].attrs["size"] == "" {
			t.Errorf("heatmap upload log lines: %+v", logs)
		}

		// A third layer is uploaded and, before the minimum interval since
		// the last heatmap has passed, the location becomes AttachedStale.
		f.writeFlush(st, at, 0x30, 3)
		f.barrier(timelineA)
		if err := f.attachA(1, pageapi.ModeAttachedStale); err != nil {
			t.Fatal(err)
		}
		before := uploads()
		f.w.Sleep(2 * time.Minute)
		if n := uploads(); n != before {
			t.Fatalf("an AttachedStale location uploaded %d heatmaps", n-before)
		}
		err = f.do("POST", "/v1/tenant/"+tsidA.String()+"/heatmap_upload", nil, nil)
		if net.CodeOf(err) != net.FailedPrecondition || !strings.Contains(err.Error(), "AttachedStale") {
			t.Fatalf("heatmap_upload on AttachedStale: %v, want 412 naming the mode", err)
		}
		if hm, _ := f.heatmap(); len(heatmapLayers(hm, timelineA)) != 2 {
			t.Fatalf("the heatmap changed while stale: %+v", hm)
		}
		// AttachedSingle again: asked, it uploads the three layers.
		if err := f.attachA(1, pageapi.ModeAttachedSingle); err != nil {
			t.Fatal(err)
		}
		if err := f.do("POST", "/v1/tenant/"+tsidA.String()+"/heatmap_upload", nil, nil); err != nil {
			t.Fatal(err)
		}
		if hm, _ := f.heatmap(); len(heatmapLayers(hm, timelineA)) != 3 {
			t.Fatalf("heatmap after AttachedSingle again: %+v", hm)
		}
		// Unchanged: the periodic checks upload nothing more.
		before = uploads()
		f.w.Sleep(25 * time.Minute)
		if n := uploads(); n != before {
			t.Errorf("%d uploads of an unchanged heatmap", n-before)
		}
	})
}

// TestSecondaryDownloadsAndAttachesWarm: the heatmap of an attachment
// stays in object storage after it is detached; a Secondary location then
// downloads the layers it names. POST secondary/download answers 202 with
// the progress while the downloads are held, also across a crash, and 200
// once every layer is on local disk; the secondary never serves pages;
// attached afterwards (a new generation) it downloads nothing, and every
// page reads back.
func TestSecondaryDownloadsAndAttachesWarm(t *testing.T) {
	runRemote(t, fastHeatmaps(), false, func(f *remoteFixture) {
		g := f.gate()
		if err := f.attachA(1, pageapi.ModeAttachedSingle); err != nil {
			t.Fatal(err)
		}
		pages := f.history()
		if err := f.do("POST", "/v1/tenant/"+tsidA.String()+"/heatmap_upload", nil, nil); err != nil {
			t.Fatal(err)
		}
		hm, err := f.heatmap()
		if err != nil {
			t.Fatal(err)
		}
		var layers, size uint64
		for _, tl := range hm.Timelines {
			layers += uint64(len(tl.Layers))
			size += tl.Bytes()
		}
		if len(hm.Timelines) != 2 || layers < 3 {
			t.Fatalf("heatmap of the history: %+v", hm)
		}
		if err := f.do("PUT", "/v1/tenant/"+tsidA.String()+"/location_config", pageapi.LocationConfig{Mode: pageapi.ModeDetached}, nil); err != nil {
			t.Fatal(err)
		}
		// Secondary, with every layer download held.
		g.setGate(isLayerKey)
		if err := toSecondary(f); err != nil {
			t.Fatal(err)
		}
		status, p, err := f.secondaryDownload("100")
		if err != nil || status != 202 {
			t.Fatalf("download while held: %d %+v %v, want 202", status, p, err)
		}
		if p.LayersTotal != layers || p.BytesTotal != size || p.LayersDownloaded != 0 || p.HeatmapMtime == nil || p.Complete() {
			t.Fatalf("progress while held: %+v, want 0 of %d layers (%d bytes) and the heatmap's mtime", p, layers, size)
		}
		// A crash: the Secondary location resumes at start-up.
		f.restart(true)
		if status, _, err := f.secondaryDownload("50"); err != nil || status != 202 {
			t.Fatalf("after the crash, still held: %d %v", status, err)
		}
		g.setGate(nil)
		status, p, err = f.secondaryDownload("60000")
		if err != nil || status != 200 || !p.Complete() || p.LayersDownloaded != layers || p.BytesDownloaded != size {
			t.Fatalf("download: %d %+v %v, want 200 with %d layers", status, p, err, layers)
		}
		if n := f.metric("strata_pageserver_secondary_layer_downloads_total"); n != float64(layers) {
			t.Errorf("secondary downloads metric %v, want %d", n, layers)
		}
		if n := f.metric("strata_pageserver_secondary_download_bytes_total"); n != float64(size) {
			t.Errorf("secondary download bytes %v, want %d", n, size)
		}
		// Nothing new: 200 at once, nothing downloaded again.
		gets := g.gets()
		if status, p, err := f.secondaryDownload("60000"); err != nil || status != 200 || !p.Complete() {
			t.Fatalf("second download: %d %+v %v", status, p, err)
		}
		if g.gets() != gets {
			t.Errorf("a warm secondary downloaded %d layers again", g.gets()-gets)
		}
		// A secondary never serves.
		_, err = f.readBlock(timelineA, 0, pages[0].at)
		if net.CodeOf(err) != net.NotFound || !strings.Contains(err.Error(), "Secondary") {
			t.Fatalf("read from a secondary: %v, want NotFound naming Secondary", err)
		}
		if err := f.do("GET", "/v1/tenant/"+tsidA.String()+"/timeline", nil, nil); net.CodeOf(err) != net.FailedPrecondition {
			t.Errorf("timelines of a secondary: %v, want 412", err)
		}

		// Attached: everything comes from local disk.
		downloads := f.metric("strata_pageserver_remote_layer_downloads_total")
		gets = g.gets()
		if err := f.attachA(2, pageapi.ModeAttachedSingle); err != nil {
			t.Fatal(err)
		}
		// Every page reads back, and neither the reads (on demand) nor the
		// downloads in the background after an attach fetched anything.
		f.readAll(pages)
		f.w.Sleep(30 * time.Second)
		if d := f.metric("strata_pageserver_remote_layer_downloads_total") - downloads; d != 0 || g.gets() != gets {
			t.Fatalf("attach of a warm secondary downloaded %v layers (%d gets)", d, g.gets()-gets)
		}
		if n := f.metric("strata_pageserver_secondary_warm_layers_used_total"); n != float64(layers) {
			t.Errorf("%v warm layers used, want the heatmap's %d", n, layers)
		}
		if _, err := f.ps.Env().Disk.Stat(secondaryDir(tsidA)); err == nil {
			t.Errorf("the secondary's copies are still there after the attach")
		}
		if err := f.do("GET", "/v1/tenant/"+tsidA.String()+"/timeline", nil, nil); err != nil {
			t.Errorf("timelines after attach: %v", err)
		}
	})
}

// TestSecondaryFollowsHeatmap: a secondary removes the copies a newer
// heatmap no longer names (counted), downloads the ones it adds, and
// without a heatmap (or with one that does not parse) keeps what it has.
// Attached → Secondary keeps the attachment's layers: nothing is
// downloaded for them.
func TestSecondaryFollowsHeatmap(t *testing.T) {
	runRemote(t, fastHeatmaps(), false, func(f *remoteFixture) {
		if err := f.attachA(1, pageapi.ModeAttachedSingle); err != nil {
			t.Fatal(err)
		}
		f.history()
		if err := f.do("POST", "/v1/tenant/"+tsidA.String()+"/heatmap_upload", nil, nil); err != nil {
			t.Fatal(err)
		}
		hm, err := f.heatmap()
		if err != nil {
			t.Fatal(err)
		}
		// Attached → Secondary: the engine's files count as present.
		if err := toSecondary(f); err != nil {
			t.Fatal(err)
		}
		status, p, err := f.secondaryDownload("60000")
		if err != nil || status != 200 || !p.Complete() || p.LayersTotal == 0 {
			t.Fatalf("download after attached → secondary: %d %+v %v", status, p, err)
		}
		if n := f.metric("strata_pageserver_secondary_layer_downloads_total"); n != 0 {
			t.Fatalf("downloaded %v layers the attachment left on disk", n)
		}

		// Detached and Secondary again: a full copy.
		if err := f.do("PUT", "/v1/tenant/"+tsidA.String()+"/location_config", pageapi.LocationConfig{Mode: pageapi.ModeDetached}, nil); err != nil {
			t.Fatal(err)
		}
		if err := toSecondary(f); err != nil {
			t.Fatal(err)
		}
		if status, p, err := f.secondaryDownload("60000"); err != nil || status != 200 || p.LayersDownloaded != p.LayersTotal {
			t.Fatalf("download: %d %+v %v", status, p, err)
		}
		copyOf := func(tid shard.TimelineID, l remote.Layer) string {
			return secondaryDir(tsidA) + "/" + tid.String() + "/" + l.Name.String()
		}
		// A heatmap naming one layer fewer of timeline A, and a layer of
		// timeline B's moved: the copy of the dropped layer goes.
		key := remote.Layout{}.HeatmapKey(tsidA)
		var dropped remote.Layer
		fewer := hm
		fewer.Timelines = slices.Clone(hm.Timelines)
		for i, tl := range fewer.Timelines {
			if tl.ID == timelineA {
				dropped = tl.Layers[0].Layer
				fewer.Timelines[i].Layers = tl.Layers[1:]
			}
		}
		put := func(h remote.Heatmap) {
			b, err := remote.EncodeHeatmap(&h)
			if err != nil {
				t.Fatal(err)
			}
			if err := f.w.Store().Put(f.ctx, key, b, objstore.PutOptions{}); err != nil {
				t.Fatal(err)
			}
		}
		disk := f.ps.Env().Disk
		if _, err := disk.Stat(copyOf(timelineA, dropped)); err != nil {
			t.Fatalf("no copy of %s before: %v", dropped.Name, err)
		}
		put(fewer)
		if status, p, err := f.secondaryDownload("60000"); err != nil || status != 200 || p.LayersTotal != uint64(countLayers(fewer)) {
			t.Fatalf("download of the smaller heatmap: %d %+v %v", status, p, err)
		}
		if _, err := disk.Stat(copyOf(timelineA, dropped)); err == nil {
			t.Fatalf("the copy of %s, no longer in the heatmap, is still there", dropped.Name)
		}
		if n := f.metric("strata_pageserver_secondary_layers_removed_total"); n != 1 {
			t.Errorf("layers removed metric %v, want 1", n)
		}
		// Back in the heatmap: downloaded again.
		downloads := f.metric("strata_pageserver_secondary_layer_downloads_total")
		put(hm)
		if status, _, err := f.secondaryDownload("60000"); err != nil || status != 200 {
			t.Fatalf("download: %d %v", status, err)
		}
		if d := f.metric("strata_pageserver_secondary_layer_downloads_total") - downloads; d != 1 {
			t.Errorf("%v downloads for the layer back in the heatmap, want 1", d)
		}
		// A heatmap that does not parse: an error (503), nothing removed.
		if err := f.w.Store().Put(f.ctx, key, []byte(`{"timelines": 7}`), objstore.PutOptions{}); err != nil {
			t.Fatal(err)
		}
		if _, _, err := f.secondaryDownload("60000"); net.CodeOf(err) != net.Unavailable || !strings.Contains(err.Error(), "heatmap") {
			t.Fatalf("download with a corrupt heatmap: %v, want 503", err)
		}
		// No heatmap at all: complete, nothing to do, nothing removed.
		if err := f.w.Store().Delete(f.ctx, []string{key}); err != nil {
			t.Fatal(err)
		}
		if status, p, err := f.secondaryDownload("60000"); err != nil || status != 200 || p.LayersTotal != 0 || p.HeatmapMtime != nil {
			t.Fatalf("download without a heatmap: %d %+v %v", status, p, err)
		}
		if _, err := disk.Stat(copyOf(timelineA, dropped)); err != nil {
			t.Errorf("a copy went without a heatmap: %v", err)
		}
	})
}

// TestSecondaryDownloadRefusals: the route's errors.
func TestSecondaryDownloadRefusals(t *testing.T) {
	runRemote(t, fastHeatmaps(), false, func(f *remoteFixture) {
		if _, _, err := f.secondaryDownload("10"); net.CodeOf(err) != net.NotFound {
			t.Errorf("unknown shard: %v, want 404", err)
		}
		if err := f.attachA(1, pageapi.ModeAttachedSingle); err != nil {
			t.Fatal(err)
		}
		if _, _, err := f.secondaryDownload("10"); net.CodeOf(err) != net.FailedPrecondition || !strings.Contains(err.Error(), "AttachedSingle") {
			t.Errorf("attached shard: %v, want 412 naming the mode", err)
		}
		if _, _, err := f.secondaryDownload("soon"); net.CodeOf(err) != net.InvalidArgument {
			t.Errorf("wait_ms=soon: %v, want 400", err)
		}
		if err := toSecondary(f); err != nil {
			t.Fatal(err)
		}
		if err := f.do("POST", "/v1/tenant/"+tsidA.String()+"/heatmap_upload", nil, nil); net.CodeOf(err) != net.FailedPrecondition {
			t.Errorf("heatmap_upload on a secondary: %v, want 412", err)
		}
	})
}

func countLayers(hm remote.Heatmap) int {
	n := 0
	for _, t := range hm.Timelines {
		n += len(t.Layers)
	}
	return n
}
