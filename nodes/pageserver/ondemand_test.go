package pageserver

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stratadb/strata/clock"
	"github.com/stratadb/strata/disk/objstore"
	"github.com/stratadb/strata/engine/keys"
	"github.com/stratadb/strata/engine/remote"
	"github.com/stratadb/strata/engine/shard"
	"github.com/stratadb/strata/engine/timeline"
	"github.com/stratadb/strata/net"
	"github.com/stratadb/strata/nodes/pageserver/pageapi"
)

// layerGetStore sits between the pageserver and its object store: layer
// gets (not indexes) can be slowed down or failed.
type layerGetStore struct {
	objstore.Store
	clk clock.Clock

	mu    sync.Mutex
	delay time.Duration
	fail  bool
	gets  map[string]int
}

func (s *layerGetStore) Get(ctx context.Context, key string) ([]byte, error) {
	if !strings.Contains(key, remote.IndexFileName) && !strings.Contains(key, remote.HeatmapFileName) {
		s.mu.Lock()
		delay, fail := s.delay, s.fail
		s.gets[key]++
		s.mu.Unlock()
		if delay > 0 {
			if err := clock.Sleep(ctx, s.clk, delay); err != nil {
				return nil, err
			}
		}
		if fail {
			return nil, fmt.Errorf("layer get store: %s: %w", key, objstore.ErrTransient)
		}
	}
	return s.Store.Get(ctx, key)
}

func (s *layerGetStore) set(delay time.Duration, fail bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.delay, s.fail = delay, fail
}

// layerGets puts a layerGetStore between the pageserver and its store.
func (f *remoteFixture) layerGets() *layerGetStore {
	s := &layerGetStore{Store: f.store.Store, clk: f.w.Clock(), gets: map[string]int{}}
	f.store.Store = s
	return s
}

// residency lists tenantA's layers on the current incarnation: how many,
// and how many are resident.
func (f *remoteFixture) residency() (total, resident int) {
	f.t.Helper()
	for _, tid := range []shard.TimelineID{timelineA, timelineB} {
		ls, err := f.timeline(tid).tl.Layers()
		if err != nil {
			f.t.Fatal(err)
		}
		for _, li := range ls {
			total++
			if li.Resident {
				resident++
			}
		}
	}
	return total, resident
}

// lostDiskReattach writes history() under generation 1, loses the disk
// and attaches generation 2 from object storage; it returns the pages and
// the virtual time the attach call took.
func (f *remoteFixture) lostDiskReattach() ([]pageAt, time.Duration) {
	f.t.Helper()
	if err := f.attachA(1, pageapi.ModeAttachedSingle); err != nil {
		f.t.Fatal(err)
	}
	pages := f.history()
	f.wipe = true
	f.restart(false)
	start := f.w.Clock().Mono()
	if err := f.attachA(2, pageapi.ModeAttachedSingle); err != nil {
		f.t.Fatalf("attach from object storage: %v", err)
	}
	return pages, f.w.Clock().Mono() - start
}

