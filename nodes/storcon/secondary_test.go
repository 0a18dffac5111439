package storcon

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/stratadb/strata/disk"
	"github.com/stratadb/strata/disk/objstore"
	"github.com/stratadb/strata/engine/keys"
	"github.com/stratadb/strata/engine/layer"
	"github.com/stratadb/strata/engine/lsn"
	"github.com/stratadb/strata/engine/placement"
	"github.com/stratadb/strata/engine/remote"
	"github.com/stratadb/strata/engine/shard"
	"github.com/stratadb/strata/engine/timeline"
	"github.com/stratadb/strata/engine/walrec"
	"github.com/stratadb/strata/net"
	"github.com/stratadb/strata/nodes/node"
	"github.com/stratadb/strata/nodes/pageserver"
	"github.com/stratadb/strata/nodes/pageserver/pageapi"
)

var seededTimeline = shard.TimelineID{0x5e}

// seedTimeline puts a timeline of tenant tn into object storage as a
// pageserver attached with generation 1 would have uploaded it: real
// layer files (flushes of page images, written by the page engine on the
// client node's disk) and an index naming them. It returns the layers.
func (c *cluster) seedTimeline(tn shard.TenantID, flushes int) []remote.Layer {
	c.t.Helper()
	fs, dir := c.cli.Disk, "seed/"+tn.String()
	eng, err := timeline.Open(timeline.Options{FS: fs, Dir: dir, Clock: c.w.Clock(), Generation: layer.Generation(1)})
	if err != nil {
		c.t.Fatal(err)
	}
	defer eng.Close()
	tl, err := eng.Create(timeline.ID(seededTimeline), 0)
	if err != nil {
		c.t.Fatal(err)
	}
	rel := keys.RelTag{SpcNode: 1663, DbNode: 5, RelNode: 16384, ForkNum: keys.ForkMain}
	at := lsn.LSN(0x100)
	for i := range flushes {
		for b := range uint32(3) {
			at += 0x10
			if err := tl.Ingest(at, walrec.FullPageImage{Rel: rel, Blk: b, Page: bytes.Repeat([]byte{byte(16*i) + byte(b)}, walrec.PageSize)}); err != nil {
				c.t.Fatal(err)
			}
		}
		if err := tl.Flush(); err != nil {
			c.t.Fatal(err)
		}
	}
	st, err := tl.State()
	if err != nil {
		c.t.Fatal(err)
	}
	id := shard.UnshardedID(tn)
	ip := remote.IndexPart{Metadata: remote.Metadata{DiskConsistentLSN: st.DiskConsistentLSN, LatestGCCutoffLSN: st.GCCutoff, InitdbLSN: st.InitLSN, PGVersion: 16}}
	for _, n := range st.Layers {
		data, err := disk.ReadFile(fs, dir+"/timelines/"+seededTimeline.String()+"/"+n.String())
		if err != nil {
			c.t.Fatal(err)
		}
		l := remote.Layer{LayerID: remote.LayerID{Name: n}, FileSize: uint64(len(data))}
		if err := c.w.Store().Put(c.ctx, remote.Layout{}.LayerKey(tn, seededTimeline, l.LayerID), data, objstore.PutOptions{}); err != nil {
			c.t.Fatal(err)
		}
		ip.Layers = append(ip.Layers, l)
	}
	ip.SortLayers()
	b, err := remote.Encode(&ip)
	if err != nil {
		c.t.Fatal(err)
	}
	if err := c.w.Store().Put(c.ctx, remote.Layout{}.IndexKey(id, seededTimeline, 1), b, objstore.PutOptions{}); err != nil {
		c.t.Fatal(err)
	}
	return ip.Layers
}

// hiddenHeatmaps makes every pageserver's store answer NotFound for
// heatmaps while hide is set: a secondary's own passes find none.
type hiddenHeatmaps struct {
	objstore.Store
	hide *hideFlag
}

type hideFlag struct {
	mu sync.Mutex
	on bool
}

