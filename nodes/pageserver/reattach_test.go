package pageserver

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stratadb/strata/clock"
	"github.com/stratadb/strata/disk"
	"github.com/stratadb/strata/engine/shard"
	"github.com/stratadb/strata/net"
	"github.com/stratadb/strata/nodes/node"
	"github.com/stratadb/strata/nodes/pageserver/pageapi"
	"github.com/stratadb/strata/nodes/storcon/storconapi"
	"github.com/stratadb/strata/sim"
)

const ctlAddr = "storcon:1234"

// fakeController answers re-attach from a table, records the requests and
// can fail the next calls. The simulator runs one task at a time, so its
// fields need no lock.
type fakeController struct {
	answer   []storconapi.ReAttachTenant
	failNext int      // answer this many calls with failCode
	failCode net.Code // Unavailable if unset
	calls    []storconapi.ReAttachRequest
	auth     []string
}

func (c *fakeController) register(rt *net.Router) {
	net.HandleJSON(rt, storconapi.RouteReAttach, 200, func(_ context.Context, r *net.HTTPRequest, req storconapi.ReAttachRequest) (storconapi.ReAttachResponse, error) {
		c.calls = append(c.calls, req)
		c.auth = append(c.auth, r.Authorization)
		if c.failNext > 0 {
			c.failNext--
			code := c.failCode
			if code == net.OK {
				code = net.Unavailable
			}
			return storconapi.ReAttachResponse{}, net.Errorf(code, "fake controller: failing on purpose")
		}
		return storconapi.ReAttachResponse{Tenants: c.answer}, nil
	})
}

// reAttachFixture is a pageserver, a fake controller and a client in one
// world; useCtl decides whether the pageserver's next start is given the
// controller.
type reAttachFixture struct {
	*nodeFixture
	t      *testing.T
	ctl    *fakeController
	useCtl bool
	// wrapFS, if set, wraps the pageserver's disk at each start.
	wrapFS func(disk.FS) disk.FS
}

