package storcon

import (
	"context"
	"errors"
	"fmt"
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

// lossSwitches are flipped by a test between calls: loseInserts,
// loseUpdates and loseDeletes make those tenant writes take effect and then answer an
// unknown outcome (the answer lost on a broken connection), and downAfter
// then also takes the store down; down makes every tenant read and write
// fail without taking effect.
type lossSwitches struct {
	loseInserts, loseUpdates, loseDeletes, downAfter, down bool
}

// lossyStore wraps a store with lossSwitches.
type lossyStore struct {
	persist.Store
	sw *lossSwitches
}

var errLostAnswer = errors.Join(persist.ErrUnreachable, errors.New("connection broken before the answer"))

// write runs a tenant write under the switches; lose says whether its
// answer is lost.
func (s lossyStore) write(lose bool, do func() error) error {
	if s.sw.down {
		return errLostAnswer
	}
	if err := do(); err != nil || !lose {
		return err
	}
	s.sw.down = s.sw.downAfter
	return errLostAnswer
}

func (s lossyStore) InsertTenantShards(ctx context.Context, rows []persist.TenantShard) error {
	return s.write(s.sw.loseInserts, func() error { return s.Store.InsertTenantShards(ctx, rows) })
}

func (s lossyStore) UpdateTenantShards(ctx context.Context, sel persist.Selector, u persist.ShardUpdate) error {
	return s.write(s.sw.loseUpdates, func() error { return s.Store.UpdateTenantShards(ctx, sel, u) })
}

func (s lossyStore) DeleteTenant(ctx context.Context, t shard.TenantID) error {
	return s.write(s.sw.loseDeletes, func() error { return s.Store.DeleteTenant(ctx, t) })
}

func (s lossyStore) TenantShards(ctx context.Context, t shard.TenantID) ([]persist.TenantShard, error) {
	if s.sw.down {
		return nil, errLostAnswer
	}
	return s.Store.TenantShards(ctx, t)
}

// wrappedDisk opens the controller's embedded store and wraps it.
func wrappedDisk(t *testing.T, wrap func(env node.Env, ds persist.Store) persist.Store) func(env node.Env) persist.Store {
	return func(env node.Env) persist.Store {
		ds, err := persist.OpenDisk(env.Clock, env.Disk, "ctl", persist.DiskConfig{})
		if err != nil {
			t.Fatalf("open store: %v", err)
		}
		return wrap(env, ds)
	}
}

func runLossy(t *testing.T, body func(c *cluster, sw *lossSwitches)) {
	t.Helper()
	sw := &lossSwitches{}
	runClusterWith(t, 2, Config{}, wrappedDisk(t, func(_ node.Env, ds persist.Store) persist.Store {
		return lossyStore{Store: ds, sw: sw}
	}), func(c *cluster) { body(c, sw) })
}

func consistent(c *cluster) func() error {
	return func() error {
		_, err := c.api.ConsistencyCheck(c.ctx)
		return err
	}
}

// TestDeleteWhoseAnswerWasLost: the store deleted the tenant's rows but
// the answer was lost. The controller reads the rows back, finds them
// gone and forgets the tenant, instead of managing a tenant the store no
// longer has (every later write answering "not found", never converging).
func TestDeleteWhoseAnswerWasLost(t *testing.T) {
	runLossy(t, func(c *cluster, sw *lossSwitches) {
		tn := tenantID(71)
		c.create(tn, 1, nil)
		sw.loseDeletes = true
		err := c.api.DeleteTenant(c.ctx, tn)
		sw.loseDeletes = false
		if err != nil {
			t.Fatalf("delete whose rows are gone answered %v, want success", err)
		}
		if _, err := c.api.DescribeTenant(c.ctx, tn); net.CodeOf(err) != net.NotFound {
			t.Fatalf("describe after the delete: %v, want NotFound", err)
		}
		waitFor(c, time.Minute, "consistent", consistent(c))
	})
}

// TestPolicyWhoseAnswerWasLost: a policy stored but answered with an
// unknown outcome is adopted from the store: memory, the store and the
// pageservers end on the stored policy.
func TestPolicyWhoseAnswerWasLost(t *testing.T) {
	runLossy(t, func(c *cluster, sw *lossSwitches) {
		tn := tenantID(72)
		c.create(tn, 1, nil)
		detached := placement.Detached()
		sw.loseUpdates = true
		err := c.api.SetTenantPolicy(c.ctx, tn, storconapi.TenantPolicyRequest{Placement: &detached})
		sw.loseUpdates = false
		if err == nil {
			t.Fatal("a policy write with a lost answer answered success")
		}
		d, err := c.api.DescribeTenant(c.ctx, tn)
		if err != nil {
			t.Fatalf("describe: %v", err)
		}
		if got := d.Shards[0].Policy; got != detached {
			t.Fatalf("memory's policy is %v, the store's %v", got, detached)
		}
		waitFor(c, time.Minute, "consistent", consistent(c))
	})
}

// TestUnsureTenantResolvedLater: the delete's answer is lost and the store
// stays unreadable, so the tenant is marked unsure. Its operations answer
// 503 while it is; once the store answers again the background loop
// resolves it (the rows are gone: the tenant is forgotten).
func TestUnsureTenantResolvedLater(t *testing.T) {
	runLossy(t, func(c *cluster, sw *lossSwitches) {
		tn := tenantID(73)
		c.create(tn, 1, nil)
		sw.loseDeletes, sw.downAfter = true, true
		err := c.api.DeleteTenant(c.ctx, tn)
		sw.loseDeletes, sw.downAfter = false, false
		if err == nil {
			t.Fatal("a delete whose outcome stayed unknown answered success")
		}
		if _, err := c.api.DescribeTenant(c.ctx, tn); err != nil {
			t.Fatalf("describe the unsure tenant: %v (it stays listed until resolved)", err)
		}
		active := placement.ShardActive
		err = c.api.SetTenantPolicy(c.ctx, tn, storconapi.TenantPolicyRequest{Scheduling: &active})
		if net.CodeOf(err) != net.Unavailable || !strings.Contains(err.Error(), ErrUnresolved.Error()) {
			t.Fatalf("an operation on the unsure tenant answered %v, want 503 %v", err, ErrUnresolved)
		}
		sw.down = false
		waitFor(c, time.Minute, "the unsure tenant resolved", func() error {
			_, err := c.api.DescribeTenant(c.ctx, tn)
			if net.CodeOf(err) == net.NotFound {
				return nil
			}
			return errors.New("still listed")
		})
		waitFor(c, time.Minute, "consistent", consistent(c))
	})
}

// nodeLossyStore loses the answer of the next node policy write after it
// took effect, once lose is set.
type nodeLossyStore struct {
	persist.Store
	lose *bool
}

func (s nodeLossyStore) SetNodeSchedulingPolicy(ctx context.Context, id persist.NodeID, policy string) error {
	if err := s.Store.SetNodeSchedulingPolicy(ctx, id, policy); err != nil || !*s.lose {
		return err
	}
	*s.lose = false
	return errLostAnswer
}

// TestNodePolicyWhoseAnswerWasLost: a node policy stored but answered with
// an unknown outcome did not change memory, so memory's policy is written
// back: the store and memory agree (the consistency check passes) instead
// of the store keeping a policy no node operation runs.
func TestNodePolicyWhoseAnswerWasLost(t *testing.T) {
	var lose bool
	runClusterWith(t, 2, Config{}, wrappedDisk(t, func(_ node.Env, ds persist.Store) persist.Store {
		return nodeLossyStore{Store: ds, lose: &lose}
	}), func(c *cluster) {
		pause := placement.NodePause
		lose = true
		err := c.api.NodeConfig(c.ctx, 1, storconapi.NodeConfigRequest{Scheduling: &pause})
		if err == nil {
			t.Fatal("a node policy write with a lost answer answered success")
		}
		if _, err := c.api.ConsistencyCheck(c.ctx); err != nil {
			t.Fatalf("after the lost write: %v", err)
		}
	})
}

// lateStore answers the next tenant delete with a lost answer at once,
// while the delete itself lands later (after delay): a request still on
// its way to the database when the connection broke.
type lateStore struct {
	persist.Store
	clk   clock.Clock
	delay time.Duration
	arm   *bool
}

func (s lateStore) DeleteTenant(ctx context.Context, t shard.TenantID) error {
	if !*s.arm {
		return s.Store.DeleteTenant(ctx, t)
	}
	*s.arm = false
	s.clk.Go(context.WithoutCancel(ctx), "late delete", func(ctx context.Context) {
		if clock.Sleep(ctx, s.clk, s.delay) == nil {
			_ = s.Store.DeleteTenant(ctx, t)
		}
	})
	return errLostAnswer
}

// TestDeleteThatLandsLate: a delete whose connection broke lands at the
// database after the controller saw the error. Reading back at once would
// find the rows, keep the tenant in memory and leave it there after they
// are gone; waiting LostWriteSettle first sees the delete and forgets it.
func TestDeleteThatLandsLate(t *testing.T) {
	var arm bool
	runClusterWith(t, 2, Config{}, wrappedDisk(t, func(env node.Env, ds persist.Store) persist.Store {
		return lateStore{Store: ds, clk: env.Clock, delay: 500 * time.Millisecond, arm: &arm}
	}), func(c *cluster) {
		tn := tenantID(74)
		c.create(tn, 1, nil)
		arm = true
		if err := c.api.DeleteTenant(c.ctx, tn); err != nil {
			t.Fatalf("a delete that landed late answered %v, want success", err)
		}
		if _, err := c.api.DescribeTenant(c.ctx, tn); net.CodeOf(err) != net.NotFound {
			t.Fatalf("describe after the delete: %v, want NotFound", err)
		}
		waitFor(c, time.Minute, "consistent", consistent(c))
	})
}

// lateCommitStore makes CommitSplit fail: the first fails-1 attempts
// without effect, the last one with its answer lost while it lands delay
// later (the store step's last retry still in flight).
type lateCommitStore struct {
	persist.Store
	clk   clock.Clock
	delay time.Duration
	fails *int
}

func (s lateCommitStore) CommitSplit(ctx context.Context, t shard.TenantID, old shard.ShardCount) error {
	switch {
	case *s.fails == 0:
		return s.Store.CommitSplit(ctx, t, old)
	case *s.fails > 1:
		*s.fails--
		return errLostAnswer
	}
	*s.fails = 0
	s.clk.Go(context.WithoutCancel(ctx), "late commit", func(ctx context.Context) {
		if clock.Sleep(ctx, s.clk, s.delay) == nil {
			_ = s.Store.CommitSplit(ctx, t, old)
		}
	})
	return errLostAnswer
}

// TestSplitCommitThatLandsLate: every attempt of the split's commit
// answers an unknown outcome and the last one lands after the controller
// gave up. Aborting at once would delete the children, and the late commit
// the parents: a tenant with no rows. Waiting LostWriteSettle first, the
// abort finds the split committed and finishes it.
func TestSplitCommitThatLandsLate(t *testing.T) {
	fails := 0
	runClusterWith(t, 2, Config{}, wrappedDisk(t, func(env node.Env, ds persist.Store) persist.Store {
		return lateCommitStore{Store: ds, clk: env.Clock, delay: 500 * time.Millisecond, fails: &fails}
	}), func(c *cluster) {
		tn := tenantID(75)
		c.create(tn, 1, nil)
		fails = splitStoreAttempts
		resp, err := c.split(tn, 2, nil)
		if err != nil {
			t.Fatalf("split whose commit landed late: %v", err)
		}
		if len(resp.NewShards) != 2 {
			t.Fatalf("split answered %+v, want 2 shards", resp)
		}
		rows := c.rows(tn)
		if len(rows) != 2 || rows[0].ID.Shard.Count != 2 || rows[0].Splitting || rows[1].Splitting {
			t.Fatalf("rows after the split: %+v", rows)
		}
		waitFor(c, time.Minute, "consistent", consistent(c))
	})
}

// TestCreateResolvedLater: a create whose insert was stored, its answer
// lost and the store then unreadable, is not in memory — and not listed —
// until the store answers again; then the background loop finds the rows
// and takes the tenant under management, attached.
func TestCreateResolvedLater(t *testing.T) {
	runLossy(t, func(c *cluster, sw *lossSwitches) {
		tn := tenantID(76)
		sw.loseInserts, sw.downAfter = true, true
		_, err := c.api.CreateTenant(c.ctx, storconapi.TenantCreateRequest{NewTenantID: tn})
		sw.loseInserts, sw.downAfter = false, false
		if net.CodeOf(err) != net.Unavailable {
			t.Fatalf("a create whose outcome stayed unknown answered %v, want Unavailable", err)
		}
		if _, err := c.api.DescribeTenant(c.ctx, tn); net.CodeOf(err) != net.NotFound {
			t.Fatalf("describe while unresolved: %v, want NotFound", err)
		}
		sw.down = false
		waitFor(c, time.Minute, "the stored tenant adopted and attached", func() error {
			d, err := c.api.DescribeTenant(c.ctx, tn)
			if err != nil {
				return err
			}
			if s := d.Shards[0]; s.NodeAttached == nil || s.IsDirty || s.IsReconciling {
				return fmt.Errorf("shard %+v", s)
			}
			return nil
		})
		waitFor(c, time.Minute, "consistent", consistent(c))
	})
}