// TestAttachOnDemand: a tenant attached from object storage after a lost
// disk is active once its indexes are loaded, with every layer remote and
// nothing downloaded; a read at the oldest LSN downloads only the layers
// it needs; every block reads right at every LSN of the history; each
// layer is downloaded at most once, and the on-demand counters and log
// lines (with sizes) agree.
func TestAttachOnDemand(t *testing.T) {
	cfg := Config{RemoteStorage: RemoteStorageConfig{OnDemandOnly: true}}
	runRemote(t, cfg, false, func(f *remoteFixture) {
		slow := f.layerGets()
		slow.set(200*time.Millisecond, false) // each layer takes a while: attach must not wait for them
		pages, took := f.lostDiskReattach()
		total, resident := f.residency()
		if got := f.metric("strata_pageserver_remote_layer_downloads_total"); got != 0 || resident != 0 || total == 0 {
			t.Fatalf("right after attach: %v downloads, %d of %d layers resident; want none", got, resident, total)
		}
		if took >= 200*time.Millisecond {
			t.Errorf("attach took %v: it waited for a layer download", took)
		}
		// The oldest page needs the oldest layers only.
		p := pages[0]
		if got, err := f.readBlock(p.tid, p.blk, p.at); err != nil || !bytes.Equal(got, p.want) {
			t.Fatalf("first read: %v", err)
		}
		first := f.metric("strata_pageserver_ondemand_layer_downloads_total")
		if first == 0 || int(first) >= total {
			t.Fatalf("the first read downloaded %v layers of %d; want some, not all", first, total)
		}
		f.readAll(pages)
		downloads := f.logs.find("layer downloaded")
		seen := map[string]bool{}
		for _, r := range downloads {
			k := r.attrs["timeline_id"] + "/" + r.attrs["layer"]
			if seen[k] {
				t.Errorf("layer %s downloaded twice", k)
			}
			seen[k] = true
			if r.attrs["size"] == "" || r.attrs["size"] == "0" || r.attrs["reason"] != "on demand" {
				t.Errorf("download log line %v: want the size and reason on demand", r.attrs)
			}
		}
		n := f.metric("strata_pageserver_ondemand_layer_downloads_total")
		if n != float64(len(downloads)) || n != f.metric("strata_pageserver_remote_layer_downloads_total") || int(n) > total {
			t.Fatalf("%v on-demand downloads, %d log lines, %d layers", n, len(downloads), total)
		}
		_, resident = f.residency()
		if float64(resident) != n || f.metric("strata_pageserver_resident_layer_bytes") != f.metric("strata_pageserver_ondemand_layer_download_bytes_total") {
			t.Fatalf("%d layers resident after %v downloads; resident bytes %v, downloaded %v", resident, n,
				f.metric("strata_pageserver_resident_layer_bytes"), f.metric("strata_pageserver_ondemand_layer_download_bytes_total"))
		}
		t.Logf("attach from object storage took %v (virtual); %v of %d layers downloaded on demand by the reads", took, n, total)
		// The attachment goes on: a new layer is uploaded under its generation.
		st := f.timeline(timelineA)
		f.writeFlush(st, st.LastRecordLSN(), 0xA0, 2)
		f.barrier(timelineA)
		if _, err := f.index(timelineA, 2); err != nil {
			t.Errorf("no index of generation 2 after a flush: %v", err)
		}
	})
}

// TestBackgroundDownload: with background downloads on (the default),
// the attach still returns before any layer is downloaded, and then every
// remote layer becomes resident without a read; the reads after that
// download nothing. Figures: the attach's virtual time against the time
// until everything is local.
func TestBackgroundDownload(t *testing.T) {
	runRemote(t, Config{}, false, func(f *remoteFixture) {
		slow := f.layerGets()
		slow.set(200*time.Millisecond, false)
		start := f.w.Clock().Mono()
		pages, took := f.lostDiskReattach()
		if got := f.metric("strata_pageserver_remote_layer_downloads_total"); got != 0 {
			t.Fatalf("%v layers downloaded before the attach returned", got)
		}
		attached := f.w.Clock().Mono()
		f.eventually(time.Minute, "every layer downloaded in the background", func() bool {
			total, resident := f.residency()
			return resident == total
		})
		all := f.w.Clock().Mono() - attached
		total, _ := f.residency()
		if got := f.metric("strata_pageserver_background_layer_downloads_total"); got != float64(total) {
			t.Fatalf("%v background downloads of %d layers", got, total)
		}
		f.readAll(pages)
		if got := f.metric("strata_pageserver_ondemand_layer_downloads_total"); got != 0 {
			t.Fatalf("%v on-demand downloads after everything was downloaded", got)
		}
		t.Logf("%d layers at 200ms each: attach returned after %v, all local %v later (2 at a time); test ran %v", total, took, all, f.w.Clock().Mono()-start)
	})
}