func runReAttach(t *testing.T, cfg Config, useCtl bool, body func(f *reAttachFixture)) {
	t.Helper()
	cfg.NodeID, cfg.PageAddr, cfg.HTTPAddr, cfg.AvailabilityZone = 7, "ps:6400", "ps:9898", "az-1"
	w := sim.New(sim.Options{Seed: 1})
	err := w.Run(func(w *sim.World) error {
		f := &reAttachFixture{nodeFixture: &nodeFixture{w: w}, t: t, ctl: &fakeController{}, useCtl: useCtl}
		w.AddNode("storcon", func(env node.Env) error {
			rt := net.NewRouter()
			f.ctl.register(rt)
			m := net.NewMux()
			rt.Register(m)
			_, err := env.Net.Listen(ctlAddr, m)
			return err
		})
		f.ps = w.AddNode("ps", func(env node.Env) error {
			c := cfg
			if f.wrapFS != nil {
				env.Disk = f.wrapFS(env.Disk)
			}
			if f.useCtl {
				c.ControlPlane, c.ControlPlaneToken = net.DialHTTP{Net: env.Net, Addr: ctlAddr}, "tok"
			}
			n, err := Start(env, c)
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
		f.http = net.SeamHTTP{Conn: hc}
		ctx, cancel := clock.WithTimeout(w.Clock(), context.Background(), time.Hour)
		defer cancel()
		f.ctx = ctx
		body(f)
		return nil
	})
	if err != nil {
		t.Fatalf("simulation: %v", err)
	}
}

// restart stops the pageserver cleanly and starts it again, with or
// without the controller.
func (f *reAttachFixture) restart(useCtl bool) {
	f.w.Stop("ps")
	f.useCtl = useCtl
	f.w.Restart("ps")
}

// locations is GET /v1/location_config as a map by shard id.
func (f *reAttachFixture) locations() map[string]*pageapi.LocationConfig {
	f.t.Helper()
	var list pageapi.LocationConfigList
	if err := f.do("GET", "/v1/location_config", nil, &list); err != nil {
		f.t.Fatalf("location list: %v", err)
	}
	out := map[string]*pageapi.LocationConfig{}
	for _, l := range list.TenantShards {
		out[l.ID] = l.Config
	}
	return out
}

// fileLocation reads a shard's location file straight from the disk.
func (f *reAttachFixture) fileLocation(id shard.TenantShardID) (pageapi.LocationConfig, error) {
	var conf pageapi.LocationConfig
	b, err := disk.ReadFile(f.ps.Disk().View(), tenantsDir+"/"+id.String()+"/"+locationFile)
	if err != nil {
		return conf, err
	}
	return conf, json.Unmarshal(b, &conf)
}

func (f *reAttachFixture) attach(id shard.TenantShardID, conf pageapi.LocationConfig, timelines ...shard.TimelineID) {
	f.t.Helper()
	base := "/v1/tenant/" + id.String()
	if err := f.do("PUT", base+"/location_config", conf, nil); err != nil {
		f.t.Fatalf("location_config %s: %v", id, err)
	}
	for _, tl := range timelines {
		if err := f.do("POST", base+"/timeline", pageapi.TimelineCreateRequest{NewTimelineID: tl}, nil); err != nil {
			f.t.Fatalf("create timeline %s/%s: %v", id, tl, err)
		}
	}
}

func (f *reAttachFixture) timelines(id shard.TenantShardID) ([]pageapi.TimelineInfo, error) {
	var list []pageapi.TimelineInfo
	err := f.do("GET", "/v1/tenant/"+id.String()+"/timeline", nil, &list)
	return list, err
}

var (
	tenantB, _ = shard.ParseTenantID("0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b")
	tenantC, _ = shard.ParseTenantID("0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c")
	tenantD, _ = shard.ParseTenantID("0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d")
)

// Without a controller the local location files are authoritative across
// restarts; with one, the re-attach answer decides: listed shards take the
// answered mode and generation (persisted), a listed shard with no local
// state is created, and a local shard not listed is removed with its data.
func TestReAttachAppliesTheAnswer(t *testing.T) {
	a, b, c := shard.UnshardedID(tenantA), shard.UnshardedID(tenantB), shard.UnshardedID(tenantC)
	d := shard.TenantShardID{TenantID: tenantD, Shard: shard.ShardIndex{Number: 1, Count: 2}}
	runReAttach(t, Config{}, false, func(f *reAttachFixture) {
		f.waitUp(t)
		tc := attachedConf(1)
		tc.TenantConf = &pageapi.TenantConf{CompactionThreshold: new(int)}
		*tc.TenantConf.CompactionThreshold = 7
		f.attach(a, tc, timelineA)
		f.attach(b, attachedConf(1), timelineA)
		f.attach(c, attachedConf(1))

		// (a) No controller: everything comes back as it was; nothing asked.
		f.restart(false)
		f.waitUp(t)
		locs := f.locations()
		for _, id := range []shard.TenantShardID{a, b, c} {
			if l := locs[id.String()]; l == nil || l.Mode != pageapi.ModeAttachedSingle || *l.Generation != 1 {
				t.Fatalf("without a controller, %s came back as %+v", id, l)
			}
		}
		if len(f.ctl.calls) != 0 {
			t.Fatalf("re-attach called %d times without a controller", len(f.ctl.calls))
		}

		// (b) With the controller: a attached at 5, c secondary, d (not
		// here) attached at 3; b not listed.
		f.ctl.answer = []storconapi.ReAttachTenant{
			{ID: a, Gen: gen(5), Mode: pageapi.ModeAttachedSingle, StripeSize: shard.DefaultStripeSize},
			{ID: c, Mode: pageapi.ModeSecondary, StripeSize: shard.DefaultStripeSize},
			{ID: d, Gen: gen(3), Mode: pageapi.ModeAttachedSingle, StripeSize: 8},
		}
		f.restart(true)
		f.waitUp(t)
		if len(f.ctl.calls) != 1 {
			t.Fatalf("re-attach calls %d, want 1", len(f.ctl.calls))
		}
		req := f.ctl.calls[0]
		reg := req.Register
		if req.NodeID != 7 || req.EmptyLocalDisk || reg == nil || reg.NodeID != 7 || reg.HTTPHostPort() != "ps:9898" ||
			reg.ListenGRPCAddr != "ps" || reg.ListenGRPCPort != 6400 || reg.AvailabilityZoneID != "az-1" {
			t.Errorf("re-attach request %+v register %+v", req, reg)
		}
		if f.ctl.auth[0] != "Bearer tok" {
			t.Errorf("authorization %q, want the token as Bearer", f.ctl.auth[0])
		}
		locs = f.locations()
		if len(locs) != 3 {
			t.Errorf("locations %v, want a, c and d", locs)
		}
		if l := locs[a.String()]; l == nil || l.Mode != pageapi.ModeAttachedSingle || *l.Generation != 5 ||
			l.TenantConf == nil || l.TenantConf.CompactionThreshold == nil || *l.TenantConf.CompactionThreshold != 7 {
			t.Errorf("a: %+v, want AttachedSingle at generation 5 keeping its tenant_conf", l)
		}
		if l := locs[c.String()]; l == nil || l.Mode != pageapi.ModeSecondary || l.Generation != nil {
			t.Errorf("c: %+v, want Secondary without a generation", l)
		}
		if l := locs[d.String()]; l == nil || l.Mode != pageapi.ModeAttachedSingle || *l.Generation != 3 ||
			l.ShardNumber != 1 || l.ShardCount != 2 || l.ShardStripeSize != 8 {
			t.Errorf("d: %+v, want created AttachedSingle at 3 as shard 1 of 2, stripe 8", l)
		}
		if _, ok := locs[b.String()]; ok {
			t.Errorf("b is still here though the controller did not list it")
		}
		if _, err := f.ps.Disk().View().Stat(tenantsDir + "/" + b.String()); err == nil {
			t.Errorf("b's local data still on disk")
		}
		if list, err := f.timelines(a); err != nil || len(list) != 1 || list[0].TimelineID != timelineA {
			t.Errorf("a's timelines after re-attach: %+v %v", list, err)
		}
		if list, err := f.timelines(d); err != nil || len(list) != 0 {
			t.Errorf("d's timelines: %+v %v, want served and empty", list, err)
		}
		if _, err := f.timelines(c); net.CodeOf(err) != net.FailedPrecondition {
			t.Errorf("c's timelines: %v, want not served (secondary)", err)
		}
		// Persisted: a restart without the controller finds the answer.
		if conf, err := f.fileLocation(a); err != nil || conf.Generation == nil || *conf.Generation != 5 {
			t.Errorf("a's location file: %+v %v, want generation 5", conf, err)
		}
		f.restart(false)
		f.waitUp(t)
		locs = f.locations()
		if l := locs[a.String()]; len(locs) != 3 || l == nil || *l.Generation != 5 || locs[d.String()] == nil {
			t.Errorf("after a restart without the controller: %v", locs)
		}
	})
}

// waitStarted waits (virtual time) until the pageserver answers or its
// start failed, and returns the start error.
func (f *reAttachFixture) waitStarted(budget time.Duration) error {
	for waited := time.Duration(0); waited < budget; waited += 100 * time.Millisecond {
		if _, err := f.http.Do(f.ctx, &net.HTTPRequest{Method: "GET", Path: "/v1/utilization"}, nil, nil); err == nil {
			return nil
		}
		if err := f.ps.StartErr(); err != nil {
			return err
		}
		f.w.Sleep(100 * time.Millisecond)
	}
	return errors.New("neither up nor failed")
}

// A re-attach that fails is retried with back-off: failures within
// ReAttachRetries still start the node; beyond them Start fails naming the
// controller, having changed nothing on disk; an error no retry can change
// (401) fails at once.
func TestReAttachRetries(t *testing.T) {
	a := shard.UnshardedID(tenantA)
	cfg := Config{ReAttachRetries: 4, ReAttachBackoff: 100 * time.Millisecond, ReAttachBackoffMax: 400 * time.Millisecond}
	t.Run("fresh node retries then starts", func(t *testing.T) {
		runReAttach(t, cfg, true, func(f *reAttachFixture) {
			f.ctl.failNext = 4
			f.ctl.answer = []storconapi.ReAttachTenant{{ID: a, Gen: gen(2), Mode: pageapi.ModeAttachedSingle}}
			if err := f.waitStarted(time.Minute); err != nil {
				t.Fatalf("start after 4 failures: %v", err)
			}
			if len(f.ctl.calls) != 5 || !f.ctl.calls[0].EmptyLocalDisk {
				t.Errorf("calls %d (first %+v), want 5 saying the disk is empty", len(f.ctl.calls), f.ctl.calls[0])
			}
			if l := f.locations()[a.String()]; l == nil || *l.Generation != 2 {
				t.Errorf("a: %+v, want created at generation 2", l)
			}
		})
	})
	t.Run("beyond the limit start fails", func(t *testing.T) {
		runReAttach(t, cfg, false, func(f *reAttachFixture) {
			f.waitUp(t)
			f.attach(a, attachedConf(1), timelineA)
			f.ctl.failNext = 1 << 20
			f.restart(true)
			err := f.waitStarted(time.Minute)
			if !errors.Is(err, ErrReAttach) || !strings.Contains(err.Error(), "5 attempts") || !strings.Contains(err.Error(), ctlAddr) {
				t.Fatalf("start: %v, want ErrReAttach after 5 attempts naming the controller", err)
			}
			if len(f.ctl.calls) != 5 {
				t.Errorf("calls %d, want 5", len(f.ctl.calls))
			}
			// The answer was never applied: the file still says generation 1.
			if conf, err := f.fileLocation(a); err != nil || *conf.Generation != 1 {
				t.Errorf("a's location file: %+v %v, want untouched", conf, err)
			}
		})
	})
	t.Run("unauthenticated is not retried", func(t *testing.T) {
		runReAttach(t, cfg, true, func(f *reAttachFixture) {
			f.ctl.failNext, f.ctl.failCode = 1<<20, net.Unauthenticated
			err := f.waitStarted(time.Minute)
			if !errors.Is(err, ErrReAttach) || !strings.Contains(err.Error(), "not retried") || len(f.ctl.calls) != 1 {
				t.Fatalf("start: %v after %d calls, want ErrReAttach at once", err, len(f.ctl.calls))
			}
		})
	})
}

// A local generation above the answered one is a controller bug: that
// shard is refused (broken, its file untouched), the others attach.
func TestReAttachRefusesGenerationGoingBackwards(t *testing.T) {
	a, b := shard.UnshardedID(tenantA), shard.UnshardedID(tenantB)
	runReAttach(t, Config{}, false, func(f *reAttachFixture) {
		f.waitUp(t)
		f.attach(a, attachedConf(7), timelineA)
		f.attach(b, attachedConf(1), timelineA)
		f.ctl.answer = []storconapi.ReAttachTenant{
			{ID: a, Gen: gen(3), Mode: pageapi.ModeAttachedSingle},
			{ID: b, Gen: gen(2), Mode: pageapi.ModeAttachedSingle},
		}
		f.restart(true)
		f.waitUp(t)
		_, err := f.timelines(a)
		if net.CodeOf(err) != net.FailedPrecondition || !strings.Contains(err.Error(), "broken") ||
			!strings.Contains(err.Error(), "generation 7, the controller answered 3") {
			t.Errorf("a: %v, want broken naming both generations", err)
		}
		if conf, err := f.fileLocation(a); err != nil || *conf.Generation != 7 {
			t.Errorf("a's location file: %+v %v, want generation 7 kept", conf, err)
		}
		locs := f.locations()
		if l, ok := locs[a.String()]; !ok || l != nil {
			t.Errorf("a listed as %+v (present %v), want listed as broken", l, ok)
		}
		if l := locs[b.String()]; l == nil || *l.Generation != 2 {
			t.Errorf("b: %+v, want generation 2", l)
		}
		if list, err := f.timelines(b); err != nil || len(list) != 1 {
			t.Errorf("b's timelines: %+v %v", list, err)
		}
	})
}

func TestReAttachConfigValidation(t *testing.T) {
	ctl := net.DialHTTP{Addr: ctlAddr}
	for _, tc := range []struct {
		name string
		cfg  Config
		msg  string
	}{
		{"negative retries", Config{ReAttachRetries: -1}, "ReAttachRetries"},
		{"negative backoff", Config{ReAttachBackoff: -time.Second}, "ReAttachBackoff"},
		{"max below backoff", Config{ReAttachBackoff: time.Minute, ReAttachBackoffMax: time.Second}, "ReAttachBackoffMax"},
		{"negative timeout", Config{ReAttachTimeout: -time.Second}, "ReAttachTimeout"},
		{"no http address", Config{ControlPlane: ctl}, "AdvertiseHTTPAddr"},
		{"wildcard http address", Config{ControlPlane: ctl, HTTPAddr: "0.0.0.0:9898"}, "AdvertiseHTTPAddr"},
		{"wildcard page address", Config{ControlPlane: ctl, HTTPAddr: "ps:9898", PageAddr: ":6400"}, "AdvertisePageAddr"},
	} {
		c := tc.cfg
		c.NodeID = 1
		if c.PageAddr == "" {
			c.PageAddr = "ps:6400"
		}
		if err := c.Validate(); !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("%s: %v, want ErrConfig naming %s", tc.name, err, tc.msg)
		}
	}
	ok := Config{NodeID: 1, PageAddr: "0.0.0.0:6400", ControlPlane: ctl, AdvertiseHTTPAddr: "ps:9898", AdvertisePageAddr: "ps:6400"}
	if err := ok.Validate(); err != nil {
		t.Errorf("advertised addresses: %v", err)
	}
	if err := (Config{NodeID: 1, PageAddr: ":6400"}).Validate(); err != nil {
		t.Errorf("without a controller addresses need not be concrete: %v", err)
	}
}

// A transient disk error while applying the answer at start-up leaves the
// shard broken only until the background retry applies the answer — the
// new generation, never the local file's old one.
func TestReAttachTransientDiskErrorRetriesTheAnswer(t *testing.T) {
	a := shard.UnshardedID(tenantA)
	runReAttach(t, Config{}, false, func(f *reAttachFixture) {
		var failures atomic.Int64
		f.wrapFS = func(fs disk.FS) disk.FS {
			return flakyFS{FS: fs, failures: &failures, match: func(name string) bool { return name == tenantsDir+"/"+a.String() }}
		}
		f.waitUp(t)
		f.attach(a, attachedConf(1), timelineA)
		f.ctl.answer = []storconapi.ReAttachTenant{{ID: a, Gen: gen(4), Mode: pageapi.ModeAttachedSingle}}
		failures.Store(2)
		f.restart(true)
		f.waitUp(t)
		if _, err := f.timelines(a); net.CodeOf(err) != net.FailedPrecondition {
			t.Fatalf("right after the failed read: %v, want broken", err)
		}
		f.w.Sleep(time.Minute)
		if list, err := f.timelines(a); err != nil || len(list) != 1 {
			t.Fatalf("after retries: %+v %v, want served", list, err)
		}
		if l := f.locations()[a.String()]; l == nil || *l.Generation != 4 {
			t.Errorf("a: %+v, want the answered generation 4", l)
		}
		if conf, err := f.fileLocation(a); err != nil || *conf.Generation != 4 {
			t.Errorf("a's location file: %+v %v, want generation 4", conf, err)
		}
	})
}
