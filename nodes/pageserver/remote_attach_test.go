package pageserver

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/stratadb/strata/disk/objstore"
	"github.com/stratadb/strata/engine/lsn"
	"github.com/stratadb/strata/engine/remote"
	"github.com/stratadb/strata/engine/shard"
	"github.com/stratadb/strata/net"
	"github.com/stratadb/strata/nodes/pageserver/pageapi"
	"github.com/stratadb/strata/nodes/storcon/storconapi"
)

var timelineB = shard.TimelineID{0xbb}

// pageAt is a page the tests expect to read back: block blk of a
// timeline at LSN at.
type pageAt struct {
	tid  shard.TimelineID
	blk  uint32
	at   lsn.LSN
	want []byte
}

// history writes, on generation g's attachment of tenantA, a root
// timeline over several flushes and a compaction, then a branch with its
// own layer, waits until everything is uploaded, and returns pages to
// read back at several LSNs.
func (f *remoteFixture) history() []pageAt {
	f.t.Helper()
	st := f.createA()
	var pages []pageAt
	at := lsn.LSN(0x100)
	for i := range 4 {
		fill := byte(0x10 * (i + 1))
		at = f.writeFlush(st, at, fill, 0, 1, 2)
		for b := range uint32(3) {
			pages = append(pages, pageAt{timelineA, b, at, testPage(fill + byte(b))})
		}
	}
	if c, err := st.tl.Compact(); err != nil || c.L0Merged == 0 {
		f.t.Fatalf("compact: %+v %v", c, err)
	}
	branchAt := at
	if err := f.do("POST", "/v1/tenant/"+tsidA.String()+"/timeline", pageapi.TimelineCreateRequest{
		NewTimelineID: timelineB, AncestorTimelineID: &timelineA, AncestorStartLSN: &branchAt}, nil); err != nil {
		f.t.Fatal(err)
	}
	br := f.timeline(timelineB)
	bat := f.writeFlush(br, branchAt, 0x70, 1)
	pages = append(pages, pageAt{timelineB, 0, bat, testPage(0x40)}, pageAt{timelineB, 1, bat, testPage(0x71)},
		pageAt{timelineB, 2, branchAt, testPage(0x42)})
	// The parent moves on after the branch point.
	at = f.writeFlush(st, at, 0x90, 0)
	pages = append(pages, pageAt{timelineA, 0, at, testPage(0x90)})
	f.barrier(timelineA)
	f.barrier(timelineB)
	return pages
}

func (f *remoteFixture) readAll(pages []pageAt) {
	f.t.Helper()
	for _, p := range pages {
		got, err := f.readBlock(p.tid, p.blk, p.at)
		if err != nil {
			f.t.Fatalf("%s block %d at %s: %v", p.tid, p.blk, p.at, err)
		}
		if !bytes.Equal(got, p.want) {
			f.t.Fatalf("%s block %d at %s: read %x…, want %x…", p.tid, p.blk, p.at, got[:4], p.want[:4])
		}
	}
}

// TestReattachAfterLostDisk: everything uploaded, the pageserver's disk
// is lost; attached again (a new generation) the tenant comes back from
// object storage with both timelines, the branch after its ancestor, and
// every page reads back. Each layer download is logged with its size.
func TestReattachAfterLostDisk(t *testing.T) {
	runRemote(t, Config{}, false, func(f *remoteFixture) {
		if err := f.attachA(1, pageapi.ModeAttachedSingle); err != nil {
			t.Fatal(err)
		}
		pages := f.history()
		f.readAll(pages)
		f.wipe = true
		f.restart(false)
		if err := f.do("GET", "/v1/tenant/"+tsidA.String()+"/timeline", nil, nil); net.CodeOf(err) != net.NotFound {
			t.Fatalf("after losing the disk the tenant is unknown here: %v", err)
		}
		if err := f.attachA(2, pageapi.ModeAttachedSingle); err != nil {
			t.Fatalf("attach from object storage: %v", err)
		}
		f.readAll(pages)
		if a := f.listed(timelineB).AncestorTimelineID; a == nil || *a != timelineA {
			t.Errorf("branch's ancestor after attach: %v", a)
		}
		downloads := f.logs.find("layer downloaded")
		if len(downloads) == 0 || float64(len(downloads)) != f.metric("strata_pageserver_remote_layer_downloads_total") {
			t.Fatalf("%d download log lines, metric %v", len(downloads), f.metric("strata_pageserver_remote_layer_downloads_total"))
		}
		for _, r := range downloads {
			if r.attrs["size"] == "" || r.attrs["size"] == "0" {
				t.Errorf("download log without the size: %v", r.attrs)
			}
		}
		// The new attachment goes on uploading under its own generation.
		st := f.timeline(timelineA)
		f.writeFlush(st, st.LastRecordLSN(), 0xA0, 2)
		f.barrier(timelineA)
		if _, err := f.index(timelineA, 2); err != nil {
			t.Errorf("no index of generation 2 after a flush: %v", err)
		}
	})
}

