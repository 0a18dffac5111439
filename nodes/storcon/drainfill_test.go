package storcon

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stratadb/strata/engine/layer"
	"github.com/stratadb/strata/engine/placement"
	"github.com/stratadb/strata/engine/shard"
	"github.com/stratadb/strata/nodes/node"
	"github.com/stratadb/strata/nodes/storcon/persist"
	"github.com/stratadb/strata/sim/simnet"
)

func (c *cluster) nodePolicy(id uint64) placement.NodePolicy {
	c.t.Helper()
	nodes, err := c.api.ListNodes(c.ctx)
	if err != nil {
		c.t.Fatal(err)
	}
	for _, n := range nodes {
		if n.ID == id {
			return n.Scheduling
		}
	}
	c.t.Fatalf("node %d unknown", id)
	return 0
}

func (c *cluster) attachedCount(id uint64, tns ...shard.TenantID) int {
	n := 0
	for _, tn := range tns {
		for _, sh := range c.describe(tn).Shards {
			if sh.NodeAttached != nil && *sh.NodeAttached == id {
				n++
			}
		}
	}
	return n
}

func TestDrainAndFill(t *testing.T) {
	// One migration at a time, so that a cancelled drain leaves some.
	runCluster(t, 3, Config{DrainFillConcurrency: 1}, func(c *cluster) {
		var tns []shard.TenantID
		for b := byte(60); b < 64; b++ {
			p := placement.Attached(1)
			c.create(tenantID(b), 2, &p)
			tns = append(tns, tenantID(b))
		}
		if c.attachedCount(1, tns...) == 0 {
			t.Fatal("nothing attached to node 1 to drain")
		}
		if err := c.api.Drain(c.ctx, 1, false); err != nil {
			t.Fatal(err)
		}
		waitFor(c, 5*time.Minute, "drained", func() error {
			if p := c.nodePolicy(1); p != placement.NodePauseForRestart {
				return fmt.Errorf("node 1 policy %s", p)
			}
			return nil
		})
		if n := c.attachedCount(1, tns...); n != 0 {
			t.Errorf("%d shards still attached to the drained node", n)
		}
		for _, tn := range tns {
			waitFor(c, time.Minute, "converged", func() error { return c.converged(tn) })
			c.checkPageservers(tn)
			if err := c.notified(tn); err != nil {
				t.Error(err)
			}
		}
		// A node paused for restart takes no fill until it is Active.
		if err := c.api.Fill(c.ctx, 1, false); err == nil {
			t.Error("fill of a PauseForRestart node started")
		}
		active := placement.NodeActive
		if err := c.api.NodeConfig(c.ctx, 1, nodeConfigScheduling(active)); err != nil {
			t.Fatal(err)
		}
		if err := c.api.Fill(c.ctx, 1, false); err != nil {
			t.Fatal(err)
		}
		waitFor(c, 5*time.Minute, "filled", func() error {
			if p := c.nodePolicy(1); p != placement.NodeActive {
				return fmt.Errorf("node 1 policy %s", p)
			}
			return nil
		})
		// 8 shards on 3 nodes: node 1 gets its share (8/3 = 2).
		if n := c.attachedCount(1, tns...); n < 2 {
			t.Errorf("node 1 holds %d attachments after the fill", n)
		}
		for _, tn := range tns {
			waitFor(c, time.Minute, "converged", func() error { return c.converged(tn) })
			c.checkPageservers(tn)
		}
		if _, err := c.api.ConsistencyCheck(c.ctx); err != nil {
			t.Errorf("consistency check: %v", err)
		}
		// Cancelling a drain (slowed down so it is still running) sets the
		// node Active again and leaves the rest where it was (the migration
		// in flight, whose intent already moved, is completed by the
		// reconciler).
		slow := c.w.Net().SlowLink("storcon", psName(2), simnet.Latency{Base: 2 * time.Second})
		before := c.attachedCount(2, tns...)
		if err := c.api.Drain(c.ctx, 2, false); err != nil {
			t.Fatal(err)
		}
		if err := c.api.Drain(c.ctx, 2, true); err != nil {
			t.Fatalf("cancel drain: %v", err)
		}
		if p := c.nodePolicy(2); p != placement.NodeActive {
			t.Errorf("node 2 after a cancelled drain: %s", p)
		}
		slow()
		if after := c.attachedCount(2, tns...); after == 0 || before < 2 {
			t.Errorf("node 2 held %d attachments, %d after a cancelled drain", before, after)
		}
		for _, tn := range tns {
			waitFor(c, time.Minute, "converged", func() error { return c.converged(tn) })
			c.checkPageservers(tn)
		}
		if err := c.api.Drain(c.ctx, 2, true); err == nil {
			t.Error("cancelling a drain that does not run succeeded")
		}
	})
}

