package storcon

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/stratadb/strata/engine/placement"
	"github.com/stratadb/strata/engine/shard"
	"github.com/stratadb/strata/net"
	"github.com/stratadb/strata/nodes/pageserver/pageapi"
	"github.com/stratadb/strata/nodes/storcon/storconapi"
)

// notified checks the compute hook's last notification for t names the
// attached node of every shard (and the stripe size only when sharded).
func (c *cluster) notified(t shard.TenantID) error {
	d, err := c.api.DescribeTenant(c.ctx, t)
	if err != nil {
		return err
	}
	last, ok := c.hook.Last(t)
	if !ok {
		return fmt.Errorf("tenant %s: no notification", t)
	}
	var want []storconapi.NotifyAttachShard
	for _, sh := range d.Shards {
		if sh.NodeAttached == nil {
			return fmt.Errorf("shard %s not attached", sh.TenantShardID)
		}
		want = append(want, storconapi.NotifyAttachShard{NodeID: *sh.NodeAttached, ShardNumber: sh.TenantShardID.Shard.Number})
	}
	if !slices.Equal(last.Shards, want) {
		return fmt.Errorf("tenant %s: notified %+v, attached %+v", t, last.Shards, want)
	}
	if sharded := d.ShardCount > 1; sharded != (last.StripeSize != nil) {
		return fmt.Errorf("tenant %s with %d shards: stripe_size %v", t, d.ShardCount, last.StripeSize)
	}
	return nil
}

func TestCreateTenantAttachesAndNotifies(t *testing.T) {
	runCluster(t, 3, Config{}, func(c *cluster) {
		unsharded, sharded := tenantID(1), tenantID(2)
		resp := c.create(unsharded, 0, nil)
		if len(resp.Shards) != 1 || resp.Shards[0].ShardID != shard.UnshardedID(unsharded).String() || resp.Shards[0].NodeID == 0 {
			t.Fatalf("create unsharded: %+v", resp)
		}
		resp = c.create(sharded, 4, nil)
		if len(resp.Shards) != 4 {
			t.Fatalf("create sharded: %+v", resp)
		}
		nodes := map[uint64]int{}
		for _, s := range resp.Shards {
			nodes[s.NodeID]++
		}
		if len(nodes) != 3 {
			t.Errorf("4 shards on %d of 3 nodes: %+v (affinity should spread them)", len(nodes), resp.Shards)
		}
		for _, tn := range []shard.TenantID{unsharded, sharded} {
			if err := c.converged(tn); err != nil {
				t.Fatal(err)
			}
			c.checkPageservers(tn)
			if err := c.notified(tn); err != nil {
				t.Error(err)
			}
		}
		// A retried create answers the same shards; another count conflicts.
		again := c.create(sharded, 4, nil)
		if !slices.Equal(again.Shards, resp.Shards) {
			t.Errorf("retried create: %+v, first %+v", again.Shards, resp.Shards)
		}
		if _, err := c.api.CreateTenant(c.ctx, storconapi.TenantCreateRequest{NewTenantID: sharded, ShardParameters: storconapi.ShardParameters{Count: 2}}); err == nil {
			t.Error("create with another shard count succeeded")
		}
		if _, err := c.api.ConsistencyCheck(c.ctx); err != nil {
			t.Errorf("consistency check: %v", err)
		}
	})
}

func TestCreateUnschedulableStoresNothing(t *testing.T) {
	runCluster(t, 2, Config{}, func(c *cluster) {
		// Attached{2} needs three nodes.
		p := placement.Attached(2)
		_, err := c.api.CreateTenant(c.ctx, storconapi.TenantCreateRequest{NewTenantID: tenantID(3), ShardParameters: storconapi.ShardParameters{Count: 2}, PlacementPolicy: &p})
		if err == nil {
			t.Fatal("create with an unschedulable policy succeeded")
		}
		if _, err := c.api.DescribeTenant(c.ctx, tenantID(3)); err == nil {
			t.Error("the tenant exists after a failed create")
		}
		rows, err := c.sc.store.ListTenantShards(c.ctx)
		if err != nil || len(rows) != 0 {
			t.Errorf("store rows after a failed create: %v %v", rows, err)
		}
		if _, err := c.api.ConsistencyCheck(c.ctx); err != nil {
			t.Errorf("consistency check: %v", err)
		}
	})
}

