package storcon

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stratadb/strata/clock"
	"github.com/stratadb/strata/engine/placement"
	"github.com/stratadb/strata/engine/shard"
	"github.com/stratadb/strata/net"
	"github.com/stratadb/strata/nodes/node"
	"github.com/stratadb/strata/nodes/storcon/persist"
	"github.com/stratadb/strata/nodes/storcon/storconapi"
)

// splitTap sits between the controller and the pageservers and acts on
// their shard_split calls (every other call passes through). The
// simulator runs one task at a time, so the test body and the
// controller's tasks share it without locks.
type splitTap struct {
	calls int // shard_split calls seen
	// hold parks shard_split calls while it is true — before they reach
	// the pageserver, or after it answered with holdAfter.
	hold, holdAfter bool
	held            int // calls parked now
	// fail, if set, answers a shard_split instead of the pageserver (after
	// any hold).
	fail error
}

type tapClient struct {
	inner net.HTTPClient
	tap   *splitTap
	clk   clock.Clock
}

func (c tapClient) Do(ctx context.Context, r *net.HTTPRequest, in, out any) (int, error) {
	if r.Method != "PUT" || !strings.HasSuffix(r.Path, "/shard_split") {
		return c.inner.Do(ctx, r, in, out)
	}
	c.tap.calls++
	park := func() error {
		c.tap.held++
		defer func() { c.tap.held-- }()
		for c.tap.hold {
			if err := clock.Sleep(ctx, c.clk, 100*time.Millisecond); err != nil {
				return err
			}
		}
		return nil
	}
	if !c.tap.holdAfter {
		if err := park(); err != nil {
			return 0, err
		}
	}
	if c.tap.fail != nil {
		return 0, c.tap.fail
	}
	st, err := c.inner.Do(ctx, r, in, out)
	if c.tap.holdAfter {
		if perr := park(); perr != nil {
			return 0, perr
		}
	}
	return st, err
}

// runSplitCluster runs a cluster whose controller reaches the pageservers
// through tap.
func runSplitCluster(t *testing.T, nPS int, cfg Config, tap *splitTap, body func(c *cluster)) {
	t.Helper()
	runClusterFull(t, nPS, cfg, clusterOpts{prep: func(env node.Env, cfg *Config) {
		cfg.DialPageserver = func(addr string) net.HTTPClient {
			return tapClient{inner: net.DialHTTP{Net: env.Net, Addr: addr}, tap: tap, clk: env.Clock}
		}
	}}, body)
}

func (c *cluster) split(t shard.TenantID, count uint8, stripe *uint32) (storconapi.ShardSplitResponse, error) {
	return c.api.ShardSplit(c.ctx, t, storconapi.ShardSplitRequest{NewShardCount: shard.ShardCount(count), NewStripeSize: stripe})
}

// rows reads tenant t's rows from the controller's store.
func (c *cluster) rows(t shard.TenantID) []persist.TenantShard {
	c.t.Helper()
	rows, err := c.sc.store.TenantShards(c.ctx, t)
	if err != nil {
		c.t.Fatalf("rows of %s: %v", t, err)
	}
	return rows
}

// gens maps each shard of t to its generation.
func (c *cluster) gens(t shard.TenantID) map[shard.TenantShardID]uint32 {
	c.t.Helper()
	out := map[shard.TenantShardID]uint32{}
	for _, sh := range c.describe(t).Shards {
		if sh.Generation != nil {
			out[sh.TenantShardID] = *sh.Generation
		}
	}
	return out
}

