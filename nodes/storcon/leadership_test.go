package storcon

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/stratadb/strata/clock"
	"github.com/stratadb/strata/engine/shard"
	"github.com/stratadb/strata/net"
	"github.com/stratadb/strata/nodes/node"
	"github.com/stratadb/strata/nodes/pageserver"
	"github.com/stratadb/strata/nodes/storcon/persist"
	"github.com/stratadb/strata/nodes/storcon/storconapi"
	"github.com/stratadb/strata/sim"
)

// psGate is the controller's pageserver client in these tests: it counts
// the calls that reach it and, while hold is set, keeps location_config
// calls waiting.
type psGate struct {
	calls, held int
	hold        bool
}

func (g *psGate) prep(env node.Env, cfg *Config) {
	cfg.DialPageserver = func(addr string) net.HTTPClient {
		return gatedClient{g: g, clk: env.Clock, inner: net.DialHTTP{Net: env.Net, Addr: addr}}
	}
}

type gatedClient struct {
	g     *psGate
	clk   clock.Clock
	inner net.HTTPClient
}

func (c gatedClient) Do(ctx context.Context, req *net.HTTPRequest, in, out any) (int, error) {
	c.g.calls++
	if strings.HasSuffix(req.Path, "/location_config") && req.Method == "PUT" {
		for c.g.hold {
			c.g.held++
			err := clock.Sleep(ctx, c.clk, 10*time.Millisecond)
			c.g.held--
			if err != nil {
				return 0, err
			}
		}
	}
	return c.inner.Do(ctx, req, in, out)
}

func wantSteppedDown(t *testing.T, what string, err error) {
	t.Helper()
	if net.CodeOf(err) != net.Unavailable || !strings.Contains(err.Error(), "stepped down") {
		t.Errorf("%s after stepping down: %v, want 503 naming the hand-over", what, err)
	}
}

// TestStepDownStopsEverything: once stepped down the controller refuses
// every scoped call (upcalls included) with 503, is not ready, calls no
// pageserver and no store any more, and answers a repeated step-down.
func TestStepDownStopsEverything(t *testing.T) {
	gate := &psGate{}
	cfg := Config{HeartbeatInterval: time.Second, OfflineAfter: 3 * time.Second, ReconcileAllInterval: time.Second}
	runClusterFull(t, 2, cfg, clusterOpts{prep: gate.prep}, func(c *cluster) {
		tn := tenantID(7)
		c.create(tn, 2, nil)
		waitFor(c, time.Minute, "converged", func() error { return c.converged(tn) })
		id := shard.TenantShardID{TenantID: tn, Shard: shard.ShardIndex{Number: 0, Count: 2}}
		_, gen := c.attachedNode(id)

		resp, err := c.api.StepDown(c.ctx)
		if err != nil || resp.Shards != 2 || resp.Nodes != 2 {
			t.Fatalf("step down: %+v, %v", resp, err)
		}
		calls := gate.calls
		_, err = c.api.ListTenants(c.ctx)
		wantSteppedDown(t, "list tenants", err)
		_, err = c.api.Validate(c.ctx, storconapi.ValidateRequest{Tenants: []storconapi.ValidateTenant{{ID: id, Gen: gen}}})
		wantSteppedDown(t, "validate", err)
		_, err = c.api.ReAttach(c.ctx, storconapi.ReAttachRequest{NodeID: 1})
		wantSteppedDown(t, "re-attach", err)
		_, err = c.api.Ready(c.ctx)
		wantSteppedDown(t, "ready", err)
		if _, err := c.sc.store.ListNodes(c.ctx); !errors.Is(err, ErrSteppedDown) {
			t.Errorf("store call after stepping down: %v, want ErrSteppedDown", err)
		}
		if _, err := c.api.StepDown(c.ctx); err != nil {
			t.Errorf("a repeated step-down: %v", err)
		}
		c.w.Sleep(10 * time.Second) // heartbeats, reconcile_all
		if gate.calls != calls {
			t.Errorf("%d pageserver calls after stepping down", gate.calls-calls)
		}
	})
}

