package pageserver

import (
	"bytes"
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

// deleteFixture attaches tenantA with a root timeline (timelineA, three
// pages flushed) and a branch of it at 0x20, and returns their paths.
func deleteFixture(t *testing.T, f *nodeFixture) (base string, branch shard.TimelineID) {
	t.Helper()
	tsid := shard.UnshardedID(tenantA)
	base = "/v1/tenant/" + tsid.String()
	if err := f.do("PUT", base+"/location_config", attachedConf(1), nil); err != nil {
		t.Fatalf("attach: %v", err)
	}
	if err := f.do("POST", base+"/timeline", pageapi.TimelineCreateRequest{NewTimelineID: timelineA}, nil); err != nil {
		t.Fatalf("create: %v", err)
	}
	st := f.node.tenants.shards[tsid].timelines[timelineA]
	for i := range 3 {
		if err := st.Ingest(lsn.LSN(0x10*(i+1)), walrec.FullPageImage{Rel: testRel, Blk: uint32(i), Page: testPage(byte(i + 1))}); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.tl.Flush(); err != nil {
		t.Fatal(err)
	}
	branch = shard.TimelineID{0xbb}
	at := lsn.LSN(0x20)
	if err := f.do("POST", base+"/timeline", pageapi.TimelineCreateRequest{NewTimelineID: branch, AncestorTimelineID: &timelineA, AncestorStartLSN: &at}, nil); err != nil {
		t.Fatalf("branch: %v", err)
	}
	return base, branch
}

func (f *nodeFixture) timelines(t *testing.T, base string) []shard.TimelineID {
	t.Helper()
	var list []pageapi.TimelineInfo
	if err := f.do("GET", base+"/timeline", nil, &list); err != nil {
		t.Fatalf("list: %v", err)
	}
	var out []shard.TimelineID
	for _, i := range list {
		out = append(out, i.TimelineID)
	}
	return out
}

// readBlock reads block blk at at from a timeline over the page service.
func (f *nodeFixture) readBlock(tid shard.TimelineID, blk uint32, at lsn.LSN) ([]byte, error) {
	ctx := pageapi.WithTarget(f.ctx, pageapi.Target{Shard: shard.UnshardedID(tenantA), Timeline: tid}, "")
	s, err := net.StreamProto[*pageapi.GetPageRequest, *pageapi.GetPageResponse](ctx, f.page, pageapi.PageService_GetPages_FullMethodName)
	if err != nil {
		return nil, err
	}
	defer s.CloseSend()
	if err := s.Send(getPageReq(1, at, blk)); err != nil {
		return nil, err
	}
	r, err := s.Recv()
	if err != nil {
		return nil, err
	}
	if r.StatusCode != pageapi.GetPageStatusCode_GET_PAGE_STATUS_CODE_OK {
		return nil, net.Errorf(net.Internal, "%v: %s", r.StatusCode, r.Reason)
	}
	return r.Page[0].Image, nil
}

// TestTimelineDelete: a parent is refused (412) and keeps serving; a
// branch is deleted (200): it is no longer listed or served, its open page
// stream ends, none of its tasks is left, and it does not come back after
// a crash; deleting it again is 404; then the parent goes too.
func TestTimelineDelete(t *testing.T) {
	runNode(t, Config{}, func(f *nodeFixture) {
		base, branch := deleteFixture(t, f)
		if err := f.do("DELETE", base+"/timeline/"+timelineA.String(), nil, nil); net.CodeOf(err) != net.FailedPrecondition || !strings.Contains(err.Error(), "child") {
			t.Fatalf("delete of a parent: %v, want FailedPrecondition", err)
		}
		if p, err := f.readBlock(timelineA, 2, 0x30); err != nil || !bytes.Equal(p, testPage(3)) {
			t.Fatalf("the parent after a refused delete: %v", err)
		}
		// A stream open on the branch while it is deleted.
		ctx := pageapi.WithTarget(f.ctx, pageapi.Target{Shard: shard.UnshardedID(tenantA), Timeline: branch}, "")
		open, err := net.StreamProto[*pageapi.GetPageRequest, *pageapi.GetPageResponse](ctx, f.page, pageapi.PageService_GetPages_FullMethodName)
		if err != nil {
			t.Fatal(err)
		}
		if err := open.Send(getPageReq(1, 0x20, 1)); err != nil {
			t.Fatal(err)
		}
		if r, err := open.Recv(); err != nil || !bytes.Equal(r.Page[0].Image, testPage(2)) {
			t.Fatalf("branch read: %v %v", r, err)
		}
		if err := f.do("DELETE", base+"/timeline/"+branch.String(), nil, nil); err != nil {
			t.Fatalf("delete of the branch: %v", err)
		}
		if _, err := open.Recv(); err == nil {
			t.Errorf("the branch's open stream still answers after its delete")
		}
		for _, ti := range f.node.tasks.list() {
			if ti.Timeline == branch.String() {
				t.Errorf("task of the deleted timeline left: %+v", ti)
			}
		}
		if got := f.timelines(t, base); len(got) != 1 || got[0] != timelineA {
			t.Fatalf("timelines after delete: %v", got)
		}
		if _, err := f.readBlock(branch, 1, 0x20); net.CodeOf(err) != net.NotFound {
			t.Errorf("read of the deleted branch: %v, want NotFound", err)
		}
		if err := f.do("DELETE", base+"/timeline/"+branch.String(), nil, nil); net.CodeOf(err) != net.NotFound {
			t.Errorf("second delete: %v, want NotFound", err)
		}
		if err := f.do("DELETE", "/v1/tenant/"+strings.Repeat("e", 32)+"/timeline/"+branch.String(), nil, nil); net.CodeOf(err) != net.NotFound {
			t.Errorf("delete in an unknown tenant: %v, want NotFound", err)
		}
		if err := f.do("DELETE", base+"/timeline/xyz", nil, nil); net.CodeOf(err) != net.InvalidArgument {
			t.Errorf("malformed timeline id: %v, want InvalidArgument", err)
		}
		// Durable: a crash does not bring it back.
		f.w.Crash("ps", true)
		f.w.Restart("ps")
		f.waitUp(t)
		if got := f.timelines(t, base); len(got) != 1 || got[0] != timelineA {
			t.Fatalf("timelines after a crash: %v", got)
		}
		if err := f.do("DELETE", base+"/timeline/"+timelineA.String(), nil, nil); err != nil {
			t.Fatalf("delete of the childless parent: %v", err)
		}
		if got := f.timelines(t, base); len(got) != 0 {
			t.Fatalf("timelines left: %v", got)
		}
		// The id can be used again.
		if err := f.do("POST", base+"/timeline", pageapi.TimelineCreateRequest{NewTimelineID: timelineA}, nil); err != nil {
			t.Fatalf("re-create: %v", err)
		}
	})
}

// TestTimelineDeleteCrash crashes the pageserver at a different moment of
// a branch's delete in each run (every disk operation takes 1 ms; the
// delete runs as a task of the node, so it dies with it) and restarts it:
// the node comes up with the tenant served, and the branch is either whole
// (listed, its pages right) or gone — gone for sure if the delete had
// returned. Among the deletes cut short, both outcomes must occur.
func TestTimelineDeleteCrash(t *testing.T) {
	cut := map[string]int{}
	completed := 0
	for delay := time.Duration(0); delay <= 20*time.Millisecond; delay += 500 * time.Microsecond {
		runNode(t, Config{}, func(f *nodeFixture) {
			base, branch := deleteFixture(t, f)
			f.ps.SetDiskLatency(func(string) time.Duration { return time.Millisecond })
			n := f.node
			var derr error
			returned := false
			n.env.Clock.Go(context.Background(), "delete", func(ctx context.Context) {
				derr = n.tenants.deleteTimeline(ctx, shard.UnshardedID(tenantA), branch)
				returned = true
			})
			_ = clock.Sleep(f.ctx, f.w.Clock(), delay)
			f.w.Crash("ps", true)
			f.ps.SetDiskLatency(nil)
			f.w.Restart("ps")
			f.waitUp(t)
			got := f.timelines(t, base)
			outcome := ""
			switch {
			case len(got) == 2 && got[1] == branch:
				for blk := range uint32(2) {
					if p, err := f.readBlock(branch, blk, 0x20); err != nil || !bytes.Equal(p, testPage(byte(blk+1))) {
						t.Fatalf("delay %v: the branch came back but block %d reads %v", delay, blk, err)
					}
				}
				outcome = "whole"
			case len(got) == 1 && got[0] == timelineA:
				outcome = "gone"
			default:
				t.Fatalf("delay %v: timelines after the crash: %v", delay, got)
			}
			if returned {
				if derr != nil || outcome != "gone" {
					t.Fatalf("delay %v: delete returned %v, then the branch is %s", delay, derr, outcome)
				}
				completed++
			} else {
				cut[outcome]++
			}
			if p, err := f.readBlock(timelineA, 2, 0x30); err != nil || !bytes.Equal(p, testPage(3)) {
				t.Fatalf("delay %v: the parent after the crash: %v", delay, err)
			}
		})
	}
	if cut["whole"] == 0 || cut["gone"] == 0 || completed == 0 {
		t.Fatalf("deletes cut short %v, completed %d: both outcomes of a cut delete, and a completed one, must occur", cut, completed)
	}
	t.Logf("deletes cut short: %v; completed: %d", cut, completed)
}
