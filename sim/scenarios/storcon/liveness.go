package storcon

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/stratadb/strata/engine/placement"
	"github.com/stratadb/strata/engine/shard"
	"github.com/stratadb/strata/nodes/pageserver/pageapi"
	"github.com/stratadb/strata/nodes/storcon/storconapi"
	"github.com/stratadb/strata/sim"
)

// Liveness budgets.
const (
	// livenessBudget bounds each convergence wait after healing.
	livenessBudget = 90 * time.Second
	livenessPoll   = 500 * time.Millisecond
)

// liveness runs after HealAll: once the workload's last calls are over
// and settled, every tenant's unknown outcome is resolved, nodes and
// tenants are put back to plain policies (Active nodes, Attached tenants
// with Active scheduling), and then the controller must converge: for
// every shard observed equals intent and the pageservers hold exactly
// that, the attached generation validates, nothing is reconciling or
// pending, the consistency check passes, and the compute hook's last
// notification for each tenant names the attached nodes.
func (c *cluster) liveness(wl *workload) error {
	w := c.w
	for wl.running > 0 {
		w.Sleep(100 * time.Millisecond)
	}
	w.Sleep(settle)
	if err := w.Converge(livenessBudget, livenessPoll, func() error { return c.normalize(wl) }); err != nil {
		return fmt.Errorf("%w: %w", ErrNoProgress, err)
	}
	if err := w.Converge(livenessBudget, livenessPoll, func() error { return c.converged(wl) }); err != nil {
		return fmt.Errorf("%w: %w", ErrNoProgress, err)
	}
	live := 0
	for _, t := range c.m.liveTenants() {
		live++
		_ = t
	}
	sim.Stat(w, "tenants_created", len(c.m.order))
	sim.Stat(w, "tenants_at_end", live)
	sim.Stat(w, "targeted_crashes", c.targeted)
	return nil
}

// normalize resolves the model from the controller's tenant list and puts
// every node and tenant back to plain policies; nil once nothing needed a
// change.
func (c *cluster) normalize(wl *workload) error {
	ctx, cancel := wl.ctx()
	defer cancel()
	nodes, err := wl.api.ListNodes(ctx)
	if err != nil {
		return fmt.Errorf("list nodes: %w", err)
	}
	var pending []string
	for _, n := range nodes {
		if n.Scheduling == placement.NodeActive {
			continue
		}
		_ = wl.api.Drain(ctx, n.ID, true)
		_ = wl.api.Fill(ctx, n.ID, true)
		active := placement.NodeActive
		if err := wl.api.NodeConfig(ctx, n.ID, storconapi.NodeConfigRequest{Scheduling: &active}); err != nil {
			pending = append(pending, fmt.Sprintf("node %d policy %s: %v", n.ID, n.Scheduling, err))
		} else {
			pending = append(pending, fmt.Sprintf("node %d policy was %s", n.ID, n.Scheduling))
		}
	}
	list, err := wl.api.ListTenants(ctx)
	if err != nil {
		return fmt.Errorf("list tenants: %w", err)
	}
	present := map[shard.TenantID]storconapi.TenantDescribe{}
	for _, d := range list {
		present[d.TenantID] = d
	}
	if err := wl.resolve(present, true, 0, nil); err != nil {
		c.o.fail(err)
		return nil
	}
	for _, d := range list {
		t := c.m.tenants[d.TenantID]
		if t == nil {
			c.o.fail(fmt.Errorf("%w: the controller lists tenant %s the workload never created", ErrLostTenant, d.TenantID))
			return nil
		}
		want := placement.Attached(min(t.policy.Secondaries, c.nPS-1))
		if t.policy.Kind != placement.PolicyAttached {
			want = placement.Attached(0)
		}
		sched := placement.ShardActive
		sd := d.Shards[0]
		if sd.Policy == want && sd.Scheduling == sched {
			continue
		}
		if err := wl.api.SetTenantPolicy(ctx, t.id, storconapi.TenantPolicyRequest{Placement: &want, Scheduling: &sched}); err != nil {
			pending = append(pending, fmt.Sprintf("tenant %s policy %s/%s: %v", t.id, sd.Policy, sd.Scheduling, err))
			continue
		}
		t.policy, t.sched = want, sched
		pending = append(pending, fmt.Sprintf("tenant %s policy was %s/%s", t.id, sd.Policy, sd.Scheduling))
	}
	if len(pending) > 0 {
		return errors.New(fmt.Sprint(pending))
	}
	return nil
}

