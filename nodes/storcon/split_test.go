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
	"github.com/stratadb/strata/nodes/pageserver/pageapi"
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
	// any hold) — only the split of failShard if that is set.
	fail      error
	failShard shard.TenantShardID
	failOne   bool
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
	if c.tap.fail != nil && (!c.tap.failOne || strings.Contains(r.Path, "/"+c.tap.failShard.String()+"/")) {
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
	c.checkServing(t)
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

// checkServing asserts every shard of t answers a timeline list on its
// attached pageserver (a parent shut down by a split answers an error).
func (c *cluster) checkServing(t shard.TenantID) {
	c.t.Helper()
	for _, sh := range c.describe(t).Shards {
		var out []pageapi.TimelineInfo
		r := &net.HTTPRequest{Method: "GET", Path: "/v1/tenant/" + sh.TenantShardID.String() + "/timeline"}
		if _, err := c.psClient(int(*sh.NodeAttached)).Do(c.ctx, r, nil, &out); err != nil {
			c.t.Errorf("shard %s does not serve on ps-%d: %v", sh.TenantShardID, *sh.NodeAttached, err)
		}
	}
}

// splitOutcomes reads storage_controller_shard_split by outcome.
func (c *cluster) splitOutcomes() map[string]float64 {
	c.t.Helper()
	mfs, err := c.scN.Env().Metrics.Gather()
	if err != nil {
		c.t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		if mf.GetName() != "storage_controller_shard_split" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "outcome" {
					out[l.GetValue()] += m.GetCounter().GetValue()
				}
			}
		}
	}
	return out
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
// Crashed before the pageservers split, or after (the children exist
// there and the parents are shut down: start-up detaches the children and
// attaches the parents again). Rows marked splitting of one count only (a
// split that had committed) just lose their marks.
func TestSplitCrashRollsBackAtStartup(t *testing.T) {
	for _, after := range []bool{false, true} {
		t.Run(fmt.Sprintf("after_pageserver_split=%v", after), func(t *testing.T) {
			tap := &splitTap{hold: true, holdAfter: after}
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
				children := 0
				for i := 1; i <= 2; i++ {
					for id := range c.locations(i) {
						if id.TenantID == tn && id.Shard.Count == 4 {
							children++
						}
					}
				}
				if want := map[bool]int{false: 0, true: 4}[after]; children != want {
					t.Fatalf("%d children on the pageservers mid-split, want %d", children, want)
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
				// Rolled back, the tenant splits.
				parents := c.view(tn)
				resp, err := c.split(tn, 4, nil)
				if err != nil {
					t.Fatalf("split after the rollback: %v", err)
				}
				c.checkSplit(tn, resp, 4, shard.DefaultStripeSize, parents)
			})
		})
	}
}

// TestSplitPartialRollback: one parent splits on its pageserver, the
// other's split fails: the split rolls back — the children of the first
// are detached there, the first parent (shut down by its split) attached
// again with a higher generation — and compute is never told of children.
func TestSplitPartialRollback(t *testing.T) {
	tn := tenantID(0x57)
	failing := shard.TenantShardID{TenantID: tn, Shard: shard.ShardIndex{Number: 1, Count: 2}}
	tap := &splitTap{fail: net.Errorf(net.Internal, "test: split failed"), failShard: failing, failOne: true}
	runSplitCluster(t, 2, Config{}, tap, func(c *cluster) {
		c.create(tn, 2, nil)
		if _, err := c.api.CreateTimeline(c.ctx, tn, pageapi.TimelineCreateRequest{NewTimelineID: shard.TimelineID{0x71}}); err != nil {
			t.Fatal(err)
		}
		before := c.gens(tn)
		notes := c.hook.Count()
		if _, err := c.split(tn, 4, nil); net.CodeOf(err) != net.Internal {
			t.Fatalf("split: %v, want 500", err)
		}
		c.checkRolledBack(tn, shardIDs(tn, 2), before)
		ok := shard.TenantShardID{TenantID: tn, Shard: shard.ShardIndex{Number: 0, Count: 2}}
		if g := c.gens(tn)[ok]; g <= before[ok] {
			t.Errorf("the parent that split was attached again at generation %d, want above %d", g, before[ok])
		}
		if last, _ := c.hook.Last(tn); len(last.Shards) != 2 {
			t.Errorf("compute told %+v", last)
		}
		if c.hook.Count() < notes {
			t.Errorf("notifications went from %d to %d", notes, c.hook.Count())
		}
		if got := c.splitOutcomes(); got["started"] != 1 || got["rolled_back"] != 1 || got["committed"] != 0 {
			t.Errorf("split metrics %v, want started 1 rolled_back 1", got)
		}
	})
}

