package storcon

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stratadb/strata/clock"
	"github.com/stratadb/strata/engine/layer"
	"github.com/stratadb/strata/engine/placement"
	"github.com/stratadb/strata/engine/shard"
	"github.com/stratadb/strata/net"
	"github.com/stratadb/strata/nodes/node"
	"github.com/stratadb/strata/nodes/pageserver/pageapi"
	"github.com/stratadb/strata/nodes/storcon/persist"
	"github.com/stratadb/strata/nodes/storcon/storconapi"
)

// storeHooks are run by hookStore around the calls the tests need to
// interleave with; nil hooks do nothing. One storeHooks is shared by every
// incarnation of the controller.
type storeHooks struct {
	// afterUpdate runs once UpdateTenantShards succeeded.
	afterUpdate func(ctx context.Context, sel persist.Selector, u persist.ShardUpdate)
	// failIncrement: IncrementGeneration fails (the store is unreachable).
	failIncrement bool
	// lostInsertAcks: the next n InsertTenantShards commit but answer an
	// error (a database whose acknowledgement was lost).
	lostInsertAcks int
	// failList: ListNodes fails (the database is down).
	failList bool
	// afterNodePolicy runs once SetNodeSchedulingPolicy succeeded.
	afterNodePolicy func(ctx context.Context, id persist.NodeID, policy string)
	// incrementErr, if set, is IncrementGeneration's answer.
	incrementErr error
	// reads counts Generation and TenantShards calls.
	reads int
	// afterIncrement runs once IncrementGeneration succeeded.
	// inner is the store under the hooks.
	afterIncrement func(ctx context.Context, inner persist.Store, id shard.TenantShardID, node persist.NodeID, g layer.Generation)
}

// hookStore is the controller's embedded store with storeHooks around it.
type hookStore struct {
	persist.Store
	h *storeHooks
}

func (s hookStore) UpdateTenantShards(ctx context.Context, sel persist.Selector, u persist.ShardUpdate) error {
	if err := s.Store.UpdateTenantShards(ctx, sel, u); err != nil {
		return err
	}
	if s.h.afterUpdate != nil {
		s.h.afterUpdate(ctx, sel, u)
	}
	return nil
}

func (s hookStore) IncrementGeneration(ctx context.Context, id shard.TenantShardID, node persist.NodeID) (layer.Generation, error) {
	if s.h.failIncrement {
		return 0, fmt.Errorf("test: store unreachable")
	}
	if s.h.incrementErr != nil {
		return 0, s.h.incrementErr
	}
	g, err := s.Store.IncrementGeneration(ctx, id, node)
	if err == nil && s.h.afterIncrement != nil {
		s.h.afterIncrement(ctx, s.Store, id, node, g)
	}
	return g, err
}

func (s hookStore) InsertTenantShards(ctx context.Context, rows []persist.TenantShard) error {
	if err := s.Store.InsertTenantShards(ctx, rows); err != nil {
		return err
	}
	if s.h.lostInsertAcks > 0 {
		s.h.lostInsertAcks--
		return fmt.Errorf("test: connection lost before the commit was acknowledged")
	}
	return nil
}

func (s hookStore) ListNodes(ctx context.Context) ([]persist.Node, error) {
	if s.h.failList {
		return nil, fmt.Errorf("test: database down")
	}
	return s.Store.ListNodes(ctx)
}

func (s hookStore) SetNodeSchedulingPolicy(ctx context.Context, id persist.NodeID, policy string) error {
	if err := s.Store.SetNodeSchedulingPolicy(ctx, id, policy); err != nil {
		return err
	}
	if s.h.afterNodePolicy != nil {
		s.h.afterNodePolicy(ctx, id, policy)
	}
	return nil
}

func (s hookStore) Generation(ctx context.Context, id shard.TenantShardID) (layer.Generation, persist.NodeID, error) {
	s.h.reads++
	return s.Store.Generation(ctx, id)
}

func (s hookStore) TenantShards(ctx context.Context, t shard.TenantID) ([]persist.TenantShard, error) {
	s.h.reads++
	return s.Store.TenantShards(ctx, t)
}

// runHooked runs a cluster whose controller uses a fresh embedded store in
// "ctl" (the same directory on every incarnation) wrapped in h.
func runHooked(t *testing.T, nPS int, cfg Config, h *storeHooks, body func(c *cluster)) {
	t.Helper()
	runClusterWith(t, nPS, cfg, func(env node.Env) persist.Store {
		ds, err := persist.OpenDisk(env.Clock, env.Disk, "ctl", persist.DiskConfig{})
		if err != nil {
			t.Fatalf("open store: %v", err)
		}
		return hookStore{Store: ds, h: h}
	}, body)
}

// TestLocationConfigGenerationNeverLowers: a location_config with a
// generation for a shard already under management stores it as the floor;
// a reconcile that issues the next generation right after that update
// (before the call applies it to memory) must not make memory go back —
// the call succeeds and memory agrees with the store.
func TestLocationConfigGenerationNeverLowers(t *testing.T) {
	h := &storeHooks{}
	runHooked(t, 2, Config{}, h, func(c *cluster) {
		tn := tenantID(90)
		c.create(tn, 0, nil)
		id := shard.UnshardedID(tn)
		node, g0 := c.attachedNode(id)
		body := g0 + 5
		h.afterUpdate = func(ctx context.Context, sel persist.Selector, u persist.ShardUpdate) {
			if u.Generation == nil || !sel.Matches(id) {
				return
			}
			h.afterUpdate = nil
			// A reconcile issues the next generation now.
			if _, err := c.sc.issueGeneration(ctx, id, placement.NodeID(node)); err != nil {
				t.Errorf("issue generation: %v", err)
			}
		}
		_, err := c.api.LocationConfig(c.ctx, id, pageapi.LocationConfig{
			Mode: pageapi.ModeAttachedSingle, Generation: &body, TenantConf: &pageapi.TenantConf{},
		})
		if err != nil {
			t.Fatalf("location_config with generation %d: %v", body, err)
		}
		if _, g := c.attachedNode(id); g <= body {
			t.Errorf("generation %d after a floor of %d and a later increment", g, body)
		}
		waitFor(c, time.Minute, "consistent", func() error {
			_, err := c.api.ConsistencyCheck(c.ctx)
			return err
		})
		c.checkPageservers(tn)
	})
}

