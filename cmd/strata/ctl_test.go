package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stratadb/strata/disk"
	"github.com/stratadb/strata/engine/placement"
	"github.com/stratadb/strata/engine/shard"
	"github.com/stratadb/strata/net"
	"github.com/stratadb/strata/net/httpx"
	"github.com/stratadb/strata/nodes/pageserver/pageapi"
	"github.com/stratadb/strata/nodes/storcon"
	"github.com/stratadb/strata/nodes/storcon/storconapi"
)

// fakeController serves canned answers on the controller's routes and
// records every request it got (method, path, body, token).
type fakeController struct {
	mu   sync.Mutex
	reqs []net.HTTPRequest
	// token, if set, is required.
	token string
}

var ctlTenant = shard.TenantID{0x0a, 0x0b, 0x0c}

func u64(v uint64) *uint64 { return &v }
func u32(v uint32) *uint32 { return &v }

func (fc *fakeController) router() *net.Router {
	rt := net.NewRouter()
	record := func(pattern string, fn func(r *net.HTTPRequest) (any, error)) {
		rt.Handle(pattern, func(_ context.Context, r *net.HTTPRequest) (*net.HTTPResponse, error) {
			fc.mu.Lock()
			fc.reqs = append(fc.reqs, *r)
			fc.mu.Unlock()
			if fc.token != "" && r.Authorization != "Bearer "+fc.token {
				return nil, net.Errorf(net.Unauthenticated, "missing or bad token")
			}
			out, err := fn(r)
			if err != nil {
				return nil, err
			}
			b, _ := json.Marshal(out)
			return &net.HTTPResponse{Status: 200, Body: b}, nil
		})
	}
	empty := func(*net.HTTPRequest) (any, error) { return struct{}{}, nil }
	record(storconapi.RouteNodeList, func(*net.HTTPRequest) (any, error) {
		return []storconapi.NodeDescribe{
			{ID: 1, Availability: placement.Active, Scheduling: placement.NodeActive, AvailabilityZoneID: "az-1",
				ListenHTTPAddr: "ps-1", ListenHTTPPort: 9898, ListenPGAddr: "ps-1", ListenPGPort: 6400, ListenGRPCAddr: "ps-1", ListenGRPCPort: 6401,
				UtilizationScore: 250_000, Shards: 3, AttachedShards: 2},
			{ID: 2, Availability: placement.Offline, Scheduling: placement.NodeDraining, ListenHTTPAddr: "ps-2", ListenHTTPPort: 9898},
		}, nil
	})
	for _, p := range []string{storconapi.RouteNodeRegister, storconapi.RouteNodeDrain, storconapi.RouteNodeDrainStop,
		storconapi.RouteNodeFill, storconapi.RouteNodeFillStop, storconapi.RouteNodeConfig, storconapi.RouteNodeDelete,
		storconapi.RouteNodeDrop, storconapi.RouteTenantPolicy, storconapi.RouteShardMigrate, storconapi.RouteTenantDelete,
		storconapi.RouteTenantDrop} {
		record(p, empty)
	}
	record(storconapi.RouteTenantCreate, func(r *net.HTTPRequest) (any, error) {
		var req storconapi.TenantCreateRequest
		if err := json.Unmarshal(r.Body, &req); err != nil {
			return nil, net.Errorf(net.InvalidArgument, "%v", err)
		}
		if req.NewTenantID == (shard.TenantID{0xee}) {
			return nil, net.Errorf(net.AlreadyExists, "tenant %s exists", req.NewTenantID)
		}
		return storconapi.TenantCreateResponse{Shards: []pageapi.ShardLocation{{ShardID: req.NewTenantID.String() + "-0002", NodeID: 1},
			{ShardID: req.NewTenantID.String() + "-0102", NodeID: 2}}}, nil
	})
	describe := storconapi.TenantDescribe{TenantID: ctlTenant, ShardCount: 2, StripeSize: 2048, Shards: []storconapi.ShardDescribe{
		{TenantShardID: shard.TenantShardID{TenantID: ctlTenant, Shard: shard.ShardIndex{Number: 0, Count: 2}}, Policy: placement.Attached(1),
			NodeAttached: u64(1), NodeSecondary: []uint64{2}, Generation: u32(7), GenerationNode: 1, Sequence: 4,
			Observed: []storconapi.ObservedLocation{{NodeID: 1, Conf: &placement.LocationConf{Mode: placement.ModeAttachedSingle, Generation: placement.Gen(7)}},
				{NodeID: 2, Conf: nil}}},
		{TenantShardID: shard.TenantShardID{TenantID: ctlTenant, Shard: shard.ShardIndex{Number: 1, Count: 2}}, Policy: placement.Attached(1),
			NodeAttached: u64(2), Generation: u32(3), GenerationNode: 2, IsDirty: true, PendingComputeNotification: true},
	}}
	record(storconapi.RouteTenantList, func(*net.HTTPRequest) (any, error) { return []storconapi.TenantDescribe{describe}, nil })
	record(storconapi.RouteTenantDescribe, func(r *net.HTTPRequest) (any, error) {
		if r.Param("tenant_id") != ctlTenant.String() {
			return nil, net.Errorf(net.NotFound, "tenant %s not found", r.Param("tenant_id"))
		}
		return describe, nil
	})
	record(storconapi.RouteShardSplit, func(r *net.HTTPRequest) (any, error) {
		var req storconapi.ShardSplitRequest
		if err := json.Unmarshal(r.Body, &req); err != nil {
			return nil, net.Errorf(net.InvalidArgument, "%v", err)
		}
		if req.NewShardCount <= 2 {
			return nil, net.Errorf(net.InvalidArgument, "new_shard_count %d is not an increase", req.NewShardCount)
		}
		var out storconapi.ShardSplitResponse
		for i := range int(req.NewShardCount) {
			out.NewShards = append(out.NewShards, shard.TenantShardID{TenantID: ctlTenant, Shard: shard.ShardIndex{Number: shard.ShardNumber(i), Count: req.NewShardCount}})
		}
		return out, nil
	})
	record(storconapi.RouteConsistencyCheck, func(*net.HTTPRequest) (any, error) {
		return storconapi.ConsistencyReport{Nodes: 2, Shards: 5}, nil
	})
	return rt
}

