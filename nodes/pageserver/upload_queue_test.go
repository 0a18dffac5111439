package pageserver

import (
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stratadb/strata/clock"
	"github.com/stratadb/strata/engine/layer"
	"github.com/stratadb/strata/engine/lsn"
	"github.com/stratadb/strata/engine/remote"
	"github.com/stratadb/strata/engine/shard"
	"github.com/stratadb/strata/nodes/pageserver/pageapi"
)

func layerGen(g uint32) layer.Generation { return layer.Generation(g) }

// createA creates timelineA on tenantA.
func (f *remoteFixture) createA() *shardTimeline {
	f.t.Helper()
	if err := f.do("POST", "/v1/tenant/"+tsidA.String()+"/timeline", pageapi.TimelineCreateRequest{NewTimelineID: timelineA}, nil); err != nil {
		f.t.Fatal(err)
	}
	return f.timeline(timelineA)
}

// listed returns timelineA's info from the timeline list.
func (f *remoteFixture) listed(tid shard.TimelineID) pageapi.TimelineInfo {
	f.t.Helper()
	var list []pageapi.TimelineInfo
	if err := f.do("GET", "/v1/tenant/"+tsidA.String()+"/timeline", nil, &list); err != nil {
		f.t.Fatal(err)
	}
	for _, i := range list {
		if i.TimelineID == tid {
			return i
		}
	}
	f.t.Fatalf("timeline %s not listed", tid)
	return pageapi.TimelineInfo{}
}

// TestUploadLayersBeforeIndex: every layer a flush or compaction writes
// reaches object storage under its generation before any index naming it;
// the index of the newest state names exactly the engine's layers, with
// their sizes; without a controller the uploaded disk_consistent_lsn is
// reported as remote_consistent_lsn (timeline list and WAL feedback).
func TestUploadLayersBeforeIndex(t *testing.T) {
	runRemote(t, Config{}, false, func(f *remoteFixture) {
		if err := f.attachA(4, pageapi.ModeAttachedSingle); err != nil {
			t.Fatal(err)
		}
		st := f.createA()
		at := lsn.LSN(0x100)
		for i := range 3 {
			at = f.writeFlush(st, at, byte(i*16), 0, 1)
		}
		if _, err := st.tl.Compact(); err != nil {
			t.Fatal(err)
		}
		f.barrier(timelineA)
		state, err := st.tl.State()
		if err != nil {
			t.Fatal(err)
		}
		ip, err := f.index(timelineA, 4)
		if err != nil {
			t.Fatalf("index of generation 4: %v", err)
		}
		var names []layer.Name
		for _, l := range ip.Layers {
			names = append(names, l.Name)
			if l.Shard != tsidA.Shard {
				t.Errorf("layer %s written by shard %s, want %s", l.Name, l.Shard, tsidA.Shard)
			}
		}
		if !slices.Equal(names, state.Layers) || ip.Metadata.DiskConsistentLSN != state.DiskConsistentLSN {
			t.Fatalf("index names %v at %s, the engine holds %v at %s", names, ip.Metadata.DiskConsistentLSN, state.Layers, state.DiskConsistentLSN)
		}
		// Order: every layer the index names was put before the index,
		// and under the generation.
		puts := f.store.putKeys(tsidA.String() + "/timelines/")
		last := -1
		for i, k := range puts {
			if strings.Contains(k, remote.IndexFileName) {
				last = i
			} else if !strings.HasSuffix(k, "-00000004") {
				t.Errorf("layer object %s lacks the generation suffix -00000004", k)
			}
		}
		for _, l := range ip.Layers {
			key := remote.Layout{}.LayerKey(tenantA, timelineA, l.LayerID)
			if i := slices.Index(puts, key); i < 0 || i > last {
				t.Errorf("layer %s put at %d, the index at %d", key, i, last)
			}
		}
		for _, l := range ip.Layers {
			b, err := f.w.Store().Get(f.ctx, remote.Layout{}.LayerKey(tenantA, timelineA, l.LayerID))
			if err != nil || uint64(len(b)) != l.FileSize {
				t.Errorf("layer %s in the store: %d bytes, %v; the index says %d", l.Name, len(b), err, l.FileSize)
			}
		}
		f.eventually(time.Second, "remote_consistent_lsn reported", func() bool {
			return f.listed(timelineA).RemoteConsistentLSN == state.DiskConsistentLSN
		})
		fb := (&walReceiver{st: st, nodeID: "ps-7"}).feedback()
		if lsn.LSN(fb.RemoteConsistentLsn) != state.DiskConsistentLSN {
			t.Errorf("WAL feedback remote_consistent_lsn %s, want %s", lsn.LSN(fb.RemoteConsistentLsn), state.DiskConsistentLSN)
		}
		if got := f.metric("strata_pageserver_remote_uploads_total", "kind", "layer"); got < float64(len(ip.Layers)) {
			t.Errorf("layer upload metric %v, want at least %d", got, len(ip.Layers))
		}
		if got := f.metric("strata_pageserver_remote_consistent_lsn_lag_bytes"); got != 0 {
			t.Errorf("remote_consistent_lsn lag %v after the barrier, want 0", got)
		}
	})
}