// checkSplit asserts tenant t was split into count shards: the answer and
// the rows are the children (no marks), each child is attached where its
// parent was in its parent's generation (no new one: nothing to
// reconcile), the pageservers hold the children AttachedSingle and no
// parent, the store agrees with memory, and compute was told the new map
// with stripe.
func (c *cluster) checkSplit(t shard.TenantID, resp storconapi.ShardSplitResponse, count uint8, stripe uint32,
	parents map[shard.TenantShardID]placementView) {
	c.t.Helper()
	want := shardIDs(t, count)
	if !slices.Equal(resp.NewShards, want) {
		c.t.Fatalf("split answered %v, want %v", resp.NewShards, want)
	}
	var rows []shard.TenantShardID
	for _, r := range c.rows(t) {
		rows = append(rows, r.ID)
		if r.Splitting || r.StripeSize != stripe {
			c.t.Errorf("row %+v: want no mark, stripe %d", r, stripe)
		}
	}
	if !slices.Equal(rows, want) {
		c.t.Fatalf("rows %v, want %v", rows, want)
	}
	d := c.describe(t)
	if d.ShardCount != count || d.StripeSize != stripe || len(d.Shards) != int(count) {
		c.t.Fatalf("describe: count %d stripe %d shards %d", d.ShardCount, d.StripeSize, len(d.Shards))
	}
	oldCount := shard.ShardCount(0)
	for id := range parents {
		oldCount = id.Shard.Count
	}
	for _, sh := range d.Shards {
		p := parents[shard.TenantShardID{TenantID: t, Shard: persist.ParentIndex(sh.TenantShardID.Shard, oldCount)}]
		if sh.NodeAttached == nil || *sh.NodeAttached != p.attached || sh.Generation == nil || *sh.Generation != p.gen {
			c.t.Errorf("child %s attached %v gen %v, want its parent's node %d gen %d", sh.TenantShardID, sh.NodeAttached, sh.Generation, p.attached, p.gen)
		}
	}
	waitFor(c, 2*time.Minute, "children converged", func() error { return c.converged(t) })
	for _, sh := range c.describe(t).Shards {
		p := parents[shard.TenantShardID{TenantID: t, Shard: persist.ParentIndex(sh.TenantShardID.Shard, oldCount)}]
		if *sh.Generation != p.gen {
			c.t.Errorf("child %s generation %d after converging, want its parent's %d (a reconcile re-attached it)", sh.TenantShardID, *sh.Generation, p.gen)
		}
	}
	c.checkPageservers(t)
	c.checkServing(t)
	for i := 1; i <= len(c.ps); i++ {
		for id, conf := range c.locations(i) {
			if id.TenantID != t {
				continue
			}
			if id.Shard.Count != shard.ShardCount(count) {
				c.t.Errorf("ps-%d still holds %s", i, id)
			} else if conf != nil && conf.ShardStripeSize != stripe {
				c.t.Errorf("ps-%d holds %s with stripe %d, want %d", i, id, conf.ShardStripeSize, stripe)
			}
		}
	}
	waitFor(c, time.Minute, "compute told", func() error {
		if err := c.notified(t); err != nil {
			return err
		}
		if last, _ := c.hook.Last(t); last.StripeSize == nil || *last.StripeSize != stripe {
			return fmt.Errorf("notified stripe %v, want %d", last.StripeSize, stripe)
		}
		return nil
	})
	waitFor(c, time.Minute, "consistent", func() error {
		_, err := c.api.ConsistencyCheck(c.ctx)
		return err
	})
}

// TestSplit: an unsharded tenant with a timeline splits 1→2 and then 2→4
// on real pageservers; another 1→4 with a new stripe; one with a warm
// secondary (Attached{1}) gets secondaries for its children. A repeat of
// a done split answers the children without calling a pageserver.
func TestSplit(t *testing.T) {
	tap := &splitTap{}
	runSplitCluster(t, 3, Config{}, tap, func(c *cluster) {
		a, b, sec := tenantID(0x60), tenantID(0x61), tenantID(0x62)
		c.create(a, 0, nil)
		c.create(b, 0, nil)
		p1 := placement.Attached(1)
		c.create(sec, 2, &p1)
		for _, tn := range []shard.TenantID{a, b, sec} {
			if _, err := c.api.CreateTimeline(c.ctx, tn, pageapi.TimelineCreateRequest{NewTimelineID: shard.TimelineID{0x70}}); err != nil {
				t.Fatalf("timeline of %s: %v", tn, err)
			}
		}
		waitFor(c, time.Minute, "converged", func() error { return c.converged(sec) })

		before := c.view(a)
		resp, err := c.split(a, 2, nil)
		if err != nil {
			t.Fatalf("split 1→2: %v", err)
		}
		c.checkSplit(a, resp, 2, shard.DefaultStripeSize, before)
		calls := tap.calls
		again, err := c.split(a, 2, nil)
		if err != nil || !slices.Equal(again.NewShards, resp.NewShards) || tap.calls != calls {
			t.Errorf("repeat: %+v %v, %d pageserver calls", again, err, tap.calls-calls)
		}
		before = c.view(a)
		resp, err = c.split(a, 4, nil)
		if err != nil {
			t.Fatalf("split 2→4: %v", err)
		}
		c.checkSplit(a, resp, 4, shard.DefaultStripeSize, before)

		before = c.view(b)
		resp, err = c.split(b, 4, func(v uint32) *uint32 { return &v }(256))
		if err != nil {
			t.Fatalf("split 1→4 with stripe 256: %v", err)
		}
		c.checkSplit(b, resp, 4, 256, before)

		before = c.view(sec)
		resp, err = c.split(sec, 4, nil)
		if err != nil {
			t.Fatalf("split 2→4 with secondaries: %v", err)
		}
		c.checkSplit(sec, resp, 4, shard.DefaultStripeSize, before)
		for _, sh := range c.describe(sec).Shards {
			if len(sh.NodeSecondary) != 1 || sh.NodeSecondary[0] == *sh.NodeAttached {
				t.Errorf("child %s secondaries %v (attached %d)", sh.TenantShardID, sh.NodeSecondary, *sh.NodeAttached)
			}
		}
		if got := c.splitOutcomes(); got["started"] != 4 || got["committed"] != 4 || got["rolled_back"] != 0 {
			t.Errorf("split metrics %v, want started 4 committed 4", got)
		}
		// Timelines are on every child (the controller's timeline list
		// goes to each attached shard).
		if err := c.api.DeleteTimeline(c.ctx, a, shard.TimelineID{0x70}); err != nil {
			t.Errorf("delete the timeline from the children: %v", err)
		}
	})
}