func TestDeleteNodeMovesShards(t *testing.T) {
	runCluster(t, 3, Config{}, func(c *cluster) {
		var tns []shard.TenantID
		for b := byte(70); b < 73; b++ {
			p := placement.Attached(1)
			c.create(tenantID(b), 2, &p)
			tns = append(tns, tenantID(b))
		}
		if err := c.api.DeleteNode(c.ctx, 3); err != nil {
			t.Fatalf("delete node: %v", err)
		}
		nodes, _ := c.api.ListNodes(c.ctx)
		if len(nodes) != 2 {
			t.Errorf("nodes after delete: %+v", nodes)
		}
		for _, tn := range tns {
			for _, sh := range c.describe(tn).Shards {
				if *sh.NodeAttached == 3 || len(sh.NodeSecondary) != 1 || sh.NodeSecondary[0] == 3 {
					t.Errorf("shard %s still on node 3: %+v", sh.TenantShardID, sh)
				}
			}
		}
		if locs := c.locations(3); len(locs) != 0 {
			t.Errorf("deleted node still holds %d locations", len(locs))
		}
		rows, _ := c.sc.store.ListNodes(c.ctx)
		for _, r := range rows {
			if r.ID == 3 && r.Lifecycle != persist.LifecycleDeleted {
				t.Errorf("node row %+v", r)
			}
		}
		if _, err := c.api.ConsistencyCheck(c.ctx); err != nil {
			t.Errorf("consistency check: %v", err)
		}
	})
}

// failingStore fails IncrementGeneration while fail is set: the store is
// unreachable right when a generation is needed.
type failingStore struct {
	persist.Store
	fail *bool
}

func (f failingStore) IncrementGeneration(ctx context.Context, id shard.TenantShardID, node persist.NodeID) (layer.Generation, error) {
	if *f.fail {
		return 0, fmt.Errorf("test: store unreachable")
	}
	return f.Store.IncrementGeneration(ctx, id, node)
}

// TestGenerationPersistedBeforeAttach: while the store cannot issue a
// generation, nothing is attached with one — a pageserver never holds a
// generation the store has not issued. The planted bug
// GenerationPersistAfterAttach sends it first, which this catches.
func TestGenerationPersistedBeforeAttach(t *testing.T) {
	for _, bug := range []bool{false, true} {
		t.Run(fmt.Sprintf("GenerationPersistAfterAttach=%v", bug), func(t *testing.T) {
			fail := false
			var store persist.Store
			cfg := Config{Bugs: Bugs{GenerationPersistAfterAttach: bug}}
			runClusterWith(t, 2, cfg, func(env node.Env) persist.Store {
				if store == nil {
					s, err := persist.OpenDisk(env.Clock, env.Disk, "ctl", persist.DiskConfig{})
					if err != nil {
						t.Fatal(err)
					}
					store = failingStore{Store: s, fail: &fail}
				}
				return store
			}, func(c *cluster) {
				tn := tenantID(80)
				fail = true
				_, err := c.api.CreateTenant(c.ctx, createReq(tn))
				if err == nil && !bug {
					t.Fatal("create succeeded without a generation")
				}
				id := shard.UnshardedID(tn)
				stored, _, _ := store.Generation(c.ctx, id)
				held := uint32(0)
				for i := 1; i <= 2; i++ {
					if conf := c.locations(i)[id]; conf != nil && conf.Generation != nil {
						held = max(held, *conf.Generation)
					}
				}
				if bug != (held > uint32(stored)) {
					t.Errorf("a pageserver holds generation %d, the store issued %d (bug %v)", held, stored, bug)
				}
			})
		})
	}
}