// checkRolledBack asserts tenant t is as before a split: its rows are
// exactly ids, none marked splitting, no generation below before, every
// shard converged and attached on the pageservers with the controller's
// generation, and no pageserver holds a shard of another count.
func (c *cluster) checkRolledBack(t shard.TenantID, ids []shard.TenantShardID, before map[shard.TenantShardID]uint32) {
	c.t.Helper()
	var got []shard.TenantShardID
	for _, r := range c.rows(t) {
		got = append(got, r.ID)
		if r.Splitting {
			c.t.Errorf("row %s still marked splitting", r.ID)
		}
		if uint32(r.Generation) < before[r.ID] {
			c.t.Errorf("row %s generation %d went below %d", r.ID, r.Generation, before[r.ID])
		}
	}
	if !slices.Equal(got, ids) {
		c.t.Fatalf("rows after the rollback: %v, want %v", got, ids)
	}
	waitFor(c, 2*time.Minute, "parents converged", func() error { return c.converged(t) })
	c.checkPageservers(t)
	for id, g := range c.gens(t) {
		if g < before[id] {
			c.t.Errorf("shard %s generation %d went below %d", id, g, before[id])
		}
	}
	count := ids[0].Shard.Count
	for i := 1; i <= len(c.ps); i++ {
		for id := range c.locations(i) {
			if id.TenantID == t && id.Shard.Count != count {
				c.t.Errorf("ps-%d holds %s after the rollback", i, id)
			}
		}
	}
	if _, err := c.api.ConsistencyCheck(c.ctx); err != nil {
		c.t.Errorf("consistency check: %v", err)
	}
}

func shardIDs(t shard.TenantID, count uint8) []shard.TenantShardID {
	if count == 0 {
		return []shard.TenantShardID{shard.UnshardedID(t)}
	}
	out := make([]shard.TenantShardID, count)
	for i := range out {
		out[i] = shard.TenantShardID{TenantID: t, Shard: shard.ShardIndex{Number: shard.ShardNumber(i), Count: shard.ShardCount(count)}}
	}
	return out
}

// TestSplitRefused: the requests a split refuses before anything changes
// — with the status each gets — and the repeat of a done split answered
// without a pageserver call.
func TestSplitRefused(t *testing.T) {
	tap := &splitTap{}
	runSplitCluster(t, 2, Config{}, tap, func(c *cluster) {
		unsharded, two := tenantID(0x50), tenantID(0x51)
		c.create(unsharded, 0, nil)
		c.create(two, 2, nil)
		stripe := func(v uint32) *uint32 { return &v }
		for _, tc := range []struct {
			name   string
			tenant shard.TenantID
			count  uint8
			stripe *uint32
			want   net.Code
		}{
			{"shrink", two, 1, nil, net.InvalidArgument},
			{"unsharded to one", unsharded, 1, nil, net.InvalidArgument},
			{"unsharded to zero", unsharded, 0, nil, net.InvalidArgument},
			{"not a power of two", unsharded, 3, nil, net.InvalidArgument},
			{"ratio not a power of two", two, 6, nil, net.InvalidArgument},
			{"stripe change once sharded", two, 4, stripe(1024), net.InvalidArgument},
			{"stripe change on a repeat", two, 2, stripe(1024), net.InvalidArgument},
			{"stripe zero", unsharded, 2, stripe(0), net.InvalidArgument},
			{"unknown tenant", tenantID(0x5f), 2, nil, net.NotFound},
		} {
			_, err := c.split(tc.tenant, tc.count, tc.stripe)
			if net.CodeOf(err) != tc.want {
				t.Errorf("%s: %v, want %s", tc.name, err, tc.want)
			}
		}
		// The count it has: a repeat, answered with its shards.
		resp, err := c.split(two, 2, stripe(shard.DefaultStripeSize))
		if err != nil || !slices.Equal(resp.NewShards, shardIDs(two, 2)) {
			t.Errorf("repeat: %+v %v", resp, err)
		}
		if tap.calls != 0 {
			t.Errorf("%d pageserver split calls for refused requests", tap.calls)
		}
		if len(c.rows(two)) != 2 || len(c.rows(unsharded)) != 1 {
			t.Errorf("rows changed: %v %v", c.rows(two), c.rows(unsharded))
		}
	})
}