// TestIndexUploadsCoalesce: while the first layer's upload is held, four
// more flushes complete their layer uploads; once it is released, their
// five index uploads are consecutive and only the newest goes out.
func TestIndexUploadsCoalesce(t *testing.T) {
	runRemote(t, Config{}, false, func(f *remoteFixture) {
		if err := f.attachA(1, pageapi.ModeAttachedSingle); err != nil {
			t.Fatal(err)
		}
		st := f.createA()
		held := ""
		f.store.setHold(func(key string) bool {
			if held == "" && !strings.Contains(key, remote.IndexFileName) {
				held = key
			}
			return key == held
		})
		at := lsn.LSN(0x100)
		for i := range 5 {
			at = f.writeFlush(st, at, byte(i), uint32(i))
		}
		f.eventually(time.Second, "the other layers uploaded", func() bool {
			return len(f.store.putKeys("timelines/")) == 4
		})
		if got := f.store.putKeys(remote.IndexFileName); len(got) != 0 {
			t.Fatalf("an index went out while a layer before it was held: %v", got)
		}
		f.store.setHold(nil)
		f.barrier(timelineA)
		if got := f.store.putKeys(remote.IndexFileName); len(got) != 1 {
			t.Fatalf("%d index uploads for five consecutive ones, want 1 (coalesced): %v", len(got), got)
		}
		ip, err := f.index(timelineA, 1)
		if err != nil || len(ip.Layers) != 5 || ip.Metadata.DiskConsistentLSN != at {
			t.Fatalf("the one index: %d layers at %s (%v), want all 5 at %s", len(ip.Layers), ip.Metadata.DiskConsistentLSN, err, at)
		}
	})
}

// TestUploadsBoundedInFlight: with every upload held, ten flushes start
// no more than MaxInFlight uploads at once.
func TestUploadsBoundedInFlight(t *testing.T) {
	runRemote(t, Config{RemoteStorage: RemoteStorageConfig{MaxInFlight: 3}}, false, func(f *remoteFixture) {
		if err := f.attachA(1, pageapi.ModeAttachedSingle); err != nil {
			t.Fatal(err)
		}
		st := f.createA()
		f.store.setHold(func(string) bool { return true })
		at := lsn.LSN(0x100)
		for i := range 10 {
			at = f.writeFlush(st, at, byte(i), uint32(i))
		}
		_ = clock.Sleep(f.ctx, f.w.Clock(), time.Second)
		f.store.mu.Lock()
		peak := f.store.maxInFlight
		f.store.mu.Unlock()
		if peak != 3 {
			t.Fatalf("%d uploads in flight at once, want MaxInFlight 3", peak)
		}
		f.store.setHold(nil)
		f.barrier(timelineA)
		if ip, err := f.index(timelineA, 1); err != nil || len(ip.Layers) != 10 {
			t.Fatalf("index after release: %+v %v", ip.Layers, err)
		}
	})
}

// TestUploadsRetryForever: every upload fails its first 14 attempts (more
// than a download is ever retried); the uploads still complete, the first two failures of each are logged at info and the
// rest at warn, and each failure is counted.
func TestUploadsRetryForever(t *testing.T) {
	const n = 14
	cfg := Config{RemoteStorage: RemoteStorageConfig{UploadBackoff: 10 * time.Millisecond, UploadBackoffMax: 50 * time.Millisecond}}
	runRemote(t, cfg, false, func(f *remoteFixture) {
		f.store.failPuts = n
		if err := f.attachA(1, pageapi.ModeAttachedSingle); err != nil {
			t.Fatal(err)
		}
		st := f.createA()
		f.writeFlush(st, 0x100, 1, 0)
		f.barrier(timelineA)
		if _, err := f.index(timelineA, 1); err != nil {
			t.Fatalf("index not uploaded: %v", err)
		}
		if got := f.metric("strata_pageserver_remote_upload_retries_total"); got != 2*n {
			t.Errorf("upload retries %v, want %d (layer and index, %d each)", got, 2*n, n)
		}
		var info, warn int
		for _, r := range f.logs.find("upload failed, will retry") {
			switch r.level {
			case slog.LevelInfo:
				info++
			case slog.LevelWarn:
				warn++
			}
		}
		if info != 2*2 || warn != 2*(n-2) {
			t.Errorf("retry logs: %d info, %d warn; want %d info (failures 1-2) and %d warn (from the third)", info, warn, 4, 2*(n-2))
		}
	})
}