// TestAttachFailFirst: with RemoteStorage.TestFailures every store
// operation fails its first N attempts. With 3 the attach from object
// storage succeeds (the retry policy absorbs them); with 20 it fails with
// the retry policy's error and the tenant is broken, not half attached:
// no timeline is listed or served and no engine is open.
func TestAttachFailFirst(t *testing.T) {
	for _, tc := range []struct {
		n  int
		ok bool
	}{{3, true}, {20, false}} {
		runRemote(t, Config{}, false, func(f *remoteFixture) {
			if err := f.attachA(1, pageapi.ModeAttachedSingle); err != nil {
				t.Fatal(err)
			}
			pages := f.history()
			f.wipe = true
			f.cfg.RemoteStorage.TestFailures = tc.n
			f.restart(false)
			err := f.attachA(2, pageapi.ModeAttachedSingle)
			if tc.ok {
				if err != nil {
					t.Fatalf("N=%d: attach: %v", tc.n, err)
				}
				f.readAll(pages)
				return
			}
			if err == nil || !strings.Contains(err.Error(), "download retries exhausted") || !strings.Contains(err.Error(), "attach from object storage failed") {
				t.Fatalf("N=%d: attach: %v, want the retry policy's error", tc.n, err)
			}
			if err := f.do("GET", "/v1/tenant/"+tsidA.String()+"/timeline", nil, nil); net.CodeOf(err) != net.FailedPrecondition ||
				!strings.Contains(err.Error(), "download retries exhausted") {
				t.Fatalf("N=%d: timeline list of the failed tenant: %v, want broken with the reason", tc.n, err)
			}
			if _, err := f.readBlock(timelineA, 0, pages[0].at); err == nil {
				t.Fatalf("N=%d: a page was served by a tenant whose attach failed", tc.n)
			}
			ts, _ := f.node.tenants.get(tsidA)
			ts.mu.Lock()
			eng, tls, broken := ts.engine, len(ts.timelines), ts.broken
			ts.mu.Unlock()
			if eng != nil || tls != 0 || broken == nil {
				t.Fatalf("N=%d: half attached: engine %v, %d timelines, broken %v", tc.n, eng != nil, tls, broken)
			}
		})
	}
}

// TestAttachNeverLoadsANewerGeneration: object storage holds generation
// 1's index and a newer attachment's (generation 9) that names a layer
// which does not exist. Attaching with generation 7 loads generation 1's
// (the highest not above 7) and reads everything back; the newer one is
// never touched.
func TestAttachNeverLoadsANewerGeneration(t *testing.T) {
	runRemote(t, Config{}, false, func(f *remoteFixture) {
		if err := f.attachA(1, pageapi.ModeAttachedSingle); err != nil {
			t.Fatal(err)
		}
		pages := f.history()
		ip, err := f.index(timelineA, 1)
		if err != nil {
			t.Fatal(err)
		}
		bogus := ip
		bogus.Layers = append([]remote.Layer(nil), ip.Layers...)
		bogus.Layers[0].Name.Generation = 9 // no such object
		bogus.Metadata.DiskConsistentLSN += 0x1000
		data, err := remote.Encode(&bogus)
		if err != nil {
			t.Fatal(err)
		}
		if err := f.w.Store().Put(f.ctx, remote.Layout{}.IndexKey(tsidA, timelineA, 9), data, objstore.PutOptions{}); err != nil {
			t.Fatal(err)
		}
		f.wipe = true
		f.restart(false)
		if err := f.attachA(7, pageapi.ModeAttachedSingle); err != nil {
			t.Fatalf("attach with generation 7: %v", err)
		}
		f.readAll(pages)
		if got, want := f.listed(timelineA).DiskConsistentLSN, ip.Metadata.DiskConsistentLSN; got != want {
			t.Errorf("disk_consistent_lsn %s after attach, want generation 1's %s", got, want)
		}
	})
}