// converged checks the end state; nil once everything holds.
func (c *cluster) converged(wl *workload) error {
	ctx, cancel := wl.ctx()
	defer cancel()
	nodes, err := wl.api.ListNodes(ctx)
	if err != nil {
		return fmt.Errorf("list nodes: %w", err)
	}
	if len(nodes) != c.nPS {
		return fmt.Errorf("the controller knows %d nodes, want %d", len(nodes), c.nPS)
	}
	for _, n := range nodes {
		if n.Availability != placement.Active || n.Scheduling != placement.NodeActive {
			return fmt.Errorf("node %d is %s with policy %s", n.ID, n.Availability, n.Scheduling)
		}
	}
	before := c.o.snapshot()
	list, err := wl.api.ListTenants(ctx)
	if err != nil {
		return fmt.Errorf("list tenants: %w", err)
	}
	// What the pageservers hold.
	held := map[nodeShard]*pageapi.LocationConfig{}
	for i := 1; i <= c.nPS; i++ {
		node := uint64(i)
		vbefore := c.o.listVersions(node)
		l, err := wl.listLocations(i, time.Second)
		if err != nil {
			return fmt.Errorf("node %d locations: %w", i, err)
		}
		c.o.listed(node, l, vbefore, "final poll")
		for _, e := range l.TenantShards {
			id, err := shard.ParseTenantShardID(e.ID)
			if err != nil {
				return err
			}
			held[nodeShard{node, id}] = e.Config
		}
	}
	var req storconapi.ValidateRequest
	for _, d := range list {
		t := c.m.tenants[d.TenantID]
		if t == nil {
			return fmt.Errorf("unknown tenant %s listed", d.TenantID)
		}
		for _, sd := range d.Shards {
			c.o.describedShard(sd, before)
			if err := c.shardConverged(t, sd, held); err != nil {
				return err
			}
			req.Tenants = append(req.Tenants, storconapi.ValidateTenant{ID: sd.TenantShardID, Gen: *sd.Generation})
		}
		if err := c.notificationConverged(t, d); err != nil {
			return err
		}
	}
	if len(req.Tenants) > 0 {
		resp, err := wl.api.Validate(ctx, req)
		if err != nil {
			return fmt.Errorf("validate: %w", err)
		}
		valid := map[shard.TenantShardID]bool{}
		for _, r := range resp.Tenants {
			valid[r.ID] = r.Valid
		}
		for _, q := range req.Tenants {
			if !valid[q.ID] {
				return fmt.Errorf("shard %s: its attached generation %d does not validate", q.ID, q.Gen)
			}
		}
	}
	if _, err := wl.api.ConsistencyCheck(ctx); err != nil {
		return fmt.Errorf("consistency check: %w", err)
	}
	return nil
}