func (fc *fakeController) last() net.HTTPRequest {
	fc.mu.Lock()
	defer fc.mu.Unlock()
	if len(fc.reqs) == 0 {
		return net.HTTPRequest{}
	}
	return fc.reqs[len(fc.reqs)-1]
}

func TestCtlAgainstCannedController(t *testing.T) {
	t.Setenv(controllerEnv, "")
	t.Setenv(controllerTokenEnv, "")
	fc := &fakeController{token: "admin-tok"}
	srv := httptest.NewServer(httpx.Router(fc.router()))
	defer srv.Close()
	tsid := ctlTenant.String()
	for _, tc := range []struct {
		name     string
		args     []string
		wantCode int
		wantOut  []string
		wantErr  string
		// wantReq is "METHOD /path" of the request the command sent;
		// wantBody a substring of its body.
		wantReq, wantBody string
	}{
		{"nodes list", []string{"nodes", "list"}, 0,
			[]string{"ID  HTTP", "PAGE", "AVAILABILITY", "1   ps-1:9898  ps-1:6401", "az-1", "Active", "25.0%", "2   ps-2:9898", "Offline", "Draining"}, "", "GET /control/v1/node", ""},
		{"nodes list json", []string{"nodes", "list", "--json"}, 0, []string{`"id": 1`, `"availability": "Active"`, `"scheduling": "Draining"`}, "", "", ""},
		{"nodes register", []string{"nodes", "register", "--id", "3", "--http", "ps-3:9898", "--pg", "ps-3:6400", "--az", "az-2"}, 0,
			[]string{"registered node 3 at ps-3:9898"}, "", "POST /control/v1/node", `"listen_pg_port":6400`},
		{"nodes register without http", []string{"nodes", "register", "--id", "3"}, 1, nil, "--http is required", "", ""},
		{"nodes register bad address", []string{"nodes", "register", "--id", "3", "--http", "ps-3"}, 1, nil, "--http: storconapi: bad request", "", ""},
		{"nodes drain", []string{"nodes", "drain", "2"}, 0, []string{"drain of node 2 started"}, "", "PUT /control/v1/node/2/drain", ""},
		{"nodes drain stop", []string{"nodes", "drain", "2", "--stop"}, 0, []string{"drain of node 2 stopped"}, "", "DELETE /control/v1/node/2/drain", ""},
		{"nodes fill", []string{"nodes", "fill", "2"}, 0, []string{"fill of node 2 started"}, "", "PUT /control/v1/node/2/fill", ""},
		{"nodes fill json", []string{"nodes", "fill", "2", "--stop", "--json"}, 0, []string{`"fill": "stopped"`}, "", "DELETE /control/v1/node/2/fill", ""},
		{"nodes drain bad id", []string{"nodes", "drain", "x"}, 1, nil, `node id "x": want a positive integer`, "", ""},
		{"nodes policy", []string{"nodes", "policy", "1", "--scheduling", "Pause"}, 0, []string{"node 1 configured"}, "",
			"PUT /control/v1/node/1/config", `"scheduling":"Pause"`},
		{"nodes policy availability", []string{"nodes", "policy", "1", "--availability", "Offline"}, 0, nil, "",
			"PUT /control/v1/node/1/config", `{"availability":"Offline"}`},
		{"nodes policy unknown", []string{"nodes", "policy", "1", "--scheduling", "Sleepy"}, 1, nil, "--scheduling", "", ""},
		{"nodes policy nothing", []string{"nodes", "policy", "1"}, 1, nil, "nothing to change", "", ""},
		{"nodes delete", []string{"nodes", "delete", "2"}, 0, []string{"node 2 deleted"}, "", "DELETE /control/v1/node/2", ""},
		{"nodes drop", []string{"nodes", "drop", "2"}, 0, []string{"node 2 dropped"}, "", "POST /debug/v1/node/2/drop", ""},
		{"tenants create", []string{"tenants", "create", "--tenant", tsid, "--shard-count", "2", "--placement", "attached:1", "--az", "az-1",
			"--config", `{"gc_period":"10s"}`}, 0,
			[]string{"created tenant " + tsid, "SHARD", tsid + "-0002  1", tsid + "-0102  2"}, "", "POST /v1/tenant",
			`"shard_parameters":{"count":2,"stripe_size":0},"placement_policy":{"Attached":1},"config":{"gc_period":"10s"},"preferred_az":"az-1"`},
		{"tenants create random id", []string{"tenants", "create", "--json"}, 0, []string{`"tenant_id": "`, `"shards"`}, "", "POST /v1/tenant", `"count":0`},
		{"tenants create exists", []string{"tenants", "create", "--tenant", "ee000000000000000000000000000000"}, 1, nil,
			"create tenant ee000000000000000000000000000000: net: AlreadyExists: tenant ee000000000000000000000000000000 exists", "", ""},
		{"tenants create bad placement", []string{"tenants", "create", "--placement", "everywhere"}, 1, nil, `--placement "everywhere"`, "", ""},
		{"tenants create bad config", []string{"tenants", "create", "--config", `{"no_such":1}`}, 1, nil, "--config", "", ""},
		{"tenants list", []string{"tenants", "list"}, 0,
			[]string{"TENANT", tsid + "  2       2048    Attached{1}  1,2       2            dirty,notify-pending"}, "", "GET /control/v1/tenant", ""},
		{"tenants describe", []string{"tenants", "describe", tsid}, 0,
			[]string{"tenant " + tsid + ": 2 shard(s), stripe 2048", "GENERATION", "7 (node 1)", "1:AttachedSingle@7 2:unknown", "3 (node 2)", "dirty,notify-pending"},
			"", "GET /control/v1/tenant/" + tsid, ""},
		{"tenants describe json", []string{"tenants", "describe", tsid, "--json"}, 0, []string{`"generation": 7`, `"node_attached": 1`, `"conf": null`}, "", "", ""},
		{"tenants describe unknown", []string{"tenants", "describe", "ff000000000000000000000000000000"}, 1, nil,
			"describe tenant ff000000000000000000000000000000: net: NotFound", "", ""},
		{"tenants describe bad id", []string{"tenants", "describe", "zz"}, 1, nil, "tenant id", "", ""},
		{"tenants migrate", []string{"tenants", "migrate", tsid + "-0102", "--node", "1"}, 0, []string{"migrating " + tsid + "-0102 to node 1"}, "",
			"PUT /control/v1/tenant/" + tsid + "-0102/migrate", `{"node_id":1}`},
		{"tenants migrate without node", []string{"tenants", "migrate", tsid}, 1, nil, "--node is required", "", ""},
		{"tenants split", []string{"tenants", "split", tsid, "--shard-count", "4"}, 0,
			[]string{"tenant " + tsid + " has 4 shards", tsid + "-0004", tsid + "-0304"}, "", "PUT /control/v1/tenant/" + tsid + "/shard_split", `{"new_shard_count":4}`},
		{"tenant split alias stripe json", []string{"tenant", "split", tsid, "--shard-count", "8", "--stripe-size", "1024", "--json"}, 0,
			[]string{`"new_shards"`, tsid + "-0708"}, "", "PUT /control/v1/tenant/" + tsid + "/shard_split", `{"new_shard_count":8,"new_stripe_size":1024}`},
		{"tenants split refused", []string{"tenants", "split", tsid, "--shard-count", "2"}, 1, nil,
			"split tenant " + tsid + " into 2 shards: net: InvalidArgument: new_shard_count 2 is not an increase", "", ""},
		{"tenants split without count", []string{"tenants", "split", tsid}, 1, nil, "--shard-count is required", "", ""},
		{"tenants policy", []string{"tenants", "policy", tsid, "--placement", `{"Attached":2}`, "--scheduling", "Stop"}, 0,
			[]string{"tenant " + tsid + " policy set"}, "", "PUT /control/v1/tenant/" + tsid + "/policy", `{"placement":{"Attached":2},"scheduling":"Stop"}`},
		{"tenants policy secondary", []string{"tenants", "policy", tsid, "--placement", "Secondary"}, 0, nil, "", "", `{"placement":"Secondary"}`},
		{"tenants delete", []string{"tenants", "delete", tsid}, 0, []string{"tenant " + tsid + " deleted"}, "", "DELETE /v1/tenant/" + tsid, ""},
		{"tenants drop", []string{"tenants", "drop", tsid}, 0, []string{"tenant " + tsid + " dropped"}, "", "POST /debug/v1/tenant/" + tsid + "/drop", ""},
		{"consistency check", []string{"consistency-check"}, 0, []string{"consistent: 2 nodes, 5 shards"}, "", "POST /debug/v1/consistency_check", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fc.mu.Lock()
			fc.reqs = nil
			fc.mu.Unlock()
			args := append([]string{"ctl", "--controller", srv.URL, "--token", "admin-tok"}, tc.args...)
			code, out, errOut := runCLI(t, args...)
			if code != tc.wantCode {
				t.Fatalf("exit %d, want %d\nstdout %s\nstderr %s", code, tc.wantCode, out, errOut)
			}
			for _, w := range tc.wantOut {
				if !strings.Contains(out, w) {
					t.Errorf("stdout lacks %q:\n%s", w, out)
				}
			}
			if tc.wantErr != "" && !strings.Contains(errOut, tc.wantErr) {
				t.Errorf("stderr lacks %q:\n%s", tc.wantErr, errOut)
			}
			r := fc.last()
			if tc.wantReq != "" && r.Method+" "+r.Path != tc.wantReq {
				t.Errorf("request %s %s, want %s", r.Method, r.Path, tc.wantReq)
			}
			if tc.wantBody != "" && !strings.Contains(string(r.Body), tc.wantBody) {
				t.Errorf("request body %s lacks %s", r.Body, tc.wantBody)
			}
			if tc.wantCode == 0 && r.Authorization != "Bearer admin-tok" {
				t.Errorf("Authorization %q", r.Authorization)
			}
		})
	}
}