// TestStartupNotifiesEveryTenantEventually: a restarted controller cannot
// know what compute last heard, so every fully attached tenant must reach
// compute eventually — also one the start-up round never got to because
// the budget ran out while another tenant's notification was retried.
func TestStartupNotifiesEveryTenantEventually(t *testing.T) {
	cfg := Config{
		StartupBudget: 10 * time.Second, MaxConcurrentNotifications: 1,
		ReconcileAllInterval: 30 * time.Second,
	}
	runCluster(t, 2, cfg, func(c *cluster) {
		a, b := tenantID(91), tenantID(92)
		c.hook.FailNext(2, 404) // both creations' notifications fail
		c.create(a, 0, nil)
		c.create(b, 0, nil)
		for _, tn := range []shard.TenantID{a, b} {
			if _, ok := c.hook.Last(tn); ok {
				t.Fatalf("tenant %s: notification recorded while the hook failed", tn)
			}
		}
		// Compute is busy through the whole start-up: a's notification
		// waits out the budget, b's turn never comes.
		c.hook.FailNext(1<<20, 429)
		c.w.Crash("storcon", false)
		c.w.Restart("storcon")
		c.waitReady()
		c.hook.FailNext(0, 429)
		for _, tn := range []shard.TenantID{a, b} {
			waitFor(c, 5*time.Minute, "tenant "+tn.String()+" notified", func() error { return c.notified(tn) })
		}
	})
}

// demoteWatch wraps the controller's pageserver clients: when the origin
// of a migration is told to become Secondary (step 8), it records what
// compute had last heard for the tenant at that moment.
type demoteWatch struct {
	hc     net.HTTPClient
	node   uint64
	onConf func(node uint64, path string, conf pageapi.LocationConfig)
}

func (d demoteWatch) Do(ctx context.Context, req *net.HTTPRequest, in, out any) (int, error) {
	if conf, ok := in.(pageapi.LocationConfig); ok && d.onConf != nil {
		d.onConf(d.node, req.Path, conf)
	}
	return d.hc.Do(ctx, req, in, out)
}

// TestMigrationRetriesComputeBeforeDemotingOrigin: when compute does not
// take the destination at the first notification (the hook gives up after
// its retries), the migration keeps telling it before the origin stops
// being attached (step 8).
func TestMigrationRetriesComputeBeforeDemotingOrigin(t *testing.T) {
	var onConf func(node uint64, path string, conf pageapi.LocationConfig)
	prep := func(env node.Env, cfg *Config) {
		cfg.DialPageserver = func(addr string) net.HTTPClient {
			var n uint64
			fmt.Sscanf(addr, "ps-%d:", &n)
			return demoteWatch{hc: net.DialHTTP{Net: env.Net, Addr: addr}, node: n,
				onConf: func(node uint64, path string, conf pageapi.LocationConfig) {
					if onConf != nil {
						onConf(node, path, conf)
					}
				}}
		}
	}
	runClusterFull(t, 2, Config{ComputeHookRetries: 1}, clusterOpts{prep: prep}, func(c *cluster) {
		tn := tenantID(93)
		c.create(tn, 0, nil)
		id := shard.UnshardedID(tn)
		from, _ := c.attachedNode(id)
		to := 3 - from
		demoted, toldFirst := false, false
		onConf = func(node uint64, path string, conf pageapi.LocationConfig) {
			if node != from || conf.Mode != pageapi.ModeSecondary || !strings.Contains(path, id.String()) || demoted {
				return
			}
			demoted = true
			last, ok := c.hook.Last(tn)
			toldFirst = ok && len(last.Shards) == 1 && last.Shards[0].NodeID == to
		}
		// The first notification gives up (two attempts, both 503); the
		// next attempt succeeds.
		c.hook.FailNext(3, 503)
		if err := c.api.Migrate(c.ctx, id, to); err != nil {
			t.Fatalf("migrate: %v", err)
		}
		if !demoted {
			t.Fatal("the origin was never made secondary")
		}
		if !toldFirst {
			t.Error("the origin was demoted before compute was told about the destination")
		}
		waitFor(c, time.Minute, "notified", func() error { return c.notified(tn) })
	})
}

// TestRetriedCreateWaitsForANewReconcile: a create whose reconcile failed
// (no generation could be stored) is retried once the store works; the
// retry must wait for a reconcile that starts after it, not answer the
// earlier reconcile's failure again.
func TestRetriedCreateWaitsForANewReconcile(t *testing.T) {
	h := &storeHooks{failIncrement: true}
	runHooked(t, 2, Config{ReconcileAllInterval: time.Hour}, h, func(c *cluster) {
		tn := tenantID(94)
		if _, err := c.api.CreateTenant(c.ctx, createReq(tn)); err == nil {
			t.Fatal("create succeeded without a generation")
		}
		h.failIncrement = false
		if _, err := c.api.CreateTenant(c.ctx, createReq(tn)); err != nil {
			t.Fatalf("retried create: %v", err)
		}
		c.checkPageservers(tn)
	})
}