// shardConverged: intent is in place, observed equals it, and the
// pageservers hold exactly it.
func (c *cluster) shardConverged(t *tenantModel, sd storconapi.ShardDescribe, held map[nodeShard]*pageapi.LocationConfig) error {
	id := sd.TenantShardID
	switch {
	case sd.NodeAttached == nil:
		return fmt.Errorf("shard %s has no attached node", id)
	case sd.Generation == nil:
		return fmt.Errorf("shard %s attached to node %d without a generation", id, *sd.NodeAttached)
	case sd.GenerationNode != *sd.NodeAttached:
		return fmt.Errorf("shard %s attached to node %d but generation %d is node %d's", id, *sd.NodeAttached, *sd.Generation, sd.GenerationNode)
	case len(sd.NodeSecondary) != t.policy.Secondaries:
		return fmt.Errorf("shard %s has secondaries %v, policy %s", id, sd.NodeSecondary, t.policy)
	case sd.IsReconciling || sd.IsDirty || sd.PendingComputeNotification:
		return fmt.Errorf("shard %s: reconciling %v dirty %v notification pending %v", id, sd.IsReconciling, sd.IsDirty, sd.PendingComputeNotification)
	}
	att, gen := *sd.NodeAttached, *sd.Generation
	intent := map[uint64]placement.Mode{att: placement.ModeAttachedSingle}
	for _, n := range sd.NodeSecondary {
		intent[n] = placement.ModeSecondary
	}
	seen := map[uint64]bool{}
	for _, ob := range sd.Observed {
		if ob.Conf == nil {
			return fmt.Errorf("shard %s: node %d's location is unknown", id, ob.NodeID)
		}
		if ob.Conf.Mode == placement.ModeDetached {
			continue
		}
		seen[ob.NodeID] = true
		want, ok := intent[ob.NodeID]
		switch {
		case !ok:
			return fmt.Errorf("shard %s: observed %s on node %d, which intent does not name", id, ob.Conf, ob.NodeID)
		case ob.Conf.Mode != want:
			return fmt.Errorf("shard %s: observed %s on node %d, intent %s", id, ob.Conf, ob.NodeID, want)
		case want == placement.ModeAttachedSingle && ob.Conf.Generation != placement.Gen(gen):
			return fmt.Errorf("shard %s: observed %s on node %d, generation %d", id, ob.Conf, ob.NodeID, gen)
		}
	}
	for _, n := range sortedKeys(intent) {
		if !seen[n] {
			return fmt.Errorf("shard %s: intent %s on node %d, nothing observed there", id, intent[n], n)
		}
	}
	for i := 1; i <= c.nPS; i++ {
		n := uint64(i)
		h := held[nodeShard{n, id}]
		want, ok := intent[n]
		switch {
		case !ok && h != nil && h.Mode != pageapi.ModeDetached:
			return fmt.Errorf("shard %s: node %d holds %s, intent does not name it", id, n, h.Mode)
		case !ok:
		case h == nil:
			return fmt.Errorf("shard %s: node %d holds nothing, intent %s", id, n, want)
		case want == placement.ModeAttachedSingle && (h.Mode != pageapi.ModeAttachedSingle || h.Generation == nil || *h.Generation != gen):
			return fmt.Errorf("shard %s: node %d holds %s generation %v, intent AttachedSingle generation %d", id, n, h.Mode, h.Generation, gen)
		case want == placement.ModeSecondary && h.Mode != pageapi.ModeSecondary:
			return fmt.Errorf("shard %s: node %d holds %s, intent Secondary", id, n, h.Mode)
		}
	}
	return nil
}

// notificationConverged: the compute hook's last notification for the
// tenant names each shard's attached node.
func (c *cluster) notificationConverged(t *tenantModel, d storconapi.TenantDescribe) error {
	last, ok := c.recv.Last(t.id)
	if !ok {
		return fmt.Errorf("tenant %s: compute was never notified", t.id)
	}
	got := map[shard.ShardNumber]uint64{}
	for _, s := range last.Shards {
		got[s.ShardNumber] = s.NodeID
	}
	for _, sd := range d.Shards {
		n := sd.TenantShardID.Shard.Number
		if got[n] != *sd.NodeAttached {
			return fmt.Errorf("tenant %s: compute's last notification %+v names node %d for shard %d, attached to node %d", t.id, last.Shards, got[n], n, *sd.NodeAttached)
		}
	}
	if len(got) != len(d.Shards) {
		return fmt.Errorf("tenant %s: compute's last notification names %d shards, the tenant has %d", t.id, len(got), len(d.Shards))
	}
	return nil
}

func sortedKeys[V any](m map[uint64]V) []uint64 {
	out := make([]uint64, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
