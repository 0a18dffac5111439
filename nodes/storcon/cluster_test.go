package storcon

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/stratadb/strata/clock"
	"github.com/stratadb/strata/engine/placement"
	"github.com/stratadb/strata/engine/shard"
	"github.com/stratadb/strata/net"
	"github.com/stratadb/strata/nodes/node"
	"github.com/stratadb/strata/nodes/pageserver"
	"github.com/stratadb/strata/nodes/pageserver/pageapi"
	"github.com/stratadb/strata/nodes/storcon/computehook"
	"github.com/stratadb/strata/nodes/storcon/persist"
	"github.com/stratadb/strata/nodes/storcon/storconapi"
	"github.com/stratadb/strata/sim"
)

// cluster is a controller, nPS real pageservers, a compute hook receiver
// and a client, all in one simulated world.
type cluster struct {
	t    *testing.T
	w    *sim.World
	ctx  context.Context
	cfg  Config
	sc   *Service // the controller's current incarnation
	scN  *sim.Node
	ps   []*sim.Node
	hook *computehook.Receiver
	api  storconapi.Client
	cli  node.Env
}

const (
	scAddr   = "storcon:1234"
	hookAddr = "hook:80"
)

func psName(i int) string { return fmt.Sprintf("ps-%d", i) }

// psAZ puts pageservers in two AZs: odd ids in az-a, even in az-b.
func psAZ(i int) string {
	if i%2 == 1 {
		return "az-a"
	}
	return "az-b"
}

// runCluster runs body in a world with the controller (cfg, with
// ListenAddr and ComputeHook filled in) and nPS registered, Active
// pageservers.
func runCluster(t *testing.T, nPS int, cfg Config, body func(c *cluster)) {
	t.Helper()
	runClusterFull(t, nPS, cfg, clusterOpts{}, body)
}

// runClusterToken is runCluster with the client sending token (auth on).
func runClusterToken(t *testing.T, nPS int, cfg Config, token string, body func(c *cluster)) {
	t.Helper()
	runClusterFull(t, nPS, cfg, clusterOpts{token: token}, body)
}

// runClusterWith is runCluster with the controller's store made by
// mkStore on each start.
func runClusterWith(t *testing.T, nPS int, cfg Config, mkStore func(env node.Env) persist.Store, body func(c *cluster)) {
	t.Helper()
	runClusterFull(t, nPS, cfg, clusterOpts{prep: func(env node.Env, cfg *Config) { cfg.Store = mkStore(env) }}, body)
}

type clusterOpts struct {
	token string // sent by the client
	// prep, if set, adjusts each controller incarnation's config with its
	// env.
	prep func(env node.Env, cfg *Config)
	// controlPlane: the pageservers re-attach to the controller at start
	// (and register themselves through it).
	controlPlane bool
	// psConfig, if set, adjusts pageserver i's config and env at each
	// start.
	psConfig func(i int, pc *pageserver.Config, env *node.Env)
}