func (h *hideFlag) set(on bool) {
	h.mu.Lock()
	h.on = on
	h.mu.Unlock()
}

func (h *hideFlag) get() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.on
}

func (s hiddenHeatmaps) Head(ctx context.Context, key string) (objstore.ObjectInfo, error) {
	if s.hide.get() && strings.HasSuffix(key, remote.HeatmapFileName) {
		return objstore.ObjectInfo{}, fmt.Errorf("hidden by the test: %w", objstore.ErrNotFound)
	}
	return s.Store.Head(ctx, key)
}

func psMetric(t *testing.T, reg *prometheus.Registry, name string, labels ...string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			for i := 0; i+1 < len(labels); i += 2 {
				if !metricHasLabel(m, labels[i], labels[i+1]) {
					continue next
				}
			}
			switch {
			case m.Counter != nil:
				sum += m.Counter.GetValue()
			case m.Gauge != nil:
				sum += m.Gauge.GetValue()
			}
		}
	}
	return sum
}

func metricHasLabel(m *dto.Metric, k, v string) bool {
	for _, l := range m.GetLabel() {
		if l.GetName() == k && l.GetValue() == v {
			return true
		}
	}
	return false
}

// fastSecondaries: heatmaps go out within a second of a change; a
// secondary's own passes are an hour apart.
func fastSecondaries(hide *hideFlag) func(int, *pageserver.Config, *node.Env) {
	return func(_ int, pc *pageserver.Config, env *node.Env) {
		pc.RemoteStorage.Secondaries = pageserver.SecondaryConfig{HeatmapUploadPeriod: time.Second, HeatmapMinUploadInterval: time.Second, DownloadPeriod: time.Hour}
		if hide != nil {
			env.Store = hiddenHeatmaps{Store: env.Store, hide: hide}
		}
	}
}

// TestMigrationWarmsSecondary: a live migration to a secondary makes it
// download the heatmap's layers at step 3 — after the origin is stale,
// before the destination is attached — with wait_ms, and the attach that
// follows takes every layer from local disk: the destination downloads
// each layer once, as the secondary.
func TestMigrationWarmsSecondary(t *testing.T) {
	hide := &hideFlag{on: true}
	runRecordedOpts(t, 2, Config{}, clusterOpts{psConfig: fastSecondaries(hide)}, func(c *cluster, r *recorder) {
		tn := tenantID(90)
		id := shard.UnshardedID(tn)
		layers := c.seedTimeline(tn, 3)
		p := placement.Attached(1)
		c.create(tn, 0, &p)
		waitFor(c, time.Minute, "converged", func() error { return c.converged(tn) })
		from, _ := c.attachedNode(id)
		to := from%2 + 1
		if conf := c.locations(int(to))[id]; conf == nil || conf.Mode != pageapi.ModeSecondary {
			t.Fatalf("ps-%d holds %+v, want the secondary", to, conf)
		}
		// The attached location's heatmap names the seeded layers.
		waitFor(c, time.Minute, "heatmap", func() error {
			b, err := c.w.Store().Get(c.ctx, remote.Layout{}.HeatmapKey(id))
			if err != nil {
				return err
			}
			hm, err := remote.ParseHeatmap(b)
			if err != nil || len(hm.Timelines) != 1 || len(hm.Timelines[0].Layers) != len(layers) {
				return fmt.Errorf("heatmap %+v %v, want %d layers", hm, err, len(layers))
			}
			return nil
		})
		dest := c.ps[to-1].Env().Metrics
		metric := func(name string) float64 { return psMetric(t, dest, name) }
		if n := metric("strata_pageserver_secondary_layer_downloads_total"); n != 0 {
			t.Fatalf("the secondary downloaded %v layers before the migration (heatmaps hidden)", n)
		}
		var during float64 = -1
		r.answered = func(node uint64, req *net.HTTPRequest, status int, out any) {
			if node == uint64(to) && strings.HasSuffix(req.Path, "/secondary/download") {
				during = metric("strata_pageserver_secondary_layer_downloads_total")
			}
		}
		hide.set(false)
		start := len(r.calls)
		if err := c.api.Migrate(c.ctx, id, to); err != nil {
			t.Fatal(err)
		}
		waitFor(c, time.Minute, "converged", func() error { return c.converged(tn) })
		c.checkPageservers(tn)
		calls := strings.Join(r.calls[start:], "; ")
		want := fmt.Sprintf("%d AttachedStale; %d POST /v1/tenant/%s/secondary/download?wait_ms=20000 200; %d AttachedMulti",
			from, to, id, to)
		if !strings.Contains(calls, want) {
			t.Fatalf("migration calls %q\nwant them to contain %q", calls, want)
		}
		c.w.Sleep(30 * time.Second) // any background download after the attach has run
		if during != float64(len(layers)) {
			t.Errorf("secondary downloads when step 3 answered: %v, want %d", during, len(layers))
		}
		if n := metric("strata_pageserver_remote_layer_downloads_total"); n != float64(len(layers)) {
			t.Errorf("the destination downloaded %v layers in all, want %d (each once, as the secondary)", n, len(layers))
		}
		if n := metric("strata_pageserver_secondary_warm_layers_used_total"); n != float64(len(layers)) {
			t.Errorf("the attach took %v layers from local disk, want %d", n, len(layers))
		}
		if n := psMetric(t, c.scN.Env().Metrics, "storage_controller_migration_secondary_download", "result", "complete"); n != 1 {
			t.Errorf("controller counted %v complete secondary downloads", n)
		}
	})
}