// TestSplitRollsBackWhenPageserverFails: a pageserver answering the split
// with 404 (one without the route) or 503 (retried, then given up) fails
// the split, which rolls back: no child rows, no marks, the parents
// attached and serving on their pageservers (their generation the same or
// higher), the secondaries back, no child left on any pageserver. The API
// answers 500 for the 404 (retrying will not help) and 503 for the 503.
func TestSplitRollsBackWhenPageserverFails(t *testing.T) {
	for _, tc := range []struct {
		name  string
		fail  error
		want  net.Code
		calls int
	}{
		{"not found", net.Errorf(net.NotFound, "no route PUT /v1/tenant/…/shard_split"), net.Internal, 2},
		{"unavailable", net.Errorf(net.Unavailable, "shutting down"), net.Unavailable, 2 * DefaultShardSplitRetries},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tap := &splitTap{fail: tc.fail}
			runSplitCluster(t, 3, Config{}, tap, func(c *cluster) {
				tn := tenantID(0x52)
				p := placement.Attached(1)
				c.create(tn, 2, &p)
				waitFor(c, time.Minute, "converged", func() error { return c.converged(tn) })
				before := c.gens(tn)
				_, err := c.split(tn, 4, nil)
				if err == nil || net.CodeOf(err) != tc.want || !strings.Contains(err.Error(), "rolled back") {
					t.Fatalf("split: %v, want %s naming the rollback", err, tc.want)
				}
				if tap.calls != tc.calls {
					t.Errorf("%d pageserver split calls, want %d", tap.calls, tc.calls)
				}
				c.checkRolledBack(tn, shardIDs(tn, 2), before)
				for _, sh := range c.describe(tn).Shards {
					if len(sh.NodeSecondary) != 1 || sh.IsSplitting {
						t.Errorf("shard %s after the rollback: secondaries %v splitting %v", sh.TenantShardID, sh.NodeSecondary, sh.IsSplitting)
					}
				}
			})
		})
	}
}

// TestSplitStoreTransactions: while the pageservers split, the store holds
// the parents and the children in one state — all marked splitting, each
// child with its parent's generation and node and the new stripe — and a
// second split of the tenant is 409; the rollback deletes the children and
// clears the marks in one step.
func TestSplitStoreTransactions(t *testing.T) {
	tap := &splitTap{hold: true, fail: net.Errorf(net.Internal, "test: split failed")}
	runSplitCluster(t, 2, Config{}, tap, func(c *cluster) {
		tn := tenantID(0x53)
		c.create(tn, 0, nil)
		parent := shard.UnshardedID(tn)
		node, gen := c.attachedNode(parent)
		var splitErr error
		finished := false
		c.w.Go("split", func(context.Context) {
			_, splitErr = c.split(tn, 4, func(v uint32) *uint32 { return &v }(256))
			finished = true
		})
		waitFor(c, time.Minute, "split at the pageserver", func() error {
			if tap.held == 0 {
				return errors.New("no split call yet")
			}
			return nil
		})
		rows := c.rows(tn)
		if len(rows) != 5 {
			t.Fatalf("rows mid-split: %+v", rows)
		}
		for _, r := range rows {
			if !r.Splitting {
				t.Errorf("row %s not marked splitting mid-split", r.ID)
			}
			if r.ID == parent {
				continue
			}
			if r.ID.Shard.Count != 4 || uint32(r.Generation) != gen || uint64(r.GenerationNode) != node || r.StripeSize != 256 {
				t.Errorf("child row %+v: want count 4, generation %d of node %d, stripe 256", r, gen, node)
			}
		}
		d := c.describe(tn)
		if len(d.Shards) != 1 || !d.Shards[0].IsSplitting || !d.Shards[0].IsReconciling {
			t.Errorf("describe mid-split: %+v", d.Shards)
		}
		if _, err := c.split(tn, 4, nil); net.CodeOf(err) != net.AlreadyExists {
			t.Errorf("a second split mid-split: %v, want 409", err)
		}
		tap.hold = false
		waitFor(c, 2*time.Minute, "split answered", func() error {
			if !finished {
				return errors.New("still running")
			}
			return nil
		})
		if splitErr == nil {
			t.Fatal("split succeeded with a failing pageserver")
		}
		c.checkRolledBack(tn, []shard.TenantShardID{parent}, map[shard.TenantShardID]uint32{parent: gen})
	})
}