// TestStepDownWaitsForCallsUnderWay: a location_config under way when the
// step-down arrives is waited for before the answer (the successor must
// not read a pageserver the old controller is still changing), and the
// migration it belonged to sends nothing more.
func TestStepDownWaitsForCallsUnderWay(t *testing.T) {
	gate := &psGate{}
	runClusterFull(t, 2, Config{StepDownTimeout: 20 * time.Second}, clusterOpts{prep: gate.prep}, func(c *cluster) {
		tn := tenantID(8)
		c.create(tn, 0, nil)
		waitFor(c, time.Minute, "converged", func() error { return c.converged(tn) })
		id := shard.UnshardedID(tn)
		from, _ := c.attachedNode(id)
		gate.hold = true
		migrated := false
		c.w.Go("migrate", func(context.Context) {
			_ = c.api.Migrate(c.ctx, id, from%2+1)
			migrated = true
		})
		c.eventually(time.Minute, "a location_config held", func() error {
			if gate.held == 0 {
				return errors.New("none yet")
			}
			return nil
		})
		var answeredAt time.Duration
		var stepErr error
		c.w.Go("step down", func(context.Context) {
			_, stepErr = c.api.StepDown(c.ctx)
			answeredAt = c.w.Now()
		})
		c.w.Sleep(3 * time.Second)
		if answeredAt != 0 {
			t.Fatalf("step-down answered at %v while a location_config was under way (err %v)", answeredAt, stepErr)
		}
		released := c.w.Now()
		gate.hold = false
		c.eventually(time.Minute, "step-down answered", func() error {
			if answeredAt == 0 {
				return errors.New("not yet")
			}
			return nil
		})
		if stepErr != nil || answeredAt < released {
			t.Fatalf("step-down: %v at %v (the call was released at %v)", stepErr, answeredAt, released)
		}
		calls := gate.calls
		c.eventually(time.Minute, "migration ended", func() error {
			if !migrated {
				return errors.New("still running")
			}
			return nil
		})
		c.w.Sleep(5 * time.Second)
		if gate.calls != calls {
			t.Errorf("%d pageserver calls after the step-down answered", gate.calls-calls)
		}
	})
}

// handoverWorld is a shared store (a persist.Server on a "db" node), two
// pageservers and controller A, all on one simulated network; B is added
// by the test.
type handoverWorld struct {
	t   *testing.T
	w   *sim.World
	ctx context.Context
	cli node.Env
}

const dbAddr = "db:5432"

func ctlAddr(name string) string { return name + ":1234" }

func (h *handoverWorld) api(name string) storconapi.Client {
	return storconapi.Client{HTTP: net.DialHTTP{Net: h.cli.Net, Addr: ctlAddr(name)}}
}

// controller adds controller name, sharing the db, asking predecessor (if
// not "") to step down at start-up.
func (h *handoverWorld) controller(name, predecessor string, stepDownTimeout time.Duration) {
	h.w.AddNode(name, func(env node.Env) error {
		st, err := persist.NewRemote(env.Clock, net.DialHTTP{Net: env.Net, Addr: dbAddr}, persist.RemoteConfig{CallTimeout: 2 * time.Second})
		if err != nil {
			return err
		}
		cfg := Config{ListenAddr: ctlAddr(name), Store: st, StepDownTimeout: stepDownTimeout,
			HeartbeatInterval: time.Second, OfflineAfter: 3 * time.Second, ReconcileAllInterval: time.Second}
		if predecessor != "" {
			cfg.Predecessor = net.DialHTTP{Net: env.Net, Addr: ctlAddr(predecessor)}
		}
		_, err = Start(env, cfg)
		return err
	})
}

func (h *handoverWorld) ready(name string) {
	h.t.Helper()
	deadline := h.w.Now() + time.Minute
	for {
		st, err := h.api(name).Ready(h.ctx)
		if err == nil && st.Ready {
			return
		}
		if h.w.Now() > deadline {
			h.t.Fatalf("controller %s not ready: %+v %v", name, st, err)
		}
		h.w.Sleep(200 * time.Millisecond)
	}
}