// TestInsertWithLostAcknowledgementIsAdopted: an insert whose commit
// happened but whose answer was lost is not "not inserted": the create (and
// an onboarding location_config) succeeds, or its retry does, and memory
// agrees with the store — never a 409 for every retry.
func TestInsertWithLostAcknowledgementIsAdopted(t *testing.T) {
	h := &storeHooks{}
	runHooked(t, 2, Config{}, h, func(c *cluster) {
		tn := tenantID(95)
		h.lostInsertAcks = 1
		if _, err := c.api.CreateTenant(c.ctx, storconapi.TenantCreateRequest{NewTenantID: tn, ShardParameters: storconapi.ShardParameters{Count: 2}}); err != nil {
			if _, err := c.api.CreateTenant(c.ctx, storconapi.TenantCreateRequest{NewTenantID: tn, ShardParameters: storconapi.ShardParameters{Count: 2}}); err != nil {
				t.Fatalf("create after a lost acknowledgement, retried: %v", err)
			}
		}
		c.checkPageservers(tn)

		on := tenantID(96)
		id := shard.UnshardedID(on)
		g := uint32(3)
		lc := pageapi.LocationConfig{Mode: pageapi.ModeAttachedSingle, Generation: &g, TenantConf: &pageapi.TenantConf{}}
		h.lostInsertAcks = 1
		if _, err := c.api.LocationConfig(c.ctx, id, lc); err != nil {
			if _, err := c.api.LocationConfig(c.ctx, id, lc); err != nil {
				t.Fatalf("onboarding after a lost acknowledgement, retried: %v", err)
			}
		}
		c.checkPageservers(on)
		waitFor(c, time.Minute, "consistent", func() error {
			_, err := c.api.ConsistencyCheck(c.ctx)
			return err
		})
	})
}

// TestInterruptedDrainAndFillEnd: a node left Draining or Filling by a
// controller restart (the operation ran in the process that is gone) is
// Active again after start-up, so a drain can be started; a node left
// Filling with no fill running can be stopped.
func TestInterruptedDrainAndFillEnd(t *testing.T) {
	runCluster(t, 2, Config{}, func(c *cluster) {
		if err := c.api.NodeConfig(c.ctx, 1, nodeConfigScheduling(placement.NodeDraining)); err != nil {
			t.Fatal(err)
		}
		if err := c.api.NodeConfig(c.ctx, 2, nodeConfigScheduling(placement.NodeFilling)); err != nil {
			t.Fatal(err)
		}
		c.w.Crash("storcon", false)
		c.w.Restart("storcon")
		c.waitReady()
		for _, id := range []uint64{1, 2} {
			if p := c.nodePolicy(id); p != placement.NodeActive {
				t.Errorf("node %d after restart: policy %s, want Active", id, p)
			}
		}
		if err := c.api.Drain(c.ctx, 1, false); err != nil {
			t.Errorf("drain after restart: %v", err)
		}
		waitFor(c, time.Minute, "drain done", func() error {
			if p := c.nodePolicy(1); p != placement.NodePauseForRestart {
				return fmt.Errorf("node 1 policy %s", p)
			}
			return nil
		})
		// Filling with no fill running: stopping it resets the policy.
		if err := c.api.NodeConfig(c.ctx, 2, nodeConfigScheduling(placement.NodeFilling)); err != nil {
			t.Fatal(err)
		}
		if err := c.api.Fill(c.ctx, 2, true); err != nil {
			t.Errorf("stop a fill that is not running on a Filling node: %v", err)
		}
		if p := c.nodePolicy(2); p != placement.NodeActive {
			t.Errorf("node 2 after stop: policy %s", p)
		}
		waitFor(c, time.Minute, "consistent", func() error {
			_, err := c.api.ConsistencyCheck(c.ctx)
			return err
		})
	})
}

// TestStartupOutlastsAnUnreadableStore: a controller that starts while its
// store cannot be read keeps trying past StartupBudget (503 meanwhile) and
// turns ready once the store answers.
func TestStartupOutlastsAnUnreadableStore(t *testing.T) {
	h := &storeHooks{}
	runHooked(t, 1, Config{StartupBudget: 10 * time.Second}, h, func(c *cluster) {
		tn := tenantID(97)
		c.create(tn, 0, nil)
		h.failList = true
		c.w.Crash("storcon", false)
		c.w.Restart("storcon")
		c.w.Sleep(2 * time.Minute)
		if st, err := c.api.Ready(c.ctx); err == nil || st.Ready {
			t.Fatalf("ready while the store is unreadable: %+v %v", st, err)
		}
		h.failList = false
		c.waitReady()
		if err := c.converged(tn); err != nil {
			t.Error(err)
		}
	})
}

// TestGenerationIssuedToTheAttachedNode: after a policy flip that cleared
// the generation's node while the attached node kept its location (the
// shard was frozen by scheduling policy Stop), the attached node holds
// exactly what intent wants — but a generation issued to no node, which
// its re-attach would not list. The reconciler must issue one to it.
func TestGenerationIssuedToTheAttachedNode(t *testing.T) {
	runCluster(t, 2, Config{}, func(c *cluster) {
		tn := tenantID(98)
		c.create(tn, 0, nil)
		id := shard.UnshardedID(tn)
		node, g0 := c.attachedNode(id)
		stop, active := placement.ShardStop, placement.ShardActive
		sec, att := placement.Secondary(), placement.Attached(0)
		for _, req := range []storconapi.TenantPolicyRequest{
			{Scheduling: &stop}, {Placement: &sec}, {Placement: &att}, {Scheduling: &active},
		} {
			if err := c.api.SetTenantPolicy(c.ctx, tn, req); err != nil {
				t.Fatalf("policy %+v: %v", req, err)
			}
		}
		waitFor(c, time.Minute, "converged", func() error { return c.converged(tn) })
		d := c.describe(tn).Shards[0]
		if d.NodeAttached == nil || *d.NodeAttached != node || d.GenerationNode != node || *d.Generation <= g0 {
			t.Fatalf("attached %v generation %v issued to node %d; want node %d with a generation above %d issued to it",
				d.NodeAttached, d.Generation, d.GenerationNode, node, g0)
		}
		c.checkPageservers(tn)
		// The node's re-attach hands the shard back.
		if err := c.checkReAttachBumps(node, []shard.TenantShardID{id}); err != nil {
			t.Error(err)
		}
	})
}