func waitFor(c *cluster, d time.Duration, what string, cond func() error) {
	c.eventually(d, what, cond)
}

// attachedNode returns shard id's attached node and generation.
func (c *cluster) attachedNode(id shard.TenantShardID) (uint64, uint32) {
	c.t.Helper()
	for _, sh := range c.describe(id.TenantID).Shards {
		if sh.TenantShardID == id {
			if sh.NodeAttached == nil || sh.Generation == nil {
				c.t.Fatalf("shard %s: attached %v generation %v", id, sh.NodeAttached, sh.Generation)
			}
			return *sh.NodeAttached, *sh.Generation
		}
	}
	c.t.Fatalf("shard %s unknown", id)
	return 0, 0
}

func TestMigrate(t *testing.T) {
	runCluster(t, 3, Config{}, func(c *cluster) {
		tn := tenantID(4)
		c.create(tn, 0, nil)
		id := shard.UnshardedID(tn)
		from, g1 := c.attachedNode(id)
		to := from%3 + 1
		if err := c.api.Migrate(c.ctx, id, to); err != nil {
			t.Fatalf("migrate %d → %d: %v", from, to, err)
		}
		now, g2 := c.attachedNode(id)
		if now != to || g2 <= g1 {
			t.Fatalf("after migrate: attached %d gen %d (before %d gen %d, wanted node %d, higher gen)", now, g2, from, g1, to)
		}
		waitFor(c, time.Minute, "converged", func() error { return c.converged(tn) })
		c.checkPageservers(tn)
		// Attached{0}: the origin was detached after the move.
		if conf := c.locations(int(from))[id]; conf != nil {
			t.Errorf("origin ps-%d still holds %+v", from, conf)
		}
		if err := c.notified(tn); err != nil {
			t.Error(err)
		}
		// Migrating to where it is changes nothing; to an unknown node is 404.
		if err := c.api.Migrate(c.ctx, id, to); err != nil {
			t.Errorf("migrate to the same node: %v", err)
		}
		if _, g3 := c.attachedNode(id); g3 != g2 {
			t.Errorf("migrate to the same node changed the generation %d → %d", g2, g3)
		}
		if err := c.api.Migrate(c.ctx, id, 99); err == nil {
			t.Error("migrate to an unknown node succeeded")
		}
	})
}

func TestMigrateKeepsSecondaryWithAttached1(t *testing.T) {
	runCluster(t, 3, Config{}, func(c *cluster) {
		tn := tenantID(5)
		p := placement.Attached(1)
		c.create(tn, 0, &p)
		id := shard.UnshardedID(tn)
		waitFor(c, time.Minute, "converged", func() error { return c.converged(tn) })
		d := c.describe(tn).Shards[0]
		if len(d.NodeSecondary) != 1 {
			t.Fatalf("Attached{1}: secondaries %v", d.NodeSecondary)
		}
		from, sec := *d.NodeAttached, d.NodeSecondary[0]
		if err := c.api.Migrate(c.ctx, id, sec); err != nil {
			t.Fatalf("migrate to the secondary: %v", err)
		}
		waitFor(c, time.Minute, "converged", func() error { return c.converged(tn) })
		d = c.describe(tn).Shards[0]
		if *d.NodeAttached != sec || len(d.NodeSecondary) != 1 {
			t.Fatalf("after migrate: attached %d secondaries %v", *d.NodeAttached, d.NodeSecondary)
		}
		c.checkPageservers(tn)
		// The origin kept a warm secondary (it was the newest, so it stays
		// unless the policy trims it; either way one secondary exists).
		secNode := d.NodeSecondary[0]
		conf := c.locations(int(secNode))[id]
		if conf == nil || conf.Mode != "Secondary" || conf.SecondaryConf == nil || !conf.SecondaryConf.Warm {
			t.Errorf("secondary ps-%d holds %+v (origin was %d)", secNode, conf, from)
		}
	})
}