// TestMigrationSecondaryDownloadBounded: a destination whose download
// never completes (every answer 202, here at once: the spy asks the
// pageserver not to wait) is asked again, not in a busy loop, until
// MigrationSecondaryDownload has passed; then the migration proceeds.
func TestMigrationSecondaryDownloadBounded(t *testing.T) {
	cfg := Config{MigrationSecondaryDownload: 30 * time.Second, MigrationSecondaryDownloadWait: 10 * time.Second}
	runRecordedOpts(t, 2, cfg, clusterOpts{psConfig: fastSecondaries(nil)}, func(c *cluster, r *recorder) {
		tn := tenantID(91)
		id := shard.UnshardedID(tn)
		p := placement.Attached(1)
		c.create(tn, 0, &p)
		waitFor(c, time.Minute, "converged", func() error { return c.converged(tn) })
		from, _ := c.attachedNode(id)
		to := from%2 + 1
		var asked []time.Duration
		r.rewrite = func(node uint64, req *net.HTTPRequest) {
			if strings.HasSuffix(req.Path, "/secondary/download") {
				asked = append(asked, c.w.Clock().Mono())
				req.Query = map[string]string{pageapi.SecondaryDownloadWaitParam: "0"}
			}
		}
		start := len(r.calls)
		if err := c.api.Migrate(c.ctx, id, to); err != nil {
			t.Fatal(err)
		}
		waitFor(c, time.Minute, "converged", func() error { return c.converged(tn) })
		c.checkPageservers(tn)
		if len(asked) < 3 || len(asked) > 5 {
			t.Fatalf("asked %d times, want about MigrationSecondaryDownload / MigrationSecondaryDownloadWait", len(asked))
		}
		for i := 1; i < len(asked); i++ {
			if gap := asked[i] - asked[i-1]; gap < 9*time.Second {
				t.Errorf("request %d came %v after the one before: a busy loop", i, gap)
			}
		}
		for _, call := range r.calls[start:] {
			if strings.Contains(call, "secondary/download") && !strings.HasSuffix(call, " 202") {
				t.Errorf("call %q, want 202", call)
			}
		}
		if n := psMetric(t, c.scN.Env().Metrics, "storage_controller_migration_secondary_download", "result", "timeout"); n != 1 {
			t.Errorf("controller counted %v timed-out secondary downloads, want 1", n)
		}
	})
}