// TestConsistencyCheckDuringDrainAndFill: a consistency check that runs
// right after a drain's or fill's node policy was stored, before memory
// has it, must not report a difference (it is refused while the operation
// or the call that changes the policy runs).
func TestConsistencyCheckDuringDrainAndFill(t *testing.T) {
	h := &storeHooks{}
	runHooked(t, 2, Config{}, h, func(c *cluster) {
		c.create(tenantID(99), 0, nil)
		var checked []string
		h.afterNodePolicy = func(ctx context.Context, id persist.NodeID, policy string) {
			_, err := c.sc.consistencyCheck(ctx)
			if errors.Is(err, ErrInconsistent) {
				t.Errorf("consistency check right after node %d's policy %s was stored: %v", id, policy, err)
			}
			checked = append(checked, policy)
		}
		if err := c.api.Drain(c.ctx, 1, false); err != nil {
			t.Fatal(err)
		}
		waitFor(c, time.Minute, "drained", func() error {
			if p := c.nodePolicy(1); p != placement.NodePauseForRestart {
				return fmt.Errorf("node 1 policy %s", p)
			}
			return nil
		})
		if err := c.api.NodeConfig(c.ctx, 1, nodeConfigScheduling(placement.NodeActive)); err != nil {
			t.Fatal(err)
		}
		if err := c.api.Fill(c.ctx, 1, false); err != nil {
			t.Fatal(err)
		}
		waitFor(c, time.Minute, "filled", func() error {
			if p := c.nodePolicy(1); p != placement.NodeActive {
				return fmt.Errorf("node 1 policy %s", p)
			}
			return nil
		})
		h.afterNodePolicy = nil
		if len(checked) < 4 {
			t.Errorf("checks ran after %v only", checked)
		}
		waitFor(c, time.Minute, "consistent", func() error {
			_, err := c.api.ConsistencyCheck(c.ctx)
			return err
		})
	})
}

// TestAPIStatusMapping: a pageserver refusing the controller's own token
// is not passed to the caller as 401/403 (which would say the caller's
// token is bad); a reconcile that found its shard changed and a store that
// is closed or failed are 503 (retry), not 500.
func TestAPIStatusMapping(t *testing.T) {
	psErr := func(c net.Code) error {
		return fmt.Errorf("%w: node 1 location_config: %w", ErrPageserver, net.Errorf(c, "pageserver says no"))
	}
	for _, tc := range []struct {
		name string
		err  error
		want int
	}{
		{"pageserver 401", psErr(net.Unauthenticated), 500},
		{"pageserver 403", psErr(net.PermissionDenied), 500},
		{"pageserver 404 keeps its code", psErr(net.NotFound), 404},
		{"pageserver 503 keeps its code", psErr(net.Unavailable), 503},
		{"shard changed during reconcile", fmt.Errorf("%w: generation 3 issued while 2 was", errStale), 503},
		{"store failed", fmt.Errorf("update: %w", persist.ErrFailed), 503},
		{"store closed", fmt.Errorf("update: %w", persist.ErrClosed), 503},
		{"own auth error unchanged", net.Errorf(net.Unauthenticated, "no token"), 401},
	} {
		if got := httpStatusOf(apiStatus(tc.err), 200); got != tc.want {
			t.Errorf("%s: %v → %d, want %d", tc.name, tc.err, got, tc.want)
		}
	}
	if err := apiStatus(psErr(net.Unauthenticated)); !strings.Contains(err.Error(), "pageserver token") {
		t.Errorf("message does not say whose token: %v", err)
	}
}

// TestCreateNeedsATenantID: a create without new_tenant_id (an empty
// body) is 400, not the all-zero tenant.
func TestCreateNeedsATenantID(t *testing.T) {
	runCluster(t, 1, Config{}, func(c *cluster) {
		_, err := c.api.CreateTenant(c.ctx, storconapi.TenantCreateRequest{})
		if got := httpStatusOf(err, 201); got != 400 {
			t.Fatalf("create without a tenant id: %v (status %d), want 400", err, got)
		}
		if _, err := c.api.DescribeTenant(c.ctx, shard.TenantID{}); net.CodeOf(err) != net.NotFound {
			t.Errorf("the zero tenant: %v, want NotFound", err)
		}
	})
}

// TestStartupNotifiesTenantCompletedLater: a tenant compute never heard of
// whose node did not answer start-up comes back holding exactly what
// intent wants, so no pageserver call is needed — compute must still be
// told (the restarted controller cannot know what it heard).
func TestStartupNotifiesTenantCompletedLater(t *testing.T) {
	runCluster(t, 1, Config{StartupBudget: 10 * time.Second, ReconcileAllInterval: 5 * time.Second}, func(c *cluster) {
		tn := tenantID(100)
		c.hook.FailNext(1, 404)
		c.create(tn, 0, nil)
		if _, ok := c.hook.Last(tn); ok {
			t.Fatal("notification recorded while the hook failed")
		}
		c.w.Crash("storcon", false)
		c.w.Net().Partition("storcon", psName(1))
		c.w.Restart("storcon")
		c.waitReady()
		c.w.Net().Heal()
		c.waitNodes(1)
		waitFor(c, 2*time.Minute, "notified", func() error { return c.notified(tn) })
		waitFor(c, time.Minute, "nothing pending", func() error {
			if sh := c.describe(tn).Shards[0]; sh.PendingComputeNotification || sh.IsDirty {
				return fmt.Errorf("shard %+v", sh)
			}
			return nil
		})
	})
}