func TestNodeOfflineMovesAttached(t *testing.T) {
	runCluster(t, 3, Config{}, func(c *cluster) {
		warm, cold := tenantID(6), tenantID(7)
		p1 := placement.Attached(1)
		c.create(warm, 0, &p1)
		waitFor(c, time.Minute, "converged", func() error { return c.converged(warm) })
		wid := shard.UnshardedID(warm)
		d := c.describe(warm).Shards[0]
		victim, sec := *d.NodeAttached, d.NodeSecondary[0]
		// A cold tenant on the same node (Attached{0}): it moves to a fresh node.
		var cid shard.TenantShardID
		for b := byte(0); ; b++ {
			c.create(tenantID(7+b), 0, nil)
			cid = shard.UnshardedID(tenantID(7 + b))
			if n, _ := c.attachedNode(cid); n == victim {
				cold = tenantID(7 + b)
				break
			}
		}
		_, coldGen := c.attachedNode(cid)
		_, warmGen := c.attachedNode(wid)

		c.w.Crash(psName(int(victim)), false)
		waitFor(c, 2*time.Minute, "node offline", func() error {
			nodes, err := c.api.ListNodes(c.ctx)
			if err != nil {
				return err
			}
			for _, n := range nodes {
				if n.ID == victim && n.Availability != placement.Offline {
					return fmt.Errorf("node %d is %s", victim, n.Availability)
				}
			}
			return nil
		})
		waitFor(c, 2*time.Minute, "failover", func() error {
			for _, tn := range []shard.TenantID{warm, cold} {
				if err := c.converged(tn); err != nil {
					return err
				}
			}
			return nil
		})
		if n, g := c.attachedNode(wid); n != sec || g <= warmGen {
			t.Errorf("warm shard: attached %d gen %d, want the secondary %d with a gen above %d", n, g, sec, warmGen)
		}
		if n, g := c.attachedNode(cid); n == victim || g <= coldGen {
			t.Errorf("cold shard: attached %d gen %d, want off node %d with a gen above %d", n, g, victim, coldGen)
		}
		for _, tn := range []shard.TenantID{warm, cold} {
			c.checkPageservers(tn)
			if err := c.notified(tn); err != nil {
				t.Error(err)
			}
		}
		// The node comes back (no re-attach: a partition, say): its stale
		// attachment is read back and cleaned up.
		c.w.Restart(psName(int(victim)))
		c.waitNodes(3)
		waitFor(c, time.Minute, "cleanup", func() error {
			for _, tn := range []shard.TenantID{warm, cold} {
				if err := c.converged(tn); err != nil {
					return err
				}
			}
			if conf := c.locations(int(victim))[cid]; conf != nil {
				return fmt.Errorf("ps-%d still holds %s: %+v", victim, cid, conf)
			}
			return nil
		})
		c.checkPageservers(warm)
		c.checkPageservers(cold)
	})
}

// checkReAttachBumps has node n re-attach and checks the answer: every
// shard attached there comes back AttachedSingle with a generation above
// the one it had, the store holds that generation, and the node is
// WarmingUp until its next heartbeat. It returns what is wrong.
func (c *cluster) checkReAttachBumps(n uint64, ids []shard.TenantShardID) error {
	before := map[shard.TenantShardID]uint32{}
	for _, id := range ids {
		_, g := c.attachedNode(id)
		before[id] = g
	}
	gapi := storconapi.Client{HTTP: c.api.HTTP, Token: c.api.Token}
	resp, err := gapi.ReAttach(c.ctx, storconapi.ReAttachRequest{NodeID: n})
	if err != nil {
		return err
	}
	got := map[shard.TenantShardID]storconapi.ReAttachTenant{}
	for _, rt := range resp.Tenants {
		got[rt.ID] = rt
	}
	for _, id := range ids {
		rt, ok := got[id]
		switch {
		case !ok:
			return fmt.Errorf("re-attach of node %d does not list %s: %+v", n, id, resp.Tenants)
		case rt.Mode != "AttachedSingle" || rt.Gen == nil:
			return fmt.Errorf("re-attach answers %s as %+v", id, rt)
		case *rt.Gen <= before[id]:
			return fmt.Errorf("re-attach answers %s with generation %d, not above %d", id, *rt.Gen, before[id])
		}
		g, gn, err := c.sc.store.Generation(c.ctx, id)
		if err != nil || uint32(g) != *rt.Gen || uint64(gn) != n {
			return fmt.Errorf("store holds %s at generation %d node %d (%v), answered %d", id, g, gn, err, *rt.Gen)
		}
	}
	return nil
}

