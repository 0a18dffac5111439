package placement

import (
	"errors"
	"slices"
	"testing"

	"pgregory.net/rapid"

	"github.com/stratadb/strata/engine/shard"
)

// countsModel drives a Scheduler and a pool of shard states with random
// intent changes and node events; after every step the scheduler's
// incremental counts must equal a recount from all intents, done here
// independently of Scheduler.Check (which must agree too).
type countsModel struct {
	s      *Scheduler
	shards []*ShardState
	// before each step: every shard's intent and sequence, to check that
	// a change bumps the sequence and nothing lowers it.
	prev []intentSnap
}

type intentSnap struct {
	attached    NodeID
	secondaries []NodeID
	az          AZ
	seq         uint64
}

const (
	modelNodes   = 6 // node ids 1..6 may exist; 7 never does
	modelTenants = 3
	modelShards  = 7
)

func newCountsModel() *countsModel {
	m := &countsModel{s: NewScheduler()}
	for i := range modelShards {
		id := tsid(byte(i%modelTenants), uint8(i/modelTenants), 4)
		m.shards = append(m.shards, NewShardState(id, shard.Unsharded(), Attached(1)))
	}
	m.snapshot()
	return m
}

func (m *countsModel) snapshot() {
	m.prev = m.prev[:0]
	for _, st := range m.shards {
		m.prev = append(m.prev, intentSnap{st.attached, slices.Clone(st.secondaries), st.preferredAZ, st.seq})
	}
}

func drawNode(t *rapid.T, label string) NodeID {
	return NodeID(rapid.IntRange(1, modelNodes+1).Draw(t, label))
}

func (m *countsModel) drawShard(t *rapid.T) *ShardState {
	return m.shards[rapid.IntRange(0, modelShards-1).Draw(t, "shard")]
}

func drawPolicy(t *rapid.T) Policy {
	switch rapid.IntRange(0, 4).Draw(t, "policy") {
	case 0:
		return Secondary()
	case 1:
		return Detached()
	}
	return Attached(rapid.IntRange(0, 2).Draw(t, "secondaries"))
}

// expect fails unless err is nil (want nil) or wraps want.
func expect(t *rapid.T, what string, err, want error) {
	t.Helper()
	if want == nil && err != nil || want != nil && !errors.Is(err, want) {
		t.Fatalf("%s: %v, want %v", what, err, want)
	}
}

// expectSchedule accepts success or ErrNoSchedulableNode, and on success
// with a policy that allows changes checks that intent satisfies the
// placement policy.
func expectSchedule(t *rapid.T, what string, st *ShardState, err error) {
	t.Helper()
	if errors.Is(err, ErrNoSchedulableNode) {
		return
	}
	expect(t, what, err, nil)
	if !st.SchedulingPolicy.MaySchedule() {
		return
	}
	ok := true
	switch st.Policy.Kind {
	case PolicyAttached:
		ok = st.attached != NoNode && len(st.secondaries) == st.Policy.Secondaries
	case PolicySecondary:
		ok = st.attached == NoNode && len(st.secondaries) == 1
	case PolicyDetached:
		ok = st.attached == NoNode && len(st.secondaries) == 0
	}
	if !ok {
		t.Fatalf("%s: policy %v, intent attached %d secondaries %v", what, st.Policy, st.attached, st.secondaries)
	}
}

func (m *countsModel) referenced(id NodeID) bool {
	for _, st := range m.shards {
		if st.InIntent(id) {
			return true
		}
	}
	return false
}