// reconcileSpawns is how many reconciles the controller has started.
func (c *cluster) reconcileSpawns() float64 {
	vals, _ := c.metricValues()
	return vals["storage_controller_reconcile_spawn"]
}

// TestPendingNotificationOfAnIncompleteTenantWaits: a pending
// notification of a tenant whose map is incomplete (one shard's node did
// not come back and nothing else may take the shard) does not make its
// other shard reconcile over and over; once the map is complete the
// notification is sent.
func TestPendingNotificationOfAnIncompleteTenantWaits(t *testing.T) {
	runCluster(t, 2, Config{ReconcileAllInterval: 2 * time.Second, StartupBudget: 10 * time.Second}, func(c *cluster) {
		tn := tenantID(101)
		c.create(tn, 2, nil)
		d := c.describe(tn)
		if *d.Shards[0].NodeAttached == *d.Shards[1].NodeAttached {
			t.Fatalf("both shards on node %d", *d.Shards[0].NodeAttached)
		}
		// Node 2 may not take shards; node 1 is down across a controller
		// restart (which marks every tenant's notification pending).
		if err := c.api.NodeConfig(c.ctx, 2, nodeConfigScheduling(placement.NodePause)); err != nil {
			t.Fatal(err)
		}
		c.w.Crash(psName(1), false)
		c.w.Crash("storcon", false)
		c.w.Restart("storcon")
		c.waitReady()
		c.w.Sleep(10 * time.Second)
		before := c.reconcileSpawns()
		c.w.Sleep(30 * time.Second)
		if n := c.reconcileSpawns() - before; n > 2 {
			t.Errorf("%v reconciles in 30s of an incomplete tenant with a pending notification", n)
		}
		c.w.Restart(psName(1))
		waitFor(c, 2*time.Minute, "notified", func() error { return c.notified(tn) })
		waitFor(c, time.Minute, "nothing pending", func() error { return c.converged(tn) })
	})
}

// TestNotificationOwedUntilTheMapIsComplete: a migration whose tenant's
// map is incomplete at step 7 (another shard's node is offline, the
// tenant's intent frozen) cannot tell compute; once that node is back —
// holding what intent wants, so no reconcile has work there — compute must
// still learn where the migrated shard went.
func TestNotificationOwedUntilTheMapIsComplete(t *testing.T) {
	cfg := Config{HeartbeatInterval: time.Second, HeartbeatTimeout: 500 * time.Millisecond, OfflineAfter: 3 * time.Second,
		ReconcileAllInterval: 2 * time.Second}
	runCluster(t, 3, cfg, func(c *cluster) {
		tn := tenantID(102)
		c.create(tn, 2, nil)
		d := c.describe(tn)
		a, b := *d.Shards[0].NodeAttached, *d.Shards[1].NodeAttached
		if a == b {
			t.Fatalf("both shards on node %d", a)
		}
		dest := 6 - a - b
		pause := placement.ShardPause
		if err := c.api.SetTenantPolicy(c.ctx, tn, storconapi.TenantPolicyRequest{Scheduling: &pause}); err != nil {
			t.Fatal(err)
		}
		c.w.Net().Partition("storcon", psName(int(a)))
		waitFor(c, time.Minute, "node offline", func() error {
			nodes, err := c.api.ListNodes(c.ctx)
			if err != nil {
				return err
			}
			for _, n := range nodes {
				if n.ID == a && n.Availability != placement.Offline {
					return fmt.Errorf("node %d is %s", a, n.Availability)
				}
			}
			return nil
		})
		if err := c.api.Migrate(c.ctx, d.Shards[1].TenantShardID, dest); err != nil {
			t.Fatalf("migrate: %v", err)
		}
		c.w.Net().Heal()
		c.waitNodes(3)
		waitFor(c, time.Minute, "notified", func() error { return c.notified(tn) })
	})
}

// TestFailedAttachKeepsTheOriginAttached: a migration to a node that died
// right then fails at step 5; the reconciles that follow cannot attach the
// destination either, and must not demote the origin — a secondary in
// intent (Attached{1}) but the only attached location there is.
func TestFailedAttachKeepsTheOriginAttached(t *testing.T) {
	runClusterFull(t, 2, Config{ReconcileAllInterval: time.Second}, clusterOpts{controlPlane: true}, func(c *cluster) {
		tn := tenantID(104)
		p := placement.Attached(1)
		c.create(tn, 0, &p)
		waitFor(c, time.Minute, "converged", func() error { return c.converged(tn) })
		id := shard.UnshardedID(tn)
		from, _ := c.attachedNode(id)
		to := 3 - from
		c.w.Crash(psName(int(to)), false)
		if err := c.api.Migrate(c.ctx, id, to); err == nil {
			t.Fatal("migration to a dead node succeeded")
		}
		c.w.Sleep(10 * time.Second) // reconciles try (and fail) to attach the destination
		if conf := c.locations(int(from))[id]; conf == nil || !conf.Mode.Attached() {
			t.Fatalf("origin ps-%d holds %+v while the destination is down: no attached location left", from, conf)
		}
		c.w.Restart(psName(int(to)))
		c.waitNodes(2)
		waitFor(c, time.Minute, "converged", func() error { return c.converged(tn) })
		c.checkPageservers(tn)
	})
}

