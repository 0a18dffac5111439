package storcon

import (
	"fmt"
	"testing"
	"time"

	"github.com/stratadb/strata/clock"
	"github.com/stratadb/strata/engine/placement"
	"github.com/stratadb/strata/engine/shard"
	"github.com/stratadb/strata/net"
	"github.com/stratadb/strata/nodes/pageserver/pageapi"
	"github.com/stratadb/strata/nodes/storcon/storconapi"
)

// A timeline call on a tenant whose attached node is offline (and whose
// intent is frozen, so nothing moves it) waits ReconcileWait and answers a
// timeout: the wait for the attachment yields between looks instead of
// spinning (found by the storcon simulation scenario, seed 2).
func TestTimelineCallWaitsForOfflineAttachedNode(t *testing.T) {
	runCluster(t, 2, Config{ReconcileWait: 2 * time.Second}, func(c *cluster) {
		tn := tenantID(40)
		c.create(tn, 0, nil)
		id := shard.UnshardedID(tn)
		victim, _ := c.attachedNode(id)
		pause := placement.ShardPause
		if err := c.api.SetTenantPolicy(c.ctx, tn, storconapi.TenantPolicyRequest{Scheduling: &pause}); err != nil {
			t.Fatal(err)
		}
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
		ctx, cancel := clock.WithTimeout(c.cli.Clock, c.ctx, time.Minute)
		defer cancel()
		start := c.w.Now()
		_, err := c.api.CreateTimeline(ctx, tn, pageapi.TimelineCreateRequest{NewTimelineID: shard.TimelineID{0x40}})
		if net.CodeOf(err) != net.DeadlineExceeded {
			t.Fatalf("timeline create with the attached node offline: %v (want a timeout)", err)
		}
		if d := c.w.Now() - start; d < 2*time.Second || d > 10*time.Second {
			t.Errorf("answered after %v, want about ReconcileWait (2s)", d)
		}
	})
}