func runClusterFull(t *testing.T, nPS int, cfg Config, o clusterOpts, body func(c *cluster)) {
	t.Helper()
	token, prep := o.token, o.prep
	opts := sim.Options{Seed: 1, MaxVirtualTime: 4 * time.Hour}
	if v, err := strconv.ParseUint(os.Getenv("STORCON_TEST_SEED"), 10, 64); err == nil {
		opts.Seed = v // to run the suite under other schedules
	}
	if os.Getenv("STORCON_TEST_LOG") != "" {
		opts.Log = os.Stderr
		opts.LogLevel = -4
	}
	w := sim.New(opts)
	err := w.Run(func(w *sim.World) error {
		c := &cluster{t: t, w: w, hook: computehook.NewReceiver("hook-token")}
		c.hookNode()
		for i := 1; i <= nPS; i++ {
			c.ps = append(c.ps, w.AddNode(psName(i), func(env node.Env) error {
				pc := pageserver.Config{
					NodeID: uint64(i), PageAddr: psName(i) + ":6400", HTTPAddr: psName(i) + ":9898", AvailabilityZone: psAZ(i),
				}
				if o.controlPlane {
					pc.ControlPlane = net.DialHTTP{Net: env.Net, Addr: scAddr}
					pc.ControlPlaneToken = token
				}
				if o.psConfig != nil {
					o.psConfig(i, &pc, &env)
				}
				_, err := pageserver.Start(env, pc)
				return err
			}))
		}
		c.cfg = cfg
		c.cfg.ListenAddr = scAddr
		c.cfg.ComputeHookToken = "hook-token"
		c.scN = w.AddNode("storcon", func(env node.Env) error {
			cfg := c.cfg
			cfg.ComputeHook = net.DialHTTP{Net: env.Net, Addr: hookAddr}
			if prep != nil {
				prep(env, &cfg)
			}
			s, err := Start(env, cfg)
			if err == nil {
				c.sc = s
			}
			return err
		})
		c.cli = w.AddNode("cli", func(node.Env) error { return nil }).Env()
		c.api = storconapi.Client{HTTP: net.DialHTTP{Net: c.cli.Net, Addr: scAddr}, Token: token}
		ctx, cancel := clock.WithTimeout(w.Clock(), context.Background(), 3*time.Hour)
		defer cancel()
		c.ctx = ctx
		c.waitReady()
		for i := 1; i <= nPS; i++ {
			c.register(i)
		}
		c.waitNodes(nPS)
		body(c)
		return nil
	})
	if err != nil {
		t.Fatalf("simulation: %v", err)
	}
}

func (c *cluster) hookNode() {
	c.w.AddNode("hook", func(env node.Env) error {
		rt := net.NewRouter()
		c.hook.Register(rt)
		mux := net.NewMux()
		rt.Register(mux)
		_, err := env.Net.Listen(hookAddr, mux)
		return err
	})
}

func (c *cluster) register(i int) {
	c.t.Helper()
	err := c.api.RegisterNode(c.ctx, storconapi.NodeRegisterRequest{
		NodeID: uint64(i), ListenHTTPAddr: psName(i), ListenHTTPPort: 9898,
		ListenPGAddr: psName(i), ListenPGPort: 6400, AvailabilityZoneID: psAZ(i),
	})
	if err != nil {
		c.t.Fatalf("register node %d: %v", i, err)
	}
}

// eventually polls cond every second of virtual time for up to d.
func (c *cluster) eventually(d time.Duration, what string, cond func() error) {
	c.t.Helper()
	deadline := c.w.Now() + d
	for {
		err := cond()
		if err == nil {
			return
		}
		if c.w.Now() >= deadline {
			c.t.Fatalf("%s: not within %v: %v", what, d, err)
		}
		c.w.Sleep(time.Second)
	}
}

func (c *cluster) waitReady() {
	c.t.Helper()
	c.eventually(time.Minute, "controller ready", func() error {
		st, err := c.api.Ready(c.ctx)
		if err != nil {
			return err
		}
		if !st.Ready {
			return fmt.Errorf("not ready: %s", st.Startup)
		}
		return nil
	})
}

// waitNodes waits until n nodes are registered and Active.
func (c *cluster) waitNodes(n int) {
	c.t.Helper()
	c.eventually(time.Minute, "nodes active", func() error {
		nodes, err := c.api.ListNodes(c.ctx)
		if err != nil {
			return err
		}
		active := 0
		for _, nd := range nodes {
			if nd.Availability == placement.Active {
				active++
			}
		}
		if active != n {
			return fmt.Errorf("%d of %d active: %+v", active, n, nodes)
		}
		return nil
	})
}

// psClient is a management client for pageserver i.
func (c *cluster) psClient(i int) net.HTTPClient {
	return net.DialHTTP{Net: c.cli.Net, Addr: psName(i) + ":9898"}
}

