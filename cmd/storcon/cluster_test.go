package main

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"github.com/stratadb/strata/cmd/internal/proctest"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stratadb/strata/cmd/internal/storconpg/pgtest"
	"github.com/stratadb/strata/engine/placement"
	"github.com/stratadb/strata/engine/shard"
	"github.com/stratadb/strata/net"
	"github.com/stratadb/strata/net/httpx"
	"github.com/stratadb/strata/net/jwtauth"
	"github.com/stratadb/strata/nodes/pageserver/pageapi"
	"github.com/stratadb/strata/nodes/storcon/computehook"
	"github.com/stratadb/strata/nodes/storcon/storconapi"
)

// hookToken is the compute hook's bearer token in the cluster test: the
// controller reads it from the environment, the receiver checks it.
const hookToken = "hook-secret"

// scCluster is a storage controller, two pageservers that re-attach to it
// (-control-plane-api) and a compute hook receiver in the test process,
// with JWT checks on every API.
type scCluster struct {
	listen    string
	storeArgs []string
	sc        *proc
	ps        []*proc
	psHTTP    []string // management API host:port of pageserver i (node id i+1)
	hook      *computehook.Receiver
	api       storconapi.Client
	// admin is a JWT of scope admin: the test's own calls to the
	// controller and the pageservers carry it.
	admin string
}

func (c *scCluster) procs() []*proc { return append([]*proc{c.sc}, c.ps...) }

