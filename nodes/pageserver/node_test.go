package pageserver

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/stratadb/strata/clock"
	"github.com/stratadb/strata/engine/lsn"
	"github.com/stratadb/strata/engine/shard"
	"github.com/stratadb/strata/engine/walrec"
	"github.com/stratadb/strata/net"
	"github.com/stratadb/strata/nodes/node"
	"github.com/stratadb/strata/nodes/pageserver/pageapi"
	"github.com/stratadb/strata/sim"
)

// nodeFixture runs a pageserver node in a simulated world and a client
// node with a management client and a page-service connection.
type nodeFixture struct {
	w    *sim.World
	ps   *sim.Node
	node *Node // current incarnation's
	http net.HTTPClient
	page net.Conn
	ctx  context.Context
}

// runNode runs body against a pageserver without remote storage (the
// world's object store is not given to it): what these tests check is the
// node on its local disk. runRemoteNode gives it the store.
func runNode(t *testing.T, cfg Config, body func(f *nodeFixture)) {
	t.Helper()
	runNodeWith(t, cfg, false, body)
}

func runNodeWith(t *testing.T, cfg Config, withStore bool, body func(f *nodeFixture)) {
	t.Helper()
	cfg.NodeID, cfg.PageAddr, cfg.HTTPAddr = 7, "ps:6400", "ps:9898"
	w := sim.New(sim.Options{Seed: 1})
	err := w.Run(func(w *sim.World) error {
		f := &nodeFixture{w: w}
		f.ps = w.AddNode("ps", func(env node.Env) error {
			if !withStore {
				env.Store = nil
			}
			n, err := Start(env, cfg)
			if err == nil {
				f.node = n
			}
			return err
		})
		cli := w.AddNode("cli", func(node.Env) error { return nil })
		hc, err := cli.Env().Net.Dial(context.Background(), cfg.HTTPAddr)
		if err != nil {
			return err
		}
		pc, err := cli.Env().Net.Dial(context.Background(), cfg.PageAddr)
		if err != nil {
			return err
		}
		f.http, f.page = net.SeamHTTP{Conn: hc}, pc
		ctx, cancel := clock.WithTimeout(w.Clock(), context.Background(), time.Hour)
		defer cancel()
		f.ctx = ctx
		f.waitUp(t)
		body(f)
		return nil
	})
	if err != nil {
		t.Fatalf("simulation: %v", err)
	}
}

// waitUp waits until the management API answers.
func (f *nodeFixture) waitUp(t *testing.T) {
	t.Helper()
	for i := 0; ; i++ {
		if _, err := f.http.Do(f.ctx, &net.HTTPRequest{Method: "GET", Path: "/v1/utilization"}, nil, nil); err == nil {
			return
		} else if i == 100 {
			t.Fatalf("pageserver did not come up: %v (start: %v)", err, f.ps.StartErr())
		}
		_ = clock.Sleep(f.ctx, f.w.Clock(), 10*time.Millisecond)
	}
}

func (f *nodeFixture) do(method, path string, in, out any) error {
	_, err := f.http.Do(f.ctx, &net.HTTPRequest{Method: method, Path: path}, in, out)
	return err
}

func gen(g uint32) *uint32 { return &g }

func attachedConf(g uint32) pageapi.LocationConfig {
	return pageapi.LocationConfig{Mode: pageapi.ModeAttachedSingle, Generation: gen(g), TenantConf: &pageapi.TenantConf{}}
}

