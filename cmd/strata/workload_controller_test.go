package main

import (
	"context"
	"fmt"
	"io"
	stdnet "net"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stratadb/strata/cmd/internal/proctest"
	"github.com/stratadb/strata/engine/shard"
	"github.com/stratadb/strata/net"
	"github.com/stratadb/strata/net/httpx"
	"github.com/stratadb/strata/nodes/pageserver/pageapi"
	"github.com/stratadb/strata/nodes/storcon/storconapi"
)

// fakeWorkloadController is the part of a storage controller the workload
// calls: describe, create tenant (attached on the one local pageserver,
// node 1), create timeline (passed on to it) and the node list. Every call
// must carry the controller token.
type fakeWorkloadController struct {
	mgmt     *mgmtClient
	pageAddr string
	token    string

	mu      sync.Mutex
	created bool
	calls   map[string]int // by route
}

func (fc *fakeWorkloadController) router() *net.Router {
	rt := net.NewRouter()
	auth := func(route string, r *net.HTTPRequest) error {
		fc.mu.Lock()
		defer fc.mu.Unlock()
		fc.calls[route]++
		if r.Authorization != "Bearer "+fc.token {
			return net.Errorf(net.Unauthenticated, "fake controller: token %q", r.Authorization)
		}
		return nil
	}
	net.HandleJSON(rt, storconapi.RouteTenantDescribe, 200, func(_ context.Context, r *net.HTTPRequest, _ struct{}) (storconapi.TenantDescribe, error) {
		if err := auth("describe", r); err != nil {
			return storconapi.TenantDescribe{}, err
		}
		t, err := shard.ParseTenantID(r.Param("tenant_id"))
		if err != nil {
			return storconapi.TenantDescribe{}, net.Errorf(net.InvalidArgument, "%v", err)
		}
		fc.mu.Lock()
		defer fc.mu.Unlock()
		if !fc.created {
			return storconapi.TenantDescribe{}, net.Errorf(net.NotFound, "tenant %s not found", t)
		}
		one := uint64(1)
		return storconapi.TenantDescribe{TenantID: t, StripeSize: shard.DefaultStripeSize,
			Shards: []storconapi.ShardDescribe{{TenantShardID: shard.UnshardedID(t), NodeAttached: &one}}}, nil
	})
	net.HandleJSON(rt, storconapi.RouteTenantCreate, 201, func(ctx context.Context, r *net.HTTPRequest, req storconapi.TenantCreateRequest) (storconapi.TenantCreateResponse, error) {
		if err := auth("create", r); err != nil {
			return storconapi.TenantCreateResponse{}, err
		}
		id := shard.UnshardedID(req.NewTenantID)
		conf, err := attachConf(id, 1, 0, "")
		if err != nil {
			return storconapi.TenantCreateResponse{}, err
		}
		if err := fc.mgmt.setLocation(ctx, id, conf); err != nil {
			return storconapi.TenantCreateResponse{}, err
		}
		fc.mu.Lock()
		fc.created = true
		fc.mu.Unlock()
		return storconapi.TenantCreateResponse{Shards: []pageapi.ShardLocation{{ShardID: id.String(), NodeID: 1}}}, nil
	})
	net.HandleJSON(rt, storconapi.RouteTimelineCreate, 201, func(ctx context.Context, r *net.HTTPRequest, req pageapi.TimelineCreateRequest) (pageapi.TimelineInfo, error) {
		if err := auth("timeline", r); err != nil {
			return pageapi.TimelineInfo{}, err
		}
		t, err := shard.ParseTenantID(r.Param("tenant_id"))
		if err != nil {
			return pageapi.TimelineInfo{}, net.Errorf(net.InvalidArgument, "%v", err)
		}
		info, err := fc.mgmt.createTimeline(ctx, shard.UnshardedID(t), req)
		if net.CodeOf(err) == net.AlreadyExists {
			return info, net.Errorf(net.AlreadyExists, "timeline exists")
		}
		return info, err
	})
	net.HandleJSON(rt, storconapi.RouteNodeList, 200, func(_ context.Context, r *net.HTTPRequest, _ struct{}) ([]storconapi.NodeDescribe, error) {
		if err := auth("nodes", r); err != nil {
			return nil, err
		}
		host, port, err := stdnet.SplitHostPort(fc.pageAddr)
		if err != nil {
			return nil, err
		}
		p, _ := strconv.Atoi(port)
		return []storconapi.NodeDescribe{{ID: 1, ListenHTTPAddr: "ps-1", ListenHTTPPort: 9898, ListenGRPCAddr: host, ListenGRPCPort: uint16(p)}}, nil
	})
	return rt
}

