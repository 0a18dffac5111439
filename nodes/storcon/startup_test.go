package storcon

import (
	"net/http"
	"testing"
	"time"

	"github.com/stratadb/strata/engine/placement"
	"github.com/stratadb/strata/engine/shard"
	"github.com/stratadb/strata/net"
)

type placementView struct {
	attached    uint64
	secondaries []uint64
	gen         uint32
}

func (c *cluster) view(tns ...shard.TenantID) map[shard.TenantShardID]placementView {
	out := map[shard.TenantShardID]placementView{}
	for _, tn := range tns {
		for _, sh := range c.describe(tn).Shards {
			v := placementView{secondaries: sh.NodeSecondary}
			if sh.NodeAttached != nil {
				v.attached = *sh.NodeAttached
			}
			if sh.Generation != nil {
				v.gen = *sh.Generation
			}
			out[sh.TenantShardID] = v
		}
	}
	return out
}

// TestRestartRebuildsFromPageservers: a controller restarted on its
// embedded store rebuilds intent from what the pageservers hold — the same
// attachments and secondaries, no new generations — turns ready, and its
// memory agrees with the store.
func TestRestartRebuildsFromPageservers(t *testing.T) {
	runCluster(t, 3, Config{}, func(c *cluster) {
		a, b := tenantID(1), tenantID(2)
		p1 := placement.Attached(1)
		c.create(a, 0, &p1)
		c.create(b, 3, nil)
		if err := c.api.Migrate(c.ctx, shard.TenantShardID{TenantID: b, Shard: shard.ShardIndex{Number: 1, Count: 3}}, 1); err != nil {
			t.Fatal(err)
		}
		waitFor(c, time.Minute, "converged", func() error {
			if err := c.converged(a); err != nil {
				return err
			}
			return c.converged(b)
		})
		before := c.view(a, b)
		notes := c.hook.Count()

		c.w.Crash("storcon", false)
		c.w.Restart("storcon")
		c.waitReady()
		after := c.view(a, b)
		for id, v := range before {
			w := after[id]
			if w.attached != v.attached || w.gen != v.gen || len(w.secondaries) != len(v.secondaries) ||
				(len(v.secondaries) > 0 && w.secondaries[0] != v.secondaries[0]) {
				t.Errorf("shard %s: before restart %+v, after %+v", id, v, w)
			}
		}
		if _, err := c.api.ConsistencyCheck(c.ctx); err != nil {
			t.Errorf("consistency check after restart: %v", err)
		}
		for _, tn := range []shard.TenantID{a, b} {
			if err := c.converged(tn); err != nil {
				t.Error(err)
			}
			c.checkPageservers(tn)
		}
		// Start-up told compute again (a new process does not know what
		// the hook last heard); the receiver counts only changes, so the
		// count is unchanged, but the map is right.
		if c.hook.Count() < notes {
			t.Errorf("notifications went from %d to %d", notes, c.hook.Count())
		}
		for _, tn := range []shard.TenantID{a, b} {
			if err := c.notified(tn); err != nil {
				t.Error(err)
			}
		}
	})
}

// TestStartupWaitsForNodes: while a node does not answer, start-up waits
// (bounded) and /ready answers 503; tenant calls wait for it. Once ready,
// shards attached to the silent node are placed elsewhere.
func TestStartupWaitsForNodes(t *testing.T) {
	runCluster(t, 3, Config{}, func(c *cluster) {
		tn := tenantID(3)
		c.create(tn, 3, nil)
		c.w.Crash("storcon", false)
		c.w.Net().Partition("storcon", psName(3))
		c.w.Restart("storcon")
		c.w.Sleep(2 * time.Second)
		_, err := c.api.Ready(c.ctx)
		if net.CodeOf(err) != net.Unavailable {
			t.Fatalf("/ready during start-up: %v, want Unavailable (503)", err)
		}
		if got := httpStatusOf(err, 200); got != http.StatusServiceUnavailable {
			t.Errorf("/ready HTTP status %d", got)
		}
		// A tenant call waits for start-up and then succeeds.
		if _, err := c.api.DescribeTenant(c.ctx, tn); err != nil {
			t.Fatalf("describe during start-up: %v", err)
		}
		c.waitReady()
		st, _ := c.api.Ready(c.ctx)
		if !st.Ready {
			t.Fatalf("not ready: %+v", st)
		}
		waitFor(c, time.Minute, "converged", func() error { return c.converged(tn) })
		for _, sh := range c.describe(tn).Shards {
			if *sh.NodeAttached == 3 {
				t.Errorf("shard %s attached to the unreachable node 3", sh.TenantShardID)
			}
		}
		c.w.Net().Heal()
		c.waitNodes(3)
		waitFor(c, time.Minute, "converged after heal", func() error { return c.converged(tn) })
		c.checkPageservers(tn)
		if _, err := c.api.ConsistencyCheck(c.ctx); err != nil {
			t.Errorf("consistency check: %v", err)
		}
	})
}

// TestTenantCallsTimeOutBeforeReady: a tenant call made while start-up
// cannot finish answers 408 after StartupWait.
func TestTenantCallsTimeOutBeforeReady(t *testing.T) {
	runCluster(t, 1, Config{StartupWait: 3 * time.Second, StartupBudget: 20 * time.Second}, func(c *cluster) {
		c.create(tenantID(4), 0, nil)
		c.w.Crash("storcon", false)
		c.w.Net().Partition("storcon", psName(1))
		c.w.Restart("storcon")
		c.w.Sleep(time.Second)
		_, err := c.api.DescribeTenant(c.ctx, tenantID(4))
		if net.CodeOf(err) != net.DeadlineExceeded || httpStatusOf(err, 200) != http.StatusRequestTimeout {
			t.Fatalf("describe before ready: %v, want DeadlineExceeded (408)", err)
		}
		c.w.Net().Heal()
		c.waitReady()
		if _, err := c.api.DescribeTenant(c.ctx, tenantID(4)); err != nil {
			t.Fatal(err)
		}
	})
}