// TestReattachKeepsLocalWorkAndHealsAStaleDisk: a restart on the same
// disk keeps the local layers that cover the index (nothing downloaded)
// and uploads what the crash left unuploaded; a layer the index names
// that the disk lost is downloaded again, and only that one.
func TestReattachKeepsLocalWorkAndHealsAStaleDisk(t *testing.T) {
	runRemote(t, Config{}, false, func(f *remoteFixture) {
		if err := f.attachA(1, pageapi.ModeAttachedSingle); err != nil {
			t.Fatal(err)
		}
		pages := f.history()
		// One more flush whose uploads are held, then a crash: the local
		// disk is ahead of object storage.
		f.store.setHold(func(string) bool { return true })
		st := f.timeline(timelineA)
		at := f.writeFlush(st, st.LastRecordLSN(), 0xC0, 1)
		pages = append(pages, pageAt{timelineA, 1, at, testPage(0xC1)})
		f.restart(true)
		f.store.setHold(nil)
		if err := f.attachA(1, pageapi.ModeAttachedSingle); err != nil {
			t.Fatal(err)
		}
		if got := f.metric("strata_pageserver_remote_layer_downloads_total"); got != 0 {
			t.Errorf("%v layers downloaded although the local disk covers the index", got)
		}
		f.readAll(pages)
		f.barrier(timelineA)
		ip, err := f.index(timelineA, 1)
		if err != nil || ip.Metadata.DiskConsistentLSN != at {
			t.Fatalf("the local work was not uploaded after the restart: %s, %v (want %s)", ip.Metadata.DiskConsistentLSN, err, at)
		}
		// Now lose one layer file the index names: it is remote (the
		// index names it), downloaded again.
		name := ip.Layers[0].Name.String()
		f.w.Stop("ps")
		if err := f.ps.Disk().View().Remove(tenantsDir + "/" + tsidA.String() + "/timelines/" + timelineA.String() + "/" + name); err != nil {
			t.Fatal(err)
		}
		f.w.Restart("ps")
		f.waitUp(t)
		if err := f.attachA(1, pageapi.ModeAttachedSingle); err != nil {
			t.Fatalf("attach over a disk missing %s: %v", name, err)
		}
		f.readAll(pages)
		if got := f.metric("strata_pageserver_remote_layer_downloads_total"); got != 1 {
			t.Errorf("%v layers downloaded for a disk missing one", got)
		}
	})
}