// attachedOn creates unsharded tenants until one lands on node n.
func (c *cluster) attachedOn(n uint64, first byte) shard.TenantShardID {
	for b := first; ; b++ {
		c.create(tenantID(b), 0, nil)
		id := shard.UnshardedID(tenantID(b))
		if got, _ := c.attachedNode(id); got == n {
			return id
		}
	}
}

func TestReAttachBumpsGenerations(t *testing.T) {
	runCluster(t, 2, Config{}, func(c *cluster) {
		id := c.attachedOn(1, 10)
		if err := c.checkReAttachBumps(1, []shard.TenantShardID{id}); err != nil {
			t.Fatal(err)
		}
		nodes, _ := c.api.ListNodes(c.ctx)
		if nodes[0].Availability != placement.WarmingUp {
			t.Errorf("node 1 after re-attach: %s, want WarmingUp", nodes[0].Availability)
		}
		c.waitNodes(2) // the next heartbeat makes it Active
		// Do what the pageserver does with the answer: attach with the new
		// generation.
		_, g := c.attachedNode(id)
		conf := pageapi.LocationConfig{Mode: pageapi.ModeAttachedSingle, Generation: &g, ShardStripeSize: shard.DefaultStripeSize, TenantConf: &pageapi.TenantConf{}}
		if _, err := c.psClient(1).Do(c.ctx, &net.HTTPRequest{Method: "PUT", Path: "/v1/tenant/" + id.String() + "/location_config"}, conf, nil); err != nil {
			t.Fatal(err)
		}
		waitFor(c, time.Minute, "converged", func() error { return c.converged(id.TenantID) })
		c.checkPageservers(id.TenantID)
		// Re-attach also answers secondaries, without a generation.
		p := placement.Attached(1)
		c.create(tenantID(40), 0, &p)
		waitFor(c, time.Minute, "converged", func() error { return c.converged(tenantID(40)) })
		sec := c.describe(tenantID(40)).Shards[0].NodeSecondary[0]
		resp, err := c.api.ReAttach(c.ctx, storconapi.ReAttachRequest{NodeID: sec})
		if err != nil {
			t.Fatal(err)
		}
		found := false
		for _, rt := range resp.Tenants {
			if rt.ID == shard.UnshardedID(tenantID(40)) {
				found = rt.Mode == "Secondary" && rt.Gen == nil
			}
		}
		if !found {
			t.Errorf("re-attach of node %d: %+v lacks the secondary", sec, resp.Tenants)
		}
		if _, err := c.api.ReAttach(c.ctx, storconapi.ReAttachRequest{NodeID: 77}); err == nil {
			t.Error("re-attach of an unknown node succeeded")
		}
	})
}

// TestReAttachNoBumpIsCaught: the planted bug answers the stored
// generation, which checkReAttachBumps reports.
func TestReAttachNoBumpIsCaught(t *testing.T) {
	runCluster(t, 2, Config{Bugs: Bugs{ReAttachNoBump: true}}, func(c *cluster) {
		id := c.attachedOn(1, 10)
		if err := c.checkReAttachBumps(1, []shard.TenantShardID{id}); err == nil {
			t.Fatal("re-attach without a bump passed the check")
		}
	})
}