// Errors an operator can fix carry a hint; the token and controller come
// from the environment when the flags are absent.
func TestCtlErrorsAndEnvironment(t *testing.T) {
	fc := &fakeController{token: "admin-tok"}
	srv := httptest.NewServer(httpx.Router(fc.router()))
	defer srv.Close()

	t.Setenv(controllerEnv, srv.URL)
	t.Setenv(controllerTokenEnv, "")
	code, _, errOut := runCLI(t, "ctl", "nodes", "list")
	if code != 1 || !strings.Contains(errOut, "list nodes: net: Unauthenticated") || !strings.Contains(errOut, "set --token or $"+controllerTokenEnv) {
		t.Errorf("without a token: exit %d, stderr %s", code, errOut)
	}
	t.Setenv(controllerTokenEnv, "admin-tok")
	if code, out, errOut := runCLI(t, "ctl", "nodes", "list"); code != 0 || !strings.Contains(out, "ps-1:9898") {
		t.Errorf("controller and token from the environment: exit %d\n%s%s", code, out, errOut)
	}

	dead := httptest.NewServer(nil)
	deadURL := dead.URL
	dead.Close()
	code, _, errOut = runCLI(t, "ctl", "--controller", deadURL, "nodes", "list")
	if code != 1 || !strings.Contains(errOut, "is the controller running at "+deadURL) {
		t.Errorf("no controller: exit %d, stderr %s", code, errOut)
	}
	code, _, errOut = runCLI(t, "ctl", "--controller", "ftp://x", "nodes", "list")
	if code != 1 || !strings.Contains(errOut, `--controller "ftp://x"`) {
		t.Errorf("bad URL: exit %d, stderr %s", code, errOut)
	}
	code, _, errOut = runCLI(t, "ctl", "--timeout", "0s", "nodes", "list")
	if code != 1 || !strings.Contains(errOut, "--timeout 0s must be positive") {
		t.Errorf("bad timeout: exit %d, stderr %s", code, errOut)
	}
}

