package storcon

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stratadb/strata/engine/placement"
	"github.com/stratadb/strata/engine/shard"
	"github.com/stratadb/strata/net"
	"github.com/stratadb/strata/nodes/pageserver/pageapi"
	"github.com/stratadb/strata/nodes/storcon/persist"
	"github.com/stratadb/strata/nodes/storcon/storconapi"
)

// timelinesOn lists the timelines pageserver i holds for shard id.
func (c *cluster) timelinesOn(i uint64, id shard.TenantShardID) []shard.TimelineID {
	c.t.Helper()
	var infos []pageapi.TimelineInfo
	if _, err := c.psClient(int(i)).Do(c.ctx, &net.HTTPRequest{Method: "GET", Path: "/v1/tenant/" + id.String() + "/timeline"}, nil, &infos); err != nil {
		c.t.Fatalf("ps-%d timelines of %s: %v", i, id, err)
	}
	var out []shard.TimelineID
	for _, in := range infos {
		out = append(out, in.TimelineID)
	}
	return out
}

func TestTimelinesFanOutAndTenantDelete(t *testing.T) {
	runCluster(t, 3, Config{}, func(c *cluster) {
		tn := tenantID(30)
		c.create(tn, 3, nil)
		tl := shard.TimelineID{0xaa}
		info, err := c.api.CreateTimeline(c.ctx, tn, pageapi.TimelineCreateRequest{NewTimelineID: tl})
		if err != nil {
			t.Fatalf("create timeline: %v", err)
		}
		if info.TimelineID != tl || !strings.HasPrefix(info.TenantID, tn.String()) {
			t.Errorf("answer %+v", info)
		}
		for _, sh := range c.describe(tn).Shards {
			if got := c.timelinesOn(*sh.NodeAttached, sh.TenantShardID); len(got) != 1 || got[0] != tl {
				t.Errorf("shard %s on ps-%d: timelines %v", sh.TenantShardID, *sh.NodeAttached, got)
			}
		}
		if _, err := c.api.CreateTimeline(c.ctx, tn, pageapi.TimelineCreateRequest{NewTimelineID: tl}); net.CodeOf(err) != net.AlreadyExists {
			t.Errorf("second create: %v, want AlreadyExists (409)", err)
		}
		if err := c.api.DeleteTimeline(c.ctx, tn, tl); err != nil {
			t.Fatalf("delete timeline: %v", err)
		}
		for _, sh := range c.describe(tn).Shards {
			if got := c.timelinesOn(*sh.NodeAttached, sh.TenantShardID); len(got) != 0 {
				t.Errorf("shard %s on ps-%d after delete: timelines %v", sh.TenantShardID, *sh.NodeAttached, got)
			}
		}
		if err := c.api.DeleteTimeline(c.ctx, tn, tl); net.CodeOf(err) != net.NotFound {
			t.Errorf("deleting it again: %v, want NotFound", err)
		}

		// Tenant delete: every location detached, rows gone, forgotten.
		if err := c.api.DeleteTenant(c.ctx, tn); err != nil {
			t.Fatalf("delete tenant: %v", err)
		}
		for i := 1; i <= 3; i++ {
			for id := range c.locations(i) {
				if id.TenantID == tn {
					t.Errorf("ps-%d still holds %s", i, id)
				}
			}
		}
		if _, err := c.api.DescribeTenant(c.ctx, tn); net.CodeOf(err) != net.NotFound {
			t.Errorf("describe after delete: %v, want NotFound", err)
		}
		if rows, _ := c.sc.store.TenantShards(c.ctx, tn); len(rows) != 0 {
			t.Errorf("rows after delete: %+v", rows)
		}
		if err := c.api.DeleteTenant(c.ctx, tn); net.CodeOf(err) != net.NotFound {
			t.Errorf("second delete: %v, want NotFound", err)
		}
		if _, err := c.api.ConsistencyCheck(c.ctx); err != nil {
			t.Errorf("consistency check: %v", err)
		}
	})
}