func validateOne(c *cluster, id shard.TenantShardID, gen uint32) (valid, listed bool) {
	c.t.Helper()
	resp, err := c.api.Validate(c.ctx, storconapi.ValidateRequest{Tenants: []storconapi.ValidateTenant{{ID: id, Gen: gen}}})
	if err != nil {
		c.t.Fatalf("validate: %v", err)
	}
	for _, v := range resp.Tenants {
		if v.ID == id {
			return v.Valid, true
		}
	}
	return false, false
}

func TestValidate(t *testing.T) {
	for _, bug := range []bool{false, true} {
		t.Run(fmt.Sprintf("ValidateMemoryOnly=%v", bug), func(t *testing.T) {
			runCluster(t, 2, Config{Bugs: Bugs{ValidateMemoryOnly: bug}}, func(c *cluster) {
				c.create(tenantID(20), 0, nil)
				id := shard.UnshardedID(tenantID(20))
				n, g := c.attachedNode(id)
				if v, ok := validateOne(c, id, g); !v || !ok {
					t.Errorf("current generation %d: valid %v listed %v", g, v, ok)
				}
				if err := c.api.Migrate(c.ctx, id, n%2+1); err != nil {
					t.Fatal(err)
				}
				if v, ok := validateOne(c, id, g); v || !ok {
					t.Errorf("stale generation %d after a migration: valid %v listed %v", g, v, ok)
				}
				if _, ok := validateOne(c, shard.UnshardedID(tenantID(99)), 1); ok {
					t.Error("an unknown shard is listed")
				}
				// Another issuer moved the store on (memory is now behind):
				// only the store knows, and validate must ask it.
				_, g = c.attachedNode(id)
				if _, err := c.sc.store.IncrementGeneration(c.ctx, id, 2); err != nil {
					t.Fatal(err)
				}
				v, _ := validateOne(c, id, g)
				if v != bug {
					t.Errorf("generation %d superseded in the store only: valid %v (bug %v)", g, v, bug)
				}
			})
		})
	}
}

// TestPageserverRestartReAttaches: real pageservers that re-attach at
// start (nodes/pageserver's control plane client). A pageserver that
// restarts gets every shard attached there back with a higher generation,
// is WarmingUp, then Active, and holds exactly what the controller wants.
func TestPageserverRestartReAttaches(t *testing.T) {
	runClusterFull(t, 3, Config{}, clusterOpts{controlPlane: true}, func(c *cluster) {
		p := placement.Attached(1)
		tns := []shard.TenantID{tenantID(41), tenantID(42)}
		c.create(tns[0], 0, &p)
		c.create(tns[1], 3, nil)
		for _, tn := range tns {
			waitFor(c, time.Minute, "converged", func() error { return c.converged(tn) })
		}
		gens := c.view(tns...)
		victim := gens[shard.UnshardedID(tns[0])].attached
		c.w.Crash(psName(int(victim)), false)
		c.w.Sleep(2 * time.Second) // well below OfflineAfter: no failover
		c.w.Restart(psName(int(victim)))
		// The pageserver serves once it has re-attached.
		waitFor(c, time.Minute, "pageserver up", func() error {
			_, err := c.psClient(int(victim)).Do(c.ctx, &net.HTTPRequest{Method: "GET", Path: "/v1/utilization"}, nil, nil)
			return err
		})
		c.waitNodes(3)
		for _, tn := range tns {
			waitFor(c, time.Minute, "converged", func() error { return c.converged(tn) })
			c.checkPageservers(tn)
		}
		for id, v := range c.view(tns...) {
			old := gens[id]
			switch {
			case old.attached == victim && (v.attached != victim || v.gen <= old.gen):
				t.Errorf("shard %s on the restarted node: %+v → %+v, want kept with a higher generation", id, old, v)
			case old.attached != victim && (v.attached != old.attached || v.gen != old.gen):
				t.Errorf("shard %s elsewhere changed: %+v → %+v", id, old, v)
			}
		}
		if _, err := c.api.ConsistencyCheck(c.ctx); err != nil {
			t.Errorf("consistency check: %v", err)
		}
	})
}