// TestReAttachThatCompletesAMoveTellsCompute: a migration to a node that
// died right then leaves the new generation issued to it but not applied;
// the node's re-attach is what makes it hold the shard attached, so no
// reconcile attaches anything — compute must still learn the new node.
func TestReAttachThatCompletesAMoveTellsCompute(t *testing.T) {
	runClusterFull(t, 2, Config{}, clusterOpts{controlPlane: true}, func(c *cluster) {
		tn := tenantID(103)
		c.create(tn, 0, nil)
		id := shard.UnshardedID(tn)
		from, _ := c.attachedNode(id)
		to := 3 - from
		if err := c.notified(tn); err != nil {
			t.Fatal(err)
		}
		c.w.Crash(psName(int(to)), false)
		if err := c.api.Migrate(c.ctx, id, to); err == nil {
			t.Fatal("migration to a dead node succeeded")
		}
		c.w.Restart(psName(int(to)))
		c.waitNodes(2)
		waitFor(c, time.Minute, "converged", func() error {
			if n, _ := c.attachedNode(id); n != to {
				return fmt.Errorf("attached to %d", n)
			}
			return c.converged(tn)
		})
		c.checkPageservers(tn)
		waitFor(c, time.Minute, "notified", func() error { return c.notified(tn) })
	})
}

// TestUnplacedAttachmentIsNotDetached: a shard whose policy wants an
// attachment but whose intent has none (its node did not answer start-up
// and the tenant's intent is frozen) must not lose the attached location
// its node turns out to hold when it comes back: nothing replaces it.
func TestUnplacedAttachmentIsNotDetached(t *testing.T) {
	runCluster(t, 1, Config{StartupBudget: 10 * time.Second, ReconcileAllInterval: 2 * time.Second}, func(c *cluster) {
		tn := tenantID(105)
		c.create(tn, 0, nil)
		id := shard.UnshardedID(tn)
		pause := placement.ShardPause
		if err := c.api.SetTenantPolicy(c.ctx, tn, storconapi.TenantPolicyRequest{Scheduling: &pause}); err != nil {
			t.Fatal(err)
		}
		c.w.Crash("storcon", false)
		c.w.Net().Partition("storcon", psName(1))
		c.w.Restart("storcon")
		c.waitReady()
		if d := c.describe(tn).Shards[0]; d.NodeAttached != nil {
			t.Fatalf("intent attached to %d without the node answering", *d.NodeAttached)
		}
		c.w.Net().Heal()
		c.waitNodes(1)
		c.w.Sleep(10 * time.Second)
		if conf := c.locations(1)[id]; conf == nil || !conf.Mode.Attached() {
			t.Fatalf("ps-1 holds %+v: its attached location was removed with nothing to replace it", conf)
		}
		active := placement.ShardActive
		if err := c.api.SetTenantPolicy(c.ctx, tn, storconapi.TenantPolicyRequest{Scheduling: &active}); err != nil {
			t.Fatal(err)
		}
		waitFor(c, time.Minute, "converged", func() error { return c.converged(tn) })
		c.checkPageservers(tn)
	})
}

// TestFailedStoreMakesTheControllerUnready: once the store answers
// persist.ErrFailed (it must be reopened) the controller cannot change
// anything; /ready must say so (503) instead of 200.
func TestFailedStoreMakesTheControllerUnready(t *testing.T) {
	h := &storeHooks{}
	runHooked(t, 1, Config{}, h, func(c *cluster) {
		h.incrementErr = fmt.Errorf("increment: %w", persist.ErrFailed)
		if _, err := c.api.CreateTenant(c.ctx, createReq(tenantID(106))); err == nil {
			t.Fatal("create succeeded on a failed store")
		}
		st, err := c.api.Ready(c.ctx)
		if net.CodeOf(err) != net.Unavailable || st.Ready {
			t.Fatalf("/ready after the store failed: %+v %v, want 503", st, err)
		}
		if !strings.Contains(err.Error(), "store failed") {
			t.Errorf("/ready does not say why: %v", err)
		}
		if c.sc.Ready() {
			t.Error("Ready() true after the store failed")
		}
	})
}

// TestBusyComputeDoesNotHoldReconciles: compute answering 429 for good
// (each retry waits ComputeHookBusyWait) must not keep a reconcile — and
// the create waiting for it — past ReconcileNotifyTimeout: creation
// succeeds, the notification stays pending.
func TestBusyComputeDoesNotHoldReconciles(t *testing.T) {
	runCluster(t, 1, Config{ReconcileAllInterval: time.Hour}, func(c *cluster) {
		c.hook.FailNext(1<<20, 429)
		tn := tenantID(107)
		start := c.w.Now()
		if _, err := c.api.CreateTenant(c.ctx, createReq(tn)); err != nil {
			t.Fatalf("create while compute is busy: %v", err)
		}
		if took := c.w.Now() - start; took > 20*time.Second {
			t.Errorf("create took %v", took)
		}
		if !c.describe(tn).Shards[0].PendingComputeNotification {
			t.Error("no pending notification")
		}
	})
}

// TestDrainBoundedByDrainFillTimeout: a drain that has not finished within
// DrainFillTimeout ends as an unfinished one: its node Active again, not
// PauseForRestart.
func TestDrainBoundedByDrainFillTimeout(t *testing.T) {
	runCluster(t, 2, Config{DrainFillTimeout: time.Millisecond}, func(c *cluster) {
		n := c.attachedOn(1, 108)
		if err := c.api.Drain(c.ctx, 1, false); err != nil {
			t.Fatal(err)
		}
		waitFor(c, time.Minute, "drain ended", func() error {
			if p := c.nodePolicy(1); p != placement.NodeActive {
				return fmt.Errorf("node 1 policy %s", p)
			}
			return nil
		})
		c.attachedNode(n) // still described, wherever it ended
	})
}