// TestModesGateUploadsAndDeletions: AttachedStale uploads nothing until
// the mode changes; AttachedMulti uploads but deletes nothing (the
// compacted L0s stay in object storage) until it becomes AttachedSingle.
func TestModesGateUploadsAndDeletions(t *testing.T) {
	cfg := Config{RemoteStorage: RemoteStorageConfig{DeletionFlushInterval: 100 * time.Millisecond}}
	runRemote(t, cfg, false, func(f *remoteFixture) {
		if err := f.attachA(1, pageapi.ModeAttachedStale); err != nil {
			t.Fatal(err)
		}
		st := f.createA()
		at := f.writeFlush(st, 0x100, 1, 0)
		at = f.writeFlush(st, at, 2, 1)
		_ = clock.Sleep(f.ctx, f.w.Clock(), 5*time.Second)
		if got := f.store.putKeys("timelines/"); len(got) != 0 {
			t.Fatalf("AttachedStale uploaded %v", got)
		}
		if err := f.attachA(1, pageapi.ModeAttachedMulti); err != nil {
			t.Fatal(err)
		}
		f.barrier(timelineA)
		l0s, err := f.index(timelineA, 1)
		if err != nil || len(l0s.Layers) != 2 {
			t.Fatalf("after AttachedMulti: %+v, %v", l0s.Layers, err)
		}
		if c, err := st.tl.Compact(); err != nil || c.L0Merged != 2 {
			t.Fatalf("compact: %+v %v", c, err)
		}
		f.barrier(timelineA)
		_ = clock.Sleep(f.ctx, f.w.Clock(), 5*time.Second)
		for _, l := range l0s.Layers {
			if _, err := f.w.Store().Head(f.ctx, remote.Layout{}.LayerKey(tenantA, timelineA, l.LayerID)); err != nil {
				t.Fatalf("AttachedMulti deleted %s: %v", l.Name, err)
			}
		}
		if err := f.attachA(1, pageapi.ModeAttachedSingle); err != nil {
			t.Fatal(err)
		}
		f.eventually(time.Minute, "the compacted L0s deleted once AttachedSingle", func() bool {
			for _, l := range l0s.Layers {
				if _, err := f.w.Store().Head(f.ctx, remote.Layout{}.LayerKey(tenantA, timelineA, l.LayerID)); err == nil {
					return false
				}
			}
			return true
		})
		ip, err := f.index(timelineA, 1)
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range ip.Layers {
			if _, err := f.w.Store().Head(f.ctx, remote.Layout{}.LayerKey(tenantA, timelineA, l.LayerID)); err != nil {
				t.Errorf("layer %s named by the index is gone: %v", l.Name, err)
			}
		}
		_ = at
	})
}

// TestRemoteConsistentLSNOnlyAfterValidation: with a controller, an
// uploaded index is reported as remote_consistent_lsn only once validate
// says the generation is current; an omitted or invalid generation keeps
// it unreported, a failed validate call is retried.
func TestRemoteConsistentLSNOnlyAfterValidation(t *testing.T) {
	runRemote(t, Config{}, true, func(f *remoteFixture) {
		f.ctl.mu.Lock()
		f.ctl.failNextVs = 2
		f.ctl.mu.Unlock()
		if err := f.attachA(3, pageapi.ModeAttachedSingle); err != nil {
			t.Fatal(err)
		}
		st := f.createA()
		at := f.writeFlush(st, 0x100, 1, 0)
		f.barrier(timelineA)
		_ = clock.Sleep(f.ctx, f.w.Clock(), 10*time.Second)
		if got := f.listed(timelineA).RemoteConsistentLSN; got != 0 {
			t.Fatalf("remote_consistent_lsn %s reported while the controller does not know the generation", got)
		}
		if (&walReceiver{st: st}).feedback().RemoteConsistentLsn != 0 {
			t.Fatal("WAL feedback carries an unvalidated remote_consistent_lsn")
		}
		f.ctl.setValid(tsidA, false)
		at = f.writeFlush(st, at, 2, 1)
		f.barrier(timelineA)
		_ = clock.Sleep(f.ctx, f.w.Clock(), 10*time.Second)
		if got := f.listed(timelineA).RemoteConsistentLSN; got != 0 {
			t.Fatalf("remote_consistent_lsn %s reported for an invalid generation", got)
		}
		if got := f.metric("strata_pageserver_remote_consistent_lsn_lag_bytes", "timeline_id", timelineA.String()); got != float64(at) {
			t.Errorf("remote_consistent_lsn lag %v, want %d (nothing visible)", got, at)
		}
		f.ctl.setValid(tsidA, true)
		at = f.writeFlush(st, at, 3, 2)
		f.barrier(timelineA)
		f.eventually(time.Minute, "remote_consistent_lsn reported once valid", func() bool {
			return f.listed(timelineA).RemoteConsistentLSN == at
		})
		if got := lsn.LSN((&walReceiver{st: st}).feedback().RemoteConsistentLsn); got != at {
			t.Errorf("WAL feedback remote_consistent_lsn %s, want %s", got, at)
		}
		if got := f.metric("strata_pageserver_remote_validations_total", "result", "error"); got < 2 {
			t.Errorf("failed validate calls counted %v, want 2", got)
		}
	})
}