func (m *countsModel) actions() map[string]func(*rapid.T) {
	return map[string]func(*rapid.T){
		"upsertNode": func(t *rapid.T) {
			n := Node{
				ID:           NodeID(rapid.IntRange(1, modelNodes).Draw(t, "node")),
				Availability: rapid.SampledFrom([]Availability{Active, Active, WarmingUp, Offline}).Draw(t, "availability"),
				Policy:       rapid.SampledFrom([]NodePolicy{NodeActive, NodeActive, NodeFilling, NodePause, NodePauseForRestart, NodeDraining, NodeDeleting}).Draw(t, "nodePolicy"),
				AZ:           rapid.SampledFrom([]AZ{"", "a", "b"}).Draw(t, "az"),
				Utilization: Utilization{
					Score:         rapid.SampledFrom([]uint64{0, 500_000, OverloadedScore}).Draw(t, "score"),
					MaxShardCount: rapid.SampledFrom([]uint64{0, 4}).Draw(t, "maxShards"),
				},
			}
			expect(t, "UpsertNode", m.s.UpsertNode(n), nil)
		},
		"removeNode": func(t *rapid.T) {
			id := drawNode(t, "node")
			var want error
			switch {
			case !m.s.Has(id):
				want = ErrUnknownNode
			case m.referenced(id):
				want = ErrNodeInUse
			}
			expect(t, "RemoveNode", m.s.RemoveNode(id), want)
			if want == nil && m.s.Has(id) {
				t.Fatalf("node %d still known after RemoveNode", id)
			}
		},
		"dropNode": func(t *rapid.T) {
			// The operator's "drop node": take it out of every intent, then
			// forget it.
			id := drawNode(t, "node")
			if !m.s.Has(id) {
				t.Skip("unknown node")
			}
			for _, st := range m.shards {
				if st.attached == id {
					expect(t, "SetAttached(none)", st.SetAttached(m.s, NoNode), nil)
				}
				expect(t, "RemoveSecondary", st.RemoveSecondary(m.s, id), nil)
				st.ClearObserved(id)
			}
			expect(t, "RemoveNode after drop", m.s.RemoveNode(id), nil)
		},
		"nodeOffline": func(t *rapid.T) {
			id := drawNode(t, "node")
			n, ok := m.s.Node(id)
			if !ok {
				t.Skip("unknown node")
			}
			n.Node.Availability = Offline
			expect(t, "UpsertNode(offline)", m.s.UpsertNode(n.Node), nil)
			for _, st := range m.shards {
				err := st.NodeOffline(m.s, id)
				if errors.Is(err, ErrNoSchedulableNode) {
					continue
				}
				expect(t, "NodeOffline", err, nil)
				if st.SchedulingPolicy.MaySchedule() && st.Policy.Kind == PolicyAttached && st.attached == id {
					t.Fatalf("shard %s still attached to offline node %d after NodeOffline succeeded", st.ID, id)
				}
			}
		},
		"schedule": func(t *rapid.T) {
			st := m.drawShard(t)
			expectSchedule(t, "Schedule", st, st.Schedule(m.s))
		},
		"setPolicy": func(t *rapid.T) {
			st := m.drawShard(t)
			st.Policy = drawPolicy(t)
			expectSchedule(t, "Schedule after policy change", st, st.Schedule(m.s))
		},
		"setSchedulingPolicy": func(t *rapid.T) {
			st := m.drawShard(t)
			st.SchedulingPolicy = rapid.SampledFrom([]ShardSchedulingPolicy{ShardActive, ShardEssential, ShardPause, ShardStop}).Draw(t, "shardPolicy")
		},
		"setAttached": func(t *rapid.T) {
			st := m.drawShard(t)
			id := NodeID(rapid.IntRange(0, modelNodes+1).Draw(t, "node"))
			var want error
			if id != NoNode && !m.s.Has(id) {
				want = ErrUnknownNode
			}
			expect(t, "SetAttached", st.SetAttached(m.s, id), want)
		},
		"moveAttached": func(t *rapid.T) {
			st := m.drawShard(t)
			id := drawNode(t, "node")
			var want error
			if !m.s.Has(id) {
				want = ErrUnknownNode
			}
			old := st.attached
			expect(t, "MoveAttached", st.MoveAttached(m.s, id), want)
			if want == nil && old != NoNode && old != id && !slices.Contains(st.secondaries, old) {
				t.Fatalf("MoveAttached %d→%d dropped the origin: secondaries %v", old, id, st.secondaries)
			}
		},
		"demote": func(t *rapid.T) {
			expect(t, "DemoteAttached", m.drawShard(t).DemoteAttached(m.s), nil)
		},
		"addSecondary": func(t *rapid.T) {
			st := m.drawShard(t)
			id := drawNode(t, "node")
			var want error
			switch {
			case !m.s.Has(id):
				want = ErrUnknownNode
			case id == st.attached:
				want = ErrIntentConflict
			}
			expect(t, "AddSecondary", st.AddSecondary(m.s, id), want)
		},
		"removeSecondary": func(t *rapid.T) {
			expect(t, "RemoveSecondary", m.drawShard(t).RemoveSecondary(m.s, drawNode(t, "node")), nil)
		},
		"clear": func(t *rapid.T) {
			expect(t, "ClearIntent", m.drawShard(t).ClearIntent(m.s), nil)
		},
		"fromObserved": func(t *rapid.T) {
			// A controller restart for one shard: intent rebuilt from what
			// the nodes hold.
			st := m.drawShard(t)
			expect(t, "ClearIntent", st.ClearIntent(m.s), nil)
			for id := NodeID(1); id <= modelNodes; id++ {
				st.ClearObserved(id)
				if !m.s.Has(id) {
					continue
				}
				switch rapid.IntRange(0, 3).Draw(t, "observed") {
				case 1:
					st.SetObservedUnknown(id)
				case 2:
					st.SetObserved(id, LocationConf{Mode: ModeSecondary, Warm: true})
				case 3:
					g := Gen(uint32(rapid.IntRange(1, 3).Draw(t, "gen")))
					st.SetObserved(id, LocationConf{Mode: ModeAttachedSingle, Generation: g})
				}
			}
			expect(t, "IntentFromObserved", st.IntentFromObserved(m.s), nil)
		},
		"preferredAZ": func(t *rapid.T) {
			m.drawShard(t).SetPreferredAZ(rapid.SampledFrom([]AZ{"", "a", "b"}).Draw(t, "az"))
		},
		"": m.check,
	}
}

