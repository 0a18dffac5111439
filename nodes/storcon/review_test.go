package storcon

import (
	"context"
	"testing"
	"time"

	"github.com/stratadb/strata/engine/placement"
	"github.com/stratadb/strata/engine/shard"
	"github.com/stratadb/strata/nodes/node"
	"github.com/stratadb/strata/nodes/pageserver/pageapi"
	"github.com/stratadb/strata/nodes/storcon/persist"
)

// storeHooks are run by hookStore around the calls the tests need to
// interleave with; nil hooks do nothing. One storeHooks is shared by every
// incarnation of the controller.
type storeHooks struct {
	// afterUpdate runs once UpdateTenantShards succeeded.
	afterUpdate func(ctx context.Context, sel persist.Selector, u persist.ShardUpdate)
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
