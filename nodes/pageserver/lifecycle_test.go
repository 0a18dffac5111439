package pageserver

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stratadb/strata/clock"
	"github.com/stratadb/strata/engine/lsn"
	"github.com/stratadb/strata/engine/shard"
	"github.com/stratadb/strata/engine/walrec"
	"github.com/stratadb/strata/net"
	"github.com/stratadb/strata/nodes/pageserver/pageapi"
)

// setup attaches tenantA (unsharded) with conf and creates timelineA.
func (f *nodeFixture) setup(t *testing.T, conf *pageapi.TenantConf) *shardTimeline {
	t.Helper()
	tsid := shard.UnshardedID(tenantA).String()
	c := attachedConf(1)
	if conf != nil {
		c.TenantConf = conf
	}
	if err := f.do("PUT", "/v1/tenant/"+tsid+"/location_config", c, nil); err != nil {
		t.Fatal(err)
	}
	if err := f.do("POST", "/v1/tenant/"+tsid+"/timeline", pageapi.TimelineCreateRequest{NewTimelineID: timelineA}, nil); err != nil {
		t.Fatal(err)
	}
	st, err := f.node.tenants.shards[shard.UnshardedID(tenantA)].lookup(timelineA)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func (f *nodeFixture) target() context.Context {
	return pageapi.WithTarget(f.ctx, pageapi.Target{Shard: shard.UnshardedID(tenantA), Timeline: timelineA}, "")
}

// Thousands of connections and streams come and go; the registry returns
// to its baseline (the timeline's background task) each time.
func TestTaskRegistryReturnsToBaseline(t *testing.T) {
	runNode(t, Config{}, func(f *nodeFixture) {
		st := f.setup(t, nil)
		if err := st.Ingest(0x10, walrec.FullPageImage{Rel: testRel, Blk: 0, Page: testPage(1)}); err != nil {
			t.Fatal(err)
		}
		baseline := f.node.tasks.count()
		if baseline != 1 {
			t.Fatalf("baseline %d tasks, want the one background task: %+v", baseline, f.node.tasks.list())
		}
		cli := f.w.Node("cli").Env().Net
		for i := range 2000 {
			conn, err := cli.Dial(f.ctx, "ps:6400")
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := clock.WithCancel(f.target())
			s, err := net.StreamProto[*pageapi.GetPageRequest, *pageapi.GetPageResponse](ctx, conn, pageapi.PageService_GetPages_FullMethodName)
			if err != nil {
				t.Fatal(err)
			}
			if err := s.Send(getPageReq(1, 0x10, 0)); err != nil {
				t.Fatal(err)
			}
			if r, err := s.Recv(); err != nil || r.StatusCode != pageapi.GetPageStatusCode_GET_PAGE_STATUS_CODE_OK {
				t.Fatalf("stream %d: %v %v", i, r, err)
			}
			switch i % 3 { // end the stream three ways
			case 0:
				_ = s.CloseSend()
				_, _ = s.Recv()
			case 1:
				cancel()
			case 2:
				_ = conn.Close()
			}
			cancel()
			_ = conn.Close()
		}
		// The server learns of a cancel one latency later.
		_ = clock.Sleep(f.ctx, f.w.Clock(), time.Second)
		if n := f.node.tasks.count(); n != baseline {
			t.Fatalf("%d tasks after 2000 streams, baseline %d: %+v", n, baseline, f.node.tasks.list())
		}
		var tasks []pageapi.TaskInfo
		if err := f.do("GET", "/v1/debug/tasks", nil, &tasks); err != nil || len(tasks) != 1 || tasks[0].Kind != string(taskBackground) || tasks[0].Timeline != timelineA.String() {
			t.Fatalf("debug/tasks: %+v %v", tasks, err)
		}
	})
}

// Shutdown: a stream open before it may finish within the drain; a new
// request gets Unavailable; everything ingested is flushed; nothing is
// left running.
func TestShutdownInOrder(t *testing.T) {
	runNode(t, Config{}, func(f *nodeFixture) {
		st := f.setup(t, nil)
		for i := range 5 {
			if err := st.Ingest(lsn.LSN(0x10*(i+1)), walrec.FullPageImage{Rel: testRel, Blk: uint32(i), Page: testPage(byte(i))}); err != nil {
				t.Fatal(err)
			}
		}
		open, err := net.StreamProto[*pageapi.GetPageRequest, *pageapi.GetPageResponse](f.target(), f.page, pageapi.PageService_GetPages_FullMethodName)
		if err != nil {
			t.Fatal(err)
		}
		if err := open.Send(getPageReq(1, 0x50, 0)); err != nil {
			t.Fatal(err)
		}
		if _, err := open.Recv(); err != nil {
			t.Fatal(err)
		}
		var left []string
		stopped := f.w.Clock().NewWaiter()
		f.w.Clock().Go(context.Background(), "shutdown", func(context.Context) {
			left = f.node.Shutdown(context.Background(), 5*time.Second)
			stopped.Wake()
		})
		_ = clock.Sleep(f.ctx, f.w.Clock(), 100*time.Millisecond)
		// During the drain: the open stream still answers, a new one is refused.
		if err := open.Send(getPageReq(2, 0x50, 1)); err != nil {
			t.Fatal(err)
		}
		if r, err := open.Recv(); err != nil || r.StatusCode != pageapi.GetPageStatusCode_GET_PAGE_STATUS_CODE_OK {
			t.Fatalf("in-flight stream during drain: %v %v", r, err)
		}
		s, _ := net.StreamProto[*pageapi.GetPageRequest, *pageapi.GetPageResponse](f.target(), f.page, pageapi.PageService_GetPages_FullMethodName)
		_ = s.Send(getPageReq(1, 0x50, 0))
		if _, err := s.Recv(); net.CodeOf(err) != net.Unavailable {
			t.Fatalf("new stream during shutdown: %v, want Unavailable", err)
		}
		_, err = net.CallProto[*pageapi.GetRelSizeResponse](f.target(), f.page, pageapi.PageService_GetRelSize_FullMethodName,
			&pageapi.GetRelSizeRequest{ReadLsn: &pageapi.ReadLsn{RequestLsn: 0x50}, Rel: getPageReq(0, 0).Rel})
		if net.CodeOf(err) != net.Unavailable {
			t.Fatalf("unary call during shutdown: %v, want Unavailable", err)
		}
		// The drain ends the stream that stays open.
		stopped.Wait()
		if _, err := open.Recv(); net.CodeOf(err) != net.Unavailable {
			t.Errorf("stream open past the drain: %v, want Unavailable", err)
		}
		if len(left) != 0 || f.node.tasks.count() != 0 {
			t.Fatalf("left running: %v (%d tasks)", left, f.node.tasks.count())
		}
		// Everything ingested was flushed: a crash right after loses none of it.
		f.ps.Crash(false)
		f.w.Restart("ps")
		f.waitUp(t)
		var list []pageapi.TimelineInfo
		if err := f.do("GET", "/v1/tenant/"+shard.UnshardedID(tenantA).String()+"/timeline", nil, &list); err != nil || len(list) != 1 || list[0].DiskConsistentLSN != 0x50 {
			t.Fatalf("after shutdown and a crash: %+v %v, want disk_consistent_lsn 0/50", list, err)
		}
	})
}

// A lease holds GC below the leased LSN until it expires; a lease below
// the cutoff is refused.
func TestLeaseHoldsGC(t *testing.T) {
	horizon := uint64(0x10)
	period, lease := "1s", "30s"
	runNode(t, Config{}, func(f *nodeFixture) {
		st := f.setup(t, &pageapi.TenantConf{GCHorizon: &horizon, GCPeriod: &period, LSNLeaseLength: &lease})
		for i := range 4 {
			if err := st.Ingest(lsn.LSN(0x10*(i+1)), walrec.FullPageImage{Rel: testRel, Blk: 0, Page: testPage(byte(i))}); err != nil {
				t.Fatal(err)
			}
		}
		resp, err := net.CallProto[*pageapi.LeaseLsnResponse](f.target(), f.page, pageapi.PageService_LeaseLsn_FullMethodName, &pageapi.LeaseLsnRequest{Lsn: 0x20})
		if err != nil {
			t.Fatal(err)
		}
		if got := resp.Expires.AsTime().Sub(f.w.Node("ps").Env().Clock.Now()); got < 29*time.Second || got > 30*time.Second {
			t.Errorf("lease expires in %v, want 30s", got)
		}
		_ = clock.Sleep(f.ctx, f.w.Clock(), 5*time.Second)
		if c := st.tl.GCCutoff(); c != 0x20 {
			t.Fatalf("cutoff %s with a lease at 0/20 (horizon would be 0/30)", c)
		}
		_ = clock.Sleep(f.ctx, f.w.Clock(), 30*time.Second)
		if c := st.tl.GCCutoff(); c != 0x30 {
			t.Fatalf("cutoff %s after the lease expired, want 0/30", c)
		}
		for _, l := range []uint64{0, 0x20} {
			_, err := net.CallProto[*pageapi.LeaseLsnResponse](f.target(), f.page, pageapi.PageService_LeaseLsn_FullMethodName, &pageapi.LeaseLsnRequest{Lsn: l})
			if net.CodeOf(err) != net.FailedPrecondition {
				t.Errorf("lease at %#x: %v, want FailedPrecondition", l, err)
			}
		}
	})
}

// The background loop flushes ingested WAL after the checkpoint timeout;
// wait_lsn waits for ingest and times out with 408.
func TestBackgroundFlushAndWaitLSN(t *testing.T) {
	timeout := "2s"
	runNode(t, Config{}, func(f *nodeFixture) {
		st := f.setup(t, &pageapi.TenantConf{CheckpointTimeout: &timeout})
		if err := st.Ingest(0x10, walrec.FullPageImage{Rel: testRel, Blk: 0, Page: testPage(1)}); err != nil {
			t.Fatal(err)
		}
		_ = clock.Sleep(f.ctx, f.w.Clock(), 5*time.Second)
		if dcl := st.tl.DiskConsistentLSN(); dcl != 0x10 {
			t.Fatalf("disk_consistent_lsn %s 5s after ingest with a 2s checkpoint timeout", dcl)
		}
		path := "/v1/tenant/" + shard.UnshardedID(tenantA).String() + "/wait_lsn"
		f.w.Clock().Go(context.Background(), "late ingest", func(context.Context) {
			_ = clock.Sleep(context.Background(), f.w.Clock(), time.Second)
			_ = st.Ingest(0x20, walrec.FullPageImage{Rel: testRel, Blk: 0, Page: testPage(2)})
		})
		if err := f.do("POST", path, pageapi.WaitLSNRequest{LSNs: map[shard.TimelineID]lsn.LSN{timelineA: 0x20}, Timeout: 10 * time.Second}, nil); err != nil {
			t.Fatalf("wait_lsn: %v", err)
		}
		err := f.do("POST", path, pageapi.WaitLSNRequest{LSNs: map[shard.TimelineID]lsn.LSN{timelineA: 0x90}, Timeout: time.Second}, nil)
		if net.CodeOf(err) != net.DeadlineExceeded || !strings.Contains(err.Error(), "0/90") {
			t.Fatalf("wait_lsn beyond ingest: %v, want DeadlineExceeded", err)
		}
	})
}

// The PITR window keeps GC's cutoff at or below what was ingested that
// long ago, however small the horizon.
func TestPITRHoldsGC(t *testing.T) {
	horizon := uint64(1)
	period, pitr := "1s", "10s"
	runNode(t, Config{}, func(f *nodeFixture) {
		st := f.setup(t, &pageapi.TenantConf{GCHorizon: &horizon, GCPeriod: &period, PITRInterval: &pitr})
		for i := range 30 {
			if err := st.Ingest(lsn.LSN(0x10*(i+1)), walrec.FullPageImage{Rel: testRel, Blk: 0, Page: testPage(byte(i))}); err != nil {
				t.Fatal(err)
			}
			_ = clock.Sleep(f.ctx, f.w.Clock(), time.Second)
			// Ingested ~10s ago: LSN 0x10*(i-9). The cutoff must not pass it.
			if old := 0x10 * (i - 9); old > 0 && st.tl.GCCutoff() > lsn.LSN(old) {
				t.Fatalf("at %ds cutoff %s passed %#x, ingested 10s ago", i+1, st.tl.GCCutoff(), old)
			}
		}
		if c := st.tl.GCCutoff(); c < 0x10*15 {
			t.Fatalf("cutoff %s after 30s: GC never moved with a 10s window", c)
		}
	})
}