func TestParsePolicy(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want placement.Policy
		bad  bool
	}{
		{"attached", placement.Attached(0), false},
		{"Attached:2", placement.Attached(2), false},
		{"secondary", placement.Secondary(), false},
		{"DETACHED", placement.Detached(), false},
		{`{"Attached":1}`, placement.Attached(1), false},
		{`"Secondary"`, placement.Secondary(), false},
		{"attached:-1", placement.Policy{}, true},
		{"attached:99", placement.Policy{}, true},
		{"attached:x", placement.Policy{}, true},
		{"secondary:1", placement.Policy{}, true},
		{`{"Attached":"x"}`, placement.Policy{}, true},
		{"", placement.Policy{}, true},
	} {
		got, err := parsePolicy(tc.in)
		if tc.bad {
			if err == nil {
				t.Errorf("%q: got %v, want an error", tc.in, got)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("%q: got %v %v, want %v", tc.in, got, err, tc.want)
		}
	}
}

// TestCtlAgainstRealController runs the commands against the controller
// service itself (in this process, real clock, embedded store on a
// temporary directory, served over HTTP) with fake pageservers.
func TestCtlAgainstRealController(t *testing.T) {
	t.Setenv(controllerEnv, "")
	t.Setenv(controllerTokenEnv, "")
	var calls atomic.Int64
	routers := map[string]*net.Router{"ps-1:9898": fakePageserver(1, &calls), "ps-2:9898": fakePageserver(2, &calls)}
	// The fake pageservers split by answering the children.
	for _, rt := range routers { // before the controller calls them
		net.HandleJSON(rt, pageapi.RouteShardSplit, 200, func(_ context.Context, r *net.HTTPRequest, req pageapi.ShardSplitRequest) (pageapi.ShardSplitResponse, error) {
			id, err := shard.ParseTenantShardID(r.Param("tenant_shard_id"))
			if err != nil {
				return pageapi.ShardSplitResponse{}, net.Errorf(net.InvalidArgument, "%v", err)
			}
			kids, err := id.SplitChildren(req.NewShardCount)
			return pageapi.ShardSplitResponse{NewShards: kids}, err
		})
	}
	svc, err := storcon.Start(benchEnv("storcon", disk.Dir(t.TempDir())), storcon.Config{
		DialPageserver:    func(addr string) net.HTTPClient { return routerHTTP{rt: routers[addr]} },
		HeartbeatInterval: 50 * time.Millisecond, HeartbeatTimeout: 50 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		svc.Shutdown(ctx)
	}()
	srv := httptest.NewServer(httpx.Router(svc.Router()))
	defer srv.Close()
	ctl := func(args ...string) (string, string) {
		t.Helper()
		code, out, errOut := runCLI(t, append([]string{"ctl", "--controller", srv.URL}, args...)...)
		if code != 0 {
			t.Fatalf("ctl %v: exit %d\n%s%s", args, code, out, errOut)
		}
		return out, errOut
	}
	until := func(what string, args []string, want string) string {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for {
			code, out, errOut := runCLI(t, append([]string{"ctl", "--controller", srv.URL}, args...)...)
			if code == 0 && strings.Contains(out, want) {
				return out
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: ctl %v never printed %q; last:\n%s%s", what, args, want, out, errOut)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	ctl("nodes", "register", "--id", "1", "--http", "ps-1:9898", "--pg", "ps-1:6400")
	ctl("nodes", "register", "--id", "2", "--http", "ps-2:9898", "--pg", "ps-2:6400")
	until("nodes active", []string{"nodes", "list"}, "2   ps-2:9898  ps-2:6400  -   Active")

	tsid := ctlTenant.String()
	out, _ := ctl("tenants", "create", "--tenant", tsid, "--shard-count", "2")
	if !strings.Contains(out, "created tenant "+tsid) || !strings.Contains(out, tsid+"-0002") || !strings.Contains(out, tsid+"-0102") {
		t.Fatalf("create:\n%s", out)
	}
	// Describe as JSON, to find where shard 1 is and move it.
	out, _ = ctl("tenants", "describe", tsid, "--json")
	var d storconapi.TenantDescribe
	if err := json.Unmarshal([]byte(out), &d); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if len(d.Shards) != 2 || d.Shards[1].NodeAttached == nil || d.Shards[1].Generation == nil {
		t.Fatalf("describe: %+v", d)
	}
	from, gen := *d.Shards[1].NodeAttached, *d.Shards[1].Generation
	to := 3 - from
	out, _ = ctl("tenants", "describe", tsid)
	if !strings.Contains(out, fmt.Sprintf("%d:AttachedSingle@%d", from, gen)) {
		t.Errorf("describe table lacks the observed attachment:\n%s", out)
	}
	ctl("tenants", "migrate", tsid+"-0102", "--node", fmt.Sprint(to))
	until("migration done", []string{"tenants", "describe", tsid}, fmt.Sprintf("%d:AttachedSingle@%d", to, gen+1))
	until("consistent", []string{"consistency-check"}, "consistent: 2 nodes, 2 shards")
	out, _ = ctl("tenants", "split", tsid, "--shard-count", "4")
	if !strings.Contains(out, "tenant "+tsid+" has 4 shards") || !strings.Contains(out, tsid+"-0304") {
		t.Errorf("split:\n%s", out)
	}
	until("consistent after the split", []string{"consistency-check"}, "consistent: 2 nodes, 4 shards")
	if code, _, errOut := runCLI(t, "ctl", "--controller", srv.URL, "tenants", "split", tsid, "--shard-count", "6"); code != 1 || !strings.Contains(errOut, "InvalidArgument") {
		t.Errorf("split 4 → 6: exit %d, %s", code, errOut)
	}
	out, _ = ctl("tenants", "list")
	if !strings.Contains(out, tsid) || !strings.Contains(out, "Attached{0}") {
		t.Errorf("list:\n%s", out)
	}
	ctl("tenants", "policy", tsid, "--scheduling", "Pause")
	until("paused", []string{"tenants", "describe", tsid}, "Pause")
	ctl("nodes", "policy", "1", "--scheduling", "Pause")
	until("node paused", []string{"nodes", "list"}, "Pause")
	ctl("tenants", "drop", tsid)
	if code, _, errOut := runCLI(t, "ctl", "--controller", srv.URL, "tenants", "describe", tsid); code != 1 || !strings.Contains(errOut, "NotFound") {
		t.Errorf("describe after drop: exit %d, %s", code, errOut)
	}
	ctl("nodes", "drop", "2")
	out, _ = ctl("nodes", "list", "--json")
	var nodes []storconapi.NodeDescribe
	if err := json.Unmarshal([]byte(out), &nodes); err != nil || len(nodes) != 1 || nodes[0].ID != 1 {
		t.Errorf("nodes after drop: %v %s", err, out)
	}
}