func runHandover(t *testing.T, body func(h *handoverWorld)) {
	t.Helper()
	w := sim.New(sim.Options{Seed: 1, MaxVirtualTime: time.Hour})
	err := w.Run(func(w *sim.World) error {
		h := &handoverWorld{t: t, w: w}
		w.AddNode("db", func(env node.Env) error {
			srv := persist.NewServer(env.Clock, env.Log, func() (persist.Store, error) {
				return persist.OpenDisk(env.Clock, env.Disk, "db", persist.DiskConfig{})
			})
			if err := srv.Open(context.Background()); err != nil {
				return err
			}
			rt := net.NewRouter()
			srv.Register(rt)
			mux := net.NewMux()
			rt.Register(mux)
			_, err := env.Net.Listen(dbAddr, mux)
			return err
		})
		for i := 1; i <= 2; i++ {
			w.AddNode(psName(i), func(env node.Env) error {
				_, err := pageserver.Start(env, pageserver.Config{NodeID: uint64(i), PageAddr: psName(i) + ":6400", HTTPAddr: psName(i) + ":9898"})
				return err
			})
		}
		h.cli = w.AddNode("cli", func(node.Env) error { return nil }).Env()
		ctx, cancel := clock.WithTimeout(w.Clock(), context.Background(), time.Hour)
		defer cancel()
		h.ctx = ctx
		h.controller("storcon-a", "", 0)
		h.ready("storcon-a")
		for i := 1; i <= 2; i++ {
			if err := h.api("storcon-a").RegisterNode(ctx, storconapi.NodeRegisterRequest{NodeID: uint64(i),
				ListenHTTPAddr: psName(i), ListenHTTPPort: 9898, ListenPGAddr: psName(i), ListenPGPort: 6400}); err != nil {
				t.Fatalf("register node %d: %v", i, err)
			}
		}
		if _, err := h.api("storcon-a").CreateTenant(ctx, storconapi.TenantCreateRequest{NewTenantID: tenantID(9)}); err != nil {
			t.Fatalf("create: %v", err)
		}
		body(h)
		return nil
	})
	if err != nil {
		t.Fatalf("simulation: %v", err)
	}
}

// generation is the shard's generation as controller name describes it.
func (h *handoverWorld) generation(name string, id shard.TenantShardID) uint32 {
	h.t.Helper()
	d, err := h.api(name).DescribeTenant(h.ctx, id.TenantID)
	if err != nil || len(d.Shards) != 1 || d.Shards[0].Generation == nil {
		h.t.Fatalf("describe on %s: %+v %v", name, d, err)
	}
	return *d.Shards[0].Generation
}

// TestSuccessorStepsDownPredecessor: a controller started with a
// predecessor sharing its store asks it to step down before it reads the
// store; the predecessor then refuses work, and the successor carries on
// from what the store holds.
func TestSuccessorStepsDownPredecessor(t *testing.T) {
	runHandover(t, func(h *handoverWorld) {
		id := shard.UnshardedID(tenantID(9))
		g := h.generation("storcon-a", id)
		h.controller("storcon-b", "storcon-a", 0)
		h.ready("storcon-b")
		_, err := h.api("storcon-a").ListTenants(h.ctx)
		wantSteppedDown(t, "the predecessor's list", err)
		if got := h.generation("storcon-b", id); got != g {
			t.Errorf("the successor describes generation %d, the predecessor had %d", got, g)
		}
		if err := h.api("storcon-b").Migrate(h.ctx, id, 2); err != nil {
			if err := h.api("storcon-b").Migrate(h.ctx, id, 1); err != nil {
				t.Fatalf("migrate on the successor: %v", err)
			}
		}
		g2 := h.generation("storcon-b", id)
		resp, err := h.api("storcon-b").Validate(h.ctx, storconapi.ValidateRequest{Tenants: []storconapi.ValidateTenant{{ID: id, Gen: g}, {ID: id, Gen: g2}}})
		if err != nil || len(resp.Tenants) != 2 || resp.Tenants[0].Valid || !resp.Tenants[1].Valid {
			t.Errorf("validate on the successor after the move: %+v %v (want %d invalid, %d valid)", resp, err, g, g2)
		}
		if _, err := h.api("storcon-b").ConsistencyCheck(h.ctx); err != nil {
			t.Errorf("consistency check on the successor: %v", err)
		}
	})
}

// TestSuccessorProceedsWithoutUnreachablePredecessor: a predecessor that
// cannot be reached is given up on after StepDownTimeout; it keeps running
// (nothing told it to stop) while the successor serves.
func TestSuccessorProceedsWithoutUnreachablePredecessor(t *testing.T) {
	runHandover(t, func(h *handoverWorld) {
		heal1, heal2 := h.w.Net().Cut("storcon-b", "storcon-a"), h.w.Net().Cut("storcon-a", "storcon-b")
		defer heal1()
		defer heal2()
		start := h.w.Now()
		h.controller("storcon-b", "storcon-a", 3*time.Second)
		h.ready("storcon-b")
		if took := h.w.Now() - start; took < 3*time.Second {
			t.Errorf("the successor was ready after %v, before giving up on its predecessor (3s)", took)
		}
		if st, err := h.api("storcon-a").Ready(h.ctx); err != nil || !st.Ready {
			t.Errorf("the unreachable predecessor: %+v %v (it was never told to step down)", st, err)
		}
	})
}