// locations reads pageserver i's locations.
func (c *cluster) locations(i int) map[shard.TenantShardID]*pageapi.LocationConfig {
	c.t.Helper()
	var list pageapi.LocationConfigList
	if _, err := c.psClient(i).Do(c.ctx, &net.HTTPRequest{Method: "GET", Path: "/v1/location_config"}, nil, &list); err != nil {
		c.t.Fatalf("ps-%d locations: %v", i, err)
	}
	out := map[shard.TenantShardID]*pageapi.LocationConfig{}
	for _, l := range list.TenantShards {
		id, err := shard.ParseTenantShardID(l.ID)
		if err != nil {
			c.t.Fatal(err)
		}
		out[id] = l.Config
	}
	return out
}

func (c *cluster) describe(t shard.TenantID) storconapi.TenantDescribe {
	c.t.Helper()
	d, err := c.api.DescribeTenant(c.ctx, t)
	if err != nil {
		c.t.Fatalf("describe %s: %v", t, err)
	}
	return d
}

// converged reports whether every shard of t has observed == intent (not
// dirty, not reconciling, attached where the policy wants).
func (c *cluster) converged(t shard.TenantID) error {
	d, err := c.api.DescribeTenant(c.ctx, t)
	if err != nil {
		return err
	}
	for _, sh := range d.Shards {
		if sh.IsDirty || sh.IsReconciling {
			return fmt.Errorf("shard %s dirty=%v reconciling=%v: %+v", sh.TenantShardID, sh.IsDirty, sh.IsReconciling, sh)
		}
		if sh.Policy.Kind == placement.PolicyAttached && sh.NodeAttached == nil {
			return fmt.Errorf("shard %s not attached", sh.TenantShardID)
		}
	}
	return nil
}

// checkPageservers asserts that every shard of t is held by its attached
// node as AttachedSingle with the controller's generation, and that no
// other pageserver holds it attached.
func (c *cluster) checkPageservers(t shard.TenantID) {
	c.t.Helper()
	d := c.describe(t)
	for _, sh := range d.Shards {
		if sh.NodeAttached == nil || sh.Generation == nil {
			c.t.Fatalf("shard %s: attached %v generation %v", sh.TenantShardID, sh.NodeAttached, sh.Generation)
		}
		for i := 1; i <= len(c.ps); i++ {
			if !c.ps[i-1].Up() {
				continue
			}
			conf := c.locations(i)[sh.TenantShardID]
			if uint64(i) == *sh.NodeAttached {
				if conf == nil || conf.Mode != pageapi.ModeAttachedSingle || conf.Generation == nil || *conf.Generation != *sh.Generation {
					c.t.Fatalf("shard %s: ps-%d holds %+v, want AttachedSingle@%d", sh.TenantShardID, i, conf, *sh.Generation)
				}
				continue
			}
			if conf != nil && conf.Mode.Attached() {
				c.t.Fatalf("shard %s: ps-%d also holds it %s (attached at %d)", sh.TenantShardID, i, conf.Mode, *sh.NodeAttached)
			}
		}
	}
}

func tenantID(b byte) shard.TenantID { return shard.TenantID{b, 0xc0, 0xff, 0xee} }

func (c *cluster) create(t shard.TenantID, count uint8, policy *placement.Policy) storconapi.TenantCreateResponse {
	c.t.Helper()
	resp, err := c.api.CreateTenant(c.ctx, storconapi.TenantCreateRequest{
		NewTenantID: t, ShardParameters: storconapi.ShardParameters{Count: count}, PlacementPolicy: policy,
	})
	if err != nil {
		c.t.Fatalf("create %s: %v", t, err)
	}
	return resp
}

func createReq(t shard.TenantID) storconapi.TenantCreateRequest {
	return storconapi.TenantCreateRequest{NewTenantID: t}
}

func nodeConfigScheduling(p placement.NodePolicy) storconapi.NodeConfigRequest {
	return storconapi.NodeConfigRequest{Scheduling: &p}
}