// TestConcurrentReadersShareOneDownload: eight readers of the same block
// of a freshly attached tenant, whose layers are slow to download, cause
// one download of each layer the read needs, not eight.
func TestConcurrentReadersShareOneDownload(t *testing.T) {
	cfg := Config{RemoteStorage: RemoteStorageConfig{OnDemandOnly: true}}
	runRemote(t, cfg, false, func(f *remoteFixture) {
		slow := f.layerGets()
		pages, _ := f.lostDiskReattach()
		slow.set(500*time.Millisecond, false)
		p := pages[len(pages)-1] // timelineA's newest page: every layer of it
		for p.tid != timelineA {
			t.Fatal("history's last page is not timelineA's")
		}
		tl := f.timeline(p.tid).tl
		wg := clock.NewWaitGroup(f.w.Clock())
		var mu sync.Mutex
		var failures []error
		for i := range 8 {
			wg.Add(1)
			f.w.Go(fmt.Sprintf("reader-%d", i), func(context.Context) {
				defer wg.Done()
				got, err := tl.GetPage(keys.RelBlockKey(testRel, p.blk), p.at)
				if err == nil && !bytes.Equal(got, p.want) {
					err = fmt.Errorf("wrong page")
				}
				if err != nil {
					mu.Lock()
					failures = append(failures, err)
					mu.Unlock()
				}
			})
		}
		if err := wg.Wait(f.ctx); err != nil {
			t.Fatal(err)
		}
		if len(failures) > 0 {
			t.Fatalf("readers failed: %v", failures)
		}
		downloads := f.metric("strata_pageserver_remote_layer_downloads_total")
		slow.mu.Lock()
		gets := len(slow.gets)
		for k, n := range slow.gets {
			if n != 1 {
				t.Errorf("%s fetched %d times", k, n)
			}
		}
		slow.mu.Unlock()
		if downloads == 0 || downloads != float64(gets) {
			t.Fatalf("8 readers: %v downloads of %d distinct layers; want one each", downloads, gets)
		}
	})
}

// TestOnDemandDownloadFailure: a read whose layer cannot be downloaded
// (object storage failing every attempt of the retry policy) fails with
// Unavailable (the client may retry), leaves no file behind, and
// succeeds once object storage answers again.
func TestOnDemandDownloadFailure(t *testing.T) {
	cfg := Config{RemoteStorage: RemoteStorageConfig{OnDemandOnly: true}}
	runRemote(t, cfg, false, func(f *remoteFixture) {
		bad := f.layerGets()
		pages, _ := f.lostDiskReattach()
		bad.set(0, true)
		p := pages[0]
		_, err := f.readBlock(p.tid, p.blk, p.at)
		if net.CodeOf(err) != net.Unavailable || !strings.Contains(err.Error(), "download") {
			t.Fatalf("read of a layer that cannot be downloaded: %v (%v), want Unavailable", err, net.CodeOf(err))
		}
		if f.metric("strata_pageserver_ondemand_layer_download_failures_total") == 0 {
			t.Error("the failed download is not counted")
		}
		if _, resident := f.residency(); resident != 0 {
			t.Fatalf("%d layers resident after failed downloads", resident)
		}
		f.noDownloadLeftovers()
		bad.set(0, false)
		f.readAll(pages)
	})
}

// noDownloadLeftovers fails if a temporary download file is on disk.
func (f *remoteFixture) noDownloadLeftovers() {
	f.t.Helper()
	for _, tid := range []shard.TimelineID{timelineA, timelineB} {
		dir := tenantsDir + "/" + tsidA.String() + "/timelines/" + tid.String()
		ents, err := f.ps.Disk().View().ReadDir(dir)
		if err != nil {
			f.t.Fatal(err)
		}
		for _, e := range ents {
			if strings.Contains(e.Name(), ".___") {
				f.t.Fatalf("%s/%s left behind", dir, e.Name())
			}
		}
	}
}