// check recounts from scratch and compares with the incremental counts.
func (m *countsModel) check(t *rapid.T) {
	type counts struct{ shards, attached int }
	perNode := map[NodeID]counts{}
	perTenant := map[shard.TenantID]map[NodeID]int{}
	for _, st := range m.shards {
		tn := perTenant[st.ID.TenantID]
		if tn == nil {
			tn = map[NodeID]int{}
			perTenant[st.ID.TenantID] = tn
		}
		if st.attached != NoNode {
			c := perNode[st.attached]
			c.shards++
			c.attached++
			perNode[st.attached] = c
			tn[st.attached]++
		}
		for i, id := range st.secondaries {
			if id == st.attached || slices.Contains(st.secondaries[:i], id) {
				t.Fatalf("shard %s: node %d twice in intent (attached %d, secondaries %v)", st.ID, id, st.attached, st.secondaries)
			}
			c := perNode[id]
			c.shards++
			perNode[id] = c
			tn[id]++
		}
	}
	for id := NodeID(1); id <= modelNodes+1; id++ {
		want := perNode[id]
		n, ok := m.s.Node(id)
		if !ok {
			if want != (counts{}) {
				t.Fatalf("intent names unknown node %d (%+v)", id, want)
			}
		} else if n.Shards != want.shards || n.Attached != want.attached {
			t.Fatalf("node %d: counts shards %d attached %d, recount %d %d", id, n.Shards, n.Attached, want.shards, want.attached)
		}
		for ti := range modelTenants {
			tenant := tid(byte(ti))
			if got, want := m.s.TenantLocations(tenant, id), perTenant[tenant][id]; got != want {
				t.Fatalf("tenant %d on node %d: %d locations, recount %d", ti, id, got, want)
			}
		}
	}
	if err := m.s.Check(m.shards); err != nil {
		t.Fatalf("Check: %v", err)
	}
	for i, st := range m.shards {
		p := m.prev[i]
		switch {
		case st.seq < p.seq:
			t.Fatalf("shard %s: sequence went back from %d to %d", st.ID, p.seq, st.seq)
		case st.seq == p.seq && (st.attached != p.attached || !slices.Equal(st.secondaries, p.secondaries) || st.preferredAZ != p.az):
			t.Fatalf("shard %s: intent changed (%d %v → %d %v) without a sequence bump", st.ID, p.attached, p.secondaries, st.attached, st.secondaries)
		}
	}
	m.snapshot()
}

func TestSchedulerCountsModel(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		newCountsModel().Repeat(t)
	})
}

func (m *countsModel) Repeat(t *rapid.T) { t.Repeat(m.actions()) }