// tenantEntries is how many tenant entries the controller keeps in memory.
func (c *cluster) tenantEntries() int {
	c.sc.lock()
	defer c.sc.mu.Unlock()
	return len(c.sc.state.tenants)
}

// TestTenantEntriesDoNotLeak: calls naming tenants that do not exist, and
// tenants deleted or dropped, leave no entry behind in memory.
func TestTenantEntriesDoNotLeak(t *testing.T) {
	runCluster(t, 1, Config{}, func(c *cluster) {
		keep := tenantID(109)
		c.create(keep, 0, nil)
		base := c.tenantEntries()
		for b := byte(110); b < 120; b++ {
			if err := c.api.DeleteTenant(c.ctx, tenantID(b)); net.CodeOf(err) != net.NotFound {
				t.Fatalf("delete of an unknown tenant: %v", err)
			}
		}
		gone, dropped := tenantID(120), tenantID(121)
		c.create(gone, 2, nil)
		c.create(dropped, 0, nil)
		if err := c.api.DeleteTenant(c.ctx, gone); err != nil {
			t.Fatal(err)
		}
		if err := c.api.DropTenant(c.ctx, dropped); err != nil {
			t.Fatal(err)
		}
		if n := c.tenantEntries(); n != base {
			t.Errorf("%d tenant entries, want %d", n, base)
		}
		if _, err := c.api.DescribeTenant(c.ctx, keep); err != nil {
			t.Error(err)
		}
	})
}

// TestCreateNotAttachedIsNotSuccess: a (retried) create whose shard's
// attached node is unavailable must not answer success naming that node:
// the reconcile had nothing to do there, the tenant is not attached.
func TestCreateNotAttachedIsNotSuccess(t *testing.T) {
	cfg := Config{HeartbeatInterval: time.Second, HeartbeatTimeout: 500 * time.Millisecond, OfflineAfter: 3 * time.Second}
	runCluster(t, 1, cfg, func(c *cluster) {
		tn := tenantID(122)
		c.create(tn, 0, nil)
		c.w.Crash(psName(1), false)
		waitFor(c, time.Minute, "node offline", func() error {
			nodes, err := c.api.ListNodes(c.ctx)
			if err != nil {
				return err
			}
			if nodes[0].Availability != placement.Offline {
				return fmt.Errorf("node 1 is %s", nodes[0].Availability)
			}
			return nil
		})
		resp, err := c.api.CreateTenant(c.ctx, createReq(tn))
		if err == nil {
			t.Fatalf("create answered success with its only node offline: %+v", resp)
		}
		if net.CodeOf(err) != net.DeadlineExceeded {
			t.Errorf("create: %v, want DeadlineExceeded (408: stored, not attached yet)", err)
		}
		c.w.Restart(psName(1))
		c.waitNodes(1)
		if _, err := c.api.CreateTenant(c.ctx, createReq(tn)); err != nil {
			t.Errorf("create once the node is back: %v", err)
		}
	})
}