func TestLocationConfigAndTimelines(t *testing.T) {
	runNode(t, Config{}, func(f *nodeFixture) {
		tsid := shard.UnshardedID(tenantA).String()
		base := "/v1/tenant/" + tsid
		var resp pageapi.LocationConfigResponse
		if err := f.do("PUT", base+"/location_config", attachedConf(1), &resp); err != nil {
			t.Fatalf("attach: %v", err)
		}
		if len(resp.Shards) != 1 || resp.Shards[0].ShardID != tsid || resp.Shards[0].NodeID != 7 || resp.StripeSize != nil {
			t.Errorf("attach answer %+v", resp)
		}
		var info pageapi.TimelineInfo
		if err := f.do("POST", base+"/timeline", pageapi.TimelineCreateRequest{NewTimelineID: timelineA}, &info); err != nil {
			t.Fatalf("create timeline: %v", err)
		}
		if info.TimelineID != timelineA || info.AncestorTimelineID != nil {
			t.Errorf("create answer %+v", info)
		}
		if err := f.do("POST", base+"/timeline", pageapi.TimelineCreateRequest{NewTimelineID: timelineA}, nil); net.CodeOf(err) != net.AlreadyExists {
			t.Errorf("second create: %v, want AlreadyExists", err)
		}
		// Ingest a little (the WAL receiver's job, done here directly).
		st := f.node.tenants.shards[shard.UnshardedID(tenantA)].timelines[timelineA]
		for i := range 3 {
			if err := st.Ingest(lsn.LSN(0x10*(i+1)), walrec.FullPageImage{Rel: testRel, Blk: 0, Page: testPage(byte(i))}); err != nil {
				t.Fatal(err)
			}
		}
		branch := shard.TimelineID{0xbb}
		at := lsn.LSN(0x20)
		if err := f.do("POST", base+"/timeline", pageapi.TimelineCreateRequest{NewTimelineID: branch, AncestorTimelineID: &timelineA, AncestorStartLSN: &at}, &info); err != nil {
			t.Fatalf("branch: %v", err)
		}
		future := lsn.LSN(0x99)
		if err := f.do("POST", base+"/timeline", pageapi.TimelineCreateRequest{NewTimelineID: shard.TimelineID{0xcc}, AncestorTimelineID: &timelineA, AncestorStartLSN: &future}, nil); net.CodeOf(err) != net.InvalidArgument {
			t.Errorf("branch above the last record: %v, want InvalidArgument", err)
		}
		var list []pageapi.TimelineInfo
		if err := f.do("GET", base+"/timeline", nil, &list); err != nil {
			t.Fatal(err)
		}
		if len(list) != 2 || list[0].TimelineID != timelineA || list[0].LastRecordLSN != 0x30 || list[1].TimelineID != branch || *list[1].AncestorLSN != at {
			t.Fatalf("list: %+v", list)
		}
		// The branch serves the parent's page as of the branch point.
		ctx := pageapi.WithTarget(f.ctx, pageapi.Target{Shard: shard.UnshardedID(tenantA), Timeline: branch}, "")
		s, err := net.StreamProto[*pageapi.GetPageRequest, *pageapi.GetPageResponse](ctx, f.page, pageapi.PageService_GetPages_FullMethodName)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Send(getPageReq(1, 0x20, 0)); err != nil {
			t.Fatal(err)
		}
		if r, err := s.Recv(); err != nil || r.StatusCode != pageapi.GetPageStatusCode_GET_PAGE_STATUS_CODE_OK || r.Page[0].Image[0] != 1 {
			t.Fatalf("branch read: %v %v", r, err)
		}

		// Everything survives a crash: the location, both timelines.
		if err := f.node.tenants.shards[shard.UnshardedID(tenantA)].timelines[timelineA].tl.Flush(); err != nil {
			t.Fatal(err)
		}
		f.w.Crash("ps", false)
		f.w.Restart("ps")
		f.waitUp(t)
		var locs pageapi.LocationConfigList
		if err := f.do("GET", "/v1/location_config", nil, &locs); err != nil {
			t.Fatal(err)
		}
		if len(locs.TenantShards) != 1 || locs.TenantShards[0].ID != tsid || locs.TenantShards[0].Config == nil || *locs.TenantShards[0].Config.Generation != 1 {
			t.Fatalf("locations after restart: %+v", locs)
		}
		if err := f.do("GET", base+"/timeline", nil, &list); err != nil || len(list) != 2 || list[0].LastRecordLSN != 0x30 {
			t.Fatalf("timelines after restart: %+v %v", list, err)
		}

		// A generation never goes backwards; a newer one is taken.
		if err := f.do("PUT", base+"/location_config", attachedConf(0), nil); net.CodeOf(err) != net.AlreadyExists {
			t.Errorf("older generation: %v, want a 409", err)
		}
		if err := f.do("PUT", base+"/location_config", attachedConf(3), nil); err != nil {
			t.Errorf("newer generation: %v", err)
		}
		// Secondary does not serve pages.
		if err := f.do("PUT", base+"/location_config", pageapi.LocationConfig{Mode: pageapi.ModeSecondary, SecondaryConf: &pageapi.SecondaryConf{Warm: true}, TenantConf: &pageapi.TenantConf{}}, nil); err != nil {
			t.Fatalf("to secondary: %v", err)
		}
		s, _ = net.StreamProto[*pageapi.GetPageRequest, *pageapi.GetPageResponse](ctx, f.page, pageapi.PageService_GetPages_FullMethodName)
		_ = s.Send(getPageReq(1, 0x20, 0))
		if _, err := s.Recv(); net.CodeOf(err) != net.NotFound {
			t.Errorf("read from a secondary: %v, want NotFound", err)
		}
		// Detach removes local data; detaching again is a no-op.
		for range 2 {
			if err := f.do("PUT", base+"/location_config", pageapi.LocationConfig{Mode: pageapi.ModeDetached}, nil); err != nil {
				t.Fatalf("detach: %v", err)
			}
		}
		if _, err := f.ps.Env().Disk.Stat("tenants/" + tsid); err == nil {
			t.Errorf("tenant directory still there after detach")
		}
		if err := f.do("GET", base+"/timeline", nil, nil); net.CodeOf(err) != net.NotFound {
			t.Errorf("timelines of a detached tenant: %v, want NotFound", err)
		}
	})
}