// TestWorkloadFollowsController runs the workload with --controller and
// --compute-hook-listen against an in-process cluster (three safekeepers,
// a pageserver) and a fake controller that knows no tenant yet: the
// workload creates the tenant and the timeline through the controller and
// takes its map from the controller's describe (node 1 resolved from the
// node list). While it writes and reads, the tenant is split 0→4 (stripe
// 8) on the pageserver and the test, as the controller would, notifies the
// workload's hook: a wrong token is refused, the 4-shard map is applied
// (printed, /metrics: shard count 4, one applied update), a shrink back is
// refused. Reads go on on the new map; an interrupt (the command's context
// ending) ends the writing, the final check still runs, and the summary
// counts the update with 0 mismatches.
func TestWorkloadFollowsController(t *testing.T) {
	c, err := startLocalCluster(t.TempDir(), 3)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	mgmt, err := newMgmtClient(c.httpAddr, "")
	if err != nil {
		t.Fatal(err)
	}
	fc := &fakeWorkloadController{mgmt: mgmt, pageAddr: c.pageAddr, token: "ctl-tok", calls: map[string]int{}}
	srv := httptest.NewServer(httpx.Router(fc.router()))
	defer srv.Close()
	t.Setenv(controllerTokenEnv, "ctl-tok")
	t.Setenv(workloadHookTokenEnv, "hook-tok")
	t.Setenv(workloadHookListenEnv, "")

	ctx, interrupt := context.WithCancel(context.Background())
	defer interrupt()
	out, errOut := &proctest.SyncBuffer{}, &proctest.SyncBuffer{}
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, "strata", []string{"workload", "--safekeepers", strings.Join(c.skAddrs, ","), "--controller", srv.URL,
			"--compute-hook-listen", "127.0.0.1:0", "--tenant", testTenant, "--timeline", testTimeline, "--duration", "5m",
			"--blocks", "64", "--batch", "16", "--progress", "100ms", "--seed", "5", "--max-lag-mib", "1"}, out, errOut)
	}()
	exited := func() bool {
		select {
		case code := <-done:
			done <- code
			return true
		default:
			return false
		}
	}
	waitOut := func(what string, re *regexp.Regexp, ok func(m []string) bool) []string {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for {
			if ms := re.FindAllStringSubmatch(out.String(), -1); len(ms) > 0 && ok(ms[len(ms)-1]) {
				return ms[len(ms)-1]
			}
			if exited() || time.Now().After(deadline) {
				t.Fatalf("%s: not seen\nstdout:\n%s\nstderr:\n%s", what, out, errOut)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	hook := waitOut("the hook listening", regexp.MustCompile(`compute hook: listening on (\S+) `), func([]string) bool { return true })[1]
	pagesRead := regexp.MustCompile(`pages read +(\d+)`)
	atLeast := func(n int) func(m []string) bool {
		return func(m []string) bool { v, _ := strconv.Atoi(m[1]); return v >= n }
	}
	waitOut("pages read", pagesRead, atLeast(32))

	// The split, on the pageserver: the parent shuts down, its requests
	// are served by its children until the workload learns the new map.
	tsid := shard.UnshardedID(mustTenant(t, testTenant))
	stripe := uint32(8)
	var split pageapi.ShardSplitResponse
	sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := mgmt.do(sctx, "PUT", "/v1/tenant/"+tsid.String()+"/shard_split", pageapi.ShardSplitRequest{NewShardCount: 4, NewStripeSize: &stripe}, &split); err != nil {
		t.Fatalf("split: %v", err)
	}
	notify := func(tok string, req storconapi.NotifyAttachRequest) error {
		hc := httpx.Client{Base: "http://" + hook}
		_, err := hc.Do(sctx, &net.HTTPRequest{Method: "PUT", Path: storconapi.NotifyAttachPath, Authorization: "Bearer " + tok}, req, nil)
		return err
	}
	four := storconapi.NotifyAttachRequest{TenantID: tsid.TenantID, StripeSize: &stripe}
	for n := range 4 {
		four.Shards = append(four.Shards, storconapi.NotifyAttachShard{NodeID: 1, ShardNumber: shard.ShardNumber(n)})
	}
	if err := notify("wrong", four); net.CodeOf(err) != net.Unauthenticated {
		t.Errorf("notify with a wrong token: %v, want Unauthenticated", err)
	}
	if err := notify("hook-tok", four); err != nil {
		t.Fatalf("notify 4 shards: %v", err)
	}
	unsharded := storconapi.NotifyAttachRequest{TenantID: tsid.TenantID, Shards: []storconapi.NotifyAttachShard{{NodeID: 1}}}
	if err := notify("hook-tok", unsharded); net.CodeOf(err) != net.FailedPrecondition {
		t.Errorf("notify a shrink: %v, want FailedPrecondition", err)
	}
	m := scrapeWorkloadMetrics(t, hook)
	if m["strata_pageclient_shard_count"] != 4 || m[`strata_pageclient_shard_map_updates_total{result="applied"}`] != 1 ||
		m[`strata_pageclient_shard_map_updates_total{result="refused"}`] != 1 {
		t.Errorf("workload metrics after the notifications: %v", m)
	}
	// Reads go on, on the children.
	n, _ := strconv.Atoi(waitOut("pages read at the split", pagesRead, func([]string) bool { return true })[1])
	waitOut("pages read after the split", pagesRead, atLeast(n+64))

	interrupt()
	var code int
	select {
	case code = <-done:
	case <-time.After(time.Minute):
		t.Fatalf("the workload did not end after the interrupt:\n%s", out)
	}
	o := out.String()
	if code != 0 {
		t.Fatalf("workload: exit %d\nstdout:\n%s\nstderr:\n%s", code, o, errOut)
	}
	want := fmt.Sprintf("4 shards/stripe 8@%s,%[2]s,%[2]s,%[2]s", c.pageAddr, c.pageAddr)
	for _, s := range []string{
		"created tenant " + testTenant + " at the controller (1 shard)",
		"created timeline " + testTimeline + " (init_lsn 0/1000) through the controller",
		"shard map from the controller: unsharded@" + c.pageAddr,
		"shard map updated by the controller's notification: unsharded@" + c.pageAddr + " -> " + want,
		"interrupted: writing stops",
		"final check of all 64 blocks",
		"1 shard map updates, 4 shards, map " + want,
		"compute hook: 1 notifications for the tenant applied or unchanged",
		"summary: 0 mismatches",
	} {
		if !strings.Contains(o, s) {
			t.Errorf("output lacks %q", s)
		}
	}
	if t.Failed() {
		t.Logf("stdout:\n%s\nstderr:\n%s", o, errOut)
	}
	fc.mu.Lock()
	defer fc.mu.Unlock()
	if fc.calls["create"] != 1 || fc.calls["timeline"] != 1 || fc.calls["nodes"] != 1 {
		t.Errorf("controller calls %v: want one create, one timeline, one node list (node ids are cached)", fc.calls)
	}
}

func mustTenant(t *testing.T, s string) shard.TenantID {
	t.Helper()
	id, err := shard.ParseTenantID(s)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// scrapeWorkloadMetrics reads the workload's /metrics: every sample
// without a histogram suffix, by its name with labels.
func scrapeWorkloadMetrics(t *testing.T, addr string) map[string]float64 {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, line := range strings.Split(string(body), "\n") {
		name, val, ok := strings.Cut(line, " ")
		if !ok || strings.HasPrefix(line, "#") {
			continue
		}
		if v, err := strconv.ParseFloat(val, 64); err == nil {
			out[name] = v
		}
	}
	return out
}

// TestWorkloadControllerFlags: the flags that choose where the map comes
// from are checked before anything is contacted, the hook's listen address
// from the environment too.
func TestWorkloadControllerFlags(t *testing.T) {
	t.Setenv(workloadHookListenEnv, "")
	base := []string{"--safekeepers", "127.0.0.1:1", "--tenant", testTenant, "--timeline", testTimeline}
	with := func(extra ...string) []string { return append(append([]string{}, base...), extra...) }
	runCases(t, []string{"workload"}, []cliCase{
		{name: "neither", args: base, want: "--pageserver is required (or --controller)"},
		{name: "both", args: with("--controller", "http://127.0.0.1:2", "--pageserver", "127.0.0.1:3"), want: "choose one"},
		{name: "controller and management url", args: with("--controller", "127.0.0.1:2", "--pageserver-http", "http://127.0.0.1:3"), want: "choose one"},
		{name: "bad controller url", args: with("--controller", "ftp://127.0.0.1:2"), want: `--controller "ftp://127.0.0.1:2": want http://host:port`},
		{name: "hook without controller", args: with("--pageserver", "127.0.0.1:3", "--skip-setup", "--compute-hook-listen", "127.0.0.1:0"), want: "--compute-hook-listen needs --controller"},
		{name: "bad hook address", args: with("--controller", "127.0.0.1:2", "--compute-hook-listen", "nowhere"), want: `--compute-hook-listen "nowhere": want host:port`},
		{name: "controller without safekeepers", args: []string{"--controller", "127.0.0.1:2", "--tenant", testTenant, "--timeline", testTimeline}, want: "--safekeepers is required"},
	})
	t.Setenv(workloadHookListenEnv, "127.0.0.1:0")
	runCases(t, []string{"workload"}, []cliCase{
		{name: "hook from the environment without controller", args: with("--pageserver", "127.0.0.1:3", "--skip-setup"), want: "--compute-hook-listen needs --controller"},
	})
}