func TestTenantConfigAndPolicy(t *testing.T) {
	runCluster(t, 3, Config{}, func(c *cluster) {
		tn := tenantID(31)
		c.create(tn, 0, nil)
		id := shard.UnshardedID(tn)
		n, g := c.attachedNode(id)
		dist := int64(1 << 20)
		if err := c.api.SetTenantConfig(c.ctx, storconapi.TenantConfigRequest{TenantID: tn, Config: pageapi.TenantConf{CheckpointDistance: &dist}}); err != nil {
			t.Fatal(err)
		}
		conf := c.locations(int(n))[id]
		if conf == nil || conf.TenantConf == nil || conf.TenantConf.CheckpointDistance == nil || *conf.TenantConf.CheckpointDistance != dist {
			t.Fatalf("ps-%d holds %+v after a config change", n, conf)
		}
		if n2, g2 := c.attachedNode(id); n2 != n || g2 != g {
			t.Errorf("a config-only change moved %d@%d → %d@%d", n, g, n2, g2)
		}
		// Policy: one secondary, then Detached, then back.
		p := placement.Attached(1)
		if err := c.api.SetTenantPolicy(c.ctx, tn, storconapi.TenantPolicyRequest{Placement: &p}); err != nil {
			t.Fatal(err)
		}
		waitFor(c, time.Minute, "secondary placed", func() error {
			d := c.describe(tn).Shards[0]
			if len(d.NodeSecondary) != 1 || d.IsDirty || d.IsReconciling {
				return fmt.Errorf("%+v", d)
			}
			return nil
		})
		det := placement.Detached()
		if err := c.api.SetTenantPolicy(c.ctx, tn, storconapi.TenantPolicyRequest{Placement: &det}); err != nil {
			t.Fatal(err)
		}
		waitFor(c, time.Minute, "detached everywhere", func() error {
			for i := 1; i <= 3; i++ {
				if conf := c.locations(i)[id]; conf != nil {
					return fmt.Errorf("ps-%d holds %+v", i, conf)
				}
			}
			return nil
		})
		stop := placement.ShardStop
		if err := c.api.SetTenantPolicy(c.ctx, tn, storconapi.TenantPolicyRequest{Scheduling: &stop}); err != nil {
			t.Fatal(err)
		}
		rows, _ := c.sc.store.TenantShards(c.ctx, tn)
		if len(rows) != 1 || rows[0].PlacementPolicy != `"Detached"` || rows[0].SchedulingPolicy != "Stop" {
			t.Errorf("stored policies %+v", rows)
		}
		if _, err := c.api.ConsistencyCheck(c.ctx); err != nil {
			t.Errorf("consistency check: %v", err)
		}
	})
}

// TestOnboardThroughLocationConfig: a shard PUT through the controller's
// pageserver-compatible location_config is taken under management; the
// generation given is kept as the floor, the attach issues a higher one.
// A Secondary without a generation is onboarded as policy Secondary.
func TestOnboardThroughLocationConfig(t *testing.T) {
	runCluster(t, 2, Config{}, func(c *cluster) {
		tn := tenantID(32)
		id := shard.TenantShardID{TenantID: tn, Shard: shard.ShardIndex{Number: 0, Count: 2}}
		g := uint32(5)
		resp, err := c.api.LocationConfig(c.ctx, id, pageapi.LocationConfig{
			Mode: pageapi.ModeAttachedSingle, Generation: &g, ShardCount: 2, ShardStripeSize: 256, TenantConf: &pageapi.TenantConf{},
		})
		if err != nil {
			t.Fatal(err)
		}
		if resp == nil || len(resp.Shards) != 1 || resp.StripeSize == nil || *resp.StripeSize != 256 {
			t.Fatalf("answer %+v", resp)
		}
		n, got := c.attachedNode(id)
		if got <= g || uint64(resp.Shards[0].NodeID) != n {
			t.Errorf("onboarded at %d@%d, answer %+v (given generation %d)", n, got, resp, g)
		}
		c.checkPageservers(tn)
		// Only one of two shards is known: compute is not told yet.
		if _, ok := c.hook.Last(tn); ok {
			t.Error("compute notified before every shard is known")
		}
		id1 := shard.TenantShardID{TenantID: tn, Shard: shard.ShardIndex{Number: 1, Count: 2}}
		if _, err := c.api.LocationConfig(c.ctx, id1, pageapi.LocationConfig{
			Mode: pageapi.ModeAttachedSingle, Generation: &g, ShardNumber: 1, ShardCount: 2, ShardStripeSize: 256, TenantConf: &pageapi.TenantConf{},
		}); err != nil {
			t.Fatal(err)
		}
		waitFor(c, time.Minute, "notified", func() error { return c.notified(tn) })

		sec := tenantID(33)
		sid := shard.UnshardedID(sec)
		if _, err := c.api.LocationConfig(c.ctx, sid, pageapi.LocationConfig{
			Mode: pageapi.ModeSecondary, SecondaryConf: &pageapi.SecondaryConf{Warm: true}, TenantConf: &pageapi.TenantConf{},
		}); err != nil {
			t.Fatal(err)
		}
		d := c.describe(sec).Shards[0]
		if d.Policy != placement.Secondary() || d.NodeAttached != nil || len(d.NodeSecondary) != 1 || d.Generation != nil {
			t.Fatalf("secondary onboarding: %+v", d)
		}
		if conf := c.locations(int(d.NodeSecondary[0]))[sid]; conf == nil || conf.Mode != pageapi.ModeSecondary {
			t.Errorf("ps-%d holds %+v", d.NodeSecondary[0], conf)
		}
		// Attached after all: gets a first generation.
		if _, err := c.api.LocationConfig(c.ctx, sid, pageapi.LocationConfig{
			Mode: pageapi.ModeAttachedSingle, Generation: &g, TenantConf: &pageapi.TenantConf{},
		}); err != nil {
			t.Fatal(err)
		}
		if _, g2 := c.attachedNode(sid); g2 <= g {
			t.Errorf("attached with generation %d, given %d", g2, g)
		}
		c.checkPageservers(sec)
		if _, err := c.api.ConsistencyCheck(c.ctx); err != nil {
			t.Errorf("consistency check: %v", err)
		}
	})
}