// TestEvictionKeepsWithinBudget: with a disk budget of about two layers,
// a tenant whose layers are several times that stays within it (once the
// evictor ran): least recently used layers already in object storage are
// evicted, and every page still reads right at every LSN (downloading
// evicted layers again), over and over.
func TestEvictionKeepsWithinBudget(t *testing.T) {
	var budget int64 = 900 // bytes: about two of history()'s layers
	cfg := Config{RemoteStorage: RemoteStorageConfig{MaxLocalLayerBytes: budget, EvictionInterval: 100 * time.Millisecond}}
	runRemote(t, cfg, false, func(f *remoteFixture) {
		if err := f.attachA(1, pageapi.ModeAttachedSingle); err != nil {
			t.Fatal(err)
		}
		pages := f.history()
		within := func(what string) {
			f.eventually(time.Minute, what+": resident layers within the budget", func() bool {
				return f.metric("strata_pageserver_resident_layer_bytes") <= float64(budget)
			})
		}
		within("after writing")
		total, resident := f.residency()
		if resident >= total || f.metric("strata_pageserver_resident_layer_evictions_total") == 0 {
			t.Fatalf("%d of %d layers resident, %v evictions: nothing was evicted", resident, total,
				f.metric("strata_pageserver_resident_layer_evictions_total"))
		}
		for round := range 3 {
			f.readAll(pages)
			within(fmt.Sprintf("after reading, round %d", round))
		}
		if f.metric("strata_pageserver_ondemand_layer_downloads_total") == 0 {
			t.Fatal("no evicted layer was downloaded again")
		}
		evictions := f.logs.find("layers evicted to stay within the disk budget")
		if len(evictions) == 0 || evictions[0].attrs["bytes"] == "" || evictions[0].attrs["budget_bytes"] != fmt.Sprint(budget) {
			t.Fatalf("eviction log lines %v: want the bytes and the budget", evictions)
		}
		t.Logf("%d layers, budget %d bytes: %v evictions, %v on-demand downloads", total, budget,
			f.metric("strata_pageserver_resident_layer_evictions_total"), f.metric("strata_pageserver_ondemand_layer_downloads_total"))
	})
}

// TestNeverEvictsWhatIsNotDurable: with a budget of one byte, layers whose
// upload is held, and then layers uploaded whose index is held, keep their
// local files (the only copy a restart could find); a crash then, and a
// restart on the same disk, reads every page back; once the index is up
// they are evicted too.
func TestNeverEvictsWhatIsNotDurable(t *testing.T) {
	cfg := Config{RemoteStorage: RemoteStorageConfig{MaxLocalLayerBytes: 1, EvictionInterval: 50 * time.Millisecond}}
	runRemote(t, cfg, false, func(f *remoteFixture) {
		if err := f.attachA(1, pageapi.ModeAttachedSingle); err != nil {
			t.Fatal(err)
		}
		pages := f.history()
		f.eventually(time.Minute, "every uploaded layer evicted", func() bool {
			_, resident := f.residency()
			return resident == 0
		})
		st := f.timeline(timelineA)
		localFiles := func() map[string]bool {
			ls, err := st.tl.Layers()
			if err != nil {
				t.Fatal(err)
			}
			out := map[string]bool{}
			for _, li := range ls {
				if li.Resident {
					out[li.Name.String()] = true
				}
			}
			return out
		}
		// Layer puts held: not in object storage at all.
		f.store.setHold(func(key string) bool { return !strings.Contains(key, remote.HeatmapFileName) })
		at := f.writeFlush(st, st.LastRecordLSN(), 0xC0, 0, 1)
		pages = append(pages, pageAt{timelineA, 0, at - 0x10, testPage(0xC0)}, pageAt{timelineA, 1, at, testPage(0xC1)})
		_ = clock.Sleep(f.ctx, f.w.Clock(), time.Second) // many eviction passes
		if got := localFiles(); len(got) != 1 {
			t.Fatalf("with its upload held, the new layer must stay local: resident %v", got)
		}
		// The layer uploaded, its index held.
		f.store.setHold(func(key string) bool { return strings.Contains(key, remote.IndexFileName) })
		f.eventually(time.Minute, "the layer uploaded", func() bool { return f.newestUploaded(st) })
		_ = clock.Sleep(f.ctx, f.w.Clock(), time.Second)
		if got := localFiles(); len(got) != 1 {
			t.Fatalf("uploaded but no index names it yet, the layer must stay local: resident %v", got)
		}
		// A crash now: the restart loads the old index, and the local
		// file is what holds the new layer.
		f.restart(true)
		f.store.setHold(nil)
		if err := f.attachA(1, pageapi.ModeAttachedSingle); err != nil {
			t.Fatal(err)
		}
		f.readAll(pages)
		f.barrier(timelineA)
		st = f.timeline(timelineA)
		f.eventually(time.Minute, "the layer evicted once its index is up", func() bool { return len(localFiles()) == 0 })
		f.readAll(pages)
	})
}