// TestDeletedTimelineStaysDeleted: a deleted timeline's index is marked
// deleted in object storage before its local files go, and its layers are
// deleted after; attached again after a lost disk it does not come back,
// and a local copy that survived (the delete cut short after the mark)
// is removed at attach.
func TestDeletedTimelineStaysDeleted(t *testing.T) {
	cfg := Config{RemoteStorage: RemoteStorageConfig{DeletionFlushInterval: 100 * time.Millisecond}}
	runRemote(t, cfg, false, func(f *remoteFixture) {
		if err := f.attachA(1, pageapi.ModeAttachedSingle); err != nil {
			t.Fatal(err)
		}
		pages := f.history()
		bIdx, err := f.index(timelineB, 1)
		if err != nil || len(bIdx.Layers) == 0 {
			t.Fatalf("branch index: %+v %v", bIdx, err)
		}
		// Mark it deleted in object storage, as a delete cut short after
		// the mark leaves it (the local copy is still there).
		q := f.timeline(timelineB).remote
		if _, err := q.markDeleted(f.ctx); err != nil {
			t.Fatal(err)
		}
		f.restart(true)
		var list []pageapi.TimelineInfo
		if err := f.do("GET", "/v1/tenant/"+tsidA.String()+"/timeline", nil, &list); err != nil || len(list) != 1 || list[0].TimelineID != timelineA {
			t.Fatalf("after a restart the marked branch must be gone here too: %+v %v", list, err)
		}
		// A real delete now: create another branch and delete it.
		at := f.timeline(timelineA).LastRecordLSN()
		tc := shard.TimelineID{0xcc}
		if err := f.do("POST", "/v1/tenant/"+tsidA.String()+"/timeline", pageapi.TimelineCreateRequest{
			NewTimelineID: tc, AncestorTimelineID: &timelineA, AncestorStartLSN: &at}, nil); err != nil {
			t.Fatal(err)
		}
		br := f.timeline(tc)
		f.writeFlush(br, at, 0x55, 0)
		f.barrier(tc)
		cIdx, err := f.index(tc, 1)
		if err != nil || len(cIdx.Layers) != 1 {
			t.Fatalf("second branch index: %+v %v", cIdx, err)
		}
		if err := f.do("DELETE", "/v1/tenant/"+tsidA.String()+"/timeline/"+tc.String(), nil, nil); err != nil {
			t.Fatal(err)
		}
		if ip, err := f.index(tc, 1); err != nil || ip.DeletedAt == nil {
			t.Fatalf("index after delete: deleted_at %v, %v", ip.DeletedAt, err)
		}
		f.eventually(time.Minute, "the deleted branch's layer removed", func() bool {
			_, err := f.w.Store().Head(f.ctx, remote.Layout{}.LayerKey(tenantA, tc, cIdx.Layers[0].LayerID))
			return err != nil
		})
		f.wipe = true
		f.restart(false)
		if err := f.attachA(2, pageapi.ModeAttachedSingle); err != nil {
			t.Fatal(err)
		}
		if err := f.do("GET", "/v1/tenant/"+tsidA.String()+"/timeline", nil, &list); err != nil || len(list) != 1 || list[0].TimelineID != timelineA {
			t.Fatalf("after a lost disk: %+v %v, want only %s", list, err, timelineA)
		}
		var rootPages []pageAt
		for _, p := range pages {
			if p.tid == timelineA {
				rootPages = append(rootPages, p)
			}
		}
		f.readAll(rootPages)
	})
}

// TestStartupAttachRetriesObjectStorage: a restart while object storage
// fails every operation's first 20 attempts leaves the shard broken at
// first (its attach ran out of download retries), and the background
// attach retry brings it back once object storage answers.
func TestStartupAttachRetriesObjectStorage(t *testing.T) {
	runRemote(t, Config{}, false, func(f *remoteFixture) {
		if err := f.attachA(1, pageapi.ModeAttachedSingle); err != nil {
			t.Fatal(err)
		}
		pages := f.history()
		f.cfg.RemoteStorage.TestFailures = 20
		f.w.Stop("ps")
		f.w.Restart("ps")
		// Start-up waits for the attach, which runs out of download
		// retries (about 15 s of back-off) before the node serves.
		f.eventually(time.Minute, "the node up", func() bool {
			return f.do("GET", "/v1/utilization", nil, nil) == nil
		})
		if err := f.do("GET", "/v1/tenant/"+tsidA.String()+"/timeline", nil, nil); net.CodeOf(err) != net.FailedPrecondition {
			t.Fatalf("right after start: %v, want broken", err)
		}
		f.eventually(10*time.Minute, "the shard attached by the retry", func() bool {
			return f.do("GET", "/v1/tenant/"+tsidA.String()+"/timeline", nil, nil) == nil
		})
		f.readAll(pages)
	})
}

// TestReattachAfterLostDiskWithController: with a storage controller, a
// pageserver that lost its disk is told at start (re-attach) that it holds
// tenantA with a new generation; the shard comes back from object storage
// before the node serves, every page reads back, and the new attachment
// reports remote_consistent_lsn once the controller validates it.
func TestReattachAfterLostDiskWithController(t *testing.T) {
	runRemote(t, Config{}, true, func(f *remoteFixture) {
		f.ctl.setValid(tsidA, true)
		if err := f.attachA(1, pageapi.ModeAttachedSingle); err != nil {
			t.Fatal(err)
		}
		pages := f.history()
		f.ctl.mu.Lock()
		f.ctl.reattach = []storconapi.ReAttachTenant{{ID: tsidA, Gen: gen(2), Mode: pageapi.ModeAttachedSingle}}
		f.ctl.mu.Unlock()
		f.wipe = true
		f.restart(true)
		f.readAll(pages)
		want := f.listed(timelineA).DiskConsistentLSN
		f.eventually(time.Minute, "remote_consistent_lsn validated", func() bool {
			return f.listed(timelineA).RemoteConsistentLSN == want
		})
	})
}
