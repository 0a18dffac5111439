package storcon

import (
	"github.com/stratadb/strata/engine/placement"
	"github.com/stratadb/strata/engine/shard"
)

// tenantModel is what the workload knows of one tenant. A tenant id is
// used once: a deleted tenant is never created again, so every generation
// of its shards belongs to one life.
type tenantModel struct {
	id     shard.TenantID
	count  shard.ShardCount // 0: unsharded
	stripe uint32

	// created: a create was acknowledged (or the controller described
	// the tenant). createUnknown: a create's outcome is not known yet.
	created, createUnknown bool
	// deleted: a delete was acknowledged. deleteUnknown: a delete's
	// outcome is not known yet.
	deleted, deleteUnknown bool
	// policy and sched are the placement and scheduling policies last
	// acknowledged; policyUnknown: a change's outcome is not known yet.
	policy        placement.Policy
	sched         placement.ShardSchedulingPolicy
	policyUnknown bool
	// inFlight counts calls under way that may legitimately take its
	// attached locations away (delete, policy change).
	inFlight int
	// version counts the calls on the tenant that ended.
	version int

	timelines []shard.TimelineID
}

// shardID names shard n of the tenant.
func (t *tenantModel) shardID(n shard.ShardNumber) shard.TenantShardID {
	return shard.TenantShardID{TenantID: t.id, Shard: shard.ShardIndex{Number: n, Count: t.count}}
}

// shardIDs lists the tenant's shards in order.
func (t *tenantModel) shardIDs() []shard.TenantShardID {
	out := make([]shard.TenantShardID, 0, max(int(t.count), 1))
	for n := range max(int(t.count), 1) {
		out = append(out, t.shardID(shard.ShardNumber(n)))
	}
	return out
}

// live reports whether the tenant exists for sure and is not being
// deleted.
func (t *tenantModel) live() bool {
	return t.created && !t.deleted && !t.deleteUnknown
}

// model is the workload's knowledge of every tenant, in creation order.
type model struct {
	tenants map[shard.TenantID]*tenantModel
	order   []shard.TenantID
}

func newModel() *model { return &model{tenants: map[shard.TenantID]*tenantModel{}} }

func (m *model) add(t *tenantModel) {
	m.tenants[t.id] = t
	m.order = append(m.order, t.id)
}

// liveTenants lists the tenants that exist for sure, in creation order.
func (m *model) liveTenants() []*tenantModel {
	var out []*tenantModel
	for _, id := range m.order {
		if t := m.tenants[id]; t.live() {
			out = append(out, t)
		}
	}
	return out
}

// versions snapshots every tenant's version.
func (m *model) versions() map[shard.TenantID]int {
	out := make(map[shard.TenantID]int, len(m.tenants))
	for _, id := range m.order {
		out[id] = m.tenants[id].version
	}
	return out
}

// mustStayAttached reports whether the tenant must have an attached
// location at all times (while the node holding it is alive): it exists,
// its placement policy is Attached for sure, and nothing under way may
// take its locations away.
func (m *model) mustStayAttached(id shard.TenantID) bool {
	t := m.tenants[id]
	return t != nil && t.live() && !t.createUnknown && !t.policyUnknown && t.inFlight == 0 &&
		t.policy.Kind == placement.PolicyAttached
}