// newestUploaded reports whether the newest layer of st's timeline is in
// object storage.
func (f *remoteFixture) newestUploaded(st *shardTimeline) bool {
	ls, err := st.tl.Layers()
	if err != nil || len(ls) == 0 {
		return false
	}
	key := remote.Layout{}.LayerKey(tenantA, timelineA, remote.LayerID{Name: ls[0].Name, Shard: tsidA.Shard})
	_, err = f.w.Store().Head(f.ctx, key)
	return err == nil
}

// TestCrashMidDownload: the pageserver crashes while a layer's download
// is being written (its temporary file is on disk, not yet synced); after
// the restart no partial layer file is visible, the tenant attaches, and
// every page reads back.
func TestCrashMidDownload(t *testing.T) {
	cfg := Config{RemoteStorage: RemoteStorageConfig{OnDemandOnly: true}}
	runRemote(t, cfg, false, func(f *remoteFixture) {
		pages, _ := f.lostDiskReattach()
		f.ps.SetDiskLatency(func(op string) time.Duration {
			if op == "sync" || op == "write" {
				return 50 * time.Millisecond
			}
			return 0
		})
		p := pages[len(pages)-1]
		tl := f.timeline(p.tid).tl
		f.w.Go("reader", func(context.Context) { _, _ = tl.GetPage(keys.RelBlockKey(testRel, p.blk), p.at) })
		dir := tenantsDir + "/" + tsidA.String() + "/timelines/" + p.tid.String()
		f.eventually(time.Minute, "a download being written", func() bool {
			ents, err := f.ps.Disk().View().ReadDir(dir)
			return err == nil && len(ents) > 1 // the metadata, and the download
		})
		// Another write in the directory (a flush, say) makes the new
		// file's entry durable before its data.
		if err := f.ps.Disk().View().SyncDir(dir); err != nil {
			t.Fatal(err)
		}
		f.restart(true)
		f.ps.SetDiskLatency(nil)
		f.noDownloadLeftovers()
		// Every layer file on disk is whole: the size the index says.
		for _, tid := range []shard.TimelineID{timelineA, timelineB} {
			ip, err := f.index(tid, 1)
			if err != nil {
				t.Fatal(err)
			}
			for _, l := range ip.Layers {
				fi, err := f.ps.Disk().View().Stat(tenantsDir + "/" + tsidA.String() + "/timelines/" + tid.String() + "/" + l.Name.String())
				if err == nil && uint64(fi.Size()) != l.FileSize {
					t.Fatalf("layer file %s of %d bytes after the crash, the index says %d", l.Name, fi.Size(), l.FileSize)
				}
			}
		}
		if _, err := f.node.tenants.get(tsidA); err != nil {
			t.Fatal(err)
		}
		if err := f.do("GET", "/v1/tenant/"+tsidA.String()+"/timeline", nil, nil); err != nil {
			t.Fatalf("the tenant after the crash: %v", err)
		}
		f.readAll(pages)
	})
}