// TestSplitCommitSplitEarly: with the planted bug CommitSplitEarly the
// split is committed in the store before the pageservers split, so a
// pageserver split that fails leaves the parents' rows deleted (the
// tenant's data is in no shard the store knows); without it the same
// failure rolls back to the parents.
func TestSplitCommitSplitEarly(t *testing.T) {
	for _, bug := range []bool{false, true} {
		t.Run(fmt.Sprintf("CommitSplitEarly=%v", bug), func(t *testing.T) {
			tap := &splitTap{fail: net.Errorf(net.NotFound, "no route")}
			runSplitCluster(t, 2, Config{Bugs: Bugs{CommitSplitEarly: bug}}, tap, func(c *cluster) {
				tn := tenantID(0x54)
				c.create(tn, 0, nil)
				_, err := c.split(tn, 2, nil)
				var ids []shard.TenantShardID
				for _, r := range c.rows(tn) {
					ids = append(ids, r.ID)
				}
				if bug {
					if err != nil || !slices.Equal(ids, shardIDs(tn, 2)) {
						t.Errorf("with the bug: split %v, rows %v (want the children: committed before the pageserver split)", err, ids)
					}
					return
				}
				if err == nil || !slices.Equal(ids, shardIDs(tn, 0)) {
					t.Errorf("without the bug: split %v, rows %v (want a failure and the parent only)", err, ids)
				}
			})
		})
	}
}

// TestSplitCrashRollsBackAtStartup: a controller that crashes mid-split
// leaves the store marked; the next start-up rolls the split back before
// it serves — no child rows, no marks, the parents attached and serving.
// Rows marked splitting of one count only (a split that had committed)
// just lose their marks.
func TestSplitCrashRollsBackAtStartup(t *testing.T) {
	tap := &splitTap{hold: true}
	runSplitCluster(t, 2, Config{}, tap, func(c *cluster) {
		tn, done := tenantID(0x55), tenantID(0x56)
		c.create(tn, 2, nil)
		c.create(done, 2, nil)
		before := c.gens(tn)
		c.w.Go("split", func(context.Context) { _, _ = c.split(tn, 4, nil) })
		waitFor(c, time.Minute, "split at the pageservers", func() error {
			if tap.held < 2 {
				return fmt.Errorf("%d of 2 split calls", tap.held)
			}
			return nil
		})
		if n := len(c.rows(tn)); n != 6 {
			t.Fatalf("%d rows mid-split, want 6", n)
		}
		if err := c.sc.store.SetSplitting(c.ctx, done, true); err != nil {
			t.Fatal(err)
		}
		c.w.Crash("storcon", false)
		tap.hold = false
		c.w.Restart("storcon")
		c.waitReady()
		c.checkRolledBack(tn, shardIDs(tn, 2), before)
		for _, r := range c.rows(done) {
			if r.Splitting {
				t.Errorf("row %s still marked after start-up", r.ID)
			}
		}
		if len(c.rows(done)) != 2 {
			t.Errorf("rows of %s: %v", done, c.rows(done))
		}
		// The tenant splits again once rolled back (the pageserver's split
		// is not what this test is about: refused here).
		tap.fail = net.Errorf(net.NotFound, "no route")
		if _, err := c.split(tn, 4, nil); net.CodeOf(err) != net.Internal {
			t.Errorf("split after the rollback: %v, want it tried (and rolled back: 500)", err)
		}
	})
}