// startSCCluster starts the hook receiver, the controller (storeArgs say
// which store) and two pageservers, and waits until the controller sees
// both nodes Active.
func startSCCluster(t *testing.T, storeArgs ...string) *scCluster {
	t.Helper()
	a := proctest.FreeAddrs(t, 5)
	c := &scCluster{listen: a[0], storeArgs: storeArgs, psHTTP: []string{a[2], a[4]}, hook: computehook.NewReceiver(hookToken)}
	rt := net.NewRouter()
	c.hook.Register(rt)
	hookSrv := httptest.NewServer(httpx.Router(rt))
	t.Cleanup(hookSrv.Close)
	// Every hop checks tokens: the controller's API (-public-key), the
	// pageservers' management API (-auth-public-key, the controller sends
	// a pageserverapi token) and the upcalls (the pageservers send a
	// generations_api token).
	pub, priv, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	pem, err := jwtauth.MarshalPublicKeyPEM(pub)
	if err != nil {
		t.Fatal(err)
	}
	keyFile := filepath.Join(t.TempDir(), "auth.pem")
	if err := os.WriteFile(keyFile, pem, 0o644); err != nil {
		t.Fatal(err)
	}
	sign := func(scope jwtauth.Scope) string {
		tok, err := jwtauth.Sign(priv, jwtauth.Claims{Scope: scope})
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	c.admin = sign(jwtauth.ScopeAdmin)
	c.api = storconapi.Client{HTTP: httpx.Client{Base: "http://" + c.listen}, Token: c.admin}

	c.sc = &proc{name: "storcon", bin: bin(t, "storcon"),
		env: []string{"STRATA_STORCON_COMPUTE_HOOK_TOKEN=" + hookToken, "PAGESERVER_JWT_TOKEN=" + sign(jwtauth.ScopePageServerAPI)},
		args: append([]string{"-listen", c.listen, "-public-key", keyFile, "-compute-hook-url", hookSrv.URL, "-heartbeat-interval", "500ms",
			"-heartbeat-timeout", "400ms", "-offline-after", "10s", "-reconcile-all-interval", "1s", "-migration-lsn-wait", "5s",
			"-log-format", "text", "-log-level", "debug"}, storeArgs...)}
	c.sc.start(t)
	t.Cleanup(func() { stopAll(t, c.procs()) })
	waitReady(t, "http://"+c.listen+"/ready", 60*time.Second)
	anon := storconapi.Client{HTTP: c.api.HTTP}
	if _, err := anon.ListNodes(context.Background()); net.CodeOf(err) != net.Unauthenticated {
		t.Fatalf("list nodes without a token: %v, want Unauthenticated", err)
	}
	for i := 0; i < 2; i++ {
		p := &proc{name: fmt.Sprintf("ps-%d", i+1), bin: bin(t, "pageserver"),
			env: []string{"STRATA_PAGESERVER_CONTROL_PLANE_TOKEN=" + sign(jwtauth.ScopeGenerationsAPI)},
			args: []string{"-id", fmt.Sprint(i + 1), "-listen", a[1+2*i], "-http", c.psHTTP[i], "-data-dir", t.TempDir(),
				"-control-plane-api", "http://" + c.listen, "-auth-public-key", keyFile, "-log-format", "text", "-log-level", "info"}}
		p.start(t)
		c.ps = append(c.ps, p)
	}
	for _, h := range c.psHTTP {
		waitReady(t, "http://"+h+"/ready", 60*time.Second)
	}
	eventually(t, 30*time.Second, "both pageservers Active on the controller", func(ctx context.Context) error {
		nodes, err := c.api.ListNodes(ctx)
		if err != nil {
			return err
		}
		active := 0
		for _, n := range nodes {
			if n.Availability == placement.Active {
				active++
			}
		}
		if active != 2 {
			return fmt.Errorf("nodes %+v", nodes)
		}
		return nil
	})
	return c
}

// restartController starts a killed controller again with the same flags
// and store.
func (c *scCluster) restartController(t *testing.T) {
	t.Helper()
	before := c.sc.log.String()
	c.sc.start(t)
	_, _ = c.sc.log.Write([]byte("--- restarted; before:\n" + tail(before, 16<<10)))
	waitReady(t, "http://"+c.listen+"/ready", 60*time.Second)
}

// locations reads pageserver i's GET /v1/location_config.
func (c *scCluster) locations(ctx context.Context, i int) (map[string]pageapi.LocationConfig, error) {
	var l pageapi.LocationConfigList
	hc := httpx.Client{Base: "http://" + c.psHTTP[i]}
	if _, err := hc.Do(ctx, &net.HTTPRequest{Method: "GET", Path: "/v1/location_config", Authorization: "Bearer " + c.admin}, nil, &l); err != nil {
		return nil, err
	}
	out := map[string]pageapi.LocationConfig{}
	for _, s := range l.TenantShards {
		if s.Config != nil {
			out[s.ID] = *s.Config
		}
	}
	return out, nil
}

// eventually retries check every 50 ms until it returns nil or d passes.
func eventually(t *testing.T, d time.Duration, what string, check func(ctx context.Context) error) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err := check(ctx)
		cancel()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v: %v", what, d, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// genRecorder polls the controller's describe and both pageservers'
// location_config, recording every generation each source reports for
// one shard, in order.
type genRecorder struct {
	mu     sync.Mutex
	series map[string][]uint32 // source → generations seen, deduplicated runs
	stop   chan struct{}
	done   chan struct{}
}

func (r *genRecorder) add(source string, g uint32) {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := r.series[source]
	if len(s) == 0 || s[len(s)-1] != g {
		r.series[source] = append(s, g)
	}
}

func recordGenerations(c *scCluster, tsid string, tenant shard.TenantID) *genRecorder {
	r := &genRecorder{series: map[string][]uint32{}, stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(r.done)
		for {
			select {
			case <-r.stop:
				return
			case <-time.After(10 * time.Millisecond):
			}
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			if d, err := c.api.DescribeTenant(ctx, tenant); err == nil {
				for _, s := range d.Shards {
					if s.Generation != nil {
						r.add("controller", *s.Generation)
					}
				}
			}
			for i := range c.psHTTP {
				if l, err := c.locations(ctx, i); err == nil {
					if conf, ok := l[tsid]; ok && conf.Generation != nil {
						r.add(fmt.Sprintf("ps-%d", i+1), *conf.Generation)
					}
				}
			}
			cancel()
		}
	}()
	return r
}

func (r *genRecorder) finish() map[string][]uint32 {
	close(r.stop)
	<-r.done
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.series
}

// TestMigrationSurvivesControllerKill is the real-process test of the
// controller: with each store, a tenant is created on one of two
// pageservers, a live migration to the other starts, and the controller is
// SIGKILLed in the middle of it — while the destination holds the shard
// AttachedMulti with its new generation and the compute hook keeps
// failing, so the migration cannot have finished. Restarted on the same
// store, the controller must finish the job: the destination attached
// (AttachedSingle) with the controller's latest generation, observed
// state equal to intent, the origin no longer attached, compute told where
// the shard is, the consistency check clean — and no generation, as the
// controller or either pageserver reports it, ever going down.
func TestMigrationSurvivesControllerKill(t *testing.T) {
	t.Run("embedded", func(t *testing.T) {
		testMigrationSurvivesControllerKill(t, "-data-dir", t.TempDir())
	})
	t.Run("postgres", func(t *testing.T) {
		// pgtest fails (never skips) when CI is set and PostgreSQL is
		// missing.
		srv := pgtest.Start(t)
		testMigrationSurvivesControllerKill(t, "-database-url", srv.NewDatabase(t))
	})
}

func testMigrationSurvivesControllerKill(t *testing.T, storeArgs ...string) {
	c := startSCCluster(t, storeArgs...)
	tenant := shard.TenantID{0x5c, 0x01, 0x02, 0x03}
	tsid := shard.UnshardedID(tenant).String()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	resp, err := c.api.CreateTenant(ctx, storconapi.TenantCreateRequest{NewTenantID: tenant})
	if err != nil {
		t.Fatalf("create tenant: %v", err)
	}
	if len(resp.Shards) != 1 {
		t.Fatalf("create tenant: shards %+v", resp.Shards)
	}
	origin := resp.Shards[0].NodeID
	dest := 3 - origin // the other of nodes 1 and 2
	var gen0 uint32
	eventually(t, 30*time.Second, "tenant attached on node "+fmt.Sprint(origin), func(ctx context.Context) error {
		d, err := c.api.DescribeTenant(ctx, tenant)
		if err != nil {
			return err
		}
		s := d.Shards[0]
		if s.NodeAttached == nil || *s.NodeAttached != origin || s.Generation == nil || s.IsDirty || s.IsReconciling {
			return fmt.Errorf("shard %+v", s)
		}
		gen0 = *s.Generation
		return nil
	})
	if _, err := c.api.CreateTimeline(ctx, tenant, pageapi.TimelineCreateRequest{NewTimelineID: shard.TimelineID{0x7e}}); err != nil {
		t.Fatalf("create timeline: %v", err)
	}
	eventually(t, 30*time.Second, "compute told the tenant is on node "+fmt.Sprint(origin), func(context.Context) error {
		if n, ok := c.hook.Last(tenant); !ok || len(n.Shards) != 1 || n.Shards[0].NodeID != origin {
			return fmt.Errorf("last notification %+v %v", n, ok)
		}
		return nil
	})

	rec := recordGenerations(c, tsid, tenant)
	// From now on compute refuses (503) until the controller restarted, so
	// the migration stops at step 7 (notify compute) and cannot finish
	// before the kill.
	c.hook.FailNext(1<<30, 503)
	hookReqs := c.hook.Requests()
	migrateErr := make(chan error, 1)
	go func() {
		mctx, mcancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer mcancel()
		migrateErr <- c.api.Migrate(mctx, shard.UnshardedID(tenant), dest)
	}()
	var atKill string
	eventually(t, 30*time.Second, "the destination attached with a new generation and compute asked", func(ctx context.Context) error {
		l, err := c.locations(ctx, int(dest-1))
		if err != nil {
			return err
		}
		conf, ok := l[tsid]
		if !ok || conf.Generation == nil || *conf.Generation <= gen0 || conf.Mode == pageapi.ModeSecondary {
			return fmt.Errorf("destination holds %+v", conf)
		}
		if c.hook.Requests() == hookReqs {
			return fmt.Errorf("compute not asked yet (destination %s@%d)", conf.Mode, *conf.Generation)
		}
		ol, err := c.locations(ctx, int(origin-1))
		if err != nil {
			return err
		}
		atKill = fmt.Sprintf("origin %s, destination %s@%d", modeOf(ol, tsid), conf.Mode, *conf.Generation)
		return nil
	})
	c.sc.kill(t)
	t.Logf("controller killed mid-migration: %s", atKill)
	select {
	case err := <-migrateErr:
		t.Logf("migrate call ended with the controller: %v", err)
	case <-time.After(10 * time.Second):
		t.Errorf("the migrate call did not end when the controller died")
	}

	c.hook.FailNext(0, 0)
	c.restartController(t)

	var final storconapi.ShardDescribe
	eventually(t, 60*time.Second, "the migration converges after the restart", func(ctx context.Context) error {
		d, err := c.api.DescribeTenant(ctx, tenant)
		if err != nil {
			return err
		}
		s := d.Shards[0]
		if s.NodeAttached == nil || *s.NodeAttached != dest || s.Generation == nil {
			return fmt.Errorf("intent %+v", s)
		}
		if s.IsDirty || s.IsReconciling || s.PendingComputeNotification {
			return fmt.Errorf("not settled: dirty %v reconciling %v notify pending %v", s.IsDirty, s.IsReconciling, s.PendingComputeNotification)
		}
		// Observed equals intent: the destination AttachedSingle at the
		// current generation; nothing else attached.
		for _, o := range s.Observed {
			switch {
			case o.Conf == nil:
				return fmt.Errorf("node %d unknown", o.NodeID)
			case o.NodeID == dest && (o.Conf.Mode != placement.ModeAttachedSingle || o.Conf.Generation != placement.Gen(*s.Generation)):
				return fmt.Errorf("destination observed %s", o.Conf)
			case o.NodeID != dest && o.Conf.Mode.Attached():
				return fmt.Errorf("node %d still observed attached: %s", o.NodeID, o.Conf)
			}
		}
		// And the pageservers agree with what the controller observed.
		dl, err := c.locations(ctx, int(dest-1))
		if err != nil {
			return err
		}
		if conf := dl[tsid]; conf.Mode != pageapi.ModeAttachedSingle || conf.Generation == nil || *conf.Generation != *s.Generation {
			return fmt.Errorf("destination pageserver holds %+v, controller generation %d", conf, *s.Generation)
		}
		ol, err := c.locations(ctx, int(origin-1))
		if err != nil {
			return err
		}
		if m := modeOf(ol, tsid); strings.HasPrefix(m, "Attached") {
			return fmt.Errorf("origin pageserver still %s", m)
		}
		if n, ok := c.hook.Last(tenant); !ok || len(n.Shards) != 1 || n.Shards[0].NodeID != dest {
			return fmt.Errorf("compute's last notification %+v", n)
		}
		final = s
		return nil
	})
	series := rec.finish()
	t.Logf("generations seen: %v (created at %d, final %d)", series, gen0, *final.Generation)
	if *final.Generation <= gen0 {
		t.Errorf("final generation %d not above the creation's %d", *final.Generation, gen0)
	}
	for source, gens := range series {
		for i := 1; i < len(gens); i++ {
			if gens[i] < gens[i-1] {
				t.Errorf("%s: generation went down: %v", source, gens)
			}
		}
		for _, g := range gens {
			if g > *final.Generation {
				t.Errorf("%s reported generation %d above the controller's final %d: %v", source, g, *final.Generation, gens)
			}
		}
	}
	if len(series["controller"]) == 0 || len(series[fmt.Sprintf("ps-%d", dest)]) == 0 {
		t.Errorf("the recorder saw too little: %v", series)
	}
	eventually(t, 30*time.Second, "consistency check", func(ctx context.Context) error {
		_, err := c.api.ConsistencyCheck(ctx)
		return err
	})
}

// modeOf names what a location list holds for tsid ("absent" if nothing).
func modeOf(l map[string]pageapi.LocationConfig, tsid string) string {
	conf, ok := l[tsid]
	if !ok {
		return "absent"
	}
	if conf.Generation != nil {
		return fmt.Sprintf("%s@%d", conf.Mode, *conf.Generation)
	}
	return string(conf.Mode)
}