var _ timeline.LayerSource = (*remoteTenant)(nil)

// TestRestartedQueueSkipsEvictedLayers: the upload queue a failed
// timeline delete restarts (restartUploadQueue) uploads a new index but
// not the layers the old queue knew to be in object storage, although
// every one of them was evicted (no local file to upload): it drains.
func TestRestartedQueueSkipsEvictedLayers(t *testing.T) {
	cfg := Config{RemoteStorage: RemoteStorageConfig{MaxLocalLayerBytes: 1, EvictionInterval: 50 * time.Millisecond}}
	runRemote(t, cfg, false, func(f *remoteFixture) {
		if err := f.attachA(1, pageapi.ModeAttachedSingle); err != nil {
			t.Fatal(err)
		}
		pages := f.history()
		f.eventually(time.Minute, "every layer evicted", func() bool {
			_, resident := f.residency()
			return resident == 0
		})
		ts, err := f.node.tenants.get(tsidA)
		if err != nil {
			t.Fatal(err)
		}
		ts.mu.Lock()
		rt := ts.remote
		ts.mu.Unlock()
		old := rt.removeQueue(timelineA)
		old.stop()
		indexes := len(f.store.putKeys(remote.IndexFileName))
		if err := f.node.tenants.restartUploadQueue(ts, rt, f.timeline(timelineA).tl, old); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := clock.WithTimeout(f.w.Clock(), f.ctx, time.Minute)
		defer cancel()
		q := rt.queue(timelineA)
		if err := q.barrier(ctx); err != nil {
			t.Fatalf("the restarted queue does not drain: %v (%s)", err, q.describe())
		}
		if len(f.store.putKeys(remote.IndexFileName)) == indexes {
			t.Fatal("the restarted queue uploaded no index")
		}
		f.readAll(pages)
	})
}

// TestSplitOfEvictedLayers: a shard whose layers were all evicted splits:
// the children hold the parent's layers as remote (nothing to link),
// download them from the parent's objects on demand, and read every
// block right at every LSN, also after a restart.
func TestSplitOfEvictedLayers(t *testing.T) {
	cfg := Config{RemoteStorage: RemoteStorageConfig{MaxLocalLayerBytes: 1, EvictionInterval: 50 * time.Millisecond}}
	runRemote(t, cfg, false, func(f *remoteFixture) {
		h := &splitHarness{t: t, f: f.nodeFixture, at: 0x100}
		parent := shard.Unsharded()
		h.attach(parent.Index(), 0, 5)
		h.round(0x10, true)
		h.round(0x40, true)
		pid := tsidOf(parent.Index())
		pts, err := f.node.tenants.get(pid)
		if err != nil {
			t.Fatal(err)
		}
		f.eventually(time.Minute, "the parent's layers evicted", func() bool {
			_, sts, err := pts.attached()
			if err != nil || len(sts) != 1 {
				return false
			}
			ls, err := sts[0].tl.Layers()
			if err != nil {
				return false
			}
			for _, li := range ls {
				if li.Resident {
					return false
				}
			}
			return len(ls) > 0
		})
		var resp pageapi.ShardSplitResponse
		if err := f.do("PUT", splitURL(pid), pageapi.ShardSplitRequest{NewShardCount: 2, NewStripeSize: u32(1)}, &resp); err != nil {
			t.Fatalf("split of a shard whose layers are remote: %v", err)
		}
		downloads := f.metric("strata_pageserver_ondemand_layer_downloads_total")
		for _, k := range resp.NewShards {
			h.checkShardReads(shard.ShardIdentity{Number: k.Shard.Number, Count: k.Shard.Count, StripeSize: 1})
		}
		if f.metric("strata_pageserver_ondemand_layer_downloads_total") == downloads {
			t.Fatal("the children read their remote layers without downloading any")
		}
		f.restart(true)
		for _, k := range resp.NewShards {
			h.checkShardReads(shard.ShardIdentity{Number: k.Shard.Number, Count: k.Shard.Count, StripeSize: 1})
		}
	})
}