func TestLocationConfigRefusals(t *testing.T) {
	runNode(t, Config{MaxTenantShards: 1}, func(f *nodeFixture) {
		tsid := shard.UnshardedID(tenantA).String()
		path := "/v1/tenant/" + tsid + "/location_config"
		raw := func(s string) json.RawMessage { return json.RawMessage(s) }
		cases := []struct {
			name string
			path string
			body any
			want net.Code
			msg  string
		}{
			{"attached without generation", path, raw(`{"mode":"AttachedSingle","generation":null,"secondary_conf":null,"shard_number":0,"shard_count":0,"shard_stripe_size":0,"tenant_conf":{}}`), net.InvalidArgument, "needs a generation"},
			{"secondary with generation", path, raw(`{"mode":"Secondary","generation":4,"secondary_conf":{"warm":true},"shard_number":0,"shard_count":0,"shard_stripe_size":0,"tenant_conf":{}}`), net.InvalidArgument, "no generation"},
			{"null tenant_conf", path, raw(`{"mode":"AttachedSingle","generation":1,"secondary_conf":null,"shard_number":0,"shard_count":0,"shard_stripe_size":0,"tenant_conf":null}`), net.InvalidArgument, "tenant_conf"},
			{"unknown field", path, raw(`{"mode":"AttachedSingle","generation":1,"tenant_conf":{},"colour":"red"}`), net.InvalidArgument, "unknown field"},
			{"bad mode", path, raw(`{"mode":"Attached","generation":1,"tenant_conf":{}}`), net.InvalidArgument, "mode"},
			{"shard mismatch", "/v1/tenant/" + tenantA.String() + "-0102/location_config", raw(`{"mode":"AttachedSingle","generation":1,"shard_number":0,"shard_count":2,"shard_stripe_size":8,"tenant_conf":{}}`), net.InvalidArgument, "in the path"},
			{"bad tenant id", "/v1/tenant/xyz/location_config", attachedConf(1), net.InvalidArgument, "tenant"},
			{"bad duration", path, raw(`{"mode":"AttachedSingle","generation":1,"tenant_conf":{"gc_period":"often"}}`), net.InvalidArgument, "gc_period"},
		}
		for _, tc := range cases {
			if err := f.do("PUT", tc.path, tc.body, nil); net.CodeOf(err) != tc.want || !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("%s: %v, want %v naming %q", tc.name, err, tc.want, tc.msg)
			}
		}
		if err := f.do("PUT", path, attachedConf(1), nil); err != nil {
			t.Fatal(err)
		}
		other := "/v1/tenant/" + strings.Repeat("e", 32) + "/location_config"
		if err := f.do("PUT", other, attachedConf(1), nil); net.CodeOf(err) != net.ResourceExhausted {
			t.Errorf("over MaxTenantShards: %v, want ResourceExhausted", err)
		}
		if err := f.do("POST", "/v1/tenant/"+strings.Repeat("e", 32)+"/timeline", pageapi.TimelineCreateRequest{NewTimelineID: timelineA}, nil); net.CodeOf(err) != net.NotFound {
			t.Errorf("timeline of an unknown tenant: %v, want NotFound", err)
		}
	})
}

// A shard whose location file is damaged is listed as broken and never
// served; the node still starts.
func TestBrokenTenantNotServed(t *testing.T) {
	runNode(t, Config{}, func(f *nodeFixture) {
		tsid := shard.UnshardedID(tenantA).String()
		if err := f.do("PUT", "/v1/tenant/"+tsid+"/location_config", attachedConf(1), nil); err != nil {
			t.Fatal(err)
		}
		if err := f.do("POST", "/v1/tenant/"+tsid+"/timeline", pageapi.TimelineCreateRequest{NewTimelineID: timelineA}, nil); err != nil {
			t.Fatal(err)
		}
		f.w.Stop("ps")
		fs := f.ps.Disk().View()
		file, err := fs.OpenRW("tenants/" + tsid + "/" + locationFile)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := file.WriteAt([]byte("{{{"), 0); err != nil {
			t.Fatal(err)
		}
		if err := file.Sync(); err != nil {
			t.Fatal(err)
		}
		file.Close()
		f.w.Restart("ps")
		f.waitUp(t)
		var locs pageapi.LocationConfigList
		if err := f.do("GET", "/v1/location_config", nil, &locs); err != nil || len(locs.TenantShards) != 1 || locs.TenantShards[0].Config != nil {
			t.Fatalf("locations: %+v %v", locs, err)
		}
		if err := f.do("GET", "/v1/tenant/"+tsid+"/timeline", nil, nil); net.CodeOf(err) != net.FailedPrecondition || !strings.Contains(err.Error(), "broken") {
			t.Errorf("timelines of a broken tenant: %v", err)
		}
		ctx := pageapi.WithTarget(f.ctx, pageapi.Target{Shard: shard.UnshardedID(tenantA), Timeline: timelineA}, "")
		s, _ := net.StreamProto[*pageapi.GetPageRequest, *pageapi.GetPageResponse](ctx, f.page, pageapi.PageService_GetPages_FullMethodName)
		_ = s.Send(getPageReq(1, 0x20, 0))
		if _, err := s.Recv(); err == nil || !strings.Contains(err.Error(), "broken") {
			t.Errorf("read from a broken tenant: %v", err)
		}
		// A fresh location config repairs it.
		if err := f.do("PUT", "/v1/tenant/"+tsid+"/location_config", attachedConf(2), nil); err != nil {
			t.Errorf("re-attach a broken tenant: %v", err)
		}
	})
}