// TestComputeHookFailureIsRetried: creation succeeds while the hook fails;
// the pending flag makes a later reconcile resend.
func TestComputeHookFailureIsRetried(t *testing.T) {
	runCluster(t, 2, Config{ReconcileAllInterval: 5 * time.Second}, func(c *cluster) {
		c.hook.FailNext(1, 404) // fatal for the round
		tn := tenantID(34)
		c.create(tn, 0, nil)
		if _, ok := c.hook.Last(tn); ok {
			t.Fatal("the failed notification was recorded")
		}
		if !c.describe(tn).Shards[0].PendingComputeNotification {
			t.Error("no pending flag after a failed notification")
		}
		waitFor(c, time.Minute, "notified", func() error { return c.notified(tn) })
		if c.describe(tn).Shards[0].PendingComputeNotification {
			t.Error("pending flag left after the retry succeeded")
		}
	})
}

// TestNotifyOnlyWhenAllShardsAttached: while only one of a tenant's two
// shards is known (onboarded one at a time), compute is not told; the
// planted bug NotifyBeforeAllShards announces the partial map.
func TestNotifyOnlyWhenAllShardsAttached(t *testing.T) {
	for _, bug := range []bool{false, true} {
		t.Run(fmt.Sprintf("NotifyBeforeAllShards=%v", bug), func(t *testing.T) {
			runCluster(t, 2, Config{Bugs: Bugs{NotifyBeforeAllShards: bug}}, func(c *cluster) {
				tn := tenantID(35)
				// Shard 1 is onboarded only later.
				g := uint32(1)
				id0 := shard.TenantShardID{TenantID: tn, Shard: shard.ShardIndex{Number: 0, Count: 2}}
				if _, err := c.api.LocationConfig(c.ctx, id0, pageapi.LocationConfig{
					Mode: pageapi.ModeAttachedSingle, Generation: &g, ShardCount: 2, ShardStripeSize: 256, TenantConf: &pageapi.TenantConf{},
				}); err != nil {
					t.Fatal(err)
				}
				last, ok := c.hook.Last(tn)
				if ok != bug {
					t.Fatalf("notified %v (%+v) with one of two shards known; bug %v", ok, last, bug)
				}
			})
		})
	}
}

// TestConsistencyCheckNamesDifferences: memory and store made to disagree
// behind the controller's back; the check names each difference.
func TestConsistencyCheckNamesDifferences(t *testing.T) {
	runCluster(t, 2, Config{}, func(c *cluster) {
		tn := tenantID(36)
		c.create(tn, 0, nil)
		id := shard.UnshardedID(tn)
		if _, err := c.api.ConsistencyCheck(c.ctx); err != nil {
			t.Fatalf("clean check: %v", err)
		}
		pol := `{"Attached":3}`
		if err := c.sc.store.UpdateTenantShards(c.ctx, persist.OneShard(id), persist.ShardUpdate{PlacementPolicy: &pol}); err != nil {
			t.Fatal(err)
		}
		if _, err := c.sc.store.IncrementGeneration(c.ctx, id, 2); err != nil {
			t.Fatal(err)
		}
		if err := c.sc.store.SetNodeSchedulingPolicy(c.ctx, 1, "Pause"); err != nil {
			t.Fatal(err)
		}
		_, err := c.api.ConsistencyCheck(c.ctx)
		if err == nil {
			t.Fatal("the check passed")
		}
		for _, want := range []string{"placement policy", "generation 1 in memory, 2 in the store", "generation node", "node 1: scheduling policy"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("check error lacks %q: %v", want, err)
			}
		}
		if httpStatusOf(err, 200) != 500 {
			t.Errorf("status %d", httpStatusOf(err, 200))
		}
	})
}