// TestValidateReadsTheStoreOncePerTenant: validating every shard of a
// sharded tenant reads the store once, not once per shard, and still
// answers from memory and store both.
func TestValidateReadsTheStoreOncePerTenant(t *testing.T) {
	h := &storeHooks{}
	runHooked(t, 2, Config{}, h, func(c *cluster) {
		tn := tenantID(123)
		c.create(tn, 4, nil)
		var req storconapi.ValidateRequest
		for _, sh := range c.describe(tn).Shards {
			req.Tenants = append(req.Tenants, storconapi.ValidateTenant{ID: sh.TenantShardID, Gen: *sh.Generation})
		}
		req.Tenants[3].Gen-- // an old generation: invalid
		h.reads = 0
		resp, err := c.api.Validate(c.ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		if h.reads != 1 {
			t.Errorf("%d store reads to validate 4 shards of one tenant", h.reads)
		}
		if len(resp.Tenants) != 4 {
			t.Fatalf("answer %+v", resp.Tenants)
		}
		for i, rt := range resp.Tenants {
			if rt.Valid != (i != 3) {
				t.Errorf("shard %s valid=%v", rt.ID, rt.Valid)
			}
		}
	})
}

// TestStaleReconcileBacksOff: a reconcile that finds a newer generation
// issued while it issued its own (a re-attach, simulated here each time)
// runs again after a pause, not at once in a tight loop.
func TestStaleReconcileBacksOff(t *testing.T) {
	h := &storeHooks{}
	runHooked(t, 2, Config{}, h, func(c *cluster) {
		tn := tenantID(124)
		c.create(tn, 0, nil)
		id := shard.UnshardedID(tn)
		stale := 0
		h.afterIncrement = func(ctx context.Context, inner persist.Store, sid shard.TenantShardID, node persist.NodeID, g layer.Generation) {
			if sid != id || stale >= 200 {
				return
			}
			stale++
			// Another generation is issued (and recorded) meanwhile.
			g2, err := inner.IncrementGeneration(ctx, sid, node)
			if err != nil {
				t.Errorf("increment: %v", err)
				return
			}
			c.sc.lock()
			defer c.sc.mu.Unlock()
			if err := c.sc.state.shards[sid].st.SetGeneration(placement.Gen(uint32(g2)), placement.NodeID(node)); err != nil {
				t.Errorf("set generation: %v", err)
			}
		}
		from, _ := c.attachedNode(id)
		before := c.reconcileSpawns()
		// A migration (then the reconciles finishing it) needs a new
		// generation; every one finds another issued meanwhile.
		_ = c.api.Migrate(c.ctx, id, 3-from)
		c.w.Sleep(5 * time.Second)
		if n := c.reconcileSpawns() - before; n > 30 {
			t.Errorf("%v reconciles in 5s for one shard whose reconciles keep finding it changed", n)
		}
		h.afterIncrement = nil
	})
}

// TestReconcileStopsOnAStaleIntent: a reconcile whose shard's intent
// changed after its snapshot was taken (here: moved to node B, then back
// to A, the reconcile still working for B) must not issue a generation for
// B or detach A, which intent attaches again.
func TestReconcileStopsOnAStaleIntent(t *testing.T) {
	runCluster(t, 2, Config{}, func(c *cluster) {
		tn := tenantID(125)
		c.create(tn, 0, nil)
		id := shard.UnshardedID(tn)
		a, g0 := c.attachedNode(id)
		b := 3 - a
		stop := placement.ShardStop // no reconcile of its own interferes
		if err := c.api.SetTenantPolicy(c.ctx, tn, storconapi.TenantPolicyRequest{Scheduling: &stop}); err != nil {
			t.Fatal(err)
		}
		s := c.sc
		s.lock()
		e := s.state.shards[id]
		e.st.SchedulingPolicy = placement.ShardActive // lets the moves below change intent
		move := func(to uint64) {
			if err := e.st.MoveAttached(s.state.sched, placement.NodeID(to)); err != nil {
				t.Fatal(err)
			}
			if err := e.st.Schedule(s.state.sched); err != nil {
				t.Fatal(err)
			}
		}
		move(b)
		job := s.jobLocked(e) // attach B, then detach A
		move(a)
		e.st.SchedulingPolicy = placement.ShardStop
		s.mu.Unlock()

		err := s.reconcile(c.ctx, job)
		if !errors.Is(err, errStale) {
			t.Errorf("stale reconcile: %v, want errStale", err)
		}
		if conf := c.locations(int(a))[id]; conf == nil || conf.Mode != pageapi.ModeAttachedSingle {
			t.Errorf("ps-%d (attached in intent) holds %+v after a stale reconcile", a, conf)
		}
		if conf := c.locations(int(b))[id]; conf != nil {
			t.Errorf("ps-%d (not in intent) holds %+v after a stale reconcile", b, conf)
		}
		if _, g := c.attachedNode(id); g != g0 {
			t.Errorf("generation %d → %d issued for a stale intent", g0, g)
		}
	})
}

// slowDemote wraps the controller's pageserver clients: a location config
// that is not attached, sent to node for shard id while armed, waits delay
// before it goes out, and done is set once the node has answered it.
type slowDemote struct {
	hc    net.HTTPClient
	env   node.Env
	node  uint64
	state *slowDemoteState
}

type slowDemoteState struct {
	armed      bool
	node       uint64
	id         shard.TenantShardID
	delay      time.Duration
	sent, done bool
}

func (d slowDemote) Do(ctx context.Context, req *net.HTTPRequest, in, out any) (int, error) {
	st := d.state
	conf, ok := in.(pageapi.LocationConfig)
	slow := ok && st.armed && d.node == st.node && !conf.Mode.Attached() && strings.Contains(req.Path, st.id.String())
	if !slow {
		return d.hc.Do(ctx, req, in, out)
	}
	st.sent = true
	if err := clock.Sleep(ctx, d.env.Clock, st.delay); err != nil {
		return 0, err
	}
	status, err := d.hc.Do(ctx, req, in, out)
	st.done = st.done || err == nil
	return status, err
}

// TestPolicyBackToAttachedWaitsForTheEarlierDemotion: a Secondary policy's
// reconcile demotes the attached location; the tenant is set back to
// Attached while that demotion is on its way. The demotion cannot be
// called back, so the second policy call must not answer before it has
// landed: otherwise a tenant acknowledged as Attached loses its only
// attached location afterwards, to a node that is alive. The shard is then
// attached again.
func TestPolicyBackToAttachedWaitsForTheEarlierDemotion(t *testing.T) {
	st := &slowDemoteState{delay: 5 * time.Second}
	prep := func(env node.Env, cfg *Config) {
		cfg.DialPageserver = func(addr string) net.HTTPClient {
			var n uint64
			fmt.Sscanf(addr, "ps-%d:", &n)
			return slowDemote{hc: net.DialHTTP{Net: env.Net, Addr: addr}, env: env, node: n, state: st}
		}
	}
	runClusterFull(t, 2, Config{}, clusterOpts{prep: prep}, func(c *cluster) {
		tn := tenantID(95)
		c.create(tn, 0, nil)
		id := shard.UnshardedID(tn)
		from, g0 := c.attachedNode(id)
		st.armed, st.node, st.id = true, from, id
		sec := placement.Secondary()
		if err := c.api.SetTenantPolicy(c.ctx, tn, storconapi.TenantPolicyRequest{Placement: &sec}); err != nil {
			t.Fatalf("policy Secondary: %v", err)
		}
		waitFor(c, time.Minute, "demotion sent", func() error {
			if !st.sent {
				return fmt.Errorf("ps-%d not told to give up the attachment yet", from)
			}
			return nil
		})
		if st.done {
			t.Fatal("the demotion landed before the test could change the policy (delay too short)")
		}
		att := placement.Attached(0)
		if err := c.api.SetTenantPolicy(c.ctx, tn, storconapi.TenantPolicyRequest{Placement: &att}); err != nil {
			t.Fatalf("policy Attached: %v", err)
		}
		if !st.done {
			t.Errorf("policy Attached acknowledged while the Secondary policy's demotion of ps-%d was still on its way", from)
		}
		st.armed = false
		waitFor(c, time.Minute, "attached again", func() error { return c.converged(tn) })
		c.checkPageservers(tn)
		if _, g := c.attachedNode(id); g <= g0 {
			t.Errorf("attached again with generation %d, not above %d", g, g0)
		}
	})
}