// TestEvictsLeastRecentlyUsed: three remote layers read one after the
// other, each by a read that needs only it, under a budget that holds all
// but the first read's (the smallest, so the first two fit): once the
// third is downloaded, the evictor removes the least recently used (the
// first read's), not one read since.
func TestEvictsLeastRecentlyUsed(t *testing.T) {
	// The budget is set once the layer sizes are known (the attach loads
	// the config at start, so the node restarts with it).
	runRemote(t, Config{RemoteStorage: RemoteStorageConfig{OnDemandOnly: true, EvictionInterval: time.Hour}}, false, func(f *remoteFixture) {
		pages, _ := f.lostDiskReattach()
		// history(): timelineA's L1 holds blocks 0..2 up to the branch
		// point, its L0 block 0 after it; timelineB's L0 block 1.
		var early, late, branch pageAt
		for _, p := range pages {
			switch {
			case p.tid == timelineA && p.blk == 1 && early.want == nil:
				early = p
			case p.tid == timelineA && p.blk == 0:
				late = p
			case p.tid == timelineB && p.blk == 1:
				branch = p
			}
		}
		sizes := map[string]int64{}
		var total int64
		for _, tid := range []shard.TimelineID{timelineA, timelineB} {
			ls, err := f.timeline(tid).tl.Layers()
			if err != nil {
				t.Fatal(err)
			}
			for _, li := range ls {
				sizes[tid.String()+"/"+li.Name.String()] = li.Size
				total += li.Size
			}
		}
		if len(sizes) != 3 {
			t.Fatalf("%d layers, want 3: %v", len(sizes), sizes)
		}
		// Which layer each read brings in, in the order read.
		resident := func() map[string]bool {
			out := map[string]bool{}
			for _, tid := range []shard.TimelineID{timelineA, timelineB} {
				ls, _ := f.timeline(tid).tl.Layers()
				for _, li := range ls {
					if li.Resident {
						out[tid.String()+"/"+li.Name.String()] = true
					}
				}
			}
			return out
		}
		order := []pageAt{branch, early, late} // name order would pick timelineA's L0 first
		var brought []string
		// A dry run on this incarnation finds each read's layer.
		for _, p := range order {
			before := resident()
			if got, err := f.readBlock(p.tid, p.blk, p.at); err != nil || !bytes.Equal(got, p.want) {
				t.Fatalf("read %s block %d at %s: %v", p.tid, p.blk, p.at, err)
			}
			var added []string
			for k := range resident() {
				if !before[k] {
					added = append(added, k)
				}
			}
			if len(added) != 1 {
				t.Fatalf("read %s block %d at %s brought in %v, want one layer", p.tid, p.blk, p.at, added)
			}
			brought = append(brought, added[0])
		}
		// Now with a budget that holds all but the first read's layer,
		// which must be the smallest for the first two to fit.
		first := brought[0]
		for _, k := range brought[1:] {
			if sizes[k] < sizes[first] {
				t.Fatalf("the first read's layer is not the smallest (%v); the case needs it", sizes)
			}
		}
		f.cfg.RemoteStorage.MaxLocalLayerBytes = total - sizes[first]
		f.wipe = true
		f.restart(false)
		if err := f.attachA(2, pageapi.ModeAttachedSingle); err != nil {
			t.Fatal(err)
		}
		for _, p := range order {
			if got, err := f.readBlock(p.tid, p.blk, p.at); err != nil || !bytes.Equal(got, p.want) {
				t.Fatalf("read %s block %d at %s: %v", p.tid, p.blk, p.at, err)
			}
		}
		f.eventually(time.Minute, "one layer evicted", func() bool {
			return f.metric("strata_pageserver_resident_layer_evictions_total") == 1
		})
		got := resident()
		if got[first] || !got[brought[1]] || !got[brought[2]] {
			t.Fatalf("resident after the third read: %v; want all but %s (read first)", got, first)
		}
	})
}
